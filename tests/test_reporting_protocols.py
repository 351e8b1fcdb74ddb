"""tfdisc.reporting.protocols: a run evaluated under every hypothesis that applies to it, recorded and read back."""

import json

import pytest

from helpers import require_data, tiny_mnist_run
from tfdisc.reporting import protocols
from tfdisc.reporting.records import RecordError


@pytest.mark.slow
def test_a_run_is_evaluated_under_every_hypothesis_of_its_input_mode(tmp_path):
    written = protocols.evaluate_run(str(tiny_mnist_run(tmp_path, 500)), str(require_data().parent),
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
