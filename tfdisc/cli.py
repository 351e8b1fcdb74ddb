"""The command line of tfdisc's scripts: grouped flag definers, the run configuration decoded from them, `--help`
that shows a script's own flags by group, quiet logs, and every expected failure as one line.

Each `define_*` adds one group of flags (as tensorflow/models' `official/utils/flags` does); a script composes
the groups it needs, so every flag is defined once. `run(main)` replaces `absl.app.run`.
"""

import json
import logging
import os
import subprocess
import sys
import textwrap
from typing import Callable, Sequence

from absl import app, flags
from absl import logging as absl_logging

from tfdisc import callbacks, checks, cpu, datasets, files, models, presets, recipes, runs
from tfdisc import eps as eps_lib
from tfdisc.certification import search
from tfdisc.evaluation import registry

FLAGS = flags.FLAGS
GROUPS: dict[str, list[str]] = {}  # group title -> the flags it defined, in order


def flag(group: str, define: Callable[..., object], name: str, *args, **kwargs) -> None:
    """Define the flag `name` with absl's `define` and list it under `group` in --help."""
    define(name, *args, **kwargs)
    GROUPS.setdefault(group, []).append(name)


def _eps_validator(name):
    def validate(text):
        if text is None:
            return True
        try:
            eps_lib.parse(text)
        except ValueError as error:
            raise flags.ValidationError(f"--{name}: {error}") from None
        return True
    return validate


def define_data_flags(dataset: str) -> None:
    """Where the data comes from and how much of it a run uses."""
    group = "data"
    flag(group, flags.DEFINE_string, "data_dir", None, "Folder with <dataset>.npz or idx files, or the TFDS data_dir "
         "(default: $TFDISC_DATA_DIR).")
    flag(group, flags.DEFINE_bool, "download", True, "Let TFDS download missing data (needs internet; skipped at "
         "once when the network is unreachable).")
    flag(group, flags.DEFINE_integer, "train_examples", None, "Train on a fixed subset of this many examples (short "
         "runs); at most the training set's size.", lower_bound=1)
    flag(group, flags.DEFINE_integer, "test_examples", None, "Evaluate on this many test examples (see --subset).",
         lower_bound=1)
    flag(group, flags.DEFINE_enum, "subset", "random", list(datasets.SUBSETS), "Which examples --train_examples, "
         "--test_examples and --attack_examples keep: a fixed random subset (seed 0, unbiased for class-sorted files) "
         "or the first ones (to compare with other tools).")


def define_model_flags(dataset: str) -> None:
    """What is trained: architecture, precision and input bits."""
    preset = presets.get(dataset)
    group = "model"
    flag(group, flags.DEFINE_enum, "arch", preset.arch, list(models.ARCHITECTURES), "Architecture.")
    flag(group, flags.DEFINE_enum, "precision", "full", list(models.PRECISIONS),
         "full: float; bnn: BinaryNet ±1 weights/activations; xnor: bnn + per-channel scales, fp first/last.")
    flag(group, flags.DEFINE_bool, "bnn", False, "Shorthand for --precision=bnn.")
    flag(group, flags.DEFINE_bool, "xnor", False, "Shorthand for --precision=xnor.")
    flag(group, flags.DEFINE_integer, "input_bits", 8, "Input discretization bits, 1..8 (the study: 2, 4, 8).",
         lower_bound=1, upper_bound=8)
    flag(group, flags.DEFINE_enum, "input_mode", "floor", ["floor", "round"], "How pixels are discretized: floor "
         "(the study's q = (p // 2^(8-b))·2^(8-b)) or round (round-to-nearest levels spread over [0, 1]).")
    flags.register_multi_flags_validator(
        ["bnn", "xnor"], lambda f: not (f["bnn"] and f["xnor"]), "--bnn and --xnor exclude each other; pick one.")


