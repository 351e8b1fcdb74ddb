import numpy as np
import pytest
import tensorflow as tf

from tfdisc import ops

PIXELS = np.arange(256, dtype=np.uint8)


@pytest.mark.parametrize("bits", range(1, 9))
def test_floor_mode_matches_the_study_formula(bits):
    expected = (PIXELS // 2 ** (8 - bits)) * 2 ** (8 - bits) / 255.0
    from_float = ops.discretize(PIXELS / 255.0, bits).numpy()
    from_uint8 = ops.discretize(PIXELS, bits).numpy()
    np.testing.assert_allclose(from_float, expected, atol=1e-6)
    np.testing.assert_allclose(from_uint8, expected, atol=1e-6)
    assert from_float.dtype == np.float32
    assert len(np.unique(from_float)) == 2**bits
    np.testing.assert_allclose(np.unique(from_float), ops.levels(bits), atol=1e-6)


def test_two_bits_keep_the_four_documented_levels():
    np.testing.assert_allclose(ops.levels(2), np.array([0, 64, 128, 192]) / 255.0)


def test_eight_bits_are_the_identity_on_the_8bit_grid():
    np.testing.assert_allclose(ops.discretize(PIXELS / 255.0, 8).numpy(), PIXELS / 255.0, atol=1e-6)


@pytest.mark.parametrize("bits", range(1, 9))
def test_round_mode_is_feature_squeezing(bits):
    x = np.linspace(0, 1, 1001, dtype=np.float32)
    expected = np.round(x * (2**bits - 1)) / (2**bits - 1)
    np.testing.assert_allclose(ops.discretize(x, bits, mode="round").numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(ops.levels(bits, "round"), np.linspace(0, 1, 2**bits), atol=1e-12)


@pytest.mark.parametrize("mode", ops.MODES)
@pytest.mark.parametrize("gradient, expected", [("identity", 1.0), ("zero", 0.0)])
@pytest.mark.parametrize("compiled", [False, True])
def test_gradients_are_exact(mode, gradient, expected, compiled):
    x = tf.constant(np.random.default_rng(0).random((3, 5)), tf.float32)
    weights = tf.reshape(tf.range(15.0), (3, 5))

    def grad(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(ops.discretize(x, 2, mode, gradient) * weights)
        return tape.gradient(loss, x)

    g = (tf.function(grad) if compiled else grad)(x)
    np.testing.assert_array_equal(g.numpy(), expected * weights.numpy())


@pytest.mark.parametrize("bits", [0, 9, -1, 2.0, "2", True, None])
def test_bad_bits_raise(bits):
    with pytest.raises(ValueError, match=r"bits must be an int in 1\.\.8"):
        ops.discretize(np.zeros(3, np.float32), bits)


def test_bad_mode_and_gradient_name_the_valid_values():
    with pytest.raises(ValueError, match="'floor', 'round'"):
        ops.discretize(np.zeros(3, np.float32), 2, mode="ceil")
    with pytest.raises(ValueError, match="'identity', 'zero'"):
        ops.discretize(np.zeros(3, np.float32), 2, gradient="bpda")


def test_non_pixel_dtype_raises():
    with pytest.raises(ValueError, match="uint8 0..255 or float"):
        ops.discretize(np.zeros(3, np.int32), 2)
