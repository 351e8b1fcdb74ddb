"""tfdisc.evaluation.discrete: the search in the discretized input space stays in the ε-ball, its breaks are real,
and a model without a discretization layer gets one clear error."""

import numpy as np
import pytest
import tensorflow as tf

from certification_models import random_images, random_model
from tfdisc.evaluation import discrete


@pytest.mark.parametrize("precision", ["full", "bnn"])
def test_the_discrete_search_stays_in_the_ball_and_its_breaks_are_real(precision):
    model = random_model("fcn2", precision, seed=5)
    x = random_images("fcn2", 64, seed=5)
    y = np.argmax(model(tf.constant(x), training=False), -1)
    for eps in (0.05, 0.2):
        found = discrete.discrete_search(model, tf.constant(x), tf.constant(eps), tf.constant(y), steps=20).numpy()
        assert np.all(np.abs(found - x) <= eps + 1e-6) and np.all((0 <= found) & (found <= 1))
        broken = np.argmax(model(tf.constant(found), training=False), -1) != y
        assert broken.any() or eps == 0.05  # at ε=0.2 a random net loses some examples


def test_a_model_without_discretization_is_refused_with_one_line():
    model = tf.keras.Sequential([tf.keras.Input((28, 28, 1)), tf.keras.layers.Flatten(), tf.keras.layers.Dense(10)],
                                name="plain")
    with pytest.raises(ValueError, match="plain has no InputDiscretization layer") as error:
        discrete.discrete_search(model, tf.zeros((2, 28, 28, 1)), 0.1, tf.zeros(2, tf.int64))
    assert "\n" not in str(error.value)
