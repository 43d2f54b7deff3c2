"""ScGen (tutorial_kit.models.scgen) with the real scgen package: runs in the tk-scgen environment.

Collected only with TK_SESSION_TESTS=1 (tests/conftest.py); tests/test_session_envs.py runs this
folder inside .venvs/scgen.
"""

import sys

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import tutorial_kit as tk
from tutorial_kit.models import ScGen, holdout, training_hvgs
from tutorial_kit.models.scgen import _use_gpu

SMALL = dict(n_hidden=32, n_latent=4, batch_size=32, device="cpu")


def _toy(seed: int = 0) -> ad.AnnData:
    """3 cell types x control/'IFN', 40 cells each, 30 genes; 'IFN' raises genes 0-5 by 2."""
    rng = np.random.default_rng(seed)
    types = np.repeat(["A", "B", "C"], 80)
    labels = np.tile(np.repeat(["control", "IFN"], 40), 3)
    base = {"A": 1.0, "B": 2.0, "C": 3.0}
    X = rng.gamma(2.0, 0.5, size=(240, 30)) + np.array([base[t] for t in types])[:, None] * 0.5
    X[labels == "IFN", :6] += 2.0
    obs = pd.DataFrame({"cell_type": types, "perturbation": labels}, index=[f"cell{i}" for i in range(240)])
    return ad.AnnData(X.astype(np.float32), obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(30)]))


@pytest.fixture(scope="module")
def toy_split():
    return holdout(_toy(), cell_type="C", perturbation="IFN")


@pytest.fixture(scope="module")
def toy_model(toy_split):
    return ScGen(seed=0, **SMALL).fit(toy_split.train, epochs=3, progress=False)


def test_fit_predict_shapes_history_and_latent(toy_split, toy_model):
    pred = toy_model.predict(toy_split.ctrl, "IFN")
    assert pred.shape == toy_split.ctrl.shape
    assert list(pred.obs_names) == list(toy_split.ctrl.obs_names)
    assert set(pred.obs["perturbation"]) == {"IFN"} and pred.obs["predicted"].all()
    assert np.isfinite(pred.X).all()
    assert toy_model.epochs_ == 3 and toy_model.seconds_per_epoch_ > 0
    hist = toy_model.history_
    assert list(hist.columns) == ["epoch", "train_loss", "validation_loss"] and len(hist) == 3
    assert np.isfinite(hist[["train_loss", "validation_loss"]].to_numpy()).all()
    assert toy_model.delta_.shape == (4,)
    z = toy_model.latent(toy_split.train)
    assert z.shape == (toy_split.train.n_obs, 4) and z.dtype == np.float32
    assert type(toy_model.model_).__name__ == "SCGEN"


def test_delta_is_the_latent_difference_of_perturbed_and_control_cells(toy_split, toy_model):
    """delta_ points from control to perturbed training cells in the latent space."""
    train = toy_split.train
    z = toy_model.latent(train)
    is_pert = (train.obs["perturbation"] == "IFN").to_numpy()
    toy_model.predict(toy_split.ctrl, "IFN")
    direct = z[is_pert].mean(0) - z[~is_pert].mean(0)
    cosine = direct @ toy_model.delta_ / np.linalg.norm(direct) / np.linalg.norm(toy_model.delta_)
    assert cosine > 0.8


def test_training_data_is_not_modified(toy_split):
    train = toy_split.train
    before_obs, before_x = train.obs.copy(), train.X.copy()
    model = ScGen(seed=0, **SMALL).fit(train, epochs=1, progress=False)
    model.predict(toy_split.ctrl, "IFN")
    pd.testing.assert_frame_equal(train.obs, before_obs)
    np.testing.assert_array_equal(train.X, before_x)
    assert "_scvi_batch" not in toy_split.ctrl.obs and not train.uns


def test_same_seed_same_prediction_other_seed_different(toy_split, toy_model):
    first = toy_model.predict(toy_split.ctrl, "IFN").X
    again = toy_model.predict(toy_split.ctrl, "IFN").X
    np.testing.assert_array_equal(first, again)
    refit = ScGen(seed=0, **SMALL).fit(toy_split.train, epochs=3, progress=False).predict(toy_split.ctrl, "IFN").X
    np.testing.assert_allclose(refit, first, rtol=1e-5, atol=1e-5)
    other = ScGen(seed=1, **SMALL).fit(toy_split.train, epochs=3, progress=False).predict(toy_split.ctrl, "IFN").X
    assert np.abs(other - first).max() > 1e-3


def test_errors_come_from_the_interface(toy_split, toy_model):
    with pytest.raises(ValueError, match="unknown perturbation 'LPS'"):
        toy_model.predict(toy_split.ctrl, "LPS")
    with pytest.raises(ValueError, match="genes of ctrl differ"):
        toy_model.predict(toy_split.ctrl[:, ::-1].copy(), "IFN")
    with pytest.raises(ValueError, match="ScGen.latent: the genes differ"):
        toy_model.latent(toy_split.ctrl[:, :10].copy())
    with pytest.raises(RuntimeError, match="not fitted"):
        ScGen(seed=0, **SMALL).latent(toy_split.ctrl)
    with pytest.raises(ValueError, match="n_latent must be at least 1"):
        ScGen(n_latent=0)
    with pytest.raises(ValueError, match="dropout_rate"):
        ScGen(dropout_rate=1.0)
    with pytest.raises(ValueError, match="lr must be positive"):
        ScGen(lr=0)
    with pytest.raises(ValueError, match="train_size"):
        ScGen(train_size=1.0)
    with pytest.raises(ValueError, match="monitor must be one of"):
        ScGen(monitor="loss")


