"""Tests of the copula simulator (tutorial_kit.simulate.copula), the independent-Poisson baseline
(tutorial_kit.simulate.baseline) and their figures, on toy data with a known answer and on the
Kang muscat counts of the CI tier.
"""

from __future__ import annotations

import anndata as ad
import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import scipy.sparse as sp  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy import stats  # noqa: E402

import tutorial_kit as tk  # noqa: E402
from tutorial_kit import plotting  # noqa: E402
from tutorial_kit.data.schema import log1p_cp10k  # noqa: E402
from tutorial_kit.simulate import copula as C  # noqa: E402
from tutorial_kit.simulate._base import group_labels  # noqa: E402
from tutorial_kit.simulate.marginals import CdfTable  # noqa: E402


def _adata(counts, groups=None):
    n = counts.shape[0]
    groups = ["T"] * n if groups is None else groups
    obs = pd.DataFrame({"cell_type": groups, "condition": "control"}, index=[f"c{i}" for i in range(n)])
    a = ad.AnnData(np.asarray(counts, dtype=float), obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(counts.shape[1])]))
    a.layers["counts"] = sp.csr_matrix(counts)
    return a


# --------------------------------------------------------------------------- the pieces, against references


def test_distributional_transform_is_uniform_on_discrete_data():
    """u = F(x-1) + V (F(x) - F(x-1)) is Uniform(0,1) even for a Poisson with mean 0.3."""
    rng = np.random.default_rng(10)
    n = 4000
    table = pd.DataFrame({"mu": [0.3, 2.0, 4.0, 3.0], "theta": [np.inf, 0.8, np.inf, 2.0], "pi": [0.0, 0.0, 0.4, 0.2]})
    x = np.column_stack(
        [
            stats.poisson.rvs(0.3, size=n, random_state=rng),
            stats.nbinom.rvs(0.8, 0.8 / 2.8, size=n, random_state=rng),
            np.where(rng.random(n) < 0.4, 0, stats.poisson.rvs(4.0, size=n, random_state=rng)),
            np.where(rng.random(n) < 0.2, 0, stats.nbinom.rvs(2.0, 0.4, size=n, random_state=rng)),
        ]
    )
    z = C.normal_scores(x.astype(float), CdfTable.build(table), np.random.default_rng(11))
    for j in range(x.shape[1]):
        assert stats.kstest(stats.norm.cdf(z[:, j]), "uniform").pvalue > 0.01
        # F(x) itself is not uniform for discrete data (the reason for the randomization)
        assert stats.kstest(tk.simulate.marginals.marginal_cdf(x[:, [j]], table.iloc[[j]]).ravel(), "uniform").pvalue < 0.01


def _slow_shrinkage(z):
    """Schäfer & Strimmer (2005) intensity, written out pair by pair."""
    n, g = z.shape
    x = (z - z.mean(0)) / z.std(0, ddof=1)
    num = den = 0.0
    for i in range(g):
        for j in range(g):
            if i == j:
                continue
            w = x[:, i] * x[:, j]
            r = w.mean() * n / (n - 1)
            num += n / (n - 1) ** 3 * ((w - w.mean()) ** 2).sum()
            den += r**2
    return min(1.0, max(0.0, num / den))


def test_shrinkage_intensity_matches_the_formula():
    rng = np.random.default_rng(2)
    z = rng.normal(size=(30, 6)) + rng.normal(size=(30, 1))
    corr, lam = C.shrinkage_intensity(z)
    np.testing.assert_allclose(corr, np.corrcoef(z, rowvar=False), atol=1e-12)
    assert lam == pytest.approx(_slow_shrinkage(z), rel=1e-10)
    assert C.shrinkage_intensity(np.column_stack([z[:, 0], np.zeros(30)]))[1] == 1.0  # no correlation at all


def test_factor_falls_back_when_not_positive_definite():
    corr = np.array([[1.0, 1.0], [1.0, 1.0]])
    a = C._factor(corr)
    np.testing.assert_allclose(a @ a.T, corr, atol=1e-12)
    b = C._factor(np.array([[1.0, 0.5], [0.5, 1.0]]))
    np.testing.assert_allclose(b, np.tril(b))


