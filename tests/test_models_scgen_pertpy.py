"""ScGenPertpy: pertpy's maintained scGen (JAX) behind the course interface, in the core environment.

Tiny synthetic data (3 cell types x control/stim, 60 cells, 30 genes, a small network, 2 epochs)
for the interface, the seeding of pertpy's resampling and the error paths; one slow test on the
Kang CI split at the CI epoch budget for the quality of the prediction.
"""

from __future__ import annotations

import logging
import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import tutorial_kit as tk
from tutorial_kit.models import NotApplicableError, ScGenPertpy
from tutorial_kit.models import scgen as scgen_module

SMALL = {"n_hidden": 16, "n_latent": 4, "batch_size": 64, "device": "cpu"}
"""A small network; one minibatch per epoch, so JAX compiles one training step per fit."""


def _tiny() -> ad.AnnData:
    rng = np.random.default_rng(0)
    obs = pd.DataFrame(
        {"cell_type": np.repeat(["A", "B", "C"], 20),
         "perturbation": np.tile(np.repeat(["control", "stim"], 10), 3)},
        index=[f"c{i}" for i in range(60)],
    )
    X = rng.gamma(2.0, 0.5, size=(60, 30)).astype(np.float32)
    X[(obs["perturbation"] == "stim").to_numpy(), :5] += 2.0  # the response: five genes go up
    return ad.AnnData(X, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(30)]))


@pytest.fixture(scope="module")
def split():
    return tk.models.holdout(_tiny(), cell_type="C", perturbation="stim")


@pytest.fixture(scope="module")
def fitted(split):
    """(model, first prediction) for seed 0."""
    model = ScGenPertpy(seed=0, **SMALL).fit(split.train, epochs=2, progress=False)
    return model, model.predict(split.ctrl, "stim")


def test_fit_and_predict_give_cells_like_the_controls(split, fitted):
    model, pred = fitted
    assert model.is_fitted and model.name == "scGen (pertpy)"
    assert model.perturbations_ == ["stim"] and list(model.genes_) == list(split.train.var_names)
    assert pred.shape == split.ctrl.shape
    assert list(pred.obs_names) == list(split.ctrl.obs_names)
    assert set(pred.obs["perturbation"]) == {"stim"} and pred.obs["predicted"].all()
    assert (pred.obs["cell_type"] == "C").all()
    assert pred.X.dtype == np.float32 and np.isfinite(pred.X).all()
    assert model.delta_.shape == (SMALL["n_latent"],) and np.abs(model.delta_).sum() > 0
    assert model.jax_device_.startswith("cpu")
    assert split.ctrl.obs.columns.tolist() == ["cell_type", "perturbation"]  # the input is not changed


def test_history_has_one_row_per_epoch(fitted):
    model, _ = fitted
    assert list(model.history_.columns) == ["epoch", "train_loss", "validation_loss"]
    assert model.history_["epoch"].tolist() == [0, 1] and model.epochs_ == 2
    assert np.isfinite(model.history_[["train_loss", "validation_loss"]].to_numpy()).all()
    assert model.seconds_per_epoch_ > 0


def test_pertpy_predict_alone_is_not_reproducible(split, fitted):
    """The reason for the seeded generator: pertpy resamples with an unseeded default_rng()."""
    model, _ = fitted
    query = model._query(split.ctrl)
    with scgen_module._quiet_inference():
        first, delta_1 = model.model_.predict(ctrl_key="control", stim_key="stim", adata_to_predict=query)
        second, delta_2 = model.model_.predict(ctrl_key="control", stim_key="stim", adata_to_predict=query)
    assert not np.allclose(np.asarray(delta_1), np.asarray(delta_2))
    assert not np.allclose(np.asarray(first.X), np.asarray(second.X))


def test_same_seed_gives_the_same_prediction_and_restores_numpy(split, fitted):
    model, pred = fitted
    original = np.random.default_rng
    again = model.predict(split.ctrl, "stim")
    assert np.random.default_rng is original
    np.testing.assert_array_equal(again.X, pred.X)
    refit = ScGenPertpy(seed=0, **SMALL).fit(split.train, epochs=2, progress=False)
    np.testing.assert_array_equal(refit.history_.to_numpy(), model.history_.to_numpy())
    np.testing.assert_array_equal(refit.predict(split.ctrl, "stim").X, pred.X)


def test_another_seed_gives_another_prediction(split, fitted):
    _, pred = fitted
    other = ScGenPertpy(seed=1, **SMALL).fit(split.train, epochs=2, progress=False)
    assert not np.allclose(other.predict(split.ctrl, "stim").X, pred.X)


def test_numpy_generator_is_restored_when_pertpy_fails(split, fitted, monkeypatch):
    model, _ = fitted
    original = np.random.default_rng
    seen = {}

    def failing_predict(**kwargs):
        seen["patched"] = np.random.default_rng is not original
        seen["draw"] = np.random.default_rng().integers(1_000_000)
        raise RuntimeError("pertpy failed")

    monkeypatch.setattr(model.model_, "predict", failing_predict)
    with pytest.raises(RuntimeError, match="pertpy failed"):
        model.predict(split.ctrl, "stim")
    assert seen["patched"] and np.random.default_rng is original
    first_draw = seen["draw"]
    with pytest.raises(RuntimeError):
        model.predict(split.ctrl, "stim")
    assert seen["draw"] == first_draw  # unseeded calls are seeded by the model's seed


