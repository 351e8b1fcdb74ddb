"""Robustness evaluation: FGSM accuracy swept over eps with one input gradient per batch."""

import logging
import math

import numpy as np
import tensorflow as tf

from tfdisc import attacks
from tfdisc.layers import InputDiscretization

logger = logging.getLogger(__name__)


def _check_eps_values(eps_values):
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
    return tf.data.Dataset.from_tensor_slices((x.astype(np.float32), y.astype(np.int64))).batch(batch_size)


def discretization_gradient(model):
    """The `gradient` mode of the model's InputDiscretization layer, or None if it has none."""
    modes = {layer.gradient for layer in model.submodules if isinstance(layer, InputDiscretization)}
    return modes.pop() if len(modes) == 1 else (None if not modes else "mixed")


class FgsmSweep:
    """FGSM accuracy for many eps at once; compiled once per model, reusable across calls.

    Per batch it computes the input gradient once (the FGSM direction sign(∇x L) does not depend
    on eps) and then one forward pass per eps. eps is a tensor argument, so new eps never retrace.
    """

    def __init__(self, model, clip_min=0.0, clip_max=1.0):
        self.model = model
        self.clip_min = clip_min
        self.clip_max = clip_max
        self._batch_counts = tf.function(self._counts, reduce_retracing=True)

    def _counts(self, x, y, eps):
        y = tf.cast(y, tf.int64)
        logits, gradient = attacks.logits_and_gradient(self.model, x, y)
        clean = tf.reduce_sum(tf.cast(tf.argmax(logits, axis=-1) == y, tf.int32))
        direction = tf.sign(gradient)
        flat = tf.reshape(tf.abs(gradient), [tf.shape(x)[0], -1])
        zero_gradient = tf.reduce_sum(tf.cast(tf.reduce_max(flat, axis=1) == 0, tf.int32))

        def correct_at(e):
            x_adv = tf.clip_by_value(x + e * direction, self.clip_min, self.clip_max)
            predictions = tf.argmax(attacks.logits_of(self.model, x_adv), axis=-1)
            return tf.reduce_sum(tf.cast(predictions == y, tf.int32))

        correct = tf.map_fn(correct_at, eps, fn_output_signature=tf.int32)
        return clean, correct, zero_gradient

    def __call__(self, data, eps_values, verbose=0):
        """Return {"attack", "gradient", "eps", "accuracy", "clean_accuracy", "examples", ...} over `data`."""
        eps = _check_eps_values(eps_values)
        data = as_dataset(data)
        eps_tensor = tf.constant(eps, tf.float32)
        correct = np.zeros(len(eps), np.int64)
        examples = clean = zero_gradient = 0
        progress = tf.keras.utils.Progbar(data.cardinality().numpy(), unit_name="batch") if verbose else None
        for x, y in data:
            batch_clean, batch_correct, batch_zero = self._batch_counts(tf.cast(x, tf.float32), y, eps_tensor)
            clean += int(batch_clean)
            correct += batch_correct.numpy()
            zero_gradient += int(batch_zero)
            examples += int(tf.shape(x)[0])
            if progress:
                progress.add(1)
        if examples == 0:
            raise ValueError("The data holds no examples.")
        if zero_gradient > examples / 2:
            logger.warning(
                "The input gradient is exactly zero for %d of %d examples: FGSM cannot move them, "
                "so its accuracy overstates robustness (possible gradient masking).", zero_gradient, examples)
        return {
            "attack": "fgsm",
            "gradient": discretization_gradient(self.model),
            "eps": eps,
            "accuracy": (correct / examples).tolist(),
            "clean_accuracy": clean / examples,
            "examples": examples,
            "zero_gradient_examples": zero_gradient,
        }


def sweep(model, data, eps_values, verbose=0):
    """FGSM accuracy of `model` on `data` for every eps in `eps_values` (see `FgsmSweep`)."""
    return FgsmSweep(model)(data, eps_values, verbose=verbose)
