#!/usr/bin/env bash
# Does requirements.lock reproduce? Builds two fresh venvs with the README's install command and
# compares every installed version (pip freeze) against each other and against the lock.
# Prints the package count and any difference; exit 1 when they differ.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for n in 1 2; do
    python3 -m venv "$work/venv$n"
    "$work/venv$n/bin/pip" install -q --no-cache-dir -c requirements.lock -e '.[test]'
    "$work/venv$n/bin/pip" freeze --exclude-editable | sort > "$work/freeze$n.txt"
    echo "venv$n: $(wc -l < "$work/freeze$n.txt") packages, torch $("$work/venv$n/bin/python" -c 'import torch; print(torch.__version__)')"
done
grep -v '^#' requirements.lock | sort > "$work/lock.txt"
status=0
if diff "$work/freeze1.txt" "$work/freeze2.txt"; then echo "venv1 == venv2: identical versions"; else status=1; fi
if diff "$work/lock.txt" "$work/freeze1.txt"; then echo "venv1 == requirements.lock"; else status=1; fi
exit $status
