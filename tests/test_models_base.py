"""Tests of tutorial_kit.models.base (split, training HVGs, the model interface) and the baselines.

Must also pass on the old stack of the scgen environment (anndata 0.9.2, numpy 1.26,
pandas 2.1.4, scanpy 1.9.8): only APIs available there are used.
"""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import tutorial_kit as tk
from tutorial_kit.models import Holdout, MeanShift, NoChange, PerturbationModel, holdout, training_hvgs


def _toy(seed: int = 0, n_per: int = 20, n_genes: int = 6, types=("A", "B", "C")) -> ad.AnnData:
    """Three cell types x (control, IFN), log-normalized-like values; IFN adds +1 to every gene."""
    rng = np.random.default_rng(seed)
    rows = [(t, p) for t in types for p in ("control", "IFN") for _ in range(n_per)]
    obs = pd.DataFrame(rows, columns=["cell_type", "perturbation"])
    obs.index = [f"cell{i}" for i in range(len(obs))]
    X = rng.gamma(2.0, 0.5, size=(len(obs), n_genes)) + (obs["perturbation"] == "IFN").to_numpy()[:, None]
    var = pd.DataFrame(index=[f"g{j}" for j in range(n_genes)])
    return ad.AnnData(X.astype(np.float32), obs=obs, var=var)


@pytest.fixture()
def toy():
    return _toy()


@pytest.fixture(scope="module")
def kang():
    return tk.data.load_kang_scgen_valid()


# --------------------------------------------------------------------------- holdout


def test_holdout_parts_sizes_and_membership(toy):
    split = holdout(toy, cell_type="B", perturbation="IFN")
    assert isinstance(split, Holdout)
    assert (split.train.n_obs, split.ctrl.n_obs, split.true.n_obs) == (100, 20, 20)
    assert (split.cell_type, split.perturbation) == ("B", "IFN")
    assert (split.cell_type_key, split.perturbation_key) == ("cell_type", "perturbation")
    # the held-out type's control cells are in train, its perturbed cells are not
    assert set(split.ctrl.obs_names) <= set(split.train.obs_names)
    assert not set(split.true.obs_names) & set(split.train.obs_names)
    assert set(split.ctrl.obs["cell_type"]) == {"B"} and set(split.ctrl.obs["perturbation"]) == {"control"}
    assert set(split.true.obs["cell_type"]) == {"B"} and set(split.true.obs["perturbation"]) == {"IFN"}
    b_train = split.train.obs[split.train.obs["cell_type"] == "B"]
    assert set(b_train["perturbation"]) == {"control"}
    # every other cell is kept
    assert split.train.n_obs + split.true.n_obs == toy.n_obs
    assert list(split.train.var_names) == list(toy.var_names)


def test_holdout_returns_copies_not_views(toy):
    before = toy.X.copy()
    split = holdout(toy, cell_type="A", perturbation="IFN")
    for part in (split.train, split.ctrl, split.true):
        assert not part.is_view
        part.X[:] = -1.0
        part.obs["cell_type"] = "changed"
    np.testing.assert_array_equal(toy.X, before)
    assert set(toy.obs["cell_type"]) == {"A", "B", "C"}


def test_holdout_custom_keys_and_control_label(toy):
    data = toy.copy()
    data.obs = data.obs.rename(columns={"cell_type": "ct", "perturbation": "cond"})
    data.obs["cond"] = data.obs["cond"].replace({"control": "ctrl"})
    split = holdout(data, cell_type="C", perturbation="IFN", cell_type_key="ct", perturbation_key="cond",
                    control="ctrl")
    assert (split.cell_type_key, split.perturbation_key) == ("ct", "cond")
    assert split.ctrl.n_obs == 20 and set(split.ctrl.obs["cond"]) == {"ctrl"}


