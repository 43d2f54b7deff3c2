"""Run each session environment's own tests inside that environment.

Some code only runs on a session's stack (e.g. ScGen needs scgen 2.1.0, which lives in
``.venvs/scgen`` and not in the core environment). An environment of environments/sessions.toml
with ``tests = [...]`` gets those paths run by its own Python, with ``TK_SESSION_TESTS=1`` so
``tests/session_*`` folders are collected (tests/conftest.py skips them otherwise). This also
checks tutorial_kit on the session's older stack. The environment is built first if needed;
``TK_PYTHON_<ENV>`` points at an interpreter you manage yourself instead. Tests that need a
package the session cannot have (e.g. pertpy, core only) are listed under ``deselect``.
"""

import os
import re
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = tomllib.loads((ROOT / "environments" / "sessions.toml").read_text())
WITH_TESTS = sorted(name for name, spec in MANIFEST["environments"].items() if spec.get("tests"))


def test_session_test_paths_exist():
    assert WITH_TESTS, "no environment in sessions.toml lists tests"
    for env in WITH_TESTS:
        for path in MANIFEST["environments"][env]["tests"]:
            assert (ROOT / path).exists(), f"sessions.toml [environments.{env}] tests: {path} does not exist"
        for node in MANIFEST["environments"][env].get("deselect", []):
            path, _, name = node.partition("::")
            assert path in MANIFEST["environments"][env]["tests"], f"deselect {node}: {path} is not in tests"
            assert f"def {name}(" in (ROOT / path).read_text(), f"deselect {node}: no test {name} in {path}"


@pytest.mark.slow
@pytest.mark.parametrize("env", WITH_TESTS)
def test_session_environment_tests_pass(env, env_python):
    paths = MANIFEST["environments"][env]["tests"]
    deselect = [arg for node in MANIFEST["environments"][env].get("deselect", []) for arg in ("--deselect", node)]
    python = env_python(env)
    environ = {**os.environ, "TK_SESSION_TESTS": "1", "PYTHONHASHSEED": "0"}
    proc = subprocess.run(
        [str(python), "-m", "pytest", "-o", "addopts=", "-p", "no:cacheprovider", "-q", *deselect, *paths],
        cwd=ROOT, env=environ, capture_output=True, text=True,
    )
    lines = proc.stdout.strip().splitlines()
    summary = lines[-1] if lines else "(no output)"
    print(f"[session tests] {env}: {summary}")
    assert proc.returncode == 0, f"tests of environment {env} failed:\n{proc.stdout[-8000:]}\n{proc.stderr[-2000:]}"
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) > 0, f"no test passed in environment {env}: {summary}"
