"""The study's architectures in full, BNN and XNOR precision; every model returns logits.

Precisions (Larq layers throughout; `full` simply sets no quantizers):
- full: float weights and activations, BatchNorm + ReLU.
- bnn: BinaryNet. ±1 kernels (`ste_sign`, `weight_clip`) in every layer, ±1 inputs in every
  layer but the first (which sees the discretized pixels), BatchNorm(scale=False) and the
  next layer's `ste_sign` as the activation; a BatchNorm on the logits.
- xnor: XNOR-Net. Hidden layers as in bnn with kernels scaled per output channel
  (`XnorWeightScale`); the first and last layers stay full precision.
"""

import collections
import inspect
import os

import larq as lq
import tensorflow as tf

from tfdisc import checks, ops, presets
from tfdisc.layers import InputDiscretization, XnorWeightScale
from tfdisc.steps import CheckedSteps

PRECISIONS = ("full", "bnn", "xnor")
INPUT_NAME, OUTPUT_NAME = "pixels", "logits"  # of every exported format
INPUT_DTYPES = ("float32", "uint8")


def _binarizes_input(precision, position):
    """Whether the layer at `position` ("first", "hidden", "last") takes ±1 inputs."""
    return position != "first" and (precision == "bnn" or (precision == "xnor" and position == "hidden"))


def _quant_kwargs(precision, position):
    """Larq layer arguments for one layer of the network."""
    if precision == "full" or (precision == "xnor" and position != "hidden"):
        return {}
    return {
        "input_quantizer": "ste_sign" if _binarizes_input(precision, position) else None,
        "kernel_quantizer": XnorWeightScale() if precision == "xnor" else "ste_sign",
        "kernel_constraint": "weight_clip",
        "use_bias": False,
    }


def _dense(x, units, precision, position):
    return lq.layers.QuantDense(units, **_quant_kwargs(precision, position))(x)


def _conv(x, filters, kernel_size, precision, position, strides=1, padding="same"):
    return lq.layers.QuantConv2D(
        filters, kernel_size, strides=strides, padding=padding, **_quant_kwargs(precision, position)
    )(x)


def _normalize(x, precision, next_position="hidden"):
    """BatchNorm, then ReLU unless the next layer binarizes its input (its sign is the activation)."""
    binary_next = _binarizes_input(precision, next_position)
    x = tf.keras.layers.BatchNormalization(momentum=0.9, scale=not binary_next)(x)
    return x if binary_next else tf.keras.layers.ReLU()(x)


def _logits(x, precision, num_classes):
    x = _dense(x, num_classes, precision, "last")
    if precision == "bnn":  # BinaryNet: ±1 products sum to large integers; normalize them.
        x = tf.keras.layers.BatchNormalization(momentum=0.9, scale=False)(x)
    return x


def fcn(x: tf.Tensor, precision: str, num_classes: int, *, depth: int, width: int) -> tf.Tensor:
    """MNIST fully connected net: 784-width×depth-classes (FCN1: 6144×4, FCN2: 600×4)."""
    x = tf.keras.layers.Flatten()(x)
    for i in range(depth):
        x = _dense(x, width, precision, "first" if i == 0 else "hidden")
        x = _normalize(x, precision, "last" if i == depth - 1 else "hidden")
    return _logits(x, precision, num_classes)


def alexnet(x: tf.Tensor, precision: str, num_classes: int, *, inflation: int | None = None,
            fc_units: int = 4096) -> tf.Tensor:
    """CIFAR-10 AlexNet after BinaryNet.pytorch's `alexnet_binary`, adapted to 32×32 inputs.

    BinaryNet's conv widths 64·r, 192·r, 384·r, 256·r, 256 (r = `inflation`, BinaryNet's
    ratioInfl: 3 for bnn, 1 otherwise) and two `fc_units` FC layers are kept. Adaptation:
    the ImageNet stem (11×11, stride 4) becomes a 5×5 stride-1 conv, and the three 3×3/2
    max-pools use "same" padding, so 32×32 maps shrink to 4×4 (4096 features) before the FCs.
    """
    r = inflation if inflation is not None else (3 if precision == "bnn" else 1)
    stages = [(64 * r, 5, True), (192 * r, 5, True), (384 * r, 3, False), (256 * r, 3, False), (256, 3, True)]
    for i, (filters, kernel_size, pool) in enumerate(stages):
        x = _conv(x, filters, kernel_size, precision, "first" if i == 0 else "hidden")
        if pool:
            x = tf.keras.layers.MaxPool2D(3, 2, padding="same")(x)
        x = _normalize(x, precision)
    x = tf.keras.layers.Flatten()(x)
    for i in range(2):
        x = _dense(x, fc_units, precision, "hidden")
        x = _normalize(x, precision, "last" if i == 1 else "hidden")
    return _logits(x, precision, num_classes)


