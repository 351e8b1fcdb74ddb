"""tfdisc.reporting.stats: Wilson intervals, the intervals of sums and differences, and brackets."""

import pytest

from tfdisc.reporting import stats


def test_wilson_matches_the_textbook_values():
    assert stats.wilson(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)  # Newcombe 1998, Table I
    assert stats.wilson(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert stats.wilson(10, 10)[1] == pytest.approx(1.0)


def test_a_difference_of_two_subsets_is_newcombes_interval():
    """Newcombe (1998), example (a): 56/70 vs 48/80 gives the difference 0.2 in [0.0524, 0.3339]."""
    difference = stats.measured(56 / 70, 70, True) - stats.measured(48 / 80, 80, True)
    assert (difference.value, difference.low, difference.high) == pytest.approx((0.2, 0.0524, 0.3339), abs=1e-4)


def test_whole_test_set_numbers_are_exact_and_stay_exact():
    a, b = stats.measured(0.9, 10000, False), stats.measured(0.7, 10000, False)
    assert (a - b).is_exact and (a - b).value == pytest.approx(0.2) and (a - b).text() == "20.0"
    assert stats.measured(0.9, 80, True).text().startswith("90.0 [")


def test_maximum_keeps_both_ends():
    a, b = stats.Estimate(0.5, 0.4, 0.6), stats.Estimate(0.55, 0.3, 0.7)
    best = stats.maximum(a, b)
    assert (best.value, best.low, best.high) == (0.55, 0.4, 0.7)


def test_a_count_of_no_examples_is_refused():
    with pytest.raises(ValueError, match="positive count"):
        stats.wilson(0, 0)


def test_a_bracket_adds_its_ends_linearly():
    a, b = stats.bracket(0.2, 0.9, 10000, subset=False), stats.measured(0.5, 100, subset=True)
    d = a - b
    assert isinstance(d, stats.Bracket)
    assert d.low == pytest.approx(0.2 - b.high) and d.high == pytest.approx(0.9 - b.low)  # not in quadrature
    assert isinstance(b - a, stats.Bracket) and (b - a).low == pytest.approx(-d.high)
    widened = stats.bracket(0.2, 0.9, 500, subset=True)
    assert widened.low < 0.2 and widened.high > 0.9 and widened.text() == f"[{100 * widened.low:.1f}, " \
        f"{100 * widened.high:.1f}]"
    with pytest.raises(ValueError, match="certified <= attacked"):
        stats.bracket(0.5, 0.4, 100, subset=False)
