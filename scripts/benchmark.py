"""Side-by-side benchmarks: every ratio is measured in one process, alternating runs, median of repeats.

    python scripts/benchmark.py                       # all parts, CPU-sized defaults
    python scripts/benchmark.py --parts=sweep --repeats=7

Parts: sweep (tfdisc's shared-gradient sweep vs CleverHans v4 FGSM once per ε, both compiled), train
(R-FGSM AdversarialModel vs clean fit, and vs ART's AdversarialTrainer), overhead (tfdisc-built vs
plain-Keras FCN2), xla (jit_compile on/off for training and the sweep), pipeline (a fit epoch with tf.data
autotuning off, as the library ships it, vs on), memory (FCN1-BNN peak RSS at batch 100; sweep
throughput by batch size). Inputs are random: only time is measured. The exception is autoattack
(tfdisc's AutoAttack vs ART's on real MNIST and a trained FCN2-BNN, 2-bit input): accuracy and time.
deploy: bytes and single-image latency of the Keras model, float TFLite and LCE for FCN2-, FCN1- and
AlexNet-BNN (LCE also with its interpreter's default kernels), the binary layers' size in float and
in LCE, and (FCN2-BNN, trained as for autoattack unless --autoattack_model) the flatbuffers'
agreement with Keras on the 10 000 MNIST test images. attack_calls: an attack's model calls (logits;
logits and input gradient) on FCN1- and AlexNet-BNN as built vs with kernels quantized once
(`tfdisc.models.with_quantized_kernels`, what the robustness report attacks). report_xla: the robustness
report's AutoAttack (standard) on the autoattack part's model and images, graph mode vs `jit_compile=True`,
each a fresh report's first call (tracing and XLA compilation included, as a user meets them). certify:
`tfdisc.certification` on the autoattack part's model: the --certify_bounds alone on the first --certify_examples
MNIST test images, then the bracket (--bracket_bound, then AutoAttack standard+discrete on the rest) on the first
--bracket_examples (default: --autoattack_examples) beside AutoAttack (standard) alone on the first
--autoattack_examples; seconds and shares per ε, each warmed up on 10
images first. splits: `tfdisc.certification.certify` on the autoattack part's model and the first --splits_examples
MNIST test images at --splits_eps, with --splits_time_limit seconds of branch and bound per example the bounds leave,
splitting pixels vs activations (`search.branch_and_bound`); shares and seconds of each. enumeration: every level
box of at most 2^16 inputs among the first --enumeration_examples MNIST test images at --enumeration_eps, on the
autoattack part's model, enumerated with eager model calls vs one graph function (`search.enumerate_box`); seconds
and the verdicts, which must agree.
"""

import json
import os
import subprocess
import sys
import time

os.environ.setdefault("TFDISC_QUIET", "1")  # TensorFlow's C++ start-up lines; TFDISC_QUIET=0 shows them

from absl import flags  # noqa: E402

import tfdisc  # noqa: E402,F401
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfdisc import attacks, benchmarking, cli, datasets, evaluation, export, models  # noqa: E402
from tfdisc.benchmarking import LOSS, build as _build, compiled as _compiled  # noqa: E402
from tfdisc.training import AdversarialModel  # noqa: E402

PARTS = ["sweep", "train", "overhead", "xla", "pipeline", "memory", "autoattack", "deploy", "attack_calls", "certify",
         "report_xla", "splits", "enumeration"]
EPS = [0.01 * i for i in range(11)]
flags.DEFINE_list("parts", PARTS, "Which benchmarks to run.")
flags.DEFINE_list("models", ["fcn2_full", "alexnet_full", "alexnet_bnn"], "arch_precision pairs (deploy: "
                  "fcn2_bnn, fcn1_bnn, alexnet_bnn unless given).")
flags.DEFINE_integer("repeats", 5, "Timed repeats per variant (after one warm-up).", lower_bound=1)
flags.DEFINE_integer("batches", 8, "Batches per timed run (FCN models).", lower_bound=1)
flags.DEFINE_integer("conv_batches", 2, "Batches per timed run (conv models, slow on CPUs).", lower_bound=1)
flags.DEFINE_integer("batch_size", 100, "Batch size (FCN models).", lower_bound=1)
flags.DEFINE_integer("conv_batch_size", 32, "Batch size (conv models).", lower_bound=1)
flags.DEFINE_string("output", "benchmarks/results", "Writes <output>.json and <output>.md.")
flags.DEFINE_string("data_dir", "../shared/data", "Real data for the autoattack part (see tfdisc.datasets).")
flags.DEFINE_string("autoattack_model", None, "autoattack, report_xla and deploy parts: a run directory or "
                    "SavedModel (default: an FCN2-BNN with 2-bit input trained here for 3 epochs on MNIST).")
