"""Argument and input checks that hold on every execution path.

A check raises `InvalidInputError` (a `ValueError`) when the value is known in Python (numpy arrays,
eager tensors, constants) and adds a graph assertion (`InvalidArgumentError` at run time) when it is
symbolic; `clear_errors` turns the latter back into one `InvalidInputError`.
Inside an XLA cluster TensorFlow drops assertions, so tfdisc's own steps (`tfdisc.steps.CheckedSteps`,
`tfdisc.evaluation`) run the checks before they enter XLA; code compiled with XLA by the user
gets NaN instead of an error: invalid pixels make their example NaN, an invalid budget makes the
whole result NaN, so nothing plausible-looking comes out of bad input.
"""

import contextlib
import math
import numbers
import re
from typing import Iterable, Iterator

import numpy as np
import tensorflow as tf
from tensorflow.python.ops import control_flow_util

from tfdisc.types import TensorLike


class InvalidInputError(ValueError):
    """Bad input or a bad argument: the message names the problem and the fix."""


PIXEL_HELP = "pass float32 images in [0, 1] (divide 0..255 images by 255) or uint8 images 0..255"


def in_xla() -> bool:
    """Whether the code being traced is compiled by XLA (where assertions are dropped)."""
    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


def choice(name: str, value: object, choices: Iterable) -> object:
    """Raise InvalidInputError unless `value` is one of `choices`."""
    if value not in choices:
        raise InvalidInputError(f"Unknown {name} {value!r}; valid values are {', '.join(map(repr, choices))}.")
    return value


def bits(value: int) -> int:
    """Raise InvalidInputError unless `value` is an int in 1..8."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 1 <= value <= 8:
        raise InvalidInputError(f"bits must be an int in 1..8 (8 keeps all 256 pixel levels); got {value!r}.")
    return value


def positive_int(name: str, value: TensorLike) -> TensorLike:
    """Raise InvalidInputError unless `value` is a positive int (a Python int or a constant tensor)."""
    static = tf.get_static_value(tf.convert_to_tensor(value))
    if static is not None and (static < 1 or int(static) != static):
        raise InvalidInputError(f"{name} must be a positive int; got {static}.")
    return value


_MARK = "tfdisc check: "


def _graph_assert(condition, message, value):
    """`value` behind an assertion of `condition` (nothing under XLA, which drops assertions)."""
    if in_xla():
        return value
    with tf.control_dependencies([tf.debugging.Assert(condition, [_MARK + message])]):
        return tf.identity(value)


def _own_message(text):
    """The check's own message inside the wrappers of autograph ("in user code: ...") or Keras layers."""
    if "in user code:" in text:
        text = text.rsplit("InvalidInputError: ", 1)[-1]
    if text.startswith("Exception encountered when calling layer"):
        text = text.split("\n\n")[1]
    return text.strip()


@contextlib.contextmanager
def clear_errors() -> Iterator[None]:
    """Re-raise a failed tfdisc check, from a graph assertion or a traced function, as one plain `InvalidInputError`."""
    try:
        yield
    except tf.errors.InvalidArgumentError as error:
        found = re.search(re.escape(_MARK) + r"([^\n]*)\]", error.message)
        if not found:
            raise
        raise InvalidInputError(found.group(1).strip()) from None
    except Exception as error:  # autograph re-raises a check's error as StagingError, Keras re-wraps its text
        message = str(error)
        if not (isinstance(error, InvalidInputError) or "InvalidInputError: " in message) or \
                message == _own_message(message):
            raise
        raise InvalidInputError(_own_message(message)) from None


def _fail_or_assert(static_ok, graph_condition, message, value):
    if static_ok is not None:
        if not static_ok:
            raise InvalidInputError(message)
        return value
    if in_xla():
        return tf.where(graph_condition, value, tf.constant(float("nan"), value.dtype))
    return _graph_assert(graph_condition, message, value)


def eps(name: str, value: TensorLike, dtype: tf.DType = tf.float32) -> tf.Tensor:
    """`value` as a scalar tensor, checked to be a finite L∞ budget in [0, 1] (pixel units)."""
    value = tf.cast(tf.convert_to_tensor(value), dtype)
    static = tf.get_static_value(value)
    ok = None if static is None else bool(math.isfinite(float(static)) and 0 <= float(static) <= 1)
    message = f"{name} must be a finite L∞ budget in [0, 1] pixel units (8/255 ≈ 0.031)" + (
        f"; got {float(static)}." if static is not None else ".")
    return _fail_or_assert(ok, (value >= 0) & (value <= 1), message, value)


