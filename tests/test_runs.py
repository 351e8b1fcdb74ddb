"""tfdisc.runs: the run configuration decoded once, and the run directory's records checked before any training."""

import json

import pytest

from tfdisc import runs


def test_defaults_come_from_the_data_set_and_the_architecture():
    config = runs.RunConfig(dataset="cifar10", precision="bnn")
    assert (config.arch, config.epochs, config.batch_size, config.adv_eps) == ("alexnet", 40, 128, 8 / 255)
    assert config.optimizer == "adam" and config.jit_compile and config.name == "cifar10_alexnet_bnn_8b_s0"
    assert runs.RunConfig(dataset="mnist", distribute="mirrored").jit_compile is False  # XLA only when asked


def test_ibp_training_takes_the_smallest_report_eps_and_names_its_runs():
    assert runs.RunConfig(dataset="mnist", ibp_train=True).ibp_eps == 0.1
    assert runs.RunConfig(dataset="cifar10", ibp_train=True).ibp_eps == 2 / 255
    assert runs.RunConfig(dataset="mnist", input_bits=2, ibp_train=True).name == "mnist_fcn2_full_2b_ibp_s0"


def test_eps_lists_are_sorted_once_and_written_as_text():
    config = runs.RunConfig(dataset="mnist", sweep_eps=(0.3, 0.0, 0.1), attack_eps=[0.2, 0.1])
    assert config.sweep_eps == (0.0, 0.1, 0.3) and config.report_eps == (0.1, 0.2)
    assert config.to_json()["sweep_eps"] == "0,0.1,0.3"


@pytest.mark.parametrize("changes, message", [
    ({"recipe": "reference", "learning_rate": 0.1}, "--recipe=reference sets the optimizer .* drop --learning_rate"),
    ({"epochs": 0}, "a run trains at least 1 epoch"),
    ({"learning_rate": float("inf")}, "must be a finite number > 0"),
    ({"adv_eps": 0.1, "adv_alpha": 0.2}, "--adv_alpha must be <= --adv_eps"),
    ({"attacks": ("transfer",)}, "--attacks=transfer needs --surrogate"),
    ({"run_name": "../x"}, "must be a plain folder name"),
    ({"input_mode": "ceil"}, "Unknown input_mode 'ceil'"),
    ({"adv_train": True, "ibp_train": True}, "--adv_train and --ibp_train exclude each other"),
    ({"ibp_train": True, "precision": "bnn"}, "--ibp_train needs --precision=full"),
    ({"certify": "milp"}, "Unknown certify 'milp'"),
    ({"ibp_eps": 0.0}, r"--ibp_eps=0.0 must be in \(0, 1\]"),
    ({"ibp_kappa": 1.5}, r"--ibp_kappa=1.5 in \[0, 1\]"),
])
def test_a_bad_configuration_is_named(changes, message):
    with pytest.raises(ValueError, match=message):
        runs.RunConfig(dataset="mnist", **changes).name


def test_a_history_counted_from_zero_is_renumbered(tmp_path):
    config = runs.RunConfig(dataset="mnist", output_dir=str(tmp_path), run_name="old")
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "history.csv").write_text("epoch,loss,epoch_seconds\n0,0.5,10\n1,0.4,11\n2,0.3,12\n")
    directory = runs.RunDirectory(config)
    assert [row["epoch"] for row in directory.history_rows()] == ["1", "2", "3"]
    directory.keep_history(2)  # the third epoch has no checkpoint
    assert (tmp_path / "old" / "history.csv").read_text() == "epoch,loss,epoch_seconds\n1,0.5,10\n2,0.4,11\n"
    assert directory.train_seconds() == 21.0


def test_resume_compares_only_the_run_defining_settings(tmp_path):
    config = runs.RunConfig(dataset="mnist", output_dir=str(tmp_path), run_name="r", resume=True, epochs=3)
    (tmp_path / "r").mkdir()
    saved = runs.RunConfig(dataset="mnist", epochs=2, sweep_every=0).to_json()
    (tmp_path / "r" / "config.json").write_text(json.dumps({"flags": saved}))
    runs.RunDirectory(config).check_resume(has_checkpoint=True)  # more epochs and another sweep: the same run
    other = runs.RunConfig(dataset="mnist", output_dir=str(tmp_path), run_name="r", resume=True, subset="first")
    with pytest.raises(runs.RunError, match="--subset: run has 'random', now 'first'"):
        runs.RunDirectory(other).check_resume(has_checkpoint=True)
