#!/usr/bin/env bash
# Create .venv with tfdisc, its test tools, and CleverHans v4 (installed without its dependencies,
# which pin an old TensorFlow; its tf2 attacks work with TF 2.21).
set -euo pipefail
cd "$(dirname "$0")/.."
python3.11 -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".[test]"
.venv/bin/pip install -q --no-deps cleverhans==4.0.0
