"""An scDesign3-style simulator: per-gene marginals and a Gaussian copula per group of cells.

Taught in ``02_simulation_statistical``.
For every group (by default cell type x condition):

1. every gene gets a marginal among Poisson, NB, ZIP and ZINB, chosen by BIC
   (:func:`tutorial_kit.simulate.fit_marginals`);
2. the counts are mapped to uniforms by the distributional transform
   ``u = F(x - 1) + V (F(x) - F(x - 1))`` with ``V ~ Uniform(0, 1)`` (for discrete data this,
   not ``F(x)``, is exactly uniform), then to normal scores ``z = Phi^-1(u)``;
3. the gene-gene correlation ``S`` of the normal scores is shrunk toward the identity,
   ``R = (1 - lambda) S + lambda I``.

Sampling reverses the path: ``z ~ N(0, R)``, ``u = Phi(z)``, ``x = F^-1(u)`` per gene.
``z`` is drawn with the Cholesky factor of ``R`` when a group has at least as many cells as genes;
with fewer cells (the usual case) ``R = (1 - lambda) X^T X / (n - 1) + lambda I`` for the
standardized scores ``X``, so ``z = sqrt(1 - lambda) X^T e_1 / sqrt(n - 1) + sqrt(lambda) e_2`` is
exact and needs no factorization of a genes x genes matrix (``e_1``, ``e_2`` standard normal).
With ``copula=False`` the genes are independent (the marginals-only ablation).
Song et al. (2024) scDesign3 and Sun et al. (2021) scDesign2 describe the full model (with
covariate-dependent means); here the mean function is the simplest one, one mean per group.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from tutorial_kit.arrays import to_dense
from tutorial_kit.simulate._base import resolve_n_cells, simulated_adata
from tutorial_kit.simulate.baseline import group_rngs, prepare_groups
from tutorial_kit.simulate.marginals import FAMILIES, CdfTable, check_criterion, check_families, fit_marginals

if TYPE_CHECKING:  # pragma: no cover
    import anndata
    import pandas as pd

U_EPS = 1e-10
"""Uniforms are clipped to ``[U_EPS, 1 - U_EPS]`` before ``Phi^-1`` (normal scores within +-6.4)."""


def _check_shrinkage(shrinkage: Any) -> str | float:
    if isinstance(shrinkage, str) and shrinkage == "auto":
        return "auto"
    ok = isinstance(shrinkage, (int, float, np.floating, np.integer)) and not isinstance(shrinkage, (bool, np.bool_))
    if not ok or not 0.0 <= float(shrinkage) <= 1.0:
        raise ValueError(f"shrinkage must be 'auto' or a number in [0, 1]; got {shrinkage!r}.")
    return float(shrinkage)


def shrinkage_intensity(z: np.ndarray) -> tuple[np.ndarray, float]:
    """Sample correlation of the columns of ``z`` and the analytic shrinkage intensity toward the identity.

    With ``x`` the columns standardised (ddof 1), ``w_kij = x_ki x_kj`` and ``r_ij`` the sample
    correlation, the intensity of Schäfer & Strimmer (2005), a Ledoit-Wolf-type estimate for
    the correlation target, is

    ``lambda = sum_{i != j} Var(r_ij) / sum_{i != j} r_ij^2``,
    ``Var(r_ij) = n / (n - 1)^3 * sum_k (w_kij - mean_k w_kij)^2``,

    clipped to [0, 1]: it is large when the correlations are small compared with their
    sampling noise (few cells, many genes).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> S, lam = shrinkage_intensity(rng.normal(size=(50, 40)))
        >>> S.shape, lam > 0.5
        ((40, 40), True)

    Taught in ``02_simulation_statistical``.
    """
    n = z.shape[0]
    x = z - z.mean(axis=0)
    sd = np.sqrt((x**2).sum(axis=0) / (n - 1))
    x = x / np.where(sd > 0, sd, 1.0)
    wbar = x.T @ x / n
    r = wbar * n / (n - 1)
    x2 = x**2
    var_r = n / (n - 1) ** 3 * (x2.T @ x2 - n * wbar**2)
    off = ~np.eye(r.shape[0], dtype=bool)
    denom = float((r[off] ** 2).sum())
    lam = 1.0 if denom == 0 else float(np.clip(var_r[off].sum() / denom, 0.0, 1.0))
    np.fill_diagonal(r, 1.0)
    return r, lam


def _factor(corr: np.ndarray) -> np.ndarray:
    """A matrix ``A`` with ``A A^T = corr``: Cholesky, or a clipped eigen-decomposition if not positive definite."""
    try:
        return np.linalg.cholesky(corr)
    except np.linalg.LinAlgError:
        vals, vecs = np.linalg.eigh(corr)
        return vecs * np.sqrt(np.clip(vals, 0.0, None))


@dataclass(frozen=True)
class _Sampler:
    """Draws ``z ~ N(0, R)`` with ``R = (1 - lam) S + lam I``, ``S`` the correlation of the training scores.

    With at least as many training cells as genes: ``z = A e`` with the Cholesky factor ``A`` of
    ``R``, computed once. With fewer cells than genes (the usual case), ``S = X^T X / (n - 1)``
    for the standardized scores ``X`` (n x genes) has rank below n, and the exact low-rank factor
    ``z = sqrt(1 - lam) X^T e_1 / sqrt(n - 1) + sqrt(lam) e_2`` (``e_1 ~ N(0, I_n)``,
    ``e_2 ~ N(0, I_genes)``) has covariance ``R`` without factorizing a genes x genes matrix.
    """

    lam: float
    cholesky: np.ndarray | None = None
    scores: np.ndarray | None = None  # standardized scores / sqrt(n - 1), n x genes

    @classmethod
    def build(cls, z: np.ndarray, corr: np.ndarray, lam: float) -> "_Sampler":
        n, g = z.shape
        if n >= g:
            return cls(lam=lam, cholesky=_factor(corr))
        x = z - z.mean(axis=0)
        sd = np.sqrt((x**2).sum(axis=0) / (n - 1))
        return cls(lam=lam, scores=x / np.where(sd > 0, sd, 1.0) / np.sqrt(n - 1))

    def draw(self, rng: np.random.Generator, m: int, g: int) -> np.ndarray:
        if self.cholesky is not None:
            return rng.standard_normal((m, g)) @ self.cholesky.T
        shared = rng.standard_normal((m, self.scores.shape[0])) @ self.scores
        return np.sqrt(1.0 - self.lam) * shared + np.sqrt(self.lam) * rng.standard_normal((m, g))


def normal_scores(counts: np.ndarray, table: CdfTable, rng: np.random.Generator) -> np.ndarray:
    """Normal scores of counts by the randomised distributional transform (see the module docstring)."""
    from scipy.special import ndtri

    upper = table.cdf(counts)
    lower = table.cdf(counts - 1.0)
    u = lower + rng.random(counts.shape) * (upper - lower)
    return ndtri(np.clip(u, U_EPS, 1.0 - U_EPS))


@dataclass
class CopulaSimulator:
    """Per-group marginals and Gaussian copulas (from :func:`fit_copula`).

    Attributes:
        groupby: the obs columns that define the groups.
        var_names: the genes.
        group_sizes: training cells per group (index: group label ``'B cells | control'``).
        marginals: long DataFrame, one row per group and gene: ``group``, ``gene``, ``family``,
            ``mu``, ``theta``, ``pi``, the observed ``mean``, ``var``, ``zero_frac`` and
            ``loglik_<family>``, ``bic_<family>``, ``aic_<family>`` (see :func:`fit_marginals`).
        correlations: group -> genes x genes shrunk correlation ``R`` of the normal scores
            (empty when ``copula=False``).
        shrinkage: the ``lambda`` used per group (NaN when ``copula=False``).
        fit_seconds: wall time of the fit.
        copula: False for the marginals-only ablation (independent genes).
    """

    groupby: tuple[str, ...]
    var_names: "pd.Index"
    group_sizes: "pd.Series"
    marginals: "pd.DataFrame" = field(repr=False)
    correlations: dict[str, np.ndarray] = field(repr=False)
    shrinkage: "pd.Series"
    fit_seconds: float
    copula: bool = True
    template_obs: "pd.DataFrame | None" = field(default=None, repr=False)
    _tables: dict[str, CdfTable] = field(default_factory=dict, repr=False)
    _samplers: dict[str, _Sampler] = field(default_factory=dict, repr=False)

    def __repr__(self) -> str:
        kind = "Gaussian copula" if self.copula else "independent genes (marginals only)"
        lam = f", shrinkage {self.shrinkage.min():.2f}-{self.shrinkage.max():.2f}" if self.copula and len(self.shrinkage) else ""
        return (
            f"CopulaSimulator({len(self.group_sizes)} groups of {self.groupby}, {len(self.var_names)} genes, "
            f"{kind}{lam}, fitted in {self.fit_seconds:.2f} s)"
        )

    def family_table(self) -> "pd.DataFrame":
        """Genes per chosen family (columns) in each group (rows)."""
        import pandas as pd

        tab = pd.crosstab(self.marginals["group"], self.marginals["family"])
        cols = [f for f in FAMILIES if f in tab.columns]
        return tab[cols].rename_axis(index="group", columns="family")

    def sample(self, n_cells: Any = None, *, seed: int = 0) -> "anndata.AnnData":
        """Draw cells: ``None`` (as many as in training per group), a total, or a dict group -> count.

        Per group: ``z ~ N(0, R)`` from a factor computed once at fit time (the Cholesky factor of
        ``R``, or the exact low-rank factor when the group had fewer cells than genes, see
        ``_Sampler``; independent ``z`` without copula), ``u = Phi(z)``, ``x = F^-1(u)`` per gene.
        Returns AnnData in the course schema (``obs['dataset']`` is ``'simulated:copula'``, or
        ``'simulated:marginals_only'`` when ``copula=False``); the same seed gives identical counts.
        """
        from scipy.special import ndtr

        n_per = resolve_n_cells(n_cells, self.group_sizes)
        rngs = group_rngs(seed, len(n_per))
        blocks, groups = [], []
        for rng, (group, n) in zip(rngs, n_per.items()):
            if n == 0:
                continue
            if self.copula:
                z = self._samplers[group].draw(rng, int(n), len(self.var_names))
            else:
                z = rng.standard_normal((int(n), len(self.var_names)))
            u = np.clip(ndtr(z), 0.0, 1.0 - 1e-12)
            blocks.append(self._tables[group].ppf(u).astype(np.int32))
            groups += [group] * int(n)
        return simulated_adata(
            np.vstack(blocks), groups, groupby=self.groupby, var_names=self.var_names,
            source="copula" if self.copula else "marginals_only", template_obs=self.template_obs,
        )


def fit_copula(
    adata: "anndata.AnnData",
    *,
    groupby: str | Sequence[str] = ("cell_type", "condition"),
    layer: str | None = "counts",
    families: Sequence[str] = FAMILIES,
    criterion: str = "bic",
    shrinkage: str | float = "auto",
    copula: bool = True,
    seed: int = 0,
    progress: bool = False,
) -> CopulaSimulator:
    """Fit an scDesign3-style simulator: marginals per gene and a Gaussian copula per group.

    Args:
        adata: cells with raw counts in ``adata.layers[layer]`` (``adata.X`` when ``layer=None``).
        groupby: obs column(s) whose combinations define the groups; each needs >= 2 cells.
        layer: the counts layer.
        families: marginal families to choose among (see :func:`fit_marginals`).
        criterion: ``"bic"`` or ``"aic"``.
        shrinkage: ``"auto"`` (the analytic intensity of :func:`shrinkage_intensity`) or a fixed
            ``lambda`` in [0, 1]; ``1.0`` gives the identity (independent genes).
        copula: False fits the marginals only (independent genes, same marginals).
        seed: seeds the ``V`` of the distributional transform.
        progress: show a progress bar over groups.

    Raises:
        ValueError: a missing ``groupby`` column, a layer without raw counts, a group with fewer
            than 2 cells (named in the message), or an invalid option.

    Returns:
        A :class:`CopulaSimulator`; ``.sample(n_cells, seed=...)`` draws new cells.

    Example:
        >>> import anndata as ad, numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> shared = rng.poisson(3.0, (60, 1))
        >>> counts = rng.poisson(shared + np.arange(1, 6))        # 5 genes sharing a factor
        >>> obs = pd.DataFrame({"cell_type": "B", "condition": ["control", "stimulated"] * 30}, index=[f"c{i}" for i in range(60)])
        >>> a = ad.AnnData(counts.astype(float), obs=obs); a.layers["counts"] = counts
        >>> sim = fit_copula(a, seed=0)
        >>> list(sim.group_sizes.index), sim.correlations["B | control"].shape
        (['B | control', 'B | stimulated'], (5, 5))
        >>> sim.sample(10, seed=1).shape
        (10, 5)

    Taught in ``02_simulation_statistical``.
    """
    import pandas as pd
    from tqdm import tqdm

    start = time.perf_counter()
    if not isinstance(copula, (bool, np.bool_)):
        raise ValueError(f"copula must be True (Gaussian copula) or False (independent genes); got {copula!r}.")
    fams = check_families(families, "fit_copula")
    criterion = check_criterion(criterion, "fit_copula")
    lam_fixed = _check_shrinkage(shrinkage)
    prep = prepare_groups(adata, groupby, layer, where="fit_copula", min_cells=2)
    rngs = group_rngs(seed, len(prep.sizes))
    tables, lams, corrs, samplers, tabs = [], {}, {}, {}, {}
    for rng, group in tqdm(list(zip(rngs, prep.sizes.index)), desc="fit_copula", disable=not progress):
        sub = prep.counts[np.flatnonzero(prep.labels == group)]
        table = fit_marginals(sub, families=fams, criterion=criterion, gene_names=prep.var_names)
        tabs[group] = CdfTable.build(table)
        tables.append(table.reset_index().assign(group=group))
        if copula:
            z = normal_scores(to_dense(sub, dtype=None), tabs[group], rng)
            corr, lam = shrinkage_intensity(z)
            lam = lam if lam_fixed == "auto" else lam_fixed
            corr = (1.0 - lam) * corr + lam * np.eye(corr.shape[0])
            corrs[group], lams[group], samplers[group] = corr, lam, _Sampler.build(z, corr, lam)
        else:
            lams[group] = np.nan
    marg = pd.concat(tables, ignore_index=True)
    marg = marg[["group", *[c for c in marg.columns if c != "group"]]]
    return CopulaSimulator(
        groupby=prep.keys, var_names=prep.var_names, group_sizes=prep.sizes, marginals=marg,
        correlations=corrs, shrinkage=pd.Series(lams, name="shrinkage").rename_axis("group"),
        fit_seconds=time.perf_counter() - start, copula=bool(copula), template_obs=prep.template_obs,
        _tables=tabs, _samplers=samplers,
    )
