"""Deployment: a SavedModel, a float TFLite flatbuffer or a Larq Compute Engine (LCE) one, and a runner.

Every format takes `pixels` and returns `logits`, under those names: float32 pixels in [0, 1], or
uint8 images 0..255 with `input_dtype="uint8"`. The input discretization stays inside the model.
A flatbuffer cannot raise on bad input (graph assertions do not survive conversion): inside it, an
example with NaN or out-of-range float pixels comes out as NaN logits, and `TFLiteModel` checks the
input before the interpreter runs, so in Python bad input fails with the Keras model's clear errors.

`to_lce` runs every binarized layer (±1 inputs and ±1 kernels) on LCE's binary convolution kernels:
a binarized dense layer is first rewritten as the equal 1×1 convolution (`layers.DenseAsConv`), and
the flatbuffer's operators are checked against the layers, never assumed.
"""

import collections
import contextlib
import logging
import os
import tempfile
import warnings

import larq as lq
import numpy as np
import tensorflow as tf
from tensorflow.lite.python import schema_py_generated as schema

from tfdisc import checks, files, models
from tfdisc.layers import DenseAsConv
from tfdisc.types import Path

from tfdisc.models import INPUT_DTYPES, INPUT_NAME, OUTPUT_NAME  # noqa: F401  (names of every exported format)

SAVED_MODEL_ENTRIES = ("saved_model.pb", "keras_metadata.pb", "fingerprint.pb", "variables", "assets")
LCE_INSTALL = "pip install larq-compute-engine==0.16.0 (or: pip install 'tfdisc[deploy]')"
BINARY_CONV_OP = "LceBconv2d"

Exported = collections.namedtuple("Exported", "path bytes operators binary_layers float_layers")
Exported.__doc__ = """A written flatbuffer: its size, operator counts, and which quantized layers run binary or float.

`binary_layers`: names of the layers that run on LCE's binary kernels (empty for float TFLite).
`float_layers`: {name: why} for the Larq layers with ±1 kernels that stay float in the flatbuffer.
"""


class ExportError(ValueError):
    """A model cannot be exported as asked; the message names the layer or the missing piece."""


def save(model: tf.keras.Model, path: Path, input_dtype: str = "float32", *, overwrite: bool = False) -> None:
    """Save `model` as a Keras SavedModel at `path` whose serving signature maps `pixels` to `logits`.

    Only the SavedModel's own entries (`SAVED_MODEL_ENTRIES`) are written; other files in `path` are left alone.
    A folder that holds nothing else is replaced whole, in one rename; beside other files, saved_model.pb is
    removed first and written last, so no reader ever loads a mix of two models. A `path` that is a non-empty
    folder holding no SavedModel is refused unless `overwrite` is True; a file or a symbolic link is refused.
    """
    path = os.path.abspath(str(path))
    links = [p for p in [path] + [os.path.join(path, e) for e in SAVED_MODEL_ENTRIES] if os.path.islink(p)]
    if links:
        raise ValueError(f"{links[0]} is a symbolic link; save to a real folder (tfdisc never writes through links).")
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{path} is a file; give a folder for the SavedModel.")
    others = [e for e in os.listdir(path) if e not in SAVED_MODEL_ENTRIES] if os.path.isdir(path) else []
    if others and not overwrite and not os.path.isfile(os.path.join(path, "saved_model.pb")):
        raise ValueError(f"{path} holds other files ({', '.join(sorted(others)[:3])}) and no SavedModel; give an empty "
                         "or new folder, or overwrite=True to write the SavedModel beside them (they are kept).")
    signatures = {"serving_default": models.serving_function(model, input_dtype)}
    if not others:
        with files.atomic_directory(path) as tmp:
            model.save(tmp, signatures=signatures)
        return
    with tempfile.TemporaryDirectory(dir=os.path.dirname(path), prefix=f".tmp-{os.path.basename(path)}-") as tmp:
        model.save(tmp, signatures=signatures)
        files.replace_entries(tmp, path, SAVED_MODEL_ENTRIES, last="saved_model.pb")


