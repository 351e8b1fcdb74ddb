"""CPU training speed: where a step's time goes, the machine's limit, and settings side by side.

    python scripts/benchmark_training.py                          # FCN1 and CIFAR AlexNet, full and BNN
    python scripts/benchmark_training.py --models=fcn1_bnn --parts=settings --repeats=3

profile: one clean and one R-FGSM training step (`fit`, the experiment scripts' defaults: XLA steps,
the BFC allocator) and its pieces timed alone, each compiled with XLA: forward, forward+backward, the
quantizers (ste_sign with its straight-through gradient and weight_clip, over every binarized kernel),
the BatchNorm layers (forward and backward on inputs of their shapes), the Adam update with its
constraints, and the input pipeline. The machine's limit is a roofline per phase, the phases in sequence: forward and
backward take the larger of their FLOPs over the peak of one large matmul measured here and their bytes (weights
read three times) over the measured memory bandwidth; then Adam's update, which cannot start before the gradients
exist, moves its bytes (read weights, gradients and two moments, write weights and moments) at that bandwidth.
`limit_overlapped_s` is the looser bound that lets the two phases overlap: max(all FLOPs / peak, all bytes / bandwidth).

settings: each setting runs in its own process (the allocator is chosen when TensorFlow starts),
in alternation, median of --repeats. An epoch is estimated from measured parts: steps × step time,
plus validation of the 10 000 test images and the per-epoch FGSM sweep, each at its measured cost
per image. "main" is what the experiment scripts did before issue 11: XLA steps on TensorFlow's
default CPU allocator, evaluation in batches of the training batch size, and a graph-mode sweep of
every test image each epoch. "new" is what they do now: the BFC allocator, evaluation batches of
`evaluation.batch_size_for(model)`, and a per-epoch XLA sweep of 1000 test images (the final sweep
still covers all of them). "new_graph" is "new" with graph-mode steps and sweep (`--nojit_compile`).
"new_mixed" and "new_graph_mixed" are "new" and "new_graph" under `--mixed_precision` (CPUs with bfloat16 only).
"""

import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TFDISC_QUIET", "1")
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")  # the profile runs as the experiment scripts do

from absl import app, flags  # noqa: E402

import tfdisc  # noqa: E402,F401
import larq as lq  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfdisc import benchmarking, cli, cpu, evaluation, models, presets  # noqa: E402
from tfdisc.benchmarking import LOSS, build as _build  # noqa: E402
from tfdisc.training import AdversarialModel  # noqa: E402

MODELS = ["fcn1_full", "fcn1_bnn", "alexnet_full", "alexnet_bnn"]
# name: (environment, XLA steps and sweep, new evaluation, mixed precision). TF_CPU_ALLOCATOR_USE_BFC is read when
# TensorFlow starts. The mixed settings train as --mixed_precision does, so they run only on CPUs with bfloat16.
SETTINGS = {
    "main": ({"TF_CPU_ALLOCATOR_USE_BFC": "false"}, True, False, False),
    "new": ({"TF_CPU_ALLOCATOR_USE_BFC": "true"}, True, True, False),
    "new_graph": ({"TF_CPU_ALLOCATOR_USE_BFC": "true"}, False, True, False),
    "new_mixed": ({"TF_CPU_ALLOCATOR_USE_BFC": "true"}, True, True, True),
    "new_graph_mixed": ({"TF_CPU_ALLOCATOR_USE_BFC": "true"}, False, True, True),
}
MIXED = [name for name, setting in SETTINGS.items() if setting[3]]
TEST_IMAGES, NEW_SWEEP_IMAGES = 10000, 1000
flags.DEFINE_list("parts", ["profile", "settings"], "Which parts to run.")
flags.DEFINE_list("models", MODELS, "arch_precision pairs.")
flags.DEFINE_list("settings", None, f"Settings to compare, of {list(SETTINGS)} (default: all; {MIXED} only where "
                  "the CPU has bfloat16).")
