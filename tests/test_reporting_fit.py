"""tfdisc.reporting.fit: least squares over the grid, residuals, and the verdict that one ε does or does not fit."""

import pytest

from tfdisc.reporting import fit

GRID = [0.0, 0.1, 0.2, 0.3]


def _row(label, accuracy, **cells):
    return fit.Row(label, {"eps": GRID, "accuracy": accuracy}, cells)


def test_the_fitted_eps_minimizes_the_summed_squares_over_rows():
    rows = [_row("a", [0.9, 0.6, 0.3, 0.1], adv1=0.55), _row("b", [0.9, 0.8, 0.5, 0.2], adv1=0.75)]
    (column,) = fit.fit_table(rows, ["adv1"], GRID)
    assert column.eps == 0.1 and column.residuals == pytest.approx({"a": 0.05, "b": 0.05}) and column.fits
    assert fit.cells_within([column]) == (2, 2) and fit.total_error([column]) == pytest.approx(0.005)


def test_rows_that_disagree_leave_no_single_eps_that_fits():
    """One row falls at 0.1, the other only at 0.3: the study's cells cannot both be met at one ε."""
    rows = [_row("steep", [0.9, 0.3, 0.2, 0.1], adv1=0.3), _row("flat", [0.9, 0.9, 0.9, 0.3], adv1=0.3)]
    (column,) = fit.fit_table(rows, ["adv1"], GRID)
    assert not column.fits and max(abs(r) for r in column.residuals.values()) > fit.FIT_TOLERANCE


def test_a_column_no_row_has_is_left_out():
    assert fit.fit_table([_row("a", [0.9, 0.6, 0.3, 0.1], adv1=0.5)], ["adv1", "adv2"], GRID)[0].column == "adv1"
    assert len(fit.fit_table([_row("a", [0.9, 0.6, 0.3, 0.1], adv1=0.5)], ["adv1", "adv2"], GRID)) == 1
