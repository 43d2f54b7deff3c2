"""Quality control of a Perturb-seq experiment: guides, MOI, on-target effects, escapers, strength.

Taught in notebook 01 (Perturb-seq QC). One function per step of the QC, in teaching order:

1. :func:`guide_thresholds` and :func:`call_guides`: which guides does each cell carry?
   A per-guide two-component Gaussian mixture on ``log10(UMI + 1)`` (background vs signal),
   or a fixed UMI threshold.
2. :func:`estimate_moi`: the multiplicity of infection (MOI) under a Poisson model, and the
   expected versus observed number of guides per cell.
3. :func:`guide_table_summary`: the same questions for a long guide table (one row per cell and
   guide, as written by scMAGeCK or Cell Ranger), with reads and UMIs.
4. :func:`assign_guides`: a new AnnData whose ``obs['perturbation']`` comes from the calls;
   cells without a guide and multiplets are labelled, never dropped silently.
5. :func:`target_expression`: is the targeted gene itself down (CRISPRi/KO) or up (CRISPRa)?
6. :func:`mixscape`: a thin wrapper over pertpy's Mixscape, which separates perturbed cells
   from cells that escaped the perturbation (``NP``).
7. :func:`perturbation_strength`: the E-distance of each perturbation to control in one shared
   PCA, with a permutation test and Benjamini-Hochberg q-values.

:func:`tutorial_kit.simulate.simulate_screen` makes a small Perturb-seq-like dataset with a known
answer (planted knockdowns, planted escapers, a guide that does nothing), for tests and for the notebook.

Conventions: inputs are never modified (new objects are returned); options are keyword-only;
every random step takes an explicit ``seed``; bad input raises a ``ValueError`` that says how to
fix it. Only numpy is imported at module level.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, Mapping, NamedTuple

import numpy as np

from tutorial_kit.validate import check_int, check_nonempty, check_obs_columns, check_perturbations

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from anndata import AnnData

__all__ = [
    "CALLS",
    "MoiEstimate",
    "assign_guides",
    "call_top_guide",
    "call_guides",
    "estimate_moi",
    "guide_table_summary",
    "guide_thresholds",
    "mixscape",
    "perturbation_strength",
    "target_expression",
]

CALLS = ("none", "single", "multiplet")
"""The three guide calls of a cell: no guide, exactly one guide, several guides."""

UNASSIGNED = "unassigned"
"""``obs['perturbation']`` of cells without a guide call (never 'control': they are not controls)."""

MULTIPLET = "multiplet"
"""``obs['perturbation']`` of cells with several guides when multiplets are labelled."""


# --------------------------------------------------------------------------- helpers


def _bh(pvalues: Any) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (q-values); NaN stays NaN."""
    p = np.asarray(pvalues, dtype=np.float64)
    q = np.full_like(p, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    if ok.size:
        order = ok[np.argsort(p[ok], kind="mergesort")]
        ranked = p[order] * ok.size / np.arange(1, ok.size + 1)
        q[order] = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    return q


def _guide_matrix(guide_counts: Any) -> "pd.DataFrame":
    """Check a cells x guides table of UMI counts and return it as an integer DataFrame."""
    import pandas as pd

    if not isinstance(guide_counts, pd.DataFrame):
        raise ValueError(
            f"guide_counts must be a pandas DataFrame (cells x guides) of UMI counts; got {type(guide_counts).__name__}. "
            "For a loaded dataset use adata.obsm['guide_counts'] (tk.data.load_parse_guides())."
        )
    if guide_counts.shape[0] == 0 or guide_counts.shape[1] == 0:
        raise ValueError(f"guide_counts is empty (shape {guide_counts.shape}); it needs cells in rows and guides in columns.")
    if not guide_counts.columns.is_unique:
        raise ValueError("guide_counts has repeated guide names; each column must be one guide.")
    values = guide_counts.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(values)) or values.min() < 0 or not np.allclose(values, np.round(values)):
        raise ValueError(
            "guide_counts must hold non-negative integer UMI counts (no NaN, no normalized values); "
            "use the raw guide UMI matrix."
        )
    return pd.DataFrame(np.round(values).astype(np.int64), index=guide_counts.index.astype(str),
                        columns=guide_counts.columns.astype(str))


def _matrix(adata: "AnnData", layer: str | None) -> Any:
    if layer is None:
        return adata.X
    if layer not in adata.layers:
        raise ValueError(
            f"adata.layers has no {layer!r} layer (layers: {list(adata.layers.keys())}); "
            "pass layer=None to use adata.X."
        )
    return adata.layers[layer]


def _dense_rows(x: Any, rows: np.ndarray) -> np.ndarray:
    sub = x[rows]
    return np.asarray(sub.toarray() if hasattr(sub, "toarray") else sub, dtype=np.float64)


# --------------------------------------------------------------------------- guide calling


