"""Analyses the report computes from a run's model, cached beside its records: Fig. 6's first-layer activations."""

import logging
from pathlib import Path

from tfdisc import analysis, datasets, files, models, presets
from tfdisc.reporting.records import RecordError, RunRecord, read_json
from tfdisc.reporting.render import ACTIVATION_EXAMPLES, fig6_runs

logger = logging.getLogger(__name__)


def activation_analyses(records: list[RunRecord], data_dir: str | None) -> dict:
    """{run_dir: `tfdisc.analysis.activation_l1` result} for the Fig. 6 runs, on the first 1000 test images; read
    from <run>/activation_l1.json, else computed from the run's SavedModel and cached there. Runs whose model or
    data is not on this machine are left out (with a warning)."""
    found = {}
    for record in fig6_runs(records):
        cache = Path(record.run_dir) / "activation_l1.json"
        if cache.exists():
            result = read_json(cache, "activation analysis")
            if not (isinstance(result, dict) and {"eps", "change_l1", "clean_l1", "units"} <= set(result)):
                raise RecordError(f"{cache} is not an activation analysis; move it away to compute it again.")
            found[record.run_dir] = result
            continue
        try:
            model = models.load(record.run_dir)
            data = datasets.load_arrays(record.dataset, "test", data_dir=data_dir, examples=ACTIVATION_EXAMPLES,
                                        subset_order="first", download=False)
        except (ValueError, FileNotFoundError) as error:
            logger.warning("no activation analysis of %s: %s", record.run_dir, error)
            continue
        found[record.run_dir] = analysis.activation_l1(model, data, presets.get(record.dataset).sweep_eps)
        files.write_json_atomic(cache, found[record.run_dir])
    return found
