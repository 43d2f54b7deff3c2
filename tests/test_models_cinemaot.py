"""Tests of tutorial_kit.models.cinemaot: CINEMA-OT behind the course's conventions.

References: pertpy's own Cinemaot (the same components and the same number of confounders),
scipy's chatterjeexi, and the arithmetic of the naive estimates and of the additive residual
done by hand. The data are small synthetic sets, so each test takes seconds.
"""

from __future__ import annotations

import warnings

import anndata as ad
import matplotlib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

matplotlib.use("Agg")


import tutorial_kit as tk  # noqa: E402
from tutorial_kit.models import cinemaot  # noqa: E402
from tutorial_kit.simulate import make_grn, simulate_cell_type_screen  # noqa: E402


@pytest.fixture(scope="module")
def sim():
    grn = make_grn(n_genes=60, n_regulators=6, seed=0)
    return simulate_cell_type_screen(grn, n_control=150, n_treated=150, n_markers=4, n_state_genes=4,
                                     control_composition=(0.4, 0.35, 0.25), treated_composition=(0.25, 0.35, 0.4),
                                     seed=0)


@pytest.fixture(scope="module")
def effects(sim):
    return cinemaot.cinemaot_effects(sim, perturbation="TF01", dim=8, thres=0.15, return_matching=True)


@pytest.fixture(scope="module")
def combo():
    rng = np.random.default_rng(0)
    labels = np.repeat(["control", "A", "B", "A+B", "C"], 60)
    x = rng.normal(size=(300, 15)) + np.isin(labels, ["A", "A+B"])[:, None] * np.r_[2.0, np.zeros(14)]
    x += np.isin(labels, ["B", "A+B"])[:, None] * np.r_[0.0, 2.0, np.zeros(13)]
    x[labels == "A+B", 2] += 1.5  # a synergy on gene 2
    return ad.AnnData(x, obs=pd.DataFrame({"perturbation": labels}, index=[f"c{i}" for i in range(300)]))


def _pertpy():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pertpy as pt
    return pt


def test_registered_in_tk_models():
    for name in cinemaot.__all__:
        assert getattr(tk.models, name) is getattr(cinemaot, name)
        assert name in tk.models.__all__


def test_effects_shape_and_bookkeeping(sim, effects):
    treated = sim.obs_names[sim.obs["perturbation"] == "TF01"]
    assert list(effects.obs_names) == list(treated)
    assert effects.shape == (150, sim.n_vars)
    info = effects.uns["cinemaot"]
    assert info["dim"] == 8 and info["n_confounders"] == sum(r["role"] == "confounder" for r in info["xi"])
    assert effects.obsm["ot"].shape == (150, 150)
    # effect + counterfactual = the treated cell's X
    x = np.asarray(sim[treated].X.todense())
    assert np.allclose(np.asarray(effects.X) + effects.obsm["counterfactual"], x, atol=1e-5)
    assert "X_pca" not in sim.obsm  # the input is not changed


