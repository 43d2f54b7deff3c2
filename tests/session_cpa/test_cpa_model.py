"""CPA (tutorial_kit.models.cpa) with the real cpa-tools package: runs in the tk-cpa environment.

Collected only with TK_SESSION_TESTS=1 (tests/conftest.py); tests/test_session_envs.py runs this
folder inside .venvs/cpa.
"""

import os

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import tutorial_kit as tk
from tutorial_kit.models import CPA, NotApplicableError
from tutorial_kit.models.base import holdout

SMALL = dict(n_latent=8, n_hidden=32, n_layers=1, batch_size=64, device="cpu")
EPOCHS = 40


def _toy(seed: int = 0, *, doubles: bool = False) -> ad.AnnData:
    """2 cell types x control / 'A' / 'B' (and 'A+B'), 60 cells each, 20 genes of Poisson counts.

    'A' multiplies genes 0-4 by 4, 'B' genes 5-9; 'A+B' does both.
    """
    rng = np.random.default_rng(seed)
    labels = ["control", "A", "B"] + (["A+B"] if doubles else [])
    types, perts = [], []
    for t in ("T1", "T2"):
        for p in labels:
            types += [t] * 60
            perts += [p] * 60
    types, perts = np.array(types), np.array(perts)
    rate = np.full((len(perts), 20), 3.0)
    rate[types == "T2"] *= 1.5
    rate[np.char.find(perts, "A") >= 0, :5] *= 4
    rate[np.char.find(perts, "B") >= 0, 5:10] *= 4
    counts = rng.poisson(rate).astype(np.float32)
    obs = pd.DataFrame({"perturbation": perts, "cell_type": types}, index=[f"c{i}" for i in range(len(perts))])
    adata = ad.AnnData(tk.data.log1p_cp10k(counts).toarray(), obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(20)]))
    adata.layers["counts"] = counts
    return adata


@pytest.fixture(scope="module")
def toy_split():
    return holdout(_toy(), cell_type="T2", perturbation="A")


def _fit_in_empty_folder(model, train, folder):
    """Fit with ``folder`` as the working directory; record what the fit left there."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        model.fit(train, epochs=EPOCHS, progress=False)
    finally:
        os.chdir(before)
    model.cwd_after_fit = sorted(os.listdir(folder))
    return model


@pytest.fixture(scope="module")
def toy_model(toy_split, tmp_path_factory):
    return _fit_in_empty_folder(CPA(seed=0, lr=3e-3, **SMALL), toy_split.train, tmp_path_factory.mktemp("cwd"))


def test_fit_predict_history_and_no_file_written(toy_split, toy_model):
    pred = toy_model.predict(toy_split.ctrl, "A")
    assert pred.shape == toy_split.ctrl.shape and pred.obs["predicted"].all()
    assert set(pred.obs["perturbation"]) == {"A"} and np.isfinite(pred.X).all()
    assert toy_model.epochs_ == EPOCHS and toy_model.seconds_per_epoch_ > 0
    assert {"recon_loss", "adv_loss"} <= set(toy_model.history_.columns) and len(toy_model.history_) == EPOCHS
    assert toy_model.cwd_after_fit == [], f"CPA wrote into the working directory: {toy_model.cwd_after_fit}"


def test_prediction_moves_the_right_genes(toy_split, toy_model):
    """Predicted 'A' raises genes 0-4 of the held-out cell type's controls, and not genes 5-9."""
    pred = toy_model.predict(toy_split.ctrl, "A")
    change = np.asarray(pred.X.mean(0)).ravel() - np.asarray(toy_split.ctrl.X.mean(0)).ravel()
    assert change[:5].mean() > change[5:10].mean() + 0.3, change.round(2)


def test_predictions_are_reproducible_and_sampled_by_default(toy_split, toy_model):
    a = toy_model.predict(toy_split.ctrl, "A").X
    b = toy_model.predict(toy_split.ctrl, "A").X
    np.testing.assert_array_equal(a, b)
    counts = np.expm1(a) / 1e4  # per-cell proportions of sampled integer counts: many exact zeros
    assert (counts == 0).mean() > 0.01


def test_latent_spaces_and_reconstruction(toy_split, toy_model):
    basal = toy_model.latent(toy_split.train, "basal")
    full = toy_model.latent(toy_split.train, "full")
    assert basal.shape == full.shape == (toy_split.train.n_obs, 8)
    assert not np.allclose(basal, full), "the full state adds the perturbation and cell-type embeddings"
    recon = toy_model.reconstruct(toy_split.true)
    assert recon.shape == toy_split.true.shape
    with pytest.raises(ValueError, match="kind"):
        toy_model.latent(toy_split.train, "other")


def test_bad_inputs_get_clear_errors(toy_split, toy_model):
    with pytest.raises(NotApplicableError, match="unknown perturbation 'C'"):
        toy_model.predict(toy_split.ctrl, "C")
    with pytest.raises(ValueError, match="combines 3 perturbations"):
        toy_model.predict(toy_split.ctrl, "A+B+A")
    logged = toy_split.train.copy()
    logged.layers["counts"] = logged.X.copy()
    with pytest.raises(ValueError, match="log-normalized"):
        CPA(seed=0, **SMALL).fit(logged, epochs=1, progress=False)
    with pytest.raises(ValueError, match="no column"):
        CPA(dose_key="dose", seed=0, **SMALL).fit(toy_split.train, epochs=1, progress=False)
    alien = toy_split.ctrl.copy()
    alien.obs["cell_type"] = "T9"
    with pytest.raises(ValueError, match="not in training"):
        toy_model.predict(alien, "A")
    with pytest.raises(ValueError, match="max_comb_len"):
        CPA(max_comb_len=1, seed=0, **SMALL).fit(_toy(doubles=True), epochs=1, progress=False)


