"""The study's own numbers: every cell of its Tables 1–6, transcribed in `docs/study_tables.csv`."""

import csv
import dataclasses
import os

from tfdisc.reporting.records import RecordError, RunRecord, model_label

COLUMNS = ("table", "dataset", "arch", "precision", "input_bits", "adv_train", "epochs", "column", "accuracy", "source")


@dataclasses.dataclass(frozen=True)
class StudyCell:
    """One number of the study: which table, which model (the setup its row implies, and the words that imply it),
    which column, the accuracy (a fraction), and where the number comes from."""

    table: int
    dataset: str
    arch: str
    precision: str
    input_bits: int
    adv_train: bool
    epochs: int | None
    column: str
    accuracy: float
    source: str
    setup: str = ""  # the study's words that fix the row's setup

    @property
    def key(self) -> tuple:
        """(dataset, arch, precision, input_bits, adv_train), as `RunRecord.key`."""
        return self.dataset, self.arch, self.precision, self.input_bits, self.adv_train

    @property
    def model_label(self) -> str:
        return model_label(self.precision, self.input_bits, self.adv_train)

    def matches(self, record: RunRecord) -> bool:
        return record.key == self.key


def load_study(path: str | os.PathLike) -> list[StudyCell]:
    """The study's cells in `path`; RecordError naming the line and column of a malformed cell."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise RecordError(f"{path} lacks the column(s) {', '.join(missing)}; its header must be {','.join(COLUMNS)}.")
        cells = []
        for line, row in enumerate(reader, 2):
            try:
                cells.append(StudyCell(
                    table=int(row["table"]), dataset=row["dataset"], arch=row["arch"], precision=row["precision"],
                    input_bits=int(row["input_bits"]), adv_train={"yes": True, "no": False}[row["adv_train"]],
                    epochs=int(row["epochs"]) if row["epochs"] else None, column=row["column"],
                    accuracy=float(row["accuracy"]) / 100, source=row["source"], setup=row.get("setup") or ""))
            except (KeyError, ValueError) as error:
                raise RecordError(f"{path}, line {line}: cannot read the cell {dict(row)} ({error}); input_bits and "
                                  "epochs are ints, adv_train is yes or no, accuracy a percentage.") from None
    return cells
