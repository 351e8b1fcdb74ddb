"""tfdisc.evaluation.protocols: each protocol against the standard one where they must agree, and apart where not."""

import numpy as np
import pytest
import tensorflow as tf

from tfdisc import evaluation, models
from tfdisc.evaluation import protocols

PIXEL_EPS = [0.0, 2 / 255, 8 / 255]  # on the 8-bit grid: an 8-bit model's discretization changes nothing there


@pytest.fixture(scope="module")
def trained(mnist_small):
    x, y, x_test, y_test = mnist_small
    found = {}
    for bits in (2, 8):
        tf.keras.utils.set_random_seed(0)
        model = models.build_model("fcn2", input_bits=bits, width=64, depth=2)
        model.compile(tf.keras.optimizers.Adam(1e-3), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x[:2000], y[:2000], batch_size=100, epochs=2, verbose=0)
        found[bits] = model
    return found, (x_test[:300], y_test[:300])


def test_the_standard_protocol_is_the_fgsm_sweep(trained):
    found, data = trained
    for model in found.values():
        ours = protocols.protocol_sweep(model, data, [0.0, 0.1, 0.3], "standard")
        assert ours["accuracy"] == evaluation.sweep(model, data, [0.0, 0.1, 0.3])["accuracy"]


@pytest.mark.parametrize("protocol", ["perturb_discretized", "gradient_without_discretization"])
def test_on_the_8bit_grid_an_8bit_model_sees_no_difference(trained, protocol):
    found, data = trained
    standard = protocols.protocol_sweep(found[8], data, PIXEL_EPS, "standard")
    assert protocols.protocol_sweep(found[8], data, PIXEL_EPS, protocol)["accuracy"] == standard["accuracy"]


def test_normalized_eps_is_a_pixel_budget_of_eps_times_std(trained):
    found, data = trained
    normalized = protocols.protocol_sweep(found[8], data, [0.0, 0.25, 0.5], "normalized_eps", dataset="mnist")
    pixels = protocols.protocol_sweep(found[8], data, [0.0, 0.25 * 0.3081, 0.5 * 0.3081], "standard")
    np.testing.assert_allclose(normalized["accuracy"], pixels["accuracy"], atol=0.01)


def test_without_a_second_discretization_two_bits_no_longer_protect(trained):
    """Below one 2-bit step the standard attack cannot move most pixels; added after the discretization, it can."""
    found, data = trained
    standard = protocols.protocol_sweep(found[2], data, [0.1], "standard")["accuracy"][0]
    after = protocols.protocol_sweep(found[2], data, [0.1], "perturb_discretized")["accuracy"][0]
    assert after < standard - 0.1


def test_bad_arguments_are_named(trained):
    found, data = trained
    with pytest.raises(ValueError, match="Unknown protocol 'pgd'"):
        protocols.protocol_sweep(found[8], data, [0.1], "pgd")
    with pytest.raises(ValueError, match="needs the data set's standard deviation"):
        protocols.protocol_sweep(found[8], data, [0.1], "normalized_eps")
