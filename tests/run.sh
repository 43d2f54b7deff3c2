#!/usr/bin/env bash
# The project's test command (README.md): builds the core environment if needed, then runs pytest:
# unit tests and doctests with coverage, every notebook under nbval in its own environment and kernel,
# and the Jupyter Book build with a headless-Chromium check of a rendered page.
# Extra arguments go to pytest. Set TK_PYTHON to use an interpreter you manage yourself
# (e.g. TK_PYTHON=python inside an activated conda env `tk-core`).
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [ -z "${TK_PYTHON:-}" ]; then
  python3 environments/build.py core || exit 1
  TK_PYTHON="$root/.venvs/core/bin/python"
else
  export TK_PYTHON_CORE="$TK_PYTHON"  # notebooks of the core environment run there too
fi
# The mirror of small real files: ../shared/data beside the clone, unless set already.
if [ -z "${TUTORIAL_KIT_MIRROR:-}" ] && [ -d "$root/../shared/data" ]; then
  export TUTORIAL_KIT_MIRROR="$(cd "$root/../shared/data" && pwd)"
fi
"$TK_PYTHON" -m pytest "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "tests/run.sh: pytest collected no tests; that is a failure for this project." >&2
  exit 1
fi
exit "$rc"
