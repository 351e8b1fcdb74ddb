"""The study's grid of runs and the queue of grids: each run in a process of its own, skipped when finished and
resumed when interrupted, so a grid or a queue can be stopped and started again at will."""

import dataclasses
import itertools
import logging
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Iterable, Sequence

from tfdisc import files
from tfdisc.reporting.records import read_json

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class GridRun:
    """One run of a grid: its folder and the experiment script's arguments."""

    name: str
    run_dir: Path
    args: tuple


def budget_dir(output_dir: str | Path, budget: str) -> Path:
    """The folder of a budget's runs: the label's part before any ':' ("full: 10 epochs" -> output_dir/full)."""
    return Path(output_dir) / budget.split(":")[0].strip().replace(" ", "_")


def grid(dataset: str, arch: str, bits: Iterable[int], precisions: Iterable[str], adv: Iterable[str], *,
         output_dir: str | Path, budget: str, extra: Sequence[str] = (), **options) -> list[GridRun]:
    """The runs of bits × precisions × adversarial training ("on"/"off"), with `options` (epochs, train_examples,
    test_examples, data_dir: None to leave out) and `extra` flags for every run."""
    out = budget_dir(output_dir, budget)
    runs = []
    for bit, precision, adv_setting in itertools.product(bits, precisions, adv):
        name = f"{dataset}_{arch}_{precision}_{bit}b{'_adv' if adv_setting == 'on' else ''}"
        args = [f"--output_dir={out}", f"--arch={arch}", f"--input_bits={bit}", f"--precision={precision}",
                f"--adv_train={adv_setting == 'on'}", *extra]
        args += [f"--{key}={value}" for key, value in options.items() if value is not None]
        runs.append(GridRun(name, out / name, tuple(args + [f"--run_name={name}"])))
    return runs


def run_grid(runs: list, script: Path, *, command: str, budget: str, reevaluate: bool = False) -> None:
    """Run each of `runs` with `script` (experiments/<dataset>.py) unless it has finished; record `budget` and
    `command` in its budget.json. `reevaluate` evaluates finished runs again from their checkpoints."""
    for run in runs:
        done = (run.run_dir / "results.json").exists()
        if done and not reevaluate:
            logger.info("done already: %s", run.run_dir)
            continue
        resume = (run.run_dir / "checkpoints").is_dir()
        if reevaluate and not resume and done:
            raise ValueError(f"--reevaluate: {run.run_dir} holds the run's records but not its checkpoints (only "
                             "records are committed). Train it here first: move its results.json away and run the "
                             "grid without --reevaluate.")
        logger.info("%s %s", "resuming" if resume else "running", run.run_dir)
        subprocess.run([sys.executable, str(script), *run.args, f"--resume={resume}"], check=True)
        label = {"budget": budget, "command": command}
        if reevaluate and (run.run_dir / "budget.json").exists():
            label = {**read_json(run.run_dir / "budget.json", "budget label"), "evaluation_command": command}
        files.write_json_atomic(run.run_dir / "budget.json", label)


def queue_entries(path: str | Path) -> list[list[str]]:
    """A queue file's entries, in order: each line's flags (blank lines and # comments skipped)."""
    entries = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                entries.append(shlex.split(line))
            except ValueError as error:
                raise ValueError(f"{path}, line {number}: {error}; fix the line's quoting.") from None
    return entries


def run_queue(path: str | Path, script: Path, passed: Sequence[str] = (),
              lock_dir: str | Path = "runs/paper") -> list[str]:
    """Run every entry of the queue file `path` with `script` (scripts/reproduce_paper.py) and the flags `passed`,
    one process each, re-reading the file after each one (entries added meanwhile run too). A failed entry is logged
    and the next one runs; returns the failed entries. One queue runs per `lock_dir` at a time."""
    Path(lock_dir).mkdir(parents=True, exist_ok=True)
    done, failed = [], []
    with files.exclusive_lock(str(Path(lock_dir) / ".queue.lock"), f"The study queue of {lock_dir}"):
        while pending := [e for e in queue_entries(path) if e not in done]:
            entry = pending[0]
            logger.info("queue: entry %d of %d: %s", len(done) + 1, len(done) + len(pending), shlex.join(entry))
            process = subprocess.run([sys.executable, str(script), *entry, *passed], check=False)
            if process.returncode in (-2, 130):  # Ctrl-C: stop the queue; the next start resumes the run
                raise KeyboardInterrupt("The queue stopped; start it again to resume.")
            if process.returncode:
                failed.append(shlex.join(entry))
                logger.error("queue: entry failed (exit status %d): %s", process.returncode, shlex.join(entry))
            done.append(entry)
    logger.info("queue: %d entries run, %d failed", len(done), len(failed))
    return failed