def guide_thresholds(
    guide_counts: "pd.DataFrame",
    *,
    method: Literal["mixture", "threshold"] = "mixture",
    min_umis: int = 5,
    seed: int = 0,
) -> "pd.DataFrame":
    """One UMI threshold per guide: a cell carries the guide when its UMI count is at least the threshold.

    ``method='mixture'`` fits, for each guide separately, a two-component Gaussian mixture
    (``sklearn.mixture.GaussianMixture(2, random_state=seed)``) to ``log10(UMI + 1)`` of all
    cells, zeros included: a background component (ambient guide reads, zeros) and a signal
    component (cells that carry the guide). The threshold is the smallest observed UMI count
    that the mixture assigns to the signal component (posterior > 0.5), never below
    ``min_umis``. When a guide has too few distinct values for a mixture (fewer than 3), its
    threshold is ``min_umis`` and ``method`` says ``'fallback'``.
    ``method='threshold'`` uses ``min_umis`` for every guide (the simplest rule).
    Per-guide thresholds matter because guides differ in how well they are captured.
    Taught in notebook 01 (Perturb-seq QC).

    Args:
        guide_counts: cells x guides DataFrame of guide UMI counts (raw integers).
        method: ``'mixture'`` (per-guide Gaussian mixture) or ``'threshold'`` (``min_umis``).
        min_umis: the smallest threshold allowed (and the fixed threshold of ``'threshold'``).
        seed: random state of the mixture fit.

    Returns:
        One row per guide: ``threshold`` (UMIs), ``n_cells`` (cells at or above it),
        ``background_umis`` and ``signal_umis`` (the two component means back on the UMI scale,
        NaN without a mixture) and ``method`` (``'mixture'``, ``'threshold'`` or ``'fallback'``).

    Example:
        >>> import pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> carries = rng.random(400) < 0.3
        >>> umis = np.where(carries, rng.poisson(40, 400), rng.poisson(0.3, 400))
        >>> t = guide_thresholds(pd.DataFrame({"g1": umis}), min_umis=3)
        >>> int(t.loc["g1", "threshold"]) >= 3, int(t.loc["g1", "n_cells"]) == int(carries.sum())
        (True, True)
    """
    import pandas as pd
    from sklearn.mixture import GaussianMixture

    counts = _guide_matrix(guide_counts)
    min_umis = check_int(min_umis, "min_umis")
    if method not in ("mixture", "threshold"):
        raise ValueError(f"method must be 'mixture' or 'threshold'; got {method!r}.")
    rows = []
    for guide in counts.columns:
        umis = counts[guide].to_numpy()
        row = {"guide": guide, "threshold": min_umis, "background_umis": np.nan, "signal_umis": np.nan, "method": method}
        values = np.unique(umis)
        if method == "mixture" and values.size < 3:
            row["method"] = "fallback"
        elif method == "mixture":
            x = np.log10(umis + 1.0).reshape(-1, 1)
            gmm = GaussianMixture(n_components=2, random_state=seed).fit(x)
            means = gmm.means_.ravel()
            signal = int(np.argmax(means))
            post = gmm.predict_proba(np.log10(values + 1.0).reshape(-1, 1))[:, signal]
            called = values[(post > 0.5) & (values > 0)]
            row["threshold"] = int(max(min_umis, called.min())) if called.size else min_umis
            row["background_umis"] = float(10 ** means.min() - 1)
            row["signal_umis"] = float(10 ** means.max() - 1)
        row["n_cells"] = int(np.sum(umis >= row["threshold"]))
        rows.append(row)
    table = pd.DataFrame(rows).set_index("guide")
    return table[["threshold", "n_cells", "background_umis", "signal_umis", "method"]]


def call_guides(
    guide_counts: "pd.DataFrame",
    *,
    thresholds: "pd.DataFrame | pd.Series | Mapping[str, int] | int | None" = None,
    method: Literal["mixture", "threshold"] = "mixture",
    min_umis: int = 5,
    seed: int = 0,
) -> "pd.DataFrame":
    """Call the guides of every cell: ``none``, ``single`` or ``multiplet``.

    A cell carries a guide when its UMI count reaches that guide's threshold (from
    :func:`guide_thresholds` unless ``thresholds`` is given). Multiplets matter: a cell with two
    guides is either a true double infection or two cells captured together (a doublet), and
    either way its expression cannot be attributed to one perturbation.
    Taught in notebook 01 (Perturb-seq QC).

    Args:
        guide_counts: cells x guides DataFrame of guide UMI counts (raw integers).
        thresholds: per-guide thresholds (the output of :func:`guide_thresholds`, a Series or
            dict guide -> UMIs, or one integer for all guides). ``None`` computes them with
            ``method``, ``min_umis`` and ``seed``.
        method: passed to :func:`guide_thresholds` when ``thresholds`` is None.
        min_umis: passed to :func:`guide_thresholds` when ``thresholds`` is None.
        seed: passed to :func:`guide_thresholds` when ``thresholds`` is None.

    Returns:
        One row per cell (same index as ``guide_counts``): ``n_guides``, ``guides`` (called
        guides joined by ``';'``, ``''`` for none), ``guide_umis`` (UMIs of the called guides),
        ``call`` (``'none'``, ``'single'`` or ``'multiplet'``). The thresholds used are in
        ``.attrs['thresholds']`` (a dict guide -> UMIs).

    Example:
        >>> import pandas as pd
        >>> counts = pd.DataFrame({"A": [0, 12, 9, 1], "B": [0, 0, 15, 8]}, index=["c1", "c2", "c3", "c4"])
        >>> call_guides(counts, thresholds=5)[["n_guides", "guides", "call"]]
            n_guides guides       call
        c1         0              none
        c2         1      A     single
        c3         2    A;B  multiplet
        c4         1      B     single
    """
    import pandas as pd

    counts = _guide_matrix(guide_counts)
    if thresholds is None:
        thresholds = guide_thresholds(counts, method=method, min_umis=min_umis, seed=seed)
    if isinstance(thresholds, pd.DataFrame):
        if "threshold" not in thresholds.columns:
            raise ValueError("thresholds DataFrame needs a 'threshold' column (the output of tk.qc.guide_thresholds).")
        thresholds = thresholds["threshold"]
    if isinstance(thresholds, (int, np.integer)) and not isinstance(thresholds, bool):
        per_guide = pd.Series(int(thresholds), index=counts.columns)
    else:
        per_guide = pd.Series(dict(thresholds) if isinstance(thresholds, Mapping) else thresholds)
        per_guide.index = per_guide.index.astype(str)
        missing = [g for g in counts.columns if g not in per_guide.index]
        if missing:
            raise ValueError(
                f"no threshold for guide(s) {missing[:10]}; give one per column of guide_counts "
                "(e.g. thresholds=tk.qc.guide_thresholds(guide_counts)) or a single integer."
            )
        per_guide = per_guide.loc[list(counts.columns)]
    limits = per_guide.to_numpy(dtype=np.float64)
    if np.any(~np.isfinite(limits)) or np.any(limits < 1):
        raise ValueError(f"thresholds must be finite UMI counts >= 1; got {per_guide.to_dict()}.")
    hits = counts.to_numpy() >= limits[None, :]
    names = np.asarray(counts.columns)
    n_guides = hits.sum(axis=1)
    out = pd.DataFrame(
        {
            "n_guides": n_guides.astype(np.int64),
            "guides": [";".join(names[row]) for row in hits],
            "guide_umis": (counts.to_numpy() * hits).sum(axis=1).astype(np.int64),
            "call": np.select([n_guides == 0, n_guides == 1], ["none", "single"], MULTIPLET),
        },
        index=counts.index,
    )
    out.attrs["thresholds"] = {str(k): int(v) for k, v in per_guide.items()}
    return out


