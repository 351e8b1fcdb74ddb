"""Shared flags and the one training-and-evaluation run behind every experiments/<dataset>.py.

`define_flags(dataset)` defines every flag with the data set's preset (`tfdisc.presets`) as
defaults; `run(flags_obj)` trains, evaluates and writes the run directory; `main` is the absl
entry point that turns every expected failure into one line on stderr.
"""

import contextlib
import csv
import fcntl
import importlib.metadata
import io
import json
import math
import os
import platform
import shutil
import sys
import tempfile


os.environ.setdefault("TFDISC_QUIET", "1")  # TensorFlow's C++ start-up lines; TFDISC_QUIET=0 shows them
# TensorFlow's pooling (BFC) CPU allocator: read once, at start; 1.1-2x faster steps (scripts/benchmark_training.py)
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

import tfdisc  # noqa: E402  (selects legacy Keras before TensorFlow loads it)
import tensorflow as tf  # noqa: E402
import larq as lq  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from tfdisc import callbacks, cpu, datasets, evaluation, export, files, models, plotting, presets, scripting  # noqa: E402
from tfdisc.training import AdversarialModel  # noqa: E402

OPTIMIZERS = {"adam": tf.keras.optimizers.Adam, "sgd": lambda lr: tf.keras.optimizers.SGD(lr, momentum=0.9)}
# --recipe=reference: the study's reference code, BinaryNet.pytorch's CIFAR AlexNet regimes {epoch: learning rate}.
# Full precision: SGD, momentum 0.9, weight decay 5e-4 (the reference drops it at epoch 15, when lr·wd is below
# 5e-7 a step; Keras applies it throughout). Binarized (bnn, xnor): Adam.
REFERENCE_RECIPES = {
    "full": (lambda lr: tf.keras.optimizers.SGD(lr, momentum=0.9, weight_decay=5e-4),
             {0: 1e-2, 10: 5e-3, 15: 1e-3, 20: 5e-4, 25: 1e-4}),
    "binarized": (tf.keras.optimizers.Adam, {0: 5e-3, 20: 1e-3, 30: 5e-4, 35: 1e-4, 40: 1e-5}),
}
# Flags that define what a run trains; --resume refuses to continue a run under other values.
RUN_DEFINING_FLAGS = ("dataset", "arch", "precision", "input_bits", "batch_size", "learning_rate", "optimizer",
                      "recipe", "adv_train", "adv_eps", "adv_alpha", "adv_ratio", "train_examples", "seed")
_FLAG_NAMES = []  # the flags define_flags made, recorded in config.json


class RunError(ValueError):
    """A run cannot start or continue as asked; the message says why and what to do."""


def _eps_text(values):
    """(0.0, 0.05, 8/255) -> "0,0.05,8/255": short decimals where exact, else k/255."""
    return ",".join(f"{v:g}" if float(f"{v:g}") == v else f"{round(v * 255)}/255" for v in values)


def _valid_eps_list(name):
    def validate(text):
        if text is None:
            return True
        try:
            evaluation.parse_eps_list(text)
        except ValueError as error:
            raise flags.ValidationError(f"--{name}: {error}") from None
        return True
    return validate


