"""Robustness evaluation: FGSM eps sweeps (one input gradient per batch) and the multi-attack robustness report."""

import logging

import numpy as np
import tensorflow as tf

from tfdisc import attacks as attacks_lib
from tfdisc import checks
from tfdisc.datasets import without_autotune
from tfdisc.models import discretization_gradient, sync_quantized_kernels, with_input_gradient, with_quantized_kernels
from tfdisc.progress import Progress

logger = logging.getLogger(__name__)


def check_eps_values(eps_values):
    """eps_values as a list of floats in [0, 1]; ValueError naming the bad ones otherwise."""
    eps = [float(e) for e in eps_values]
    if not eps:
        raise ValueError("eps_values is empty; give at least one eps, e.g. [0, 0.1, 0.2].")
    bad = [e for e in eps if not 0 <= e <= 1]  # NaN fails both comparisons
    if bad:
        raise ValueError(f"eps values must be finite and lie in [0, 1] (pixel units; 8/255 ≈ 0.031); got {bad}.")
    return eps


def parse_eps_list(text):
    """'0,0.1,8/255' -> [0.0, 0.1, 0.0313...]; ValueError naming a bad entry."""
    values = []
    for token in filter(None, (t.strip() for t in text.split(","))):
        numerator, _, denominator = token.partition("/")
        try:
            value = float(numerator) / (float(denominator) if denominator else 1.0)
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"cannot read eps {token!r}; write numbers like 0.1 or 8/255") from None
        if not 0 <= value <= 1:
            raise ValueError(f"eps {token} is outside [0, 1] (pixel units)")
        values.append(value)
    if not values:
        raise ValueError("give at least one eps, e.g. 0,0.1,8/255")
    return values


def as_dataset(data, batch_size=256):
    """`data` as batched (x, y): a `tf.data.Dataset` passes through; (x, y) arrays are checked and batched.

    A dataset's batches are checked as they are used (`tfdisc.checks`).
    """
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        if not (isinstance(spec, tuple) and len(spec) == 2):
            raise ValueError(f"The dataset must yield (images, labels) batches; it yields {spec}.")
        return data
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ValueError("data must be a tf.data.Dataset of (images, labels) batches or a tuple (images, labels).")
    x, y = np.asarray(data[0]), np.asarray(data[1])
    if len(x) != len(y):
        raise ValueError(f"images and labels differ in length: {len(x)} vs {len(y)}.")
    x = checks.pixels(x).numpy().astype(np.float32)
    y = checks.labels(y).numpy().astype(np.int64)
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    return without_autotune(dataset.batch(batch_size))


