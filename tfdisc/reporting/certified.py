"""Brackets as records: a trained run's certified accuracy (lower bound) and attacked accuracy (upper bound) per ε,
made by `tfdisc.certification.bracket`, written to `<runs>/certified/*.json` and read back by the report."""

import dataclasses
import os

from tfdisc import certification, datasets, files, models
from tfdisc.reporting.records import TrainedModel, load_records, read_run
from tfdisc.types import EpsValues


@dataclasses.dataclass(frozen=True)
class CertificationRecord(TrainedModel):
    """One run's bracket on its first `examples` test images."""

    eps: list
    examples: int
    certified: list
    attacked: list
    gap: list
    methods: list
    attacked_examples: list
    version: str
    bound: str
    seconds: float
    time_limit: float  # seconds of branch and bound per survivor of the attacks (0: none)
    split: str = "pixels"  # what branch and bound splits (records made before the choice existed split pixels)
    max_domains: int = 0  # parts of branch and bound per survivor (0: no budget; records before it had none)
    units: list | None = None  # each activation's units (None: not a dense chain, or a record from before)
    undecided: list | None = None  # per ε, the median undecided units per activation where the bounds left examples

    def __post_init__(self):
        certification.check_options(self.bound, self.split, self.time_limit, self.max_domains)
        if not _counts_fit(self.units, self.undecided, len(self.eps)):
            raise ValueError(f"undecided must be None or, per ε, None or one count per activation of units "
                             f"{self.units!r}, each between 0 and its units; got {self.undecided!r}.")


def _counts_fit(units, undecided, eps_count):
    """Whether `units` is None or a list of positive ints, and `undecided` None or, per ε, None or a count within
    each activation's units."""
    def number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    if units is not None and not (isinstance(units, list) and all(number(u) and int(u) == u >= 1 for u in units)):
        return False
    if undecided is None:
        return True
    if units is None or not isinstance(undecided, list) or len(undecided) != eps_count:
        return False
    return all(counts is None or (isinstance(counts, list) and len(counts) == len(units)
                                  and all(number(c) and 0 <= c <= u for c, u in zip(counts, units)))
               for counts in undecided)


def certify_run(run_dir: str, data_dir: str | None, eps_values: EpsValues, examples: int, output_dir: str, *,
                bound: str = "crown-refined", version: str = "standard+discrete", time_limit: float = 0.0,
                split: str = "pixels", max_domains: int = 0, enumeration_limit: int = 2**16) -> CertificationRecord:
    """Bracket the run in `run_dir` on its first `examples` test images and write the record to
    `output_dir/<run>.json`."""
    record = read_run(run_dir)
    model = models.load(run_dir)
    data = datasets.load_arrays(record.dataset, "test", data_dir=data_dir, examples=examples, subset_order="first",
                                download=False)
    found = certification.bracket(model, data, eps_values, version=version, bound=bound, time_limit=time_limit,
                                  split=split, max_domains=max_domains, enumeration_limit=enumeration_limit)
    result = CertificationRecord(**TrainedModel.of(run_dir), eps=found["eps"], examples=found["examples"],
                                 certified=found["certified"], attacked=found["attacked"], gap=found["gap"],
                                 methods=found["methods"], attacked_examples=found["attacked_examples"],
                                 version=version, bound=bound, seconds=found["seconds"],
                                 time_limit=time_limit, split=split, max_domains=max_domains,
                                 units=found["units"], undecided=found["undecided"])
    files.write_json_atomic(os.path.join(output_dir, f"{result.run}.json"), dataclasses.asdict(result))
    return result


def load_certification_records(root: str | os.PathLike) -> list[CertificationRecord]:
    """The bracket records under `root/certified/`."""
    return load_records(root, "certified", CertificationRecord, "scripts/certify.py")