def test_same_confounders_as_pertpy(sim, effects):
    """component_dependence uses pertpy's ICA settings and scipy's xi: the same split as pertpy's own."""
    import scanpy as sc

    pt = _pertpy()
    sub = sim.copy()
    sc.pp.pca(sub, n_comps=30, random_state=0)
    table = cinemaot.component_dependence(sub, perturbation="TF01", dim=8, thres=0.15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        te = pt.tl.Cinemaot().causaleffect(sub, pert_key="perturbation", control="control", dim=8, thres=0.15,
                                           smoothness=1e-4, eps=1e-3, solver="Sinkhorn", random_state=0)
    assert sub.obsm["cf"].shape[1] == (table["role"] == "confounder").sum() == effects.uns["cinemaot"]["n_confounders"]
    assert np.allclose(np.asarray(te.X), np.asarray(effects.X), atol=1e-4)
    # pertpy's own xi (its private class) agrees with scipy's on these continuous components
    from pertpy.tools._cinemaot import Xi

    from scipy.stats import chatterjeexi

    scores = cinemaot.ica_components(sub, dim=8)
    indicator = (sub.obs["perturbation"] == "control").to_numpy().astype(int)
    theirs = [Xi(scores[:, j], indicator, random_state=0).correlation for j in range(8)]
    ours = [chatterjeexi(scores[:, j], indicator).statistic for j in range(8)]
    assert np.allclose(theirs, ours, atol=1e-9)
    # FastICA stopped at its iteration limit can differ in the last digits between runs: the split does not
    assert np.allclose(np.sort(ours), np.sort(table["xi"]), atol=0.05)


def test_component_dependence_table_and_components(sim):
    table, scores, labels = cinemaot.component_dependence(sim, perturbation="TF01", dim=6, thres=0.15,
                                                          return_components=True)
    assert list(table.columns) == ["component", "xi", "pvalue", "role"]
    assert table["component"].tolist() == list(range(6))
    assert set(table["role"]) <= {"confounder", "treatment"}
    assert ((table["xi"] < 0.15) == (table["role"] == "confounder")).all()
    assert scores.shape == (sim.n_obs, 6) and len(labels) == sim.n_obs
    # the knockout is a component: one of them depends on the treatment strongly
    assert table["xi"].max() > 0.8


def test_matching_beats_the_all_controls_estimate(sim, effects):
    estimates = {"CINEMA-OT": effects, "naive: all controls": cinemaot.naive_effects(sim, perturbation="TF01"),
                 "naive: same cell type": cinemaot.naive_effects(sim, perturbation="TF01", groupby="cell_type")}
    errors = cinemaot.effect_errors(estimates, sim)
    overall = errors[errors["group"] == "all"].pivot_table(index="level", columns="method", values="rmse")
    assert overall.loc["cell type", "CINEMA-OT"] < overall.loc["cell type", "naive: all controls"]
    assert set(errors["level"]) == {"cell type", "cell", "counterfactual"}
    assert set(errors["group"]) == {"type A", "type B", "type C", "all"}
    # balanced transport: the mean effect over all treated cells is the all-controls estimate
    gap = np.abs(np.asarray(effects.X).mean(0) - np.asarray(estimates["naive: all controls"].X).mean(0)).max()
    assert gap < 0.05
    # the errors of a subset of genes
    genes = list(sim.var_names[:5])
    assert len(cinemaot.effect_errors(estimates, sim, genes=genes)) == len(errors)


def test_preweight_label_runs(sim):
    te = cinemaot.cinemaot_effects(sim, perturbation="TF01", dim=8, thres=0.15, preweight_label="cell_type")
    assert te.n_obs == 150
    with pytest.raises(ValueError, match="missing column"):
        cinemaot.cinemaot_effects(sim, perturbation="TF01", dim=8, preweight_label="no_such_column")


def test_no_confounder_error_explains_itself(sim):
    table = cinemaot.component_dependence(sim, perturbation="TF01", dim=1, thres=0.15)
    assert (table["role"] == "treatment").all()  # one component: it carries the knockout
    with pytest.raises(ValueError, match=r"No confounder components identified.*xi per component: 0: .*thres > .* keeps 1"):
        cinemaot.cinemaot_effects(sim, perturbation="TF01", dim=1, thres=0.15)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"perturbation": ["TF01", "TF02"]}, "ONE label"),
    ({"perturbation": "TF09"}, "unknown perturbation 'TF09'"),
    ({"perturbation": "control"}, "is the control label"),
    ({"perturbation": "TF01", "control": "ctrl"}, "no control cells"),
    ({"perturbation": "TF01", "perturbation_key": "guide"}, "missing column"),
    ({"perturbation": "TF01", "thres": 0.0}, "thres must be"),
    ({"perturbation": "TF01", "dim": 0}, "dim"),
])
def test_effect_errors_of_input(sim, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cinemaot.cinemaot_effects(sim, **kwargs)


def test_counts_in_x_are_refused(sim):
    counts = sim.copy()
    counts.X = counts.layers["counts"].astype(np.float32)
    with pytest.raises(ValueError, match="integer counts"):
        cinemaot.cinemaot_effects(counts, perturbation="TF01", dim=5)


def test_too_small_for_dim():
    a = ad.AnnData(np.random.default_rng(0).normal(size=(8, 5)), obs={"perturbation": ["control"] * 4 + ["A"] * 4})
    with pytest.raises(ValueError, match="Use a smaller dim"):
        cinemaot.cinemaot_effects(a, perturbation="A", dim=6)


def test_ica_components_errors():
    a = ad.AnnData(np.zeros((10, 3)))
    with pytest.raises(ValueError, match="is missing"):
        cinemaot.ica_components(a, dim=2)
    a.obsm["X_pca"] = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(ValueError, match="fewer than dim=3"):
        cinemaot.ica_components(a, dim=3)


def test_naive_effects_by_hand():
    x = np.array([[0.0, 1.0], [2.0, 1.0], [4.0, 0.0], [5.0, 3.0], [9.0, 3.0]])
    obs = pd.DataFrame({"perturbation": ["control", "control", "control", "drug", "drug"],
                        "cell_type": ["a", "b", "b", "a", "b"]}, index=list("vwxyz"))
    a = ad.AnnData(sp.csr_matrix(x), obs=obs)
    assert np.allclose(cinemaot.naive_effects(a, perturbation="drug").X, x[3:] - x[:3].mean(0))
    same = cinemaot.naive_effects(a, perturbation="drug", groupby="cell_type")
    assert np.allclose(same.X, [x[3] - x[0], x[4] - x[1:3].mean(0)])
    assert list(same.obs_names) == ["y", "z"]
    lonely = a.copy()
    lonely.obs["cell_type"] = ["a", "a", "a", "a", "b"]
    with pytest.raises(ValueError, match="group 'b' of 'cell_type' has treated cells but no control cells"):
        cinemaot.naive_effects(lonely, perturbation="drug", groupby="cell_type")


def test_group_effects_and_summary():
    te = ad.AnnData(np.array([[1.0, 0.0], [3.0, 0.0], [0.0, -0.5]]),
                    obs=pd.DataFrame({"cell_type": pd.Categorical(["b", "b", "a"], categories=["b", "a", "c"])},
                                     index=["x", "y", "z"]))
    te.var_names = ["IFI6", "CD3E"]
    means = cinemaot.group_effects(te)
    assert list(means.index) == ["b", "a"]  # the categories' order, unused ones dropped
    summary = cinemaot.effect_summary(te, n_top=2)
    assert summary.loc["b", "effect_norm"] == 2.0 and summary.loc["b", "cell_norm"] == 2.0
    assert summary.loc["b", "spread"] == 1.0
    assert summary.loc["a", "top_genes"] == "CD3E (-0.50), IFI6 (+0.00)"
    with pytest.raises(ValueError, match="n_top"):
        cinemaot.effect_summary(te, n_top=0)


def test_effect_errors_refuses_bad_inputs(sim, effects):
    with pytest.raises(ValueError, match="simulate_cell_type_screen"):
        cinemaot.effect_errors({"x": effects}, ad.AnnData(np.zeros((2, 2))))
    stranger = effects.copy()
    stranger.obs_names = [f"new{i}" for i in range(stranger.n_obs)]
    with pytest.raises(ValueError, match="has cells the truth lacks"):
        cinemaot.effect_errors({"x": stranger}, sim)
    with pytest.raises(ValueError, match="other genes"):
        cinemaot.effect_errors({"x": effects[:, :10].copy()}, sim)


def test_additive_residual_by_hand(combo):
    r = cinemaot.additive_residual(combo, a="B", b="A")  # the double is found whatever the order
    x, lab = combo.X, combo.obs["perturbation"].to_numpy()
    m = {p: x[lab == p].mean(0) for p in ("control", "A", "B", "A+B")}
    assert np.allclose(r, m["A+B"] - m["A"] - m["B"] + m["control"])
    assert r.abs().idxmax() == "2"
    with pytest.raises(ValueError, match=r"lacks \['D', 'A\+D'\]"):
        cinemaot.additive_residual(combo, a="A", b="D")


def test_synergy_mean_is_the_additive_residual(combo):
    syn = cinemaot.cinemaot_synergy(combo, a="A", b="B", dim=5, thres=0.3)
    assert syn.n_obs == 60 and list(syn.obs_names) == list(combo.obs_names[:60])
    residual = cinemaot.additive_residual(combo, a="A", b="B")
    assert np.corrcoef(np.asarray(syn.X).mean(0), residual)[0, 1] > 0.99
    with pytest.raises(ValueError, match="lacks"):
        cinemaot.cinemaot_synergy(combo, a="A", b="D")


def test_synergy_names_the_matching_without_confounders(combo):
    with pytest.raises(ValueError, match=r"cinemaot_synergy: matching 'control' to 'A': No confounder"):
        cinemaot.cinemaot_synergy(combo, a="A", b="B", dim=1, thres=0.15)


def test_the_plots(sim, effects):
    table = cinemaot.component_dependence(sim, perturbation="TF01", dim=6)
    fig = tk.plotting.component_xi(table, thres=0.15)
    assert len(fig.axes[0].patches) == 6
    heat = tk.plotting.group_effect_heatmap(cinemaot.group_effects(effects), n_genes=7)
    assert len(heat.axes[0].get_xticklabels()) == 7
    given = tk.plotting.group_effect_heatmap(cinemaot.group_effects(effects), genes=["TF01", "TF02"])
    assert [t.get_text() for t in given.axes[0].get_xticklabels()] == ["TF01", "TF02"]
    errors = cinemaot.effect_errors({"CINEMA-OT": effects, "naive: all controls":
                                     cinemaot.naive_effects(sim, perturbation="TF01")}, sim)
    bars = tk.plotting.effect_errors_plot(errors)
    assert [ax.get_title() for ax in bars.axes] == ["per cell type", "per cell", "per cell, counterfactual only"]
    grey = bars.axes[0].patches[1].get_facecolor()
    assert grey[0] == grey[1] == grey[2]  # the naive estimate is drawn grey
    with pytest.raises(ValueError, match="missing column"):
        tk.plotting.component_xi(pd.DataFrame({"xi": [0.1]}), thres=0.1)
    with pytest.raises(ValueError, match="non-empty"):
        tk.plotting.group_effect_heatmap(pd.DataFrame())
    with pytest.raises(ValueError, match="not columns"):
        tk.plotting.group_effect_heatmap(cinemaot.group_effects(effects), genes=["nope"])
    with pytest.raises(ValueError, match="no 'all' rows"):
        tk.plotting.effect_errors_plot(errors[errors["group"] != "all"])
