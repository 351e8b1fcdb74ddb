import contextlib
import io

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from tfdisc import models, presets
from tfdisc.layers import InputDiscretization, XnorWeightScale


def _sign(x):
    return np.where(x >= 0, 1.0, -1.0)  # Larq's sign: sign(0) = +1


FAST = {("fcn2", "full"), ("fcn2", "bnn"), ("fcn2", "xnor"), ("alexnet", "bnn")}  # the rest take 5-60 s each
# TensorFlow keeps the memory of a model trained in graph mode after the model is gone (0.4-4 GiB for these),
# so they train in a pytest process of their own: the suite's peak stays that of one model.
ISOLATED = {"fcn1", "alexnet", "alexnet_imagenet"}


def _marks(arch, precision):
    return ([] if (arch, precision) in FAST else [pytest.mark.slow]) + ([pytest.mark.isolated] if arch in ISOLATED
                                                                        else [])


@pytest.mark.parametrize("arch, precision", [pytest.param(arch, precision, marks=_marks(arch, precision))
                                             for arch in models.ARCHITECTURES for precision in models.PRECISIONS])
def test_every_arch_and_precision_builds_outputs_logits_and_trains_one_step(arch, precision):
    model = models.build_model(arch, precision=precision, input_bits=2)
    preset = presets.get(models.ARCHITECTURES[arch].dataset)
    input_shape, num_classes = preset.image_shape, preset.num_classes
    assert model.name == f"{arch}_{precision}_2b"
    assert isinstance(model.layers[1], InputDiscretization) and model.layers[1].bits == 2
    assert model.output_shape == (None, num_classes)
    last = model.layers[-1]
    assert getattr(last, "activation", tf.keras.activations.linear) is tf.keras.activations.linear

    x = np.random.default_rng(0).random((2, *input_shape)).astype(np.float32)
    y = np.array([0, 1])
    if arch == "fcn1":  # the builder of FCN2, 10× wider: a step would show nothing new and needs 2.7-4.4 GiB
        assert model.count_params() > 118e6 and np.isfinite(model(x, training=False).numpy()).all()
        return
    # SGD: one step shows the model trains; Adam's two moments would triple the memory of ImageNet-AlexNet
    model.compile(tf.keras.optimizers.SGD(1e-3), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    watched = [model.trainable_weights[0], model.trainable_weights[-1]]  # copies of all would cost 0.24 GB
    before = [w.numpy() for w in watched]
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, watched))
    logits = model(x, training=False).numpy()
    assert logits.shape == (2, num_classes) and np.isfinite(logits).all()
    assert (logits < 0).any() or not np.allclose(logits.sum(axis=-1), 1.0)  # logits, not probabilities


def _quant_layers(model):
    return [layer for layer in model.layers if isinstance(layer, (lq.layers.QuantDense, lq.layers.QuantConv2D))]


def test_bnn_hidden_layers_compute_with_plus_minus_one_weights_and_activations():
    model = models.build_model("fcn2", precision="bnn", width=32)
    first, hidden = _quant_layers(model)[:2]
    assert first.input_quantizer is None  # the first layer sees the discretized pixels
    x = np.random.default_rng(0).normal(size=(5, 32)).astype(np.float32)
    latent = tf.identity(hidden.kernel)
    kernel = hidden.kernel_quantizer(latent).numpy()
    assert set(np.unique(kernel)) <= {-1.0, 1.0}
    np.testing.assert_allclose(hidden(x).numpy(), _sign(x) @ _sign(latent.numpy()), rtol=1e-6)


def test_xnor_keeps_first_and_last_layers_full_precision_and_scales_hidden_kernels():
    layers = _quant_layers(models.build_model("fcn2", precision="xnor", width=32))
    assert layers[0].kernel_quantizer is None and layers[-1].kernel_quantizer is None
    hidden = layers[1]
    assert isinstance(hidden.kernel_quantizer, XnorWeightScale)
    kernel = tf.identity(hidden.kernel).numpy()
    x = np.random.default_rng(0).normal(size=(5, 32)).astype(np.float32)
    expected = (_sign(x) @ _sign(kernel)) * np.abs(kernel).mean(axis=0)
    np.testing.assert_allclose(hidden(x).numpy(), expected, rtol=1e-5, atol=1e-5)


def _binarized_mac_share(model):
    profile = lq.models.ModelProfile(model)
    return profile.op_count("mac", 1) / profile.op_count("mac")


