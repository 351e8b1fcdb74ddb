"""Robustness evaluation: FGSM eps sweeps (one input gradient per batch) and the multi-attack robustness report."""

import logging
import math
import time

import numpy as np
import tensorflow as tf

from tfdisc import attacks as attacks_lib
from tfdisc.datasets import without_autotune
from tfdisc.layers import InputDiscretization

logger = logging.getLogger(__name__)


def check_eps_values(eps_values):
    """eps_values as a list of floats in [0, 1]; ValueError naming the bad ones otherwise."""
    eps = [float(e) for e in eps_values]
    if not eps:
        raise ValueError("eps_values is empty; give at least one eps, e.g. [0, 0.1, 0.2].")
    bad = [e for e in eps if not 0 <= e <= 1 or math.isnan(e)]
    if bad:
        raise ValueError(f"eps values must lie in [0, 1] (pixel units; 8/255 ≈ 0.031); got {bad}.")
    return eps


def as_dataset(data, batch_size=256):
    """`data` as batched (x, y): a `tf.data.Dataset` passes through; (x, y) arrays are checked and batched."""
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
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / 255.0
    elif not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"images must be uint8 0..255 or float in [0, 1]; got dtype {x.dtype}.")
    elif x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"float images must lie in [0, 1]; got [{x.min()}, {x.max()}]. Divide 0..255 images by 255.")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be int class ids; got dtype {y.dtype}.")
    dataset = tf.data.Dataset.from_tensor_slices((x.astype(np.float32), y.astype(np.int64)))
    return without_autotune(dataset.batch(batch_size))


def discretization_gradient(model):
    """The `gradient` mode of the model's InputDiscretization layer, or None if it has none."""
    modes = {layer.gradient for layer in model.submodules if isinstance(layer, InputDiscretization)}
    return modes.pop() if len(modes) == 1 else (None if not modes else "mixed")


def _zero_rows(gradient):
    """Per example: is its input gradient exactly zero everywhere (FGSM cannot move it)?"""
    return tf.reduce_all(tf.equal(tf.reshape(gradient, [tf.shape(gradient)[0], -1]), 0.0), axis=1)


class FgsmSweep:
    """FGSM accuracy for many eps at once; compiled once per model, reusable across calls.

    Per batch it computes the input gradient once (the FGSM direction sign(∇x L) does not depend
    on eps) and then one forward pass per eps. The loop over batches runs inside one
    `tf.function` (no Python work or host sync per batch), and eps is a tensor argument, so
    new eps, batch sizes or datasets of the same element type never retrace.
    `jit_compile=True` compiles each batch with XLA, which skips InputDiscretization's [0, 1]
    range check and may flip BNN signs that sit exactly at 0 (see scripts/benchmark.py).
    """

    def __init__(self, model, clip_min=0.0, clip_max=1.0, jit_compile=False):
        self.model = model
        self.clip_min = clip_min
        self.clip_max = clip_max
        # Inlined into the loop: a nested tf.function there fails under MultiWorkerMirroredStrategy.
        self._batch_counts = tf.function(self._counts, jit_compile=True) if jit_compile else self._counts
        self._totals = tf.function(self._dataset_totals, reduce_retracing=True)

    def _counts(self, x, y, eps):
        y = tf.cast(y, tf.int64)
        logits, gradient = attacks_lib.logits_and_gradient(self.model, x, y)
        clean = tf.reduce_sum(tf.cast(tf.argmax(logits, axis=-1) == y, tf.int64))
        direction = tf.sign(gradient)
        zero_gradient = tf.reduce_sum(tf.cast(_zero_rows(gradient), tf.int64))

        def correct_at(e):
            x_adv = tf.clip_by_value(x + e * direction, self.clip_min, self.clip_max)
            predictions = tf.argmax(attacks_lib.logits_of(self.model, x_adv), axis=-1)
            return tf.reduce_sum(tf.cast(predictions == y, tf.int64))

        correct = tf.map_fn(correct_at, eps, fn_output_signature=tf.int64)
        return clean, correct, zero_gradient, tf.shape(x, out_type=tf.int64)[0]

    def _dataset_totals(self, batches, eps):
        """(clean, correct per eps, zero-gradient, examples) summed over an iterator of batches.

        A graph `while` loop over the iterator: `Dataset.reduce` would run the model in tf.data's
        runtime, single-threaded.
        """
        zero = tf.constant(0, tf.int64)
        totals = (zero, tf.zeros_like(eps, tf.int64), zero, zero)
        for x, y in batches:
            counts = self._batch_counts(tf.cast(x, tf.float32), y, eps)
            totals = tuple(total + count for total, count in zip(totals, counts))
        return totals

    def __call__(self, data, eps_values, verbose=0):
        """Return {"attack", "gradient", "eps", "accuracy", "clean_accuracy", "examples", ...} over `data`."""
        eps = check_eps_values(eps_values)
        start = time.perf_counter()
        clean, correct, zero_gradient, examples = (
            t.numpy() for t in self._totals(iter(as_dataset(data)), tf.constant(eps, tf.float32)))
        if examples == 0:
            raise ValueError("The data holds no examples.")
        if verbose:
            print(f"FGSM sweep: {examples} examples, {len(eps)} eps, {time.perf_counter() - start:.1f} s")
        if zero_gradient > examples / 2:
            logger.warning(
                "The input gradient is exactly zero for %d of %d examples: FGSM cannot move them, "
                "so its accuracy overstates robustness (possible gradient masking).", zero_gradient, examples)
        return {
            "attack": "fgsm",
            "gradient": discretization_gradient(self.model),
            "eps": eps,
            "accuracy": (correct / examples).tolist(),
            "clean_accuracy": float(clean / examples),
            "examples": int(examples),
            "zero_gradient_examples": int(zero_gradient),
        }


