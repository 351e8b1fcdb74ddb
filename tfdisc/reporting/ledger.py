"""The study's claims, each judged from our run records by a rule written in code: REPORT.md's ledger.

A `Claim` is a value: the study's own words with the line of its text they come from, its thresholds as
fields, its rule text rendered from them, and a judge that applies them. Verdicts: "holds", "does not
hold", "holds only for …", "inconclusive" and "not run". A gate checks every run a judge fetches: a
missing run or attack makes the claim "not run" on that setup. Otherwise, if a run it needs was trained
on a reduced budget or sits more than `CLEAN_GAP` below the study's clean accuracy, the claim is
"inconclusive" there, and the rule's numbers are shown, not judged. Accuracies measured on a subset of
the test set carry their 95% interval (`tfdisc.reporting.stats`); a comparison whose outcome changes
within the interval of the compared difference is inconclusive at that ε.

Under the certified bracket (`tfdisc.reporting.certified`), each robust accuracy is the interval [certified,
attacked] (`stats.Bracket`), so a rule decides only what holds for the true robust accuracy; a verdict the
certified lower bounds decide reads "holds (certified)".
"""

import dataclasses
from typing import Callable, Sequence

from tfdisc import eps as eps_lib
from tfdisc import models, presets
from tfdisc.reporting import stats
from tfdisc.reporting.records import RunRecord, model_label

CLEAN_GAP = 0.05  # a run more than this below the study's clean accuracy cannot judge the study
ATTACKS = {"fgsm": "FGSM", "autoattack": "AutoAttack", "bracket": "the certified bracket"}


class Unjudged(Exception):
    """The claim cannot be judged on a setup; `verdict` is "not run" or "inconclusive"."""

    def __init__(self, verdict, reason):
        super().__init__(reason)
        self.verdict, self.reason = verdict, reason


def pct(value: float | stats.Estimate) -> str:
    """An accuracy in percent, with its 95% interval if it was measured on a subset."""
    if isinstance(value, stats.Estimate):
        return value.text() + "%"
    return f"{100 * value:.1f}%"


def points(value: float | stats.Estimate) -> str:
    """A difference in points (signed), with its 95% interval where it has one."""
    value = value if isinstance(value, stats.Estimate) else stats.Estimate.exact(value)
    if isinstance(value, stats.Bracket):
        return f"[{100 * value.low:+.1f}, {100 * value.high:+.1f}]"
    text = f"{100 * value.value:+.1f}"
    return text if value.is_exact else f"{text} [{100 * value.low:+.1f}, {100 * value.high:+.1f}]"


def reduced_budget(record: RunRecord) -> str | None:
    """Why `record` was trained on less than the study's budget, or None."""
    epochs = models.ARCHITECTURES[record.arch].epochs
    if record.epochs < epochs:
        return f"{record.epochs} of the study's {epochs} epochs"
    if record.train_examples:
        return f"{record.train_examples} training images"
    return None


def preferred(runs: list[RunRecord]) -> RunRecord | None:
    """The run trained on the study's budget if there is one, else any of `runs`; None for none."""
    return min(runs, key=lambda r: reduced_budget(r) is not None, default=None)