def define_flags(dataset):
    """Define every flag with `dataset`'s preset as defaults; if they exist already, only set those defaults."""
    preset = presets.get(dataset)
    defaults = {"dataset": dataset, "arch": preset.arch, "sweep_eps": _eps_text(preset.sweep_eps),
                "adv_eps": preset.adv_eps, "adv_alpha": preset.adv_alpha, "batch_size": preset.batch_size,
                "learning_rate": preset.learning_rate}
    FLAGS = flags.FLAGS
    if _FLAG_NAMES:
        FLAGS.set_default("adv_alpha", 0.0)  # keep alpha <= eps valid while eps changes
        for name, value in defaults.items():
            FLAGS.set_default(name, value)
        return
    before = set(FLAGS)
    epochs = {name: arch.epochs for name, arch in models.ARCHITECTURES.items()}
    flags.DEFINE_string("dataset", dataset, "Data set (fixed by the script).")
    flags.DEFINE_enum("arch", preset.arch, list(models.ARCHITECTURES), "Architecture.")
    flags.DEFINE_enum("precision", "full", list(models.PRECISIONS),
                      "full: float; bnn: BinaryNet ±1 weights/activations; xnor: bnn + per-channel scales, fp first/last.")
    flags.DEFINE_bool("bnn", False, "Shorthand for --precision=bnn.")
    flags.DEFINE_bool("xnor", False, "Shorthand for --precision=xnor.")
    flags.DEFINE_integer("input_bits", 8, "Input discretization bits, 1..8 (the study: 2, 4, 8).", lower_bound=1,
                         upper_bound=8)
    flags.DEFINE_integer("epochs", None, f"Training epochs; default per arch as in the study: {epochs}.", lower_bound=0)
    flags.DEFINE_integer("batch_size", preset.batch_size, "Global batch size.", lower_bound=1)
    flags.DEFINE_float("learning_rate", preset.learning_rate, "Learning rate (constant), a finite number > 0.")
    flags.DEFINE_enum("optimizer", "adam", list(OPTIMIZERS),
                      "Optimizer. Adam is the default for every precision, as BinaryNet and XNOR-Net train BNNs; "
                      "sgd uses momentum 0.9.")
    flags.DEFINE_enum("recipe", "constant", ["constant", "reference"],
                      "constant: --optimizer at a constant --learning_rate, no augmentation. reference: the study's "
                      "reference code (BinaryNet.pytorch): full precision SGD (momentum 0.9, weight decay 5e-4) at lr "
                      "1e-2 stepped down at epochs 10/15/20/25; bnn and xnor Adam at 5e-3 stepped down at 20/30/35/40; "
                      "CIFAR images padded by 4, randomly cropped and flipped.")
    flags.DEFINE_bool("adv_train", False, "Adversarial training with R-FGSM (Tramèr et al. 2018).")
    flags.DEFINE_float("adv_eps", preset.adv_eps, "R-FGSM budget eps (pixels in [0, 1]).", lower_bound=0, upper_bound=1)
    flags.DEFINE_float("adv_alpha", preset.adv_alpha, "R-FGSM random step alpha, 0 <= alpha <= adv_eps.", lower_bound=0)
    flags.DEFINE_float("adv_ratio", 0.5, "Share of each batch replaced by R-FGSM examples, in (0, 1].",
                       lower_bound=0, upper_bound=1)
    flags.DEFINE_string("sweep_eps", defaults["sweep_eps"], "Comma list of FGSM eps for the sweep; fractions like "
                        "8/255 allowed.")
    flags.DEFINE_integer("sweep_examples", 1000, "Per-epoch sweeps (history.csv) use a fixed random subset of this "
                         "many test examples; results.json's sweep always uses them all (0: all, every epoch).",
                         lower_bound=0)
    flags.DEFINE_integer("sweep_every", 1, "Run the eps sweep on the test set every N epochs into history.csv "
                         "(0: only at the end).", lower_bound=0)
    flags.DEFINE_string("data_dir", None, "Folder with <dataset>.npz or idx files, or the TFDS data_dir "
                        "(default: $TFDISC_DATA_DIR).")
    flags.DEFINE_bool("download", True, "Let TFDS download missing data (needs internet; skipped at once when the "
                      "network is unreachable).")
    flags.DEFINE_string("output_dir", "runs", "Parent folder of run directories.")
    flags.DEFINE_string("run_name", None, "Run directory name inside --output_dir "
                        "(default: <dataset>_<arch>_<precision>_<bits>b[_adv]_s<seed>).")
    flags.DEFINE_integer("seed", 0, "Seed for initialization, shuffling and R-FGSM noise.")
    flags.DEFINE_bool("export", True, "Export the trained model as a SavedModel in <run>/saved_model.")
    flags.DEFINE_bool("resume", False, "Continue an interrupted run from its last checkpoint.")
    flags.DEFINE_enum("distribute", "none", ["none", "mirrored", "multi_worker"],
                      "tf.distribute strategy: mirrored (all local GPUs, or --cpu_devices CPUs) or multi_worker "
                      "(TF_CONFIG).")
    flags.DEFINE_bool("jit_compile", True, "Compile the train and test steps with XLA (1.1-1.5x faster on CPU, "
                      "scripts/benchmark.py); input checks run outside XLA. Default on for one device; with "
                      "--distribute only when given explicitly.")
    flags.DEFINE_bool("mixed_precision", False, "Train in mixed_bfloat16 where the CPU has bfloat16 instructions "
                      f"({', '.join(cpu.BFLOAT16_FLAGS)}); elsewhere warn and keep float32. It changes what the model "
                      "computes (bfloat16 activations and products); the discretization, weights and logits stay "
                      "float32. results.json records the policy used.")
    flags.DEFINE_integer("cpu_devices", 1, "Split the CPU into N logical devices (test tf.distribute without GPUs).",
                         lower_bound=1)
    flags.DEFINE_list("attacks", ["fgsm"], f"Attacks of the robustness report, any of {list(evaluation.ATTACKS)}; "
                      "transfer needs --surrogate; autoattack is AutoAttack's cascade (see --autoattack_version).")
    flags.DEFINE_enum("autoattack_version", "standard", list(evaluation.AUTOATTACK_VERSIONS),
                      "standard: APGD-CE, APGD-T, Square 5000 queries; fast: APGD-CE, APGD-DLR.")
    flags.DEFINE_integer("pgd_steps", 20, "PGD steps (step size 2.5·ε/steps, random start).", lower_bound=1)
    flags.DEFINE_integer("pgd_restarts", 5, "PGD (and standalone APGD) restarts, per-example best.", lower_bound=1)
    flags.DEFINE_integer("square_queries", 1000, "Square Attack query budget per example.", lower_bound=1)
    flags.DEFINE_string("surrogate", None, "Run directory or SavedModel of the transfer attack's surrogate model.")
    flags.DEFINE_enum("gradient", "identity", ["identity", "zero"],
                      "How the input discretization passes gradients during evaluation: identity (BPDA) or zero "
                      "(its true derivative, which masks gradients; for demonstration).")
    flags.DEFINE_string("attack_eps", None, "Comma list of eps for the robustness report (default: --sweep_eps).")
    flags.DEFINE_integer("attack_examples", None, "Run the robustness report on this many test examples (see "
                         "--subset; PGD and Square are costly).", lower_bound=1)
    flags.DEFINE_integer("train_examples", None, "Train on a fixed subset of this many examples (short runs).",
                         lower_bound=1)
    flags.DEFINE_integer("test_examples", None, "Evaluate on this many test examples (see --subset).", lower_bound=1)
    flags.DEFINE_enum("subset", "random", list(datasets.SUBSETS), "Which examples --train_examples, --test_examples "
                      "and --attack_examples keep: a fixed random subset (seed 0, unbiased for class-sorted files) "
                      "or the first ones (to compare with other tools).")

    flags.register_validator("sweep_eps", _valid_eps_list("sweep_eps"))
    flags.register_validator("attack_eps", _valid_eps_list("attack_eps"))
    flags.register_validator("learning_rate", lambda lr: math.isfinite(lr) and lr > 0,
                             "--learning_rate must be a finite number > 0, e.g. 1e-3.")
    flags.register_multi_flags_validator(
        ["bnn", "xnor"], lambda f: not (f["bnn"] and f["xnor"]), "--bnn and --xnor exclude each other; pick one.")
    flags.register_multi_flags_validator(
        ["adv_eps", "adv_alpha"], lambda f: f["adv_alpha"] <= f["adv_eps"],
        "--adv_alpha must be <= --adv_eps (the random step spends part of the budget).")
    flags.register_validator("adv_ratio", lambda r: r > 0, "--adv_ratio must be in (0, 1].")
    flags.register_validator("attacks", lambda a: bool(a) and set(a) <= set(evaluation.ATTACKS),
                             f"--attacks must be a comma list of {', '.join(evaluation.ATTACKS)}.")
    flags.register_multi_flags_validator(
        ["attacks", "surrogate"], lambda f: "transfer" not in f["attacks"] or bool(f["surrogate"]),
        "--attacks=transfer needs --surrogate=<run dir or SavedModel> (e.g. a full-precision 8-bit run).")
    _FLAG_NAMES.extend(sorted(set(FLAGS) - before))


