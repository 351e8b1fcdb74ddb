import numpy as np
import pytest
import tensorflow as tf

from tfdisc import ops
from tfdisc.layers import InputDiscretization, XnorWeightScale


@pytest.mark.parametrize("bits", [1, 2, 4, 8])
@pytest.mark.parametrize("mode", ops.MODES)
def test_layer_equals_op_and_keeps_shape(bits, mode):
    x = np.random.default_rng(bits).random((2, 5, 5, 3)).astype(np.float32)
    layer = InputDiscretization(bits, mode=mode)
    y = layer(x)
    assert y.shape == x.shape and y.dtype == tf.float32
    assert layer.compute_output_shape(x.shape) == x.shape
    np.testing.assert_array_equal(y.numpy(), ops.discretize(x, bits, mode).numpy())


def test_uint8_input_is_scaled():
    pixels = np.arange(256, dtype=np.uint8).reshape(1, 256)
    np.testing.assert_allclose(InputDiscretization(2)(pixels).numpy(), ops.discretize(pixels / 255.0, 2).numpy())


def test_config_round_trip():
    layer = InputDiscretization(3, mode="round", gradient="zero", name="squeeze")
    clone = tf.keras.layers.deserialize(tf.keras.layers.serialize(layer))
    assert isinstance(clone, InputDiscretization)
    assert (clone.bits, clone.mode, clone.gradient, clone.name) == (3, "round", "zero", "squeeze")
    assert clone.get_config() == layer.get_config()


@pytest.mark.parametrize("gradient", ops.GRADIENTS)
def test_saved_and_reloaded_layer_gives_equal_outputs_and_gradients(tmp_path, gradient):
    inputs = tf.keras.Input((4,))
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(2)(InputDiscretization(2, gradient=gradient)(inputs)))
    path = str(tmp_path / "model")
    model.save(path)
    reloaded = tf.keras.models.load_model(path)
    x = tf.constant(np.random.default_rng(0).random((8, 4)), tf.float32)

    def grad(m):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(m(x))
        return tape.gradient(loss, x).numpy()

    np.testing.assert_array_equal(model(x).numpy(), reloaded(x).numpy())
    np.testing.assert_array_equal(grad(model), grad(reloaded))
    assert (np.abs(grad(model)).max() > 0) == (gradient == "identity")


def test_float_pixels_outside_unit_range_fail_with_a_clear_message():
    layer = InputDiscretization(2)
    message = r"Float pixels must lie in \[0, 1\].*divide 0..255 images by 255"
    with pytest.raises(ValueError, match=message):
        layer(np.full((1, 3), 200.0, np.float32))
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        tf.function(layer)(tf.constant(np.full((1, 3), 200.0, np.float32)))


@pytest.mark.parametrize("kwargs, message", [
    ({"bits": 9}, r"1\.\.8"), ({"bits": 0}, r"1\.\.8"), ({"bits": 2.5}, r"1\.\.8"),
    ({"mode": "ceil"}, "'floor', 'round'"), ({"gradient": "straight"}, "'identity', 'zero'"),
])
def test_bad_arguments_raise_in_init(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InputDiscretization(**{"bits": 2, **kwargs})


def test_xnor_quantizer_scales_sign_by_mean_magnitude_per_output_channel():
    w = tf.constant(np.random.default_rng(0).normal(size=(3, 3, 4, 6)), tf.float32)
    q = XnorWeightScale()(w).numpy()
    alpha = np.abs(w.numpy()).mean(axis=(0, 1, 2))
    np.testing.assert_allclose(q, alpha * np.where(w.numpy() >= 0, 1.0, -1.0), rtol=1e-6)
    assert XnorWeightScale.precision == 1