flags.DEFINE_integer("repeats", 2, "Timed repeats per setting (each a new process).", lower_bound=1)
flags.DEFINE_integer("steps", 4, "Timed training steps per measurement (after two warm-up steps).", lower_bound=1)
flags.DEFINE_string("output", "benchmarks/cpu_training", "Writes <output>.json and <output>.md.")
flags.DEFINE_string("child", None, "Internal: measure this model under this process's setting, print JSON.")
flags.DEFINE_string("child_setting", None, "Internal: the child's setting.")
FLAGS = flags.FLAGS


def _dataset_facts(key):
    preset = presets.get(models.ARCHITECTURES[key.rsplit("_", 1)[0]].dataset)
    train = 60000 if preset.image_shape == (28, 28, 1) else 50000
    return preset.batch_size, -(-train // preset.batch_size), -(-10000 // preset.batch_size)


def _data(model, batch_size, batches):
    return benchmarking.random_data(model, batch_size, batches, shuffle_seed=0)  # as training runs get it


def _seconds(fn, repeats):
    return benchmarking.median_seconds({"fn": fn}, repeats)["fn"]


def _fit_seconds_per_step(model, data, steps):
    """Seconds per step of `fit` over `steps` batches (after a warm-up fit of two)."""
    model.fit(data.take(2), verbose=0)
    start = time.perf_counter()
    model.fit(data.take(steps), verbose=0)
    return (time.perf_counter() - start) / steps


def _compiled(model, jit_compile=True):
    return benchmarking.compiled(model, jit_compile)


# ---- profile -------------------------------------------------------------------------------------------------

def _macs(model):
    """Multiply-accumulates per example of every Dense and Conv2D layer: [(layer, macs)]."""
    found = []
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.Dense):
            found.append((layer, int(np.prod(layer.kernel.shape))))
        elif isinstance(layer, tf.keras.layers.Conv2D):
            found.append((layer, int(np.prod(layer.output_shape[1:3])) * int(np.prod(layer.kernel.shape))))
    return found


def _step_flops(model, batch, adversarial_share=0.0):
    """FLOPs of one training step: forward, input gradient (not for the first layer) and weight gradient;
    R-FGSM adds a forward and an input-gradient pass over its share of the batch."""
    macs = _macs(model)
    total, first = sum(m for _, m in macs), macs[0][1]
    train = 2 * batch * (3 * total - first)
    attack = 2 * batch * adversarial_share * (2 * total)
    return train + attack


def _pass_bytes(model):
    """Bytes forward and backward must move at least: weights read by forward, input and weight gradients (3×4 B)."""
    return 4 * 3 * model.count_params()


def _update_bytes(model):
    """Bytes Adam's update must move: read weight, gradient and two moments, write weight and moments (7×4 B)."""
    return 4 * 7 * model.count_params()


def _limits(flops, pass_bytes, update_bytes, peak, bandwidth):
    """(phases in sequence, phases overlapped): the machine's shortest time for a step, in seconds."""
    sequential = max(flops / peak, pass_bytes / bandwidth) + update_bytes / bandwidth
    return sequential, max(flops / peak, (pass_bytes + update_bytes) / bandwidth)


def _peak_matmul_flops():
    """The best FLOP/s of square float32 matmuls (2048, 4096) here, TensorFlow and XLA."""
    best = 0.0
    for n in (2048, 4096):
        a, b = tf.random.normal((n, n)), tf.random.normal((n, n))
        for jit in (False, True):
            product = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b)[:1, :1]), jit_compile=jit)
            best = max(best, 2 * n**3 / _seconds(lambda: product().numpy(), 3))
    return best


def _memory_bandwidth():
    """Bytes per second of a 512 MB copy (read + write)."""
    source = np.ones(2**27, np.float32)
    target = np.empty_like(source)
    return 2 * source.nbytes / _seconds(lambda: np.copyto(target, source), 5)


