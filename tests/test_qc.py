"""Tests of tutorial_kit.qc on synthetic data with known answers, plus the real CI files.

Known answers: guide UMIs simulated from a planted background/signal mixture; Poisson draws
with a known MOI; a simulated screen (tk.simulate.simulate_screen) with planted knockdowns, escapers and a null guide;
a composition confound that only stratification removes. References: statsmodels' BH,
scipy's Mann-Whitney U, tk.metrics.edistance.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats

import tutorial_kit as tk
from tutorial_kit import qc
from tutorial_kit.simulate import simulate_screen


# --------------------------------------------------------------------------- fixtures


def _planted_guides(n_cells=3000, seed=1):
    """Three guides; each cell carries each guide with probability 0.25 (signal ~ 30 UMIs, background ~ 0.5)."""
    rng = np.random.default_rng(seed)
    carries = rng.random((n_cells, 3)) < 0.25
    signal = np.round(rng.lognormal(np.log(30), 0.5, size=(n_cells, 3)))
    background = rng.poisson(0.5, size=(n_cells, 3))
    umis = np.where(carries, signal, background).astype(int)
    cols = ["sgA", "sgB", "sgC"]
    index = [f"c{i}" for i in range(n_cells)]
    return pd.DataFrame(umis, columns=cols, index=index), pd.DataFrame(carries, columns=cols, index=index)


@pytest.fixture(scope="module")
def screen():
    return simulate_screen(effects=(2.0, 1.0, 0.0), escape_fraction=0.3, seed=0)


@pytest.fixture(scope="module")
def mixscape_result(screen):
    return qc.mixscape(screen, seed=0)


def _two_condition_screen():
    """The same simulated screen twice, labelled with two conditions (different seeds)."""
    parts = []
    for seed, cond in ((0, "resting"), (1, "stimulated")):
        a = simulate_screen(effects=(2.0, 0.0), n_cells_per_target=60, n_control=80, n_genes=60, seed=seed)
        a.obs["condition"] = cond
        a.obs_names = [f"{cond}_{n}" for n in a.obs_names]
        parts.append(a)
    out = ad.concat(parts)
    out.obs["condition"] = out.obs["condition"].astype("category")
    return out


# --------------------------------------------------------------------------- helpers


def test_bh_matches_statsmodels_and_keeps_nan():
    from statsmodels.stats.multitest import multipletests

    p = np.array([0.01, 0.04, np.nan, 0.03, 0.5, 0.001])
    ok = np.isfinite(p)
    expected = multipletests(p[ok], method="fdr_bh")[1]
    q = qc._bh(p)
    np.testing.assert_allclose(q[ok], expected)
    assert np.isnan(q[2])
    assert np.isnan(qc._bh([np.nan])).all()


# --------------------------------------------------------------------------- guide calling


def test_mixture_thresholds_recover_planted_guides():
    counts, truth = _planted_guides()
    thresholds = qc.guide_thresholds(counts, min_umis=3, seed=0)
    assert list(thresholds.index) == ["sgA", "sgB", "sgC"]
    assert (thresholds["method"] == "mixture").all()
    assert (thresholds["threshold"] >= 3).all()
    # the signal component sits near the planted 30 UMIs, the background near 0
    assert ((thresholds["signal_umis"] > 15) & (thresholds["signal_umis"] < 60)).all()
    assert (thresholds["background_umis"] < 2).all()
    calls = qc.call_guides(counts, thresholds=thresholds)
    for g in counts.columns:
        called = counts[g] >= thresholds.loc[g, "threshold"]
        assert (called == truth[g]).mean() > 0.99
        assert thresholds.loc[g, "n_cells"] == int(called.sum())
    expected_n = truth.sum(axis=1)
    assert (calls["n_guides"] == expected_n).mean() > 0.98
    assert calls.attrs["thresholds"] == {g: int(t) for g, t in thresholds["threshold"].items()}


def test_mixture_is_seeded_and_threshold_floor_applies():
    counts, _ = _planted_guides(n_cells=800, seed=3)
    a = qc.guide_thresholds(counts, seed=5)
    b = qc.guide_thresholds(counts, seed=5)
    pd.testing.assert_frame_equal(a, b)
    high = qc.guide_thresholds(counts, min_umis=40)
    assert (high["threshold"] >= 40).all()


def test_threshold_method_and_fallback():
    counts = pd.DataFrame({"g1": [0, 3, 9, 12], "g2": [0, 7, 0, 7], "g3": [0, 0, 0, 0]})
    fixed = qc.guide_thresholds(counts, method="threshold", min_umis=4)
    assert fixed["threshold"].tolist() == [4, 4, 4]
    assert fixed["n_cells"].tolist() == [2, 2, 0]
    assert (fixed["method"] == "threshold").all() and fixed["signal_umis"].isna().all()
    mix = qc.guide_thresholds(counts, min_umis=4)
    # g2 and g3 have fewer than three distinct values: no mixture can be fitted
    assert mix.loc["g2", "method"] == "fallback" and mix.loc["g3", "method"] == "fallback"
    assert mix.loc["g2", "threshold"] == 4


def test_call_guides_known_answer_and_threshold_formats():
    counts = pd.DataFrame({"A": [0, 12, 9, 1], "B": [0, 0, 15, 8]}, index=["c1", "c2", "c3", "c4"])
    expected_calls = ["none", "single", "multiplet", "single"]
    for thresholds in (5, np.int64(5), {"A": 5, "B": 5}, pd.Series({"B": 5, "A": 5}),
                       pd.DataFrame({"threshold": [5, 5]}, index=["A", "B"])):
        calls = qc.call_guides(counts, thresholds=thresholds)
        assert calls["call"].tolist() == expected_calls
        assert calls["guides"].tolist() == ["", "A", "A;B", "B"]
        assert calls["n_guides"].tolist() == [0, 1, 2, 1]
        assert calls["guide_umis"].tolist() == [0, 12, 24, 8]
    per_guide = qc.call_guides(counts, thresholds={"A": 10, "B": 5})
    assert per_guide["guides"].tolist() == ["", "A", "B", "B"]
    # without thresholds: computed with the given method
    auto = qc.call_guides(counts, method="threshold", min_umis=10)
    assert auto["guides"].tolist() == ["", "A", "B", ""]
    assert set(qc.CALLS) >= set(auto["call"])


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.zeros((3, 2)), "pandas DataFrame"),
        (pd.DataFrame(), "empty"),
        (pd.DataFrame([[1, 2]], columns=["a", "a"]), "repeated guide names"),
        (pd.DataFrame({"a": [1, -1]}), "non-negative integer"),
        (pd.DataFrame({"a": [1.5, 2.0]}), "non-negative integer"),
        (pd.DataFrame({"a": [1.0, np.nan]}), "non-negative integer"),
    ],
)
def test_guide_count_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        qc.guide_thresholds(bad)
    with pytest.raises(ValueError, match=match):
        qc.call_guides(bad, thresholds=5)


def test_guide_calling_option_errors():
    counts = pd.DataFrame({"A": [0, 12], "B": [3, 0]})
    with pytest.raises(ValueError, match="method must be"):
        qc.guide_thresholds(counts, method="otsu")
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="min_umis must be an integer"):
            qc.guide_thresholds(counts, min_umis=bad)
    with pytest.raises(ValueError, match="no threshold for guide"):
        qc.call_guides(counts, thresholds={"A": 5})
    with pytest.raises(ValueError, match="'threshold' column"):
        qc.call_guides(counts, thresholds=pd.DataFrame({"t": [5, 5]}, index=["A", "B"]))
    with pytest.raises(ValueError, match="finite UMI counts >= 1"):
        qc.call_guides(counts, thresholds={"A": 0, "B": 5})
    with pytest.raises(ValueError, match="finite UMI counts >= 1"):
        qc.call_guides(counts, thresholds={"A": np.nan, "B": 5})


# --------------------------------------------------------------------------- MOI


def test_moi_recovers_poisson_rate_both_ways():
    k = np.random.default_rng(7).poisson(0.7, size=50_000)
    zf = qc.estimate_moi(k)
    zt = qc.estimate_moi(k, method="zero_truncated")
    assert zf.moi == pytest.approx(0.7, abs=0.02)
    assert zt.moi == pytest.approx(0.7, abs=0.03)
    assert zf.method == "zero_fraction" and zt.method == "zero_truncated"
    lam = zf.moi
    assert zf.expected_multiplets == pytest.approx((1 - np.exp(-lam) - lam * np.exp(-lam)) / (1 - np.exp(-lam)))
    assert zf.observed_multiplets == pytest.approx(np.mean(k[k > 0] >= 2))
    assert zf.observed_multiplets == pytest.approx(zf.expected_multiplets, abs=0.01)
    t = zf.table
    assert t["observed_cells"].sum() == k.size
    assert t["n_guides"].tolist() == list(range(k.max() + 1))
    np.testing.assert_allclose(t["expected_fraction"], stats.poisson.pmf(t["n_guides"], lam))
    # the truncated model has no expectation for 0 guides, and sums to the positive cells
    assert np.isnan(zt.table.loc[0, "expected_cells"]) and np.isnan(zt.table.loc[0, "observed_fraction"])
    assert zt.table["expected_cells"].iloc[1:].sum() == pytest.approx((k > 0).sum(), rel=0.01)


def test_moi_selection_and_dropout_make_the_estimators_disagree():
    rng = np.random.default_rng(3)
    k = rng.poisson(0.3, size=20_000)
    selected = k[k > 0]  # antibiotic selection removes cells without a guide
    dropout = np.where(rng.random(selected.size) < 0.15, 0, selected)  # 15% of cells lose their guide
    assert qc.estimate_moi(dropout, method="zero_truncated").moi == pytest.approx(0.3, abs=0.05)
    assert qc.estimate_moi(dropout).moi > 1.5  # the zero fraction is only dropout


def test_moi_edge_cases_and_errors():
    only_singles = qc.estimate_moi([0, 1, 1, 1], method="zero_truncated")
    assert only_singles.moi == 0.0 and only_singles.expected_multiplets == 0.0
    assert only_singles.table["expected_fraction"].tolist()[1] == 1.0
    with pytest.raises(ValueError, match="empty"):
        qc.estimate_moi([])
    with pytest.raises(ValueError, match="non-negative integers"):
        qc.estimate_moi([1, -1])
    with pytest.raises(ValueError, match="non-negative integers"):
        qc.estimate_moi([1.5, 1])
    with pytest.raises(ValueError, match="no cells in cells with at least one guide"):
        qc.estimate_moi([0, 0, 0])
    with pytest.raises(ValueError, match="zero_truncated"):
        qc.estimate_moi([1, 2, 1])
    with pytest.raises(ValueError, match="method must be"):
        qc.estimate_moi([0, 1], method="mle")


# --------------------------------------------------------------------------- long guide tables


def _long_table():
    return pd.DataFrame(
        {
            "cell": ["c1", "c1", "c1", "c2", "c3", "c3"],
            "barcode": ["g1", "g2", "g3", "g1", "g4", "g5"],
            "gene": ["A", "A", "B", "A", "C", "D"],
            "read_count": [10, 8, 2, 6, 1, 2],
            "umi_count": [5, 4, 1, 3, 1, 1],
        }
    )


def test_guide_table_summary_known_answer():
    s = qc.guide_table_summary(_long_table())
    assert list(s.index) == ["c1", "c2", "c3"]
    assert s.loc["c1", "n_guides"] == 3 and s.loc["c1", "n_targets"] == 2
    assert s.loc["c1", "guides"] == "g1;g2;g3" and s.loc["c1", "targets"] == "A;B"
    assert s.loc["c1", "read_count"] == 20 and s.loc["c1", "umi_count"] == 10
    assert s.loc["c1", "reads_per_umi"] == pytest.approx(2.0)
    assert s["call"].tolist() == ["multiplet", "single", "multiplet"]
    # with a UMI floor, weak rows are background; c3 keeps its row in the summary with call 'none'
    s2 = qc.guide_table_summary(_long_table(), min_umis=2)
    assert s2.loc["c1", "n_guides"] == 2 and s2.loc["c1", "n_targets"] == 1
    assert s2.loc["c3"].to_dict() | {"reads_per_umi": 0} == {
        "n_guides": 0, "n_targets": 0, "guides": "", "targets": "", "read_count": 0, "umi_count": 0,
        "reads_per_umi": 0, "call": "none"}
    assert np.isnan(s2.loc["c3", "reads_per_umi"])


def test_guide_table_summary_errors():
    with pytest.raises(ValueError, match="pandas DataFrame"):
        qc.guide_table_summary([1, 2])
    with pytest.raises(ValueError, match="missing column"):
        qc.guide_table_summary(_long_table().drop(columns="umi_count"))
    with pytest.raises(ValueError, match="no cells in the guide table"):
        qc.guide_table_summary(_long_table().iloc[:0])
    bad = _long_table()
    bad.loc[0, "read_count"] = -1
    with pytest.raises(ValueError, match="non-negative"):
        qc.guide_table_summary(bad)
    with pytest.raises(ValueError, match="min_umis"):
        qc.guide_table_summary(_long_table(), min_umis=0)


# --------------------------------------------------------------------------- assigning guides


def test_assign_guides_labels_every_cell_and_leaves_input_alone():
    a = ad.AnnData(np.zeros((4, 2)), obs=pd.DataFrame({"perturbation": "unassigned"}, index=["c1", "c2", "c3", "c4"]))
    counts = pd.DataFrame({"sgA": [9, 0, 7, 0], "NT": [0, 8, 6, 0], "sgB": [0, 0, 6, 0]}, index=["c4", "c2", "c3", "c1"])
    calls = qc.call_guides(counts, thresholds=5)
    targets = {"sgA": "GENEA", "NT": "non-targeting", "sgB": "GENEB"}
    out = qc.assign_guides(a, calls, guide_targets=targets)
    assert out.obs["perturbation"].tolist() == ["unassigned", "control", "multiplet", "GENEA"]
    assert out.obs["guide"].tolist() == ["unassigned", "NT", "multiplet", "sgA"]
    assert out.obs["guide_call"].tolist() == ["none", "single", "multiplet", "single"]
    assert list(out.obs["guide_call"].cat.categories) == list(qc.CALLS)
    assert out.obs["n_guides"].tolist() == [0, 1, 3, 1]
    assert out.n_obs == a.n_obs
    assert list(a.obs.columns) == ["perturbation"] and set(a.obs["perturbation"]) == {"unassigned"}
    combined = qc.assign_guides(a, calls, guide_targets=targets, multiplets="combine")
    assert combined.obs["perturbation"].tolist()[2] == "GENEA+GENEB"  # control part dropped, sorted
    plain = qc.assign_guides(a, calls)
    assert plain.obs["perturbation"].tolist()[3] == "sgA"


def test_assign_guides_errors():
    a = ad.AnnData(np.zeros((2, 1)), obs=pd.DataFrame(index=["c1", "c2"]))
    calls = qc.call_guides(pd.DataFrame({"g": [9, 0]}, index=["c1", "c2"]), thresholds=5)
    with pytest.raises(ValueError, match="missing column"):
        qc.assign_guides(a, calls.drop(columns="call"))
    with pytest.raises(ValueError, match="have no guide call"):
        qc.assign_guides(a, calls.iloc[:1])
    with pytest.raises(ValueError, match="multiplets must be"):
        qc.assign_guides(a, calls, multiplets="drop")


# --------------------------------------------------------------------------- on-target expression


def test_target_expression_finds_planted_knockdown(screen):
    before = screen.obs.copy()
    df = qc.target_expression(screen)
    assert df["target"].tolist() == ["TGT1", "TGT2", "TGT3"]
    assert df["measured"].all() and df["detected"].all()
    assert (df["n_control"] == 300).all() and (df["n_cells"] == 150).all()
    strong, weak, null = (df.iloc[i] for i in range(3))
    # 90% knockdown in the 70% of cells that did not escape: 0.3 + 0.7 * 0.1 = 37% left, log2 about -1.4
    assert -2.0 < strong["log2_fold_change"] < -1.0 and strong["qvalue"] < 1e-10
    assert -2.0 < weak["log2_fold_change"] < -1.0
    assert abs(null["log2_fold_change"]) < 0.5 and null["pvalue"] > 0.01
    # the p-value is scipy's two-sided Mann-Whitney U on the target column
    x = np.expm1(screen[screen.obs["perturbation"] == "TGT1", "TGT1"].X.toarray().ravel())
    y = np.expm1(screen[screen.obs["perturbation"] == "control", "TGT1"].X.toarray().ravel())
    assert strong["pvalue"] == pytest.approx(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)
    assert strong["mean_perturbed"] == pytest.approx(x.mean())
    assert strong["log2_fold_change"] == pytest.approx(np.log2((x.mean() + 1) / (y.mean() + 1)))
    assert strong["frac_expressing_control"] == pytest.approx(np.mean(y > 0))
    pd.testing.assert_frame_equal(screen.obs, before)


def test_target_expression_guides_conditions_layers_and_unmeasured(screen):
    by_guide = qc.target_expression(screen, guide_key="guide")
    assert by_guide["guide"].tolist() == ["TGT1_1", "TGT1_2", "TGT2_1", "TGT2_2", "TGT3_1", "TGT3_2"]
    assert (by_guide["n_cells"] == 75).all()
    on_counts = qc.target_expression(screen, layer="counts", log1p=False)
    assert on_counts.loc[0, "log2_fold_change"] < -1.0
    # a target missing from the genes is reported, not dropped
    missing = screen[:, [g for g in screen.var_names if g != "TGT2"]].copy()
    df = qc.target_expression(missing)
    row = df[df["target"] == "TGT2"].iloc[0]
    assert not row["measured"] and not row["detected"] and np.isnan(row["pvalue"]) and np.isnan(row["qvalue"])
    # combinations give one row per part
    combo = screen.copy()
    combo.obs["perturbation"] = combo.obs["perturbation"].astype(str).replace({"TGT3": "TGT1+TGT3"})
    parts = qc.target_expression(combo)
    assert parts.loc[parts["perturbation"] == "TGT1+TGT3", "target"].tolist() == ["TGT1", "TGT3"]
    two = _two_condition_screen()
    strat = qc.target_expression(two, condition_key="condition")
    assert set(strat["condition"]) == {"resting", "stimulated"} and (strat["n_control"] == 80).all()
    assert len(strat) == 4


def test_target_expression_errors(screen):
    with pytest.raises(ValueError, match="missing column"):
        qc.target_expression(screen, guide_key="sgRNA")
    with pytest.raises(ValueError, match="unknown perturbation"):
        qc.target_expression(screen, control="NT")
    with pytest.raises(ValueError, match="no 'raw' layer"):
        qc.target_expression(screen, layer="raw")
    two = _two_condition_screen()
    two = two[~((two.obs["condition"] == "stimulated") & (two.obs["perturbation"] == "control"))].copy()
    with pytest.raises(ValueError, match="no cells in control cells"):
        qc.target_expression(two, condition_key="condition")


# --------------------------------------------------------------------------- Mixscape


def test_mixscape_recovers_planted_escapers(screen, mixscape_result):
    ms = mixscape_result
    assert "X_pert" not in screen.layers and "mixscape_class" not in screen.obs  # input untouched
    assert sp.issparse(screen.X) and sp.issparse(ms.X)
    obs = ms.obs
    strong = (obs["perturbation"] == "TGT1").to_numpy()
    called_np = (obs["mixscape_class_global"] == "NP").to_numpy()
    assert np.mean(called_np[strong] == obs["escaped"].to_numpy()[strong]) > 0.95
    assert set(obs.loc[obs["perturbation"] == "control", "mixscape_class"]) == {"control"}
    # the guide that does nothing has no DE genes: not classified, every cell NP
    assert set(obs.loc[obs["perturbation"] == "TGT3", "mixscape_class"]) == {"TGT3 NP"}
    post = obs["mixscape_class_p_ko"].to_numpy()
    assert post.dtype == np.float64 and post.min() >= 0 and post.max() <= 1
    assert np.all((post[strong] > 0.5) == (obs["mixscape_class_global"].to_numpy()[strong] == "KO"))
    summary = ms.uns["mixscape_summary"].set_index("perturbation")
    assert list(summary.columns) == ["n_cells", "n_de_genes", "classified", "n_perturbed", "fraction_perturbed"]
    assert summary.loc["TGT1", "classified"] and not summary.loc["TGT3", "classified"]
    assert summary.loc["TGT1", "n_de_genes"] >= 5 and summary.loc["TGT3", "n_de_genes"] < 5
    assert summary.loc["TGT1", "fraction_perturbed"] == pytest.approx(1 - obs["escaped"][strong].mean(), abs=0.03)
    assert ms.uns["mixscape_params"]["min_de_genes"] == 5 and ms.uns["mixscape_params"]["reference"] == "split"


def test_mixscape_split_key_and_high_entry_bar():
    two = _two_condition_screen()
    ms = qc.mixscape(two, split_key="condition", min_de_genes=10_000, perturbation_type="KD", seed=0)
    summary = ms.uns["mixscape_summary"]
    assert set(summary["condition"]) == {"resting", "stimulated"} and len(summary) == 4
    assert not summary["classified"].any() and (summary["n_perturbed"] == 0).all()
    assert set(ms.obs["mixscape_class_global"]) == {"NP", "control"}
    assert "mixscape_class_p_kd" in ms.obs and "_tk_all_cells" not in ms.obs


def test_mixscape_nn_reference_passes_seeded_settings(monkeypatch, screen):
    import pertpy as pt

    seen = {}

    def fake_signature(self, adata, pert_key, control, **kwargs):
        seen.update(kwargs, pert_key=pert_key, control=control, has_pca="X_pca" in adata.obsm)
        adata.layers["X_pert"] = adata.X.toarray() if sp.issparse(adata.X) else adata.X.copy()

    monkeypatch.setattr(pt.tl.Mixscape, "perturbation_signature", fake_signature)
    small = screen[screen.obs["perturbation"].isin(["control", "TGT1"]).to_numpy()].copy()
    ms = qc.mixscape(small, reference="nn", n_neighbors=7, n_comps=5, seed=3)
    assert seen["ref_selection_mode"] == "nn" and seen["n_neighbors"] == 7 and seen["random_state"] == 3
    assert seen["use_rep"] == "X_pca" and seen["has_pca"] and seen["split_by"] is None
    assert ms.uns["mixscape_params"]["reference"] == "nn"


def test_mixscape_errors(screen):
    with pytest.raises(ValueError, match="reference must be"):
        qc.mixscape(screen, reference="pca")
    with pytest.raises(ValueError, match="missing column"):
        qc.mixscape(screen, split_key="donor")
    with pytest.raises(ValueError, match="unknown perturbation"):
        qc.mixscape(screen, control="NT")
    with pytest.raises(ValueError, match="min_de_genes"):
        qc.mixscape(screen, min_de_genes=0)
    two = _two_condition_screen()
    two = two[~((two.obs["condition"] == "resting") & (two.obs["perturbation"] == "control"))].copy()
    with pytest.raises(ValueError, match="no cells in control cells"):
        qc.mixscape(two, split_key="condition")
    only_ctrl = _two_condition_screen()
    keep = (only_ctrl.obs["condition"] == "resting") | (only_ctrl.obs["perturbation"] == "control")
    with pytest.raises(ValueError, match="no cells in targeted"):
        qc.mixscape(only_ctrl[keep.to_numpy()].copy(), split_key="condition")


# --------------------------------------------------------------------------- perturbation strength


def test_perturbation_strength_ranks_planted_effects(screen):
    res = qc.perturbation_strength(screen, n_comps=10, n_permutations=199, seed=0)
    assert res["perturbation"].tolist() == ["TGT1", "TGT2", "TGT3"]
    assert res.loc[0, "pvalue"] == pytest.approx(1 / 200) and res.loc[1, "pvalue"] == pytest.approx(1 / 200)
    assert res.loc[2, "pvalue"] > 0.05 and not res.loc[2, "significant"]
    assert res["significant"].tolist() == [True, True, False]
    np.testing.assert_allclose(res["qvalue"], qc._bh(res["pvalue"]))
    assert (res["n_cells"] == 150).all() and (res["n_control"] == 300).all()
    assert res.attrs == {"distance": "euclidean", "n_comps": 10, "n_permutations": 199, "alpha": 0.05,
                         "control": "control"}
    # the statistic is tk.metrics.edistance in the one shared PCA fitted on all cells
    pca = tk.metrics.fit_pca(screen.X, n_comps=10, seed=0)
    x = screen[screen.obs["perturbation"] == "TGT1"].X
    y = screen[screen.obs["perturbation"] == "control"].X
    assert res.loc[0, "edistance"] == pytest.approx(tk.metrics.edistance(x, y, pca=pca), rel=1e-6)
    again = qc.perturbation_strength(screen, n_comps=10, n_permutations=199, seed=0)
    pd.testing.assert_frame_equal(res, again)
    sq = qc.perturbation_strength(screen, n_comps=10, n_permutations=19, squared=True, seed=0)
    assert sq.attrs["distance"] == "squared euclidean"
    assert sq.loc[0, "edistance"] == pytest.approx(tk.metrics.edistance(x, y, pca=pca, squared=True), rel=1e-6)


def test_perturbation_strength_stratification_removes_a_composition_confound():
    """A null perturbation whose cells are mostly stimulated looks strong unless compared within condition."""
    rng = np.random.default_rng(0)
    n = {"ctrl_rest": 100, "ctrl_stim": 20, "null_rest": 20, "null_stim": 100}
    blocks, obs = [], []
    for name, size in n.items():
        shift = 3.0 if name.endswith("stim") else 0.0
        block = rng.normal(size=(size, 10))
        block[:, :5] += shift
        blocks.append(block)
        obs += [("control" if name.startswith("ctrl") else "NULL", name.split("_")[1])] * size
    a = ad.AnnData(np.vstack(blocks), obs=pd.DataFrame(obs, columns=["perturbation", "condition"],
                                                        index=[f"c{i}" for i in range(len(obs))]))
    pooled = qc.perturbation_strength(a, n_comps=5, n_permutations=199, seed=0)
    assert pooled.loc[0, "significant"] and pooled.loc[0, "pvalue"] == pytest.approx(1 / 200)
    strat = qc.perturbation_strength(a, condition_key="condition", n_comps=5, n_permutations=199, seed=0)
    assert list(strat.columns) == ["perturbation", "condition", "n_cells", "n_control", "edistance", "pvalue",
                                   "qvalue", "significant"]
    assert len(strat) == 2 and not strat["significant"].any()


def test_perturbation_strength_errors(screen):
    with pytest.raises(ValueError, match="missing column"):
        qc.perturbation_strength(screen, condition_key="donor")
    with pytest.raises(ValueError, match="unknown perturbation"):
        qc.perturbation_strength(screen, control="NT")
    with pytest.raises(ValueError, match="n_permutations"):
        qc.perturbation_strength(screen, n_permutations=0)
    with pytest.raises(ValueError, match="alpha"):
        qc.perturbation_strength(screen, alpha=1.5)
    with pytest.raises(ValueError, match="n_comps"):
        qc.perturbation_strength(screen, n_comps=10_000)
    with pytest.raises(ValueError, match="no 'raw' layer"):
        qc.perturbation_strength(screen, layer="raw")
    two = _two_condition_screen()
    two = two[~((two.obs["condition"] == "stimulated") & (two.obs["perturbation"] == "control"))].copy()
    with pytest.raises(ValueError, match="no cells in control cells"):
        qc.perturbation_strength(two, condition_key="condition", n_comps=5, n_permutations=9)


# --------------------------------------------------------------------------- real CI data


def test_real_parse_guides_and_scmageck_table(mirror):
    parse = tk.data.load_parse_guides()
    counts = parse.obsm["guide_counts"]
    thresholds = qc.guide_thresholds(counts, seed=0)
    # Parse's pipeline zeroed counts below 5: the mixture puts the threshold at the smallest non-zero count
    assert thresholds["threshold"].tolist() == [5, 5, 5] and (thresholds["method"] == "mixture").all()
    calls = qc.call_guides(counts, thresholds=thresholds)
    assert calls["call"].value_counts().to_dict() == {"single": 3858, "none": 663, "multiplet": 479}
    zf = qc.estimate_moi(calls["n_guides"])
    zt = qc.estimate_moi(calls["n_guides"], method="zero_truncated")
    assert zf.moi == pytest.approx(-np.log(663 / 5000))
    assert zt.moi < 0.5 < zf.moi  # selection and dropout: the two estimators disagree
    assigned = qc.assign_guides(parse, calls)
    tk.data.check_schema(assigned)
    assert assigned.obs["perturbation"].value_counts()["unassigned"] == 663
    totals = np.asarray(assigned.layers["counts"].sum(axis=1)).ravel()
    by_call = pd.Series(totals).groupby(assigned.obs["guide_call"].to_numpy()).median()
    assert by_call["multiplet"] > 2 * by_call["single"]  # multiplets are mostly doublets
    table = tk.data.load_scmageck_guides()
    summary = qc.guide_table_summary(table)
    assert len(summary) == table["cell"].nunique() and summary["n_guides"].sum() == len(table)
    assert (summary["call"] == "multiplet").sum() == 1422


def test_real_datlinger_strength_and_targets(mirror):
    adata = tk.data.load_datlinger2021()
    targets = qc.target_expression(adata, guide_key="guide", condition_key="condition")
    assert len(targets) == 80 and targets["measured"].sum() == 24  # 6 of 20 targets are among the 2,000 genes
    res = qc.perturbation_strength(adata, condition_key="condition", n_permutations=199, seed=0)
    top = res.iloc[0]
    assert (top["perturbation"], top["condition"]) == ("ZAP70", "stimulated") and top["significant"]
    stim = res[res["condition"] == "stimulated"]
    assert {"ZAP70", "LCK", "LAT"} <= set(stim.head(3)["perturbation"])


def test_call_top_guide_gives_each_low_moi_cell_its_dominant_guide():
    counts = pd.DataFrame(
        {"sgA": [50, 40, 30, 3, 0], "sgB": [0, 9, 28, 1, 0], "NT": [0, 1, 0, 0, 0]},
        index=[f"c{i}" for i in range(5)],
    )
    calls = tk.qc.call_top_guide(counts, min_umis=5, min_fraction=0.8)
    assert calls["call"].tolist() == ["single", "single", "multiplet", "none", "none"]
    assert calls["guides"].tolist() == ["sgA", "sgA", "sgA;sgB", "", ""]
    assert calls.loc["c1", "top_fraction"] == pytest.approx(0.8)
    assert calls.loc["c2", "n_guides"] == 2 and calls.loc["c1", "n_guides"] == 1
    # the ambient second guide of c1 (9 UMIs, above any fixed threshold of 5) does not make it a multiplet
    assert tk.qc.call_guides(counts, thresholds=5).loc["c1", "call"] == "multiplet"
    import anndata as ad

    adata = ad.AnnData(np.zeros((5, 2)), obs=pd.DataFrame(index=counts.index))
    assigned = tk.qc.assign_guides(adata, calls, guide_targets={"sgA": "GENEA", "sgB": "GENEB", "NT": "non-targeting"})
    assert assigned.obs["perturbation"].tolist() == ["GENEA", "GENEA", "multiplet", "unassigned", "unassigned"]


@pytest.mark.parametrize("kwargs, message", [({"min_fraction": 0.5}, "min_fraction"), ({"min_umis": 0}, "min_umis")])
def test_call_top_guide_refuses_rules_that_do_not_pick_one_guide(kwargs, message):
    counts = pd.DataFrame({"sgA": [5, 6], "sgB": [5, 0]})
    with pytest.raises(ValueError, match=message):
        tk.qc.call_top_guide(counts, **kwargs)
