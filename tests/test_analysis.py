import numpy as np
import pytest
import tensorflow as tf

from tfdisc import analysis, attacks, models

EPS = [0.0, 0.1, 0.3]


def _relu_output(model, x):
    """The first ReLU's output, found by layer type: an independent route to the same activations."""
    relu = next(layer for layer in model.layers if isinstance(layer, tf.keras.layers.ReLU))
    return tf.keras.Model(model.inputs, relu.output)(x).numpy().reshape(len(x), -1)


def test_full_precision_norms_equal_a_direct_computation(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    x, y = x[:200], y[:200]
    result = analysis.activation_l1(trained_fcn, (x, y), EPS)
    assert result["eps"] == pytest.approx(EPS) and result["units"] == 64 and result["examples"] == 200
    clean = _relu_output(trained_fcn, x)
    for i, eps in enumerate(EPS):
        adversarial = _relu_output(trained_fcn, attacks.fast_gradient_method(trained_fcn, x, eps, y=y))
        assert result["clean_l1"][i] == pytest.approx(np.abs(clean).sum(1).mean(), rel=1e-5)
        assert result["adversarial_l1"][i] == pytest.approx(np.abs(adversarial).sum(1).mean(), rel=1e-5)
        assert result["change_l1"][i] == pytest.approx(np.abs(adversarial - clean).sum(1).mean(), rel=1e-4, abs=1e-6)
    assert result["change_l1"][0] == 0 and result["change_l1"][1] < result["change_l1"][2]


def test_bnn_activations_are_the_signs_the_next_layer_sees(mnist_small):
    _, _, x, y = mnist_small
    model = models.build_model("fcn2", precision="bnn", width=32, depth=2)
    result = analysis.activation_l1(model, (x[:100], y[:100]), EPS)
    assert result["units"] == 32
    assert result["clean_l1"] == pytest.approx([32.0] * 3) and result["adversarial_l1"] == pytest.approx([32.0] * 3)
    flips = np.asarray(result["change_l1"]) * 100 / 2  # each flipped sign changes |a(x_adv) - a(x)| by 2
    np.testing.assert_allclose(flips, np.round(flips), atol=1e-3)
    assert flips[0] == 0 and flips[2] > 0


def test_masked_gradient_moves_nothing(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    model = models.build_model("fcn2", input_bits=2, width=32, depth=2)
    result = analysis.activation_l1(model, (x[:50], y[:50]), [0.1], gradient="zero")
    assert result["gradient"] == "zero" and result["change_l1"] == [0.0]


@pytest.mark.parametrize("call, message", [
    (lambda m, x, y: analysis.activation_l1(m, (x, y), [1.5]), r"eps values must be finite numbers in \[0, 1\]"),
    (lambda m, x, y: analysis.activation_l1(m, (x * 255, y), [0.1]), r"Float pixels must lie in \[0, 1\]"),
    (lambda m, x, y: analysis.activation_l1(m, (x, y + 10), [0.1]), r"[Ll]abel"),
    (lambda m, x, y: analysis.first_hidden_activations(tf.keras.Sequential([
        tf.keras.Input((28, 28, 1)), tf.keras.layers.Flatten(), tf.keras.layers.Dense(10)])), "needs a hidden layer"),
])
def test_bad_input_is_named(trained_fcn, mnist_small, call, message):
    _, _, x, y = mnist_small
    with pytest.raises(ValueError, match=message):
        call(trained_fcn, x[:20], y[:20])
