#!/usr/bin/env bash
# Makes .venv (Debian's /usr/bin/python3 with its system packages visible) and
# installs the PyPI packages pinned in requirements/python.txt into it, then
# those of requirements/python-no-deps.txt without their dependencies (why: there).
# Idempotent: does nothing when every pin is already installed.
# Usage: scripts/install-python-deps.sh [venv-dir]   (default: .venv at the root)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
requirements=requirements/python.txt
no_deps=requirements/python-no-deps.txt

if [ ! -x "$venv/bin/python" ]; then
  echo "install-python-deps: creating $venv"
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
# Already satisfied? (pip freeze lists exactly name==version per installed package)
missing=$(grep -hE '^[A-Za-z0-9_.-]+==' "$requirements" "$no_deps" | while read -r pin; do
  name=${pin%%==*}
  "$venv/bin/python" - "$name" "${pin#*==}" <<'PY' || echo "$pin"
import sys
from importlib.metadata import version, PackageNotFoundError
try:
    sys.exit(0 if version(sys.argv[1]) == sys.argv[2] else 1)
except PackageNotFoundError:
    sys.exit(1)
PY
done)
if [ -z "$missing" ]; then
  echo "install-python-deps: all pins of $requirements and $no_deps present in $venv"
  exit 0
fi
echo "install-python-deps: installing" $missing
"$venv/bin/python" -m pip install --disable-pip-version-check -q -r "$requirements"
# BOARD: the board PYNQ's setup tools fetch overlays for (finn-examples' build);
# one with none, so that nothing is downloaded (requirements/python-no-deps.txt).
BOARD=pynq-emu "$venv/bin/python" -m pip install --disable-pip-version-check -q --no-deps -r "$no_deps"