def binarized_layers(model: tf.keras.Model) -> tuple[list, dict]:
    """(names of layers with ±1 inputs and ±1 kernels, {name: why} of layers with ±1 kernels on real inputs)."""
    binary, real_inputs = [], {}
    for layer in _quantized_layers(model):
        if _is_binary(layer.kernel_quantizer):
            if _is_binary(layer.input_quantizer):
                binary.append(layer.name)
            else:
                real_inputs[layer.name] = "±1 kernel on real-valued inputs: LCE's binary kernels need ±1 inputs"
    return binary, real_inputs


def lce_form(model: tf.keras.Model) -> tf.keras.Model:
    """`model` with every binarized dense layer as the equal 1×1 convolution (`DenseAsConv`); other layers shared."""
    binary = set(binarized_layers(model)[0])

    def rewrite(layer):
        if layer.name in binary and isinstance(layer, lq.layers.QuantDense):
            return DenseAsConv.from_dense(layer)
        return layer

    return tf.keras.models.clone_model(model, clone_function=rewrite)


def to_tflite(model: tf.keras.Model, path: Path, *, input_dtype: str = "float32") -> Exported:
    """Write `model` as a float TFLite flatbuffer at `path` (atomically); return its `Exported`."""
    with tempfile.TemporaryDirectory() as saved_model:
        save(model, os.path.join(saved_model, "model"), input_dtype)
        flatbuffer = tf.lite.TFLiteConverter.from_saved_model(os.path.join(saved_model, "model")).convert()
    binary, real_inputs = binarized_layers(model)
    return _write(path, flatbuffer, [], {**dict.fromkeys(binary, "float TFLite has no binary kernels"), **real_inputs})


def to_lce(model: tf.keras.Model, path: Path, *, input_dtype: str = "float32") -> Exported:
    """Write `model` as an LCE flatbuffer at `path` (atomically), every binarized layer on binary kernels.

    Raises `ExportError` naming the layers that did not become LCE binary convolutions, and says
    how to install LCE if it is missing. Returns the flatbuffer's `Exported`.
    """
    lce = _lce()
    binary, real_inputs = binarized_layers(model)
    with tempfile.TemporaryDirectory() as saved_model, _without_compile_notice():
        save(lce_form(model), os.path.join(saved_model, "model"), input_dtype)
        flatbuffer = lce.convert_saved_model(os.path.join(saved_model, "model"))
    missing = _unmatched_binary_layers(model, binary, flatbuffer)
    if missing:
        raise ExportError(f"LCE left layer(s) {', '.join(missing)} in float: they have ±1 inputs and kernels but "
                          f"did not become {BINARY_CONV_OP} operators. Nothing was written to {path}.")
    return _write(path, flatbuffer, binary, real_inputs)


FORMATS = ("tflite", "lce")


def flatbuffer_path(saved_model: str, fmt: str, input_dtype: str = "float32") -> str:
    """Where a flatbuffer of the SavedModel folder `saved_model` goes: beside it, as `model.tflite` or
    `model_lce.tflite` (`_uint8` added for uint8 input)."""
    checks.choice("format", fmt, FORMATS)
    name = {"tflite": "model", "lce": "model_lce"}[fmt] + ("_uint8" if input_dtype == "uint8" else "")
    return os.path.join(os.path.dirname(os.path.abspath(saved_model)), name + ".tflite")


