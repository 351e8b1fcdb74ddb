"""tfdisc.certification.search: enumeration agrees with a mixed-integer program, and branch and bound with
enumeration."""

import itertools
import warnings

import numpy as np
import pytest
import scipy.optimize as scipy_optimize
import tensorflow as tf

from certification_models import random_images, random_model
from tfdisc.certification import bounds, crown, search


def _small_boxes(model, count, eps=0.06, max_free=9, seed=0):
    """(image, label, low, high) of random images whose boxes hold at most 2^max_free inputs; labels are the model's
    own predictions (so robustness is the question)."""
    discretization = bounds.discretization_layer(model)
    found, seed = [], seed
    while len(found) < count:
        x = random_images("fcn2", 32, seed=seed)
        seed += 1
        low, high = (v.numpy() for v in bounds.level_box(discretization, x, eps))
        labels = np.argmax(model(tf.constant(x), training=False), -1)
        for i in range(32):
            if 0 < search.input_count(discretization, low[i], high[i]) <= 2 ** max_free and len(found) < count:
                found.append((x[i], int(labels[i]), low[i], high[i]))
    return found


def _milp_min_margin(model, low, high, label):
    """The smallest logit[label] − logit[j] over the box's level images, by a mixed-integer program (SciPy's milp,
    HiGHS): integer level indices, each ReLU with a binary and big-M bounds from interval propagation."""
    steps = crown.chain(model)
    step = bounds.level_step(bounds.discretization_layer(model))
    lo, hi = low.reshape(-1), high.reshape(-1)
    levels = np.rint((hi - lo) / step).astype(int)
    n_in = lo.size
    # variables: level indices k (integer), then per ReLU layer: pre-activation z, post a, binary d
    lows, highs, integrality = list(np.zeros(n_in)), list(levels.astype(float)), [1] * n_in
    a_low, a_high = lo, hi
    layers = []
    for s in steps[:-1]:
        if s[0] == "affine":
            w, b = (v.numpy() for v in s[1:])
            c, r = (a_low + a_high) / 2, (a_high - a_low) / 2
            z_low, z_high = c @ w + b - r @ np.abs(w), c @ w + b + r @ np.abs(w)
            layers.append((w, b, z_low, z_high))
            a_low, a_high = np.maximum(z_low, 0), np.maximum(z_high, 0)
    w_out, b_out = (v.numpy() for v in steps[-1][1:])
    # index layout
    offsets, total = [], n_in
    for w, b, zl, zh in layers:
        m = w.shape[1]
        offsets.append(total)
        lows += list(zl) + [0.0] * m + [0.0] * m
        highs += list(zh) + list(np.maximum(zh, 0)) + [1.0] * m
        integrality += [0] * 2 * m + [1] * m
        total += 3 * m
    best = np.inf
    for j in range(w_out.shape[1]):
        if j == label:
            continue
        A, lb, ub = [], [], []
        for layer_index, (w, b, zl, zh) in enumerate(layers):
            m, o = w.shape[1], offsets[layer_index]
            for unit in range(m):
                row = np.zeros(total)
                if layer_index == 0:  # z = (lo + step·k)·w + b
                    row[:n_in] = -step * w[:, unit]
                    constant = lo @ w[:, unit] + b[unit]
                else:
                    po = offsets[layer_index - 1]
                    pm = layers[layer_index - 1][0].shape[1]
                    row[po + pm: po + 2 * pm] = -w[:, unit]
                    constant = b[unit]
                row[o + unit] = 1.0
                A.append(row), lb.append(constant), ub.append(constant)
                a, z, d = o + m + unit, o + unit, o + 2 * m + unit
                for coefficients, low_, high_ in (({a: 1, z: -1}, 0, np.inf),  # a ≥ z
                                                  ({a: 1, z: -1, d: -zl[unit]}, -np.inf, -zl[unit]),  # a ≤ z − l(1−d)
                                                  ({a: 1, d: -zh[unit]}, -np.inf, 0)):  # a ≤ u·d
                    row = np.zeros(total)
                    for key, value in coefficients.items():
                        row[key] = value
                    A.append(row), lb.append(low_), ub.append(high_)
        o, m = offsets[-1], layers[-1][0].shape[1]
        objective = np.zeros(total)
        objective[o + m: o + 2 * m] = w_out[:, label] - w_out[:, j]
        result = scipy_optimize.milp(objective, constraints=scipy_optimize.LinearConstraint(np.array(A), lb, ub),
                                     integrality=np.array(integrality), bounds=scipy_optimize.Bounds(lows, highs))
        assert result.success, result.message
        best = min(best, result.fun + b_out[label] - b_out[j])
    return best