flags.DEFINE_integer("autoattack_examples", 500, "autoattack and report_xla parts: the first N MNIST test images.",
                     lower_bound=1)
flags.DEFINE_list("autoattack_eps", ["0.1", "0.2"], "autoattack, report_xla and certify parts: the ε to attack at.")
flags.DEFINE_integer("certify_examples", 10000, "certify part: the bounds alone on the first N MNIST test images.",
                     lower_bound=1)
flags.DEFINE_list("certify_bounds", ["ibp", "crown"], "certify part: the bounds timed alone (ibp, crown, "
                  "crown-refined, alpha-crown).")
flags.DEFINE_integer("bracket_examples", 0, "certify part: the bracket on the first N MNIST test images (0: "
                     "--autoattack_examples).", lower_bound=0)
flags.DEFINE_enum("bracket_bound", "crown-refined", ["ibp", "crown", "crown-refined", "alpha-crown"],
                  "certify part: the bracket's tightest bound.")
flags.DEFINE_integer("enumeration_examples", 100, "enumeration part: the first N MNIST test images.",
                     lower_bound=1)
flags.DEFINE_float("enumeration_eps", 0.01, "enumeration part: the ε of the level boxes.", lower_bound=0.0)
flags.DEFINE_integer("splits_examples", 100, "splits part: the first N MNIST test images.", lower_bound=1)
flags.DEFINE_float("splits_eps", 0.05, "splits part: the ε to certify at.", lower_bound=0.0)
flags.DEFINE_float("splits_time_limit", 5.0, "splits part: seconds of branch and bound per example.", lower_bound=0.0)
flags.DEFINE_enum("art_attacks", "matched", ["matched", "default"], "autoattack part: ART's AutoAttack with the "
                  "standard version's budget (APGD-CE, APGD-DLR, 100 iterations, Square 5000 queries, one restart "
                  "each), or with ART's default list (5 restarts each, DeepFool, Square 5×5000 queries: hours).")
flags.DEFINE_bool("memory_child", False, "Internal: measure FCN1-BNN training memory in this process.")
FLAGS = flags.FLAGS


def _batches(key):
    return FLAGS.batches if key.startswith("fcn") else FLAGS.conv_batches


def _data(model, batch_size, batches):
    return benchmarking.random_data(model, batch_size, batches)


def _medians(variants):
    return benchmarking.median_seconds(variants, FLAGS.repeats)


def _batch_size(key):
    return FLAGS.batch_size if key.startswith("fcn") else FLAGS.conv_batch_size


def bench_sweep(key):
    from cleverhans.tf2.attacks.fast_gradient_method import fast_gradient_method as cleverhans_fgm

    model = _build(key)
    data = _data(model, _batch_size(key), _batches(key))
    ours = evaluation.FgsmSweep(model)

    @tf.function(reduce_retracing=True)
    def cleverhans_correct(x, y, eps):
        x_adv = cleverhans_fgm(model, x, eps, np.inf, clip_min=0.0, clip_max=1.0, y=y)
        return tf.reduce_sum(tf.cast(tf.argmax(model(x_adv, training=False), -1) == tf.cast(y, tf.int64), tf.int32))

    def cleverhans_sweep():
        return [sum(int(cleverhans_correct(x, y, tf.constant(e))) for x, y in data) for e in EPS]

    t = _medians({"tfdisc": lambda: ours(data, EPS), "cleverhans": cleverhans_sweep})
    images = _batches(key) * _batch_size(key)
    return {"tfdisc_s": t["tfdisc"], "cleverhans_s": t["cleverhans"], "speedup": t["cleverhans"] / t["tfdisc"],
            "tfdisc_images_per_s": images / t["tfdisc"]}


