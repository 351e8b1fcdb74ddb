"""Robustness report for a trained model: FGSM, PGD, AutoAttack, Square, transfer, worst case and masking checks.

    python scripts/evaluate.py --model=runs/mnist_fcn2_bnn_2b_s0 --dataset=mnist --data_dir=../shared/data \\
        --attacks=fgsm,pgd,autoattack --output=runs/evaluations/fcn2_bnn_2b.json

    python scripts/evaluate.py --model=runs/mnist_fcn2_bnn_2b_s0/model_lce.tflite --dataset=mnist \\
        --data_dir=../shared/data --eps=0.1,0.2,0.3

--model is a run directory (its saved_model/ is used) or any Keras SavedModel with float inputs in
[0, 1] that returns logits. A .tflite --model is a deployed flatbuffer: it is attacked by Square
through its interpreter and by FGSM, PGD and APGD-CE crafted on its Keras twin, and reported beside
the twin (`tfdisc.deployed`), with a loud warning wherever it is less robust. --gradient sets how
the InputDiscretization layers pass gradients for this evaluation. --test_examples with
--subset=first evaluates the first N test images (as other tools report), with --subset=random a
fixed random subset (seed 0).
"""

import os
import shlex
import sys

os.environ.setdefault("TFDISC_QUIET", "1")  # TensorFlow's C++ start-up lines; TFDISC_QUIET=0 shows them
# TensorFlow's pooling (BFC) CPU allocator: read once, at start; 1.1-2x faster steps (scripts/benchmark_training.py)
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

from absl import app, flags  # noqa: E402

import tfdisc  # noqa: E402,F401  (selects legacy Keras before TensorFlow loads it)
from tfdisc import datasets, deployed, evaluation, export, files, models, plotting, presets, scripting  # noqa: E402

flags.DEFINE_string("model", None, "Run directory, SavedModel, or a .tflite flatbuffer (scripts/export.py) to "
                    "evaluate beside its Keras twin.", required=True)
flags.DEFINE_enum("dataset", "mnist", list(presets.DATASETS), "Test data.")
flags.DEFINE_string("data_dir", None, "Data folder (see tfdisc.datasets).")
flags.DEFINE_integer("test_examples", 1000, "How many test examples (see --subset).", lower_bound=1)
flags.DEFINE_enum("subset", "first", list(datasets.SUBSETS), "Which test examples: the first ones, or a fixed "
                  "random subset (seed 0).")
flags.DEFINE_list("attacks", list(evaluation.DEFAULT_ATTACKS), f"Attacks to run, any of {list(evaluation.ATTACKS)}; "
                  "autoattack is AutoAttack's cascade (see --autoattack_version).")
flags.DEFINE_enum("autoattack_version", "standard", list(evaluation.AUTOATTACK_VERSIONS),
                  "standard: APGD-CE, APGD-T, Square 5000 queries, each on the survivors; fast: APGD-CE, APGD-DLR.")
flags.DEFINE_string("eps", None, "Comma list of eps (fractions like 8/255 allowed); default: the data set's sweep grid.")
flags.DEFINE_enum("gradient", "identity", ["identity", "zero"], "Gradient of the input discretization.")
flags.DEFINE_string("surrogate", None, "Run directory or SavedModel for the transfer attack; for a .tflite "
                    "--model, its Keras twin (default: the SavedModel next to the flatbuffer).")
flags.DEFINE_integer("pgd_steps", 20, "PGD steps.", lower_bound=1)
flags.DEFINE_integer("pgd_restarts", 5, "PGD (and standalone APGD) restarts, per-example best.", lower_bound=1)
flags.DEFINE_integer("square_queries", 1000, "Square Attack queries.", lower_bound=1)
flags.DEFINE_integer("seed", 0, "Seed of the random attacks.")
flags.DEFINE_bool("jit_compile", False, "Compute the iterative attacks' examples with XLA (faster on FCN2-BNN, not on "
                  "FCN1-BNN: benchmarks/cpu_report_xla_*.md); survival is scored without XLA.")
