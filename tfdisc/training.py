"""R-FGSM adversarial training (Tramèr et al. 2018) as a Keras model wrapper."""

import tensorflow as tf

from tfdisc import attacks, checks
from tfdisc.steps import CheckedSteps


class AdversarialModel(CheckedSteps, tf.keras.Model):
    """Wrap `model` so that `fit` trains on a mix of clean and R-FGSM examples.

    Each step replaces the first `adv_ratio` share of the (per-replica) batch by
    `attacks.random_fgsm(model, x, eps, alpha)`, crafted with the model in inference mode and
    under `tf.stop_gradient`, then takes one ordinary optimizer step on the mixed batch.
    Logs `adv_loss`/`adv_accuracy` and, when adv_ratio < 1, `clean_loss`/`clean_accuracy` on the
    two parts of each batch; `evaluate` reports them for clean inputs and for FGSM at `eps`. Labels
    are int ids, the model's outputs logits. `set_budget` changes eps and alpha between epochs (an eps
    warm-up, say) without retracing. `save` exports the plain underlying model.

    # Arguments
        model: the Keras classifier to train (logits out).
        eps: R-FGSM's L∞ budget in [0, 1] pixel units.
        alpha: its random step, in [0, eps]; None for eps / 2 (Tramèr et al.'s choice).
        adv_ratio: the share of each batch replaced by adversarial examples, in (0, 1].
        seed: the noise generator's seed (None: nondeterministic); checkpoints hold its state.
    """

    def __init__(self, model: tf.keras.Model, eps: float, alpha: float | None = None, adv_ratio: float = 0.5,
                 seed: int | None = None, **kwargs):
        super().__init__(name=kwargs.pop("name", f"adversarial_{model.name}"), **kwargs)
        self.adv_ratio = checks.fraction("adv_ratio (the share of each batch made adversarial)", adv_ratio,
                                         low_inclusive=False)
        self.model = model
        # Variables, not Python floats: a new budget reaches the compiled step without a retrace.
        self._eps = tf.Variable(0.0, trainable=False, name="eps")
        self._alpha = tf.Variable(0.0, trainable=False, name="alpha")
        self.set_budget(eps, alpha)
        self.seed = seed
        # A tracked generator: checkpoints hold its state, so a resumed run draws the same noise.
        self.noise = (tf.random.Generator.from_seed(seed) if seed is not None
                      else tf.random.Generator.from_non_deterministic_state())
        self._parts = {
            part: (tf.keras.metrics.Mean(name=f"{part}_loss"),
                   tf.keras.metrics.SparseCategoricalAccuracy(name=f"{part}_accuracy"))
            for part in (("adv",) if self.adv_ratio == 1 else ("clean", "adv"))
        }

    @property
    def eps(self) -> float:
        return shortest_float(self._eps)

    @property
    def alpha(self) -> float:
        return shortest_float(self._alpha)

    @property
    def classifier(self) -> tf.keras.Model:
        return self.model

    def set_budget(self, eps: float, alpha: float | None = None) -> None:
        """Set the L∞ budget eps in [0, 1] and the random step alpha in [0, eps] (default eps / 2)."""
        eps = checks.fraction("eps (an L∞ budget in pixel units)", eps)
        alpha = checks.fraction("alpha (R-FGSM's random step, at most eps)", eps / 2 if alpha is None else alpha,
                                high=eps)
        self._eps.assign(eps)
        self._alpha.assign(alpha)

    def call(self, inputs, training=None):
        return self.model(inputs, training=training)

    def _update_part(self, part, y, logits):
        if part not in self._parts:
            return
        loss, accuracy = self._parts[part]
        loss.update_state(tf.keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
        accuracy.update_state(y, logits)

    def train_core(self, x: tf.Tensor, y: tf.Tensor, sample_weight: tf.Tensor | None) -> dict:
        n_adv = tf.cast(tf.round(self.adv_ratio * tf.cast(tf.shape(x)[0], tf.float32)), tf.int32)
        x_adv = tf.stop_gradient(attacks.random_fgsm(self.model, x[:n_adv], self._eps, self._alpha, y=y[:n_adv],
                                                     seed=self.noise))
        x_mixed = tf.concat([x_adv, tf.cast(x[n_adv:], x_adv.dtype)], axis=0)
        with tf.GradientTape() as tape:
            y_pred = self(x_mixed, training=True)
            loss = self.compute_loss(x_mixed, y, y_pred, sample_weight)
        self.optimizer.minimize(loss, self.trainable_variables, tape=tape)
        self._update_part("adv", y[:n_adv], y_pred[:n_adv])
        self._update_part("clean", y[n_adv:], y_pred[n_adv:])
        return self.compute_metrics(x_mixed, y, y_pred, sample_weight)

    def test_core(self, x: tf.Tensor, y: tf.Tensor, sample_weight: tf.Tensor | None) -> dict:
        y_pred = self(x, training=False)
        self.compute_loss(x, y, y_pred, sample_weight)
        self._update_part("clean", y, y_pred)
        x_adv = attacks.fast_gradient_method(self.model, x, self._eps, y=y)
        self._update_part("adv", y, self(x_adv, training=False))
        return self.compute_metrics(x, y, y_pred, sample_weight)

    def save(self, *args, **kwargs):
        """Save the plain underlying model (what users deploy), not this training wrapper."""
        return self.model.save(*args, **kwargs)


def shortest_float(variable: tf.Variable) -> float:
    """A float32 variable's value as the shortest decimal that rounds to it (0.3, not 0.30000001...)."""
    return float(str(variable.numpy()))
