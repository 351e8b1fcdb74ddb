"""tfdisc.evaluation.sweeps: FGSM accuracy over many ε from one input gradient per batch."""

import logging

import numpy as np
import pytest
import tensorflow as tf

from helpers import accuracy
from tfdisc import attacks, evaluation, models

EPS = [0.0, 0.05, 0.1, 0.2, 0.3]



def test_sweep_equals_per_eps_fgsm_accuracy(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    result = evaluation.sweep(trained_fcn, (x, y), EPS)
    expected = [accuracy(trained_fcn, attacks.fast_gradient_method(trained_fcn, x, e, y=y), y) for e in EPS]
    assert result["eps"] == EPS and result["attack"] == "fgsm" and result["gradient"] == "identity"
    assert result["examples"] == len(x)
    np.testing.assert_allclose(result["accuracy"], expected, atol=1e-9)
    assert result["accuracy"][0] == pytest.approx(accuracy(trained_fcn, x, y)) == result["clean_accuracy"]
    assert all(a >= b for a, b in zip(result["accuracy"], result["accuracy"][1:]))


def test_sweep_accepts_datasets_and_uint8_arrays(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    from_arrays = evaluation.sweep(trained_fcn, (x, y), EPS)
    from_dataset = evaluation.sweep(trained_fcn, tf.data.Dataset.from_tensor_slices((x, y)).batch(97), EPS)
    from_uint8 = evaluation.sweep(trained_fcn, (np.round(x * 255).astype(np.uint8), y), [0.0])
    np.testing.assert_allclose(from_dataset["accuracy"], from_arrays["accuracy"], atol=1e-9)
    assert from_uint8["accuracy"][0] == from_arrays["accuracy"][0]


def test_new_eps_and_batch_sizes_do_not_retrace(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    sweeper = evaluation.FgsmSweep(trained_fcn)
    for eps in ([0.0, 0.1], [0.2, 0.3], [0.05, 0.15]):
        sweeper(tf.data.Dataset.from_tensor_slices((x, y)).batch(128), eps)  # last batch is smaller
    assert sweeper._totals.experimental_get_tracing_count() == 1


def test_xla_sweep_agrees_with_graph_mode(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    graph = evaluation.FgsmSweep(trained_fcn)((x, y), EPS)
    xla = evaluation.FgsmSweep(trained_fcn, jit_compile=True)((x, y), EPS)
    assert xla["clean_accuracy"] == graph["clean_accuracy"]
    # XLA's fused arithmetic may flip the sign of a gradient component that sits at 0: one example at most.
    np.testing.assert_allclose(xla["accuracy"], graph["accuracy"], atol=1 / len(x) + 1e-12)


def test_masked_gradients_are_reported(mnist_small, caplog):
    _, _, x, y = mnist_small
    model = models.build_model("fcn2", width=16, depth=1, input_bits=2)
    masked = models.with_input_gradient(model, "zero")
    with caplog.at_level(logging.WARNING, logger="tfdisc.evaluation"):
        result = evaluation.sweep(masked, (x, y), [0.0, 0.3])
    assert result["gradient"] == "zero" and result["zero_gradient_examples"] == len(x)
    assert result["accuracy"][0] == result["accuracy"][1]  # FGSM cannot move a single pixel
    assert "possible gradient masking" in caplog.text and "robustness_report tells the two apart" in caplog.text
    assert evaluation.sweep(model, (x, y), [0.3])["zero_gradient_examples"] == 0


@pytest.mark.parametrize("data, eps, message", [
    (None, [0.1], "tf.data.Dataset of \\(images, labels\\)"),
    ("float255", [0.1], r"must lie in \[0, 1\].*divide 0..255 images by 255"),
    ("nan_images", [0.1], "Pixels contain .* NaN"),
    ("negative_labels", [0.1], "Labels must be int class ids >= 0"),
    ("int_images", [0.1], "uint8 0..255 or float"),
    ("short_labels", [0.1], "differ in length"),
    ("ok", [], "The list of eps values is empty"),
    ("ok", [-0.1], r"eps values must be finite numbers in \[0, 1\]"),
    ("ok", [8], r"eps values must be finite numbers in \[0, 1\]"),
    ("ok", [float("nan")], r"eps values must be finite numbers in \[0, 1\]"),
])
def test_bad_input_raises(trained_fcn, data, eps, message):
    x = np.zeros((4, 28, 28, 1), np.float32)
    y = np.zeros(4, np.int64)
    data = {None: None, "ok": (x, y), "float255": (x + 200, y), "int_images": (x.astype(np.int32), y),
            "short_labels": (x, y[:2]), "nan_images": (x * np.nan, y), "negative_labels": (x, y - 1)}[data]
    with pytest.raises(ValueError, match=message):
        evaluation.sweep(trained_fcn, data, eps)
