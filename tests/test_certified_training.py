"""tfdisc.certified_training: IBP training's loss, metrics, budget ramp and effect."""

import numpy as np
import pytest
import tensorflow as tf

from helpers import accuracy
from tfdisc import callbacks, certification, checks, models
from tfdisc.certification import bounds
from tfdisc.certified_training import IntervalBoundModel, budget_ramp, worst_case_logits


def _compiled(precision="full", bits=2, run_eagerly=False, jit_compile=False, strategy=None, **kwargs):
    with (strategy or tf.distribute.get_strategy()).scope():
        model = IntervalBoundModel(models.build_model("fcn2", precision=precision, input_bits=bits, width=64, depth=2),
                                   **kwargs)
        model.compile(tf.keras.optimizers.Adam(1e-3), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"], run_eagerly=run_eagerly, jit_compile=jit_compile)
    return model


def test_worst_case_logits_put_the_true_class_first_at_zero():
    margins = tf.constant([[1.0, -2.0, 3.0]])
    np.testing.assert_array_equal(worst_case_logits(margins).numpy(), [[0.0, -1.0, 2.0, -3.0]])


@pytest.mark.parametrize("mode, precision", [("graph", "full")] + [
    pytest.param(mode, precision, marks=pytest.mark.slow)
    for mode, precision in [("eager", "full"), ("xla", "full"), ("graph", "bnn"), ("xla", "bnn")]])
def test_evaluate_reports_the_share_the_certification_certifies(mnist_small, mode, precision):
    x, y, x_test, y_test = mnist_small
    model = _compiled(precision, run_eagerly=mode == "eager", jit_compile=mode == "xla", eps=0.05)
    history = model.fit(x[:1000], y[:1000], batch_size=50, epochs=1, verbose=0)
    for key in ("loss", "accuracy", "verified_loss", "certified_accuracy"):
        assert np.isfinite(history.history[key][0]), key
    results = model.evaluate(x_test, y_test, batch_size=100, verbose=0, return_dict=True)
    found = certification.certify(model.model, (x_test, y_test), [0.05], bound="ibp", enumeration_limit=0)
    assert results["certified_accuracy"] == pytest.approx(found["certified"][0], abs=1e-6)
    assert results["accuracy"] == pytest.approx(accuracy(model.model, x_test, y_test), abs=1e-6)
    assert results["certified_accuracy"] <= results["accuracy"]


def test_the_verified_loss_reaches_every_trainable_weight(mnist_small):
    x, y, _, _ = mnist_small
    model = _compiled(eps=0.1, kappa=0.0)
    model(x[:2])
    with tf.GradientTape() as tape:
        loss, _ = model._verified_loss(tf.constant(x[:64]), tf.constant(y[:64]))
        loss = tf.reduce_mean(loss)
    gradients = tape.gradient(loss, model.trainable_variables)
    assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0 for g in gradients)


@pytest.mark.slow
def test_ibp_training_certifies_what_plain_training_does_not(mnist_small):
    x, y, x_test, y_test = mnist_small
    certified = {}
    for ibp in (False, True):
        tf.keras.utils.set_random_seed(0)
        model = _compiled(eps=0.1)
        ramp = budget_ramp(0.1 if ibp else 0.0, 0.5 if ibp else 1.0, 6)
        model.fit(x, y, batch_size=50, epochs=6, verbose=0, callbacks=[ramp])
        found = certification.certify(model.model, (x_test, y_test), [0.1], bound="ibp", enumeration_limit=0)
        certified[ibp] = found["certified"][0]
    assert certified[True] > certified[False] + 0.3


@pytest.mark.slow
def test_trains_under_mirrored_strategy_with_two_replicas(mnist_small):
    x, y, x_test, y_test = mnist_small
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"],
                                              cross_device_ops=tf.distribute.ReductionToOneDevice())
    model = _compiled(strategy=strategy, eps=0.05)
    history = model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(64), epochs=3, verbose=0,
                        callbacks=[callbacks.BudgetRamp(0.05, 0.5, warmup_epochs=0, ramp_epochs=1)])
    assert history.history["verified_loss"][-1] < history.history["verified_loss"][1]
    results = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    found = certification.certify(model.model, (x_test, y_test), [0.05], bound="ibp", enumeration_limit=0)
    # Each replica keeps its own BatchNorm moving statistics (Keras reads their mean outside the replicas), so the
    # replicas' shares and the plain model's agree only closely.
    assert results["certified_accuracy"] == pytest.approx(found["certified"][0], abs=0.02)
    assert results["certified_accuracy"] > 0.3


def test_the_ramp_goes_from_clean_training_to_the_budget():
    ramp = callbacks.BudgetRamp(0.2, 0.5, warmup_epochs=1, ramp_epochs=4)
    assert [ramp.share(p) for p in (0, 0.5, 1, 2, 3, 5, 7)] == [0, 0, 0, 0.25, 0.5, 1, 1]
    model = _compiled(eps=0.2)
    ramp.set_model(model)
    ramp.set_params({"steps": 10})
    ramp.on_epoch_begin(2)  # a resumed run's third epoch: the same budget as in an uninterrupted run
    ramp.on_train_batch_begin(5)
    assert model.eps == pytest.approx(0.2 * 0.375) and model.kappa == pytest.approx(1 - 0.5 * 0.375)
    assert budget_ramp(0.1, 0.5, 10).share(6) == 1 and budget_ramp(0.1, 0.5, 10).share(1) == 0
    with pytest.raises(ValueError, match="ramp_epochs must be ≥ 0"):
        callbacks.BudgetRamp(0.1, 0.5, warmup_epochs=0, ramp_epochs=-1)


@pytest.mark.parametrize("eps, kappa, message", [(1.5, 0.5, "eps"), (0.1, -0.1, "kappa")])
def test_a_budget_out_of_range_is_named(eps, kappa, message):
    with pytest.raises(checks.InvalidInputError, match=message):
        _compiled(eps=eps, kappa=kappa)


def test_a_model_without_discretization_is_refused_in_one_line():
    inputs = tf.keras.Input((4,))
    plain = tf.keras.Model(inputs, tf.keras.layers.Dense(3)(inputs))
    with pytest.raises(bounds.UnsupportedLayer, match="0 InputDiscretization layers"):
        IntervalBoundModel(plain, eps=0.1)


def test_bad_labels_are_named_and_save_exports_the_plain_model(tmp_path, mnist_small):
    x, y, _, _ = mnist_small
    model = _compiled(eps=0.05)
    with pytest.raises(checks.InvalidInputError, match="label"):
        model.fit(x[:10], np.full(10, 12), batch_size=10, verbose=0)
    model.fit(x[:100], y[:100], batch_size=50, verbose=0)
    model.save(str(tmp_path / "saved"))
    loaded = models.load(str(tmp_path / "saved"))
    assert not isinstance(loaded, IntervalBoundModel)
    np.testing.assert_allclose(loaded.predict(x[:8], verbose=0), model.model.predict(x[:8], verbose=0), atol=1e-5)
