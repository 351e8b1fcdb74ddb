"""Sound bounds on what a discretizing model can output anywhere in an L∞ ball: the discretized input box, interval
bound propagation (IBP) with one rule per layer type, and a linear relaxation (CROWN) for the margins.

Everything is computed in float64 from the model's own (quantized) weights. The model itself computes in float32,
so a sign that float64 puts within `SIGN_SLACK` of 0 counts as undecided, and a margin counts as positive only
above `MARGIN_SLACK`: float32's rounding cannot turn a bound that clears those slacks into a wrong one.
"""

from typing import Callable

import larq as lq
import tensorflow as tf

from tfdisc import ops
from tfdisc.layers import InputDiscretization
from tfdisc.types import TensorLike

Box = tuple[tf.Tensor, tf.Tensor]
"""(low, high): elementwise bounds."""

SIGN_SLACK = 1e-4  # relative: |v| ≤ SIGN_SLACK·(1 + |v|) is treated as possibly either sign
MARGIN_SLACK = 1e-4  # a logit margin is certified positive only above this (relative to the logits' scale)
DTYPE = tf.float64


class UnsupportedLayer(ValueError):
    """The model holds a layer no bound rule covers; the message names it."""


def level_box(discretization: InputDiscretization, x: TensorLike, eps: TensorLike) -> Box:
    """(lowest, highest) discretized level of each pixel anywhere in [x − ε, x + ε] ∩ [0, 1], in float64
    (`tfdisc.ops.reachable_levels`)."""
    low, high = ops.reachable_levels(x, eps, discretization.bits, discretization.mode)
    return tf.cast(low, DTYPE), tf.cast(high, DTYPE)


def level_step(discretization: InputDiscretization) -> float:
    """The distance between two neighbouring levels."""
    if discretization.mode == "floor":
        return 2 ** (8 - discretization.bits) / 255.0
    return 1.0 / (2 ** discretization.bits - 1)


# ---- interval rules, one per layer type ----------------------------------------------------------------------

def _sign_bounds(quantizer, low, high):
    """A sign quantizer's output bounds, with values near 0 undecided (float32 may round them either way)."""
    slack = SIGN_SLACK * (1.0 + tf.abs(low)), SIGN_SLACK * (1.0 + tf.abs(high))
    return (tf.cast(quantizer(tf.cast(low - slack[0], tf.float32)), DTYPE),
            tf.cast(quantizer(tf.cast(high + slack[1], tf.float32)), DTYPE))


def _input_quantized(layer, low, high):
    quantizer = getattr(layer, "input_quantizer", None)
    if quantizer is None:
        return low, high
    if getattr(quantizer, "precision", None) != 1:
        raise UnsupportedLayer(f"{layer.name}: no bound rule for its input quantizer {quantizer!r}.")
    return _sign_bounds(quantizer, low, high)


def kernel(layer: tf.keras.layers.Layer) -> tf.Tensor:
    """A Dense or Conv2D layer's kernel as the model uses it (quantized, with XNOR scales), in float64."""
    value = tf.convert_to_tensor(getattr(layer.kernel, "latent_variable", layer.kernel))
    quantizer = getattr(layer, "kernel_quantizer", None)
    if quantizer is not None:
        value = quantizer(value)
    return tf.cast(value, DTYPE)


def _bias(layer):
    return tf.cast(layer.bias, DTYPE) if getattr(layer, "use_bias", False) and layer.bias is not None else 0.0


def _activation(layer, low, high):
    name = getattr(getattr(layer, "activation", None), "__name__", "linear")
    if name == "linear":
        return low, high
    if name == "relu":
        return tf.nn.relu(low), tf.nn.relu(high)
    raise UnsupportedLayer(f"{layer.name}: no bound rule for the activation {name}.")


def _dense(layer, low, high):
    low, high = _input_quantized(layer, low, high)
    w = kernel(layer)
    center, radius = (low + high) / 2, (high - low) / 2
    out_center = tf.matmul(center, w) + _bias(layer)
    out_radius = tf.matmul(radius, tf.abs(w))
    return _activation(layer, out_center - out_radius, out_center + out_radius)