def test_holdout_errors(toy):
    with pytest.raises(ValueError, match=r"holdout: unknown cell type 'Z' in obs\['cell_type'\]; known: \['A', 'B', 'C'\]"):
        holdout(toy, cell_type="Z", perturbation="IFN")
    with pytest.raises(ValueError, match=r"unknown perturbation 'LPS'.*known: \['IFN', 'control'\]"):
        holdout(toy, cell_type="A", perturbation="LPS")
    with pytest.raises(ValueError, match="not the control label 'control'"):
        holdout(toy, cell_type="A", perturbation="control")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['celltype'\]"):
        holdout(toy, cell_type="A", perturbation="IFN", cell_type_key="celltype")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['condition'\]"):
        holdout(toy, cell_type="A", perturbation="IFN", perturbation_key="condition")
    # empty parts: no IFN cells of A, no control cells of A, no IFN cells elsewhere
    no_true = toy[~((toy.obs["cell_type"] == "A") & (toy.obs["perturbation"] == "IFN"))].copy()
    with pytest.raises(ValueError, match="no cells in 'IFN' cells of 'A'"):
        holdout(no_true, cell_type="A", perturbation="IFN")
    no_ctrl = toy[~((toy.obs["cell_type"] == "A") & (toy.obs["perturbation"] == "control"))].copy()
    with pytest.raises(ValueError, match="no cells in 'control' cells of 'A'"):
        holdout(no_ctrl, cell_type="A", perturbation="IFN")
    only_a = toy[(toy.obs["cell_type"] == "A") | (toy.obs["perturbation"] == "control")].copy()
    with pytest.raises(ValueError, match="no cells in 'IFN' cells of any other cell type"):
        holdout(only_a, cell_type="A", perturbation="IFN")


# --------------------------------------------------------------------------- training_hvgs


def _leaky_data(n_genes: int = 40) -> ad.AnnData:
    """Gene g0 is nearly constant everywhere except in the held-out (B, IFN) cells, where it varies hugely.

    Every gene has mean about 1.5 (one mean bin of the seurat flavour); gene j has noise sd 0.05 + 0.005 j.
    """
    data = _toy(seed=1, n_per=30, n_genes=n_genes)
    rng = np.random.default_rng(5)
    held = ((data.obs["cell_type"] == "B") & (data.obs["perturbation"] == "IFN")).to_numpy()
    sd = 0.05 + 0.005 * np.arange(n_genes)
    x = 1.5 + rng.normal(size=data.shape) * sd[None, :]
    x[:, 0] = 1.5 + rng.normal(0, 1e-3, size=data.n_obs)
    x[held, 0] = rng.choice([0.5, 2.5], size=held.sum())
    data.X = x.astype(np.float32)
    return data


def test_training_hvgs_choose_genes_on_training_cells_only():
    import scanpy as sc

    data = _leaky_data()
    split = holdout(data, cell_type="B", perturbation="IFN")
    # on all cells (the leak), g0 is the most variable gene...
    probe = data.copy()
    sc.pp.highly_variable_genes(probe, n_top_genes=10, flavor="seurat")
    assert bool(probe.var.loc["g0", "highly_variable"])
    # ...but chosen on training cells only, it is not
    chosen = training_hvgs(split, n_top_genes=10)
    assert "g0" not in chosen.train.var_names
    assert chosen.train.n_vars == 10
    # same genes as scanpy on the training cells
    probe = split.train.copy()
    sc.pp.highly_variable_genes(probe, n_top_genes=10, flavor="seurat")
    assert list(chosen.train.var_names) == list(probe.var_names[probe.var["highly_variable"].to_numpy()])


def test_training_hvgs_parts_share_genes_in_original_order(toy):
    split = holdout(toy, cell_type="A", perturbation="IFN")
    chosen = training_hvgs(split, n_top_genes=4)
    genes = list(chosen.train.var_names)
    assert len(genes) == 4
    assert list(chosen.ctrl.var_names) == genes and list(chosen.true.var_names) == genes
    order = [list(toy.var_names).index(g) for g in genes]
    assert order == sorted(order)
    # cells, labels and keys unchanged; the input split is not modified
    assert chosen.ctrl.n_obs == split.ctrl.n_obs and chosen.true.n_obs == split.true.n_obs
    assert chosen._replace(train=None, ctrl=None, true=None) == split._replace(train=None, ctrl=None, true=None)
    assert split.train.n_vars == toy.n_vars
    np.testing.assert_array_equal(chosen.ctrl.X, split.ctrl[:, genes].X)
    assert not chosen.train.is_view
    # all genes: every gene kept
    assert list(training_hvgs(split, n_top_genes=toy.n_vars).train.var_names) == list(toy.var_names)


