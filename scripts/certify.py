"""Bracket the robust accuracy of trained runs: certified (a lower bound) and attacked (an upper bound), per ε.

    python scripts/certify.py --runs=runs/protocol --eps=0.05,0.1 --test_examples=500 --data_dir=../shared/data

Each run directory under --runs (one with saved_model/ and results.json) is bracketed on its first
--test_examples test images (`tfdisc.certification.bracket`): the bounds certify what they can, the attack cascade
(--version) runs on the rest only, and branch and bound (splitting --split) tries the survivors for --time_limit
seconds or --max_domains parts each, whichever runs out first (a budget of parts alone does not depend on the
machine's speed or load). The records go to --output_dir/certified/<run>.json, where `scripts/reproduce_paper.py`
reads them.
"""

from pathlib import Path

from absl import flags, logging

from tfdisc import cli, runs
from tfdisc import eps as eps_lib
from tfdisc.certification import search
from tfdisc.evaluation import registry
from tfdisc.reporting import certified

GROUP = "certification"
cli.define_trained_runs_flags(GROUP, "bracket", "certified")
cli.flag(GROUP, flags.DEFINE_string, "eps", "0.05,0.1", "Comma list of eps.")
cli.flag(GROUP, flags.DEFINE_integer, "test_examples", 500, "The first N test images.", lower_bound=1)
cli.flag(GROUP, flags.DEFINE_enum, "bound", "crown-refined", list(search.BOUNDS), "The tightest bound to try.")
cli.flag(GROUP, flags.DEFINE_enum, "version", "standard+discrete", list(registry.AUTOATTACK_VERSIONS),
         "The attack cascade for what the bounds leave.")
cli.flag(GROUP, flags.DEFINE_float, "time_limit", 0.0, "Seconds of branch and bound per survivor of the attacks.")
cli.flag(GROUP, flags.DEFINE_integer, "max_domains", 0, "Parts of branch and bound per survivor of the attacks "
         "(0: no budget of parts).", lower_bound=0)
cli.flag(GROUP, flags.DEFINE_enum, "split", "pixels", list(search.SPLITS), "What branch and bound splits.")
cli.flag(GROUP, flags.DEFINE_integer, "enumeration_limit", 2**16, "Evaluate every input of the level boxes that hold "
         "at most this many (0: none).", lower_bound=0)
FLAGS = flags.FLAGS


def main(argv):
    del argv
    for run_dir in runs.trained_runs(FLAGS.runs, FLAGS.only):
        record = certified.certify_run(str(run_dir), FLAGS.data_dir, eps_lib.parse(FLAGS.eps), FLAGS.test_examples,
                                       str(Path(FLAGS.output_dir) / "certified"), bound=FLAGS.bound,
                                       version=FLAGS.version, time_limit=FLAGS.time_limit, split=FLAGS.split,
                                       max_domains=FLAGS.max_domains, enumeration_limit=FLAGS.enumeration_limit)
        logging.info("%s: certified %s, attacked %s (%.0f s)", run_dir.name, record.certified, record.attacked,
                     record.seconds)


if __name__ == "__main__":
    cli.run(main)