def call_top_guide(
    guide_counts: "pd.DataFrame",
    *,
    min_umis: int = 5,
    min_fraction: float = 0.8,
) -> "pd.DataFrame":
    """Low-MOI guide calling: each cell gets its most abundant guide, when that guide is clear.

    In a screen designed for one guide per cell, a second guide with a few UMIs is usually
    ambient guide RNA, not a second infection. This rule (the "maximum" assignment of
    low-MOI screens) gives a cell its top guide when that guide has at least ``min_umis``
    UMIs and at least ``min_fraction`` of all the cell's guide UMIs. Cells whose top guide
    has fewer than ``min_umis`` UMIs are ``'none'``; cells whose top guide is not dominant
    are ``'multiplet'``. Taught in notebook 01 (Perturb-seq QC, the Papalexi screen).

    Args:
        guide_counts: cells x guides DataFrame of guide UMI counts (raw integers).
        min_umis: the fewest UMIs of the top guide.
        min_fraction: the smallest share of the cell's guide UMIs that the top guide must have.

    Returns:
        The columns of :func:`call_guides` (``n_guides``, ``guides``, ``guide_umis``, ``call``),
        plus ``top_fraction`` (the top guide's share of the cell's guide UMIs), so the result
        goes straight into :func:`assign_guides`. ``n_guides`` is 1 for a called cell and the
        number of guides with at least ``min_umis`` UMIs otherwise.

    Example:
        >>> import pandas as pd
        >>> counts = pd.DataFrame({"A": [0, 40, 30, 2], "B": [0, 6, 25, 1]}, index=["c1", "c2", "c3", "c4"])
        >>> call_top_guide(counts)[["guides", "call", "top_fraction"]].round(2)
           guides       call  top_fraction
        c1              none          0.00
        c2      A     single          0.87
        c3    A;B  multiplet          0.55
        c4              none          0.67
    """
    import pandas as pd

    counts = _guide_matrix(guide_counts)
    check_int(min_umis, "min_umis", minimum=1)
    if not 0.5 < float(min_fraction) <= 1:
        raise ValueError(f"min_fraction must be in (0.5, 1] so that one guide dominates; got {min_fraction!r}.")
    values = counts.to_numpy()
    names = np.asarray(counts.columns.astype(str))
    top = values.argmax(axis=1)
    top_umis = values[np.arange(len(values)), top]
    total = values.sum(axis=1)
    fraction = np.divide(top_umis, total, out=np.zeros(len(values)), where=total > 0)
    clear = (top_umis >= min_umis) & (top_umis >= min_fraction * total)
    above = values >= min_umis
    n_above = above.sum(axis=1)
    out = pd.DataFrame(
        {
            "n_guides": np.where(clear, 1, n_above).astype(np.int64),
            "guides": [names[t] if c else ";".join(names[row]) for t, c, row in zip(top, clear, above)],
            "guide_umis": np.where(clear, top_umis, (values * above).sum(axis=1)).astype(np.int64),
            "call": np.select([clear, top_umis < min_umis], ["single", "none"], MULTIPLET),
            "top_fraction": fraction,
        },
        index=counts.index,
    )
    return out


class MoiEstimate(NamedTuple):
    """Result of :func:`estimate_moi`."""

    moi: float
    """The Poisson rate: mean number of guides (integrations) per cell."""
    method: str
    """``'zero_fraction'`` or ``'zero_truncated'``."""
    observed_multiplets: float
    """Observed fraction of cells with >= 2 guides among cells with >= 1 guide."""
    expected_multiplets: float
    """The same fraction expected under Poisson(``moi``)."""
    table: "pd.DataFrame"
    """Per number of guides: observed and expected cells (and fractions) of the modelled cells."""


