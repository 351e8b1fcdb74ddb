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

from typing import Callable

import numpy as np
import tensorflow as tf

from tfdisc import checks
from tfdisc.types import LossFn, ModelFn, TensorLike


def _check_norm(norm):
    if norm not in (np.inf, "inf"):
        raise ValueError(f"tfdisc attacks are L∞ attacks: norm must be np.inf; got {norm!r}.")


def _num_classes(model_fn):
    if isinstance(model_fn, tf.keras.Model):
        return int(model_fn.output_shape[-1])
    return None


def logits_of(model_fn: ModelFn, x: tf.Tensor) -> tf.Tensor:
    """Logits of `model_fn` at `x`, with a Keras model in inference mode."""
    if isinstance(model_fn, tf.keras.layers.Layer):
        return model_fn(x, training=False)
    return model_fn(x)


def _labels(model_fn, x, y):
    if y is None:
        return tf.argmax(logits_of(model_fn, x), axis=-1)
    return checks.labels(y, _num_classes(model_fn))


def sparse_cross_entropy(labels: TensorLike, logits: tf.Tensor) -> tf.Tensor:
    """Per-example softmax cross-entropy of int `labels` against `logits` (the default `loss_fn`)."""
    return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(labels, tf.int64), logits=logits)


def logits_and_gradient(model_fn: ModelFn, x: tf.Tensor, y: TensorLike,
                        loss_fn: LossFn | None = None) -> tuple[tf.Tensor, tf.Tensor]:
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


def loss_gradient(model_fn: ModelFn, x: tf.Tensor, y: TensorLike, loss_fn: LossFn | None = None) -> tf.Tensor:
    """Gradient w.r.t. `x` of the summed loss of `model_fn(x)` against `y`."""
    return logits_and_gradient(model_fn, x, y, loss_fn)[1]


def fast_gradient_method(model_fn: ModelFn, x: TensorLike, eps: TensorLike, norm: float = np.inf, *,
                         loss_fn: LossFn | None = None, clip_min: float | None = 0.0, clip_max: float | None = 1.0,
                         y: TensorLike | None = None, targeted: bool = False) -> tf.Tensor:
    """FGSM: clip(x + eps·sign(∇x L(x, y)), clip_min, clip_max); `targeted` descends toward y."""
    _check_norm(norm)
    x = checks.pixels(x)
    eps = checks.eps("eps", eps, x.dtype)
    y = _labels(model_fn, x, y)
    direction = tf.sign(loss_gradient(model_fn, x, y, loss_fn))
    if targeted:
        direction = -direction
    return tf.clip_by_value(x + eps * direction, clip_min, clip_max)


def random_fgsm(model_fn: ModelFn, x: TensorLike, eps: TensorLike, alpha: TensorLike, norm: float = np.inf, *,
                loss_fn: LossFn | None = None, clip_min: float | None = 0.0, clip_max: float | None = 1.0,
                y: TensorLike | None = None, seed: int | None = None) -> tf.Tensor:
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


def projected_gradient_descent(model_fn: ModelFn, x: TensorLike, eps: TensorLike, eps_iter: TensorLike,
                               nb_iter: int, norm: float = np.inf, *, loss_fn: LossFn | None = None,
                               clip_min: float | None = 0.0, clip_max: float | None = 1.0,
                               y: TensorLike | None = None, targeted: bool = False, rand_init: bool = True,
                               seed: int | None = None, n_restarts: int = 1) -> tf.Tensor:
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


def square_attack(model_fn: ModelFn, x: TensorLike, eps: TensorLike, norm: float = np.inf, *,
                  y: TensorLike | None = None, n_queries: int = 1000, p_init: float = 0.05, clip_min: float = 0.0,
                  clip_max: float = 1.0, seed: int | None = None) -> tf.Tensor:
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


def transfer_attack(source_fn: ModelFn, x: TensorLike, eps: TensorLike, *, y: TensorLike | None = None,
                    attack: Callable[..., tf.Tensor] | None = None, **attack_kwargs) -> tf.Tensor:
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


LOSSES = ("ce", "dlr")


def dlr_loss(labels: TensorLike, logits: tf.Tensor, target: TensorLike | None = None) -> tf.Tensor:
    """Difference-of-logits-ratio loss of Croce & Hein 2020, per example (to be maximized).

    Untargeted: −(z_y − max_{i≠y} z_i) / (z_π1 − z_π3); targeted toward `target`:
    −(z_y − z_t) / (z_π1 − (z_π3 + z_π4)/2), with z_π1 ≥ z_π2 ≥ … the sorted logits. Invariant to
    shifting and (positively) scaling the logits. Needs at least 3 classes (4 when targeted).
    """
    ordered = tf.sort(logits, axis=-1, direction="DESCENDING")
    if target is None:
        return margin_loss(labels, logits) / (ordered[:, 0] - ordered[:, 2] + 1e-12)
    true = tf.gather(logits, tf.cast(labels, tf.int64), batch_dims=1)
    target_logit = tf.gather(logits, tf.cast(target, tf.int64), batch_dims=1)
    return -(true - target_logit) / (ordered[:, 0] - 0.5 * (ordered[:, 2] + ordered[:, 3]) + 1e-12)