def export_run(model_path: str, fmt: str = "lce", input_dtype: str = "float32", *, trust: bool = False) -> Exported:
    """Convert a run directory's (or a SavedModel's) model to a flatbuffer beside its SavedModel, and record it
    under "exports" in the run's results.json. `trust` as in `tfdisc.models.load`."""
    from tfdisc.reporting.records import read_run  # records sit above export

    model = models.load(model_path, "--model", trust=trust)
    run_dir = model_path if os.path.isdir(os.path.join(model_path, "saved_model")) else None
    saved_model = os.path.join(run_dir, "saved_model") if run_dir else model_path
    target = flatbuffer_path(saved_model, fmt, input_dtype)
    files.check_writable_file(target, "the flatbuffer")  # before the conversion, not after it
    record = read_run(run_dir) if run_dir and os.path.isfile(os.path.join(run_dir, "results.json")) else None
    exported = (to_lce if fmt == "lce" else to_tflite)(model, target, input_dtype=input_dtype)
    if record is not None:
        entry = {"path": os.path.basename(exported.path), "bytes": exported.bytes, "input_dtype": input_dtype,
                 "binary_layers": exported.binary_layers, "float_layers": exported.float_layers}
        record.exports[os.path.splitext(entry["path"])[0]] = entry
        record.write(os.path.join(run_dir, "results.json"))
    return exported


def operators(flatbuffer: bytes) -> collections.Counter:
    """Counter of the operator names (builtin or custom) in a flatbuffer's main graph."""
    return collections.Counter(name for name, _ in _named_operators(_parse(flatbuffer)))


def binary_weight_bytes(flatbuffer: bytes) -> int:
    """Bytes of the constants (bit-packed kernels, fused scales) of a flatbuffer's LCE binary convolutions."""
    model = _parse(flatbuffer)
    tensors = model.subgraphs[0].tensors
    buffers = {tensors[i].buffer for name, op in _named_operators(model) if name == BINARY_CONV_OP
               for i in op.inputs[1:] if i >= 0}
    return sum(len(model.buffers[b].data) for b in buffers if model.buffers[b].data is not None)


def signature(flatbuffer: bytes) -> dict:
    """{"inputs": names, "outputs": names} of a flatbuffer's serving signature."""
    (serving,) = _parse(flatbuffer).signatureDefs
    return {"inputs": [t.name.decode() for t in serving.inputs], "outputs": [t.name.decode() for t in serving.outputs]}


class TFLiteModel:
    """Run a TFLite or LCE flatbuffer on a batch of images; returns logits as numpy.

    Checks the input as the Keras model does: shape, dtype (float pixels in [0, 1] or uint8 for a
    float flatbuffer; uint8 only for one exported with `input_dtype="uint8"`), NaN and range.
    LCE flatbuffers run in LCE's interpreter (the plain TFLite one lacks its operators), with its
    indirect binary GEMM and XNNPACK for the float layers.
    """

    def __init__(self, path, num_threads=1):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"No flatbuffer at {path}; write one with scripts/export.py.")
        with open(path, "rb") as f:
            flatbuffer = f.read()
        self.path = str(path)
        try:
            self.operators = operators(flatbuffer)
        except ExportError as error:
            raise ExportError(f"{path}: {error}") from None
        if any(name.startswith("Lce") for name in self.operators):
            # LCE's fastest kernels off ARM: indirect BGEMM for its binary convolutions (6x faster than its default
            # for CIFAR AlexNet-BNN here, same outputs) and XNNPACK for the float layers; both off by default.
            self._lce = _lce().testing.Interpreter(flatbuffer, num_threads=num_threads, use_indirect_bgemm=True,
                                                   use_xnnpack=True)
            self.input_dtype = np.dtype(self._lce.input_types[0])
            self.input_shape = tuple(self._lce.input_shapes[0][1:])
            self.output_shape = tuple(self._lce.output_shapes[0][1:])
        else:
            self._lce = None
            with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice; LiteRT is not a dependency
                warnings.simplefilter("ignore", UserWarning)
                self._interpreter = tf.lite.Interpreter(model_content=flatbuffer, num_threads=num_threads)
            self._input = self._interpreter.get_input_details()[0]
            self._output = self._interpreter.get_output_details()[0]
            self.input_dtype = np.dtype(self._input["dtype"])
            self.input_shape = tuple(None if d < 0 else int(d) for d in self._input["shape_signature"][1:])
            self.output_shape = tuple(int(d) for d in self._output["shape"][1:])

    def __call__(self, x):
        x = checks.image_shape(np.asarray(x), self.input_shape)
        if self.input_dtype == np.uint8:
            if x.dtype != np.uint8:
                raise checks.InvalidInputError(
                    f"{self.path} takes uint8 images 0..255 (it was exported with input_dtype='uint8'); got dtype "
                    f"{x.dtype}. Pass np.round(x * 255).astype(np.uint8), or export with input_dtype='float32'.")
        else:
            x = np.asarray(checks.pixels(x), dtype=np.float32)
        if len(x) == 0:  # LCE's interpreter fails on an empty batch; the answer is known
            return np.zeros((0, *self.output_shape), np.float32)
        if self._lce is not None:
            return self._lce.predict(x)
        self._interpreter.resize_tensor_input(self._input["index"], x.shape)
        self._interpreter.allocate_tensors()
        self._interpreter.set_tensor(self._input["index"], x)
        self._interpreter.invoke()
        return self._interpreter.get_tensor(self._output["index"])