def _enumerated_min_margin(model, low, high, label):
    discretization = bounds.discretization_layer(model)
    step = bounds.level_step(discretization)
    free = np.flatnonzero(high.reshape(-1) > low.reshape(-1) + step / 2)
    levels = np.rint((high.reshape(-1) - low.reshape(-1)) / step).astype(int) + 1
    grid = np.stack(np.meshgrid(*[np.arange(levels[i]) for i in free], indexing="ij"), -1).reshape(-1, len(free))
    images = np.repeat(low.reshape(1, -1), len(grid), 0)
    images[:, free] += grid * step
    logits = model(tf.constant(images.reshape((-1,) + low.shape), tf.float32), training=False).numpy()
    return np.min(logits[:, label][:, None] - np.delete(logits, label, axis=1)), logits


def test_the_exact_answer_agrees_with_a_mixed_integer_program():
    model = random_model("fcn2", "full", seed=3)
    for x, label, low, high in _small_boxes(model, 4, seed=3):
        exact, _ = _enumerated_min_margin(model, low, high, label)
        assert _milp_min_margin(model, low, high, label) == pytest.approx(exact, abs=1e-3)
        robust, counterexample = search.enumerate_box(model, bounds.discretization_layer(model), low, high, label)
        assert robust == (exact > 0)
        if not robust:
            assert np.argmax(model(counterexample[None], training=False)) != label


@pytest.mark.parametrize("precision", ["full", "bnn"])
def test_enumeration_visits_every_input_in_order_and_returns_the_first_misclassified(precision):
    model = random_model("fcn2", precision, seed=5)
    discretization = bounds.discretization_layer(model)
    step = bounds.level_step(discretization)
    for x, label, low, high in _small_boxes(model, 6, eps=0.09, seed=5):
        free = np.flatnonzero(high.reshape(-1) > low.reshape(-1) + step / 2)
        levels = [low.flat[i] + step * np.arange(round((high.flat[i] - low.flat[i]) / step) + 1) for i in free]
        images = np.repeat(low.reshape(1, -1), int(np.prod([len(v) for v in levels])), 0)
        images[:, free] = [combo for combo in itertools.product(*levels)]  # the last free pixel fastest
        images = images.reshape((-1,) + low.shape).astype(np.float32)
        predicted = np.argmax(model(tf.constant(images), training=False), -1)  # eagerly, one call
        robust, counterexample = search.enumerate_box(model, discretization, low, high, label, batch=7)
        assert robust == bool(np.all(predicted == label))
        if not robust:
            np.testing.assert_allclose(counterexample, images[np.argmax(predicted != label)], atol=1e-6)


def test_enumeration_refuses_a_box_too_large():
    model = random_model("fcn2", "full", seed=6)
    shape = tuple(model.input_shape[1:])
    with pytest.raises(ValueError, match=r"The box holds .* inputs, too many to enumerate"):
        search.enumerate_box(model, bounds.discretization_layer(model), np.zeros(shape), np.full(shape, 0.75), 0)


@pytest.mark.parametrize("precision, method, split", [
    ("full", "crown-refined", "pixels"), ("bnn", "crown-refined", "pixels"), ("full", "crown", "pixels"),
    ("full", "ibp", "pixels"), ("full", "crown-refined", "activations"), ("bnn", "crown-refined", "activations"),
    ("full", "alpha-crown", "activations"), ("bnn", "alpha-crown", "pixels"),
    ("xnor", "crown", "activations")])
def test_branch_and_bound_reaches_the_exact_verdict(precision, method, split):
    model = random_model("fcn2", precision, seed=4)
    discretization = bounds.discretization_layer(model)
    for x, label, low, high in _small_boxes(model, 6, seed=4):
        robust, _ = search.enumerate_box(model, discretization, low, high, label)
        # Boxes of at most 4 inputs are enumerated, so the verdicts above that come from splitting.
        status, counterexample = search.branch_and_bound(model, discretization, low, high, label, method=method,
                                                         split=split, time_limit=60, batch=4, enumeration_limit=4)
        assert status == ("certified" if robust else "broken")
        if status == "broken":
            assert np.all(low - 1e-6 <= counterexample) and np.all(counterexample <= high + 1e-6)  # level images
            assert np.argmax(model(counterexample[None], training=False)) != label


def test_branch_and_bound_names_a_bad_split():
    model = random_model("fcn2", "full", seed=4)
    discretization = bounds.discretization_layer(model)
    x, label, low, high = _small_boxes(model, 1, seed=4)[0]
    with pytest.raises(ValueError, match="split"):
        search.branch_and_bound(model, discretization, low, high, label, split="neurons")


def test_a_box_too_large_to_count_counts_as_infinite_without_a_warning():
    discretization = bounds.discretization_layer(random_model("fcn2", "full", bits=8, seed=0))
    low, high = np.zeros((28, 28, 1)), np.ones((28, 28, 1))  # 256 levels for each of 784 pixels
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert search.input_count(discretization, low, high) == float("inf")
    assert search.input_count(discretization, low[:1, :2], high[:1, :2]) == 256**2
