"""Tests of tutorial_kit.models.scpram: scPRAM from the paper and the scpram package wrapper."""

from __future__ import annotations

import itertools
import math
import sys
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import tutorial_kit as tk
from tutorial_kit.models import NoChange, ScPRAM, ScpramPackage, holdout, training_hvgs
from tutorial_kit.arrays import to_dense
from tutorial_kit.models.scpram import match_pairs

SMALL = dict(hidden_dim=16, latent_dim=4, batch_size=32, device="cpu")


def _toy(n: int = 30, genes: int = 8, seed: int = 0, perts: tuple[str, ...] = ("IFN",)) -> ad.AnnData:
    """Two cell types with different baselines; each perturbation raises the first half of the genes."""
    rng = np.random.default_rng(seed)
    rows, obs = [], []
    for t, base in (("A", 1.0), ("B", 2.0)):
        for label in ("control", *perts):
            effect = np.zeros(genes)
            if label != "control":
                effect[: genes // 2] = 1.5
            rows.append(np.abs(base + effect + rng.normal(scale=0.5, size=(n, genes))))
            obs += [(t, label)] * n
    obs = pd.DataFrame(obs, columns=["cell_type", "perturbation"], index=[f"c{i}" for i in range(len(obs))])
    return ad.AnnData(np.vstack(rows).astype(np.float32), obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(genes)]))


@pytest.fixture(scope="module")
def toy_split():
    return holdout(_toy(), cell_type="B", perturbation="IFN")


@pytest.fixture(scope="module")
def toy_model(toy_split):
    return ScPRAM(**SMALL, seed=0).fit(toy_split.train, epochs=3, progress=False)


# ------------------------------------------------------------------ shapes and bookkeeping


def test_fit_predict_shapes_and_history(toy_split, toy_model):
    pred = toy_model.predict(toy_split.ctrl, "IFN")
    assert pred.shape == toy_split.ctrl.shape
    assert set(pred.obs["perturbation"]) == {"IFN"} and pred.obs["predicted"].all()
    assert np.all(pred.X >= 0)  # the decoder ends in a ReLU
    assert list(toy_model.history_.columns) == ["loss", "reconstruction", "kl"]
    assert len(toy_model.history_) == 3 == toy_model.epochs_
    h = toy_model.history_
    np.testing.assert_allclose(h["loss"], h["reconstruction"] + toy_model.kl_weight * h["kl"], rtol=1e-5)
    assert toy_model.latent(toy_split.ctrl).shape == (toy_split.ctrl.n_obs, 4)
    # keys: the 30 control cells of A (B has no perturbed cells in training, so it gives no pairs)
    assert toy_model.shifts_["IFN"].shape == (30, 4) == toy_model.keys_["IFN"].shape
    assert toy_model.skipped_types_["IFN"] == ["B"]
    assert toy_model.seconds_per_epoch_ > 0


def test_pairs_are_within_a_cell_type_and_cover_every_control(toy_split, toy_model):
    pairs = toy_model.pairs_["IFN"]
    obs = toy_split.train.obs
    assert (obs.loc[pairs["control"], "cell_type"].to_numpy() == pairs["cell_type"].to_numpy()).all()
    assert (obs.loc[pairs["perturbed"], "cell_type"].to_numpy() == pairs["cell_type"].to_numpy()).all()
    assert (obs.loc[pairs["control"], "perturbation"] == "control").all()
    assert (obs.loc[pairs["perturbed"], "perturbation"] == "IFN").all()
    ctrl_a = obs.index[(obs["cell_type"] == "A") & (obs["perturbation"] == "control")]
    assert sorted(pairs["control"]) == sorted(ctrl_a)  # each control cell exactly once
    # shifts are perturbed latent minus control latent of each pair
    z = toy_model.latent(toy_split.train)
    pos = {name: i for i, name in enumerate(toy_split.train.obs_names)}
    expected = z[[pos[p] for p in pairs["perturbed"]]] - z[[pos[c] for c in pairs["control"]]]
    np.testing.assert_allclose(toy_model.shifts_["IFN"], expected, atol=1e-5)


# ------------------------------------------------------------------ optimal transport


