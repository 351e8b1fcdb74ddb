"""An attack in the discretized input space: a model that discretizes its input only ever sees levels, so search the
levels directly, with exact forward passes, for what straight-through gradients miss."""

import tensorflow as tf

from tfdisc import ops
from tfdisc.models import discretization_of, without_discretization
from tfdisc.types import TensorLike


def discrete_search(model: tf.keras.Model, x: TensorLike, eps: TensorLike, y: TensorLike, *,
                    plain: tf.keras.Model | None = None, steps: int = 40, candidates: int = 16) -> tf.Tensor:
    """An attack in the discretized space: from the clean image's levels, greedily move one free pixel at a time to
    the end of its reachable range that lowers the logit margin most, ranking moves by the margin's gradient and
    choosing among the best `candidates` by exact forward passes, for up to `steps` moves. Returns inputs in the
    ε-ball (floats whose discretization is the levels found). Graph-safe; `eps` may be a tensor. `plain` is
    `tfdisc.models.without_discretization(model)`, made once by the caller that calls this in a loop."""
    discretization = discretization_of(model)
    if discretization is None:
        raise ValueError(f"{model.name} has no InputDiscretization layer: the discrete search attacks models that "
                         "discretize their input.")
    plain = plain if plain is not None else without_discretization(model)
    x = tf.cast(x, tf.float32)
    y = tf.cast(y, tf.int64)
    low, high = ops.reachable_levels(x, eps, discretization.bits, discretization.mode)
    shape = tf.shape(x)
    flat = lambda v: tf.reshape(v, [shape[0], -1])  # noqa: E731
    low_f, high_f = flat(low), flat(high)
    z = flat(ops.discretize(x, discretization.bits, discretization.mode))
    num_classes = int(model.output_shape[-1])

    def margins(images):
        logits = plain(tf.reshape(images, tf.concat([[-1], shape[1:]], 0)), training=False)
        onehot = tf.one_hot(tf.tile(y, [tf.shape(logits)[0] // tf.shape(y)[0]]), num_classes, dtype=logits.dtype)
        return tf.reduce_sum(logits * onehot, -1) - tf.reduce_max(logits - 1e9 * onehot, -1)

    k = tf.minimum(candidates, tf.shape(z)[1])
    for _ in tf.range(steps):
        with tf.GradientTape() as tape:
            tape.watch(z)
            current = margins(z)
        gradient = tape.gradient(current, z)
        target = tf.where(gradient > 0, low_f, high_f)
        gain = gradient * (target - z)  # the linearized change of the margin: negative is good
        gain = tf.where(tf.abs(target - z) > 0, gain, tf.ones_like(gain) * 1e9)
        _, index = tf.math.top_k(-gain, k)  # (batch, k) most promising pixels
        moved = tf.gather(target, index, batch_dims=1) - tf.gather(z, index, batch_dims=1)
        trial = z[:, None, :] + tf.one_hot(index, tf.shape(z)[1]) * moved[..., None]  # (batch, k, pixels)
        trial_margins = tf.reshape(margins(tf.reshape(trial, [-1, tf.shape(z)[1]])), [-1, k])
        best = tf.argmin(trial_margins, axis=1, output_type=tf.int32)
        improves = (tf.reduce_min(trial_margins, 1) < current) & (current > 0)
        z = tf.where(improves[:, None], tf.gather(trial, best, batch_dims=1), z)
    return ops.input_for_levels(x, eps, tf.reshape(z, shape))
