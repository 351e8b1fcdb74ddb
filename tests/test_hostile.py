"""Hostile input, tried as an attacker or a careless user would: models with code in them, other people's files,
links, truncated and corrupt records, a full disk. Each case ends in one clear line (or a sound answer), runs no
code from a file, and loses no file tfdisc did not write."""

import errno
import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

from helpers import require_data
from tfdisc import checks, cli, datasets, evaluation, experiment, export, files, models, runs, scan
from tfdisc import eps as eps_lib

ROOT = Path(__file__).resolve().parents[1]


def _script(name, *args, **env):
    return subprocess.run([sys.executable, str(ROOT / name), *args], capture_output=True, text=True,
                          env={**os.environ, **env})


def _one_line(result, message):
    assert result.returncode != 0, result.stdout[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert message in result.stderr, result.stderr[-3000:]


# ---- models with code in them ---------------------------------------------------------------------------------

@pytest.fixture
def lambda_model(tmp_path):
    """The issue's repro: a Lambda whose Python writes a file when the model is rebuilt."""
    marker = tmp_path / "PWNED"
    command = f"date >> {marker}"
    i = tf.keras.Input((28, 28, 1))
    hidden = tf.keras.layers.Lambda(lambda x: (__import__("os").system(command), x)[1])(i)
    o = tf.keras.layers.Dense(10)(tf.keras.layers.Flatten()(hidden))
    tf.keras.Model(i, o).save(str(tmp_path / "evil_sm"))
    marker.unlink(missing_ok=True)  # saving traced the Lambda once
    return tmp_path / "evil_sm", marker


@pytest.fixture
def write_file_model(tmp_path):
    """Plain Keras layers, and a serving signature whose graph writes a file when called."""
    marker = tmp_path / "WRITTEN"
    model = tf.keras.Sequential([tf.keras.Input((28, 28, 1)), tf.keras.layers.Flatten(), tf.keras.layers.Dense(10)])

    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28, 1], tf.float32)])
    def serve(x):
        tf.io.write_file(str(marker), tf.strings.as_string(tf.reduce_sum(x)))
        return model(x)

    model.save(str(tmp_path / "writes"), signatures={"serving_default": serve})
    marker.unlink(missing_ok=True)
    return tmp_path / "writes", marker


def test_a_lambda_layer_is_refused_before_it_runs(lambda_model):
    path, marker = lambda_model
    with pytest.raises(scan.UntrustedModelError, match=r"layer lambda of class Lambda \(its config is Python code\)"):
        models.load(str(path))
    assert not marker.exists()
    with pytest.raises(scan.UntrustedModelError, match=r"trust=True \(scripts: --trust_model\)"):
        models.load(str(path), "--surrogate")


def test_a_graph_that_writes_files_is_refused(write_file_model):
    path, marker = write_file_model
    with pytest.raises(scan.UntrustedModelError, match="op WriteFile"):
        models.load(str(path))
    assert not marker.exists()
    assert models.load(str(path), trust=True).name  # the user's own model loads when they say they trust it


def test_the_deny_list_is_tensorflows_own():
    assert {"WriteFile", "ReadFile"} <= scan.denied_ops()


def test_a_custom_layer_of_another_package_needs_trust(tmp_path):
    @tf.keras.utils.register_keras_serializable(package="someone_else")
    class Doubler(tf.keras.layers.Layer):
        def call(self, x):
            return 2 * x

    model = tf.keras.Sequential([tf.keras.Input((4,)), Doubler(), tf.keras.layers.Dense(2)])
    model.save(str(tmp_path / "custom"))
    with pytest.raises(scan.UntrustedModelError, match="of class someone_else>Doubler"):
        models.load(str(tmp_path / "custom"))
    assert models.load(str(tmp_path / "custom"), trust=True).output_shape == (None, 2)