@pytest.mark.parametrize("lam", [0.0, 0.3])
def test_low_rank_sampler_has_covariance_r(lam):
    """With fewer cells than genes the sampler uses the exact low-rank factor; its draws have covariance R."""
    rng = np.random.default_rng(8)
    z = rng.normal(size=(6, 10)) + rng.normal(size=(6, 1))
    corr, _ = C.shrinkage_intensity(z)
    r = (1 - lam) * corr + lam * np.eye(10)
    sampler = C._Sampler.build(z, r, lam)
    assert sampler.cholesky is None and sampler.scores.shape == (6, 10)
    np.testing.assert_allclose(
        (1 - lam) * sampler.scores.T @ sampler.scores + lam * np.eye(10), r, atol=1e-12
    )
    draws = sampler.draw(np.random.default_rng(0), 200_000, 10)
    np.testing.assert_allclose(np.cov(draws, rowvar=False), r, atol=0.02)
    tall = C._Sampler.build(rng.normal(size=(40, 3)), np.eye(3), 0.0)
    assert tall.scores is None and tall.draw(np.random.default_rng(0), 5, 3).shape == (5, 3)


def test_copula_recovers_a_known_correlation():
    rng = np.random.default_rng(3)
    truth = np.array([[1.0, 0.6, -0.4, 0.0], [0.6, 1.0, -0.2, 0.0], [-0.4, -0.2, 1.0, 0.3], [0.0, 0.0, 0.3, 1.0]])
    n, mu, theta = 5000, np.array([20.0, 30.0, 15.0, 25.0]), 3.0
    u = stats.norm.cdf(rng.multivariate_normal(np.zeros(4), truth, size=n))
    counts = stats.nbinom.ppf(u, theta, theta / (theta + mu)).astype(int)
    sim = tk.simulate.fit_copula(_adata(counts), shrinkage=0.0, seed=0)
    r = sim.correlations["T | control"]
    off = ~np.eye(4, dtype=bool)
    assert np.abs(r[off] - truth[off]).max() < 0.06
    assert sim.shrinkage["T | control"] == 0.0
    assert (sim.marginals["family"] == "nb").all()
    np.testing.assert_allclose(sim.marginals["theta"], theta, rtol=0.15)
    # and the simulated cells carry it
    new = sim.sample(n, seed=1).layers["counts"].toarray()
    z = stats.norm.ppf(np.clip(stats.nbinom.cdf(new, theta, theta / (theta + mu)), 1e-9, 1 - 1e-9))
    assert np.abs(np.corrcoef(z, rowvar=False)[off] - truth[off]).max() < 0.08
    auto = tk.simulate.fit_copula(_adata(counts), seed=0)
    assert 0.0 <= auto.shrinkage["T | control"] < 0.05  # 5,000 cells, 4 genes: little to shrink


def test_full_shrinkage_gives_the_identity_and_no_copula_gives_independence():
    rng = np.random.default_rng(4)
    shared = rng.poisson(3.0, (80, 1))
    counts = rng.poisson(shared + np.arange(1, 7))
    sim = tk.simulate.fit_copula(_adata(counts), shrinkage=1.0)
    np.testing.assert_array_equal(sim.correlations["T | control"], np.eye(6))
    assert sim.shrinkage.to_dict() == {"T | control": 1.0}
    half = tk.simulate.fit_copula(_adata(counts), shrinkage=0.5)
    full = tk.simulate.fit_copula(_adata(counts), shrinkage=0.0)
    np.testing.assert_allclose(half.correlations["T | control"], 0.5 * full.correlations["T | control"] + 0.5 * np.eye(6))
    off = tk.simulate.fit_copula(_adata(counts), copula=False)
    assert off.correlations == {} and off.shrinkage.isna().all() and not off.copula
    out = off.sample(50, seed=0)
    assert out.obs["dataset"].unique().tolist() == ["simulated:marginals_only"]
    pd.testing.assert_frame_equal(off.marginals, sim.marginals)


