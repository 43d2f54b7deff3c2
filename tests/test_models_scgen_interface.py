"""ScGen's side of the course interface that needs no scgen: options, device mapping, the install hint.

Training and prediction with the real package run inside the scgen environment
(tests/session_scgen, through tests/test_session_envs.py).
"""

from __future__ import annotations

import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from tutorial_kit.models import ScGen
from tutorial_kit.models.scgen import _use_gpu


def _tiny():
    obs = pd.DataFrame({"cell_type": np.repeat(["A", "B"], 10), "perturbation": np.tile(["control", "IFN"], 10)},
                       index=[f"c{i}" for i in range(20)])
    return ad.AnnData(np.random.default_rng(0).random((20, 5)).astype(np.float32), obs=obs)


def test_missing_scgen_gives_the_environment_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "scgen", None)  # as in the core environment, which has no scgen
    with pytest.raises(ImportError, match=r"environments/build\.py scgen") as info:
        ScGen(seed=0, device="cpu").fit(_tiny(), epochs=1, progress=False)
    assert "tk-scgen" in str(info.value)


@pytest.mark.parametrize(("option", "value", "message"), [
    ("n_latent", 0, "n_latent must be at least 1"),
    ("dropout_rate", 1.0, r"dropout_rate must be in \[0, 1\)"),
    ("lr", 0.0, "lr must be positive"),
    ("monitor", "accuracy", "monitor must be one of"),
    ("train_size", 1.0, "train_size must be between 0 and 1"),
])
def test_bad_options_are_refused(option, value, message):
    with pytest.raises(ValueError, match=message):
        ScGen(**{option: value})


def test_device_maps_to_scvi_use_gpu():
    assert _use_gpu("cpu") is False
    assert _use_gpu("cuda") == 0 and _use_gpu("cuda:1") == 1