class Evidence:
    """Our runs of one setup (data set, architecture) under one attack; every run passes the gate as it is fetched.

    `gated` collects why fetched runs cannot judge the study (a reduced budget, a clean-accuracy gap).
    """

    def __init__(self, records, study, dataset, arch, attack, analyses=None, brackets=()):
        self.records = [r for r in records if r.dataset == dataset and r.arch == arch]
        self.study = [s for s in study if s.dataset == dataset and s.arch == arch]
        self.dataset, self.arch, self.attack = dataset, arch, attack
        self.eps = list(presets.get(dataset).report_eps)
        self.brackets = [b for b in brackets if b.dataset == dataset and b.arch == arch]
        if attack == "bracket":  # the report ε that some bracket covers
            self.eps = [e for e in self.eps if any(eps_lib.index(b.eps, e) is not None for b in self.brackets)]
        self.analyses = analyses or {}
        self.gated = []

    def has(self, precision: str, bits: int, adv: bool = False) -> bool:
        return any(r.key[2:] == (precision, bits, adv) for r in self.records)

    def run(self, precision: str, bits: int, adv: bool = False) -> RunRecord:
        """The run of that model (a full budget preferred), checked by the gate: missing raises, weak is noted."""
        label = model_label(precision, bits, adv)
        run = preferred([r for r in self.records if r.key[2:] == (precision, bits, adv)])
        if run is None:
            raise Unjudged("not run", f"no {label} run")
        if self.attack == "bracket" and not self.eps:
            raise Unjudged("not run", "no certified bracket at a report ε")
        reduced = reduced_budget(run)
        clean = next((s.accuracy for s in self.study if s.column == "clean" and s.key[2:] == (precision, bits, adv)),
                     None)
        if reduced:
            self._gate(f"{label} trained on a reduced budget ({reduced})")
        if clean is not None and not reaches(run.clean_accuracy, clean, -CLEAN_GAP):
            self._gate(f"{label}: clean {pct(run.clean_accuracy)}, more than {100 * CLEAN_GAP:.0f} points "
                       f"below the study's {pct(clean)}")
        return run

    def _gate(self, reason):
        if reason not in self.gated:
            self.gated.append(reason)

    def accuracy(self, run: RunRecord, eps: float) -> stats.Estimate:
        """Accuracy under this evidence's attack, as an `Estimate`: the FGSM sweep (on `test_examples`), or the
        report's worst case where AutoAttack ran (on the report's examples)."""
        if self.attack == "fgsm":
            return self._at(curve=run.sweep, eps=eps, n=run.test_examples)
        if self.attack == "bracket":
            return self._bracket(run, eps)
        if "autoattack" in run.attacks:
            return self._at(curve=run.worst_case, eps=eps, n=run.attack_examples or run.test_examples)
        raise Unjudged("not run", f"no AutoAttack on {run.model_label}")

    def _bracket(self, run, eps):
        """The run's robust accuracy at `eps` as [certified, attacked], from the bracket of the same setup (data set,
        network, precision, input bits, adversarial training, epochs: training here is deterministic)."""
        setup = (run.precision, run.input_bits, run.adv_train, run.epochs)
        found = [b for b in self.brackets if (b.precision, b.input_bits, b.adv_train, b.epochs) == setup
                 and eps_lib.index(b.eps, eps) is not None]
        if not found:
            raise Unjudged("not run", f"no certified bracket of {run.model_label} at "
                                      f"ε={eps_lib.label(eps, self.dataset)}")
        i, n = eps_lib.index(found[0].eps, eps), found[0].examples
        return stats.bracket(found[0].certified[i], found[0].attacked[i], n,
                             subset=n < presets.get(self.dataset).test_size)

    def _at(self, curve, eps, n):
        found = eps_lib.at(curve, eps)
        if found is None:
            raise Unjudged("not run", f"ε={eps_lib.label(eps, self.dataset)} not attacked")
        return stats.measured(found, n, subset=n < presets.get(self.dataset).test_size)

    def clean(self, run: RunRecord) -> stats.Estimate:
        """Clean accuracy on the whole test set (or the subset the run was evaluated on)."""
        return stats.measured(run.clean_accuracy, run.test_examples,
                              subset=run.test_examples < presets.get(self.dataset).test_size)

    def curve(self, run: RunRecord) -> list[stats.Estimate]:
        return [self.accuracy(run, e) for e in self.eps]

    def report_curve(self, run: RunRecord, attack: str) -> list[stats.Estimate]:
        """`attack`'s accuracy per report ε in the run's robustness report: on the examples AutoAttack attacked."""
        curve = run.attacks.get(attack)
        if curve is None:
            raise Unjudged("not run", f"no {ATTACKS.get(attack, attack)} in the robustness report of {run.model_label}")
        return [self._at(curve, e, run.attack_examples or run.test_examples) for e in self.eps]

    def over_eps(self, passed: Sequence[bool | None]) -> str:
        """A verdict from one outcome per report ε: True (passes), False, or None (within the 95% interval)."""
        undecided = [eps_lib.label(e, self.dataset) for e, p in zip(self.eps, passed) if p is None]
        decided = [(e, p) for e, p in zip(self.eps, passed) if p is not None]
        if not decided:
            return "inconclusive (every ε within the " + ("bracket)" if self.attack == "bracket" else "95% interval)")
        eps, passes = [e for e, _ in decided], [p for _, p in decided]
        scope = f" for ε = {', '.join(eps_lib.label(e, self.dataset) for e in eps)}" if undecided else ""
        if all(passes):
            verdict = "holds" + scope
        elif not any(passes):
            verdict = "does not hold" + scope
        else:
            first_fail = passes.index(False)
            if first_fail and not any(passes[first_fail:]):
                verdict = f"holds only for ε ≤ {eps_lib.label(eps[first_fail - 1], self.dataset)}"
            else:
                verdict = "holds only for ε = " + ", ".join(eps_lib.label(e, self.dataset)
                                                            for e, p in zip(eps, passes) if p)
        return verdict + (f"; inconclusive at ε = {', '.join(undecided)} (within the 95% interval)"
                          if undecided else "")

    def at_eps(self, values: Sequence[object]) -> str:
        return ", ".join(f"ε={eps_lib.label(e, self.dataset)}: {v}" for e, v in zip(self.eps, values))


