"""Typed records of runs and evaluations: what `results.json` holds, written by the experiments, read by the report.

`RunRecord` is one training run's results (schema version `SCHEMA_VERSION`); `load_runs` finds every
`results.json` under a folder and reads it with the budget label beside it (`budget.json`). Records of
older schema versions are read as the current one (fields they lack get the value those runs had).
A record that is not valid JSON, or lacks a field, fails with `RecordError` naming the file and the field.
"""

import csv
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

from tfdisc import eps as eps_lib
from tfdisc import files

SCHEMA_VERSION = 2


class RecordError(ValueError):
    """A record on disk is not what tfdisc wrote: the message names the file, the field and the fix."""


def read_json(path: str | os.PathLike, what: str = "record") -> Any:
    """The JSON value in the file `path`; RecordError naming the file if it is missing, truncated or not JSON."""
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise RecordError(f"{path}: no such {what}.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise RecordError(f"{path} is not valid JSON ({error}): the {what} is truncated or corrupt; move it away and "
                          "write it again (rerun the command that made it).") from None


@dataclasses.dataclass
class RunRecord:
    """One run's results: the model, its budget, the FGSM sweep on every test example, the robustness report
    (`attacks`, `worst_case`, `checks` on `robustness["examples"]` examples) and where it ran.

    Curves are {"eps": [...], "accuracy": [...]}; `attacks["autoattack"]` also has "after" (accuracy after each
    stage). The provenance fields (`budget`, `command`, `evaluation_command`, `run_dir`) come from the run's
    folder, not from results.json.
    """

    dataset: str
    arch: str
    precision: str
    input_bits: int
    adv_train: bool
    clean_accuracy: float
    test_examples: int
    epochs: int
    sweep: dict
    input_mode: str = "floor"
    subset: str = "random"
    attacks: dict = dataclasses.field(default_factory=dict)
    worst_case: dict | None = None
    checks: list = dataclasses.field(default_factory=list)
    masking_suspected: bool = False
    certified: dict | None = None  # with --certify: {"eps", "accuracy" (the lower bound), "gap", "bound", ...}
    robustness: dict = dataclasses.field(default_factory=dict)
    train_examples: int | None = None
    recipe: str = "constant"
    adv_settings: dict | None = None
    ibp_settings: dict | None = None  # {"eps", "kappa"} of IBP certified training, which the study does not use
    resumed_from_epoch: int = 0
    train_seconds: float = 0.0
    machine: str = ""
    compute_policy: str = "float32"
    replicas: int = 1
    versions: dict = dataclasses.field(default_factory=dict)
    exports: dict = dataclasses.field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    budget: str = dataclasses.field(default="unlabelled", metadata={"provenance": True})
    command: str = dataclasses.field(default="", metadata={"provenance": True})
    evaluation_command: str = dataclasses.field(default="", metadata={"provenance": True})
    run_dir: str = dataclasses.field(default="", metadata={"provenance": True})
    epoch_accuracy: list = dataclasses.field(default_factory=list, metadata={"provenance": True})  # history.csv

    @classmethod
    def from_json(cls, data: Any, source: str = "results.json") -> "RunRecord":
        """A record from results.json's content; RecordError naming `source` and the field if one is missing."""
        if not isinstance(data, dict):
            raise RecordError(f"{source} holds {type(data).__name__}, not a run's results; rerun the run to write it.")
        version = data.get("schema_version", 1)
        if not isinstance(version, int) or version > SCHEMA_VERSION:
            raise RecordError(f"{source} has schema version {version!r}, newer than this tfdisc reads "
                              f"({SCHEMA_VERSION}); upgrade tfdisc.")
        names = {f.name for f in dataclasses.fields(cls) if not f.metadata.get("provenance")}
        required = [f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        missing = [name for name in required if name not in data]
        if missing:
            raise RecordError(f"{source} lacks the field(s) {', '.join(missing)}: it is not a tfdisc run's results; "
                              "rerun the run (with --resume if it has checkpoints) to write it.")
        values = {k: v for k, v in data.items() if k in names}
        values["schema_version"] = SCHEMA_VERSION
        for key in ("train_examples", "adv_settings", "worst_case"):  # written as null before schema 2
            values.setdefault(key, None)
        record = cls(**values)
        record._validate(source)
        return record

    def _validate(self, source):
        sweep = self.sweep
        if not (isinstance(sweep, dict) and isinstance(sweep.get("eps"), list)
                and isinstance(sweep.get("accuracy"), list) and len(sweep["eps"]) == len(sweep["accuracy"])):
            raise RecordError(f"{source}: field sweep must hold equally long 'eps' and 'accuracy' lists; rerun the "
                              "run to write it again.")
        for name in ("clean_accuracy",):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise RecordError(f"{source}: field {name} must be a number in [0, 1]; got {value!r}.")

    def to_json(self) -> dict:
        """results.json's content (the provenance fields are left out: they live in the run's folder)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if not f.metadata.get("provenance")}

    def write(self, path: str | os.PathLike) -> None:
        """Write results.json at `path`, atomically."""
        files.write_json_atomic(path, self.to_json())

    # ---- what the reports ask of a record -------------------------------------------------------------------

    @property
    def label(self) -> str:
        """"full + adv", "bnn", ...: precision and adversarial training."""
        return f"{self.precision}{' + adv' if self.adv_train else ''}"

    @property
    def model_label(self) -> str:
        """"full + adv 2-bit", "bnn 8-bit", ...: the label and the input bits."""
        return model_label(self.precision, self.input_bits, self.adv_train)

    @property
    def key(self) -> tuple:
        """(dataset, arch, precision, input_bits, adv_train): which model of the study this run is."""
        return self.dataset, self.arch, self.precision, self.input_bits, self.adv_train

    def fgsm_at(self, eps: float) -> float | None:
        """The FGSM sweep's accuracy at `eps` (every test example), or None where the sweep has no such ε."""
        return eps_lib.at(self.sweep, eps)

    def attack_at(self, name: str, eps: float) -> float | None:
        """Accuracy under the report's attack `name` at `eps` ("worst" for the worst case where more than one attack
        ran), or None."""
        if name == "worst":
            curve = self.worst_case if len(self.attacks) > 1 else None
        else:
            curve = self.attacks.get(name)
        return None if not curve else eps_lib.at(curve, eps)

    @property
    def attack_examples(self) -> int | None:
        """How many test examples the robustness report attacked."""
        return self.robustness.get("examples")


@dataclasses.dataclass(frozen=True)
class TrainedModel:
    """Which trained run a derived record (a protocol curve, a bracket) is about."""

    run: str
    dataset: str
    arch: str
    precision: str
    input_bits: int
    adv_train: bool
    epochs: int

    @property
    def key(self) -> tuple:
        """(dataset, arch, precision, input_bits, adv_train), as `RunRecord.key`."""
        return self.dataset, self.arch, self.precision, self.input_bits, self.adv_train

    @classmethod
    def of(cls, run_dir: str | os.PathLike) -> dict:
        """The fields of the run in `run_dir`, to build a subclass with."""
        record = read_run(run_dir)
        return {"run": Path(run_dir).name, "dataset": record.dataset, "arch": record.arch,
                "precision": record.precision, "input_bits": record.input_bits, "adv_train": record.adv_train,
                "epochs": record.epochs}


def model_label(precision: str, bits: int, adv: bool = False) -> str:
    """"full + adv 2-bit": a model of the study by precision, input bits and adversarial training."""
    return f"{precision}{' + adv' if adv else ''} {bits}-bit"


def read_run(run_dir: str | os.PathLike) -> RunRecord:
    """The record of the run in `run_dir` (its results.json), with the provenance in its budget.json."""
    run_dir = Path(run_dir)
    record = RunRecord.from_json(read_json(run_dir / "results.json", "run's results"), str(run_dir / "results.json"))
    budget = run_dir / "budget.json"
    label = read_json(budget, "budget label") if budget.exists() else {}
    if not isinstance(label, dict):
        raise RecordError(f"{budget} must hold an object with 'budget' and 'command'; rerun the grid to write it.")
    record.budget = label.get("budget", "unlabelled")
    record.command = label.get("command", "")
    record.evaluation_command = label.get("evaluation_command", "")
    record.run_dir = str(run_dir)
    record.epoch_accuracy = _epoch_accuracy(run_dir / "history.csv")
    if record.train_examples is None and (run_dir / "config.json").exists():  # runs before results.json recorded it
        config = read_json(run_dir / "config.json", "run configuration")
        record.train_examples = (config.get("flags") or {}).get("train_examples") if isinstance(config, dict) else None
    return record


def _epoch_accuracy(path: Path) -> list[float]:
    """The validation accuracy after each epoch, from a run's history.csv (epochs in order); [] without one."""
    if not path.exists():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    try:
        return [float(row["val_accuracy"]) for row in sorted(rows, key=lambda row: int(row["epoch"]))]
    except (KeyError, ValueError, TypeError) as error:
        raise RecordError(f"{path}: cannot read the validation accuracy of every epoch ({error}); the history is "
                          "damaged. Restore it from the repository or rerun the run.") from None


def load_runs(root: str | os.PathLike) -> list[RunRecord]:
    """Every run record under `root` (each folder holding a results.json), in path order."""
    return [read_run(path.parent) for path in sorted(Path(root).glob("**/results.json"))]


def read_record(path: str | os.PathLike, cls: type, folder: str, made_by: str) -> Any:
    """The `cls` (a dataclass) record in the file `path`; RecordError naming the file if it is not one (made by
    `made_by`) or holds a value `cls` refuses. A field with a default may be missing (records older than the field)."""
    fields = dataclasses.fields(cls)
    names = {f.name for f in fields}
    required = {f.name for f in fields
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    data = read_json(path, f"{folder} record")
    if not isinstance(data, dict) or not required <= set(data) <= names:
        raise RecordError(f"{path} is not a {folder} record of {made_by}; move it away.")
    try:
        return cls(**data)
    except ValueError as error:  # a field the record class checks
        raise RecordError(f"{path}: {error} Is it a {folder} record of {made_by}? Move it away or remake it.") \
            from None


def load_records(root: str | os.PathLike, folder: str, cls, made_by: str) -> list:
    """Every `cls` record in `root/folder/*.json` (`read_record`)."""
    return [read_record(path, cls, folder, made_by) for path in sorted(Path(root).glob(f"{folder}/*.json"))]


def load_evaluations(root: str | os.PathLike) -> list[dict]:
    """The robustness reports `scripts/evaluate.py --output` wrote into `root/evaluations/`, checked for the fields
    the report reads."""
    found = []
    for path in sorted(Path(root).glob("evaluations/*.json")):
        report = read_json(path, "robustness report")
        needed = ("attacks", "eps", "worst_case", "checks", "examples", "clean_accuracy", "settings", "dataset")
        missing = [k for k in needed if not isinstance(report, dict) or k not in report]
        if missing:
            raise RecordError(f"{path} lacks the field(s) {', '.join(missing)}: it is not a robustness report of "
                              "scripts/evaluate.py; move it out of the evaluations folder.")
        found.append(report)
    return found