# --------------------------------------------------------------------------- Kang muscat counts


@pytest.fixture(scope="module")
def kang():
    return tk.data.load_kang_muscat()


@pytest.fixture(scope="module")
def fits(kang):
    return {
        "copula": tk.simulate.fit_copula(kang, seed=0),
        "marginals only": tk.simulate.fit_copula(kang, copula=False, seed=0),
        "independent Poisson": tk.simulate.fit_independent_poisson(kang),
    }


@pytest.fixture(scope="module")
def samples(fits):
    return {name: sim.sample(seed=1) for name, sim in fits.items()}


def _group_counts(adata, group):
    rows = group_labels(adata, ("cell_type", "condition")) == group
    return adata.layers["counts"][np.flatnonzero(rows)]


def test_kang_fit_describes_every_group(kang, fits):
    sim = fits["copula"]
    assert list(sim.group_sizes.index) == sorted(set(group_labels(kang, ("cell_type", "condition"))))
    assert int(sim.group_sizes.sum()) == kang.n_obs
    assert list(sim.var_names) == list(kang.var_names)
    assert len(sim.marginals) == len(sim.group_sizes) * kang.n_vars
    for col in ("group", "gene", "family", "mu", "theta", "pi", "bic_poisson", "bic_zinb"):
        assert col in sim.marginals.columns
    assert not sim.marginals[["mu", "pi"]].isna().any().any()
    table = sim.family_table()
    assert (table.sum(axis=1) == kang.n_vars).all()
    assert table["nb"].sum() > 0 and table["poisson"].sum() > 0  # Kang has over-dispersed and Poisson-like genes
    assert ((sim.shrinkage > 0) & (sim.shrinkage < 1)).all()
    for group, r in sim.correlations.items():
        assert r.shape == (kang.n_vars, kang.n_vars)
        np.testing.assert_allclose(np.diag(r), 1.0)
    assert sim.fit_seconds > 0
    assert "CopulaSimulator" in repr(sim)


def test_kang_samples_have_the_real_groups_and_means(kang, fits, samples):
    for name, sim in fits.items():
        out = samples[name]
        assert out.shape == kang.shape
        assert list(out.var_names) == list(kang.var_names)
        assert out.layers["counts"].dtype == np.int32
        for group in sim.group_sizes.index:
            real = np.asarray(_group_counts(kang, group).mean(axis=0)).ravel()
            fake = np.asarray(_group_counts(out, group).mean(axis=0)).ravel()
            assert np.corrcoef(real, fake)[0, 1] > 0.95, (name, group)
        crosstab = pd.crosstab(out.obs["perturbation"], out.obs["condition"])
        assert crosstab.loc["IFN-beta", "stimulated"] > 0 and crosstab.loc["control", "control"] > 0
        assert crosstab.loc["IFN-beta", "control"] == 0
    big = fits["copula"].sample(10_000, seed=2)
    assert big.n_obs == 10_000
    share = big.obs["group"].value_counts(normalize=True).sort_index()
    np.testing.assert_allclose(share.to_numpy(), (fits["copula"].group_sizes / kang.n_obs).to_numpy(), atol=1e-3)
    for group in fits["copula"].group_sizes.index:
        real = np.asarray(_group_counts(kang, group).mean(axis=0)).ravel()
        fake = np.asarray(_group_counts(big, group).mean(axis=0)).ravel()
        assert np.corrcoef(real, fake)[0, 1] > 0.95


def _corr_agreement(real, fake, group, k=100):
    x = log1p_cp10k(_group_counts(real, group)).toarray()
    y = log1p_cp10k(_group_counts(fake, group)).toarray()
    top = np.argsort(-x.mean(axis=0))[:k]
    upper = np.triu_indices(k, 1)
    rx = np.corrcoef(x[:, top], rowvar=False)[upper]
    ry = np.nan_to_num(np.corrcoef(y[:, top], rowvar=False))[upper]
    return np.corrcoef(rx, ry)[0, 1]