def resnet20(x: tf.Tensor, precision: str, num_classes: int, *, blocks_per_stage: int = 3,
             filters: tuple[int, int, int] = (16, 32, 64)) -> tf.Tensor:
    """CIFAR ResNet-20 (He et al. 2016): 3 stages × 3 basic blocks of 16/32/64 filters.

    In bnn/xnor the block convolutions are binarized and the residual stream stays real-valued
    (each conv binarizes its own input); the 1×1 projection shortcuts stay full precision.
    """
    x = _conv(x, filters[0], 3, precision, "first")
    x = _normalize(x, precision)
    for stage, width in enumerate(filters):
        for block in range(blocks_per_stage):
            strides = 2 if stage > 0 and block == 0 else 1
            last_block = stage == len(filters) - 1 and block == blocks_per_stage - 1
            y = _conv(x, width, 3, precision, "hidden", strides=strides)
            y = _normalize(y, precision)
            y = _conv(y, width, 3, precision, "hidden")
            y = tf.keras.layers.BatchNormalization(momentum=0.9)(y)
            shortcut = x
            if strides != 1 or x.shape[-1] != width:
                shortcut = tf.keras.layers.Conv2D(width, 1, strides=strides, use_bias=False)(x)
                shortcut = tf.keras.layers.BatchNormalization(momentum=0.9)(shortcut)
            x = tf.keras.layers.Add()([y, shortcut])
            if not _binarizes_input(precision, "last" if last_block else "hidden"):
                x = tf.keras.layers.ReLU()(x)
    x = tf.keras.layers.GlobalAveragePooling2D()(x)
    return _logits(x, precision, num_classes)


def alexnet_imagenet(x: tf.Tensor, precision: str, num_classes: int, *, fc_units: int = 4096) -> tf.Tensor:
    """ImageNet AlexNet as in XNOR-Net-PyTorch: 96-256-384-384-256 convs, two FC layers.

    227×227 inputs (55→27→13→6 maps, 9216 features). With precision="xnor" the first conv
    and the last layer are full precision, as in XNOR-Net. Dropout is left out.
    """
    convs = [(96, 11, 4, "valid", True), (256, 5, 1, "same", True), (384, 3, 1, "same", False),
             (384, 3, 1, "same", False), (256, 3, 1, "same", True)]
    for i, (filters, kernel_size, strides, padding, pool) in enumerate(convs):
        x = _conv(x, filters, kernel_size, precision, "first" if i == 0 else "hidden", strides, padding)
        x = _normalize(x, precision)
        if pool:
            x = tf.keras.layers.MaxPool2D(3, 2)(x)
    x = tf.keras.layers.Flatten()(x)
    for i in range(2):
        x = _dense(x, fc_units, precision, "hidden")
        x = _normalize(x, precision, "last" if i == 1 else "hidden")
    return _logits(x, precision, num_classes)


Architecture = collections.namedtuple("Architecture", "builder options dataset epochs")
Architecture.__doc__ = "A builder, its fixed keyword options, the data set it is built for, and the study's epochs."

ARCHITECTURES = {
    "fcn1": Architecture(fcn, {"depth": 4, "width": 6144}, "mnist", 20),
    "fcn2": Architecture(fcn, {"depth": 4, "width": 600}, "mnist", 10),
    "alexnet": Architecture(alexnet, {}, "cifar10", 40),
    "resnet20": Architecture(resnet20, {}, "cifar100", 164),
    "alexnet_imagenet": Architecture(alexnet_imagenet, {}, "imagenet2012", 50),
}