def precision(flags_obj):
    """The precision the flags ask for; RunError when --precision contradicts --bnn or --xnor."""
    shorthand = "bnn" if flags_obj.bnn else "xnor" if flags_obj.xnor else None
    if shorthand and flags_obj["precision"].present and flags_obj.precision != shorthand:
        raise RunError(f"--precision={flags_obj.precision} contradicts --{shorthand}; give one of them.")
    return shorthand or flags_obj.precision


def run_name(flags_obj):
    """The run directory's name: --run_name (a plain folder name), or one made from the configuration."""
    name = flags_obj.run_name
    if name is None:
        adv = "_adv" if flags_obj.adv_train else ""
        return f"{flags_obj.dataset}_{flags_obj.arch}_{precision(flags_obj)}_{flags_obj.input_bits}b{adv}_s{flags_obj.seed}"
    if not name or name in (".", "..") or os.sep in name or (os.altsep and os.altsep in name) or name.startswith("."):
        raise RunError(f"--run_name={name!r} must be a plain folder name inside --output_dir (no '/', not '..' or "
                       "hidden); use --output_dir to choose where runs go.")
    return name


def run_config(flags_obj):
    """The flags as config.json records them, with the precision the run really uses."""
    values = {name: flags_obj[name].value for name in _FLAG_NAMES}
    values["precision"] = precision(flags_obj)
    values.pop("bnn", None), values.pop("xnor", None)
    return values


