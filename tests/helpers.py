"""Helpers the tests share: the real data's location and loading, accuracy, and BNNs without sign ties."""

import os
import re
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


def tiny_mnist_run(tmp_path, train_examples, name="m"):
    """Train a 1-epoch FCN2 (2-bit input) run on `train_examples` MNIST images, tested on 100; its directory."""
    from tfdisc import experiment, runs

    config = runs.RunConfig(dataset="mnist", arch="fcn2", input_bits=2, epochs=1, train_examples=train_examples,
                            test_examples=100, batch_size=100, jit_compile=False, sweep_every=0,
                            data_dir=str(require_data().parent), output_dir=str(tmp_path / "runs"), run_name=name)
    experiment.run(config)
    return tmp_path / "runs" / name


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model(x, training=False), axis=-1) == y))


def without_sign_ties(model, first_step, seed=0):
    """Put every BatchNorm's zero crossing half a lattice step away from the sums that feed it.

    The sums before a BatchNorm lie on a lattice (integers after ±1 products; multiples of the
    pixel level `first_step` after the first layer), so no value that gets binarized then lies within
    rounding error of 0, and Keras and LCE must agree exactly on every sign.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    step = first_step
    for layer in model.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            beta, _, _ = layer.get_weights()
            mean = (rng.integers(-3, 4, beta.shape) + 0.5) * step
            layer.set_weights([np.zeros_like(beta), mean.astype(np.float32),
                               rng.uniform(0.5, 2.0, beta.shape).astype(np.float32)])
            step = 1.0


ROOT = Path(__file__).resolve().parents[1]
DOC_PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p.name != "report_notes.md")]
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)


def code_blocks(page, language):
    """The bodies of a Markdown page's code blocks in `language`."""
    return [body for lang, body in _BLOCK.findall(Path(page).read_text()) if lang == language]
