"""The study's lost ε headers, recovered by least squares against our FGSM curves, and the protocol hypotheses.

For one table and data set, each adversarial column's ε is the point of our sweep grid where the squared
differences between our curves and the study's cells, summed over every row of the table we have a run
for, are smallest (`fit_table`). Each cell keeps its residual (ours − the study's at that ε). A column
*fits* when every residual is within `FIT_TOLERANCE`; when one does not, no single ε explains that column.
"""

import dataclasses
from typing import Iterable, Sequence

from tfdisc import eps as eps_lib

FIT_TOLERANCE = 0.05  # a fitted cell more than 5 points from the study's does not fit


@dataclasses.dataclass(frozen=True)
class Row:
    """One model of a study table: its label, our FGSM curve {"eps", "accuracy"}, and the study's cells {column:
    accuracy}."""

    label: str
    curve: dict
    cells: dict


@dataclasses.dataclass(frozen=True)
class ColumnFit:
    """A column's fitted ε, each row's residual (ours − the study's, at that ε) and the summed squares."""

    column: str
    eps: float
    residuals: dict
    sse: float

    @property
    def fits(self) -> bool:
        return all(abs(r) <= FIT_TOLERANCE + 1e-9 for r in self.residuals.values())


def fit_column(rows: list[Row], column: str, grid: Sequence[float]) -> ColumnFit | None:
    """The ε of `grid` minimizing Σ (ours(ε) − study)² over the rows that have both; None if no row has both."""
    rows = [r for r in rows if column in r.cells]
    best = None
    for e in grid:
        ours = {r.label: eps_lib.at(r.curve, e) for r in rows}
        if not rows or any(v is None for v in ours.values()):
            continue
        residuals = {r.label: ours[r.label] - r.cells[column] for r in rows}
        sse = sum(v * v for v in residuals.values())
        if best is None or sse < best.sse - 1e-12:
            best = ColumnFit(column, e, residuals, sse)
    return best


def fit_table(rows: list[Row], columns: Iterable[str], grid: Sequence[float]) -> list[ColumnFit]:
    """Each adversarial column's fit (columns no row can fit are left out)."""
    return [fit for fit in (fit_column(rows, c, grid) for c in columns) if fit is not None]


def total_error(fits: list[ColumnFit]) -> float:
    """The fit's total: the summed squares over every fitted cell."""
    return sum(f.sse for f in fits)


def cells_within(fits: list[ColumnFit]) -> tuple[int, int]:
    """(cells within `FIT_TOLERANCE` of the study's, cells fitted)."""
    residuals = [r for f in fits for r in f.residuals.values()]
    return sum(abs(r) <= FIT_TOLERANCE + 1e-9 for r in residuals), len(residuals)
