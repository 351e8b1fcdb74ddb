"""scripts/evaluate.py and scripts/reproduce_paper.py, run as a user would."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from helpers import require_data
from tfdisc import models

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _script(name, *args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / name), *args], capture_output=True, text=True)


def test_evaluate_writes_a_report_for_a_saved_model(tmp_path, mnist_small):
    x, y, _, _ = mnist_small
    model = models.build_model("fcn2", width=32, depth=2, input_bits=2)
    model.compile(tf.keras.optimizers.Adam(1e-3), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=100, verbose=0)
    model.save(str(tmp_path / "model"))
    output = tmp_path / "report" / "zero.json"
    result = _script("evaluate.py", f"--model={tmp_path / 'model'}", f"--data_dir={require_data().parent}",
                     "--test_examples=100", "--attacks=fgsm,pgd,square,autoattack", "--autoattack_version=fast",
                     "--pgd_steps=2", "--pgd_restarts=1", "--square_queries=50",
                     "--gradient=zero", "--eps=0,0.3", f"--output={output}")
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(output.read_text())
    assert report["gradient"] == "zero" and report["masking_suspected"] and report["examples"] == 100
    assert report["subset"] == "first"
    with np.load(require_data()) as data:  # --subset=first: the first 100 test images, as other tools count them
        x, y = data["x_test"][:100, ..., None], data["y_test"][:100]
    clean = float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))
    assert report["clean_accuracy"] == pytest.approx(clean, abs=1e-9)
    assert output.with_suffix(".png").is_file()
    assert "[FAIL] nonzero_gradients" in result.stdout and "[FAIL] gradient_survivors_unbroken" in result.stdout
    assert list(report["attacks"]["autoattack"]["after"]) == ["apgd-ce", "apgd-dlr"]
    assert report["settings"]["autoattack"]["version"] == "fast" and "AutoAttack (fast)" in result.stdout
    assert not [line for line in result.stderr.splitlines() if line.startswith(("E0000", "W0000", "I0000"))]


def test_evaluate_names_a_missing_model():
    result = _script("evaluate.py", "--model=/nonexistent")
    assert result.returncode != 0 and "error: --model: no SavedModel at /nonexistent" in result.stderr
    assert "Traceback" not in result.stderr


def _fake_run(root, precision, bits, adv, clean, fgsm, autoattack=None):
    run_dir = root / "full" / f"mnist_fcn2_{precision}_{bits}b{'_adv' if adv else ''}"
    run_dir.mkdir(parents=True)
    eps = [0.0, 0.1, 0.2, 0.3]
    result = {"dataset": "mnist", "arch": "fcn2", "precision": precision, "input_bits": bits, "adv_train": adv,
              "clean_accuracy": clean, "test_examples": 10000, "epochs": 10, "train_seconds": 100.0,
              "sweep": {"attack": "fgsm", "gradient": "identity", "eps": eps, "accuracy": [clean, *fgsm]}}
    if autoattack:
        curve = {"eps": eps[1:], "accuracy": autoattack}
        result.update(attacks={"fgsm": {"eps": eps[1:], "accuracy": fgsm}, "autoattack": curve}, worst_case=curve,
                      robustness={"examples": 1000, "pgd_steps": 20, "pgd_restarts": 5, "autoattack": {
                          "version": "standard", "stages": ["apgd-ce", "apgd-t", "square"], "apgd_iterations": 100,
                          "square_queries": 5000}})
    (run_dir / "results.json").write_text(json.dumps(result))
    (run_dir / "budget.json").write_text(json.dumps({"budget": "full: 10 epochs", "command": "reproduce"}))


def test_report_tables_and_claims_from_results(tmp_path):
    _fake_run(tmp_path, "full", 8, False, 0.98, [0.30, 0.05, 0.01])
    _fake_run(tmp_path, "full", 2, False, 0.97, [0.96, 0.95, 0.20])
    _fake_run(tmp_path, "bnn", 8, False, 0.96, [0.20, 0.03, 0.01])
    _fake_run(tmp_path, "bnn", 2, False, 0.95, [0.94, 0.93, 0.10], autoattack=[0.78, 0.50, 0.0])
    _fake_run(tmp_path, "full", 8, True, 0.98, [0.90, 0.85, 0.80], autoattack=[0.85, 0.60, 0.10])
    report = tmp_path / "REPORT.md"
    report.write_text("# Reproduction report\n\n## mnist · fcn1 · budget: reduced: 1 epoch\n\n| full | 8-bit | 94.3 |\n\n"
                      "## Robustness reports: is the robustness real?\n\nintro\n\n### fcn2_full_2b, gradient = zero\n\n"
                      "Command: `python scripts/evaluate.py --model=m`\n\n| 0.3 | 98.2 |\n\n## What the numbers say\n")
    result = _script("reproduce_paper.py", "--report_only", f"--output_dir={tmp_path}", f"--report={report}")
    assert result.returncode == 0, result.stderr[-2000:]
    text = report.read_text()
    assert "| full | 8-bit | 98.0 | 30.0 | 5.0 | 1.0 |" in text
    assert ("| 2-bit inputs keep accuracy close to clean accuracy over a range of ε where 8-bit inputs collapse | "
            "FGSM | holds | full precision: at ε=0.1, 0.2 the 2-bit model" in text)
    assert ("| fcn2: BNN does not beat full precision (by > 2 points) at small ε when capacity is small | FGSM | holds |"
            in text)
    claim = "| BNN + 2-bit input matches (within 5 points) an adversarially trained full-precision 8-bit model |"
    assert f"{claim} FGSM | holds only for ε ≤ 0.2 |" in text  # at ε=0.3: 10% vs 80%
    assert f"{claim} AutoAttack | does not hold | BNN 2-bit vs adv-trained full 8-bit: ε=0.1: 78.0% vs 85.0%" in text
    assert "| bnn | 2-bit | 95.0 | 94.0 | 93.0 | 10.0 | 78.0 | 50.0 | 0.0 |" in text  # FGSM, then AutoAttack
    assert "AutoAttack standard (apgd-ce → apgd-t → square" in text
    kept = "## mnist · fcn1 · budget: reduced: 1 epoch\n\n*Kept from an earlier generation of this report"
    assert kept in text and "| full | 8-bit | 94.3 |" in text  # no fcn1 runs here: the earlier section stays
    assert "### fcn2_full_2b, gradient = zero\n\n*Kept from an earlier" in text and "| 0.3 | 98.2 |" in text
    assert text.count("*Kept from") == 2 and text.index("## mnist · fcn2") < text.index("## mnist · fcn1")
    assert (tmp_path / "docs" / "mnist_fcn2_full.png").is_file()


def test_benchmark_writes_its_tables(tmp_path):
    output = tmp_path / "bench"
    result = _script("benchmark.py", "--parts=train,overhead,xla,pipeline", "--models=fcn2_full", "--batches=2",
                     "--repeats=1", f"--output={output}")
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads(output.with_suffix(".json").read_text())
    assert "CPU cores" in results["machine"]
    train, xla = results["parts"]["train"]["fcn2_full"], results["parts"]["xla"]["fcn2_full"]
    overhead, pipeline = results["parts"]["overhead"]["fcn2_full"], results["parts"]["pipeline"]["fcn2_full"]
    # Structure and internal consistency only: tests never depend on timing.
    assert train["rfgsm_0.5_over_clean"] == pytest.approx(train["rfgsm_0.5_s"] / train["clean_s"])
    assert overhead["throughput_ratio"] == pytest.approx(overhead["keras_s"] / overhead["tfdisc_s"])
    assert set(pipeline) >= {"autotune_off_s", "autotune_on_s"} and all(v > 0 for v in pipeline.values())
    assert isinstance(xla["sweep_results_identical"], bool)
    assert xla["train_speedup"] == pytest.approx(xla["train_off_s"] / xla["train_on_s"])
    markdown = output.with_suffix(".md").read_text()
    assert all(f"### {part}" in markdown for part in ("train", "overhead", "xla", "pipeline"))


def test_training_benchmark_profiles_and_compares_settings(tmp_path):
    output = tmp_path / "training"
    result = _script("benchmark_training.py", "--models=fcn2_bnn", "--steps=1", "--repeats=1", "--settings=main,new",
                     f"--output={output}")
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads(output.with_suffix(".json").read_text())
    profile, settings = results["parts"]["profile"]["fcn2_bnn"], results["parts"]["settings"]["fcn2_bnn"]
    assert profile["params"] == 1_563_630 and profile["batch"] == 100
    assert profile["step_over_limit"] == pytest.approx(profile["step_s"] / profile["limit_s"])
    assert profile["gflop_per_step"] == pytest.approx(2 * 100 * (3 * (784 * 600 + 3 * 600 * 600 + 6000) - 784 * 600)
                                                      / 1e9)
    assert settings["main_eval_batch"] == 100 and settings["new_eval_batch"] == 1000
    assert settings["new_epoch_speedup"] == pytest.approx(settings["main_epoch_s"] / settings["new_epoch_s"])
    assert "### settings" in output.with_suffix(".md").read_text()