def define_training_flags(dataset: str) -> None:
    """How it is trained: budget, recipe, adversarial training, hardware."""
    preset = presets.get(dataset)
    epochs = {name: arch.epochs for name, arch in models.ARCHITECTURES.items() if arch.dataset == dataset}
    group = "training"
    flag(group, flags.DEFINE_integer, "epochs", None, f"Training epochs, at least 1; default per arch as in the "
         f"study: {epochs}.", lower_bound=1)
    flag(group, flags.DEFINE_integer, "batch_size", preset.batch_size, "Global batch size.", lower_bound=1)
    flag(group, flags.DEFINE_enum, "recipe", "constant", list(recipes.RECIPES), "constant: --optimizer at a "
         "constant --learning_rate, no augmentation. reference: the study's reference code (BinaryNet.pytorch). "
         "cosine: Adam, warm-up then cosine decay over --epochs. larq: Larq's BinaryNet tutorial. "
         "See tfdisc.recipes.")
    flag(group, flags.DEFINE_enum, "optimizer", "adam", list(recipes.OPTIMIZERS),
         "Optimizer of --recipe=constant. Adam is the default for every precision, as BinaryNet and XNOR-Net train "
         "BNNs; sgd uses momentum 0.9.")
    flag(group, flags.DEFINE_float, "learning_rate", preset.learning_rate,
         "Learning rate of --recipe=constant, a finite number > 0.")
    flag(group, flags.DEFINE_bool, "adv_train", False, "Adversarial training with R-FGSM (Tramèr et al. 2018).")
    flag(group, flags.DEFINE_float, "adv_eps", preset.adv_eps, "R-FGSM budget eps (pixels in [0, 1]).", lower_bound=0,
         upper_bound=1)
    flag(group, flags.DEFINE_float, "adv_alpha", preset.adv_alpha, "R-FGSM random step alpha, 0 <= alpha <= adv_eps.",
         lower_bound=0)
    flag(group, flags.DEFINE_float, "adv_ratio", 0.5, "Share of each batch replaced by R-FGSM examples, in (0, 1].",
         lower_bound=0, upper_bound=1)
    flag(group, flags.DEFINE_bool, "ibp_train", False, "Certified training with interval bounds (IBP, Gowal et al. "
         "2018; not the study's method): ε ramps up from 0 after one clean epoch over half the epochs "
         "(tfdisc.certified_training).")
    flag(group, flags.DEFINE_float, "ibp_eps", None, "IBP training's budget eps, in (0, 1]; default the data set's "
         "smallest report eps (MNIST: 0.1).", lower_bound=0, upper_bound=1)
    flag(group, flags.DEFINE_float, "ibp_kappa", 0.5, "The clean loss's final weight in IBP training, in [0, 1].",
         lower_bound=0, upper_bound=1)
    flag(group, flags.DEFINE_integer, "seed", 0, "Seed for initialization, shuffling and R-FGSM noise.")
    flag(group, flags.DEFINE_bool, "resume", False, "Continue an interrupted run from its last checkpoint.")
    flag(group, flags.DEFINE_enum, "distribute", "none", ["none", "mirrored", "multi_worker"],
         "tf.distribute strategy: mirrored (all local GPUs, or --cpu_devices CPUs) or multi_worker (TF_CONFIG).")
    flag(group, flags.DEFINE_integer, "cpu_devices", 1, "Split the CPU into N logical devices (test tf.distribute "
         "without GPUs).", lower_bound=1)
    flag(group, flags.DEFINE_bool, "jit_compile", True, "Compile the train and test steps with XLA (1.1-1.5x faster "
         "on CPU); input checks run outside XLA. Default on for one device; with --distribute only when given "
         "explicitly.")
    flag(group, flags.DEFINE_bool, "mixed_precision", False, "Train in mixed_bfloat16 where the CPU has bfloat16 "
         f"instructions ({', '.join(cpu.BFLOAT16_FLAGS)}); elsewhere warn and keep float32. The discretization, "
         "weights and logits stay float32; results.json records the policy used.")
    flags.register_validator("adv_ratio", lambda r: r > 0, "--adv_ratio must be in (0, 1].")
    flags.register_multi_flags_validator(
        ["adv_eps", "adv_alpha"], lambda f: f["adv_alpha"] <= f["adv_eps"],
        "--adv_alpha must be <= --adv_eps (the random step spends part of the budget).")


