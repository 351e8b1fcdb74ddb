"""Shared flags and the one training-and-evaluation run behind every experiments/<dataset>.py."""

import csv
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import tempfile

from absl import app, flags, logging

import tfdisc  # noqa: F401  (selects legacy Keras before TensorFlow loads it)
import larq as lq
import tensorflow as tf

from tfdisc import callbacks, datasets, evaluation, io, models, plotting
from tfdisc.layers import InputDiscretization
from tfdisc.training import AdversarialModel

FLAGS = flags.FLAGS

DEFAULT_EPOCHS = {"fcn1": 20, "fcn2": 10, "alexnet": 40, "resnet20": 164, "alexnet_imagenet": 50}
MNIST_EPS = ",".join(f"{0.05 * i:.2f}" for i in range(11))
CIFAR_EPS = "0,1/255,2/255,4/255,8/255,16/255,32/255"
_FLAG_NAMES = []  # the flags define_flags made, recorded in config.json
OPTIMIZERS = {"adam": tf.keras.optimizers.Adam, "sgd": lambda lr: tf.keras.optimizers.SGD(lr, momentum=0.9)}


def parse_eps_list(text):
    """'0,0.1,8/255' -> [0.0, 0.1, 0.0313...]; raises ValueError naming a bad entry."""
    values = []
    for token in filter(None, (t.strip() for t in text.split(","))):
        try:
            numerator, _, denominator = token.partition("/")
            value = float(numerator) / (float(denominator) if denominator else 1.0)
        except ValueError:
            raise ValueError(f"cannot read eps {token!r}; write numbers like 0.1 or 8/255") from None
        if not 0 <= value <= 1:
            raise ValueError(f"eps {token} is outside [0, 1] (pixel units)")
        values.append(value)
    if not values:
        raise ValueError("give at least one eps")
    return values


def _valid_eps_list(text):
    try:
        parse_eps_list(text)
    except ValueError as error:
        raise flags.ValidationError(f"--sweep_eps: {error}") from None
    return True


