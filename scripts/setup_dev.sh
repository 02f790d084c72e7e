#!/usr/bin/env bash
# Set up a virtual environment with CPU torch and every dependency: bash scripts/setup_dev.sh
# The versions come from constraints.txt (what the tests last passed with); scripts/refresh_pins.sh renews it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -r requirements-dev.txt -c constraints.txt
