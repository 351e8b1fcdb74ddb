"""tfdisc.evaluation.checkpoint: a stopped robustness report resumes from its finished (batch, ε) units and ends with
the counts an uninterrupted report gives."""

import json
import logging
import os

import numpy as np
import pytest

from tfdisc import evaluation, models
from tfdisc.evaluation import checkpoint as checkpoint_lib

EPS = [0.0, 0.1, 0.2]
ATTACKS = ("fgsm", "pgd", "square", "autoattack")
OPTIONS = dict(version="fast", pgd_steps=3, pgd_restarts=2, square_queries=40, seed=3)


class Stopped(BaseException):
    """Stands in for a stop (SIGTERM, the session's end): nothing of tfdisc catches it."""


class _Counting:
    """A report's compiled `_batch_counts` that counts its calls and stops the report on call `stop_at`."""

    def __init__(self, report, stop_at=None):
        self.compiled, self.stop_at, self.calls = report._batch_counts, stop_at, []
        report._batch_counts = self

    def get_concrete_function(self, *args):
        return self.compiled.get_concrete_function(*args)

    def __call__(self, x, y, eps):
        self.calls.append(eps.numpy().tolist())
        if len(self.calls) == self.stop_at:
            raise Stopped()
        return self.compiled(x, y, eps)


def _data(mnist_small, examples=300):
    _, _, x, y = mnist_small
    return x[:examples], y[:examples]  # two batches of `as_dataset`'s 256


def _without_seconds(report):
    return {key: value for key, value in report.items() if key != "seconds"}


def _same(report, expected):
    assert _without_seconds(report).keys() == _without_seconds(expected).keys()
    for key, value in _without_seconds(expected).items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(report[key], value)
        else:
            assert report[key] == value, key


@pytest.fixture(scope="module")
def uninterrupted(trained_fcn, mnist_small):
    """The report over two batches and three ε without a checkpoint: what every resumed report must equal."""
    return evaluation.RobustnessReport(trained_fcn, ATTACKS, **OPTIONS)(_data(mnist_small), EPS, survivors=True)


@pytest.mark.parametrize("stop_at", [1, 3, 5])  # before any unit; within the first batch; within the second
def test_a_stopped_report_resumes_its_unfinished_units_and_ends_like_an_uninterrupted_one(
        trained_fcn, mnist_small, uninterrupted, tmp_path, stop_at):
    path = tmp_path / "report_checkpoint.json"
    report = evaluation.RobustnessReport(trained_fcn, ATTACKS, **OPTIONS)
    _Counting(report, stop_at=stop_at)
    with pytest.raises(Stopped):
        report(_data(mnist_small), EPS, survivors=True, checkpoint=path)
    finished = json.loads(path.read_text())["units"] if path.exists() else {}
    assert len(finished) == stop_at - 1  # every finished unit is on disk
    resumed = evaluation.RobustnessReport(trained_fcn, ATTACKS, **OPTIONS)
    calls = _Counting(resumed).calls
    _same(resumed(_data(mnist_small), EPS, survivors=True, checkpoint=path), uninterrupted)
    assert len(calls) == 2 * len(EPS) - (stop_at - 1)  # only the unfinished units run again
    assert all(len(eps) == 1 for eps in calls)


def test_a_finished_checkpoint_answers_without_attacking_and_a_new_eps_runs_alone(trained_fcn, mnist_small, tmp_path):
    path, attacks = tmp_path / "report_checkpoint.json", ("fgsm", "pgd", "square")
    first = evaluation.robustness_report(trained_fcn, _data(mnist_small), EPS, attacks, checkpoint=path, **OPTIONS)
    again = evaluation.RobustnessReport(trained_fcn, attacks, **OPTIONS)
    calls = _Counting(again).calls
    _same(again(_data(mnist_small), EPS, checkpoint=path), first)
    assert calls == []
    wider = evaluation.RobustnessReport(trained_fcn, attacks, **OPTIONS)
    calls = _Counting(wider).calls
    report = wider(_data(mnist_small), EPS + [0.3], checkpoint=path)
    assert calls == [[pytest.approx(0.3)]] * 2  # one unit per batch at the new ε; the finished ones are reused
    assert report["worst_case"]["accuracy"][:3] == first["worst_case"]["accuracy"]


def test_other_weights_settings_or_images_never_reuse_a_unit(trained_fcn, mnist_small, tmp_path, caplog):
    path, attacks = tmp_path / "report_checkpoint.json", ("fgsm", "pgd")
    evaluation.robustness_report(trained_fcn, _data(mnist_small), EPS, attacks, checkpoint=path, **OPTIONS)
    other_images = evaluation.RobustnessReport(trained_fcn, attacks, **OPTIONS)
    calls = _Counting(other_images).calls
    _, _, x, y = mnist_small
    shifted = (x[200:500], y[200:500])
    _same(other_images(shifted, EPS, checkpoint=path),
          evaluation.RobustnessReport(trained_fcn, attacks, **OPTIONS)(shifted, EPS))
    assert len(calls) == 2 * len(EPS)
    for model, options in [(models.build_model("fcn2", width=64, depth=2), OPTIONS),  # other (untrained) weights
                           (trained_fcn, {**OPTIONS, "seed": 4})]:  # other random draws
        report = evaluation.RobustnessReport(model, attacks, **options)
        calls = _Counting(report).calls
        with caplog.at_level(logging.WARNING):
            report(shifted, EPS, checkpoint=path)
        assert len(calls) == 2 * len(EPS) and "holds another report" in caplog.text