def define_attack_flags(default_attacks: Sequence[str] = ("fgsm",)) -> None:
    """The robustness report's attacks, and how gradients pass the input discretization."""
    group = "attacks"
    flag(group, flags.DEFINE_list, "attacks", list(default_attacks), f"Attacks of the robustness report, any of "
         f"{list(registry.NAMES)}; transfer needs --surrogate; autoattack is AutoAttack's cascade.")
    flag(group, flags.DEFINE_enum, "autoattack_version", "standard", list(registry.AUTOATTACK_VERSIONS),
         "standard: APGD-CE, APGD-T, Square 5000 queries, each on the survivors; fast: APGD-CE, APGD-DLR.")
    flag(group, flags.DEFINE_integer, "pgd_steps", 20, "PGD steps (step size 2.5·ε/steps, random start).",
         lower_bound=1)
    flag(group, flags.DEFINE_integer, "pgd_restarts", 5, "PGD (and standalone APGD) restarts, per-example best.",
         lower_bound=1)
    flag(group, flags.DEFINE_integer, "square_queries", 1000, "Square Attack query budget per example.", lower_bound=1)
    flag(group, flags.DEFINE_string, "surrogate", None, "Run directory or SavedModel of the transfer attack's "
         "surrogate model.")
    define_trust_flag(group)
    flag(group, flags.DEFINE_enum, "gradient", "identity", ["identity", "zero"], "How the input discretization "
         "passes gradients to the attacks: identity (straight-through, BPDA) or zero (its true derivative, which "
         "masks gradients; for demonstration).")
    flag(group, flags.DEFINE_enum, "certify", None, list(search.BOUNDS), "Certify with this tightest bound first "
         "and attack only what it leaves; reports the certified accuracy (a lower bound) and the gap "
         "(tfdisc.certification.certified_report).")
    flags.register_validator("attacks", lambda a: bool(a) and set(a) <= set(registry.NAMES),
                             f"--attacks must be a comma list of {', '.join(registry.NAMES)}.")


def define_trust_flag(group: str) -> None:
    """--trust_model: load models that could run code (see `tfdisc.scan`)."""
    flag(group, flags.DEFINE_bool, "trust_model", False, "Load --model/--surrogate even if it holds layers or ops "
         "that could run code (a Lambda layer, file ops): only for models you made or trust.")


def define_trained_runs_flags(group: str, verb: str, records: str) -> None:
    """--runs, --only, --data_dir and --output_dir of a script that `verb`s trained run directories (see
    `tfdisc.runs.trained_runs`) and writes its records to <output_dir>/`records`."""
    flag(group, flags.DEFINE_string, "runs", "runs/protocol", f"Folder of run directories to {verb}.")
    flag(group, flags.DEFINE_list, "only", [], f"{verb.capitalize()} only these run directories of --runs (names; "
         "default: all).")
    flag(group, flags.DEFINE_string, "data_dir", None, "Data folder (see tfdisc.datasets).")
    flag(group, flags.DEFINE_string, "output_dir", "runs/paper", f"The report's runs folder; records go to its "
         f"{records}/ subfolder.")


def define_sweep_flags(dataset: str) -> None:
    """The FGSM sweep and the report's ε and examples (experiment scripts)."""
    group = "attacks"
    flag(group, flags.DEFINE_string, "sweep_eps", eps_lib.text(presets.get(dataset).sweep_eps),
         "Comma list of FGSM eps for the sweep; fractions like 8/255 allowed.")
    flag(group, flags.DEFINE_integer, "sweep_examples", 1000, "Per-epoch sweeps (history.csv) use a fixed random "
         "subset of this many test examples; results.json's sweep always uses them all (0: all, every epoch).",
         lower_bound=0)
    flag(group, flags.DEFINE_integer, "sweep_every", 1, "Run the eps sweep on the test set every N epochs into "
         "history.csv (0: only at the end).", lower_bound=0)
    flag(group, flags.DEFINE_string, "attack_eps", None, "Comma list of eps for the robustness report (default: "
         "--sweep_eps).")
    flag(group, flags.DEFINE_integer, "attack_examples", None, "Run the robustness report on this many test examples "
         "(see --subset; PGD and Square are costly).", lower_bound=1)
    flags.register_validator("sweep_eps", _eps_validator("sweep_eps"))
    flags.register_validator("attack_eps", _eps_validator("attack_eps"))


