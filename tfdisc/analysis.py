"""What an attack does inside a trained model: the study's Fig. 6 (L1 norm of first-layer activations)."""

from typing import Callable

import numpy as np
import tensorflow as tf

from tfdisc import attacks, checks, eps as eps_lib
from tfdisc.evaluation import as_dataset
from tfdisc.models import discretization_gradient, with_input_gradient
from tfdisc.types import Data, EpsValues


def first_hidden_activations(model: tf.keras.Model) -> Callable[[tf.Tensor], tf.Tensor]:
    """A function x -> the first hidden layer's activations as the second weighted layer sees them, flattened.

    That is the ReLU output in full precision and the ±1 signs in a BNN (the second layer's
    `input_quantizer`), so an attack's effect is measured on what the network actually propagates.
    The layers up to there must form a chain, as they do in every model `tfdisc.models` builds.
    """
    weighted = [layer for layer in model.layers if isinstance(layer, (tf.keras.layers.Dense, tf.keras.layers.Conv2D))]
    if len(weighted) < 2:
        raise ValueError(f"{model.name} has {len(weighted)} Dense/Conv2D layer(s); the analysis needs a hidden layer "
                         "between two of them.")
    consumer = weighted[1]
    before = [layer for layer in model.layers[:model.layers.index(consumer)]
              if not isinstance(layer, tf.keras.layers.InputLayer)]
    quantizer = getattr(consumer, "input_quantizer", None) or (lambda a: a)

    def activations(x):
        for layer in before:
            x = layer(x, training=False)
        a = quantizer(x)
        return tf.reshape(a, [tf.shape(a)[0], -1])

    return activations


def activation_l1(model: tf.keras.Model, data: Data, eps_values: EpsValues, gradient: str | None = None) -> dict:
    """Mean L1 norms of the first hidden layer's activations a(·) on clean and FGSM inputs, for every ε.

    x_adv = clip(x + ε·sign(∇x L), 0, 1) with the model's own gradient through the input
    discretization (straight-through unless `gradient` says otherwise). Returns lists over ε of
    the mean over examples of ‖a(x)‖₁ ("clean_l1"), ‖a(x_adv)‖₁ ("adversarial_l1") and
    ‖a(x_adv) − a(x)‖₁ ("change_l1"), with "units" (the layer's width) to compare nets of two sizes.
    """
    eps = tf.constant(eps_lib.values(eps_values), tf.float32)
    model = model if gradient is None else with_input_gradient(model, gradient)
    activations = first_hidden_activations(model)
    num_classes = int(model.output_shape[-1])

    @tf.function(reduce_retracing=True)
    def batch_sums(x, y):
        x, y = tf.cast(checks.pixels(x), tf.float32), tf.cast(checks.labels(y, num_classes), tf.int64)
        _, grad = attacks.logits_and_gradient(model, x, y)
        clean = activations(x)

        def at(e):
            adversarial = activations(tf.clip_by_value(x + e * tf.sign(grad), 0.0, 1.0))
            return tf.stack([tf.reduce_sum(tf.abs(adversarial)), tf.reduce_sum(tf.abs(adversarial - clean))])

        return tf.reduce_sum(tf.abs(clean)), tf.map_fn(at, eps), tf.shape(x)[0]

    clean_sum, sums, examples = 0.0, np.zeros((len(eps), 2)), 0
    with checks.clear_errors():
        for x, y in as_dataset(data):
            clean, per_eps, n = batch_sums(x, y)
            clean_sum, sums, examples = clean_sum + float(clean), sums + per_eps.numpy(), examples + int(n)
    if examples == 0:
        raise ValueError("The data holds no examples.")
    return {
        "attack": "fgsm",
        "gradient": discretization_gradient(model),
        "eps": eps.numpy().tolist(),
        "clean_l1": [clean_sum / examples] * len(eps),
        "adversarial_l1": (sums[:, 0] / examples).tolist(),
        "change_l1": (sums[:, 1] / examples).tolist(),
        "units": int(activations(tf.zeros((1, *model.input_shape[1:]))).shape[-1]),
        "examples": examples,
    }