def _conv(layer, low, high):
    low, high = _input_quantized(layer, low, high)
    w = kernel(layer)
    center, radius = (low + high) / 2, (high - low) / 2
    padding = layer.padding.upper()
    if getattr(layer, "pad_values", 0.0) not in (0.0, None):
        raise UnsupportedLayer(f"{layer.name}: no bound rule for padding with {layer.pad_values}.")
    convolve = lambda v, k: tf.nn.conv2d(v, k, layer.strides, padding, dilations=layer.dilation_rate)  # noqa: E731
    out_center = convolve(center, w) + _bias(layer)
    out_radius = convolve(radius, tf.abs(w))
    return _activation(layer, out_center - out_radius, out_center + out_radius)


def batch_norm_affine(layer: tf.keras.layers.BatchNormalization) -> Box:
    """(scale, shift) of a BatchNormalization layer in inference, in float64: y = scale·x + shift."""
    variance = tf.cast(layer.moving_variance, DTYPE)
    scale = tf.math.rsqrt(variance + layer.epsilon)
    if layer.scale:
        scale *= tf.cast(layer.gamma, DTYPE)
    shift = -tf.cast(layer.moving_mean, DTYPE) * scale
    if layer.center:
        shift += tf.cast(layer.beta, DTYPE)
    return scale, shift


def _batch_norm(layer, low, high):
    scale, shift = batch_norm_affine(layer)
    center, radius = (low + high) / 2, (high - low) / 2
    return center * scale + shift - radius * tf.abs(scale), center * scale + shift + radius * tf.abs(scale)


def _monotone(function):
    return lambda layer, low, high: (function(layer, low), function(layer, high))


def _activation_layer(layer, low, high):
    return _activation(layer, low, high)


RULES = {
    lq.layers.QuantDense: _dense,
    tf.keras.layers.Dense: _dense,
    lq.layers.QuantConv2D: _conv,
    tf.keras.layers.Conv2D: _conv,
    tf.keras.layers.BatchNormalization: _batch_norm,
    tf.keras.layers.ReLU: _monotone(lambda layer, v: tf.nn.relu(v)),
    tf.keras.layers.MaxPool2D: _monotone(lambda layer, v: tf.nn.max_pool2d(v, layer.pool_size, layer.strides,
                                                                          layer.padding.upper())),
    tf.keras.layers.GlobalAveragePooling2D: _monotone(lambda layer, v: tf.reduce_mean(v, axis=[1, 2])),
    tf.keras.layers.Flatten: _monotone(lambda layer, v: tf.reshape(v, [tf.shape(v)[0], -1])),
    tf.keras.layers.Identity: _monotone(lambda layer, v: v),
    tf.keras.layers.Activation: _activation_layer,
}


def rule_for(layer: tf.keras.layers.Layer) -> Callable[[tf.keras.layers.Layer, tf.Tensor, tf.Tensor], Box]:
    """The interval rule of `layer`'s type (the most specific registered class)."""
    for cls in type(layer).__mro__:
        if cls in RULES:
            return RULES[cls]
    raise UnsupportedLayer(f"{layer.name}: no bound rule for layers of type {type(layer).__name__}; supported: "
                           f"{', '.join(sorted(c.__name__ for c in RULES))}, Add.")


def _nodes(model):
    """The model's layer calls in execution order."""
    return [node for depth in sorted(model._nodes_by_depth, reverse=True) for node in model._nodes_by_depth[depth]]


def discretization_layer(model: tf.keras.Model) -> InputDiscretization:
    found = [layer for layer in model.layers if isinstance(layer, InputDiscretization)]
    if len(found) != 1:
        raise UnsupportedLayer(f"{model.name} has {len(found)} InputDiscretization layers; certification needs "
                               "exactly one, right after the input.")
    return found[0]


