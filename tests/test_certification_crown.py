"""tfdisc.certification.crown: linear relaxation bounds of dense chains contain every sampled point."""

import numpy as np
import pytest
import tensorflow as tf

from certification_models import random_images, random_model
from tfdisc.certification import bounds, crown, search


@pytest.mark.parametrize("precision", ["full", "bnn", "xnor"])
@pytest.mark.parametrize("method", ["crown", "crown-refined", "alpha-crown"])
def test_margin_bounds_contain_every_sampled_point(precision, method):
    model = random_model("fcn2", precision, seed=1)
    discretization = bounds.discretization_layer(model)
    x, labels = random_images("fcn2", 8, seed=1), np.arange(8) % 4
    step = bounds.level_step(discretization)
    rng = np.random.default_rng(1)
    for eps in (0.05, 0.15, 0.4):
        low, high = bounds.level_box(discretization, x, eps)
        found = search.margin_bounds(model, low, high, tf.constant(labels, tf.int32), method)[0].numpy()
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


@pytest.mark.parametrize("precision", ["full", "bnn"])
def test_optimized_slopes_never_loosen_the_refined_bounds_and_tighten_some(precision):
    model = random_model("fcn2", precision, seed=3)
    discretization = bounds.discretization_layer(model)
    low, high = bounds.level_box(discretization, random_images("fcn2", 16, seed=3), 0.15)
    labels = tf.constant(np.arange(16) % 4, tf.int32)
    refined = search.margin_bounds(model, low, high, labels, "crown-refined")[0].numpy()
    optimized = search.margin_bounds(model, low, high, labels, "alpha-crown")[0].numpy()
    assert np.all(optimized >= refined - 1e-9) and np.any(optimized > refined + 1e-6)


def test_convolutions_are_left_to_interval_bounds():
    with pytest.raises(bounds.UnsupportedLayer, match="no linear relaxation for layers of type QuantConv2D"):
        crown.chain(random_model("alexnet", "full"))


def test_the_free_pixel_chain_computes_the_first_affine_map_exactly():
    model = random_model("fcn2", "full", seed=5)
    discretization = bounds.discretization_layer(model)
    low, high = (tf.reshape(v, [8, -1]) for v in bounds.level_box(discretization, random_images("fcn2", 8, 5), 0.1))
    steps = crown.chain(model)
    restricted, (box_low, box_high) = crown.free_pixel_chain(steps, low, high)
    assert len(restricted) == len(steps) and restricted[1:] == steps[1:]
    free = (high - low).numpy() > 0
    assert box_high.shape[-1] == free.sum(-1).max() and np.all(box_low.numpy() == 0)
    rng = np.random.default_rng(5)
    _, w, b = steps[0]
    _, rows, offset = restricted[0]
    for _ in range(20):
        x = np.where(rng.random(low.shape) < 0.5, low.numpy(), high.numpy())  # corners of the box
        delta = np.zeros(box_high.shape)  # each example's free pixels first, as the restricted chain orders them
        for i in range(8):
            delta[i, :free[i].sum()] = (x - low.numpy())[i][free[i]]
        assert np.all(delta <= box_high.numpy())
        assert np.allclose(np.einsum("bi,bio->bo", delta, rows.numpy()) + offset.numpy(), x @ w.numpy() + b.numpy())


@pytest.mark.parametrize("precision", ["full", "bnn"])
def test_inherited_bounds_hold_on_a_part_and_tighten_it(precision):
    model = random_model("fcn2", precision, seed=6)
    discretization = bounds.discretization_layer(model)
    low, high = (tf.reshape(v, [8, -1]) for v in bounds.level_box(discretization, random_images("fcn2", 8, 6), 0.15))
    labels = tf.constant(np.arange(8) % 4, tf.int32)
    steps = crown.chain(model)
    _, parent = crown.chain_margin_bounds(steps, low, high, labels, refine=True)
    step = bounds.level_step(discretization)
    rng = np.random.default_rng(6)
    # A part: every free pixel's range cut to its lowest level or the rest, at random.
    lo, hi = low.numpy().copy(), high.numpy().copy()
    upper = rng.random(lo.shape) < 0.5
    lo = np.where(upper & (hi > lo), lo + step, lo)
    hi = np.where(~upper & (hi > lo), lo, hi)
    alone, _ = crown.chain_margin_bounds(steps, tf.constant(lo), tf.constant(hi), labels, refine=True)
    inherited, found = crown.chain_margin_bounds(steps, tf.constant(lo), tf.constant(hi), labels, refine=True,
                                                 inherited=parent)
    assert np.all(inherited.numpy() >= alone.numpy() - 1e-9)
    for index, (pre_low, pre_high) in found.items():
        assert np.all(pre_low.numpy() >= parent[index][0].numpy() - 1e-9)
        assert np.all(pre_high.numpy() <= parent[index][1].numpy() + 1e-9)
    levels = np.rint((hi - lo) / step).astype(int) + 1
    for _ in range(60):
        x = (lo + rng.integers(0, levels) * step).reshape((8,) + tuple(discretization.input_shape[1:]))
        logits = model(tf.constant(x, tf.float32), training=False).numpy()
        wanted = logits[np.arange(8), labels.numpy()]
        true = wanted[:, None] - np.stack([np.delete(row, t) for row, t in zip(logits, labels.numpy())])
        assert np.all(inherited.numpy() <= true + 1e-4)