def define_flags(dataset, *, arch, sweep_eps, adv_eps, adv_alpha, batch_size, learning_rate=1e-3):
    """Define every flag with `dataset`'s defaults; if they exist already, only set those defaults."""
    defaults = {"dataset": dataset, "arch": arch, "sweep_eps": sweep_eps, "adv_eps": adv_eps,
                "adv_alpha": adv_alpha, "batch_size": batch_size, "learning_rate": learning_rate}
    if _FLAG_NAMES:
        FLAGS.set_default("adv_alpha", 0.0)  # keep alpha <= eps valid while eps changes
        for name, value in defaults.items():
            FLAGS.set_default(name, value)
        return
    before = set(FLAGS)
    flags.DEFINE_string("dataset", dataset, "Data set (fixed by the script).")
    flags.DEFINE_enum("arch", arch, list(models.ARCHITECTURES), "Architecture.")
    flags.DEFINE_enum("precision", "full", list(models.PRECISIONS),
                      "full: float; bnn: BinaryNet ±1 weights/activations; xnor: bnn + per-channel scales, fp first/last.")
    flags.DEFINE_bool("bnn", False, "Shorthand for --precision=bnn.")
    flags.DEFINE_bool("xnor", False, "Shorthand for --precision=xnor.")
    flags.DEFINE_integer("input_bits", 8, "Input discretization bits, 1..8 (the study: 2, 4, 8).", lower_bound=1, upper_bound=8)
    flags.DEFINE_integer("epochs", None, f"Training epochs; default per arch as in the study: {DEFAULT_EPOCHS}.", lower_bound=0)
    flags.DEFINE_integer("batch_size", batch_size, "Global batch size.", lower_bound=1)
    flags.DEFINE_float("learning_rate", learning_rate, "Learning rate (constant).", lower_bound=0)
    flags.DEFINE_enum("optimizer", "adam", list(OPTIMIZERS),
                      "Optimizer. Adam is the default for every precision, as BinaryNet and XNOR-Net train BNNs; "
                      "sgd uses momentum 0.9.")
    flags.DEFINE_bool("adv_train", False, "Adversarial training with R-FGSM (Tramèr et al. 2018).")
    flags.DEFINE_float("adv_eps", adv_eps, "R-FGSM budget eps (pixels in [0, 1]).", lower_bound=0, upper_bound=1)
    flags.DEFINE_float("adv_alpha", adv_alpha, "R-FGSM random step alpha, 0 <= alpha <= adv_eps.", lower_bound=0)
    flags.DEFINE_float("adv_ratio", 0.5, "Share of each batch replaced by R-FGSM examples, in (0, 1].",
                       lower_bound=0, upper_bound=1)
    flags.DEFINE_string("sweep_eps", sweep_eps, "Comma list of FGSM eps for the sweep; fractions like 8/255 allowed.")
    flags.DEFINE_integer("sweep_every", 1, "Run the eps sweep on the test set every N epochs into history.csv (0: only at the end).",
                         lower_bound=0)
    flags.DEFINE_string("data_dir", None, "Folder with <dataset>.npz or idx files, or the TFDS data_dir "
                        "(default: $TFDISC_DATA_DIR).")
    flags.DEFINE_bool("download", True, "Let TFDS download missing data (needs internet).")
    flags.DEFINE_string("output_dir", "runs", "Parent folder of run directories.")
    flags.DEFINE_string("run_name", None, "Run directory name (default: <dataset>_<arch>_<precision>_<bits>b[_adv]_s<seed>).")
    flags.DEFINE_integer("seed", 0, "Seed for initialization, shuffling and R-FGSM noise.")
    flags.DEFINE_bool("export", True, "Export the trained model as a SavedModel in <run>/saved_model.")
    flags.DEFINE_bool("resume", False, "Continue an interrupted run from its last checkpoint.")
    flags.DEFINE_enum("distribute", "none", ["none", "mirrored", "multi_worker"],
                      "tf.distribute strategy: mirrored (all local GPUs, or --cpu_devices CPUs) or multi_worker (TF_CONFIG).")
    flags.DEFINE_bool("jit_compile", True, "Compile the train and test steps with XLA (1.1-1.3x faster on CPU, "
                      "scripts/benchmark.py). Default on for one device; with --distribute only when given "
                      "explicitly. XLA drops InputDiscretization's [0, 1] check; the data pipeline guarantees it.")
    flags.DEFINE_integer("cpu_devices", 1, "Split the CPU into N logical devices (test tf.distribute without GPUs).", lower_bound=1)
    flags.DEFINE_list("attacks", ["fgsm"], f"Attacks of the robustness report, any of {list(evaluation.ATTACKS)}; "
                      "transfer needs --surrogate.")
    flags.DEFINE_integer("pgd_steps", 20, "PGD steps (step size 2.5·ε/steps, random start).", lower_bound=1)
    flags.DEFINE_integer("pgd_restarts", 1, "PGD restarts (per-example best).", lower_bound=1)
    flags.DEFINE_integer("square_queries", 1000, "Square Attack query budget per example.", lower_bound=1)
    flags.DEFINE_string("surrogate", None, "Run directory or SavedModel of the transfer attack's surrogate model.")
    flags.DEFINE_enum("gradient", "identity", ["identity", "zero"],
                      "How the input discretization passes gradients during evaluation: identity (BPDA) or zero "
                      "(its true derivative, which masks gradients; for demonstration).")
    flags.DEFINE_string("attack_eps", None, "Comma list of eps for the robustness report (default: --sweep_eps).")
    flags.DEFINE_integer("attack_examples", None, "Run the robustness report on a fixed subset of this many test "
                         "examples (PGD and Square are costly).", lower_bound=1)
    flags.DEFINE_integer("train_examples", None, "Train on a fixed subset of this many examples (short runs).", lower_bound=1)
    flags.DEFINE_integer("test_examples", None, "Evaluate on a fixed subset of this many test examples.", lower_bound=1)

    flags.register_validator("sweep_eps", _valid_eps_list)
    flags.register_validator("attack_eps", lambda text: text is None or _valid_eps_list(text))
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


def precision():
    return "bnn" if FLAGS.bnn else "xnor" if FLAGS.xnor else FLAGS.precision