def _holds(passed):
    if passed is None:
        return "inconclusive (within the 95% interval)"
    return "holds" if passed else "does not hold"


def _points(fraction):
    """`fraction` in percentage points, rounded to 1e-6: accuracies k/N do not subtract exactly in floating point."""
    return round(100 * fraction, 6)


def _difference(a, b):
    a = a if isinstance(a, stats.Estimate) else stats.Estimate.exact(a)
    return a - b


def beats(a: float | stats.Estimate, b: float | stats.Estimate, margin: float) -> bool | None:
    """a > b + margin: True, False, or None when the 95% interval of a − b holds values on both sides."""
    d = _difference(a, b)
    if _points(d.low) > _points(margin):
        return True
    if _points(d.high) <= _points(margin):
        return False
    return None


def reaches(a: float | stats.Estimate, b: float | stats.Estimate, margin: float = 0.0) -> bool | None:
    """a ≥ b + margin: True, False, or None when the 95% interval of a − b holds values on both sides."""
    d = _difference(a, b)
    if _points(d.low) >= _points(margin):
        return True
    if _points(d.high) < _points(margin):
        return False
    return None


# ---- the rules: judge(claim, *evidence) -> (verdict, evidence text); thresholds come from claim.thresholds ------

def _clean_cost(claim, ev):
    two, eight = ev.clean(ev.run("full", 2)), ev.clean(ev.run("full", 8))
    allowed = claim.thresholds["cifar_cost" if ev.dataset.startswith("cifar") else "mnist_cost"]
    return _holds(reaches(two, eight, -allowed)), (f"clean: 8-bit {pct(eight)}, 2-bit {pct(two)}; 2-bit minus "
                                                   f"8-bit {points(two - eight)} (allowed −{100 * allowed:.0f})")


def _within_clean(claim, ev):
    two = ev.run("full", 2)
    clean, attacked = ev.clean(two), ev.curve(two)
    return ev.over_eps([reaches(a, clean, -claim.thresholds["gap"]) for a in attacked]), (
        "full 2-bit, attacked minus clean: " + ev.at_eps(points(a - clean) for a in attacked))


def _wide_range(claim, ev):
    two, eight = ev.run("full", 2), ev.run("full", 8)
    pairs = list(zip(ev.curve(two), ev.curve(eight)))
    return ev.over_eps([reaches(a, b, claim.thresholds["margin"]) for a, b in pairs]), (
        "full precision, 2-bit minus 8-bit: " + ev.at_eps(points(a - b) for a, b in pairs))


def _two_bits_best(claim, ev):
    two, others = ev.run("full", 2), [ev.run("full", b) for b in (3, 4, 8) if b == 8 or ev.has("full", b)]
    best_other = [stats.maximum(*values) for values in zip(*(ev.curve(r) for r in others))]
    names = "/".join(f"{r.input_bits}" for r in others)
    return ev.over_eps([reaches(a, b, -claim.thresholds["margin"]) for a, b in zip(ev.curve(two), best_other)]), (
        f"full precision, 2-bit vs the best of {names}-bit: " + ev.at_eps(
            f"{pct(a)} vs {pct(b)}" for a, b in zip(ev.curve(two), best_other)))


