"""Robustness evaluation: FGSM eps sweeps (one input gradient per batch) and the multi-attack robustness report."""

import logging
import math

import numpy as np
import tensorflow as tf

from tfdisc import attacks as attacks_lib
from tfdisc import checks
from tfdisc.datasets import without_autotune
from tfdisc.models import discretization_gradient, with_input_gradient
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
                "so its accuracy overstates robustness (possible gradient masking).", zero_gradient, examples)
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


ATTACKS = ("fgsm", "pgd", "apgd-ce", "apgd-dlr", "apgd-t", "square", "transfer")
WHITE_BOX = ("fgsm", "pgd", "apgd-ce", "apgd-dlr", "apgd-t")


def _attack_fns(model, attacks, surrogate, pgd_steps, pgd_restarts, square_queries, seed, num_classes):
    """name -> compiled fn(x, y, eps, fgsm_direction) giving the adversarial batch; eps is a tensor (no retrace)."""
    makers = {
        "fgsm": lambda x, y, eps, direction: x + eps * direction,  # clipped below; direction shared across eps
        "pgd": lambda x, y, eps, _: attacks_lib.projected_gradient_descent(
            model, x, eps, 2.5 * eps / pgd_steps, pgd_steps, y=y, seed=seed, n_restarts=pgd_restarts),
        "square": lambda x, y, eps, _: attacks_lib.square_attack(model, x, eps, y=y, n_queries=square_queries, seed=seed),
        "apgd-ce": lambda x, y, eps, _: attacks_lib.apgd(model, x, eps, y=y, n_restarts=pgd_restarts, seed=seed),
        "apgd-dlr": lambda x, y, eps, _: attacks_lib.apgd(model, x, eps, y=y, loss="dlr", n_restarts=pgd_restarts,
                                                          seed=seed),
        "apgd-t": lambda x, y, eps, _: attacks_lib.apgd(model, x, eps, y=y, loss="dlr", targeted=True,
                                                        n_target_classes=min(9, num_classes - 1), seed=seed),
        "transfer": lambda x, y, eps, _: attacks_lib.transfer_attack(surrogate, x, eps, y=y),
    }

    def compiled(make):
        return tf.function(lambda x, y, eps, direction: tf.clip_by_value(make(x, y, eps, direction), 0.0, 1.0),
                           reduce_retracing=True)

    return {name: compiled(makers[name]) for name in attacks}


def _checks(result, zero_gradient_share, large_eps, chance, tolerance):
    """Carlini et al. 2019 sanity checks; each failure hints at gradient masking."""
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
    if "pgd" in curves and "fgsm" in curves:
        bad = [e for e, p, f in zip(eps, curves["pgd"]["accuracy"], curves["fgsm"]["accuracy"]) if p > f + tolerance]
        check("iterative_le_single_step", not bad, "PGD is at least as strong as FGSM at every ε." if not bad else
              f"PGD is weaker than single-step FGSM at ε={bad}.")
    white = [name for name in WHITE_BOX if name in curves]
    black = [name for name in ("square", "transfer") if name in curves]
    if white and black:
        best_white = [min(curves[n]["accuracy"][i] for n in white) for i in range(len(eps))]
        bad = {n: [e for e, w, b in zip(eps, best_white, curves[n]["accuracy"]) if w > b + tolerance] for n in black}
        bad = {n: v for n, v in bad.items() if v}
        check("whitebox_le_blackbox", not bad, "White-box attacks are at least as strong as black-box and "
              "gradient-free ones." if not bad else f"Black-box or gradient-free attacks beat white-box ones at {bad}.")
    if large_eps is not None and max(eps) >= large_eps:
        top = worst[eps.index(max(eps))]
        check("near_chance_at_large_eps", top <= chance + 0.1,
              f"At ε={max(eps):g} the worst-case accuracy is {top:.4f} (chance {chance:.2f})"
              + ("." if top <= chance + 0.1 else "; an unbounded-looking robustness is implausible."))
    check("nonzero_gradients", zero_gradient_share <= 0.01,
          f"{100 * zero_gradient_share:.1f}% of examples have an exactly zero input gradient.")
    return checks