def test_single_step_attacks_run_every_missing_eps_of_a_batch_in_one_call(trained_fcn, mnist_small, tmp_path):
    path = tmp_path / "report_checkpoint.json"
    report = evaluation.RobustnessReport(trained_fcn, ("fgsm",))
    calls = _Counting(report).calls
    checkpointed = report(_data(mnist_small), EPS, checkpoint=path)
    assert [len(eps) for eps in calls] == [3, 3]  # one input gradient per batch, as without a checkpoint
    assert len(json.loads(path.read_text())["units"]) == 2 * len(EPS)
    _same(checkpointed, evaluation.RobustnessReport(trained_fcn, ("fgsm",))(_data(mnist_small), EPS))


@pytest.mark.parametrize("content, message", [
    ('{"format": "tfdisc.report-checkpoint/1", "key": ',
     r"is not a readable report checkpoint .*; delete it to restart the report"),
    ('{"units": {}}', r"is not a tfdisc report checkpoint .*tfdisc does not overwrite it\. Move it away"),
    ("not json at all", r"is not a readable report checkpoint"),
])
def test_a_truncated_or_foreign_file_is_named_and_left_alone(trained_fcn, mnist_small, tmp_path, content, message):
    path = tmp_path / "report_checkpoint.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        evaluation.robustness_report(trained_fcn, _data(mnist_small, 10), EPS, ("fgsm",), checkpoint=path)
    assert path.read_text() == content


@pytest.mark.parametrize("unit, name", [
    ({"totals": [1, 0, 0, 10]}, "totals of 4 counts, not 5"),
    ({"counts": [11, 0, 0]}, "more survivors than examples"),
    ({"counts": [1, 2]}, "counts of another attack list"),
    ({"counts": [-1, 0, 0]}, "a negative count"),
    ({"survived": "zz"}, "survivors that are not hex"),
    ({"survived": "ff"}, "survivors of fewer examples"),
])
def test_a_malformed_unit_is_refused_with_its_name(trained_fcn, mnist_small, tmp_path, unit, name):
    path = tmp_path / "report_checkpoint.json"
    evaluation.robustness_report(trained_fcn, _data(mnist_small, 10), EPS, ("fgsm",), checkpoint=path)
    saved = json.loads(path.read_text())
    saved["units"]["0@0.1"].update(unit)
    path.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"has a malformed unit '0@0\.1'; delete it to restart"):
        evaluation.robustness_report(trained_fcn, _data(mnist_small, 10), EPS, ("fgsm",), checkpoint=path)


def test_a_checkpoint_path_that_is_a_link_or_a_folder_is_refused(trained_fcn, mnist_small, tmp_path):
    target = tmp_path / "someone_elses.json"
    target.write_text("{}")
    os.symlink(target, tmp_path / "link.json")
    with pytest.raises(ValueError, match="is a symbolic link"):
        evaluation.robustness_report(trained_fcn, _data(mnist_small, 10), EPS, ("fgsm",),
                                     checkpoint=tmp_path / "link.json")
    with pytest.raises(ValueError, match="is a folder"):
        evaluation.robustness_report(trained_fcn, _data(mnist_small, 10), EPS, ("fgsm",), checkpoint=tmp_path)
    assert target.read_text() == "{}"


def test_a_certified_report_resumes_its_attacks(trained_fcn, mnist_small, tmp_path):
    from tfdisc import certification

    model = models.build_model("fcn2", width=32, depth=1, input_bits=2)
    _, _, x, y = mnist_small
    data, path = (x[:40], y[:40]), tmp_path / "report_checkpoint.json"
    first = certification.certified_report(model, data, [0.05, 0.1], ("fgsm", "pgd"), bound="ibp", checkpoint=path,
                                           pgd_steps=3, pgd_restarts=1)
    assert json.loads(path.read_text())["units"]
    again = certification.certified_report(model, data, [0.05, 0.1], ("fgsm", "pgd"), bound="ibp", checkpoint=path,
                                           pgd_steps=3, pgd_restarts=1)
    for report in (first, again):
        del report["seconds"], report["certification"]["seconds"]
    assert again == first


def test_unit_digests_tell_images_and_labels_apart():
    x, y = np.zeros((2, 4), np.float32), np.array([1, 2])
    digests = {checkpoint_lib.batch_digest(x, y), checkpoint_lib.batch_digest(x, y[::-1]),
               checkpoint_lib.batch_digest(x + 1, y), checkpoint_lib.batch_digest(x.reshape(2, 2, 2), y)}
    assert len(digests) == 4