def _adv_two_beats_adv_eight(claim, ev):
    two, eight = ev.run("full", 2, adv=True), ev.run("full", 8, adv=True)
    pairs = list(zip(ev.curve(two), ev.curve(eight)))
    return ev.over_eps([beats(a, b, claim.thresholds["margin"]) for a, b in pairs]), (
        "adv-trained full, 2-bit vs 8-bit: " + ev.at_eps(f"{pct(a)} vs {pct(b)}" for a, b in pairs))


def _bnn_small_eps(claim, ev):
    bnn, full = ev.run("bnn", 8), ev.run("full", 8)
    a, b = ev.accuracy(bnn, ev.eps[0]), ev.accuracy(full, ev.eps[0])
    return _holds(beats(a, b, claim.thresholds["margin"])), (
        f"8-bit, ε={eps_lib.label(ev.eps[0], ev.dataset)}: BNN {pct(a)} vs full {pct(b)}")


def _bnn_fall_faster(claim, ev):
    bnn, full = ev.run("bnn", 8), ev.run("full", 8)
    drop = lambda run: ev.accuracy(run, ev.eps[0]) - ev.accuracy(run, ev.eps[-1])  # noqa: E731
    span = f"ε={eps_lib.label(ev.eps[0], ev.dataset)} → {eps_lib.label(ev.eps[-1], ev.dataset)}"
    return _holds(beats(drop(bnn), drop(full), claim.thresholds["margin"])), (
        f"8-bit, accuracy lost from {span}: BNN {points(drop(bnn))} points, full {points(drop(full))}")


def _capacity(claim, large, small):
    advantage = lambda ev: [a - b for a, b in zip(ev.curve(ev.run("bnn", 8)), ev.curve(ev.run("full", 8)))]  # noqa
    wide, narrow = advantage(large), advantage(small)
    return large.over_eps([beats(w, n, claim.thresholds["margin"]) for w, n in zip(wide, narrow)]), (
        f"BNN minus full (8-bit), {large.arch} vs {small.arch}: " + large.at_eps(
            f"{points(w)} vs {points(n)}" for w, n in zip(wide, narrow)))


def _adv_helps_full_more(claim, ev):
    gain = lambda precision: [a - b for a, b in zip(ev.curve(ev.run(precision, 8, adv=True)),  # noqa: E731
                                                    ev.curve(ev.run(precision, 8)))]
    full, bnn = gain("full"), gain("bnn")
    return ev.over_eps([beats(f, b, claim.thresholds["margin"]) for f, b in zip(full, bnn)]), (
        "8-bit, gain from R-FGSM training, full vs BNN: " + ev.at_eps(f"{points(f)} vs {points(b)}"
                                                                     for f, b in zip(full, bnn)))


def _bnn_two_bits_like_adv(claim, ev):
    bnn, adv = ev.run("bnn", 2), ev.run("full", 8, adv=True)
    pairs = list(zip(ev.curve(bnn), ev.curve(adv)))
    return ev.over_eps([reaches(a, b, -claim.thresholds["margin"]) for a, b in pairs]), (
        "BNN 2-bit vs adv-trained full 8-bit: " + ev.at_eps(f"{pct(a)} vs {pct(b)}" for a, b in pairs))


def _bnn_two_bits_furthers(claim, ev):
    both = ev.curve(ev.run("bnn", 2))
    alone = [stats.maximum(a, b) for a, b in zip(ev.curve(ev.run("full", 2)), ev.curve(ev.run("bnn", 8)))]
    return ev.over_eps([beats(a, b, claim.thresholds["margin"]) for a, b in zip(both, alone)]), (
        "BNN 2-bit vs the better of full 2-bit and BNN 8-bit: " + ev.at_eps(
            f"{pct(a)} vs {pct(b)}" for a, b in zip(both, alone)))


def _multi_step_breaks_two_bits(claim, ev):
    """AutoAttack against FGSM on the same examples: paired, so the worst case is never above FGSM and the
    difference of the two is what the examples measure (no interval of its own beyond the subset's)."""
    two = ev.run("full", 2)
    pairs = list(zip(ev.curve(two), ev.report_curve(two, "fgsm")))
    n = two.attack_examples or two.test_examples
    # The examples FGSM leaves and AutoAttack breaks are a share of the same n examples: a proportion of its own.
    broken = [stats.measured(f.value - a.value, n, subset=not a.is_exact) for a, f in pairs]
    return ev.over_eps([beats(d, 0.0, claim.thresholds["margin"]) for d in broken]), (
        "full 2-bit, AutoAttack worst case vs FGSM on the same examples: " + ev.at_eps(
            f"{pct(a)} vs {pct(f)}" for a, f in pairs))


