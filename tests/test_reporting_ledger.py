"""tfdisc.reporting.ledger: the claims' rules at their thresholds, and the verdicts they combine into."""

from pathlib import Path

import pytest

from tfdisc.reporting import ledger, stats
from tfdisc.reporting.records import RunRecord


def _run(precision, bits, fgsm, adv=False):
    return RunRecord(dataset="mnist", arch="fcn2", precision=precision, input_bits=bits, adv_train=adv,
                     clean_accuracy=0.98, test_examples=10000, epochs=10,
                     sweep={"eps": [0.0, 0.1, 0.2, 0.3], "accuracy": [0.98, *fgsm]})


def _fgsm_verdicts(records):
    return {claim.summary: judged["FGSM"][0] for claim, judged in ledger.ledger(records, []) if "FGSM" in judged}


def test_thresholds_hold_exactly_although_accuracies_do_not_subtract_exactly():
    # 0.3 - 0.2 is 0.0999… and 0.30 - 0.28 is 0.0200…02 in floating point: a rule must see 10 and 2 points.
    verdicts = _fgsm_verdicts([_run("full", 8, [0.2, 0.2, 0.2]), _run("full", 2, [0.3, 0.28, 0.28]),
                               _run("full", 2, [0.33, 0.30, 0.30], adv=True)])
    assert verdicts["2-bit inputs improve robustness over 8-bit for a substantial range of ε"] == \
        "holds only for ε ≤ 0.1 (judged on fcn2 only)"  # exactly 10 points at ε=0.1, then 8
    assert verdicts["adversarial training with discretization is an improved defense strategy"] == \
        "holds only for ε ≤ 0.1 (judged on fcn2 only)"  # 3 points at ε=0.1; exactly 2 points is no win


def test_setups_that_disagree_keep_each_ones_limit():
    outcomes = {"fcn1": ("not run", "no run"), "fcn2": ("holds only for ε ≤ 0.2", ""), "alexnet": ("holds", ""),
                "resnet20": ("does not hold", "")}
    assert ledger._combine(outcomes) == \
        "holds only for fcn2 (ε ≤ 0.2), alexnet (judged on fcn2, alexnet, resnet20 only)"
    assert ledger._combine({"fcn2": ("does not hold", ""), "alexnet": ("holds only for ε = 0.3", "")}) == \
        "holds only for alexnet (ε = 0.3)"
    assert ledger._combine({"fcn1": ("inconclusive", "reduced"), "fcn2": ("does not hold", "")}) == \
        "does not hold (judged on fcn2 only)"


def test_a_rule_text_is_rendered_from_the_thresholds_its_judge_uses():
    claim = ledger.CLAIMS[0]
    assert claim.thresholds == {"margin": 0.10} and "2-bit ≥ 8-bit + 10 points" in claim.rule_text
    for claim in ledger.CLAIMS:
        assert "{" not in claim.rule_text, claim.rule  # every field filled


STUDY_TEXT = Path(__file__).resolve().parents[2] / "shared" / "study" / "000_c08ec12a1d4144e7.txt"


@pytest.mark.skipif(not STUDY_TEXT.exists(), reason="the study's text is not beside the repository")
def test_every_claim_quotes_the_study_at_its_line():
    lines = STUDY_TEXT.read_text().split("\n")
    for claim in ledger.CLAIMS:
        for fragment in filter(None, (part.strip(" ()") for part in claim.words.split("[…]"))):
            assert fragment in lines[claim.line - 1], (claim.summary, fragment)


def _subset_run(precision, bits, worst, examples, adv=False):
    run = _run(precision, bits, [0.9, 0.8, 0.1], adv)
    run.attacks = {"fgsm": {"eps": [0.1, 0.2, 0.3], "accuracy": [0.9, 0.8, 0.1]},
                   "autoattack": {"eps": [0.1, 0.2, 0.3], "accuracy": worst}}
    run.worst_case = {"eps": [0.1, 0.2, 0.3], "accuracy": worst}
    run.robustness = {"examples": examples}
    return run


def test_a_difference_inside_the_subsets_interval_is_inconclusive():
    """Full 2-bit under AutoAttack 6 points above full 8-bit: on 50 images that is within the interval, on 5000
    it is not."""
    def verdict(examples):
        records = [_subset_run("full", 2, [0.56, 0.30, 0.02], examples), _subset_run("full", 8, [0.50, 0.30, 0.02],
                                                                                   examples)]
        return next(judged["AutoAttack"][0] for claim, judged in ledger.ledger(records, [])
                    if claim.summary.startswith("2-bit inputs give the maximal"))
    assert verdict(5000) == "holds (judged on fcn2 only)"
    assert "inconclusive" not in verdict(5000)
    few = ledger.reaches(stats.measured(0.56, 50, True), stats.measured(0.50, 50, True), 0.02)
    assert few is None and ledger.reaches(stats.measured(0.56, 5000, True), stats.measured(0.50, 5000, True), 0.02)


def _bracket(precision, bits, certified, attacked, adv=False, examples=10000):
    from tfdisc.reporting.certified import CertificationRecord

    return CertificationRecord(run=f"{precision}_{bits}", dataset="mnist", arch="fcn2", precision=precision,
                               input_bits=bits, adv_train=adv, epochs=10, eps=[0.05, 0.1], examples=examples,
                               certified=[certified, certified], attacked=[attacked, attacked],
                               gap=[attacked - certified] * 2, methods=[{}, {}], attacked_examples=[0, 0],
                               version="standard+discrete", bound="crown", seconds=1.0, time_limit=0.0)


def _bracket_verdict(brackets):
    records = [_run("bnn", 2, [0.9, 0.8, 0.1]), _run("full", 8, [0.9, 0.8, 0.1], adv=True)]
    return next(judged["the certified bracket"][0] for claim, judged in ledger.ledger(records, [], None, brackets)
                if claim.summary.startswith("BNN with 2-bit inputs reaches"))


def test_a_verdict_the_certified_lower_bound_decides_reads_holds_certified():
    """BNN 2-bit certified at 90% against an adversarially trained full 8-bit that attacks leave at 80%: whatever
    the true robust accuracies in the two brackets, the first is within 5 points of the second."""
    assert _bracket_verdict([_bracket("bnn", 2, 0.90, 0.95), _bracket("full", 8, 0.5, 0.8, adv=True)]) == \
        "holds (certified) (judged on fcn2 only)"
    # The same upper bounds with a wide bracket on the full model: the truth could lie on either side.
    assert _bracket_verdict([_bracket("bnn", 2, 0.90, 0.95), _bracket("full", 8, 0.5, 0.99, adv=True)]) == \
        "inconclusive"
    # On 500 images the 95% ends widen the bracket: 90% certified no longer rules out 5 points below 93% attacked.
    assert _bracket_verdict([_bracket("bnn", 2, 0.90, 0.95, examples=500),
                             _bracket("full", 8, 0.5, 0.93, adv=True, examples=500)]) == "inconclusive"
    assert _bracket_verdict([_bracket("bnn", 2, 0.90, 0.95)]) == "not run"  # one model has no bracket