def sweep(model, data, eps_values, verbose=0):
    """FGSM accuracy of `model` on `data` for every eps in `eps_values` (see `FgsmSweep`)."""
    return FgsmSweep(model)(data, eps_values, verbose=verbose)


ATTACKS = ("fgsm", "pgd", "square", "transfer")


def _attack_fns(model, attacks, surrogate, pgd_steps, pgd_restarts, square_queries, seed):
    """name -> compiled fn(x, y, eps, fgsm_direction) giving the adversarial batch; eps is a tensor (no retrace)."""
    makers = {
        "fgsm": lambda x, y, eps, direction: x + eps * direction,  # clipped below; direction shared across eps
        "pgd": lambda x, y, eps, _: attacks_lib.projected_gradient_descent(
            model, x, y, eps, 2.5 * eps / pgd_steps, pgd_steps, seed=seed, n_restarts=pgd_restarts),
        "square": lambda x, y, eps, _: attacks_lib.square_attack(model, x, y, eps, n_queries=square_queries, seed=seed),
        "transfer": lambda x, y, eps, _: attacks_lib.transfer_attack(surrogate, x, y, eps),
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
    white = [name for name in ("fgsm", "pgd") if name in curves]
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
                      square_queries=1000, large_eps=None, tolerance=0.01, seed=0, verbose=0):
    """Accuracy under each attack and ε, the per-example worst case over all of them, and sanity checks.

    attacks: any of "fgsm", "pgd" (L∞, eps_iter = 2.5·ε/steps, random start), "square" (gradient-free)
    and "transfer" (FGSM crafted on `surrogate`, evaluated on `model`). The checks follow Carlini et
    al. 2019; a failed one is reported as possible gradient masking. `large_eps` is an ε at which
    accuracy should be near chance (MNIST 0.5, CIFAR 32/255).
    """
    eps = check_eps_values(eps_values)
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown or not attacks:
        raise ValueError(f"Unknown attack(s) {unknown}; valid values are {', '.join(map(repr, ATTACKS))}.")
    if "transfer" in attacks and surrogate is None:
        raise ValueError("The transfer attack needs a surrogate model (e.g. a full-precision 8-bit model's SavedModel).")
    data = as_dataset(data)
    fns = _attack_fns(model, attacks, surrogate, pgd_steps, pgd_restarts, square_queries, seed)
    predict = tf.function(lambda x: tf.argmax(attacks_lib.logits_of(model, x), axis=-1), reduce_retracing=True)

    @tf.function(reduce_retracing=True)
    def clean_pass(x, y):
        """Clean correctness, the FGSM direction and which examples have an all-zero input gradient."""
        logits, gradient = attacks_lib.logits_and_gradient(model, x, y)
        return tf.argmax(logits, axis=-1) == y, tf.sign(gradient), _zero_rows(gradient)
    correct = {name: np.zeros(len(eps), np.int64) for name in attacks}
    worst = np.zeros(len(eps), np.int64)
    clean = examples = zero_gradient = 0
    progress = tf.keras.utils.Progbar(data.cardinality().numpy(), unit_name="batch") if verbose else None
    start = time.perf_counter()
    for x, y in data:
        x, y = tf.cast(x, tf.float32), tf.cast(y, tf.int64)
        correct_clean, direction, zero = clean_pass(x, y)
        clean += int(tf.reduce_sum(tf.cast(correct_clean, tf.int32)))
        zero_gradient += int(tf.reduce_sum(tf.cast(zero, tf.int32)))
        examples += int(tf.shape(x)[0])
        for i, e in enumerate(eps):
            survived = np.ones(int(tf.shape(x)[0]), bool)
            for name, fn in fns.items():
                ok = (predict(fn(x, y, tf.constant(e, tf.float32), direction)) == y).numpy()
                correct[name][i] += ok.sum()
                survived &= ok
            worst[i] += survived.sum()
        if progress:
            progress.add(1)
    if examples == 0:
        raise ValueError("The data holds no examples.")
    num_classes = int(model.output_shape[-1])
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
    result["seconds"] = time.perf_counter() - start
    return result