def _chain_forward(steps, x):
    """The chain's output and each activation's side ({step: +1 or −1 per unit}: ReLU active, sign's output)."""
    sides = {}
    for index, step in enumerate(steps):
        if step[0] == "affine":
            x = x @ step[1].numpy() + step[2].numpy()
        elif step[0] == "relu":
            sides[index], x = np.where(x > 0, 1.0, -1.0), np.maximum(x, 0)
        else:
            x = tf.cast(step[1](tf.constant(x, tf.float32)), tf.float64).numpy()
            sides[index] = x
    return x, sides


@pytest.mark.parametrize("precision", ["full", "bnn"])
def test_bounds_with_split_units_hold_where_the_units_take_their_sides(precision):
    model = random_model("fcn2", precision, seed=8)
    discretization = bounds.discretization_layer(model)
    step = bounds.level_step(discretization)
    steps = crown.chain(model)
    rng = np.random.default_rng(8)
    for x, label in zip(random_images("fcn2", 4, seed=8), range(4)):
        low, high = (tf.reshape(v, [1, -1]) for v in bounds.level_box(discretization, x[None], 0.3))
        lo, hi = low.numpy(), high.numpy()
        _, found = crown.chain_margin_bounds(steps, low, high, tf.constant([label]), refine=True)
        unstable = {k: crown._unstable(steps[k], *v).numpy()[0] for k, v in found.items()}
        # 32 points of the box; each part fixes a random half of the unstable units to its point's sides.
        points = lo + rng.integers(0, np.rint((hi - lo) / step).astype(int) + 1, (32, lo.shape[-1])) * step
        logits, sides = _chain_forward(steps, points)
        fixed = {k: tf.constant(np.where(unstable[k] & (rng.random(sides[k].shape) < 0.5), sides[k], 0.0))
                 for k in unstable}
        assert sum(int(np.count_nonzero(v)) for v in fixed.values()) > 0
        parts = [tf.repeat(v, 32, 0) for v in (low, high)]
        split, _ = crown.chain_margin_bounds(steps, *parts, tf.fill([32], label), refine=True, fixed=fixed)
        true = logits[:, label][:, None] - np.delete(logits, label, axis=1)
        assert np.all(split.numpy() <= true + 1e-4)
        model_logits = model(tf.constant(points.reshape((32,) + x.shape), tf.float32), training=False).numpy()
        assert np.allclose(model_logits, logits, atol=1e-3)  # the chain is the model


def test_the_minimizing_corner_attains_an_exact_bound():
    model = random_model("fcn2", "full", seed=9)
    discretization = bounds.discretization_layer(model)
    steps = crown.chain(model)
    x = random_images("fcn2", 16, seed=9)
    low, high = (tf.reshape(v, [16, -1]) for v in bounds.level_box(discretization, x, 0.01))
    labels = tf.constant(np.arange(16) % 4, tf.int32)
    record = {}
    margins, found = crown.chain_margin_bounds(steps, low, high, labels, refine=True, record=record)
    stable = [i for i in range(16)
              if not any(np.any(crown._unstable(steps[k], *v).numpy()[i]) for k, v in found.items())]
    assert len(stable) >= 4  # every unit stable: the relaxation is exact, so the bound is attained
    corners = crown.minimizing_corners(steps, low, high, record, margins).numpy()
    assert np.all(low.numpy() <= corners) and np.all(corners <= high.numpy())
    logits, _ = _chain_forward(steps, corners)
    worst = np.argmin(margins.numpy(), -1)
    for i in stable:
        others = np.delete(np.arange(4), labels.numpy()[i])
        attained = logits[i, labels.numpy()[i]] - logits[i, others[worst[i]]]
        assert attained == pytest.approx(margins.numpy()[i, worst[i]], abs=1e-6)


def _pre_activations(steps, x):
    """Every activation step's input for the flat inputs `x`, by running the chain forward."""
    found, v = {}, tf.constant(x, bounds.DTYPE)
    for index, step in enumerate(steps):
        if step[0] == "affine":
            v = v @ step[1] + step[2]
        else:
            found[index] = v.numpy()
            v = tf.nn.relu(v) if step[0] == "relu" else tf.cast(step[1](tf.cast(v, tf.float32)), bounds.DTYPE)
    return found


@pytest.mark.parametrize("precision", ["full", "bnn"])
def test_undecided_units_count_every_unit_seen_on_both_sides_and_refinement_leaves_no_more(precision):
    model = random_model("fcn2", precision, seed=9)
    discretization = bounds.discretization_layer(model)
    x, labels = random_images("fcn2", 8, seed=9), tf.constant(np.arange(8) % 4, tf.int32)
    step, rng = bounds.level_step(discretization), np.random.default_rng(9)
    steps, widths = crown.chain(model), search.activation_widths(model)
    low, high = (v.numpy().reshape(8, -1) for v in bounds.level_box(discretization, x, 0.1))
    plain = search.margin_bounds(model, low, high, labels, "crown")[1]
    refined = search.margin_bounds(model, low, high, labels, "crown-refined")[1]
    assert plain.shape == refined.shape == (8, len(widths)) and np.all(refined <= plain) and np.all(plain <= widths)
    levels = np.rint((high - low) / step).astype(int) + 1
    samples = [_pre_activations(steps, low + rng.integers(0, levels) * step) for _ in range(200)]
    for column, index in enumerate(sorted(samples[0])):
        values = np.stack([s[index] for s in samples])  # (samples, examples, units)
        both_sides = np.sum(np.any(values < 0, 0) & np.any(values > 0, 0), -1)
        assert np.all(both_sides <= refined[:, column])
        assert np.any(both_sides > 0), "the test needs units that change side"
    at_zero = search.margin_bounds(model, low, low, labels, "crown-refined")[1]
    assert not np.any(at_zero)
