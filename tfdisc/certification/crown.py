"""Linear relaxation bounds (CROWN, Zhang et al. 2018) on the logit margins of dense chains: each ReLU or sign between
two affine maps is bounded by two lines over its pre-activation interval, and the margin's linear bound is carried
back to the discretized input box, where it is minimized exactly.

Intermediate pre-activation bounds come from interval propagation (as CROWN-IBP does) or, with `refine=True`, from
backward passes of their own (full CROWN: tighter and slower), and can start from bounds known to hold already
(`inherited`: a branch-and-bound part inherits its parent's). Pixels whose level the box fixes are folded into the
first affine map's offset, so every pass works on the free pixels only. Only dense chains are covered (Flatten,
Dense, BatchNormalization, ReLU, linear activations, sign input quantizers); convolutional models use interval bounds.
"""

import tensorflow as tf

from tfdisc.certification import bounds as ibp


def chain(model: tf.keras.Model) -> list[tuple]:
    """The model after its discretization as a list of ("affine", W, b), ("relu",) and ("sign", quantizer) steps,
    consecutive affine maps merged; UnsupportedLayer for anything else."""
    steps = []

    def affine(w, b):
        if steps and steps[-1][0] == "affine":
            _, w0, b0 = steps.pop()
            w, b = w0 @ w, tf.linalg.matvec(w, b0, transpose_a=True) + b
        steps.append(("affine", w, b))

    started = False
    for node in ibp._nodes(model):
        layer = node.layer
        if isinstance(layer, ibp.InputDiscretization):
            started = True
            continue
        if not started or isinstance(layer, (tf.keras.layers.Flatten, tf.keras.layers.Identity)):
            continue
        if len(node.keras_inputs) != 1:
            raise ibp.UnsupportedLayer(f"{layer.name}: linear relaxation covers chains only.")
        if isinstance(layer, tf.keras.layers.Dense):
            quantizer = getattr(layer, "input_quantizer", None)
            if quantizer is not None:
                steps.append(("sign", quantizer))
            k = ibp.kernel(layer)
            bias = ibp._bias(layer)
            affine(k, bias if not isinstance(bias, float) else tf.zeros(k.shape[-1], ibp.DTYPE))
            name = getattr(layer.activation, "__name__", "linear")
            if name == "relu":
                steps.append(("relu",))
            elif name != "linear":
                raise ibp.UnsupportedLayer(f"{layer.name}: no linear relaxation of {name}.")
        elif isinstance(layer, tf.keras.layers.BatchNormalization):
            scale, shift = ibp.batch_norm_affine(layer)
            affine(tf.linalg.diag(scale), shift)
        elif isinstance(layer, tf.keras.layers.ReLU):
            steps.append(("relu",))
        elif isinstance(layer, tf.keras.layers.Activation) and ibp._linear(layer):
            continue
        else:
            raise ibp.UnsupportedLayer(f"{layer.name}: no linear relaxation for layers of type {type(layer).__name__}.")
    if not steps or steps[-1][0] != "affine":
        raise ibp.UnsupportedLayer(f"{model.name} does not end in an affine layer.")
    return steps


def _relaxation(step, low, high, fixed=None):
    """(lower slope, lower offset, upper slope, upper offset) of the activation over [low, high], elementwise; where
    `fixed` is nonzero a split has decided the unit (ReLU: +1 active, −1 inactive; sign: its output) and the
    relaxation is exact."""
    lines = _unsplit_relaxation(step, low, high)
    if fixed is None:
        return lines
    decided = fixed != 0
    if step[0] == "relu":
        slope = tf.cast(fixed > 0, ibp.DTYPE)
        exact = (slope, tf.zeros_like(low), slope, tf.zeros_like(low))
    else:
        exact = (tf.zeros_like(low), fixed, tf.zeros_like(low), fixed)
    return tuple(tf.where(decided, e, line) for e, line in zip(exact, lines))