def _pieces(model, x, y):
    """Seconds of the step's pieces, each alone and XLA-compiled, in the step's own batch."""
    variables = model.trainable_variables
    optimizer = tf.keras.optimizers.Adam(1e-3)
    optimizer.build(variables)
    zeros = [tf.zeros_like(v) for v in variables]
    kernels = [layer.kernel for layer in model.layers if getattr(layer, "kernel_quantizer", None) is not None]
    norms = [layer for layer in model.layers if isinstance(layer, tf.keras.layers.BatchNormalization)]
    norm_inputs = [tf.random.normal((x.shape[0], *layer.input_shape[1:])) for layer in norms]

    @tf.function(jit_compile=True)
    def forward():
        return tf.reduce_sum(model(x, training=True))

    @tf.function(jit_compile=True)
    def forward_backward():
        with tf.GradientTape() as tape:
            loss = LOSS(y, model(x, training=True))
        return tf.add_n([tf.reduce_sum(g) for g in tape.gradient(loss, variables)])

    @tf.function(jit_compile=True)
    def quantizers():
        with tf.GradientTape() as tape:
            tape.watch(kernels)
            total = tf.add_n([tf.reduce_sum(lq.quantizers.ste_sign(k)) for k in kernels])
        clipped = [tf.reshape(lq.constraints.weight_clip()(k), [-1])[0] for k in kernels]
        return tf.add_n([tf.reduce_sum(g) for g in tape.gradient(total, kernels)] + clipped)

    @tf.function(jit_compile=True)
    def batchnorm():
        with tf.GradientTape() as tape:
            tape.watch(norm_inputs)
            total = tf.add_n([tf.reduce_sum(norm(t, training=True)) for norm, t in zip(norms, norm_inputs)])
        return tf.add_n([tf.reduce_sum(g) for g in tape.gradient(total, norm_inputs)])

    @tf.function(jit_compile=True)
    def update():
        optimizer.apply_gradients(zip(zeros, variables))
        return variables[0][0]

    pieces = {"forward": forward, "forward_backward": forward_backward, "batchnorm": batchnorm, "adam": update}
    if kernels:
        pieces["quantizers"] = quantizers
    times = {name: _seconds(lambda fn=fn: fn().numpy(), 3) for name, fn in pieces.items()}
    times["backward"] = times["forward_backward"] - times["forward"]
    return times


def bench_profile(key, peak, bandwidth):
    batch, steps_per_epoch, _ = _dataset_facts(key)
    model = _compiled(_build(key))
    data = _data(model, batch, FLAGS.steps + 2)
    x, y = next(iter(data))
    result = {"batch": batch, "params": model.count_params()}
    result["step_s"] = _fit_seconds_per_step(model, data, FLAGS.steps)
    adversarial = _compiled(AdversarialModel(_build(key), eps=0.1, alpha=0.05))
    result["rfgsm_step_s"] = _fit_seconds_per_step(adversarial, data, FLAGS.steps)
    result.update({f"{name}_s": seconds for name, seconds in _pieces(model, x, y).items()})
    batches = iter(data)
    result["input_pipeline_s"] = _seconds(lambda: [next(batches) for _ in range(FLAGS.steps)], 3) / FLAGS.steps
    flops, moved = _step_flops(model, batch), (_pass_bytes(model), _update_bytes(model))
    result["gflop_per_step"] = flops / 1e9
    result["gb_per_step"] = sum(moved) / 1e9
    result["limit_s"], result["limit_overlapped_s"] = _limits(flops, *moved, peak, bandwidth)
    result["step_over_limit"] = result["step_s"] / result["limit_s"]
    result["step_over_limit_overlapped"] = result["step_s"] / result["limit_overlapped_s"]
    rfgsm_limit, _ = _limits(_step_flops(model, batch, 0.5), *moved, peak, bandwidth)
    result["rfgsm_step_over_limit"] = result["rfgsm_step_s"] / rfgsm_limit
    result["epoch_limit_s"] = result["limit_s"] * steps_per_epoch
    return result


# ---- settings ------------------------------------------------------------------------------------------------