@tf.keras.utils.register_keras_serializable(package="tfdisc")
class Classifier(CheckedSteps, tf.keras.Model):
    """A functional Keras model over pixels that returns logits, as `build_model` makes it.

    Takes float pixels in [0, 1] or uint8 0..255 (scaled to [0, 1] before Keras casts to the
    float `Input`). `fit`, `evaluate` and `predict` check every batch's pixels and labels, also
    with `compile(jit_compile=True)` (see `tfdisc.steps.CheckedSteps`); where no check can raise
    (inside XLA or a flatbuffer), an example with NaN or out-of-range pixels gets NaN logits.
    """

    def call(self, inputs, training=None, mask=None):
        # The dtype here (Keras would cast ints to float silently); the values in InputDiscretization.
        pixels = checks.pixels(inputs, check_values=False)
        logits = super().call(pixels, training=training, mask=mask)
        # Where no error can be raised (XLA, TFLite), a ±1 activation would turn NaN back into a sign:
        # mark the examples with bad pixels again on the logits.
        return checks.nan_where_invalid(pixels, logits)

    def save(self, filepath, overwrite=True, save_format=None, **kwargs):
        """Keras's `save`; a SavedModel's serving signature takes `pixels` and returns `logits` unless
        `signatures` is given (see `tfdisc.export`)."""
        path = str(filepath)
        if save_format in (None, "tf") and not path.endswith((".h5", ".keras")):
            kwargs.setdefault("signatures", {"serving_default": serving_function(self)})
        return super().save(filepath, overwrite=overwrite, save_format=save_format, **kwargs)


def serving_function(model: tf.keras.Model, input_dtype: str = "float32") -> tf.types.experimental.GenericFunction:
    """A `tf.function` pixels -> {"logits": ...} over `model`, for batches of any size."""
    checks.choice("input_dtype", input_dtype, INPUT_DTYPES)
    spec = tf.TensorSpec((None,) + tuple(model.input_shape[1:]), input_dtype, name=INPUT_NAME)

    @tf.function(input_signature=[spec])
    def serve(pixels):
        return {OUTPUT_NAME: model(pixels, training=False)}

    return serve


def build_model(arch: str, *, precision: str = "full", input_bits: int = 8, input_mode: str = "floor",
                input_shape: tuple | None = None, num_classes: int | None = None, **overrides) -> "Classifier":
    """Build `arch` as an uncompiled `Classifier` named e.g. "fcn1_bnn_2b".

    The first layer is `InputDiscretization(input_bits, mode=input_mode)`; inputs are float pixels in [0, 1] (or
    uint8); the output is logits. Under a mixed-precision Keras policy (`tfdisc.cpu`) the layers compute in its
    dtype; the input discretization and the logits stay float32.

    # Arguments
        arch: one of `ARCHITECTURES`: "fcn1", "fcn2" (MNIST), "alexnet" (CIFAR-10), "resnet20" (CIFAR-100),
            "alexnet_imagenet".
        precision: "full", "bnn" (BinaryNet: ±1 weights and activations) or "xnor" (XNOR-Net scales).
        input_bits: bits the discretization keeps, 1..8.
        input_mode: "floor" (the study's rule) or "round" (round-to-nearest levels over [0, 1]).
        input_shape, num_classes: default to the data set the architecture is built for (`tfdisc.presets`).
        **overrides: the builder's keyword arguments (`width=100, depth=2` for the FCNs, `fc_units=512` for the
            AlexNets, `filters=(8, 16, 32)` for ResNet-20).

    # Returns
        A `Classifier` (a `tf.keras.Model`) that checks its input on every execution path.
    """
    checks.choice("arch", arch, tuple(ARCHITECTURES))
    checks.choice("precision", precision, PRECISIONS)
    checks.bits(input_bits)
    checks.choice("input_mode", input_mode, ops.MODES)
    builder, options, dataset, _ = ARCHITECTURES[arch]
    allowed = [p.name for p in inspect.signature(builder).parameters.values() if p.kind == p.KEYWORD_ONLY]
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ValueError(f"Unknown option(s) {unknown} for arch {arch!r}; valid options are {allowed}.")
    num_classes = presets.get(dataset).num_classes if num_classes is None else num_classes
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"num_classes must be an int >= 2; got {num_classes!r}.")
    input_shape = tuple(presets.get(dataset).image_shape if input_shape is None else input_shape)

    inputs = tf.keras.Input(shape=input_shape, name="pixels")
    x = InputDiscretization(input_bits, mode=input_mode, name="input_discretization")(inputs)
    logits = builder(x, precision, num_classes, **{**options, **overrides})
    if logits.dtype != tf.float32:  # a mixed-precision policy: logits (and so losses and attacks) stay float32
        logits = tf.keras.layers.Activation("linear", dtype="float32", name="float32_logits")(logits)
    suffix = "" if input_mode == "floor" else f"_{input_mode}"
    return Classifier(inputs, logits, name=f"{arch}_{precision}_{input_bits}b{suffix}")


def discretization_gradient(model: tf.keras.Model) -> str | None:
    """The `gradient` mode of the model's InputDiscretization layers: one mode, "mixed", or None if it has none."""
    modes = {layer.gradient for layer in model.submodules if isinstance(layer, InputDiscretization)}
    return modes.pop() if len(modes) == 1 else (None if not modes else "mixed")


