"""Robustness evaluation: FGSM ε sweeps, the multi-attack robustness report with AutoAttack's cascade, and the
masking checks.

- `sweep` / `FgsmSweep`: FGSM accuracy for many ε, one input gradient per batch (`tfdisc.evaluation.sweeps`).
- `robustness_report` / `RobustnessReport`: every attack of the registry at every ε, the per-example worst case
  and the sanity checks (`tfdisc.evaluation.report`, `tfdisc.evaluation.registry`, `tfdisc.evaluation.masking`);
  `checkpoint=` saves its finished (batch, ε) units so that a stopped report resumes (`tfdisc.evaluation.checkpoint`).
"""

from tfdisc.evaluation.data import as_dataset, batch_size_for
from tfdisc.evaluation.registry import AUTOATTACK_SETTINGS, AUTOATTACK_VERSIONS
from tfdisc.evaluation.registry import DEFAULT as DEFAULT_ATTACKS
from tfdisc.evaluation.registry import NAMES as ATTACKS
from tfdisc.evaluation.report import RobustnessReport, report_lines, robustness_report
from tfdisc.evaluation.sweeps import FgsmSweep, sweep, sweep_in

__all__ = ["ATTACKS", "AUTOATTACK_SETTINGS", "AUTOATTACK_VERSIONS", "DEFAULT_ATTACKS", "FgsmSweep", "RobustnessReport",
           "as_dataset", "batch_size_for", "report_lines", "robustness_report", "sweep", "sweep_in",
           "checkpoint", "data", "discrete", "masking", "protocols", "registry", "report", "sweeps"]
