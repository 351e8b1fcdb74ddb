"""tfdisc.certification.crown: linear relaxation bounds of dense chains contain every sampled point."""

import numpy as np
import pytest
import tensorflow as tf

from certification_models import random_images, random_model
from tfdisc.certification import bounds, crown


@pytest.mark.parametrize("precision", ["full", "bnn", "xnor"])
@pytest.mark.parametrize("refine", [False, True])
def test_margin_bounds_contain_every_sampled_point(precision, refine):
    model = random_model("fcn2", precision, seed=1)
    discretization = bounds.discretization_layer(model)
    x, labels = random_images("fcn2", 8, seed=1), np.arange(8) % 4
    step = bounds.level_step(discretization)
    rng = np.random.default_rng(1)
    for eps in (0.05, 0.15, 0.4):
        low, high = bounds.level_box(discretization, x, eps)
        found = crown.margin_lower_bounds(model, low, high, tf.constant(labels, tf.int32), refine=refine).numpy()
        lo, hi = low.numpy(), high.numpy()
        levels = np.rint((hi - lo) / step).astype(int) + 1
        for _ in range(60):
            logits = model(tf.constant(lo + rng.integers(0, levels) * step, tf.float32), training=False).numpy()
            true = logits[np.arange(8), labels][:, None] - np.stack([np.delete(l, t) for l, t in zip(logits, labels)])
            assert np.all(found <= true + 1e-4)


def test_refined_bounds_are_at_least_as_tight_on_relu_nets():
    model = random_model("fcn2", "full", seed=2)
    discretization = bounds.discretization_layer(model)
    low, high = bounds.level_box(discretization, random_images("fcn2", 16, seed=2), 0.1)
    labels = tf.constant(np.arange(16) % 4, tf.int32)
    plain = crown.margin_lower_bounds(model, low, high, labels).numpy()
    refined = crown.margin_lower_bounds(model, low, high, labels, refine=True).numpy()
    assert np.all(refined >= plain - 1e-9)


def test_convolutions_are_left_to_interval_bounds():
    with pytest.raises(bounds.UnsupportedLayer, match="no linear relaxation for layers of type QuantConv2D"):
        crown.chain(random_model("alexnet", "full"))