def bench_train(key):
    plain = _compiled(_build(key))
    data = _data(plain, _batch_size(key), _batches(key))
    variants = {"clean": plain}
    for ratio in (0.5, 1.0):
        variants[f"rfgsm_{ratio}"] = _compiled(AdversarialModel(_build(key), eps=0.1, alpha=0.05, adv_ratio=ratio))
    t = _medians({name: (lambda m=m: m.fit(data, epochs=1, verbose=0)) for name, m in variants.items()})
    result = {f"{name}_s": seconds for name, seconds in t.items()}
    result.update({f"rfgsm_{r}_over_clean": t[f"rfgsm_{r}"] / t["clean"] for r in (0.5, 1.0)})
    result.update(_art_vs_ours(key, data, t["rfgsm_0.5"]))
    result["clean_images_per_s"] = _batches(key) * _batch_size(key) / t["clean"]
    return result


def _art_vs_ours(key, data, ours_seconds):
    """ART's AdversarialTrainer (FGSM, ratio 0.5) on the same model and data, one epoch."""
    try:
        from art.attacks.evasion import FastGradientMethod
        from art.defences.trainer import AdversarialTrainer
        from art.estimators.classification import TensorFlowV2Classifier
    except ImportError:
        return {"art": "not installed (pip install -e .[bench])"}
    model = _build(key)
    optimizer = tf.keras.optimizers.Adam(1e-3)

    @tf.function
    def train_step(model, images, labels):
        with tf.GradientTape() as tape:
            loss = LOSS(labels, model(images, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))

    classifier = TensorFlowV2Classifier(model, nb_classes=model.output_shape[-1], input_shape=model.input_shape[1:],
                                        loss_object=LOSS, optimizer=optimizer, train_step=train_step,
                                        clip_values=(0, 1))
    trainer = AdversarialTrainer(classifier, FastGradientMethod(classifier, eps=0.1), ratio=0.5)
    x = np.concatenate([b[0].numpy() for b in data])
    y = np.concatenate([b[1].numpy() for b in data])
    t = _medians({"art": lambda: trainer.fit(x, y, nb_epochs=1, batch_size=_batch_size(key))})
    return {"art_s": t["art"], "art_over_tfdisc": t["art"] / ours_seconds}


def _autoattack_model():
    if FLAGS.autoattack_model:
        return models.load(FLAGS.autoattack_model, "--autoattack_model")
    x, y = datasets.load_arrays("mnist", "train", data_dir=FLAGS.data_dir)
    tf.keras.utils.set_random_seed(0)
    model = _compiled(models.build_model("fcn2", precision="bnn", input_bits=2))
    model.fit(x, y, batch_size=128, epochs=3, verbose=0)
    return model


def bench_autoattack(_):
    """tfdisc's AutoAttack (standard) vs ART's AutoAttack on the same model, data and ε.

    ART's APGD starts at step `eps_step`; it gets 2ε, the paper's (and tfdisc's) first step. ART has
    no APGD-T in an untargeted run, so "matched" gives it untargeted APGD-DLR in that place.
    Each side runs once per ε (minutes each); tfdisc's compile is warmed up on 10 images first.
    """
    from art.attacks.evasion import AutoAttack, AutoProjectedGradientDescent, SquareAttack
    from art.estimators.classification import TensorFlowV2Classifier

    def art_attacks(eps, batch_size):
        if FLAGS.art_attacks == "default":
            return None
        apgd = [AutoProjectedGradientDescent(art_model, norm=np.inf, eps=eps, eps_step=2 * eps, max_iter=100,
                                             nb_random_init=1, batch_size=batch_size, loss_type=loss, verbose=False)
                for loss in ("cross_entropy", "difference_logits_ratio")]
        return apgd + [SquareAttack(art_model, norm=np.inf, eps=eps, max_iter=5000, p_init=0.8, nb_restarts=1,
                                    batch_size=batch_size, verbose=False)]

    model = _autoattack_model()
    x, y = datasets.load_arrays("mnist", "test", data_dir=FLAGS.data_dir, examples=FLAGS.autoattack_examples,
                                subset_order="first")
    x = x.astype(np.float32) / 255.0
    ours = evaluation.RobustnessReport(model, ("autoattack",))
    ours((x[:10], y[:10]), [0.1])  # compile
    art_model = TensorFlowV2Classifier(model, nb_classes=10, input_shape=x.shape[1:], loss_object=LOSS,
                                       clip_values=(0.0, 1.0))
    result = {"examples": len(x), "art_attacks": FLAGS.art_attacks}
    for eps in map(float, FLAGS.autoattack_eps):
        start = time.perf_counter()
        report = ours((x, y), [eps])
        ours_s = time.perf_counter() - start
        attack = AutoAttack(art_model, eps=eps, eps_step=2 * eps, batch_size=len(x),
                            attacks=art_attacks(eps, len(x)))
        start = time.perf_counter()
        x_adv = attack.generate(x, y)
        art_s = time.perf_counter() - start
        art_accuracy = float(np.mean(np.argmax(art_model.predict(x_adv, batch_size=len(x)), -1) == y))
        ours_accuracy = report["attacks"]["autoattack"]["accuracy"][0]
        result.update({f"eps={eps:g} clean": report["clean_accuracy"], f"eps={eps:g} tfdisc": ours_accuracy,
                       f"eps={eps:g} art": art_accuracy,
                       f"eps={eps:g} tfdisc-art (points)": 100 * (ours_accuracy - art_accuracy),
                       f"eps={eps:g} tfdisc_s": ours_s, f"eps={eps:g} art_s": art_s,
                       f"eps={eps:g} art_over_tfdisc": art_s / ours_s})
        print(f"ε={eps:g}: tfdisc {ours_accuracy:.4f} in {ours_s:.1f} s, ART {art_accuracy:.4f} in {art_s:.1f} s "
              f"({art_s / ours_s:.1f}x)", flush=True)
    return result


