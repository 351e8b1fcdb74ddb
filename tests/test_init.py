"""Importing tfdisc selects legacy Keras, or says exactly what to do when it cannot."""

import os
import subprocess
import sys

import pytest


def _run(code, **env):
    environment = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    environment.update(env, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=300)


def test_import_selects_legacy_keras():
    result = _run("import tfdisc, tensorflow as tf; print(tf.keras.Model.__module__)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("tf_keras")


@pytest.mark.parametrize("code, env", [
    ("import tensorflow, tfdisc", {}),
    ("import tfdisc", {"TF_USE_LEGACY_KERAS": "0"}),
])
def test_keras_3_gives_an_import_error_that_says_what_to_do(code, env):
    result = _run(code, **env)
    assert result.returncode != 0
    assert "ImportError" in result.stderr and "Set TF_USE_LEGACY_KERAS=1" in result.stderr
