"""The experiment scripts end to end: mock TFDS data for every data set, real MNIST, resume, bad flags."""

import csv
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import flags
from absl.testing import flagsaver

from helpers import accuracy, require_data

from tfdisc import cli, datasets, experiment, presets, runs

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"

mnist = "mnist"
pytestmark = pytest.mark.slow

SCRIPTS = {"mnist": "mnist", "fashion_mnist": "fashion_mnist", "cifar10": "cifar10", "cifar100": "cifar100",
           "imagenet": "imagenet2012"}
RESULT_KEYS = {"dataset", "arch", "precision", "input_bits", "adv_train", "clean_accuracy", "test_examples",
               "sweep", "train_seconds", "versions"}


def run_script(dataset, **overrides):
    """Run `dataset`'s experiment in-process with `overrides` on top of its flags' defaults; return results.json."""
    cli.define_experiment_flags(dataset)
    if not flags.FLAGS.is_parsed():
        flags.FLAGS(["test"])
    with flagsaver.flagsaver(**overrides):
        config = cli.run_config(flags.FLAGS, dataset)
    experiment.run(config)
    run_dir = Path(config.output_dir) / config.name
    return json.loads((run_dir / "results.json").read_text()), run_dir


@pytest.mark.parametrize("name, precision", [("mnist", "bnn"), ("fashion_mnist", "full"),
                                             pytest.param("cifar10", "bnn", marks=pytest.mark.isolated),
                                             ("cifar100", "xnor"), pytest.param("imagenet", "xnor",
                                                                                marks=pytest.mark.isolated)])
def test_every_script_runs_one_epoch_on_mock_data(tmp_path, name, precision):
    (tmp_path / "tfds").mkdir()
    with tfds.testing.mock_data(num_examples=8):
        # CIFAR-100 and ImageNet, whose real budgets are GPU work, run under MirroredStrategy over the two logical
        # CPU devices of conftest.py, as on a multi-GPU machine. XLA only in the isolated MNIST-sized runs: every
        # XLA-compiled run keeps about 70 MB in this process (TensorFlow never evicts its XLA cache).
        distributed = name in ("cifar100", "imagenet")
        results, run_dir = run_script(
            SCRIPTS[name], precision=precision, epochs=1, batch_size=4, input_bits=2, adv_train=True,
            train_examples=8, test_examples=8, jit_compile=False,
            distribute="mirrored" if distributed else "none", cpu_devices=2 if distributed else 1,
            data_dir=str(tmp_path / "tfds"), output_dir=str(tmp_path / "runs"), sweep_eps="0,8/255", export=False,
            recipe="reference" if name.startswith("cifar") else "constant")  # reference: augmented CIFAR batches
    assert results["dataset"] == SCRIPTS[name] and results["precision"] == precision
    assert results["replicas"] == (2 if distributed else 1)
    assert results["adv_settings"] == {"eps": presets.get(SCRIPTS[name]).adv_eps,
                                       "alpha": presets.get(SCRIPTS[name]).adv_alpha, "ratio": 0.5}
    assert results["test_examples"] == 8 and len(results["sweep"]["accuracy"]) == 2
    for file in ("config.json", "history.csv", "accuracy_vs_eps.png", "model_summary.txt"):
        assert (run_dir / file).is_file(), file
    assert results["certified"] is None
    assert (run_dir / "tensorboard").is_dir() and (run_dir / "checkpoints").is_dir()