def test_a_second_dataset_gets_its_own_encoders(toy_model):
    """cpa-tools keeps its encoders on the class; a second fit must not reuse the first one's."""
    other = _toy(1)
    other.obs["perturbation"] = other.obs["perturbation"].replace({"A": "X", "B": "Y"})
    second = CPA(seed=0, **SMALL).fit(other, epochs=2, progress=False)
    assert set(second.pert_encoder_) == {"<PAD>", "control", "X", "Y"}
    assert "A" in toy_model.pert_encoder_ and "X" not in toy_model.pert_encoder_
    assert second.predict(other[other.obs["perturbation"] == "control"], "X").n_obs == 120


def test_unseen_double_from_seen_singles_and_dose():
    data = _toy(2, doubles=True)
    train = data[data.obs["perturbation"] != "A+B"].copy()
    model = CPA(seed=0, **SMALL).fit(train, epochs=4, progress=False)
    ctrl = data[data.obs["perturbation"] == "control"].copy()
    assert model.predict(ctrl, "A+B").shape == ctrl.shape
    low = model.predict_dose(ctrl, "A", 0.1)
    assert set(low.obs["dose"]) == {0.1}
    with pytest.raises(ValueError, match="dose"):
        model.predict_dose(ctrl, "A", float("nan"))


def test_dose_model_on_a_graded_screen():
    """CPA with a dose curve: predictions need a dose, a larger dose moves the target further, scores run."""
    grn = tk.simulate.make_grn(n_genes=40, n_regulators=6, seed=0)
    screen = tk.simulate.simulate_dose_screen(grn, perturbations=["TF01", "TF02"], doses=[10.0, 100.0, 1000.0],
                                              ec50=100.0, n_cells=60, n_control=120, seed=0)
    split = tk.models.dose_split(screen, hold_out=[100.0])
    model = CPA(seed=0, dose_key="dose", doser_type="logsigm", **SMALL).fit(split.train, epochs=EPOCHS, progress=False)
    with pytest.raises(ValueError, match="needs a dose: use predict_dose"):
        model.predict(split.ctrl, "TF01")
    curve = tk.models.dose_response(model, split.ctrl, "TF01", [10.0, 1000.0])
    # CPA under-predicts the size of the knockdown on this little data (notebook 06 measures how much);
    # what must hold is the direction: the model uses the dose, so the top dose moves the target further.
    assert curve.loc[1000.0, "TF01"] < curve.loc[10.0, "TF01"] - 0.05 < 0, curve["TF01"].to_dict()
    assert model.predict_dose(split.ctrl, "TF01", 100.0).obs["dose"].eq(100.0).all()
    table = tk.models.evaluate_doses({"CPA": model, "interpolation": tk.models.DoseInterpolation().fit(split.train, progress=False)},
                                     split, metrics=["pearson_delta"])
    assert set(table["model"]) == {"CPA", "interpolation"} and (table["n_conditions"] == 2).all()
    with pytest.raises(ValueError, match="'mlp' doser has no forward pass"):
        CPA(doser_type="mlp")


# ----------------------------------------------------------------------------- Biolord

from tutorial_kit.models import Biolord  # noqa: E402

BIOLORD_SMALL = dict(n_latent=8, n_latent_attribute=4, decoder_width=32, decoder_depth=2, batch_size=64, device="cpu")


@pytest.fixture(scope="module")
def biolord_model(toy_split, tmp_path_factory):
    model = Biolord(seed=0, lr=1e-2, **BIOLORD_SMALL)
    return _fit_in_empty_folder(model, toy_split.train, tmp_path_factory.mktemp("cwd-biolord"))


def test_biolord_predicts_from_training_controls_and_writes_nothing(toy_split, biolord_model):
    pred = biolord_model.predict(toy_split.ctrl, "A")
    assert pred.shape == toy_split.ctrl.shape and np.isfinite(pred.X).all()
    # the perturbation embedding moves the right genes: 'A' (genes 0-4) against 'B' (genes 5-9), same cells
    other = biolord_model.predict(toy_split.ctrl, "B")
    diff = np.asarray(pred.X.mean(0)).ravel() - np.asarray(other.X.mean(0)).ravel()
    assert diff[:5].mean() > 0.3 and diff[5:10].mean() < -0.3, diff.round(2)
    assert biolord_model.cwd_after_fit == [], f"Biolord wrote into the working directory: {biolord_model.cwd_after_fit}"
    assert len(biolord_model.history_) == EPOCHS and "reconstruction" in biolord_model.history_.columns
    np.testing.assert_array_equal(pred.X, biolord_model.predict(toy_split.ctrl, "A").X)


def test_biolord_latents_and_errors(toy_split, biolord_model):
    assert biolord_model.latent(toy_split.train, "basal").shape == (toy_split.train.n_obs, 8)
    assert biolord_model.latent(toy_split.train, "full").shape[1] > 8
    new_cells = toy_split.ctrl.copy()
    new_cells.obs_names = [f"new{i}" for i in range(new_cells.n_obs)]
    with pytest.raises(ValueError, match="not in training"):
        biolord_model.predict(new_cells, "A")
    with pytest.raises(NotApplicableError, match="unknown perturbation 'A\\+B'"):
        biolord_model.predict(toy_split.ctrl, "A+B")
