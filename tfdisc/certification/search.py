"""Exact answers in the discretized input space: the model only ever sees discretized levels, and in an ε-ball most
pixels can reach one level only. Where the free pixels allow few inputs, all of them are evaluated; beyond that,
branch and bound over the free pixels' levels, pruned by the bounds of `tfdisc.certification.bounds` and `.crown`.
`tfdisc.evaluation.discrete` attacks in the same space.
"""

import heapq
import itertools
import time
import weakref

import numpy as np
import tensorflow as tf

from tfdisc import checks, ops
from tfdisc.certification import bounds as ibp
from tfdisc.certification import crown
from tfdisc.layers import InputDiscretization


def _levels(discretization, low, high):
    """The number of levels each pixel can take between its box ends."""
    return np.rint((np.asarray(high) - np.asarray(low)) / ibp.level_step(discretization)).astype(np.int64) + 1


def input_count(discretization: InputDiscretization, low: np.ndarray, high: np.ndarray) -> float:
    """How many distinct discretized inputs the box holds (a float: it can be astronomically large)."""
    with np.errstate(over="ignore"):  # past float64's range the count is inf, which compares as it should
        return float(np.prod(_levels(discretization, low, high).astype(np.float64)))


ENUMERATION_MAX = 2**40  # the largest box `enumerate_box` takes (days of model calls)
_PREDICTORS = weakref.WeakKeyDictionary()  # model -> its compiled `_predictor`


def _predictor(model):
    """`model`'s predicted classes as one graph function, traced once per model for any batch size: graph mode is
    the path the report scores clean accuracy and survival on, and enumeration runs 2.35x faster through it than
    through eager calls on FCN2-BNN (`scripts/benchmark.py --parts=enumeration`, docs/performance.md)."""
    if model not in _PREDICTORS:
        reference = weakref.ref(model)  # the cache must not keep the model alive
        spec = tf.TensorSpec([None, *model.input_shape[1:]], tf.float32)
        _PREDICTORS[model] = tf.function(lambda v: tf.argmax(reference()(v, training=False), -1),
                                         input_signature=[spec])
    return _PREDICTORS[model]


def _predictions(model, levels, batch=1024):
    predict = _predictor(model)
    return np.concatenate([predict(tf.constant(levels[i:i + batch], tf.float32)).numpy()
                           for i in range(0, len(levels), batch)])


