"""Pure tensor functions: pixel discretization and its gradient estimators."""

import numbers

import tensorflow as tf

MODES = ("floor", "round")
GRADIENTS = ("identity", "zero")


def check_choice(name, value, choices):
    """Raise ValueError unless `value` is one of `choices`."""
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}; valid values are {', '.join(map(repr, choices))}.")


def check_bits(bits):
    """Raise ValueError unless `bits` is an int in 1..8."""
    if isinstance(bits, bool) or not isinstance(bits, numbers.Integral) or not 1 <= bits <= 8:
        raise ValueError(f"bits must be an int in 1..8 (8 keeps all 256 pixel levels); got {bits!r}.")


def pixels_as_float(x):
    """uint8 pixels 0..255 become float32 in [0, 1]; float pixels pass through in their own dtype."""
    x = tf.convert_to_tensor(x)
    if x.dtype == tf.uint8:
        return tf.cast(x, tf.float32) / 255.0
    if not x.dtype.is_floating:
        raise ValueError(f"Pixels must be uint8 0..255 or float in [0, 1]; got dtype {x.dtype.name}.")
    return x


def discretize(x, bits, mode="floor", gradient="identity"):
    """Reduce float pixels in [0, 1] to `bits` bits.

    mode="floor" is the study's rule on the 8-bit pixel p = round(255·x):
    q = (p // 2^(8−b)) · 2^(8−b) / 255, so 2 bits keep the levels {0, 64, 128, 192}/255 and
    8 bits are the identity on the 8-bit grid. mode="round" is feature-squeezing rounding
    round(x·(2^b − 1)) / (2^b − 1), whose levels span [0, 1] evenly.

    gradient="identity" passes gradients straight through (BPDA, what attacks should see);
    "zero" is the true derivative of the step function, kept to demonstrate gradient masking.
    """
    check_bits(bits)
    check_choice("mode", mode, MODES)
    check_choice("gradient", gradient, GRADIENTS)
    x = tf.cast(pixels_as_float(x), tf.float32)

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
    check_bits(bits)
    check_choice("mode", mode, MODES)
    if mode == "floor":
        step = 2 ** (8 - bits)
        return [p / 255.0 for p in range(0, 256, step)]
    return [k / (2**bits - 1) for k in range(2**bits)]