def test_missing_scgen_gives_the_install_hint(toy_split, monkeypatch):
    monkeypatch.setitem(sys.modules, "scgen", None)
    with pytest.raises(ImportError, match=r"python3 environments/build.py scgen.*tk-scgen"):
        ScGen(seed=0, **SMALL).fit(toy_split.train, epochs=1, progress=False)


def test_device_maps_to_scvi_use_gpu():
    assert _use_gpu("cpu") is False
    assert _use_gpu("cuda:1") == 1 and _use_gpu("cuda") == 0


def test_early_stopping_stops_before_the_budget(toy_split):
    model = ScGen(seed=0, patience=1, **SMALL).fit(toy_split.train, epochs=200, progress=False)
    assert 2 <= model.epochs_ < 200 and len(model.history_) == model.epochs_
    elbo = ScGen(seed=0, patience=1, monitor="elbo_validation", **SMALL).fit(toy_split.train, epochs=200,
                                                                           progress=False)
    assert 2 <= elbo.epochs_ < 200
    without = ScGen(seed=0, early_stopping=False, **SMALL).fit(toy_split.train, epochs=4, progress=False)
    assert without.epochs_ == 4


@pytest.mark.slow
def test_kang_cd4t_scgen_learns_the_ifn_beta_response():
    """On the held-out CD4T cells, scGen's predicted change follows the true IFN-beta change."""
    split = training_hvgs(holdout(tk.data.load_kang_scgen_valid(), cell_type="CD4T", perturbation="IFN-beta"),
                          n_top_genes=2000)
    model = ScGen(seed=0, device="cpu").fit(split.train, epochs=10, progress=False)
    pred = model.predict(split.ctrl, "IFN-beta")
    assert pred.shape == split.ctrl.shape and model.delta_.shape == (100,)
    mean = lambda x: np.asarray(x.mean(axis=0)).ravel()  # noqa: E731
    true, ctrl, ours = mean(split.true.X), mean(split.ctrl.X), mean(pred.X)
    de = tk.metrics.top_de_genes(split.true.X, split.ctrl.X, k=100)
    # A model that learned nothing predicts no change (pearson_delta undefined, direction 0) or noise (~0).
    corr = tk.metrics.pearson_delta(ours[de], true[de], ctrl[de])
    direction = tk.metrics.direction_agreement_k(ours, true, ctrl, de)
    print(f"scGen on CD4T, 10 epochs: pearson_delta top100 DE {corr:.3f}, direction {direction:.2f}")
    assert corr > 0.5, corr
    assert direction > 0.7, direction


def test_lightning_start_up_notes_are_hidden_during_fit(toy_split):
    import logging

    from tutorial_kit.models.scgen import _import_scgen

    _import_scgen()  # importing scvi-tools sets (and announces) its default seed once per process
    names = ("pytorch_lightning", "lightning_lite")
    before = {name: logging.getLogger(name).level for name in names}
    seen = []

    class Recorder(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    recorder = Recorder()
    for name in names:
        logging.getLogger(name).addHandler(recorder)
    try:
        ScGen(seed=1, **SMALL).fit(toy_split.train, epochs=1, progress=False)
    finally:
        for name in names:
            logging.getLogger(name).removeHandler(recorder)
    for note in ("Global seed set", "GPU available", "TPU available"):
        assert not [m for m in seen if note in m], f"{note!r} was logged during fit: {seen}"
    assert {name: logging.getLogger(name).level for name in names} == before  # restored after fit


def test_training_uses_the_fused_adam_and_restores_scvi(toy_split, monkeypatch):
    import scvi.model.base._training_mixin as mixin
    import torch
    from scvi.train import TrainingPlan

    made = []
    real_adam = tk.config.adam

    def recording_adam(params, **kwargs):
        optimizer = real_adam(params, **kwargs)
        made.append((optimizer, kwargs))
        return optimizer

    monkeypatch.setattr(tk.config, "adam", recording_adam)
    ScGen(seed=0, early_stopping=False, **SMALL).fit(toy_split.train, epochs=1, progress=False)
    assert len(made) == 1, "scGen's training plan did not build its optimizer with tk.config.adam"
    optimizer, kwargs = made[0]
    assert isinstance(optimizer, torch.optim.Adam) and optimizer.defaults["fused"] is True
    assert kwargs == {"lr": 1e-3, "eps": 0.01, "weight_decay": 1e-6}, "scvi-tools' own Adam settings must be kept"
    assert mixin.TrainingPlan is TrainingPlan, "scvi-tools' TrainingPlan was not restored after the fit"


def test_fused_adam_gives_the_losses_of_the_default_adam(toy_split, monkeypatch):
    fused = ScGen(seed=0, early_stopping=False, **SMALL).fit(toy_split.train, epochs=3, progress=False)
    monkeypatch.setattr(tk.config, "adam", lambda params, **kwargs: __import__("torch").optim.Adam(params, **kwargs))
    default = ScGen(seed=0, early_stopping=False, **SMALL).fit(toy_split.train, epochs=3, progress=False)
    np.testing.assert_allclose(fused.history_["train_loss"], default.history_["train_loss"], rtol=1e-3)