def estimate_moi(
    n_guides: Any, *, method: Literal["zero_fraction", "zero_truncated"] = "zero_fraction"
) -> MoiEstimate:
    """Multiplicity of infection (MOI) under a Poisson model of guides per cell.

    Lentiviral integrations per cell are approximately Poisson with rate ``MOI``.

    - ``'zero_fraction'``: ``MOI = -ln(fraction of cells without a guide)``. Valid when every
      cell was sequenced whatever its guides, and every guide is detected. Guide dropout
      (a guide present but not captured) inflates the zeros and biases the MOI up.
    - ``'zero_truncated'``: fits a zero-truncated Poisson to cells with >= 1 guide (the mean
      ``MOI / (1 - exp(-MOI))`` matches the observed mean). Use it when cells without a guide
      were removed by antibiotic selection or are missing from the table (a guide table
      lists only cells with guides), and when zeros are mostly dropout.

    The two estimates disagree when selection or dropout is at work: that disagreement is a
    QC finding. Distinct guides per cell undercount integrations when the library is small
    (two integrations of the same guide look like one).
    Taught in notebook 01 (Perturb-seq QC).

    Args:
        n_guides: number of guides called per cell (e.g. ``call_guides(...)['n_guides']``).
        method: ``'zero_fraction'`` or ``'zero_truncated'`` (see above).

    Returns:
        A :class:`MoiEstimate`: ``moi``, ``method``, observed and expected multiplet fractions
        among guide-positive cells, and ``table`` with one row per number of guides
        (``n_guides``, ``observed_cells``, ``expected_cells``, ``observed_fraction``,
        ``expected_fraction``; for ``'zero_truncated'`` the row of 0 guides has no expectation).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> k = rng.poisson(1.0, size=20000)  # guides per cell at MOI 1
        >>> round(estimate_moi(k).moi, 1), round(estimate_moi(k, method="zero_truncated").moi, 1)
        (1.0, 1.0)
    """
    import pandas as pd
    from scipy import optimize, stats

    k = np.asarray(n_guides, dtype=np.float64).ravel()
    if k.size == 0:
        raise ValueError("n_guides is empty; pass the number of guides of every cell.")
    if not np.all(np.isfinite(k)) or k.min() < 0 or not np.allclose(k, np.round(k)):
        raise ValueError("n_guides must hold non-negative integers (guides per cell), e.g. calls['n_guides'].")
    k = np.round(k).astype(np.int64)
    if method not in ("zero_fraction", "zero_truncated"):
        raise ValueError(f"method must be 'zero_fraction' or 'zero_truncated'; got {method!r}.")
    positive = k[k > 0]
    check_nonempty(positive.size, what="cells with at least one guide (no guide was detected at all)")
    if method == "zero_fraction":
        zero = float(np.mean(k == 0))
        if zero == 0.0:
            raise ValueError(
                "every cell has at least one guide, so the zero fraction cannot estimate the MOI; "
                "use method='zero_truncated' (cells without guides were removed or never listed)."
            )
        moi = -np.log(zero)
    else:
        mean_pos = float(positive.mean())
        if mean_pos <= 1.0:
            moi = 0.0
        else:
            moi = float(optimize.brentq(lambda lam: lam / -np.expm1(-lam) - mean_pos, 1e-9, mean_pos + 50.0))
    ks = np.arange(0, int(k.max()) + 1)
    observed = np.bincount(k, minlength=ks.size).astype(np.float64)
    pmf = stats.poisson.pmf(ks, moi) if moi > 0 else (ks == 0).astype(np.float64)
    if method == "zero_fraction":
        n_model = float(k.size)
        expected_frac = pmf
        observed_frac = observed / n_model
    else:
        n_model = float(positive.size)
        tail = 1.0 - pmf[0]
        expected_frac = np.where(ks == 0, np.nan, pmf / tail if tail > 0 else (ks == 1).astype(np.float64))
        observed_frac = np.where(ks == 0, np.nan, observed / n_model)
    table = pd.DataFrame(
        {
            "n_guides": ks,
            "observed_cells": observed.astype(np.int64),
            "expected_cells": expected_frac * n_model,
            "observed_fraction": observed_frac,
            "expected_fraction": expected_frac,
        }
    )
    p0 = float(np.exp(-moi))
    p1 = float(moi * np.exp(-moi))
    expected_mult = (1.0 - p0 - p1) / (1.0 - p0) if moi > 0 else 0.0
    observed_mult = float(np.mean(positive >= 2))
    return MoiEstimate(float(moi), method, observed_mult, float(expected_mult), table)


def guide_table_summary(
    table: "pd.DataFrame",
    *,
    cell_key: str = "cell",
    guide_key: str = "barcode",
    target_key: str = "gene",
    min_umis: int = 1,
) -> "pd.DataFrame":
    """Per-cell summary of a long guide table (one row per cell and guide, reads and UMIs).

    Guide-capture pipelines (scMAGeCK's ``barcode_rec.txt``, Cell Ranger's feature calls) write
    every guide seen in a cell. Rows with fewer than ``min_umis`` UMIs are treated as
    background; a cell whose rows are all background stays in the summary with call ``'none'``.
    ``reads_per_umi`` is the sequencing depth of the guide library: near 1, most molecules
    were seen once (low saturation, and single-UMI rows are unreliable).
    Taught in notebook 01 (Perturb-seq QC).

    Args:
        table: long table with columns ``cell_key``, ``guide_key``, ``target_key``,
            ``read_count`` and ``umi_count`` (``tk.data.load_scmageck_guides()``).
        cell_key: column of cell barcodes.
        guide_key: column of guide identifiers.
        target_key: column of target genes.
        min_umis: rows with fewer UMIs are background and are not counted as guides.

    Returns:
        One row per cell: ``n_guides``, ``n_targets`` (distinct target genes), ``guides`` and
        ``targets`` (joined by ``';'``), ``read_count``, ``umi_count`` (of the kept rows),
        ``reads_per_umi`` and ``call`` (``'none'``, ``'single'``, ``'multiplet'``).

    Example:
        >>> import pandas as pd
        >>> t = pd.DataFrame({"cell": ["c1", "c1", "c2"], "barcode": ["g1", "g2", "g1"], "gene": ["A", "B", "A"],
        ...                   "read_count": [10, 2, 6], "umi_count": [5, 1, 3]})
        >>> guide_table_summary(t, min_umis=2)[["n_guides", "guides", "umi_count", "call"]]  # doctest: +NORMALIZE_WHITESPACE
              n_guides guides  umi_count    call
        cell
        c1           1     g1          5  single
        c2           1     g1          3  single
    """
    import pandas as pd

    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"table must be a pandas DataFrame; got {type(table).__name__} (use tk.data.load_scmageck_guides()).")
    needed = [cell_key, guide_key, target_key, "read_count", "umi_count"]
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValueError(
            f"the guide table is missing column(s) {missing}; it has {list(table.columns)}. "
            "Pass the names of your columns, e.g. guide_key='sgrna', target_key='gene'."
        )
    check_nonempty(len(table), what="the guide table (it has no rows)")
    min_umis = check_int(min_umis, "min_umis")
    reads = table["read_count"].to_numpy(dtype=np.float64)
    umis = table["umi_count"].to_numpy(dtype=np.float64)
    if np.any(~np.isfinite(reads)) or np.any(~np.isfinite(umis)) or reads.min() < 0 or umis.min() < 0:
        raise ValueError("read_count and umi_count must be finite non-negative counts.")
    keep = table["umi_count"].to_numpy() >= min_umis
    kept = table.loc[keep]
    cells = pd.Index(pd.unique(table[cell_key].astype(str)), name=cell_key)
    grouped = kept.assign(**{cell_key: kept[cell_key].astype(str)}).groupby(cell_key, sort=False)
    out = pd.DataFrame(index=cells)
    out["n_guides"] = grouped[guide_key].nunique().reindex(cells, fill_value=0).astype(np.int64)
    out["n_targets"] = grouped[target_key].nunique().reindex(cells, fill_value=0).astype(np.int64)
    out["guides"] = grouped[guide_key].agg(lambda s: ";".join(sorted(map(str, s.unique())))).reindex(cells, fill_value="")
    out["targets"] = grouped[target_key].agg(lambda s: ";".join(sorted(map(str, s.unique())))).reindex(cells, fill_value="")
    out["read_count"] = grouped["read_count"].sum().reindex(cells, fill_value=0).astype(np.int64)
    out["umi_count"] = grouped["umi_count"].sum().reindex(cells, fill_value=0).astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["reads_per_umi"] = np.where(out["umi_count"] > 0, out["read_count"] / out["umi_count"].replace(0, 1), np.nan)
    out["call"] = np.select([out["n_guides"] == 0, out["n_guides"] == 1], ["none", "single"], MULTIPLET)
    return out


