#!/usr/bin/env bash
# Renew constraints.txt: the newest releases that requirements-dev.txt allows, in a fresh venv; the pins are
# written only when the whole test suite passes on them. bash scripts/refresh_pins.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)/venv
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -r requirements-dev.txt
"$venv/bin/python" -m pytest -q -p no:cacheprovider
pins=$(mktemp)
{
  sed -n '1,3p' constraints.txt
  "$venv/bin/python" -m pip freeze --exclude-editable | sed 's/+cpu//'
} > "$pins"
mv "$pins" constraints.txt
echo "constraints.txt renewed from $venv; commit it with the test run's result."
