#!/usr/bin/env bash
# Refresh requirements.lock: install segbench (with its test extras) into a throw-away venv from
# pyproject.toml's ranges, unconstrained by the old lock, and record every resolved version.
# Run from the repository root with the Python the lock is for (3.11), then commit the file with
# the default run it was made for.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(mktemp -d)/venv
python3 -m venv "$venv"
"$venv/bin/pip" install -q -e '.[test]'
{
    echo "# pip constraints: the exact versions segbench's committed results were made with."
    echo "# Python $("$venv/bin/python" -c 'import platform; print(platform.python_version())'), $(uname -sm)."
    echo "# Used by the README's two commands (pip install -c requirements.lock ...)."
    echo "# Refresh: bash scripts/update-lock.sh (resolves pyproject.toml's ranges afresh)."
    "$venv/bin/pip" freeze --exclude-editable
} > requirements.lock.tmp
mv requirements.lock.tmp requirements.lock
rm -rf "$(dirname "$venv")"
echo "wrote requirements.lock ($(grep -vc '^#' requirements.lock) packages)"