def assign_guides(
    adata: "AnnData",
    calls: "pd.DataFrame",
    *,
    guide_targets: "Mapping[str, str] | pd.Series | None" = None,
    multiplets: Literal["label", "combine"] = "label",
) -> "AnnData":
    """A new AnnData whose ``obs`` says which guide and perturbation each cell carries.

    Cells with one guide get that guide and its target (``guide_targets[guide]``, or the guide
    name itself). Non-targeting guides become ``'control'`` through
    :func:`tutorial_kit.data.normalize_perturbation`. Cells without a guide get
    ``'unassigned'``; multiplets get ``'multiplet'`` (``multiplets='label'``, for low-MOI screens,
    where they are mostly doublets) or the combination of their targets, ``'A+B'``
    (``multiplets='combine'``, for designed combinatorial screens). No cell is dropped: filter
    explicitly afterwards, e.g. ``adata[adata.obs['guide_call'] == 'single']``.
    Taught in notebook 01 (Perturb-seq QC).

    Args:
        adata: cells x genes AnnData; its ``obs_names`` must all appear in ``calls``.
        calls: the output of :func:`call_guides` (columns ``n_guides``, ``guides``, ``call``).
        guide_targets: guide -> target gene; guides not listed are their own target.
        multiplets: ``'label'`` or ``'combine'`` (see above).

    Returns:
        A copy of ``adata`` with ``obs`` columns ``guide`` (the single guide, ``'multiplet'`` or
        ``'unassigned'``), ``guides``, ``n_guides``, ``guide_call`` and ``perturbation``.

    Example:
        >>> import anndata as ad, pandas as pd
        >>> a = ad.AnnData(np.zeros((3, 2)), obs=pd.DataFrame(index=["c1", "c2", "c3"]))
        >>> calls = call_guides(pd.DataFrame({"sgA": [9, 0, 7], "NT": [0, 8, 6]}, index=a.obs_names), thresholds=5)
        >>> assign_guides(a, calls, guide_targets={"sgA": "GENEA", "NT": "non-targeting"}).obs["perturbation"].tolist()
        ['GENEA', 'control', 'multiplet']
    """
    import pandas as pd

    from tutorial_kit.data.schema import normalize_perturbation

    missing_cols = [c for c in ("n_guides", "guides", "call") if c not in getattr(calls, "columns", [])]
    if missing_cols:
        raise ValueError(f"calls is missing column(s) {missing_cols}; pass the output of tk.qc.call_guides(...).")
    if multiplets not in ("label", "combine"):
        raise ValueError(f"multiplets must be 'label' or 'combine'; got {multiplets!r}.")
    index = calls.index.astype(str)
    absent = [c for c in map(str, adata.obs_names) if c not in set(index)]
    if absent:
        raise ValueError(
            f"{len(absent)} cell(s) of adata have no guide call (e.g. {absent[:3]}); "
            "call guides on the same cells, e.g. tk.qc.call_guides(adata.obsm['guide_counts'])."
        )
    mapping = {} if guide_targets is None else {str(k): str(v) for k, v in dict(guide_targets).items()}
    aligned = calls.set_axis(index).loc[list(map(str, adata.obs_names))]
    guides_col, pert_col = [], []
    for guides, call in zip(aligned["guides"].astype(str), aligned["call"].astype(str)):
        names = [g for g in guides.split(";") if g]
        targets = [normalize_perturbation(mapping.get(g, g)) for g in names]
        if not names:
            guides_col.append(UNASSIGNED)
            pert_col.append(UNASSIGNED)
        elif len(names) == 1:
            guides_col.append(names[0])
            pert_col.append(targets[0])
        else:
            guides_col.append(MULTIPLET)
            pert_col.append(MULTIPLET if multiplets == "label" else normalize_perturbation("+".join(targets)))
    out = adata.copy()
    out.obs["guide"] = pd.Categorical(guides_col)
    out.obs["guides"] = aligned["guides"].astype(str).to_numpy()
    out.obs["n_guides"] = aligned["n_guides"].astype(np.int64).to_numpy()
    out.obs["guide_call"] = pd.Categorical(aligned["call"].astype(str).to_numpy(), categories=list(CALLS))
    out.obs["perturbation"] = pd.Categorical(pert_col)
    return out


# --------------------------------------------------------------------------- on-target effect