def define_output_flags() -> None:
    """Where the run is written."""
    group = "output"
    flag(group, flags.DEFINE_string, "output_dir", "runs", "Parent folder of run directories.")
    flag(group, flags.DEFINE_string, "run_name", None, "Run directory name inside --output_dir "
         "(default: <dataset>_<arch>_<precision>_<bits>b[_adv]_s<seed>).")
    flag(group, flags.DEFINE_bool, "export", True, "Export the trained model as a SavedModel in <run>/saved_model.")


def define_experiment_flags(dataset: str) -> None:
    """Every flag of an experiment script for `dataset` (experiments/<dataset>.py). Called again in the same
    process (tests), it only sets the defaults that depend on the data set."""
    preset = presets.get(dataset)
    if "sweep_eps" in FLAGS:
        FLAGS.set_default("adv_alpha", 0.0)  # keep alpha <= eps valid while eps changes
        for name, value in {"arch": preset.arch, "sweep_eps": eps_lib.text(preset.sweep_eps), "adv_eps": preset.adv_eps,
                            "adv_alpha": preset.adv_alpha, "batch_size": preset.batch_size,
                            "learning_rate": preset.learning_rate}.items():
            FLAGS.set_default(name, value)
        return
    define_data_flags(dataset)
    define_model_flags(dataset)
    define_training_flags(dataset)
    define_attack_flags()
    define_sweep_flags(dataset)
    define_output_flags()


def precision(flags_obj: flags.FlagValues) -> str:
    """The precision the flags ask for; RunError when --precision contradicts --bnn or --xnor."""
    shorthand = "bnn" if flags_obj.bnn else "xnor" if flags_obj.xnor else None
    if shorthand and not flags_obj["precision"].using_default_value and flags_obj.precision != shorthand:
        raise runs.RunError(f"--precision={flags_obj.precision} contradicts --{shorthand}; give one of them.")
    return shorthand or flags_obj.precision


def run_config(flags_obj: flags.FlagValues, dataset: str) -> runs.RunConfig:
    """The frozen `RunConfig` of an experiment script's parsed flags."""
    given = lambda name: flags_obj[name].value if not flags_obj[name].using_default_value else None  # noqa: E731
    values = {name: flags_obj[name].value for group in ("data", "training", "attacks", "output")
              for name in GROUPS[group]}
    values.update(dataset=dataset, arch=flags_obj.arch, precision=precision(flags_obj), input_bits=flags_obj.input_bits,
                  input_mode=flags_obj.input_mode,
                  optimizer=given("optimizer"), learning_rate=given("learning_rate"), jit_compile=given("jit_compile"),
                  sweep_eps=eps_lib.parse(flags_obj.sweep_eps),
                  attack_eps=eps_lib.parse(flags_obj.attack_eps) if flags_obj.attack_eps else None,
                  attacks=tuple(flags_obj.attacks))
    return runs.RunConfig(**values)


def run_experiment(dataset: str) -> None:
    """The whole of an experiment script for `dataset`: its flags, the run configuration, and `experiment.run`."""
    from tfdisc import experiment  # the command line sits above the experiment

    define_experiment_flags(dataset)

    def config():
        return run_config(FLAGS, dataset)

    def main(argv):
        experiment.run(config())

    run(main, check=config)


