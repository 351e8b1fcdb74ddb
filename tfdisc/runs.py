"""A training run's configuration and its directory: naming, locking, resume checks and its records.

`RunConfig` is decoded once from the command line (`tfdisc.cli.run_config`) or built in Python, and is
frozen. `RunDirectory` owns `<output_dir>/<name>/`: it refuses symbolic links inside the output folder,
holds an exclusive lock while the run works, checks that a resumed run continues the same configuration,
validates the records it finds before any training, and keeps `history.csv` consistent with the checkpoints.
"""

import csv
import dataclasses
import importlib.metadata
import io
import json
import logging
import math
import os
import platform
import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import tfdisc
from tfdisc import checks, files, models, presets, recipes
from tfdisc import eps as eps_lib
from tfdisc.certification import search

logger = logging.getLogger(__name__)

# Fields that define what a run trains: --resume refuses to continue a run under other values.
RUN_DEFINING = ("dataset", "arch", "precision", "input_bits", "input_mode", "batch_size", "learning_rate", "optimizer", "recipe",
                "adv_train", "adv_eps", "adv_alpha", "adv_ratio", "ibp_train", "ibp_eps", "ibp_kappa", "train_examples",
                "subset", "mixed_precision", "seed")


class RunError(ValueError):
    """A run cannot start or continue as asked; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a run does, as the experiment scripts' flags name it.

    None means the default: the data set's preset (`arch`, `batch_size`, `learning_rate`, the R-FGSM budget, the
    sweep's ε, and its smallest report ε for IBP training's `ibp_eps`), the study's epochs for `arch`, Adam for
    `optimizer`, and XLA for `jit_compile` on one device only (on logical CPU devices XLA cannot reach another
    replica's variables). `attack_eps` None means `sweep_eps`.
    ε lists are kept ascending.
    """

    dataset: str
    arch: str | None = None
    precision: str = "full"
    input_bits: int = 8
    input_mode: str = "floor"
    epochs: int | None = None
    batch_size: int | None = None
    learning_rate: float | None = None
    optimizer: str | None = None
    recipe: str = "constant"
    adv_train: bool = False
    adv_eps: float | None = None
    adv_alpha: float | None = None
    adv_ratio: float = 0.5
    ibp_train: bool = False
    ibp_eps: float | None = None
    ibp_kappa: float = 0.5
    sweep_eps: tuple | None = None
    sweep_examples: int = 1000
    sweep_every: int = 1
    data_dir: str | None = None
    download: bool = True
    output_dir: str = "runs"
    run_name: str | None = None
    seed: int = 0
    export: bool = True
    resume: bool = False
    distribute: str = "none"
    jit_compile: bool | None = None
    mixed_precision: bool = False
    cpu_devices: int = 1
    attacks: tuple = ("fgsm",)
    autoattack_version: str = "standard"
    pgd_steps: int = 20
    pgd_restarts: int = 5
    square_queries: int = 1000
    surrogate: str | None = None
    trust_model: bool = False
    gradient: str = "identity"
    certify: str | None = None
    attack_eps: tuple | None = None
    attack_examples: int | None = None
    train_examples: int | None = None
    test_examples: int | None = None
    subset: str = "random"

    def __post_init__(self):
        preset = presets.get(self.dataset)
        recipes.get(self.recipe)
        given = [f"--{name}" for name in ("optimizer", "learning_rate") if getattr(self, name) is not None]
        if self.recipe != "constant" and given:
            raise RunError(f"--recipe={self.recipe} sets the optimizer and its learning rates; drop "
                           f"{' and '.join(given)} (or use --recipe=constant).")
        fill = {"arch": preset.arch, "batch_size": preset.batch_size, "learning_rate": preset.learning_rate,
                "optimizer": "adam", "adv_eps": preset.adv_eps, "adv_alpha": preset.adv_alpha,
                "ibp_eps": preset.report_eps[0], "sweep_eps": preset.sweep_eps,
                "jit_compile": self.distribute == "none"}
        for name, value in fill.items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.epochs is None:
            object.__setattr__(self, "epochs", models.ARCHITECTURES[self.arch].epochs)
        for name in ("sweep_eps", "attack_eps"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, tuple(eps_lib.values(getattr(self, name))))
        object.__setattr__(self, "attacks", tuple(self.attacks))
        self._check()

    def _check(self):
        checks.choice("arch", self.arch, tuple(models.ARCHITECTURES))
        checks.choice("precision", self.precision, models.PRECISIONS)
        checks.bits(self.input_bits)
        checks.choice("input_mode", self.input_mode, ("floor", "round"))
        checks.choice("optimizer", self.optimizer, tuple(recipes.OPTIMIZERS))
        if self.epochs < 1:
            raise RunError(f"--epochs={self.epochs}: a run trains at least 1 epoch; to evaluate a trained model use "
                           "scripts/evaluate.py.")
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise RunError(f"--learning_rate={self.learning_rate} must be a finite number > 0, e.g. 1e-3.")
        if self.adv_alpha > self.adv_eps:
            raise RunError("--adv_alpha must be <= --adv_eps (the random step spends part of the budget).")
        if self.adv_train and self.ibp_train:
            raise RunError("--adv_train and --ibp_train exclude each other; pick one way to train for robustness.")
        if self.ibp_train and self.precision != "full":
            raise RunError(f"--ibp_train needs --precision=full: the interval bounds of sign activations pass Larq's "
                           f"straight-through gradient only where their ends lie within ±1, and IBP training of "
                           f"FCN2-{self.precision.upper()} certified nothing after its ramp began. Train "
                           f"tfdisc.certified_training.IntervalBoundModel directly to experiment.")
        if not 0 < self.ibp_eps <= 1 or not 0 <= self.ibp_kappa <= 1:
            raise RunError(f"--ibp_eps={self.ibp_eps} must be in (0, 1] and --ibp_kappa={self.ibp_kappa} in [0, 1].")
        if self.certify is not None:
            checks.choice("certify", self.certify, search.BOUNDS)
        if "transfer" in self.attacks and not self.surrogate:
            raise RunError("--attacks=transfer needs --surrogate=<run dir or SavedModel> (e.g. a full-precision 8-bit "
                           "run).")

    @property
    def name(self) -> str:
        """The run directory's name: `run_name` (a plain folder name), or one made from the configuration."""
        if self.run_name is None:
            mode = "" if self.input_mode == "floor" else f"_{self.input_mode}"
            adv = "_adv" if self.adv_train else "_ibp" if self.ibp_train else ""
            return f"{self.dataset}_{self.arch}_{self.precision}_{self.input_bits}b{mode}{adv}_s{self.seed}"
        name = self.run_name
        if not name or name in (".", "..") or "/" in name or (os.altsep and os.altsep in name) or name.startswith("."):
            raise RunError(f"--run_name={name!r} must be a plain folder name inside --output_dir (no '/', not '..' or "
                           "hidden); use --output_dir to choose where runs go.")
        return name

    @property
    def binarized(self) -> bool:
        return self.precision != "full"

    @property
    def report_eps(self) -> tuple:
        return self.attack_eps or self.sweep_eps

    @property
    def augmented(self) -> bool:
        """Whether training batches are augmented: the recipe asks for it, and the images are CIFAR's."""
        return recipes.get(self.recipe).augments and self.dataset.startswith("cifar")

    def to_json(self) -> dict:
        """config.json's "flags": every field by its flag name, ε lists as text."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name in ("sweep_eps", "attack_eps"):
            values[name] = None if values[name] is None else eps_lib.text(values[name])
        values["attacks"] = list(self.attacks)
        return values


def versions() -> dict:
    """The versions of Python, tfdisc and the packages a run's numbers depend on."""
    packages = ["tensorflow", "tf-keras", "larq", "numpy", "tensorflow-datasets", "absl-py", "matplotlib"]
    found = {"python": platform.python_version(), "tfdisc": tfdisc.__version__}
    for package in packages:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


