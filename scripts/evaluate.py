"""Robustness report for a trained model: FGSM, PGD, AutoAttack, Square, transfer, worst case and masking checks.

    python scripts/evaluate.py --model=runs/mnist_fcn2_bnn_2b_s0 --dataset=mnist --data_dir=../shared/data \\
        --attacks=fgsm,pgd,autoattack --output=runs/evaluations/fcn2_bnn_2b.json

    python scripts/evaluate.py --model=runs/mnist_fcn2_bnn_2b_s0/model_lce.tflite --dataset=mnist \\
        --data_dir=../shared/data --eps=0.1,0.2,0.3

--model is a run directory (its saved_model/ is used) or any Keras SavedModel with float inputs in
[0, 1] that returns logits. A .tflite --model is a deployed flatbuffer: it is attacked by Square
through its interpreter and by FGSM, PGD and APGD-CE crafted on its Keras twin, and reported beside
the twin (`tfdisc.deployed`), with a loud warning wherever it is less robust. --test_examples with
--subset=first evaluates the first N test images (as other tools report), with --subset=random a
fixed random subset (seed 0). --certify=<bound> first certifies what it can (`tfdisc.certification`, for models
that begin with an InputDiscretization), attacks only the rest, and reports the certified accuracy (a lower
bound) and the gap to the worst case beside the attacks:

    python scripts/evaluate.py --model=runs/mnist_fcn2_full_2b_s0 --dataset=mnist --data_dir=../shared/data \
        --attacks=fgsm,pgd,autoattack --eps=0.05,0.1 --certify=crown-refined
"""

import os
import shlex
import sys

from absl import flags

from tfdisc import cli, datasets, deployed, evaluation, export, files, models, plotting, presets
from tfdisc import eps as eps_lib

GROUP = "evaluation"
cli.flag(GROUP, flags.DEFINE_string, "model", None, "Run directory, SavedModel, or a .tflite flatbuffer "
         "(scripts/export.py) to evaluate beside its Keras twin.", required=True)
cli.flag(GROUP, flags.DEFINE_enum, "dataset", "mnist", list(presets.DATASETS), "Test data.")
cli.flag(GROUP, flags.DEFINE_string, "data_dir", None, "Data folder (see tfdisc.datasets).")
cli.flag(GROUP, flags.DEFINE_integer, "test_examples", 1000, "How many test examples (see --subset).", lower_bound=1)
cli.flag(GROUP, flags.DEFINE_enum, "subset", "first", list(datasets.SUBSETS), "Which test examples: the first ones, "
         "or a fixed random subset (seed 0).")
cli.flag(GROUP, flags.DEFINE_string, "eps", None, "Comma list of eps (fractions like 8/255 allowed); default: the data "
         "set's sweep grid.")
cli.flag(GROUP, flags.DEFINE_integer, "seed", 0, "Seed of the random attacks.")
cli.flag(GROUP, flags.DEFINE_bool, "jit_compile", False, "Compute the iterative attacks' examples with XLA (faster on "
         "FCN2-BNN, not on FCN1-BNN: benchmarks/cpu_report_xla_*.md); survival is scored without XLA.")
cli.flag(GROUP, flags.DEFINE_string, "output", None, "Write the report here as JSON (and a PNG beside it).")
cli.flag(GROUP, flags.DEFINE_string, "checkpoint", None, "Save each finished (batch, eps) of the report in this JSON "
         "file; the same command resumes a stopped report from it (tfdisc.evaluation.checkpoint).")
cli.define_attack_flags(evaluation.DEFAULT_ATTACKS)
FLAGS = flags.FLAGS


def _eps():
    return eps_lib.parse(FLAGS.eps) if FLAGS.eps else list(presets.get(FLAGS.dataset).sweep_eps)


def _test_data():
    return datasets.load(FLAGS.dataset, "test", data_dir=FLAGS.data_dir, examples=FLAGS.test_examples,
                         subset_order=FLAGS.subset, batch_size=250)


def evaluate() -> dict:
    """The robustness report that the flags ask for, with what produced it."""
    model = models.load(FLAGS.model, "--model", trust=FLAGS.trust_model)
    surrogate = models.load(FLAGS.surrogate, "--surrogate", trust=FLAGS.trust_model) if FLAGS.surrogate else None
    report = evaluation.robustness_report(
        model, _test_data(), _eps(), FLAGS.attacks, surrogate, version=FLAGS.autoattack_version,
        pgd_steps=FLAGS.pgd_steps, pgd_restarts=FLAGS.pgd_restarts, square_queries=FLAGS.square_queries,
        large_eps=presets.get(FLAGS.dataset).large_eps, seed=FLAGS.seed, gradient=FLAGS.gradient,
        jit_compile=FLAGS.jit_compile, certify=FLAGS.certify, checkpoint=FLAGS.checkpoint)
    report.update(model=FLAGS.model, surrogate=FLAGS.surrogate, dataset=FLAGS.dataset, name=model.name,
                  subset=FLAGS.subset, command=shlex.join(["python", *sys.argv]))
    print(f"{report['name']} on the {report['subset']} {report['examples']} {FLAGS.dataset} test examples: "
          f"clean {report['clean_accuracy']:.4f}, {report['seconds']:.0f} s")
    print("\n".join(evaluation.report_lines(report)))
    return report


def evaluate_deployed() -> dict:
    """A flatbuffer beside its Keras twin (--surrogate, or the SavedModel next to the flatbuffer)."""
    if FLAGS.certify or FLAGS.checkpoint:
        raise ValueError(f"--{'certify' if FLAGS.certify else 'checkpoint'} works on a Keras model, not a .tflite "
                         "flatbuffer: give --model its run directory or SavedModel.")
    twin_path = FLAGS.surrogate or os.path.dirname(os.path.abspath(FLAGS.model))
    twin = models.load(twin_path, "--surrogate (the Keras twin of the flatbuffer)", trust=FLAGS.trust_model)
    runner = export.TFLiteModel(FLAGS.model)
    attack_names = FLAGS.attacks if FLAGS["attacks"].present else list(deployed.ATTACKS)
    report = deployed.deployed_report(runner, twin, _test_data(), _eps(), attack_names, pgd_steps=FLAGS.pgd_steps,
                                      square_queries=FLAGS.square_queries, seed=FLAGS.seed)
    report.update(model=FLAGS.model, twin=twin_path, dataset=FLAGS.dataset, subset=FLAGS.subset,
                  command=shlex.join(["python", *sys.argv]))
    print(f"{FLAGS.model} beside its Keras twin {report['twin']}, {report['seconds']:.0f} s")
    print("\n".join(deployed.report_lines(report)))
    return report


def main(argv):
    del argv
    if FLAGS.output:
        files.check_writable_file(FLAGS.output, "--output")  # before the evaluation, not after it
    report = evaluate_deployed() if FLAGS.model.endswith(".tflite") else evaluate()
    if FLAGS.output:
        files.write_json_atomic(FLAGS.output, report)
        if "worst_case" in report:
            plotting.plot_accuracy_vs_eps(plotting.report_curves(report), os.path.splitext(FLAGS.output)[0] + ".png",
                                          f"{report['name']}, {FLAGS.gradient} gradient")


if __name__ == "__main__":
    cli.run(main)
