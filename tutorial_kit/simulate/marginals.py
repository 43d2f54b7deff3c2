"""Per-gene count marginals of one group of cells: Poisson, NB, ZIP or ZINB, chosen by BIC.

Taught in ``02_simulation_statistical`` (the marginal column of scDesign3's model table).
:func:`fit_marginals` fits the four families to every gene of one group at once, by maximum
likelihood, and keeps the one with the lowest BIC; :func:`marginal_cdf` and
:func:`marginal_ppf` evaluate the chosen distributions, which is all the Gaussian copula
(:mod:`tutorial_kit.simulate.copula`) needs.

The families (``Y`` one gene's count in one cell):

- ``poisson``: ``P(Y = y) = e^-mu mu^y / y!``; mean ``mu``, variance ``mu``.
- ``nb`` (negative binomial, gamma-Poisson): mean ``mu``, size ``theta``, variance
  ``mu + mu^2 / theta``; ``P(Y = y) = Gamma(y + theta) / (Gamma(theta) y!) p^theta (1 - p)^y``
  with ``p = theta / (theta + mu)`` (``scipy.stats.nbinom(theta, p)``).
- ``zip`` / ``zinb``: with probability ``pi`` an extra zero, otherwise a Poisson / NB count:
  ``P(0) = pi + (1 - pi) f(0)``, ``P(y) = (1 - pi) f(y)`` for ``y > 0``.

``mu`` is always the mean of the count part (the mean of ``Y`` is ``(1 - pi) mu``); ``theta`` is
``inf`` for the Poisson and ZIP families and ``pi`` is 0 for Poisson and NB.

How the fits are computed, for all genes at once (numpy arrays over genes, no per-gene optimizer):

- Poisson: ``mu`` = the sample mean.
- NB: ``mu`` = the sample mean (the exact MLE for any ``theta``); ``theta`` starts at the
  method-of-moments value ``mean^2 / (var - mean)`` and is refined by Newton steps on
  ``log theta`` of the profile likelihood, each step halved until the likelihood does not decrease,
  within ``[1e-4, 1e8]``. A gene whose (1/n) variance does not exceed its mean has no finite MLE
  (Levin & Reeds 1977): ``theta = inf``, the Poisson fit.
- ZIP and ZINB use the hurdle factorization of the likelihood: with ``q = P(Y = 0)``, the
  likelihood is ``q^n0 (1 - q)^n+`` times the zero-truncated likelihood of the positive counts,
  so the MLE of the count part is the zero-truncated fit of the positives, ``q = n0 / n`` and
  ``pi = (q - f(0)) / (1 - f(0))``. ZIP: ``lambda`` solves ``lambda / (1 - e^-lambda) = mean of
  the positives`` (Newton, monotone from the positive mean). ZINB: Newton steps on
  ``(log mu, log theta)`` of the zero-truncated NB likelihood, with the Hessian shifted to be
  negative definite where it is not and steps halved until the likelihood does not decrease.
  When ``pi`` comes out negative (fewer zeros than the count part predicts), the constrained MLE
  sits on the boundary ``pi = 0`` (the Poisson / NB fit).
- Safeguard: Poisson is nested in NB and ZIP, and NB and ZIP in ZINB, so each family's reported
  fit is the best of its own fit and the fits of the families nested in it; the reported
  log-likelihoods therefore never decrease with the family's generality.
- Degenerate genes: a gene with no count in any cell is Poisson with ``mu = 0`` in every family
  (log-likelihood 0, never NaN).

Criterion: ``BIC = k log(n) - 2 log L`` (``AIC = 2 k - 2 log L``) with ``k`` = 1 (Poisson),
2 (NB, ZIP), 3 (ZINB) and ``n`` the number of cells; the family with the lowest value is chosen,
ties going to the family with fewer parameters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["CRITERIA", "CdfTable", "FAMILIES", "N_PARAMS", "fit_marginals", "marginal_cdf", "marginal_pmf", "marginal_ppf"]

FAMILIES = ("poisson", "nb", "zip", "zinb")
"""The marginal families, from the simplest to the most general."""

N_PARAMS = {"poisson": 1, "nb": 2, "zip": 2, "zinb": 3}
"""Free parameters per family, as counted by the BIC and the AIC."""

CRITERIA = ("bic", "aic")
"""The criteria that :func:`fit_marginals` can choose a family by."""

THETA_BOUNDS = (1e-4, 1e8)
"""The NB size ``theta`` is searched within these bounds."""

_NEWTON_STEPS = 100  # at most this many Newton iterations per fit (most genes need fewer than 15)
_HALVINGS = 30  # step halvings tried before a gene is declared converged
_GAIN_TOL = 1e-9  # a Newton step that gains less log-likelihood than this (relative) ends a gene's fit
_GRID_CAP = 100_000  # CDF grids stop here; counts above it are evaluated directly


# --------------------------------------------------------------------------- sufficient statistics


class _Counts:
    """One group's counts reduced to what every likelihood here needs.

    ``n`` cells; per gene: ``n0`` zeros, ``npos`` positive cells, ``s`` sum, ``ss`` sum of
    squares, ``ymax``, ``c`` = sum of log(y!); and the distinct positive values of each gene
    (``val``, with multiplicity ``mult`` and gene index ``gidx``), over which the digamma and
    log-gamma sums run.
    """

    def __init__(self, counts: Any, where: str):
        import scipy.sparse as sp
        from scipy.special import gammaln

        if sp.issparse(counts):
            coo = sp.csr_matrix(counts).tocoo()  # sums duplicate entries
            n, g = coo.shape
            rows, cols, vals = coo.row, coo.col, np.asarray(coo.data, dtype=np.float64)
            keep = vals != 0
            cols, vals = cols[keep], vals[keep]
        else:
            arr = np.asarray(counts)
            if arr.ndim != 2:
                raise ValueError(f"{where}: counts must be a 2-d cells x genes matrix; got shape {arr.shape}.")
            if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
                raise ValueError(f"{where}: counts must be numeric; got dtype {arr.dtype}.")
            n, g = arr.shape
            rows, cols = np.nonzero(arr)
            vals = arr[rows, cols].astype(np.float64)
        if n < 2 or g < 1:
            raise ValueError(f"{where}: at least 2 cells and 1 gene are needed to fit marginals; got shape {(n, g)}.")
        if vals.size and (not np.all(np.isfinite(vals)) or vals.min() < 0 or not np.array_equal(vals, np.round(vals))):
            raise ValueError(
                f"{where}: counts must be finite non-negative integers (raw UMI counts, e.g. "
                "adata.layers['counts']), not log-normalized or scaled values."
            )
        self.n, self.g = int(n), int(g)
        top = int(vals.max()) + 1 if vals.size else 1
        key, mult = np.unique(cols.astype(np.int64) * top + vals.astype(np.int64), return_counts=True)
        self.gidx = (key // top).astype(np.intp)
        self.val = (key % top).astype(np.float64)
        self.mult = mult.astype(np.float64)
        self.npos = self.sum(np.ones_like(self.val))
        self.n0 = self.n - self.npos
        self.s = self.sum(self.val)
        self.ss = self.sum(self.val**2)
        self.c = self.sum(gammaln(self.val + 1.0))
        self.ymax = np.zeros(self.g)
        np.maximum.at(self.ymax, self.gidx, self.val)
        self.mean = self.s / self.n
        self.var_mle = np.maximum(self.ss / self.n - self.mean**2, 0.0)

    def sum(self, per_pair: np.ndarray, genes: np.ndarray | None = None) -> np.ndarray:
        """Per-gene sum of ``mult * per_pair`` (restricted to pairs of ``genes`` if a pair mask is given)."""
        if genes is None:
            return np.bincount(self.gidx, weights=self.mult * per_pair, minlength=self.g)
        return np.bincount(self.gidx[genes], weights=self.mult[genes] * per_pair, minlength=self.g)


def _pairs_of(cs: _Counts, genes: np.ndarray) -> np.ndarray:
    """Indices of the (gene, value) pairs that belong to the genes selected by a boolean mask."""
    return np.flatnonzero(genes[cs.gidx])


# --------------------------------------------------------------------------- log-likelihoods


def _log_p0(mu: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """log f(0) of the count part: ``-mu`` (Poisson) or ``-theta log1p(mu / theta)`` (NB)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        nb = -theta * np.log1p(mu / theta)
    return np.where(np.isinf(theta), -mu, nb)