def margin_loss(labels: TensorLike, logits: tf.Tensor) -> tf.Tensor:
    """Carlini–Wagner margin max_{i≠y} z_i − z_y per example (to be maximized); unlike the cross-entropy it
    never saturates, so its input gradient is zero only where the model's logits do not move."""
    labels = tf.cast(labels, tf.int64)
    is_true = tf.one_hot(labels, tf.shape(logits)[-1], on_value=True, off_value=False)
    top_other = tf.reduce_max(tf.where(is_true, tf.fill(tf.shape(logits), logits.dtype.min), logits), axis=-1)
    return top_other - tf.gather(logits, labels, batch_dims=1)


def _apgd_loss(loss, targeted, target):
    """The per-example objective APGD maximizes."""
    if loss == "dlr":
        return lambda labels, logits: dlr_loss(labels, logits, target if targeted else None)
    if targeted:
        return lambda labels, logits: -sparse_cross_entropy(target, logits)
    return sparse_cross_entropy


def apgd(model_fn: ModelFn, x: TensorLike, eps: TensorLike, norm: float = np.inf, *, y: TensorLike | None = None,
         loss: str = "ce", n_iter: int = 100, n_restarts: int = 1, targeted: bool = False, n_target_classes: int = 9,
         rho: float = 0.75, clip_min: float = 0.0, clip_max: float = 1.0, seed: int | None = None) -> tf.Tensor:
    """Auto-PGD (Croce & Hein, ICML 2020), L∞: APGD-CE, APGD-DLR and, with `targeted`, APGD-T.

    Step size 2ε, halved at the paper's checkpoints (after 22% of `n_iter`, then at intervals
    shrinking by 3% of `n_iter` down to 6%) for examples whose loss rose in at most `rho` of the
    steps since the last checkpoint, or whose best loss did not improve when the step was not just
    halved; such examples restart from their best point. Momentum 0.75, projection on the ε-ball
    and [clip_min, clip_max], random start. Each restart (and, with `targeted`, each of the
    `n_target_classes` targets: the classes of 2nd to (n+1)-th highest clean logit) runs only on the
    examples not yet misclassified, as AutoAttack does (under XLA, which needs static shapes: on every
    example, keeping the result for those not yet misclassified). Returns, per example, the first
    misclassified point found, else the point of highest loss. One graph `while` loop per run.

    Departures from the reference `autoattack/autopgd_base.py`: the oscillation count at the first
    checkpoint compares the first step's loss with the starting point's (the reference compares it
    with an unset zero); `targeted` with `loss="ce"` maximizes −CE toward the target.
    """
    _check_norm(norm)
    checks.choice("loss", loss, LOSSES)
    checks.positive_int("n_iter", n_iter)
    checks.positive_int("n_restarts", n_restarts)
    x = checks.pixels(x)
    eps = checks.eps("eps", eps, x.dtype)
    rho = checks.fraction("rho", rho)
    y = tf.cast(_labels(model_fn, x, y), tf.int64)
    logits = logits_of(model_fn, x)
    num_classes = logits.shape[-1]
    needed = 4 if targeted and loss == "dlr" else 3 if loss == "dlr" else 2
    if num_classes is not None and num_classes < needed:
        raise checks.InvalidInputError(
            f"{'Targeted ' if targeted else ''}APGD with loss={loss!r} needs a model with at least {needed} classes; "
            f"this one has {num_classes}.")
    if targeted:
        checks.positive_int("n_target_classes", n_target_classes)
        if num_classes is not None and n_target_classes > num_classes - 1:
            raise checks.InvalidInputError(f"n_target_classes must be at most {num_classes - 1} (the classes other "
                                           f"than the true one); got {n_target_classes}.")
    runs = n_restarts * (n_target_classes if targeted else 1)
    schedule = (max(int(0.22 * n_iter), 1), max(int(0.03 * n_iter), 1), max(int(0.06 * n_iter), 1))
    base = (tf.constant([seed, 0], tf.int32) if seed is not None
            else tf.random.uniform([2], maxval=2**31 - 1, dtype=tf.int32))
    fooled = tf.argmax(logits, axis=-1) != y
    best_loss = tf.fill(tf.shape(y), tf.constant(-np.inf, x.dtype))

    def run(r, x_out, fooled, best_loss):
        if checks.in_xla():  # static shapes: attack every row, keep the result only where none was fooled before
            todo, active = tf.range(tf.shape(y, out_type=tf.int64)[0]), tf.logical_not(fooled)
        else:
            todo = tf.where(tf.logical_not(fooled))[:, 0]
            active = tf.ones_like(todo, tf.bool)
        xs, ys = tf.gather(x, todo), tf.gather(y, todo)
        target = None
        if targeted:
            rank = 2 + r // n_restarts  # the class of rank-th highest clean logit
            order = tf.argsort(logits_of(model_fn, xs), axis=-1, direction="DESCENDING")
            target = order[:, rank - 1]
        hit, x_hit, x_high, high = _apgd_run(model_fn, xs, ys, eps, _apgd_loss(loss, targeted, target), n_iter,
                                              rho, schedule, clip_min, clip_max, base + [0, 1 + r])
        hit, higher = hit & active, (high > tf.gather(best_loss, todo)) & active
        chosen = tf.where(_rows(hit, xs), x_hit, tf.where(_rows(higher, xs), x_high, tf.gather(x_out, todo)))
        index = todo[:, None]
        return (r + 1, tf.tensor_scatter_nd_update(x_out, index, chosen),
                tf.tensor_scatter_nd_update(fooled, index, hit | tf.gather(fooled, todo)),
                tf.tensor_scatter_nd_update(best_loss, index, tf.where(higher, high, tf.gather(best_loss, todo))))

    return tf.while_loop(lambda r, *_: r < runs, run, (tf.constant(0), x, fooled, best_loss))[1]


