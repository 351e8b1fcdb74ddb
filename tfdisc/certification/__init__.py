"""Robustness bracketed: a certified lower bound beside the strongest attack, for models that discretize their input.

After discretization an L∞ attacker's choices are finite: each pixel can reach only the levels between those of
x − ε and x + ε. `certify` decides each example in order of cost:

1. interval bound propagation (`bounds`), exact through the discretization and through BatchNorm, ReLU, pooling,
   Larq's sign quantizers and XNOR scales, with the last affine layers applied exactly to the logit margins;
2. a linear relaxation (`crown`) of ReLU and sign activations, for dense chains;
3. every input of the box, evaluated, where the free pixels allow at most `enumeration_limit` of them;
4. branch and bound over the free pixels' levels, with a time limit or a budget of parts per example.

Each example ends *certified* (no input of the ball is misclassified), *broken* (with a misclassified input) or
*unknown*. `bracket` certifies first and attacks only what is left (certified examples need no attack), then tries
branch and bound on the attacks' survivors: certified accuracy is the lower bound, the attacks' survivors plus the
certified the upper bound, and the unknown survivors the gap. `certified_report` runs a whole robustness report
(every attack of `tfdisc.evaluation.RobustnessReport`) on what the bounds leave.
"""

import dataclasses
import math
import numbers
import time
from typing import Sequence

import numpy as np
import tensorflow as tf

from tfdisc import checks
from tfdisc import eps as eps_lib
from tfdisc.certification import bounds, crown, search  # noqa: F401  (the package's modules)
from tfdisc.evaluation import registry
from tfdisc.evaluation.data import as_dataset
from tfdisc.evaluation.report import RobustnessReport
from tfdisc.types import Data, EpsValues, Path

STATUSES = ("certified", "broken", "unknown")
__all__ = ["Outcome", "bounds", "bracket", "certified_report", "certify", "check_options", "crown", "search"]


@dataclasses.dataclass
class Outcome:
    """Per example at one ε: "certified", "broken" or "unknown", what decided it and, for an example broken by the
    clean check, enumeration or branch and bound, the input of its ball the model misclassifies (an attack's
    adversarial examples are not kept: `bracket`'s "attack" verdicts come from the attack report)."""

    status: np.ndarray  # str, one per example
    method: np.ndarray  # "clean", "ibp", "crown", "enumeration", "branch_and_bound", "attack", "" (unknown)
    counterexamples: dict = dataclasses.field(default_factory=dict)  # {example index: misclassified input}

    def share(self, status: str) -> float:
        return float(np.mean(self.status == status)) if len(self.status) else 0.0


def _arrays(model, data):
    """`data` as checked (float32 pixels, int64 labels) arrays."""
    xs, ys = [], []
    with checks.clear_errors():
        for x, y in as_dataset(data):
            xs.append(tf.cast(checks.pixels(x), tf.float32).numpy())
            ys.append(checks.labels(y, int(model.output_shape[-1])).numpy().astype(np.int64))
    if not xs:
        raise ValueError("The data holds no examples.")
    return np.concatenate(xs), np.concatenate(ys)


def check_options(bound: str, split: str, time_limit: float, max_domains: int, enumeration_limit: int = 0) -> None:
    """InvalidInputError naming the first of `certify`'s search options that is not valid."""
    checks.choice("bound", bound, search.BOUNDS)
    if (isinstance(enumeration_limit, bool) or not isinstance(enumeration_limit, numbers.Integral)
            or not 0 <= enumeration_limit <= search.ENUMERATION_MAX):
        raise checks.InvalidInputError(f"enumeration_limit must be an int from 0 (no enumeration) to 2^40; got "
                                       f"{enumeration_limit!r}.")
    checks.choice("split", split, search.SPLITS)
    if isinstance(time_limit, bool) or not isinstance(time_limit, numbers.Real) or not 0 <= time_limit < math.inf:
        raise checks.InvalidInputError(f"time_limit must be a finite number of seconds ≥ 0 (0: no time limit); got "
                                       f"{time_limit!r}.")
    if isinstance(max_domains, bool) or not isinstance(max_domains, numbers.Integral) or max_domains < 0:
        raise checks.InvalidInputError(f"max_domains must be an int ≥ 0 (0: no budget of parts); got {max_domains!r}.")


