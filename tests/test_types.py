"""tfdisc.types and the typed public API: every public function and method of the library annotates its
parameters and its return (methods that override Keras's or Larq's own keep their signatures)."""

import importlib
import inspect
import pkgutil

import tfdisc
from tfdisc import types

PASS_THROUGH = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


def _public_functions():
    for info in pkgutil.walk_packages(tfdisc.__path__, "tfdisc."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if name.startswith("_") or getattr(value, "__module__", None) != module.__name__:
                continue
            if inspect.isfunction(value):
                yield f"{module.__name__}.{name}", value
            elif inspect.isclass(value):
                for method_name, method in vars(value).items():
                    method = getattr(method, "fget", getattr(method, "__func__", method))
                    overrides = any(method_name in vars(base) for base in value.__mro__[1:]
                                    if not base.__module__.startswith("tfdisc"))
                    if inspect.isfunction(method) and not method_name.startswith("_") and not overrides:
                        yield f"{module.__name__}.{name}.{method_name}", method


def test_every_public_function_is_annotated():
    missing = []
    functions = dict(_public_functions())
    for name, function in functions.items():
        signature = inspect.signature(function)
        unannotated = [p.name for p in signature.parameters.values() if p.name not in ("self", "cls")
                       and p.kind not in PASS_THROUGH and p.annotation is inspect.Parameter.empty]
        no_return = signature.return_annotation is inspect.Signature.empty and function.__name__ != "__init__"
        if unannotated or no_return:
            missing.append(f"{name}({', '.join(unannotated)}){' no return' if no_return else ''}")
    assert len(functions) > 200 and not missing, missing


def test_the_aliases_accept_what_the_library_takes():
    import numpy as np
    import tensorflow as tf

    assert isinstance(np.zeros(2), types.TensorLike.__args__) and isinstance(tf.zeros(2), types.TensorLike.__args__)
    assert isinstance(tf.data.Dataset.range(1), types.Data.__args__) and isinstance((1, 2), types.Data.__args__)
