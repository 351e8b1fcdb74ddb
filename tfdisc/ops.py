"""Pure tensor functions: pixel discretization and its gradient estimators."""

import tensorflow as tf

from tfdisc import checks
from tfdisc.types import TensorLike

MODES = ("floor", "round")
GRADIENTS = ("identity", "zero")


def discretize(x: TensorLike, bits: int, mode: str = "floor", gradient: str = "identity") -> tf.Tensor:
    """Reduce float pixels in [0, 1] (or uint8 0..255) to `bits` bits; returns float32.

    mode="floor" is the study's rule on the 8-bit pixel p = round(255·x):
    q = (p // 2^(8−b)) · 2^(8−b) / 255, so 2 bits keep the levels {0, 64, 128, 192}/255 and
    8 bits are the identity on the 8-bit grid. mode="round" is feature-squeezing rounding
    round(x·(2^b − 1)) / (2^b − 1), whose levels span [0, 1] evenly.

    gradient="identity" passes gradients straight through (BPDA, what attacks should see);
    "zero" is the true derivative of the step function, kept to demonstrate gradient masking.

    # Arguments
        x: images, float in [0, 1] or uint8; checked (`tfdisc.checks.pixels`).
        bits: 1..8, the bits kept per pixel.
        mode: "floor" (the study's rule) or "round".
        gradient: "identity" (straight through) or "zero".

    # Raises
        InvalidInputError: for bits, a mode or a gradient outside those above, or pixels outside [0, 1].
    """
    checks.bits(bits)
    checks.choice("mode", mode, MODES)
    checks.choice("gradient", gradient, GRADIENTS)
    x = tf.cast(checks.pixels(x), tf.float32)

    if mode == "floor":
        step = float(2 ** (8 - bits))
        q = tf.floor(tf.round(x * 255.0) / step) * step / 255.0
    else:
        levels = float(2**bits - 1)
        q = tf.round(x * levels) / levels
    # Straight-through without tf.custom_gradient, whose every graph-mode trace registers a gradient function in
    # TensorFlow's global registry that keeps the traced graph alive (about 50 MB per trained model, never freed).
    # x - stop_gradient(x) is exactly 0 for finite x, with derivative 1: the value stays exactly q.
    through = x - tf.stop_gradient(x)
    return tf.stop_gradient(q) + (through if gradient == "identity" else 0.0 * through)


def levels(bits: int, mode: str = "floor") -> list[float]:
    """The pixel values in [0, 1] that `discretize(..., bits, mode)` can output, ascending."""
    checks.bits(bits)
    checks.choice("mode", mode, MODES)
    if mode == "floor":
        step = 2 ** (8 - bits)
        return [p / 255.0 for p in range(0, 256, step)]
    return [k / (2**bits - 1) for k in range(2**bits)]


def reachable_levels(x: TensorLike, eps: TensorLike, bits: int, mode: str = "floor") -> tuple[tf.Tensor, tf.Tensor]:
    """(lowest, highest) level `discretize` can give each pixel anywhere in [x − eps, x + eps] ∩ [0, 1], float32;
    every level between them is reachable (the quantizer is a monotone step function)."""
    x, eps = tf.cast(x, tf.float32), tf.cast(eps, tf.float32)
    return (discretize(tf.clip_by_value(x - eps, 0.0, 1.0), bits, mode),
            discretize(tf.clip_by_value(x + eps, 0.0, 1.0), bits, mode))


def input_for_levels(x: TensorLike, eps: TensorLike, levels: tf.Tensor) -> tf.Tensor:
    """An input in the eps-ball of `x` that discretizes to `levels` (each reachable): the level itself, moved into
    [x − eps, x + eps] ∩ [0, 1] where it lies outside (a level can sit just beyond the ball that reaches it, since
    the quantizer rounds to the 8-bit grid first; the ball's end then discretizes to it)."""
    x, eps = tf.cast(x, tf.float32), tf.cast(eps, tf.float32)
    return tf.clip_by_value(tf.cast(levels, tf.float32), tf.clip_by_value(x - eps, 0.0, 1.0),
                            tf.clip_by_value(x + eps, 0.0, 1.0))