def _unsplit_relaxation(step, low, high):
    if step[0] == "relu":
        active, inactive = low >= 0, high <= 0
        width = tf.where(active | inactive, tf.ones_like(low), high - low)
        upper_slope = tf.where(active, 1.0, tf.where(inactive, 0.0, high / width))
        upper_offset = tf.where(active | inactive, 0.0, -low * high / width)
        lower_slope = tf.where(active, 1.0, tf.where(inactive, 0.0, tf.cast(high > -low, ibp.DTYPE)))  # CROWN-Ada
        return lower_slope, tf.zeros_like(low), upper_slope, upper_offset
    # sign(v), with values within δ of 0 undecided (float32 may round them either way): constants where the sign is
    # fixed, else the line through (low, −1) and (−δ, +1) above it, or through (δ, −1) and (high, +1) below it,
    # when the interval leans to that side (the constants ±1 otherwise).
    fixed_low, fixed_high = ibp._sign_bounds(step[1], low, high)
    delta = ibp.SIGN_SLACK * (1.0 + tf.maximum(tf.abs(low), tf.abs(high)))
    undecided = fixed_low < fixed_high
    use_upper_line = undecided & (low < -delta) & (high < -low)
    use_lower_line = undecided & (high > delta) & (-low < high)
    upper_slope = tf.where(use_upper_line, 2.0 / tf.maximum(-delta - low, 1e-300), 0.0)
    lower_slope = tf.where(use_lower_line, 2.0 / tf.maximum(high - delta, 1e-300), 0.0)
    upper_offset = tf.where(use_upper_line, -1.0 - upper_slope * low, fixed_high)
    lower_offset = tf.where(use_lower_line, -1.0 - lower_slope * delta, fixed_low)
    return lower_slope, lower_offset, upper_slope, upper_offset


def _sloped_relaxation(step, low, high, fixed, alpha):
    """`_relaxation` with the slopes left free by soundness set by `alpha` (batch, rows, units) in [0, 1], one per
    margin row (α-CROWN, Xu et al. 2021): an unstable ReLU's lower line is α·v; an undecided sign's lines are those
    of `_unsplit_relaxation` with α times their steepest slope, still through (δ, −1) below and (−δ, +1) above.
    Returns the four lines as (batch, rows, units)."""
    lines = [v[:, None, :] for v in _relaxation(step, low, high, fixed)]
    free = _unstable(step, low, high, fixed)[:, None, :]
    if step[0] == "relu":
        lines[0] = tf.where(free, alpha, lines[0])
        return tuple(lines)
    delta = (ibp.SIGN_SLACK * (1.0 + tf.maximum(tf.abs(low), tf.abs(high))))[:, None, :]
    low, high = low[:, None, :], high[:, None, :]
    below, above = free & (high > delta), free & (low < -delta)
    lower_slope = alpha * 2.0 / tf.maximum(high - delta, 1e-300)
    upper_slope = alpha * 2.0 / tf.maximum(-delta - low, 1e-300)
    return (tf.where(below, lower_slope, lines[0]), tf.where(below, -1.0 - lower_slope * delta, lines[1]),
            tf.where(above, upper_slope, lines[2]), tf.where(above, 1.0 + upper_slope * delta, lines[3]))


def _initial_slopes(step, low, high, fixed):
    """The starting α per unit: a ReLU's CROWN lower slope; for a sign, 1 where CROWN uses a line (both of its
    lines then start steepest) and 0 elsewhere (its constants). The optimization keeps CROWN's bound if better."""
    lower_slope, _, upper_slope, _ = _relaxation(step, low, high, fixed)
    if step[0] == "relu":
        return lower_slope
    return tf.cast((lower_slope > 0) | (upper_slope > 0), ibp.DTYPE)


def _split_slack(step, low, high):
    """How far below 0 side·v may be where a split unit takes its side: 0 for ReLU; for sign, the values float32 may
    round either way (within `SIGN_SLACK` of 0)."""
    if step[0] == "relu":
        return tf.zeros_like(low)
    return ibp.SIGN_SLACK * (1.0 + tf.maximum(tf.abs(low), tf.abs(high)))


def _forward(w, v):
    """v·w for a shared kernel (in, out) or one kernel per example (batch, in, out)."""
    return v @ w if w.shape.rank == 2 else tf.einsum("bi,bio->bo", v, w)


def _pull_back(coefficient, w):
    """The coefficients of an affine map's input, given those of its output: coefficient·wᵀ."""
    equation = "bmn,kn->bmk" if w.shape.rank == 2 else "bmn,bkn->bmk"
    return tf.einsum(equation, coefficient, w)


