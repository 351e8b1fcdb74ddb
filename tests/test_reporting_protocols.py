"""tfdisc.reporting.protocols: a run evaluated under every hypothesis that applies to it, recorded and read back."""

import json

import pytest

from helpers import require_data
from tfdisc import experiment, runs
from tfdisc.reporting import protocols
from tfdisc.reporting.records import RecordError


@pytest.mark.slow
def test_a_run_is_evaluated_under_every_hypothesis_of_its_input_mode(tmp_path):
    config = runs.RunConfig(dataset="mnist", arch="fcn2", input_bits=2, epochs=1, train_examples=500,
                            test_examples=100, batch_size=100, jit_compile=False, sweep_every=0,
                            data_dir=str(require_data().parent), output_dir=str(tmp_path / "runs"), run_name="m")
    experiment.run(config)
    written = protocols.evaluate_run(str(tmp_path / "runs" / "m"), str(require_data().parent),
                                     str(tmp_path / "protocols"))
    assert [r.hypothesis for r in written] == ["standard", "normalized_eps", "perturb_discretized",
                                               "gradient_without_discretization"]  # round needs a round run
    assert all(r.examples == 10000 for r in written)  # every test image, whatever the run was evaluated on
    loaded = protocols.load_protocol_records(tmp_path)
    assert {r.hypothesis for r in loaded} == {r.hypothesis for r in written}


def test_a_file_that_is_no_protocol_record_is_named(tmp_path):
    (tmp_path / "protocols").mkdir()
    (tmp_path / "protocols" / "x.json").write_text(json.dumps({"hypothesis": "standard"}))
    with pytest.raises(RecordError, match="is not a protocols record of scripts/study_protocols.py"):
        protocols.load_protocol_records(tmp_path)
