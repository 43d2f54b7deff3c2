"""Tests of the perturbation-level baselines (MeanEffect, Additive) and the linear model of
Ahlmann-Eltze, Huber & Anders (2025): hand-made examples computed with numpy from the
formulas, errors, determinism, and the norman19 CI data."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from tutorial_kit.models.baselines import Additive, MeanEffect
from tutorial_kit.models.linear import LinearModel

GENES = [f"g{i}" for i in range(6)]
TRAIN_LABELS = ["g0", "g1", "g2", "g3"]  # four training conditions, targets among the measured genes
N_CELLS = {"control": 5, "g0": 3, "g1": 4, "g2": 2, "g3": 6}  # unequal: the means must not be weighted


def _toy(seed: int = 0, labels: dict[str, int] | None = None, cell_type: str | list[str] = "K562") -> ad.AnnData:
    labels = N_CELLS if labels is None else labels
    rng = np.random.default_rng(seed)
    obs_labels = np.concatenate([[name] * n for name, n in labels.items()])
    X = rng.normal(loc=2.0, size=(len(obs_labels), len(GENES)))
    for j, name in enumerate(labels):  # a distinct effect per condition
        if name != "control":
            X[obs_labels == name] += rng.normal(scale=1.0 + j, size=len(GENES))
    obs = pd.DataFrame({"perturbation": obs_labels, "cell_type": cell_type})
    obs.index = [f"c{i}" for i in range(len(obs))]
    adata = ad.AnnData(X.astype(np.float32), obs=obs)
    adata.var_names = GENES
    return adata


def _means(adata: ad.AnnData, name: str) -> np.ndarray:
    return np.asarray(adata.X[(adata.obs["perturbation"] == name).to_numpy()], dtype=np.float64).mean(axis=0)


def _ctrl(adata: ad.AnnData) -> ad.AnnData:
    return adata[(adata.obs["perturbation"] == "control").to_numpy()].copy()


def _hand_linear(adata: ad.AnnData, k: int, lam: float) -> tuple[np.ndarray, ...]:
    """G, P, W, b of the paper, computed here with numpy from the formula."""
    Y = np.stack([_means(adata, name) for name in TRAIN_LABELS], axis=1)  # genes x conditions
    b = Y.mean(axis=1)
    U, s, _ = np.linalg.svd(Y - b[:, None], full_matrices=False)
    G = U[:, :k] * s[:k]
    P = np.stack([G[GENES.index(t)] for t in TRAIN_LABELS], axis=1)  # target rows of G
    W = (np.linalg.inv(G.T @ G + lam * np.eye(k)) @ G.T @ (Y - b[:, None]) @ P.T
         @ np.linalg.inv(P @ P.T + lam * np.eye(k)))
    return G, P, W, b


def _align(model_G: np.ndarray, hand_G: np.ndarray) -> np.ndarray:
    """Column signs that turn the hand-made G into the model's (an SVD fixes columns up to sign)."""
    d = np.sign(np.sum(model_G * hand_G, axis=0))
    assert np.all(d != 0)
    return d


# --------------------------------------------------------------------------- the linear model


