"""Shared fixtures and hooks. In every process that runs tests, two logical CPUs are configured before
TensorFlow initializes, for MirroredStrategy; pytest-xdist's controller, which runs none, loads TensorFlow
only for --collect-only."""

import contextlib
import ctypes
import fcntl
import gc
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/helpers.py

from helpers import load_mnist  # noqa: E402

ISOLATED_CHILD = "TFDISC_TEST_ISOLATED"
_libc = ctypes.CDLL("libc.so.6")


def pytest_configure(config):
    if (getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput")
            and not config.option.collectonly):
        return  # the xdist controller: TensorFlow would cost it 0.6 GiB for nothing (it collects only for --co)
    import tfdisc  # noqa: F401  (selects legacy Keras before TensorFlow loads it)
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)


@contextlib.contextmanager
def _one_heavy_test_at_a_time():
    """Under pytest-xdist, hold a lock shared by the session's workers: one memory-heavy test (an isolated child,
    or an `exclusive` test that starts big processes of its own) runs at a time."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if not run:
        yield
        return
    with open(os.path.join(tempfile.gettempdir(), f"tfdisc-isolated-{run}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """Run a test marked `exclusive` while no other memory-heavy test runs."""
    if item.get_closest_marker("exclusive") is None or os.environ.get(ISOLATED_CHILD):
        return (yield)
    with _one_heavy_test_at_a_time():
        return (yield)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run a test marked `isolated` in a child pytest: the memory of its models goes when the child ends."""
    if pyfuncitem.get_closest_marker("isolated") is None or os.environ.get(ISOLATED_CHILD):
        return None
    with _one_heavy_test_at_a_time():
        child = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
                                pyfuncitem.nodeid], cwd=pyfuncitem.config.rootpath,
                               env={**os.environ, ISOLATED_CHILD: "1"}, capture_output=True, text=True)
    if child.returncode != 0 or "1 passed" not in child.stdout:
        pytest.fail(f"{pyfuncitem.nodeid} failed in its own process:\n{child.stdout[-4000:]}\n{child.stderr[-2000:]}",
                    pytrace=False)
    return True


def _custom_gradients():
    """TensorFlow's registry of graph-mode `tf.custom_gradient` traces, which it never empties: Keras's
    gradient all-reduce and Larq's `ste_sign` add one per trace, and each keeps its whole traced graph alive
    (7 MB for every small model trained)."""
    from tensorflow.python.framework import ops

    return ops.gradient_registry._registry


@pytest.fixture(autouse=True)
def fresh_session():
    import tensorflow as tf

    tf.keras.backend.clear_session()
    tf.keras.utils.set_random_seed(0)
    registered_before = set(_custom_gradients())
    yield
    tf.keras.backend.clear_session()
    for name in set(_custom_gradients()) - registered_before:  # the test's own traces; fixtures keep theirs
        del _custom_gradients()[name]
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

    import tensorflow as tf

    x, y, _, _ = mnist_small
    tf.keras.utils.set_random_seed(0)
    model = models.build_model("fcn2", width=64, depth=2)
    model.compile(tf.keras.optimizers.Adam(1e-3),
                  tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, batch_size=64, epochs=3, verbose=0)
    return model
