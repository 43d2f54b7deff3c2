"""Tests of tutorial_kit.simulate.marginals against independent references (scipy.stats).

Samples come from scipy.stats (Poisson, NB) with zero inflation added by hand; the fitted
log-likelihoods are checked against sums of scipy's logpmf, and the ZINB fit against a
multi-start L-BFGS-B optimum of the same likelihood.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import optimize, stats

from tutorial_kit.simulate import marginals as M
from tutorial_kit.simulate.marginals import (
    FAMILIES,
    CdfTable,
    fit_marginals,
    marginal_cdf,
    marginal_pmf,
    marginal_ppf,
)

N = 20_000


def _nb(rng, mu, theta, size):
    return stats.nbinom.rvs(theta, theta / (theta + mu), size=size, random_state=rng)


def _zero_inflate(rng, x, pi):
    return np.where(rng.random(x.shape) < pi, 0, x)


def _logpmf(x, mu, theta, pi):
    """Independent reference: scipy.stats logpmf of the (zero-inflated) Poisson / NB."""
    base = stats.poisson.logpmf(x, mu) if np.isinf(theta) else stats.nbinom.logpmf(x, theta, theta / (theta + mu))
    if pi == 0:
        return base
    return np.where(x == 0, np.logaddexp(np.log(pi), np.log1p(-pi) + base), np.log1p(-pi) + base)


@pytest.fixture(scope="module")
def generated():
    """One column per family with known parameters (large n)."""
    rng = np.random.default_rng(0)
    truth = {
        "poisson": dict(mu=3.0, theta=np.inf, pi=0.0),
        "nb": dict(mu=5.0, theta=2.0, pi=0.0),
        "zip": dict(mu=4.0, theta=np.inf, pi=0.3),
        "zinb": dict(mu=6.0, theta=1.5, pi=0.3),
    }
    cols = [
        stats.poisson.rvs(3.0, size=N, random_state=rng),
        _nb(rng, 5.0, 2.0, N),
        _zero_inflate(rng, stats.poisson.rvs(4.0, size=N, random_state=rng), 0.3),
        _zero_inflate(rng, _nb(rng, 6.0, 1.5, N), 0.3),
    ]
    return np.column_stack(cols), truth


# --------------------------------------------------------------------------- fits


@pytest.mark.parametrize("family", FAMILIES)
def test_parameter_recovery(generated, family):
    x, truth = generated
    j = list(truth).index(family)
    fit = fit_marginals(x[:, [j]], families=(family,)).iloc[0]
    want = truth[family]
    assert fit["family"] == family
    assert fit["mu"] == pytest.approx(want["mu"], rel=0.05)
    if np.isinf(want["theta"]):
        assert np.isinf(fit["theta"])
    else:
        assert fit["theta"] == pytest.approx(want["theta"], rel=0.1)
    assert fit["pi"] == pytest.approx(want["pi"], abs=0.02)


def test_bic_picks_the_generating_family(generated):
    x, truth = generated
    fit = fit_marginals(x, gene_names=list(truth))
    assert fit["family"].astype(str).tolist() == list(truth)
    assert list(fit.index) == list(truth) and fit.index.name == "gene"


@pytest.mark.parametrize("family", FAMILIES)
def test_loglik_equals_scipy_logpmf_sum(generated, family):
    x, _ = generated
    fit = fit_marginals(x, families=(family,))
    for j in range(x.shape[1]):
        row = fit.iloc[j]
        ref = _logpmf(x[:, j], row["mu"], row["theta"], row["pi"]).sum()
        assert row[f"loglik_{family}"] == pytest.approx(ref, rel=1e-8)


def test_loglik_nesting_and_criteria(generated):
    x, _ = generated
    fit = fit_marginals(x)
    ll = fit[[f"loglik_{f}" for f in FAMILIES]].to_numpy()
    tol = 1e-9 * np.abs(ll).max()
    assert np.all(ll[:, 1] >= ll[:, 0] - tol) and np.all(ll[:, 2] >= ll[:, 0] - tol)
    assert np.all(ll[:, 3] >= np.maximum(ll[:, 1], ll[:, 2]) - tol)
    for f in FAMILIES:
        k = M.N_PARAMS[f]
        np.testing.assert_allclose(fit[f"bic_{f}"], k * np.log(N) - 2 * fit[f"loglik_{f}"])
        np.testing.assert_allclose(fit[f"aic_{f}"], 2 * k - 2 * fit[f"loglik_{f}"])
    aic = fit_marginals(x, criterion="aic")
    best = aic[[f"aic_{f}" for f in FAMILIES]].to_numpy().argmin(axis=1)
    assert aic["family"].astype(str).tolist() == [FAMILIES[i] for i in best]
    assert aic.attrs["criterion"] == "aic" and aic.attrs["n_cells"] == N


def test_zinb_fit_is_the_maximum_likelihood():
    """The vectorized ZINB fit reaches a multi-start L-BFGS-B optimum of scipy's likelihood."""
    rng = np.random.default_rng(5)
    cols, n = [], 300
    for _ in range(12):
        mu, theta, pi = rng.uniform(0.2, 10), rng.uniform(0.2, 5), rng.uniform(0, 0.6)
        cols.append(_zero_inflate(rng, _nb(rng, mu, theta, n), pi))
    fit = fit_marginals(np.column_stack(cols), families=("zinb",))
    for j, x in enumerate(cols):

        def nll(p, x=x):
            return -_logpmf(x, np.exp(p[0]), np.exp(p[1]), 1 / (1 + np.exp(-p[2]))).sum()

        best = max(
            -optimize.minimize(
                nll, [np.log(max(x.mean(), 0.1)), np.log(t0), q0], method="L-BFGS-B",
                bounds=[(-10, 6), (-9, 12), (-15, 10)],
            ).fun
            for t0 in (0.3, 2.0, 20.0)
            for q0 in (-3.0, 0.0)
        )
        assert fit["loglik_zinb"].iloc[j] >= best - 1e-6