@pytest.mark.isolated  # builds FCN1 and AlexNet
def test_summary_reports_the_expected_share_of_binarized_macs():
    width, depth = 600, 4
    # FCN2-BNN: the first layer has ±1 kernels but real inputs, so its MACs are 32-bit.
    hidden_and_last = (depth - 1) * width * width + width * 10
    expected = hidden_and_last / (784 * width + hidden_and_last)
    assert _binarized_mac_share(models.build_model("fcn2", precision="bnn")) == pytest.approx(expected)
    xnor = (depth - 1) * width * width / (784 * width + (depth - 1) * width * width + width * 10)
    assert _binarized_mac_share(models.build_model("fcn2", precision="xnor")) == pytest.approx(xnor)
    assert _binarized_mac_share(models.build_model("fcn1", precision="bnn")) > 0.95
    assert _binarized_mac_share(models.build_model("alexnet", precision="bnn")) > 0.98
    assert _binarized_mac_share(models.build_model("fcn2", precision="full")) == 0
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        lq.models.summary(models.build_model("fcn2", precision="bnn"))
    assert "Ratio of MACs that are binarized" in out.getvalue()


@pytest.mark.isolated  # builds CIFAR AlexNet-BNN (52 M parameters)
def test_bnn_alexnet_is_inflated_three_times():
    def conv_widths(precision):
        return [layer.filters for layer in _quant_layers(models.build_model("alexnet", precision=precision))
                if isinstance(layer, lq.layers.QuantConv2D)]

    assert conv_widths("full") == [64, 192, 384, 256, 256]
    assert conv_widths("bnn") == [192, 576, 1152, 768, 256]


@pytest.mark.parametrize("arch, precision, options", [
    ("fcn2", "bnn", {"width": 32, "depth": 2}),
    ("fcn2", "xnor", {"width": 32, "depth": 2}),
    ("alexnet", "bnn", {"inflation": 1, "fc_units": 16}),
])
def test_quantized_kernels_copy_gives_the_same_logits_and_input_gradients(arch, precision, options):
    from tfdisc import attacks

    model = models.build_model(arch, precision=precision, input_bits=2, **options)
    copy = models.with_quantized_kernels(model)
    own = [layer for layer in copy.layers if not any(layer is other for other in model.layers)]
    assert [layer.name for layer in own[1:]] == [layer.name for layer in _quant_layers(model) if layer.kernel_quantizer]
    assert all(layer.kernel_quantizer is None and not isinstance(layer.kernel, lq.quantized_variable.QuantizedVariable)
               for layer in own[1:])  # own[0] is the copy's InputLayer
    x = tf.random.stateless_uniform([4, *model.input_shape[1:]], seed=[1, 2])
    y = tf.constant([0, 1, 2, 3], tf.int64)

    def same_as_model():
        for a, b in zip(attacks.logits_and_gradient(model, x, y), attacks.logits_and_gradient(copy, x, y)):
            np.testing.assert_array_equal(a.numpy(), b.numpy())

    same_as_model()
    for layer in _quant_layers(model):  # training moves the latent weights; the copy follows once synced
        if layer.kernel_quantizer:
            layer.kernel.latent_variable.assign(tf.roll(layer.kernel.latent_variable, 1, axis=-1))
    with pytest.raises(AssertionError):
        same_as_model()
    models.sync_quantized_kernels(model, copy)
    same_as_model()


def test_quantized_kernels_copy_of_a_full_precision_model_is_the_model():
    model = models.build_model("fcn2", width=8, depth=1)
    assert models.with_quantized_kernels(model) is model


def test_overrides_change_the_architecture():
    model = models.build_model("fcn1", width=10, depth=2, input_shape=(8, 8, 1), num_classes=3)
    assert [layer.units for layer in _quant_layers(model)] == [10, 10, 3]


@pytest.mark.parametrize("kwargs, message", [
    ({"arch": "vgg16"}, "Unknown arch 'vgg16'; valid values are 'fcn1', 'fcn2'"),
    ({"arch": "fcn2", "precision": "ternary"}, "'full', 'bnn', 'xnor'"),
    ({"arch": "fcn2", "input_bits": 9}, r"1\.\.8"),
    ({"arch": "fcn2", "filters": 3}, r"Unknown option\(s\) \['filters'\] for arch 'fcn2'; valid options are \['depth', 'width'\]"),
    ({"arch": "fcn2", "num_classes": 1}, "num_classes must be an int >= 2"),
])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        models.build_model(**kwargs)
