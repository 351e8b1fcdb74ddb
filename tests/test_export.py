"""Deployment: TFLite and LCE flatbuffers equal the Keras model, run binary where they should, and name their I/O."""

import json
import subprocess
import sys
from pathlib import Path

import larq as lq
import numpy as np
import pytest
import tensorflow as tf

from helpers import load_mnist, require_data, without_sign_ties
from tfdisc import export, models
from tfdisc.layers import DenseAsConv
from tfdisc.reporting.records import RunRecord

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "export.py"


def _train(precision, x, y):
    model = models.build_model("fcn2", precision=precision, input_bits=2)
    model.compile(tf.keras.optimizers.Adam(1e-3), tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=100, epochs=1, verbose=0)
    return model


@pytest.fixture(scope="module")
def fcn2_exports(tmp_path_factory):
    """FCN2 (bnn and full, 2-bit input) trained one epoch on 10 000 real MNIST images, with both flatbuffers."""
    x, y, x_test, y_test = load_mnist(10000, 1000)
    folder = tmp_path_factory.mktemp("fcn2")
    made = {}
    for precision in ("bnn", "full"):
        tf.keras.utils.set_random_seed(0)
        model = _train(precision, x, y)
        made[precision] = (model, {fmt: convert(model, folder / f"{precision}_{fmt}.tflite")
                                   for fmt, convert in (("tflite", export.to_tflite), ("lce", export.to_lce))})
    return made, x_test, y_test


@pytest.mark.slow
@pytest.mark.parametrize("precision, agreement", [("bnn", 0.999), ("full", 1.0)])
@pytest.mark.parametrize("fmt", ["tflite", "lce"])
def test_flatbuffers_predict_like_the_keras_model_on_real_mnist(fcn2_exports, precision, agreement, fmt):
    made, x_test, _ = fcn2_exports
    model, exported = made[precision]
    keras_logits = model.predict(x_test, verbose=0)
    logits = export.TFLiteModel(exported[fmt].path)(x_test)
    agree = np.mean(logits.argmax(1) == keras_logits.argmax(1))
    print(f"{precision} {fmt}: argmax agreement {agree:.4f}, max |logit difference| "
          f"{np.abs(logits - keras_logits).max():.3g}")
    assert agree >= agreement  # a BNN's sign ties (|pre-sign value| at rounding level) may go either way


@pytest.mark.slow
def test_lce_runs_every_binarized_layer_on_binary_kernels(fcn2_exports):
    made, _, _ = fcn2_exports
    model, exported = made["bnn"]
    lce, tflite = exported["lce"], exported["tflite"]
    hidden = [layer.name for layer in model.layers if isinstance(layer, lq.layers.QuantDense)][1:]
    assert lce.binary_layers == hidden and lce.operators["LceBconv2d"] == 4
    assert lce.operators["FULLY_CONNECTED"] == 1 and "LceDequantize" not in lce.operators  # only the first layer
    first = model.layers[3].name
    assert list(lce.float_layers) == [first] and "real-valued inputs" in lce.float_layers[first]
    assert tflite.binary_layers == [] and set(tflite.float_layers) == {first, *hidden}
    assert "LceBconv2d" not in tflite.operators
    # The float first layer (784×600 floats) is most of the LCE file; the binary ones are bit-packed.
    assert lce.bytes < 0.35 * tflite.bytes
    with open(lce.path, "rb") as f:
        binary_float_bytes = 4 * sum(int(np.prod(layer.kernel.shape)) for layer in model.layers if layer.name in hidden)
        assert export.binary_weight_bytes(f.read()) < binary_float_bytes / 20


@pytest.mark.slow
def test_every_format_names_its_input_pixels_and_its_output_logits(fcn2_exports, tmp_path):
    made, x_test, _ = fcn2_exports
    model, exported = made["bnn"]
    for exported_file in exported.values():
        with open(exported_file.path, "rb") as f:
            assert export.signature(f.read()) == {"inputs": ["pixels"], "outputs": ["logits"]}
    export.save(model, tmp_path / "saved_model")
    model.save(str(tmp_path / "plain_save"))  # Keras's own save names them too
    for folder in ("saved_model", "plain_save"):
        serve = tf.saved_model.load(str(tmp_path / folder)).signatures["serving_default"]
        assert list(serve.structured_input_signature[1]) == ["pixels"] and list(serve.structured_outputs) == ["logits"]
        np.testing.assert_array_equal(serve(pixels=tf.constant(x_test[:50]))["logits"].numpy(),
                                      model(x_test[:50], training=False).numpy())


@pytest.mark.slow
@pytest.mark.isolated
def test_cifar_alexnet_bnn_runs_binary_in_lce_and_equals_keraswithout_sign_ties(tmp_path):
    tf.keras.utils.set_random_seed(0)
    model = models.build_model("alexnet", precision="bnn", input_bits=2)
    without_sign_ties(model, 64 / 255)
    exported = export.to_lce(model, tmp_path / "alexnet_bnn.tflite")
    assert len(exported.binary_layers) == 7 and exported.operators["LceBconv2d"] == 7  # 4 convs, 3 dense
    assert list(exported.float_layers) == [model.layers[2].name]  # the first conv sees real pixels
    with np.load(require_data("cifar10")) as data:
        x = data["x_test"][:20]  # uint8 images, as a deployed model may get them
    logits = export.TFLiteModel(exported.path)(x)
    keras_logits = model(x, training=False).numpy()
    assert np.array_equal(logits.argmax(1), keras_logits.argmax(1))
    np.testing.assert_allclose(logits, keras_logits, rtol=1e-5, atol=1e-2)


