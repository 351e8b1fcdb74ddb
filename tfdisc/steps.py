"""Keras model steps that check every batch before an optionally XLA-compiled core runs."""

import numpy as np
import tensorflow as tf

from tfdisc import checks


class CheckedSteps:
    """A `tf.keras.Model` mixin: every batch's pixels and labels are checked before the step runs.

    XLA drops assertions, so `compile(jit_compile=True)` compiles only the step's core (`train_core`,
    `test_core`, `predict_core`) with XLA, and the checks run in the graph around it: bad input fails
    with a clear error under XLA too, and `fit`, `evaluate` and `predict` raise it as one
    `tfdisc.checks.InvalidInputError`. Uint8 images are scaled to float32 in [0, 1].
    """

    def compile(self, *args, jit_compile: bool | None = None, **kwargs) -> None:
        super().compile(*args, jit_compile=False, **kwargs)
        # Untracked: Keras would otherwise track (and try to save) the compiled cores.
        object.__setattr__(self, "_xla_cores", {} if jit_compile else None)

    @property
    def xla_compiled(self) -> bool:
        """Whether the step cores are compiled with XLA (`compile(jit_compile=True)`)."""
        return getattr(self, "_xla_cores", None) is not None

    @property
    def classifier(self) -> tf.keras.Model:
        """The functional model whose input and output this model checks (itself, unless it wraps one)."""
        return self

    def _checked_pixels(self, x):
        return checks.pixels(checks.image_shape(tf.convert_to_tensor(x), self.classifier.input_shape[1:]))

    def _checked(self, data):
        x, y, sample_weight = tf.keras.utils.unpack_x_y_sample_weight(data)
        x = self._checked_pixels(x)
        if y is not None:
            y = checks.labels(y, int(self.classifier.output_shape[-1]))
        return x, y, sample_weight

    def _core(self, fn):
        cores = getattr(self, "_xla_cores", None)
        if cores is None:
            return fn
        if fn.__name__ not in cores:
            cores[fn.__name__] = tf.function(fn, jit_compile=True, reduce_retracing=True)
        return cores[fn.__name__]

    def __call__(self, *args, **kwargs):
        with checks.clear_errors():
            return super().__call__(*args, **kwargs)

    def fit(self, *args, **kwargs) -> tf.keras.callbacks.History:
        with checks.clear_errors():
            return super().fit(*args, **kwargs)

    def evaluate(self, *args, **kwargs) -> float | list | dict:
        with checks.clear_errors():
            return super().evaluate(*args, **kwargs)

    def predict(self, *args, **kwargs) -> np.ndarray:
        with checks.clear_errors():
            return super().predict(*args, **kwargs)

    def train_step(self, data: tuple) -> dict:
        return self._core(self.train_core)(*self._checked(data))

    def test_step(self, data: tuple) -> dict:
        return self._core(self.test_core)(*self._checked(data))

    def predict_step(self, data: tuple) -> tf.Tensor:
        x, _, _ = tf.keras.utils.unpack_x_y_sample_weight(data)
        return self._core(self.predict_core)(self._checked_pixels(x))

    def train_core(self, x: tf.Tensor, y: tf.Tensor, sample_weight: tf.Tensor | None) -> dict:
        return super().train_step((x, y, sample_weight))

    def test_core(self, x: tf.Tensor, y: tf.Tensor, sample_weight: tf.Tensor | None) -> dict:
        return super().test_step((x, y, sample_weight))

    def predict_core(self, x: tf.Tensor) -> tf.Tensor:
        return super().predict_step(x)
