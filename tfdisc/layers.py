"""Keras-serializable layers and quantizers over `tfdisc.ops`."""

import larq as lq
import tensorflow as tf

from tfdisc import checks, ops


@tf.keras.utils.register_keras_serializable(package="tfdisc")
class InputDiscretization(tf.keras.layers.Layer):
    """Reduce input pixels to `bits` bits (see `tfdisc.ops.discretize`).

    Accepts float images in [0, 1] or uint8 0..255 and returns float32 of the same shape.
    With the default mode="floor", b bits keep the 2^b levels k·2^(8−b)/255:
    2 bits → {0, 64, 128, 192}/255, 1 bit → {0, 128}/255, 8 bits → every 8-bit level.
    mode="round" rounds to 2^b levels spread evenly over [0, 1] (feature squeezing).

    gradient="identity" (default) is the straight-through estimator, so white-box attacks see
    through the quantizer (BPDA); gradient="zero" is the true, masked derivative.
    NaN or out-of-range float pixels fail with an error naming the fix (`tfdisc.checks.pixels`);
    where no error can be raised (inside XLA, in TFLite) those examples come out as NaN.
    The layer computes in float32 under every Keras policy, so mixed precision keeps the exact levels.
    """

    def __init__(self, bits=8, mode="floor", gradient="identity", **kwargs):
        checks.bits(bits)
        checks.choice("mode", mode, ops.MODES)
        checks.choice("gradient", gradient, ops.GRADIENTS)
        super().__init__(**{"dtype": "float32", **kwargs})
        self.bits = bits
        self.mode = mode
        self.gradient = gradient

    def call(self, inputs):
        q = ops.discretize(inputs, self.bits, self.mode, self.gradient)
        return q if inputs.dtype == tf.uint8 else checks.nan_where_invalid(tf.cast(inputs, q.dtype), q)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "bits": self.bits, "mode": self.mode, "gradient": self.gradient}


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


@tf.keras.utils.register_keras_serializable(package="tfdisc")
class DenseAsConv(lq.layers.QuantConv2D):
    """A `QuantDense` computed as a 1×1 `QuantConv2D` over a 1×1 map: the same outputs, in the form
    Larq Compute Engine runs on its binary kernels (it binarizes convolutions only).

    Takes and returns (batch, features) like the dense layer; `from_dense` copies one, sharing nothing.
    """

    def __init__(self, units, **kwargs):
        super().__init__(units, 1, **kwargs)

    @classmethod
    def from_dense(cls, dense: tf.keras.layers.Dense) -> "DenseAsConv":
        layer = cls(**dense.get_config())
        layer.build((None, dense.kernel.shape[0]))
        kernel, *bias = dense.get_weights()
        layer.set_weights([kernel.reshape((1, 1) + kernel.shape), *bias])
        return layer

    def build(self, input_shape):
        super().build((input_shape[0], 1, 1, input_shape[-1]))
        self.input_spec = tf.keras.layers.InputSpec(ndim=2, axes={-1: input_shape[-1]})

    def call(self, inputs):
        return super().call(inputs[:, None, None, :])[:, 0, 0, :]

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([self.filters])

    def get_config(self):
        config = super().get_config()
        config["units"] = config.pop("filters")
        for conv_only in ("kernel_size", "strides", "padding", "pad_values", "data_format", "dilation_rate", "groups"):
            config.pop(conv_only, None)
        return config
