"""tfdisc.reporting.render: REPORT.md and README's table as pure functions of the records."""

from pathlib import Path

from tfdisc.reporting import render
from tfdisc.reporting.records import RunRecord
from tfdisc.reporting.study import StudyCell


def _record(precision, bits, fgsm, autoattack=None, examples=10000, epochs=10):
    eps = [0.0, 0.1, 0.2, 0.3]
    record = RunRecord(dataset="mnist", arch="fcn2", precision=precision, input_bits=bits, adv_train=False,
                       clean_accuracy=fgsm[0], test_examples=10000, epochs=epochs,
                       sweep={"eps": eps, "accuracy": fgsm}, budget="full", command="python x --a=1")
    if autoattack:
        curve = {"eps": eps[1:], "accuracy": autoattack}
        record.attacks = {"fgsm": {"eps": eps[1:], "accuracy": fgsm[1:]}, "autoattack": curve}
        record.worst_case = curve
        record.robustness = {"examples": examples, "autoattack": {
            "version": "standard", "stages": ["apgd-ce", "apgd-t", "square"], "apgd_iterations": 100,
            "square_queries": 5000}}
    return record


def test_a_subset_carries_its_interval_and_the_whole_test_set_does_not():
    table = render.results_table([_record("full", 2, [0.98, 0.93, 0.8, 0.02], [0.9, 0.7, 0.0], examples=80)], "mnist")
    row = table.splitlines()[2]
    assert row.startswith("| full | 2-bit | 98.0 | 93.0 | 80.0 | 2.0 | 90.0 [81.5, 94.8] |")


def test_the_report_is_the_same_text_for_the_same_records():
    records = [_record("full", 8, [0.98, 0.3, 0.05, 0.01]), _record("bnn", 8, [0.97, 0.2, 0.03, 0.01])]
    study = [StudyCell(5, "mnist", "fcn2", "full", 8, False, 10, "adv1", 0.28, "test")]
    options = render.ReportOptions(root=Path("/repo"))
    first = render.report(records, study, [], {}, options)
    assert first == render.report(records, study, [], {}, options)
    assert "| MNIST fcn2 full 8-bit | 28.0 / 30.0 (+2.0) | 10 epochs, as the study |" in first


def test_commands_are_shown_from_the_repository():
    assert render.portable("/repo/.venv/bin/python /repo/scripts/x.py --data_dir=/shared/data '--budget=a b'",
                           Path("/repo")) == "python .venv/bin/python scripts/x.py --data_dir=../shared/data " \
                                             "--budget='a b'"


def test_the_readme_table_replaces_only_the_text_between_its_markers():
    readme = f"# t\n\n{render.README_BEGIN}\nold\n{render.README_END}\n\nrest\n"
    updated = render.with_glance(readme, [_record("full", 8, [0.98, 0.3, 0.05, 0.01])])
    assert updated.startswith("# t\n\n") and updated.endswith(f"{render.README_END}\n\nrest\n") and "old" not in updated
    assert render.with_glance("# no markers\n", []) is None


def test_a_protocol_that_covers_fewer_rows_is_shown_but_not_judged():
    from tfdisc.reporting.protocols import ProtocolRecord

    eps = [0.0, 0.1, 0.2, 0.3]

    def record(hypothesis, bits, accuracy):
        return ProtocolRecord(run="r", dataset="mnist", arch="fcn2", precision="full", input_bits=bits,
                              adv_train=False, epochs=10, hypothesis=hypothesis, eps=eps, accuracy=accuracy,
                              examples=10000)

    cells = [StudyCell(5, "mnist", "fcn2", "full", bits, False, 10, "adv1", value, "test")
             for bits, value in ((2, 0.50), (8, 0.30))]
    records = [record("standard", 2, [0.98, 0.9, 0.6, 0.1]), record("standard", 8, [0.98, 0.3, 0.1, 0.0]),
               record("round_quantizer", 2, [0.98, 0.5, 0.3, 0.0])]  # its 8-bit row is the standard one
    lines = render._protocol_lines(5, "mnist", cells, records)
    assert any(line.startswith("| standard:") and "| 0 of 2 |" in line for line in lines)
    assert any(line.startswith("| round_quantizer:") and "| 2 of 2 |" in line for line in lines)
    assert lines[-2].endswith("round_quantizer explains every fitted cell.")
    records = records[:2] + [record("perturb_discretized", 2, [0.98, 0.5, 0.3, 0.0])]  # no 8-bit row under it
    lines = render._protocol_lines(5, "mnist", cells, records)
    assert any(", not every row |" in line for line in lines) and "perturb_discretized explains" not in lines[-2]