def test_training_hvgs_refuses_counts_and_bad_sizes(toy):
    split = holdout(toy, cell_type="A", perturbation="IFN")
    counts = split._replace(train=split.train.copy())
    counts.train.X = np.round(split.train.X * 30).astype(np.float32)
    with pytest.raises(ValueError, match="looks like raw counts"):
        training_hvgs(counts, n_top_genes=3)
    sparse_counts = split._replace(train=counts.train.copy())
    sparse_counts.train.X = sp.csr_matrix(counts.train.X)
    with pytest.raises(ValueError, match="looks like raw counts"):
        training_hvgs(sparse_counts, n_top_genes=3)
    for bad in (0, -1, toy.n_vars + 1):
        with pytest.raises(ValueError, match=rf"n_top_genes must be between 1 and {toy.n_vars}, got {bad}"):
            training_hvgs(split, n_top_genes=bad)


# --------------------------------------------------------------------------- the interface


@pytest.mark.parametrize("cls", [NoChange, MeanShift])
def test_fit_predict_contract(toy, cls):
    split = holdout(toy, cell_type="B", perturbation="IFN")
    ctrl_before = split.ctrl.copy()
    train_before = split.train.copy()
    model = cls(seed=3)
    assert not model.is_fitted and "not fitted" in repr(model)
    assert model.seconds_per_epoch_ is None
    assert model.fit(split.train, progress=False) is model
    assert model.is_fitted and "fitted" in repr(model) and "seed=3" in repr(model)
    assert model.perturbations_ == ["IFN"]
    assert list(model.genes_) == list(split.train.var_names)
    assert model.fit_seconds_ is not None and model.fit_seconds_ >= 0
    assert model.epochs_ == 0 and model.seconds_per_epoch_ is None  # closed form: no epochs
    pred = model.predict(split.ctrl, "IFN")
    assert isinstance(pred, ad.AnnData) and pred.shape == split.ctrl.shape
    assert pred.X.dtype == np.float32
    assert list(pred.obs_names) == list(split.ctrl.obs_names)
    assert list(pred.var_names) == list(split.ctrl.var_names)
    assert set(pred.obs["perturbation"]) == {"IFN"}
    assert pred.obs["predicted"].all()
    assert list(pred.obs["cell_type"]) == list(split.ctrl.obs["cell_type"])
    # inputs untouched, output independent of them
    np.testing.assert_array_equal(split.ctrl.X, ctrl_before.X)
    pd.testing.assert_frame_equal(split.ctrl.obs, ctrl_before.obs)
    np.testing.assert_array_equal(split.train.X, train_before.X)
    assert "predicted" not in split.ctrl.obs
    pred.obs["cell_type"] = "x"
    assert set(split.ctrl.obs["cell_type"]) == {"B"}


def test_predict_categorical_labels_and_sparse_input(toy):
    data = toy.copy()
    data.obs["perturbation"] = data.obs["perturbation"].astype("category")
    data.X = sp.csr_matrix(data.X)
    split = holdout(data, cell_type="A", perturbation="IFN")
    model = MeanShift().fit(split.train, progress=False)
    pred = model.predict(split.ctrl, "IFN")
    assert set(pred.obs["perturbation"].astype(str)) == {"IFN"}
    np.testing.assert_allclose(pred.X, split.ctrl.X.toarray() + model.shift("IFN")[None, :], rtol=1e-6)


def test_nochange_returns_control_cells(toy):
    split = holdout(toy, cell_type="C", perturbation="IFN")
    pred = NoChange().fit(split.train).predict(split.ctrl, "IFN")
    np.testing.assert_array_equal(pred.X, split.ctrl.X)


