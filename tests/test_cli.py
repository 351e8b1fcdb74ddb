"""tfdisc.cli: grouped flags defined once, the run configuration decoded from them, --help, one-line errors."""

import errno
import subprocess
import sys
from pathlib import Path

from absl import flags
from absl.testing import flagsaver

from tfdisc import cli

ROOT = Path(__file__).resolve().parents[1]


def _flags(dataset):
    cli.define_experiment_flags(dataset)
    if not flags.FLAGS.is_parsed():
        flags.FLAGS(["test"])


def test_defining_again_for_another_data_set_moves_only_its_defaults():
    _flags("mnist")
    _flags("cifar10")
    try:
        assert flags.FLAGS["batch_size"].default == 128 and flags.FLAGS["arch"].default == "alexnet"
        assert cli.GROUPS["training"].count("epochs") == 1  # defined once
    finally:
        _flags("mnist")


def test_the_configuration_names_what_the_user_gave_and_fills_the_rest():
    _flags("mnist")
    with flagsaver.flagsaver(recipe="reference"):
        config = cli.run_config(flags.FLAGS, "mnist")
    assert config.recipe == "reference" and config.optimizer == "adam" and config.learning_rate == 1e-3
    with flagsaver.flagsaver(xnor=True, precision="xnor", input_mode="round", input_bits=2):
        config = cli.run_config(flags.FLAGS, "mnist")
    assert (config.precision, config.name) == ("xnor", "mnist_fcn2_xnor_2b_round_s0")


def test_help_groups_the_scripts_own_flags_and_exits_0():
    result = subprocess.run([sys.executable, str(ROOT / "experiments" / "cifar10.py"), "--help"], capture_output=True,
                            text=True)
    assert result.returncode == 0 and result.stdout.startswith("CIFAR-10: AlexNet")
    groups = [line for line in result.stdout.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert groups == ["data:", "model:", "training:", "attacks:", "output:"]


def test_flags_only_mode_checks_the_configuration_and_does_nothing_else(tmp_path):
    run = [sys.executable, str(ROOT / "experiments" / "mnist.py"), f"--output_dir={tmp_path}"]
    ok = subprocess.run(run + ["--bnn"], capture_output=True, text=True, env={"TFDISC_FLAGS_ONLY": "1"})
    assert ok.returncode == 0 and ok.stdout.strip() == "flags ok" and not any(tmp_path.iterdir())
    bad = subprocess.run(run + ["--recipe=cosine", "--learning_rate=0.1"], capture_output=True, text=True,
                         env={"TFDISC_FLAGS_ONLY": "1"})
    assert bad.returncode == 1 and bad.stderr.startswith("error: --recipe=cosine sets the optimizer")


def test_expected_failures_become_one_line():
    assert cli._one_line(OSError(errno.EACCES, "Permission denied", "/x")) == "Permission denied (/x)."
    assert cli._one_line(subprocess.CalledProcessError(2, ["x"])).startswith("a run failed (exit status 2)")
