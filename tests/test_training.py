import numpy as np
import pytest
import tensorflow as tf

from helpers import accuracy
from tfdisc import models
from tfdisc.training import AdversarialModel


def _compiled(precision="full", strategy=None, run_eagerly=False, jit_compile=False, **kwargs):
    with (strategy or tf.distribute.get_strategy()).scope():
        model = AdversarialModel(models.build_model("fcn2", precision=precision, width=64, depth=2), **kwargs)
        model.compile(tf.keras.optimizers.Adam(1e-3), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"], run_eagerly=run_eagerly, jit_compile=jit_compile)
    return model


@pytest.mark.parametrize("mode, precision", [("graph", "full")] + [
    pytest.param(mode, precision, marks=pytest.mark.slow)
    for mode, precision in [("eager", "full"), ("xla", "full"), ("graph", "bnn"), ("eager", "bnn"), ("xla", "bnn")]])
def test_fit_and_evaluate_log_clean_and_adversarial_metrics(mnist_small, mode, precision):
    x, y, x_test, y_test = mnist_small
    model = _compiled(precision, run_eagerly=mode == "eager", jit_compile=mode == "xla", eps=0.1, alpha=0.05)
    csv_rows = []
    callback = tf.keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: csv_rows.append(dict(logs)))
    history = model.fit(x[:1000], y[:1000], batch_size=50, epochs=2, verbose=0, callbacks=[callback],
                        validation_data=(x_test[:200], y_test[:200]))
    for key in ("loss", "accuracy", "clean_loss", "clean_accuracy", "adv_loss", "adv_accuracy",
                "val_clean_accuracy", "val_adv_accuracy"):
        assert key in history.history and len(history.history[key]) == 2, key
    assert csv_rows[-1]["adv_accuracy"] == history.history["adv_accuracy"][-1]
    results = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    assert results["adv_accuracy"] < results["clean_accuracy"]
    assert results["clean_accuracy"] == pytest.approx(accuracy(model.model, x_test, y_test), abs=1e-6)


@pytest.mark.slow
def test_adversarial_training_makes_the_model_more_robust(mnist_small):
    from tfdisc.attacks import fast_gradient_method

    x, y, x_test, y_test = mnist_small
    robust = {}
    for adversarial in (False, True):
        tf.keras.utils.set_random_seed(0)
        if adversarial:
            model = _compiled(eps=0.2, alpha=0.1, adv_ratio=0.5)
        else:
            model = models.build_model("fcn2", width=64, depth=2)
            model.compile(tf.keras.optimizers.Adam(1e-3), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y, batch_size=64, epochs=3, verbose=0)
        plain = getattr(model, "model", model)
        robust[adversarial] = accuracy(plain, fast_gradient_method(plain, x_test, 0.2, y=y_test), y_test)
    assert robust[True] > robust[False] + 0.2


def test_all_adversarial_batches_log_no_clean_training_part(mnist_small):
    x, y, _, _ = mnist_small
    history = _compiled(eps=0.1, adv_ratio=1.0).fit(x[:200], y[:200], batch_size=50, verbose=0)
    assert "adv_accuracy" in history.history and "clean_accuracy" not in history.history


@pytest.mark.slow
def test_trains_under_mirrored_strategy_with_two_replicas(mnist_small):
    x, y, x_test, y_test = mnist_small
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"], cross_device_ops=tf.distribute.ReductionToOneDevice())
    assert strategy.num_replicas_in_sync == 2
    model = _compiled(strategy=strategy, eps=0.1, alpha=0.05)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    history = model.fit(data, epochs=2, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    results = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    assert results["clean_accuracy"] > 0.8 and results["adv_accuracy"] <= results["clean_accuracy"]


def test_save_exports_the_plain_model(tmp_path, mnist_small):
    x, y, x_test, _ = mnist_small
    model = _compiled(eps=0.1)
    model.fit(x[:200], y[:200], batch_size=50, verbose=0)
    model.save(str(tmp_path / "exported"))
    reloaded = tf.keras.models.load_model(str(tmp_path / "exported"), compile=False)
    assert not isinstance(reloaded, AdversarialModel)
    assert reloaded.name == model.model.name
    np.testing.assert_allclose(reloaded(x_test[:32]).numpy(), model.model(x_test[:32]).numpy(), rtol=1e-6)


@pytest.mark.parametrize("kwargs, message", [
    ({"eps": 0.1, "alpha": 0.2}, r"alpha .* must be in \[0, 0.1\]; got 0.2"),
    ({"eps": -0.1}, r"eps .* must be in \[0, 1\]; got -0.1"),
    ({"eps": 2.0}, r"eps .* must be in \[0, 1\]; got 2.0"),
    ({"eps": float("nan")}, r"eps .* must be in \[0, 1\]; got nan"),
    ({"eps": 0.1, "alpha": -0.01}, r"alpha .* must be in \[0, 0.1\]"),
    ({"eps": 0.1, "adv_ratio": 0.0}, r"adv_ratio .* must be in \(0, 1\]"),
    ({"eps": 0.1, "adv_ratio": 1.5}, r"adv_ratio .* must be in \(0, 1\]"),
    ({"eps": 0.1, "adv_ratio": float("nan")}, r"adv_ratio .* must be in \(0, 1\]"),
])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AdversarialModel(models.build_model("fcn2", width=8, depth=1), **kwargs)


def test_a_new_budget_takes_effect_without_retracing(mnist_small):
    x, y, x_test, y_test = mnist_small
    model = _compiled(eps=0.3)
    assert (model.eps, model.alpha) == (0.3, 0.15)
    model.fit(x[:400], y[:400], batch_size=100, epochs=1, verbose=0)
    attacked = model.evaluate(x_test, y_test, batch_size=100, verbose=0, return_dict=True)
    traces = [fn.experimental_get_tracing_count() for fn in (model.train_function, model.test_function)]
    model.set_budget(0.0)
    assert (model.eps, model.alpha) == (0.0, 0.0)
    model.fit(x[:400], y[:400], batch_size=100, epochs=1, verbose=0)
    unattacked = model.evaluate(x_test, y_test, batch_size=100, verbose=0, return_dict=True)
    assert unattacked["adv_accuracy"] == unattacked["clean_accuracy"] > attacked["adv_accuracy"]
    assert [fn.experimental_get_tracing_count() for fn in (model.train_function, model.test_function)] == traces
    with pytest.raises(ValueError, match=r"alpha .* must be in \[0, 0.1\]"):
        model.set_budget(0.1, alpha=0.2)


def test_train_step_does_not_retrace_across_epochs_or_batches(mnist_small):
    x, y, _, _ = mnist_small
    model = _compiled(eps=0.1)
    model.fit(x[:450], y[:450], batch_size=100, epochs=3, verbose=0)  # the last batch of each epoch is smaller
    assert model.train_function.experimental_get_tracing_count() <= 2
