"""Export a trained model as a float TFLite or a Larq Compute Engine (LCE) flatbuffer.

    python scripts/export.py --model=runs/mnist_fcn2_bnn_2b_s0 --format=lce

--model is a run directory (its saved_model/ is used) or a Keras SavedModel. The flatbuffer is
written next to saved_model/ (`model.tflite` or `model_lce.tflite`, `_uint8` added for uint8 input),
and a run's results.json records it under "exports". It takes `pixels` and returns `logits`; the
input discretization is inside. LCE runs every layer with ±1 inputs and kernels on its binary
kernels, and the script lists the layers that stay float, and why.
"""

import json
import os
import sys

os.environ.setdefault("TFDISC_QUIET", "1")  # TensorFlow's C++ start-up lines; TFDISC_QUIET=0 shows them

from absl import app, flags  # noqa: E402

import tfdisc  # noqa: E402,F401  (selects legacy Keras before TensorFlow loads it)
from tfdisc import export, files, models, scripting  # noqa: E402

flags.DEFINE_string("model", None, "Run directory or Keras SavedModel to export.", required=True)
flags.DEFINE_enum("format", "lce", ["tflite", "lce"], "tflite: float TFLite; lce: LCE with binary kernels.")
flags.DEFINE_enum("input_dtype", "float32", list(export.INPUT_DTYPES),
                  "float32: pixels in [0, 1] (out-of-range examples give NaN logits); uint8: images 0..255.")
FLAGS = flags.FLAGS

CONVERTERS = {"tflite": export.to_tflite, "lce": export.to_lce}


def flatbuffer_path(saved_model, fmt, input_dtype):
    """Where the flatbuffer goes: beside the SavedModel folder."""
    name = {"tflite": "model", "lce": "model_lce"}[fmt] + ("_uint8" if input_dtype == "uint8" else "")
    return os.path.join(os.path.dirname(os.path.abspath(saved_model)), name + ".tflite")


def export_model(model_path, fmt, input_dtype):
    """Convert, write, and record in the run's results.json; return the `Exported`."""
    model = models.load(model_path, "--model")
    run_dir = model_path if os.path.isdir(os.path.join(model_path, "saved_model")) else None
    saved_model = os.path.join(run_dir, "saved_model") if run_dir else model_path
    exported = CONVERTERS[fmt](model, flatbuffer_path(saved_model, fmt, input_dtype), input_dtype=input_dtype)
    results_path = os.path.join(run_dir, "results.json") if run_dir else None
    if results_path and os.path.isfile(results_path):
        with open(results_path) as f:
            results = json.load(f)
        record = {"path": os.path.basename(exported.path), "bytes": exported.bytes, "input_dtype": input_dtype,
                  "binary_layers": exported.binary_layers, "float_layers": exported.float_layers}
        results.setdefault("exports", {})[os.path.splitext(record["path"])[0]] = record
        files.write_json_atomic(results_path, results)
    return exported


def main(argv):
    del argv
    scripting.quiet_library_logs()
    try:
        exported = export_model(FLAGS.model, FLAGS.format, FLAGS.input_dtype)
    except (ValueError, FileNotFoundError) as error:
        sys.exit(f"error: {error}")
    print(f"{exported.path}: {exported.bytes / 1e6:.2f} MB, input {FLAGS.input_dtype} 'pixels', output 'logits'")
    if FLAGS.format == "lce":
        print(f"binary kernels ({export.BINARY_CONV_OP}): {', '.join(exported.binary_layers) or 'none'}")
    for name, why in exported.float_layers.items():
        print(f"float: {name} ({why})")
    print("operators: " + ", ".join(f"{name} {count}" for name, count in sorted(exported.operators.items())))


if __name__ == "__main__":
    app.run(main)
