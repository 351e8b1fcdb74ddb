"""FGSM accuracy over many ε at once: one input gradient per batch, one forward pass per ε."""

import logging

import numpy as np
import tensorflow as tf

from tfdisc import attacks as attacks_lib
from tfdisc import checks, eps as eps_lib
from tfdisc.evaluation.data import as_dataset, check_finite_logits, checked_batch, chunk_size, direction, zero_rows
from tfdisc.models import discretization_gradient, with_input_gradient
from tfdisc.progress import Progress
from tfdisc.types import Data, EpsValues

logger = logging.getLogger(__name__)


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
        sign = direction(gradient)
        zero_gradient = tf.reduce_sum(tf.cast(zero_rows(gradient), tf.int64))

        def correct_at(e):
            x_adv = tf.clip_by_value(x + e * sign, self.clip_min, self.clip_max)
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
            counts = self._batch_counts(*checked_batch(x, y, self.num_classes), eps)
            totals = tuple(total + count for total, count in zip(totals, counts))
            done += 1
            if done >= max_batches:
                break
        return totals + (done,)

    def __call__(self, data, eps_values):
        """Return {"attack", "gradient", "eps", "accuracy", "clean_accuracy", "examples", ...} over `data`."""
        eps = eps_lib.values(eps_values)
        data = as_dataset(data)
        chunk, total = chunk_size(data)
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
        check_finite_logits(nonfinite, examples)
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


def sweep(model: tf.keras.Model, data: Data, eps_values: EpsValues, gradient: str | None = None) -> dict:
    """FGSM accuracy of `model` on `data` for every eps in `eps_values` (see `FgsmSweep`)."""
    return FgsmSweep(model, gradient)(data, eps_values)


def sweep_in(report: dict) -> dict:
    """The FGSM sweep, as `FgsmSweep` returns it, that a `RobustnessReport` with "fgsm" ran on its data."""
    return {"attack": "fgsm", "gradient": report["gradient"], "eps": report["eps"],
            "accuracy": report["attacks"]["fgsm"]["accuracy"], "clean_accuracy": report["clean_accuracy"],
            "examples": report["examples"]}


