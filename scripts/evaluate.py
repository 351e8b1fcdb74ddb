"""Robustness report for a trained model: FGSM, PGD, Square, transfer, worst case and masking checks.

    python scripts/evaluate.py --model=runs/mnist_fcn2_full_2b_s0 --dataset=mnist --data_dir=../shared/data \\
        --attacks=fgsm,pgd,square,transfer --surrogate=runs/mnist_fcn2_full_8b_s0 --gradient=zero \\
        --output=runs/evaluations/fcn2_2b_zero.json

--model is a run directory (its saved_model/ is used) or any Keras SavedModel with float inputs in
[0, 1] that returns logits. --gradient changes how its InputDiscretization layers pass gradients.
"""

import os
import shlex
import sys
from pathlib import Path

from absl import app, flags

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

import tfdisc  # noqa: E402,F401
from tfdisc import datasets, evaluation, io, plotting  # noqa: E402
from tfdisc.layers import InputDiscretization  # noqa: E402

from common import load_model, parse_eps_list  # noqa: E402

LARGE_EPS = {"mnist": 0.5, "fashion_mnist": 0.5, "cifar10": 32 / 255, "cifar100": 32 / 255, "imagenet2012": 32 / 255}

flags.DEFINE_string("model", None, "Run directory or SavedModel to evaluate.", required=True)
flags.DEFINE_enum("dataset", "mnist", list(datasets.DATASETS), "Test data.")
flags.DEFINE_string("data_dir", None, "Data folder (see tfdisc.datasets).")
flags.DEFINE_integer("test_examples", 1000, "Fixed subset of test examples.", lower_bound=1)
flags.DEFINE_list("attacks", list(evaluation.ATTACKS), "Attacks to run.")
flags.DEFINE_string("eps", "0,0.1,0.2,0.3,0.5", "Comma list of eps (fractions like 8/255 allowed).")
flags.DEFINE_enum("gradient", "identity", ["identity", "zero"], "Gradient of the input discretization.")
flags.DEFINE_string("surrogate", None, "Run directory or SavedModel for the transfer attack.")
flags.DEFINE_integer("pgd_steps", 20, "PGD steps.", lower_bound=1)
flags.DEFINE_integer("pgd_restarts", 1, "PGD restarts.", lower_bound=1)
flags.DEFINE_integer("square_queries", 1000, "Square Attack queries.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the random attacks.")
flags.DEFINE_string("output", None, "Write the report here as JSON (and a PNG beside it).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    try:
        model = load_model(FLAGS.model, "--model")
        surrogate = load_model(FLAGS.surrogate) if FLAGS.surrogate else None
        for layer in model.submodules:
            if isinstance(layer, InputDiscretization):
                layer.gradient = FLAGS.gradient
        data = datasets.load(FLAGS.dataset, "test", data_dir=FLAGS.data_dir, examples=FLAGS.test_examples, batch_size=250)
        report = evaluation.robustness_report(
            model, data, parse_eps_list(FLAGS.eps), FLAGS.attacks, surrogate, pgd_steps=FLAGS.pgd_steps,
            pgd_restarts=FLAGS.pgd_restarts, square_queries=FLAGS.square_queries, large_eps=LARGE_EPS[FLAGS.dataset],
            seed=FLAGS.seed, verbose=int(sys.stdout.isatty()))
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    report.update(model=FLAGS.model, surrogate=FLAGS.surrogate, dataset=FLAGS.dataset, name=model.name,
                  command=shlex.join(["python", *sys.argv]))
    print(f"{model.name} on {report['examples']} {FLAGS.dataset} test examples, {FLAGS.gradient} gradient: "
          f"clean {report['clean_accuracy']:.4f}, {report['seconds']:.0f} s")
    print(f"{'eps':>8}" + "".join(f"  {n:>9}" for n in report["attacks"]) + "  worst case")
    for i, eps in enumerate(report["eps"]):
        print(f"{eps:8.4f}" + "".join(f"  {c['accuracy'][i]:9.4f}" for c in report["attacks"].values())
              + f"  {report['worst_case']['accuracy'][i]:10.4f}")
    for check in report["checks"]:
        print(f"  [{'pass' if check['passed'] else 'FAIL'}] {check['check']}: {check['detail']}")
    if FLAGS.output:
        io.write_json_atomic(FLAGS.output, report)
        curves = {name: (c["eps"], c["accuracy"]) for name, c in report["attacks"].items()}
        curves["worst case"] = (report["worst_case"]["eps"], report["worst_case"]["accuracy"])
        plotting.plot_accuracy_vs_eps(curves, os.path.splitext(FLAGS.output)[0] + ".png",
                                      f"{model.name}, {FLAGS.gradient} gradient")


if __name__ == "__main__":
    app.run(main)
