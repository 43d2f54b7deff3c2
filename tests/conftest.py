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

collect_ignore_glob = [] if os.environ.get("TK_SESSION_TESTS") == "1" else ["session_*"]


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