def _decide_by_bounds(model, x, y, eps, methods, activations):
    """status and method arrays after the clean check and the bounds in `methods`, in order, the level boxes, per
    example the units of each activation the last method leaves undecided (NaN where it did not run), and the
    misclassified clean examples as counterexamples ({index: x})."""
    discretization = bounds.discretization_layer(model)
    n = len(y)
    status, method = np.full(n, "unknown", object), np.full(n, "", object)
    logits = model(tf.constant(x, tf.float32), training=False).numpy()
    wrong = np.argmax(logits, -1) != y
    status[wrong], method[wrong] = "broken", "clean"
    low, high = bounds.level_box(discretization, x, eps)
    scale = 1.0 + np.max(np.abs(logits), axis=-1)
    undecided = np.full((n, activations), np.nan)
    for name in methods:
        todo = np.flatnonzero(status == "unknown")
        if not todo.size:
            break
        labels = tf.constant(y[todo], tf.int32)
        found, units = search.margin_bounds(model, tf.gather(low, todo), tf.gather(high, todo), labels, name)
        done = np.all(found.numpy() > bounds.MARGIN_SLACK * scale[todo, None], axis=-1)
        status[todo[done]], method[todo[done]] = "certified", name
        if units is not None:
            undecided[todo] = units
    return status, method, low.numpy(), high.numpy(), undecided, {int(i): x[i] for i in np.flatnonzero(wrong)}


def _median_undecided(undecided, status):
    """Per activation, the median of the undecided units over the examples the bounds leave unknown (None if none)."""
    left = undecided[status == "unknown"]
    if not left.size or np.isnan(left).any():
        return None
    return [float(v) for v in np.median(left, 0)]


def _decide_exactly(model, low, high, y, status, method, counterexamples, todo, *, enumeration_limit, time_limit,
                    max_domains, bound, split):
    """Enumerate the small boxes of `todo` and branch and bound the rest (if a limit is set), in place."""
    discretization = bounds.discretization_layer(model)
    for i in todo:
        if search.input_count(discretization, low[i], high[i]) <= enumeration_limit:
            robust, found = search.enumerate_box(model, discretization, low[i], high[i], y[i])
            verdict, how = ("certified" if robust else "broken"), "enumeration"
        elif time_limit > 0 or max_domains > 0:
            verdict, found = search.branch_and_bound(model, discretization, low[i], high[i], y[i], method=bound,
                                                     split=split, time_limit=time_limit or math.inf,
                                                     max_domains=max_domains or search.MAX_DOMAINS)
            how = "branch_and_bound"
        else:
            continue
        if verdict != "unknown":
            status[i], method[i] = verdict, how
        if found is not None:
            counterexamples[int(i)] = found


def _decided_by_bounds(model, x, y, eps, methods, widths):
    """`_decide_by_bounds` over batches of 1000 examples, joined; `widths` the model's `search.activation_widths`."""
    parts = [_decide_by_bounds(model, x[i:i + 1000], y[i:i + 1000], eps, methods, len(widths or []))
             for i in range(0, len(y), 1000)]
    counterexamples = {start + i: v for start, p in zip(range(0, len(y), 1000), parts) for i, v in p[5].items()}
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(5)) + (counterexamples,)


def certify(model: tf.keras.Model, data: Data, eps_values: EpsValues, *, bound: str = "crown-refined",
            split: str = "pixels", enumeration_limit: int = 2**16, time_limit: float = 0.0,
            max_domains: int = 0) -> dict:
    """Certify every example of `data` at every ε (see the module docstring).

    # Arguments
        model: a model whose first layer is an `InputDiscretization` (every model `build_model` makes).
        data: (x, y) arrays or a dataset of batches.
        eps_values: the ε to certify at.
        bound: the tightest bound to try, each tried on what the cheaper ones leave: "ibp", "crown" (IBP, then the
            linear relaxation with interval intermediate bounds, which after a few layers certifies little), or
            "crown-refined" (then the relaxation with refined intermediate bounds) or "alpha-crown" (then the final
            pass's slopes optimized, as α-CROWN does). Branch and bound uses it too.
        split: what branch and bound splits, "pixels" or "activations" (`search.branch_and_bound`).
        enumeration_limit: evaluate every input of boxes that hold at most this many.
        time_limit: seconds of branch and bound per example still undecided (0: no time limit).
        max_domains: parts of branch and bound per example still undecided (0: up to `search.MAX_DOMAINS`, if a
            time limit is set). Branch and bound runs if either is set and stops at the first that runs out; a
            budget of parts alone does not depend on the machine's speed or load.

    # Returns
        {"eps", "examples", "certified", "broken", "unknown" (shares per ε), "methods" ({method: count} per ε),
        "undecided" (per ε, the median over the examples the bounds leave of how many units of each activation the
        tightest bound leaves undecided, or None), "units" (each activation's units, None for models the linear
        relaxations do not cover), "outcomes" (an `Outcome` per ε), "seconds"}.
    """
    eps = eps_lib.values(eps_values)
    check_options(bound, split, time_limit, max_domains, enumeration_limit)
    start = time.perf_counter()
    x, y = _arrays(model, data)
    outcomes, undecided = [], []
    methods = search.BOUNDS[:search.BOUNDS.index(bound) + 1]
    widths = search.activation_widths(model)
    for e in eps:
        status, method, low, high, units, counterexamples = _decided_by_bounds(model, x, y, e, methods, widths)
        undecided.append(_median_undecided(units, status))
        _decide_exactly(model, low, high, y, status, method, counterexamples, np.flatnonzero(status == "unknown"),
                        enumeration_limit=enumeration_limit, time_limit=time_limit, max_domains=max_domains,
                        bound=bound, split=split)
        outcomes.append(Outcome(status, method, counterexamples))
    return _summary(eps, outcomes, undecided, widths, len(y), time.perf_counter() - start)


