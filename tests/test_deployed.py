"""Robustness of a deployed flatbuffer beside its Keras twin: equal where the models are equal, loud where not."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tfdisc import deployed, export, models

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "evaluate.py"
EPS = [0.0, 0.1, 0.3]


@pytest.fixture(scope="module")
def flatbuffer(trained_fcn, tmp_path_factory):
    folder = tmp_path_factory.mktemp("deployed")
    export.save(trained_fcn, folder / "saved_model")
    return export.TFLiteModel(export.to_lce(trained_fcn, folder / "model_lce.tflite").path)


def test_a_faithful_flatbuffer_is_as_robust_as_its_twin(trained_fcn, flatbuffer, mnist_small):
    _, _, x_test, y_test = mnist_small
    report = deployed.deployed_report(flatbuffer, trained_fcn, (x_test[:100], y_test[:100]), EPS,
                                      square_queries=30, pgd_steps=5)
    assert report["examples"] == 100 and report["clean_accuracy"]["keras"] == report["clean_accuracy"]["deployed"]
    for name in deployed.TRANSFERRED:  # the same examples on two equal models
        assert report["attacks"][name]["deployed"] == pytest.approx(report["attacks"][name]["keras"], abs=0.01)
    assert report["attacks"]["pgd"]["keras"][2] < report["clean_accuracy"]["keras"] - 0.3  # the attacks do bite
    assert report["attacks"]["square"]["deployed"][1] <= report["clean_accuracy"]["deployed"]
    assert report["less_robust"] == [] and "WARNING" not in "\n".join(deployed.report_lines(report))


def test_a_flatbuffer_less_robust_than_its_twin_is_reported_loudly(trained_fcn, mnist_small, tmp_path):
    _, _, x_test, y_test = mnist_small
    untrained = models.build_model("fcn2", width=64, depth=2)
    weaker = export.TFLiteModel(export.to_tflite(untrained, tmp_path / "weaker.tflite").path)
    report = deployed.deployed_report(weaker, trained_fcn, (x_test[:50], y_test[:50]), [0.0], ["fgsm"])
    assert report["less_robust"] and report["less_robust"][0]["attack"] == "fgsm"
    assert "WARNING: THE DEPLOYED MODEL IS LESS ROBUST than its Keras twin under fgsm at eps=0:" in \
        "\n".join(deployed.report_lines(report))


def test_gradient_attacks_on_a_flatbuffer_are_refused_with_the_valid_ones(trained_fcn, flatbuffer, mnist_small):
    _, _, x_test, y_test = mnist_small
    with pytest.raises(ValueError, match=r"Unknown attack\(s\) \['autoattack'\].*no gradients"):
        deployed.deployed_report(flatbuffer, trained_fcn, (x_test[:10], y_test[:10]), EPS, ["autoattack"])


@pytest.mark.slow
@pytest.mark.exclusive
def test_evaluate_script_reports_a_flatbuffer_beside_the_saved_model_next_to_it(flatbuffer, tmp_path):
    from helpers import require_data

    done = subprocess.run([sys.executable, str(SCRIPT), f"--model={flatbuffer.path}", "--dataset=mnist",
                           f"--data_dir={require_data().parent}", "--eps=0,0.2", "--test_examples=40",
                           "--square_queries=20", "--pgd_steps=3", f"--output={tmp_path / 'r.json'}"],
                          capture_output=True, text=True, check=True)
    assert "beside its Keras twin" in done.stdout and "square keras/deployed" in done.stdout
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["examples"] == 40 and set(report["attacks"]) == set(deployed.ATTACKS)