def run_name():
    adv = "_adv" if FLAGS.adv_train else ""
    return FLAGS.run_name or f"{FLAGS.dataset}_{FLAGS.arch}_{precision()}_{FLAGS.input_bits}b{adv}_s{FLAGS.seed}"


def versions():
    packages = ["tensorflow", "tf-keras", "larq", "numpy", "tensorflow-datasets", "absl-py", "matplotlib"]
    found = {"python": platform.python_version(), "tfdisc": tfdisc.__version__}
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def make_strategy():
    if FLAGS.distribute == "none":
        return tf.distribute.get_strategy()
    if FLAGS.distribute == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--distribute=multi_worker needs TF_CONFIG describing the cluster and this task.")
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if gpus:
        return tf.distribute.MirroredStrategy(gpus)
    # On CPUs, reduce through one device: collective ops add nothing there, and their process-wide
    # keys clash when a process creates a second strategy.
    return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")],
                                          cross_device_ops=tf.distribute.ReductionToOneDevice())


def _split_cpu():
    if FLAGS.cpu_devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        try:
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * FLAGS.cpu_devices)
        except RuntimeError:  # TensorFlow already started (in tests): fine if enough CPUs exist
            if len(tf.config.list_logical_devices("CPU")) < FLAGS.cpu_devices:
                raise ValueError("--cpu_devices must take effect before TensorFlow starts") from None


def _is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                             and "chief" not in resolver.cluster_spec().as_dict())


def _load_data(first_epoch):
    """(train dataset from `first_epoch`, steps per epoch or None, test dataset, robustness-report dataset)."""
    name, batch = FLAGS.dataset, FLAGS.batch_size
    common = {"data_dir": FLAGS.data_dir, "download": FLAGS.download}
    if datasets.DATASETS[name].in_memory:
        x_train, y_train = datasets.load_arrays(name, "train", examples=FLAGS.train_examples, **common)
        x_test, y_test = datasets.load_arrays(name, "test", examples=FLAGS.test_examples, **common)
        logging.info("%s: %d training and %d test examples", name, len(x_train), len(x_test))
        train = datasets.pipeline(x_train, y_train, batch, shuffle_seed=FLAGS.seed, first_epoch=first_epoch)
        keep = datasets.subset(len(x_test), FLAGS.attack_examples)
        return (train, datasets.steps_per_epoch(len(x_train), batch), datasets.pipeline(x_test, y_test, batch),
                datasets.pipeline(x_test[keep], y_test[keep], batch))
    train = datasets.load(name, "train", batch_size=batch, examples=FLAGS.train_examples, shuffle_seed=FLAGS.seed, **common)
    test = datasets.load(name, "test", batch_size=batch, examples=FLAGS.test_examples, **common)
    attack_test = test.unbatch().take(FLAGS.attack_examples or -1).batch(batch)
    return train, None, test, attack_test


def load_model(path, flag="--surrogate"):
    """A SavedModel, or the `saved_model/` of a run directory (e.g. a transfer attack's surrogate)."""
    candidate = os.path.join(path, "saved_model")
    path = candidate if os.path.isdir(candidate) else path
    if not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ValueError(f"{flag}: no SavedModel at {path}; give a run directory with saved_model/ or a SavedModel.")
    return tf.keras.models.load_model(path, compile=False)


def _build(strategy):
    """(trained model wrapper, plain model) compiled under `strategy`."""
    info = datasets.DATASETS[FLAGS.dataset]
    with strategy.scope():
        try:
            model = models.build_model(FLAGS.arch, precision=precision(), input_bits=FLAGS.input_bits,
                                       input_shape=info.image_shape, num_classes=info.num_classes)
        except ValueError as error:
            raise ValueError(f"--arch={FLAGS.arch} does not fit {FLAGS.dataset}'s {info.image_shape} images "
                             f"({str(error).splitlines()[0][:120]}).") from None
        trainer = model
        if FLAGS.adv_train:
            trainer = AdversarialModel(model, eps=FLAGS.adv_eps, alpha=FLAGS.adv_alpha,
                                       adv_ratio=FLAGS.adv_ratio, seed=FLAGS.seed)
        trainer.compile(OPTIMIZERS[FLAGS.optimizer](FLAGS.learning_rate),
                        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
                        jit_compile=_use_xla())
    return trainer, model


