"""Keras-serializable layers and quantizers over `tfdisc.ops`."""

import larq as lq
import tensorflow as tf

from tfdisc import ops


@tf.keras.utils.register_keras_serializable(package="tfdisc")
class InputDiscretization(tf.keras.layers.Layer):
    """Reduce input pixels to `bits` bits (see `tfdisc.ops.discretize`).

    Accepts float images in [0, 1] or uint8 0..255 and returns float32 of the same shape.
    With the default mode="floor", b bits keep the 2^b levels k·2^(8−b)/255:
    2 bits → {0, 64, 128, 192}/255, 1 bit → {0, 128}/255, 8 bits → every 8-bit level.
    mode="round" rounds to 2^b levels spread evenly over [0, 1] (feature squeezing).

    gradient="identity" (default) is the straight-through estimator, so white-box attacks see
    through the quantizer (BPDA); gradient="zero" is the true, masked derivative.
    Float inputs outside [0, 1] fail with an InvalidArgumentError naming the range.
    """

    def __init__(self, bits=8, mode="floor", gradient="identity", **kwargs):
        ops.check_bits(bits)
        ops.check_choice("mode", mode, ops.MODES)
        ops.check_choice("gradient", gradient, ops.GRADIENTS)
        super().__init__(**kwargs)
        self.bits = bits
        self.mode = mode
        self.gradient = gradient

    def call(self, inputs):
        if inputs.dtype != tf.uint8:
            inputs = tf.cast(inputs, tf.float32)
            in_range = [
                tf.debugging.assert_greater_equal(inputs, 0.0, message=_RANGE_HELP),
                tf.debugging.assert_less_equal(inputs, 1.0, message=_RANGE_HELP),
            ]
            with tf.control_dependencies(in_range):
                inputs = tf.identity(inputs)
        return ops.discretize(inputs, self.bits, self.mode, self.gradient)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "bits": self.bits, "mode": self.mode, "gradient": self.gradient}


_RANGE_HELP = (
    "InputDiscretization expects float pixels in [0, 1] (or uint8 0..255); "
    "divide 0..255 float images by 255 first."
)


@tf.keras.utils.register_keras_serializable(package="tfdisc")
class XnorWeightScale(lq.quantizers.Quantizer):
    """XNOR-Net kernel quantizer: α·sign(w), α = mean |w| per output channel.

    The sign uses Larq's straight-through `ste_sign`; α is differentiated as usual.
    `precision = 1` tells `lq.models.summary` that these MACs are binary (α is applied
    once per output channel, after the ±1 products are summed).
    """

    precision = 1

    def call(self, inputs):
        axes = list(range(inputs.shape.rank - 1))
        alpha = tf.reduce_mean(tf.abs(inputs), axis=axes, keepdims=True)
        return alpha * lq.quantizers.ste_sign(inputs)
