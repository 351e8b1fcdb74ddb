"""tfdisc.eps: one place where ε lists are validated, parsed and written."""

import math

import pytest

from tfdisc import eps as eps_lib
from tfdisc.checks import InvalidInputError


def test_values_sorts_and_drops_repeats():
    assert eps_lib.values([0.3, 0, 0.1, 0.1, "0.2"]) == [0.0, 0.1, 0.2, 0.3]


@pytest.mark.parametrize("bad, message", [
    ([], "is empty"), ([1.5], r"got \[1.5\]"), ([math.nan], r"got \[nan\]"), ([-0.1], "finite numbers in"),
    ("0.1", "not the string '0.1'"), (["x"], r"got \['x'\]"),
])
def test_bad_values_are_named(bad, message):
    with pytest.raises(InvalidInputError, match=message):
        eps_lib.values(bad)


def test_parse_reads_fractions_and_text_writes_them_back():
    parsed = eps_lib.parse("0.3, 8/255,0,0.1")
    assert parsed == [0.0, 8 / 255, 0.1, 0.3]
    assert eps_lib.text(parsed) == "0,8/255,0.1,0.3" and eps_lib.parse(eps_lib.text(parsed)) == parsed
    with pytest.raises(InvalidInputError, match="outside"):
        eps_lib.parse("2")


def test_labels_follow_the_data_set():
    assert eps_lib.label(8 / 255, "cifar10") == "8/255" and eps_lib.label(0.1, "mnist") == "0.1"


def test_at_finds_a_curve_value_within_rounding():
    curve = {"eps": [0.0, 0.1 + 1e-9], "accuracy": [0.9, 0.5]}
    assert eps_lib.at(curve, 0.1) == 0.5 and eps_lib.at(curve, 0.2) is None