def test_fcn2_on_real_mnist_with_2bit_inputs(tmp_path):
    results, run_dir = run_script(mnist, arch="fcn2", input_bits=2, epochs=1, data_dir=str(require_data().parent),
                                  output_dir=str(tmp_path), sweep_every=0)
    assert RESULT_KEYS <= set(results)
    assert results["sweep"]["attack"] == "fgsm" and results["sweep"]["gradient"] == "identity"
    assert results["sweep"]["eps"] == pytest.approx(presets.get("mnist").sweep_eps)
    assert results["test_examples"] == 10000
    assert results["clean_accuracy"] >= 0.95
    sweep = results["sweep"]["accuracy"]
    assert sweep[0] == pytest.approx(results["clean_accuracy"])
    assert all(later <= earlier + 0.005 for earlier, later in zip(sweep, sweep[1:]))

    reloaded = tf.keras.models.load_model(str(run_dir / "saved_model"))
    with np.load(require_data()) as data:
        x, y = (data["x_test"][..., None] / 255.0).astype(np.float32), data["y_test"]
    assert accuracy(reloaded, x, y) == pytest.approx(results["clean_accuracy"], abs=1e-4)
    config = json.loads((run_dir / "config.json").read_text())
    assert config["flags"]["input_bits"] == 2 and "tensorflow" in config["versions"]


def test_resumed_run_ends_like_an_uninterrupted_one(tmp_path):
    common_flags = dict(arch="fcn2", adv_train=True, train_examples=2000, test_examples=500, batch_size=100,
                        data_dir=str(require_data().parent), output_dir=str(tmp_path), export=False, sweep_eps="0,0.1,0.2",
                        jit_compile=False)  # resuming under XLA: test_a_kill_at_any_point_then_resume...
    straight, _ = run_script(mnist, epochs=2, run_name="straight", **common_flags)
    first, run_dir = run_script(mnist, epochs=1, run_name="resumed", **common_flags)
    resumed, _ = run_script(mnist, epochs=2, run_name="resumed", resume=True, **common_flags)
    assert resumed["resumed_from_epoch"] == 1
    assert resumed["train_seconds"] > first["train_seconds"] > 0  # history.csv keeps the first epoch's time
    assert resumed["clean_accuracy"] == straight["clean_accuracy"] != first["clean_accuracy"]
    assert resumed["sweep"]["accuracy"] == straight["sweep"]["accuracy"]
    with open(run_dir / "history.csv") as f:
        assert [line.split(",")[0] for line in f.read().splitlines()] == ["epoch", "1", "2"]


def test_robustness_report_flags_a_masked_discretization(tmp_path):
    base = dict(arch="fcn2", epochs=1, train_examples=2000, test_examples=300, data_dir=str(require_data().parent),
                output_dir=str(tmp_path), sweep_every=0, sweep_eps="0,0.1,0.3,0.5", jit_compile=False)
    _, surrogate = run_script(mnist, run_name="surrogate", **base)
    results, run_dir = run_script(mnist, run_name="masked", input_bits=2, gradient="zero", export=False,
                                  attacks=["fgsm", "pgd", "square", "transfer"], surrogate=str(surrogate),
                                  pgd_steps=5, pgd_restarts=1, square_queries=150, attack_examples=200, **base)
    assert results["sweep"]["gradient"] == "zero" and results["robustness"]["examples"] == 200
    assert set(results["attacks"]) == {"fgsm", "pgd", "square", "transfer"}
    assert results["sweep"]["accuracy"] == [results["clean_accuracy"]] * 4  # FGSM sees a zero gradient
    assert results["attacks"]["transfer"]["accuracy"][-1] < 0.2
    assert results["masking_suspected"]
    assert not next(c for c in results["checks"] if c["check"] == "nonzero_gradients")["passed"]
    assert len(results["worst_case"]["accuracy"]) == 4


