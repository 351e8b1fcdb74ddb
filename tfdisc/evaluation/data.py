"""What every evaluation shares: data as checked batches, batch sizes, and per-example gradient facts."""

import numpy as np
import tensorflow as tf

from tfdisc import checks
from tfdisc.datasets import without_autotune
from tfdisc.types import Data, TensorLike


def as_dataset(data: Data, batch_size: int = 256) -> tf.data.Dataset:
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
    return without_autotune(tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size))


def batch_size_for(model: tf.keras.Model, memory_bytes: int = 2**30, largest: int = 1000) -> int:
    """The largest evaluation batch, up to `largest`, whose activations and their gradients fit in `memory_bytes`.

    Sweeps and reports need no weight gradients, so they can take batches larger than training:
    FCN1-BNN sweeps 1.6× faster at 1000 than at 100 (its kernels are binarized once per batch).
    """
    floats = sum(int(np.prod(shape[1:])) for layer in model.layers
                 for shape in ([layer.output_shape] if isinstance(layer.output_shape, tuple) else layer.output_shape))
    return int(max(1, min(largest, memory_bytes // (2 * 4 * floats))))


def zero_rows(gradient: tf.Tensor) -> tf.Tensor:
    """Per example: is its input gradient exactly zero everywhere (FGSM cannot move it)?"""
    return tf.reduce_all(tf.equal(tf.reshape(gradient, [tf.shape(gradient)[0], -1]), 0.0), axis=1)


def direction(gradient: tf.Tensor) -> tf.Tensor:
    """FGSM's direction sign(∇x L), with 0 where the gradient is NaN (diverged weights are reported by the caller)."""
    return tf.sign(tf.where(tf.math.is_nan(gradient), tf.zeros_like(gradient), gradient))


def checked_batch(x: TensorLike, y: TensorLike, num_classes: int) -> tuple[tf.Tensor, tf.Tensor]:
    """A batch's float pixels and int64 labels, checked before any compiled (XLA) code sees them."""
    return tf.cast(checks.pixels(x), tf.float32), tf.cast(checks.labels(y, num_classes), tf.int64)


def check_finite_logits(nonfinite: int, examples: int) -> None:
    """ValueError when any logits were NaN or infinite (diverged or corrupt weights)."""
    if nonfinite:
        raise ValueError(f"The model's logits are NaN or infinite for {nonfinite} of {examples} examples: its weights "
                         "have probably diverged during training (lower the learning rate) or hold NaN.")


def chunk_size(data: tf.data.Dataset) -> tuple[int, int | None]:
    """(batches per compiled call, total batches or None): about 20 progress lines per pass when the length is known."""
    batches = int(data.cardinality())
    return max(1, batches // 20) if batches > 0 else 50, (batches if batches > 0 else None)