def batch_size_for(model, memory_bytes=2**30, largest=1000):
    """The largest evaluation batch, up to `largest`, whose activations and their gradients fit in `memory_bytes`.

    Sweeps and reports need no weight gradients, so they can take batches larger than training:
    FCN1-BNN sweeps 1.6× faster at 1000 than at 100 (its kernels are binarized once per batch).
    """
    floats = sum(int(np.prod(shape[1:])) for layer in model.layers
                 for shape in ([layer.output_shape] if isinstance(layer.output_shape, tuple) else layer.output_shape))
    return int(max(1, min(largest, memory_bytes // (2 * 4 * floats))))


def _zero_rows(gradient):
    """Per example: is its input gradient exactly zero everywhere (FGSM cannot move it)?"""
    return tf.reduce_all(tf.equal(tf.reshape(gradient, [tf.shape(gradient)[0], -1]), 0.0), axis=1)


def _direction(gradient):
    """FGSM's direction sign(∇x L), with 0 where the gradient is NaN (diverged weights are reported by the caller)."""
    return tf.sign(tf.where(tf.math.is_nan(gradient), tf.zeros_like(gradient), gradient))


def _checked_batch(x, y, num_classes):
    """A batch's float pixels and int64 labels, checked before any compiled (XLA) code sees them."""
    return tf.cast(checks.pixels(x), tf.float32), tf.cast(checks.labels(y, num_classes), tf.int64)


def _check_finite_logits(nonfinite, examples):
    if nonfinite:
        raise ValueError(f"The model's logits are NaN or infinite for {nonfinite} of {examples} examples: its weights "
                         "have probably diverged during training (lower the learning rate) or hold NaN.")


def _chunk_size(data):
    """Batches per compiled call: about 20 progress lines per pass when the length is known."""
    batches = int(data.cardinality())
    return max(1, batches // 20) if batches > 0 else 50, (batches if batches > 0 else None)


class FgsmSweep:
    """FGSM accuracy for many eps at once; compiled once per model, reusable across calls.

    Per batch it computes the input gradient once (the FGSM direction sign(∇x L) does not depend
    on eps) and then one forward pass per eps. The loop over batches runs inside one
    `tf.function` (a chunk of batches per call, so a progress line with an ETA can be logged
    between chunks), and eps is a tensor argument, so new eps, batch sizes or datasets of the same
    element type never retrace. `gradient` ("identity" or "zero") sets how the model's input
    discretization passes gradients for this sweep only (`tfdisc.models.with_input_gradient`);
    None keeps the model's own. `jit_compile=True` compiles each batch with XLA (the input checks
    stay outside); fused arithmetic may flip BNN signs that sit exactly at 0 (scripts/benchmark.py).
    """

    def __init__(self, model, gradient=None, clip_min=0.0, clip_max=1.0, jit_compile=False):
        self.model = model if gradient is None else with_input_gradient(model, gradient)
        self.num_classes = int(self.model.output_shape[-1])
        self.clip_min = clip_min
        self.clip_max = clip_max
        # Inlined into the loop: a nested tf.function there fails under MultiWorkerMirroredStrategy.
        self._batch_counts = tf.function(self._counts, jit_compile=True) if jit_compile else self._counts
        self._totals = tf.function(self._chunk_totals, reduce_retracing=True)

    def _counts(self, x, y, eps):
        logits, gradient = attacks_lib.logits_and_gradient(self.model, x, y)
        clean = tf.reduce_sum(tf.cast(tf.argmax(logits, axis=-1) == y, tf.int64))
        nonfinite = tf.reduce_sum(tf.cast(tf.logical_not(tf.reduce_all(tf.math.is_finite(logits), axis=-1)), tf.int64))
        direction = _direction(gradient)
        zero_gradient = tf.reduce_sum(tf.cast(_zero_rows(gradient), tf.int64))

        def correct_at(e):
            x_adv = tf.clip_by_value(x + e * direction, self.clip_min, self.clip_max)
            predictions = tf.argmax(attacks_lib.logits_of(self.model, x_adv), axis=-1)
            return tf.reduce_sum(tf.cast(predictions == y, tf.int64))

        correct = tf.map_fn(correct_at, eps, fn_output_signature=tf.int64)
        return clean, correct, zero_gradient, nonfinite, tf.shape(x, out_type=tf.int64)[0]

    def _chunk_totals(self, batches, eps, max_batches):
        """(clean, correct per eps, zero-gradient, non-finite, examples, batches) over up to `max_batches` batches.

        A graph `while` loop over the iterator: `Dataset.reduce` would run the model in tf.data's
        runtime, single-threaded.
        """
        zero = tf.constant(0, tf.int64)
        totals = (zero, tf.zeros_like(eps, tf.int64), zero, zero, zero)
        done = zero
        for x, y in batches:
            counts = self._batch_counts(*_checked_batch(x, y, self.num_classes), eps)
            totals = tuple(total + count for total, count in zip(totals, counts))
            done += 1
            if done >= max_batches:
                break
        return totals + (done,)

    def __call__(self, data, eps_values):
        """Return {"attack", "gradient", "eps", "accuracy", "clean_accuracy", "examples", ...} over `data`."""
        eps = check_eps_values(eps_values)
        data = as_dataset(data)
        chunk, total = _chunk_size(data)
        batches = iter(data)
        progress = Progress(f"FGSM sweep ({len(eps)} eps)", total)
        sums, done = np.zeros(5, object), 0
        with checks.clear_errors():
            while True:
                *counts, n = (t.numpy() for t in self._totals(batches, tf.constant(eps, tf.float32),
                                                               tf.constant(chunk, tf.int64)))
                sums, done = sums + np.array(counts, object), done + int(n)
                progress.update(done)
                if n < chunk:
                    break
        progress.update(done, final=True)
        clean, correct, zero_gradient, nonfinite, examples = sums
        if examples == 0:
            raise ValueError("The data holds no examples.")
        _check_finite_logits(nonfinite, examples)
        if zero_gradient > examples / 2:
            logger.warning(
                "The input gradient is exactly zero for %d of %d examples: FGSM cannot move them, "
                "so its accuracy overstates robustness (possible gradient masking, or a float32 cross-entropy "
                "saturated on very confident examples; tfdisc.evaluation.robustness_report tells the two apart).",
                zero_gradient, examples)
        return {
            "attack": "fgsm",
            "gradient": discretization_gradient(self.model),
            "eps": eps,
            "accuracy": (np.asarray(correct, np.int64) / examples).tolist(),
            "clean_accuracy": float(clean / examples),
            "examples": int(examples),
            "zero_gradient_examples": int(zero_gradient),
        }


def sweep(model, data, eps_values, gradient=None):
    """FGSM accuracy of `model` on `data` for every eps in `eps_values` (see `FgsmSweep`)."""
    return FgsmSweep(model, gradient)(data, eps_values)


def sweep_in(report):
    """The FGSM sweep, as `FgsmSweep` returns it, that a `RobustnessReport` with "fgsm" ran on its data."""
    return {"attack": "fgsm", "gradient": report["gradient"], "eps": report["eps"],
            "accuracy": report["attacks"]["fgsm"]["accuracy"], "clean_accuracy": report["clean_accuracy"],
            "examples": report["examples"]}


ATTACKS = ("fgsm", "pgd", "apgd-ce", "apgd-dlr", "apgd-t", "square", "transfer", "autoattack")
WHITE_BOX = ("fgsm", "pgd", "apgd-ce", "apgd-dlr", "apgd-t")
BLACK_BOX = ("square", "transfer")
DEFAULT_ATTACKS = ("fgsm", "pgd", "autoattack")
# AutoAttack (Croce & Hein 2020) as a cascade: each stage attacks only the examples that survived the ones before.
AUTOATTACK_VERSIONS = {"standard": ("apgd-ce", "apgd-t", "square"), "fast": ("apgd-ce", "apgd-dlr")}
AUTOATTACK_SETTINGS = {"apgd_iterations": 100, "apgd_restarts": 1, "apgd_target_classes": 9, "square_queries": 5000,
                       "square_p_init": 0.8}


def _attack_fn(name, model, surrogate, *, pgd_steps, restarts, square_queries, seed, num_classes, p_init=0.05):
    """fn(x, y, eps, fgsm_direction) -> adversarial batch in [0, 1] for the attack `name`; eps is a tensor."""
    makers = {
        "fgsm": lambda x, y, eps, direction: x + eps * direction,  # the direction is shared across eps
        "pgd": lambda x, y, eps, _: attacks_lib.projected_gradient_descent(
            model, x, eps, 2.5 * eps / pgd_steps, pgd_steps, y=y, seed=seed, n_restarts=restarts),
        "square": lambda x, y, eps, _: attacks_lib.square_attack(model, x, eps, y=y, n_queries=square_queries,
                                                                 p_init=p_init, seed=seed),
        "apgd-ce": lambda x, y, eps, _: attacks_lib.apgd(model, x, eps, y=y, n_restarts=restarts, seed=seed),
        "apgd-dlr": lambda x, y, eps, _: attacks_lib.apgd(model, x, eps, y=y, loss="dlr", n_restarts=restarts,
                                                          seed=seed),
        "apgd-t": lambda x, y, eps, _: attacks_lib.apgd(
            model, x, eps, y=y, loss="dlr", targeted=True, seed=seed,
            n_target_classes=min(AUTOATTACK_SETTINGS["apgd_target_classes"], num_classes - 1)),
        "transfer": lambda x, y, eps, _: attacks_lib.transfer_attack(surrogate, x, eps, y=y),
    }
    make = makers[name]
    return lambda x, y, eps, direction: tf.clip_by_value(make(x, y, eps, direction), 0.0, 1.0)


def _count(mask):
    return tf.reduce_sum(tf.cast(mask, tf.int64))


ITERATIVE = ("pgd", "apgd-ce", "apgd-dlr", "apgd-t", "square")
# Batch sizes XLA compiles for (steps of √2 from 32): survivor counts are padded up to the next one.
XLA_BATCH_SIZES = tuple(int(s) for s in np.unique(np.round(32 * np.sqrt(2) ** np.arange(30))))


def _with_xla(attack):
    """`attack` compiled with XLA on its batch padded (by repeating rows) to the next of `XLA_BATCH_SIZES`.

    Survivor counts are data-dependent, and XLA compiles once per shape: padding bounds the
    compilations to a few per attack. Rows are attacked independently, so padding changes no row's result
    beyond the random draws, which depend on the batch's shape on every path.
    """
    compiled = tf.function(lambda x, y, eps: attack(x, y, eps, None), jit_compile=True)
    sizes = tf.constant(XLA_BATCH_SIZES)

    def padded(x, y, eps, _):
        rows = tf.shape(x)[0]
        size = tf.gather(tf.concat([sizes, [rows]], 0), tf.searchsorted(sizes, [rows])[0])
        repeat = tf.math.floormod(tf.range(size), rows)
        return compiled(tf.gather(x, repeat), tf.gather(y, repeat), eps)[:rows]

    return padded


class RobustnessReport:
    """Accuracy under each attack and ε, the per-example worst case, and gradient-masking checks.

    attacks: any of `ATTACKS`. "fgsm"; "pgd" (L∞, `pgd_steps` steps of 2.5·ε/steps, random start,
    `pgd_restarts` restarts keeping each example's best); "apgd-ce", "apgd-dlr" (Auto-PGD, 100
    iterations, `pgd_restarts` restarts); "apgd-t" (targeted DLR, 9 targets); "square" (gradient-free,
    `square_queries`); "transfer" (FGSM crafted on `surrogate`, evaluated on the model) each run on
    every example. "autoattack" runs AutoAttack's cascade, each stage only on the examples still
    classified correctly: `version="standard"` is APGD-CE, APGD-T (9 targets), Square (5000 queries,
    p_init 0.8 as in the reference), all with one restart; `version="fast"` is APGD-CE then APGD-DLR.
    It leaves out the reference's FAB-T, which Croce & Hein report never lowers the standard version's robust accuracy by more than
    0.1 points. The checks follow Carlini et al. 2019, plus a per-example one: examples that survive
    every gradient attack but fall to a gradient-free or transfer attack. A failed check is
    reported as possible gradient masking.

    `jit_compile=True` computes the iterative attacks' examples (`ITERATIVE`) with XLA: the same
    attacks with other random draws. Which examples survive is still decided in graph mode, as clean
    accuracy is, so XLA's fused arithmetic can change the attack's search but never the scoring. Off
    by default: it was no faster on FCN1-BNN (`scripts/benchmark.py --parts=report_xla`, README).

    Each batch is one compiled call covering every ε and attack (ε is a tensor: new ε never
    retrace); the object is reusable across data and ε, and across training of the model: each call
    attacks the model's current weights, binarized kernels quantized once per call
    (`tfdisc.models.with_quantized_kernels`). `gradient` sets how the model's input discretization
    passes gradients for this report only (see `FgsmSweep`).
    """

    def __init__(self, model, attacks=DEFAULT_ATTACKS, surrogate=None, *, version="standard", pgd_steps=20,
                 pgd_restarts=5, square_queries=1000, seed=0, gradient=None, jit_compile=False):
        attacks = (attacks,) if isinstance(attacks, str) else tuple(attacks)
        unknown = [a for a in attacks if a not in ATTACKS]
        if unknown or not attacks:
            raise ValueError(f"Unknown attack(s) {unknown}; valid values are {', '.join(map(repr, ATTACKS))}.")
        checks.choice("version", version, tuple(AUTOATTACK_VERSIONS))
        checks.positive_int("pgd_steps", pgd_steps)
        checks.positive_int("pgd_restarts", pgd_restarts)
        checks.positive_int("square_queries", square_queries)
        if "transfer" in attacks and surrogate is None:
            raise ValueError("The transfer attack needs a surrogate model (e.g. a full-precision 8-bit model's "
                             "SavedModel).")
        self._latent = model if gradient is None else with_input_gradient(model, gradient)
        self.model = with_quantized_kernels(self._latent)  # refreshed from `_latent` on every call
        self.num_classes = int(self.model.output_shape[-1])
        self.attacks = attacks
        self.settings = {"pgd_steps": pgd_steps, "pgd_restarts": pgd_restarts, "square_queries": square_queries,
                         "transfer": "fgsm on surrogate" if "transfer" in attacks else None, "seed": seed,
                         "jit_compile": bool(jit_compile)}
        if "autoattack" in attacks:
            self.settings["autoattack"] = {"version": version, "stages": list(AUTOATTACK_VERSIONS[version]),
                                           **AUTOATTACK_SETTINGS}
        options = dict(pgd_steps=pgd_steps, seed=seed, num_classes=self.num_classes)
        self._standalone = [(name, _attack_fn(name, self.model, surrogate, restarts=pgd_restarts,
                                              square_queries=square_queries, **options))
                            for name in attacks if name != "autoattack"]
        self._stages = [(name, _attack_fn(name, self.model, None, restarts=AUTOATTACK_SETTINGS["apgd_restarts"],
                                          square_queries=AUTOATTACK_SETTINGS["square_queries"],
                                          p_init=AUTOATTACK_SETTINGS["square_p_init"], **options))
                        for name in (AUTOATTACK_VERSIONS[version] if "autoattack" in attacks else ())]
        if jit_compile:
            self._standalone, self._stages = ([(name, _with_xla(fn) if name in ITERATIVE else fn) for name, fn in fns]
                                              for fns in (self._standalone, self._stages))
        self._batch_counts = tf.function(self._counts, reduce_retracing=True)

    def _correct(self, adversarial):
        return tf.argmax(attacks_lib.logits_of(self.model, adversarial), axis=-1)

    def _on_survivors(self, attack, x, y, eps, alive):
        """`alive` after `attack` ran on the alive examples only (skipped when none is left)."""
        index = tf.where(alive)[:, 0]

        def run():
            xs, ys = tf.gather(x, index), tf.gather(y, index)
            still = self._correct(attack(xs, ys, eps, None)) == ys
            return tf.tensor_scatter_nd_update(tf.zeros_like(alive), index[:, None], still)

        return tf.cond(tf.size(index) > 0, run, lambda: alive)

    def _at_eps(self, x, y, clean, direction, eps):
        """Counts at one ε: correct per standalone attack, alive after each cascade stage, worst case, masking."""
        correct = [self._correct(fn(x, y, eps, direction)) == y for _, fn in self._standalone]
        alive, after = clean, []
        for _, fn in self._stages:
            alive = alive & self._on_survivors(fn, x, y, eps, alive)
            after.append(alive)
        survived = tf.reduce_all(tf.stack([clean] + correct + after[-1:]), axis=0)
        # Possible masking, per example: it survives every gradient attack but a gradient-free/transfer one breaks it.
        white = [ok for (name, _), ok in zip(self._standalone, correct) if name in WHITE_BOX]
        white += [ok for (name, _), ok in zip(self._stages, after) if name in WHITE_BOX][-1:]
        broken = [~ok for (name, _), ok in zip(self._standalone, correct) if name in BLACK_BOX]
        broken += [before & ~ok for (name, _), before, ok in zip(self._stages, [clean] + after, after)
                   if name in BLACK_BOX]
        masked = tf.zeros_like(clean)
        if white and broken:
            masked = tf.reduce_all(tf.stack([clean] + white), axis=0) & tf.reduce_any(tf.stack(broken), axis=0)
        return tf.stack([_count(ok) for ok in correct + after] + [_count(survived), _count(masked)])

    def _saturated(self, x, y, zero):
        """Of the `zero`-gradient examples, those whose logit margin still has a gradient: the float32
        cross-entropy saturated (softmax exactly one-hot), the model's gradient did not vanish."""
        return tf.cond(tf.reduce_any(zero), lambda: zero & tf.logical_not(_zero_rows(attacks_lib.loss_gradient(
            self.model, x, y, attacks_lib.margin_loss))), lambda: tf.zeros_like(zero))

    def _counts(self, x, y, eps):
        """One batch: clean, non-finite, zero-gradient, saturated-loss and example counts, and `_at_eps` counts
        for every ε."""
        x, y = _checked_batch(x, y, self.num_classes)
        logits, gradient = attacks_lib.logits_and_gradient(self.model, x, y)
        clean = tf.argmax(logits, axis=-1) == y
        nonfinite = tf.logical_not(tf.reduce_all(tf.math.is_finite(logits), axis=-1))
        zero = _zero_rows(gradient)
        direction = _direction(gradient)
        per_eps = tf.map_fn(lambda e: self._at_eps(x, y, clean, direction, e), eps, fn_output_signature=tf.int64,
                            parallel_iterations=1)
        return (tf.stack([_count(clean), _count(nonfinite), _count(zero), _count(self._saturated(x, y, zero)),
                          tf.size(y, tf.int64)]), per_eps)

    def __call__(self, data, eps_values, *, large_eps=None, tolerance=0.01):
        """The report over `data` at every ε of `eps_values` (see `robustness_report`)."""
        eps = check_eps_values(eps_values)
        data = as_dataset(data)
        if self.model is not self._latent:
            sync_quantized_kernels(self._latent, self.model)
        totals, per_eps, batches = np.zeros(5, np.int64), 0, 0
        names = [name for name, _ in self._standalone] + [f"autoattack/{name}" for name, _ in self._stages]
        progress = Progress(f"Robustness report ({', '.join(self.attacks)} × {len(eps)} eps)", _chunk_size(data)[1])
        # One trace for any batch size and number of ε: calls below match this relaxed signature.
        self._batch_counts.get_concrete_function(*data.element_spec, tf.TensorSpec([None], tf.float32))
        eps_tensor = tf.constant(eps, tf.float32)
        with checks.clear_errors():
            for x, y in data:
                batch_totals, batch_per_eps = self._batch_counts(x, y, eps_tensor)
                totals, per_eps = totals + batch_totals.numpy(), per_eps + batch_per_eps.numpy()
                _check_finite_logits(int(totals[1]), int(totals[4]))
                batches += 1
                progress.update(batches)
        progress.update(batches, final=True)
        clean, _, zero_gradient, saturated, examples = (int(t) for t in totals)
        if examples == 0:
            raise ValueError("The data holds no examples.")
        accuracy = {name: (per_eps[:, i] / examples).tolist() for i, name in enumerate(names)}
        curves = {name: {"eps": eps, "accuracy": accuracy[name]} for name, _ in self._standalone}
        if self._stages:
            curves["autoattack"] = {"eps": eps, "accuracy": accuracy[names[-1]],
                                    "after": {name: accuracy[f"autoattack/{name}"] for name, _ in self._stages}}
        result = {
            "eps": eps,
            "clean_accuracy": clean / examples,
            "examples": examples,
            "gradient": discretization_gradient(self.model),
            "attacks": curves,
            "worst_case": {"eps": eps, "accuracy": (per_eps[:, -2] / examples).tolist()},
            "masking_examples": {"eps": eps, "count": per_eps[:, -1].tolist()},
            "zero_gradient_examples": zero_gradient,
            "saturated_loss_examples": saturated,
            "settings": self.settings,
        }
        result["checks"] = _checks(result, large_eps, 1 / self.num_classes, tolerance)
        result["masking_suspected"] = not all(c["passed"] for c in result["checks"])
        result["seconds"] = progress.elapsed
        return result


def _checks(result, large_eps, chance, tolerance):
    """Carlini et al. 2019 sanity checks and a per-example one; each failure hints at gradient masking."""
    eps, curves, worst = result["eps"], result["attacks"], result["worst_case"]["accuracy"]
    checks = []

    def check(name, passed, detail):
        checks.append({"check": name, "passed": bool(passed),
                       "detail": detail + ("" if passed else " — possible gradient masking.")})

    if 0.0 in eps:
        i = eps.index(0.0)
        off = {n: c["accuracy"][i] for n, c in curves.items() if abs(c["accuracy"][i] - result["clean_accuracy"]) > 1e-9}
        check("eps0_equals_clean", not off, "At ε=0 every attack leaves clean accuracy unchanged." if not off else
              f"At ε=0 accuracy differs from clean {result['clean_accuracy']:.4f}: {off}.")
    rising = {n: [e for e, a, b in zip(eps[1:], c["accuracy"], c["accuracy"][1:]) if b > a + tolerance]
              for n, c in curves.items()}
    rising = {n: r for n, r in rising.items() if r}
    check("monotone_in_eps", not rising, "Accuracy never rises with ε." if not rising else
          f"Accuracy rises with ε for {rising}: a stronger attack should never do worse.")
    iterative = [n for n in ("pgd", "apgd-ce", "apgd-dlr", "apgd-t", "autoattack") if n in curves]
    if iterative and "fgsm" in curves:
        bad = {n: [e for e, a, f in zip(eps, curves[n]["accuracy"], curves["fgsm"]["accuracy"]) if a > f + tolerance]
               for n in iterative}
        bad = {n: v for n, v in bad.items() if v}
        check("iterative_le_single_step", not bad, f"{', '.join(iterative)} at least as strong as FGSM at every ε."
              if not bad else f"Iterative attacks weaker than single-step FGSM at {bad}.")
    white = [name for name in WHITE_BOX if name in curves]
    black = [name for name in BLACK_BOX if name in curves]
    if white and black:
        best_white = [min(curves[n]["accuracy"][i] for n in white) for i in range(len(eps))]
        bad = {n: [e for e, w, b in zip(eps, best_white, curves[n]["accuracy"]) if w > b + tolerance] for n in black}
        bad = {n: v for n, v in bad.items() if v}
        check("whitebox_le_blackbox", not bad, "White-box attacks are at least as strong as black-box and "
              "gradient-free ones." if not bad else f"Black-box or gradient-free attacks beat white-box ones at {bad}.")
    stages = curves.get("autoattack", {}).get("after", {})
    if (white or any(s in WHITE_BOX for s in stages)) and (black or any(s in BLACK_BOX for s in stages)):
        counts = result["masking_examples"]["count"]
        found = {e: c for e, c in zip(eps, counts) if c}
        check("gradient_survivors_unbroken", not found,
              "No example that survives every gradient attack falls to a gradient-free or transfer attack."
              if not found else "Examples surviving every gradient attack but broken by a gradient-free or transfer "
              "attack, per ε: " + ", ".join(f"ε={e:g}: {c} ({100 * c / result['examples']:.1f}%)"
                                            for e, c in found.items()) + ".")
    if large_eps is not None and max(eps) >= large_eps:
        top = worst[eps.index(max(eps))]
        check("near_chance_at_large_eps", top <= chance + 0.1,
              f"At ε={max(eps):g} the worst-case accuracy is {top:.4f} (chance {chance:.2f})"
              + ("." if top <= chance + 0.1 else "; an unbounded-looking robustness is implausible."))
    zero, saturated = result["zero_gradient_examples"], result["saturated_loss_examples"]
    check("nonzero_gradients", zero <= 0.01 * result["examples"],
          f"{100 * zero / result['examples']:.1f}% of examples have an exactly zero input gradient"
          + (f"; for {saturated} of these {zero} the logit margin's gradient is not zero: the float32 cross-entropy "
             "saturates on very confident examples, which blinds FGSM, PGD and APGD-CE but not margin losses "
             "(APGD-T, APGD-DLR)." if saturated else "."))
    return checks


def robustness_report(model, data, eps_values, attacks=DEFAULT_ATTACKS, surrogate=None, *, version="standard",
                      pgd_steps=20, pgd_restarts=5, square_queries=1000, large_eps=None, tolerance=0.01, seed=0,
                      gradient=None, jit_compile=False):
    """`RobustnessReport(model, attacks, surrogate, ...)(data, eps_values)`: every attack, worst case, checks.

    `large_eps` is an ε at which accuracy should be near chance (MNIST 0.5, CIFAR 32/255); `tolerance`
    is how far (accuracy share) an aggregate check may be off before it fails.
    """
    report = RobustnessReport(model, attacks, surrogate, version=version, pgd_steps=pgd_steps,
                              pgd_restarts=pgd_restarts, square_queries=square_queries, seed=seed, gradient=gradient,
                              jit_compile=jit_compile)
    return report(data, eps_values, large_eps=large_eps, tolerance=tolerance)


def report_lines(report):
    """A robustness report as text lines: accuracy per attack and ε with the worst case, then the checks."""
    names = list(report["attacks"])
    lines = [f"{'eps':>8}" + "".join(f"  {n:>9}" for n in names) + "  worst case"
             + f"   ({report['examples']} examples, {report['gradient']} gradient)"]
    for i, eps in enumerate(report["worst_case"]["eps"]):
        lines.append(f"{eps:8.4f}" + "".join(f"  {report['attacks'][n]['accuracy'][i]:9.4f}" for n in names)
                     + f"  {report['worst_case']['accuracy'][i]:10.4f}")
    cascade = report["attacks"].get("autoattack")
    if cascade:
        lines.append(f"  AutoAttack ({report['settings']['autoattack']['version']}), accuracy after each stage, each "
                     "on the previous one's survivors:")
        lines += [f"{eps:8.4f}  " + " → ".join(f"{name} {after[i]:.4f}" for name, after in cascade["after"].items())
                  for i, eps in enumerate(report["eps"])]
    lines += [f"  [{'pass' if c['passed'] else 'FAIL'}] {c['check']}: {c['detail']}" for c in report["checks"]]
    return lines