def test_mirrored_over_two_cpus_matches_one_device(tmp_path):
    base = dict(arch="fcn2", epochs=1, train_examples=3000, test_examples=1000, batch_size=100, adv_train=True,
                data_dir=str(require_data().parent), output_dir=str(tmp_path), export=False, sweep_every=0, sweep_eps="0,0.1")
    single, _ = run_script(mnist, run_name="single", **base)
    mirrored, _ = run_script(mnist, run_name="mirrored", distribute="mirrored", cpu_devices=2, **base)
    assert single["replicas"] == 1 and mirrored["replicas"] == 2
    assert abs(mirrored["clean_accuracy"] - single["clean_accuracy"]) < 0.03
    assert abs(mirrored["sweep"]["accuracy"][1] - single["sweep"]["accuracy"][1]) < 0.05


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.exclusive  # two TensorFlow workers
def test_multi_worker_on_loopback(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    workers = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        workers.append(subprocess.Popen(
            [sys.executable, str(EXPERIMENTS / "mnist.py"), "--distribute=multi_worker", "--epochs=1",
             "--train_examples=400", "--test_examples=200", "--batch_size=50", "--sweep_every=0", "--sweep_eps=0,0.1",
             f"--data_dir={require_data().parent}", f"--output_dir={tmp_path}", "--run_name=multi"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outputs = [worker.communicate()[0] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
    assert [w.returncode for w in workers] == [0, 0], outputs[0][-3000:] + outputs[1][-3000:]
    results = json.loads((tmp_path / "multi" / "results.json").read_text())  # only the chief writes here
    assert results["replicas"] == 2
    assert sorted(path.name for path in tmp_path.iterdir()) == ["multi"]  # the other worker cleaned up
    single, _ = run_script(mnist, distribute="none", epochs=1, train_examples=400, test_examples=200, batch_size=50,
                           sweep_every=0, sweep_eps="0,0.1", data_dir=str(require_data().parent),
                           output_dir=str(tmp_path / "single"), run_name="single", export=False)
    assert abs(results["clean_accuracy"] - single["clean_accuracy"]) < 0.05  # the same training, synchronised
    reloaded = tf.keras.models.load_model(str(tmp_path / "multi" / "saved_model"))
    with np.load(require_data()) as data:
        keep = datasets.subset(10000, 200)
        x, y = (data["x_test"][keep][..., None] / 255.0).astype(np.float32), data["y_test"][keep]
    assert accuracy(reloaded, x, y) == pytest.approx(results["clean_accuracy"], abs=1e-9)


def test_a_finished_run_is_not_overwritten_without_resume(tmp_path):
    overrides = dict(arch="fcn2", epochs=1, train_examples=200, test_examples=100, data_dir=str(require_data().parent),
                     output_dir=str(tmp_path), export=False, run_name="once")
    run_script(mnist, **overrides)
    with pytest.raises(ValueError, match="already holds a run; pass --resume"):
        run_script(mnist, **overrides)


@pytest.mark.parametrize("args, message", [
    (["--input_bits=9"], "--input_bits=9: 9 is not an integer in the range [1, 8]"),
    (["--arch=vgg16"], "value should be one of <fcn1|fcn2|alexnet|resnet20|alexnet_imagenet>"),
    (["--sweep_eps=0,-0.1"], "eps -0.1 is outside [0, 1]"),
    (["--adv_eps=-0.1"], "--adv_eps=-0.1: -0.1 is not a number in the range [0, 1]"),
    (["--bnn", "--xnor"], "--bnn and --xnor exclude each other"),
    (["--data_dir=/usr", "--nodownload"], "error: Could not find mnist. Looked in: /usr/mnist.npz"),
    (["--attacks=fgsm,transfer"], "--attacks=transfer needs --surrogate"),
    (["--attacks=fgsm,cw"], "--attacks must be a comma list of fgsm, pgd, apgd-ce, apgd-dlr, apgd-t, square, transfer, "
                                "discrete, autoattack"),
    (["--surrogate=/nonexistent", "--attacks=transfer", "--data_dir=/nonexistent"], "--surrogate: no SavedModel at"),
    (["--learning_rate=nan"], "--learning_rate=nan must be a finite number > 0"),
    (["--learning_rate=inf"], "--learning_rate=inf must be a finite number > 0"),
    (["--sweep_eps=0,1/0"], "--sweep_eps: Cannot read eps '1/0'"),
    (["--precision=xnor", "--bnn"], "error: --precision=xnor contradicts --bnn; give one of them."),
    (["--run_name=../escaped"], "error: --run_name='../escaped' must be a plain folder name inside --output_dir"),
    (["--data_dir=/nonexistent/dtaa"], "error: The data folder '/nonexistent/dtaa' does not exist."),
])
def test_bad_flags_exit_with_one_clear_line(tmp_path, args, message):
    result = subprocess.run([sys.executable, str(EXPERIMENTS / "mnist.py"), "--epochs=1", f"--output_dir={tmp_path}",
                             *args], capture_output=True, text=True)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not [line for line in result.stderr.splitlines() if line.startswith(("E0000", "W0000", "I0000"))]


# Graph mode, except where a run is compared with `uninterrupted` (XLA, the scripts' default): compiling costs more here.
SHORT = dict(arch="fcn2", train_examples=600, test_examples=200, batch_size=100, export=False, sweep_eps="0,0.1",
             jit_compile=False)


class Killed(BaseException):
    """Stands in for SIGKILL: nothing of tfdisc catches it."""


def _short(tmp_path, **overrides):
    return {**SHORT, "data_dir": str(require_data().parent), "output_dir": str(tmp_path), **overrides}


def test_an_ibp_trained_run_records_its_budget_and_stays_out_of_the_report(tmp_path):
    from tfdisc import reporting

    results, run_dir = run_script(mnist, epochs=3, input_bits=2, ibp_train=True, ibp_eps=0.05, certify="ibp",
                                  **_short(tmp_path))
    assert run_dir.name == "mnist_fcn2_full_2b_ibp_s0"
    assert results["ibp_settings"] == {"eps": 0.05, "kappa": 0.5} and results["adv_settings"] is None
    certified = results["certified"]  # --certify: the lower bound beside the attacks' upper bound
    assert certified["bound"] == "ibp" and certified["eps"] == results["worst_case"]["eps"] == [0.0, 0.1]
    assert all(0 < c <= w for c, w in zip(certified["accuracy"], results["worst_case"]["accuracy"]))
    assert certified["gap"] == pytest.approx([w - c for c, w in zip(certified["accuracy"],
                                                                    results["worst_case"]["accuracy"])])
    with open(run_dir / "history.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["verified_loss"]) > 0 for r in rows] == [True] * 3
    assert float(rows[0]["val_certified_accuracy"]) == pytest.approx(float(rows[0]["val_accuracy"]))  # ε still 0
    with pytest.raises(reporting.RecordError, match="is trained with IBP .* move it out of"):
        reporting.build_report(tmp_path, tmp_path / "REPORT.md", study_path=str(tmp_path / "study.csv"))


def test_a_model_at_chance_is_named_and_a_collapsed_ibp_run_gets_the_remedy():
    assert experiment.chance_warning(0.9, 10) is None and experiment.chance_warning(0.16, 10) is None
    assert experiment.chance_warning(0.1135, 10).startswith("Clean accuracy 11.3% is at chance (10%)")
    assert "lower --ibp_eps" in experiment.chance_warning(0.1135, 10, ibp_train=True)
    assert "ibp" not in experiment.chance_warning(0.1135, 10)


def test_resume_refuses_another_configuration_and_keeps_the_run(tmp_path):
    _, run_dir = run_script(mnist, epochs=1, run_name="run", **_short(tmp_path))
    before = {name: (run_dir / name).read_text() for name in ("config.json", "history.csv", "results.json")}
    with pytest.raises(runs.RunError, match=r"--precision: run has 'full', now 'bnn'; --input_bits: run has 8, now 2"):
        run_script(mnist, epochs=2, run_name="run", resume=True, bnn=True, input_bits=2, **_short(tmp_path))
    assert {name: (run_dir / name).read_text() for name in before} == before


def test_resume_reads_a_flag_newer_than_the_run_as_its_default(tmp_path):
    _, run_dir = run_script(mnist, epochs=1, run_name="run", **_short(tmp_path))
    config = json.loads((run_dir / "config.json").read_text())
    del config["flags"]["recipe"]  # as written before --recipe existed
    (run_dir / "config.json").write_text(json.dumps(config))
    (run_dir / "results.json").unlink()
    results, _ = run_script(mnist, epochs=2, run_name="run", resume=True, **_short(tmp_path))
    assert results["epochs"] == 2 and results["recipe"] == "constant"
    with pytest.raises(runs.RunError, match=r"--recipe: run has 'constant', now 'reference'"):
        run_script(mnist, epochs=3, run_name="run", resume=True, recipe="reference", **_short(tmp_path))


def test_a_second_run_into_a_busy_directory_is_refused(tmp_path):
    import fcntl

    (tmp_path / "busy").mkdir()
    with open(tmp_path / "busy" / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(runs.RunError, match="is in use by another process"):
            run_script(mnist, epochs=1, run_name="busy", **_short(tmp_path))
    assert not (tmp_path / "busy" / "config.json").exists()


@pytest.mark.parametrize("output_dir, message", [("a_file", "is a file, not a folder"),
                                                 ("/proc/tfdisc-runs", "Cannot write runs under")])
def test_an_unusable_output_dir_fails_before_any_work(tmp_path, output_dir, message):
    (tmp_path / "a_file").write_text("")
    output_dir = output_dir if output_dir.startswith("/") else str(tmp_path / output_dir)
    with pytest.raises(runs.RunError, match=message):
        run_script(mnist, epochs=1, **{**_short(tmp_path), "output_dir": output_dir})


def _kill_in_epoch(patch, target, name, epoch, before=None):
    """Make `target.name` raise Killed on its `epoch`-th call (one call per epoch), running `before(self)` first."""
    original, calls = getattr(target, name), []

    def killing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == epoch:
            if before:
                before(self, original, *args, **kwargs)
            raise Killed()
        return original(self, *args, **kwargs)

    patch.setattr(target, name, killing)


def _save_without_updating_the_state_file(manager, original, *args, **kwargs):
    """A checkpoint whose files are written but whose `checkpoint` state file still names the previous one."""
    state = Path(manager.directory) / "checkpoint"
    previous = state.read_bytes()
    original(manager, *args, **kwargs)
    state.write_bytes(previous)


def _interruptible(tmp_path, jit_compile):
    return _short(tmp_path, adv_train=True, export=True, jit_compile=jit_compile)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """uninterrupted(jit_compile): two epochs of a short adversarial run, what every interrupted one must end as."""
    runs = {}

    def run(jit_compile):
        if jit_compile not in runs:
            runs[jit_compile] = run_script(mnist, epochs=2, run_name="straight", **_interruptible(
                tmp_path_factory.mktemp("uninterrupted"), jit_compile))[0]
        return runs[jit_compile]

    return run


# One kill point under XLA, the scripts' default; the file-level ones in graph mode, which keeps no XLA cache.
@pytest.mark.parametrize("point, jit_compile", [("before_history_row", True), ("in_checkpoint_save", False),
                                                ("in_export", False)])
def test_a_kill_at_any_point_then_resume_ends_like_an_uninterrupted_run(tmp_path, point, jit_compile, uninterrupted):
    from tfdisc import callbacks, files

    run, straight = _interruptible(tmp_path, jit_compile), uninterrupted(jit_compile)
    with pytest.MonkeyPatch.context() as patch:
        if point == "before_history_row":  # epoch 2's checkpoint is complete; its history row is still pending
            write_rows = callbacks._write_rows

            def killed_at_epoch_2(path, rows):
                if rows and int(rows[-1]["epoch"]) == 2:
                    raise Killed()
                write_rows(path, rows)
            patch.setattr(callbacks, "_write_rows", killed_at_epoch_2)
        elif point == "in_checkpoint_save":
            _kill_in_epoch(patch, tf.train.CheckpointManager, "save", epoch=2,
                           before=_save_without_updating_the_state_file)
        else:  # the SavedModel is half written: saved_model.pb without keras_metadata.pb
            def half_export(model, path, **options):
                with files.atomic_directory(path) as tmp:
                    (Path(tmp) / "saved_model.pb").write_bytes(b"partial")
                    raise Killed()
            patch.setattr(experiment.export, "save", half_export)
        with pytest.raises(Killed):
            run_script(mnist, epochs=2, run_name="killed", **run)
    assert not (tmp_path / "killed" / "saved_model").exists()
    resumed, run_dir = run_script(mnist, epochs=2, run_name="killed", resume=True, **run)
    assert resumed["clean_accuracy"] == straight["clean_accuracy"]
    assert resumed["sweep"]["accuracy"] == straight["sweep"]["accuracy"]
    with open(run_dir / "history.csv") as f:
        assert [line.split(",")[0] for line in f.read().splitlines()] == ["epoch", "1", "2"]
    reloaded = tf.keras.models.load_model(str(run_dir / "saved_model"))
    assert reloaded.name == "fcn2_full_8b"


def test_a_run_stopped_in_its_robustness_report_resumes_the_report_where_it_stopped(tmp_path, uninterrupted):
    from tfdisc.evaluation import checkpoint

    run, saved = _interruptible(tmp_path, jit_compile=False), []
    with pytest.MonkeyPatch.context() as patch:
        put = checkpoint.ReportCheckpoint.put

        def stop_after_one_unit(self, *args, **kwargs):
            if self.units:
                raise Killed()
            saved.append(args[:2])
            put(self, *args, **kwargs)
        patch.setattr(checkpoint.ReportCheckpoint, "put", stop_after_one_unit)
        with pytest.raises(Killed):
            run_script(mnist, epochs=2, run_name="stopped", **run)
    run_dir = tmp_path / "stopped"
    assert saved == [(0, 0.0)]
    assert list(json.loads((run_dir / "report_checkpoint.json").read_text())["units"]) == ["0@0.0"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(checkpoint.ReportCheckpoint, "put", lambda self, batch, eps, *args, **kwargs: saved.append(
            (batch, eps)) or put(self, batch, eps, *args, **kwargs))
        resumed, _ = run_script(mnist, epochs=2, run_name="stopped", resume=True, **run)
    assert saved == [(0, 0.0), (0, 0.1)]  # the finished unit is not attacked again
    straight = uninterrupted(False)
    for key in ("clean_accuracy", "sweep", "attacks", "worst_case", "checks"):
        assert resumed[key] == straight[key], key
    assert not (run_dir / "report_checkpoint.json").exists()  # its units are in results.json


def test_ctrl_c_names_the_epoch_and_step_and_resume_continues(tmp_path, uninterrupted):
    from tfdisc import callbacks

    class InterruptedTimer(callbacks.EpochTimer):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations.numpy() == 6 + 3:  # 6 steps an epoch: epoch 2, step 3
                raise KeyboardInterrupt

    run = _interruptible(tmp_path, jit_compile=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(callbacks, "EpochTimer", InterruptedTimer)
        with pytest.raises(KeyboardInterrupt, match=r"Interrupted at epoch 2, step 3\. Epochs 1..1 are checkpointed"):
            run_script(mnist, epochs=2, run_name="ctrl_c", **run)
    resumed, _ = run_script(mnist, epochs=2, run_name="ctrl_c", resume=True, **run)
    assert resumed["resumed_from_epoch"] == 1 and resumed["clean_accuracy"] == uninterrupted(False)["clean_accuracy"]


def test_ctrl_c_in_the_first_epoch_says_nothing_is_checkpointed(tmp_path):
    from tfdisc import callbacks

    class InterruptedTimer(callbacks.EpochTimer):
        def on_train_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations.numpy() == 2:
                raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(callbacks, "EpochTimer", InterruptedTimer)
        with pytest.raises(KeyboardInterrupt, match=r"Interrupted at epoch 1, step 2\. No epoch had finished, so "
                                                    r"nothing is checkpointed; rerun the same command with --resume"):
            run_script(mnist, epochs=2, run_name="early", **_short(tmp_path))
    assert not (tmp_path / "early" / "checkpoints").exists() or not any((tmp_path / "early" / "checkpoints").iterdir())


def test_config_records_the_precision_the_run_uses(tmp_path):
    _, run_dir = run_script(mnist, epochs=1, bnn=True, **_short(tmp_path))
    config = json.loads((run_dir / "config.json").read_text())
    assert config["flags"]["precision"] == "bnn" and "bnn" not in config["flags"]
    assert run_dir.name == "mnist_fcn2_bnn_8b_s0"
    umask = os.umask(0)
    os.umask(umask)
    assert (run_dir / "config.json").stat().st_mode & 0o777 == 0o666 & ~umask


def test_divergence_stops_with_a_clear_error(tmp_path):
    from tfdisc.callbacks import TrainingDiverged

    with pytest.raises(TrainingDiverged, match="Training diverged in epoch 1: the loss is nan. Lower the learning rate"):
        run_script(mnist, epochs=2, learning_rate=1e30, optimizer="sgd", **_short(tmp_path))


@pytest.mark.parametrize("cpu_flags, policy", [(set(), "float32"), ({"amx_bf16"}, "mixed_bfloat16")])
def test_mixed_precision_follows_the_cpu_and_is_recorded(tmp_path, caplog, cpu_flags, policy):
    from tfdisc import cpu

    with pytest.MonkeyPatch.context() as patch, caplog.at_level("WARNING", logger="tfdisc.cpu"):
        patch.setattr(cpu, "cpu_flags", lambda: cpu_flags)
        try:
            results, run_dir = run_script(mnist, epochs=1, bnn=True, mixed_precision=True, **_short(tmp_path))
        finally:
            cpu.set_policy("float32")
    assert results["compute_policy"] == policy
    assert json.loads((run_dir / "config.json").read_text())["flags"]["mixed_precision"] is True
    warnings = [r.getMessage() for r in caplog.records]
    assert (warnings == []) if policy == "mixed_bfloat16" else ("no bfloat16 instructions" in warnings[0])
    assert results["clean_accuracy"] > 0.3  # trained, not garbage


def test_per_epoch_sweeps_use_a_subset_and_the_final_sweep_every_test_example(tmp_path):
    from tfdisc import evaluation

    seen = []
    original = evaluation.FgsmSweep.__call__

    def recording(self, data, eps_values):
        result = original(self, data, eps_values)
        seen.append(result["examples"])
        return result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(evaluation.FgsmSweep, "__call__", recording)
        results, run_dir = run_script(mnist, epochs=2, sweep_examples=50, **_short(tmp_path))
        # The report's FGSM on every test example is the final sweep, so no FgsmSweep runs after training.
        assert seen == [50, 50] and results["test_examples"] == results["robustness"]["examples"] == 200
        assert results["sweep"]["accuracy"] == results["attacks"]["fgsm"]["accuracy"]
        # A report on fewer examples leaves the final sweep to run on its own, over every test example.
        results = run_script(mnist, epochs=1, sweep_every=0, attack_examples=30, **_short(tmp_path, run_name="part"))[0]
        assert seen == [50, 50, 200] and results["test_examples"] == 200 and results["robustness"]["examples"] == 30
    with open(run_dir / "history.csv") as f:
        rows = list(csv.DictReader(f))
    assert all(0 <= float(row["val_sweep/fgsm/eps=0.1"]) <= 1 for row in rows)


def test_reference_recipe_trains_records_and_refuses_its_own_flags(tmp_path):
    results, run_dir = run_script(mnist, epochs=1, recipe="reference", **_short(tmp_path))
    assert results["recipe"] == "reference" and results["adv_settings"] is None and results["train_examples"] == 600
    assert results["clean_accuracy"] > 0.3 and "CPU cores" in results["machine"]  # 6 SGD steps; chance is 0.1
    with open(run_dir / "history.csv", newline="") as f:
        assert float(next(csv.DictReader(f))["lr"]) == pytest.approx(1e-2)
    with pytest.raises(runs.RunError, match="--recipe=reference sets the optimizer and its learning rates; drop "
                                              "--learning_rate"):
        run_script(mnist, epochs=1, recipe="reference", learning_rate=0.1, run_name="again", **_short(tmp_path))