def trained_runs(root: str | Path, only: Sequence[str] = ()) -> list[Path]:
    """The run directories under `root` (at any depth) that hold results.json and saved_model/, by name if `only`
    names some; ValueError if there is none."""
    found = sorted(p.parent for p in Path(root).glob("**/results.json") if (p.parent / "saved_model").is_dir()
                   and (not only or p.parent.name in only))
    if not found:
        raise ValueError(f"No run directory with results.json and saved_model/ under {root}"
                         + (f" named {', '.join(only)}" if only else "") + ".")
    return found


HISTORY_NUMBERS = ("loss", "accuracy", "epoch_seconds", "lr")  # columns that must be numbers where present


class RunDirectory:
    """`<output_dir>/<name>/` of one run (or a temporary folder for a non-chief worker).

    Use as a context manager: entering creates the folder (refusing symbolic links) and takes its lock;
    leaving releases the lock, and removes the folder if the run failed before writing anything but the lock.
    """

    def __init__(self, config: RunConfig, chief: bool = True):
        self.config = config
        self.chief = chief
        self.path = Path(config.output_dir) / config.name if chief else Path(tempfile.mkdtemp(prefix="tfdisc-worker-"))
        self._lock = None
        self._created = False

    # ---- paths ------------------------------------------------------------------------------------------------
    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def report_checkpoint(self) -> Path:
        """The robustness report's checkpoint (`tfdisc.evaluation.checkpoint`), present while a report is unfinished."""
        return self.path / "report_checkpoint.json"

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # ---- entering: output folder, links, lock -----------------------------------------------------------------
    def __enter__(self):
        if self.chief:
            self._check_output_dir()
            self._refuse_links()
        self._created = not self.path.exists()
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock = files.exclusive_lock(str(self.path / ".lock"), f"The run {self.path}")
        try:
            self._lock.__enter__()
        except files.LockedError as error:
            raise RunError(f"{error} Or choose another --run_name.") from None
        return self

    def __exit__(self, kind, value, traceback):
        self._lock.__exit__(kind, value, traceback)
        if not self.chief:
            shutil.rmtree(self.path, ignore_errors=True)
        elif kind is not None and self._created and {p.name for p in self.path.iterdir()} <= {".lock"}:
            shutil.rmtree(self.path, ignore_errors=True)  # a failed start leaves nothing behind
        return False

    def _check_output_dir(self):
        output_dir = Path(self.config.output_dir)
        if output_dir.exists() and not output_dir.is_dir():
            raise RunError(f"--output_dir={output_dir} is a file, not a folder; choose a folder for the runs.")
        try:
            output_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=output_dir):
                pass
        except OSError as error:
            raise RunError(f"Cannot write runs under --output_dir={output_dir} ({error.strerror}); choose a writable "
                           "folder.") from None

    def _refuse_links(self):
        """No symbolic link where the run writes: the run folder itself, or any entry it writes into."""
        candidates = [self.path] + ([p for p in self.path.iterdir()] if self.path.is_dir() and
                                    not self.path.is_symlink() else [])
        if self.checkpoints.is_dir() and not self.checkpoints.is_symlink():
            candidates += list(self.checkpoints.iterdir())
        links = [str(p) for p in candidates if p.is_symlink()]
        if links:
            raise RunError(f"{links[0]} is a symbolic link; tfdisc never writes through links inside --output_dir "
                           "(it could overwrite someone else's files). Remove the link or choose another --run_name.")

    # ---- records -------------------------------------------------------------------------------------------------
    def has_checkpoint(self) -> bool:
        import tensorflow as tf

        return tf.train.latest_checkpoint(str(self.checkpoints)) is not None

    def check_resume(self, has_checkpoint: bool) -> None:
        """Refuse to start over a run, or to resume one under other run-defining settings; validate the records a
        resumed run will extend (config.json, history.csv) before any training."""
        config_path = self.path / "config.json"
        if not self.config.resume:
            if has_checkpoint or (self.path / "results.json").exists():
                raise RunError(f"{self.path} already holds a run; pass --resume to continue it or choose another "
                               "--run_name.")
            return
        if not has_checkpoint:
            logger.warning("--resume: %s holds no finished epoch; starting at epoch 1.", self.path)
        self.history_rows()  # fails now, naming the line and field, rather than after training
        if not config_path.exists():
            if has_checkpoint:
                raise RunError(f"{self.path} has checkpoints but no config.json, so --resume cannot check that they "
                               "belong to this configuration; choose another --run_name.")
            return
        saved = self._saved_flags(config_path)
        current = self.config.to_json()
        defaults = RunConfig(dataset=self.config.dataset, arch=self.config.arch).to_json()
        # A field newer than the run is absent from its config: the run trained as that field's default does.
        differ = [f"--{name}: run has {saved.get(name, defaults[name])!r}, now {current[name]!r}"
                  for name in RUN_DEFINING if saved.get(name, defaults[name]) != current[name]]
        if differ:
            raise RunError(f"--resume would continue {self.path} with other settings ({'; '.join(differ)}). Resume "
                           "with the run's settings, or start a new run with another --run_name.")

    @staticmethod
    def _saved_flags(path):
        try:
            saved = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise RunError(f"{path} is not valid JSON ({error}); it is truncated or corrupt. Move it away to resume "
                           "without the settings check, or start a new run with another --run_name.") from None
        if not isinstance(saved, dict) or not isinstance(saved.get("flags"), dict):
            raise RunError(f"{path} has no 'flags' object, so it is not a tfdisc run's configuration; move it away or "
                           "choose another --run_name.")
        return saved["flags"]

    def write_config(self, epochs: int) -> None:
        files.write_json_atomic(self.path / "config.json",
                                {"flags": self.config.to_json(), "epochs": epochs, "versions": versions()})

    def history_rows(self) -> list[dict]:
        """history.csv's rows, validated: an `epoch` column of whole numbers counting from 1, as the logs do (a file
        of tfdisc before 0.2, counting from 0, is renumbered), and numbers in the numeric columns; RunError naming
        the line and field otherwise."""
        path = self.path / "history.csv"
        if not path.exists():
            return []
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if "epoch" not in (reader.fieldnames or []):
                raise RunError(f"{path} has no 'epoch' column: it is not a tfdisc run's history. Move it away (the "
                               "checkpoints still hold the run) or start a new run with another --run_name.")
            rows = list(reader)
        if rows and rows[0]["epoch"] == "0":  # written before epochs counted from 1
            rows = [{**row, "epoch": str(int(row["epoch"]) + 1) if row["epoch"].isdigit() else row["epoch"]}
                    for row in rows]
        for line, row in enumerate(rows, 2):
            for field in ("epoch", *HISTORY_NUMBERS):
                value = row.get(field)
                if value in (None, "", "NA") and field != "epoch":
                    continue
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    number = math.nan
                if field == "epoch" and not (number >= 1 and number == int(number)):
                    number = math.nan
                if not math.isfinite(number) and not (field != "epoch" and value.lower() in ("nan", "inf", "-inf")):
                    raise RunError(f"{path}, line {line}: field {field} is {value!r}, not a number. Fix or delete "
                                   "that line (the checkpoints still hold the run), then resume.")
        return rows

    def keep_history(self, epochs_done: int) -> None:
        """Drop history.csv rows of epochs after the last checkpoint (a kill between the row and the checkpoint),
        and renumber a file that counts epochs from 0."""
        rows = self.history_rows()
        kept = [row for row in rows if int(row["epoch"]) <= epochs_done]
        renumbered = bool(rows) and (self.path / "history.csv").read_text().split("\n")[1].startswith("0,")
        if len(kept) != len(rows) or renumbered:
            out = io.StringIO()
            writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(kept)
            files.write_text_atomic(self.path / "history.csv", out.getvalue())
            if len(kept) != len(rows):
                logger.info("history.csv: dropped %d row(s) of epochs after the last checkpoint", len(rows) - len(kept))

    def train_seconds(self) -> float:
        """Training time over all epochs of the run, resumed ones included (history.csv)."""
        return sum(float(row["epoch_seconds"]) for row in self.history_rows()
                   if row.get("epoch_seconds") not in (None, "", "NA"))
