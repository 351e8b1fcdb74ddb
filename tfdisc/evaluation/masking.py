"""Sanity checks of a robustness report (Carlini et al. 2019; auto-attack's `checks.py`): one function each.

Each check takes the report (see `tfdisc.evaluation.robustness_report`) and returns a `Check`, or None
when the report lacks what it needs. A failed check is a sign of gradient masking: robustness that an
attack's blindness, not the model, produces. Each docstring names the cause and what to do.
"""

import dataclasses
from typing import Callable

from tfdisc.evaluation import registry


@dataclasses.dataclass(frozen=True)
class Check:
    """One check's outcome; `detail` says exactly what was tested and what was found."""

    check: str
    passed: bool
    detail: str

    def as_dict(self) -> dict:
        return {"check": self.check, "passed": self.passed,
                "detail": self.detail + ("" if self.passed else " — possible gradient masking.")}


def _points(fraction):
    return f"{100 * fraction:.1f} points"


def eps0_equals_clean(report: dict, *, tolerance: float) -> Check | None:
    """At ε=0 every attack must leave clean accuracy unchanged. Cause of a failure: the attack changes inputs it
    must not (a bug), or clean accuracy is scored differently from attacked accuracy."""
    eps, curves = report["eps"], report["attacks"]
    if 0.0 not in eps:
        return None
    i = eps.index(0.0)
    off = {n: c["accuracy"][i] for n, c in curves.items() if abs(c["accuracy"][i] - report["clean_accuracy"]) > 1e-9}
    return Check("eps0_equals_clean", not off, "At ε=0 every attack leaves clean accuracy unchanged." if not off else
                 f"At ε=0 accuracy differs from clean {report['clean_accuracy']:.4f}: {off}.")


def monotone_in_eps(report: dict, *, tolerance: float) -> Check | None:
    """No attack's accuracy may rise by more than `tolerance` from one ε to the next: a larger budget contains
    the smaller one. Cause of a failure: the attack's search fails at larger ε (masked or noisy gradients); run
    more restarts or a gradient-free attack. Rises within the tolerance (random restarts) are named, not failed."""
    eps, curves = report["eps"], report["attacks"]
    # Rounded: accuracies k/n do not subtract exactly in floating point (0.94 - 0.93 is 0.01000000000000001).
    rises = {n: [(e0, e1, round(b - a, 9)) for e0, e1, a, b in zip(eps, eps[1:], c["accuracy"], c["accuracy"][1:])
                 if round(b - a, 9) > 0] for n, c in curves.items()}
    failing = {n: [r for r in found if r[2] > tolerance] for n, found in rises.items()}
    failing = {n: found for n, found in failing.items() if found}
    small = {n: [r for r in found if r[2] <= tolerance] for n, found in rises.items()}
    small = {n: found for n, found in small.items() if found}
    describe = lambda found: "; ".join(f"{n} +{_points(d)} from ε={e0:g} to {e1:g}" for n, rows in found.items()  # noqa
                                       for e0, e1, d in rows)
    test = f"No curve rises by more than {_points(tolerance)} from one ε to the next"
    if failing:
        return Check("monotone_in_eps", False, f"{test}: failed, {describe(failing)}.")
    return Check("monotone_in_eps", True, f"{test}." + (f" Rises within that tolerance: {describe(small)}."
                                                        if small else " No curve rises at all."))


def iterative_le_single_step(report: dict, *, tolerance: float) -> Check | None:
    """Every iterative attack must be at least as strong as FGSM (within `tolerance`) at every ε. Cause of a
    failure: the iterative attack's steps are too small or its gradients vanish along the way."""
    eps, curves = report["eps"], report["attacks"]
    iterative = [n for n in (*registry.names("iterative"), "autoattack")
                 if n in curves and (n == "autoattack" or registry.ATTACKS[n].white_box)]
    if not iterative or "fgsm" not in curves:
        return None
    bad = {n: [e for e, a, f in zip(eps, curves[n]["accuracy"], curves["fgsm"]["accuracy"])
               if round(a - f, 9) > tolerance] for n in iterative}
    bad = {n: v for n, v in bad.items() if v}
    return Check("iterative_le_single_step", not bad,
                 f"{', '.join(iterative)} at most {_points(tolerance)} above FGSM at every ε." if not bad else
                 f"Iterative attacks weaker than single-step FGSM (by more than {_points(tolerance)}) at {bad}.")