def test_dense_as_conv_computes_the_dense_layer():
    dense = lq.layers.QuantDense(7, input_quantizer="ste_sign", kernel_quantizer="ste_sign", use_bias=True,
                                 bias_initializer="random_normal")
    x = tf.random.normal((5, 12))
    expected = dense(x).numpy()
    conv = DenseAsConv.from_dense(dense)
    np.testing.assert_array_equal(conv(x).numpy(), expected)
    again = DenseAsConv.from_config(conv.get_config())
    again.build((None, 12))
    again.set_weights(conv.get_weights())
    np.testing.assert_array_equal(again(x).numpy(), expected)


def test_inside_the_flatbuffers_bad_pixels_give_nan_logits(tmp_path):
    model = models.build_model("fcn2", precision="bnn", input_bits=2, width=64, depth=2)
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype(np.float32)
    x[1] *= 255
    x[2, 0, 0, 0] = -0.5
    for convert in (export.to_tflite, export.to_lce):
        runner = export.TFLiteModel(convert(model, tmp_path / f"{convert.__name__}.tflite").path)
        raw = runner._lce.predict(x) if runner._lce is not None else _raw_tflite(runner, x)
        assert np.isfinite(raw[[0, 3]]).all() and np.isnan(raw[[1, 2]]).all(), convert.__name__
        with pytest.raises(ValueError, match=r"Float pixels must lie in \[0, 1\]"):
            runner(x)


def _raw_tflite(runner, x):
    interpreter = runner._interpreter
    interpreter.resize_tensor_input(runner._input["index"], x.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(runner._input["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(runner._output["index"])


@pytest.mark.parametrize("convert", [export.to_tflite, export.to_lce])
def test_a_uint8_flatbuffer_takes_uint8_and_refuses_floats(tmp_path, convert):
    model = models.build_model("fcn2", precision="bnn", input_bits=2, width=64, depth=2)
    without_sign_ties(model, 64 / 255)
    runner = export.TFLiteModel(convert(model, tmp_path / "m.tflite", input_dtype="uint8").path)
    x = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 1)).astype(np.uint8)
    assert runner.input_dtype == np.uint8
    np.testing.assert_allclose(runner(x), model(x, training=False).numpy(), atol=1e-4)
    with pytest.raises(ValueError, match=r"takes uint8 images 0\.\.255.*np\.round\(x \* 255\)\.astype\(np\.uint8\)"):
        runner(x / 255.0)
    with pytest.raises(ValueError, match="Pixels must be uint8 0..255 or float"):
        export.TFLiteModel(export.to_tflite(model, tmp_path / "f.tflite").path)(x.astype(np.int32))


def test_a_layer_lce_cannot_binarize_is_named_and_nothing_is_written(tmp_path):
    """DoReFa's 1-bit activations are {0, 1}, not ±1: LCE keeps the layer float, and to_lce says so."""
    inputs = tf.keras.Input((28, 28, 1))
    x = tf.keras.layers.Flatten()(inputs)
    x = lq.layers.QuantDense(32, kernel_quantizer="ste_sign")(x)
    x = lq.layers.QuantDense(10, input_quantizer=lq.quantizers.DoReFa(k_bit=1, mode="activations"),
                             kernel_quantizer="ste_sign", name="dorefa_dense")(x)
    with pytest.raises(export.ExportError, match="dorefa_dense.*did not become LceBconv2d"):
        export.to_lce(tf.keras.Model(inputs, x), tmp_path / "m.tflite")
    assert not (tmp_path / "m.tflite").exists()


def test_missing_lce_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "larq_compute_engine", None)
    model = models.build_model("fcn2", precision="bnn", width=16, depth=1)
    with pytest.raises(export.ExportError, match=r"not installed.*pip install larq-compute-engine==0\.16\.0"):
        export.to_lce(model, tmp_path / "m.tflite")


def test_a_missing_flatbuffer_says_how_to_make_one(tmp_path):
    with pytest.raises(FileNotFoundError, match="scripts/export.py"):
        export.TFLiteModel(tmp_path / "none.tflite")


@pytest.mark.slow
@pytest.mark.exclusive
def test_export_script_writes_beside_the_saved_model_and_records_it(tmp_path):
    model = models.build_model("fcn2", precision="bnn", input_bits=2, width=64, depth=2)
    without_sign_ties(model, 64 / 255)
    run = tmp_path / "run"
    export.save(model, run / "saved_model")
    RunRecord(dataset="mnist", arch="fcn2", precision="bnn", input_bits=2, adv_train=False, clean_accuracy=0.5,
              test_examples=10, epochs=1, sweep={"eps": [0.0], "accuracy": [0.5]}).write(run / "results.json")
    done = subprocess.run([sys.executable, str(SCRIPT), f"--model={run}", "--format=lce"], capture_output=True,
                          text=True, check=True)
    assert "binary kernels (LceBconv2d): quant_dense_1, quant_dense_2" in done.stdout
    results = json.loads((run / "results.json").read_text())
    assert results["clean_accuracy"] == 0.5
    assert results["exports"]["model_lce"]["bytes"] == (run / "model_lce.tflite").stat().st_size
    x = np.random.default_rng(0).random((4, 28, 28, 1)).astype(np.float32)
    np.testing.assert_allclose(export.TFLiteModel(run / "model_lce.tflite")(x), model(x, training=False).numpy(),
                               atol=1e-4)
    failed = subprocess.run([sys.executable, str(SCRIPT), f"--model={tmp_path / 'nowhere'}"], capture_output=True,
                            text=True)
    assert failed.returncode != 0 and "error: --model: no SavedModel at" in failed.stderr