def interval_bounds(model: tf.keras.Model, low: tf.Tensor, high: tf.Tensor,
                    stop_before: tf.keras.layers.Layer | None = None) -> Box:
    """Propagate the level box [low, high] (the discretization's output) through the model; returns the bounds of
    its output, or of the input of the layer `stop_before` (the layer itself not applied)."""
    start = discretization_layer(model)
    values = {}
    for node in _nodes(model):
        layer = node.layer
        if isinstance(layer, tf.keras.layers.InputLayer):
            continue
        inputs = node.keras_inputs
        if layer is stop_before:
            return values[id(inputs[0])]
        if layer is start:
            values[id(node.outputs)] = (low, high)
            continue
        if isinstance(layer, tf.keras.layers.Add):
            bounds = [values[id(t)] for t in inputs]
            values[id(node.outputs)] = (tf.add_n([b[0] for b in bounds]), tf.add_n([b[1] for b in bounds]))
            continue
        values[id(node.outputs)] = rule_for(layer)(layer, *values[id(inputs[0])])
    return values[id(model.outputs[0])]


# ---- the affine tail and margins ----------------------------------------------------------------------------

def _linear(layer):
    return getattr(getattr(layer, "activation", None), "__name__", "linear") == "linear"


def affine_tail(model: tf.keras.Model) -> tuple[tf.keras.layers.Layer, tf.Tensor, tf.Tensor]:
    """(first layer of the tail, W, b): the model's last layers as one affine map logits = h·W + b of the input h of
    the tail's first layer. The tail is the trailing Dense/BatchNormalization/linear layers; a Dense with a sign
    input quantizer starts it (the sign is applied to h first, inside that layer)."""
    classes = int(model.output_shape[-1])
    w, b = tf.eye(classes, dtype=DTYPE), tf.zeros(classes, DTYPE)
    first = None
    for node in reversed([n for n in _nodes(model) if not isinstance(n.layer, tf.keras.layers.InputLayer)]):
        layer = node.layer
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            scale, shift = batch_norm_affine(layer)
            w, b = scale[:, None] * w, tf.linalg.matvec(w, shift, transpose_a=True) + b
        elif isinstance(layer, tf.keras.layers.Dense) and _linear(layer):
            bias = _bias(layer)
            b = (tf.linalg.matvec(w, bias, transpose_a=True) if not isinstance(bias, float) else 0.0) + b
            w = kernel(layer) @ w
        elif not (isinstance(layer, (tf.keras.layers.Activation, tf.keras.layers.Identity)) and _linear(layer)):
            break
        first = layer
        if getattr(layer, "input_quantizer", None) is not None:
            break
    if first is None:
        raise UnsupportedLayer(f"{model.name} does not end in a Dense layer; certification bounds logit margins.")
    return first, w, b


def margin_matrix(w: tf.Tensor, labels: tf.Tensor, num_classes: int) -> tuple[tf.Tensor, tf.Tensor]:
    """Per example, the rows e_y − e_j (j ≠ y) applied to the tail: (batch, classes − 1, features) and the offsets."""
    others = tf.stack([tf.concat([tf.range(j), tf.range(j + 1, num_classes)], 0) for j in range(num_classes)])
    other = tf.gather(others, labels)  # (batch, classes − 1)
    w_t = tf.transpose(w)  # (classes, features)
    return tf.gather(w_t, labels)[:, None, :] - tf.gather(w_t, other), other


def margin_lower_bounds(model: tf.keras.Model, low: tf.Tensor, high: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Lower bounds of logit[y] − logit[j] for every other class j, over the level box, by IBP up to the affine tail
    and the tail's exact linear map: (batch, classes − 1)."""
    first, w, b = affine_tail(model)
    h_low, h_high = interval_bounds(model, low, high, stop_before=first)
    h_low, h_high = _input_quantized(first, h_low, h_high)
    rows, other = margin_matrix(w, labels, int(w.shape[-1]))
    offsets = tf.gather(b, labels)[:, None] - tf.gather(b, other)
    center, radius = (h_low + h_high) / 2, (h_high - h_low) / 2
    return (tf.einsum("bkf,bf->bk", rows, center) - tf.einsum("bkf,bf->bk", tf.abs(rows), radius) + offsets)


def certified(lower_margins: tf.Tensor, logit_scale: TensorLike = 1.0) -> tf.Tensor:
    """Per example: every margin's lower bound clears the slack (the predicted class is y everywhere in the box)."""
    return tf.reduce_all(lower_margins > MARGIN_SLACK * (1.0 + logit_scale), axis=-1)