flags.DEFINE_string("output", None, "Write the report here as JSON (and a PNG beside it).")
FLAGS = flags.FLAGS


def evaluate(flags_obj):
    """The robustness report that the flags ask for, with what produced it."""
    preset = presets.get(flags_obj.dataset)
    eps = evaluation.parse_eps_list(flags_obj.eps) if flags_obj.eps else list(preset.sweep_eps)
    model = models.load(flags_obj.model, "--model")
    surrogate = models.load(flags_obj.surrogate, "--surrogate") if flags_obj.surrogate else None
    data = datasets.load(flags_obj.dataset, "test", data_dir=flags_obj.data_dir, examples=flags_obj.test_examples,
                         subset_order=flags_obj.subset, batch_size=250)
    report = evaluation.robustness_report(
        model, data, eps, flags_obj.attacks, surrogate, version=flags_obj.autoattack_version,
        pgd_steps=flags_obj.pgd_steps,
        pgd_restarts=flags_obj.pgd_restarts, square_queries=flags_obj.square_queries, large_eps=preset.large_eps,
        seed=flags_obj.seed, gradient=flags_obj.gradient, jit_compile=flags_obj.jit_compile)
    report.update(model=flags_obj.model, surrogate=flags_obj.surrogate, dataset=flags_obj.dataset, name=model.name,
                  subset=flags_obj.subset, command=shlex.join(["python", *sys.argv]))
    return report


def evaluate_deployed(flags_obj):
    """A flatbuffer beside its Keras twin (--surrogate, or the SavedModel next to the flatbuffer)."""
    preset = presets.get(flags_obj.dataset)
    eps = evaluation.parse_eps_list(flags_obj.eps) if flags_obj.eps else list(preset.sweep_eps)
    twin_path = flags_obj.surrogate or os.path.dirname(os.path.abspath(flags_obj.model))
    twin = models.load(twin_path, "--surrogate (the Keras twin of the flatbuffer)")
    runner = export.TFLiteModel(flags_obj.model)
    attack_names = flags_obj.attacks if flags_obj["attacks"].present else list(deployed.ATTACKS)
    data = datasets.load(flags_obj.dataset, "test", data_dir=flags_obj.data_dir, examples=flags_obj.test_examples,
                         subset_order=flags_obj.subset, batch_size=250)
    report = deployed.deployed_report(runner, twin, data, eps, attack_names, pgd_steps=flags_obj.pgd_steps,
                                      square_queries=flags_obj.square_queries, seed=flags_obj.seed)
    report.update(model=flags_obj.model, twin=twin_path, dataset=flags_obj.dataset, subset=flags_obj.subset,
                  command=shlex.join(["python", *sys.argv]))
    return report


def main(argv):
    del argv
    scripting.quiet_library_logs()
    try:
        if FLAGS.model.endswith(".tflite"):
            report = evaluate_deployed(FLAGS)
            print(f"{FLAGS.model} beside its Keras twin {report['twin']}, {report['seconds']:.0f} s")
            print("\n".join(deployed.report_lines(report)))
            if FLAGS.output:
                files.write_json_atomic(FLAGS.output, report)
            return
        report = evaluate(FLAGS)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    print(f"{report['name']} on the {report['subset']} {report['examples']} {FLAGS.dataset} test examples: "
          f"clean {report['clean_accuracy']:.4f}, {report['seconds']:.0f} s")
    print("\n".join(evaluation.report_lines(report)))
    if FLAGS.output:
        files.write_json_atomic(FLAGS.output, report)
        plotting.plot_accuracy_vs_eps(plotting.report_curves(report), os.path.splitext(FLAGS.output)[0] + ".png",
                                      f"{report['name']}, {FLAGS.gradient} gradient")


if __name__ == "__main__":
    app.run(main)