def target_expression(
    adata: "AnnData",
    *,
    perturbation_key: str = "perturbation",
    guide_key: str | None = None,
    control: str = "control",
    condition_key: str | None = None,
    layer: str | None = None,
    log1p: bool = True,
    pseudocount: float = 1.0,
) -> "pd.DataFrame":
    """Expression of each perturbation's own target gene in its cells versus control cells.

    The first QC of a CRISPR screen: CRISPRi and many knockouts lower the target's mRNA
    (nonsense-mediated decay), CRISPRa raises it. A knockout can also leave the mRNA intact
    (the protein is broken, not the transcript), so "no change" is not proof of failure.
    Targets not among the measured genes (``var_names``) get a row with ``measured=False``
    and no statistics: they are reported, not dropped. Combinations ``A+B`` give one row per
    part. With ``condition_key``, each group is compared with the control cells of the same
    condition (a stimulation changes many genes, targets included).
    Taught in notebook 01 (Perturb-seq QC).

    Args:
        adata: cells x genes AnnData with the target genes as ``var_names``.
        perturbation_key: ``obs`` column with the perturbation (target gene, ``A+B`` or control).
        guide_key: ``obs`` column of guides, for one row per guide; ``None`` for one per perturbation.
        control: the control label in ``perturbation_key``.
        condition_key: ``obs`` column to stratify by (e.g. ``'condition'``); ``None`` pools all cells.
        layer: layer to read (``None``: ``adata.X``, log1p counts per 10,000 for the course loaders).
        log1p: the values are ``log1p`` of normalized expression (the course's ``X``); means and
            fold changes are then computed on ``expm1`` of them (counts per 10,000). Pass
            ``False`` for values used as they are (e.g. a counts layer).
        pseudocount: added to both means in the log2 fold change (in the units of the means).

    Returns:
        One row per (guide or perturbation, target, condition): ``n_cells``, ``n_control``,
        ``measured`` (the target is a column of ``adata``), ``detected`` (non-zero in at least one
        of the compared cells), ``mean_perturbed``, ``mean_control`` (mean expression, after
        ``expm1`` when ``log1p``: counts per 10,000 for the course loaders),
        ``frac_expressing_perturbed`` / ``_control`` (fraction of cells with a non-zero value),
        ``log2_fold_change`` = ``log2((mean_perturbed + pseudocount) / (mean_control + pseudocount))``,
        ``pvalue`` (two-sided Mann-Whitney U test, ``scipy.stats.mannwhitneyu``) and ``qvalue``
        (Benjamini-Hochberg over the measured rows).

    Example:
        >>> from tutorial_kit.simulate import simulate_screen
        >>> adata = simulate_screen(effects=(2.0,), seed=0)
        >>> row = target_expression(adata).iloc[0]
        >>> row["target"], bool(row["log2_fold_change"] < -2), bool(row["pvalue"] < 1e-6)  # 90% knockdown planted
        ('TGT1', True, True)
    """
    import pandas as pd
    from scipy.stats import mannwhitneyu

    from tutorial_kit.data.schema import perturbation_parts

    keys = [perturbation_key] + [k for k in (guide_key, condition_key) if k is not None]
    check_obs_columns(adata, keys, where="target_expression")
    check_perturbations(adata, [control], key=perturbation_key, where="target_expression (control)")
    x = _matrix(adata, layer)
    obs = adata.obs
    pert = obs[perturbation_key].astype(str).to_numpy()
    group = obs[guide_key].astype(str).to_numpy() if guide_key else pert
    cond = obs[condition_key].astype(str).to_numpy() if condition_key else np.full(adata.n_obs, "all")
    genes = pd.Index(adata.var_names.astype(str))
    rows = []
    for c in pd.unique(cond):
        in_c = cond == c
        ctrl_rows = np.flatnonzero(in_c & (pert == control))
        check_nonempty(ctrl_rows.size, what=f"control cells ({control!r}) in condition {c!r}", where="target_expression")
        for g in sorted(set(group[in_c & (pert != control)])):
            rows_g = np.flatnonzero(in_c & (group == g) & (pert != control))
            p = pert[rows_g[0]]
            for target in perturbation_parts(p):
                row = {"guide": g, "perturbation": p, "target": target, "condition": c,
                       "n_cells": rows_g.size, "n_control": ctrl_rows.size, "measured": target in genes,
                       "detected": False}
                if row["measured"]:
                    j = genes.get_loc(target)
                    xp = _dense_rows(x[:, [j]], rows_g).ravel()
                    xc = _dense_rows(x[:, [j]], ctrl_rows).ravel()
                    if log1p:
                        xp, xc = np.expm1(xp), np.expm1(xc)
                    row.update(
                        mean_perturbed=float(xp.mean()), mean_control=float(xc.mean()),
                        frac_expressing_perturbed=float(np.mean(xp > 0)), frac_expressing_control=float(np.mean(xc > 0)),
                        detected=bool(np.any(xp > 0) or np.any(xc > 0)),
                        log2_fold_change=float(np.log2((xp.mean() + pseudocount) / (xc.mean() + pseudocount))),
                        pvalue=float(mannwhitneyu(xp, xc, alternative="two-sided").pvalue),
                    )
                rows.append(row)
    columns = ["guide", "perturbation", "target", "condition", "n_cells", "n_control", "measured", "detected", "mean_perturbed",
               "mean_control", "frac_expressing_perturbed", "frac_expressing_control", "log2_fold_change", "pvalue"]
    out = pd.DataFrame(rows).reindex(columns=columns)
    out["qvalue"] = _bh(out["pvalue"].to_numpy(dtype=np.float64))
    drop = [] if guide_key else ["guide"]
    drop += [] if condition_key else ["condition"]
    return out.drop(columns=drop).reset_index(drop=True)


# --------------------------------------------------------------------------- escapers (Mixscape)