@pytest.mark.slow
@pytest.mark.parametrize("arch, overrides", [("fcn1", {"width": 16}), ("fcn2", {"width": 16}),
                                             ("alexnet", {"fc_units": 16, "inflation": 1}), ("resnet20", {}),
                                             ("alexnet_imagenet", {"fc_units": 16})])
def test_every_tfdisc_model_loads_without_trust(tmp_path, arch, overrides):
    for precision in models.PRECISIONS:
        model = models.build_model(arch, precision=precision, input_bits=2, **overrides)
        export.save(model, tmp_path / precision)
        assert scan.untrusted_parts(str(tmp_path / precision)) == []
        assert models.load(str(tmp_path / precision)).name == model.name


def test_a_script_refuses_a_lambda_model_in_one_line(lambda_model):
    path, marker = lambda_model
    _one_line(_script("scripts/evaluate.py", f"--model={path}", "--dataset=mnist"), "error: --model:")
    _one_line(_script("scripts/export.py", f"--model={path}"), "of class Lambda")
    assert not marker.exists()


# ---- other people's files -------------------------------------------------------------------------------------

def test_save_keeps_other_files_and_refuses_a_folder_of_them(tmp_path):
    model = models.build_model("fcn2", width=8, depth=1)
    folder = tmp_path / "theirs"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds other files .* and no SavedModel"):
        export.save(model, folder)
    export.save(model, folder, overwrite=True)
    export.save(model, folder)  # a SavedModel is there now: replaced, the notes kept
    assert (folder / "notes.txt").read_text() == "mine" and (folder / "saved_model.pb").is_file()
    assert models.load(str(folder)).name == model.name
    link = tmp_path / "link"
    link.symlink_to(folder)
    with pytest.raises(ValueError, match="is a symbolic link"):
        export.save(model, link)


def _config(tmp_path, **changes):
    return runs.RunConfig(**{"dataset": "mnist", "arch": "fcn2", "epochs": 1, "train_examples": 300,
                             "test_examples": 100, "batch_size": 100, "export": False, "sweep_eps": (0.0, 0.1),
                             "jit_compile": False, "data_dir": str(require_data().parent),
                             "output_dir": str(tmp_path / "runs"), **changes})


def test_a_run_folder_or_lock_that_is_a_link_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "config.json").write_text("someone's")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "linked").symlink_to(elsewhere)
    with pytest.raises(runs.RunError, match="is a symbolic link; tfdisc never writes through links"):
        experiment.run(_config(tmp_path, run_name="linked"))
    (tmp_path / "runs" / "locked").mkdir()
    (tmp_path / "runs" / "locked" / ".lock").symlink_to(elsewhere / "config.json")
    with pytest.raises(runs.RunError, match="is a symbolic link"):
        experiment.run(_config(tmp_path, run_name="locked"))
    assert (elsewhere / "config.json").read_text() == "someone's"
    with pytest.raises(ValueError, match="is a symbolic link"):
        with files.exclusive_lock(str(tmp_path / "runs" / "locked" / ".lock"), "test"):
            pass


@pytest.mark.slow
@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "history.csv").write_text("epoch,loss,epoch_seconds\n1,0.5,abc\n"),
     r"history.csv, line 2: field epoch_seconds is 'abc', not a number"),
    (lambda d: (d / "history.csv").write_text("loss\n0.5\n"), "history.csv has no 'epoch' column"),
    (lambda d: (d / "history.csv").write_text("epoch,loss\n1,0.5\n\x00\x01garbage\n"), "history.csv, line 3"),
    (lambda d: (d / "config.json").write_text('{"flags": {"arch": "fc'), "config.json is not valid JSON"),
    (lambda d: (d / "config.json").write_text("null"), "config.json has no 'flags' object"),
    (lambda d: (d / "config.json").write_text('{"epochs": 1}'), "config.json has no 'flags' object"),
    (lambda d: (d / "config.json").write_text(json.dumps({"flags": {**json.loads((d / "config.json").read_text())[
        "flags"], "precision": "bnn"}})), "does not fit the model this run builds"),
])
def test_damaged_records_fail_before_training_and_name_the_file(tmp_path, damage, message):
    config = _config(tmp_path, run_name="run")
    experiment.run(config)
    run_dir = Path(config.output_dir) / "run"
    (run_dir / "results.json").unlink()
    damage(run_dir)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    resumed = _config(tmp_path, run_name="run", epochs=2, resume=True,
                      **({"precision": "bnn"} if "fit the model" in message else {}))
    with pytest.raises(ValueError, match=message):
        experiment.run(resumed)
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
    assert not (run_dir / "checkpoints" / "ckpt-2.index").exists()