def versions():
    packages = ["tensorflow", "tf-keras", "larq", "numpy", "tensorflow-datasets", "absl-py", "matplotlib"]
    found = {"python": platform.python_version(), "tfdisc": tfdisc.__version__}
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def make_strategy(flags_obj):
    if flags_obj.distribute == "none":
        return tf.distribute.get_strategy()
    if flags_obj.distribute == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise RunError("--distribute=multi_worker needs TF_CONFIG describing the cluster and this task.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if gpus:
        return tf.distribute.MirroredStrategy(gpus)
    # On CPUs, reduce through one device: collective ops add nothing there, and their process-wide
    # keys clash when a process creates a second strategy.
    return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")],
                                          cross_device_ops=tf.distribute.ReductionToOneDevice())


def _split_cpu(devices):
    if devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
        except RuntimeError:  # TensorFlow already started (in tests): fine if enough CPUs exist
            if len(tf.config.list_logical_devices("CPU")) < devices:
                raise RunError("--cpu_devices must take effect before TensorFlow starts") from None


def _is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                             and "chief" not in resolver.cluster_spec().as_dict())


def _load_data(flags_obj, first_epoch, eval_batch):
    """(train dataset from `first_epoch`, steps per epoch or None, test, per-epoch sweep and report datasets).

    Evaluation batches hold `eval_batch` examples: they need no weight gradients, and bigger ones are faster.
    """
    name, batch = flags_obj.dataset, flags_obj.batch_size
    common = {"data_dir": flags_obj.data_dir, "download": flags_obj.download, "subset_order": flags_obj.subset}
    if presets.get(name).in_memory:
        x_train, y_train = datasets.load_arrays(name, "train", examples=flags_obj.train_examples, **common)
        x_test, y_test = datasets.load_arrays(name, "test", examples=flags_obj.test_examples, **common)
        logging.info("%s: %d training and %d test examples", name, len(x_train), len(x_test))
        train = datasets.pipeline(x_train, y_train, batch, shuffle_seed=flags_obj.seed, first_epoch=first_epoch,
                                  augmented=flags_obj.recipe == "reference" and name.startswith("cifar"))

        def part(examples, order):
            keep = datasets.subset(len(x_test), examples, order)
            return datasets.pipeline(x_test[keep], y_test[keep], eval_batch)

        return (train, datasets.steps_per_epoch(len(x_train), batch), part(None, "first"),
                part(flags_obj.sweep_examples or None, "random"), part(flags_obj.attack_examples, flags_obj.subset))
    train = datasets.load(name, "train", batch_size=batch, examples=flags_obj.train_examples,
                          shuffle_seed=flags_obj.seed, **common)
    test = datasets.load(name, "test", batch_size=eval_batch, examples=flags_obj.test_examples, **common)

    def first(examples):
        return test.unbatch().take(examples or -1).batch(eval_batch)

    return train, None, test, first(flags_obj.sweep_examples), first(flags_obj.attack_examples)


def _reference_regime(flags_obj):
    """(optimizer class, {epoch: learning rate}) of --recipe=reference for the run's precision."""
    return REFERENCE_RECIPES["full" if precision(flags_obj) == "full" else "binarized"]


def _optimizer(flags_obj):
    """The optimizer of --recipe: --optimizer at --learning_rate, or the reference one at its first rate."""
    if flags_obj.recipe == "constant":
        return OPTIMIZERS[flags_obj.optimizer](flags_obj.learning_rate)
    given = [f"--{name}" for name in ("optimizer", "learning_rate")
             if flags_obj[name].present or flags_obj[name].value != flags_obj[name].default]
    if given:
        raise RunError(f"--recipe=reference sets the optimizer and its learning rates; drop {' and '.join(given)} "
                       "(or use --recipe=constant).")
    make, regime = _reference_regime(flags_obj)
    return make(regime[0])


