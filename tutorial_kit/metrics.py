"""Evaluation metrics of the course, and :func:`evaluate`, which reports them all.

The same name means different things in different packages, so every function names
the exact statistic it computes and the package whose number it reproduces
(see the book page *How the course evaluates models*, book/evaluation.md). Inputs are per-gene mean vectors (``*_mean``),
perturbation effects (``*_effects``) or cell x gene matrices (``X_*``, dense or scipy
sparse); every function checks its input and raises a ``ValueError`` that says what is
wrong and how to fix it.

Conventions used throughout:

- Expression is whatever is in ``adata.X``; the course uses log-normalized expression.
- Pearson correlation of a constant vector is undefined: the functions return ``nan``
  and emit a ``RuntimeWarning`` instead of a made-up number.
- Distribution distances (:func:`edistance`, :func:`mmd_rbf`) are computed in ONE PCA
  fitted on real cells only (:func:`fit_pca`); never refit per model, never on predictions.
- Within-group averages of pairwise terms include the zero diagonal (V-statistics), as in
  scPerturb and pertpy.

Only numpy is imported at module level; scipy, scikit-learn, pandas and anndata are
imported inside the functions that need them.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

import numpy as np

from tutorial_kit.arrays import as_matrix, col_mean, col_mean_var, to_dense
from tutorial_kit.validate import (
    check_nonempty,
    check_obs_columns,
    check_perturbations,
    check_same_genes,
    check_same_shape,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from anndata import AnnData
    from sklearn.decomposition import PCA

__all__ = [
    "METRICS",
    "EdistanceTestResult",
    "de_scores",
    "deg_overlap_k",
    "direction_agreement_k",
    "discrimination_rank",
    "edistance",
    "edistance_test",
    "embed",
    "evaluate",
    "fit_pca",
    "knn_recovery",
    "l2_top_expressed",
    "label_accuracy",
    "mmd_rbf",
    "mse_top_de",
    "pearson",
    "pearson_delta",
    "pearson_delta_pert",
    "r2_mean_cod",
    "r2_mean_sqpearson",
    "r2_var_sqpearson",
    "rbf_median_gamma",
    "top_de_genes",
]

METRICS: tuple[str, ...] = (
    "r2_mean_sqpearson",
    "r2_var_sqpearson",
    "r2_mean_cod",
    "pearson_delta",
    "pearson_delta_pert",
    "mse_top_de",
    "direction_agreement_k",
    "l2_top_expressed",
    "deg_overlap_k",
    "edistance",
    "mmd_rbf",
    "discrimination_rank",
)
"""Names of the metrics :func:`evaluate` reports (its ``metrics`` argument picks among them)."""

LOWER_IS_BETTER: frozenset[str] = frozenset(
    {"mse_top_de", "l2_top_expressed", "edistance", "mmd_rbf", "discrimination_rank"}
)
"""Metrics of :data:`METRICS` where a smaller value is a better prediction (for the others, larger is better)."""

_BLOCK_ELEMENTS = 4_000_000  # elements of a pairwise block held in memory at once


# --------------------------------------------------------------------------- checks


def _vector(x: Any, name: str) -> np.ndarray:
    """A finite, non-empty 1-D float64 copy of ``x``."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(
            f"{name} must be a 1-D vector with one value per gene; got shape {arr.shape}. "
            "Average over cells first, e.g. np.asarray(adata.X.mean(axis=0)).ravel()."
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty; it needs one value per gene.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{name} contains NaN or infinite values ({int(np.sum(~np.isfinite(arr)))} of {arr.size}); "
            "remove or impute them upstream (e.g. check the model output for NaN)."
        )
    return arr


def _vectors(**named: Any) -> list[np.ndarray]:
    """Check several per-gene vectors and that they all have the first one's shape."""
    names = list(named)
    arrays = [_vector(v, n) for n, v in named.items()]
    for name, arr in zip(names[1:], arrays[1:]):
        check_same_shape(arrays[0], arr, what=f"{names[0]} and {name}")
    return arrays


def _same_genes(**named: Any) -> None:
    """Raise unless the matrices have the same number of columns (genes or PCs)."""
    items = list(named.items())
    first_name, first = items[0]
    for name, mat in items[1:]:
        if mat.shape[1] != first.shape[1]:
            raise ValueError(
                f"{first_name} and {name} have different numbers of genes/features "
                f"({first.shape[1]} and {mat.shape[1]}); they must describe the same genes in the same order."
            )


def _check_k(k: Any, n_genes: int, *, name: str = "k") -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise ValueError(f"{name} must be a positive integer; got {k!r}.")
    k = int(k)
    if k < 1:
        raise ValueError(f"{name} must be at least 1; got {k}.")
    if k > n_genes:
        raise ValueError(
            f"{name}={k} is larger than the number of genes ({n_genes}). "
            f"Pass {name}={n_genes} or fewer (e.g. {name}=min({k}, n_genes))."
        )
    return k


def _indices(idx: Any, n_genes: int, name: str = "de_idx") -> np.ndarray:
    arr = np.asarray(idx)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of gene indices; got shape {arr.shape}.")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"{name} must hold integer gene indices (got dtype {arr.dtype}); "
            "convert a boolean mask with np.flatnonzero(mask), or names with adata.var_names.get_indexer(names)."
        )
    if arr.min() < 0 or arr.max() >= n_genes:
        raise ValueError(f"{name} has indices outside 0..{n_genes - 1} (min {arr.min()}, max {arr.max()}).")
    if np.unique(arr).size != arr.size:
        raise ValueError(f"{name} contains repeated gene indices; pass each gene once (np.unique).")
    return arr


_ROUNDING = 1e-12  # relative spread below which a vector counts as constant (floating-point rounding)


def _is_constant(v: np.ndarray, scale: float | None) -> bool:
    """True if ``v`` is constant up to rounding relative to ``scale`` (default: its own magnitude)."""
    scale = float(np.max(np.abs(v))) if scale is None else float(scale)
    return bool(np.ptp(v) <= _ROUNDING * scale)