def test_match_pairs_equal_sizes_is_an_optimal_one_to_one_matching():
    rng = np.random.default_rng(1)
    zc, zp = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    partner, plan = match_pairs(zc, zp)
    assert sorted(partner.tolist()) == list(range(5))  # a permutation
    np.testing.assert_allclose(plan.sum(axis=1), 0.2)
    np.testing.assert_allclose(plan.sum(axis=0), 0.2)
    cost = ((zc[:, None, :] - zp[None, :, :]) ** 2).sum(-1)
    best = min(itertools.permutations(range(5)), key=lambda p: cost[range(5), p].sum())
    assert partner.tolist() == list(best)


def test_match_pairs_unequal_sizes_keeps_the_marginals_and_matches_every_control():
    rng = np.random.default_rng(2)
    zc, zp = rng.normal(size=(7, 2)), rng.normal(size=(3, 2))
    partner, plan = match_pairs(zc, zp)
    assert plan.shape == (7, 3) and partner.shape == (7,)
    np.testing.assert_allclose(plan.sum(axis=1), 1 / 7)
    np.testing.assert_allclose(plan.sum(axis=0), 1 / 3)
    assert np.array_equal(partner, plan.argmax(axis=1))
    assert set(partner.tolist()) <= {0, 1, 2}
    # each control cell's partner carries at least half of its mass (1/7 split over <= 2 columns)
    assert np.all(plan[np.arange(7), partner] >= 0.5 / 7 - 1e-12)


def test_large_groups_are_subsampled_with_the_seed(toy_split):
    a = ScPRAM(**SMALL, seed=0, max_ot_cells=10).fit(toy_split.train, epochs=1, progress=False)
    b = ScPRAM(**SMALL, seed=0, max_ot_cells=10).fit(toy_split.train, epochs=1, progress=False)
    assert len(a.pairs_["IFN"]) == 10
    assert a.pairs_["IFN"].equals(b.pairs_["IFN"])
    assert a.pairs_["IFN"]["perturbed"].nunique() == 10  # 10 x 10: a one-to-one matching


# ------------------------------------------------------------------ attention


