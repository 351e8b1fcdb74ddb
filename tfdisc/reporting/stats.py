"""Uncertainty of accuracies measured on a subset: Wilson's score interval, and intervals of differences.

An `Estimate` is a value with a 95% interval. An accuracy on a subset of n examples gets Wilson's score
interval (`measured`); one on the whole test set is taken as exact (the study reports its numbers on
the whole test set too). Sums and differences of independent estimates combine their intervals by
MOVER (Newcombe 1998; Zou & Donner 2008): the distance from the value to each end adds in quadrature,
which for a difference of two proportions is Newcombe's hybrid score interval.
"""

import dataclasses
import math

Z95 = 1.959963984540054


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of a proportion `successes`/`n` (the two ends, in [0, 1])."""
    if n <= 0:
        raise ValueError(f"n must be a positive count of examples; got {n}.")
    p = successes / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, center - half), min(1.0, center + half)


@dataclasses.dataclass(frozen=True)
class Estimate:
    """`value` with its 95% interval [`low`, `high`]; exact when low == value == high."""

    value: float
    low: float
    high: float

    @classmethod
    def exact(cls, value: float) -> "Estimate":
        return cls(value, value, value)

    @property
    def is_exact(self) -> bool:
        return self.low == self.value == self.high

    def __add__(self, other):
        other = _estimate(other)
        return Estimate(self.value + other.value,
                        self.value + other.value - math.hypot(self.value - self.low, other.value - other.low),
                        self.value + other.value + math.hypot(self.high - self.value, other.high - other.value))

    def __neg__(self):
        return Estimate(-self.value, -self.high, -self.low)

    def __sub__(self, other):
        return self + (-_estimate(other))

    def __radd__(self, other):
        return self + other

    def __rsub__(self, other):
        return _estimate(other) - self

    def __float__(self):
        return self.value

    def text(self, scale: float = 100.0, digits: int = 1) -> str:
        """"92.5" for an exact value, "92.5 [84.6, 96.5]" with its interval otherwise (in points by default)."""
        main = f"{scale * self.value:.{digits}f}"
        return main if self.is_exact else f"{main} [{scale * self.low:.{digits}f}, {scale * self.high:.{digits}f}]"


def measured(accuracy: float, n: int, subset: bool) -> Estimate:
    """An accuracy on n examples: with its Wilson interval if they are a subset of the test set, else exact."""
    if not subset:
        return Estimate.exact(accuracy)
    low, high = wilson(accuracy * n, n)
    return Estimate(accuracy, low, high)


def maximum(*estimates: float | Estimate) -> Estimate:
    """The larger of estimates, with an interval that holds both ends' maxima (conservative)."""
    estimates = [_estimate(e) for e in estimates]
    best = max(estimates, key=lambda e: e.value)
    return Estimate(best.value, max(e.low for e in estimates), max(e.high for e in estimates))


def _estimate(value):
    return value if isinstance(value, Estimate) else Estimate.exact(float(value))
