"""What a SavedModel would do if loaded: scanned before anything in it is deserialized or run.

Loading a Keras SavedModel can run code from the file: a `Lambda` layer's Python is unmarshalled and
called while the model is rebuilt, and a graph can hold ops that read or write files when it runs.
`untrusted_parts(path)` lists both kinds without loading anything:

- every Keras object the metadata (`keras_metadata.pb`) names whose class is not one of Keras's, Larq's or
  tfdisc's own serializable classes (a `Lambda` above all: its config is code);
- every op of TensorFlow's own deny list for untrusted SavedModels (the list `saved_model_cli scan` checks:
  `_OP_DENYLIST` in `tensorflow/python/tools/saved_model_cli.py`), in the graphs and their functions.

`tfdisc.models.load` refuses a model with any of these unless the caller trusts it (`trust=True`).
"""

import ast
import functools
import importlib.util
import inspect
import json
import os

import larq as lq
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import meta_graph
from tf_keras.protobuf import saved_metadata_pb2

CODE_LAYERS = ("Lambda",)  # Keras layers whose config is code
_KERAS_MODULES = (tf.keras.layers, tf.keras.initializers, tf.keras.regularizers, tf.keras.constraints,
                  tf.keras.metrics, tf.keras.losses, tf.keras.optimizers, tf.keras.mixed_precision)
_LARQ_MODULES = (lq.layers, lq.quantizers, lq.constraints)
# Classes Keras deserializes by name that no public module exports: functional models and their wrapped TF ops
# (which rebuild a TensorFlow API function by its name, so they can add only ops, and ops are scanned).
_KERAS_INTERNAL = ("Functional", "Model", "Sequential", "InputLayer", "TFOpLambda", "SlicingOpLambda")


class UntrustedModelError(ValueError):
    """A model holds layers or ops that could run code; the message names them and the override."""


@functools.cache
def allowed_classes() -> frozenset:
    """The class names a trusted-by-default model may use: Keras's, Larq's and tfdisc's own serializable classes."""
    names = set(_KERAS_INTERNAL)
    for module in _KERAS_MODULES + _LARQ_MODULES:
        names |= {name for name, obj in vars(module).items() if inspect.isclass(obj)}
    for name, obj in tf.keras.utils.get_custom_objects().items():
        if getattr(obj, "__module__", "").startswith(("larq.", "tfdisc.", "tf_keras.")):
            names |= {name, getattr(obj, "__name__", name)}  # registered as "tfdisc>Classifier", also named plainly
    return frozenset(names - set(CODE_LAYERS))


@functools.cache
def denied_ops() -> frozenset:
    """TensorFlow's deny list of ops for untrusted SavedModels, read from saved_model_cli's source (importing that
    module would define its command-line flags in this process)."""
    spec = importlib.util.find_spec("tensorflow.python.tools.saved_model_cli")
    with open(spec.origin) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_OP_DENYLIST" for t in node.targets):
            call = node.value  # set([...])
            return frozenset(ast.literal_eval(call.args[0] if isinstance(call, ast.Call) else call))
    raise RuntimeError(f"{spec.origin} no longer defines _OP_DENYLIST; tfdisc cannot tell which ops are unsafe. "
                       "Pass trust=True (--trust_model) for models you trust, and report this.")


def _keras_objects(value):
    """Every serialized Keras object ({"class_name": ..., "config": ...}) inside a metadata value."""
    if isinstance(value, dict):
        if isinstance(value.get("class_name"), str) and "config" in value:
            yield value
        for item in value.values():
            yield from _keras_objects(item)
    elif isinstance(value, list):
        for item in value:
            yield from _keras_objects(item)


def _layer_classes(path):
    """{class name: [layer names]} of every Keras object the SavedModel's metadata names."""
    metadata_path = os.path.join(path, "keras_metadata.pb")
    found = {}
    if not os.path.isfile(metadata_path):
        return found
    metadata = saved_metadata_pb2.SavedMetadata()
    with open(metadata_path, "rb") as f:
        metadata.ParseFromString(f.read())
    for node in metadata.nodes:
        try:
            value = json.loads(node.metadata)
        except json.JSONDecodeError:
            found.setdefault("<unreadable metadata>", []).append(node.node_path)
            continue
        for obj in _keras_objects(value):
            name = obj["class_name"]
            layer = (obj.get("config") or {}).get("name") if isinstance(obj.get("config"), dict) else None
            names = found.setdefault(name, [])
            if (layer or node.node_path) not in names:  # a layer appears in its own node and in its model's
                names.append(layer or node.node_path)
    return found


def _graph_ops(path):
    """Every op type in the SavedModel's graphs and their function libraries."""
    saved_model = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as f:
        saved_model.ParseFromString(f.read())
    return {op for graph in saved_model.meta_graphs for op in meta_graph.ops_used_by_graph_def(graph.graph_def)}


def untrusted_parts(path: str) -> list[str]:
    """What in the SavedModel at `path` could run code when loaded or called, one description each; [] if nothing.

    # Arguments
        path: a SavedModel folder (with saved_model.pb, and keras_metadata.pb for a Keras model).

    # Raises
        ValueError: the files are not SavedModel protocol buffers (truncated or corrupt).
    """
    try:
        classes = _layer_classes(path)
        ops = _graph_ops(path)
    except Exception as error:  # protobuf's DecodeError and kin: no shared base class to name
        raise ValueError(f"{path} is not a readable SavedModel ({type(error).__name__}: {error}); it is truncated or "
                         "corrupt. Export it again.") from None
    allowed = allowed_classes()
    parts = [f"layer {', '.join(map(str, layers))} of class {name}" + (" (its config is Python code)"
                                                                       if name in CODE_LAYERS else "")
             for name, layers in sorted(classes.items()) if name not in allowed]
    parts += [f"op {op} (on TensorFlow's deny list for untrusted SavedModels)" for op in sorted(ops & denied_ops())]
    return parts


def check_trusted(path: str, what: str = "the model") -> None:
    """UntrustedModelError naming every untrusted part of the SavedModel at `path` (see `untrusted_parts`)."""
    parts = untrusted_parts(path)
    if parts:
        raise UntrustedModelError(
            f"{what}: {path} holds {'; '.join(parts)}, which could run code on this machine when loaded or called. "
            "tfdisc loads only Keras's, Larq's and tfdisc's own layers and safe ops by default; if you made this model "
            "or trust it, load it with trust=True (scripts: --trust_model).")
