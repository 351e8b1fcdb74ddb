"""Shared fixtures. Two logical CPUs are configured before TensorFlow initializes, for MirroredStrategy."""

import os
from pathlib import Path

import numpy as np
import pytest

import tfdisc  # noqa: F401  (selects legacy Keras before TensorFlow loads it)
import tensorflow as tf

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

DATA_DIR = Path(os.environ.get("TFDISC_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(autouse=True)
def fresh_session():
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(0)
    yield


def load_mnist(n_train, n_test):
    path = DATA_DIR / "mnist.npz"
    if not path.exists():
        pytest.fail(f"Real MNIST not found at {path}; set TFDISC_DATA_DIR to the folder holding mnist.npz.")
    with np.load(path, allow_pickle=False) as d:
        to_float = lambda x: (x[..., None] / 255.0).astype("float32")  # noqa: E731
        return (to_float(d["x_train"][:n_train]), d["y_train"][:n_train].astype("int64"),
                to_float(d["x_test"][:n_test]), d["y_test"][:n_test].astype("int64"))


@pytest.fixture(scope="session")
def mnist_small():
    """4000 real MNIST training and 500 test images as float32 in [0, 1], NHWC."""
    return load_mnist(4000, 500)


@pytest.fixture(scope="session")
def trained_fcn(mnist_small):
    """A small full-precision FCN trained briefly on real MNIST (about 90% test accuracy)."""
    from tfdisc import models

    x, y, _, _ = mnist_small
    tf.keras.utils.set_random_seed(0)
    model = models.build_model("fcn2", width=64, depth=2)
    model.compile(tf.keras.optimizers.Adam(1e-3),
                  tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=3, verbose=0)
    return model


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model(x, training=False), axis=-1) == y))
