"""Keras callbacks that put robustness numbers into `logs`, checkpoint, time and guard training."""

import csv
import io
import logging
import math
import os
import time

import tensorflow as tf

from tfdisc import eps as eps_lib
from tfdisc import evaluation, files
from tfdisc.progress import Progress


class EpsilonSweep(tf.keras.callbacks.Callback):
    """Record FGSM accuracy on test data at every eps in `logs["val_sweep/fgsm/eps=<eps>"]` at the end of epochs.

    The `val_` prefix files the numbers with the other held-out metrics (TensorBoard's validation
    run). The sweep runs every `every_n_epochs` epochs (and after the last one); other epochs log
    NaN, so CSVLogger keeps the same columns. Place it before CSVLogger/TensorBoard in the
    callback list. `result` holds the latest sweep; with `path`, it is also written there as
    JSON, atomically. `gradient` and `jit_compile` are passed to `tfdisc.evaluation.FgsmSweep`.
    """

    def __init__(self, data, eps_values, every_n_epochs=1, path=None, gradient=None, jit_compile=False):
        super().__init__()
        if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be a positive int; got {every_n_epochs!r}.")
        self.data = evaluation.as_dataset(data)
        self.eps_values = eps_lib.values(eps_values)
        self.every_n_epochs = every_n_epochs
        self.path = path
        self.gradient = gradient
        self.jit_compile = jit_compile
        self.keys = [f"val_sweep/fgsm/eps={e:g}" for e in self.eps_values]
        self.result = None
        self._sweep = None
        self._epochs = None

    def on_train_begin(self, logs=None):
        plain = getattr(self.model, "model", self.model)  # AdversarialModel wraps the model it trains
        self._sweep = evaluation.FgsmSweep(plain, self.gradient, jit_compile=self.jit_compile)
        self._epochs = self.params.get("epochs")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if (epoch + 1) % self.every_n_epochs and epoch + 1 != self._epochs:
            logs.update({key: math.nan for key in self.keys})
            return
        self.result = self._sweep(self.data, self.eps_values)
        logs.update(zip(self.keys, self.result["accuracy"]))
        if self.path:
            files.write_json_atomic(self.path, {"epoch": epoch + 1, **self.result})


class EpochCheckpoint(tf.keras.callbacks.Callback):
    """Checkpoint model and optimizer after every epoch into `directory`, keeping the last `max_to_keep`, and
    with `history` (a CSV path) record the epoch's logs there as one row, epochs counted from 1.

    Call `restore()` after `compile` and before `fit`: it returns the number of epochs already
    done (0 for a fresh run); pass it to `fit(initial_epoch=...)`. TensorFlow writes a checkpoint's
    files first and its index last, so a kill mid-save leaves the previous checkpoint in charge. The
    history row is written only once its epoch's checkpoint is complete: it waits in `<history>.pending`
    meanwhile, and `restore` adds a pending row whose checkpoint exists (a kill between the two) and drops
    one whose checkpoint does not. A failed save (a full disk) removes its partial files and says so.
    Place it after every callback that adds to the logs.
    """

    def __init__(self, directory, max_to_keep=2, history=None):
        super().__init__()
        self.directory = directory
        self.max_to_keep = max_to_keep
        self.history = history
        self._manager = None

    def _manager_for(self, model):
        if self._manager is None:
            checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
            self._manager = tf.train.CheckpointManager(checkpoint, self.directory, self.max_to_keep)
        return self._manager

    def restore(self, model: tf.keras.Model) -> int:
        manager = self._manager_for(model)
        done = 0
        if manager.latest_checkpoint is not None:
            try:
                manager.checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched().expect_partial()
            except (AssertionError, ValueError, tf.errors.OpError) as error:
                first = str(error).strip().splitlines()[0][:160]
                raise ValueError(f"The checkpoint {manager.latest_checkpoint} does not fit the model this run builds "
                                 f"({first}): it belongs to another configuration or is damaged. Resume with the "
                                 "settings that made it, or start a new run with another --run_name.") from None
            done = int(manager.latest_checkpoint.rsplit("-", 1)[1])
        pending = f"{self.history}.pending" if self.history else None
        if pending and os.path.exists(pending):
            row = _read_rows(pending)[-1:]
            if row and int(row[0]["epoch"]) <= done and int(row[0]["epoch"]) not in {
                    int(r["epoch"]) for r in _read_rows(self.history)}:
                _write_rows(self.history, _read_rows(self.history) + row)
            os.remove(pending)
        return done

    def on_epoch_end(self, epoch, logs=None):
        row = {"epoch": epoch + 1, **{k: _cell(v) for k, v in (logs or {}).items()}}
        if self.history:
            files.write_text_atomic(f"{self.history}.pending", _csv([row]))
        try:
            self._manager_for(self.model).save(checkpoint_number=epoch + 1)
        except (OSError, tf.errors.OpError) as error:
            self._remove_partial(epoch + 1)
            if self.history and os.path.exists(f"{self.history}.pending"):
                os.remove(f"{self.history}.pending")
            raise OSError(f"Could not write the checkpoint of epoch {epoch + 1} in {self.directory} "
                          f"({getattr(error, 'message', error)}); the partial checkpoint was removed. Free disk space, "
                          f"then rerun the same command with --resume to continue from epoch {epoch + 1}.") from None
        if self.history:
            _write_rows(self.history, _read_rows(self.history) + [row])
            os.remove(f"{self.history}.pending")

    def _remove_partial(self, number):
        """Delete what a failed save of checkpoint `number` left (its files and its temporary folder)."""
        for path in tf.io.gfile.glob(os.path.join(self.directory, f"ckpt-{number}[._]*")):
            if tf.io.gfile.isdir(path):
                tf.io.gfile.rmtree(path)
            else:
                tf.io.gfile.remove(path)