def _use_xla():
    """--jit_compile, except that tf.distribute runs use XLA only when asked for explicitly: on logical
    CPU devices XLA cannot reach another replica's variables."""
    return FLAGS.jit_compile and (FLAGS.distribute == "none" or FLAGS["jit_compile"].present)


def _train_seconds(run_dir):
    """Training time over all epochs of the run, resumed ones included: history.csv, or a finished run's results."""
    with open(os.path.join(run_dir, "history.csv")) as f:
        rows = list(csv.DictReader(f))
    seconds = sum(float(row["epoch_seconds"]) for row in rows if row.get("epoch_seconds") not in (None, "", "NA"))
    previous = os.path.join(run_dir, "results.json")
    if os.path.exists(previous):  # a finished run evaluated again
        with open(previous) as f:
            seconds = max(seconds, json.load(f).get("train_seconds", 0.0))
    return seconds


def _write_summary(model, path):
    lines = []
    lq.models.summary(model, print_fn=lines.append)
    io.write_text_atomic(path, "\n".join(lines) + "\n")


def _print_table(results, run_dir):
    sweep, attacks = results["sweep"], results["attacks"]
    print(f"\n{results['dataset']} {results['arch']} {results['precision']} {results['input_bits']}-bit input"
          f"{' adversarially trained' if results['adv_train'] else ''}  ->  {run_dir}")
    print(f"clean accuracy {results['clean_accuracy']:.4f} on {results['test_examples']} test examples; "
          f"train {results['train_seconds']:.0f} s; gradient through the discretization: {sweep['gradient']}")
    names = list(attacks)
    print(f"{'eps':>8}  FGSM sweep")
    for eps, accuracy in zip(sweep["eps"], sweep["accuracy"]):
        print(f"{eps:8.4f}  {accuracy:10.4f}")
    print(f"{'eps':>8}" + "".join(f"  {n:>9}" for n in names) + "  worst case"
          f"   (robustness report on {results['robustness']['examples']} examples)")
    for i, eps in enumerate(results["worst_case"]["eps"]):
        print(f"{eps:8.4f}" + "".join(f"  {attacks[n]['accuracy'][i]:9.4f}" for n in names)
              + f"  {results['worst_case']['accuracy'][i]:10.4f}")
    for check in results["checks"]:
        print(f"  [{'pass' if check['passed'] else 'FAIL'}] {check['check']}: {check['detail']}")