@pytest.mark.parametrize("group", ["CD14+ Monocytes | control", "FCGR3A+ Monocytes | stimulated"])
def test_kang_copula_beats_independent_genes_on_correlations(kang, samples, group):
    """Monocyte groups: their top genes co-vary strongly; in the lymphocyte groups the correlations of
    ~200 cells are mostly noise (even two real halves agree little), so no simulator can show much there."""
    with np.errstate(invalid="ignore", divide="ignore"):
        scores = {name: _corr_agreement(kang, out, group) for name, out in samples.items()}
    assert scores["copula"] > 0.3
    assert scores["copula"] > scores["marginals only"] + 0.2
    assert scores["copula"] > scores["independent Poisson"] + 0.2


def test_kang_copula_matches_variance_better_than_poisson(kang, samples):
    """Over-dispersed marginals reproduce the per-gene variance that independent Poisson genes miss."""
    group = "CD14+ Monocytes | control"
    real = _group_counts(kang, group).toarray().var(axis=0)

    def err(out):
        fake = _group_counts(out, group).toarray().var(axis=0)
        return np.median(np.abs(np.log1p(fake) - np.log1p(real)))

    assert err(samples["copula"]) < err(samples["independent Poisson"])


def test_determinism(kang, fits):
    sim = fits["copula"]
    a, b = sim.sample(300, seed=7), sim.sample(300, seed=7)
    assert (a.layers["counts"] != b.layers["counts"]).nnz == 0
    assert (a.layers["counts"] != sim.sample(300, seed=8).layers["counts"]).nnz > 0
    sub = kang[kang.obs["cell_type"].isin(["B cells"])].copy()
    one, two = tk.simulate.fit_copula(sub, seed=3), tk.simulate.fit_copula(sub, seed=3)
    for g in one.correlations:
        np.testing.assert_array_equal(one.correlations[g], two.correlations[g])
    other = tk.simulate.fit_copula(sub, seed=4)
    assert not np.array_equal(one.correlations["B cells | control"], other.correlations["B cells | control"])
    pois = fits["independent Poisson"]
    assert (pois.sample(200, seed=1).layers["counts"] != pois.sample(200, seed=1).layers["counts"]).nnz == 0


def test_sample_by_group_and_progress(kang, fits):
    sim = fits["copula"]
    out = sim.sample({"B cells | control": 5, "CD8 T cells | stimulated": 3}, seed=0)
    assert out.obs["group"].value_counts().to_dict() == {"B cells | control": 5, "CD8 T cells | stimulated": 3}
    assert set(out.obs["cell_type"]) == {"B cells", "CD8 T cells"}
    with pytest.raises(ValueError, match="not fitted on"):
        sim.sample({"NK cells | control": 3})
    with pytest.raises(ValueError, match="n_cells"):
        sim.sample(-5)
    with pytest.raises(ValueError, match="seed"):
        sim.sample(20, seed="zero")
    sub = kang[kang.obs["cell_type"] == "B cells", :50].copy()
    assert len(tk.simulate.fit_copula(sub, progress=True, groupby="condition").group_sizes) == 2


def test_baseline_means(kang, fits):
    pois = fits["independent Poisson"]
    group = "CD4 T cells | control"
    np.testing.assert_allclose(pois.means.loc[group].to_numpy(), np.asarray(_group_counts(kang, group).mean(axis=0)).ravel())
    assert pois.sample(100).obs["dataset"].unique().tolist() == ["simulated:independent_poisson"]
    assert pois.fit_seconds >= 0
    assert "PoissonSimulator(10 groups" in repr(pois)
    assert pois.sample({"B cells | control": 2}).obs["group"].tolist() == ["B cells | control"] * 2
    assert "independent genes" in repr(fits["marginals only"]) and "shrinkage" in repr(fits["copula"])


# --------------------------------------------------------------------------- errors


