"""A tfdisc model (discretization + Larq layers) survives SavedModel export with its gradients."""

import numpy as np
import pytest
import tensorflow as tf

from tfdisc import attacks, models


@pytest.mark.parametrize("precision", ["bnn", pytest.param("xnor", marks=pytest.mark.slow)])
def test_saved_model_round_trip_keeps_predictions_and_straight_through_gradient(tmp_path, mnist_small, precision):
    x, y, x_test, y_test = mnist_small
    model = models.build_model("fcn2", precision=precision, input_bits=2, width=64, depth=2)
    model.compile(tf.keras.optimizers.Adam(1e-3), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:1000], y[:1000], batch_size=100, verbose=0)
    path = str(tmp_path / "saved_model")
    model.save(path)

    keras_model = tf.keras.models.load_model(path)
    raw = tf.saved_model.load(path)
    raw_fn = lambda z: raw(z, training=False)  # noqa: E731
    serving = raw.signatures["serving_default"]
    x_test, y_test = x_test[:100], y_test[:100]

    expected = model(x_test, training=False).numpy()
    np.testing.assert_array_equal(keras_model(x_test, training=False).numpy(), expected)
    np.testing.assert_array_equal(raw_fn(tf.constant(x_test)).numpy(), expected)
    np.testing.assert_array_equal(list(serving(pixels=tf.constant(x_test)).values())[0].numpy(), expected)

    fgsm = attacks.fast_gradient_method(model, x_test, 0.1, y=y_test).numpy()
    assert np.abs(fgsm - x_test).max() > 0
    np.testing.assert_array_equal(attacks.fast_gradient_method(keras_model, x_test, 0.1, y=y_test).numpy(), fgsm)
    np.testing.assert_array_equal(attacks.fast_gradient_method(raw_fn, tf.constant(x_test), 0.1, y=y_test).numpy(), fgsm)
