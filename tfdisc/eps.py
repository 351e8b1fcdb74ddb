"""ε, the L∞ attack budget in pixel units ([0, 1]): validated, parsed and written in one place.

Every list of ε that tfdisc takes (a library argument, a `--eps` flag, a config file) goes through
`values`, which sorts it and drops repeats, so curves, checks and reports see ε in ascending order.
"""

from typing import Iterable, Sequence

from tfdisc.checks import InvalidInputError

HELP = "ε is an L∞ budget in [0, 1] pixel units (8/255 ≈ 0.031)"


def values(eps_values: Iterable[float]) -> list[float]:
    """`eps_values` as ascending, distinct floats in [0, 1].

    # Arguments
        eps_values: numbers (or numeric strings); repeats are dropped and the order is ascending.

    # Returns
        A non-empty list of floats.

    # Raises
        InvalidInputError: naming the values that are not finite numbers in [0, 1], or for an empty list.
    """
    if isinstance(eps_values, (str, bytes)):
        raise InvalidInputError(f"eps_values must be a list of numbers, not the string {eps_values!r}; use "
                                f"tfdisc.eps.parse({eps_values!r}) for text like '0,0.1,8/255'.")
    found, bad = [], []
    for value in eps_values:
        try:
            number = float(value)
        except (TypeError, ValueError):
            bad.append(value)
            continue
        (found if 0 <= number <= 1 else bad).append(number)  # NaN fails both comparisons
    if bad:
        raise InvalidInputError(f"eps values must be finite numbers in [0, 1]; got {bad}: {HELP}.")
    if not found:
        raise InvalidInputError("The list of eps values is empty; give at least one, e.g. [0, 0.1, 0.2].")
    return sorted(set(found))


def parse(text: str) -> list[float]:
    """'0.1,0,8/255' -> [0.0, 0.0313..., 0.1]: comma-separated numbers or fractions, through `values`.

    # Raises
        InvalidInputError: naming an entry that is not a number or fraction, or one outside [0, 1].
    """
    numbers = []
    for token in filter(None, (t.strip() for t in str(text).split(","))):
        numerator, _, denominator = token.partition("/")
        try:
            numbers.append(float(numerator) / (float(denominator) if denominator else 1.0))
        except (ValueError, ZeroDivisionError):
            raise InvalidInputError(f"Cannot read eps {token!r}; write numbers like 0.1 or fractions like 8/255."
                                    ) from None
        if not 0 <= numbers[-1] <= 1:
            raise InvalidInputError(f"eps {token} is outside [0, 1]: {HELP}.")
    if not numbers:
        raise InvalidInputError("Give at least one eps, e.g. 0,0.1,8/255.")
    return values(numbers)


def text(eps_values: Sequence[float]) -> str:
    """(0.0, 0.05, 8/255) -> "0,0.05,8/255": what `parse` reads back to the same floats."""
    return ",".join(f"{v:g}" if float(f"{v:g}") == v else f"{round(v * 255)}/255" for v in eps_values)


def label(eps: float, dataset: str) -> str:
    """ε as a reader of the data set expects it: k/255 for natural images, a decimal for MNIST."""
    return f"{eps * 255:.0f}/255" if dataset.startswith(("cifar", "imagenet")) else f"{eps:g}"


def index(eps_values: Sequence[float], eps: float, tolerance: float = 1e-6) -> int | None:
    """Where `eps` sits in `eps_values` (within `tolerance`), or None."""
    return next((i for i, e in enumerate(eps_values) if abs(e - eps) < tolerance), None)


def at(curve: dict, eps: float) -> float | None:
    """A curve's {"eps": [...], "accuracy": [...]} value at `eps`, or None where it was not measured."""
    i = index(curve["eps"], eps)
    return None if i is None else curve["accuracy"][i]