def mixscape(
    adata: "AnnData",
    *,
    perturbation_key: str = "perturbation",
    control: str = "control",
    split_key: str | None = None,
    reference: Literal["split", "nn"] = "split",
    n_neighbors: int = 20,
    n_comps: int = 15,
    min_de_genes: int = 5,
    logfc_threshold: float = 0.25,
    pval_cutoff: float = 0.05,
    perturbation_type: str = "KO",
    seed: int = 0,
) -> "AnnData":
    """Mixscape (Papalexi et al. 2021) through pertpy: which cells escaped their perturbation?

    Not every cell with a guide is perturbed: in-frame edits, or a guide that did not cut,
    leave some cells unchanged ("escapers"). Mixscape (1) computes each cell's perturbation
    signature, its expression minus that of similar control cells
    (``pertpy.tl.Mixscape.perturbation_signature``), then (2) for each target finds the genes
    differentially expressed against control (Wilcoxon, ``|log fold change| >= logfc_threshold``,
    adjusted p < ``pval_cutoff``), projects the cells on that direction and fits a two-component
    Gaussian mixture: ``'<target> KO'`` (perturbed) or ``'<target> NP'`` (not perturbed,
    escaped). A target with fewer than ``min_de_genes`` DE genes cannot be separated, and all
    its cells are called NP: with shallow data, NP means "no detectable signature", not
    "proven escaper".

    ``reference='split'`` (default) uses the mean of the control cells of the same
    ``split_key`` group (e.g. the stimulation condition; all controls when ``split_key`` is
    None); ``X`` is densified for this step (a pertpy 1.0.3 limitation with sparse ``X``).
    ``reference='nn'`` uses the ``n_neighbors`` nearest control cells in a PCA with ``n_comps``
    components, as in Seurat; it needs pynndescent, whose numba compilation costs 1.5-3
    minutes per fresh Python process on a laptop CPU.
    The number of DE genes per target is recomputed with ``scanpy.tl.rank_genes_groups`` on
    the same cells and the same criteria, so you can see why a target was not separated.
    Taught in notebook 01 (Perturb-seq QC).

    Args:
        adata: AnnData with log-normalized ``X`` and ``obs[perturbation_key]`` (target genes).
        perturbation_key: ``obs`` column of target genes (Mixscape works per target, not per guide).
        control: the control label.
        split_key: ``obs`` column of groups analysed separately (conditions, replicates).
        reference: ``'split'`` or ``'nn'`` (see above).
        n_neighbors: control neighbours per cell for ``reference='nn'``.
        n_comps: PCA components for ``reference='nn'``.
        min_de_genes: DE genes a target needs before its cells are classified.
        logfc_threshold: minimum absolute log fold change of a DE gene.
        pval_cutoff: maximum adjusted p-value of a DE gene.
        perturbation_type: label of the perturbed class (``'KO'``, or e.g. ``'KD'`` for CRISPRi).
        seed: random state of the mixture (and of the PCA and neighbour search for ``'nn'``).

    Returns:
        A new AnnData (the input is not modified) with ``layers['X_pert']`` (the perturbation
        signature), ``obs`` columns ``mixscape_class`` (``'<target> KO'``, ``'<target> NP'`` or
        the control label), ``mixscape_class_global`` (``KO``, ``NP`` or control) and
        ``mixscape_class_p_<type>`` (posterior probability of being perturbed), and
        ``uns['mixscape_summary']``: per split and target, ``n_cells``, ``n_de_genes``,
        ``classified`` (``n_de_genes >= min_de_genes``), ``n_perturbed`` and ``fraction_perturbed``;
        ``uns['mixscape_params']``: the settings used.

    Raises:
        ImportError: when pertpy or scanpy is not installed (with the install command).

    Example:
        >>> from tutorial_kit.simulate import simulate_screen
        >>> adata = simulate_screen(effects=(2.0,), escape_fraction=0.3, seed=0)
        >>> ms = mixscape(adata, seed=0)
        >>> truth = ms.obs["escaped"].to_numpy()[ms.obs["perturbation"] == "TGT1"]
        >>> called_np = (ms.obs["mixscape_class_global"] == "NP").to_numpy()[ms.obs["perturbation"] == "TGT1"]
        >>> bool(np.mean(truth == called_np) > 0.9)
        True
    """
    import warnings

    import pandas as pd

    try:
        with warnings.catch_warnings():
            # tqdm's notice that ipywidgets is missing (pertpy imports tqdm.auto); progress bars still work.
            warnings.filterwarnings("ignore", message="IProgress not found")
            import pertpy as pt
            import scanpy as sc
    except ImportError as err:  # pragma: no cover - both are in the tk-core environment
        raise ImportError(
            f"tk.qc.mixscape needs pertpy and scanpy ({err}). Install them in this environment with "
            "`pip install 'pertpy==1.0.3' scanpy`, or build the core environment: python3 environments/build.py core."
        ) from None

    if reference not in ("split", "nn"):
        raise ValueError(f"reference must be 'split' or 'nn'; got {reference!r}.")
    check_obs_columns(adata, [perturbation_key] + ([split_key] if split_key else []), where="mixscape")
    check_perturbations(adata, [control], key=perturbation_key, where="mixscape (control)")
    min_de_genes = check_int(min_de_genes, "min_de_genes")
    work = adata.copy()
    work.obs[perturbation_key] = work.obs[perturbation_key].astype(str)
    split = split_key or "_tk_all_cells"
    if split_key is None:
        work.obs[split] = "all"
    work.obs[split] = work.obs[split].astype(str)
    for s in pd.unique(work.obs[split]):
        in_s = (work.obs[split] == s).to_numpy()
        is_ctrl = (work.obs[perturbation_key] == control).to_numpy()
        where = f"{split_key} = {s!r}" if split_key else "the data"
        check_nonempty(in_s & is_ctrl, what=f"control cells ({control!r}) in {where}", where="mixscape")
        check_nonempty(in_s & ~is_ctrl, what=f"targeted (non-control) cells in {where}; analyse only groups "
                       "that have targeted cells", where="mixscape")

    ms = pt.tl.Mixscape()
    if reference == "split":
        if hasattr(work.X, "toarray"):
            work.X = np.asarray(work.X.toarray(), dtype=np.float32)
        ms.perturbation_signature(work, perturbation_key, control, ref_selection_mode="split_by", split_by=split)
    else:
        sc.pp.pca(work, n_comps=n_comps, random_state=seed)
        ms.perturbation_signature(work, perturbation_key, control, ref_selection_mode="nn", split_by=split_key,
                                  n_neighbors=n_neighbors, use_rep="X_pca", n_dims=None, random_state=seed)
    with warnings.catch_warnings():
        # pandas deprecation noise from inside pertpy 1.0.3; results are unaffected.
        warnings.simplefilter("ignore", FutureWarning)
        ms.mixscape(work, perturbation_key, control, layer="X_pert", split_by=split, min_de_genes=min_de_genes,
                    logfc_threshold=logfc_threshold, pval_cutoff=pval_cutoff,
                    perturbation_type=perturbation_type, random_state=seed)

    # DE genes per target and split, with the criteria of pertpy's marker selection.
    rows = []
    post_col = f"mixscape_class_p_{perturbation_type.lower()}"
    for s in pd.unique(work.obs[split]):
        sub = work[(work.obs[split] == s).to_numpy()].copy()
        targets = sorted(set(sub.obs[perturbation_key]) - {control})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", pd.errors.PerformanceWarning)
            sc.tl.rank_genes_groups(sub, perturbation_key, groups=targets, reference=control, method="wilcoxon",
                                    use_raw=False)
        res = sub.uns["rank_genes_groups"]
        for t in targets:
            is_de = (np.abs(res["logfoldchanges"][t]) >= logfc_threshold) & (res["pvals_adj"][t] < pval_cutoff)
            cells = sub.obs[perturbation_key] == t
            n_pert = int(np.sum(sub.obs.loc[cells, "mixscape_class_global"] == perturbation_type))
            rows.append({"split": s, "perturbation": t, "n_cells": int(cells.sum()), "n_de_genes": int(is_de.sum()),
                         "classified": bool(is_de.sum() >= min_de_genes), "n_perturbed": n_pert,
                         "fraction_perturbed": n_pert / max(1, int(cells.sum()))})
    summary = pd.DataFrame(rows)
    if split_key is None:
        summary = summary.drop(columns="split")
        del work.obs[split]
    else:
        summary = summary.rename(columns={"split": split_key})
    out = adata.copy()
    out.layers["X_pert"] = work.layers["X_pert"]
    for col in ("mixscape_class", "mixscape_class_global", post_col):
        out.obs[col] = work.obs[col].to_numpy()
    out.obs[post_col] = out.obs[post_col].astype(np.float64)
    out.uns["mixscape_summary"] = summary
    out.uns["mixscape_params"] = {"perturbation_key": perturbation_key, "control": control, "split_key": split_key,
                                  "reference": reference, "min_de_genes": min_de_genes,
                                  "logfc_threshold": float(logfc_threshold), "pval_cutoff": float(pval_cutoff),
                                  "perturbation_type": perturbation_type, "seed": int(seed)}
    return out


