"""tfdisc.reporting.certified: a run's bracket recorded, read back and shown."""

import dataclasses
import json

import pytest

from helpers import require_data, tiny_mnist_run
from tfdisc.reporting import certified, render
from tfdisc.reporting.records import RecordError


@pytest.mark.slow
def test_a_run_is_bracketed_recorded_and_shown(tmp_path):
    run_dir = tiny_mnist_run(tmp_path, 1000)
    record = certified.certify_run(str(run_dir), str(require_data().parent), [0.02, 0.05], 40,
                                   str(tmp_path / "certified"), bound="crown", version="fast", time_limit=0.5,
                                   split="activations")
    assert record.examples == 40 and all(c <= a for c, a in zip(record.certified, record.attacked))
    assert record.time_limit == 0.5 and record.split == "activations"
    (loaded,) = certified.load_certification_records(tmp_path)
    assert loaded == record
    text = render.certified_section([loaded], render.ReportOptions())
    assert "| MNIST fcn2 full 2-bit | `m` | 0.02 | 40 | " in text
    assert "| crown, branch and bound (activations) ≤ 0.5 s an image |" in text


def test_a_record_older_than_the_split_choice_reads_as_pixel_splitting(tmp_path):
    from tfdisc.reporting.certified import CertificationRecord

    fields = {f.name: 0 for f in dataclasses.fields(CertificationRecord) if f.name != "split"}
    (tmp_path / "certified").mkdir()
    (tmp_path / "certified" / "x.json").write_text(json.dumps(fields))
    (loaded,) = certified.load_certification_records(tmp_path)
    assert loaded.split == "pixels"


def test_a_file_that_is_no_certification_record_is_named(tmp_path):
    (tmp_path / "certified").mkdir()
    (tmp_path / "certified" / "x.json").write_text(json.dumps({"run": "x"}))
    with pytest.raises(RecordError, match="is not a certified record of scripts/certify.py"):
        certified.load_certification_records(tmp_path)
