import csv
import json
import math

import pytest
import tensorflow as tf

from tfdisc import evaluation, models
from tfdisc.callbacks import EpsilonSweep, ProgressLog
from tfdisc.training import AdversarialModel

EPS = [0.0, 0.1, 0.3]
KEYS = ["val_sweep/fgsm/eps=0", "val_sweep/fgsm/eps=0.1", "val_sweep/fgsm/eps=0.3"]


def _model(adversarial=False):
    model = models.build_model("fcn2", width=32, depth=2)
    if adversarial:
        model = AdversarialModel(model, eps=0.1)
    model.compile(tf.keras.optimizers.Adam(1e-3), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


@pytest.mark.parametrize("adversarial", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_sweep_goes_into_history_csv_and_json(tmp_path, mnist_small, adversarial):
    x, y, x_test, y_test = mnist_small
    model = _model(adversarial)
    sweep = EpsilonSweep((x_test, y_test), EPS, every_n_epochs=2, path=str(tmp_path / "sweep.json"))
    history = model.fit(x[:1000], y[:1000], batch_size=100, epochs=3, verbose=0,
                        callbacks=[sweep, tf.keras.callbacks.CSVLogger(str(tmp_path / "history.csv"))])
    for key in KEYS:
        values = history.history[key]
        assert math.isnan(values[0]) and not math.isnan(values[1]) and not math.isnan(values[2])
    with open(tmp_path / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert [float(rows[2][k]) for k in KEYS] == pytest.approx([history.history[k][2] for k in KEYS])
    saved = json.loads((tmp_path / "sweep.json").read_text())
    assert saved["epoch"] == 3 and saved["attack"] == "fgsm" and saved["eps"] == EPS
    plain = getattr(model, "model", model)
    assert saved["accuracy"] == pytest.approx(evaluation.sweep(plain, (x_test, y_test), EPS)["accuracy"])
    assert saved["accuracy"][0] == pytest.approx(history.history[KEYS[0]][2])


def test_bad_arguments_raise(mnist_small):
    _, _, x, y = mnist_small
    with pytest.raises(ValueError, match="every_n_epochs must be a positive int"):
        EpsilonSweep((x, y), EPS, every_n_epochs=0)
    with pytest.raises(ValueError, match=r"eps values must be finite numbers in \[0, 1\]"):
        EpsilonSweep((x, y), [-1.0])


def test_progress_log_gives_epoch_and_run_eta(mnist_small, caplog):
    x, y, _, _ = mnist_small
    model = _model()
    with caplog.at_level("INFO", logger="tfdisc"):
        model.fit(x[:500], y[:500], batch_size=100, epochs=3, verbose=0, callbacks=[ProgressLog(interval=0)])
    lines = [r.getMessage() for r in caplog.records]
    first_epoch = [line for line in lines if line.startswith("Epoch 1: ")]
    assert first_epoch[0].startswith("Epoch 1: 1/5 steps") and "run ETA" in first_epoch[0]
    assert first_epoch[0].endswith("2 epoch(s) after this one")
    assert any(line.startswith("Epoch 3: 5/5 steps") and line.endswith("0 epoch(s) after this one") for line in lines)
    assert any(line.startswith("Epoch 3 of 3 done in") for line in lines)


def test_a_resumed_run_counts_epochs_as_the_logs_and_history_do(caplog):
    log = ProgressLog(interval=0)
    log.set_params({"epochs": 5, "steps": 10})
    log.on_train_begin()
    with caplog.at_level("INFO", logger="tfdisc"):
        log.on_epoch_begin(2)  # resumed after two epochs: this is epoch 3 of 5
        log.on_train_batch_end(9)
        log.on_epoch_end(2)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("Epoch 3: 10/10 steps") and lines[0].endswith("2 epoch(s) after this one")
    assert lines[-1].startswith("Epoch 3 of 5 done in") and "run ETA" in lines[-1]


def test_run_eta_uses_the_last_finished_epoch(monkeypatch, caplog):
    clock = [0.0]
    monkeypatch.setattr("tfdisc.progress.time.perf_counter", lambda: clock[0])
    log = ProgressLog(interval=0)
    log.set_params({"epochs": 4, "steps": 10})
    log.on_train_begin()
    for epoch, seconds in enumerate([1000.0, 100.0]):  # the first epoch shared the machine with other work
        log.on_epoch_begin(epoch)
        clock[0] += seconds
        log.on_epoch_end(epoch)
    log.on_epoch_begin(2)
    clock[0] += 50.0
    with caplog.at_level("INFO", logger="tfdisc.progress"):
        log.on_train_batch_end(4)  # half of epoch 3: 50 s left in it, then one epoch at 100 s
    assert caplog.records[-1].getMessage().endswith("run ETA 2.5 min, 1 epoch(s) after this one")