def _cell(value):
    """A log value as a CSV cell: a number's shortest text."""
    try:
        return repr(float(value))
    except (TypeError, ValueError):
        return str(value)


def _csv(rows):
    columns = ["epoch"] + sorted({k for row in rows for k in row} - {"epoch"})
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, restval="NA", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _read_rows(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _write_rows(path, rows):
    """Write the history rows, atomically (a history is small: one row an epoch)."""
    files.write_text_atomic(path, _csv(rows))


class EpochTimer(tf.keras.callbacks.Callback):
    """Put each epoch's wall-clock seconds into `logs["epoch_seconds"]` (place it before CSVLogger)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start


class BudgetRamp(tf.keras.callbacks.Callback):
    """Ramp a wrapper's budget (`certified_training.IntervalBoundModel.set_budget`) before each training step:
    ε from 0 and κ from 1, linearly, to `eps` and `kappa` over `ramp_epochs` epochs after `warmup_epochs` of
    clean training (Gowal et al. 2018 ramp ε over steps, as here). The budget depends only on the epoch and step,
    so a resumed run continues the same ramp."""

    def __init__(self, eps: float, kappa: float, warmup_epochs: float, ramp_epochs: float):
        super().__init__()
        if warmup_epochs < 0 or ramp_epochs < 0:
            raise ValueError(f"warmup_epochs and ramp_epochs must be ≥ 0; got {warmup_epochs} and {ramp_epochs}.")
        self.eps, self.kappa, self.warmup_epochs, self.ramp_epochs = eps, kappa, warmup_epochs, ramp_epochs

    def share(self, progress: float) -> float:
        """How much of the ramp is done after `progress` epochs (0 to 1)."""
        if progress < self.warmup_epochs:
            return 0.0
        return 1.0 if self.ramp_epochs == 0 else min(1.0, (progress - self.warmup_epochs) / self.ramp_epochs)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        steps = (self.params or {}).get("steps")
        t = self.share(self._epoch + (batch / steps if steps else 0.0))
        self.model.set_budget(self.eps * t, 1.0 - (1.0 - self.kappa) * t)


class TrainingDiverged(RuntimeError):
    """The training loss became NaN or infinite."""


class DivergenceGuard(tf.keras.callbacks.Callback):
    """Stop with `TrainingDiverged` at the end of an epoch whose loss is not finite (place it first).

    Checked per epoch, so it costs no host sync per batch; nothing diverged is checkpointed.
    """

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            raise TrainingDiverged(f"Training diverged in epoch {epoch + 1}: the loss is {loss}. Lower the learning "
                                   "rate (or check the data); the last finite epoch's checkpoint is kept.")


class ProgressLog(tf.keras.callbacks.Callback):
    """Log training steps with the ETA of the epoch and of the run, validation progress, and each epoch's end.

    Keras's progress bar shows no run ETA, and none at all when output is not a terminal (`nohup`).
    Step lines come every `interval` seconds; batch logs stay tensors, so it adds no host sync per
    step. The run ETA counts the epochs of this `fit` call (a resumed run's first epoch is
    `initial_epoch` + 1) at the time of the last finished one, validation and callbacks included,
    so epochs slowed by other work on the machine stop counting once it is idle again; during the
    first, at its training rate. Place it anywhere in the list.
    """

    def __init__(self, validation_batches=None, interval=30.0):
        super().__init__()
        self._supports_tf_logs = True
        self.validation_batches = validation_batches
        self.interval = interval

    def on_train_begin(self, logs=None):
        self._total = self.params.get("epochs")
        self._clock = Progress("Training", interval=0)  # its elapsed time
        self._last_epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_began = self._clock.elapsed
        self._steps = Progress(f"Epoch {epoch + 1}", self.params.get("steps"), unit="steps", interval=self.interval)
        self._left = (self._total or epoch + 1) - (epoch + 1)

    def _run_eta(self, steps_done):
        def note():
            per_epoch = self._last_epoch
            if per_epoch is None and self._steps.total:
                per_epoch = self._steps.elapsed / steps_done * self._steps.total
            epoch_eta = self._steps.eta(steps_done)
            if per_epoch is None or epoch_eta is None:
                return ""
            return f"; run ETA {(epoch_eta + self._left * per_epoch) / 60:.1f} min, {self._left} epoch(s) after this one"
        return note

    def on_train_batch_end(self, batch, logs=None):
        self._steps.update(batch + 1, note=self._run_eta(batch + 1))

    def on_epoch_end(self, epoch, logs=None):
        self._last_epoch = self._clock.elapsed - self._epoch_began
        eta = f", run ETA {self._left * self._last_epoch / 60:.1f} min" if self._left else ""
        logging.getLogger(__name__).info("Epoch %d of %s done in %.0f s%s", epoch + 1, self._total or "?",
                                         self._last_epoch, eta)

    def on_test_begin(self, logs=None):
        self._validation = Progress("Validation", self.validation_batches)

    def on_test_batch_end(self, batch, logs=None):
        self._validation.update(batch + 1)