def test_a_group_with_one_cell_is_named(kang):
    keep = np.r_[np.flatnonzero(kang.obs["cell_type"] != "B cells"), np.flatnonzero(kang.obs["cell_type"] == "B cells")[:1]]
    small = kang[np.sort(keep)].copy()
    with pytest.raises(ValueError, match="B cells \\| control"):
        tk.simulate.fit_copula(small)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(groupby=("cell_type", "batch")), "batch"),
        (dict(groupby=()), "groupby"),
        (dict(layer="logcounts"), "non-integer"),
        (dict(layer="spliced"), "spliced"),
        (dict(shrinkage="ledoit"), "shrinkage"),
        (dict(shrinkage=1.5), "shrinkage"),
        (dict(shrinkage=True), "shrinkage"),
        (dict(families=("gamma",)), "families"),
        (dict(criterion="loglik"), "criterion"),
        (dict(seed=1.5), "seed"),
        (dict(copula="yes"), "copula"),
    ],
)
def test_fit_copula_rejects_bad_input(kang, kwargs, match):
    with pytest.raises(ValueError, match=match):
        tk.simulate.fit_copula(kang[:60].copy(), **kwargs)


def test_fit_copula_rejects_non_anndata_and_empty():
    with pytest.raises(ValueError, match="AnnData"):
        tk.simulate.fit_copula(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="no genes"):
        tk.simulate.fit_copula(_adata(np.zeros((4, 0), dtype=int)))


def test_baseline_rejects_bad_input(kang):
    with pytest.raises(ValueError, match="batch"):
        tk.simulate.fit_independent_poisson(kang, groupby="batch")
    with pytest.raises(ValueError, match="non-integer"):
        tk.simulate.fit_independent_poisson(kang, layer="logcounts")


# --------------------------------------------------------------------------- figures


def test_figures(kang, fits, samples):
    sim = fits["copula"]
    group = "CD14+ Monocytes | control"
    fig = plotting.marginal_fits(kang, sim, genes=["FTL", "S100A8", "CD14"], group=group)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert "CD14+ Monocytes | control" in fig._suptitle.get_text()
    fig = plotting.family_counts(sim)
    assert len(fig.axes[0].patches) == len(sim.group_sizes) * sim.family_table().shape[1]
    fig = plotting.correlation_heatmaps(kang, samples, n_genes=20, group=group)
    assert len(fig.axes) == 1 + len(samples) + 1  # panels and the colour bar
    assert "r with real" in fig.axes[1].get_title()
    fig = plotting.correlation_heatmaps(kang, {"copula": samples["copula"]}, n_genes=40)
    assert "pooled" in fig._suptitle.get_text()


def test_figures_reject_bad_input(kang, fits, samples):
    sim = fits["copula"]
    group = "CD14+ Monocytes | control"
    with pytest.raises(ValueError, match="CopulaSimulator"):
        plotting.marginal_fits(kang, fits["independent Poisson"], genes=["FTL"], group=group)
    with pytest.raises(ValueError, match="unknown group"):
        plotting.marginal_fits(kang, sim, genes=["FTL"], group="NK | control")
    with pytest.raises(ValueError, match="NOTAGENE"):
        plotting.marginal_fits(kang, sim, genes=["NOTAGENE"], group=group)
    with pytest.raises(ValueError, match="at least one gene"):
        plotting.marginal_fits(kang, sim, genes=[], group=group)
    with pytest.raises(ValueError, match="no cells"):
        plotting.marginal_fits(kang[kang.obs["cell_type"] == "B cells"], sim, genes="FTL", group=group)
    with pytest.raises(ValueError, match="family_table"):
        plotting.family_counts(pd.DataFrame())
    with pytest.raises(ValueError, match="non-empty dict"):
        plotting.correlation_heatmaps(kang, {})
    with pytest.raises(ValueError, match="n_genes"):
        plotting.correlation_heatmaps(kang, samples, n_genes=1)
    with pytest.raises(ValueError, match="at least 3"):
        plotting.correlation_heatmaps(kang, samples, group="NK | control")
    with pytest.raises(ValueError, match="different genes"):
        plotting.correlation_heatmaps(kang, {"bad": samples["copula"][:, :10]})
