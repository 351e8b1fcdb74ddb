"""Export a trained model as a float TFLite or a Larq Compute Engine (LCE) flatbuffer.

    python scripts/export.py --model=runs/mnist_fcn2_bnn_2b_s0 --format=lce

--model is a run directory (its saved_model/ is used) or a Keras SavedModel. The flatbuffer is
written next to saved_model/ (`model.tflite` or `model_lce.tflite`, `_uint8` added for uint8 input),
and a run's results.json records it under "exports". It takes `pixels` and returns `logits`; the
input discretization is inside. LCE runs every layer with ±1 inputs and kernels on its binary
kernels, and the script lists the layers that stay float, and why (`tfdisc.export`).
"""

from absl import flags

from tfdisc import cli, export

cli.flag("export", flags.DEFINE_string, "model", None, "Run directory or Keras SavedModel to export.", required=True)
cli.flag("export", flags.DEFINE_enum, "format", "lce", list(export.FORMATS),
         "tflite: float TFLite; lce: LCE with binary kernels.")
cli.flag("export", flags.DEFINE_enum, "input_dtype", "float32", list(export.INPUT_DTYPES),
         "float32: pixels in [0, 1] (out-of-range examples give NaN logits); uint8: images 0..255.")
cli.define_trust_flag("export")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    exported = export.export_run(FLAGS.model, FLAGS.format, FLAGS.input_dtype, trust=FLAGS.trust_model)
    print(f"{exported.path}: {exported.bytes / 1e6:.2f} MB, input {FLAGS.input_dtype} 'pixels', output 'logits'")
    if FLAGS.format == "lce":
        print(f"binary kernels ({export.BINARY_CONV_OP}): {', '.join(exported.binary_layers) or 'none'}")
    for name, why in exported.float_layers.items():
        print(f"float: {name} ({why})")
    print("operators: " + ", ".join(f"{name} {count}" for name, count in sorted(exported.operators.items())))


if __name__ == "__main__":
    cli.run(main)
