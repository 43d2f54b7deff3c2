"""Tests of the issue-6 pieces of tutorial_kit.models: evaluate_perturbations, evaluate_holdout(pca=...),
subsample_perturbed, validation_holdout, NotApplicableError, and summarize_seeds with tasks."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import tutorial_kit as tk
import tutorial_kit.metrics as tkm
from tutorial_kit.models import (
    Additive,
    Holdout,
    LinearModel,
    MeanEffect,
    MeanShift,
    NoChange,
    NotApplicableError,
    evaluate_holdout,
    evaluate_perturbations,
    holdout,
    perturbation_split,
    subsample_perturbed,
    summarize_seeds,
    tuning_data,
    validation_holdout,
)
from tutorial_kit.models.evaluation import PERTURBATION_COLUMNS
from tutorial_kit.models.splits import TuningData

SINGLES = list("ABCDEFGH")


def _screen(seed: int = 0, n_control: int = 40, n_per: int = 5) -> ad.AnnData:
    """One cell line: control and singles A..H; genes A..H (the targets) and g0..g5."""
    rng = np.random.default_rng(seed)
    genes = SINGLES + [f"g{i}" for i in range(6)]
    labels = ["control"] * n_control + [p for p in SINGLES for _ in range(n_per)]
    X = rng.normal(1.0, 0.3, size=(len(labels), len(genes)))
    for i, label in enumerate(labels):
        if label != "control":
            X[i, genes.index(label)] += 2.0
            X[i, -1] += 1.0
    obs = pd.DataFrame({"perturbation": labels, "cell_type": "K562"}, index=[f"s{i}" for i in range(len(labels))])
    return ad.AnnData(X.astype(np.float32), obs=obs, var=pd.DataFrame(index=genes))


@pytest.fixture(scope="module")
def screen():
    return _screen()


@pytest.fixture(scope="module")
def split(screen):
    return perturbation_split(screen, kind="unseen_single", seed=0)


@pytest.fixture(scope="module")
def fitted(split):
    return {m.name: m.fit(split.train, progress=False) for m in (NoChange(seed=0), MeanEffect(seed=1))}


# --------------------------------------------------------------------------- evaluate_perturbations


def test_split_is_scored_on_test_and_tuning_data_on_val(split, fitted):
    on_test = evaluate_perturbations(fitted, split, metrics=["l2_top_expressed", "pearson_delta"])
    assert list(on_test.columns) == list(PERTURBATION_COLUMNS)
    assert on_test.attrs["held_out"] == split.test_perturbations
    assert list(pd.unique(on_test["model"])) == ["no-change", "mean"]  # dict order
    assert on_test.groupby("model")["seed"].first().to_dict() == {"no-change": 0, "mean": 1}
    on_val = evaluate_perturbations(fitted, tuning_data(split), metrics=["l2_top_expressed", "pearson_delta"])
    assert on_val.attrs["held_out"] == split.val_perturbations
    assert set(split.val_perturbations).isdisjoint(split.test_perturbations)
    # different cells judged, so different values
    a = on_test.query("model == 'mean' and metric == 'l2_top_expressed'")["value"].iloc[0]
    b = on_val.query("model == 'mean' and metric == 'l2_top_expressed'")["value"].iloc[0]
    assert a != b


@pytest.mark.parametrize("use_val", [False, True])
def test_value_is_the_mean_over_held_out_perturbations(split, fitted, use_val):
    data = tuning_data(split) if use_val else split
    truth = split.val if use_val else split.test
    held = split.val_perturbations if use_val else split.test_perturbations
    model = fitted["mean"]
    table = evaluate_perturbations({"mean": model}, data, metrics=["l2_top_expressed"], k_top_expressed=5)
    ctrl_mean = split.ctrl.X.mean(axis=0)
    by_hand = []
    for p in held:
        pred_mean = model.predict(split.ctrl, p).X.mean(axis=0)
        true_mean = truth[truth.obs["perturbation"] == p].X.mean(axis=0)
        by_hand.append(tkm.l2_top_expressed(pred_mean, true_mean, ctrl_mean, k=5))
    assert len(held) >= 2
    assert table["gene_set"].tolist() == ["top5_expressed"]
    assert table["n_perturbations"].tolist() == [len(held)]
    assert table["value"].iloc[0] == pytest.approx(np.mean(by_hand), rel=1e-6)


def test_undefined_pearson_delta_is_nan_without_a_warning(split, fitted):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = evaluate_perturbations(fitted, split, metrics=["pearson_delta", "l2_top_expressed"])
    assert not [w for w in caught if "correlation is undefined" in str(w.message)]
    nc = table[(table.model == "no-change") & (table.metric == "pearson_delta")]
    assert len(nc) == 2  # all and top-DE gene sets
    assert nc["value"].isna().all() and (nc["n_perturbations"] == 0).all()
    mean = table[(table.model == "mean") & (table.metric == "pearson_delta")]
    assert mean["value"].notna().all() and (mean["n_perturbations"] == len(split.test_perturbations)).all()
    # the same NaN from evaluate itself warns: evaluate_perturbations silences only that documented case
    pred = fitted["no-change"].predict(split.ctrl, split.test_perturbations[0])
    truth = split.test[split.test.obs["perturbation"] == split.test_perturbations[0]]
    with pytest.warns(RuntimeWarning, match="correlation is undefined"):
        tkm.evaluate(pred, truth, split.ctrl, metrics=["pearson_delta"], n_top_de=5, k_overlap=5,
                     k_top_expressed=5)


def test_k_values_are_capped_at_the_number_of_genes(split, fitted):
    n = split.train.n_vars
    table = evaluate_perturbations({"mean": fitted["mean"]}, split,
                                   metrics=["mse_top_de", "l2_top_expressed", "deg_overlap_k"],
                                   n_top_de=500, k_overlap=400, k_top_expressed=3000)
    assert dict(zip(table.metric, table.gene_set)) == {
        "mse_top_de": f"top{n}_de", "l2_top_expressed": f"top{n}_expressed", "deg_overlap_k": f"top{n}_de"}
    # a cap at n genes is the same as asking for n
    same = evaluate_perturbations({"mean": fitted["mean"]}, split, metrics=["mse_top_de", "l2_top_expressed"],
                                  n_top_de=n, k_top_expressed=n)
    np.testing.assert_allclose(table["value"].iloc[:2], same["value"], rtol=1e-12)


def test_evaluate_perturbations_errors(split, fitted, screen, cells):
    with pytest.raises(ValueError, match="PerturbationSplit.*got Holdout"):
        evaluate_perturbations(fitted, holdout(cells, cell_type="A", perturbation="IFN"))
    with pytest.raises(ValueError, match="got dict"):
        evaluate_perturbations(fitted, {"test": split.test})
    with pytest.raises(ValueError, match="non-empty dict"):
        evaluate_perturbations({}, split)
    with pytest.raises(ValueError, match=r"models\['raw'\] must be a fitted PerturbationModel"):
        evaluate_perturbations({"raw": MeanEffect()}, split)
    with pytest.raises(ValueError, match="must be a fitted PerturbationModel"):
        evaluate_perturbations({"x": "not a model"}, split)
    fewer = MeanEffect().fit(split.train[:, :6].copy(), progress=False)
    with pytest.raises(ValueError, match=r"models\['fewer'\] was trained on other genes"):
        evaluate_perturbations({"fewer": fewer}, split)
    empty = tuning_data(split)._replace(val_perturbations=[])
    assert isinstance(empty, TuningData)
    with pytest.raises(ValueError, match="holds out no perturbation"):
        evaluate_perturbations(fitted, empty)
    additive = Additive().fit(split.train, progress=False)
    with pytest.raises(NotApplicableError, match="not seen in training"):
        evaluate_perturbations({"additive": additive}, split)


# --------------------------------------------------------------------------- evaluate_holdout(pca=...)


def test_evaluate_holdout_uses_the_given_pca(cells):
    split = holdout(cells, cell_type="B", perturbation="IFN")
    pca = tkm.fit_pca(cells.X, n_comps=3, seed=0)
    res = evaluate_holdout({"mean-shift": lambda s: MeanShift(seed=s)}, split, seeds=(0,), metrics=["edistance"],
                           k_overlap=5, pca=pca, progress=False)
    assert res.pca is pca
    assert res.table["gene_set"].tolist() == ["pca3"]
    assert res.table.attrs["pca_n_comps"] == 3 and "given by the caller" in res.table.attrs["pca"]
    pred = res.predictions[("mean-shift", 0)]
    assert res.table["value"].iloc[0] == pytest.approx(tkm.edistance(pred.X, split.true.X, pca=pca), rel=1e-10)
    default = evaluate_holdout({"mean-shift": lambda s: MeanShift(seed=s)}, split, seeds=(0,), metrics=["edistance"],
                               k_overlap=5, progress=False)
    assert default.table["value"].iloc[0] != res.table["value"].iloc[0]


def test_evaluate_holdout_refuses_a_pca_of_other_genes(cells):
    split = holdout(cells, cell_type="B", perturbation="IFN")
    pca = tkm.fit_pca(cells.X[:, :5], n_comps=3, seed=0)
    with pytest.raises(ValueError, match="fitted on 5 genes, the split has 12"):
        evaluate_holdout({"no-change": lambda s: NoChange(seed=s)}, split, seeds=(0,), pca=pca, progress=False)
    with pytest.raises(ValueError, match="fitted on unknown genes"):
        evaluate_holdout({"no-change": lambda s: NoChange(seed=s)}, split, seeds=(0,), pca=object(), progress=False)


# --------------------------------------------------------------------------- subsample_perturbed


def _unbalanced() -> ad.AnnData:
    groups = [("A", "control", 6), ("A", "IFN", 10), ("A", "TNF", 3), ("B", "control", 4), ("B", "IFN", 7),
              ("B", "TNF", 1), ("C", "IFN", 5)]
    rows = [(t, p) for t, p, n in groups for _ in range(n)]
    rng = np.random.default_rng(0)
    order = rng.permutation(len(rows))  # groups interleaved, to check that the order is kept
    obs = pd.DataFrame([rows[i] for i in order], columns=["cell_type", "perturbation"])
    obs.index = [f"u{i}" for i in range(len(obs))]
    return ad.AnnData(np.arange(len(obs) * 2, dtype=np.float32).reshape(-1, 2), obs=obs)


@pytest.mark.parametrize("fraction, expected", [
    # 10 * 0.25 = 2.5 -> 3 (half up, not Python's banker's 2); 3 * 0.25 = 0.75 -> 1; 7 * 0.25 = 1.75 -> 2;
    # 1 * 0.25 -> at least 1; 5 * 0.25 = 1.25 -> 1
    (0.25, {("A", "IFN"): 3, ("A", "TNF"): 1, ("B", "IFN"): 2, ("B", "TNF"): 1, ("C", "IFN"): 1}),
    (0.5, {("A", "IFN"): 5, ("A", "TNF"): 2, ("B", "IFN"): 4, ("B", "TNF"): 1, ("C", "IFN"): 3}),
    (1, {("A", "IFN"): 10, ("A", "TNF"): 3, ("B", "IFN"): 7, ("B", "TNF"): 1, ("C", "IFN"): 5}),
])
def test_subsample_counts_per_group(fraction, expected):
    adata = _unbalanced()
    small = subsample_perturbed(adata, fraction=fraction, seed=0)
    counts = small.obs.groupby(["cell_type", "perturbation"]).size().to_dict()
    got = {k: v for k, v in counts.items() if k[1] != "control" and v}
    assert got == expected
    # every control cell is kept
    ctrl = adata.obs_names[adata.obs["perturbation"] == "control"]
    assert set(ctrl) <= set(small.obs_names)
    assert (small.obs["perturbation"] == "control").sum() == 10


def test_subsample_is_seeded_keeps_order_and_copies():
    adata = _unbalanced()
    before = adata.copy()
    a = subsample_perturbed(adata, fraction=0.3, seed=4)
    b = subsample_perturbed(adata, fraction=0.3, seed=4)
    assert a.obs_names.tolist() == b.obs_names.tolist()
    draws = {tuple(subsample_perturbed(adata, fraction=0.3, seed=s).obs_names) for s in range(5)}
    assert len(draws) > 1  # the seed matters
    positions = [adata.obs_names.get_loc(n) for n in a.obs_names]
    assert positions == sorted(positions)  # original order
    np.testing.assert_array_equal(a.X, adata.X[positions])
    a.X[:] = -1
    np.testing.assert_array_equal(adata.X, before.X)  # a copy, the input is unchanged
    assert adata.n_obs == before.n_obs


def test_subsample_errors():
    adata = _unbalanced()
    for bad in (0, 0.0, -0.2, 1.5, "0.5", None):
        with pytest.raises(ValueError, match="fraction must be in"):
            subsample_perturbed(adata, fraction=bad)
    only_ctrl = adata[adata.obs["perturbation"] == "control"].copy()
    with pytest.raises(ValueError, match="no perturbed cells"):
        subsample_perturbed(only_ctrl, fraction=0.5)
    with pytest.raises(ValueError):
        subsample_perturbed(adata, fraction=0.5, cell_type_key="celltype")
    renamed = adata.copy()
    renamed.obs["perturbation"] = renamed.obs["perturbation"].replace({"control": "ctrl"})
    kept = subsample_perturbed(renamed, fraction=0.25, control="ctrl")
    assert (kept.obs["perturbation"] == "ctrl").sum() == 10


# --------------------------------------------------------------------------- validation_holdout


def test_validation_holdout_uses_training_cells_only(cells):
    split = holdout(cells, cell_type="C", perturbation="IFN")
    val = validation_holdout(split, cell_type="A")
    assert isinstance(val, Holdout) and (val.cell_type, val.perturbation) == ("A", "IFN")
    test_cells = set(split.true.obs_names) | set(split.ctrl.obs_names)
    for part in (val.train, val.ctrl, val.true):
        assert not set(part.obs_names) & test_cells
        assert set(part.obs_names) <= set(split.train.obs_names)
        assert "C" not in set(part.obs[split.cell_type_key].astype(str))
    assert set(val.true.obs_names) == set(cells.obs_names[(cells.obs.cell_type == "A")
                                                          & (cells.obs.perturbation == "IFN")])
    assert set(val.ctrl.obs_names) == set(cells.obs_names[(cells.obs.cell_type == "A")
                                                          & (cells.obs.perturbation == "control")])
    assert set(val.train.obs["cell_type"].astype(str)) == {"A", "B"}
    # copies: changing the validation split leaves the test split alone
    val.train.X[:] = -1
    assert (split.train.X >= 0).all()


def test_validation_holdout_errors(cells, split):
    test = holdout(cells, cell_type="C", perturbation="IFN")
    with pytest.raises(ValueError, match="'C' is the test cell type.*\\['A', 'B'\\]"):
        validation_holdout(test, cell_type="C")
    with pytest.raises(ValueError, match="must be a tk.models.Holdout.*got PerturbationSplit"):
        validation_holdout(split, cell_type="A")
    with pytest.raises(ValueError, match="unknown cell type"):
        validation_holdout(test, cell_type="Z")
    # a training cell type without perturbed cells cannot be a validation cell type
    no_ifn_b = cells[~((cells.obs.cell_type == "B") & (cells.obs.perturbation == "IFN"))].copy()
    test = holdout(no_ifn_b, cell_type="C", perturbation="IFN")
    with pytest.raises(ValueError, match="'IFN' cells of 'B'"):
        validation_holdout(test, cell_type="B")


# --------------------------------------------------------------------------- NotApplicableError


def test_not_applicable_error_is_a_value_error():
    assert issubclass(NotApplicableError, ValueError)
    assert tk.models.NotApplicableError is NotApplicableError


def test_not_applicable_in_the_four_places(split, cells):
    # 1. the base rule: a label not seen in training (MeanShift uses it)
    ho = holdout(cells, cell_type="B", perturbation="IFN")
    with pytest.raises(NotApplicableError, match="unknown perturbation 'TNF'"):
        MeanShift().fit(ho.train, progress=False).predict(ho.ctrl, "TNF")
    # 2. the additive model: an unseen single, and a combination with an unseen single
    additive = Additive().fit(split.train, progress=False)
    unseen = split.test_perturbations[0]
    seen = split.train_perturbations[0]
    with pytest.raises(NotApplicableError, match=f"single perturbation '{unseen}' was not seen"):
        additive.predict(split.ctrl, unseen)
    with pytest.raises(NotApplicableError, match=rf"needs the single\(s\) \['{unseen}'\]"):
        additive.predict(split.ctrl, "+".join(sorted([seen, unseen])))
    # 3. the linear model: fewer than 2 training perturbations with a measured target
    no_targets = split.train[:, [g for g in split.train.var_names if g.startswith("g")]].copy()
    with pytest.raises(NotApplicableError, match="at least 2"):  # refused before any warning about dropped ones
        LinearModel(n_components=2).fit(no_targets, progress=False)
    # 4. the linear model: predicting a perturbation whose target is not measured
    linear = LinearModel(n_components=2).fit(split.train, progress=False)
    with pytest.raises(NotApplicableError, match="target gene 'ZZZ'"):
        linear.predict(split.ctrl, "ZZZ")
    # bad input stays a plain ValueError
    with pytest.raises(ValueError) as err:
        additive.predict(split.ctrl, "control")
    assert not isinstance(err.value, NotApplicableError)


# --------------------------------------------------------------------------- summarize_seeds with tasks


def test_summarize_seeds_keeps_tasks_apart():
    rows = [(task, "m", seed, "r2", "all", value)
            for task, values in (("t1", [1.0, 2.0, 3.0]), ("t2", [10.0, 10.0, 13.0]))
            for seed, value in enumerate(values)]
    table = pd.DataFrame(rows, columns=["task", "model", "seed", "metric", "gene_set", "value"])
    out = summarize_seeds(table)
    assert list(out.columns[:5]) == ["task", "model", "metric", "gene_set", "mean"]
    assert out["task"].tolist() == ["t1", "t2"]
    assert out["mean"].tolist() == [2.0, 11.0] and out["n_seeds"].tolist() == [3, 3]
    # the same model and seed in two tasks is not a duplicate
    with pytest.raises(ValueError, match="duplicated"):
        summarize_seeds(pd.concat([table, table.iloc[:1]], ignore_index=True))


# --------------------------------------------------------------------------- interval_table


def _interval_summary() -> pd.DataFrame:
    rows = [("t1", "no-change", "pearson_delta", "all", np.nan, np.nan, np.nan),
            ("t1", "no-change", "mse_top_de", "top20_de", 0.5, 0.4, 0.6),
            ("t1", "mean", "pearson_delta", "all", 0.5, 0.25, 0.75),
            ("t1", "mean", "mse_top_de", "top20_de", 0.123456, np.nan, np.nan),  # one seed: no interval
            ("t2", "mean", "pearson_delta", "all", 0.2, 0.1, 0.3)]  # t2 did not score mse_top_de
    return pd.DataFrame(rows, columns=["task", "model", "metric", "gene_set", "mean", "ci_low", "ci_high"])


def test_interval_table_cells_and_order():
    from tutorial_kit.models import interval_table

    wide = interval_table(_interval_summary())
    assert list(wide.columns) == ["pearson_delta (all)", "mse_top_de (top20_de)"]
    assert list(wide.index) == [("t1", "no-change"), ("t1", "mean"), ("t2", "mean")]
    assert wide.loc[("t1", "no-change")].tolist() == ["n/a", "0.500 [0.400, 0.600]"]
    assert wide.loc[("t1", "mean")].tolist() == ["0.500 [0.250, 0.750]", "0.123"]
    assert wide.loc[("t2", "mean")].tolist() == ["0.200 [0.100, 0.300]", "-"]  # not scored on that task
    one = interval_table(_interval_summary().query("task == 't1'").drop(columns="task"),
                         metrics=[("mse_top_de", "top20_de")], digits=1)
    assert list(one.index) == ["no-change", "mean"] and one.to_dict() == {
        "mse_top_de (top20_de)": {"no-change": "0.5 [0.4, 0.6]", "mean": "0.1"}}


def test_interval_table_errors():
    from tutorial_kit.models import interval_table

    with pytest.raises(ValueError, match=r"missing column\(s\) \['ci_low'\]"):
        interval_table(_interval_summary().drop(columns="ci_low"))
    with pytest.raises(ValueError, match=r"\('edistance', 'pca50'\)\] not in the summary"):
        interval_table(_interval_summary(), metrics=[("edistance", "pca50")])
