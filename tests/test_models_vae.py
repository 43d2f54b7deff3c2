"""Tests of tutorial_kit.models.vae: the conditional VAE with a negative-binomial likelihood on counts."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import tutorial_kit as tk
from tutorial_kit.models import CountVAE, NotApplicableError, nb_log_likelihood


@pytest.fixture(scope="module")
def screen():
    grn = tk.simulate.make_grn(n_genes=60, n_regulators=6, seed=0)
    return tk.simulate.simulate_perturbseq(grn, perturbations=["TF01", "TF03"], n_cells=120, n_control=240, seed=0)


@pytest.fixture(scope="module")
def fitted(screen):
    return CountVAE(latent_dim=8, hidden_dim=64, seed=0, device="cpu").fit(screen, epochs=40, progress=False)


def test_nb_log_likelihood_matches_scipy():
    import torch

    rng = np.random.default_rng(0)
    x = rng.poisson(3.0, (5, 7)).astype(np.float32)
    m = rng.uniform(0.5, 6.0, (5, 7)).astype(np.float32)
    theta = rng.uniform(0.5, 10.0, 7).astype(np.float32)
    ours = nb_log_likelihood(torch.from_numpy(x), torch.from_numpy(m), torch.from_numpy(theta)).numpy()
    ref = stats.nbinom.logpmf(x, theta, theta / (theta + m)).sum(axis=1)
    np.testing.assert_allclose(ours, ref, rtol=1e-4)


def test_training_lowers_the_loss_and_records_history(fitted):
    h = fitted.history_
    assert list(h.columns) == ["loss", "nll", "kl"] and len(h) == 40 == fitted.epochs_
    assert h["nll"].iloc[-1] < h["nll"].iloc[0]
    assert fitted.theta_.shape == (60,) and (fitted.theta_ > 0).all()
    assert fitted.seconds_per_epoch_ > 0


def test_prediction_moves_control_cells_towards_the_perturbed_ones(screen, fitted):
    ctrl = screen[screen.obs["perturbation"] == "control"]
    ctrl_mean = np.asarray(ctrl.X.mean(axis=0)).ravel()
    for pert in ("TF01", "TF03"):
        pred = fitted.predict(ctrl, pert)
        assert pred.shape == ctrl.shape and (pred.obs["perturbation"] == pert).all()
        true_mean = np.asarray(screen[screen.obs["perturbation"] == pert].X.mean(axis=0)).ravel()
        assert tk.metrics.pearson_delta(np.asarray(pred.X).mean(axis=0), true_mean, ctrl_mean) > 0.7


def test_library_size_is_handled_doubling_counts_changes_nothing(screen, fitted):
    ctrl = screen[screen.obs["perturbation"] == "control"][:20].copy()
    doubled = ctrl.copy()
    doubled.layers["counts"] = ctrl.layers["counts"] * 2
    np.testing.assert_allclose(fitted.latent(doubled), fitted.latent(ctrl), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fitted.predict(doubled, "TF01").X, fitted.predict(ctrl, "TF01").X, rtol=1e-5, atol=1e-6)


def test_seeded(screen):
    ctrl = screen[screen.obs["perturbation"] == "control"][:10]
    a = CountVAE(latent_dim=4, hidden_dim=16, seed=1, device="cpu").fit(screen, epochs=3, progress=False)
    b = CountVAE(latent_dim=4, hidden_dim=16, seed=1, device="cpu").fit(screen, epochs=3, progress=False)
    c = CountVAE(latent_dim=4, hidden_dim=16, seed=2, device="cpu").fit(screen, epochs=3, progress=False)
    np.testing.assert_array_equal(a.predict(ctrl, "TF01").X, b.predict(ctrl, "TF01").X)
    assert not np.allclose(a.predict(ctrl, "TF01").X, c.predict(ctrl, "TF01").X)


def test_clear_errors(screen, fitted):
    logged = screen.copy()
    logged.layers["counts"] = logged.X.copy()
    with pytest.raises(ValueError, match="log-normalized"):
        CountVAE(device="cpu").fit(logged, epochs=1, progress=False)
    empty = screen.copy()
    counts = empty.layers["counts"].tolil()
    counts[0, :] = 0
    empty.layers["counts"] = counts.tocsr()
    with pytest.raises(ValueError, match="no counts at all"):
        CountVAE(device="cpu").fit(empty, epochs=1, progress=False)
    ctrl = screen[screen.obs["perturbation"] == "control"][:5]
    with pytest.raises(NotApplicableError, match="unknown perturbation 'TF05'"):
        fitted.predict(ctrl, "TF05")
    with pytest.raises(ValueError, match="unknown cell type"):
        fitted.decode(np.zeros((2, 8)), "TF01", "HeLa")
    with pytest.raises(ValueError, match="cells x 8"):
        fitted.decode(np.zeros((2, 3)), "TF01", "simulated")
    with pytest.raises(RuntimeError, match="not fitted"):
        CountVAE(device="cpu").latent(ctrl)
    for bad in ({"latent_dim": 0}, {"batch_size": 2.5}, {"kl_warmup": 1.0}, {"lr": 0}, {"kl_weight": -1}):
        with pytest.raises(ValueError, match="CountVAE"):
            CountVAE(**bad)


def test_decode_of_the_latent_with_the_control_code_reconstructs_control(screen, fitted):
    ctrl = screen[screen.obs["perturbation"] == "control"]
    recon = fitted.decode(fitted.latent(ctrl), "control", "simulated")
    observed = np.asarray(ctrl.X.mean(axis=0)).ravel()
    assert tk.metrics.r2_mean_sqpearson(recon.mean(axis=0), observed) > 0.9