def _backward(objective, constant, steps, pre_bounds, box, fixed=None, record=None, multipliers=None, slopes=None):
    """Lower bound of objective·z + constant where z is the output of `steps` (ending in an affine step), over the
    input box; `pre_bounds[i]` are the bounds of the input of activation step i, `fixed[i]` its split units. With a
    `record` dict, the coefficients of every step's output are stored in it by step index. `multipliers[i]`
    (batch, rows, units), ≥ 0, weighs the split constraints side·v + slack ≥ 0 on activation i's input v into the
    bound (β-CROWN, Wang et al. 2021): any such weights give a bound that holds where the split units take their
    sides, and the best weights tighten it, down to proving a part empty. `slopes[i]` (batch, rows, units) sets
    activation i's free slopes (`_sloped_relaxation`)."""
    coefficient = objective  # (batch, m, n)
    fixed = fixed or {}
    for index in range(len(steps) - 1, -1, -1):
        step = steps[index]
        if record is not None:
            record[index] = coefficient
        if step[0] == "affine":
            _, w, b = step
            constant = constant + tf.einsum("bmn,bn->bm" if b.shape.rank == 2 else "bmn,n->bm", coefficient, b)
            coefficient = _pull_back(coefficient, w)
        else:
            low, high = pre_bounds[index]
            positive, negative = tf.nn.relu(coefficient), -tf.nn.relu(-coefficient)
            if slopes and index in slopes:
                lower_slope, lower_offset, upper_slope, upper_offset = _sloped_relaxation(
                    step, low, high, fixed.get(index), slopes[index])
                constant = constant + tf.reduce_sum(positive * lower_offset + negative * upper_offset, -1)
            else:
                lower_slope, lower_offset, upper_slope, upper_offset = (
                    v[:, None, :] for v in _relaxation(step, low, high, fixed.get(index)))
                constant = constant + tf.einsum("bmn,bn->bm", positive, lower_offset[:, 0]) + \
                    tf.einsum("bmn,bn->bm", negative, upper_offset[:, 0])
            coefficient = positive * lower_slope + negative * upper_slope
            if multipliers and index in multipliers:
                sides, slack = fixed[index], _split_slack(step, low, high)
                coefficient = coefficient - multipliers[index] * sides[:, None, :]
                constant = constant - tf.einsum("bmn,bn->bm", multipliers[index], tf.abs(sides) * slack)
    if record is not None:
        record[-1] = coefficient  # of the input
    box_low, box_high = box
    return constant + tf.einsum("bmn,bn->bm", tf.nn.relu(coefficient), box_low) - \
        tf.einsum("bmn,bn->bm", tf.nn.relu(-coefficient), box_high)


def free_pixel_chain(steps: list[tuple], low: tf.Tensor, high: tf.Tensor) -> tuple[list[tuple], tuple]:
    """The chain and box over the free pixels only: per example, the first affine map keeps the rows of the pixels
    the box leaves free (padded with zero rows to the most any example has) and takes the fixed pixels into its
    offset; the box becomes [0, high − low] on those pixels. Bounds over it equal those over (low, high)."""
    if steps[0][0] != "affine":
        return steps, (low, high)
    _, w, b = steps[0]
    width = high - low
    free = width > 0
    most = max(1, int(tf.reduce_max(tf.reduce_sum(tf.cast(free, tf.int32), -1))))
    pixels = tf.argsort(tf.cast(free, tf.int32), axis=-1, direction="DESCENDING", stable=True)[:, :most]
    kept = tf.cast(tf.gather(free, pixels, batch_dims=1), ibp.DTYPE)
    rows = tf.gather(w, pixels) * kept[..., None]  # (batch, most, units)
    return ([("affine", rows, low @ w + b)] + steps[1:],
            (tf.zeros_like(kept), tf.gather(width, pixels, batch_dims=1) * kept))


def _unstable(activation, low, high, fixed=None):
    """Where the activation's relaxation depends on the bounds: a ReLU across 0, a sign not fixed by them, and no
    split has decided the unit."""
    if activation[0] == "relu":
        unstable = (low < 0) & (high > 0)
    else:
        fixed_low, fixed_high = ibp._sign_bounds(activation[1], low, high)
        unstable = fixed_low < fixed_high
    return unstable if fixed is None else unstable & (fixed == 0)


def undecided_units(steps: list[tuple], pre_bounds: dict, fixed: dict | None = None) -> tf.Tensor:
    """(batch, activations): per activation step of `pre_bounds`, in order, how many of its units the bounds leave
    undecided (a ReLU across 0, a sign not fixed), the units whose relaxation loosens the bound."""
    fixed = fixed or {}
    return tf.stack([tf.reduce_sum(tf.cast(_unstable(steps[k], *pre_bounds[k], fixed.get(k)), tf.int32), -1)
                     for k in sorted(pre_bounds)], -1)


