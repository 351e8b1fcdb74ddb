"""Brackets as records: a trained run's certified accuracy (lower bound) and attacked accuracy (upper bound) per ε,
made by `tfdisc.certification.bracket`, written to `<runs>/certified/*.json` and read back by the report.

A run has one record. Bracketing it again with the same settings (images, attacks, bound, enumeration and branch and
bound)
adds the new ε to its record and replaces the ε measured again: each ε's verdicts depend only on that ε (the attacks'
noise is seeded per call, branch and bound is deterministic under a budget of parts), so new ε cost only their own
time. Other settings replace the record."""

import dataclasses
import os

from tfdisc import certification, datasets, files, models
from tfdisc.reporting.records import TrainedModel, load_records, read_record, read_run
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
    ibp_train: bool = False  # the run was trained with IBP (`--ibp_train`), which the study does not use
    enumeration_limit: int = 2**16  # boxes of at most this many inputs are enumerated (records before it: 2^16)

    def __post_init__(self):
        certification.check_options(self.bound, self.split, self.time_limit, self.max_domains, self.enumeration_limit)
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


PER_EPS = ("eps", "certified", "attacked", "gap", "methods", "attacked_examples", "undecided")


def with_earlier_eps(earlier: CertificationRecord, record: CertificationRecord) -> CertificationRecord:
    """`record` with the ε of `earlier` it did not measure, sorted by ε, if both bracket the same run with the same
    settings (seconds add up); otherwise `record`."""
    settings = [f.name for f in dataclasses.fields(CertificationRecord) if f.name not in PER_EPS + ("seconds",)]
    if any(getattr(earlier, name) != getattr(record, name) for name in settings):
        return record
    rows = {}
    for source in (earlier, record):  # the later measurement of an ε wins
        undecided = source.undecided or [None] * len(source.eps)
        for i, eps in enumerate(source.eps):
            rows[eps] = [getattr(source, name)[i] for name in PER_EPS[:-1]] + [undecided[i]]
    columns = {name: [rows[eps][k] for eps in sorted(rows)] for k, name in enumerate(PER_EPS)}
    if all(v is None for v in columns["undecided"]):
        columns["undecided"] = None
    return dataclasses.replace(record, **columns, seconds=earlier.seconds + record.seconds)


def certify_run(run_dir: str, data_dir: str | None, eps_values: EpsValues, examples: int, output_dir: str, *,
                bound: str = "crown-refined", version: str = "standard+discrete", time_limit: float = 0.0,
                split: str = "pixels", max_domains: int = 0, enumeration_limit: int = 2**16) -> CertificationRecord:
    """Bracket the run in `run_dir` on its first `examples` test images and write the record to
    `output_dir/<run>.json`, keeping the ε of an earlier record there with the same settings (`with_earlier_eps`)."""
    record, trained = read_run(run_dir), TrainedModel.of(run_dir)
    path = os.path.join(output_dir, f"{trained['run']}.json")
    files.check_writable_file(path, "the certification record")  # no link, a writable folder: before the work
    earlier = (read_record(path, CertificationRecord, "certified", "scripts/certify.py") if os.path.lexists(path)
               else None)  # checked before the hours of work, not after
    model = models.load(run_dir)
    data = datasets.load_arrays(record.dataset, "test", data_dir=data_dir, examples=examples, subset_order="first",
                                download=False)
    found = certification.bracket(model, data, eps_values, version=version, bound=bound, time_limit=time_limit,
                                  split=split, max_domains=max_domains, enumeration_limit=enumeration_limit)
    result = CertificationRecord(**trained, eps=found["eps"], examples=found["examples"],
                                 certified=found["certified"], attacked=found["attacked"], gap=found["gap"],
                                 methods=found["methods"], attacked_examples=found["attacked_examples"],
                                 version=version, bound=bound, seconds=found["seconds"],
                                 time_limit=time_limit, split=split, max_domains=max_domains,
                                 units=found["units"], undecided=found["undecided"],
                                 ibp_train=record.ibp_settings is not None, enumeration_limit=enumeration_limit)
    if earlier is not None:
        result = with_earlier_eps(earlier, result)
    files.write_json_atomic(path, dataclasses.asdict(result))
    return result


def load_certification_records(root: str | os.PathLike) -> list[CertificationRecord]:
    """The bracket records under `root/certified/`."""
    return load_records(root, "certified", CertificationRecord, "scripts/certify.py")