def _summary(eps, outcomes, undecided, widths, examples, seconds):
    return {"eps": eps, "examples": examples,
            **{s: [o.share(s) for o in outcomes] for s in STATUSES},
            "methods": [{m: int(np.sum(o.method == m)) for m in sorted(set(o.method)) if m} for o in outcomes],
            "undecided": undecided, "units": widths, "outcomes": outcomes,
            "seconds": seconds}


def bracket(model: tf.keras.Model, data: Data, eps_values: EpsValues, *, version: str = "standard+discrete",
            bound: str = "crown-refined", split: str = "pixels", enumeration_limit: int = 2**16,
            time_limit: float = 0.0, max_domains: int = 0, **report_options) -> dict:
    """The robust accuracy bracketed at every ε: certify what the bounds can, attack only the rest, then branch and
    bound the attacks' survivors for `time_limit` seconds or `max_domains` parts each.

    # Arguments
        model, data, eps_values, bound, split, enumeration_limit, time_limit, max_domains: as in `certify`.
        version: the AutoAttack cascade that attacks the uncertified examples (`tfdisc.evaluation.registry`).
        report_options: further `tfdisc.evaluation.RobustnessReport` options (seed, square_queries, ...).

    # Returns
        {"eps", "examples", "certified" (lower bound), "attacked" (upper bound: certified plus the attacks'
        uncertified survivors), "gap", "attacked_examples" (how many the attacks ran on), "methods", "undecided",
        "units", "seconds"}.
    """
    eps = eps_lib.values(eps_values)
    check_options(bound, split, time_limit, max_domains, enumeration_limit)
    start = time.perf_counter()
    x, y = _arrays(model, data)
    attack = RobustnessReport(model, ("autoattack",), version=version, **report_options)
    discretization = bounds.discretization_layer(model)
    methods = search.BOUNDS[:search.BOUNDS.index(bound) + 1]
    widths = search.activation_widths(model)
    outcomes, attacked, undecided = [], [], []
    for e in eps:
        status, method, low, high, units, counterexamples = _decided_by_bounds(model, x, y, e, methods, widths)
        undecided.append(_median_undecided(units, status))
        small = [i for i in np.flatnonzero(status == "unknown")
                 if search.input_count(discretization, low[i], high[i]) <= enumeration_limit]
        _decide_exactly(model, low, high, y, status, method, counterexamples, small,
                        enumeration_limit=enumeration_limit, time_limit=0.0, max_domains=0, bound=bound, split=split)
        todo = np.flatnonzero(status == "unknown")
        attacked.append(int(todo.size))
        if todo.size:
            report = attack((x[todo], y[todo]), [e], survivors=True)
            broken = todo[~report["survivors"][0]]
            status[broken], method[broken] = "broken", "attack"
        _decide_exactly(model, low, high, y, status, method, counterexamples, np.flatnonzero(status == "unknown"),
                        enumeration_limit=0, time_limit=time_limit, max_domains=max_domains, bound=bound, split=split)
        outcomes.append(Outcome(status, method, counterexamples))
    summary = _summary(eps, outcomes, undecided, widths, len(y), time.perf_counter() - start)
    summary["attacked"] = [o.share("certified") + o.share("unknown") for o in outcomes]
    summary["gap"] = [o.share("unknown") for o in outcomes]
    summary["attacked_examples"] = attacked
    summary["version"] = version
    return summary