def _latency(fn, x):
    """Median seconds of one single-image call, over `repeats` runs of 50 calls (after a warm-up run)."""
    return _medians({"calls": lambda: [fn(x) for _ in range(50)]})["calls"] / 50


def _agreement(model, runners):
    """Argmax agreement and max |logit difference| of each flatbuffer with the Keras model on the MNIST test set."""
    x, _ = datasets.load_arrays("mnist", "test", data_dir=FLAGS.data_dir)
    x = x.astype(np.float32) / 255.0
    keras_logits = model.predict(x, batch_size=1000, verbose=0)
    measured = {}
    for name, runner in runners.items():
        logits = runner(x)
        measured[f"{name}_agreement"] = float(np.mean(logits.argmax(1) == keras_logits.argmax(1)))
        measured[f"{name}_max_logit_diff"] = float(np.abs(logits - keras_logits).max())
    return measured


def bench_deploy(key):
    """Bytes and single-image latency of the Keras model, float TFLite and LCE (interpreters on 1 thread)."""
    import tempfile

    model = _autoattack_model() if key == "fcn2_bnn" else _build(key)
    x = np.random.default_rng(0).random((1, *model.input_shape[1:])).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        export.save(model, os.path.join(folder, "saved_model"))
        keras_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, names in os.walk(folder) for f in names)
        tflite = export.to_tflite(model, os.path.join(folder, "float.tflite"))
        lce = export.to_lce(model, os.path.join(folder, "lce.tflite"))  # names the install line if LCE is missing
        import larq_compute_engine

        with open(lce.path, "rb") as f:
            lce_flatbuffer = f.read()
        binary_bytes = export.binary_weight_bytes(lce_flatbuffer)
        runners = {"tflite": export.TFLiteModel(tflite.path), "lce": export.TFLiteModel(lce.path)}
        # LCE's interpreter as it comes: reference binary kernels off ARM, no XNNPACK.
        lce_defaults = larq_compute_engine.testing.Interpreter(lce_flatbuffer, num_threads=1)
        keras_call = tf.function(lambda z: model(z, training=False))
        seconds = {"keras": _latency(lambda z: keras_call(z).numpy(), x),
                   **{name: _latency(runner, x) for name, runner in runners.items()},
                   "lce_default_kernels": _latency(lce_defaults.predict, x)}
        agreement = _agreement(model, runners) if key == "fcn2_bnn" else {}
    binary_kernels = [layer.kernel for layer in model.submodules if getattr(layer, "name", None) in lce.binary_layers
                      and hasattr(layer, "kernel")]
    binary_float_bytes = 4 * sum(int(np.prod(k.shape)) for k in binary_kernels)
    return {"keras_mb": keras_bytes / 1e6, "tflite_mb": tflite.bytes / 1e6, "lce_mb": lce.bytes / 1e6,
            "binary_layers": len(lce.binary_layers), "binary_layers_float_mb": binary_float_bytes / 1e6,
            "binary_layers_lce_mb": binary_bytes / 1e6, "binary_layers_smaller": binary_float_bytes / binary_bytes,
            "keras_ms": 1e3 * seconds["keras"], "tflite_ms": 1e3 * seconds["tflite"], "lce_ms": 1e3 * seconds["lce"],
            "lce_speedup_over_tflite": seconds["tflite"] / seconds["lce"],
            "lce_default_kernels_ms": 1e3 * seconds["lce_default_kernels"], **agreement}