def _rows(mask, like):
    """A per-example mask broadcastable against the batch `like`."""
    return tf.reshape(mask, [-1] + [1] * (like.shape.rank - 1))


def _apgd_run(model_fn, x, y, eps, loss_fn, n_iter, rho, schedule, clip_min, clip_max, seed):
    """One APGD run on (x, y): (misclassified?, first misclassified point, highest-loss point, highest loss)."""
    first_check, shrink, min_check = schedule

    def evaluate(x_adv):
        with tf.GradientTape() as tape:
            tape.watch(x_adv)
            logits = logits_of(model_fn, x_adv)
            losses = loss_fn(y, logits)
            total = tf.reduce_sum(losses)
        grad = tape.gradient(total, x_adv, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        return tf.argmax(logits, axis=-1) != y, tf.stop_gradient(losses), grad

    def project(z):
        return tf.clip_by_value(tf.clip_by_value(z, x - eps, x + eps), clip_min, clip_max)

    start = tf.random.stateless_uniform(tf.shape(x), seed, -1.0, 1.0, dtype=x.dtype)
    scale = tf.reduce_max(tf.abs(start), axis=list(range(1, x.shape.rank)))  # no reshape: batches may be empty
    x_adv = tf.clip_by_value(x + eps * start / (_rows(scale, x) + 1e-12), clip_min, clip_max)
    hit, losses, grad = evaluate(x_adv)
    ones = tf.ones_like(losses)
    state = dict(
        i=tf.constant(0), x_adv=x_adv, x_old=x_adv, grad=grad, step=2.0 * eps * ones, hit=hit, x_hit=x_adv,
        x_best=x_adv, grad_best=grad, loss_best=losses, loss_prev=losses, rises=tf.zeros_like(losses),
        reduced=tf.ones_like(hit), loss_at_check=losses, since_check=tf.constant(0), interval=tf.constant(first_check))

    def step(s):
        momentum = tf.where(s["i"] > 0, tf.constant(0.75, x.dtype), tf.constant(1.0, x.dtype))
        z = project(s["x_adv"] + _rows(s["step"], x) * tf.sign(s["grad"]))
        x_new = project(s["x_adv"] + momentum * (z - s["x_adv"]) + (1 - momentum) * (s["x_adv"] - s["x_old"]))
        hit, losses, grad = evaluate(x_new)
        x_hit = tf.where(_rows(hit & tf.logical_not(s["hit"]), x), x_new, s["x_hit"])
        better = losses > s["loss_best"]
        s = {**s, "x_old": s["x_adv"], "x_adv": x_new, "grad": grad, "hit": s["hit"] | hit, "x_hit": x_hit,
             "x_best": tf.where(_rows(better, x), x_new, s["x_best"]),
             "grad_best": tf.where(_rows(better, x), grad, s["grad_best"]),
             "loss_best": tf.where(better, losses, s["loss_best"]), "loss_prev": losses,
             "rises": s["rises"] + tf.cast(losses > s["loss_prev"], x.dtype), "since_check": s["since_check"] + 1,
             "i": s["i"] + 1}

        def checkpoint(s):
            interval = tf.cast(s["interval"], x.dtype)
            halve = (s["rises"] <= rho * interval) | (
                tf.logical_not(s["reduced"]) & (s["loss_at_check"] >= s["loss_best"]))
            rows = _rows(halve, x)
            return {**s, "step": tf.where(halve, s["step"] / 2, s["step"]), "reduced": halve,
                    "x_adv": tf.where(rows, s["x_best"], s["x_adv"]), "grad": tf.where(rows, s["grad_best"], s["grad"]),
                    "loss_at_check": s["loss_best"], "rises": tf.zeros_like(s["rises"]),
                    "since_check": tf.constant(0), "interval": tf.maximum(s["interval"] - shrink, min_check)}

        return tf.cond(tf.equal(s["since_check"], s["interval"]), lambda: checkpoint(s), lambda: s)

    final = tf.while_loop(lambda s: s["i"] < n_iter, lambda s: (step(s),), (state,))[0]
    return final["hit"], final["x_hit"], final["x_best"], final["loss_best"]