def _refined(steps, index, found, box, low, high, fixed):
    """[low, high] of affine step `index`'s outputs, each unstable one (for the activation after it) tightened by a
    backward pass of its own. A stable unit's relaxation is exact whatever its bounds, so only the unstable units
    pay: per example, the rows of its unstable units (padded to the most any example has), lower and upper bounds
    in one pass."""
    unstable = _unstable(steps[index + 1], low, high, fixed.get(index + 1))
    most = int(tf.reduce_max(tf.reduce_sum(tf.cast(unstable, tf.int32), -1)))
    if most == 0:
        return low, high
    units = tf.argsort(tf.cast(unstable, tf.int32), axis=-1, direction="DESCENDING", stable=True)[:, :most]
    valid = tf.gather(unstable, units, batch_dims=1)
    # A unit's row of the affine step, pulled back through it, is the unit's column of its kernel: a gather.
    _, w, b = steps[index]
    rows, offsets = tf.gather(tf.transpose(w), units), tf.gather(b, units)  # (batch, most, inputs), (batch, most)
    both = _backward(tf.concat([rows, -rows], 1), tf.concat([offsets, -offsets], 1), steps[:index], found, box,
                     fixed)
    where = tf.stack([tf.broadcast_to(tf.range(tf.shape(units)[0])[:, None], tf.shape(units)), units], -1)
    old_low, old_high = tf.gather(low, units, batch_dims=1), tf.gather(high, units, batch_dims=1)
    new_low = tf.where(valid, tf.maximum(old_low, both[:, :most]), old_low)
    new_high = tf.where(valid, tf.minimum(old_high, -both[:, most:]), old_high)
    return tf.tensor_scatter_nd_update(low, where, new_low), tf.tensor_scatter_nd_update(high, where, new_high)


def _activated(step, low, high, fixed):
    """Interval bounds of an activation's output, split units decided by `fixed`."""
    if step[0] == "relu":
        low, high = tf.nn.relu(low), tf.nn.relu(high)
        if fixed is not None:
            low, high = tf.where(fixed < 0, 0.0, low), tf.where(fixed < 0, 0.0, high)
        return low, high
    low, high = ibp._sign_bounds(step[1], low, high)
    if fixed is not None:
        low, high = tf.where(fixed != 0, fixed, low), tf.where(fixed != 0, fixed, high)
    return low, high


def _pre_activation_bounds(steps, box, refine, inherited, fixed):
    """The bounds of every activation's input: interval propagation, or backward passes with `refine`; each
    intersected with the `inherited` bounds of that activation first, where given."""
    found = {}
    low, high = box
    for index, step in enumerate(steps):
        if step[0] == "affine":
            _, w, b = step
            center, radius = (low + high) / 2, (high - low) / 2
            center, radius = _forward(w, center) + b, _forward(tf.abs(w), radius)
            low, high = center - radius, center + radius
            if inherited and index + 1 in inherited:
                low, high = tf.maximum(low, inherited[index + 1][0]), tf.minimum(high, inherited[index + 1][1])
            if refine and 0 < index < len(steps) - 1:  # the last affine step's output feeds no activation
                low, high = _refined(steps, index, found, box, low, high, fixed)
        else:
            found[index] = (low, high)
            low, high = _activated(step, low, high, fixed.get(index))
    return found


def chain_margin_bounds(steps: list[tuple], low: tf.Tensor, high: tf.Tensor, labels: tf.Tensor, *,
                        refine: bool = False, inherited: dict | None = None, fixed: dict | None = None,
                        record: dict | None = None, iterations: int = 0,
                        optimize_slopes: bool = False) -> tuple[tf.Tensor, dict]:
    """Lower bounds of logit[y] − logit[j] (every other class j) over the flat level box of a `chain`:
    (batch, classes − 1), and the pre-activation bounds found on the way ({activation step: (low, high)}), which
    hold on every box inside this one (pass them as `inherited` when bounding its parts).

    `fixed` ({activation step: (batch, units) of −1, 0, +1}) decides split units: the bounds then hold on the
    inputs where those units take the given side, and `iterations` steps of gradient ascent on the split
    constraints' multipliers tighten them (β-CROWN), and with `optimize_slopes` the final pass's relaxation
    slopes too (α-CROWN; the intermediate bounds keep CROWN's slopes). With a `record` dict, the margins' last
    backward pass stores the coefficients of every step's output in it (`split_scores` and `minimizing_corners` read
    them; -1 is the input)."""
    if len(steps) > 1:
        steps, (low, high) = free_pixel_chain(steps, low, high)
    fixed = fixed or {}
    pre_bounds = _pre_activation_bounds(steps, (low, high), refine, inherited, fixed)
    _, w, b = steps[-1]
    rows, other = ibp.margin_matrix(w, labels, int(w.shape[-1]))
    offsets = tf.gather(b, labels)[:, None] - tf.gather(b, other)
    # The last affine step is folded into the objective.
    margins = _backward(rows, offsets, steps[:-1], pre_bounds, (low, high), fixed, record)
    if iterations and (fixed or optimize_slopes):
        margins = _optimized(rows, offsets, steps[:-1], pre_bounds, (low, high), fixed, record, margins, iterations,
                             optimize_slopes)
    return margins, pre_bounds