def test_linear_model_matches_the_formula_by_hand_including_unseen_perturbations():
    adata = _toy()
    k, lam = 2, 0.1
    model = LinearModel(n_components=k, ridge=lam).fit(adata, progress=False)
    G, P, W, b = _hand_linear(adata, k, lam)
    d = _align(model.G_, G)
    np.testing.assert_allclose(model.b_, b, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(model.G_, G * d[None, :], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(model.P_, P * d[:, None], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(model.W_, d[:, None] * W * d[None, :], rtol=1e-6, atol=1e-8)
    ctrl = _ctrl(adata)
    ctrl_mean = _means(adata, "control")
    for label, targets in {"g1": ["g1"], "g4": ["g4"], "g4+g5": ["g4", "g5"], "g0+g5": ["g0", "g5"]}.items():
        p = np.sum([G[GENES.index(t)] for t in targets], axis=0)  # unseen genes: their rows of G
        y = G @ W @ p + b
        np.testing.assert_allclose(model.predict_pseudobulk(label), y, rtol=1e-6, atol=1e-8)
        pred = model.predict(ctrl, label)
        expected = np.asarray(ctrl.X, dtype=np.float64) + (y - ctrl_mean)[None, :]
        np.testing.assert_allclose(pred.X, expected, rtol=1e-5, atol=1e-5)
        assert (pred.obs["perturbation"] == label).all() and pred.obs["predicted"].all()
    assert model.conditions_ == TRAIN_LABELS and model.n_components_ == k


def test_linear_model_default_k_is_capped_at_the_rank_of_the_centred_pseudobulk():
    model = LinearModel().fit(_toy(), progress=False)  # K = 10 asked; 4 conditions -> rank <= 3
    assert model.n_components == 10 and model.n_components_ == 3
    assert model.G_.shape == (6, 3) and model.W_.shape == (3, 3) and model.P_.shape == (3, 4)
    assert model.b_.shape == (6,)


def test_linear_model_without_ridge_is_least_squares():
    adata = _toy(seed=3)
    model = LinearModel(n_components=3, ridge=0.0).fit(adata, progress=False)
    Y = np.stack([_means(adata, n) for n in TRAIN_LABELS], axis=1)
    Yc = Y - Y.mean(axis=1, keepdims=True)
    G, P = model.G_, model.P_
    assert np.linalg.matrix_rank(G) == 3 and np.linalg.matrix_rank(P) == 3  # full rank: a unique solution
    # vec(G W P) = (P' kron G) vec(W): an ordinary least-squares problem in the 9 entries of W
    design = np.kron(P.T, G)
    w_ls, *_ = np.linalg.lstsq(design, Yc.reshape(-1, order="F"), rcond=None)
    W_ls = w_ls.reshape(3, 3, order="F")
    np.testing.assert_allclose(model.W_, W_ls, rtol=1e-6, atol=1e-8)
    tiny = LinearModel(n_components=3, ridge=1e-9).fit(adata, progress=False)
    np.testing.assert_allclose(tiny.W_, W_ls, rtol=1e-4, atol=1e-6)
    big = LinearModel(n_components=3, ridge=100.0).fit(adata, progress=False)
    assert np.linalg.norm(big.W_) < 0.5 * np.linalg.norm(W_ls)  # the penalty shrinks W


def test_linear_model_refuses_unmeasured_targets_and_bad_labels():
    model = LinearModel(n_components=2).fit(_toy(), progress=False)
    ctrl = _ctrl(_toy())
    with pytest.raises(ValueError, match=r"target gene 'KLF1' of 'g1\+KLF1' is not among the 6 measured genes"):
        model.predict(ctrl, "g1+KLF1")
    with pytest.raises(ValueError, match="control label"):
        model.predict(ctrl, "control")
    with pytest.raises(ValueError, match="non-empty string"):
        model.predict(ctrl, "  ")
    with pytest.raises(ValueError, match="malformed"):
        model.predict(ctrl, "g1+")


def test_linear_model_leaves_out_training_perturbations_without_embedding_with_a_warning():
    labels = dict(N_CELLS, NOTMEASURED=3)
    with pytest.warns(UserWarning, match=r"1 of 5 training perturbations .* not among the 6 measured genes"):
        model = LinearModel(n_components=2).fit(_toy(labels=labels), progress=False)
    assert model.dropped_perturbations_ == ["NOTMEASURED"] and model.conditions_ == TRAIN_LABELS
    reference = LinearModel(n_components=2).fit(_toy(), progress=False)  # same cells for g0..g3
    assert model.P_.shape == (2, 4)
    with pytest.raises(ValueError, match="'NOTMEASURED' .* not among the 6 measured genes"):
        model.predict(_ctrl(_toy()), "NOTMEASURED")
    assert reference.dropped_perturbations_ == []


def test_linear_model_needs_two_measured_training_perturbations():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ValueError, match=r"at least 2 training perturbations .* found 1 \['g0'\]"):
            LinearModel().fit(_toy(labels={"control": 4, "g0": 3, "X1": 3, "X2": 3}), progress=False)


@pytest.mark.parametrize("kwargs, match", [
    ({"n_components": 0}, "n_components must be a positive integer"),
    ({"n_components": 2.5}, "n_components must be a positive integer"),
    ({"n_components": True}, "n_components must be a positive integer"),
    ({"ridge": -1.0}, "ridge must be a finite number >= 0"),
    ({"ridge": float("nan")}, "ridge must be a finite number >= 0"),
])
def test_linear_model_checks_its_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LinearModel(**kwargs)


def test_linear_model_before_fit_and_repr():
    model = LinearModel(n_components=3, ridge=0.5, seed=1)
    assert "not fitted" in repr(model) and "n_components=3" in repr(model)
    with pytest.raises(RuntimeError, match="not fitted"):
        model.predict_pseudobulk("g0")
    with pytest.raises(RuntimeError, match="not fitted"):
        model.predict(_ctrl(_toy()), "g0")
    model.fit(_toy(), progress=False)
    assert "fitted" in repr(model) and model.epochs_ == 0 and model.seconds_per_epoch_ is None


def test_linear_model_is_deterministic_and_ignores_the_seed():
    adata = _toy(seed=5)
    a = LinearModel(seed=0).fit(adata, progress=False)
    b = LinearModel(seed=123).fit(adata, progress=False)
    for name in ("G_", "W_", "P_", "b_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    ctrl = _ctrl(adata)
    np.testing.assert_array_equal(a.predict(ctrl, "g4").X, b.predict(ctrl, "g4").X)


# --------------------------------------------------------------------------- mean and additive


def test_mean_effect_is_the_unweighted_mean_of_training_effects_and_predicts_any_label():
    adata = _toy()
    model = MeanEffect().fit(adata, progress=False)
    ctrl_mean = _means(adata, "control")
    hand = np.mean([_means(adata, n) - ctrl_mean for n in TRAIN_LABELS], axis=0)  # one vote per perturbation
    weighted = np.average([_means(adata, n) - ctrl_mean for n in TRAIN_LABELS], axis=0,
                          weights=[N_CELLS[n] for n in TRAIN_LABELS])
    assert not np.allclose(hand, weighted)  # the example tells the two apart
    np.testing.assert_allclose(model.mean_effect_, hand, rtol=1e-6, atol=1e-8)
    ctrl = _ctrl(adata)
    for label in ("g0", "NEVER_SEEN", "A+B"):
        pred = model.predict(ctrl, label)
        np.testing.assert_allclose(pred.X, np.asarray(ctrl.X) + hand[None, :].astype(np.float32), rtol=1e-5,
                                   atol=1e-5)
    assert model.name == "mean"
    with pytest.raises(ValueError, match="control label"):
        model.predict(ctrl, "control")
    with pytest.raises(ValueError, match="non-empty string"):
        model.predict(ctrl, "")


def test_additive_sums_the_single_effects_by_hand():
    adata = _toy()
    model = Additive().fit(adata, progress=False)
    ctrl = _ctrl(adata)
    ctrl_mean = _means(adata, "control")
    hand = (_means(adata, "g0") - ctrl_mean) + (_means(adata, "g2") - ctrl_mean)
    np.testing.assert_allclose(model.shift("g0+g2"), hand, rtol=1e-6, atol=1e-8)
    pred = model.predict(ctrl, "g0+g2")
    np.testing.assert_allclose(pred.X, np.asarray(ctrl.X) + hand[None, :], rtol=1e-5, atol=1e-5)
    # the per-cell spread is the control's: the prediction is the control cells shifted
    np.testing.assert_allclose(np.asarray(pred.X).std(axis=0), np.asarray(ctrl.X).std(axis=0), rtol=1e-4)
    single = model.predict(ctrl, "g3")  # a seen single: its own effect
    np.testing.assert_allclose(single.X.mean(axis=0), _means(adata, "g3"), rtol=1e-5, atol=1e-5)
    three = model.shift("g0+g1+g2")
    np.testing.assert_allclose(three, hand + _means(adata, "g1") - ctrl_mean, rtol=1e-6, atol=1e-8)


def test_additive_refuses_what_it_cannot_build():
    model = Additive().fit(_toy(), progress=False)
    ctrl = _ctrl(_toy())
    with pytest.raises(ValueError, match=r"combination 'g0\+g5' needs the single\(s\) \['g5'\]"):
        model.predict(ctrl, "g0+g5")
    with pytest.raises(ValueError, match=r"needs the single\(s\) \['g4', 'g5'\]"):
        model.predict(ctrl, "g4+g5")
    with pytest.raises(ValueError, match="the single perturbation 'g5' was not seen in training"):
        model.predict(ctrl, "g5")
    with pytest.raises(ValueError, match="control label"):
        model.shift("control")


@pytest.mark.parametrize("cls", [MeanEffect, Additive, LinearModel])
def test_perturbation_level_models_refuse_no_training_perturbations_and_several_cell_types(cls):
    with pytest.raises(ValueError, match="perturbed labels"):
        cls().fit(_toy(labels={"control": 5}), progress=False)
    mixed = _toy(cell_type=["A", "B"] * 10)
    with pytest.raises(ValueError, match="2 cell types"):
        cls().fit(mixed, progress=False)


def test_pseudobulk_is_the_mean_per_group_in_sorted_order():
    import scipy.sparse as sp

    import tutorial_kit as tk

    adata = _toy()
    expected = pd.DataFrame(adata.X, index=adata.obs["perturbation"].to_numpy(), columns=adata.var_names)
    expected = expected.groupby(level=0).mean()  # what notebook 09 computed by hand
    for x in (adata.X, sp.csr_matrix(adata.X)):
        out = tk.models.pseudobulk(ad.AnnData(x, obs=adata.obs, var=adata.var))
        assert list(out.index) == sorted(N_CELLS) and out.index.name == "perturbation"
        assert list(out.columns) == GENES and (out.dtypes == np.float64).all()
        np.testing.assert_allclose(out.to_numpy(), expected.to_numpy(), rtol=1e-6)
        for name in N_CELLS:
            np.testing.assert_array_equal(out.loc[name].to_numpy(), _means(adata, name))
    layered = adata.copy()
    layered.layers["twice"] = 2 * adata.X
    np.testing.assert_allclose(tk.models.pseudobulk(layered, layer="twice"), 2 * tk.models.pseudobulk(adata))
    by_type = tk.models.pseudobulk(_toy(cell_type=["K562", "RPE1"] * 10), by="cell_type")
    assert list(by_type.index) == ["K562", "RPE1"]
    model = MeanEffect().fit(adata, progress=False)  # the baselines are fitted on these means
    np.testing.assert_array_equal(model.control_mean_, tk.models.pseudobulk(adata).loc["control"].to_numpy())


def test_pseudobulk_errors():
    import tutorial_kit as tk

    adata = _toy()
    missing = adata.copy()
    missing.obs["perturbation"] = missing.obs["perturbation"].astype(object)
    missing.obs.iloc[2, missing.obs.columns.get_loc("perturbation")] = np.nan
    for kwargs, data, message in [
        (dict(by="guide"), adata, r"missing column\(s\) \['guide'\]"),
        (dict(layer="counts"), adata, "has no 'counts' layer"),
        ({}, adata[:0], "no cells in adata"),
        ({}, missing, r"1 cell\(s\) have no group \(NaN in obs\['perturbation'\]\)"),
    ]:
        with pytest.raises(ValueError, match=message):
            tk.models.pseudobulk(data, **kwargs)


# --------------------------------------------------------------------------- norman19 (CI data)


def test_norman19_additive_predicts_held_out_doubles():
    import tutorial_kit as tk
    from tutorial_kit import metrics as tkm

    adata = tk.data.load_perturbench_devel("norman19")
    labels = adata.obs["perturbation"].astype(str)
    n_pert = adata.obs["n_perturbations"].to_numpy()
    train = adata[n_pert <= 1].copy()  # control + every single; every double held out
    ctrl = adata[(labels == "control").to_numpy()].copy()
    singles = set(labels[n_pert == 1])
    doubles = sorted(set(labels[n_pert == 2]))
    seen = [d for d in doubles if all(p in singles for p in d.split("+"))]
    assert len(seen) == 5  # the CI file has 5 doubles with both singles
    measured = sorted({t for d in set(labels) - {"control"} for t in d.split("+")} & set(adata.var_names))
    assert measured == ["TMSB4X"]  # only one target gene among the 500 HVGs

    additive = Additive().fit(train, progress=False)
    mean = MeanEffect().fit(train, progress=False)
    ctrl_mean = np.asarray(ctrl.X.mean(axis=0)).ravel()
    k = min(1000, adata.n_vars)
    scores = []
    for double in seen:
        true = np.asarray(adata[(labels == double).to_numpy()].X.mean(axis=0)).ravel()
        add = np.asarray(additive.predict(ctrl, double).X.mean(axis=0)).ravel()
        avg = np.asarray(mean.predict(ctrl, double).X.mean(axis=0)).ravel()
        scores.append({
            "double": double,
            "pd_additive": tkm.pearson_delta(add, true, ctrl_mean),
            "pd_mean": tkm.pearson_delta(avg, true, ctrl_mean),
            "l2_additive": tkm.l2_top_expressed(add, true, ctrl_mean, k=k),
            "l2_mean": tkm.l2_top_expressed(avg, true, ctrl_mean, k=k),
            "l2_no_change": tkm.l2_top_expressed(ctrl_mean, true, ctrl_mean, k=k),  # NoChange predicts ctrl
        })
    table = pd.DataFrame(scores).set_index("double")
    print(table.round(3).to_string())
    # measured on this data: pearson_delta of additive 0.71-0.99 (mean 0.87); L2 additive 0.37-0.52,
    # mean 0.62-2.05, no-change 0.57-2.22
    assert (table["pd_additive"] > 0.6).all() and table["pd_additive"].mean() > 0.8
    assert (table["pd_additive"] > table["pd_mean"]).all()
    assert (table["l2_additive"] < table["l2_mean"]).all()
    assert (table["l2_additive"] < table["l2_no_change"]).all()

    # the paper's linear model embeds a perturbation by its target's row of G: on these 500 genes only
    # TMSB4X is measured, so it cannot be fitted on the singles (a clear error, not a silent result)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(ValueError, match=r"found 1 \['TMSB4X'\]"):
            LinearModel().fit(train, progress=False)
    with pytest.raises(ValueError, match="the single perturbation 'FOXL2' was not seen"):
        additive.predict(ctrl, "FOXL2")