def enumerate_box(model: tf.keras.Model, discretization: InputDiscretization, low: np.ndarray, high: np.ndarray,
                  label: int, batch: int = 1024) -> tuple[bool, np.ndarray | None]:
    """Every input of one example's level box, evaluated: (True, None) if all are classified `label`, else (False,
    the first level image that is not, counting the last free pixel fastest)."""
    low, high = np.asarray(low), np.asarray(high)
    step = ibp.level_step(discretization)
    free = np.flatnonzero(high > low + step / 2)
    counts = _levels(discretization, low, high).flat[free]
    inputs = input_count(discretization, low, high)
    if inputs > ENUMERATION_MAX:
        raise ValueError(f"The box holds {inputs:.3g} inputs, too many to enumerate; "
                         "enumerate boxes below certify's enumeration_limit, and branch and bound the rest.")
    strides = np.cumprod(np.concatenate([counts[1:], [1]])[::-1])[::-1]  # mixed radix, the last pixel fastest
    total = int(np.prod(counts))
    flat = low.reshape(1, -1)
    for start in range(0, total, batch):
        index = np.arange(start, min(start + batch, total))[:, None]
        images = np.repeat(flat, len(index), 0)
        images[:, free] = flat[:, free] + step * (index // strides % counts)
        images = images.reshape((len(index),) + low.shape)
        wrong = np.flatnonzero(_predictions(model, images, batch) != label)
        if wrong.size:
            return False, images[wrong[0]]
    return True, None


BOUNDS = ("ibp", "crown", "crown-refined", "alpha-crown")
SLOPE_ITERATIONS = 20  # "alpha-crown": Adam steps on the final pass's slopes


def _relaxation_options(method):
    """`crown.chain_margin_bounds`'s options for a linear relaxation method."""
    return {"refine": method != "crown", "optimize_slopes": method == "alpha-crown"}


def margin_bounds(model: tf.keras.Model, low: tf.Tensor, high: tf.Tensor, labels: tf.Tensor,
                  method: str) -> tuple[tf.Tensor, np.ndarray | None]:
    """Lower bounds of every other-class margin, by `method`: "ibp", "crown" (intermediate bounds by IBP),
    "crown-refined" (each intermediate bound by a backward pass of its own) or "alpha-crown" (then the final pass's
    relaxation slopes optimized, `SLOPE_ITERATIONS` steps); the linear relaxations fall back to IBP on models they do
    not cover (convolutions, residual additions). Also, for the linear relaxations (else None), how many units of each
    activation they leave undecided per example ((batch, activations), `crown.undecided_units`)."""
    steps = _chain_or_none(model, method)
    if steps is None:
        return ibp.margin_lower_bounds(model, low, high, labels), None
    flat_low, flat_high = (tf.reshape(v, [tf.shape(v)[0], -1]) for v in (low, high))
    # A backward pass holds (examples × rows × units) coefficients and the free-pixel chain (examples × free pixels
    # × units) first-layer rows: batches that fit in about 1 GiB.
    units = max(int(step[1].shape[-1]) for step in steps if step[0] == "affine")
    free = max(0, int(tf.reduce_max(tf.reduce_sum(tf.cast(flat_high > flat_low, tf.int32), -1))))
    options = _relaxation_options(method)
    size = max(1, 2**30 // (8 * units * (4 * (units if options["refine"] else 16) + free)))
    margins, undecided = [], []
    for i in range(0, int(tf.shape(low)[0]), size):
        found, pre_bounds = crown.chain_margin_bounds(steps, flat_low[i:i + size], flat_high[i:i + size],
                                                      labels[i:i + size], iterations=SLOPE_ITERATIONS, **options)
        margins.append(found)
        undecided.append(crown.undecided_units(steps, pre_bounds).numpy())
    return tf.concat(margins, 0), np.concatenate(undecided)


def activation_widths(model: tf.keras.Model) -> list[int] | None:
    """The units of each activation a linear relaxation covers, in order (the columns of `margin_bounds`'s undecided
    counts), or None for a model the relaxations do not cover."""
    steps = _chain_or_none(model, "crown")
    if steps is None:
        return None
    return [int(steps[k - 1][1].shape[-1]) if k else int(steps[1][1].shape[0])  # a first activation sees pixels
            for k, step in enumerate(steps) if step[0] != "affine"]


def _chain_or_none(model, method):
    """The model's `crown.chain` where `method` is a linear relaxation that covers the model, else None."""
    if method == "ibp":
        return None
    try:
        return crown.chain(model)
    except ibp.UnsupportedLayer:
        return None


def _worst_margin_gradients(model, levels, label):
    """Per level image, the gradient of its smallest margin logit[y] − logit[j] (straight through)."""
    x = tf.constant(levels, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model(x, training=False)
        others = tf.concat([logits[:, :label], logits[:, label + 1:]], 1)
        margin = logits[:, label] - tf.reduce_max(others, 1)
    return tape.gradient(margin, x).numpy()


SPLITS = ("pixels", "activations")
MAX_DOMAINS = 20000  # parts of branch and bound per example when no budget is given: bounds its open parts' memory


def branch_and_bound(model: tf.keras.Model, discretization: InputDiscretization, low: np.ndarray,
                     high: np.ndarray, label: int, *, method: str = "crown-refined", split: str = "pixels",
                     time_limit: float = 10.0, batch: int = 64, max_domains: int = MAX_DOMAINS,
                     enumeration_limit: int = 2**12, iterations: int = 20) -> tuple[str, np.ndarray | None]:
    """Split the box into parts until every part is certified or one input is misclassified.

    `split="pixels"` splits the free pixel whose range times the margin's gradient is largest, at its middle level.
    `split="activations"` also gives a part a side for some of the ReLU or sign units the bounds leave undecided
    (ReLU active or inactive, sign +1 or −1): the part holds the inputs of its box where those units take their
    sides, and its bound relaxes the other units only. It splits the unit whose relaxation costs the worst margin
    most (`crown.split_scores`, for the linear relaxations) and, once none is left, a pixel; a part's split units
    weigh their constraints into its bound with multipliers that `iterations` steps of gradient ascent optimize, as
    in β-CROWN, which proves parts whose sides no input takes empty. On MNIST's FCN2 models pixel splitting decides
    more images in the same time (docs/performance.md), hence the default. An open part whose box holds at most
    `enumeration_limit` inputs is decided by evaluating them all, so both are exact given the time.

    Parts are bounded `batch` at a time by `method` (one of `BOUNDS`; the linear relaxations start
    from the pre-activation bounds of the part they split from). At every split, each open part's most dangerous
    inputs (the corner the margin's gradient points to and, for the linear relaxations, the corner that minimizes
    the bound) are evaluated exactly, so counterexamples surface early.

    Returns ("certified", None), ("broken", level image) or ("unknown", None) when `time_limit` seconds or
    `max_domains` parts run out (checked between batches, so the last batch may end past the limit). A budget of
    parts alone (`time_limit=math.inf`) does not depend on the machine's speed or load.
    """
    checks.choice("split", split, SPLITS)
    start, step = time.perf_counter(), ibp.level_step(discretization)
    steps = _chain_or_none(model, method)
    scale = float(np.max(np.abs(model(tf.constant(low[None], tf.float32), training=False))))
    # A part: (priority, tie-break, low, high, {activation step: {unit: side}}, parent's pre-activation bounds).
    queue = [(0.0, 0, np.asarray(low, np.float64), np.asarray(high, np.float64), {}, None)]
    counter, domains = itertools.count(1), 0
    while queue:
        if time.perf_counter() - start > time_limit or domains > max_domains:
            return "unknown", None
        parts = [heapq.heappop(queue) for _ in range(min(batch, len(queue)))]
        lows, highs = np.stack([p[2] for p in parts]), np.stack([p[3] for p in parts])
        bound = _part_bounds(model, steps, method, lows, highs, label, parts, iterations, split == "activations")
        domains += len(parts)
        worst = bound["margins"].min(axis=-1)
        open_parts = np.flatnonzero(worst <= ibp.MARGIN_SLACK * (1.0 + scale))
        if not open_parts.size:
            continue
        lows, highs = lows[open_parts], highs[open_parts]
        centers = ops.discretize(tf.constant((lows + highs) / 2, tf.float32), discretization.bits,
                                 discretization.mode).numpy()
        gradients = _worst_margin_gradients(model, centers, label)
        candidates = [np.where(gradients > 0, lows, highs)]
        if "corners" in bound:
            candidates.append(bound["corners"][open_parts])
        for corners in candidates:
            wrong = np.flatnonzero(_predictions(model, corners) != label)
            if wrong.size:
                return "broken", corners[wrong[0]]
        for position, part in enumerate(open_parts):
            _, _, lo, hi, decided, _ = parts[part]
            if input_count(discretization, lo, hi) <= enumeration_limit:
                robust, counterexample = enumerate_box(model, discretization, lo, hi, label)
                if not robust:
                    return "broken", counterexample
                continue
            inherited = bound["found"][part] if bound["found"] is not None else None
            unit = _unit_to_split(bound, part) if split == "activations" else None
            if unit is not None:
                index, unit = unit
                children = [(lo, hi, {**decided, index: {**decided.get(index, {}), unit: side}})
                            for side in (1.0, -1.0)]
            else:
                width = hi - lo
                if not np.any(width > step / 2):  # a single input, and it is classified correctly
                    continue
                score = np.where(width > step / 2, np.abs(gradients[position]) * width + 1e-12 * width, -1.0)
                pixel = np.unravel_index(np.argmax(score), lo.shape)
                levels = int(round(width[pixel] / step)) + 1
                middle = lo[pixel] + step * (levels // 2 - 1)
                left_high, right_low = hi.copy(), lo.copy()
                left_high[pixel], right_low[pixel] = middle, middle + step
                children = [(lo, left_high, decided), (right_low, hi, decided)]
            for part_low, part_high, part_decided in children:
                heapq.heappush(queue, (float(worst[part]), next(counter), part_low, part_high, part_decided, inherited))
    return "certified", None


def _part_bounds(model, steps, method, lows, highs, label, parts, iterations, scored):
    """The parts' margin lower bounds ("margins") and, for the linear relaxations (`steps` the model's chain), their
    pre-activation bounds ("found", a dict per part; None for interval bounds), the corners that minimize their
    bounds and, if `scored`, split scores ("scores": per part the flat scores over "units", the (step, unit) of each
    position)."""
    labels = tf.fill([len(lows)], label)
    if steps is None:
        return {"margins": ibp.margin_lower_bounds(model, tf.constant(lows), tf.constant(highs), labels).numpy(),
                "found": None}
    flat = tf.constant(lows.reshape(len(lows), -1)), tf.constant(highs.reshape(len(highs), -1))
    fixed, inherited = _split_tensors(steps, parts, int(flat[0].shape[-1]))
    record = {}
    margins, found = crown.chain_margin_bounds(steps, *flat, labels, inherited=inherited, fixed=fixed, record=record,
                                               iterations=iterations, **_relaxation_options(method))
    corners = crown.minimizing_corners(steps, *flat, record, margins).numpy().reshape(lows.shape)
    arrays = {k: (v[0].numpy(), v[1].numpy()) for k, v in found.items()}
    result = {"margins": margins.numpy(), "corners": corners,
              "found": [{k: (v[0][i], v[1][i]) for k, v in arrays.items()} for i in range(len(lows))]}
    if scored:
        scores = crown.split_scores(steps, found, fixed, record, margins)
        indices = sorted(scores)
        result["scores"] = np.concatenate([scores[k].numpy() for k in indices], axis=-1)
        result["units"] = [(k, unit) for k in indices for unit in range(int(scores[k].shape[-1]))]
    return result


def _unit_to_split(bound, part):
    """(activation step, unit) with the highest split score in `part`, or None when every unit is stable or split."""
    if "scores" not in bound:
        return None
    best = int(np.argmax(bound["scores"][part]))
    return bound["units"][best] if bound["scores"][part, best] > 0 else None


def _split_tensors(steps, parts, pixels):
    """The parts' split units as `crown.chain_margin_bounds`'s `fixed` ({step: (parts, units) of −1, 0, +1}) and
    their parents' pre-activation bounds as its `inherited` (None for a root part)."""
    fixed = {}
    for index, step in enumerate(steps):
        if step[0] == "affine" or not any(index in p[4] for p in parts):
            continue
        sides = np.zeros((len(parts), int(steps[index - 1][1].shape[-1]) if index else pixels))
        for row, part in enumerate(parts):
            for unit, side in part[4].get(index, {}).items():
                sides[row, unit] = side
        fixed[index] = tf.constant(sides)
    parents = [p[5] for p in parts]
    inherited = None
    if all(p is not None for p in parents):
        inherited = {k: tuple(tf.constant(np.stack([p[k][j] for p in parents])) for j in (0, 1)) for k in parents[0]}
    return fixed, inherited