def test_degenerate_genes():
    rng = np.random.default_rng(1)
    n = 400
    x = np.column_stack(
        [
            np.zeros(n, dtype=int),  # all zero
            rng.binomial(3, 0.5, n),  # under-dispersed: variance < mean
            np.r_[np.ones(20, dtype=int), np.zeros(n - 20, dtype=int)],  # positives all equal to 1
            np.r_[np.full(n, 4)],  # constant, no zeros
            np.r_[5, np.zeros(n - 1, dtype=int)],  # a single positive cell
        ]
    )
    fit = fit_marginals(x)
    assert not fit[["mu", "theta", "pi"]].isna().any().any()
    assert not fit.filter(like="loglik").isna().any().any()
    zero = fit.iloc[0]
    assert zero["family"] == "poisson" and zero["mu"] == 0 and np.isinf(zero["theta"]) and zero["pi"] == 0
    assert (fit.iloc[0].filter(like="loglik") == 0).all()
    assert np.isinf(fit_marginals(x[:, [1]], families=("nb",))["theta"].iloc[0])  # no finite NB MLE
    assert fit.iloc[1]["family"] == "poisson" and fit.iloc[3]["family"] == "poisson"
    forced = fit_marginals(x, families=("zinb",))
    for j in range(x.shape[1]):
        row = forced.iloc[j]
        ref = _logpmf(x[:, j], row["mu"], row["theta"], row["pi"]).sum() if row["mu"] > 0 else 0.0
        assert row["loglik_zinb"] == pytest.approx(ref, rel=1e-8, abs=1e-9)


