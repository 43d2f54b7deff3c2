"""Execute every notebook with nbval, in its own environment and Jupyter kernel, on the CI tier.

Each notebook runs once, in a fresh kernel of the environment named in environments/sessions.toml
(built first if needed). The plugin tests/plugins/nbval_outputs.py keeps the outputs of that run in
``test-output/executed/``, and tests/test_book.py renders the book from them, so CI executes every
notebook exactly once.

Time budgets are benchmarks, not pass/fail limits: this machine's run-to-run noise is 10-40%.
Every notebook's time and budget go to ``test-output/notebook-times.tsv`` and to the table that
tests/conftest.py prints at the end of the run, where a notebook over its budget is flagged.
No test asserts a time. The one guard against a hang is nbval's cell timeout, ``RUNAWAY`` times
the notebook's whole budget for any single cell: a cell that slow fails as an error of nbval, and
the table marks the notebook RUNAWAY.
"""

import json
import os
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = tomllib.loads((ROOT / "environments" / "sessions.toml").read_text())
OUTPUT = ROOT / "test-output"
EXECUTED = OUTPUT / "executed"  # the notebooks with this run's outputs, rendered by tests/test_book.py
TIMES = OUTPUT / "notebook-times.tsv"
BUDGET_S = 180  # each CI-tier notebook: about 3 minutes on a 2-core CPU (a benchmark)
BUDGETS_S = {"10_benchmarking.ipynb": 300}  # the whole benchmark of session 10: about 5 minutes
RUNAWAY = 3  # nbval stops a cell that runs longer than 3 x its notebook's budget (a hang)


def budget(notebook: str) -> int:
    """The time budget of a notebook in seconds (a benchmark reported in the CI log)."""
    return BUDGETS_S.get(notebook, BUDGET_S)


def nbval_command(python: Path, kernel: str, notebook: str, keep: Path = EXECUTED) -> list[str]:
    """The command that executes one notebook under nbval and keeps its outputs (in ``keep``)."""
    return [str(python), "-m", "pytest", "-o", "addopts=", "-p", "no:cacheprovider", "-q",
            "-p", "nbval_outputs", f"--nbval-keep-outputs={keep}",
            "--nbval-lax", "--nbval-kernel-name", kernel, f"--nbval-cell-timeout={RUNAWAY * budget(notebook)}",
            f"notebooks/{notebook}"]


