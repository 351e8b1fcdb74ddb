"""Certified training with interval bounds (IBP, Gowal et al. 2018) as a Keras model wrapper.

A model trained on its own worst-case interval bounds is one the certification of `tfdisc.certification` can
decide: the bracket [certified, attacked] closes. The bounds are those the certification uses
(`tfdisc.certification.bounds.margin_lower_bounds`: exact through `InputDiscretization`, sign quantizers with
Larq's straight-through gradient), so what training pushes up is what `certify` later measures.
"""

import tensorflow as tf

from tfdisc import callbacks, checks
from tfdisc.certification import bounds
from tfdisc.steps import CheckedSteps
from tfdisc.training import shortest_float


def worst_case_logits(margins: tf.Tensor) -> tf.Tensor:
    """Gowal et al.'s worst-case logits from lower bounds of the margins logit[y] − logit[j] ((batch, classes − 1)):
    0 for the true class, placed first, and −bound for every other; cross-entropy with label 0 is the verified
    loss."""
    return tf.concat([tf.zeros_like(margins[:, :1]), -margins], axis=1)


class IntervalBoundModel(CheckedSteps, tf.keras.Model):
    """Wrap `model` so that `fit` minimizes κ·CE(logits) + (1 − κ)·CE(worst-case logits over the ε-ball).

    The worst-case logits come from interval bounds on the logit margins over the discretized ε-ball of each
    training image (`worst_case_logits`); BatchNorm enters them with its moving statistics (what inference and
    the certification use), while the clean pass in training mode updates those statistics. `set_budget` changes ε
    and κ between epochs without a retrace: IBP needs ε ramped up from 0 (`callbacks.BudgetRamp`). Logs
    `verified_loss` and `certified_accuracy` (the share of the batch the interval bounds certify) beside the clean
    loss and accuracy; `evaluate` reports them at ε. Labels are int ids, the model's outputs logits. `save` exports
    the plain underlying model.

    # Arguments
        model: the Keras classifier to train (logits out); its first layer an `InputDiscretization`.
        eps: the L∞ budget in [0, 1] pixel units.
        kappa: the weight of the clean loss, in [0, 1] (Gowal et al. end at 0.5).
    """

    def __init__(self, model: tf.keras.Model, eps: float, kappa: float = 0.5, **kwargs):
        super().__init__(name=kwargs.pop("name", f"interval_bound_{model.name}"), **kwargs)
        self.model = model
        self._discretization = bounds.discretization_layer(model)
        bounds.affine_tail(model)  # a model whose margins the bounds cannot reach is refused here, not in fit
        self._eps = tf.Variable(0.0, trainable=False, name="eps")
        self._kappa = tf.Variable(1.0, trainable=False, name="kappa")
        self.set_budget(eps, kappa)
        self._verified = (tf.keras.metrics.Mean(name="verified_loss"),
                          tf.keras.metrics.Mean(name="certified_accuracy"))

    @property
    def eps(self) -> float:
        return shortest_float(self._eps)

    @property
    def kappa(self) -> float:
        return shortest_float(self._kappa)

    @property
    def classifier(self) -> tf.keras.Model:
        return self.model

    def set_budget(self, eps: float, kappa: float | None = None) -> None:
        """Set the L∞ budget eps in [0, 1] and, if given, the clean loss's weight kappa in [0, 1]."""
        self._eps.assign(checks.fraction("eps (an L∞ budget in pixel units)", eps))
        if kappa is not None:
            self._kappa.assign(checks.fraction("kappa (the clean loss's weight)", kappa))

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    def _verified_loss(self, x, y):
        """Per example, the cross-entropy of the worst-case logits, and whether the bounds certify it."""
        low, high = bounds.level_box(self._discretization, x, tf.cast(self._eps, x.dtype))
        margins = tf.cast(bounds.margin_lower_bounds(self.model, low, high, tf.cast(y, tf.int32)), tf.float32)
        loss = tf.keras.losses.sparse_categorical_crossentropy(tf.zeros_like(y), worst_case_logits(margins),
                                                               from_logits=True)
        return loss, tf.cast(tf.reduce_all(margins > 0, axis=-1), tf.float32)

    def _update_verified(self, loss, certified):
        self._verified[0].update_state(loss)
        self._verified[1].update_state(certified)

    def train_core(self, x: tf.Tensor, y: tf.Tensor, sample_weight: tf.Tensor | None) -> dict:
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            verified, certified = self._verified_loss(x, y)
            loss = (self._kappa * self.compute_loss(x, y, y_pred, sample_weight)
                    + (1.0 - self._kappa) * tf.nn.compute_average_loss(verified, sample_weight=sample_weight))
        self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
        self._update_verified(verified, certified)
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def test_core(self, x: tf.Tensor, y: tf.Tensor, sample_weight: tf.Tensor | None) -> dict:
        y_pred = self(x, training=False)
        self.compute_loss(x, y, y_pred, sample_weight)
        self._update_verified(*self._verified_loss(x, y))
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def save(self, *args, **kwargs):
        """Save the plain underlying model (what users deploy), not this training wrapper."""
        return self.model.save(*args, **kwargs)


def budget_ramp(eps: float, kappa: float, epochs: int) -> callbacks.BudgetRamp:
    """The schedule `experiments/*.py --ibp_train` uses: one clean epoch (when there are three or more), then ε
    from 0 to `eps` and κ from 1 to `kappa` linearly over half of the epochs, then the full budget."""
    warmup = 1 if epochs >= 3 else 0
    return callbacks.BudgetRamp(eps, kappa, warmup_epochs=warmup, ramp_epochs=max(1, epochs // 2))
