"""Export to TFLite, and a runner that enforces the input contract a flatbuffer cannot.

A TFLite flatbuffer cannot raise on bad input: graph assertions do not survive conversion. Inside
the flatbuffer, examples with NaN or out-of-range pixels come out as NaN logits
(`tfdisc.checks.nan_where_invalid`); `TFLiteModel` checks the input before the interpreter runs,
so in Python bad input fails with the same clear errors as the Keras model.
"""

import warnings

import numpy as np
import tensorflow as tf

from tfdisc import checks, files


def to_tflite(model, path):
    """Convert a Keras model to a float TFLite flatbuffer at `path` (written atomically); return its size in bytes."""
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    with files.atomic_write(path, "wb") as f:
        f.write(flatbuffer)
    return len(flatbuffer)


class TFLiteModel:
    """Run a TFLite classifier on float pixels in [0, 1] or uint8 images; returns logits as numpy."""

    def __init__(self, path):
        with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice; LiteRT is not a dependency
            warnings.simplefilter("ignore", UserWarning)
            self.interpreter = tf.lite.Interpreter(model_path=str(path))
        self._input = self.interpreter.get_input_details()[0]
        self._output = self.interpreter.get_output_details()[0]
        self.input_shape = tuple(self._input["shape_signature"][1:])

    def __call__(self, x):
        x = checks.image_shape(np.asarray(x), tuple(None if d < 0 else int(d) for d in self.input_shape))
        x = np.asarray(checks.pixels(x), dtype=self._input["dtype"])
        self.interpreter.resize_tensor_input(self._input["index"], x.shape)
        self.interpreter.allocate_tensors()
        self.interpreter.set_tensor(self._input["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output["index"])