def _plain_fcn2():
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Flatten()(inputs)
    for _ in range(4):
        x = tf.keras.layers.Dense(600)(x)
        x = tf.keras.layers.BatchNormalization(momentum=0.9)(x)
        x = tf.keras.layers.ReLU()(x)
    return tf.keras.Model(inputs, tf.keras.layers.Dense(10)(x))


def bench_overhead(_):
    ours, plain = _compiled(_build("fcn2_full")), _compiled(_plain_fcn2())
    assert ours.count_params() == plain.count_params()
    data = _data(ours, FLAGS.batch_size, FLAGS.batches)
    t = _medians({"tfdisc": lambda: ours.fit(data, verbose=0), "keras": lambda: plain.fit(data, verbose=0)})
    return {"tfdisc_s": t["tfdisc"], "keras_s": t["keras"], "throughput_ratio": t["keras"] / t["tfdisc"]}


def bench_xla(key):
    off, on = _compiled(_build(key)), _compiled(_build(key), jit_compile=True)
    on.set_weights(off.get_weights())
    data = _data(off, _batch_size(key), _batches(key))
    train = _medians({"off": lambda: off.fit(data, verbose=0), "on": lambda: on.fit(data, verbose=0)})
    adversarial = {jit: _compiled(AdversarialModel(_build(key), eps=0.1, alpha=0.05), jit_compile=jit)
                   for jit in (False, True)}
    rfgsm = _medians({jit: (lambda m=m: m.fit(data, verbose=0)) for jit, m in adversarial.items()})
    sweep_off, sweep_on = evaluation.FgsmSweep(off), evaluation.FgsmSweep(off, jit_compile=True)
    same = sweep_off(data, EPS)["accuracy"] == sweep_on(data, EPS)["accuracy"]
    sweep = _medians({"off": lambda: sweep_off(data, EPS), "on": lambda: sweep_on(data, EPS)})
    return {"train_off_s": train["off"], "train_on_s": train["on"], "train_speedup": train["off"] / train["on"],
            "rfgsm_train_speedup": rfgsm[False] / rfgsm[True],
            "sweep_speedup": sweep["off"] / sweep["on"], "sweep_results_identical": same}


def bench_attack_calls(key):
    """An attack's two calls (a Square query: logits; an APGD step: logits and input gradient) on the model as
    built vs `models.with_quantized_kernels`, in one tf.function each, at a batch of survivors and at evaluate's 250."""
    model = _build(key)
    copy = models.with_quantized_kernels(model)
    results = {}
    for batch in (20, 250):
        x = tf.random.stateless_uniform([batch, *model.input_shape[1:]], seed=[0, batch])
        y = tf.zeros([batch], tf.int64)
        calls = {}
        for name, m in (("latent", model), ("quantized", copy)):
            query = tf.function(lambda x, m=m: attacks.logits_of(m, x))
            step = tf.function(lambda x, m=m: attacks.logits_and_gradient(m, x, y)[1])
            calls[f"query_{name}"] = lambda f=query: f(x).numpy()
            calls[f"step_{name}"] = lambda f=step: f(x).numpy()
        t = _medians(calls)
        for call in ("query", "step"):
            results[f"{call}_{batch}_latent_s"] = t[f"{call}_latent"]
            results[f"{call}_{batch}_quantized_s"] = t[f"{call}_quantized"]
            results[f"{call}_{batch}_speedup"] = t[f"{call}_latent"] / t[f"{call}_quantized"]
    return results


def bench_report_xla(_):
    """AutoAttack (standard) in the robustness report, graph mode vs XLA: seconds and accuracy per ε."""
    model = _autoattack_model()
    x, y = datasets.load_arrays("mnist", "test", data_dir=FLAGS.data_dir, examples=FLAGS.autoattack_examples,
                                subset_order="first")
    eps = [float(e) for e in FLAGS.autoattack_eps]
    result = {"examples": len(x), "eps": eps}
    for name, jit in (("graph", False), ("xla", True)):
        report = evaluation.RobustnessReport(model, ("autoattack",), jit_compile=jit)
        start = time.perf_counter()
        out = report((x, y), eps)
        result[f"{name}_s"] = time.perf_counter() - start
        result[f"{name}_accuracy"] = out["attacks"]["autoattack"]["accuracy"]
    result["speedup"] = result["graph_s"] / result["xla_s"]
    return result