def test_sparse_and_dense_agree(generated):
    x, _ = generated
    dense = fit_marginals(x[:2000])
    sparse = fit_marginals(sp.csr_matrix(x[:2000]))
    pd.testing.assert_frame_equal(dense, sparse)
    observed = fit_marginals(x[:2000].astype(np.float32))
    np.testing.assert_allclose(observed["mean"], x[:2000].mean(axis=0))
    np.testing.assert_allclose(observed["var"], x[:2000].var(axis=0, ddof=1))
    np.testing.assert_allclose(observed["zero_frac"], (x[:2000] == 0).mean(axis=0))


def test_many_genes_is_vectorized():
    """2,000 genes x 300 cells in well under a second per family set (no per-gene optimizer)."""
    import time

    rng = np.random.default_rng(2)
    mu = rng.lognormal(0, 1.5, 2000)
    x = _zero_inflate(rng, _nb(rng, mu, 1.0, (300, 2000)), 0.1)
    start = time.perf_counter()
    fit = fit_marginals(x)
    assert time.perf_counter() - start < 20
    assert len(fit) == 2000 and set(fit["family"].astype(str)) <= set(FAMILIES)


# --------------------------------------------------------------------------- cdf, pmf, ppf

TABLE = pd.DataFrame(
    {
        "mu": [3.0, 5.0, 4.0, 6.0, 0.0, 0.02, 300.0],
        "theta": [np.inf, 2.0, np.inf, 1.5, np.inf, 0.05, 0.5],
        "pi": [0.0, 0.0, 0.3, 0.3, 0.0, 0.0, 0.1],
    }
)


def _ref_cdf(x, mu, theta, pi):
    base = stats.poisson.cdf(x, mu) if np.isinf(theta) else stats.nbinom.cdf(x, theta, theta / (theta + mu))
    return np.where(x < 0, 0.0, pi + (1 - pi) * base)


def _ref_ppf(u, mu, theta, pi):
    if mu == 0:
        return np.zeros_like(u)
    q = np.clip((u - pi) / (1 - pi), 0, 1)
    base = stats.poisson.ppf(q, mu) if np.isinf(theta) else stats.nbinom.ppf(q, theta, theta / (theta + mu))
    return np.where(u <= pi, 0.0, base)


def test_cdf_and_pmf_match_scipy():
    rng = np.random.default_rng(3)
    x = rng.integers(-2, 60, (400, len(TABLE)))
    cdf = marginal_cdf(x, TABLE)
    pmf = marginal_pmf(x, TABLE)
    for j, (mu, theta, pi) in enumerate(TABLE.itertuples(index=False)):
        np.testing.assert_allclose(cdf[:, j], _ref_cdf(x[:, j], mu, theta, pi), rtol=1e-10, atol=1e-13)
        ref_pmf = np.exp(_logpmf(np.maximum(x[:, j], 0), mu, theta, pi)) * (x[:, j] >= 0) if mu > 0 else (x[:, j] == 0) * 1.0
        np.testing.assert_allclose(pmf[:, j], ref_pmf, rtol=1e-8, atol=1e-12)
    far = marginal_cdf(np.array([[250_000.0] * len(TABLE)]), TABLE)  # above the tabulated grid
    np.testing.assert_allclose(far[0], [_ref_cdf(250_000, *row) for row in TABLE.itertuples(index=False)], atol=1e-12)


def test_ppf_matches_scipy_and_inverts_the_cdf():
    rng = np.random.default_rng(4)
    u = rng.random((20_000, len(TABLE)))
    u[:5] = 1 - 10.0 ** -np.array([11, 12, 13, 14, 15])[:, None]  # beyond the grid's 1 - 1e-10 end
    k = marginal_ppf(u, TABLE)
    for j, (mu, theta, pi) in enumerate(TABLE.itertuples(index=False)):
        np.testing.assert_array_equal(k[:, j], _ref_ppf(u[:, j], mu, theta, pi))
    cdf = marginal_cdf(k[5:], TABLE)  # (the extreme rows: F rounds to 1 in float64)
    below = marginal_cdf(k[5:] - 1, TABLE)
    assert np.all(cdf >= u[5:]) and np.all(below < u[5:])
    edges = marginal_ppf(np.array([[0.0] * len(TABLE), [1.0] * len(TABLE)]), TABLE)
    assert np.all(edges[0] == 0)
    assert np.isinf(edges[1, 0]) and edges[1, 4] == 0