def _adv_training_helps_two_bits(claim, ev):
    adv, alone = ev.run("full", 2, adv=True), ev.run("full", 2)
    pairs = list(zip(ev.curve(adv), ev.curve(alone)))
    return ev.over_eps([beats(a, b, claim.thresholds["margin"]) for a, b in pairs]), (
        "full 2-bit, with vs without R-FGSM training: " + ev.at_eps(f"{pct(a)} vs {pct(b)}" for a, b in pairs))


def _xnor_loses_less(claim, ev):
    loss = lambda run: [ev.clean(run) - a for a in ev.curve(run)]  # noqa: E731
    xnor, full = loss(ev.run("xnor", 2)), loss(ev.run("full", 2))
    return ev.over_eps([beats(f, x, claim.thresholds["margin"]) for x, f in zip(xnor, full)]), (
        "2-bit, points lost to the attack, XNOR vs full: " + ev.at_eps(f"{points(x)} vs {points(f)}"
                                                                       for x, f in zip(xnor, full)))


def _activations_explain(claim, ev):
    """Fig. 6: the attack changes a smaller share of the BNN's first-layer activations than of full precision's."""
    shares = {}
    for precision in ("bnn", "full"):
        run = ev.run(precision, 8)
        analysis = ev.analyses.get(run.run_dir)
        if analysis is None:
            raise Unjudged("not run", f"no activation analysis of {model_label(precision, 8)}")
        share = {round(e, 6): c / a for e, c, a in zip(analysis["eps"], analysis["change_l1"], analysis["clean_l1"])}
        if any(round(e, 6) not in share for e in ev.eps):
            raise Unjudged("not run", f"the activation analysis of {model_label(precision, 8)} misses a report ε")
        shares[precision] = [share[round(e, 6)] for e in ev.eps]
    pairs = list(zip(shares["bnn"], shares["full"]))
    return ev.over_eps([b < f for b, f in pairs]), "8-bit, ‖a(x_adv) − a(x)‖₁ / ‖a(x)‖₁, BNN vs full: " + \
        ev.at_eps(f"{b:.2f} vs {f:.2f}" for b, f in pairs)


@dataclasses.dataclass(frozen=True)
class Claim:
    """A claim of the study and the rule that judges it.

    `words` quotes the study (arXiv:1902.03151, as extracted in `../shared/study/`; "[…]" marks math the
    extraction lost) from the text's `line`; `summary` says in a few words what it claims. `rule` is a template
    whose `{name}` fields are the `thresholds` (fractions), written in points; the judge reads the same
    `thresholds`, so the text and the test cannot drift apart.
    """

    words: str
    line: int
    summary: str
    rule: str
    judge: Callable
    setups: tuple  # (dataset, arch) pairs judged one by one; for a `joint` claim, the judge gets them all at once
    thresholds: dict = dataclasses.field(default_factory=dict)
    attacks: tuple = tuple(ATTACKS)
    joint: bool = False

    @property
    def rule_text(self) -> str:
        return self.rule.format(**{name: f"{100 * value:g}" for name, value in self.thresholds.items()})