def run():
    """Train, sweep, and write the run directory for the parsed flags."""
    _split_cpu()
    strategy = make_strategy()
    chief = _is_chief(strategy)
    run_dir = os.path.join(FLAGS.output_dir, run_name()) if chief else tempfile.mkdtemp(prefix="tfdisc-worker-")
    checkpoint_dir = os.path.join(run_dir, "checkpoints")
    if os.path.isdir(checkpoint_dir) and os.listdir(checkpoint_dir) and not FLAGS.resume:
        raise ValueError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --run_name.")
    tf.keras.utils.set_random_seed(FLAGS.seed)
    epochs = FLAGS.epochs if FLAGS.epochs is not None else DEFAULT_EPOCHS[FLAGS.arch]
    eps_values = parse_eps_list(FLAGS.sweep_eps)

    trainer, model = _build(strategy)
    checkpoints = callbacks.EpochCheckpoint(checkpoint_dir)
    initial_epoch = checkpoints.restore(trainer) if FLAGS.resume else 0
    surrogate = load_model(FLAGS.surrogate) if FLAGS.surrogate else None
    train, steps, test, attack_test = _load_data(first_epoch=initial_epoch)
    io.write_json_atomic(os.path.join(run_dir, "config.json"),
                         {"flags": {name: FLAGS[name].value for name in _FLAG_NAMES}, "precision": precision(),
                          "epochs": epochs, "versions": versions()})
    _write_summary(model, os.path.join(run_dir, "model_summary.txt"))

    verbose = 1 if sys.stdout.isatty() else 2
    sweeper = callbacks.EpsilonSweep(test, eps_values, FLAGS.sweep_every) if FLAGS.sweep_every else None
    fit_callbacks = ([sweeper] if sweeper else []) + [
        callbacks.EpochTimer(),
        tf.keras.callbacks.CSVLogger(os.path.join(run_dir, "history.csv"), append=initial_epoch > 0),
        checkpoints,
        tf.keras.callbacks.TensorBoard(os.path.join(run_dir, "tensorboard")),
    ]
    logging.info("Training %s for epochs %d..%d", model.name, initial_epoch + 1, epochs)
    trainer.fit(train, epochs=epochs, initial_epoch=initial_epoch, steps_per_epoch=steps, validation_data=test,
                callbacks=fit_callbacks, verbose=verbose)
    train_seconds = _train_seconds(run_dir)

    if FLAGS.export:  # every worker saves (non-chief ones into a temporary folder), as tf.distribute asks
        model.save(os.path.join(run_dir, "saved_model"))
    trained_gradient = evaluation.discretization_gradient(model)
    for layer in model.submodules:
        if isinstance(layer, InputDiscretization):
            layer.gradient = FLAGS.gradient  # read when the evaluation functions trace
    if sweeper and sweeper.result and trained_gradient == FLAGS.gradient:
        sweep = sweeper.result  # the last epoch's sweep: the same model, test data and gradient
    else:
        logging.info("FGSM sweep over %d eps on the test set (%s gradient)", len(eps_values), FLAGS.gradient)
        sweep = evaluation.sweep(model, test, eps_values, verbose=int(verbose == 1))
    logging.info("Robustness report: %s", ", ".join(FLAGS.attacks))
    report = evaluation.robustness_report(
        model, attack_test, parse_eps_list(FLAGS.attack_eps or FLAGS.sweep_eps), FLAGS.attacks, surrogate, pgd_steps=FLAGS.pgd_steps,
        pgd_restarts=FLAGS.pgd_restarts, square_queries=FLAGS.square_queries, seed=FLAGS.seed,
        large_eps=max(parse_eps_list(FLAGS["sweep_eps"].default)), verbose=int(verbose == 1))
    results = {
        "dataset": FLAGS.dataset, "arch": FLAGS.arch, "precision": precision(), "input_bits": FLAGS.input_bits,
        "adv_train": FLAGS.adv_train, "clean_accuracy": sweep["clean_accuracy"], "test_examples": sweep["examples"],
        "sweep": {key: sweep[key] for key in ("attack", "gradient", "eps", "accuracy")},
        "attacks": report["attacks"], "worst_case": report["worst_case"], "checks": report["checks"],
        "masking_suspected": report["masking_suspected"],
        "robustness": {"examples": report["examples"], "clean_accuracy": report["clean_accuracy"],
                       "gradient": report["gradient"], "seconds": report["seconds"], **report["settings"],
                       "surrogate": FLAGS.surrogate},
        "epochs": epochs, "resumed_from_epoch": initial_epoch, "train_seconds": train_seconds,
        "replicas": strategy.num_replicas_in_sync, "versions": versions(),
    }
    if not chief:
        shutil.rmtree(run_dir, ignore_errors=True)
        return results
    curves = {f"FGSM sweep ({sweep['gradient']} gradient)": (sweep["eps"], sweep["accuracy"])}
    curves.update({f"{name} ({report['examples']} ex.)": (c["eps"], c["accuracy"]) for name, c in report["attacks"].items()})
    curves["worst case"] = (report["worst_case"]["eps"], report["worst_case"]["accuracy"])
    plotting.plot_accuracy_vs_eps(curves, os.path.join(run_dir, "accuracy_vs_eps.png"), model.name)
    io.write_json_atomic(os.path.join(run_dir, "results.json"), results)
    _print_table(results, run_dir)
    return results


def main(argv):
    """absl entry point: run, turning bad input into one clear line and a non-zero exit."""
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments {argv[1:]}; every option is a --flag.")
    try:
        run()
    except (ValueError, FileNotFoundError) as error:
        logging.debug("Failed", exc_info=True)
        sys.exit(f"error: {error}")