def pearson(x: Any, y: Any, *, what: str = "pearson", scale: float | None = None) -> float:
    """Pearson correlation of two vectors; nan and a RuntimeWarning when either vector is constant.

    ``scale`` is the magnitude of the values the vectors were computed from (differences such
    as ``pred - ctrl``): a spread below ``1e-12 * scale`` is rounding error, not a signal.
    For example the means of the same cells stored sparse and dense differ by ~1e-15, and the
    "delta" of a no-change prediction must not be correlated as if it were an effect.
    Every correlation of this module (and of :func:`tutorial_kit.simulate.realism`) is this one.

    Args:
        x: first vector.
        y: second vector, same length.
        what: the name the warning gives the statistic.
        scale: magnitude below which a spread is rounding (default: each vector's own magnitude).

    Returns:
        The correlation, clipped to [-1, 1], or nan.

    Example:
        >>> pearson(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 7.0])) > 0.99
        True
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    const_x, const_y = _is_constant(x, scale), _is_constant(y, scale)
    if const_x or const_y:
        which = "first" if const_x else "second"
        warnings.warn(
            f"{what}: the {which} vector is constant, so the Pearson correlation is undefined; returning nan. "
            "This happens when a model predicts no change on these genes, or the gene set is too small.",
            RuntimeWarning,
            stacklevel=3,
        )
        return float("nan")
    xc = x - x.mean()
    yc = y - y.mean()
    r = float(np.dot(xc / np.linalg.norm(xc), yc / np.linalg.norm(yc)))
    return float(np.clip(r, -1.0, 1.0))


def _magnitude(*vectors: np.ndarray) -> float:
    return max(float(np.max(np.abs(v))) for v in vectors)


# --------------------------------------------------------------------------- mean-based metrics


def r2_mean_sqpearson(pred_mean: Any, true_mean: Any) -> float:
    """Squared Pearson correlation of per-gene means, predicted vs true.

    This is the "R^2" of scGen's ``reg_mean_plot`` (``scipy.stats.linregress(...).rvalue ** 2``)
    and of scPRAM. It is insensitive to scale and offset: ``pred = 2 * true + 5`` scores 1.
    Compare :func:`r2_mean_cod`, which is not.
    Taught in notebook 04 (scGen) and 05 (scPRAM); used again in 09 (linear baselines).

    Args:
        pred_mean: predicted mean expression per gene, shape ``(n_genes,)``.
        true_mean: observed mean expression per gene, same shape.

    Returns:
        A value in [0, 1]; ``nan`` (with a ``RuntimeWarning``) if either vector is constant.

    Example:
        >>> round(r2_mean_sqpearson([1.0, 2.0, 3.0], [2.0, 4.0, 7.0]), 4)
        0.9868
        >>> round(r2_mean_sqpearson([0.0, 1.0], [5.0, 7.0]), 6)  # an affine map scores 1
        1.0
    """
    pred, true = _vectors(pred_mean=pred_mean, true_mean=true_mean)
    r = pearson(pred, true, what="r2_mean_sqpearson")
    return r * r


def r2_var_sqpearson(pred_var: Any, true_var: Any) -> float:
    """Squared Pearson correlation of per-gene variances, predicted vs true.

    The variance twin of :func:`r2_mean_sqpearson`: scGen's ``reg_var_plot`` and scPRAM
    report it. It asks whether the predicted cells have the right spread gene by gene, which
    a model that adds one shared shift to every control cell cannot change (the predicted
    variances stay those of the control cells). Like its mean twin it ignores scale and offset.
    Use unbiased (``ddof=1``) variances over cells, as :func:`evaluate` does.
    Taught in notebook 04 (scGen) and 05 (scPRAM).

    Args:
        pred_var: variance of predicted expression per gene, shape ``(n_genes,)``.
        true_var: variance of observed expression per gene, same shape.

    Returns:
        A value in [0, 1]; ``nan`` (with a ``RuntimeWarning``) if either vector is constant.

    Example:
        >>> round(r2_var_sqpearson([1.0, 2.0, 3.0], [1.0, 3.0, 2.0]), 6)  # centred (-1,0,1), (-1,1,0): r = 1/2
        0.25
        >>> round(r2_var_sqpearson([1.0, 2.0], [0.5, 3.0]), 6)  # two genes always score 1
        1.0
    """
    pred, true = _vectors(pred_var=pred_var, true_var=true_var)
    for name, arr in (("pred_var", pred), ("true_var", true)):
        if np.any(arr < 0):
            raise ValueError(
                f"{name} has negative values (min {arr.min():.3g}); variances cannot be negative. "
                "Pass per-gene variances, e.g. X.var(axis=0, ddof=1), not effects or log-ratios."
            )
    r = pearson(pred, true, what="r2_var_sqpearson")
    return r * r


def r2_mean_cod(pred_mean: Any, true_mean: Any) -> float:
    """Coefficient of determination of per-gene means: ``sklearn.metrics.r2_score(true_mean, pred_mean)``.

    ``1 - sum((true - pred)^2) / sum((true - mean(true))^2)``; this is the R^2 that CPA reports.
    It can be negative, and a prediction off by a constant is penalised (unlike
    :func:`r2_mean_sqpearson`). If ``true_mean`` is constant the score is undefined:
    ``nan`` and a ``RuntimeWarning`` (sklearn would return 0.0 or 1.0 instead).
    Taught in notebook 06 (CPA) and 09 (linear baselines).

    Args:
        pred_mean: predicted mean expression per gene, shape ``(n_genes,)``.
        true_mean: observed mean expression per gene, same shape.

    Returns:
        The coefficient of determination (at most 1).

    Example:
        >>> r2_mean_cod([1.0, 2.0, 3.0], [1.0, 2.0, 4.0])  # 1 - 1 / (14/3)
        0.7857142857142857
    """
    pred, true = _vectors(pred_mean=pred_mean, true_mean=true_mean)
    if np.ptp(true) == 0:
        warnings.warn(
            "r2_mean_cod: true_mean is constant, so the coefficient of determination is undefined; returning nan.",
            RuntimeWarning,
            stacklevel=2,
        )
        return float("nan")
    ss_res = float(np.sum((true - pred) ** 2))
    ss_tot = float(np.sum((true - true.mean()) ** 2))
    return 1.0 - ss_res / ss_tot


def pearson_delta(pred_mean: Any, true_mean: Any, ctrl_mean: Any) -> float:
    """Pearson correlation of the predicted and observed change vs control.

    ``corr(pred_mean - ctrl_mean, true_mean - ctrl_mean)``, GEARS' "pearson_delta".
    Unlike correlating raw means (dominated by baseline expression, near 1 for any model),
    this scores the perturbation effect itself.
    Taught in notebook 04 (scGen, delta-based metrics) and 09 (linear baselines).

    Args:
        pred_mean: predicted mean expression per gene, shape ``(n_genes,)``.
        true_mean: observed mean expression per gene, same shape.
        ctrl_mean: mean expression of control cells, same shape.

    Returns:
        A correlation in [-1, 1]; ``nan`` (with a ``RuntimeWarning``) if either delta is constant
        (up to floating-point rounding, ``1e-12`` of the largest input value), e.g. a model that
        predicts "no change" (pred == ctrl), also when ctrl is stored sparse and pred dense.

    Example:
        >>> round(pearson_delta([1.0, 3.0, 2.0], [1.0, 4.0, 2.0], [1.0, 2.0, 2.0]), 6)  # deltas (0,1,0) and (0,2,0)
        1.0
    """
    pred, true, ctrl = _vectors(pred_mean=pred_mean, true_mean=true_mean, ctrl_mean=ctrl_mean)
    return pearson(pred - ctrl, true - ctrl, what="pearson_delta", scale=_magnitude(pred, true, ctrl))


def pearson_delta_pert(pred_mean: Any, true_mean: Any, reference_mean: Any) -> float:
    """Pearson correlation of the change relative to the mean perturbed state (Systema).

    ``corr(pred_mean - reference_mean, true_mean - reference_mean)`` where ``reference_mean``
    is the average of the observed perturbed centroids (all perturbations, control excluded).
    This removes the systematic variation that all perturbations share (e.g. a generic
    stress response), which a model can match without knowing anything perturbation-specific.
    Taught in notebook 09 (linear baselines) and 10 (benchmarking).

    Args:
        pred_mean: predicted mean expression per gene, shape ``(n_genes,)``.
        true_mean: observed mean expression per gene, same shape.
        reference_mean: mean of the perturbed centroids, same shape.

    Returns:
        A correlation in [-1, 1]; ``nan`` (with a ``RuntimeWarning``) if either vector is constant.

    Example:
        >>> # deltas (1,0,2) and (1,-1,3), centred (0,-1,1) and (0,-2,2)
        >>> round(pearson_delta_pert([2.0, 1.0, 3.0], [2.0, 0.0, 4.0], [1.0, 1.0, 1.0]), 6)
        1.0
    """
    pred, true, ref = _vectors(pred_mean=pred_mean, true_mean=true_mean, reference_mean=reference_mean)
    return pearson(pred - ref, true - ref, what="pearson_delta_pert", scale=_magnitude(pred, true, ref))


def mse_top_de(pred_mean: Any, true_mean: Any, de_idx: Any) -> float:
    """Mean squared error of per-gene means on the given DE genes.

    ``mean((pred_mean[de_idx] - true_mean[de_idx])^2)``; GEARS uses the top-20 DE genes of
    the true perturbation vs control (see :func:`top_de_genes`).
    Taught in notebook 09 (linear baselines, GEARS-style scores) and 10 (benchmarking).

    Args:
        pred_mean: predicted mean expression per gene, shape ``(n_genes,)``.
        true_mean: observed mean expression per gene, same shape.
        de_idx: integer indices of the DE genes (unique, in range).

    Returns:
        The MSE (non-negative).

    Example:
        >>> mse_top_de([1.0, 5.0, 3.0], [1.0, 2.0, 2.0], [1, 2])  # ((5-2)^2 + (3-2)^2) / 2
        5.0
    """
    pred, true = _vectors(pred_mean=pred_mean, true_mean=true_mean)
    idx = _indices(de_idx, pred.size)
    return float(np.mean((pred[idx] - true[idx]) ** 2))


def direction_agreement_k(pred_mean: Any, true_mean: Any, ctrl_mean: Any, de_idx: Any) -> float:
    """Fraction of the given DE genes whose direction of change vs control is predicted right.

    Compares ``sign(pred_mean - ctrl_mean)`` with ``sign(true_mean - ctrl_mean)`` on ``de_idx``
    (usually the top-k DE genes of true vs control). A gene with no change in both counts
    as agreeing (sign 0 == sign 0); no change in only one counts as disagreeing.
    Taught in notebook 09 (linear baselines) and 10 (benchmarking).

    Args:
        pred_mean: predicted mean expression per gene, shape ``(n_genes,)``.
        true_mean: observed mean expression per gene, same shape.
        ctrl_mean: mean expression of control cells, same shape.
        de_idx: integer indices of the DE genes.

    Returns:
        A fraction in [0, 1].

    Example:
        >>> # changes vs control: up/up, down/up, down/down
        >>> direction_agreement_k([2.0, 0.0, 0.5], [3.0, 2.0, 0.0], [1.0, 1.0, 1.0], [0, 1, 2])
        0.6666666666666666
    """
    pred, true, ctrl = _vectors(pred_mean=pred_mean, true_mean=true_mean, ctrl_mean=ctrl_mean)
    idx = _indices(de_idx, pred.size)
    # a change at rounding level (e.g. the mean of a sparse and of a dense copy of the same cells)
    # is no change: its sign would be noise
    scale = 1e-12 * max(float(np.max(np.abs(ctrl))), float(np.max(np.abs(pred))), float(np.max(np.abs(true))), 1e-300)

    def sign(d: np.ndarray) -> np.ndarray:
        return np.where(np.abs(d) <= scale, 0.0, np.sign(d))

    return float(np.mean(sign(pred[idx] - ctrl[idx]) == sign(true[idx] - ctrl[idx])))


def l2_top_expressed(pred_mean: Any, true_mean: Any, ctrl_mean: Any, *, k: int = 1000) -> float:
    """L2 distance of per-gene means on the ``k`` genes most expressed in control.

    ``||pred_mean[S] - true_mean[S]||_2`` with ``S`` the ``k`` largest entries of ``ctrl_mean``
    (ties broken by gene order), as in Ahlmann-Eltze et al. (2025), where simple linear
    baselines match or beat deep models.
    Taught in notebook 09 (linear baselines).

    Args:
        pred_mean: predicted mean expression per gene, shape ``(n_genes,)``.
        true_mean: observed mean expression per gene, same shape.
        ctrl_mean: mean expression of control cells, same shape; selects the genes.
        k: number of top-expressed genes (at most ``n_genes``).

    Returns:
        The Euclidean distance (non-negative).

    Example:
        >>> l2_top_expressed([0.0, 4.0, 9.0], [3.0, 0.0, 9.0], [1.0, 5.0, 3.0], k=2)  # genes 1, 2: sqrt(16 + 0)
        4.0
    """
    pred, true, ctrl = _vectors(pred_mean=pred_mean, true_mean=true_mean, ctrl_mean=ctrl_mean)
    k = _check_k(k, pred.size)
    top = np.argsort(-ctrl, kind="stable")[:k]
    return float(np.linalg.norm(pred[top] - true[top]))


# --------------------------------------------------------------------------- differential expression


def de_scores(X_group: Any, X_ctrl: Any) -> np.ndarray:
    """Welch t statistic per gene, group vs control, as ``scanpy.tl.rank_genes_groups(method='t-test')``.

    ``t = (mean_g - mean_c) / sqrt(var_g / n_g + var_c / n_c)`` with unbiased (ddof=1)
    variances. As in scanpy, a gene constant and equal in both groups (0/0) scores 0, and a
    gene constant within each group but different between them scores +-inf.
    Taught in notebook 04 (scGen, top-100 DEGs) and 09 (linear baselines).

    Args:
        X_group: cells x genes matrix of the group (dense or scipy sparse), >= 2 cells.
        X_ctrl: cells x genes matrix of control cells, >= 2 cells, same genes.

    Returns:
        One score per gene, shape ``(n_genes,)``.

    Example:
        >>> g = np.array([[2.0, 1.0], [4.0, 1.0]]); c = np.array([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
        >>> de_scores(g, c)  # gene 0: (3 - 1) / sqrt(2/2 + 0/3) = 2; gene 1: 0/0 -> 0
        array([2., 0.])
    """
    g = as_matrix(X_group, name="X_group")
    c = as_matrix(X_ctrl, name="X_ctrl")
    _same_genes(X_group=g, X_ctrl=c)
    for name, mat in (("X_group", g), ("X_ctrl", c)):
        if mat.shape[0] < 2:
            raise ValueError(
                f"{name} has {mat.shape[0]} cell; a t-test needs at least 2 cells per group "
                "(scanpy refuses single-cell groups too). Pool replicates or sample more cells."
            )
    mean_g, var_g = col_mean_var(g)
    mean_c, var_c = col_mean_var(c)
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = (mean_g - mean_c) / np.sqrt(var_g / g.shape[0] + var_c / c.shape[0])
    scores[np.isnan(scores)] = 0.0
    return scores


def top_de_genes(X_group: Any, X_ctrl: Any, *, k: int, rankby_abs: bool = True) -> np.ndarray:
    """Indices of the top-``k`` DE genes of a group vs control (Welch t-test, scanpy's ranking).

    Ranks genes by :func:`de_scores` (descending), or by its absolute value when
    ``rankby_abs=True`` (up- and down-regulated genes together, as GEARS does), exactly as
    ``scanpy.tl.rank_genes_groups(adata, groupby, reference='control', method='t-test',
    rankby_abs=...)``. Ties are broken by gene order (stable sort); scanpy leaves their
    order unspecified.
    Taught in notebook 04 (scGen, top-100 DEGs) and 09 (linear baselines).

    Args:
        X_group: cells x genes matrix of the group (dense or scipy sparse), >= 2 cells.
        X_ctrl: cells x genes matrix of control cells, >= 2 cells.
        k: number of genes to return (at most ``n_genes``).
        rankby_abs: rank by ``|t|`` instead of ``t``.

    Returns:
        Integer gene indices, best first, shape ``(k,)``.

    Example:
        >>> g = np.array([[0.0, 5.0, 1.0], [0.2, 6.0, 1.2]]); c = np.array([[1.0, 1.0, 1.0], [1.2, 1.1, 1.1]])
        >>> top_de_genes(g, c, k=2)
        array([1, 0])
        >>> top_de_genes(g, c, k=2, rankby_abs=False)  # up-regulated first
        array([1, 2])
    """
    scores = de_scores(X_group, X_ctrl)
    k = _check_k(k, scores.size)
    key = np.abs(scores) if rankby_abs else scores
    return np.argsort(-key, kind="stable")[:k]


_NO_CHANGE_T = 1e-8
"""Largest |t| of a prediction vs control that :func:`deg_overlap_k` treats as no change at all."""


def deg_overlap_k(X_pred: Any, X_true: Any, X_ctrl: Any, *, k: int, rankby_abs: bool = True) -> float:
    """Overlap of the top-``k`` DE genes of predicted and of true cells, each vs control.

    ``|top_k(pred vs ctrl) intersect top_k(true vs ctrl)| / k`` with the ranking of
    :func:`top_de_genes`. Needs single cells (>= 2) for the prediction, not only a mean.
    Taught in notebook 04 (scGen) and 05 (scPRAM).

    Args:
        X_pred: cells x genes matrix of predicted cells.
        X_true: cells x genes matrix of observed perturbed cells.
        X_ctrl: cells x genes matrix of control cells.
        k: number of top genes compared (at most ``n_genes``).
        rankby_abs: rank by ``|t|`` (default) instead of ``t``.

    Returns:
        A fraction in [0, 1]; nan (with a ``RuntimeWarning``) when the predicted cells do not
        differ from the control cells at all (every ``|t|`` at most 1e-8, e.g. the no-change
        baseline), since their "top DE genes" would only be an order set by rounding error.

    Example:
        >>> c = np.array([[1.0, 1.0, 1.0], [1.1, 1.2, 0.9]])
        >>> t = np.array([[3.0, 1.0, 1.0], [3.2, 1.1, 1.0]])
        >>> p = np.array([[2.9, 1.0, 2.0], [3.1, 1.2, 2.2]])
        >>> deg_overlap_k(p, t, c, k=1)  # gene 0 tops both rankings
        1.0
    """
    p = as_matrix(X_pred, name="X_pred")
    t = as_matrix(X_true, name="X_true")
    c = as_matrix(X_ctrl, name="X_ctrl")
    _same_genes(X_pred=p, X_true=t, X_ctrl=c)
    k = _check_k(k, c.shape[1])
    if np.abs(de_scores(p, c)).max() <= _NO_CHANGE_T:
        # e.g. the no-change baseline: its "top DEGs" would be an order set by rounding error
        warnings.warn(
            "deg_overlap_k: the predicted cells do not differ from the control cells (every |t| <= "
            f"{_NO_CHANGE_T:g}), so they have no DE genes to rank; returning nan.",
            RuntimeWarning, stacklevel=2,
        )
        return float("nan")
    top_p = top_de_genes(p, c, k=k, rankby_abs=rankby_abs)
    top_t = top_de_genes(t, c, k=k, rankby_abs=rankby_abs)
    return np.intersect1d(top_p, top_t).size / k


# --------------------------------------------------------------------------- distribution distances


def fit_pca(X_real: Any, *, n_comps: int = 50, seed: int = 0) -> PCA:
    """Fit the ONE shared PCA in which distribution distances are computed.

    Fit it once, on real cells only (observed perturbed + control cells), and pass the
    fitted object to :func:`edistance`, :func:`mmd_rbf` and :func:`evaluate` for every model.
    Never refit it per model and never fit it on predictions: each model would then be
    scored in its own coordinates, and the numbers would not be comparable.
    Uses ``sklearn.decomposition.PCA(n_components=n_comps, random_state=seed)`` (centred, not scaled).
    In a benchmark with a train/test split, fit it on the training cells, so no test cell shapes the coordinates
    (see the book page *How the course evaluates models*, book/evaluation.md).
    Taught in notebook 01 (Perturb-seq QC) and 03 (GAN realism); used in 10 (benchmarking).

    Args:
        X_real: cells x genes matrix of real cells (dense or scipy sparse).
        n_comps: number of components, at most ``min(n_cells, n_genes)``.
        seed: random state of the (randomized/ARPACK) solver.

    Returns:
        The fitted ``sklearn.decomposition.PCA``; use ``pca.transform(X)``.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> pca = fit_pca(rng.normal(size=(20, 5)), n_comps=2)
        >>> pca.transform(rng.normal(size=(3, 5))).shape
        (3, 2)
    """
    import scipy.sparse as sp
    from sklearn.decomposition import PCA

    x = as_matrix(X_real, name="X_real")
    n_comps = _check_k(n_comps, min(x.shape), name="n_comps")
    if sp.issparse(x) and not _sklearn_pca_takes_sparse():
        x = x.toarray()  # scikit-learn < 1.5 (e.g. the scgen environment) fits PCA on dense input only
    solver = "covariance_eigh" if sp.issparse(x) and n_comps == min(x.shape) else "auto"
    return PCA(n_components=n_comps, random_state=seed, svd_solver=solver).fit(x)


def _sklearn_pca_takes_sparse() -> bool:
    """scikit-learn >= 1.5 fits PCA on sparse input with the 'auto' and 'covariance_eigh' solvers."""
    import sklearn

    major, minor = (int(part) for part in sklearn.__version__.split(".")[:2])
    return (major, minor) >= (1, 5)


def embed(x: Any, *, pca: Any, name: str = "X") -> np.ndarray:
    """Cells as a dense float64 array: their coordinates in ``pca``, or their expression when ``pca`` is None.

    Every distance of this module (and :func:`tutorial_kit.simulate.diversity`) compares cells
    this way, in ONE PCA fitted on real cells (:func:`fit_pca`).

    Args:
        x: cells x genes matrix, dense or sparse, finite.
        pca: a fitted PCA (same genes as ``x``), or None for no projection.
        name: how the error messages call ``x``.

    Returns:
        A cells x components (or cells x genes) array.

    Example:
        >>> x = np.random.default_rng(0).normal(size=(10, 4))
        >>> embed(x, pca=fit_pca(x, n_comps=2)).shape, embed(x, pca=None).shape
        ((10, 2), (10, 4))
    """
    mat = as_matrix(x, name=name)
    if pca is not None:
        n_in = getattr(pca, "n_features_in_", None)
        if n_in is None:
            raise ValueError("pca must be a fitted PCA (use tk.metrics.fit_pca on real cells).")
        if mat.shape[1] != n_in:
            raise ValueError(
                f"{name} has {mat.shape[1]} genes but the PCA was fitted on {n_in}; "
                "use the same genes, in the same order, as the cells the PCA was fitted on."
            )
        return np.asarray(pca.transform(mat), dtype=np.float64)
    return to_dense(mat)


def _pairwise(a: np.ndarray, b: np.ndarray, *, squared: bool) -> np.ndarray:
    """Pairwise (squared) Euclidean distances between the rows of a and b."""
    d = np.einsum("ij,ij->i", a, a)[:, None] + np.einsum("ij,ij->i", b, b)[None, :] - 2.0 * (a @ b.T)
    np.maximum(d, 0.0, out=d)
    if a is b:
        np.fill_diagonal(d, 0.0)
    return d if squared else np.sqrt(d, out=d)


def _mean_pairwise(a: np.ndarray, b: np.ndarray, *, squared: bool) -> float:
    """Mean over all (i, j) pairs, diagonal included, computed in row blocks to bound memory."""
    step = max(1, _BLOCK_ELEMENTS // max(1, b.shape[0]))
    total = 0.0
    for start in range(0, a.shape[0], step):
        block = a[start : start + step]
        d = _pairwise(block, b, squared=squared)
        if a is b:
            idx = np.arange(block.shape[0])
            d[idx, start + idx] = 0.0
        total += float(d.sum())
    return total / (a.shape[0] * b.shape[0])


def edistance(X: Any, Y: Any, *, pca: PCA | None = None, squared: bool = False) -> float:
    """Energy distance ``2 E||X - Y|| - E||X - X'|| - E||Y - Y'||`` between two groups of cells.

    Convention (state it when you report a number):

    - ``squared=False`` (default): Euclidean distances between cells, the energy distance proper,
      a metric between distributions that also sees spread and shape. This is pertpy 1.0.3's
      ``pt.tl.Distance('edistance')`` default (its ``cell_wise_metric='euclidean'``), which it
      reproduces to 1e-6.
    - ``squared=True``: squared Euclidean distances between cells, as scPerturb's
      ``dist='sqeuclidean'``. With the V-statistic averages used here this equals exactly
      ``2 * ||mean(X) - mean(Y)||^2``: it compares centroids only and is blind to spread
      (a model that predicts every cell at the true centroid scores 0).
    - Within-group means ``E||X - X'||`` average over all ``n^2`` pairs, the zero diagonal
      included (V-statistic, as pertpy and scPerturb without ``correction_factor``). The
      unbiased U-statistic divides by ``n(n-1)`` instead: multiply the within term by ``n / (n - 1)``.

    Computed in the shared PCA ``pca`` (``pca.transform`` of both groups) when given; use
    :func:`fit_pca` on real cells only. Without ``pca``, on the matrices as given.
    Taught in notebook 01 (Perturb-seq QC, perturbation strength) and 10 (benchmarking).

    Args:
        X: cells x genes matrix of the first group (dense or scipy sparse).
        Y: cells x genes matrix of the second group, same genes.
        pca: fitted PCA from :func:`fit_pca`, or None to use the features as given.
        squared: Euclidean (default, False) or squared Euclidean (True) distances between cells.

    Returns:
        The energy distance (non-negative up to rounding).

    Example:
        >>> X = np.array([[0.0], [2.0]]); Y = np.array([[4.0], [6.0]])
        >>> edistance(X, Y)  # 2 * (4+6+2+4)/4 - (0+2+2+0)/4 - (0+2+2+0)/4
        6.0
        >>> edistance(X, Y, squared=True)  # 2 * (5 - 1)^2: centroids only
        32.0
    """
    x = embed(X, pca=pca, name="X")
    y = embed(Y, pca=pca, name="Y")
    _same_genes(X=x, Y=y)
    dxy = _mean_pairwise(x, y, squared=squared)
    dxx = _mean_pairwise(x, x, squared=squared)
    dyy = _mean_pairwise(y, y, squared=squared)
    return float(2.0 * dxy - dxx - dyy)


class EdistanceTestResult(NamedTuple):
    """Result of :func:`edistance_test`."""

    statistic: float
    """The observed energy distance."""
    pvalue: float
    """``(1 + #{null >= statistic}) / (1 + n_permutations)``."""
    n_permutations: int
    """Number of random relabellings."""
    null_distribution: np.ndarray
    """Energy distance of each relabelling, shape ``(n_permutations,)``."""


def edistance_test(
    X: Any,
    Y: Any,
    *,
    n_permutations: int = 1000,
    pca: PCA | None = None,
    seed: int = 0,
    squared: bool = False,
) -> EdistanceTestResult:
    """Permutation test of "X and Y come from the same distribution" with the energy distance.

    The cells of both groups are pooled and randomly relabelled ``n_permutations`` times
    (group sizes kept); the p-value is ``(1 + #{null >= observed}) / (1 + n_permutations)``,
    so it is never 0 and its smallest value is ``1 / (n_permutations + 1)``. Null values
    within 1e-9 x the mean pairwise distance of the observed one count as ``>=`` (floating-point ties).
    The pairwise-distance matrix is computed once; each relabelling is then two matrix
    products, so 1000 permutations of ~400 cells take a fraction of a second.
    Same ``pca`` and ``squared`` conventions as :func:`edistance` (with ``squared=True`` this
    tests for a difference of centroids only).
    Taught in notebook 01 (Perturb-seq QC: E-distance to control with a permutation test).

    Args:
        X: cells x genes matrix of the first group.
        Y: cells x genes matrix of the second group, same genes.
        n_permutations: number of random relabellings (>= 1).
        pca: fitted PCA from :func:`fit_pca`, or None to use the features as given.
        seed: seed of ``numpy.random.default_rng`` for the relabellings.
        squared: Euclidean (default, False) or squared Euclidean (True) distances between cells.

    Returns:
        An :class:`EdistanceTestResult` (statistic, pvalue, n_permutations, null_distribution).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> res = edistance_test(rng.normal(size=(30, 3)), rng.normal(5.0, size=(30, 3)), n_permutations=99)
        >>> res.pvalue  # 1 / (99 + 1): no relabelling is as extreme
        0.01
    """
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, (int, np.integer)) or n_permutations < 1:
        raise ValueError(f"n_permutations must be a positive integer; got {n_permutations!r}.")
    n_permutations = int(n_permutations)
    x = embed(X, pca=pca, name="X")
    y = embed(Y, pca=pca, name="Y")
    _same_genes(X=x, Y=y)
    z = np.vstack([x, y])
    n, m, n_all = x.shape[0], y.shape[0], z.shape[0]
    d = _pairwise(z, z, squared=squared)
    row = d.sum(axis=1)
    total = float(row.sum())

    def stat(labels: np.ndarray) -> np.ndarray:
        # labels: (p, n_all) 0/1 indicators of group X; sums over the blocks of d.
        s_xx = np.einsum("pi,pi->p", labels @ d, labels)
        s_xr = labels @ row
        s_xy = s_xr - s_xx
        s_yy = total - 2.0 * s_xr + s_xx
        return 2.0 * s_xy / (n * m) - s_xx / n**2 - s_yy / m**2

    observed_labels = np.zeros((1, n_all))
    observed_labels[0, :n] = 1.0
    observed = float(stat(observed_labels)[0])

    rng = np.random.default_rng(seed)
    chunk = max(1, _BLOCK_ELEMENTS // n_all)
    null = np.empty(n_permutations)
    for start in range(0, n_permutations, chunk):
        size = min(chunk, n_permutations - start)
        chosen = np.argsort(rng.random((size, n_all)), axis=1)[:, :n]
        labels = np.zeros((size, n_all))
        np.put_along_axis(labels, chosen, 1.0, axis=1)
        null[start : start + size] = stat(labels)
    tol = 1e-9 * total / n_all**2
    pvalue = (1 + int(np.sum(null >= observed - tol))) / (1 + n_permutations)
    return EdistanceTestResult(observed, pvalue, n_permutations, null)


def rbf_median_gamma(X: Any, *, pca: PCA | None = None, max_cells: int = 2000, seed: int = 0) -> float:
    """RBF bandwidth by the median heuristic: ``gamma = 1 / median ||x_i - x_j||^2`` over pairs i != j.

    With this gamma the kernel ``exp(-gamma ||x - y||^2)`` equals ``exp(-1)`` at the median
    squared distance. Above ``max_cells`` cells a seeded random subset is used.
    :func:`evaluate` computes it once on real cells, so every model is scored with the same kernel.
    Taught in notebook 02 (statistical simulation) and 03 (GAN realism).

    Args:
        X: cells x features matrix (cells pooled from the groups you will compare), >= 2 cells.
        pca: fitted PCA from :func:`fit_pca`, or None to use the features as given.
        max_cells: subsample to at most this many cells.
        seed: seed of the subsample.

    Returns:
        gamma (> 0).

    Example:
        >>> rbf_median_gamma(np.array([[0.0], [1.0], [3.0]]))  # squared distances 1, 9, 4 -> 1/4
        0.25
    """
    x = embed(X, pca=pca, name="X")
    if x.shape[0] > max_cells:
        x = x[np.sort(np.random.default_rng(seed).choice(x.shape[0], size=max_cells, replace=False))]
    if x.shape[0] < 2:
        raise ValueError("The median heuristic needs at least 2 cells; pass gamma explicitly.")
    d = _pairwise(x, x, squared=True)
    med = float(np.median(d[np.triu_indices(x.shape[0], k=1)]))
    if med <= 0:
        raise ValueError(
            "The median squared distance between cells is 0 (most cells are identical), "
            "so the median heuristic fails; pass gamma explicitly, e.g. gamma=1.0."
        )
    return 1.0 / med


def mmd_rbf(
    X: Any,
    Y: Any,
    *,
    gamma: float | str = "median",
    pca: PCA | None = None,
    return_gamma: bool = False,
) -> float | tuple[float, float]:
    """Squared maximum mean discrepancy with an RBF kernel (biased V-statistic).

    ``MMD^2 = mean k(X, X') + mean k(Y, Y') - 2 mean k(X, Y)`` with
    ``k(a, b) = exp(-gamma ||a - b||^2)`` (scikit-learn's ``rbf_kernel`` convention) and the
    diagonal included in the within-group means. This is exactly pertpy's
    ``pt.tl.Distance('mmd')(X, Y, kernel='rbf', gamma=gamma)`` (pertpy's own default kernel is
    linear, and its default ``gamma=1.0``).
    Bandwidth: ``gamma='median'`` (default) uses :func:`rbf_median_gamma` of the pooled cells;
    pass a number to fix it, and report it with the score (``return_gamma=True`` returns it).
    To compare models, use one gamma for all of them (as :func:`evaluate` does).
    Taught in notebook 02 (statistical simulation) and 03 (GAN realism).

    Args:
        X: cells x features matrix of the first group.
        Y: cells x features matrix of the second group, same features.
        gamma: RBF inverse squared bandwidth (> 0), or ``'median'``.
        pca: fitted PCA from :func:`fit_pca`, or None to use the features as given.
        return_gamma: also return the gamma used.

    Returns:
        ``MMD^2``, or ``(MMD^2, gamma)`` if ``return_gamma``.

    Example:
        >>> X = np.array([[0.0], [1.0]]); Y = np.array([[1.0], [2.0]])
        >>> round(mmd_rbf(X, Y, gamma=1.0), 6)  # (1+e^-1)/2 + (1+e^-1)/2 - 2 (1+2e^-1+e^-4)/4
        0.490842
        >>> mmd_rbf(X, Y, return_gamma=True)[1]  # median of the squared distances 1, 1, 4, 0, 1, 1 of distinct cells
        1.0
    """
    x = embed(X, pca=pca, name="X")
    y = embed(Y, pca=pca, name="Y")
    _same_genes(X=x, Y=y)
    if isinstance(gamma, str):
        if gamma != "median":
            raise ValueError(f"gamma must be a positive number or 'median'; got {gamma!r}.")
        gamma = rbf_median_gamma(np.vstack([x, y]))
    gamma = float(gamma)
    if not np.isfinite(gamma) or gamma <= 0:
        raise ValueError(f"gamma must be a positive finite number; got {gamma}.")

    def mean_kernel(a: np.ndarray, b: np.ndarray) -> float:
        return float(np.exp(-gamma * _pairwise(a, b, squared=True)).mean())

    value = mean_kernel(x, x) + mean_kernel(y, y) - 2.0 * mean_kernel(x, y)
    return (value, gamma) if return_gamma else value


# --------------------------------------------------------------------------- across perturbations


def discrimination_rank(pred_effects: Any, true_effects: Any) -> Any:
    """Normalised rank of the true perturbation among all real effects (cell-eval's PDS).

    Row ``i`` of both inputs is perturbation ``i`` (effects = mean minus control mean).
    For each ``i`` the L1 distance ``d_ij = sum |pred_i - true_j|`` to every real effect is
    computed, and the score is ``(#{j: d_ij < d_ii} + 0.5 * #{j != i: d_ij == d_ii}) / (P - 1)``:
    0 when the true perturbation is the nearest, 1 when it is the farthest, and ties count
    half (the expected rank under random tie-breaking). cell-eval reports
    ``1 - rank / P`` with arbitrary tie order (and drops the target gene first); without
    ties, ``cell_eval = 1 - value * (P - 1) / P``.
    Taught in notebook 10 (benchmarking); used in 09 (linear baselines).

    Args:
        pred_effects: predicted effects, perturbations x genes (array or DataFrame indexed by name).
        true_effects: observed effects, same shape and row order (same index if a DataFrame).

    Returns:
        One value per perturbation: a numpy array, or a pandas Series keyed by the
        perturbation names if ``pred_effects`` is a DataFrame.

    Example:
        >>> true = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        >>> pred = np.array([[0.9, 0.0], [1.0, 1.0], [1.0, 1.0]])
        >>> discrimination_rank(pred, true)  # row 1 is nearest to true row 2, then row 0/1 tie
        array([0.  , 0.75, 0.  ])
    """
    names = None
    if hasattr(pred_effects, "index") and hasattr(pred_effects, "to_numpy"):
        names = pred_effects.index
        if hasattr(true_effects, "index") and not true_effects.index.equals(names):
            raise ValueError(
                "pred_effects and true_effects have different row labels (or order); "
                "align them, e.g. true_effects = true_effects.loc[pred_effects.index]."
            )
        if hasattr(true_effects, "columns") and not true_effects.columns.equals(pred_effects.columns):
            raise ValueError("pred_effects and true_effects have different gene columns; align them first.")
    p = np.asarray(pred_effects, dtype=np.float64)
    t = np.asarray(true_effects, dtype=np.float64)
    for name, arr in (("pred_effects", p), ("true_effects", t)):
        if arr.ndim != 2:
            raise ValueError(f"{name} must be a 2-D perturbations x genes matrix; got shape {arr.shape}.")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite values; remove or impute them upstream.")
    check_same_shape(p, t, what="pred_effects and true_effects")
    n_pert = p.shape[0]
    if n_pert < 2:
        raise ValueError(
            f"discrimination_rank needs at least 2 perturbations to rank among; got {n_pert}. "
            "Evaluate several perturbations together."
        )
    from scipy.spatial.distance import cdist

    d = cdist(p, t, metric="cityblock")
    own = np.diag(d)[:, None]
    closer = (d < own).sum(axis=1)
    ties = (d == own).sum(axis=1) - 1  # minus the perturbation itself
    ranks = (closer + 0.5 * ties) / (n_pert - 1)
    if names is not None:
        import pandas as pd

        return pd.Series(ranks, index=names, name="discrimination_rank")
    return ranks


# --------------------------------------------------------------------------- latent spaces


def knn_recovery(embedding: Any, targets: Any, *, k: int = 15) -> float:
    """How much of a known per-cell quantity a space's neighbourhoods recover: R^2 of a kNN average.

    Each cell's value is predicted as the mean of ``targets`` over its ``k`` nearest neighbours
    in ``embedding`` (Euclidean, the cell itself excluded), and the score is
    ``R^2 = 1 - sum ||t_i - tbar_i||^2 / sum ||t_i - mean(t)||^2`` over cells (and over the
    columns of a matrix of targets). 1: neighbours share the cell's value; 0: neighbours are no
    better than the average cell; negative: worse. Unlike a classifier, nothing is fitted: a
    space whose neighbourhoods are set by something else (a shared nuisance program) scores low
    even if the quantity could be read off it along some direction. Taught in
    ``07_contrastivevi``, where the targets are each cell's true perturbation effect.

    Args:
        embedding: cells x dimensions.
        targets: one value (vector) or one row (matrix, cells x columns) per cell.
        k: neighbours per cell (fewer than the number of cells).

    Returns:
        The R^2, a float (NaN if the targets are constant).

    Raises:
        ValueError: shapes that do not match, non-finite values, or ``k`` out of range.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> t = np.repeat([0.0, 1.0], 50)
        >>> clustered = rng.normal(size=(100, 2)) * 0.1 + t[:, None]
        >>> round(knn_recovery(clustered, t, k=5), 3)
        1.0
        >>> bool(knn_recovery(rng.normal(size=(100, 2)), t, k=5) < 0.3)
        True
    """
    from sklearn.neighbors import NearestNeighbors

    z = np.asarray(embedding, dtype=np.float64)
    t = np.asarray(targets, dtype=np.float64)
    if t.ndim == 1:
        t = t[:, None]
    if z.ndim != 2 or t.ndim != 2 or z.shape[0] != t.shape[0]:
        raise ValueError(
            f"knn_recovery: embedding (cells x dims) and targets (one row per cell) must have the same number "
            f"of cells; got shapes {z.shape} and {t.shape}."
        )
    if not (np.all(np.isfinite(z)) and np.all(np.isfinite(t))):
        raise ValueError("knn_recovery: embedding and targets must be finite; remove NaN or infinite values first.")
    k = int(k)
    if not 1 <= k < z.shape[0]:
        raise ValueError(f"knn_recovery: k must be between 1 and {z.shape[0] - 1} (cells - 1); got {k}.")
    neighbours = NearestNeighbors(n_neighbors=k + 1).fit(z).kneighbors(z, return_distance=False)
    # drop each cell itself: the first neighbour, or wherever it sits when duplicates tie at distance 0
    rows = np.arange(z.shape[0])[:, None]
    others = np.where(neighbours == rows, -1, neighbours)
    keep = np.array([row[row >= 0][:k] for row in others])
    smoothed = t[keep].mean(axis=1)
    total = float(((t - t.mean(axis=0)) ** 2).sum())
    if total == 0:
        return float("nan")
    return 1.0 - float(((t - smoothed) ** 2).sum()) / total


def label_accuracy(embedding: Any, labels: Any, *, seed: int = 0, n_folds: int = 5) -> tuple[float, float]:
    """What a latent space knows about a label: cross-validated balanced accuracy of a linear classifier.

    A logistic regression (features standardized inside each fold) is trained on ``n_folds - 1``
    folds and scored on the held-out fold, with folds stratified by label and shuffled with
    ``seed``; the score is the balanced accuracy (the mean recall over classes), averaged over
    folds. Balanced accuracy has chance level ``1 / n_classes`` whatever the class sizes, so
    spaces and labels of different balance can be compared. Taught in ``07_contrastivevi``
    (salient versus background space) and ``08_cinemaot`` (confounder versus treatment components).

    Args:
        embedding: cells x dimensions (a latent space, principal components, ICA components).
        labels: one label per cell (at least 2 classes, each with at least ``n_folds`` cells).
        seed: seed of the fold assignment (and of the classifier).
        n_folds: folds of the cross-validation (at least 2).

    Returns:
        ``(balanced_accuracy, chance)``, with ``chance = 1 / n_classes``.

    Raises:
        ValueError: the embedding is not 2-D and finite, the number of labels differs from the
            number of cells, fewer than 2 classes, or a class with fewer than ``n_folds`` cells.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> labels = np.repeat(["a", "b"], 50)
        >>> informative = rng.normal(size=(100, 3)) + (labels == "b")[:, None] * 3.0
        >>> acc, chance = label_accuracy(informative, labels)
        >>> bool(acc > 0.9), chance
        (True, 0.5)
        >>> acc, _ = label_accuracy(rng.normal(size=(100, 3)), labels)
        >>> bool(abs(acc - 0.5) < 0.2)
        True
    """
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    z = np.asarray(embedding, dtype=np.float64)
    if z.ndim == 1:
        z = z[:, None]
    if z.ndim != 2 or not np.all(np.isfinite(z)):
        raise ValueError(
            f"label_accuracy: embedding must be a finite cells x dimensions matrix; got shape {z.shape}"
            f"{'' if z.ndim != 2 else ' with NaN or infinite values'}."
        )
    y = np.asarray(pd.Series(labels).astype(str))
    if y.size != z.shape[0]:
        raise ValueError(f"label_accuracy: {y.size} labels for {z.shape[0]} cells; give one label per cell.")
    n_folds = int(n_folds)
    if n_folds < 2:
        raise ValueError(f"label_accuracy: n_folds must be at least 2; got {n_folds}.")
    counts = pd.Series(y).value_counts()
    if counts.size < 2:
        raise ValueError(f"label_accuracy: the labels have one class only ({counts.index[0]!r}); nothing to predict.")
    small = counts[counts < n_folds]
    if len(small):
        raise ValueError(
            f"label_accuracy: class(es) {small.to_dict()} have fewer cells than the {n_folds} folds; "
            "drop them or use fewer folds."
        )
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=int(seed))
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=int(seed)))
    scores = cross_val_score(clf, z, y, cv=folds, scoring="balanced_accuracy")
    return float(np.mean(scores)), 1.0 / counts.size


# --------------------------------------------------------------------------- evaluate


def evaluate(
    pred: AnnData,
    true: AnnData,
    ctrl: AnnData,
    *,
    perturbation_key: str = "perturbation",
    metrics: Sequence[str] | None = None,
    pca: PCA | None = None,
    n_top_de: int = 20,
    k_overlap: int = 100,
    k_top_expressed: int = 1000,
    reference_mean: Any = None,
) -> pd.DataFrame:
    """Compute every metric of the course for each predicted perturbation; a tidy DataFrame out.

    For each perturbation in ``pred.obs[perturbation_key]`` (the label ``'control'`` is
    skipped), its predicted cells are compared with the observed cells of the same label in
    ``true`` and with all cells of ``ctrl`` (control cells), all on ``.X``:

    ===================== ====================================================
    metric                gene_set(s)
    ===================== ====================================================
    r2_mean_sqpearson     ``all``, ``top{n_top_de}_de``, ``top{k_overlap}_de``
    r2_var_sqpearson      ``all``, ``top{k_overlap}_de`` (per-gene variances, ``ddof=1``)
    r2_mean_cod           ``all``, ``top{n_top_de}_de``, ``top{k_overlap}_de``
    pearson_delta         ``all``, ``top{n_top_de}_de``
    pearson_delta_pert    ``all``, ``top{n_top_de}_de``
    mse_top_de            ``top{n_top_de}_de``
    direction_agreement_k ``top{n_top_de}_de``
    l2_top_expressed      ``top{k_top_expressed}_expressed``
    deg_overlap_k         ``top{k_overlap}_de``
    edistance             ``pca{n}`` (Euclidean, see :func:`edistance`)
    mmd_rbf               ``pca{n}`` (one gamma for all perturbations)
    discrimination_rank   ``all`` (effects vs the control mean, L1)
    ===================== ====================================================

    DE genes are the top genes of true vs control by :func:`top_de_genes` (``|t|``).
    ``pearson_delta_pert`` uses ``reference_mean`` if given, else the mean of the observed
    perturbed centroids of all perturbations in ``true``. If no ``pca`` is passed, ONE PCA
    with ``min(50, n_genes, n_real_cells - 1)`` components is fitted inside, on real cells
    only (``true`` and ``ctrl``), and used for every perturbation; predictions are only
    projected. The MMD gamma is the median heuristic (:func:`rbf_median_gamma`) on the same
    real cells in that PCA. Both are recorded in ``df.attrs``. In a benchmark, fit the PCA
    once on training cells with :func:`fit_pca` and pass it, so every model and split shares it.
    Rows that cannot be computed are omitted, never filled with NaN: ``discrimination_rank``
    when fewer than 2 perturbations are evaluated, and ``deg_overlap_k`` and ``r2_var_sqpearson``
    (with a warning) for a perturbation with fewer than 2 predicted cells (or, for the variance,
    fewer than 2 true cells). Pearson-based values can be NaN with a
    ``RuntimeWarning`` when a vector is constant.
    Taught in notebook 10 (benchmarking); used by the model notebooks 04-13.

    Args:
        pred: predicted cells x genes, ``obs[perturbation_key]`` labels the perturbation.
        true: observed cells, same genes in the same order, same labels.
        ctrl: observed control cells, same genes.
        perturbation_key: the ``obs`` column with perturbation labels.
        metrics: names from :data:`METRICS` to compute (default all).
        pca: a shared PCA from :func:`fit_pca` (fitted on real cells), or None to fit one here.
        n_top_de: number of top DE genes for MSE, direction and the DE-restricted scores.
        k_overlap: number of top DE genes for :func:`deg_overlap_k` and a second r2 gene set.
        k_top_expressed: number of top-expressed control genes for :func:`l2_top_expressed`.
        reference_mean: per-gene reference for :func:`pearson_delta_pert`.

    Returns:
        DataFrame with columns ``perturbation, metric, gene_set, value, n_genes``
        (``n_genes``: genes in the gene set; all genes for ``pca*`` rows, which project all).

    Example:
        >>> import anndata as ad, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> def cells(label, shift, n=30):
        ...     obs = pd.DataFrame({"perturbation": [label] * n}, index=[f"{label}{shift}_{i}" for i in range(n)])
        ...     return ad.AnnData(rng.normal(size=(n, 8)) + shift, obs=obs)
        >>> ctrl, true, pred = cells("control", 0.0), cells("A", 1.0), cells("A", 0.9)
        >>> df = evaluate(pred, true, ctrl, metrics=["mse_top_de", "edistance"],
        ...               n_top_de=3, k_overlap=4, k_top_expressed=5)
        >>> df[["perturbation", "metric", "gene_set", "n_genes"]].values.tolist()
        [['A', 'mse_top_de', 'top3_de', 3], ['A', 'edistance', 'pca8', 8]]
    """
    import pandas as pd
    import scipy.sparse as sp

    from tutorial_kit.data.schema import CONTROL

    chosen = list(METRICS) if metrics is None else list(metrics)
    unknown = [m for m in chosen if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRICS)}.")
    where = "evaluate"
    check_same_genes(pred, true, where=where, names=("pred", "true"))
    check_same_genes(true, ctrl, where=where, names=("true", "ctrl"))
    check_obs_columns(pred, [perturbation_key], where=where)
    check_obs_columns(true, [perturbation_key], where=where)
    check_nonempty(ctrl.n_obs, what="ctrl (control cells)", where=where)
    n_genes = int(true.n_vars)
    n_top_de = _check_k(n_top_de, n_genes, name="n_top_de")
    k_overlap = _check_k(k_overlap, n_genes, name="k_overlap")
    k_top_expressed = _check_k(k_top_expressed, n_genes, name="k_top_expressed")

    pred_labels = pred.obs[perturbation_key].astype(str).to_numpy()
    true_labels = true.obs[perturbation_key].astype(str).to_numpy()
    perts = sorted(set(pred_labels) - {CONTROL})
    if not perts:
        raise ValueError(
            f"{where}: pred.obs[{perturbation_key!r}] holds no perturbation other than {CONTROL!r}; "
            "nothing to evaluate."
        )
    check_perturbations(true, perts, key=perturbation_key, where=where)

    x_ctrl = as_matrix(ctrl.X, name="ctrl.X")
    ctrl_mean = col_mean(x_ctrl)
    if reference_mean is None:
        real_perts = sorted(set(true_labels) - {CONTROL})
        reference = np.mean([col_mean(as_matrix(true.X[true_labels == q], name="true.X")) for q in real_perts], axis=0)
    else:
        (reference,) = _vectors(reference_mean=reference_mean)
        check_same_shape(ctrl_mean, reference, what="reference_mean and the genes of ctrl", where=where)

    attrs: dict[str, Any] = {}
    if "edistance" in chosen or "mmd_rbf" in chosen:
        x_true_all = as_matrix(true.X, name="true.X")
        if sp.issparse(x_true_all) or sp.issparse(x_ctrl):
            x_real = sp.vstack([x_true_all, x_ctrl]).tocsr()
        else:
            x_real = np.vstack([x_true_all, x_ctrl])
        if pca is None:
            n_comps = max(1, min(50, n_genes, x_real.shape[0] - 1))
            pca = fit_pca(x_real, n_comps=n_comps, seed=0)
            attrs["pca"] = f"fitted inside evaluate on true + ctrl cells ({x_real.shape[0]} real cells), seed 0"
        else:
            attrs["pca"] = "given by the caller"
        attrs["pca_n_comps"] = int(pca.n_components_)
        attrs["edistance"] = "Euclidean, V-statistic (diagonal included), in the shared PCA"
        if "mmd_rbf" in chosen:
            attrs["mmd_gamma"] = rbf_median_gamma(x_real, pca=pca)
            attrs["mmd"] = "biased MMD^2, RBF kernel exp(-gamma ||a-b||^2), gamma by median heuristic on real cells"
    pca_set = f"pca{attrs.get('pca_n_comps', 0)}"

    rows: list[tuple[str, str, str, float, int]] = []
    pred_effects, true_effects = [], []
    de_set, overlap_set = f"top{n_top_de}_de", f"top{k_overlap}_de"
    for p in perts:
        x_pred = as_matrix(pred.X[pred_labels == p], name=f"pred.X[{p}]")
        true_mask = true_labels == p
        check_nonempty(true_mask, what=f"true cells of {p!r}", where=where)
        x_true = as_matrix(true.X[true_mask], name=f"true.X[{p}]")
        pm, tm = col_mean(x_pred), col_mean(x_true)
        pred_effects.append(pm - ctrl_mean)
        true_effects.append(tm - ctrl_mean)
        order = top_de_genes(x_true, x_ctrl, k=max(n_top_de, k_overlap))
        gene_sets = {"all": np.arange(n_genes), de_set: order[:n_top_de], overlap_set: order[:k_overlap]}

        def add(metric: str, gene_set: str, value: float, n: int) -> None:
            rows.append((p, metric, gene_set, float(value), int(n)))

        for name, func in (("r2_mean_sqpearson", r2_mean_sqpearson), ("r2_mean_cod", r2_mean_cod)):
            if name in chosen:
                for label, idx in gene_sets.items():
                    add(name, label, func(pm[idx], tm[idx]), idx.size)
        if "r2_var_sqpearson" in chosen:
            n_min = min(x_pred.shape[0], x_true.shape[0])
            if n_min < 2:
                warnings.warn(
                    f"evaluate: perturbation {p!r} has {x_pred.shape[0]} predicted and {x_true.shape[0]} true "
                    "cell(s); r2_var_sqpearson needs at least 2 of each (a variance over cells), so its rows "
                    "are omitted.",
                    RuntimeWarning,
                    stacklevel=2,
                )
            else:
                pv, tv = col_mean_var(x_pred)[1], col_mean_var(x_true)[1]
                for label in ("all", overlap_set):
                    idx = gene_sets[label]
                    add("r2_var_sqpearson", label, r2_var_sqpearson(pv[idx], tv[idx]), idx.size)
        if "pearson_delta" in chosen:
            for label in ("all", de_set):
                idx = gene_sets[label]
                add("pearson_delta", label, pearson_delta(pm[idx], tm[idx], ctrl_mean[idx]), idx.size)
        if "pearson_delta_pert" in chosen:
            for label in ("all", de_set):
                idx = gene_sets[label]
                add("pearson_delta_pert", label, pearson_delta_pert(pm[idx], tm[idx], reference[idx]), idx.size)
        if "mse_top_de" in chosen:
            add("mse_top_de", de_set, mse_top_de(pm, tm, gene_sets[de_set]), n_top_de)
        if "direction_agreement_k" in chosen:
            add("direction_agreement_k", de_set, direction_agreement_k(pm, tm, ctrl_mean, gene_sets[de_set]), n_top_de)
        if "l2_top_expressed" in chosen:
            value = l2_top_expressed(pm, tm, ctrl_mean, k=k_top_expressed)
            add("l2_top_expressed", f"top{k_top_expressed}_expressed", value, k_top_expressed)
        if "deg_overlap_k" in chosen:
            if x_pred.shape[0] < 2:
                warnings.warn(
                    f"evaluate: perturbation {p!r} has {x_pred.shape[0]} predicted cell; deg_overlap_k needs "
                    "at least 2 (it runs a t-test on predicted cells), so its row is omitted.",
                    RuntimeWarning,
                    stacklevel=2,
                )
            else:
                add("deg_overlap_k", overlap_set, deg_overlap_k(x_pred, x_true, x_ctrl, k=k_overlap), k_overlap)
        if "edistance" in chosen:
            add("edistance", pca_set, edistance(x_pred, x_true, pca=pca), n_genes)
        if "mmd_rbf" in chosen:
            add("mmd_rbf", pca_set, mmd_rbf(x_pred, x_true, pca=pca, gamma=attrs["mmd_gamma"]), n_genes)

    if "discrimination_rank" in chosen and len(perts) >= 2:
        ranks = discrimination_rank(np.vstack(pred_effects), np.vstack(true_effects))
        rows.extend((p, "discrimination_rank", "all", float(r), n_genes) for p, r in zip(perts, ranks))

    df = pd.DataFrame(rows, columns=["perturbation", "metric", "gene_set", "value", "n_genes"])
    df.attrs.update(attrs)
    return df