def _optimized(rows, offsets, steps, pre_bounds, box, fixed, record, margins, iterations, slopes):
    """The margins' bounds with the split constraints' multipliers and, with `slopes`, the relaxations' free slopes
    optimized by projected gradient ascent (Adam); every iterate's bound holds, so each margin keeps its best."""
    shape = tf.shape(rows)[:2]
    multipliers = {k: tf.Variable(tf.zeros(tf.concat([shape, tf.shape(v)[1:]], 0), ibp.DTYPE))
                   for k, v in fixed.items()}
    alphas = {}
    if slopes:
        for k, (low, high) in pre_bounds.items():
            start = _initial_slopes(steps[k], low, high, fixed.get(k))[:, None, :]
            alphas[k] = tf.Variable(tf.broadcast_to(start, tf.concat([shape, tf.shape(low)[1:]], 0)))
    variables = [(multipliers, tf.keras.optimizers.Adam(0.5), (0.0, None)),
                 (alphas, tf.keras.optimizers.Adam(0.1), (0.0, 1.0))]
    best = margins
    for iteration in range(iterations + 1):
        with tf.GradientTape() as tape:
            found = _backward(rows, offsets, steps, pre_bounds, box, fixed, record, multipliers, alphas)
            loss = -tf.reduce_sum(found)
        best = tf.maximum(best, found)
        if iteration == iterations:  # the last iterate is bounded, not stepped from
            break
        gradients = tape.gradient(loss, [list(group.values()) for group, _, _ in variables])
        for (group, optimizer, (lowest, highest)), grads in zip(variables, gradients):
            if group:
                optimizer.apply_gradients(zip(grads, group.values()))
                for value in group.values():
                    value.assign(tf.clip_by_value(value, lowest, highest) if highest is not None
                                 else tf.maximum(value, lowest))
    return best


def split_scores(steps: list[tuple], pre_bounds: dict, fixed: dict | None, record: dict,
                 margins: tf.Tensor) -> dict:
    """Per activation step, (batch, units): how much the worst margin's bound loses to each unit's relaxation (its
    coefficient times the relaxation's widest gap), 0 where the unit is stable or split; the unit with the highest
    score is the one to split (the BaBSR heuristic of Bunel et al. 2020)."""
    fixed = fixed or {}
    worst = tf.argmin(margins, axis=-1)
    scores = {}
    for index, (low, high) in pre_bounds.items():
        lower_slope, lower_offset, upper_slope, upper_offset = _relaxation(steps[index], low, high, fixed.get(index))
        gap = tf.maximum((upper_slope - lower_slope) * low + upper_offset - lower_offset,
                         (upper_slope - lower_slope) * high + upper_offset - lower_offset)
        coefficient = tf.gather(record[index], worst, batch_dims=1)
        open_units = _unstable(steps[index], low, high, fixed.get(index))
        scores[index] = tf.where(open_units, tf.abs(coefficient) * gap, 0.0)
    return scores


def minimizing_corners(steps: list[tuple], low: tf.Tensor, high: tf.Tensor, record: dict,
                       margins: tf.Tensor) -> tf.Tensor:
    """Per example, the corner of its flat box where the worst margin's linear lower bound is lowest: the input the
    relaxation deems most dangerous, worth evaluating exactly."""
    worst = tf.argmin(margins, axis=-1)
    if steps[0][0] == "affine":  # the record's input is the free-pixel box: pull back through the original kernel
        on_pixels = tf.gather(record[0], worst, batch_dims=1) @ tf.transpose(steps[0][1])
    else:
        on_pixels = tf.gather(record[-1], worst, batch_dims=1)
    return tf.where(on_pixels > 0, low, high)


def margin_lower_bounds(model: tf.keras.Model, low: tf.Tensor, high: tf.Tensor, labels: tf.Tensor,
                        refine: bool = False) -> tf.Tensor:
    """Lower bounds of logit[y] − logit[j] (every other class j) over the level box: (batch, classes − 1)."""
    flat = [tf.reshape(v, [tf.shape(v)[0], -1]) for v in (low, high)]
    return chain_margin_bounds(chain(model), *flat, labels, refine=refine)[0]
