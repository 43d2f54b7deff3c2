"""Tests of tutorial_kit.models.evaluation: models x seeds on a split, seed summaries, the cell-type loop."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import tutorial_kit as tk
from tutorial_kit.models import MeanShift, NoChange, PerturbationModel, holdout, training_hvgs
from tutorial_kit.models.evaluation import (
    TABLE_COLUMNS,
    HoldoutResult,
    evaluate_cell_types,
    evaluate_holdout,
    summarize_seeds,
)

BASELINES = {"no-change": lambda s: NoChange(seed=s), "mean-shift": lambda s: MeanShift(seed=s)}


def _toy(seed: int = 0, n_per: int = 25, n_genes: int = 12) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    rows = [(t, p) for t in ("A", "B", "C") for p in ("control", "IFN") for _ in range(n_per)]
    obs = pd.DataFrame(rows, columns=["cell_type", "perturbation"])
    obs.index = [f"cell{i}" for i in range(len(obs))]
    effect = np.linspace(-1, 2, n_genes)
    X = rng.gamma(2.0, 0.5, size=(len(obs), n_genes)) + (obs["perturbation"] == "IFN").to_numpy()[:, None] * effect
    var = pd.DataFrame(index=[f"g{j}" for j in range(n_genes)])
    return ad.AnnData(np.clip(X, 0, None).astype(np.float32), obs=obs, var=var)


@pytest.fixture(scope="module")
def toy():
    return _toy()


@pytest.fixture(scope="module")
def toy_result(toy):
    split = holdout(toy, cell_type="B", perturbation="IFN")
    with warnings.catch_warnings():
        # no-change's pearson_delta is undefined (NaN): evaluate_holdout says so in the table, not by a warning
        warnings.simplefilter("error", RuntimeWarning)
        return split, evaluate_holdout(BASELINES, split, seeds=(0, 1, 2), k_overlap=5, progress=False)


@pytest.fixture(scope="module")
def kang():
    return tk.data.load_kang_scgen_valid()


# --------------------------------------------------------------------------- evaluate_holdout


def test_table_columns_and_one_row_per_model_seed_metric_gene_set(toy_result):
    split, res = toy_result
    assert isinstance(res, HoldoutResult)
    table = res.table
    assert tuple(table.columns) == TABLE_COLUMNS
    assert list(table.columns) == [
        "model", "seed", "metric", "gene_set", "value", "n_genes", "fit_seconds", "seconds_per_epoch", "epochs",
    ]
    # the number of (metric, gene_set) rows of one evaluate call, for one perturbation
    one = tk.metrics.evaluate(
        res.predictions[("mean-shift", 0)], split.true, split.ctrl, pca=res.pca, n_top_de=12, k_overlap=5,
        k_top_expressed=12,
    )
    pairs = list(zip(one.metric, one.gene_set))
    assert len(table) == 2 * 3 * len(pairs)
    assert not table.duplicated(["model", "seed", "metric", "gene_set"]).any()
    for (model, seed), group in table.groupby(["model", "seed"], sort=False):
        assert list(zip(group.metric, group.gene_set)) == pairs
    assert list(pd.unique(table.model)) == ["no-change", "mean-shift"]  # dict order
    assert list(table.seed[:3]) == [0] * len(pairs[:3])
    assert set(table.metric) == set(tk.metrics.METRICS) - {"discrimination_rank"}  # one perturbation
    assert (table.epochs == 0).all() and table.seconds_per_epoch.isna().all()  # closed-form baselines
    assert (table.fit_seconds >= 0).all()
    assert table.attrs["cell_type"] == "B" and table.attrs["pca_n_comps"] == 12


def test_predictions_models_and_values_match_evaluate(toy_result):
    split, res = toy_result
    assert set(res.predictions) == set(res.models) == {(m, s) for m in BASELINES for s in (0, 1, 2)}
    model = res.models[("mean-shift", 1)]
    assert isinstance(model, MeanShift) and model.seed == 1 and model.is_fitted
    pred = res.predictions[("mean-shift", 1)]
    assert pred.shape == split.ctrl.shape and pred.obs["predicted"].all()
    np.testing.assert_allclose(pred.X, split.ctrl.X + model.shift("IFN")[None, :], rtol=1e-6)
    expected = tk.metrics.evaluate(
        pred, split.true, split.ctrl, pca=res.pca, n_top_de=12, k_overlap=5, k_top_expressed=12,
    )
    got = res.table[(res.table.model == "mean-shift") & (res.table.seed == 1)]
    np.testing.assert_allclose(got.value.to_numpy(), expected.value.to_numpy(), rtol=1e-10)
    # NoChange predicts the control cells; its pearson_delta is undefined, reported as NaN
    nc = res.table[(res.table.model == "no-change") & (res.table.metric == "pearson_delta")]
    assert nc.value.isna().all()


def test_one_shared_pca_fitted_on_training_cells(toy_result):
    split, res = toy_result
    pca = tk.metrics.fit_pca(split.train.X, n_comps=12, seed=0)
    np.testing.assert_allclose(np.abs(res.pca.components_), np.abs(pca.components_), atol=1e-8)
    np.testing.assert_allclose(res.pca.mean_, split.train.X.mean(0), rtol=1e-5)
    # edistance of NoChange, by hand in that PCA: control vs true cells of B
    by_hand = tk.metrics.edistance(split.ctrl.X, split.true.X, pca=res.pca)
    rows = res.table[(res.table.model == "no-change") & (res.table.metric == "edistance")]
    np.testing.assert_allclose(rows.value.to_numpy(), by_hand, rtol=1e-10)
    assert set(rows.gene_set) == {"pca12"}
    # the same PCA object for every model: mean-shift's edistance uses it too
    ms = res.predictions[("mean-shift", 2)]
    row = res.table[(res.table.model == "mean-shift") & (res.table.seed == 2) & (res.table.metric == "edistance")]
    assert row.value.iloc[0] == pytest.approx(tk.metrics.edistance(ms.X, split.true.X, pca=res.pca), rel=1e-10)
    assert ms.n_vars == res.pca.n_features_in_


def test_pca_components_are_capped_by_the_data():
    small = _toy(n_per=4, n_genes=30)
    split = holdout(small, cell_type="A", perturbation="IFN")  # 20 training cells
    res = evaluate_holdout(BASELINES, split, seeds=(0,), metrics=["edistance"], k_overlap=5, progress=False)
    assert res.pca.n_components_ == 19 and set(res.table.gene_set) == {"pca19"}
    res = evaluate_holdout(BASELINES, split, seeds=(0,), metrics=["edistance"], k_overlap=5, n_pca=3,
                           progress=False)
    assert res.pca.n_components_ == 3


def test_seeds_reach_the_models_and_epochs_are_passed(toy):
    class Recorder(PerturbationModel):
        name = "recorder"

        def _fit(self, adata, *, epochs, progress):
            self.epochs_ = epochs
            self.rng_draw = np.random.rand()  # seeded by the base class from self.seed

        def _predict(self, ctrl, perturbation):
            return np.asarray(ctrl.X) + 1.0

    split = holdout(toy, cell_type="C", perturbation="IFN")
    res = evaluate_holdout({"rec": lambda s: Recorder(seed=s)}, split, seeds=[5, 7], epochs=3,
                           metrics=["mse_top_de"], k_overlap=5, progress=False)
    assert list(res.table.seed) == [5, 7]
    assert (res.table.epochs == 3).all()
    np.testing.assert_allclose(res.table.seconds_per_epoch, res.table.fit_seconds / 3)
    draws = [res.models[("rec", s)].rng_draw for s in (5, 7)]
    again = evaluate_holdout({"rec": lambda s: Recorder(seed=s)}, split, seeds=[5], epochs=1,
                             metrics=["mse_top_de"], k_overlap=5, progress=False)
    assert again.models[("rec", 5)].rng_draw == draws[0] != draws[1]


def test_fitted_models_are_reused_not_retrained(toy):
    class Counting(PerturbationModel):
        name = "counting"
        fits = 0

        def _fit(self, adata, *, epochs, progress):
            Counting.fits += 1
            self.epochs_ = epochs

        def _predict(self, ctrl, perturbation):
            return np.asarray(ctrl.X) + 1.0

    split = holdout(toy, cell_type="C", perturbation="IFN")
    ready = Counting(seed=0).fit(split.train, epochs=2)
    Counting.fits = 0
    factory = {"counting": lambda s: Counting(seed=s)}
    res = evaluate_holdout(factory, split, seeds=(0, 1), epochs=2, metrics=["mse_top_de"], k_overlap=5,
                           progress=False, fitted={("counting", 0): ready})
    assert Counting.fits == 1  # only seed 1 was trained
    assert res.models[("counting", 0)] is ready
    plain = evaluate_holdout(factory, split, seeds=(0, 1), epochs=2, metrics=["mse_top_de"], k_overlap=5, progress=False)
    np.testing.assert_allclose(res.table["value"], plain.table["value"])
    with pytest.raises(ValueError, match="fitted keys must be"):
        evaluate_holdout(factory, split, seeds=(0,), fitted={("other", 0): ready}, progress=False)
    with pytest.raises(ValueError, match="has seed 0, not 1"):
        evaluate_holdout(factory, split, seeds=(1,), fitted={("counting", 1): ready}, progress=False)
    with pytest.raises(ValueError, match="must be a fitted PerturbationModel"):
        evaluate_holdout(factory, split, seeds=(0,), fitted={("counting", 0): Counting(seed=0)}, progress=False)
    other = Counting(seed=0).fit(split.train[:, :5], epochs=1)
    with pytest.raises(ValueError, match="trained on other genes"):
        evaluate_holdout(factory, split, seeds=(0,), fitted={("counting", 0): other}, progress=False)


def test_custom_control_label_and_keys(toy):
    data = toy.copy()
    data.obs = data.obs.rename(columns={"cell_type": "ct", "perturbation": "cond"})
    data.obs["cond"] = data.obs["cond"].replace({"control": "ctrl"})
    split = holdout(data, cell_type="A", perturbation="IFN", cell_type_key="ct", perturbation_key="cond",
                    control="ctrl")
    res = evaluate_holdout(BASELINES, split, seeds=(0,), metrics=["mse_top_de"], k_overlap=5, progress=False)
    assert len(res.table) == 2 and res.models[("mean-shift", 0)].control == "ctrl"


def test_evaluate_holdout_errors(toy):
    split = holdout(toy, cell_type="B", perturbation="IFN")
    kw = dict(metrics=["mse_top_de"], k_overlap=5, progress=False)
    with pytest.raises(ValueError, match="models must be a non-empty dict.*an empty dict"):
        evaluate_holdout({}, split, **kw)
    with pytest.raises(ValueError, match="models must be a non-empty dict.*got list"):
        evaluate_holdout([NoChange], split, **kw)
    with pytest.raises(ValueError, match=r"models\['x'\] must be a factory callable\(seed\)"):
        evaluate_holdout({"x": NoChange()}, split, **kw)
    with pytest.raises(ValueError, match="model names must be non-empty strings"):
        evaluate_holdout({"": lambda s: NoChange(seed=s)}, split, **kw)
    with pytest.raises(ValueError, match="the factory of 'bad' returned str, not a PerturbationModel"):
        evaluate_holdout({"bad": lambda s: "model"}, split, **kw)
    with pytest.raises(ValueError, match=r"the factory of 'lazy' ignored its seed \(asked for 1, the model has 0\)"):
        evaluate_holdout({"lazy": lambda s: NoChange(seed=0)}, split, seeds=(0, 1), **kw)
    with pytest.raises(ValueError, match="seeds is empty"):
        evaluate_holdout(BASELINES, split, seeds=(), **kw)
    with pytest.raises(ValueError, match="seeds must be integers"):
        evaluate_holdout(BASELINES, split, seeds=(0.5,), **kw)
    with pytest.raises(ValueError, match="seeds must be distinct"):
        evaluate_holdout(BASELINES, split, seeds=(1, 1), **kw)
    with pytest.raises(ValueError, match="split must be a tk.models.Holdout.*got tuple"):
        evaluate_holdout(BASELINES, tuple(split), **kw)
    with pytest.raises(ValueError, match=r"unknown metric\(s\)"):
        evaluate_holdout(BASELINES, split, metrics=["r2"], k_overlap=5, progress=False)
    # a single integer seed is accepted
    assert len(evaluate_holdout(BASELINES, split, seeds=3, **kw).table) == 2


# --------------------------------------------------------------------------- summarize_seeds


def _table(values, models=("m",), metric="r2", gene_set="all"):
    rows = [(m, s, metric, gene_set, v) for m, vals in zip(models, values) for s, v in enumerate(vals)]
    return pd.DataFrame(rows, columns=["model", "seed", "metric", "gene_set", "value"])


def test_summarize_seeds_by_hand():
    out = summarize_seeds(_table([[0.2, 0.4, 0.9]]))
    assert list(out.columns) == ["model", "metric", "gene_set", "mean", "sd", "n_seeds", "ci_low", "ci_high"]
    row = out.iloc[0]
    mean = 0.5
    sd = np.sqrt(((0.2 - 0.5) ** 2 + (0.4 - 0.5) ** 2 + (0.9 - 0.5) ** 2) / 2)  # ddof=1: sqrt(0.13)
    half = 4.302652729911275 * sd / np.sqrt(3)  # t_{0.975, 2}
    assert row["mean"] == pytest.approx(mean) and row["sd"] == pytest.approx(sd) and row["n_seeds"] == 3
    assert row["ci_low"] == pytest.approx(mean - half) and row["ci_high"] == pytest.approx(mean + half)
    assert stats.t.ppf(0.975, 2) == pytest.approx(4.302652729911275)
    # a 90% interval is narrower, with t_{0.95, 2}
    row90 = summarize_seeds(_table([[0.2, 0.4, 0.9]]), confidence=0.9).iloc[0]
    assert row90["ci_high"] - row90["mean"] == pytest.approx(stats.t.ppf(0.95, 2) * sd / np.sqrt(3))


def test_summarize_seeds_one_seed_zero_spread_and_nan():
    one = summarize_seeds(_table([[0.7]])).iloc[0]
    assert one["mean"] == 0.7 and one["n_seeds"] == 1
    assert np.isnan(one["sd"]) and np.isnan(one["ci_low"]) and np.isnan(one["ci_high"])
    flat = summarize_seeds(_table([[0.3, 0.3, 0.3]])).iloc[0]
    assert flat["sd"] == 0 and flat["ci_low"] == flat["ci_high"] == pytest.approx(0.3)
    with_nan = summarize_seeds(_table([[1.0, np.nan, 3.0]])).iloc[0]
    assert with_nan["n_seeds"] == 2 and with_nan["mean"] == 2.0
    all_nan = summarize_seeds(_table([[np.nan, np.nan]])).iloc[0]
    assert all_nan["n_seeds"] == 0 and np.isnan(all_nan["mean"])


def test_summarize_seeds_keeps_model_order_and_cell_types(toy_result):
    table = _table([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], models=("zeta", "alpha", "mu"))
    assert list(summarize_seeds(table).model) == ["zeta", "alpha", "mu"]
    _, res = toy_result
    summary = summarize_seeds(res.table)
    assert list(pd.unique(summary.model)) == ["no-change", "mean-shift"]
    assert len(summary) == len(res.table) // 3 and (summary.n_seeds[summary["mean"].notna()] == 3).all()
    two = pd.concat([table.assign(cell_type="T"), table.assign(cell_type="B", value=table.value * 10)])
    out = summarize_seeds(two)
    assert list(out.columns[:4]) == ["cell_type", "model", "metric", "gene_set"]
    assert list(out.cell_type) == ["T"] * 3 + ["B"] * 3
    assert out[(out.cell_type == "B") & (out.model == "mu")]["mean"].iloc[0] == pytest.approx(55.0)


def test_summarize_seeds_errors():
    table = _table([[1.0, 2.0]])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['seed'\]"):
        summarize_seeds(table.drop(columns="seed"))
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        summarize_seeds(table, confidence=95)
    with pytest.raises(ValueError, match="the table is empty"):
        summarize_seeds(table[:0])
    with pytest.raises(ValueError, match="duplicated row"):
        summarize_seeds(pd.concat([table, table]))


# --------------------------------------------------------------------------- evaluate_cell_types


def test_evaluate_cell_types_loops_over_eligible_types(toy):
    data = toy[~((toy.obs.cell_type == "C") & (toy.obs.perturbation == "control"))].copy()  # C: no control
    out = evaluate_cell_types(BASELINES, data, perturbation="IFN", seeds=(0, 1), n_top_genes=8,
                              metrics=["mse_top_de", "edistance"], k_overlap=5, progress=False)
    assert list(out.columns) == ["cell_type", *TABLE_COLUMNS]
    assert list(pd.unique(out.cell_type)) == ["A", "B"]
    assert len(out) == 2 * 2 * 2 * 2  # cell types x models x seeds x metrics
    assert (out.n_genes == 8).all()  # 8 training HVGs per split
    # each cell type's rows equal a direct evaluate_holdout on its own split and genes
    split = training_hvgs(holdout(data, cell_type="B", perturbation="IFN"), n_top_genes=8)
    direct = evaluate_holdout(BASELINES, split, seeds=(0, 1), metrics=["mse_top_de", "edistance"], k_overlap=5,
                              progress=False).table
    np.testing.assert_allclose(out[out.cell_type == "B"].value.to_numpy(), direct.value.to_numpy(), rtol=1e-10)
    summary = summarize_seeds(out)
    assert len(summary) == 2 * 2 * 2 and list(pd.unique(summary.cell_type)) == ["A", "B"]


def test_evaluate_cell_types_given_types_all_genes_and_errors(toy):
    out = evaluate_cell_types(BASELINES, toy, perturbation="IFN", cell_types=["C", "A"], n_top_genes=None,
                              metrics=["mse_top_de"], k_overlap=5, progress=False)
    assert list(pd.unique(out.cell_type)) == ["C", "A"] and (out.n_genes == 12).all()
    with pytest.raises(ValueError, match="no cell type has both 'control' and 'LPS' cells"):
        evaluate_cell_types(BASELINES, toy, perturbation="LPS", progress=False)
    with pytest.raises(ValueError, match="cell_types is empty"):
        evaluate_cell_types(BASELINES, toy, perturbation="IFN", cell_types=[], progress=False)
    with pytest.raises(ValueError, match="seeds is empty"):
        evaluate_cell_types(BASELINES, toy, perturbation="IFN", seeds=[], progress=False)
    with pytest.raises(ValueError, match="models must be a non-empty dict"):
        evaluate_cell_types({}, toy, perturbation="IFN", progress=False)
    with pytest.raises(ValueError, match=r"unknown cell type 'Z'"):
        evaluate_cell_types(BASELINES, toy, perturbation="IFN", cell_types=["Z"], n_top_genes=None,
                            k_overlap=5, progress=False)


# --------------------------------------------------------------------------- real data


def test_kang_cd4t_baselines(kang):
    split = training_hvgs(holdout(kang, cell_type="CD4T", perturbation="IFN-beta"), n_top_genes=500)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*pearson_delta", category=RuntimeWarning)  # NaN in the table instead
        res = evaluate_holdout(BASELINES, split, seeds=(0, 1),
                               metrics=["pearson_delta", "r2_mean_sqpearson", "r2_var_sqpearson", "edistance"],
                               progress=False)
    summary = summarize_seeds(res.table)

    def mean(model, metric, gene_set):
        row = summary[(summary.model == model) & (summary.metric == metric) & (summary.gene_set == gene_set)]
        return row["mean"].iloc[0]

    assert mean("mean-shift", "pearson_delta", "all") > 0.5
    assert np.isnan(mean("no-change", "pearson_delta", "all"))
    # no-change's energy distance is that of control vs stimulated CD4T cells in the shared PCA
    by_hand = tk.metrics.edistance(split.ctrl.X, split.true.X, pca=res.pca)
    assert mean("no-change", "edistance", "pca50") == pytest.approx(by_hand, rel=1e-10)
    # both baselines keep the control cells' per-gene variances: the same r2_var_sqpearson
    assert mean("mean-shift", "r2_var_sqpearson", "all") == pytest.approx(
        mean("no-change", "r2_var_sqpearson", "all"), abs=1e-4)
    # deterministic baselines: zero spread over seeds, interval collapses to the mean
    sd = summary.loc[summary.model == "mean-shift", "sd"]
    assert np.allclose(sd, 0.0, atol=1e-12)
    assert res.pca.n_components_ == 50 and res.pca.n_features_in_ == 500
