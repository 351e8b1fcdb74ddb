"""Helpers the tests share: the real data's location and loading, and accuracy."""

import os
from pathlib import Path

import numpy as np
import pytest

DATA_DIR = Path(os.environ.get("TFDISC_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))


def require_data(name="mnist"):
    """The path of `<name>.npz`; the test skips (fails under CI=true, where the data must be there) if it is absent."""
    path = DATA_DIR / f"{name}.npz"
    if not path.exists():
        message = f"Real {name} not found at {path}; set TFDISC_DATA_DIR to the folder holding {name}.npz."
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


def load_mnist(n_train, n_test):
    """The first n_train / n_test real MNIST images as float32 in [0, 1], NHWC, with int64 labels."""
    with np.load(require_data(), allow_pickle=False) as d:
        to_float = lambda x: (x[..., None] / 255.0).astype("float32")  # noqa: E731
        return (to_float(d["x_train"][:n_train]), d["y_train"][:n_train].astype("int64"),
                to_float(d["x_test"][:n_test]), d["y_test"][:n_test].astype("int64"))


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model(x, training=False), axis=-1) == y))
