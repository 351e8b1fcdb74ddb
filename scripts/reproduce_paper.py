"""Run the study's grid for one data set, or the study queue, and write REPORT.md from every results.json found.

    python scripts/reproduce_paper.py --dataset=mnist --arch=fcn2 --epochs=10 --data_dir=../shared/data
    python scripts/reproduce_paper.py --report_only        # rebuild REPORT.md from runs/paper
    python scripts/reproduce_paper.py --queue=scripts/study_queue.txt --data_dir=../shared/data   # the study queue

Grid: input bits × precision × adversarial training (`tfdisc.reporting.grid`); each run is
`experiments/<dataset>.py` in its own process; finished runs are skipped and interrupted ones resumed.
The report is `tfdisc.reporting.build_report`.
"""

import shlex
import sys
from pathlib import Path

from absl import flags, logging

from tfdisc import cli, presets, reporting
from tfdisc.reporting import grid

ROOT = Path(__file__).resolve().parents[1]

flags.DEFINE_enum("dataset", "mnist", list(presets.DATASETS), "Data set of the grid (experiments/<dataset>.py).")
flags.DEFINE_string("arch", None, "Architecture (default: the data set's).")
flags.DEFINE_list("bits", ["2", "3", "4", "8"], "Input bits of the grid.")
flags.DEFINE_list("precisions", ["full", "bnn"], "Precisions of the grid.")
flags.DEFINE_list("adv", ["off", "on"], "Adversarial training settings of the grid.")
flags.DEFINE_integer("epochs", None, "Epochs per run (default: the study's for the arch).")
flags.DEFINE_integer("train_examples", None, "Reduced budget: training examples per run.")
flags.DEFINE_integer("test_examples", None, "Reduced budget: test examples per run.")
flags.DEFINE_string("budget", "full", "Label of this budget in the report (e.g. 'reduced: 2 epochs, 10k examples'); "
                    "its part before ':' names the runs' folder.")
flags.DEFINE_string("data_dir", None, "Passed to the experiment scripts.")
flags.DEFINE_string("output_dir", "runs/paper", "Where the runs go (one folder per budget label).")
flags.DEFINE_string("report", "REPORT.md", "Report to write.")
flags.DEFINE_multi_string("extra", [], "Extra flag for every run, e.g. --extra=--sweep_every=0.")
flags.DEFINE_string("readme", None, "README whose results at a glance (between its results markers) are written "
                    "from the same runs as the report (default: README.md beside --report).")
flags.DEFINE_string("study", "docs/study_tables.csv", "The study's cells, transcribed (table, model, column, "
                    "accuracy).")
flags.DEFINE_string("notes", "docs/report_notes.md", "Hand-written analysis appended to the report, if the file "
                    "exists.")
flags.DEFINE_bool("report_only", False, "Only rebuild the report from existing results.")
flags.DEFINE_bool("write_report", True, "Write the report after the grid (--nowrite_report for runs kept outside the "
                  "report, such as the protocol runs of runs/protocol).")
flags.DEFINE_bool("reevaluate", False, "Evaluate finished runs again (e.g. with --extra=--attacks=...), no training.")
flags.DEFINE_string("queue", None, "A queue file: one reproduce_paper.py invocation (its flags) per line, run in "
                    "order; finished runs are skipped and interrupted ones resumed. scripts/study_queue.sh starts it "
                    "in the background.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    if FLAGS.queue:
        names = ("data_dir", "output_dir", "report", "readme", "study", "notes")
        passed = [f"--{name}={FLAGS[name].value}" for name in names if FLAGS[name].present]
        failed = grid.run_queue(FLAGS.queue, Path(__file__), passed, FLAGS.output_dir)
        if failed:
            sys.exit("error: failed queue entries (their logs are above):\n" + "\n".join(failed))
        return
    if not FLAGS.report_only:
        runs = grid.grid(FLAGS.dataset, FLAGS.arch or presets.get(FLAGS.dataset).arch, FLAGS.bits, FLAGS.precisions,
                         FLAGS.adv, output_dir=FLAGS.output_dir, budget=FLAGS.budget, extra=FLAGS.extra,
                         epochs=FLAGS.epochs, train_examples=FLAGS.train_examples, test_examples=FLAGS.test_examples,
                         data_dir=FLAGS.data_dir)
        # The command as run from the repository root, however this process was started (the queue passes a path).
        command = shlex.join(["python", "scripts/reproduce_paper.py", *sys.argv[1:]])
        grid.run_grid(runs, ROOT / "experiments" / f"{FLAGS.dataset}.py", command=command,
                      budget=FLAGS.budget, reevaluate=FLAGS.reevaluate)
    if not FLAGS.write_report:
        return
    count = reporting.build_report(FLAGS.output_dir, FLAGS.report, study_path=FLAGS.study, notes_path=FLAGS.notes,
                                   readme_path=FLAGS.readme or Path(FLAGS.report).parent / "README.md",
                                   data_dir=FLAGS.data_dir, repository=ROOT)
    logging.info("wrote %s from %d runs", FLAGS.report, count)


if __name__ == "__main__":
    cli.run(main)
