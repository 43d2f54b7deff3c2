"""Tests of tutorial_kit.metrics against independent references.

References: hand arithmetic (written out below), scipy.stats, sklearn.metrics / PCA,
scanpy.tl.rank_genes_groups (DE ranking) and pertpy's Distance (edistance, MMD).
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import time

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.metrics.pairwise import rbf_kernel

from tutorial_kit import metrics as m

TOL = 1e-6


@pytest.fixture(scope="module")
def pt():
    """pertpy is slow to import (jax, ott): once per module."""
    import pertpy

    return pertpy


@pytest.fixture(scope="module")
def sc():
    import scanpy

    return scanpy


@pytest.fixture()
def rng():
    return np.random.default_rng(42)


def _means(rng, n=50):
    ctrl = rng.gamma(2.0, 1.0, size=n)
    true = ctrl + rng.normal(0, 0.5, size=n)
    pred = ctrl + 0.7 * (true - ctrl) + rng.normal(0, 0.2, size=n)
    return pred, true, ctrl


# --------------------------------------------------------------------------- mean-based metrics


def test_r2_mean_sqpearson_matches_scipy_and_hand(rng):
    pred, true, _ = _means(rng)
    r, _ = stats.pearsonr(pred, true)
    assert abs(m.r2_mean_sqpearson(pred, true) - r**2) < 1e-12
    # scGen's reg_mean_plot reports linregress(x, y).rvalue ** 2
    assert abs(m.r2_mean_sqpearson(pred, true) - stats.linregress(pred, true).rvalue ** 2) < 1e-12
    # hand: x=(1,2,3), y=(2,4,7): centred (-1,0,1), (-7/3,-1/3,8/3); r = 5/sqrt(2 * 114/9)
    expected = 25 / (2 * 114 / 9)
    assert m.r2_mean_sqpearson([1, 2, 3], [2, 4, 7]) == pytest.approx(expected, abs=1e-12)
    # scale/offset invariance: an affine map scores 1
    assert m.r2_mean_sqpearson(2 * true + 5, true) == pytest.approx(1.0, abs=1e-12)


def test_r2_var_sqpearson_matches_scipy_and_hand(rng):
    x_pred = rng.gamma(2.0, 1.0, size=(30, 25))
    x_true = 1.5 * x_pred[rng.permutation(30)] + rng.normal(0, 0.3, size=(30, 25))
    pv, tv = x_pred.var(axis=0, ddof=1), x_true.var(axis=0, ddof=1)
    r, _ = stats.pearsonr(pv, tv)
    assert abs(m.r2_var_sqpearson(pv, tv) - r**2) < 1e-12
    # hand: x=(1,2,3), y=(1,3,2): centred (-1,0,1), (-1,1,0); r = 1 / (sqrt(2) sqrt(2)) = 1/2
    assert m.r2_var_sqpearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.25, abs=1e-12)
    # a shared shift keeps the variances: a mean-shifted copy of the true cells scores exactly 1
    shifted = x_true + rng.normal(size=25)[None, :]
    assert m.r2_var_sqpearson(shifted.var(axis=0, ddof=1), tv) == pytest.approx(1.0, abs=1e-12)


def test_r2_var_sqpearson_errors():
    with pytest.raises(ValueError, match=r"pred_var and true_var have different shapes \(3,\) and \(2,\)"):
        m.r2_var_sqpearson([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="true_var has negative values.*variances cannot be negative"):
        m.r2_var_sqpearson([1.0, 2.0, 3.0], [1.0, -2.0, 3.0])
    with pytest.raises(ValueError, match="pred_var contains NaN"):
        m.r2_var_sqpearson([1.0, np.nan, 3.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="pred_var must be a 1-D vector"):
        m.r2_var_sqpearson(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.warns(RuntimeWarning, match="r2_var_sqpearson: the first vector is constant"):
        assert np.isnan(m.r2_var_sqpearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]))


def test_r2_mean_cod_matches_sklearn_and_hand(rng):
    pred, true, _ = _means(rng)
    assert abs(m.r2_mean_cod(pred, true) - r2_score(true, pred)) < 1e-12
    # hand: true=(1,2,4) mean 7/3, SS_tot = (16+1+25)/9 = 14/3, SS_res = 1 -> 1 - 3/14 = 11/14
    assert m.r2_mean_cod([1, 2, 3], [1, 2, 4]) == pytest.approx(11 / 14, abs=1e-12)
    # argument order matters: it is r2_score(true, pred), not r2_score(pred, true)
    assert abs(m.r2_mean_cod(pred, true) - r2_score(pred, true)) > 1e-3
    # unlike the squared Pearson, an affine distortion is penalised (can be negative)
    assert m.r2_mean_cod(2 * true + 5, true) < 0


def test_pearson_delta_and_pert_match_scipy(rng):
    pred, true, ctrl = _means(rng)
    ref = ctrl + 0.3
    assert abs(m.pearson_delta(pred, true, ctrl) - stats.pearsonr(pred - ctrl, true - ctrl)[0]) < 1e-12
    assert abs(m.pearson_delta_pert(pred, true, ref) - stats.pearsonr(pred - ref, true - ref)[0]) < 1e-12
    # hand: deltas (0,1,0) and (0,2,0) are perfectly correlated; (1,0) and (0,1) anti-correlated
    assert m.pearson_delta([1, 3, 2], [1, 4, 2], [1, 2, 2]) == pytest.approx(1.0, abs=1e-12)
    assert m.pearson_delta([2, 1], [1, 2], [1, 1]) == pytest.approx(-1.0, abs=1e-12)


def test_constant_vectors_give_nan_and_warn(rng):
    pred, true, ctrl = _means(rng)
    with pytest.warns(RuntimeWarning, match="first vector is constant"):
        assert np.isnan(m.r2_mean_sqpearson(np.ones(5), np.arange(5.0)))
    with pytest.warns(RuntimeWarning, match="second vector is constant"):
        assert np.isnan(m.pearson_delta(pred, ctrl, ctrl))  # true == ctrl: no observed change
    with pytest.warns(RuntimeWarning, match="pearson_delta: the first vector is constant"):
        assert np.isnan(m.pearson_delta(ctrl, true, ctrl))  # a "no change" model
    with pytest.warns(RuntimeWarning, match="pearson_delta_pert"):
        assert np.isnan(m.pearson_delta_pert(true, true, true))
    # a delta of pure rounding error (same cells, sparse vs dense means) is no change, not a signal
    noise = ctrl * (1 + 1e-15 * rng.standard_normal(ctrl.size))
    assert np.ptp(noise - ctrl) > 0
    with pytest.warns(RuntimeWarning, match="pearson_delta: the first vector is constant"):
        assert np.isnan(m.pearson_delta(noise, true, ctrl))
    with pytest.warns(RuntimeWarning, match="pearson_delta_pert: the first vector is constant"):
        assert np.isnan(m.pearson_delta_pert(noise, true, ctrl))
    # a tiny but real delta (well above rounding) is still correlated
    assert m.pearson_delta(ctrl + 1e-6 * (true - ctrl), true, ctrl) == pytest.approx(1.0, abs=1e-9)
    with pytest.warns(RuntimeWarning, match="true_mean is constant"):
        assert np.isnan(m.r2_mean_cod(pred, np.full(pred.size, 2.0)))


def test_mse_direction_l2_hand_and_references(rng):
    pred, true, ctrl = _means(rng)
    idx = np.array([3, 7, 11, 20])
    assert abs(m.mse_top_de(pred, true, idx) - mean_squared_error(true[idx], pred[idx])) < 1e-12
    # hand: genes 1, 2: ((5-2)^2 + (3-2)^2) / 2 = 5
    assert m.mse_top_de([1, 5, 3], [1, 2, 2], [1, 2]) == 5.0
    # hand: changes pred (1,-1,-0.5) vs true (2,1,-1): signs agree on genes 0 and 2 -> 2/3
    assert m.direction_agreement_k([2, 0, 0.5], [3, 2, 0], [1, 1, 1], [0, 1, 2]) == pytest.approx(2 / 3)
    # no change in both counts as agreement, no change in only one as disagreement
    assert m.direction_agreement_k([1, 1], [1, 2], [1, 1], [0]) == 1.0
    assert m.direction_agreement_k([1, 1], [1, 2], [1, 1], [1]) == 0.0
    # hand: control (1,5,3) -> top-2 genes 1, 2; pred (4,9) vs true (0,9): L2 = 4
    assert m.l2_top_expressed([0, 4, 9], [3, 0, 9], [1, 5, 3], k=2) == 4.0
    top = np.argsort(ctrl)[::-1][:10]
    assert abs(m.l2_top_expressed(pred, true, ctrl, k=10) - np.sqrt(np.sum((pred[top] - true[top]) ** 2))) < 1e-12
    # ties in control expression are broken by gene order
    assert m.l2_top_expressed([0, 1, 7], [0, 0, 0], [2, 2, 2], k=2) == 1.0


def test_float32_and_list_inputs_are_accepted():
    assert m.mse_top_de(np.array([1, 5, 3], dtype=np.float32), [1, 2, 2], np.array([1, 2], dtype=np.int32)) == 5.0


# --------------------------------------------------------------------------- DE ranking vs scanpy


def _de_adata(rng, n_group=40, n_ctrl=50, n_genes=60, sparse=False):
    ctrl = rng.poisson(rng.gamma(1.0, 1.0, size=n_genes), size=(n_ctrl, n_genes))
    eff = rng.normal(0, 1.0, size=n_genes) * (rng.random(n_genes) < 0.3)
    group = rng.poisson(rng.gamma(1.0, 1.0, size=n_genes) * np.exp(eff), size=(n_group, n_genes))
    x = np.log1p(np.vstack([group, ctrl]).astype(float))
    x[:, 0] = 0.0  # a gene never expressed: 0/0, scored 0 as in scanpy
    labels = ["A"] * n_group + ["control"] * n_ctrl
    obs = pd.DataFrame({"perturbation": pd.Categorical(labels)}, index=[f"c{i}" for i in range(len(labels))])
    var = pd.DataFrame(index=[f"g{j}" for j in range(n_genes)])
    return ad.AnnData(sp.csr_matrix(x) if sparse else x, obs=obs, var=var)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("rankby_abs", [True, False])
def test_top_de_genes_equals_scanpy_ttest(sc, rng, sparse, rankby_abs):
    a = _de_adata(rng, sparse=sparse)
    sc.tl.rank_genes_groups(
        a, "perturbation", groups=["A"], reference="control", method="t-test",
        n_genes=a.n_vars, rankby_abs=rankby_abs,
    )
    names = list(a.uns["rank_genes_groups"]["names"]["A"])
    sc_scores = np.asarray(a.uns["rank_genes_groups"]["scores"]["A"], dtype=float)
    is_a = (a.obs["perturbation"] == "A").to_numpy()
    order = m.top_de_genes(a.X[is_a], a.X[~is_a], k=a.n_vars, rankby_abs=rankby_abs)
    scores = m.de_scores(a.X[is_a], a.X[~is_a])
    # scanpy ranks tied genes in unspecified order: compare positions with distinct scores
    key = np.abs(scores[order]) if rankby_abs else scores[order]
    distinct = np.r_[True, np.diff(key) != 0] & np.r_[np.diff(key) != 0, True]
    assert distinct.sum() > 50
    assert [names[i] for i in np.flatnonzero(distinct)] == list(a.var_names[order[distinct]])
    # scanpy stores scores as float32 (relative precision ~6e-8): compare to 1e-6 relative
    assert np.max(np.abs(scores[order] - sc_scores) / np.maximum(1.0, np.abs(sc_scores))) < TOL
    assert scores[0] == 0.0  # never-expressed gene: 0/0 -> 0
    # the top-20 set (what GEARS uses) is a prefix of the full ranking
    assert list(m.top_de_genes(a.X[is_a], a.X[~is_a], k=20, rankby_abs=rankby_abs)) == list(order[:20])


def test_de_scores_is_welch_t(rng):
    g = rng.normal(1.0, 2.0, size=(12, 6))
    c = rng.normal(0.0, 1.0, size=(30, 6))
    expected = stats.ttest_ind(g, c, equal_var=False).statistic
    assert np.max(np.abs(m.de_scores(g, c) - expected)) < 1e-10
    # a gene constant in each group but different between them: +-inf, ranked first by |t|
    g[:, 2], c[:, 2] = 5.0, 1.0
    assert np.isposinf(m.de_scores(g, c)[2])
    assert m.top_de_genes(g, c, k=1)[0] == 2


def test_deg_overlap_k_hand_and_reference(rng):
    a = _de_adata(rng, n_group=30, n_ctrl=40, n_genes=40)
    is_a = (a.obs["perturbation"] == "A").to_numpy()
    x_true, x_ctrl = a.X[is_a], a.X[~is_a]
    # a prediction equal to the truth overlaps fully
    assert m.deg_overlap_k(x_true, x_true, x_ctrl, k=10) == 1.0
    # control cells as "prediction": compare with the two independently ranked sets
    x_pred = x_ctrl[:20] + rng.normal(0, 0.3, size=(20, 40))
    s_true = np.argsort(-np.abs(stats.ttest_ind(x_true, x_ctrl, equal_var=False).statistic))[:10]
    s_pred = np.argsort(-np.abs(stats.ttest_ind(x_pred, x_ctrl, equal_var=False).statistic))[:10]
    expected = len(set(s_true) & set(s_pred)) / 10
    assert m.deg_overlap_k(x_pred, x_true, x_ctrl, k=10) == expected
    # hand: gene 0 changes in truth; prediction changes gene 2 more than gene 0 -> top-1 sets differ
    c = np.array([[1.0, 1.0, 1.0], [1.1, 1.2, 0.9]])
    t = np.array([[3.0, 1.0, 1.0], [3.2, 1.1, 1.0]])
    p = np.array([[1.5, 1.0, 4.0], [1.6, 1.1, 4.1]])
    assert m.deg_overlap_k(p, t, c, k=1) == 0.0
    assert m.deg_overlap_k(p, t, c, k=3) == 1.0


# --------------------------------------------------------------------------- PCA


def test_fit_pca_is_seeded_sklearn_pca(rng):
    x = rng.normal(size=(120, 600))  # large enough for sklearn's randomized solver
    pca = m.fit_pca(x, n_comps=10, seed=3)
    ref = PCA(n_components=10, random_state=3).fit(x)
    assert pca.n_components_ == 10
    assert np.max(np.abs(pca.components_ - ref.components_)) < 1e-10
    again = m.fit_pca(x, n_comps=10, seed=3)
    assert np.array_equal(pca.transform(x), again.transform(x))
    small = rng.normal(size=(30, 8))
    dense = m.fit_pca(small, n_comps=3)
    sparse = m.fit_pca(sp.csr_matrix(small), n_comps=3)
    full = m.fit_pca(sp.csr_matrix(small), n_comps=8)  # n_comps == n_genes on sparse input
    assert np.max(np.abs(np.abs(dense.components_) - np.abs(sparse.components_))) < 1e-8
    assert full.n_components_ == 8


# --------------------------------------------------------------------------- edistance


def test_edistance_hand_cases():
    x = np.array([[0.0], [2.0]])
    y = np.array([[4.0], [6.0]])
    # squared: d_XY^2 = 16,36,4,16 -> mean 18; d_XX^2 = 0,4,4,0 -> mean 2; same for Y -> 2*18 - 2 - 2 = 32
    assert m.edistance(x, y, squared=True) == pytest.approx(32.0, abs=1e-12)
    # Euclidean: d_XY = 4,6,2,4 -> mean 4; d_XX = 0,2,2,0 -> mean 1 (diagonal included) -> 8 - 1 - 1 = 6
    assert m.edistance(x, y, squared=False) == pytest.approx(6.0, abs=1e-12)
    assert m.edistance(x, y) == pytest.approx(6.0, abs=1e-12)  # Euclidean is the default
    # identical groups: 0
    assert m.edistance(x, x) == pytest.approx(0.0, abs=1e-12)


def test_edistance_squared_is_twice_centroid_distance(rng):
    x = rng.normal(0, 1, size=(40, 5))
    y = rng.normal(0.5, 3, size=(60, 5))
    expected = 2 * np.sum((x.mean(0) - y.mean(0)) ** 2)
    assert m.edistance(x, y, squared=True) == pytest.approx(expected, rel=1e-9)
    # the Euclidean version sees the difference in spread; the squared one does not
    collapsed = np.repeat(y.mean(0, keepdims=True), 60, axis=0)
    assert m.edistance(collapsed, y, squared=True) == pytest.approx(0.0, abs=1e-8)
    assert m.edistance(collapsed, y, squared=False) > 1.0


def test_edistance_matches_pertpy(pt, rng):
    x = rng.normal(0, 1, size=(35, 6))
    y = rng.normal(0.4, 1.5, size=(45, 6))
    # pertpy 1.0.3: Distance('edistance')(X, Y) uses Euclidean cell distances, diagonal included
    ref_euclid = pt.tl.Distance("edistance", obsm_key="X_pca")(x, y)
    assert abs(m.edistance(x, y, squared=False) - ref_euclid) < TOL
    # squared Euclidean through pertpy's public precomputed path (cell_wise_metric='sqeuclidean')
    obs = pd.DataFrame({"g": ["x"] * 35 + ["y"] * 45}, index=[str(i) for i in range(80)])
    a = ad.AnnData(np.zeros((80, 1)), obs=obs)
    a.obsm["X_pca"] = np.vstack([x, y])
    table = pt.tl.Distance("edistance", obsm_key="X_pca", cell_wise_metric="sqeuclidean").pairwise(
        a, groupby="g", show_progressbar=False, n_jobs=1
    )
    assert abs(m.edistance(x, y, squared=True) - table.loc["x", "y"]) < TOL
    # U-statistic conversion documented in the docstring: within terms times n/(n-1)
    assert m.edistance(x, y, squared=True) > 0
    assert abs(m.edistance(x, y) - ref_euclid) < TOL  # the default matches pertpy's default


def test_edistance_in_shared_pca_and_sparse(rng):
    real = rng.normal(size=(100, 20))
    pca = m.fit_pca(real, n_comps=5)
    x, y = rng.normal(size=(30, 20)), rng.normal(0.3, 1, size=(25, 20))
    expected = m.edistance(pca.transform(x), pca.transform(y))
    assert m.edistance(x, y, pca=pca) == pytest.approx(expected, rel=1e-10)
    assert m.edistance(sp.csr_matrix(x), sp.csr_matrix(y)) == pytest.approx(m.edistance(x, y), rel=1e-10)


def test_edistance_blocks_give_the_same_value(rng, monkeypatch):
    x, y = rng.normal(size=(30, 4)), rng.normal(1, 1, size=(20, 4))
    whole = m.edistance(x, y, squared=False)
    monkeypatch.setattr(m, "_BLOCK_ELEMENTS", 50)  # forces row blocks of 2 cells
    assert m.edistance(x, y, squared=False) == pytest.approx(whole, rel=1e-12)


# --------------------------------------------------------------------------- MMD


def test_mmd_rbf_hand_and_pertpy(pt, rng):
    x = np.array([[0.0], [1.0]])
    y = np.array([[1.0], [2.0]])
    e1, e4 = np.exp(-1), np.exp(-4)
    # Kxx mean (1+e^-1)/2, Kyy the same, Kxy mean (1 + 2e^-1 + e^-4)/4
    expected = (1 + e1) - 2 * (1 + 2 * e1 + e4) / 4
    assert m.mmd_rbf(x, y, gamma=1.0) == pytest.approx(expected, abs=1e-12)
    x = rng.normal(size=(40, 5))
    y = rng.normal(0.5, 1.2, size=(50, 5))
    for gamma in (0.05, 0.3):
        ref = pt.tl.Distance("mmd", obsm_key="X_pca")(x, y, kernel="rbf", gamma=gamma)
        assert abs(m.mmd_rbf(x, y, gamma=gamma) - ref) < TOL
    # sklearn rbf_kernel is the kernel convention exp(-gamma ||a-b||^2)
    k = rbf_kernel(x, y, gamma=0.3)
    assert abs(np.exp(-0.3 * np.sum((x[0] - y[0]) ** 2)) - k[0, 0]) < 1e-12


def test_mmd_median_gamma_is_recorded(rng):
    from scipy.spatial.distance import pdist

    x, y = rng.normal(size=(20, 3)), rng.normal(1, 1, size=(25, 3))
    value, gamma = m.mmd_rbf(x, y, return_gamma=True)
    assert gamma == pytest.approx(1 / np.median(pdist(np.vstack([x, y]), "sqeuclidean")), rel=1e-10)
    assert value == pytest.approx(m.mmd_rbf(x, y, gamma=gamma), abs=1e-12)
    assert m.mmd_rbf(x, y) == value
    # hand: squared distances 1, 9, 4 -> median 4 -> gamma 1/4
    assert m.rbf_median_gamma(np.array([[0.0], [1.0], [3.0]])) == 0.25
    # subsampling is seeded and reproducible
    big = rng.normal(size=(300, 2))
    assert m.rbf_median_gamma(big, max_cells=50, seed=1) == m.rbf_median_gamma(big, max_cells=50, seed=1)
    assert m.rbf_median_gamma(big, max_cells=50, seed=1) != m.rbf_median_gamma(big, max_cells=50, seed=2)


# --------------------------------------------------------------------------- discrimination rank


def test_discrimination_rank_hand_and_cell_eval_relation(rng):
    true = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    pred = np.array([[0.9, 0.0], [1.0, 1.0], [1.0, 1.0]])
    # row 0: L1 to true rows 0.1, 1.9, 1.1 -> nearest -> 0
    # row 1: L1 1, 1, 0; own 1: one closer (row 2), one tie (row 0) -> (1 + 0.5) / 2 = 0.75
    # row 2: own distance 0 -> 0
    assert np.allclose(m.discrimination_rank(pred, true), [0.0, 0.75, 0.0])
    # without ties: cell-eval's 1 - rank / P (rank by argsort of L1 distances)
    t = rng.normal(size=(8, 30))
    p = t + rng.normal(0, 4.0, size=(8, 30))
    ours = m.discrimination_rank(p, t)
    n = len(t)
    for i in range(n):
        d = np.abs(t - p[i]).sum(axis=1)
        rank = int(np.flatnonzero(np.argsort(d) == i)[0])
        assert 1 - rank / n == pytest.approx(1 - ours[i] * (n - 1) / n, abs=1e-12)
    assert ours.min() >= 0 and ours.max() <= 1 and ours.max() > 0
    # perfect predictions: all 0
    assert np.all(m.discrimination_rank(t, t) == 0)


def test_discrimination_rank_dataframe_gives_series(rng):
    t = pd.DataFrame(rng.normal(size=(3, 4)), index=["A", "B", "C"], columns=list("wxyz"))
    s = m.discrimination_rank(t * 1.1, t)
    assert isinstance(s, pd.Series) and list(s.index) == ["A", "B", "C"]
    assert np.allclose(s.to_numpy(), m.discrimination_rank((t * 1.1).to_numpy(), t.to_numpy()))
    assert list(m.discrimination_rank(t, t.to_numpy()).index) == ["A", "B", "C"]


# --------------------------------------------------------------------------- permutation test


def test_edistance_test_statistic_and_shifted(rng):
    x = rng.normal(size=(30, 4))
    y = rng.normal(3.0, 1, size=(30, 4))
    res = m.edistance_test(x, y, n_permutations=199, squared=True)
    assert isinstance(res, m.EdistanceTestResult)
    assert res.statistic == pytest.approx(m.edistance(x, y, squared=True), rel=1e-9)
    assert res.pvalue == 1 / 200
    assert res.n_permutations == 199 and res.null_distribution.shape == (199,)
    assert res.null_distribution.max() < res.statistic
    eu = m.edistance_test(x, y, n_permutations=99, squared=False)
    assert eu.statistic == pytest.approx(m.edistance(x, y, squared=False), rel=1e-9)
    assert eu.pvalue == 0.01


def test_edistance_test_null_equals_exhaustive_relabelling(rng):
    x = rng.normal(size=(3, 2))
    y = rng.normal(0.5, 1, size=(3, 2))
    z = np.vstack([x, y])
    # all C(6,3) = 20 relabellings, computed with edistance itself
    exhaustive = np.array(
        [m.edistance(z[list(s)], z[[i for i in range(6) if i not in s]]) for s in itertools.combinations(range(6), 3)]
    )
    res = m.edistance_test(x, y, n_permutations=2000, seed=5)
    # each null value is one of the 20 exhaustive values
    nearest = np.min(np.abs(res.null_distribution[:, None] - exhaustive[None, :]), axis=1)
    assert nearest.max() < 1e-9
    # and the permutation p-value approximates the exact one
    exact = np.mean(exhaustive >= res.statistic - 1e-9)
    assert abs(res.pvalue - exact) < 0.04


def test_edistance_test_identical_distributions_roughly_uniform():
    pvals = []
    for i in range(40):
        r = np.random.default_rng(1000 + i)
        pvals.append(m.edistance_test(r.normal(size=(15, 3)), r.normal(size=(15, 3)), n_permutations=99, seed=i).pvalue)
    pvals = np.array(pvals)
    assert 0.3 < pvals.mean() < 0.7
    assert stats.kstest(pvals, "uniform").pvalue > 0.01
    assert np.all(pvals >= 0.01)


def test_edistance_test_seeding_and_speed(rng):
    x = rng.normal(size=(200, 50))
    y = rng.normal(0.05, 1, size=(200, 50))
    start = time.perf_counter()
    res = m.edistance_test(x, y, n_permutations=1000, seed=7)
    elapsed = time.perf_counter() - start
    assert elapsed < 2.0, f"1000 permutations of 400 cells took {elapsed:.2f}s"
    again = m.edistance_test(x, y, n_permutations=1000, seed=7)
    other = m.edistance_test(x, y, n_permutations=1000, seed=8)
    assert np.array_equal(res.null_distribution, again.null_distribution) and res.pvalue == again.pvalue
    assert not np.array_equal(res.null_distribution, other.null_distribution)


def test_edistance_test_chunks_do_not_change_the_result(rng, monkeypatch):
    x, y = rng.normal(size=(10, 3)), rng.normal(size=(12, 3))
    whole = m.edistance_test(x, y, n_permutations=50, seed=3)
    monkeypatch.setattr(m, "_BLOCK_ELEMENTS", 22 * 7)  # chunks of 7 permutations
    chunked = m.edistance_test(x, y, n_permutations=50, seed=3)
    assert np.allclose(whole.null_distribution, chunked.null_distribution, rtol=1e-12)


# --------------------------------------------------------------------------- evaluate


def _group(rng, label, n, base, shift, *, prefix):
    x = base + shift + rng.normal(0, 0.5, size=(n, base.size))
    obs = pd.DataFrame({"perturbation": [label] * n}, index=[f"{prefix}{label}{i}" for i in range(n)])
    return ad.AnnData(x, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(base.size)]))


@pytest.fixture()
def eval_data():
    rng = np.random.default_rng(0)
    n_genes = 40
    base = rng.gamma(2.0, 1.0, size=n_genes)
    shifts = {p: rng.normal(0, 1, size=n_genes) * (rng.random(n_genes) < 0.4) for p in ["A", "B", "C"]}
    ctrl = _group(rng, "control", 60, base, 0.0, prefix="c")
    true = ad.concat([_group(rng, p, 40, base, s, prefix="t") for p, s in shifts.items()])
    pred = ad.concat([_group(rng, p, 30, base, 0.8 * s, prefix="p") for p, s in shifts.items() if p != "C"])
    return pred, true, ctrl


def test_evaluate_dataframe_rows_and_values(eval_data):
    pred, true, ctrl = eval_data
    df = m.evaluate(pred, true, ctrl, n_top_de=5, k_overlap=10, k_top_expressed=15)
    assert list(df.columns) == ["perturbation", "metric", "gene_set", "value", "n_genes"]
    assert set(df["perturbation"]) == {"A", "B"}  # C is in true only: not predicted, not evaluated
    counts = df.groupby("metric").size().to_dict()
    assert counts == {
        "r2_mean_sqpearson": 6, "r2_var_sqpearson": 4, "r2_mean_cod": 6, "pearson_delta": 4, "pearson_delta_pert": 4,
        "mse_top_de": 2, "direction_agreement_k": 2, "l2_top_expressed": 2, "deg_overlap_k": 2,
        "edistance": 2, "mmd_rbf": 2, "discrimination_rank": 2,
    }
    assert set(df.loc[df.metric == "r2_mean_cod", "gene_set"]) == {"all", "top5_de", "top10_de"}
    assert df.value.notna().all()

    def get(metric, gene_set, p="A"):
        row = df[(df.perturbation == p) & (df.metric == metric) & (df.gene_set == gene_set)]
        assert len(row) == 1
        return row.value.iloc[0], row.n_genes.iloc[0]

    a_pred = pred[pred.obs.perturbation == "A"].X
    a_true = true[true.obs.perturbation == "A"].X
    pm, tm, cm = a_pred.mean(0), a_true.mean(0), ctrl.X.mean(0)
    de = m.top_de_genes(a_true, ctrl.X, k=10)
    assert get("r2_mean_sqpearson", "all") == (pytest.approx(m.r2_mean_sqpearson(pm, tm)), 40)
    assert get("r2_mean_cod", "top10_de") == (pytest.approx(m.r2_mean_cod(pm[de], tm[de])), 10)
    pv, tv = a_pred.var(0, ddof=1), a_true.var(0, ddof=1)
    assert get("r2_var_sqpearson", "all") == (pytest.approx(m.r2_var_sqpearson(pv, tv)), 40)
    assert get("r2_var_sqpearson", "top10_de") == (pytest.approx(m.r2_var_sqpearson(pv[de], tv[de])), 10)
    assert set(df.loc[df.metric == "r2_var_sqpearson", "gene_set"]) == {"all", "top10_de"}
    assert get("pearson_delta", "top5_de")[0] == pytest.approx(m.pearson_delta(pm[de[:5]], tm[de[:5]], cm[de[:5]]))
    ref = np.mean([true[true.obs.perturbation == p].X.mean(0) for p in "ABC"], axis=0)
    assert get("pearson_delta_pert", "all")[0] == pytest.approx(m.pearson_delta_pert(pm, tm, ref))
    assert get("mse_top_de", "top5_de") == (pytest.approx(m.mse_top_de(pm, tm, de[:5])), 5)
    assert get("direction_agreement_k", "top5_de")[0] == m.direction_agreement_k(pm, tm, cm, de[:5])
    assert get("l2_top_expressed", "top15_expressed") == (pytest.approx(m.l2_top_expressed(pm, tm, cm, k=15)), 15)
    assert get("deg_overlap_k", "top10_de")[0] == m.deg_overlap_k(a_pred, a_true, ctrl.X, k=10)
    # ONE PCA fitted on real cells (true + ctrl) only
    pca = m.fit_pca(np.vstack([true.X, ctrl.X]), n_comps=40, seed=0)
    assert df.attrs["pca_n_comps"] == 40 and "true + ctrl" in df.attrs["pca"]
    assert get("edistance", "pca40")[0] == pytest.approx(m.edistance(a_pred, a_true, pca=pca), rel=1e-8)
    gamma = m.rbf_median_gamma(np.vstack([true.X, ctrl.X]), pca=pca)
    assert df.attrs["mmd_gamma"] == pytest.approx(gamma)
    assert get("mmd_rbf", "pca40")[0] == pytest.approx(m.mmd_rbf(a_pred, a_true, pca=pca, gamma=gamma), rel=1e-8)
    effects = [
        (pred[pred.obs.perturbation == p].X.mean(0) - cm, true[true.obs.perturbation == p].X.mean(0) - cm)
        for p in "AB"
    ]
    ranks = m.discrimination_rank(np.vstack([e[0] for e in effects]), np.vstack([e[1] for e in effects]))
    assert get("discrimination_rank", "all")[0] == ranks[0]


def test_evaluate_options(eval_data):
    pred, true, ctrl = eval_data
    pca = m.fit_pca(np.vstack([true.X, ctrl.X]), n_comps=7)
    ref = np.zeros(40)
    df = m.evaluate(
        pred, true, ctrl, metrics=["edistance", "pearson_delta_pert"], pca=pca, reference_mean=ref,
        n_top_de=5, k_overlap=5, k_top_expressed=10,
    )
    assert set(df.metric) == {"edistance", "pearson_delta_pert"}
    assert set(df.gene_set) == {"pca7", "all", "top5_de"}
    assert df.attrs["pca"] == "given by the caller" and "mmd_gamma" not in df.attrs
    a_pred = pred[pred.obs.perturbation == "A"].X
    a_true = true[true.obs.perturbation == "A"].X
    row = df[(df.perturbation == "A") & (df.metric == "pearson_delta_pert") & (df.gene_set == "all")]
    assert row.value.iloc[0] == pytest.approx(m.pearson_delta_pert(a_pred.mean(0), a_true.mean(0), ref))
    # no PCA work when no distribution metric is asked for
    assert m.evaluate(pred, true, ctrl, metrics=["mse_top_de"], k_overlap=5, k_top_expressed=5).attrs == {}


def test_evaluate_sparse_and_control_in_pred(eval_data):
    pred, true, ctrl = eval_data
    dense = m.evaluate(pred, true, ctrl, n_top_de=5, k_overlap=10, k_top_expressed=15)
    sp_pred, sp_true, sp_ctrl = pred.copy(), true.copy(), ctrl.copy()
    for a in (sp_pred, sp_true, sp_ctrl):
        a.X = sp.csr_matrix(a.X)
    with_ctrl = ad.concat([sp_pred, sp_ctrl[:5]])  # control cells in pred are skipped
    sparse = m.evaluate(with_ctrl, sp_true, sp_ctrl, n_top_de=5, k_overlap=10, k_top_expressed=15)
    assert list(sparse.perturbation.unique()) == ["A", "B"]
    merged = dense.merge(sparse, on=["perturbation", "metric", "gene_set"])
    assert len(merged) == len(dense)
    # PCA solvers differ for sparse input: distribution rows agree loosely, the others tightly
    is_pca = merged.gene_set.str.startswith("pca")
    assert np.allclose(merged.value_x[~is_pca], merged.value_y[~is_pca], rtol=1e-8, atol=1e-10)
    assert np.allclose(merged.value_x[is_pca], merged.value_y[is_pca], rtol=1e-4)


def test_evaluate_single_perturbation_and_single_predicted_cell(eval_data):
    pred, true, ctrl = eval_data
    only_a = pred[pred.obs.perturbation == "A"].copy()
    df = m.evaluate(only_a, true, ctrl, n_top_de=5, k_overlap=10, k_top_expressed=15)
    assert "discrimination_rank" not in set(df.metric)  # omitted, not NaN
    one_cell = ad.concat([only_a[:1], pred[pred.obs.perturbation == "B"]])
    with pytest.warns(RuntimeWarning, match="'A' has 1 predicted"):
        df = m.evaluate(one_cell, true, ctrl, n_top_de=5, k_overlap=10, k_top_expressed=15)
    assert set(df.loc[df.metric == "deg_overlap_k", "perturbation"]) == {"B"}
    assert set(df.loc[df.metric == "r2_var_sqpearson", "perturbation"]) == {"B"}
    assert (df.metric == "edistance").sum() == 2


def test_evaluate_errors(eval_data):
    pred, true, ctrl = eval_data
    kw = dict(n_top_de=5, k_overlap=10, k_top_expressed=15)
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['r2'\]"):
        m.evaluate(pred, true, ctrl, metrics=["r2"], **kw)
    with pytest.raises(ValueError, match="pred and true AnnData have different genes"):
        m.evaluate(pred[:, :30], true, ctrl, **kw)
    with pytest.raises(ValueError, match="true and ctrl AnnData have different genes"):
        m.evaluate(pred, true, ctrl[:, ::-1], **kw)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['condition'\]"):
        m.evaluate(pred, true, ctrl, perturbation_key="condition", **kw)
    with pytest.raises(ValueError, match="no cells in ctrl"):
        m.evaluate(pred, true, ctrl[:0], **kw)
    renamed = pred.copy()
    renamed.obs["perturbation"] = renamed.obs["perturbation"].replace({"A": "Z"})
    with pytest.raises(ValueError, match=r"unknown perturbation\(s\) \['Z'\]"):
        m.evaluate(renamed, true, ctrl, **kw)
    with pytest.raises(ValueError, match="nothing to evaluate"):
        m.evaluate(ctrl, true, ctrl, **kw)
    fix = r"k_top_expressed=1000 is larger than the number of genes \(40\).*k_top_expressed=40"
    with pytest.raises(ValueError, match=fix):
        m.evaluate(pred, true, ctrl, n_top_de=5, k_overlap=10)
    with pytest.raises(ValueError, match="reference_mean and the genes of ctrl have different shapes"):
        m.evaluate(pred, true, ctrl, reference_mean=np.zeros(3), **kw)
    nan_pred = pred.copy()
    nan_pred.X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        m.evaluate(nan_pred, true, ctrl, **kw)


# --------------------------------------------------------------------------- error paths of the pure functions


def test_vector_errors():
    with pytest.raises(ValueError, match=r"pred_mean and true_mean have different shapes \(3,\) and \(2,\)"):
        m.r2_mean_sqpearson([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="true_mean and ctrl_mean have different shapes|pred_mean and ctrl_mean"):
        m.pearson_delta([1, 2, 3], [1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="pred_mean and reference_mean have different shapes"):
        m.pearson_delta_pert([1, 2, 3], [1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="true_mean contains NaN"):
        m.r2_mean_cod([1, 2, 3], [1, np.nan, 3])
    with pytest.raises(ValueError, match="1-D vector"):
        m.r2_mean_cod(np.ones((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="pred_mean is empty"):
        m.r2_mean_cod([], [])


def test_index_and_k_errors():
    v = [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match="integer gene indices.*np.flatnonzero"):
        m.mse_top_de(v, v, np.array([True, False, True]))
    with pytest.raises(ValueError, match="outside 0..2"):
        m.mse_top_de(v, v, [0, 3])
    with pytest.raises(ValueError, match="repeated gene indices"):
        m.direction_agreement_k(v, v, v, [1, 1])
    with pytest.raises(ValueError, match="non-empty 1-D array"):
        m.mse_top_de(v, v, [])
    with pytest.raises(ValueError, match=r"k=5 is larger than the number of genes \(3\). Pass k=3 or fewer"):
        m.l2_top_expressed(v, v, v, k=5)
    with pytest.raises(ValueError, match="at least 1"):
        m.l2_top_expressed(v, v, v, k=0)
    with pytest.raises(ValueError, match="positive integer"):
        m.l2_top_expressed(v, v, v, k=2.5)


def test_matrix_and_de_errors(rng):
    x = rng.normal(size=(5, 4))
    with pytest.raises(ValueError, match=r"X_group and X_ctrl have different numbers of genes/features \(4 and 3\)"):
        m.top_de_genes(x, x[:, :3], k=2)
    with pytest.raises(ValueError, match="X_group has 1 cell; a t-test needs at least 2"):
        m.de_scores(x[:1], x)
    with pytest.raises(ValueError, match=r"k=9 is larger than the number of genes \(4\)"):
        m.top_de_genes(x, x, k=9)
    with pytest.raises(ValueError, match=r"k=9 is larger"):
        m.deg_overlap_k(x, x, x, k=9)
    with pytest.raises(ValueError, match="X_true and X_ctrl|X_pred and X_true"):
        m.deg_overlap_k(x, x[:, :2], x, k=1)
    bad = x.copy()
    bad[1, 1] = np.inf
    with pytest.raises(ValueError, match="X_ctrl contains NaN or infinite"):
        m.de_scores(x, bad)
    with pytest.raises(ValueError, match="X contains NaN"):
        m.edistance(sp.csr_matrix(bad), x)
    with pytest.raises(ValueError, match="2-D cells x genes matrix"):
        m.edistance(x[0], x)
    with pytest.raises(ValueError, match="Y has no cells"):
        m.edistance(x, x[:0])
    with pytest.raises(ValueError, match=r"X and Y have different numbers of genes/features \(4 and 3\)"):
        m.edistance(x, x[:, :3])


def test_pca_and_distance_errors(rng):
    x = rng.normal(size=(10, 6))
    with pytest.raises(ValueError, match=r"n_comps=50 is larger than the number of genes \(6\)"):
        m.fit_pca(x)
    pca = m.fit_pca(x, n_comps=2)
    with pytest.raises(ValueError, match="X has 5 genes but the PCA was fitted on 6"):
        m.edistance(x[:, :5], x[:, :5], pca=pca)
    with pytest.raises(ValueError, match="fitted PCA"):
        m.mmd_rbf(x, x, pca=PCA(n_components=2))
    with pytest.raises(ValueError, match="gamma must be a positive number or 'median'"):
        m.mmd_rbf(x, x, gamma="scott")
    with pytest.raises(ValueError, match="positive finite"):
        m.mmd_rbf(x, x, gamma=-1.0)
    with pytest.raises(ValueError, match="pass gamma explicitly"):
        m.mmd_rbf(np.ones((3, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match="at least 2 cells"):
        m.rbf_median_gamma(x[:1])
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="n_permutations must be a positive integer"):
            m.edistance_test(x, x, n_permutations=bad)


def test_discrimination_rank_errors(rng):
    t = rng.normal(size=(3, 4))
    with pytest.raises(ValueError, match="at least 2 perturbations"):
        m.discrimination_rank(t[:1], t[:1])
    with pytest.raises(ValueError, match=r"pred_effects and true_effects have different shapes \(3, 4\) and \(2, 4\)"):
        m.discrimination_rank(t, t[:2])
    with pytest.raises(ValueError, match="2-D perturbations x genes"):
        m.discrimination_rank(t[0], t[0])
    bad = t.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="true_effects contains NaN"):
        m.discrimination_rank(t, bad)
    df = pd.DataFrame(t, index=list("ABC"), columns=list("wxyz"))
    with pytest.raises(ValueError, match="different row labels"):
        m.discrimination_rank(df, df.iloc[::-1])
    with pytest.raises(ValueError, match="different gene columns"):
        m.discrimination_rank(df, df.rename(columns={"w": "v"}))


# --------------------------------------------------------------------------- import hygiene


def test_import_is_light():
    code = (
        "import sys, tutorial_kit.metrics; "
        "names = ('scipy', 'sklearn', 'pandas', 'anndata', 'torch', 'scanpy', 'pertpy'); "
        "heavy = [n for n in names if n in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_fit_pca_sparse_on_old_sklearn_is_densified(rng, monkeypatch):
    x = sp.random(30, 8, density=0.5, random_state=1, format="csr")
    new = m.fit_pca(x, n_comps=3)
    monkeypatch.setattr(m, "_sklearn_pca_takes_sparse", lambda: False)  # as scikit-learn 1.4 (scgen env)
    old = m.fit_pca(x, n_comps=3)
    np.testing.assert_allclose(np.abs(old.components_), np.abs(new.components_), atol=1e-6)
    np.testing.assert_allclose(old.explained_variance_, new.explained_variance_, rtol=1e-6)


def test_deg_overlap_of_no_change_is_nan_not_a_rounding_order():
    rng = np.random.default_rng(0)
    ctrl = rng.gamma(2.0, size=(40, 30))
    true = ctrl + np.r_[np.full(5, 2.0), np.zeros(25)]
    with pytest.warns(RuntimeWarning, match="do not differ from the control cells"):
        assert np.isnan(m.deg_overlap_k(ctrl.copy(), true, ctrl, k=5))
    # rounding-level differences (a sparse and a dense copy of the same cells) are still no change
    with pytest.warns(RuntimeWarning, match="no DE genes to rank"):
        assert np.isnan(m.deg_overlap_k(ctrl * (1 + 1e-15), true, ctrl, k=5))
    # any real change is ranked as before
    assert m.deg_overlap_k(true, true, ctrl, k=5) == 1.0


def test_direction_agreement_ignores_rounding_level_changes():
    ctrl = np.array([1.0, 2.0, 3.0, 4.0])
    true = np.array([2.0, 1.0, 4.0, 3.0])
    # no-change computed from a differently stored copy: differences of 1e-16 are no change, agreeing with nothing
    pred = ctrl * (1 + np.array([1e-16, -1e-16, 1e-16, -1e-16]))
    assert m.direction_agreement_k(pred, true, ctrl, [0, 1, 2, 3]) == 0.0
    # a gene that truly does not change agrees with a prediction of no change
    assert m.direction_agreement_k(ctrl, np.array([1.0, 2.0, 4.0, 4.0]), ctrl, [0, 1]) == 1.0
    # real changes keep their signs
    assert m.direction_agreement_k(true, true, ctrl, [0, 1, 2, 3]) == 1.0


# --------------------------------------------------------------------------- latent spaces


def test_label_accuracy_balanced_chance_and_by_hand():
    rng = np.random.default_rng(0)
    labels = np.repeat(["a", "b", "c"], [80, 20, 20])  # unbalanced: plain accuracy of "always a" would be 0.67
    noise = rng.normal(size=(120, 4))
    acc, chance = m.label_accuracy(noise, labels, seed=0)
    assert chance == pytest.approx(1 / 3) and abs(acc - 1 / 3) < 0.15
    separated = noise + np.select([labels == "b", labels == "c"], [5.0, -5.0], 0.0)[:, None]
    acc, _ = m.label_accuracy(separated, labels, seed=0)
    assert acc > 0.95
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    by_hand = cross_val_score(make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=1)),
                              noise, labels, cv=StratifiedKFold(5, shuffle=True, random_state=1),
                              scoring="balanced_accuracy").mean()
    assert m.label_accuracy(noise, labels, seed=1)[0] == pytest.approx(by_hand)
    assert m.label_accuracy(noise[:, 0], labels)[0] == m.label_accuracy(noise[:, :1], labels)[0]  # 1-D accepted


def test_label_accuracy_errors():
    z = np.zeros((10, 2))
    with pytest.raises(ValueError, match="9 labels for 10 cells"):
        m.label_accuracy(z, ["a"] * 9)
    with pytest.raises(ValueError, match="one class only"):
        m.label_accuracy(z, ["a"] * 10)
    with pytest.raises(ValueError, match=r"fewer cells than the 5 folds"):
        m.label_accuracy(z, ["a"] * 7 + ["b"] * 3)
    with pytest.raises(ValueError, match="n_folds must be at least 2"):
        m.label_accuracy(z, ["a", "b"] * 5, n_folds=1)
    with pytest.raises(ValueError, match="NaN or infinite"):
        m.label_accuracy(np.full((10, 2), np.nan), ["a", "b"] * 5)


def test_knn_recovery_by_hand_and_limits():
    z = np.array([[0.0], [0.1], [0.2], [10.0], [10.1], [10.2]])
    t = np.array([1.0, 1.0, 1.0, 3.0, 3.0, 3.0])
    assert m.knn_recovery(z, t, k=2) == pytest.approx(1.0)
    # k=3: each cell's 3 neighbours are its 2 cluster mates and the nearest of the other cluster
    smoothed = np.array([(1 + 1 + 3) / 3] * 3 + [(3 + 3 + 1) / 3] * 3)
    by_hand = 1 - ((t - smoothed) ** 2).sum() / ((t - t.mean()) ** 2).sum()
    assert m.knn_recovery(z, t, k=3) == pytest.approx(by_hand)
    # a matrix of targets: R^2 pooled over columns
    assert m.knn_recovery(z, np.column_stack([t, 2 * t]), k=2) == pytest.approx(1.0)
    # duplicated points: the cell itself is excluded even when a copy ties at distance 0
    assert m.knn_recovery(np.zeros((4, 1)), np.array([0.0, 0.0, 1.0, 1.0]), k=1) <= 0.0
    assert np.isnan(m.knn_recovery(z, np.ones(6), k=2))  # constant targets: nothing to recover


def test_knn_recovery_errors():
    with pytest.raises(ValueError, match="same number of cells"):
        m.knn_recovery(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="k must be between 1 and 4"):
        m.knn_recovery(np.zeros((5, 2)), np.zeros(5), k=5)
    with pytest.raises(ValueError, match="finite"):
        m.knn_recovery(np.full((5, 2), np.inf), np.zeros(5))