def _child(key, setting):
    """Seconds per clean and R-FGSM step, and per image of validation and sweep, and how many layers compute in
    bfloat16, as JSON on stdout."""
    _, xla, new_evaluation, mixed = SETTINGS[setting]
    cpu.set_policy(cpu.mixed_precision_policy(mixed))
    batch, _, _ = _dataset_facts(key)
    model = _compiled(_build(key), xla)
    data = _data(model, batch, FLAGS.steps + 2)
    result = {"step_s": _fit_seconds_per_step(model, data, FLAGS.steps),
              "bfloat16_layers": sum(layer.compute_dtype == "bfloat16" for layer in model.layers)}
    adversarial = _compiled(AdversarialModel(_build(key), eps=0.1, alpha=0.05), xla)
    result["rfgsm_step_s"] = _fit_seconds_per_step(adversarial, data, FLAGS.steps)
    eval_batch = max(batch, evaluation.batch_size_for(model)) if new_evaluation else batch
    test = _data(model, eval_batch, 2).take(2)
    images = 2 * eval_batch
    result["eval_batch"] = eval_batch
    result["validation_s_per_image"] = _seconds(lambda: model.evaluate(test, verbose=0), 2) / images
    sweep = evaluation.FgsmSweep(model, jit_compile=xla and new_evaluation)
    eps = list(presets.get(models.ARCHITECTURES[key.rsplit("_", 1)[0]].dataset).sweep_eps)
    result["sweep_s_per_image"] = _seconds(lambda: sweep(test, eps), 1) / images
    print(json.dumps(result))


def _run_child(key, setting):
    command = [sys.executable, __file__, f"--child={key}", f"--child_setting={setting}", f"--steps={FLAGS.steps}"]
    done = subprocess.run(command, env={**os.environ, **SETTINGS[setting][0]}, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{key} under {setting} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _settings():
    """The settings to compare: --settings, or every one this CPU can run."""
    if FLAGS.settings is not None:
        unknown = set(FLAGS.settings) - set(SETTINGS)
        if unknown:
            raise app.UsageError(f"--settings: unknown {sorted(unknown)}; valid: {list(SETTINGS)}.")
        if set(FLAGS.settings) & set(MIXED) and not cpu.has_bfloat16():
            raise app.UsageError(f"--settings: {MIXED} need a CPU with bfloat16 instructions; this one has none.")
        return FLAGS.settings
    return [name for name in SETTINGS if name not in MIXED or cpu.has_bfloat16()]


def bench_settings(key, settings):
    _, steps_per_epoch, _ = _dataset_facts(key)
    runs = {setting: [] for setting in settings}
    for _ in range(FLAGS.repeats):
        for setting in settings:
            runs[setting].append(_run_child(key, setting))
            print(key, setting, json.dumps(runs[setting][-1]), flush=True)
    result = {}
    for setting, measured in runs.items():
        median = {name: statistics.median(m[name] for m in measured) for name in measured[0]}
        sweep_images = NEW_SWEEP_IMAGES if SETTINGS[setting][2] else TEST_IMAGES
        epoch = (steps_per_epoch * median["step_s"] + TEST_IMAGES * median["validation_s_per_image"]
                 + sweep_images * median["sweep_s_per_image"])
        result.update({f"{setting}_{name}": value for name, value in median.items()})
        result[f"{setting}_epoch_s"] = epoch
    baseline = settings[0]
    for setting in settings[1:]:
        result[f"{setting}_epoch_speedup"] = result[f"{baseline}_epoch_s"] / result[f"{setting}_epoch_s"]
    return result


def main(argv):
    del argv
    if FLAGS.child:
        return _child(FLAGS.child, FLAGS.child_setting)
    settings = _settings()
    peak, bandwidth = _peak_matmul_flops(), _memory_bandwidth()
    print(f"peak {peak / 1e9:.0f} GFLOP/s, bandwidth {bandwidth / 1e9:.1f} GB/s", flush=True)
    benches = {"profile": lambda key: bench_profile(key, peak, bandwidth),
               "settings": lambda key: bench_settings(key, settings)}
    results = {"machine": cpu.machine(), "peak_gflops": peak / 1e9, "bandwidth_gbs": bandwidth / 1e9,
               "parts": benchmarking.run_parts(benches, FLAGS.parts, lambda part: FLAGS.models)}
    header = [f"Machine: {results['machine']}; TensorFlow {tf.__version__}; batch sizes of the presets "
              f"(MNIST 100, CIFAR-10 128); {FLAGS.steps} timed steps; settings: median of {FLAGS.repeats} "
              "processes.", f"Peak matmul {results['peak_gflops']:.0f} GFLOP/s, memory bandwidth "
              f"{results['bandwidth_gbs']:.1f} GB/s (measured here)."]
    print(benchmarking.write_results(FLAGS.output, results, header))

if __name__ == "__main__":
    cli.run(main)
