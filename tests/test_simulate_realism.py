"""Tests of tutorial_kit.simulate.evaluation (realism of simulators) and its two figures.

Known answers: two samples of one distribution (AUROC near 0.5, MMD near 0) and an obviously
shifted one (AUROC near 1); per-gene statistics and gene-gene correlation agreement recomputed
here with numpy/scipy; shuffling each gene independently within groups keeps the marginals and
destroys the correlations; a hand t-interval; and on the Kang CI data an independent-Poisson
simulation (built here with numpy) that a forest tells from real cells better than the floor.
"""

from __future__ import annotations

import importlib

import anndata as ad
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from scipy import stats  # noqa: E402

import tutorial_kit as tk  # noqa: E402
from tutorial_kit import plotting  # noqa: E402

# the module that holds realism(), split_half() and summarize_realism()
R = importlib.import_module("tutorial_kit.simulate.evaluation")

GROUPS = [("B", "control"), ("B", "stimulated"), ("T", "control"), ("T", "stimulated")]
FAST = dict(n_comps=10, n_folds=3, n_trees=30)


def _cells(seed, *, n=60, n_genes=30, tag="c", shift=0.0, groups=GROUPS, factor=0.8):
    """Poisson counts per group with a shared latent factor: genes 0-9 rise together, 10-19 fall with it."""
    rng = np.random.default_rng(seed)
    base = np.random.default_rng(123).uniform(2.0, 12.0, size=(len(groups), n_genes))  # fixed group means
    loading = np.r_[np.ones(10), -np.ones(10), np.zeros(n_genes - 20)]
    counts, obs = [], []
    for g, (cell_type, condition) in enumerate(groups):
        z = rng.normal(size=(n, 1))
        mu = base[g] * np.exp(factor * z * loading - 0.5 * factor**2 * loading**2)
        if shift:
            mu = mu * np.exp(shift * np.r_[np.ones(n_genes // 2), -np.ones(n_genes - n_genes // 2)])
        counts.append(rng.poisson(mu))
        obs += [(cell_type, condition)] * n
    obs = pd.DataFrame(obs, columns=["cell_type", "condition"], index=[f"{tag}{i}" for i in range(len(obs))])
    x = np.vstack(counts).astype(np.int32)
    adata = ad.AnnData(X=tk.data.log1p_cp10k(x), obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(n_genes)]))
    adata.layers["counts"] = sp.csr_matrix(x)
    return adata


def _shuffle_genes(adata, seed):
    """Each gene permuted independently across the cells of each group: marginals kept, correlations gone."""
    rng = np.random.default_rng(seed)
    x = adata.layers["counts"].toarray()
    labels = tk.simulate.group_labels(adata, ("cell_type", "condition"))
    for g in np.unique(labels):
        idx = np.flatnonzero(labels == g)
        for j in range(x.shape[1]):
            x[idx, j] = x[rng.permutation(idx), j]
    out = adata.copy()
    out.layers["counts"] = sp.csr_matrix(x)
    out.X = tk.data.log1p_cp10k(x)
    return out


def _lognorm(counts):
    c = np.asarray(counts.toarray() if sp.issparse(counts) else counts, dtype=float)
    return np.log1p(c / c.sum(axis=1, keepdims=True) * 1e4)


@pytest.fixture(scope="module")
def reference():
    return _cells(0, tag="r")


@pytest.fixture(scope="module")
def same():
    return _cells(1, tag="s")


@pytest.fixture(scope="module")
def result(reference, same):
    shifted = _cells(2, tag="x", shift=1.0)
    return R.realism(reference, {R.FLOOR: same, "shifted": shifted}, **FAST, seed=0)


# --------------------------------------------------------------------------- split_half


def test_split_half_is_stratified_disjoint_complete_and_seeded():
    sizes = {("B", "control"): 5, ("T", "control"): 6, ("T", "stimulated"): 7}
    obs = pd.DataFrame(
        [k for k, n in sizes.items() for _ in range(n)], columns=["cell_type", "condition"]
    ).set_axis([f"c{i}" for i in range(18)])
    adata = ad.AnnData(np.arange(36, dtype=float).reshape(18, 2), obs=obs)
    a, b = R.split_half(adata, seed=3)
    assert set(a.obs_names).isdisjoint(b.obs_names)
    assert sorted([*a.obs_names, *b.obs_names]) == sorted(adata.obs_names)
    for half, rounding in ((a, np.floor), (b, np.ceil)):
        got = half.obs.groupby(["cell_type", "condition"], observed=True).size().to_dict()
        assert got == {k: int(rounding(n / 2)) for k, n in sizes.items()}
    a2, b2 = R.split_half(adata, seed=3)
    assert list(a2.obs_names) == list(a.obs_names) and list(b2.obs_names) == list(b.obs_names)
    assert any(list(R.split_half(adata, seed=s)[0].obs_names) != list(a.obs_names) for s in range(4, 8))
    assert not a.is_view and not b.is_view
    a.X[:] = -1  # a copy: the input is untouched
    assert adata.X.min() == 0
    np.testing.assert_array_equal(b.X, adata[b.obs_names].X)


def test_split_half_errors():
    obs = pd.DataFrame({"cell_type": ["A", "A", "B"], "condition": ["x"] * 3}, index=["a", "b", "c"])
    adata = ad.AnnData(np.zeros((3, 2)), obs=obs)
    with pytest.raises(ValueError, match="single cell"):
        R.split_half(adata)
    with pytest.raises(ValueError, match="missing column"):
        R.split_half(adata, groupby=("cell_type", "donor"))
    with pytest.raises(ValueError, match="no cells"):
        R.split_half(adata[:0])


# --------------------------------------------------------------------------- realism: known answers


def test_floor_near_chance_and_shifted_near_one(result):
    floor, shifted = result.set_index("simulator").loc[[R.FLOOR, "shifted"]].to_dict("records")
    assert 0.35 <= floor["rf_auroc"] <= 0.65
    assert shifted["rf_auroc"] >= 0.97
    assert abs(floor["mmd_rbf"]) < 0.02 and shifted["mmd_rbf"] > 10 * max(floor["mmd_rbf"], 1e-3)
    assert list(result.columns) == [
        "simulator", "seed", "n_cells", "rf_auroc", "rf_auroc_sd", "mmd_rbf",
        "mean_pearson", "var_pearson", "zero_frac_pearson", "corr_agreement",
    ]
    assert result["n_cells"].tolist() == [240, 240]
    assert result.attrs["pca_n_comps"] == 10 and result.attrs["mmd_gamma"] > 0
    assert result.attrs["n_pca_cells"] + result.attrs["n_compared_reference_cells"] == 240


def test_gene_statistics_match_numpy_and_scipy(reference, same, result):
    ref_x, gen_x = _lognorm(reference.layers["counts"]), _lognorm(same.layers["counts"])
    row = result.set_index("simulator").loc[R.FLOOR]
    expected = {
        "mean_pearson": stats.pearsonr(gen_x.mean(0), ref_x.mean(0))[0],
        "var_pearson": stats.pearsonr(gen_x.var(0, ddof=1), ref_x.var(0, ddof=1))[0],
        "zero_frac_pearson": stats.pearsonr(
            (same.layers["counts"].toarray() == 0).mean(0), (reference.layers["counts"].toarray() == 0).mean(0)
        )[0],
    }
    for col, value in expected.items():
        assert row[col] == pytest.approx(value, abs=1e-6), col
    table = R.gene_stats(same)
    np.testing.assert_allclose(table["mean"], gen_x.mean(0), rtol=1e-6)
    np.testing.assert_allclose(table["var"], gen_x.var(0, ddof=1), rtol=1e-5)
    assert list(table.index) == list(same.var_names)


def _hand_corr_agreement(ref, gen, k):
    """corr_agreement as documented, with numpy only."""
    rx, gx = _lognorm(ref.layers["counts"]), _lognorm(gen.layers["counts"])
    top = np.sort(np.argsort(-rx.mean(0), kind="stable")[:k])
    rl = (ref.obs["cell_type"].astype(str) + " | " + ref.obs["condition"].astype(str)).to_numpy()
    gl = (gen.obs["cell_type"].astype(str) + " | " + gen.obs["condition"].astype(str)).to_numpy()
    iu = np.triu_indices(k, k=1)
    values, weights = [], []
    for g in np.unique(gl):
        a = np.corrcoef(rx[rl == g][:, top].T)[iu]
        b = np.corrcoef(gx[gl == g][:, top].T)[iu]
        values.append(np.corrcoef(a, b)[0, 1])
        weights.append((rl == g).sum())
    return float(np.average(values, weights=weights))


def test_corr_agreement_identical_shuffled_and_hand_computed(reference, same):
    shuffled = _shuffle_genes(reference, seed=5)
    df = R.realism(
        reference, {"identical": reference.copy(), "other sample": same, "shuffled": shuffled},
        n_corr_genes=12, **FAST, seed=0,
    ).set_index("simulator")
    assert df.loc["identical", "corr_agreement"] == pytest.approx(1.0, abs=1e-12)
    expected = _hand_corr_agreement(reference, same, 12)
    assert df.loc["other sample", "corr_agreement"] == pytest.approx(expected, abs=1e-6)
    assert df.loc["other sample", "corr_agreement"] > 0.5
    assert df.loc["shuffled", "corr_agreement"] < 0.3
    # shuffling keeps each gene's counts, so the zero fractions agree exactly
    assert df.loc["shuffled", "zero_frac_pearson"] == pytest.approx(1.0, abs=1e-12)
    assert df.attrs["corr_n_genes"] == 12
    assert set(df.attrs["corr_agreement_per_group"]["shuffled"]) == {f"{a} | {b}" for a, b in GROUPS}


def test_pca_is_fitted_on_reference_cells_only(monkeypatch, reference, same):
    calls = []
    real_fit = tk.metrics.fit_pca

    def spy(x, **kwargs):
        calls.append(x.toarray() if sp.issparse(x) else np.asarray(x))
        return real_fit(x, **kwargs)

    monkeypatch.setattr(tk.metrics, "fit_pca", spy)
    df = R.realism(reference, {"other": same}, **FAST, seed=4)
    assert len(calls) == 1
    first, _ = R.split_half(reference, seed=4)  # the PCA half is the first stratified half of the reference
    np.testing.assert_allclose(calls[0], _lognorm(first.layers["counts"]), rtol=1e-5, atol=1e-6)
    assert calls[0].shape[0] == df.attrs["n_pca_cells"] == first.n_obs


def test_same_seed_same_numbers(reference, same):
    a = R.realism(reference, {"other": same}, **FAST, seed=7)
    b = R.realism(reference, {"other": same}, **FAST, seed=7, progress=True)
    pd.testing.assert_frame_equal(a, b)
    c = R.realism(reference, {"other": same}, **FAST, seed=8)
    assert c.loc[0, "rf_auroc"] != a.loc[0, "rf_auroc"]


def test_mmd_subsample_and_missing_groups(reference):
    only_b = _cells(3, tag="b", groups=GROUPS[:2])
    df = R.realism(reference, {"B only": only_b}, mmd_max_cells=50, **FAST, seed=0)
    assert df.attrs["mmd_max_cells"] == 50 and np.isfinite(df.loc[0, "mmd_rbf"])
    assert set(df.attrs["corr_agreement_per_group"]["B only"]) == {"B | control", "B | stimulated"}
    assert df.loc[0, "rf_auroc"] > 0.6  # the T cells it lacks (half the reference) give it away


def test_degenerate_generated_sets_give_nan_with_warnings(reference):
    zeros = reference[[0, 1, 60, 61, 62]].copy()  # 2 cells of 'B | control' (too few), 3 of 'B | stimulated'
    zeros.layers["counts"] = sp.csr_matrix(zeros.shape, dtype=np.int32)
    zeros.obs_names = [f"z{i}" for i in range(5)]
    with pytest.warns(RuntimeWarning):
        df = R.realism(reference, {"all zero": zeros}, **FAST, seed=0)
    assert np.isnan(df.loc[0, "mean_pearson"]) and np.isnan(df.loc[0, "corr_agreement"])


# --------------------------------------------------------------------------- realism: bad input


def test_realism_value_errors(reference, same):
    bad_genes = same[:, ::-1].copy()
    log_only = same.copy()
    log_only.layers["counts"] = same.X.copy()
    new_group = same.copy()
    new_group.obs["cell_type"] = new_group.obs["cell_type"].astype(str).replace({"T": "NK"})
    no_col = same.copy()
    del no_col.obs["condition"]
    cases = [
        (dict(generated={}), "non-empty mapping"),
        (dict(generated=[same]), "non-empty mapping"),
        (dict(generated={"": same}), "non-empty simulator names"),
        (dict(generated={"x": same.X}), "expected an AnnData"),
        (dict(generated={"x": same[:0]}), "no cells"),
        (dict(generated={"x": no_col}), "missing column"),
        (dict(generated={"x": bad_genes}), "different genes"),
        (dict(generated={"x": log_only}), "non-integer"),
        (dict(generated={"x": new_group}), r"group\(s\) .*NK.* that the reference lacks"),
        (dict(generated={"x": same[:2]}), "too few cells"),
        (dict(generated={"x": same}, n_folds=1), "n_folds"),
        (dict(generated={"x": same}, n_trees=True), "n_trees"),
        (dict(generated={"x": same}, groupby=()), "groupby"),
        (dict(generated={"x": same}, layer="raw"), "no 'raw' layer"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            R.realism(reference, **kwargs)
    with pytest.raises(ValueError, match="AnnData of real cells"):
        R.realism(reference.X, {"x": same})
    with pytest.raises(ValueError, match="no cells"):
        R.realism(reference[:0], {"x": same})
    with pytest.raises(ValueError, match="missing column"):
        R.realism(no_col, {"x": same})
    with pytest.raises(ValueError, match="at least 2 genes"):
        R.realism(reference[:, :1].copy(), {"x": same[:, :1].copy()})
    with pytest.raises(ValueError, match="PCA needs at least 2 cells"):
        R.realism(reference[:3].copy(), {"x": same[:3].copy()}, n_folds=2)
    with pytest.raises(ValueError, match="non-integer"):
        R.gene_stats(log_only)


# --------------------------------------------------------------------------- summarize_realism


def _seed_rows():
    return pd.DataFrame(
        {
            "simulator": ["copula", R.FLOOR, "copula", R.FLOOR, "copula", R.FLOOR],
            "seed": [0, 0, 1, 1, 2, 2],
            "rf_auroc": [0.70, 0.50, 0.74, 0.48, 0.78, 0.55],
            "corr_agreement": [0.2, 0.6, np.nan, 0.7, 0.3, 0.65],
        }
    )


def test_summarize_realism_hand_t_interval_and_order():
    out = R.summarize_realism(_seed_rows(), ci=0.9)
    assert out["simulator"].tolist() == [R.FLOOR, R.FLOOR, "copula", "copula"]
    assert out["metric"].tolist() == ["rf_auroc", "corr_agreement"] * 2
    v = np.array([0.70, 0.74, 0.78])
    half = stats.t.ppf(0.95, 2) * v.std(ddof=1) / np.sqrt(3)
    row = out.iloc[2]
    assert row["n_seeds"] == 3
    assert row["mean"] == pytest.approx(0.74) and row["sd"] == pytest.approx(0.04)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.74 - half, 0.74 + half))
    lo, hi = stats.t.interval(0.9, 2, loc=v.mean(), scale=stats.sem(v))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((lo, hi))
    nan_row = out.iloc[3]  # the nan seed is left out: two values
    assert nan_row["n_seeds"] == 2 and nan_row["mean"] == pytest.approx(0.25)
    single = R.summarize_realism(_seed_rows().query("seed == 0"))
    assert single["n_seeds"].eq(1).all() and single["sd"].isna().all() and single["ci_low"].isna().all()
    assert out.attrs["ci"] == 0.9 and out.attrs["floor"] == R.FLOOR


def test_summarize_realism_errors():
    rows = _seed_rows()
    for kwargs, message in [
        (dict(results=pd.DataFrame()), "non-empty DataFrame"),
        (dict(results=rows.drop(columns="seed")), "missing column"),
        (dict(results=rows[["simulator", "seed"]]), "none of the metric columns"),
        (dict(results=rows, ci=95), "ci must be"),
        (dict(results=pd.concat([rows, rows.iloc[:1]])), "duplicated"),
        (dict(results=rows[rows.simulator != R.FLOOR]), "no floor row"),
    ]:
        with pytest.raises(ValueError, match=message):
            R.summarize_realism(**kwargs)


# --------------------------------------------------------------------------- the Kang CI data


def _independent_poisson(train, seed):
    """Each gene an independent Poisson draw with its per-group mean count: no overdispersion, no correlation."""
    rng = np.random.default_rng(seed)
    counts = train.layers["counts"].toarray()
    labels = (train.obs["cell_type"].astype(str) + "|" + train.obs["condition"].astype(str)).to_numpy()
    out = np.zeros_like(counts)
    for g in np.unique(labels):
        rows = labels == g
        out[rows] = rng.poisson(counts[rows].mean(axis=0), size=(rows.sum(), counts.shape[1]))
    sim = train.copy()
    sim.layers["counts"] = sp.csr_matrix(out)
    sim.X = tk.data.log1p_cp10k(out)
    sim.obs_names = [f"poisson{i}" for i in range(sim.n_obs)]
    return sim


def test_kang_independent_poisson_is_less_real_than_the_floor():
    adata = tk.data.load_kang_muscat()
    train, test = R.split_half(adata, seed=0)
    df = R.realism(
        test, {R.FLOOR: train, "independent Poisson": _independent_poisson(train, 0)},
        n_comps=20, n_folds=3, n_trees=50, seed=0,
    ).set_index("simulator")
    assert df.loc["independent Poisson", "rf_auroc"] > df.loc[R.FLOOR, "rf_auroc"] + 0.2
    assert df.loc[R.FLOOR, "rf_auroc"] < 0.65
    assert df.loc["independent Poisson", "corr_agreement"] < df.loc[R.FLOOR, "corr_agreement"] - 0.2
    assert df.loc["independent Poisson", "mmd_rbf"] > df.loc[R.FLOOR, "mmd_rbf"]


# --------------------------------------------------------------------------- figures


def test_realism_summary_figure():
    summary = R.summarize_realism(_seed_rows())
    fig = plotting.realism_summary(summary)
    assert len(fig.axes) == 2
    auroc_ax = fig.axes[0]
    assert [t.get_text() for t in auroc_ax.get_yticklabels()] == [R.FLOOR, "copula"]
    assert auroc_ax.get_yticklabels()[0].get_color() == "C3"
    dashed = [ln for ln in auroc_ax.get_lines() if ln.get_linestyle() == "--"]
    assert dashed and dashed[0].get_xdata()[0] == 0.5
    assert "AUROC" in auroc_ax.get_title() and "rf_auroc" in auroc_ax.get_xlabel()
    single = plotting.realism_summary(R.summarize_realism(_seed_rows().query("seed == 0")))
    assert len(single.axes) == 2
    partial = summary[~((summary["simulator"] == "copula") & (summary["metric"] == "corr_agreement"))]
    partial.attrs = summary.attrs
    corr_ax = plotting.realism_summary(partial).axes[1]
    assert [t.get_text() for t in corr_ax.get_yticklabels()] == [R.FLOOR, "copula"]
    assert len(corr_ax.containers) == 1  # only the floor has a point with an interval
    with pytest.raises(ValueError, match="missing column"):
        plotting.realism_summary(pd.DataFrame({"simulator": ["x"]}))
    with pytest.raises(ValueError, match="empty"):
        plotting.realism_summary(summary.iloc[:0])


def test_gene_stat_agreement_figure(reference, same):
    fig = plotting.gene_stat_agreement(reference, {"a": same, "b": reference})
    assert len(fig.axes) == 6
    points = fig.axes[0].collections[0].get_offsets()
    np.testing.assert_allclose(points[:, 0], R.gene_stats(reference)["mean"])
    np.testing.assert_allclose(points[:, 1], R.gene_stats(same)["mean"])
    assert "r = 1.000" in fig.axes[5].get_title()
    with pytest.raises(ValueError, match="non-empty dict"):
        plotting.gene_stat_agreement(reference, {})
    with pytest.raises(ValueError, match="different genes"):
        plotting.gene_stat_agreement(reference, {"x": same[:, ::-1].copy()})