def with_input_gradient(model: tf.keras.Model, gradient: str) -> tf.keras.Model:
    """`model` with every InputDiscretization passing gradients as `gradient` ("identity" or "zero").

    A new model object that shares every other layer (and so every weight) with `model`; `model`
    itself, and every function compiled from it, keep their own mode. Returns `model` unchanged
    when it already uses `gradient`.
    """
    checks.choice("gradient", gradient, ops.GRADIENTS)
    if discretization_gradient(model) in (gradient, None):
        return model

    def reuse_or_switch(layer):
        if isinstance(layer, InputDiscretization):
            return InputDiscretization.from_config({**layer.get_config(), "gradient": gradient})
        return layer

    return tf.keras.models.clone_model(model, clone_function=reuse_or_switch)


def without_discretization(model: tf.keras.Model) -> tf.keras.Model:
    """`model` with its InputDiscretization layers replaced by identities (the other layers shared): what a
    protocol that perturbs already-discretized images feeds them to (`tfdisc.evaluation.protocols`)."""
    if discretization_gradient(model) is None:
        return model
    return tf.keras.models.clone_model(model, clone_function=lambda layer: tf.keras.layers.Identity(name=layer.name)
                                       if isinstance(layer, InputDiscretization) else layer)


def discretization_of(model: tf.keras.Model) -> InputDiscretization | None:
    """The first InputDiscretization layer of `model`, or None."""
    return next((layer for layer in model.submodules if isinstance(layer, InputDiscretization)), None)


def with_quantized_kernels(model: tf.keras.Model) -> tf.keras.Model:
    """A copy of `model` for attacks, whose binarized (or XNOR-scaled) kernels are quantized once, not per call.

    Same logits and input gradients: a kernel quantizer acts on weights only, and input quantizers
    (their straight-through gradients) stay. An attack calls the model thousands of times; FCN1-BNN
    re-binarizing its 118 M latent weights each time spends most of a small batch's forward pass on
    it. Layers without a kernel quantizer are shared; the copy holds the quantized kernels as float
    variables, so call `sync_quantized_kernels(model, copy)` after `model`'s weights change. Returns
    `model` itself when no top-level layer quantizes its kernel.
    """
    if not any(getattr(layer, "kernel_quantizer", None) for layer in model.layers):
        return model

    def quantize_once(layer):
        if not getattr(layer, "kernel_quantizer", None):
            return layer
        return layer.__class__.from_config({**layer.get_config(), "kernel_quantizer": None, "kernel_constraint": None})

    copy = tf.keras.models.clone_model(model, clone_function=quantize_once)
    sync_quantized_kernels(model, copy)
    return copy


def sync_quantized_kernels(model: tf.keras.Model, copy: tf.keras.Model) -> None:
    """Set the kernels (and other weights) of `copy` (`with_quantized_kernels(model)`) from `model`'s."""
    for source, target in zip(model.layers, copy.layers):
        if getattr(source, "kernel_quantizer", None):
            for weight, value in zip(target.weights, source.weights):
                weight.assign(tf.convert_to_tensor(getattr(value, "latent_variable", value)))
            quantized = source.kernel_quantizer(tf.convert_to_tensor(source.kernel.latent_variable))
            # Under a mixed-precision policy the quantizer computes in 16 bits; ±1 and scales survive the cast.
            target.kernel.assign(tf.cast(quantized, target.kernel.dtype))


def load(path: str, what: str = "--model", *, trust: bool = False) -> tf.keras.Model:
    """A Keras SavedModel, or the `saved_model/` of a run directory; ValueError naming `what` if there is none.

    Unless `trust` is True, the model is scanned first (`tfdisc.scan`): one that names a layer class outside
    Keras's, Larq's and tfdisc's own (a `Lambda` above all) or holds a graph op on TensorFlow's deny list for
    untrusted SavedModels is refused with `tfdisc.scan.UntrustedModelError`, before anything in it runs.
    """
    from tfdisc import scan  # imports Keras's and Larq's class registries

    path = str(path)
    candidate = os.path.join(path, "saved_model")
    path = candidate if os.path.isdir(candidate) else path
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ValueError(f"{what}: no SavedModel at {path}; give a run directory with saved_model/ or a SavedModel.")
    if not os.path.isfile(os.path.join(path, "keras_metadata.pb")):
        raise ValueError(f"{what}: {path} holds a SavedModel without Keras metadata (an interrupted export, or not a "
                         "Keras model); export it again with model.save(path).")
    if not trust:
        scan.check_trusted(path, what)
    return tf.keras.models.load_model(path, compile=False)