def _with_skipped(report, skipped, examples):
    """`report`'s accuracies over `examples`, with `skipped` more examples that survive everything (certified)."""
    def widened(share):
        return (share * report["examples"] + skipped) / examples

    def curve(found):
        widened_curve = {**found, "accuracy": [widened(a) for a in found["accuracy"]]}
        if "after" in found:
            widened_curve["after"] = {stage: [widened(a) for a in after] for stage, after in found["after"].items()}
        return widened_curve

    return {**report, "examples": examples, "clean_accuracy": widened(report["clean_accuracy"]),
            "attacks": {name: curve(found) for name, found in report["attacks"].items()},
            "worst_case": curve(report["worst_case"])}


def certified_report(model: tf.keras.Model, data: Data, eps_values: EpsValues,
                     attacks: Sequence[str] = registry.DEFAULT, surrogate: tf.keras.Model | None = None, *,
                     bound: str = "crown-refined", enumeration_limit: int = 2**16, large_eps: float | None = None,
                     tolerance: float = 0.01, survivors: bool = False, checkpoint: Path | None = None,
                     **report_options) -> dict:
    """The robustness report with the certified accuracy beside it: `certify` (bounds and enumeration, no branch and
    bound) decides every example first, and the attacks run only on the examples it leaves at some ε.

    A certified example survives every attack by definition, so it counts as surviving each attack's column and the
    worst case: those stay the accuracies over all of `data`, upper bounds as before, and "certified" is the lower
    bound. An attack that broke an example certified at its ε would be a bug in the bounds: RuntimeError.

    # Arguments
        model: a model whose first layer is an `InputDiscretization` (every model `build_model` makes).
        data, eps_values, bound, enumeration_limit: as in `certify`.
        attacks, surrogate, large_eps, tolerance: as in `tfdisc.evaluation.robustness_report`.
        survivors: also return, per ε, which examples survived everything (the certified included).
        checkpoint: where the attacks save their finished (batch, ε) units (see `RobustnessReport.__call__`).
        report_options: further `tfdisc.evaluation.RobustnessReport` options (version, pgd_steps, seed, gradient, ...).

    # Returns
        `robustness_report`'s fields over all examples, its "checks" over the attacked ones (a certified example
        cannot mask gradients), and "certified" ({"eps", "accuracy"}: the lower bound), "gap" (per ε, worst case
        minus certified) and "certification" ({"bound", "enumeration_limit", "methods" per ε, "skipped": examples
        no attack ran on, "seconds"}).
    """
    eps = eps_lib.values(eps_values)
    check_options(bound, "pixels", 0.0, 0, enumeration_limit)
    attack = RobustnessReport(model, attacks, surrogate, **report_options)
    x, y = _arrays(model, data)
    found = certify(model, (x, y), eps, bound=bound, enumeration_limit=enumeration_limit)
    certified = np.stack([o.status == "certified" for o in found["outcomes"]])
    skip = certified.all(axis=0)
    todo = np.flatnonzero(~skip)
    report = (attack((x[todo], y[todo]), eps, survivors=True, large_eps=large_eps, tolerance=tolerance,
                     checkpoint=checkpoint) if todo.size else attack.empty_report(eps))
    broken = certified[:, todo] & ~report["survivors"]
    if broken.any():
        e, i = np.argwhere(broken)[0]
        raise RuntimeError(f"Example {todo[i]} is certified at ε={eps[e]:g} but an attack broke it: the certification "
                           "is unsound. This is a tfdisc bug; please report it with the model.")
    merged = _with_skipped(report, int(skip.sum()), len(y))
    merged["certified"] = {"eps": eps, "accuracy": found["certified"]}
    merged["gap"] = [w - c for w, c in zip(merged["worst_case"]["accuracy"], found["certified"])]
    merged["certification"] = {"bound": bound, "enumeration_limit": enumeration_limit, "methods": found["methods"],
                               "skipped": int(skip.sum()), "seconds": found["seconds"]}
    merged["seconds"] = report["seconds"] + found["seconds"]
    del merged["survivors"]
    if survivors:
        merged["survivors"] = np.ones((len(eps), len(y)), bool)
        merged["survivors"][:, todo] = report["survivors"]
    return merged