def _learning_rate_steps(flags_obj):
    """The callbacks that step the learning rate down at the reference regime's epochs (none for constant)."""
    if flags_obj.recipe == "constant":
        return []
    _, regime = _reference_regime(flags_obj)
    return [tf.keras.callbacks.LearningRateScheduler(lambda epoch: regime[max(e for e in regime if e <= epoch)])]


def _build(flags_obj, strategy):
    """(trained model wrapper, plain model) compiled under `strategy`."""
    preset = presets.get(flags_obj.dataset)
    with strategy.scope():
        try:
            model = models.build_model(flags_obj.arch, precision=precision(flags_obj), input_bits=flags_obj.input_bits,
                                       input_shape=preset.image_shape, num_classes=preset.num_classes)
        except ValueError as error:
            raise RunError(f"--arch={flags_obj.arch} does not fit {flags_obj.dataset}'s {preset.image_shape} images "
                           f"({str(error).splitlines()[0][:120]}).") from None
        trainer = model
        if flags_obj.adv_train:
            trainer = AdversarialModel(model, eps=flags_obj.adv_eps, alpha=flags_obj.adv_alpha,
                                       adv_ratio=flags_obj.adv_ratio, seed=flags_obj.seed)
        trainer.compile(_optimizer(flags_obj),
                        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
                        jit_compile=_use_xla(flags_obj))
    return trainer, model


def _use_xla(flags_obj):
    """--jit_compile, except that tf.distribute runs use XLA only when asked for explicitly: on logical
    CPU devices XLA cannot reach another replica's variables."""
    return flags_obj.jit_compile and (flags_obj.distribute == "none" or flags_obj["jit_compile"].present)


def _history_rows(run_dir):
    path = os.path.join(run_dir, "history.csv")
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _keep_history(run_dir, epochs_done):
    """Drop history.csv rows of epochs after the last checkpoint (a kill between the row and the checkpoint)."""
    path = os.path.join(run_dir, "history.csv")
    rows = _history_rows(run_dir)
    kept = [row for row in rows if int(row["epoch"]) < epochs_done]
    if len(kept) != len(rows):
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(kept)
        files.write_text_atomic(path, out.getvalue())
        logging.info("history.csv: dropped %d row(s) of epochs after the last checkpoint", len(rows) - len(kept))


def _train_seconds(run_dir):
    """Training time over all epochs of the run, resumed ones included (history.csv)."""
    return sum(float(row["epoch_seconds"]) for row in _history_rows(run_dir)
               if row.get("epoch_seconds") not in (None, "", "NA"))


def _write_summary(model, path):
    lines = []
    lq.models.summary(model, print_fn=lines.append)
    files.write_text_atomic(path, "\n".join(lines) + "\n")