class _CompileNotice(logging.Filter):
    """Keras's "Compiled the loaded model, but the compiled metrics have yet to be built", which LCE's converter
    triggers when it reloads the SavedModel: true and irrelevant to a flatbuffer."""

    def filter(self, record):
        return "Compiled the loaded model" not in record.getMessage()


@contextlib.contextmanager
def _without_compile_notice():
    notice, logger = _CompileNotice(), logging.getLogger("tensorflow")
    logger.addFilter(notice)
    try:
        yield
    finally:
        logger.removeFilter(notice)


def _lce():
    try:
        import larq_compute_engine
    except ImportError as error:
        raise ExportError(f"Larq Compute Engine is not installed ({error}); {LCE_INSTALL}.") from None
    return larq_compute_engine


def _parse(flatbuffer):
    try:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(flatbuffer, 0))
        model.subgraphs[0].operators  # noqa: B018  (a flatbuffer with no graph is no model)
        return model
    except Exception:  # flatbuffers raises struct.error, IndexError, TypeError... on bytes that are not a model
        raise ExportError(f"These {len(flatbuffer)} bytes are not a TFLite flatbuffer (an empty, truncated or other "
                          "file); export the model again with scripts/export.py.") from None


def _named_operators(model):
    """(name, operator) for each operator of the main graph of a parsed flatbuffer."""
    builtin = {code: name for name, code in vars(schema.BuiltinOperator).items() if not name.startswith("_")}
    for op in model.subgraphs[0].operators:
        code = model.operatorCodes[op.opcodeIndex]
        yield (code.customCode.decode() if code.customCode
               else builtin[max(code.builtinCode, code.deprecatedBuiltinCode)]), op


def _quantized_layers(model):
    return [layer for layer in model.submodules if isinstance(layer, lq.layers_base.QuantizerBase)]


def _is_binary(quantizer):
    return getattr(quantizer, "precision", None) == 1


def _unmatched_binary_layers(model, binary, flatbuffer):
    """Names of binarized layers without an LCE binary convolution of their kernel's shape in `flatbuffer`."""
    parsed = _parse(flatbuffer)
    tensors = parsed.subgraphs[0].tensors
    available = collections.Counter(tuple(tensors[op.inputs[1]].shape[:3])  # filters: (out, height, width, in/32)
                                    for name, op in _named_operators(parsed) if name == BINARY_CONV_OP)
    missing = []
    for layer in (layer for layer in _quantized_layers(model) if layer.name in binary):
        kernel_shape = tuple(layer.kernel.shape)
        key = (kernel_shape[-1], *(kernel_shape[:2] if len(kernel_shape) == 4 else (1, 1)))
        if available[key]:
            available[key] -= 1
        else:
            missing.append(layer.name)
    return missing


def _write(path, flatbuffer, binary, float_layers):
    with files.atomic_write(str(path), "wb") as f:
        f.write(flatbuffer)
    return Exported(str(path), len(flatbuffer), dict(operators(flatbuffer)), list(binary), dict(float_layers))