def whitebox_le_blackbox(report: dict, *, tolerance: float) -> Check | None:
    """The best white-box attack must be at least as strong as every black-box one (within `tolerance`). Cause
    of a failure: the gradients the white-box attacks follow do not describe the model (masking)."""
    eps, curves = report["eps"], report["attacks"]
    white = [n for n in registry.names("white_box") if n in curves]
    black = [n for n in registry.names("black_box") if n in curves]
    if not (white and black):
        return None
    best_white = [min(curves[n]["accuracy"][i] for n in white) for i in range(len(eps))]
    bad = {n: [e for e, w, b in zip(eps, best_white, curves[n]["accuracy"]) if round(w - b, 9) > tolerance]
           for n in black}
    bad = {n: v for n, v in bad.items() if v}
    return Check("whitebox_le_blackbox", not bad,
                 f"The best white-box attack is at most {_points(tolerance)} above every black-box or gradient-free "
                 "one at every ε." if not bad else f"Black-box or gradient-free attacks beat white-box ones at {bad}.")


def gradient_survivors_unbroken(report: dict, *, tolerance: float) -> Check | None:
    """No example that survives every white-box attack may fall to a black-box one. Cause of a failure: those
    examples' gradients mislead (masking); the black-box attack's examples show where."""
    curves = report["attacks"]
    stages = curves.get("autoattack", {}).get("after", {})
    white = any(n in registry.names("white_box") for n in (*curves, *stages))
    black = any(n in registry.names("black_box") for n in (*curves, *stages))
    if not (white and black):
        return None
    found = {e: c for e, c in zip(report["eps"], report["masking_examples"]["count"]) if c}
    return Check("gradient_survivors_unbroken", not found,
                 "No example that survives every gradient attack falls to a gradient-free or transfer attack."
                 if not found else "Examples surviving every gradient attack but broken by a gradient-free or "
                 "transfer attack, per ε: " + ", ".join(f"ε={e:g}: {c} ({100 * c / report['examples']:.1f}%)"
                                                        for e, c in found.items()) + ".")


def near_chance_at_large_eps(report: dict, *, tolerance: float, large_eps: float | None = None,
                             chance: float | None = None) -> Check | None:
    """At an ε where any image can be turned into any other (`large_eps`), the worst case must be within 10
    points of chance. Cause of a failure: the attacks cannot move the inputs (masking), or ε is still small."""
    eps, worst = report["eps"], report["worst_case"]["accuracy"]
    if large_eps is None or max(eps) < large_eps:
        return None
    top = worst[eps.index(max(eps))]
    return Check("near_chance_at_large_eps", top <= chance + 0.1,
                 f"At ε={max(eps):g} the worst-case accuracy is {top:.4f}, within 10 points of chance ({chance:.2f})?"
                 + (" Yes." if top <= chance + 0.1 else " No; an unbounded-looking robustness is implausible."))


def nonzero_gradients(report: dict, *, tolerance: float) -> Check | None:
    """At most 1% of examples may have an exactly zero input gradient that the model itself causes. Examples
    whose float32 cross-entropy saturates (softmax exactly one-hot) also have zero gradients, but their logit
    margin still has one: that blinds FGSM, PGD and APGD-CE, not margin losses (APGD-T, APGD-DLR), and is not
    masking. Cause of a failure: a quantizer with a zero derivative (use gradient="identity") or dead units."""
    zero, saturated, examples = (report["zero_gradient_examples"], report["saturated_loss_examples"],
                                 report["examples"])
    masked = zero - saturated
    detail = (f"{100 * masked / examples:.1f}% of examples (at most 1% allowed) have an exactly zero input gradient "
              "that the logit margin's gradient confirms")
    if saturated:
        detail += (f"; {saturated} more have a zero cross-entropy gradient only because the float32 loss saturates on "
                   "very confident examples (their margin's gradient is not zero), which is not masking")
    return Check("nonzero_gradients", masked <= 0.01 * examples, detail + ".")


CHECKS: tuple[Callable, ...] = (eps0_equals_clean, monotone_in_eps, iterative_le_single_step, whitebox_le_blackbox,
                                gradient_survivors_unbroken, near_chance_at_large_eps, nonzero_gradients)


def run_checks(report: dict, *, large_eps: float | None, chance: float, tolerance: float) -> list[dict]:
    """Every check that applies to `report`, as dicts {"check", "passed", "detail"}."""
    found = []
    for check in CHECKS:
        options = {"large_eps": large_eps, "chance": chance} if check is near_chance_at_large_eps else {}
        outcome = check(report, tolerance=tolerance, **options)
        if outcome is not None:
            found.append(outcome.as_dict())
    return found
