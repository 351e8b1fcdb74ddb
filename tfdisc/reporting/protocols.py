"""The protocol hypotheses as records: each trained run's FGSM curve under each evaluation protocol
(`tfdisc.evaluation.protocols`), written to `<runs>/protocols/*.json` and read back by the report."""

import dataclasses
import os

from tfdisc import datasets, files, models, presets
from tfdisc.evaluation import protocols
from tfdisc.reporting.records import RecordError, TrainedModel, load_records, read_run

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
class ProtocolRecord(TrainedModel):
    """One run's FGSM curve under one hypothesis."""

    hypothesis: str
    eps: list
    accuracy: list
    examples: int

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
        result = ProtocolRecord(**TrainedModel.of(run_dir), hypothesis=hypothesis, eps=found["eps"],
                                accuracy=found["accuracy"], examples=found["examples"])
        files.write_json_atomic(os.path.join(output_dir, f"{result.run}_{hypothesis}.json"),
                                dataclasses.asdict(result))
        written.append(result)
    return written


def load_protocol_records(root: str | os.PathLike) -> list[ProtocolRecord]:
    """The protocol records under `root/protocols/`."""
    records = load_records(root, "protocols", ProtocolRecord, "scripts/study_protocols.py")
    unknown = [r.hypothesis for r in records if r.hypothesis not in HYPOTHESES]
    if unknown:
        raise RecordError(f"{root}/protocols holds records of unknown hypotheses {unknown}; valid: {list(HYPOTHESES)}.")
    return records
