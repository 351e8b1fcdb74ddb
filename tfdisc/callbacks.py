"""Keras callbacks that put robustness numbers into `logs`."""

import math
import time

import tensorflow as tf

from tfdisc import evaluation, io


class EpsilonSweep(tf.keras.callbacks.Callback):
    """Record FGSM accuracy at every eps in `logs["sweep/fgsm/eps=<eps>"]` at the end of epochs.

    The sweep runs every `every_n_epochs` epochs (and after the last one); other epochs log
    NaN, so CSVLogger keeps the same columns. Place it before CSVLogger/TensorBoard in the
    callback list. `result` holds the latest sweep; with `path`, it is also written there as
    JSON, atomically.
    """

    def __init__(self, data, eps_values, every_n_epochs=1, path=None, verbose=0):
        super().__init__()
        if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) or every_n_epochs < 1:
            raise ValueError(f"every_n_epochs must be a positive int; got {every_n_epochs!r}.")
        self.data = evaluation.as_dataset(data)
        self.eps_values = evaluation.check_eps_values(eps_values)
        self.every_n_epochs = every_n_epochs
        self.path = path
        self.verbose = verbose
        self.keys = [f"sweep/fgsm/eps={e:g}" for e in self.eps_values]
        self.result = None
        self._sweep = None
        self._epochs = None

    def on_train_begin(self, logs=None):
        self._sweep = evaluation.FgsmSweep(self.model)
        self._epochs = self.params.get("epochs")

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if (epoch + 1) % self.every_n_epochs and epoch + 1 != self._epochs:
            logs.update({key: math.nan for key in self.keys})
            return
        self.result = self._sweep(self.data, self.eps_values, verbose=self.verbose)
        logs.update(zip(self.keys, self.result["accuracy"]))
        if self.path:
            io.write_json_atomic(self.path, {"epoch": epoch + 1, **self.result})


class EpochCheckpoint(tf.keras.callbacks.Callback):
    """Checkpoint model and optimizer after every epoch into `directory`, keeping the last `max_to_keep`.

    Call `restore()` after `compile` and before `fit`: it returns the number of epochs already
    done (0 for a fresh run); pass it to `fit(initial_epoch=...)`.
    """

    def __init__(self, directory, max_to_keep=2):
        super().__init__()
        self.directory = directory
        self.max_to_keep = max_to_keep
        self._manager = None

    def _manager_for(self, model):
        if self._manager is None:
            checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
            self._manager = tf.train.CheckpointManager(checkpoint, self.directory, self.max_to_keep)
        return self._manager

    def restore(self, model):
        manager = self._manager_for(model)
        if manager.latest_checkpoint is None:
            return 0
        manager.checkpoint.restore(manager.latest_checkpoint).expect_partial()
        return int(manager.latest_checkpoint.rsplit("-", 1)[1])

    def on_epoch_end(self, epoch, logs=None):
        self._manager_for(self.model).save(checkpoint_number=epoch + 1)


class EpochTimer(tf.keras.callbacks.Callback):
    """Put each epoch's wall-clock seconds into `logs["epoch_seconds"]` (place it before CSVLogger)."""

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["epoch_seconds"] = time.perf_counter() - self._start