def help_text(doc: str) -> str:
    """A script's --help: its docstring, then its own flags by group with their defaults."""
    lines = [textwrap.dedent(doc or "").strip(), ""]
    grouped = {name for names in GROUPS.values() for name in names}
    own = [f.name for f in FLAGS.get_flags_for_module(sys.argv[0]) if f.name not in grouped]
    for group, names in (({"options": own} if own else {}) | GROUPS).items():
        names = [n for n in names if n in FLAGS]
        if not names:
            continue
        lines.append(f"{group}:")
        for name in names:
            flag = FLAGS[name]
            default = "" if flag.default is None else f" (default: {flag.default_as_str.strip(chr(39))})"
            lines += textwrap.wrap(f"--{name}: {flag.help}{default}", 112, initial_indent="  ",
                                   subsequent_indent="      ")
        lines.append("")
    lines.append("--helpfull lists every flag, TensorFlow's and absl's included.")
    return "\n".join(lines)


class _LibraryInfo(logging.Filter):
    """Keep INFO lines of tfdisc and the scripts; TensorFlow's and Keras's only from WARNING up."""

    PATHS = (f"{os.sep}tensorflow{os.sep}", f"{os.sep}tf_keras{os.sep}")

    def filter(self, record):
        return record.levelno >= logging.WARNING or not any(part in record.pathname for part in self.PATHS)


def quiet_library_logs() -> None:
    """Hide TensorFlow's and Keras's INFO lines (SavedModel internals and the like) unless --verbosity >= 1."""
    if absl_logging.get_verbosity() < absl_logging.DEBUG:
        absl_logging.get_absl_handler().addFilter(_LibraryInfo())
        logging.getLogger("tensorflow").setLevel(logging.WARNING)  # it has a handler of its own


EXPECTED_ERRORS = (ValueError, FileNotFoundError, OSError, callbacks.TrainingDiverged, files.LockedError,
                   json.JSONDecodeError, subprocess.CalledProcessError)


def _one_line(error: BaseException) -> str:
    if isinstance(error, subprocess.CalledProcessError):
        return f"a run failed (exit status {error.returncode}); its own error is above."
    if isinstance(error, OSError) and not isinstance(error, FileNotFoundError) and error.strerror:
        where = f" ({error.filename})" if error.filename else ""
        fix = " Free some disk space and run again (with --resume for a run)." if error.errno == 28 else ""
        return f"{error.strerror}{where}.{fix}" if not str(error).startswith(("Could not", "Cannot")) else str(error)
    return str(error) or type(error).__name__


def run(main: Callable[[list[str]], object], doc: str | None = None, check: Callable[[], None] | None = None) -> None:
    """`absl.app.run(main)` where --help prints the script's own flags by group and exits 0, library logs are
    quiet, and every expected failure ends as one line "error: ..." on stderr with exit status 1 (130 for Ctrl-C).

    With `TFDISC_FLAGS_ONLY=1` in the environment the script stops once its flags are parsed and `check()`
    (e.g. decoding the run configuration) passes: how tests check the commands the documentation shows.
    """
    doc = doc if doc is not None else sys.modules["__main__"].__doc__

    def parse(argv):
        if any(arg in ("--help", "-h", "-?", "--helpshort") for arg in argv[1:]):
            try:
                print(help_text(doc))
            except BrokenPipeError:  # piped into `head`
                pass
            sys.exit(0)
        try:
            return FLAGS(argv)
        except flags.Error as error:
            sys.exit(f"error: {error}")

    def guarded(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments {argv[1:]}; every option is a --flag.")
        quiet_library_logs()
        try:
            with checks.clear_errors():
                if os.environ.get("TFDISC_FLAGS_ONLY") == "1":
                    if check is not None:
                        check()
                    print("flags ok")
                    return None
                return main(argv)
        except EXPECTED_ERRORS as error:
            logging.getLogger(__name__).debug("Failed", exc_info=True)
            sys.exit(f"error: {_one_line(error)}")
        except KeyboardInterrupt as interrupt:
            sys.stderr.write(f"\n{interrupt or 'Interrupted.'}\n")
            sys.exit(130)

    app.run(guarded, flags_parser=parse)