def robustness_report(model, data, eps_values, attacks=ATTACKS, surrogate=None, *, pgd_steps=20, pgd_restarts=1,
                      square_queries=1000, large_eps=None, tolerance=0.01, seed=0, gradient=None):
    """Accuracy under each attack and ε, the per-example worst case over all of them, and sanity checks.

    attacks: any of "fgsm", "pgd" (L∞, eps_iter = 2.5·ε/steps, random start), "apgd-ce", "apgd-dlr"
    (Auto-PGD, 100 iterations, `pgd_restarts` restarts), "apgd-t" (targeted DLR, 9 targets), "square"
    (gradient-free) and "transfer" (FGSM crafted on `surrogate`, evaluated on `model`); each runs on
    every example. The checks follow Carlini et
    al. 2019; a failed one is reported as possible gradient masking. `large_eps` is an ε at which
    accuracy should be near chance (MNIST 0.5, CIFAR 32/255). `gradient` sets how the model's input
    discretization passes gradients for this report only (see `FgsmSweep`).
    """
    eps = check_eps_values(eps_values)
    model = model if gradient is None else with_input_gradient(model, gradient)
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown or not attacks:
        raise ValueError(f"Unknown attack(s) {unknown}; valid values are {', '.join(map(repr, ATTACKS))}.")
    if "transfer" in attacks and surrogate is None:
        raise ValueError("The transfer attack needs a surrogate model (e.g. a full-precision 8-bit model's SavedModel).")
    data = as_dataset(data)
    num_classes = int(model.output_shape[-1])
    fns = _attack_fns(model, attacks, surrogate, pgd_steps, pgd_restarts, square_queries, seed, num_classes)
    predict = tf.function(lambda x: tf.argmax(attacks_lib.logits_of(model, x), axis=-1), reduce_retracing=True)

    @tf.function(reduce_retracing=True)
    def clean_pass(x, y):
        """Checked batch, clean correctness, FGSM direction, all-zero input gradients, non-finite logits."""
        x, y = _checked_batch(x, y, num_classes)
        logits, gradient = attacks_lib.logits_and_gradient(model, x, y)
        nonfinite = tf.logical_not(tf.reduce_all(tf.math.is_finite(logits), axis=-1))
        return x, y, tf.argmax(logits, axis=-1) == y, _direction(gradient), _zero_rows(gradient), nonfinite
    correct = {name: np.zeros(len(eps), np.int64) for name in attacks}
    worst = np.zeros(len(eps), np.int64)
    clean = examples = zero_gradient = batches = 0
    progress = Progress(f"Robustness report ({', '.join(attacks)} × {len(eps)} eps)", _chunk_size(data)[1])
    for x, y in data:
        with checks.clear_errors():
            x, y, correct_clean, direction, zero, bad_logits = clean_pass(x, y)
        examples += int(tf.shape(x)[0])
        _check_finite_logits(int(tf.reduce_sum(tf.cast(bad_logits, tf.int32))), examples)
        clean += int(tf.reduce_sum(tf.cast(correct_clean, tf.int32)))
        zero_gradient += int(tf.reduce_sum(tf.cast(zero, tf.int32)))
        for i, e in enumerate(eps):
            survived = np.ones(int(tf.shape(x)[0]), bool)
            for name, fn in fns.items():
                ok = (predict(fn(x, y, tf.constant(e, tf.float32), direction)) == y).numpy()
                correct[name][i] += ok.sum()
                survived &= ok
            worst[i] += survived.sum()
        batches += 1
        progress.update(batches)
    progress.update(batches, final=True)
    if examples == 0:
        raise ValueError("The data holds no examples.")
    result = {
        "eps": eps,
        "clean_accuracy": clean / examples,
        "examples": examples,
        "gradient": discretization_gradient(model),
        "attacks": {name: {"eps": eps, "accuracy": (correct[name] / examples).tolist()} for name in attacks},
        "worst_case": {"eps": eps, "accuracy": (worst / examples).tolist()},
        "settings": {"pgd_steps": pgd_steps, "pgd_restarts": pgd_restarts, "square_queries": square_queries,
                     "transfer": "fgsm on surrogate" if "transfer" in attacks else None},
    }
    result["checks"] = _checks(result, zero_gradient / examples, large_eps, 1 / num_classes, tolerance)
    result["masking_suspected"] = not all(c["passed"] for c in result["checks"])
    result["seconds"] = progress.elapsed
    return result


def report_lines(report):
    """A robustness report as text lines: accuracy per attack and ε with the worst case, then the checks."""
    names = list(report["attacks"])
    lines = [f"{'eps':>8}" + "".join(f"  {n:>9}" for n in names) + "  worst case"
             + f"   ({report['examples']} examples, {report['gradient']} gradient)"]
    for i, eps in enumerate(report["worst_case"]["eps"]):
        lines.append(f"{eps:8.4f}" + "".join(f"  {report['attacks'][n]['accuracy'][i]:9.4f}" for n in names)
                     + f"  {report['worst_case']['accuracy'][i]:10.4f}")
    lines += [f"  [{'pass' if c['passed'] else 'FAIL'}] {c['check']}: {c['detail']}" for c in report["checks"]]
    return lines
