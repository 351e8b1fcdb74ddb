"""Reporting of results: typed run records, the study's cells, the claim ledger, and REPORT.md rendered from them.

- `records`: `RunRecord` (results.json, schema-versioned), `load_runs`, `load_evaluations`.
- `study`: the study's cells (`docs/study_tables.csv`); `fit`: their lost ε recovered by least squares;
  `protocols`: our runs evaluated under other protocols, to test how the study ran its attack.
- `stats`: 95% intervals of accuracies on a subset; `certified`: brackets [certified, attacked] of trained runs.
- `ledger`: the study's claims, each with its thresholds and a judge.
- `render`: REPORT.md and README's results at a glance, as pure functions of the above.
- `grid`: the study's grid of runs and the queue that runs grids in the background.
- `build_report` below: read everything under a runs folder and write the report, its figures and the README.
"""

import logging
from pathlib import Path

from tfdisc import files
from tfdisc.reporting import analyses, certified, fit, ledger, protocols, records, render, stats, study  # noqa: F401
from tfdisc.reporting.records import RecordError, RunRecord, load_evaluations, load_runs  # noqa: F401

__all__ = ["analyses", "build_report", "certified", "fit", "grid", "ledger", "protocols", "records", "render", "stats",
           "study"]
logger = logging.getLogger(__name__)


def build_report(runs_dir: str | Path, report_path: str | Path, *, study_path: str | Path,
                 notes_path: str | Path | None = None, readme_path: str | Path | None = None,
                 data_dir: str | None = None, repository: str | Path | None = None) -> int:
    """Write REPORT.md (and its figures beside it, in docs/) from every record under `runs_dir`, and the README's
    results at a glance if `readme_path` has the markers. Commands are shown relative to `repository` (default: the
    report's folder). Returns the number of runs; ValueError if there is none."""
    runs = load_runs(runs_dir)
    if not runs:
        raise ValueError(f"No results.json under {runs_dir}; run the grid first.")
    brackets = certified.load_certification_records(runs_dir)
    ibp = [r.run_dir for r in runs if r.ibp_settings] + [b.run for b in brackets if b.ibp_train]
    if ibp:
        raise RecordError(f"{ibp[0]} is trained with IBP (--ibp_train), which the study does not use, so REPORT.md "
                          f"cannot set it beside the study's cells; move it out of {runs_dir}.")
    report_path = Path(report_path)
    root = report_path.resolve().parent
    notes = Path(notes_path).read_text() if notes_path and Path(notes_path).exists() else ""
    options = render.ReportOptions(root=Path(repository or root).resolve(), study_path=str(study_path), notes=notes)
    cells = study.load_study(study_path)
    found = analyses.activation_analyses(runs, data_dir)
    render.figures(runs, found, root, options)
    text = render.report(runs, cells, load_evaluations(runs_dir), found, options,
                         protocols.load_protocol_records(runs_dir), brackets)
    files.write_text_atomic(report_path, text)
    if readme_path and Path(readme_path).is_file():
        updated = render.with_glance(Path(readme_path).read_text(), runs)
        if updated is None:
            logger.info("%s has no results markers; left as it is.", readme_path)
        else:
            files.write_text_atomic(readme_path, updated)
    return len(runs)