def test_seed_default_and_device():
    assert NoChange().seed == tk.config.default_seed()
    assert NoChange(seed=7).seed == 7
    assert NoChange(device="cpu").device == "cpu"


def test_fit_errors(toy):
    model = MeanShift()
    with pytest.raises(ValueError, match=r"MeanShift.fit: .*missing column\(s\) \['condition'\]"):
        model.fit(toy, perturbation_key="condition")
    with pytest.raises(ValueError, match=r"no control cells.*no 'ctrl' label.*Pass control='your label'"):
        model.fit(toy, control="ctrl")
    only_ctrl = toy[toy.obs["perturbation"] == "control"].copy()
    with pytest.raises(ValueError, match="no cells in perturbed labels"):
        model.fit(only_ctrl)
    nan = toy.copy()
    nan.X[3, 2] = np.nan
    with pytest.raises(ValueError, match="MeanShift.fit: .X contains NaN or infinite values"):
        model.fit(nan)
    for bad in (0, -2):
        with pytest.raises(ValueError, match=f"epochs must be at least 1, got {bad}"):
            model.fit(toy, epochs=bad)
    assert not model.is_fitted  # failed fits leave the model unfitted


def test_predict_errors(toy):
    split = holdout(toy, cell_type="B", perturbation="IFN")
    model = MeanShift()
    with pytest.raises(RuntimeError, match=r"MeanShift.predict: the model is not fitted; call .fit\(train\) first"):
        model.predict(split.ctrl, "IFN")
    model.fit(split.train)
    with pytest.raises(ValueError, match=r"unknown perturbation 'LPS'; this model was trained on \['IFN'\]"):
        model.predict(split.ctrl, "LPS")
    with pytest.raises(ValueError, match=r"differ from the 6 training genes \(1 missing, e.g. \['g5'\]"):
        model.predict(split.ctrl[:, :5].copy(), "IFN")
    with pytest.raises(ValueError, match=r"\(0 missing.*or a different order\).*ctrl\[:, model.genes_\]"):
        model.predict(split.ctrl[:, ::-1].copy(), "IFN")
    with pytest.raises(ValueError, match=r"ctrl must hold control cells only.*also has \['IFN'\]"):
        model.predict(split.true, "IFN")
    with pytest.raises(ValueError, match="no cells in control cells to predict from"):
        model.predict(split.ctrl[:0].copy(), "IFN")
    nan = split.ctrl.copy()
    nan.X[0, 0] = np.inf
    with pytest.raises(ValueError, match="MeanShift.predict: .X contains NaN or infinite values"):
        model.predict(nan, "IFN")
    # ctrl without the perturbation column is accepted (nothing to check)
    bare = split.ctrl.copy()
    del bare.obs["perturbation"]
    assert set(model.predict(bare, "IFN").obs["perturbation"]) == {"IFN"}


def test_subclass_with_epochs_reports_seconds_per_epoch(toy):
    class Slow(PerturbationModel):
        name = "slow"

        def _fit(self, adata, *, epochs, progress):
            self.epochs_ = epochs

        def _predict(self, ctrl, perturbation):
            return np.zeros(ctrl.shape)

    model = Slow(seed=0).fit(toy, epochs=4)
    assert model.epochs_ == 4
    assert model.seconds_per_epoch_ == pytest.approx(model.fit_seconds_ / 4)
    default = Slow(seed=0).fit(toy)
    assert default.epochs_ == tk.config.epochs("vae")


# --------------------------------------------------------------------------- MeanShift


