"""L∞ attacks as plain functions over `model_fn(x) -> logits` (CleverHans v4 conventions).

Pixels live in [0, 1], so `eps` is in pixel units (8/255 is eight 8-bit levels). A Keras model
passed as `model_fn` is called with `training=False`. Nothing here is wrapped in
`tf.function`: the caller compiles once, and `eps` may be a tensor, so changing it never
retraces. Labels `y` are int class ids; `y=None` attacks the model's own predictions
(avoids label leaking).
"""

import tensorflow as tf

from tfdisc.ops import to_unit_float


def _check_non_negative(name, value):
    """ValueError for a known negative value; a graph assertion for a symbolic one."""
    value = tf.convert_to_tensor(value, tf.float32)
    static = tf.get_static_value(value)
    if static is not None:
        if static < 0:
            raise ValueError(f"{name} must be >= 0 (an L∞ budget in [0, 1] pixel units); got {float(static)}.")
        return value
    with tf.control_dependencies([tf.debugging.assert_non_negative(value, message=f"{name} must be >= 0")]):
        return tf.identity(value)


def _check_positive_int(name, value):
    static = tf.get_static_value(tf.convert_to_tensor(value))
    if static is not None and (static < 1 or int(static) != static):
        raise ValueError(f"{name} must be a positive int; got {static}.")


def logits_of(model_fn, x):
    """Logits of `model_fn` at `x`, with a Keras model in inference mode."""
    if isinstance(model_fn, tf.keras.layers.Layer):
        return model_fn(x, training=False)
    return model_fn(x)


def _labels(model_fn, x, y):
    if y is None:
        return tf.argmax(logits_of(model_fn, x), axis=-1)
    return tf.convert_to_tensor(y)


def logits_and_gradient(model_fn, x, y):
    """Logits at `x` and the gradient w.r.t. `x` of their summed softmax cross-entropy against `y`.

    Summing (not averaging) keeps each example's gradient independent of the batch size.
    """
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = logits_of(model_fn, x)
        loss = tf.reduce_sum(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(y, tf.int64), logits=logits))
    return logits, tape.gradient(loss, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)


def loss_gradient(model_fn, x, y):
    """Gradient w.r.t. `x` of the summed softmax cross-entropy of `model_fn(x)` against `y`."""
    return logits_and_gradient(model_fn, x, y)[1]


def fast_gradient_method(model_fn, x, y, eps, clip_min=0.0, clip_max=1.0, targeted=False):
    """FGSM: clip(x + eps·sign(∇x L(x, y)), clip_min, clip_max); `targeted` descends toward y."""
    eps = _check_non_negative("eps", eps)
    x = to_unit_float(x)
    y = _labels(model_fn, x, y)
    direction = tf.sign(loss_gradient(model_fn, x, y))
    if targeted:
        direction = -direction
    return tf.clip_by_value(x + tf.cast(eps, x.dtype) * direction, clip_min, clip_max)


def random_fgsm(model_fn, x, y, eps, alpha, clip_min=0.0, clip_max=1.0, seed=None):
    """R-FGSM (Tramèr et al. 2018): a random α-step, then an (eps − α) gradient-sign step.

    x' = clip(x + α·sign(N(0, I))),  x_adv = clip(x' + (eps − α)·sign(∇x' L(x', y))).
    `seed`: None (global seed), an int (the same noise every call) or a `tf.random.Generator`.
    """
    eps = _check_non_negative("eps", eps)
    alpha = _check_non_negative("alpha", alpha)
    static_eps, static_alpha = tf.get_static_value(eps), tf.get_static_value(alpha)
    if static_eps is not None and static_alpha is not None and static_alpha > static_eps:
        raise ValueError(f"alpha must be <= eps (the random step spends part of the budget); got alpha={static_alpha}, eps={static_eps}.")
    x = to_unit_float(x)
    y = _labels(model_fn, x, y)
    noise = _normal(tf.shape(x), seed)
    x_rand = tf.clip_by_value(x + tf.cast(alpha, x.dtype) * tf.sign(noise), clip_min, clip_max)
    step = tf.cast(tf.maximum(eps - alpha, 0.0), x.dtype)
    return tf.clip_by_value(x_rand + step * tf.sign(loss_gradient(model_fn, x_rand, y)), clip_min, clip_max)


def projected_gradient_descent(model_fn, x, y, eps, eps_iter, nb_iter, rand_init=True,
                               clip_min=0.0, clip_max=1.0, seed=None):
    """L∞ PGD (Madry et al. 2018): `nb_iter` FGSM steps of `eps_iter`, each projected onto the eps-ball.

    With `rand_init` the start is uniform in the eps-ball. Runs as one `tf.while_loop`.
    """
    eps = _check_non_negative("eps", eps)
    eps_iter = _check_non_negative("eps_iter", eps_iter)
    _check_positive_int("nb_iter", nb_iter)
    x = to_unit_float(x)
    y = _labels(model_fn, x, y)
    eps = tf.cast(eps, x.dtype)
    x_adv = x
    if rand_init:
        x_adv = x + _uniform(tf.shape(x), -eps, eps, seed)
    x_adv = tf.clip_by_value(x_adv, clip_min, clip_max)

    def step(i, x_adv):
        x_adv = x_adv + tf.cast(eps_iter, x.dtype) * tf.sign(loss_gradient(model_fn, x_adv, y))
        x_adv = tf.clip_by_value(x_adv, x - eps, x + eps)
        return i + 1, tf.clip_by_value(x_adv, clip_min, clip_max)

    _, x_adv = tf.while_loop(lambda i, _: i < nb_iter, step, (tf.constant(0), x_adv))
    return x_adv


def _normal(shape, seed):
    if isinstance(seed, tf.random.Generator):
        return seed.normal(shape)
    if seed is None:
        return tf.random.normal(shape)
    return tf.random.stateless_normal(shape, seed=[seed, 0])


def _uniform(shape, low, high, seed):
    if seed is None:
        return tf.random.uniform(shape, low, high)
    return tf.random.stateless_uniform(shape, seed=[seed, 1], minval=low, maxval=high)
