"""Other ways a study may have run its FGSM evaluation, each an explicit protocol, to test which one explains its
numbers. tfdisc's own protocol stays `"standard"`; the others exist only to be compared with it.

- `standard`: FGSM on the raw image, gradients straight through the input discretization (BPDA), and the
  model discretizes x_adv again, as it does every input.
- `perturb_discretized`: the perturbation is added to the already-discretized image, q(x) + ε·sign(∇), and the
  network sees that image with no second discretization (an evaluation that quantizes the data set once,
  up front, and attacks the network behind it).
- `gradient_without_discretization`: the FGSM direction comes from the network without its input
  discretization, at the raw image; the model then discretizes x_adv (an attacker who differentiates the
  network it was handed before the quantizer was added).
- `normalized_eps`: ε counts in units of normalized inputs, (x − mean) / std, as in code that normalizes
  inside the data pipeline (BinaryNet.pytorch, XNOR-Net-PyTorch): a pixel budget of ε·std.

A fourth hypothesis, round-to-nearest quantization, changes the trained model, not the attack: train with
`build_model(..., input_mode="round")` (`--input_mode=round`) and evaluate it with `standard`.
"""

import numpy as np
import tensorflow as tf

from tfdisc import attacks, checks, ops
from tfdisc import eps as eps_lib
from tfdisc.evaluation.data import as_dataset, checked_batch, direction
from tfdisc.models import discretization_of, with_input_gradient, without_discretization
from tfdisc.types import Data, EpsValues

PROTOCOLS = ("standard", "perturb_discretized", "gradient_without_discretization", "normalized_eps")
# Per-channel standard deviations of the training images, as the reference codes normalize them.
STD = {"mnist": (0.3081,), "fashion_mnist": (0.3530,), "cifar10": (0.2470, 0.2435, 0.2616)}


def protocol_sweep(model: tf.keras.Model, data: Data, eps_values: EpsValues, protocol: str, *,
                   dataset: str | None = None) -> dict:
    """FGSM accuracy of `model` on `data` at every ε under `protocol` (see the module docstring).

    # Arguments
        model: a model built by `tfdisc.models.build_model` (its first layer discretizes the input).
        data: (x, y) arrays or a dataset of batches.
        eps_values: the ε grid, in the protocol's units (pixels, or normalized units for `normalized_eps`).
        protocol: one of `PROTOCOLS`.
        dataset: the data set's name, for `normalized_eps`'s standard deviation.

    # Returns
        {"attack": "fgsm", "protocol", "eps", "accuracy", "examples"}.
    """
    checks.choice("protocol", protocol, PROTOCOLS)
    eps = eps_lib.values(eps_values)
    discretization = discretization_of(model)
    if discretization is None and protocol in ("perturb_discretized", "gradient_without_discretization"):
        raise ValueError(f"The {protocol} protocol needs a model whose first layer discretizes its input.")
    model = with_input_gradient(model, "identity")
    if protocol == "normalized_eps":
        if dataset not in STD:
            raise ValueError(f"normalized_eps needs the data set's standard deviation; known for {sorted(STD)}.")
        scale = tf.constant(STD[dataset], tf.float32)  # broadcasts over the channel axis
    else:
        scale = tf.constant(1.0)
    plain = without_discretization(model)
    num_classes = int(model.output_shape[-1])

    @tf.function(reduce_retracing=True)
    def correct_counts(x, y, eps_tensor):
        x, y = checked_batch(x, y, num_classes)
        if protocol == "perturb_discretized":
            start = ops.discretize(x, discretization.bits, discretization.mode)
            sign = direction(attacks.loss_gradient(plain, start, y))
            target = plain
        elif protocol == "gradient_without_discretization":
            start, sign, target = x, direction(attacks.loss_gradient(plain, x, y)), model
        else:
            start, sign, target = x, direction(attacks.loss_gradient(model, x, y)), model

        def correct_at(e):
            x_adv = tf.clip_by_value(start + e * scale * sign, 0.0, 1.0)
            return tf.reduce_sum(tf.cast(tf.argmax(attacks.logits_of(target, x_adv), -1) == y, tf.int64))

        return tf.map_fn(correct_at, eps_tensor, fn_output_signature=tf.int64), tf.size(y, tf.int64)

    correct, examples = np.zeros(len(eps), np.int64), 0
    with checks.clear_errors():
        for x, y in as_dataset(data):
            counts, n = correct_counts(x, y, tf.constant(eps, tf.float32))
            correct, examples = correct + counts.numpy(), examples + int(n)
    if examples == 0:
        raise ValueError("The data holds no examples.")
    return {"attack": "fgsm", "protocol": protocol, "eps": eps, "accuracy": (correct / examples).tolist(),
            "examples": examples}
