"""Pure tensor functions: pixel discretization and its gradient estimators."""

import tensorflow as tf

from tfdisc import checks

MODES = ("floor", "round")
GRADIENTS = ("identity", "zero")


def discretize(x, bits, mode="floor", gradient="identity"):
    """Reduce float pixels in [0, 1] (or uint8 0..255) to `bits` bits; returns float32.

    mode="floor" is the study's rule on the 8-bit pixel p = round(255·x):
    q = (p // 2^(8−b)) · 2^(8−b) / 255, so 2 bits keep the levels {0, 64, 128, 192}/255 and
    8 bits are the identity on the 8-bit grid. mode="round" is feature-squeezing rounding
    round(x·(2^b − 1)) / (2^b − 1), whose levels span [0, 1] evenly.

    gradient="identity" passes gradients straight through (BPDA, what attacks should see);
    "zero" is the true derivative of the step function, kept to demonstrate gradient masking.
    """
    checks.bits(bits)
    checks.choice("mode", mode, MODES)
    checks.choice("gradient", gradient, GRADIENTS)
    x = tf.cast(checks.pixels(x), tf.float32)

    @tf.custom_gradient
    def quantize(x):
        if mode == "floor":
            step = float(2 ** (8 - bits))
            q = tf.floor(tf.round(x * 255.0) / step) * step / 255.0
        else:
            levels = float(2**bits - 1)
            q = tf.round(x * levels) / levels

        def grad(dy):
            return dy if gradient == "identity" else tf.zeros_like(dy)

        return q, grad

    return quantize(x)


def levels(bits, mode="floor"):
    """The pixel values in [0, 1] that `discretize(..., bits, mode)` can output, ascending."""
    checks.bits(bits)
    checks.choice("mode", mode, MODES)
    if mode == "floor":
        step = 2 ** (8 - bits)
        return [p / 255.0 for p in range(0, 256, step)]
    return [k / (2**bits - 1) for k in range(2**bits)]
