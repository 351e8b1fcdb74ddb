"""scripts/evaluate.py and scripts/reproduce_paper.py, run as a user would."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from helpers import require_data
from tfdisc import models, presets

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.exclusive]  # each script is a TensorFlow process of up to 1.7 GB


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


def test_evaluate_certifies_first_and_reports_the_bracket(tmp_path, mnist_small):
    x, y, _, _ = mnist_small
    tf.keras.utils.set_random_seed(0)
    model = models.build_model("fcn2", width=32, depth=2, input_bits=2)
    model.compile(tf.keras.optimizers.Adam(1e-3), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=100, verbose=0)
    model.save(str(tmp_path / "model"))
    output, checkpoint = tmp_path / "certified.json", tmp_path / "checkpoint.json"
    command = ["evaluate.py", f"--model={tmp_path / 'model'}", f"--data_dir={require_data().parent}",
               "--test_examples=100", "--attacks=fgsm", "--eps=0.02,0.1", "--certify=crown-refined",
               f"--checkpoint={checkpoint}", f"--output={output}"]
    result = _script(*command)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(output.read_text())
    assert json.loads(checkpoint.read_text())["units"]  # the attacked examples' units; the same command reuses them
    again = _script(*command)
    assert again.returncode == 0 and "resuming the report with" in again.stderr
    assert json.loads(output.read_text())["worst_case"] == report["worst_case"]
    assert report["certification"]["bound"] == "crown-refined" and report["certification"]["skipped"] > 0
    for certified, worst, gap in zip(report["certified"]["accuracy"], report["worst_case"]["accuracy"], report["gap"]):
        assert certified <= worst and gap == pytest.approx(worst - certified)
    assert "certified" in result.stdout.splitlines()[1] and "a lower bound" in result.stdout
    assert output.with_suffix(".png").is_file()


@pytest.mark.parametrize("flag", ["--certify=ibp", "--checkpoint=c.json"])
def test_evaluate_refuses_to_certify_or_checkpoint_a_flatbuffer(tmp_path, flag):
    result = _script("evaluate.py", f"--model={tmp_path / 'model.tflite'}", flag)
    name = flag[2:].split("=")[0]
    assert result.returncode == 1
    assert f"error: --{name} works on a Keras model, not a .tflite flatbuffer" in result.stderr
    assert "Traceback" not in result.stderr


def test_evaluate_names_a_missing_model():
    result = _script("evaluate.py", "--model=/nonexistent")
    assert result.returncode != 0 and "error: --model: no SavedModel at /nonexistent" in result.stderr
    assert "Traceback" not in result.stderr


def _fake_run(root, precision, bits, adv, clean, fgsm, autoattack=None, arch="fcn2", epochs=10, command="reproduce",
              dataset="mnist", recipe="constant", attack_examples=10000):
    run_dir = root / "full" / f"{dataset}_{arch}_{precision}_{bits}b{'_adv' if adv else ''}"
    run_dir.mkdir(parents=True)
    eps = [0.0, *presets.get(dataset).report_eps]
    result = {"dataset": dataset, "arch": arch, "precision": precision, "input_bits": bits, "adv_train": adv,
              "clean_accuracy": clean, "test_examples": 10000, "epochs": epochs, "train_seconds": 100.0,
              "recipe": recipe,
              "sweep": {"attack": "fgsm", "gradient": "identity", "eps": eps, "accuracy": [clean, *fgsm]}}
    if autoattack:
        curve = {"eps": eps[1:], "accuracy": autoattack}
        result.update(attacks={"fgsm": {"eps": eps[1:], "accuracy": fgsm}, "autoattack": curve}, worst_case=curve,
                      robustness={"examples": attack_examples, "pgd_steps": 20, "pgd_restarts": 5, "autoattack": {
                          "version": "standard", "stages": ["apgd-ce", "apgd-t", "square"], "apgd_iterations": 100,
                          "square_queries": 5000}})
    (run_dir / "results.json").write_text(json.dumps(result))
    (run_dir / "budget.json").write_text(json.dumps({"budget": "full: 10 epochs", "command": command}))
    return run_dir


def _fake_activations(run_dir, change_share):
    """A cached Fig. 6 analysis: the attack changes `change_share` of the clean L1 norm at every ε."""
    eps = [0.0, 0.1, 0.2, 0.3]
    (run_dir / "activation_l1.json").write_text(json.dumps({
        "attack": "fgsm", "eps": eps, "clean_l1": [100.0] * 4, "adversarial_l1": [100.0] * 4,
        "change_l1": [0.0] + [100.0 * change_share] * 3, "units": 600, "examples": 1000}))


def test_report_tables_study_and_claims_from_results(tmp_path):
    full8 = _fake_run(tmp_path, "full", 8, False, 0.98, [0.30, 0.05, 0.01])
    _fake_run(tmp_path, "full", 2, False, 0.97, [0.96, 0.95, 0.20], autoattack=[0.95, 0.70, 0.0])
    _fake_run(tmp_path, "full", 2, True, 0.98, [0.97, 0.96, 0.60], autoattack=[0.96, 0.90, 0.10], attack_examples=100)
    bnn8 = _fake_run(tmp_path, "bnn", 8, False, 0.90, [0.20, 0.03, 0.01])
    _fake_run(tmp_path, "bnn", 2, False, 0.95, [0.94, 0.93, 0.10], autoattack=[0.78, 0.50, 0.0])
    _fake_run(tmp_path, "full", 8, True, 0.98, [0.90, 0.85, 0.80], autoattack=[0.85, 0.60, 0.10])
    _fake_run(tmp_path, "full", 8, False, 0.98, [0.50, 0.10, 0.01], arch="fcn1", epochs=1)
    _fake_run(tmp_path, "bnn", 8, False, 0.97, [0.60, 0.20, 0.05], arch="fcn1", epochs=1, command="reproduce --bnn")
    _fake_run(tmp_path, "full", 8, False, 0.876, [0.435, 0.101], autoattack=[0.28, 0.0], arch="alexnet", epochs=40,
              dataset="cifar10", recipe="reference")
    _fake_activations(full8, 0.5)
    _fake_activations(bnn8, 0.25)
    study = tmp_path / "study.csv"
    study.write_text("table,dataset,arch,precision,input_bits,adv_train,epochs,column,accuracy,source\n"
                     "1,mnist,fcn2,full,8,no,10,adv1,28.0,test\n1,mnist,fcn2,bnn,8,no,10,clean,99.0,test\n"
                     "4,cifar10,alexnet,full,8,no,,clean,86.5,test\n")
    report = tmp_path / "REPORT.md"
    report.write_text("# Reproduction report\n\n## mnist · fcn1 · budget: reduced: 1 epoch\n\n| full | 8-bit | 94.3 |\n\n"
                      "| the study's claim | by our numbers |\n|---|---|\n| BNNs win | holds |\n\n"
                      "## cifar10 · alexnet · budget: reduced: 2 epochs\n\n| full | 8-bit | 30.9 |\n\n"
                      "## Robustness reports: is the robustness real?\n\nintro\n\n### fcn2_full_2b, gradient = zero\n\n"
                      "Command: `python scripts/evaluate.py --model=m`\n\n| 0.3 | 98.2 |\n\n## What the numbers say\n")
    readme = tmp_path / "README.md"
    readme.write_text("# tfdisc\n\n<!-- results at a glance: written by scripts/reproduce_paper.py from the runs behind "
                      "REPORT.md -->\nold table\n<!-- end of results at a glance -->\n\n## Next\n")
    result = _script("reproduce_paper.py", "--report_only", f"--output_dir={tmp_path}", f"--report={report}",
                     f"--study={study}")  # the README beside the report
    assert result.returncode == 0, result.stderr[-2000:]
    text = report.read_text()
    assert "| full | 8-bit | 98.0 | 30.0 | 5.0 | 1.0 |" in text
    assert "| bnn | 2-bit | 95.0 | 94.0 | 93.0 | 10.0 | 78.0 | 50.0 | 0.0 |" in text  # FGSM, then AutoAttack
    assert "AutoAttack standard (apgd-ce → apgd-t → square" in text
    assert "\nAutoAttack and worst case (over every attack run: autoattack, fgsm) on " in text  # no PGD column, none named
    assert "\nPGD, AutoAttack and worst case (over" not in text and "PGD ε=" not in text
    # Rows attacked on different subsets: the note says which rows each subset is.
    assert "on 100 test examples, AutoAttack standard" in text and "queries, each on the survivors) (full + adv 2-bit); " \
        "10000 test examples, AutoAttack standard" in text and "(full 2-bit, full + adv 8-bit, bnn 2-bit)." in text
    assert "on 10000 test examples, AutoAttack standard (apgd-ce → apgd-t → square, APGD 100 iterations, Square " \
        "5000 queries, each on the survivors).\n" in text  # CIFAR-10: one subset, no rows named
    # The subset of 100 images carries its 95% interval; the whole test set does not.
    assert "| full + adv | 2-bit | 98.0 | 97.0 | 96.0 | 60.0 | 96.0 [90.2, 98.4] | 90.0 [82.6, 94.5] |" in text
    assert "Command: `python reproduce`" in text  # fcn2: one command trained every run
    assert "trained some of the runs below):\n\n- `python reproduce`\n- `python reproduce --bnn`\n" in text  # fcn1
    # The study beside us: its cells beside ours, the column's ε fitted by least squares over our grid.
    assert "### Table 1\n\n| model | clean | adv1 (ε 0.1) | our run |" in text
    assert "| MNIST fcn2 full 8-bit |  | 28.0 / 30.0 (+2.0) | 10 epochs, as the study |" in text
    assert "| MNIST fcn2 bnn 8-bit | 99.0 / 90.0 (-9.0) |  | 10 epochs, as the study |" in text
    assert "| CIFAR-10 alexnet full 8-bit | 86.5 / 87.6 (+1.1) | 40 epochs |" in text  # no epochs in the cell
    assert "| adv1 | 0.1 | +2.0 | 4 | yes |" in text  # residual, squared error in points², within 5 points
    rows = {line.split(" | ")[1]: line.split(" | ") for line in text.splitlines() if line.startswith("| ")
            and line.split(" | ")[0][2:].isdigit() and len(line.split(" | ")) == 8}
    wide = rows["2-bit inputs improve robustness over 8-bit for a substantial range of ε"]
    assert wide[4:6] == ["holds (judged on fcn2 only)", "not run"]  # +66, +90, +19 points; no AutoAttack on 8-bit
    like_adv = rows["BNN with 2-bit inputs reaches an adversarially trained full-precision model, without "
                    "adversarial training"]
    assert like_adv[4:6] == ["holds only for ε ≤ 0.2 (judged on fcn2 only)", "does not hold (judged on fcn2 only)"]
    assert like_adv[6] == "not run"  # no certified bracket in these records
    assert "ε=0.1: 78.0% vs 85.0%" in like_adv[7]
    small = rows["BNNs are more robust than full precision at small ε"]  # the BNN sits 9 points below the study
    assert small[4] == "inconclusive" and "bnn 8-bit: clean 90.0%, more than 5 points below the study's 99.0%" in small[7]
    capacity = rows["capacity decides whether BNNs withstand larger ε (FCN1 vs FCN2)"]
    assert capacity[4] == "inconclusive" and "reduced budget (1 of the study's 20 epochs)" in capacity[7]
    assert "; not judged: BNN minus full (8-bit), fcn1 vs fcn2: ε=0.1: +10.0 vs -10.0" in capacity[7]  # shown only
    assert capacity[5] == "not run"  # a missing attack outranks a reduced budget: more training would not judge it
    multi_step = rows["standalone discretization remains vulnerable to stronger multi-step attack scenarios"]
    assert multi_step[2] == ("“Robustness against higher perturbations and multi-step attack requires adversarial "
                             "training” (144)")
    assert multi_step[4:6] == ["– (AutoAttack against FGSM)", "holds only for ε = 0.2, 0.3 (judged on fcn2 only)"]
    assert multi_step[6] == "– (AutoAttack against FGSM)"
    assert "ε=0.1: 95.0% vs 96.0%, ε=0.2: 70.0% vs 95.0%" in multi_step[7]  # 1 point is within the margin
    adv_two = rows["adversarial training with discretization is an improved defense strategy"]
    assert adv_two[4:6] == ["holds only for ε = 0.3 (judged on fcn2 only)", "holds for ε = 0.2, 0.3; inconclusive at "
                            "ε = 0.1 (within the 95% interval) (judged on fcn2 only)"]  # 100 images: 1 point is noise
    fig6 = rows["Fig. 6: BNNs' first-layer activations change less under attack (L1 norm)"]
    assert fig6[4:6] == ["inconclusive", "– (an FGSM analysis)"]  # the BNN fails the clean-accuracy gate
    assert "| fcn2 bnn (full budget) | 600 | 0.167 | 0.250 | 0.250 | 0.250 |" in text
    assert (tmp_path / "docs" / "mnist_activation_l1.png").is_file()
    # The report is a function of the records alone: nothing of the REPORT.md it replaces is carried over.
    assert "| full | 8-bit | 94.3 |" not in text and "BNNs win" not in text and "| 0.3 | 98.2 |" not in text
    assert "## cifar10 · alexnet · budget: reduced" not in text
    again = report.read_text()
    assert _script("reproduce_paper.py", "--report_only", f"--output_dir={tmp_path}", f"--report={report}",
                   f"--study={study}").returncode == 0
    assert report.read_text() == again  # byte for byte
    assert text.index("## mnist · fcn2") < text.index("## The study's claims, judged")
    assert (tmp_path / "docs" / "mnist_fcn2_full.png").is_file()
    glance = readme.read_text()  # README's table comes from the same runs, never by hand
    assert "old table" not in glance and glance.endswith("<!-- end of results at a glance -->\n\n## Next\n")
    assert "| full precision, 8-bit input | 98.0 | 30.0 | – | 5.0 | – | 1.0 | – |" in glance
    assert "| BNN, 2-bit input | 95.0 | 94.0 | 78.0 | 93.0 | 50.0 | 10.0 | 0.0 |" in glance
    assert "- mnist fcn1: 2 at a reduced budget: bnn 8-bit, full 8-bit." in glance
    assert "- mnist fcn2: 6 model(s) at the study's budget (10 epochs)" in glance
    assert "CIFAR-10, AlexNet trained for 40 epochs on all training images (`--recipe=reference`)" in glance
    assert "| AlexNet, accuracy % | clean | FGSM ε=2/255 | AutoAttack ε=2/255 | FGSM ε=8/255 | AutoAttack ε=8/255 |\n" \
           "|---|---|---|---|---|---|\n| full precision, 8-bit input | 87.6 | 43.5 | 28.0 | 10.1 | 0.0 |\n" in glance
    assert "- cifar10 alexnet: 1 model(s) at the study's budget (40 epochs): full 8-bit." in glance


def test_reevaluating_a_run_whose_checkpoints_are_not_here_says_so(tmp_path):
    run_dir = _fake_run(tmp_path, "full", 8, False, 0.98, [0.30, 0.05, 0.01])  # records only, as a fresh clone has them
    result = _script("reproduce_paper.py", "--reevaluate", f"--output_dir={tmp_path}", "--arch=fcn2", "--bits=8",
                     "--precisions=full", "--adv=off", f"--report={tmp_path / 'REPORT.md'}")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"error: --reevaluate: {run_dir} holds the run's records but not its checkpoints" in result.stderr
    assert not (tmp_path / "REPORT.md").exists()


@pytest.mark.slow
def test_a_grid_run_records_its_command_as_run_from_the_repository_root(tmp_path):
    # Started by its absolute path, as the study queue starts it: the record still reads as a user types it.
    result = _script("reproduce_paper.py", "--arch=fcn2", "--bits=2", "--precisions=full", "--adv=off", "--epochs=1",
                     "--train_examples=200", "--test_examples=100", "--budget=tiny", f"--output_dir={tmp_path}",
                     f"--data_dir={require_data().parent}", "--extra=--sweep_every=0", "--nowrite_report")
    assert result.returncode == 0, result.stderr[-2000:]
    (budget,) = tmp_path.glob("*/*/budget.json")
    command = json.loads(budget.read_text())["command"]
    assert command.startswith("python scripts/reproduce_paper.py --arch=fcn2 ") and str(ROOT) not in command


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the git checkout")
def test_git_keeps_the_study_runs_records_and_nothing_else():
    run = "runs/paper/full/mnist_fcn1_full_8b/"
    records = [run + name for name in ("results.json", "budget.json", "config.json", "history.csv",
                                       "activation_l1.json")] + ["runs/paper/evaluations/fcn1_bnn_2b.json"]
    local = [run + "checkpoints/ckpt-20.index", run + "saved_model/saved_model.pb", run + "tensorboard/train/events",
             run + "model_summary.txt", "runs/mnist_fcn2_bnn_2b_s0/results.json", "runs/grid_fcn1.log"]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *records, *local], cwd=ROOT, capture_output=True,
                             text=True).stdout.split()
    assert ignored == local


def test_benchmark_writes_its_tables(tmp_path):
    output = tmp_path / "bench"
    result = _script("benchmark.py", "--parts=train,overhead,xla,pipeline,attack_calls", "--models=fcn2_full",
                     "--batches=2", "--repeats=1", f"--output={output}")
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
    calls = results["parts"]["attack_calls"]["fcn2_full"]
    assert calls["step_250_speedup"] == pytest.approx(calls["step_250_latent_s"] / calls["step_250_quantized_s"])
    assert xla["train_speedup"] == pytest.approx(xla["train_off_s"] / xla["train_on_s"])
    markdown = output.with_suffix(".md").read_text()
    assert all(f"### {part}" in markdown for part in ("train", "overhead", "xla", "pipeline", "attack_calls"))


def test_training_benchmark_profiles_and_compares_settings(tmp_path):
    output = tmp_path / "training"
    result = _script("benchmark_training.py", "--models=fcn2_bnn", "--steps=1", "--repeats=1", "--settings=main,new",
                     f"--output={output}")
    assert result.returncode == 0, result.stderr[-2000:]
    results = json.loads(output.with_suffix(".json").read_text())
    profile, settings = results["parts"]["profile"]["fcn2_bnn"], results["parts"]["settings"]["fcn2_bnn"]
    assert profile["params"] == 1_563_630 and profile["batch"] == 100
    assert profile["step_over_limit"] == pytest.approx(profile["step_s"] / profile["limit_s"])
    flop_s, bandwidth = profile["gflop_per_step"] / results["peak_gflops"], results["bandwidth_gbs"] * 1e9
    pass_s, update_s = 12 * profile["params"] / bandwidth, 28 * profile["params"] / bandwidth
    assert profile["limit_s"] == pytest.approx(max(flop_s, pass_s) + update_s)  # Adam after the backward pass
    assert profile["limit_overlapped_s"] == pytest.approx(max(flop_s, pass_s + update_s))
    assert profile["limit_overlapped_s"] < profile["limit_s"]
    assert profile["gflop_per_step"] == pytest.approx(2 * 100 * (3 * (784 * 600 + 3 * 600 * 600 + 6000) - 784 * 600)
                                                      / 1e9)
    assert settings["main_eval_batch"] == 100 and settings["new_eval_batch"] == 1000
    assert settings["new_epoch_speedup"] == pytest.approx(settings["main_epoch_s"] / settings["new_epoch_s"])
    assert "### settings" in output.with_suffix(".md").read_text()


def test_training_benchmark_runs_mixed_precision_settings_only_where_the_cpu_has_bfloat16(tmp_path):
    from tfdisc import cpu

    output = tmp_path / "training"
    result = _script("benchmark_training.py", "--parts=settings", "--models=fcn2_full", "--steps=1", "--repeats=1",
                     "--settings=new_graph,new_graph_mixed", f"--output={output}")
    if not cpu.has_bfloat16():
        assert result.returncode != 0 and "Traceback" not in result.stderr
        assert "need a CPU with bfloat16 instructions; this one has none" in result.stderr
        return
    assert result.returncode == 0, result.stderr[-2000:]
    settings = json.loads(output.with_suffix(".json").read_text())["parts"]["settings"]["fcn2_full"]
    assert settings["new_graph_bfloat16_layers"] == 0 and settings["new_graph_mixed_bfloat16_layers"] > 0
    assert settings["new_graph_mixed_epoch_speedup"] == pytest.approx(
        settings["new_graph_epoch_s"] / settings["new_graph_mixed_epoch_s"])


def test_training_benchmark_names_an_unknown_setting():
    result = _script("benchmark_training.py", "--parts=settings", "--settings=new,fast")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "--settings: unknown ['fast']" in result.stderr


def test_benchmark_deploy_report_xla_certify_splits_and_enumeration_parts_measure_what_they_say(tmp_path):
    from tfdisc import export, models

    from helpers import without_sign_ties

    model = models.build_model("fcn2", precision="bnn", input_bits=2, width=64, depth=2)
    without_sign_ties(model, 64 / 255)  # so that Keras and LCE must agree on every image
    export.save(model, tmp_path / "run" / "saved_model")
    output = tmp_path / "bench"
    result = _script("benchmark.py", "--parts=deploy,report_xla,certify,splits,enumeration", "--models=fcn2_bnn",
                     f"--autoattack_model={tmp_path / 'run'}", "--autoattack_examples=20", "--autoattack_eps=0.05",
                     "--certify_examples=40", "--splits_examples=20", "--splits_time_limit=0.5", "--repeats=1",
                     "--enumeration_examples=20", "--enumeration_eps=0.05", f"--output={output}")
    assert result.returncode == 0, result.stderr[-2000:]
    parts = json.loads(output.with_suffix(".json").read_text())["parts"]
    report_xla = parts["report_xla"]["run"]
    assert report_xla["examples"] == 20 and report_xla["eps"] == [0.05]
    assert report_xla["speedup"] == pytest.approx(report_xla["graph_s"] / report_xla["xla_s"])
    assert all(len(report_xla[f"{side}_accuracy"]) == 1 and 0 <= report_xla[f"{side}_accuracy"][0] <= 1
               for side in ("graph", "xla"))
    certify = parts["certify"]["run"]
    assert certify["certify_examples"] == 40 and certify["attack_examples"] == certify["bracket_examples"] == 20
    assert 0 <= certify["eps=0.05 ibp_certified"] <= certify["eps=0.05 crown_certified"] <= 1  # CROWN refines IBP
    certified, attacked = map(float, certify["eps=0.05 bracket"].strip("[]").split(", "))
    assert certified <= min(attacked, certify["eps=0.05 autoattack"])  # nothing certified is broken
    assert certify["autoattack_over_bracket"] == pytest.approx(certify["autoattack_s"] / certify["bracket_s"])
    splits = parts["splits"]["run"]
    assert splits["examples"] == 20 and splits["eps"] == 0.05
    for split in ("pixels", "activations"):  # the same 20 images and ε as AutoAttack's: no certificate it breaks
        assert splits[f"{split} certified"] + splits[f"{split} broken"] + splits[f"{split} unknown"] == pytest.approx(1)
        assert splits[f"{split} certified"] <= certify["eps=0.05 autoattack"]
    enumeration = parts["enumeration"]["run"]  # the part itself fails if eager and compiled verdicts differ
    assert enumeration["examples"] == 20 and 0 < enumeration["boxes"] <= 20
    assert enumeration["boxes"] <= enumeration["inputs"] <= 2**16 * enumeration["boxes"]
    assert 0 <= enumeration["robust"] <= enumeration["boxes"]
    assert enumeration["speedup"] == pytest.approx(enumeration["eager_s"] / enumeration["compiled_s"])
    deploy = parts["deploy"]["fcn2_bnn"]
    assert deploy["binary_layers"] == 2 and deploy["binary_layers_float_mb"] == pytest.approx(4 * (64 * 64 + 64 * 10) / 1e6)
    assert deploy["binary_layers_smaller"] == pytest.approx(deploy["binary_layers_float_mb"] /
                                                            deploy["binary_layers_lce_mb"])
    assert deploy["lce_mb"] < deploy["tflite_mb"] and deploy["lce_agreement"] == deploy["tflite_agreement"] == 1
    assert deploy["lce_speedup_over_tflite"] == pytest.approx(deploy["tflite_ms"] / deploy["lce_ms"])
    assert deploy["lce_default_kernels_ms"] > 0


def test_suite_memory_counts_the_processes_a_suite_starts_and_keeps_its_exit_code(tmp_path):
    (tmp_path / "test_holds.py").write_text(
        "import subprocess, sys\n"
        "def test_a_child_holds_300_mib():\n"
        "    code = 'import time; block = bytearray(300 * 2**20); time.sleep(3)'\n"
        "    assert subprocess.run([sys.executable, '-c', code]).returncode == 0\n"
        "def test_fails():\n"
        "    assert False\n")
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "suite_memory.py"), "-q", "-p", "no:cacheprovider",
                             str(tmp_path)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 1, result.stderr[-2000:]  # pytest's: one test failed
    peak = float(result.stdout.split("peak resident memory ")[1].split(" GiB")[0])
    assert 300 / 1024 < peak < 2, result.stdout  # the child's 300 MiB, counted once, plus pytest itself
    assert "bytearray(300" in result.stdout  # the child is listed at the peak


def test_the_committed_report_regenerates_byte_for_byte_from_the_committed_records(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text((ROOT / "README.md").read_text())
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "reproduce_paper.py"), "--report_only",
                             f"--report={tmp_path / 'REPORT.md'}", f"--readme={readme}", "--data_dir=/nonexistent"],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "REPORT.md").read_text() == (ROOT / "REPORT.md").read_text()
    assert readme.read_text() == (ROOT / "README.md").read_text()  # its table comes from the same records
