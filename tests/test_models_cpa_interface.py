"""CPA's and Biolord's side of the course interface that needs neither package: options, hints, quiet.

Training and prediction with the real packages run inside the cpa environment
(tests/session_cpa, through tests/test_session_envs.py).
"""

from __future__ import annotations

import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from tutorial_kit.models import CPA, Biolord
from tutorial_kit.models.cpa import quiet


def _tiny():
    counts = np.random.default_rng(0).poisson(3.0, (20, 5)).astype(np.float32)
    obs = pd.DataFrame({"cell_type": np.repeat(["A", "B"], 10), "perturbation": np.tile(["control", "IFN"], 10)},
                       index=[f"c{i}" for i in range(20)])
    adata = ad.AnnData(np.log1p(counts), obs=obs)
    adata.layers["counts"] = counts
    return adata


@pytest.mark.parametrize(("cls", "module", "hint"), [(CPA, "cpa", "build.py cpa"), (Biolord, "biolord", "build.py cpa")])
def test_missing_package_gives_the_environment_hint(cls, module, hint, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # as in the core environment
    with pytest.raises(ImportError, match=hint) as info:
        cls(seed=0, device="cpu").fit(_tiny(), epochs=1, progress=False)
    assert "tk-cpa" in str(info.value)


def test_cpa_refuses_log_data_before_importing_anything(monkeypatch):
    monkeypatch.setitem(sys.modules, "cpa", None)
    logged = _tiny()
    logged.layers["counts"] = logged.X.copy()
    with pytest.raises(ValueError, match="log-normalized"):
        CPA(seed=0, device="cpu").fit(logged, epochs=1, progress=False)


@pytest.mark.parametrize(("cls", "option", "value", "message"), [
    (CPA, "n_latent", 0, "n_latent must be at least 1"),
    (CPA, "doser_type", "cubic", "doser_type must be"),
    (CPA, "pretrain_fraction", 1.0, r"pretrain_fraction must be in \[0, 1\)"),
    (CPA, "lr", 0.0, "lr must be positive"),
    (Biolord, "decoder_depth", 0, "decoder_depth must be at least 1"),
    (Biolord, "unknown_attribute_penalty", -1.0, "must be >= 0"),
])
def test_bad_options_are_refused(cls, option, value, message):
    with pytest.raises(ValueError, match=message):
        cls(**{option: value})


def test_unfitted_models_say_so():
    with pytest.raises(RuntimeError, match="not fitted"):
        CPA(device="cpu").latent(_tiny())
    with pytest.raises(RuntimeError, match="not fitted"):
        Biolord(device="cpu").latent(_tiny())


def test_quiet_hides_prints_and_restores_the_streams(capsys):
    before = sys.stdout
    with quiet():
        print("hidden")
    assert sys.stdout is before and capsys.readouterr().out == ""
    with quiet(streams=False):
        print("shown")
    assert "shown" in capsys.readouterr().out
