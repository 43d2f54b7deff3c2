"""Tests of tutorial_kit.models.contrastive: the background and target cells of contrastiveVI."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import tutorial_kit as tk
from tutorial_kit.models import contrastive_indices


def _screen(n_control: int = 30, n_perturbed: int = 40) -> ad.AnnData:
    labels = ["A"] * (n_perturbed // 2) + ["control"] * n_control + ["B"] * (n_perturbed - n_perturbed // 2)
    obs = pd.DataFrame({"perturbation": labels}, index=[f"c{i}" for i in range(len(labels))])
    counts = np.random.default_rng(0).poisson(2.0, (len(labels), 5)).astype(np.float32)
    adata = ad.AnnData(tk.data.log1p_cp10k(counts), obs=obs)
    adata.layers["counts"] = counts
    return adata


def test_background_is_control_and_target_is_everything_else_in_order():
    adata = _screen()
    background, target = contrastive_indices(adata)
    labels = adata.obs["perturbation"].to_numpy()
    assert (labels[background] == "control").all() and (labels[target] != "control").all()
    assert background.size + target.size == adata.n_obs and np.all(np.diff(background) > 0) and np.all(np.diff(target) > 0)
    assert set(background) | set(target) == set(range(adata.n_obs))


def test_other_control_label_and_key():
    adata = _screen()
    adata.obs["guide_target"] = adata.obs["perturbation"].replace({"control": "NT"})
    background, _ = contrastive_indices(adata, perturbation_key="guide_target", control="NT")
    assert background.size == 30


def test_log_normalized_values_are_refused_not_warned_about():
    adata = _screen()
    with pytest.raises(ValueError, match="log-normalized"):
        contrastive_indices(adata, layer=None)  # X holds log1p CP10k
    adata.layers["counts"] = adata.X.copy()
    with pytest.raises(ValueError, match="raw counts are needed"):
        contrastive_indices(adata)


def test_clear_errors_for_missing_column_layer_and_empty_sets():
    adata = _screen()
    with pytest.raises(ValueError, match="guide"):
        contrastive_indices(adata, perturbation_key="guide")
    with pytest.raises(ValueError, match="no 'raw' layer"):
        contrastive_indices(adata, layer="raw")
    with pytest.raises(ValueError, match="0 control cells.*Labels found"):
        contrastive_indices(adata, control="non-targeting")
    with pytest.raises(ValueError, match="5 control cells"):
        contrastive_indices(_screen(n_control=5))
    with pytest.raises(ValueError, match="4 perturbed cells"):
        contrastive_indices(_screen(n_perturbed=4))


def test_real_datlinger_counts():
    adata = tk.data.load_datlinger2021()
    background, target = contrastive_indices(adata)
    assert background.size == 200 and target.size == 7300