MNIST, CIFAR = (("mnist", "fcn2"), ("mnist", "fcn1")), (("cifar10", "alexnet"),)
MARGIN = {"margin": 0.02}  # "beats", "more robust than": by more than 2 points
CLAIMS = (
    Claim("discretizing the input space (or allowed pixel levels from 256 values or […] to 4 values or […]) "
          "extensively improves the adversarial robustness of DLNs for a substantial range of perturbations", 9,
          "2-bit inputs improve robustness over 8-bit for a substantial range of ε",
          "full precision, 2-bit ≥ 8-bit + {margin} points, per report ε", _wide_range, MNIST + CIFAR,
          {"margin": 0.10}),
    Claim("[…] extensively improves the adversarial robustness of DLNs for a substantial range of perturbations for "
          "minimal loss in test accuracy", 9, "2-bit inputs cost minimal clean accuracy",
          "full precision, clean 8-bit − 2-bit ≤ {mnist_cost} points (MNIST), ≤ {cifar_cost} (CIFAR-10: the study's "
          "own 86.5 vs 82)", _clean_cost, MNIST + CIFAR, {"mnist_cost": 0.02, "cifar_cost": 0.05}, attacks=("clean",)),
    Claim("Across all datasets, we observe maximal adversarial resistance with input discretization that incurs an "
          "adversarial accuracy loss of just […] as compared to clean test accuracy", 9,
          "with 2-bit inputs, adversarial accuracy stays within ~1–2% of clean accuracy",
          "full precision 2-bit, clean − attacked ≤ {gap} points, per report ε", _within_clean, MNIST + CIFAR,
          {"gap": 0.02}),
    Claim("Across all datasets, we observe maximal adversarial resistance with input discretization", 9,
          "2-bit inputs give the maximal robustness among input precisions",
          "full precision, 2-bit ≥ the best of 3/4/8-bit − {margin} points, per report ε", _two_bits_best,
          MNIST + CIFAR, MARGIN),
    Claim("combining adversarial training with 2-bit input discretization makes a model substantially more robust "
          "(than adversarial training with full 8-bit input precision) for large perturbation ranges", 30,
          "adversarial training plus 2-bit inputs beats adversarial training plus 8-bit",
          "adv-trained full, 2-bit > 8-bit + {margin} points, per report ε", _adv_two_beats_adv_eight, MNIST + CIFAR,
          MARGIN),
    Claim("while BNNs are intrinsically robust to adversaries (for small […])", 93,
          "BNNs are more robust than full precision at small ε",
          "8-bit, BNN > full + {margin} points at the smallest report ε", _bnn_small_eps, MNIST + CIFAR, MARGIN),
    Claim("However, the BNN’s accuracy declines steeply as we move toward larger perturbation ranges", 91,
          "BNNs fall faster than full precision as ε grows",
          "8-bit, accuracy lost from the smallest to the largest report ε: BNN > full + {margin} points",
          _bnn_fall_faster, MNIST + CIFAR, MARGIN),
    Claim("only models with sufficient capacity can withstand against large […] values", 93,
          "capacity decides whether BNNs withstand larger ε (FCN1 vs FCN2)",
          "8-bit, (BNN − full) on FCN1 > (BNN − full) on FCN2 + {margin} points, per report ε", _capacity,
          (("mnist", "fcn1"), ("mnist", "fcn2")), MARGIN, joint=True),
    Claim("adversarial training substantially improves the robustness of a full-precision network (see CIFAR10 "
          "results in Fig. 5(a) , Table 3), while BNNs do not benefit much from them", 103,
          "adversarial training helps full precision more than BNNs",
          "8-bit, gain from R-FGSM training: full > BNN + {margin} points, per report ε", _adv_helps_full_more,
          MNIST + CIFAR, MARGIN),
    Claim("training a BNN with input discretization (say, 2-bit input) yields similar or better adversarial accuracy "
          "as that of an adversarially trained full-precision model", 34,
          "BNN with 2-bit inputs reaches an adversarially trained full-precision model, without adversarial training",
          "BNN 2-bit ≥ adv-trained full 8-bit − {margin} points, per report ε", _bnn_two_bits_like_adv,
          MNIST + CIFAR, {"margin": 0.05}),
    Claim("Combining input discretization with BNNs furthers the robustness even waiving the need for adversarial "
          "training for certain magnitude of perturbation values", 9,
          "combining 2-bit inputs with a BNN furthers robustness beyond either alone",
          "BNN 2-bit > max(full 2-bit, BNN 8-bit) + {margin} points, per report ε", _bnn_two_bits_furthers,
          MNIST + CIFAR, MARGIN),
    Claim("The accuracy loss between clean and adversary for […]-input XNOR […] is slightly better than the "
          "[…]-input full-precision model", 136,
          "XNOR-nets with 2-bit inputs lose less to the attack than full precision with 2-bit inputs",
          "2-bit, (clean − attacked) of XNOR < of full, per report ε", _xnor_loses_less,
          (("cifar100", "resnet20"), ("imagenet2012", "alexnet_imagenet")), {"margin": 0.0}),
    Claim("we find that the L1 norm of the BNN activations (in response to adversarial images perturbed with lower "
          "[…] values) approximately lie within the same range as that of the clean input case", 93,
          "Fig. 6: BNNs' first-layer activations change less under attack (L1 norm)",
          "8-bit, FGSM: ‖a(x_adv) − a(x)‖₁ / ‖a(x)‖₁ of the first hidden layer, BNN < full, per report ε",
          _activations_explain, (("mnist", "fcn1"), ("mnist", "fcn2")), attacks=("fgsm",)),
    Claim("Robustness against higher perturbations and multi-step attack requires adversarial training", 144,
          "standalone discretization remains vulnerable to stronger multi-step attack scenarios",
          "full precision 2-bit, no adversarial training: FGSM − AutoAttack worst case > {margin} points (the same "
          "examples), per report ε", _multi_step_breaks_two_bits, MNIST + CIFAR, MARGIN, attacks=("autoattack",)),
    Claim("However, in case of stronger multi-step attack scenarios and to gain robustness against larger "
          "perturbations (such as in CIFAR10, MNIST), the network needs to be adversarial trained with "
          "corresponding large […] values", 126,
          "adversarial training with discretization is an improved defense strategy",
          "full precision 2-bit, R-FGSM-trained > not adversarially trained + {margin} points, per report ε",
          _adv_training_helps_two_bits, MNIST + CIFAR, MARGIN),
)
INTERVAL_RULE = ("numbers on a subset of the test set carry their 95% interval (Wilson; differences by MOVER), and an "
                 "ε where the interval of the compared difference lies on both sides of the threshold is inconclusive")