def test_a_full_disk_leaves_no_partial_checkpoint_and_no_history_row(tmp_path):
    config = _config(tmp_path, run_name="full", epochs=2)
    original = tf.train.CheckpointManager.save

    def disk_full(manager, checkpoint_number=None, **kwargs):
        if checkpoint_number == 2:
            temp = Path(manager.directory) / "ckpt-2_temp"
            temp.mkdir()
            (temp / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\0" * 1000)
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(manager, checkpoint_number=checkpoint_number, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tf.train.CheckpointManager, "save", disk_full)
        with pytest.raises(OSError, match="Could not write the checkpoint of epoch 2 .* partial checkpoint was "
                                          "removed. Free disk space"):
            experiment.run(config)
    run_dir = Path(config.output_dir) / "full"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir() if p.name.startswith("ckpt-2")) == []
    assert [row.split(",")[0] for row in (run_dir / "history.csv").read_text().split()] == ["epoch", "1"]
    assert not (run_dir / "history.csv.pending").exists()
    assert experiment.run(_config(tmp_path, run_name="full", epochs=2, resume=True)).resumed_from_epoch == 1


def test_a_full_disk_in_a_script_is_one_line():
    error = OSError(errno.ENOSPC, "No space left on device", "/runs/x/results.json")
    assert cli._one_line(error) == ("No space left on device (/runs/x/results.json). Free some disk space and run "
                                    "again (with --resume for a run).")


# ---- wrong answers and wrong records ----------------------------------------------------------------------------

def test_an_unsorted_eps_list_is_sorted_once_where_it_is_read(trained_fcn, mnist_small):
    _, _, x, y = mnist_small
    report = evaluation.robustness_report(trained_fcn, (x[:50], y[:50]), [0.3, 0, 0.1, 0.1], attacks=("fgsm",))
    assert report["eps"] == [0.0, 0.1, 0.3] and not report["masking_suspected"]
    assert eps_lib.parse("0.3,0,0.1,8/255") == [0.0, 8 / 255, 0.1, 0.3]


@pytest.mark.slow
def test_records_say_what_was_used_and_resume_refuses_another_subset(tmp_path):
    record = experiment.run(_config(tmp_path, run_name="all", train_examples=100_000, subset="first"))
    assert record.train_examples == 60000  # as used, not as asked
    with pytest.raises(runs.RunError, match="--subset: run has 'first', now 'random'"):
        experiment.run(_config(tmp_path, run_name="all", train_examples=100_000, epochs=2, resume=True))


@pytest.mark.slow
def test_a_failed_start_leaves_no_run_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        experiment.run(_config(tmp_path, run_name="typo", data_dir=str(tmp_path / "dtaa")))
    assert not (tmp_path / "runs" / "typo").exists()


# ---- one clear line, never a traceback -------------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"", b"not a flatbuffer at all", b"TFL3" + b"\0" * 12])
def test_a_file_that_is_no_flatbuffer_is_named(tmp_path, content):
    (tmp_path / "model.tflite").write_bytes(content)
    with pytest.raises(export.ExportError, match=r"model.tflite: These \d+ bytes are not a TFLite flatbuffer"):
        export.TFLiteModel(str(tmp_path / "model.tflite"))


def test_evaluate_checks_its_output_before_it_evaluates(tmp_path):
    (tmp_path / "report").mkdir()
    result = _script("scripts/evaluate.py", "--model=/nonexistent", f"--output={tmp_path / 'report'}")
    _one_line(result, "error: --output: ")
    assert "is a folder" in result.stderr


