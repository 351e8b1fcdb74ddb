"""L∞ attacks as plain functions over `model_fn(x) -> logits`, with CleverHans v4's signatures.

`fast_gradient_method(model_fn, x, eps, norm=np.inf, *, loss_fn=None, clip_min=0.0, clip_max=1.0, y=None,
targeted=False)`: a CleverHans call with the same arguments gives the same result (tested). Pixels live
in [0, 1], so `eps` is in pixel units (8/255 is eight 8-bit levels) and clipping to [0, 1] is the
default; float inputs keep their dtype and uint8 inputs are scaled to float32. Only `norm=np.inf` is
implemented. A Keras model passed as `model_fn` is called with `training=False`. Nothing here is
wrapped in `tf.function`: the caller compiles once, and `eps` may be a tensor, so changing it never
retraces. Labels `y` are int class ids; `y=None` attacks the model's own predictions (avoids label
leaking). Bad arguments raise ValueError, or fail a graph assertion when they are tensors.
"""

import numpy as np
import tensorflow as tf

from tfdisc import checks


def _check_norm(norm):
    if norm not in (np.inf, "inf"):
        raise ValueError(f"tfdisc attacks are L∞ attacks: norm must be np.inf; got {norm!r}.")


def _num_classes(model_fn):
    if isinstance(model_fn, tf.keras.Model):
        return int(model_fn.output_shape[-1])
    return None


def logits_of(model_fn, x):
    """Logits of `model_fn` at `x`, with a Keras model in inference mode."""
    if isinstance(model_fn, tf.keras.layers.Layer):
        return model_fn(x, training=False)
    return model_fn(x)


def _labels(model_fn, x, y):
    if y is None:
        return tf.argmax(logits_of(model_fn, x), axis=-1)
    return checks.labels(y, _num_classes(model_fn))


