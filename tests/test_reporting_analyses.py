"""tfdisc.reporting.analyses: Fig. 6's analysis, read from its cache or computed and cached."""

import json

import pytest

from tfdisc.reporting import analyses
from tfdisc.reporting.records import RecordError, RunRecord


def _fig6_record(run_dir):
    return RunRecord(dataset="mnist", arch="fcn2", precision="full", input_bits=8, adv_train=False,
                     clean_accuracy=0.98, test_examples=10000, epochs=10, sweep={"eps": [0.0], "accuracy": [0.98]},
                     run_dir=str(run_dir))


def test_a_cached_analysis_is_read_and_a_run_without_its_model_is_left_out(tmp_path, caplog):
    cached, missing = tmp_path / "cached", tmp_path / "missing"
    cached.mkdir(), missing.mkdir()
    found = {"eps": [0.1], "change_l1": [1.0], "clean_l1": [2.0], "units": 600}
    (cached / "activation_l1.json").write_text(json.dumps(found))
    result = analyses.activation_analyses([_fig6_record(cached), _fig6_record(missing)], data_dir=None)
    assert result == {str(cached): found}
    assert "no activation analysis of" in caplog.text


def test_a_damaged_cache_is_named(tmp_path):
    (tmp_path / "activation_l1.json").write_text(json.dumps({"eps": [0.1]}))
    with pytest.raises(RecordError, match="is not an activation analysis"):
        analyses.activation_analyses([_fig6_record(tmp_path)], data_dir=None)
