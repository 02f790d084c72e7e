#!/usr/bin/env bash
# Set up a virtual environment with CPU torch and every dependency: bash scripts/setup_dev.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements-dev.txt
