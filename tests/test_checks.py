"""tfdisc.checks: argument and input checks that raise where values are known and assert where they are not."""

import numpy as np
import pytest
import tensorflow as tf

from tfdisc import checks


@pytest.mark.parametrize("call, message", [
    (lambda: checks.choice("arch", "vgg", ("fcn1", "fcn2")), "Unknown arch 'vgg'; valid values are 'fcn1', 'fcn2'"),
    (lambda: checks.bits(True), "bits must be an int in 1..8"),
    (lambda: checks.fraction("eps", "x"), "eps must be a number"),
    (lambda: checks.fraction("ratio", 0, low_inclusive=False), r"ratio must be in \(0, 1\]"),
    (lambda: checks.positive_int("steps", 0), "steps must be a positive int"),
    (lambda: checks.labels(np.array([0, 12]), 10), r"e.g. \[12\]"),
    (lambda: checks.labels(np.zeros((2, 3, 1)), 10), "one int class id per example"),
    (lambda: checks.pixels(np.array([[300.0]])), r"must lie in \[0, 1\]"),
    (lambda: checks.pixels(np.array([1], np.int32)), "got dtype int32"),
])
def test_known_bad_values_raise_at_once(call, message):
    with pytest.raises(checks.InvalidInputError, match=message):
        call()


def test_symbolic_bad_values_fail_as_one_error_in_graphs():
    @tf.function
    def scaled(x):
        return checks.pixels(x) * 2

    with pytest.raises(checks.InvalidInputError, match=r"Float pixels must lie in \[0, 1\]"):
        with checks.clear_errors():
            scaled(tf.constant([[2.0]]))


def test_labels_of_shape_n_by_1_are_accepted():
    assert checks.labels(np.zeros((3, 1), np.int64), 10).shape == (3, 1)
