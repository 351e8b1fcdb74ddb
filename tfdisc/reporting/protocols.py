"""The protocol hypotheses as records: each trained run's FGSM curve under each evaluation protocol
(`tfdisc.evaluation.protocols`), written to `<runs>/protocols/*.json` and read back by the report."""

import dataclasses
import os
from pathlib import Path

from tfdisc import datasets, files, models, presets
from tfdisc.evaluation import protocols
from tfdisc.reporting.records import RecordError, read_json, read_run

# hypothesis -> (the protocol it evaluates with, the input mode its models were trained with, what it supposes)
HYPOTHESES = {
    "standard": ("standard", "floor", "tfdisc's protocol: FGSM on the raw image with straight-through gradients, "
                 "the model discretizes x_adv again"),
    "normalized_eps": ("normalized_eps", "floor", "ε in units of normalized inputs, (x − mean)/std: a pixel budget "
                       "of ε·std"),
    "perturb_discretized": ("perturb_discretized", "floor", "the perturbation added to the already-discretized image, "
                            "with no second discretization"),
    "gradient_without_discretization": ("gradient_without_discretization", "floor", "the FGSM direction from the "
                                        "network without its discretization, at the raw image"),
    "round_quantizer": ("standard", "round", "round-to-nearest discretization (levels spread over [0, 1]) in "
                        "training and test, instead of the study's floor rule"),
}


@dataclasses.dataclass(frozen=True)
class ProtocolRecord:
    """One run's FGSM curve under one hypothesis."""

    hypothesis: str
    dataset: str
    arch: str
    precision: str
    input_bits: int
    adv_train: bool
    epochs: int
    eps: list
    accuracy: list
    examples: int
    run: str

    @property
    def key(self) -> tuple:
        return self.dataset, self.arch, self.precision, self.input_bits, self.adv_train

    @property
    def curve(self) -> dict:
        return {"eps": self.eps, "accuracy": self.accuracy}


def evaluate_run(run_dir: str, data_dir: str | None, output_dir: str) -> list[ProtocolRecord]:
    """Every hypothesis that applies to the run in `run_dir` (by its input mode), on its whole test set at the data
    set's sweep grid, each written to `output_dir/<run>_<hypothesis>.json`."""
    record = read_run(run_dir)
    model = models.load(run_dir)
    data = datasets.load_arrays(record.dataset, "test", data_dir=data_dir, download=False)
    written = []
    for hypothesis, (protocol, mode, _) in HYPOTHESES.items():
        if mode != record.input_mode or (protocol == "normalized_eps" and record.dataset not in protocols.STD):
            continue
        found = protocols.protocol_sweep(model, data, presets.get(record.dataset).sweep_eps, protocol,
                                         dataset=record.dataset)
        result = ProtocolRecord(hypothesis, record.dataset, record.arch, record.precision, record.input_bits,
                                record.adv_train, record.epochs, found["eps"], found["accuracy"], found["examples"],
                                Path(run_dir).name)
        files.write_json_atomic(os.path.join(output_dir, f"{result.run}_{hypothesis}.json"),
                                dataclasses.asdict(result))
        written.append(result)
    return written


def load_protocol_records(root: str | os.PathLike) -> list[ProtocolRecord]:
    """The protocol records under `root/protocols/`."""
    found = []
    names = {f.name for f in dataclasses.fields(ProtocolRecord)}
    for path in sorted(Path(root).glob("protocols/*.json")):
        data = read_json(path, "protocol record")
        if not isinstance(data, dict) or set(data) != names or data["hypothesis"] not in HYPOTHESES:
            raise RecordError(f"{path} is not a protocol record of scripts/study_protocols.py; move it away.")
        found.append(ProtocolRecord(**data))
    return found