def _combine(outcomes):
    """One verdict from {setup: (verdict, evidence)}: agreement, or "holds only for" the setups where it holds,
    each with its own limit ("fcn2 (ε ≤ 0.2)")."""
    judged = {s: v for s, (v, _) in outcomes.items() if v != "not run" and not v.startswith("inconclusive")}
    if not judged:
        return "inconclusive" if any(v.startswith("inconclusive") for v, _ in outcomes.values()) else "not run"
    scope = "" if len(judged) == len(outcomes) else f" (judged on {', '.join(judged)} only)"
    verdicts = set(judged.values())
    if len(verdicts) == 1:
        return verdicts.pop() + scope
    holding = [s if v == "holds" else f"{s} ({v.removeprefix('holds only for ')})"
               for s, v in judged.items() if v != "does not hold"]
    return "holds only for " + ", ".join(holding) + scope  # two verdicts differ, so one of them holds somewhere


def _gated(outcome, group):
    """`outcome` (verdict, evidence), or "inconclusive" with the gate's reasons and the unjudged evidence."""
    reasons = [r for ev in group for r in ev.gated]
    if not reasons:
        return outcome
    return "inconclusive", "; ".join(reasons) + "; not judged: " + outcome[1]


def ledger(records: list[RunRecord], study: list, analyses: dict | None = None, brackets: Sequence = ()) -> list[tuple]:
    """[(claim, {attack name: (verdict, evidence)})] for every claim, under each attack that judges it; `brackets`
    are `tfdisc.reporting.certified.CertificationRecord`s."""
    rows = []
    for claim in CLAIMS:
        judged = {}
        for attack in claim.attacks:
            evidence = [Evidence(records, study, d, a, "fgsm" if attack == "clean" else attack, analyses, brackets)
                        for d, a in claim.setups]
            groups = [("/".join(ev.arch for ev in evidence), evidence)] if claim.joint else [
                (ev.arch, [ev]) for ev in evidence]
            outcomes = {}
            for name, group in groups:
                try:
                    outcomes[name] = _gated(claim.judge(claim, *group), group)
                except Unjudged as unjudged:
                    outcomes[name] = (unjudged.verdict, unjudged.reason)
            detail = "; ".join(f"{name}: {verdict}, {text}" if len(outcomes) > 1 else text
                               for name, (verdict, text) in outcomes.items())
            verdict = _combine(outcomes)
            if attack == "bracket" and verdict.startswith("holds"):  # "holds" under a bracket needs its lower bounds
                verdict = "holds (certified)" + verdict.removeprefix("holds")
            judged["clean" if attack == "clean" else ATTACKS[attack]] = (verdict, detail)
        rows.append((claim, judged))
    return rows