# --------------------------------------------------------------------------- perturbation strength


def perturbation_strength(
    adata: "AnnData",
    *,
    perturbation_key: str = "perturbation",
    control: str = "control",
    condition_key: str | None = None,
    layer: str | None = None,
    n_comps: int = 20,
    n_permutations: int = 1000,
    squared: bool = False,
    alpha: float = 0.05,
    seed: int = 0,
) -> "pd.DataFrame":
    """E-distance of every perturbation to control, with a permutation test (scPerturb-style).

    All cells (every perturbation and control, every condition) are projected into ONE PCA
    fitted on these real cells (:func:`tutorial_kit.metrics.fit_pca`, ``n_comps`` components).
    For each perturbation (within each condition when ``condition_key`` is given),
    :func:`tutorial_kit.metrics.edistance_test` computes the energy distance to the control
    cells of the same condition, with Euclidean distances between cells (``squared=False``,
    pertpy's default) or squared Euclidean (``squared=True``, scPerturb's), and a permutation
    p-value whose smallest possible value is ``1 / (n_permutations + 1)``. Benjamini-Hochberg
    q-values are computed over all rows. Comparing within a condition matters: a perturbation
    whose cells are mostly stimulated would otherwise look "strong" because of the stimulation.
    Taught in notebook 01 (Perturb-seq QC).

    Args:
        adata: cells x genes AnnData (log-normalized ``X`` for the course loaders).
        perturbation_key: ``obs`` column of perturbations (or guides).
        control: the control label.
        condition_key: ``obs`` column to stratify by; ``None`` compares with all controls.
        layer: layer to use instead of ``X``.
        n_comps: PCA components of the shared embedding.
        n_permutations: relabellings per test.
        squared: squared Euclidean instead of Euclidean distances between cells.
        alpha: q-value below which a perturbation is ``significant``.
        seed: seed of the PCA and of the permutations (each test gets its own stream derived from it).

    Returns:
        One row per perturbation (and condition), sorted by decreasing ``edistance``:
        ``perturbation``, [``condition``], ``n_cells``, ``n_control``, ``edistance``, ``pvalue``,
        ``qvalue``, ``significant``. The settings are in ``.attrs``.

    Example:
        >>> from tutorial_kit.simulate import simulate_screen
        >>> adata = simulate_screen(effects=(2.0, 0.0), seed=0)
        >>> res = perturbation_strength(adata, n_comps=10, n_permutations=99, seed=0)
        >>> res["perturbation"].tolist(), float(res["pvalue"].iloc[0]), bool(res["pvalue"].iloc[1] > 0.05)
        (['TGT1', 'TGT2'], 0.01, True)
    """
    import pandas as pd

    from tutorial_kit import metrics

    keys = [perturbation_key] + ([condition_key] if condition_key else [])
    check_obs_columns(adata, keys, where="perturbation_strength")
    check_perturbations(adata, [control], key=perturbation_key, where="perturbation_strength (control)")
    n_permutations = check_int(n_permutations, "n_permutations")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1; got {alpha!r}.")
    x = _matrix(adata, layer)
    pca = metrics.fit_pca(x, n_comps=n_comps, seed=seed)
    z = np.asarray(pca.transform(x), dtype=np.float64)
    pert = adata.obs[perturbation_key].astype(str).to_numpy()
    cond = adata.obs[condition_key].astype(str).to_numpy() if condition_key else np.full(adata.n_obs, "all")
    groups = [(c, p) for c in pd.unique(cond) for p in sorted(set(pert[cond == c]) - {control})]
    seeds = np.random.SeedSequence(seed).generate_state(max(1, len(groups)))
    rows = []
    for (c, p), s in zip(groups, seeds):
        ctrl = (cond == c) & (pert == control)
        check_nonempty(ctrl, what=f"control cells ({control!r}) in condition {c!r}", where="perturbation_strength")
        sel = (cond == c) & (pert == p)
        res = metrics.edistance_test(z[sel], z[ctrl], n_permutations=n_permutations, seed=int(s), squared=squared)
        rows.append({"perturbation": p, "condition": c, "n_cells": int(sel.sum()), "n_control": int(ctrl.sum()),
                     "edistance": res.statistic, "pvalue": res.pvalue})
    out = pd.DataFrame(rows, columns=["perturbation", "condition", "n_cells", "n_control", "edistance", "pvalue"])
    out["qvalue"] = _bh(out["pvalue"].to_numpy(dtype=np.float64))
    out["significant"] = out["qvalue"] < alpha
    if not condition_key:
        out = out.drop(columns="condition")
    out = out.sort_values("edistance", ascending=False, kind="mergesort").reset_index(drop=True)
    out.attrs.update({"distance": "squared euclidean" if squared else "euclidean", "n_comps": int(n_comps),
                      "n_permutations": n_permutations, "alpha": float(alpha), "control": control})
    return out