def sparse_cross_entropy(labels, logits):
    """Per-example softmax cross-entropy of int `labels` against `logits` (the default `loss_fn`)."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int64), logits=logits)


def logits_and_gradient(model_fn, x, y, loss_fn=None):
    """Logits at `x` and the gradient w.r.t. `x` of their summed loss against `y` (cross-entropy by default).

    Summing (not averaging) keeps each example's gradient independent of the batch size.
    """
    loss_fn = loss_fn or sparse_cross_entropy
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = logits_of(model_fn, x)
        loss = tf.reduce_sum(loss_fn(y, logits))
    return logits, tape.gradient(loss, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)


def loss_gradient(model_fn, x, y, loss_fn=None):
    """Gradient w.r.t. `x` of the summed loss of `model_fn(x)` against `y`."""
    return logits_and_gradient(model_fn, x, y, loss_fn)[1]


def fast_gradient_method(model_fn, x, eps, norm=np.inf, *, loss_fn=None, clip_min=0.0, clip_max=1.0, y=None,
                         targeted=False):
    """FGSM: clip(x + eps·sign(∇x L(x, y)), clip_min, clip_max); `targeted` descends toward y."""
    _check_norm(norm)
    x = checks.pixels(x)
    eps = checks.eps("eps", eps, x.dtype)
    y = _labels(model_fn, x, y)
    direction = tf.sign(loss_gradient(model_fn, x, y, loss_fn))
    if targeted:
        direction = -direction
    return tf.clip_by_value(x + eps * direction, clip_min, clip_max)


def random_fgsm(model_fn, x, eps, alpha, norm=np.inf, *, loss_fn=None, clip_min=0.0, clip_max=1.0, y=None,
                seed=None):
    """R-FGSM (Tramèr et al. 2018): a random α-step, then an (eps − α) gradient-sign step.

    x' = clip(x + α·sign(N(0, I))),  x_adv = clip(x' + (eps − α)·sign(∇x' L(x', y))).
    `seed`: None (global seed), an int (the same noise every call) or a `tf.random.Generator`.
    """
    _check_norm(norm)
    x = checks.pixels(x)
    eps = checks.eps("eps", eps, x.dtype)
    alpha = checks.eps("alpha", alpha, x.dtype)
    static_eps, static_alpha = tf.get_static_value(eps), tf.get_static_value(alpha)
    if static_eps is not None and static_alpha is not None and static_alpha > static_eps:
        raise ValueError(f"alpha must be <= eps (the random step spends part of the budget); got alpha={static_alpha}, "
                         f"eps={static_eps}.")
    y = _labels(model_fn, x, y)
    noise = _normal(tf.shape(x), seed)
    x_rand = tf.clip_by_value(x + alpha * tf.cast(tf.sign(noise), x.dtype), clip_min, clip_max)
    step = tf.maximum(eps - alpha, 0.0)
    return tf.clip_by_value(x_rand + step * tf.sign(loss_gradient(model_fn, x_rand, y, loss_fn)), clip_min, clip_max)


def projected_gradient_descent(model_fn, x, eps, eps_iter, nb_iter, norm=np.inf, *, loss_fn=None, clip_min=0.0,
                               clip_max=1.0, y=None, targeted=False, rand_init=True, seed=None, n_restarts=1):
    """L∞ PGD (Madry et al. 2018): `nb_iter` FGSM steps of `eps_iter`, each projected onto the eps-ball.

    With `rand_init` each start is uniform in the eps-ball. With `n_restarts` > 1, each example
    keeps the restart that fools the model, else the one with the highest loss; restart 0 is
    the single-start result, so restarts never do worse. Runs as `tf.while_loop`s.
    """
    _check_norm(norm)
    checks.positive_int("nb_iter", nb_iter)
    checks.positive_int("n_restarts", n_restarts)
    x = checks.pixels(x)
    eps = checks.eps("eps", eps, x.dtype)
    eps_iter = checks.eps("eps_iter", eps_iter, x.dtype)
    y = _labels(model_fn, x, y)
    sign = -1.0 if targeted else 1.0

    def one_start(restart):
        x_adv = x
        if rand_init:
            x_adv = x + _uniform(tf.shape(x), -eps, eps, seed, restart)
        x_adv = tf.clip_by_value(x_adv, clip_min, clip_max)

        def step(i, x_adv):
            x_adv = x_adv + sign * eps_iter * tf.sign(loss_gradient(model_fn, x_adv, y, loss_fn))
            x_adv = tf.clip_by_value(x_adv, x - eps, x + eps)
            return i + 1, tf.clip_by_value(x_adv, clip_min, clip_max)

        return tf.while_loop(lambda i, _: i < nb_iter, step, (tf.constant(0), x_adv))[1]

    def score(x_adv):
        """Per-example attack objective, lifted above every unsuccessful example's once the attack succeeds."""
        logits = logits_of(model_fn, x_adv)
        loss = sign * (loss_fn or sparse_cross_entropy)(y, logits)
        hit = tf.argmax(logits, axis=-1) == tf.cast(y, tf.int64)
        success = hit if targeted else tf.logical_not(hit)
        return tf.where(success, loss + 1e9, loss)

    best = one_start(0)
    if n_restarts == 1:
        return best

    def restart_step(r, best, best_score):
        candidate = one_start(r)
        candidate_score = score(candidate)
        better = tf.reshape(candidate_score > best_score, [-1] + [1] * (x.shape.rank - 1))
        return r + 1, tf.where(better, candidate, best), tf.maximum(candidate_score, best_score)

    return tf.while_loop(lambda r, *_: r < n_restarts, restart_step, (tf.constant(1), best, score(best)))[1]