def test_export_checks_its_target_before_it_converts(tmp_path):
    model = models.build_model("fcn2", width=8, depth=1)
    export.save(model, tmp_path / "run" / "saved_model")
    (tmp_path / "run" / "model.tflite").mkdir()  # someone's folder where the flatbuffer would go
    _one_line(_script("scripts/export.py", f"--model={tmp_path / 'run'}", "--format=tflite"),
              "error: the flatbuffer: ")
    assert (tmp_path / "run" / "model.tflite").is_dir()


@pytest.mark.parametrize("make, message", [
    (lambda d: gzip.open(d / "train-images-idx3-ubyte.gz", "wb").write(b"\0\0\x08\x03" + (2).to_bytes(4, "big")
                                                                           + (28).to_bytes(4, "big") * 2 + b"\0" * 9),
     "it is truncated"),
    (lambda d: (d / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b\x08garbage"), "is not a readable gzip file"),
])
def test_a_corrupt_idx_file_is_named(tmp_path, make, message):
    make(tmp_path)
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\0\0\x08\x01" + (2).to_bytes(4, "big")
                                                                        + b"\0\1"))
    with pytest.raises(ValueError, match=message):
        datasets.load_arrays("fashion_mnist", "train", data_dir=str(tmp_path), download=False)


def test_zero_examples_fail_before_training(tmp_path):
    empty = np.zeros((0, 28, 28), np.uint8)
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((10, 28, 28), np.uint8), y_train=np.zeros(10, np.uint8),
             x_test=empty, y_test=np.zeros(0, np.uint8))
    with pytest.raises(runs.RunError, match="holds 10 training and 0 test examples here"):
        experiment.run(_config(tmp_path, data_dir=str(tmp_path), run_name="empty"))
    assert not (tmp_path / "runs" / "empty").exists()


def test_one_hot_labels_are_named_with_the_fix():
    with pytest.raises(checks.InvalidInputError, match=r"got shape \(4, 10\) \(one-hot labels\? pass np.argmax"):
        checks.labels(np.eye(10)[:4], 10)


@pytest.mark.parametrize("args, message", [
    (["--epochs=0"], "--epochs=0"),
    (["--data_dir=" + __file__], "is a file, not a folder"),
    (["--sweep_eps=abc"], "Cannot read eps 'abc'"),
])
def test_bad_flags_are_one_line(tmp_path, args, message):
    _one_line(_script("experiments/mnist.py", f"--output_dir={tmp_path}", *args), message)
    assert not any(tmp_path.iterdir())


def test_an_lce_model_takes_an_empty_batch(tmp_path):
    pytest.importorskip("larq_compute_engine")
    model = models.build_model("fcn2", precision="bnn", width=32, depth=2)
    export.to_lce(model, tmp_path / "model_lce.tflite")
    logits = export.TFLiteModel(str(tmp_path / "model_lce.tflite"))(np.zeros((0, 28, 28, 1), np.float32))
    assert logits.shape == (0, 10)


def test_helpfull_is_not_needed_for_a_scripts_own_flags():
    result = _script("experiments/mnist.py", "--help")
    assert result.returncode == 0 and "training:" in result.stdout and "--recipe" in result.stdout
    assert "--logtostderr" not in result.stdout and "--test_srcdir" not in result.stdout  # absl's own flags


def test_run_config_from_flags_decodes_once(tmp_path):
    cli.define_experiment_flags("mnist")
    if not flags.FLAGS.is_parsed():
        flags.FLAGS(["test"])
    with flagsaver.flagsaver(bnn=True, input_bits=2, sweep_eps="0.3,0,0.1"):
        config = cli.run_config(flags.FLAGS, "mnist")
    assert config.precision == "bnn" and config.sweep_eps == (0.0, 0.1, 0.3) and config.name == "mnist_fcn2_bnn_2b_s0"
