"""Evaluate trained runs under every protocol hypothesis and record the curves for REPORT.md's ε fit.

    python scripts/study_protocols.py --runs=runs/protocol --data_dir=../shared/data

Each run directory under --runs (one with saved_model/ and results.json) is evaluated on its whole test set at the
data set's sweep grid under each hypothesis that applies to it (`tfdisc.reporting.protocols.HYPOTHESES`); the
curves go to --output_dir/protocols/<run>_<hypothesis>.json, where `scripts/reproduce_paper.py` reads them.
"""

from pathlib import Path

from absl import flags, logging

from tfdisc import cli, runs
from tfdisc.reporting import protocols

GROUP = "protocols"
cli.define_trained_runs_flags(GROUP, "evaluate", "protocols")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    for run_dir in runs.trained_runs(FLAGS.runs, FLAGS.only):
        written = protocols.evaluate_run(str(run_dir), FLAGS.data_dir, str(Path(FLAGS.output_dir) / "protocols"))
        logging.info("%s: %s", run_dir.name, ", ".join(r.hypothesis for r in written))


if __name__ == "__main__":
    cli.run(main)
