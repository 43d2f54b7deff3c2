"""How realistic is a simulator? Real-versus-generated checks, always beside a real-versus-real floor.

Taught in ``02_simulation_statistical`` and ``03_simulation_gan``.
A simulator is judged by how hard it is to tell its cells from real ones.
The same checks are run on a second half of the real data, which gives the *floor*: the
best value any simulator can reach on data of this size, since two halves of one experiment
differ only by sampling noise.
On small data the floor can be far from the ideal (an AUROC of 0.5, an MMD of 0, correlations
of 1): gene-gene correlations of two real halves of 100 cells agree only moderately, so a
number without its floor cannot be read.
The floor also exposes flaws of the evaluation itself: a PCA fitted on the cells it compares
lets a classifier separate two real halves almost perfectly, which is why :func:`realism`
fits its PCA on reference cells that it does not compare.

Typical use: ``train, test = split_half(adata, seed=s)``; fit every simulator on ``train``;
``realism(test, {FLOOR: train, "copula": copula.sample(...), ...}, seed=s)``; repeat over seeds
and pass the concatenated rows to :func:`summarize_realism`.

All statistics are computed from raw counts (``layers[layer]``), normalized here in one way for
every input (log1p counts per 10,000, :func:`tutorial_kit.data.log1p_cp10k`), so a simulator's
own ``X`` is never trusted.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from tutorial_kit.arrays import dense_rows
from tutorial_kit.simulate._base import as_groupby, group_labels
from tutorial_kit.validate import check_counts, check_int, check_nonempty, check_obs_columns, check_same_genes

if TYPE_CHECKING:  # pragma: no cover
    import anndata
    import pandas as pd

__all__ = ["FLOOR", "METRICS", "gene_stats", "realism", "split_half", "summarize_realism"]

FLOOR = "real (split-half)"
"""The name of the real-versus-real row; :func:`summarize_realism` puts it first."""

METRICS = (
    "rf_auroc",
    "mmd_rbf",
    "mean_pearson",
    "var_pearson",
    "zero_frac_pearson",
    "corr_agreement",
)
"""The realism metrics that :func:`realism` reports, in display order."""

_MIN_CORR_CELLS = 3  # cells a group needs in both sets for its gene-gene correlations


# --------------------------------------------------------------------------- inputs


def _counts(adata: "anndata.AnnData", layer: str | None) -> Any:
    """The count matrix as float64 CSR."""
    import scipy.sparse as sp

    x = adata.X if layer is None else adata.layers[layer]
    return sp.csr_matrix(x, dtype=np.float64)


def _log_norm(counts: Any) -> Any:
    """log1p CP10k (float64 CSR), the same normalization for real and generated cells."""
    import scipy.sparse as sp

    from tutorial_kit.data.schema import log1p_cp10k

    return sp.csr_matrix(log1p_cp10k(counts), dtype=np.float64)


# --------------------------------------------------------------------------- split


def split_half(
    adata: "anndata.AnnData", *, groupby: str | Sequence[str] = ("cell_type", "condition"), seed: int = 0
) -> tuple["anndata.AnnData", "anndata.AnnData"]:
    """Split cells in two halves, stratified by group: the real-versus-real floor of every realism check.

    Within each group (the ``' | '``-joined values of ``groupby``) the cells are shuffled with
    ``numpy.random.default_rng(seed)`` (groups visited in sorted order) and the first
    ``floor(n / 2)`` go to the first half, the other ``ceil(n / 2)`` to the second.
    Both halves keep the original cell order and are copies.
    Taught in ``02_simulation_statistical`` and ``03_simulation_gan``.

    Args:
        adata: cells to split; every group needs at least 2 cells.
        groupby: obs column(s) whose combinations are split separately.
        seed: seed of the shuffle; the same seed gives the same halves.

    Returns:
        ``(first, second)``: two AnnData with no cell in common and all cells between them.

    Example:
        >>> import anndata as ad, numpy as np, pandas as pd
        >>> obs = pd.DataFrame({"cell_type": list("AAAABBB")}, index=[f"c{i}" for i in range(7)])
        >>> a, b = split_half(ad.AnnData(np.zeros((7, 2)), obs=obs), groupby="cell_type", seed=0)
        >>> a.obs["cell_type"].value_counts().sort_index().tolist(), b.n_obs
        ([2, 1], 4)
    """
    labels = group_labels(adata, groupby)
    check_nonempty(len(labels), what="cells to split", where="split_half")
    sizes = {g: int(np.sum(labels == g)) for g in set(labels)}
    tiny = sorted(g for g, n in sizes.items() if n < 2)
    if tiny:
        raise ValueError(
            f"split_half: group(s) {tiny} have a single cell; each group needs at least 2 cells to be split "
            "in two. Remove tiny groups first or split by fewer columns (groupby=...)."
        )
    first, second = _split_indices(labels, seed)
    return adata[first].copy(), adata[second].copy()


def _split_indices(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified halves as sorted index arrays (a group of one cell goes to the second half)."""
    rng = np.random.default_rng(seed)
    first, second = [], []
    for group in sorted(set(labels)):
        idx = np.flatnonzero(labels == group)
        perm = rng.permutation(idx)
        first.append(perm[: idx.size // 2])
        second.append(perm[idx.size // 2 :])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


# --------------------------------------------------------------------------- per-gene statistics


def gene_stats(adata: "anndata.AnnData", *, layer: str | None = "counts") -> "pd.DataFrame":
    """Per-gene mean and variance of log1p CP10k, and fraction of cells with zero counts.

    ``mean`` and ``var`` (sample variance, ``ddof=1``; 0 for a single cell) are computed on
    log1p counts per 10,000 recomputed from the counts; ``zero_frac`` is the fraction of cells
    whose raw count of the gene is 0. :func:`realism` correlates these across genes.
    Taught in ``02_simulation_statistical``.

    Args:
        adata: cells x genes with raw counts in ``layers[layer]`` (``adata.X`` if ``layer`` is None).
        layer: the counts layer.

    Returns:
        DataFrame indexed by gene with columns ``mean``, ``var``, ``zero_frac``.

    Example:
        >>> import anndata as ad, numpy as np
        >>> a = ad.AnnData(np.array([[0.0, 5.0], [2.0, 0.0]]))
        >>> gene_stats(a, layer=None)["zero_frac"].tolist()
        [0.5, 0.5]
    """
    check_counts(adata, layer=layer, where="gene_stats")
    check_nonempty(adata.n_obs, what="adata", where="gene_stats")
    counts = _counts(adata, layer)
    return _gene_stats(counts, _log_norm(counts), index=adata.var_names.astype(str))


def _gene_stats(counts: Any, lognorm: Any, *, index: Any) -> "pd.DataFrame":
    import pandas as pd

    n = lognorm.shape[0]
    mean = np.asarray(lognorm.mean(axis=0)).ravel()
    sq = np.asarray(lognorm.multiply(lognorm).mean(axis=0)).ravel()
    var = np.maximum(sq - mean**2, 0.0) * (n / (n - 1) if n > 1 else 0.0)
    zero_frac = 1.0 - np.asarray((counts != 0).sum(axis=0)).ravel() / n
    return pd.DataFrame({"mean": mean, "var": var, "zero_frac": zero_frac}, index=index)


# --------------------------------------------------------------------------- the checks


def _rf_auroc(
    z_ref: np.ndarray, z_gen: np.ndarray, *, n_folds: int, n_trees: int, seed: int, n_jobs: Any
) -> np.ndarray:
    """Held-out AUROC of a random forest real (0) vs generated (1), one value per stratified fold."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    x = np.vstack([z_ref, z_gen])
    y = np.r_[np.zeros(len(z_ref), dtype=int), np.ones(len(z_gen), dtype=int)]
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    scores = []
    for train, test in folds.split(x, y):
        forest = RandomForestClassifier(n_estimators=n_trees, random_state=seed, n_jobs=n_jobs)
        forest.fit(x[train], y[train])
        scores.append(roc_auc_score(y[test], forest.predict_proba(x[test])[:, 1]))
    return np.asarray(scores)


def _subsample(z: np.ndarray, max_cells: int, rng: np.random.Generator) -> np.ndarray:
    if len(z) <= max_cells:
        return z
    return z[np.sort(rng.choice(len(z), size=max_cells, replace=False))]


def _corr_upper(x: np.ndarray) -> np.ndarray:
    """Upper triangle (diagonal excluded) of the gene-gene Pearson matrix; nan where a gene is constant."""
    xc = x - x.mean(axis=0)
    norm = np.sqrt((xc**2).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(norm > 0, xc / norm, np.nan)
    corr = z.T @ z
    return corr[np.triu_indices(x.shape[1], k=1)]


def _corr_agreement(
    ref: Any, gen: Any, ref_labels: np.ndarray, gen_labels: np.ndarray, genes: np.ndarray
) -> tuple[float, dict[str, float]]:
    """Cell-weighted mean over groups of the Pearson between the two upper triangles (see :func:`realism`)."""
    per_group: dict[str, float] = {}
    weights: dict[str, int] = {}
    for group in sorted(set(gen_labels)):
        in_ref, in_gen = ref_labels == group, gen_labels == group
        if in_ref.sum() < _MIN_CORR_CELLS or in_gen.sum() < _MIN_CORR_CELLS:
            continue
        a = _corr_upper(dense_rows(ref, in_ref, columns=genes, dtype=None))
        b = _corr_upper(dense_rows(gen, in_gen, columns=genes, dtype=None))
        ok = np.isfinite(a) & np.isfinite(b)
        if ok.sum() < 3 or np.ptp(a[ok]) == 0 or np.ptp(b[ok]) == 0:
            continue
        per_group[group] = float(np.corrcoef(a[ok], b[ok])[0, 1])
        weights[group] = int(in_ref.sum())
    if not per_group:
        warnings.warn(
            "realism: no group has at least 3 cells with varying expression in both the reference and the "
            "generated cells, so corr_agreement is nan. Generate more cells per group.",
            RuntimeWarning,
            stacklevel=3,
        )
        return float("nan"), per_group
    w = np.array([weights[g] for g in per_group], dtype=float)
    r = np.array(list(per_group.values()))
    return float(np.sum(w * r) / w.sum()), per_group


def _check_generated(
    generated: Any, reference: "anndata.AnnData", keys: tuple[str, ...], layer: str | None, ref_groups: set[str]
) -> dict[str, "anndata.AnnData"]:
    if not isinstance(generated, Mapping) or not generated:
        raise ValueError(
            "generated must be a non-empty mapping from a simulator name to its AnnData, e.g. "
            f"{{{FLOOR!r}: other_half, 'copula': sim.sample(seed=0)}}."
        )
    out = {}
    for name, adata in generated.items():
        where = f"realism[{name!r}]"
        if not isinstance(name, str) or not name:
            raise ValueError(f"generated keys must be non-empty simulator names (str); got {name!r}.")
        if not hasattr(adata, "obs") or not hasattr(adata, "var_names"):
            raise ValueError(f"{where}: expected an AnnData of generated cells; got {type(adata).__name__}.")
        check_nonempty(adata.n_obs, what=f"the generated cells of {name!r}", where=where)
        check_obs_columns(adata, keys, where=where)
        check_same_genes(reference, adata, where=where, names=("reference", "generated"))
        check_counts(adata, layer=layer, where=where)
        unknown = sorted(set(group_labels(adata, keys)) - ref_groups)
        if unknown:
            raise ValueError(
                f"{where}: the generated cells contain group(s) {unknown} that the reference lacks "
                f"(reference groups: {sorted(ref_groups)}). Compare like with like: generate only groups the "
                "reference has, or check the spelling of the groupby values."
            )
        out[name] = adata
    return out


def realism(
    reference: "anndata.AnnData",
    generated: Mapping[str, "anndata.AnnData"],
    *,
    groupby: str | Sequence[str] = ("cell_type", "condition"),
    layer: str | None = "counts",
    n_comps: int = 50,
    n_folds: int = 5,
    n_trees: int = 200,
    n_corr_genes: int = 100,
    mmd_max_cells: int = 2000,
    n_jobs: int | None = None,
    progress: bool = False,
    seed: int = 0,
) -> "pd.DataFrame":
    """Score each set of generated cells against the same real reference cells, one row per set.

    Every statistic is computed from the counts in ``layers[layer]``, normalized identically for
    all inputs as log1p counts per 10,000 (:func:`tutorial_kit.data.log1p_cp10k`).

    - The PCA: the reference is split into two stratified halves (seeded by ``seed``, as in
      :func:`split_half`). ONE :func:`tutorial_kit.metrics.fit_pca` is fitted on the first half
      only, with ``min(n_comps, n_genes, n_pca_cells - 1)`` components; the second half of the
      reference and every generated set are projected into it and compared. No compared cell
      was used to fit the PCA: a PCA fitted on the very cells it then compares gives them up to
      3-4 times the variance of any other cells on the later components (it fits their noise),
      so a forest separates two halves of the same real data (AUROC about 0.95 on the Kang CI
      data with 50 components, instead of about 0.5).
    - ``rf_auroc``, ``rf_auroc_sd``: a ``RandomForestClassifier(n_estimators=n_trees,
      random_state=seed)`` learns real (the compared reference half) versus generated cells in
      the PCA space; its held-out ROC AUC is averaged over ``StratifiedKFold(n_folds,
      shuffle=True, random_state=seed)`` folds (``_sd``: sample standard deviation over folds).
      0.5 means the forest cannot tell the sets apart, 1 that it always can (a classifier
      two-sample test, Lopez-Paz & Oquab 2017). Values slightly below 0.5 are noise.
    - ``mmd_rbf``: biased squared MMD with the RBF kernel ``exp(-gamma ||a - b||^2)``
      (:func:`tutorial_kit.metrics.mmd_rbf`) between the compared reference half and the
      generated cells, in the same PCA. Bandwidth rule: ONE gamma for all rows, the median
      heuristic ``1 / median ||x_i - x_j||^2`` over the compared reference cells in PCA
      (:func:`tutorial_kit.metrics.rbf_median_gamma`, seed ``seed``); stored in
      ``df.attrs['mmd_gamma']``. Sets above ``mmd_max_cells`` cells are subsampled (seeded)
      for the MMD only.
    - ``mean_pearson``, ``var_pearson``: Pearson correlation across genes of the per-gene mean
      and variance of log1p CP10k, generated vs all reference cells (:func:`gene_stats`).
      ``zero_frac_pearson``: the same for the per-gene fraction of cells with a zero count.
    - ``corr_agreement``: the ``k = min(n_corr_genes, n_genes)`` genes with the highest mean
      log1p CP10k in the reference are fixed. For each group ``g`` of the generated cells with at
      least 3 cells in both sets, the k x k Pearson matrices of log1p CP10k are computed on the
      reference cells of ``g`` and on the generated cells of ``g``; ``r_g`` is the Pearson
      correlation of their upper triangles (diagonal excluded; pairs involving a gene that is
      constant within ``g`` in either set are dropped). ``corr_agreement = sum_g w_g r_g / sum_g
      w_g`` with ``w_g`` the number of reference cells in ``g``. Within-group, because pooled
      correlations are dominated by differences between cell types, which any simulator with the
      right group means reproduces without modelling gene-gene dependence. Uses all reference
      cells. A group with fewer than 3 usable pairs (or constant triangles) is skipped; with no
      group left the value is nan and a ``RuntimeWarning`` is raised, as for the Pearson columns
      when a per-gene vector is constant (e.g. all-zero generated cells). Per-group values are in
      ``df.attrs['corr_agreement_per_group']``.

    Groups the reference has but a generated set lacks still count in the AUROC and MMD (a
    simulator that misses a population is unrealistic); groups a generated set has but the
    reference lacks are an error.
    Taught in ``02_simulation_statistical`` and ``03_simulation_gan``.

    Args:
        reference: real cells (typically the held-out half of :func:`split_half`).
        generated: simulator name -> its cells, same genes in the same order; include the other
            real half under the name :data:`FLOOR` as the floor.
        groupby: obs column(s) defining the groups (for the checks and ``corr_agreement``).
        layer: layer with raw counts (``None``: ``X`` holds counts).
        n_comps: PCA components (at most; see above).
        n_folds: cross-validation folds of the forest (>= 2).
        n_trees: trees of the forest.
        n_corr_genes: top expressed reference genes for ``corr_agreement``.
        mmd_max_cells: cells per set above which the MMD uses a seeded subsample.
        n_jobs: parallel jobs of the forest (scikit-learn convention; ``None`` = 1). Results do
            not depend on it.
        progress: show a progress bar over the generated sets.
        seed: seeds the PCA solver, the MMD bandwidth subsample, the folds, the forest and
            the split of the reference; the same inputs and seed give identical numbers.

    Returns:
        DataFrame with one row per generated set and columns ``simulator, seed, n_cells,
        rf_auroc, rf_auroc_sd, mmd_rbf, mean_pearson, var_pearson, zero_frac_pearson,
        corr_agreement``; ``df.attrs`` records the PCA, the MMD gamma and how each column was made.

    Example:
        >>> import anndata as ad, numpy as np, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> def cells(lam, tag, n=40):
        ...     obs = pd.DataFrame({"cell_type": ["T"] * n, "condition": ["control"] * n},
        ...                        index=[f"{tag}{i}" for i in range(n)])
        ...     a = ad.AnnData(rng.poisson(lam, size=(n, 12)).astype(float), obs=obs)
        ...     a.layers["counts"] = a.X.copy()
        ...     return a
        >>> shifted = np.r_[np.full(6, 9.0), np.full(6, 1.0)]
        >>> df = realism(cells(3.0, "r"), {"same": cells(3.0, "s"), "shifted": cells(shifted, "x")},
        ...              n_comps=5, n_folds=3, n_trees=20)
        >>> df[["simulator", "n_cells"]].values.tolist()
        [['same', 40], ['shifted', 40]]
        >>> bool(df.loc[1, "rf_auroc"] > df.loc[0, "rf_auroc"]), bool(df.loc[1, "mmd_rbf"] > df.loc[0, "mmd_rbf"])
        (True, True)
    """
    import pandas as pd
    from tqdm import tqdm

    from tutorial_kit.metrics import fit_pca, mmd_rbf, pearson, rbf_median_gamma

    where = "realism"
    keys = as_groupby(groupby)
    if not hasattr(reference, "obs") or not hasattr(reference, "var_names"):
        raise ValueError(f"{where}: reference must be an AnnData of real cells; got {type(reference).__name__}.")
    check_nonempty(reference.n_obs, what="the reference (real) cells", where=where)
    check_obs_columns(reference, keys, where=f"{where}[reference]")
    check_counts(reference, layer=layer, where=f"{where}[reference]")
    n_folds = check_int(n_folds, "n_folds", minimum=2)
    n_trees = check_int(n_trees, "n_trees")
    n_comps = check_int(n_comps, "n_comps")
    n_corr_genes = check_int(n_corr_genes, "n_corr_genes", minimum=2)
    mmd_max_cells = check_int(mmd_max_cells, "mmd_max_cells", minimum=2)
    if reference.n_vars < 2:
        raise ValueError(f"{where}: at least 2 genes are needed; the reference has {reference.n_vars}.")
    ref_labels = group_labels(reference, keys)
    sets = _check_generated(generated, reference, keys, layer, set(ref_labels))
    pca_idx, cmp_idx = _split_indices(ref_labels, seed)
    sizes = {"reference (compared half)": cmp_idx.size, **{name: a.n_obs for name, a in sets.items()}}
    too_small = {name: n for name, n in sizes.items() if n < n_folds}
    if too_small or pca_idx.size < 2:
        raise ValueError(
            f"{where}: too few cells: the reference is split in two (one half fits the PCA, one half is compared), "
            f"the PCA needs at least 2 cells (has {pca_idx.size}) and {n_folds}-fold cross-validation needs at "
            f"least {n_folds} cells per compared set (too few in {too_small}). Use more cells or lower n_folds."
        )

    ref_counts = _counts(reference, layer)
    ref_x = _log_norm(ref_counts)
    n_comps = min(n_comps, reference.n_vars, pca_idx.size - 1)
    pca = fit_pca(ref_x[pca_idx], n_comps=n_comps, seed=seed)
    z_ref = np.asarray(pca.transform(ref_x[cmp_idx]), dtype=np.float64)
    gamma = rbf_median_gamma(z_ref, seed=seed)
    genes = reference.var_names.astype(str)
    ref_stats = _gene_stats(ref_counts, ref_x, index=genes)
    k = min(n_corr_genes, reference.n_vars)
    top = np.sort(np.argsort(-ref_stats["mean"].to_numpy(), kind="stable")[:k])

    rng = np.random.default_rng(seed)
    z_ref_mmd = _subsample(z_ref, mmd_max_cells, rng)
    rows, per_group = [], {}
    for name, adata in tqdm(sets.items(), desc="realism", unit="set", disable=not progress):
        counts = _counts(adata, layer)
        x = _log_norm(counts)
        z = np.asarray(pca.transform(x), dtype=np.float64)
        aurocs = _rf_auroc(z_ref, z, n_folds=n_folds, n_trees=n_trees, seed=seed, n_jobs=n_jobs)
        mmd = mmd_rbf(z_ref_mmd, _subsample(z, mmd_max_cells, rng), gamma=gamma)
        stats = _gene_stats(counts, x, index=genes)
        agreement = {
            col: pearson(stats[col].to_numpy(), ref_stats[col].to_numpy(), what=f"realism[{name!r}] {col}")
            for col in ("mean", "var", "zero_frac")
        }
        corr, per_group[name] = _corr_agreement(ref_x, x, ref_labels, group_labels(adata, keys), top)
        rows.append(
            {
                "simulator": name,
                "seed": seed,
                "n_cells": int(adata.n_obs),
                "rf_auroc": float(aurocs.mean()),
                "rf_auroc_sd": float(aurocs.std(ddof=1)),
                "mmd_rbf": float(mmd),
                "mean_pearson": agreement["mean"],
                "var_pearson": agreement["var"],
                "zero_frac_pearson": agreement["zero_frac"],
                "corr_agreement": corr,
            }
        )
    df = pd.DataFrame(rows)
    df.attrs.update(
        {
            "n_reference_cells": int(reference.n_obs),
            "n_pca_cells": int(pca_idx.size),
            "n_compared_reference_cells": int(cmp_idx.size),
            "normalization": f"log1p counts per 10,000, recomputed from layers[{layer!r}] for every input",
            "pca": (
                f"fit_pca on {pca_idx.size} of the {reference.n_obs} reference cells (a stratified half, seed {seed}); "
                f"the other {cmp_idx.size} reference cells and all generated cells are projected and compared"
            ),
            "pca_n_comps": int(pca.n_components_),
            "rf": f"RandomForestClassifier(n_estimators={n_trees}), {n_folds}-fold stratified CV, ROC AUC mean and sd",
            "mmd": "biased MMD^2, RBF kernel exp(-gamma ||a-b||^2) in the shared PCA",
            "mmd_gamma": float(gamma),
            "mmd_bandwidth": (
                "median heuristic 1/median squared distance over the compared reference cells in PCA, "
                "one gamma for all rows"
            ),
            "mmd_max_cells": mmd_max_cells,
            "corr_n_genes": int(k),
            "corr_agreement": (
                "per-group Pearson of gene-gene correlation upper triangles, mean weighted by reference cells"
            ),
            "corr_agreement_per_group": per_group,
        }
    )
    return df


# --------------------------------------------------------------------------- across seeds


def summarize_realism(
    results: "pd.DataFrame", *, by: str = "simulator", ci: float = 0.95, floor: str = FLOOR
) -> "pd.DataFrame":
    """Mean, standard deviation and t confidence interval of every realism metric across seeds.

    For each simulator and metric, with the ``n`` finite values over seeds:
    ``mean``, ``sd`` (``ddof=1``) and ``mean -/+ t_{(1+ci)/2, n-1} sd / sqrt(n)`` (Student t).
    With one seed ``sd`` and the interval are nan. The floor row comes first, the other
    simulators follow in order of first appearance. This is
    :func:`tutorial_kit.stats.summarize_seeds` over the metric columns.
    Taught in ``02_simulation_statistical`` and ``03_simulation_gan``.

    Args:
        results: concatenated outputs of :func:`realism` over seeds (columns ``by``, ``seed``
            and metric columns from ``tutorial_kit.simulate.evaluation.METRICS``).
        by: the column naming the simulator.
        ci: confidence level in (0, 1).
        floor: the name of the real-versus-real row, which must be present.

    Returns:
        Long DataFrame with columns ``simulator`` (named ``by``), ``metric``, ``n_seeds``,
        ``mean``, ``sd``, ``ci_low``, ``ci_high``; ``df.attrs['ci']`` holds the level.

    Example:
        >>> import pandas as pd
        >>> rows = pd.DataFrame({"simulator": [FLOOR, FLOOR, "toy", "toy"], "seed": [0, 1, 0, 1],
        ...                      "rf_auroc": [0.50, 0.52, 0.80, 0.84]})
        >>> s = summarize_realism(rows)
        >>> s[["simulator", "mean"]].round(2).values.tolist()
        [['real (split-half)', 0.51], ['toy', 0.82]]
    """
    import pandas as pd

    from tutorial_kit.stats import summarize_seeds

    where = "summarize_realism"
    if not isinstance(results, pd.DataFrame) or results.empty:
        raise ValueError(
            f"{where}: results must be a non-empty DataFrame, e.g. pd.concat of tk.simulate.realism(...) over seeds."
        )
    check = [c for c in (by, "seed") if c not in results.columns]
    if check:
        raise ValueError(f"{where}: results is missing column(s) {check}; pass rows of tk.simulate.realism(...).")
    metrics = [m for m in METRICS if m in results.columns]
    if not metrics:
        raise ValueError(f"{where}: results has none of the metric columns {list(METRICS)}.")
    if not (isinstance(ci, float) and 0.0 < ci < 1.0):
        raise ValueError(f"{where}: ci must be a level between 0 and 1, e.g. 0.95; got {ci!r}.")
    dup = results.duplicated([by, "seed"])
    if dup.any():
        raise ValueError(
            f"{where}: {int(dup.sum())} duplicated ({by}, seed) row(s), e.g. "
            f"{tuple(results.loc[dup, [by, 'seed']].iloc[0])}; each simulator needs one row per seed."
        )
    names = list(dict.fromkeys(results[by].astype(str)))
    if floor not in names:
        raise ValueError(
            f"{where}: no floor row {floor!r} among {names}. Always report the real-versus-real split-half "
            "floor (see split_half), or name your floor row with floor=..."
        )
    order = [floor] + [n for n in names if n != floor]
    long = results.assign(**{by: results[by].astype(str)}).melt(
        id_vars=[by, "seed"], value_vars=metrics, var_name="metric", value_name="value")
    rank = {(name, metric): i for i, (name, metric) in enumerate((n, m) for n in order for m in metrics)}
    long = long.iloc[np.argsort([rank[key] for key in zip(long[by], long["metric"])], kind="stable")]
    out = summarize_seeds(long, by=[by, "metric"], confidence=ci)
    out = out[[by, "metric", "n_seeds", "mean", "sd", "ci_low", "ci_high"]]
    out.attrs = {"ci": ci, "floor": floor, "interval": "Student t over seeds: mean -/+ t * sd / sqrt(n)"}
    return out