def bench_certify(_):
    """Certified shares and seconds of IBP and CROWN, and the bracket beside AutoAttack alone (see the docstring)."""
    from tfdisc import certification

    model = _autoattack_model()
    x, y = datasets.load_arrays("mnist", "test", data_dir=FLAGS.data_dir, examples=FLAGS.certify_examples,
                                subset_order="first")
    eps = [float(e) for e in FLAGS.autoattack_eps]
    n = min(FLAGS.autoattack_examples, len(x))
    bracket_n = min(FLAGS.bracket_examples or n, len(x))
    result = {"certify_examples": len(x), "attack_examples": n, "bracket_examples": bracket_n}
    for bound in FLAGS.certify_bounds:
        certification.certify(model, (x[:10], y[:10]), eps, bound=bound, enumeration_limit=0)
        found = certification.certify(model, (x, y), eps, bound=bound, enumeration_limit=0)
        result[f"{bound}_s"] = found["seconds"]
        result.update({f"eps={e:g} {bound}_certified": share for e, share in zip(eps, found["certified"])})
    report = evaluation.RobustnessReport(model, ("autoattack",))
    report((x[:10], y[:10]), eps)
    start = time.perf_counter()
    attacked = report((x[:n], y[:n]), eps)
    result["autoattack_s"] = time.perf_counter() - start
    certification.bracket(model, (x[:10], y[:10]), eps, bound=FLAGS.bracket_bound)
    bracketed = certification.bracket(model, (x[:bracket_n], y[:bracket_n]), eps, bound=FLAGS.bracket_bound)
    result["bracket_s"] = bracketed["seconds"]
    result["autoattack_over_bracket"] = result["autoattack_s"] / result["bracket_s"]
    for i, e in enumerate(eps):
        result.update({f"eps={e:g} autoattack": attacked["attacks"]["autoattack"]["accuracy"][i],
                       f"eps={e:g} bracket": f"[{bracketed['certified'][i]:.3f}, {bracketed['attacked'][i]:.3f}]"})
    return result


def bench_enumeration(_):
    """Exact enumeration of the level boxes small enough (see the docstring): eager model calls vs one graph
    function, alternating, with the same verdicts."""
    from tfdisc import checks
    from tfdisc.certification import bounds, search

    model = _autoattack_model()
    x, y = datasets.load_arrays("mnist", "test", data_dir=FLAGS.data_dir, examples=FLAGS.enumeration_examples,
                                subset_order="first")
    discretization = bounds.discretization_layer(model)
    low, high = (v.numpy() for v in bounds.level_box(discretization, checks.pixels(x), FLAGS.enumeration_eps))
    boxes = [i for i in range(len(y)) if search.input_count(discretization, low[i], high[i]) <= 2**16]
    compiled = search._predictor(model)
    eager = lambda v: tf.argmax(model(v, training=False), -1)  # noqa: E731  (what enumeration called before)
    verdicts = {}

    def enumerate_all(predict):
        search._PREDICTORS[model] = predict
        return [search.enumerate_box(model, discretization, low[i], high[i], y[i])[0] for i in boxes]

    t = _medians({name: (lambda name=name, fn=fn: verdicts.__setitem__(name, enumerate_all(fn)))
                  for name, fn in (("eager", eager), ("compiled", compiled))})
    search._PREDICTORS[model] = compiled
    assert verdicts["eager"] == verdicts["compiled"], "the two paths disagree"
    inputs = sum(search.input_count(discretization, low[i], high[i]) for i in boxes)
    return {"examples": len(y), "eps": FLAGS.enumeration_eps, "boxes": len(boxes), "inputs": int(inputs),
            "robust": int(sum(verdicts["compiled"])), "eager_s": t["eager"], "compiled_s": t["compiled"],
            "speedup": t["eager"] / t["compiled"]}