@pytest.mark.slow
@pytest.mark.parametrize("notebook", sorted(MANIFEST["notebooks"]))
def test_notebook_executes(notebook, env_python):
    env = MANIFEST["notebooks"][notebook]
    kernel = MANIFEST["environments"][env]["kernel"]
    python = env_python(env)
    plugins = str(ROOT / "tests" / "plugins")
    environ = {**os.environ, "TUTORIAL_KIT_TIER": "ci", "PYTHONHASHSEED": "0",
               "PYTHONPATH": os.pathsep.join(filter(None, [plugins, os.environ.get("PYTHONPATH")]))}
    (EXECUTED / notebook).unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.run(nbval_command(python, kernel, notebook), cwd=ROOT, env=environ,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    limit = budget(notebook)
    if proc.returncode != 0:
        status = "RUNAWAY" if elapsed > RUNAWAY * limit else "FAILED"
    elif elapsed > RUNAWAY * limit:
        status = "RUNAWAY"
    elif elapsed > limit:
        status = "OVER BUDGET"
    else:
        status = "ok"
    OUTPUT.mkdir(exist_ok=True)
    with open(TIMES, "a") as fh:  # read by the summary table of tests/conftest.py and by .ci/run
        fh.write(f"{notebook}\t{kernel}\t{elapsed:.1f}\t{limit}\t{status}\n")
    print(f"[notebooks] {notebook}: {elapsed:.1f} s in kernel {kernel} (budget {limit} s): {status}")
    hang = " (a cell ran past nbval's timeout: a hang, full-size data at the CI tier, or a missing epoch budget)" \
        if status == "RUNAWAY" else ""
    assert proc.returncode == 0, f"{notebook} failed under nbval{hang}:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    assert (EXECUTED / notebook).is_file(), f"nbval passed but kept no executed copy of {notebook}:\n{proc.stdout[-3000:]}"


# --------------------------------------------------------------------------- the workshop tier, on stand-ins

WORKSHOP_NOTEBOOKS = ["04_scgen.ipynb", "06_cpa_biolord.ipynb", "07_contrastivevi.ipynb", "09_linear_baselines.ipynb"]
"""Notebooks executed at the workshop tier on the stand-ins of tests/standins.py (the full files are too
large for CI): proof that nothing in them is tied to the CI files."""
EXECUTED_WORKSHOP = OUTPUT / "executed-workshop"
STANDIN_EPOCHS = 10  # TUTORIAL_KIT_MAX_EPOCHS: the data path is under test here, not the length of training


@pytest.mark.slow
@pytest.mark.parametrize("notebook", WORKSHOP_NOTEBOOKS)
def test_notebook_executes_at_the_workshop_tier_on_standins(notebook, env_python, standin_registry):
    env = MANIFEST["notebooks"][notebook]
    kernel = MANIFEST["environments"][env]["kernel"]
    python = env_python(env)
    plugins = str(ROOT / "tests" / "plugins")
    environ = {**os.environ, "TUTORIAL_KIT_TIER": "workshop", "TUTORIAL_KIT_REGISTRY": str(standin_registry),
               "TUTORIAL_KIT_MAX_EPOCHS": str(STANDIN_EPOCHS), "PYTHONHASHSEED": "0",
               "PYTHONPATH": os.pathsep.join(filter(None, [plugins, os.environ.get("PYTHONPATH")]))}
    (EXECUTED_WORKSHOP / notebook).unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.run(nbval_command(python, kernel, notebook, keep=EXECUTED_WORKSHOP), cwd=ROOT, env=environ,
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    limit = budget(notebook)
    status = "ok" if proc.returncode == 0 else "FAILED"
    if proc.returncode == 0 and elapsed > limit:
        status = "OVER BUDGET"
    OUTPUT.mkdir(exist_ok=True)
    with open(TIMES, "a") as fh:
        fh.write(f"{notebook} [workshop, stand-ins]\t{kernel}\t{elapsed:.1f}\t{limit}\t{status}\n")
    print(f"[notebooks] {notebook} at the workshop tier on stand-ins: {elapsed:.1f} s in kernel {kernel}: {status}")
    assert proc.returncode == 0, (
        f"{notebook} failed at the workshop tier on the stand-ins:\n{proc.stdout[-6000:]}\n{proc.stderr[-2000:]}"
    )
    executed = json.loads((EXECUTED_WORKSHOP / notebook).read_text())
    text = "".join("".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
                   for c in executed["cells"] for o in c.get("outputs", []))
    assert "workshop" in text, f"{notebook} does not report the workshop tier in its outputs (tk.config.describe())"


def test_kept_outputs_honour_the_trailing_semicolon(tmp_path):
    """A plot cell ending in ';' keeps its figure once (display), not twice (display and value)."""
    import sys

    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import matplotlib\nmatplotlib.use('agg')\nclass Fig:\n    def _repr_html_(self):\n        return 'fig'\n"),
        nbformat.v4.new_code_cell("Fig();  # value suppressed"),
        nbformat.v4.new_code_cell("Fig()"),
    ]
    source = tmp_path / "semicolon.ipynb"
    nbformat.write(nb, source)
    keep = tmp_path / "kept"
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "tests" / "plugins"), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-o", "addopts=", "-p", "no:cacheprovider", "-q",
                           "-p", "nbval_outputs", f"--nbval-keep-outputs={keep}", "--nbval-lax", str(source)],
                          cwd=tmp_path, env=environ, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:]
    cells = nbformat.read(keep / "semicolon.ipynb", as_version=4).cells
    assert [o["output_type"] for o in cells[1].outputs] == []
    assert [o["output_type"] for o in cells[2].outputs] == ["execute_result"]
