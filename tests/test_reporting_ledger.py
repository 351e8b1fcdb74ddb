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