def test_seeded_generator_passes_explicit_seeds_through():
    original = np.random.default_rng
    with scgen_module._seeded_default_rng(0):
        explicit = np.random.default_rng(7).random(3)
        first, second = np.random.default_rng().random(3), np.random.default_rng(None).random(3)
    assert np.random.default_rng is original
    np.testing.assert_array_equal(explicit, original(7).random(3))
    assert not np.array_equal(first, second)  # successive children of the seed sequence differ
    with scgen_module._seeded_default_rng(0):
        np.testing.assert_array_equal(np.random.default_rng().random(3), first)


def test_latent_gives_one_row_per_cell(split, fitted):
    model, _ = fitted
    z = model.latent(split.ctrl)
    assert z.shape == (split.ctrl.n_obs, SMALL["n_latent"]) and z.dtype == np.float32
    with pytest.raises(ValueError, match="genes differ"):
        model.latent(split.ctrl[:, ::-1].copy())
    with pytest.raises(RuntimeError, match="not fitted"):
        ScGenPertpy(device="cpu").latent(split.ctrl)


def test_unknown_perturbation_is_not_applicable(split, fitted):
    model, _ = fitted
    with pytest.raises(NotApplicableError, match="unknown perturbation 'IFN'"):
        model.predict(split.ctrl, "IFN")


def test_genes_must_match_training(split, fitted):
    model, _ = fitted
    with pytest.raises(ValueError, match="genes of ctrl differ"):
        model.predict(split.ctrl[:, :20].copy(), "stim")


def test_training_notes_are_hidden_only_during_fit():
    import scvi

    names = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_lite")
    before = {name: logging.getLogger(name).level for name in names}, scvi.settings.verbosity
    with scgen_module._quiet_training():
        assert all(logging.getLogger(name).level == logging.WARNING for name in names)
        assert scvi.settings.verbosity == logging.WARNING
    assert ({name: logging.getLogger(name).level for name in names}, scvi.settings.verbosity) == before


def test_cuda_without_a_cuda_jaxlib_warns_and_trains_on_cpu(split, monkeypatch):
    model = ScGenPertpy(seed=0, **SMALL)
    model.device = "cuda:0"  # as tk.config.get_device() answers on a CUDA machine
    monkeypatch.setattr(scgen_module, "_jax_has_gpu", lambda: False)
    with pytest.warns(RuntimeWarning, match="no CUDA support"):
        model.fit(split.train, epochs=1, progress=False)
    assert model.jax_device_.startswith("cpu") and model.epochs_ == 1


def test_device_maps_to_lightning_accelerator(monkeypatch):
    import jax

    assert scgen_module._accelerator("cpu") == ("cpu", "auto")
    assert scgen_module._accelerator("cuda:0") == ("gpu", [0])
    assert scgen_module._accelerator("cuda:2") == ("gpu", [2])
    assert scgen_module._accelerator("cuda") == ("gpu", [0])

    def no_gpu(backend=None):
        raise RuntimeError("Unknown backend gpu")

    monkeypatch.setattr(jax, "devices", no_gpu)
    assert scgen_module._jax_has_gpu() is False
    monkeypatch.setattr(jax, "devices", lambda backend=None: ["gpu0"])
    assert scgen_module._jax_has_gpu() is True


@pytest.mark.parametrize(("option", "value", "message"), [
    ("n_hidden", 0, "n_hidden must be at least 1"),
    ("batch_size", 0, "batch_size must be at least 1"),
    ("patience", 0, "patience must be at least 1"),
    ("dropout_rate", 1.0, r"dropout_rate must be in \[0, 1\)"),
    ("lr", 0.0, "lr must be positive"),
    ("monitor", "accuracy", "monitor must be one of"),
    ("train_size", 1.0, "train_size must be between 0 and 1"),
])
def test_bad_options_are_refused(option, value, message):
    with pytest.raises(ValueError, match=f"ScGenPertpy: {message}"):
        ScGenPertpy(**{option: value})


def test_missing_pertpy_gives_the_core_environment_hint(split, monkeypatch):
    monkeypatch.setitem(sys.modules, "pertpy", None)
    with pytest.raises(ImportError, match=r"environments/build\.py core") as info:
        ScGenPertpy(seed=0, device="cpu").fit(split.train, epochs=1, progress=False)
    assert "tk-core" in str(info.value)


@pytest.mark.slow
def test_kang_cd4t_prediction_beats_the_thresholds():
    """The CI budget (10 epochs) on the Kang CD4T split with 2,000 training HVGs."""
    kang = tk.data.load_kang_scgen_valid()
    split = tk.models.training_hvgs(tk.models.holdout(kang, cell_type="CD4T", perturbation="IFN-beta"),
                                    n_top_genes=2000)
    model = ScGenPertpy(seed=0, device="cpu").fit(split.train, epochs=tk.config.epochs("scgen", tier="ci"),
                                                  progress=False)
    pred = model.predict(split.ctrl, "IFN-beta")
    pred_mean, true_mean = pred.X.mean(0), np.asarray(split.true.X.mean(0)).ravel()
    ctrl_mean = np.asarray(split.ctrl.X.mean(0)).ravel()
    assert model.epochs_ == 10
    assert tk.metrics.r2_mean_sqpearson(pred_mean, true_mean) > 0.8
    assert tk.metrics.pearson_delta(pred_mean, true_mean, ctrl_mean) > 0.3