def fraction(name: str, value: object, *, low: float = 0.0, high: float = 1.0,
             low_inclusive: bool = True) -> float:
    """A Python float in [low, high] (or (low, high]); ValueError naming `name` otherwise."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number; got {value!r}.") from None
    above = value >= low if low_inclusive else value > low
    if not (math.isfinite(value) and above and value <= high):
        interval = f"{'[' if low_inclusive else '('}{low:g}, {high:g}]"
        raise InvalidInputError(f"{name} must be in {interval}; got {value}.")
    return value


def pixels(x: TensorLike, check_values: bool = True) -> tf.Tensor:
    """Images as float pixels in [0, 1]: uint8 0..255 is scaled to float32, float is checked.

    Other dtypes fail, and so (unless `check_values` is False) do NaN or out-of-range float pixels,
    with a message that names the fix.
    """
    x = tf.convert_to_tensor(x)
    if x.dtype == tf.uint8:
        return tf.cast(x, tf.float32) / 255.0
    if not x.dtype.is_floating:
        raise InvalidInputError(f"Pixels must be uint8 0..255 or float in [0, 1]; got dtype {x.dtype.name}: "
                                f"{PIXEL_HELP}.")
    if not check_values:
        return x
    values = tf.get_static_value(x)
    if values is not None:  # known values (eager, constants): say which ones are wrong
        nan = int(np.isnan(values).sum())
        if nan:
            raise InvalidInputError(f"Pixels contain {nan} NaN value(s); check the data or the attack that produced "
                                    "them.")
        if values.size and (values.min() < 0 or values.max() > 1):
            raise InvalidInputError(f"Float pixels must lie in [0, 1]; got values in [{values.min():g}, "
                                    f"{values.max():g}]: {PIXEL_HELP}.")
        return x
    if in_xla():
        return nan_where_invalid(x, x)
    x = _graph_assert(tf.logical_not(tf.reduce_any(tf.math.is_nan(x))),
                      "Pixels contain NaN; check the data or the attack that produced them.", x)
    return _graph_assert(tf.reduce_all((x >= 0) & (x <= 1)),
                         f"Float pixels must lie in [0, 1]; {PIXEL_HELP}.", x)


def image_shape(x: tf.Tensor, expected: tuple) -> tf.Tensor:
    """`x`, checked to be a batch of images of shape `expected` (None for any size) where that is known."""
    got = tuple(x.shape)
    if len(got) != len(expected) + 1 or any(e is not None and g is not None and e != g
                                            for e, g in zip(expected, got[1:])):
        shown = ", ".join("any" if e is None else str(e) for e in expected)
        raise InvalidInputError(f"The model takes images of shape (batch, {shown}); got {got}.")
    return x


def nan_where_invalid(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """`y` with every example (leading axis) whose pixels `x` hold NaN or leave [0, 1] set to NaN.

    The last line of defence where no error can be raised (inside XLA, in a TFLite flatbuffer).
    """
    valid = (x >= 0) & (x <= 1)
    if x.shape.rank and x.shape.rank > 1:  # per example, shaped to broadcast over y's other axes
        valid = tf.reduce_all(valid, axis=list(range(1, x.shape.rank)))
        valid = tf.reshape(valid, [-1] + [1] * (y.shape.rank - 1))
    return tf.where(valid, y, tf.constant(float("nan"), y.dtype))


def labels(y: TensorLike, num_classes: int | None = None) -> tf.Tensor:
    """Class-id labels, checked to be whole numbers in 0..num_classes − 1 (>= 0 if num_classes is None)."""
    y = tf.convert_to_tensor(y)
    if not (y.dtype.is_integer or y.dtype.is_floating):
        raise InvalidInputError(f"Labels must be int class ids; got dtype {y.dtype.name}.")
    shape = y.shape
    if shape.rank is not None and (shape.rank > 2 or (shape.rank == 2 and shape[-1] not in (1, None))):
        hint = " (one-hot labels? pass np.argmax(y, axis=-1))" if shape.rank == 2 else ""
        raise InvalidInputError(f"Labels must be one int class id per example; got shape {tuple(shape)}{hint}.")
    if num_classes is None:
        message = "Labels must be int class ids >= 0."
        in_range = y >= 0
    else:
        message = (f"Labels must be int class ids in 0..{num_classes - 1} (the model has {num_classes} outputs); "
                   "check the data set, or build the model with num_classes covering every label.")
        in_range = (y >= 0) & (y < num_classes)
    if y.dtype.is_floating:
        in_range &= tf.equal(y, tf.round(y))
    if tf.get_static_value(in_range) is not None:
        bad = tf.get_static_value(y)[~tf.get_static_value(in_range)]
        if bad.size:
            raise InvalidInputError(f"{message} Got {bad.size} bad label(s), e.g. {bad.reshape(-1)[:5].tolist()}.")
        return y
    return _graph_assert(tf.reduce_all(in_range), message, y)