def _check_output_dir(output_dir):
    """Fail before any work when runs cannot be written under `output_dir`."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise RunError(f"--output_dir={output_dir} is a file, not a folder; choose a folder for the runs.")
    try:
        os.makedirs(output_dir, exist_ok=True)
        with tempfile.TemporaryFile(dir=output_dir):
            pass
    except OSError as error:
        raise RunError(f"Cannot write runs under --output_dir={output_dir} ({error.strerror}); choose a writable "
                       "folder.") from None


@contextlib.contextmanager
def _locked(run_dir):
    """Hold an exclusive lock on the run directory; RunError if another process holds it."""
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, ".lock"), "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            raise RunError(f"{run_dir} is in use by another run (pid {lock.read().strip() or '?'}); wait for it, or "
                           "choose another --run_name.") from None
        lock.seek(0)
        lock.truncate()
        lock.write(str(os.getpid()))
        lock.flush()
        yield


def _check_resume(flags_obj, run_dir, has_checkpoint):
    """Refuse to start over a run, or to resume one under other run-defining flags."""
    config_path = os.path.join(run_dir, "config.json")
    if not flags_obj.resume:
        if has_checkpoint or os.path.exists(os.path.join(run_dir, "results.json")):
            raise RunError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --run_name.")
        return
    if not has_checkpoint:
        logging.warning("--resume: %s holds no finished epoch; starting at epoch 1.", run_dir)
    if not os.path.exists(config_path):
        if has_checkpoint:
            raise RunError(f"{run_dir} has checkpoints but no config.json, so --resume cannot check that they belong "
                           "to this configuration; choose another --run_name.")
        return
    with open(config_path) as f:
        saved = json.load(f)["flags"]
    current = run_config(flags_obj)
    # A flag newer than the run is absent from its config: the run trained as that flag's default does.
    saved = {name: saved.get(name, flags_obj[name].default) for name in RUN_DEFINING_FLAGS}
    differ = [f"--{name}: run has {saved[name]!r}, now {current[name]!r}" for name in RUN_DEFINING_FLAGS
              if saved[name] != current[name]]
    if differ:
        raise RunError(f"--resume would continue {run_dir} with other settings ({'; '.join(differ)}). Resume with the "
                       "run's settings, or start a new run with another --run_name.")


def _print_table(results, report, run_dir):
    sweep = results["sweep"]
    print(f"\n{results['dataset']} {results['arch']} {results['precision']} {results['input_bits']}-bit input"
          f"{' adversarially trained' if results['adv_train'] else ''}  ->  {run_dir}")
    print(f"clean accuracy {results['clean_accuracy']:.4f} on {results['test_examples']} test examples; "
          f"train {results['train_seconds']:.0f} s; gradient through the discretization: {sweep['gradient']}")
    print(f"{'eps':>8}  FGSM sweep")
    for eps, accuracy in zip(sweep["eps"], sweep["accuracy"]):
        print(f"{eps:8.4f}  {accuracy:10.4f}")
    print("Robustness report:")
    print("\n".join(evaluation.report_lines(report)))


class _Position(tf.keras.callbacks.Callback):
    """Where training is, for the message after an interrupt."""

    epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.steps_before = int(self.model.optimizer.iterations.numpy())


def run(flags_obj):
    """Train, sweep, and write the run directory for the parsed flags; return results.json's content."""
    _split_cpu(flags_obj.cpu_devices)
    strategy = make_strategy(flags_obj)
    chief = _is_chief(strategy)
    name = run_name(flags_obj)
    if chief:
        _check_output_dir(flags_obj.output_dir)
        run_dir = os.path.join(flags_obj.output_dir, name)
    else:
        run_dir = tempfile.mkdtemp(prefix="tfdisc-worker-")
    with _locked(run_dir):
        return _run_locked(flags_obj, strategy, chief, run_dir)


