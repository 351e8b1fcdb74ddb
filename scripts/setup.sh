#!/usr/bin/env bash
# Create a virtual environment with tfdisc, its test tools, Larq Compute Engine, and CleverHans v4 (installed without its
# dependencies, which pin an old TensorFlow; its tf2 attacks work with TF 2.21).
#   PYTHON=python3.12 VENV=.venv312 bash scripts/setup.sh    # another supported Python (3.10-3.12)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q -e ".[test,deploy]"
"$VENV/bin/pip" install -q --no-deps cleverhans==4.0.0
