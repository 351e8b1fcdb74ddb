"""tfdisc.evaluation.masking: each sanity check on hand-made reports, and what its text says it tested."""

from tfdisc.evaluation import masking


def _report(**changes):
    report = {"eps": [0.0, 0.1, 0.2], "clean_accuracy": 0.9, "examples": 100,
              "attacks": {"fgsm": {"accuracy": [0.9, 0.5, 0.3]}, "pgd": {"accuracy": [0.9, 0.4, 0.2]}},
              "worst_case": {"accuracy": [0.9, 0.4, 0.2]}, "masking_examples": {"count": [0, 0, 0]},
              "zero_gradient_examples": 0, "saturated_loss_examples": 0}
    report.update(changes)
    return report


def _checks(report, **options):
    return {c["check"]: c for c in masking.run_checks(report, large_eps=options.get("large_eps"), chance=0.1,
                                                      tolerance=0.01)}


def test_per_example_masking_check_counts_what_the_aggregate_misses():
    """Aggregates agree (PGD beats Square overall) while Square breaks 7 examples that PGD leaves alone."""
    result = {"eps": [0.0, 0.1], "clean_accuracy": 0.9, "examples": 100,
              "attacks": {"pgd": {"accuracy": [0.9, 0.4]}, "square": {"accuracy": [0.9, 0.6]}},
              "worst_case": {"accuracy": [0.9, 0.33]}, "masking_examples": {"count": [0, 7]},
              "zero_gradient_examples": 0, "saturated_loss_examples": 0}
    found = {c["check"]: c for c in masking.run_checks(result, large_eps=None, chance=0.1, tolerance=0.01)}
    assert found["whitebox_le_blackbox"]["passed"]
    assert not found["gradient_survivors_unbroken"]["passed"]
    assert "ε=0.1: 7 (7.0%)" in found["gradient_survivors_unbroken"]["detail"]


def test_a_rise_within_the_tolerance_passes_and_is_named_not_hidden():
    """PGD rising 0.5 points with ε (random restarts) passes, and the text says so instead of claiming no rise."""
    found = _checks(_report(attacks={"fgsm": {"accuracy": [0.9, 0.5, 0.3]},
                                     "pgd": {"accuracy": [0.95, 0.939, 0.944]}}))["monotone_in_eps"]
    assert found["passed"]
    assert "No curve rises by more than 1.0 points" in found["detail"]
    assert "pgd +0.5 points from ε=0.1 to 0.2" in found["detail"]


def test_a_rise_beyond_the_tolerance_fails():
    found = _checks(_report(attacks={"pgd": {"accuracy": [0.9, 0.4, 0.45]}}))["monotone_in_eps"]
    assert not found["passed"] and "pgd +5.0 points from ε=0.1 to 0.2" in found["detail"]


def test_zero_gradients_count_as_masking_only_where_the_margin_has_none_too():
    saturated = _checks(_report(zero_gradient_examples=30, saturated_loss_examples=30))["nonzero_gradients"]
    masked = _checks(_report(zero_gradient_examples=30, saturated_loss_examples=10))["nonzero_gradients"]
    assert saturated["passed"] and "not masking" in saturated["detail"]
    assert not masked["passed"] and masked["detail"].startswith("20.0% of examples")


def test_checks_that_lack_their_inputs_are_left_out():
    found = _checks(_report(eps=[0.1, 0.2], attacks={"fgsm": {"accuracy": [0.5, 0.3]}},
                            worst_case={"accuracy": [0.5, 0.3]}))
    assert set(found) == {"monotone_in_eps", "nonzero_gradients"}


def test_near_chance_at_large_eps_fails_for_implausible_robustness():
    report = _report(eps=[0.0, 0.5], attacks={"fgsm": {"accuracy": [0.9, 0.8]}}, worst_case={"accuracy": [0.9, 0.8]})
    found = _checks(report, large_eps=0.5)["near_chance_at_large_eps"]
    assert not found["passed"] and "implausible" in found["detail"]


def test_a_rise_of_exactly_the_tolerance_passes_despite_floating_point():
    found = _checks(_report(attacks={"fgsm": {"accuracy": [0.95, 0.93, 0.94]}}))["monotone_in_eps"]
    assert found["passed"] and "fgsm +1.0 points" in found["detail"]