def _run_locked(flags_obj, strategy, chief, run_dir):
    checkpoint_dir = os.path.join(run_dir, "checkpoints")
    has_checkpoint = tf.train.latest_checkpoint(checkpoint_dir) is not None
    _check_resume(flags_obj, run_dir, has_checkpoint)
    tf.keras.utils.set_random_seed(flags_obj.seed)
    epochs = flags_obj.epochs if flags_obj.epochs is not None else models.ARCHITECTURES[flags_obj.arch].epochs
    eps_values = evaluation.parse_eps_list(flags_obj.sweep_eps)
    report_eps = evaluation.parse_eps_list(flags_obj.attack_eps or flags_obj.sweep_eps)
    surrogate = models.load(flags_obj.surrogate, "--surrogate") if flags_obj.surrogate else None
    policy = cpu.mixed_precision_policy(flags_obj.mixed_precision)
    cpu.set_policy(policy)

    trainer, model = _build(flags_obj, strategy)
    checkpoints = callbacks.EpochCheckpoint(checkpoint_dir)
    initial_epoch = checkpoints.restore(trainer) if flags_obj.resume else 0
    if initial_epoch > epochs:
        raise RunError(f"{run_dir} has trained {initial_epoch} epochs already, more than --epochs={epochs}.")
    eval_batch = max(flags_obj.batch_size, evaluation.batch_size_for(model))
    train, steps, test, sweep_test, attack_test = _load_data(flags_obj, initial_epoch, eval_batch)
    _keep_history(run_dir, initial_epoch)
    files.write_json_atomic(os.path.join(run_dir, "config.json"),
                            {"flags": run_config(flags_obj), "epochs": epochs, "versions": versions()})
    _write_summary(model, os.path.join(run_dir, "model_summary.txt"))

    sweeper = (callbacks.EpsilonSweep(sweep_test, eps_values, flags_obj.sweep_every, gradient=flags_obj.gradient,
                                      jit_compile=_use_xla(flags_obj) and flags_obj.distribute == "none")
               if flags_obj.sweep_every else None)
    position = _Position()
    fit_callbacks = [callbacks.DivergenceGuard(), position] + _learning_rate_steps(flags_obj) + (
        [sweeper] if sweeper else []) + [
        callbacks.EpochTimer(),
        callbacks.ProgressLog(int(test.cardinality()) if int(test.cardinality()) > 0 else None),
        tf.keras.callbacks.CSVLogger(os.path.join(run_dir, "history.csv"), append=initial_epoch > 0),
        checkpoints,
        tf.keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard")),
    ]
    logging.info("Training %s for epochs %d..%d", model.name, initial_epoch + 1, epochs)
    try:
        trainer.fit(train, epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=steps, validation_data=test,
                    callbacks=fit_callbacks, verbose=1 if sys.stdout.isatty() else 2)
    except KeyboardInterrupt:
        if position.epoch is None:
            raise
        step = int(trainer.optimizer.iterations.numpy()) - position.steps_before
        raise KeyboardInterrupt(
            f"Interrupted at epoch {position.epoch + 1}, step {step}. Epochs 1..{position.epoch} are checkpointed in "
            f"{checkpoint_dir}; rerun the same command with --resume to continue from epoch {position.epoch + 1}."
        ) from None

    if flags_obj.export:  # every worker saves (non-chief ones into a temporary folder), as tf.distribute asks
        export.save(model, os.path.join(run_dir, "saved_model"))  # atomically: a kill leaves no half export
    report = evaluation.robustness_report(
        model, attack_test, report_eps, flags_obj.attacks, surrogate, version=flags_obj.autoattack_version,
        pgd_steps=flags_obj.pgd_steps,
        pgd_restarts=flags_obj.pgd_restarts, square_queries=flags_obj.square_queries, seed=flags_obj.seed,
        large_eps=presets.get(flags_obj.dataset).large_eps, gradient=flags_obj.gradient)
    if "fgsm" in flags_obj.attacks and flags_obj.attack_examples is None and report_eps == eps_values:
        sweep = evaluation.sweep_in(report)  # the report ran this very sweep: every test example, the same eps
    else:
        sweep = evaluation.sweep(model, test, eps_values, gradient=flags_obj.gradient)  # every test example, graph mode
    results = {
        "dataset": flags_obj.dataset, "arch": flags_obj.arch, "precision": precision(flags_obj),
        "input_bits": flags_obj.input_bits, "adv_train": flags_obj.adv_train, "clean_accuracy": sweep["clean_accuracy"],
        "test_examples": sweep["examples"], "subset": flags_obj.subset,
        "sweep": {key: sweep[key] for key in ("attack", "gradient", "eps", "accuracy")},
        "attacks": report["attacks"], "worst_case": report["worst_case"], "checks": report["checks"],
        "masking_suspected": report["masking_suspected"],
        "robustness": {"examples": report["examples"], "clean_accuracy": report["clean_accuracy"],
                       "gradient": report["gradient"], "seconds": report["seconds"], **report["settings"],
                       "surrogate": flags_obj.surrogate},
        "epochs": epochs, "train_examples": flags_obj.train_examples, "recipe": flags_obj.recipe,
        "adv_settings": {"eps": flags_obj.adv_eps, "alpha": flags_obj.adv_alpha, "ratio": flags_obj.adv_ratio}
        if flags_obj.adv_train else None,
        "resumed_from_epoch": initial_epoch, "train_seconds": _train_seconds(run_dir), "machine": cpu.machine(),
        "compute_policy": policy,
        "replicas": strategy.num_replicas_in_sync, "versions": versions(),
    }
    if not chief:
        shutil.rmtree(run_dir, ignore_errors=True)
        return results
    plotting.plot_accuracy_vs_eps(plotting.report_curves(report, sweep), os.path.join(run_dir, "accuracy_vs_eps.png"),
                                  model.name)
    files.write_json_atomic(os.path.join(run_dir, "results.json"), results)
    _print_table(results, report, run_dir)
    return results


def main(argv):
    """absl entry point: run, turning every expected failure into one line on stderr and a non-zero exit."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}; every option is a --flag.")
    scripting.quiet_library_logs()
    try:
        run(flags.FLAGS)
    except (ValueError, FileNotFoundError, callbacks.TrainingDiverged) as error:
        logging.debug("Failed", exc_info=True)
        sys.exit(f"error: {error}")
    except KeyboardInterrupt as interrupt:
        sys.stderr.write(f"\n{interrupt or 'Interrupted.'}\n")
        sys.exit(130)
