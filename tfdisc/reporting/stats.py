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
        if isinstance(other, Bracket):
            return other + self
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


@dataclasses.dataclass(frozen=True)
class Bracket(Estimate):
    """A quantity known only to lie in [`low`, `high`]: a certified lower bound and an attack's upper bound, each
    end widened to its own 95% interval on a subset. Combined with anything, ends add linearly (the worst case),
    never in quadrature, so a comparison the bracket decides holds for the true robust accuracy."""

    def __add__(self, other):
        other = _estimate(other)
        return Bracket(self.value + other.value, self.low + other.low, self.high + other.high)

    def __neg__(self):
        return Bracket(-self.value, -self.high, -self.low)

    def text(self, scale: float = 100.0, digits: int = 1) -> str:
        """"[14.0, 91.8]": the two ends (in points by default)."""
        return f"[{scale * self.low:.{digits}f}, {scale * self.high:.{digits}f}]"


def bracket(certified: float, attacked: float, n: int, subset: bool) -> Bracket:
    """Robust accuracy between the `certified` share (no input of the ball misclassified) and the `attacked` one
    (what the attacks left) of n examples; on a subset, the ends are Wilson's lower end of the first and upper end
    of the second."""
    if not 0 <= certified <= attacked <= 1:
        raise ValueError(f"A bracket needs 0 <= certified <= attacked <= 1; got {certified}, {attacked}.")
    low = wilson(certified * n, n)[0] if subset else certified
    high = wilson(attacked * n, n)[1] if subset else attacked
    return Bracket((certified + attacked) / 2, low, high)


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
    kind = Bracket if any(isinstance(e, Bracket) for e in estimates) else Estimate
    return kind(best.value, max(e.low for e in estimates), max(e.high for e in estimates))


def _estimate(value):
    return value if isinstance(value, Estimate) else Estimate.exact(float(value))
