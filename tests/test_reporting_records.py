"""tfdisc.reporting.records: results.json as a typed, schema-versioned record, validated on read."""

import json

import pytest

from tfdisc.reporting import records
from tfdisc.reporting.records import RecordError, RunRecord

MINIMAL = {"dataset": "mnist", "arch": "fcn2", "precision": "bnn", "input_bits": 2, "adv_train": False,
           "clean_accuracy": 0.97, "test_examples": 10000, "epochs": 10,
           "sweep": {"attack": "fgsm", "gradient": "identity", "eps": [0.0, 0.1], "accuracy": [0.97, 0.9]}}


def test_a_record_round_trips_and_carries_its_schema_version(tmp_path):
    record = RunRecord.from_json(MINIMAL)
    record.write(tmp_path / "results.json")
    written = json.loads((tmp_path / "results.json").read_text())
    assert written["schema_version"] == records.SCHEMA_VERSION and "run_dir" not in written
    assert RunRecord.from_json(written) == record


def test_a_record_of_schema_1_reads_with_the_defaults_its_runs_had(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text(json.dumps(MINIMAL))
    (tmp_path / "run" / "config.json").write_text(json.dumps({"flags": {"train_examples": 2000}}))
    (tmp_path / "run" / "budget.json").write_text(json.dumps({"budget": "reduced: 2000 images", "command": "c"}))
    record = records.read_run(tmp_path / "run")
    assert (record.recipe, record.subset, record.input_mode, record.train_examples) == ("constant", "random",
                                                                                         "floor", 2000)
    assert record.budget == "reduced: 2000 images" and record.run_dir == str(tmp_path / "run")
    assert record.label == "bnn" and record.model_label == "bnn 2-bit" and record.fgsm_at(0.1) == 0.9


@pytest.mark.parametrize("content, message", [
    ('{"dataset": "mnist"', "is not valid JSON"),
    ("[1, 2]", "holds list, not a run's results"),
    (json.dumps({**MINIMAL, "schema_version": 99}), "newer than this tfdisc reads"),
    (json.dumps({k: v for k, v in MINIMAL.items() if k != "sweep"}), "lacks the field"),
    (json.dumps({**MINIMAL, "clean_accuracy": 97}), "clean_accuracy must be a number in"),
    (json.dumps({**MINIMAL, "sweep": {"eps": [0.1], "accuracy": []}}), "equally long"),
])
def test_a_damaged_record_is_named_with_the_field(tmp_path, content, message):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "results.json").write_text(content)
    with pytest.raises(RecordError, match=message):
        records.load_runs(tmp_path)


def test_evaluation_reports_are_checked_for_the_fields_the_report_reads(tmp_path):
    (tmp_path / "evaluations").mkdir()
    (tmp_path / "evaluations" / "x.json").write_text(json.dumps({"attacks": {}}))
    with pytest.raises(RecordError, match="lacks the field"):
        records.load_evaluations(tmp_path)