def _lgamma_sum(cs: _Counts, theta: np.ndarray, genes: np.ndarray) -> np.ndarray:
    """sum over positive cells of lgamma(y + theta) - lgamma(theta), for the genes selected."""
    from scipy.special import gammaln

    idx = _pairs_of(cs, genes)
    th = theta[cs.gidx[idx]]
    return cs.sum(gammaln(cs.val[idx] + th) - gammaln(th), idx)


def _loglik(cs: _Counts, mu: np.ndarray, theta: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """Full log-likelihood per gene of the (zero-inflated) Poisson / NB with these parameters."""
    from scipy.special import xlogy

    finite = np.isfinite(theta) & (cs.npos > 0)
    lg = _lgamma_sum(cs, np.where(finite, theta, 1.0), finite)
    with np.errstate(divide="ignore", invalid="ignore"):
        pos_nb = lg + xlogy(cs.s, mu) - cs.s * np.log(theta + mu) + cs.npos * _log_p0(mu, theta)
    pos_pois = xlogy(cs.s, mu) - cs.npos * mu
    positive = np.where(finite, pos_nb, pos_pois) - cs.c
    lp0 = _log_p0(mu, theta)
    with np.errstate(divide="ignore"):
        zero = np.where(pi > 0, np.logaddexp(np.log(pi), np.log1p(-pi) + lp0), lp0)
    out = np.where(cs.n0 > 0, cs.n0 * zero, 0.0) + cs.npos * np.log1p(-pi) + positive
    return np.where(cs.npos > 0, out, 0.0)


# --------------------------------------------------------------------------- the fits


def _fit_poisson(cs: _Counts) -> dict[str, np.ndarray]:
    g = cs.g
    return {"mu": cs.mean.copy(), "theta": np.full(g, np.inf), "pi": np.zeros(g)}


def _nb_profile(cs: _Counts, b: np.ndarray, mu: np.ndarray, genes: np.ndarray) -> np.ndarray:
    """Profile log-likelihood of the NB at ``theta = exp(b)`` and ``mu`` = the mean (constants dropped)."""
    theta = np.exp(b)
    return _lgamma_sum(cs, theta, genes) - cs.s * np.log(theta + mu) + cs.n * _log_p0(mu, theta)


def _fit_nb(cs: _Counts) -> dict[str, np.ndarray]:
    from scipy.special import digamma, polygamma

    lo, hi = np.log(THETA_BOUNDS[0]), np.log(THETA_BOUNDS[1])
    mu = cs.mean.copy()
    over = (cs.npos > 0) & (cs.var_mle > mu * (1 + 1e-10))
    with np.errstate(divide="ignore", invalid="ignore"):
        b = np.log(np.where(over, mu**2 / (cs.var_mle - mu), 1.0))
    b = np.clip(b, lo, hi)
    active = over.copy()
    ll = np.where(over, _nb_profile(cs, b, mu, over), 0.0)
    for _ in range(_NEWTON_STEPS):
        if not active.any():
            break
        theta = np.exp(b)
        idx = _pairs_of(cs, active)
        th, y = theta[cs.gidx[idx]], cs.val[idx]
        a_sum = cs.sum(digamma(y + th) - digamma(th), idx)
        b_sum = cs.sum(polygamma(1, y + th) - polygamma(1, th), idx)
        grad = a_sum + cs.n * (np.log(theta) - np.log(theta + mu))
        hess = b_sum + cs.n * mu / (theta * (theta + mu))
        g_b = theta * grad
        h_b = theta**2 * hess + g_b
        step = np.where(h_b < 0, -g_b / np.where(h_b < 0, h_b, -1.0), np.sign(g_b))
        step = np.where(active, np.clip(step, -3.0, 3.0), 0.0)
        b, ll, active = _backtrack(lambda bb, m: _nb_profile(cs, bb, mu, m), b, ll, step, active, lo, hi)
    theta = np.where(over, np.exp(b), np.inf)
    return {"mu": mu, "theta": theta, "pi": np.zeros(cs.g)}


def _backtrack(f, x, fx, step, active, lo, hi):
    """Halve ``step`` until ``f`` does not decrease; genes whose step vanished become inactive.

    ``x``, ``step`` are arrays over genes (or genes x 2); ``f(x_new, mask)`` returns values per gene.
    Returns the new ``x``, ``f(x)`` and which genes are still active.
    """
    f0 = fx
    t = np.ones(fx.shape)
    todo = active.copy()
    x_new = x.copy()
    accepted = np.zeros_like(active)
    for _ in range(_HALVINGS):
        if not todo.any():
            break
        tt = t.reshape((-1,) + (1,) * (step.ndim - 1))
        cand = np.clip(x + tt * step, lo, hi)
        f_cand = f(cand, todo)
        ok = todo & np.isfinite(f_cand) & (f_cand >= fx - 1e-12 * np.abs(fx))
        x_new[ok] = cand[ok]
        fx = np.where(ok, f_cand, fx)
        accepted |= ok
        todo &= ~ok
        t = np.where(todo, t / 2, t)
    moved = np.abs(x_new - x).reshape(len(fx), -1).max(axis=1)
    # converged: no step was accepted, the step vanished, or the log-likelihood gained < 1e-9 relative
    with np.errstate(invalid="ignore"):
        gain = np.where(accepted, fx - f0, 0.0)
    still = active & accepted & (moved > 1e-9) & (gain > _GAIN_TOL * (1.0 + np.abs(fx)))
    return x_new, fx, still


def _fit_zip(cs: _Counts) -> dict[str, np.ndarray]:
    """Zero-truncated Poisson on the positives; pi from the zero fraction, or the Poisson fit."""
    g = cs.g
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.where(cs.npos > 0, cs.s / np.maximum(cs.npos, 1), 0.0)
    usable = (cs.npos > 0) & (cs.n0 > 0) & (m > 1 + 1e-10)
    lam = np.where(usable, m, 1.0)
    for _ in range(_NEWTON_STEPS):
        f = lam + m * np.expm1(-lam)
        fp = 1 - m * np.exp(-lam)
        new = np.where(usable & (fp > 0), lam - f / np.where(fp > 0, fp, 1.0), lam)
        done = np.max(np.abs(new - lam)) < 1e-14 * max(1.0, float(np.max(np.abs(lam))))
        lam = np.maximum(new, 1e-12)
        if done:
            break
    with np.errstate(divide="ignore", invalid="ignore"):
        pi = 1 - (cs.npos / cs.n) / (-np.expm1(-lam))
    ok = usable & np.isfinite(pi) & (pi > 0) & (pi < 1)
    return {
        "mu": np.where(ok, lam, cs.mean),
        "theta": np.full(g, np.inf),
        "pi": np.where(ok, pi, 0.0),
    }


def _truncated_nb(cs: _Counts, ab: np.ndarray, genes: np.ndarray) -> np.ndarray:
    """Zero-truncated NB log-likelihood of the positive counts at ``(log mu, log theta)`` (constants dropped)."""
    mu, theta = np.exp(ab[:, 0]), np.exp(ab[:, 1])
    lp0 = _log_p0(mu, theta)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (
            _lgamma_sum(cs, theta, genes)
            + cs.s * (ab[:, 0] - np.log(theta + mu))
            + cs.npos * lp0
            - cs.npos * np.log(-np.expm1(lp0))
        )
    return np.where(genes, out, -np.inf)


def _fit_zinb(cs: _Counts, nb: dict[str, np.ndarray], zip_: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Zero-truncated NB on the positives (2-d Newton); pi from the zero fraction."""
    from scipy.special import digamma, polygamma

    g = cs.g
    usable = (cs.npos > 0) & (cs.n0 > 0) & (cs.ymax > 1)
    mu0 = np.where(zip_["pi"] > 0, zip_["mu"], np.maximum(cs.mean, 1e-3))
    th0 = np.clip(np.where(np.isfinite(nb["theta"]), nb["theta"], 10.0), 0.05, 100.0)
    lo = np.array([np.log(1e-6), np.log(THETA_BOUNDS[0])])
    hi_mu = np.log(10.0 * np.maximum(cs.ymax, 1.0))
    hi = np.stack([hi_mu, np.full(g, np.log(THETA_BOUNDS[1]))], axis=1)
    ab = np.clip(np.stack([np.log(mu0), np.log(th0)], axis=1), lo, hi)
    ll = _truncated_nb(cs, ab, usable)
    active = usable & np.isfinite(ll)
    for _ in range(_NEWTON_STEPS):
        if not active.any():
            break
        mu, theta = np.exp(ab[:, 0]), np.exp(ab[:, 1])
        idx = _pairs_of(cs, active)
        th, y = theta[cs.gidx[idx]], cs.val[idx]
        a_sum = cs.sum(digamma(y + th) - digamma(th), idx)
        b_sum = cs.sum(polygamma(1, y + th) - polygamma(1, th), idx)
        tm = theta + mu
        lp0 = _log_p0(mu, theta)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            r = 1.0 / np.expm1(-lp0)  # p0 / (1 - p0)
        l_m, l_t = -theta / tm, np.log(theta / tm) + mu / tm
        l_mm, l_mt, l_tt = theta / tm**2, -mu / tm**2, mu**2 / (theta * tm**2)
        k = cs.npos
        d_m = cs.s / mu - cs.s / tm + k * l_m + k * r * l_m
        d_t = a_sum - cs.s / tm + k * l_t + k * r * l_t
        d_mm = -cs.s / mu**2 + cs.s / tm**2 + k * l_mm + k * (r * l_mm + r * (1 + r) * l_m**2)
        d_mt = cs.s / tm**2 + k * l_mt + k * (r * l_mt + r * (1 + r) * l_m * l_t)
        d_tt = b_sum + cs.s / tm**2 + k * l_tt + k * (r * l_tt + r * (1 + r) * l_t**2)
        g_a, g_b = mu * d_m, theta * d_t
        h_aa, h_bb, h_ab = mu**2 * d_mm + g_a, theta**2 * d_tt + g_b, mu * theta * d_mt
        # shift the Hessian to be negative definite where it is not (a Levenberg-Marquardt step)
        half_tr, half_diff = (h_aa + h_bb) / 2, (h_aa - h_bb) / 2
        top_eig = half_tr + np.sqrt(half_diff**2 + h_ab**2)
        shift = np.where(top_eig > -1e-8 * np.abs(half_tr), top_eig + 1e-3 * np.abs(half_tr) + 1e-8, 0.0)
        h_aa, h_bb = h_aa - shift, h_bb - shift
        det = h_aa * h_bb - h_ab**2
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.stack([-(h_bb * g_a - h_ab * g_b) / det, -(-h_ab * g_a + h_aa * g_b) / det], axis=1)
        good = active & np.all(np.isfinite(step), axis=1)
        norm = np.sqrt((step**2).sum(axis=1))
        step = np.where(good[:, None], step * np.minimum(1.0, 3.0 / np.where(norm > 0, norm, 1.0))[:, None], 0.0)
        ab, ll, active = _backtrack(lambda x, m: _truncated_nb(cs, x, m), ab, ll, step, good, lo, hi)
    mu, theta = np.exp(ab[:, 0]), np.exp(ab[:, 1])
    p0 = np.exp(_log_p0(mu, theta))
    with np.errstate(divide="ignore", invalid="ignore"):
        pi = (cs.n0 / cs.n - p0) / (1 - p0)
    ok = usable & np.isfinite(pi) & (pi > 0) & (pi < 1) & np.isfinite(ll)
    return {"mu": np.where(ok, mu, nb["mu"]), "theta": np.where(ok, theta, nb["theta"]), "pi": np.where(ok, pi, 0.0)}


def _best_of(cs: _Counts, candidates: list[dict[str, np.ndarray]]) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per gene, the candidate with the highest log-likelihood (the first one on ties)."""
    lls = np.stack([_loglik(cs, c["mu"], c["theta"], c["pi"]) for c in candidates])
    lls = np.where(np.isfinite(lls), lls, -np.inf)
    pick = np.argmax(lls, axis=0)
    cols = np.arange(cs.g)
    best = {k: np.stack([c[k] for c in candidates])[pick, cols] for k in ("mu", "theta", "pi")}
    return best, lls[pick, cols]


def _fit_all(cs: _Counts, families: Sequence[str]) -> dict[str, tuple[dict[str, np.ndarray], np.ndarray]]:
    """Every requested family's fit and log-likelihood (nested families are fitted as needed)."""
    out: dict[str, tuple[dict[str, np.ndarray], np.ndarray]] = {}
    pois = _fit_poisson(cs)
    out["poisson"] = (pois, _loglik(cs, pois["mu"], pois["theta"], pois["pi"]))
    need_nb = any(f in families for f in ("nb", "zinb"))
    need_zip = any(f in families for f in ("zip", "zinb"))
    if need_nb:
        out["nb"] = _best_of(cs, [pois, _fit_nb(cs)])
    if need_zip:
        out["zip"] = _best_of(cs, [pois, _fit_zip(cs)])
    if "zinb" in families:
        nb, zip_ = out["nb"][0], out["zip"][0]
        out["zinb"] = _best_of(cs, [pois, nb, zip_, _fit_zinb(cs, nb, zip_)])
    # all-zero genes: mu = 0, theta = inf, pi = 0, log-likelihood 0 in every family
    zero = cs.npos == 0
    for params, ll in out.values():
        params["mu"][zero], params["theta"][zero], params["pi"][zero], ll[zero] = 0.0, np.inf, 0.0, 0.0
    return {f: out[f] for f in families}


def check_families(families: Any, where: str = "fit_marginals") -> tuple[str, ...]:
    """The marginal families to try, checked, in the order of :data:`FAMILIES`.

    Example:
        >>> check_families(["zinb", "poisson"])
        ('poisson', 'zinb')
    """
    fams = (families,) if isinstance(families, str) else tuple(families)
    unknown = [f for f in fams if f not in FAMILIES]
    if not fams or unknown or len(set(fams)) != len(fams):
        raise ValueError(
            f"{where}: families must be a non-empty selection without repeats from {FAMILIES}; got {families!r}."
        )
    return tuple(f for f in FAMILIES if f in fams)


def check_criterion(criterion: Any, where: str = "fit_marginals") -> str:
    """The model-selection criterion, checked against :data:`CRITERIA`.

    Example:
        >>> check_criterion("bic")
        'bic'
    """
    if criterion not in CRITERIA:
        raise ValueError(f"{where}: criterion must be one of {CRITERIA} (lower is better); got {criterion!r}.")
    return criterion


def fit_marginals(
    counts: Any,
    *,
    families: Sequence[str] = FAMILIES,
    criterion: str = "bic",
    gene_names: Sequence[str] | None = None,
) -> "pd.DataFrame":
    """Fit Poisson, NB, ZIP and ZINB to every gene of one group of cells and choose one per gene.

    Maximum likelihood for all genes at once (see the module docstring for the algorithms and
    safeguards). The family with the lowest criterion is chosen: ``BIC = k log(n) - 2 log L``
    (default) or ``AIC = 2k - 2 log L``, with ``k`` = 1 (Poisson), 2 (NB, ZIP), 3 (ZINB) and
    ``n`` the number of cells; ties go to the family with fewer parameters, so a gene that is
    not overdispersed is Poisson. A gene with no count is Poisson with ``mu = 0``.
    Taught in ``02_simulation_statistical``.

    Args:
        counts: cells x genes raw counts of ONE group (numpy array or scipy sparse), at least 2 cells.
        families: the families to try, a selection of :data:`FAMILIES` (e.g. ``("zinb",)`` forces ZINB).
        criterion: ``"bic"`` or ``"aic"``.
        gene_names: names for the rows (default ``"0"``, ``"1"``, ...).

    Returns:
        DataFrame indexed by gene with ``family`` (chosen), ``mu`` (mean of the count part),
        ``theta`` (NB size, ``inf`` for Poisson and ZIP), ``pi`` (zero-inflation probability, 0
        for Poisson and NB), the observed ``mean``, ``var`` (ddof=1) and ``zero_frac``, and for
        each family tried ``loglik_<family>``, ``bic_<family>`` and ``aic_<family>``.

    Example:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> y = np.column_stack([rng.poisson(3.0, 2000), rng.negative_binomial(2.0, 2.0 / 7.0, 2000),
        ...                      np.zeros(2000, dtype=int)])
        >>> fit = fit_marginals(y, gene_names=["pois", "nb", "off"])
        >>> fit["family"].tolist()
        ['poisson', 'nb', 'poisson']
        >>> [round(float(fit.loc[g, c]), 1) for g, c in [("nb", "mu"), ("nb", "theta"), ("off", "mu")]]
        [5.0, 2.1, 0.0]
    """
    import pandas as pd

    where = "fit_marginals"
    fams = check_families(families, where)
    criterion = check_criterion(criterion, where)
    cs = _Counts(counts, where)
    if gene_names is None:
        names = pd.Index([str(i) for i in range(cs.g)], name="gene")
    else:
        names = pd.Index([str(x) for x in gene_names], name="gene")
        if len(names) != cs.g:
            raise ValueError(f"{where}: {len(names)} gene_names for {cs.g} genes (columns of counts).")
    fits = _fit_all(cs, fams)
    table = {}
    for f, (_, ll) in fits.items():
        k = N_PARAMS[f]
        table[f"loglik_{f}"] = ll
        table[f"bic_{f}"] = k * np.log(cs.n) - 2 * ll
        table[f"aic_{f}"] = 2 * k - 2 * ll
    crit = np.stack([table[f"{criterion}_{f}"] for f in fams])
    pick = np.argmin(crit, axis=0)
    cols = np.arange(cs.g)
    chosen = {k: np.stack([fits[f][0][k] for f in fams])[pick, cols] for k in ("mu", "theta", "pi")}
    var = (cs.ss - cs.n * cs.mean**2) / (cs.n - 1)
    out = pd.DataFrame(
        {
            "family": pd.Categorical(np.asarray(fams, dtype=object)[pick], categories=list(FAMILIES)),
            "mu": chosen["mu"],
            "theta": chosen["theta"],
            "pi": chosen["pi"],
            "mean": cs.mean,
            "var": np.maximum(var, 0.0),
            "zero_frac": cs.n0 / cs.n,
            **table,
        },
        index=names,
    )
    out.attrs.update({"n_cells": cs.n, "criterion": criterion, "families": list(fams)})
    return out


# --------------------------------------------------------------------------- evaluation


def _params(table: Any, n_genes: int | None, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    missing = [c for c in ("mu", "theta", "pi") if c not in getattr(table, "columns", [])]
    if missing:
        raise ValueError(f"{where}: table is missing column(s) {missing}; pass the output of fit_marginals.")
    mu = np.asarray(table["mu"], dtype=np.float64)
    theta = np.asarray(table["theta"], dtype=np.float64)
    pi = np.asarray(table["pi"], dtype=np.float64)
    bad = (
        ~np.isfinite(mu) | (mu < 0) | np.isnan(theta) | (theta <= 0) | ~np.isfinite(pi) | (pi < 0) | (pi >= 1)
    )
    if bad.any():
        raise ValueError(
            f"{where}: invalid parameters for {int(bad.sum())} gene(s): mu must be finite and >= 0, theta > 0 "
            "(inf for Poisson), 0 <= pi < 1."
        )
    if n_genes is not None and n_genes != mu.size:
        raise ValueError(
            f"{where}: the last axis has {n_genes} genes but the table has {mu.size} rows; "
            "columns must follow the rows of the table."
        )
    return mu, theta, pi


def _count_cdf(k: np.ndarray, mu: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """CDF of the count part at integers ``k >= 0`` (arrays broadcast together)."""
    from scipy.special import betainc, gammaincc

    k, mu, theta = np.broadcast_arrays(np.asarray(k, np.float64), mu, theta)
    out = np.ones(k.shape)
    pois = np.isinf(theta) & (mu > 0)
    out[pois] = gammaincc(k[pois] + 1.0, mu[pois])
    nb = np.isfinite(theta) & (mu > 0)
    out[nb] = betainc(theta[nb], k[nb] + 1.0, theta[nb] / (theta[nb] + mu[nb]))
    return out


def _full_cdf(k: np.ndarray, mu: np.ndarray, theta: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """CDF including the extra zeros, 0 below 0."""
    k = np.floor(np.asarray(k, np.float64))
    cdf = pi + (1 - pi) * _count_cdf(np.maximum(k, 0.0), mu, theta)
    return np.where(k < 0, 0.0, np.minimum(cdf, 1.0))


class _Grid:
    """The CDF of every gene at 0, 1, ..., kmax_g, concatenated; evaluated once, looked up many times."""

    def __init__(self, mu: np.ndarray, theta: np.ndarray, pi: np.ndarray, kmax: np.ndarray):
        self.mu, self.theta, self.pi = mu, theta, pi
        self.kmax = np.minimum(np.asarray(kmax, dtype=np.int64), _GRID_CAP)
        size = self.kmax + 1
        self.offset = np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64)
        gene = np.repeat(np.arange(mu.size), size)
        k = np.arange(size.sum()) - np.repeat(self.offset, size)
        self.cdf = _full_cdf(k, mu[gene], theta[gene], pi[gene])
        # strictly 2 g + F: every gene's keys lie in [2g, 2g + 1], sorted overall
        self.keys = 2.0 * gene + self.cdf

    def cdf_at(self, x: np.ndarray) -> np.ndarray:
        """F(x) for an integer array (..., genes); direct evaluation above the grid."""
        x = np.floor(np.asarray(x, np.float64))
        xi = np.clip(x, 0, self.kmax).astype(np.int64)
        out = self.cdf[self.offset + xi]
        out = np.where(x < 0, 0.0, out)
        above = x > self.kmax
        if above.any():
            cols = np.broadcast_to(np.arange(self.mu.size), x.shape)[above]
            out[above] = _full_cdf(x[above], self.mu[cols], self.theta[cols], self.pi[cols])
        return out

    def ppf(self, u: np.ndarray) -> np.ndarray:
        """Smallest integer k >= 0 with F(k) >= u, for u in [0, 1] of shape (..., genes)."""
        u = np.asarray(u, np.float64)
        gene = np.broadcast_to(np.arange(self.mu.size), u.shape)
        pos = np.searchsorted(self.keys, 2.0 * gene + u, side="left")
        k = pos - self.offset[gene]
        # the keys carry ~1e-12 of rounding: correct the rare off-by-one answers exactly
        for _ in range(64):
            inside = (k >= 0) & (k <= self.kmax[gene])
            at = np.where(inside, self.offset[gene] + np.clip(k, 0, self.kmax[gene]), 0)
            low = inside & (self.cdf[at] < u)
            prev = np.where(k >= 1, self.offset[gene] + np.clip(k - 1, 0, self.kmax[gene]), 0)
            high = (k >= 1) & (k <= self.kmax[gene] + 1) & (self.cdf[prev] >= u)
            if not (low.any() or high.any()):
                break
            k = k + low - high
        k = k.astype(np.float64)
        beyond = k > self.kmax[gene]
        if beyond.any():
            k[beyond] = _tail_ppf(u[beyond], self.mu[gene[beyond]], self.theta[gene[beyond]], self.pi[gene[beyond]])
        return k


class CdfTable:
    """Every gene's fitted CDF tabulated once, for many look-ups (what the copula stores per group).

    ``CdfTable.build(table)`` takes the output of :func:`fit_marginals`; ``.cdf(x)`` and
    ``.ppf(u)`` are :func:`marginal_cdf` and :func:`marginal_ppf` without re-tabulating.

    Example:
        >>> import pandas as pd
        >>> t = CdfTable.build(pd.DataFrame({"mu": [2.0], "theta": [float("inf")], "pi": [0.0]}))
        >>> t.cdf([[0], [2]]).round(4).ravel().tolist(), t.ppf([[0.5]]).tolist()
        ([0.1353, 0.6767], [[2.0]])
    """

    def __init__(self, grid: _Grid):
        self._grid = grid

    @classmethod
    def build(cls, table: "pd.DataFrame") -> "CdfTable":
        mu, theta, pi = _params(table, None, "CdfTable.build")
        return cls(_Grid(mu, theta, pi, _ppf_kmax(mu, theta, pi)))

    @property
    def n_genes(self) -> int:
        return int(self._grid.mu.size)

    def cdf(self, x: Any) -> np.ndarray:
        x = _last_axis(x, "CdfTable.cdf", "x")
        _params_shape(x.shape[-1], self.n_genes, "CdfTable.cdf")
        return self._grid.cdf_at(x)

    def ppf(self, u: Any) -> np.ndarray:
        u = _last_axis(u, "CdfTable.ppf", "u")
        _params_shape(u.shape[-1], self.n_genes, "CdfTable.ppf")
        return self._grid.ppf(u)


def _params_shape(got: int, n_genes: int, where: str) -> None:
    if got != n_genes:
        raise ValueError(f"{where}: the last axis has {got} genes but the table has {n_genes}.")


def _tail_ppf(u: np.ndarray, mu: np.ndarray, theta: np.ndarray, pi: np.ndarray) -> np.ndarray:
    """ppf by scipy.stats, for the rare values beyond a gene's grid."""
    from scipy import stats

    q = np.clip((u - pi) / (1 - pi), 0.0, 1.0)
    out = np.empty(u.shape)
    pois = np.isinf(theta)
    out[pois] = stats.poisson.ppf(q[pois], mu[pois])
    nb = ~pois
    out[nb] = stats.nbinom.ppf(q[nb], theta[nb], theta[nb] / (theta[nb] + mu[nb]))
    return np.where(mu == 0, 0.0, out)


def _ppf_kmax(mu: np.ndarray, theta: np.ndarray, pi: np.ndarray, level: float = 1 - 1e-10) -> np.ndarray:
    """A count above which each gene's CDF exceeds ``level`` (the grid's end), capped."""
    from scipy import stats

    q = np.clip((level - pi) / (1 - pi), 0.0, level)
    k = np.zeros(mu.size)
    pois = np.isinf(theta) & (mu > 0)
    k[pois] = stats.poisson.ppf(q[pois], mu[pois])
    nb = np.isfinite(theta) & (mu > 0)
    k[nb] = stats.nbinom.ppf(q[nb], theta[nb], theta[nb] / (theta[nb] + mu[nb]))
    k = np.where(np.isfinite(k), k, _GRID_CAP)
    return np.minimum(k, _GRID_CAP).astype(np.int64)


def _last_axis(x: Any, where: str, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim < 1:
        raise ValueError(f"{where}: {what} must have genes on its last axis (shape (..., n_genes)); got a scalar.")
    return arr


def marginal_cdf(x: Any, table: "pd.DataFrame") -> np.ndarray:
    """``P(Y <= x)`` under each gene's fitted marginal; genes on the last axis of ``x``.

    ``x`` is floored to an integer; ``F(x) = 0`` for ``x < 0``. For the zero-inflated families
    ``F(x) = pi + (1 - pi) F_count(x)``. Evaluated by regularized incomplete gamma / beta
    functions (the Poisson and NB CDFs of ``scipy.stats``), once per gene and count on a grid.
    Taught in ``02_simulation_statistical``.

    Args:
        x: counts of shape ``(..., n_genes)`` (for instance cells x genes).
        table: one row per gene, in the order of the last axis, with ``mu``, ``theta``, ``pi``
            (the output of :func:`fit_marginals`).

    Returns:
        float array of the shape of ``x``.

    Example:
        >>> import pandas as pd
        >>> t = pd.DataFrame({"mu": [2.0, 2.0], "theta": [float("inf"), 1.0], "pi": [0.0, 0.5]})
        >>> marginal_cdf([[0, 0], [3, -1]], t).round(4).tolist()
        [[0.1353, 0.6667], [0.8571, 0.0]]
    """
    x = _last_axis(x, "marginal_cdf", "x")
    if not np.all(np.isfinite(x)):
        raise ValueError("marginal_cdf: x contains NaN or infinite values; pass counts.")
    mu, theta, pi = _params(table, x.shape[-1], "marginal_cdf")
    flat = x.reshape(-1, x.shape[-1])
    kmax = np.clip(flat.max(axis=0) if flat.size else 0, 0, _GRID_CAP)
    return _Grid(mu, theta, pi, np.broadcast_to(kmax, mu.shape)).cdf_at(x)


def marginal_pmf(x: Any, table: "pd.DataFrame") -> np.ndarray:
    """``P(Y = x)`` under each gene's fitted marginal: ``F(x) - F(x - 1)``; genes on the last axis.

    Example:
        >>> import pandas as pd
        >>> t = pd.DataFrame({"mu": [2.0], "theta": [float("inf")], "pi": [0.25]})
        >>> marginal_pmf([[0], [1]], t).round(4).ravel().tolist()
        [0.3515, 0.203]
    """
    x = _last_axis(x, "marginal_pmf", "x")
    return marginal_cdf(x, table) - marginal_cdf(x - 1, table)


def marginal_ppf(u: Any, table: "pd.DataFrame") -> np.ndarray:
    """The quantile function: the smallest count ``k >= 0`` with ``F(k) >= u``; genes on the last axis.

    The inverse of :func:`marginal_cdf`, used to turn uniform (copula) draws into counts.
    It agrees with ``scipy.stats`` ``ppf`` of the count part on ``(0, 1)`` (for ``u <= pi`` the
    answer is 0); ``u = 0`` gives 0 and ``u = 1`` gives ``inf`` unless the gene has no counts.
    Vectorized: each gene's CDF is tabulated once up to its ``1 - 1e-10`` quantile and all
    ``u`` are looked up at once; the rare ``u`` beyond go to ``scipy.stats``.
    Taught in ``02_simulation_statistical``.

    Args:
        u: probabilities in ``[0, 1]``, shape ``(..., n_genes)``.
        table: one row per gene with ``mu``, ``theta``, ``pi`` (the output of :func:`fit_marginals`).

    Returns:
        float array of integer values, the shape of ``u``.

    Example:
        >>> import pandas as pd
        >>> t = pd.DataFrame({"mu": [2.0, 2.0], "theta": [float("inf"), 1.0], "pi": [0.0, 0.5]})
        >>> marginal_ppf([[0.1, 0.1], [0.9, 0.9]], t).tolist()
        [[0.0, 0.0], [4.0, 3.0]]
    """
    u = _last_axis(u, "marginal_ppf", "u")
    if np.isnan(u).any() or (u.size and (u.min() < 0 or u.max() > 1)):
        raise ValueError("marginal_ppf: u must hold probabilities in [0, 1] (no NaN).")
    mu, theta, pi = _params(table, u.shape[-1], "marginal_ppf")
    return _Grid(mu, theta, pi, _ppf_kmax(mu, theta, pi)).ppf(u)