def bench_splits(_):
    """Branch and bound splitting pixels vs activations, on the same model, images, ε and time (see the docstring)."""
    from tfdisc import certification
    from tfdisc.certification import search

    model = _autoattack_model()
    x, y = datasets.load_arrays("mnist", "test", data_dir=FLAGS.data_dir, examples=FLAGS.splits_examples,
                                subset_order="first")
    eps = [FLAGS.splits_eps]
    result = {"examples": len(x), "eps": FLAGS.splits_eps, "time_limit_s": FLAGS.splits_time_limit}
    for split in search.SPLITS:
        certification.certify(model, (x[:10], y[:10]), eps, split=split, time_limit=1.0)
        found = certification.certify(model, (x, y), eps, split=split, time_limit=FLAGS.splits_time_limit)
        decided = found["methods"][0].get("branch_and_bound", 0)
        result.update({f"{split}_s": found["seconds"], f"{split} certified": found["certified"][0],
                       f"{split} broken": found["broken"][0], f"{split} unknown": found["unknown"][0],
                       f"{split} decided_by_branch_and_bound": decided})
    return result


def bench_pipeline(key):
    """One `fit` epoch over the library's in-memory pipeline: autotuning off (as shipped) vs on (tf.data's default)."""
    model = _compiled(_build(key))
    shipped = _data(model, _batch_size(key), _batches(key))
    options = tf.data.Options()
    options.autotune.enabled = True
    autotuned = shipped.with_options(options)
    t = _medians({"off": lambda: model.fit(shipped, verbose=0), "on": lambda: model.fit(autotuned, verbose=0)})
    return {"autotune_off_s": t["off"], "autotune_on_s": t["on"], "speedup": t["on"] / t["off"]}


def bench_memory(_):
    child = subprocess.run([sys.executable, __file__, "--memory_child", "--parts=memory"], capture_output=True,
                           text=True, check=True)
    result = json.loads(child.stdout.strip().splitlines()[-1])
    model = _build("fcn2_bnn")
    for batch in (32, 128, 512):
        data = _data(model, batch, max(1, 2048 // batch))
        sweep = evaluation.FgsmSweep(model)
        seconds = _medians({"sweep": lambda: sweep(data, EPS)})["sweep"]
        result[f"fcn2_bnn_sweep_images_per_s_batch{batch}"] = max(1, 2048 // batch) * batch / seconds
    return result


def _peak_rss_mib():
    """This process's resident-memory high-water mark (VmHWM: unlike ru_maxrss, not inherited from the parent)."""
    with open("/proc/self/status") as status:
        line = next(line for line in status if line.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def _memory_child():
    """Peak resident memory of FCN1-BNN training at batch 100, printed as JSON."""
    model = _compiled(_build("fcn1_bnn"))
    built = _peak_rss_mib()
    model.fit(_data(model, 100, 3), verbose=0)
    peak = _peak_rss_mib()
    print(json.dumps({"fcn1_bnn_params": model.count_params(), "fcn1_bnn_built_rss_mib": built,
                      "fcn1_bnn_peak_rss_mib": peak}))


def main(argv):
    del argv
    if FLAGS.memory_child:
        return _memory_child()
    benches = {"sweep": bench_sweep, "train": bench_train, "overhead": bench_overhead, "xla": bench_xla,
               "pipeline": bench_pipeline, "memory": bench_memory, "autoattack": bench_autoattack,
               "deploy": bench_deploy, "attack_calls": bench_attack_calls, "report_xla": bench_report_xla,
               "certify": bench_certify, "splits": bench_splits, "enumeration": bench_enumeration}
    trained = [os.path.basename(os.path.normpath(FLAGS.autoattack_model or "fcn2_bnn_2b"))]
    per_model = {"overhead": ["fcn2_full"], "memory": ["fcn1_bnn"], "autoattack": ["fcn2_bnn_2b"],
                 "report_xla": trained, "certify": trained, "splits": trained, "enumeration": trained,
                 "deploy": FLAGS.models if FLAGS["models"].present else ["fcn2_bnn", "fcn1_bnn", "alexnet_bnn"],
                 "attack_calls": FLAGS.models if FLAGS["models"].present else ["fcn1_bnn", "alexnet_bnn"]}
    results = {"machine": benchmarking.machine(),
               "parts": benchmarking.run_parts(benches, FLAGS.parts, lambda part: per_model.get(part, FLAGS.models))}
    header = [f"Machine: {results['machine']}; TensorFlow {tf.__version__}; {FLAGS.repeats} repeats of "
              f"{FLAGS.batches} batches of {FLAGS.batch_size} (FCN) or {FLAGS.conv_batches} of "
              f"{FLAGS.conv_batch_size} (conv); median seconds."]
    print(benchmarking.write_results(FLAGS.output, results, header))


if __name__ == "__main__":
    cli.run(main)
