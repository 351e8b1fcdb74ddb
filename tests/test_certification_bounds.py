"""tfdisc.certification.bounds: the level box and interval bounds contain every point of the ε-ball."""

import numpy as np
import pytest
import tensorflow as tf

from certification_models import random_images, random_model
from tfdisc import ops
from tfdisc.certification import bounds


def _points(discretization, low, high, count, seed=0):
    """Random level images of the box (its corners included)."""
    step = bounds.level_step(discretization)
    levels = np.rint((high - low) / step).astype(int) + 1
    rng = np.random.default_rng(seed)
    picks = [np.zeros_like(levels), levels - 1] + [rng.integers(0, levels) for _ in range(count)]
    return [low + p * step for p in picks]


@pytest.mark.parametrize("mode", ["floor", "round"])
def test_the_level_box_holds_exactly_the_levels_the_ball_can_reach(mode):
    discretization = bounds.InputDiscretization(2, mode=mode)
    x = np.linspace(0, 1, 256, dtype=np.float32)
    low, high = (v.numpy() for v in bounds.level_box(discretization, x, 0.1))
    for offset in np.linspace(-0.1, 0.1, 41):
        reached = ops.discretize(np.clip(x + offset, 0, 1), 2, mode).numpy()
        assert np.all(low <= reached) and np.all(reached <= high)
    for levels in (low, high):  # the ends of the box: inputs in the ball that discretize to them
        found = ops.input_for_levels(x, 0.1, levels).numpy()
        assert np.all(np.abs(found - x) <= 0.1 + 1e-6) and np.all(ops.discretize(found, 2, mode).numpy() == levels)


@pytest.mark.parametrize("arch", ["fcn2", "alexnet", "resnet20"])
@pytest.mark.parametrize("precision", ["full", "bnn", "xnor"])
def test_interval_and_margin_bounds_contain_every_sampled_point(arch, precision):
    model = random_model(arch, precision)
    discretization = bounds.discretization_layer(model)
    x, labels = random_images(arch, 6), np.arange(6) % 4
    for eps in (0.02, 0.1, 0.3):
        low, high = bounds.level_box(discretization, x, eps)
        out_low, out_high = bounds.interval_bounds(model, low, high)
        margins = bounds.margin_lower_bounds(model, low, high, tf.constant(labels, tf.int32)).numpy()
        for point in _points(discretization, low.numpy(), high.numpy(), 30):
            logits = model(tf.constant(point, tf.float32), training=False).numpy()
            assert np.all(out_low.numpy() - 1e-4 <= logits) and np.all(logits <= out_high.numpy() + 1e-4)
            true = logits[np.arange(6), labels][:, None] - np.stack([np.delete(l, t) for l, t in zip(logits, labels)])
            assert np.all(margins <= true + 1e-4)


def test_a_layer_without_a_rule_is_named():
    inputs = tf.keras.Input((4,))
    hidden = bounds.InputDiscretization(2)(inputs)
    model = tf.keras.Model(inputs, tf.keras.layers.Dense(3)(tf.keras.layers.LayerNormalization()(hidden)))
    with pytest.raises(bounds.UnsupportedLayer, match="no bound rule for layers of type LayerNormalization"):
        bounds.interval_bounds(model, tf.zeros((1, 4), tf.float64), tf.ones((1, 4), tf.float64))