def test_attention_weights_sum_to_one_and_use_only_the_top_fraction(toy_split, toy_model):
    weights, index = toy_model.attention(toy_split.ctrl)
    k = math.ceil(0.05 * 30)
    assert weights.shape == index.shape == (toy_split.ctrl.n_obs, k)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert np.all(weights > 0)
    # the kept keys are the k most cosine-similar ones, most similar first
    q, keys = toy_model.latent(toy_split.ctrl), toy_model.keys_["IFN"]
    sim = (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (keys / np.linalg.norm(keys, axis=1, keepdims=True)).T
    top = np.sort(sim, axis=1)[:, ::-1][:, :k]
    np.testing.assert_allclose(np.take_along_axis(sim, index, axis=1), top, atol=1e-6)


def test_weighting_options(toy_split):
    model = ScPRAM(**SMALL, seed=0, top_fraction=0.3).fit(toy_split.train, epochs=2, progress=False)
    q, keys = model.latent(toy_split.ctrl), model.keys_["IFN"]
    w_soft, idx = model.attention(toy_split.ctrl, "IFN")
    sim = np.take_along_axis(
        (q / np.linalg.norm(q, axis=1, keepdims=True)) @ (keys / np.linalg.norm(keys, axis=1, keepdims=True)).T,
        idx, axis=1)
    soft = np.exp(sim / model.temperature)
    np.testing.assert_allclose(w_soft, soft / soft.sum(axis=1, keepdims=True), rtol=1e-5)
    model.temperature = 0.01  # a sharp softmax puts (almost) all weight on the most similar key
    assert model.attention(toy_split.ctrl)[0][:, 0].min() > w_soft[:, 0].max()
    model.weighting = "sum"  # the package's normalization: similarity / sum of similarities
    w_sum, idx_sum = model.attention(toy_split.ctrl)
    assert np.array_equal(idx_sum, idx)
    np.testing.assert_allclose(w_sum, sim / sim.sum(axis=1, keepdims=True), rtol=1e-5)


def test_each_cell_has_its_own_attention_and_shift(toy_split, toy_model):
    weights, index = toy_model.attention(toy_split.ctrl)
    shifts = toy_model.cell_shifts(toy_split.ctrl)
    assert not np.array_equal(index[0], index[1]) or not np.allclose(weights[0], weights[1])
    assert np.ptp(shifts, axis=0).max() > 1e-3  # different cells, different shifts
    z = toy_model.latent(toy_split.ctrl)
    pred = toy_model.predict(toy_split.ctrl, "IFN").X
    np.testing.assert_allclose(pred, np.maximum(toy_model._decode(z + shifts), 0.0), atol=1e-5)


def test_package_gives_every_cell_the_same_latent_shift(toy_split, toy_model):
    """The teaching point of 05_scpram: the package uses the first cell's attention for every cell."""
    pkg = ScpramPackage(hidden_dim=16, latent_dim=4, batch_size=32, seed=0, device="cpu")
    pkg.fit(toy_split.train, epochs=2, progress=False)
    pred = pkg.predict(toy_split.ctrl, "IFN")
    assert pred.shape == toy_split.ctrl.shape and pkg.history_.empty and pkg.epochs_ == 2
    assert (pred.obs_names == toy_split.ctrl.obs_names).all()
    package_shift = pkg.last_latent_shift_
    assert package_shift.shape == (toy_split.ctrl.n_obs, 4)
    assert np.ptp(package_shift, axis=0).max() < 1e-5  # one shared delta
    assert np.abs(package_shift).max() > 1e-3  # ... that is not zero
    assert np.ptp(toy_model.cell_shifts(toy_split.ctrl), axis=0).max() > 1e-3  # ours: one per cell


def test_package_progress_bar_and_query_without_cell_type(toy_split, capsys):
    pkg = ScpramPackage(hidden_dim=8, latent_dim=2, batch_size=64, seed=0, device="cpu")
    pkg.fit(toy_split.train, epochs=1, progress=True)
    assert "Training Epoch" in capsys.readouterr().err
    ctrl = toy_split.ctrl.copy()
    del ctrl.obs["cell_type"]
    assert pkg.predict(ctrl, "IFN").shape == ctrl.shape


# ------------------------------------------------------------------ determinism


def test_same_seed_same_numbers_other_seed_other_numbers(toy_split):
    runs = [ScPRAM(**SMALL, seed=s).fit(toy_split.train, epochs=2, progress=False) for s in (5, 5, 6)]
    preds = [m.predict(toy_split.ctrl, "IFN").X for m in runs]
    assert np.array_equal(preds[0], preds[1])
    assert runs[0].history_.equals(runs[1].history_)
    assert runs[0].pairs_["IFN"].equals(runs[1].pairs_["IFN"])
    assert not np.allclose(preds[0], preds[2])


def test_progress_bar(toy_split, capsys):
    ScPRAM(**SMALL, seed=0).fit(toy_split.train, epochs=1, progress=True)
    assert "scPRAM" in capsys.readouterr().err


# ------------------------------------------------------------------ errors


def test_no_cell_type_with_both_conditions_is_an_error():
    data = _toy()
    keep = ((data.obs["cell_type"] == "A") & (data.obs["perturbation"] == "control")) | (
        (data.obs["cell_type"] == "B") & (data.obs["perturbation"] == "IFN"))
    with pytest.raises(ValueError, match="no training cell type has both 'control' and 'IFN'"):
        ScPRAM(**SMALL).fit(data[keep].copy(), epochs=1, progress=False)


def test_no_control_cells_is_an_error():
    data = _toy()
    with pytest.raises(ValueError, match="no control cells"):
        ScPRAM(**SMALL).fit(data[data.obs["perturbation"] == "IFN"].copy(), epochs=1, progress=False)


def test_prediction_errors(toy_split, toy_model):
    with pytest.raises(ValueError, match="unknown perturbation 'LPS'"):
        toy_model.predict(toy_split.ctrl, "LPS")
    with pytest.raises(ValueError, match="unknown perturbation 'LPS'"):
        toy_model.attention(toy_split.ctrl, "LPS")
    with pytest.raises(ValueError, match="genes of ctrl differ"):
        toy_model.predict(toy_split.ctrl[:, ::-1].copy(), "IFN")
    with pytest.raises(ValueError, match="genes differ"):
        toy_model.latent(toy_split.ctrl[:, :4].copy())
    with pytest.raises(RuntimeError, match="not fitted"):
        ScPRAM(**SMALL).attention(toy_split.ctrl)
    with pytest.raises(RuntimeError, match="not fitted"):
        ScPRAM(**SMALL).latent(toy_split.ctrl)


def test_output_layer_option(toy_split, toy_model):
    import torch

    assert isinstance(toy_model.module_["decoder"][-1], torch.nn.Linear)  # the course's default
    assert (toy_model.predict(toy_split.ctrl, "IFN").X >= 0).all()  # clipped: log expression is >= 0
    relu = ScPRAM(**SMALL, seed=0, output_relu=True).fit(toy_split.train, epochs=1, progress=False)
    assert isinstance(relu.module_["decoder"][-1], torch.nn.ReLU)  # the package's choice
    assert relu.predict(toy_split.ctrl, "IFN").shape == toy_split.ctrl.shape


def test_perturbation_must_be_named_when_there_are_several():
    split = holdout(_toy(n=12, perts=("IFN", "LPS")), cell_type="B", perturbation="IFN")
    model = ScPRAM(**SMALL, seed=0).fit(split.train, epochs=1, progress=False)
    assert model.perturbations_ == ["IFN", "LPS"]
    with pytest.raises(ValueError, match="name the perturbation"):
        model.cell_shifts(split.ctrl)
    assert model.cell_shifts(split.ctrl, "LPS").shape == (split.ctrl.n_obs, 4)
    assert model.skipped_types_ == {"IFN": ["B"], "LPS": []}  # B keeps its LPS cells
    assert len(model.pairs_["LPS"]) == 24


@pytest.mark.parametrize("option, value", [
    ("top_fraction", 0.0), ("top_fraction", 1.5), ("weighting", "max"), ("latent_dim", 0),
    ("hidden_dim", 2.5), ("kl_weight", -1.0), ("noise_rate", -0.1), ("weight_decay", -1.0),
    ("temperature", 0), ("lr", True), ("max_ot_cells", 0),
])
def test_bad_options(option, value):
    with pytest.raises(ValueError, match=option):
        ScPRAM(**{option: value})


def test_package_bad_option():
    with pytest.raises(ValueError, match="top_fraction"):
        ScpramPackage(top_fraction=2.0)


def test_missing_pot_gives_the_install_hint(toy_split, monkeypatch):
    monkeypatch.setitem(sys.modules, "ot", None)
    with pytest.raises(ImportError, match="pip install POT"):
        ScPRAM(**SMALL).fit(toy_split.train, epochs=1, progress=False)


def test_missing_scpram_gives_the_install_hint(toy_split, monkeypatch):
    monkeypatch.setitem(sys.modules, "scpram", None)
    monkeypatch.setitem(sys.modules, "scpram.models", None)
    with pytest.raises(ImportError, match=r"pip install --no-deps scpram==0\.0\.3"):
        ScpramPackage(device="cpu").fit(toy_split.train, epochs=1, progress=False)


# ------------------------------------------------------------------ real data (Kang CI)


@pytest.fixture(scope="module")
def kang():
    adata = tk.data.load_kang_scgen_valid()
    split = training_hvgs(holdout(adata, cell_type="CD4T", perturbation="IFN-beta"), n_top_genes=2000)
    # the CI budget of notebook 05 (10 epochs), with the default linear output layer
    model = ScPRAM(seed=0, device="cpu").fit(split.train, epochs=tk.config.epochs("scpram", tier="ci"), progress=False)
    return split, model.predict(split.ctrl, "IFN-beta")


def _scores(pred, split):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NoChange has an undefined pearson_delta
        table = tk.metrics.evaluate(pred, split.true, split.ctrl, k_overlap=100)
    return table.set_index(["metric", "gene_set"])["value"]


@pytest.mark.slow
def test_kang_beats_no_change_and_keeps_per_cell_spread(kang):
    split, pred = kang
    ours = _scores(pred, split)
    none = _scores(NoChange().fit(split.train).predict(split.ctrl, "IFN-beta"), split)
    # NoChange predicts no change at all: its pearson_delta is undefined; ours follows the real change
    assert np.isnan(none[("pearson_delta", "all")])
    assert ours[("pearson_delta", "all")] > 0.25 and ours[("pearson_delta", "top20_de")] > 0.4
    assert ours[("mse_top_de", "top20_de")] < none[("mse_top_de", "top20_de")]
    # not collapsed to one profile: the cells keep a spread on the top DE genes, and the per-gene
    # variances follow the real ones
    P, T = to_dense(pred.X, dtype=np.float32), to_dense(split.true.X, dtype=np.float32)
    de = tk.metrics.top_de_genes(T, to_dense(split.ctrl.X, dtype=np.float32), k=100)
    # (decoded cells are means of the decoder, without the sampling noise of real cells: smaller, not zero)
    assert P[:, de].var(axis=0).sum() > 0.05 * T[:, de].var(axis=0).sum()
    assert np.corrcoef(P.var(axis=0), T.var(axis=0))[0, 1] > 0.4