def square_attack(model_fn, x, eps, norm=np.inf, *, y=None, n_queries=1000, p_init=0.05, clip_min=0.0, clip_max=1.0,
                  seed=None):
    """Score-based L∞ Square Attack (Andriushchenko et al. 2020), batched; uses no gradients.

    Starts from random vertical stripes of ±eps, then for `n_queries` − 1 queries proposes a new
    ±eps square (one random sign per channel, at a random position per example) whose side shrinks
    on the paper's schedule from `p_init`, keeping it where the margin loss drops. Examples
    already misclassified stop changing. Images must be NHWC.
    """
    _check_norm(norm)
    checks.positive_int("n_queries", n_queries)
    x = checks.pixels(x)
    if x.shape.rank != 4:
        raise ValueError(f"square_attack needs NHWC images; got shape {x.shape}.")
    eps = checks.eps("eps", eps, x.dtype)
    y = tf.cast(_labels(model_fn, x, y), tf.int64)
    batch, height, width, channels = tf.unstack(tf.shape(x))
    base = (tf.constant([seed, 0], tf.int32) if seed is not None
            else tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32))

    def margin(x_adv):
        logits = logits_of(model_fn, x_adv)
        true = tf.gather(logits, y, batch_dims=1)
        other = tf.reduce_max(logits - 1e9 * tf.one_hot(y, tf.shape(logits)[-1], dtype=logits.dtype), axis=-1)
        return true - other

    stripes = eps * _random_sign(base, 0, [batch, 1, width, channels], x.dtype)
    x_best = tf.clip_by_value(x + stripes, clip_min, clip_max)
    margin_best = margin(x_best)
    pixels = tf.cast(height * width, tf.float32)
    n_queries = tf.convert_to_tensor(n_queries, tf.int32)

    def query(i, x_best, margin_best):
        side = tf.cast(tf.round(tf.sqrt(_square_share(p_init, i, n_queries) * pixels)), tf.int32)
        side = tf.clip_by_value(side, 1, tf.minimum(height, width) - 1)
        top = tf.random.stateless_uniform([batch, 1, 1, 1], base + [0, 3 * i], 0, height - side + 1, tf.int32)
        left = tf.random.stateless_uniform([batch, 1, 1, 1], base + [0, 3 * i + 1], 0, width - side + 1, tf.int32)
        rows = tf.range(height)[None, :, None, None]
        cols = tf.range(width)[None, None, :, None]
        window = (rows >= top) & (rows < top + side) & (cols >= left) & (cols < left + side)
        signs = eps * _random_sign(base, 3 * i + 2, [batch, 1, 1, channels], x.dtype)
        delta = tf.where(window, signs, x_best - x)
        candidate = tf.clip_by_value(x + delta, clip_min, clip_max)
        candidate_margin = margin(candidate)
        improved = (candidate_margin < margin_best) & (margin_best > 0)
        x_best = tf.ensure_shape(tf.where(improved[:, None, None, None], candidate, x_best), x.shape)
        return i + 1, x_best, tf.where(improved, candidate_margin, margin_best)

    return tf.while_loop(lambda i, *_: i < n_queries, query, (tf.constant(1), x_best, margin_best))[1]


def _square_share(p_init, i, n_queries):
    """The paper's schedule: the square's share of the image halves at fixed fractions of the budget."""
    fraction = tf.cast(i, tf.float32) / tf.cast(n_queries, tf.float32) * 10000.0
    halvings = tf.reduce_sum(tf.cast(fraction > tf.constant([10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000],
                                                            tf.float32), tf.float32))
    return p_init * tf.pow(0.5, halvings)


def _random_sign(base, counter, shape, dtype):
    """±1 drawn statelessly from the seed pair `base` shifted by `counter`."""
    return tf.cast(2 * tf.random.stateless_uniform(shape, base + [0, counter], 0, 2, tf.int32) - 1, dtype)


def transfer_attack(source_fn, x, eps, *, y=None, attack=None, **attack_kwargs):
    """Black-box transfer: adversarial examples crafted on the surrogate `source_fn`.

    `attack` is any attack here (default `fast_gradient_method`); evaluate the result on the target.
    """
    attack = attack or fast_gradient_method
    return attack(source_fn, x, eps, y=y, **attack_kwargs)


def _normal(shape, seed):
    if isinstance(seed, tf.random.Generator):
        return seed.normal(shape)
    if seed is None:
        return tf.random.normal(shape)
    return tf.random.stateless_normal(shape, seed=[seed, 0])


def _uniform(shape, low, high, seed, restart=0):
    if seed is None:
        return tf.random.uniform(shape, low, high, dtype=low.dtype)
    return tf.random.stateless_uniform(shape, seed=tf.stack([tf.cast(seed, tf.int32), 1 + tf.cast(restart, tf.int32)]),
                                       minval=low, maxval=high, dtype=low.dtype)
