"""Exact answers in the discretized input space: the model only ever sees discretized levels, and in an ε-ball most
pixels can reach one level only. Where the free pixels allow few inputs, all of them are evaluated; beyond that,
branch and bound over the free pixels' levels, pruned by the bounds of `tfdisc.certification.bounds` and `.crown`.
`tfdisc.evaluation.discrete` attacks in the same space.
"""

import heapq
import itertools
import time

import numpy as np
import tensorflow as tf

from tfdisc import ops
from tfdisc.certification import bounds as ibp
from tfdisc.certification import crown
from tfdisc.layers import InputDiscretization


def _levels(discretization, low, high):
    """The number of levels each pixel can take between its box ends."""
    return np.rint((np.asarray(high) - np.asarray(low)) / ibp.level_step(discretization)).astype(np.int64) + 1


def input_count(discretization: InputDiscretization, low: np.ndarray, high: np.ndarray) -> float:
    """How many distinct discretized inputs the box holds (a float: it can be astronomically large)."""
    return float(np.prod(_levels(discretization, low, high).astype(np.float64)))


def _predictions(model, levels, batch=1024):
    return np.concatenate([np.argmax(model(tf.constant(levels[i:i + batch], tf.float32), training=False), -1)
                           for i in range(0, len(levels), batch)])


def enumerate_box(model: tf.keras.Model, discretization: InputDiscretization, low: np.ndarray, high: np.ndarray,
                  label: int, batch: int = 1024) -> tuple[bool, np.ndarray | None]:
    """Every input of one example's level box, evaluated: (True, None) if all are classified `label`, else (False,
    the first level image that is not)."""
    low, high = np.asarray(low), np.asarray(high)
    step = ibp.level_step(discretization)
    free = np.flatnonzero(high > low + step / 2)
    choices = [low.flat[i] + step * np.arange(n) for i, n in zip(free, _levels(discretization, low, high).flat[free])]
    combos = itertools.product(*choices)
    while True:
        chunk = list(itertools.islice(combos, batch))
        if not chunk:
            return True, None
        images = np.repeat(low.reshape(1, -1), len(chunk), 0)
        images[:, free] = np.asarray(chunk)
        images = images.reshape((len(chunk),) + low.shape)
        wrong = np.flatnonzero(_predictions(model, images) != label)
        if wrong.size:
            return False, images[wrong[0]]


BOUNDS = ("ibp", "crown", "crown-refined")


def margin_bounds(model: tf.keras.Model, low: tf.Tensor, high: tf.Tensor, labels: tf.Tensor,
                  method: str) -> tf.Tensor:
    """Lower bounds of every other-class margin, by `method`: "ibp", "crown" (intermediate bounds by IBP) or
    "crown-refined" (each intermediate bound by a backward pass of its own); the linear relaxations fall back to
    IBP on models they do not cover (convolutions, residual additions)."""
    if method in ("crown", "crown-refined"):
        try:
            crown.chain(model)
        except ibp.UnsupportedLayer:
            return ibp.margin_lower_bounds(model, low, high, labels)
        # A backward pass holds (examples × units × units) coefficients: batches that fit in about 1 GiB.
        units = max(int(w.shape[-1]) for step in crown.chain(model) if step[0] == "affine" for w in step[1:2])
        size = max(1, 2**30 // (8 * 4 * units * (units if method == "crown-refined" else 16)))
        return tf.concat([crown.margin_lower_bounds(model, low[i:i + size], high[i:i + size], labels[i:i + size],
                                                    refine=method == "crown-refined")
                          for i in range(0, int(tf.shape(low)[0]), size)], 0)
    return ibp.margin_lower_bounds(model, low, high, labels)


def _worst_margin_gradient(model, levels, label):
    """The gradient, with respect to the levels, of the smallest margin logit[y] − logit[j] (straight through)."""
    x = tf.constant(levels[None], tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model(x, training=False)[0]
        others = tf.concat([logits[:label], logits[label + 1:]], 0)
        margin = logits[label] - tf.reduce_max(others)
    return tape.gradient(margin, x)[0].numpy()


def branch_and_bound(model: tf.keras.Model, discretization: InputDiscretization, low: np.ndarray,
                     high: np.ndarray, label: int, *, method: str = "crown", time_limit: float = 10.0, batch: int = 64,
                     max_domains: int = 20000) -> tuple[str, np.ndarray | None]:
    """Split the free pixels' level ranges until every part is certified or one input is misclassified.

    Returns ("certified", None), ("broken", level image) or ("unknown", None) when `time_limit` seconds or
    `max_domains` parts run out. Each part is bounded by `margin_bounds`; the free pixel that splits is the one
    whose range times the margin's gradient is largest; the corner that the gradient says lowers the margin most
    is evaluated exactly at every split, so counterexamples surface early.
    """
    start, step = time.perf_counter(), ibp.level_step(discretization)
    scale = float(np.max(np.abs(model(tf.constant(low[None], tf.float32), training=False))))
    queue = [(0.0, 0, np.asarray(low, np.float64), np.asarray(high, np.float64))]
    counter, domains = itertools.count(1), 0
    while queue:
        if time.perf_counter() - start > time_limit or domains > max_domains:
            return "unknown", None
        parts = [heapq.heappop(queue) for _ in range(min(batch, len(queue)))]
        lows = np.stack([p[2] for p in parts])
        highs = np.stack([p[3] for p in parts])
        labels = tf.fill([len(parts)], label)
        margins = margin_bounds(model, tf.constant(lows, ibp.DTYPE), tf.constant(highs, ibp.DTYPE), labels,
                                method).numpy().min(axis=-1)
        domains += len(parts)
        for margin, lo, hi in zip(margins, lows, highs):
            if margin > ibp.MARGIN_SLACK * (1.0 + scale):
                continue
            center = (lo + hi) / 2
            gradient = _worst_margin_gradient(model, ops.discretize(tf.constant(center, tf.float32),
                                                                    discretization.bits, discretization.mode).numpy(),
                                              label)
            corner = np.where(gradient > 0, lo, hi)
            if _predictions(model, corner[None])[0] != label:
                return "broken", corner
            width = hi - lo
            if not np.any(width > step / 2):  # a single input, and it is classified correctly
                continue
            score = np.where(width > step / 2, np.abs(gradient) * width + 1e-12 * width, -1.0)
            pixel = np.unravel_index(np.argmax(score), lo.shape)
            levels = int(round(width[pixel] / step)) + 1
            middle = lo[pixel] + step * (levels // 2 - 1)
            left_high, right_low = hi.copy(), lo.copy()
            left_high[pixel], right_low[pixel] = middle, middle + step
            for part_low, part_high in ((lo, left_high), (right_low, hi)):
                heapq.heappush(queue, (float(margin), next(counter), part_low, part_high))
    return "certified", None
