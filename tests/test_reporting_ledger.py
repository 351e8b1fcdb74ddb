"""tfdisc.reporting.ledger: the claims' rules at their thresholds, and the verdicts they combine into."""

from tfdisc.reporting import ledger
from tfdisc.reporting.records import RunRecord


def _run(precision, bits, fgsm, adv=False):
    return RunRecord(dataset="mnist", arch="fcn2", precision=precision, input_bits=bits, adv_train=adv,
                     clean_accuracy=0.98, test_examples=10000, epochs=10,
                     sweep={"eps": [0.0, 0.1, 0.2, 0.3], "accuracy": [0.98, *fgsm]})


def _fgsm_verdicts(records):
    return {claim.words: judged["FGSM"][0] for claim, judged in ledger.ledger(records, []) if "FGSM" in judged}


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
