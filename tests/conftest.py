"""Shared pytest configuration of the test suite.

Tests in ``tests/session_*`` need a session environment (e.g. ``tests/session_scgen`` needs
scgen, which the core environment does not have). The core run skips collecting them;
tests/test_session_envs.py runs them inside their environment with ``TK_SESSION_TESTS=1``.

The fixture ``env_python`` gives the interpreter of a session environment (tests/test_notebooks.py,
tests/test_session_envs.py); ``cells`` is a small held-out-cell-type data set shared by the
model-evaluation tests.
"""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_RUN = pytest.StashKey[list]()  # the notebooks tests/test_notebooks.py executes in this session

collect_ignore_glob = [] if os.environ.get("TK_SESSION_TESTS") == "1" else ["session_*"]
collect_ignore = ["plugins"]  # pytest plugins for the nbval subprocesses, not tests


def pytest_collection_modifyitems(session, config, items):
    """The book renders the notebooks that tests/test_notebooks.py executed: its tests run last."""
    book = [item for item in items if item.path.name == "test_book.py"]
    items[:] = [item for item in items if item.path.name != "test_book.py"] + book


def pytest_collection_finish(session):
    """Remember which notebooks this session executes; their time table starts afresh."""
    run = sorted({item.callspec.params["notebook"] for item in session.items
                  if item.path.name == "test_notebooks.py" and hasattr(item, "callspec")})
    session.config.stash[NOTEBOOKS_RUN] = run
    if run:
        (ROOT / "test-output" / "notebook-times.tsv").unlink(missing_ok=True)


def _time_table(path: Path) -> list[str]:
    """The per-notebook benchmark table of this run, from test-output/notebook-times.tsv."""
    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    lines = [f"{'notebook':<34} {'kernel':<9} {'seconds':>8} {'budget':>7} {'of budget':>9}  result"]
    for notebook, kernel, seconds, budget, status in rows:
        share = float(seconds) / float(budget)
        flag = status if status == "ok" else f"<<< {status} >>>"
        lines.append(f"{notebook:<34} {kernel:<9} {float(seconds):8.1f} {budget:>7} {share:9.0%}  {flag}")
    total = sum(float(r[2]) for r in rows)
    lines.append(f"{'all notebooks':<34} {'':<9} {total:8.1f}")
    return lines


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Benchmarks at the end of the run: notebook times against budgets, and time per test file."""
    times = ROOT / "test-output" / "notebook-times.tsv"
    if config.stash.get(NOTEBOOKS_RUN, None) and times.is_file():
        lines = _time_table(times)
        terminalreporter.section("notebook times (benchmark: over budget is flagged, only 3 x budget fails)")
        for line in lines:
            terminalreporter.write_line(line)
        (ROOT / "test-output" / "notebook-times.txt").write_text("\n".join(lines) + "\n")
    per_file: dict[str, float] = {}
    for kind in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(kind, []):
            if getattr(report, "when", None) in ("setup", "call", "teardown"):
                name = report.nodeid.split("::")[0]
                per_file[name] = per_file.get(name, 0.0) + float(getattr(report, "duration", 0.0))
    if per_file:
        terminalreporter.section("time per test file (setup + call + teardown; environment builds included)")
        for name, seconds in sorted(per_file.items(), key=lambda kv: -kv[1])[:12]:
            terminalreporter.write_line(f"{name:<60} {seconds:8.1f} s")


def _env_python(env: str) -> Path:
    """The environment's interpreter: ``TK_PYTHON_<ENV>`` if set, else built (or checked up to date) by build.py."""
    override = os.environ.get(f"TK_PYTHON_{env.upper()}")
    if override:
        return Path(override)
    subprocess.run(["python3", str(ROOT / "environments" / "build.py"), env], check=True, cwd=ROOT)
    return ROOT / ".venvs" / env / "bin" / "python"


@pytest.fixture(scope="session")
def env_python():
    """``env_python(name)`` -> Path of the interpreter of session environment ``name``."""
    return _env_python


@pytest.fixture(scope="session")
def standin_registry(tmp_path_factory):
    """Every workshop stand-in of tests/standins.py written once per test run; the TOML file that registers them."""
    import sys

    sys.path.insert(0, str(ROOT / "tests"))
    import standins

    return standins.build(tmp_path_factory.mktemp("standins"))


@pytest.fixture(scope="module")
def cells():
    """Cell types A, B, C x control/IFN, 20 cells each, 12 genes; IFN shifts the genes by a ramp from -1 to 2."""
    import anndata as ad
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = [(t, p) for t in ("A", "B", "C") for p in ("control", "IFN") for _ in range(20)]
    obs = pd.DataFrame(rows, columns=["cell_type", "perturbation"], index=[f"c{i}" for i in range(len(rows))])
    effect = np.linspace(-1, 2, 12)
    X = rng.gamma(2.0, 0.5, size=(len(obs), 12)) + (obs["perturbation"] == "IFN").to_numpy()[:, None] * effect
    return ad.AnnData(np.clip(X, 0, None).astype(np.float32), obs=obs,
                      var=pd.DataFrame(index=[f"g{j}" for j in range(12)]))


@pytest.fixture(scope="session")
def notebooks_run(request) -> list[str]:
    """The notebooks that tests/test_notebooks.py executes in this pytest session (before the book)."""
    return list(request.config.stash.get(NOTEBOOKS_RUN, []))


@pytest.fixture(autouse=True)
def _close_figures():
    """Close every matplotlib figure a test opened (only if the test imported pyplot at all)."""
    yield
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
