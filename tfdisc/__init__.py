"""tfdisc: discretization-based adversarial robustness for Keras and Larq.

Larq needs legacy Keras 2 (`tf_keras`), so importing tfdisc selects it by setting
`TF_USE_LEGACY_KERAS=1` before `tf.keras` is first used. TensorFlow's C++ log lines (CUDA probing
on CPU-only machines, oneDNN notices and the like) are silenced by default; set `TFDISC_QUIET=0`
before importing tfdisc to see them (or set `TF_CPP_MIN_LOG_LEVEL` yourself, which tfdisc respects).
"""

import contextlib
import os
import sys

_LEGACY_KERAS_HELP = (
    "tfdisc needs legacy Keras 2 (tf_keras), because Larq does not support Keras 3. "
    "Set TF_USE_LEGACY_KERAS=1 in the environment (or import tfdisc before tensorflow "
    "and before anything touches tf.keras), and `pip install tf-keras` matching your TensorFlow."
)


def _select_legacy_keras():
    if "tensorflow" in sys.modules and "TF_USE_LEGACY_KERAS" not in os.environ:
        raise ImportError(f"TensorFlow was imported before tfdisc, so it routes Keras to Keras 3. {_LEGACY_KERAS_HELP}")
    flag = os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    if flag.lower() not in ("1", "true"):
        raise ImportError(f"TF_USE_LEGACY_KERAS={flag!r} selects Keras 3. {_LEGACY_KERAS_HELP}")
    with _quiet_tensorflow_start():
        import tensorflow as tf

    if not tf.keras.Model.__module__.startswith("tf_keras"):
        raise ImportError(f"tf.keras is bound to Keras 3 ({tf.keras.Model.__module__}). {_LEGACY_KERAS_HELP}")


@contextlib.contextmanager
def _quiet_tensorflow_start():
    """Unless TFDISC_QUIET=0: TF_CPP_MIN_LOG_LEVEL=3 (unless set), and stderr closed while TensorFlow loads."""
    if os.environ.get("TFDISC_QUIET", "1") == "0" or "tensorflow" in sys.modules:
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


_select_legacy_keras()

from tfdisc import attacks, callbacks, checks, datasets, evaluation, export, files, layers, models, ops  # noqa: E402
from tfdisc import presets, training  # noqa: E402
from tfdisc.layers import InputDiscretization  # noqa: E402
from tfdisc.models import build_model  # noqa: E402
from tfdisc.training import AdversarialModel  # noqa: E402

__version__ = "0.1.0"
# Every public module, for `from tfdisc import *` and the API reference; the ones not imported above load when used.
__all__ = [
    "AdversarialModel",
    "InputDiscretization",
    "analysis",
    "attacks",
    "build_model",
    "callbacks",
    "certification",
    "checks",
    "cli",
    "cpu",
    "datasets",
    "deployed",
    "eps",
    "evaluation",
    "experiment",
    "export",
    "files",
    "layers",
    "models",
    "ops",
    "plotting",
    "presets",
    "progress",
    "recipes",
    "reporting",
    "runs",
    "scan",
    "steps",
    "training",
]