def test_meanshift_shift_is_unweighted_mean_over_cell_types():
    # type T: 1 control (0), 3 IFN cells (2, 2, 2) -> shift 2; type B: 2 control (1, 3), 1 IFN (6) -> 4
    obs = pd.DataFrame({
        "cell_type": ["T", "T", "T", "T", "B", "B", "B"],
        "perturbation": ["control", "IFN", "IFN", "IFN", "control", "control", "IFN"],
    }, index=[f"c{i}" for i in range(7)])
    X = np.array([[0, 10], [2, 10], [2, 13], [2, 16], [1, 0], [3, 0], [6, 1]], dtype=np.float32)
    model = MeanShift().fit(ad.AnnData(X, obs=obs))
    # gene 0: (2 + 4) / 2 = 3 (a cell-weighted mean would be 2.5); gene 1: (3 + 1) / 2 = 2
    np.testing.assert_allclose(model.shift("IFN"), [3.0, 2.0])
    assert sorted(model.shifts_["IFN"].index) == ["B", "T"]
    np.testing.assert_allclose(model.shifts_["IFN"].loc["T"].to_numpy(), [2.0, 3.0])
    ctrl = ad.AnnData(np.array([[1.0, 1.0]], dtype=np.float32), obs=obs.iloc[:1])
    np.testing.assert_allclose(model.predict(ctrl, "IFN").X, [[4.0, 3.0]])


def test_meanshift_skips_types_without_both_labels_and_refuses_none():
    obs = pd.DataFrame({
        "cell_type": ["T", "T", "B", "M"],
        "perturbation": ["control", "IFN", "control", "IFN"],
    }, index=list("abcd"))
    X = np.array([[0.0], [2.0], [5.0], [50.0]], dtype=np.float32)
    model = MeanShift().fit(ad.AnnData(X, obs=obs))
    assert list(model.shifts_["IFN"].index) == ["T"]  # B and M lack one of the labels
    np.testing.assert_allclose(model.shift("IFN"), [2.0])
    no_pair = obs.copy()
    no_pair["cell_type"] = ["T", "B", "T", "B"]
    no_pair["perturbation"] = ["control", "IFN", "control", "IFN"]
    with pytest.raises(ValueError, match="MeanShift.fit: no cell type has both 'control' and 'IFN' cells"):
        MeanShift().fit(ad.AnnData(X, obs=no_pair))


# --------------------------------------------------------------------------- real data


def test_kang_meanshift_beats_nochange_on_pearson_delta(kang):
    split = holdout(kang, cell_type="CD4T", perturbation="IFN-beta")
    assert (split.ctrl.n_obs, split.true.n_obs) == (278, 356)
    split = training_hvgs(split, n_top_genes=500)
    assert split.train.n_vars == 500
    kw = dict(metrics=["pearson_delta", "r2_mean_sqpearson"], n_top_de=20, k_overlap=100, k_top_expressed=100)
    shift = MeanShift(seed=0).fit(split.train, progress=False)
    ms = tk.metrics.evaluate(shift.predict(split.ctrl, "IFN-beta"), split.true, split.ctrl, **kw)
    none = NoChange(seed=0).fit(split.train, progress=False)
    # documented behaviour of pearson_delta: a zero predicted delta is a constant vector,
    # so the correlation is undefined: nan with a RuntimeWarning (never a made-up 0)
    with pytest.warns(RuntimeWarning, match="pearson_delta: the first vector is constant"):
        nc = tk.metrics.evaluate(none.predict(split.ctrl, "IFN-beta"), split.true, split.ctrl, **kw)

    def value(df, metric, gene_set):
        return df[(df.metric == metric) & (df.gene_set == gene_set)].value.iloc[0]

    assert np.isnan(value(nc, "pearson_delta", "all")) and np.isnan(value(nc, "pearson_delta", "top20_de"))
    assert value(ms, "pearson_delta", "all") > 0.5
    assert value(ms, "pearson_delta", "top20_de") > 0.5
    # on raw means NoChange already looks good (baseline expression dominates): why delta metrics are needed
    assert value(nc, "r2_mean_sqpearson", "all") > 0.9


def test_pearson_delta_of_zero_delta_is_nan_with_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = tk.metrics.pearson_delta([1.0, 2.0, 3.0], [1.0, 3.0, 5.0], [1.0, 2.0, 3.0])
    assert np.isnan(value)
    assert any(issubclass(w.category, RuntimeWarning) and "constant" in str(w.message) for w in caught)
