"""tfdisc.reporting.study: the study's cells, read from docs/study_tables.csv."""

from pathlib import Path

import pytest

from tfdisc.reporting import study
from tfdisc.reporting.records import RecordError

ROOT = Path(__file__).resolve().parents[1]


def test_every_cell_of_tables_1_to_6_is_transcribed_with_its_setup():
    cells = study.load_study(ROOT / "docs" / "study_tables.csv")
    assert len(cells) == 92 and {c.table for c in cells} == {1, 2, 3, 4, 5, 6}
    assert all(c.setup.startswith(f"Table {c.table}: ") and c.source == f"study, Table {c.table}" for c in cells)
    by_table = {t: [c for c in cells if c.table == t] for t in range(1, 7)}
    assert [len(by_table[t]) for t in range(1, 7)] == [4, 16, 16, 24, 24, 8]
    full_2b = {c.column: c.accuracy for c in by_table[5] if c.model_label == "full 2-bit"}
    assert full_2b == pytest.approx({"clean": 0.978, "adv1": 0.974, "adv2": 0.354, "adv3": 0.353})  # Table 5


def test_a_malformed_cell_is_named_by_its_line(tmp_path):
    path = tmp_path / "study.csv"
    path.write_text(",".join(study.COLUMNS) + "\n1,mnist,fcn2,full,two,no,10,clean,98,x\n")
    with pytest.raises(RecordError, match="line 2: cannot read the cell"):
        study.load_study(path)
