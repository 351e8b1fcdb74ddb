"""tfdisc.reporting.certified: a run's bracket recorded, read back and shown."""

import dataclasses
import json
import subprocess
import sys

import pytest

from helpers import ROOT, require_data, tiny_mnist_run
from tfdisc.reporting import certified, render
from tfdisc.reporting.records import RecordError


@pytest.mark.slow
def test_a_run_is_bracketed_recorded_and_shown_by_the_script(tmp_path):
    run_dir = tiny_mnist_run(tmp_path, 1000)
    command = [sys.executable, str(ROOT / "scripts" / "certify.py"), f"--runs={run_dir.parent}",
               f"--data_dir={require_data().parent}", f"--output_dir={tmp_path}", "--eps=0.02,0.05",
               "--test_examples=40", "--bound=crown", "--version=fast", "--time_limit=0.5", "--max_domains=64",
               "--split=activations", "--enumeration_limit=256"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    (record,) = certified.load_certification_records(tmp_path)
    assert record.examples == 40 and all(c <= a for c, a in zip(record.certified, record.attacked))
    assert (record.time_limit, record.max_domains, record.split) == (0.5, 64, "activations")
    assert record.enumeration_limit == 256
    text = render.certified_section([record], render.ReportOptions())
    assert "| MNIST fcn2 full 2-bit | `m` | 0.02 | 40 | " in text
    assert ("| crown, branch and bound (activations) ≤ 0.5 s or 64 parts an image, enumeration of boxes ≤ 2^8 "
            "inputs |") in text
    path = tmp_path / "certified" / "m.json"
    path.write_text("{\"run\": \"m\"}")  # not a record: refused before the work, and left as it was
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 1 and "m.json is not a certified record of scripts/certify.py" in result.stderr
    assert path.read_text() == "{\"run\": \"m\"}" and "Traceback" not in result.stderr
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere.json")  # a link: refused, never followed or replaced
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 1 and "m.json is a symbolic link" in result.stderr and path.is_symlink()


def _record_fields(**changes):
    fields = {f.name: 0 for f in dataclasses.fields(certified.CertificationRecord)}
    return {**fields, "bound": "crown", "split": "pixels", "eps": [0.1], "units": None, "undecided": None,
            "enumeration_limit": 2**16, **changes}


def _bracket(eps, certified_shares, seconds=10.0, undecided=None, **settings):
    n = len(eps)
    return certified.CertificationRecord(**_record_fields(
        run="m", dataset="mnist", arch="fcn2", precision="full", input_bits=2, examples=500, eps=eps,
        certified=certified_shares, attacked=[0.9] * n, gap=[0.9 - c for c in certified_shares],
        methods=[{"crown": 1}] * n, attacked_examples=[5] * n, version="fast", seconds=seconds, units=[600],
        undecided=undecided, **settings))


def test_a_second_bracket_with_the_same_settings_adds_its_eps_and_replaces_the_eps_it_measured_again():
    earlier = _bracket([0.05, 0.1], [0.8, 0.3], seconds=100.0, undecided=[[10.0], [20.0]])
    merged = certified.with_earlier_eps(earlier, _bracket([0.01, 0.1], [0.95, 0.25], seconds=7.0))
    assert merged.eps == [0.01, 0.05, 0.1] and merged.certified == [0.95, 0.8, 0.25]
    assert merged.gap == pytest.approx([0.9 - 0.95, 0.1, 0.65]) and merged.undecided == [None, [10.0], None]
    assert merged.seconds == 107.0


@pytest.mark.parametrize("setting", [{"examples": 100}, {"max_domains": 64}, {"bound": "ibp"}, {"version": "standard"},
                                     {"enumeration_limit": 2**20}])
def test_a_bracket_with_other_settings_replaces_the_record(setting):
    later = dataclasses.replace(_bracket([0.01], [0.95]), **setting)
    assert certified.with_earlier_eps(_bracket([0.05, 0.1], [0.8, 0.3]), later) == later


def test_a_record_older_than_the_split_choice_and_the_budgets_reads_as_pixels_without_parts_and_2_16_inputs(tmp_path):
    fields = _record_fields(split="activations")
    del fields["split"], fields["max_domains"], fields["units"], fields["undecided"], fields["enumeration_limit"]
    (tmp_path / "certified").mkdir()
    (tmp_path / "certified" / "x.json").write_text(json.dumps(fields))
    (loaded,) = certified.load_certification_records(tmp_path)
    assert loaded.split == "pixels" and loaded.max_domains == 0 and loaded.undecided is None
    assert loaded.enumeration_limit == 2**16  # what certify enumerated before the limit was a setting


@pytest.mark.parametrize("units, undecided", [([600], [[700.0]]), ([600, 600], [[10.0]]), ([600], [[1.0], [2.0]]),
                                              (None, [[1.0]]), ([600], [["many"]]), ([600], [[True]]),
                                              (["600"], None), ([[600]], [[1.0]])])
def test_undecided_units_that_do_not_fit_the_layers_or_the_eps_are_named(tmp_path, units, undecided):
    (tmp_path / "certified").mkdir()
    (tmp_path / "certified" / "x.json").write_text(json.dumps(_record_fields(units=units, undecided=undecided)))
    with pytest.raises(RecordError, match="x.json: undecided must be None or, per ε, None or one count per activation"):
        certified.load_certification_records(tmp_path)


@pytest.mark.parametrize("field, value", [("bound", "milp"), ("split", "neurons")])
def test_a_record_with_an_unknown_bound_or_split_is_named(tmp_path, field, value):
    (tmp_path / "certified").mkdir()
    (tmp_path / "certified" / "x.json").write_text(json.dumps(_record_fields(**{field: value})))
    with pytest.raises(RecordError, match=f"x.json: Unknown {field} '{value}'.*Move it away or remake it"):
        certified.load_certification_records(tmp_path)


@pytest.mark.parametrize("time_limit, max_domains, enumeration_limit, shown", [
    (5.0, 0, 2**16, "crown, branch and bound (pixels) ≤ 5 s an image"),
    (0.0, 500, 2**16, "crown, branch and bound (pixels) ≤ 500 parts an image"),
    (5.0, 500, 2**16, "crown, branch and bound (pixels) ≤ 5 s or 500 parts an image"),
    (0.0, 0, 2**20, "| crown, enumeration of boxes ≤ 2^20 inputs |"),
    (0.0, 64, 1000, "| crown, branch and bound (pixels) ≤ 64 parts an image, enumeration of boxes ≤ 1000 inputs |"),
    (0.0, 0, 2**16, "| crown |")])
def test_the_bound_column_states_the_budgets_of_branch_and_bound_and_enumeration(time_limit, max_domains,
                                                                                 enumeration_limit, shown):
    fields = _record_fields(time_limit=time_limit, max_domains=max_domains, enumeration_limit=enumeration_limit,
                            run="m", dataset="mnist", arch="fcn2",
                            precision="full", input_bits=2, eps=[0.1], examples=10, certified=[0.5],
                            attacked=[0.6], gap=[0.1], methods=[{"crown": 5}], attacked_examples=[5],
                            version="fast")
    text = render.certified_section([certified.CertificationRecord(**fields)], render.ReportOptions())
    assert shown in text
    if not time_limit and not max_domains:
        assert "branch and bound (pixels)" not in text


def test_a_file_that_is_no_certification_record_is_named(tmp_path):
    (tmp_path / "certified").mkdir()
    (tmp_path / "certified" / "x.json").write_text(json.dumps({"run": "x"}))
    with pytest.raises(RecordError, match="is not a certified record of scripts/certify.py"):
        certified.load_certification_records(tmp_path)


@pytest.mark.parametrize("units, undecided, shown", [
    ([600, 600], [[216.0, 545.5]], "| 216, 546 of 600 |"), ([600, 10], [[216.0, 3.0]], "| 216 of 600, 3 of 10 |"),
    ([600, 600], [None], "| – |"), (None, None, "| – |")])
def test_the_undecided_units_column_shows_the_median_per_layer_of_its_width(units, undecided, shown):
    fields = _record_fields(run="m", dataset="mnist", arch="fcn2", precision="full", input_bits=2, examples=10,
                            certified=[0.5], attacked=[0.6], gap=[0.1], methods=[{"crown": 5}],
                            attacked_examples=[5], version="fast", units=units, undecided=undecided)
    text = render.certified_section([certified.CertificationRecord(**fields)], render.ReportOptions())
    assert "| undecided units |" in text and shown in text


def test_a_bracket_of_an_ibp_trained_model_is_kept_out_of_the_report(tmp_path):
    from tfdisc import reporting

    run = tmp_path / "full" / "mnist_fcn2_full_2b"
    run.mkdir(parents=True)
    (run / "results.json").write_text((ROOT / "runs/paper/full/mnist_fcn2_full_2b/results.json").read_text())
    (tmp_path / "certified").mkdir()
    record = _bracket([0.1], [0.9], ibp_train=True)
    (tmp_path / "certified" / "m.json").write_text(json.dumps(dataclasses.asdict(record)))
    with pytest.raises(RecordError, match="m is trained with IBP .* move it out of"):
        reporting.build_report(tmp_path, tmp_path / "REPORT.md", study_path=str(ROOT / "docs/study_tables.csv"))
    assert not (tmp_path / "REPORT.md").exists()