def test_cdf_table_matches_the_functions():
    table = CdfTable.build(TABLE)
    rng = np.random.default_rng(6)
    x = rng.integers(0, 30, (50, len(TABLE)))
    u = rng.random((50, len(TABLE)))
    np.testing.assert_array_equal(table.cdf(x), marginal_cdf(x, TABLE))
    np.testing.assert_array_equal(table.ppf(u), marginal_ppf(u, TABLE))
    assert table.n_genes == len(TABLE)
    with pytest.raises(ValueError, match="genes"):
        table.cdf(x[:, :2])
    with pytest.raises(ValueError, match="genes"):
        table.ppf(u[:, :2])


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "counts, match",
    [
        (np.arange(5), "2-d"),
        (np.ones((1, 3)), "at least 2 cells"),
        (np.zeros((3, 0)), "at least 2 cells"),
        (np.array([[1.0, -1.0], [0.0, 2.0]]), "non-negative integers"),
        (np.array([[1.5, 1.0], [0.0, 2.0]]), "non-negative integers"),
        (np.array([[np.nan, 1.0], [0.0, 2.0]]), "non-negative integers"),
        (sp.csr_matrix(np.array([[0.5, 1.0], [0.0, 2.0]])), "non-negative integers"),
        (np.array([["a", "b"], ["c", "d"]]), "numeric"),
    ],
)
def test_fit_marginals_rejects_bad_counts(counts, match):
    with pytest.raises(ValueError, match=match):
        fit_marginals(counts)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(families=()), "families"),
        (dict(families=("poisson", "gamma")), "families"),
        (dict(families=("nb", "nb")), "families"),
        (dict(criterion="likelihood"), "criterion"),
        (dict(gene_names=["a"]), "gene_names"),
    ],
)
def test_fit_marginals_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_marginals(np.ones((4, 2), dtype=int), **kwargs)


def test_single_family_string_is_accepted():
    fit = fit_marginals(np.array([[1, 0], [3, 0], [0, 0]]), families="nb")
    assert list(fit.filter(like="loglik").columns) == ["loglik_nb"]


@pytest.mark.parametrize(
    "table, match",
    [
        (pd.DataFrame({"mu": [1.0], "theta": [1.0]}), "missing"),
        (pd.DataFrame({"mu": [-1.0], "theta": [1.0], "pi": [0.0]}), "invalid parameters"),
        (pd.DataFrame({"mu": [1.0], "theta": [0.0], "pi": [0.0]}), "invalid parameters"),
        (pd.DataFrame({"mu": [1.0], "theta": [1.0], "pi": [1.0]}), "invalid parameters"),
        (pd.DataFrame({"mu": [1.0, 2.0], "theta": [1.0, 1.0], "pi": [0.0, 0.0]}), "rows"),
    ],
)
def test_cdf_ppf_reject_bad_tables(table, match):
    with pytest.raises(ValueError, match=match):
        marginal_cdf(np.zeros((2, 1)), table)
    with pytest.raises(ValueError, match=match):
        marginal_ppf(np.full((2, 1), 0.5), table)


def test_cdf_ppf_reject_bad_values():
    t = TABLE.iloc[:1]
    with pytest.raises(ValueError, match="scalar"):
        marginal_cdf(3, t)
    for bad in ([[np.nan]], [[np.inf]]):
        with pytest.raises(ValueError, match="NaN or infinite"):
            marginal_cdf(bad, t)
    for bad in ([[1.5]], [[-0.1]], [[np.nan]]):
        with pytest.raises(ValueError, match=r"\[0, 1\]"):
            marginal_ppf(bad, t)
    with pytest.raises(ValueError, match="scalar"):
        marginal_ppf(0.5, t)
