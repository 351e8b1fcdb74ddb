"""Shared fixtures. Two logical CPUs are configured before TensorFlow initializes, for MirroredStrategy."""

import ctypes
import gc
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/helpers.py

import tfdisc  # noqa: E402,F401  (selects legacy Keras before TensorFlow loads it)
import tensorflow as tf  # noqa: E402

from helpers import load_mnist  # noqa: E402

_libc = ctypes.CDLL("libc.so.6")
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

@pytest.fixture(autouse=True)
def fresh_session():
    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(0)
    yield
    tf.keras.backend.clear_session()
    gc.collect()  # models hold reference cycles (layers, traced functions); free their memory now
    _libc.malloc_trim(0)  # and hand it back to the system, so big models do not pile up across tests

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
