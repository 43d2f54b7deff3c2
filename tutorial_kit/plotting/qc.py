"""Figures of Perturb-seq quality control: guide calls, MOI, on-target effects, escapers, perturbation strength.

Taught in ``01_perturbseq_qc``. Each function draws the output of one :mod:`tutorial_kit.qc`
function (or of a guide table of :mod:`tutorial_kit.data`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from tutorial_kit.plotting._style import require_columns, subplots

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from anndata import AnnData
    from matplotlib.figure import Figure

    from tutorial_kit.qc import MoiEstimate

__all__ = [
    "guide_coverage",
    "guides_per_cell",
    "mixscape_classes",
    "perturbation_strength",
    "reads_vs_umis",
    "target_knockdown",
    "umi_histograms",
    "umis_by_call",
]


# --------------------------------------------------------------------------- guides


def umi_histograms(guide_counts: "pd.DataFrame", thresholds: Any, *, bins: int = 30) -> "Figure":
    """One histogram of guide UMIs per cell for each guide, with the guide's threshold.

    Taught in ``01_perturbseq_qc``.

    Args:
        guide_counts: cells x guides DataFrame of guide UMI counts.
        thresholds: output of :func:`tutorial_kit.qc.guide_thresholds` (or a Series/dict guide -> UMIs).
        bins: number of logarithmic bins.

    Returns:
        A Figure with one axes per guide (log UMI axis; cells with 0 UMIs are counted in the title).

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import pandas as pd
        >>> counts = pd.DataFrame({"g1": [0, 3, 40, 55], "g2": [0, 0, 1, 30]})
        >>> len(umi_histograms(counts, {"g1": 5, "g2": 5}).axes)
        2
    """
    import pandas as pd

    if not isinstance(guide_counts, pd.DataFrame) or guide_counts.shape[1] == 0:
        raise ValueError("guide_counts must be a cells x guides DataFrame with at least one guide.")
    if isinstance(thresholds, pd.DataFrame):
        require_columns(thresholds, ["threshold"], "thresholds")
        thresholds = thresholds["threshold"]
    limits = dict(thresholds)
    missing = [g for g in guide_counts.columns if g not in limits]
    if missing:
        raise ValueError(f"no threshold for guide(s) {missing}; pass tk.qc.guide_thresholds(guide_counts).")
    fig, axes = subplots(guide_counts.shape[1])
    top = max(2.0, float(guide_counts.to_numpy().max()) + 1)
    edges = np.logspace(0, np.log10(top), bins + 1)
    for ax, guide in zip(axes, guide_counts.columns):
        umis = guide_counts[guide].to_numpy()
        limit = int(limits[guide])
        n_called = int(np.sum(umis >= limit))
        ax.hist(umis[umis > 0], bins=edges, color="C0", alpha=0.8)
        ax.axvline(limit, color="C3", lw=2, label=f"threshold {limit} UMIs\n{n_called} cells called")
        ax.set_xscale("log")
        ax.set_xlabel("guide UMIs per cell (log scale)")
        ax.set_ylabel("cells")
        ax.set_title(f"{guide} ({int(np.sum(umis == 0))} cells with 0 UMIs)", fontsize=10)
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle("Guide calling: guide UMIs per cell and the per-guide threshold")
    return fig


def guides_per_cell(moi: "MoiEstimate | Sequence[MoiEstimate]") -> "Figure":
    """Observed versus Poisson-expected number of guides per cell, one panel per MOI estimate.

    Taught in ``01_perturbseq_qc``.

    Args:
        moi: one :class:`tutorial_kit.qc.MoiEstimate`, or several to compare estimators.

    Returns:
        A Figure with one axes per estimate: bars of observed and expected cells.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> from tutorial_kit.qc import estimate_moi
        >>> k = np.random.default_rng(0).poisson(0.5, 500)
        >>> fig = guides_per_cell([estimate_moi(k), estimate_moi(k, method="zero_truncated")])
        >>> len(fig.axes)
        2
    """
    estimates = [moi] if hasattr(moi, "table") else list(moi)
    if not estimates or not all(hasattr(e, "table") and hasattr(e, "moi") for e in estimates):
        raise ValueError("moi must be a tk.qc.estimate_moi(...) result or a list of them.")
    fig, axes = subplots(len(estimates), ncols=2, width=4.8)
    for ax, est in zip(axes, estimates):
        t = est.table
        k = t["n_guides"].to_numpy()
        ax.bar(k - 0.2, t["observed_cells"], width=0.4, color="C0", label="observed")
        expected = t["expected_cells"].to_numpy(dtype=float)
        ok = np.isfinite(expected)
        ax.bar(k[ok] + 0.2, expected[ok], width=0.4, color="C1", label=f"Poisson, MOI = {est.moi:.2f}")
        ax.set_xticks(k)
        ax.set_xlabel("guides detected per cell")
        ax.set_ylabel("cells")
        modelled = "all cells" if est.method == "zero_fraction" else "cells with >= 1 guide"
        ax.set_title(f"{est.method.replace('_', ' ')} estimate (model of {modelled})", fontsize=10)
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle("Guides per cell: observed vs expected under a Poisson MOI")
    return fig


def reads_vs_umis(table: "pd.DataFrame", *, max_umis: int = 30) -> "Figure":
    """Guide reads versus UMIs for every (cell, guide) row of a long guide table.

    Taught in ``01_perturbseq_qc``.

    Args:
        table: long table with ``read_count`` and ``umi_count`` (``tk.data.load_scmageck_guides()``).
        max_umis: UMI counts above this are pooled in the last bar of the right panel.

    Returns:
        A Figure with two axes: reads vs UMIs (log-log, with the line of one read per UMI),
        and the number of rows per UMI count.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import pandas as pd
        >>> t = pd.DataFrame({"read_count": [1, 4, 9, 20], "umi_count": [1, 2, 5, 9]})
        >>> len(reads_vs_umis(t).axes)
        2
    """
    require_columns(table, ["read_count", "umi_count"], "table")
    if len(table) == 0:
        raise ValueError("table has no rows.")
    reads = table["read_count"].to_numpy(dtype=float)
    umis = table["umi_count"].to_numpy(dtype=float)
    ratio = np.median(reads[umis > 0] / umis[umis > 0]) if np.any(umis > 0) else float("nan")
    fig, (left, right) = subplots(2, ncols=2, width=4.6, height=3.6)
    jitter = np.exp(np.random.default_rng(0).uniform(-0.08, 0.08, size=(2, reads.size)))  # display only
    left.scatter(umis * jitter[0], reads * jitter[1], s=4, alpha=0.25, color="C0", rasterized=True)
    lim = max(reads.max(), umis.max()) * 1.2
    left.plot([0.8, lim], [0.8, lim], color="C3", lw=1.5, label="1 read per UMI")
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("UMIs (guide molecules)")
    left.set_ylabel("reads")
    left.set_title(f"median {ratio:.2f} reads per UMI (points jittered)", fontsize=10)
    left.legend(fontsize=8, frameon=False)
    clipped = np.minimum(umis, max_umis).astype(int)
    counts = np.bincount(clipped, minlength=max_umis + 1)[1:]
    right.bar(np.arange(1, max_umis + 1), counts, color="C0")
    right.set_xlabel(f"UMIs of a guide in a cell (last bar: >= {max_umis})")
    right.set_ylabel("(cell, guide) rows")
    right.set_title("weak rows (1-2 UMIs) are often background", fontsize=10)
    fig.suptitle("Guide library: reads versus UMIs per cell and guide")
    return fig


def guide_coverage(table: "pd.DataFrame", *, guide_key: str = "barcode", cell_key: str = "cell") -> "Figure":
    """Cells per guide: how evenly the guide library is represented (dropout shows as a low tail).

    Taught in ``01_perturbseq_qc``.

    Args:
        table: long guide table (one row per cell and guide) or any table with the two columns.
        guide_key: column of guide identifiers.
        cell_key: column of cell barcodes.

    Returns:
        A Figure with one axes: histogram of cells per guide with its median.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import pandas as pd
        >>> t = pd.DataFrame({"cell": ["a", "b", "c", "c"], "barcode": ["g1", "g1", "g2", "g1"]})
        >>> len(guide_coverage(t).axes)
        1
    """
    require_columns(table, [guide_key, cell_key], "table")
    per_guide = table.groupby(guide_key, observed=True)[cell_key].nunique()
    if per_guide.empty:
        raise ValueError("table has no rows.")
    fig, (ax,) = subplots(1, width=5.5, height=3.4)
    ax.hist(per_guide.to_numpy(), bins=30, color="C0")
    median = float(per_guide.median())
    ax.axvline(median, color="C3", lw=2, label=f"median {median:.0f} cells")
    ax.set_xlabel("cells carrying the guide")
    ax.set_ylabel("guides")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(f"Guide representation: cells per guide ({per_guide.size} guides; "
                 f"{per_guide.min()}-{per_guide.max()} cells)", fontsize=10)
    return fig


def umis_by_call(adata: "AnnData", *, call_key: str = "guide_call", layer: str | None = "counts") -> "Figure":
    """Transcriptome UMIs per cell by guide call: doublets carry about twice the RNA of single cells.

    Taught in ``01_perturbseq_qc``.

    Args:
        adata: AnnData with ``obs[call_key]`` (from :func:`tutorial_kit.qc.assign_guides`) and counts.
        call_key: ``obs`` column of calls (``none``, ``single``, ``multiplet``).
        layer: layer of raw counts (``None`` for ``X``).

    Returns:
        A Figure with one axes: a box per call of UMIs per cell (log scale), with cell numbers.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import anndata as ad, pandas as pd
        >>> a = ad.AnnData(np.array([[1.0, 2.0], [3.0, 4.0], [9.0, 9.0]]),
        ...                obs=pd.DataFrame({"guide_call": ["none", "single", "multiplet"]}, index=list("abc")))
        >>> len(umis_by_call(a, layer=None).axes)
        1
    """
    from tutorial_kit.validate import check_obs_columns

    check_obs_columns(adata, [call_key], where="umis_by_call")
    if layer is not None and layer not in adata.layers:
        raise ValueError(f"adata.layers has no {layer!r} layer; pass layer=None to use adata.X.")
    x = adata.X if layer is None else adata.layers[layer]
    totals = np.asarray(x.sum(axis=1)).ravel()
    calls = adata.obs[call_key].astype(str).to_numpy()
    order = [c for c in ("none", "single", "multiplet") if c in set(calls)] + sorted(set(calls) - {"none", "single", "multiplet"})
    data = [totals[calls == c] for c in order]
    fig, (ax,) = subplots(1, width=5.0, height=3.6)
    ax.boxplot([d + 1 for d in data], showfliers=False)
    ax.set_xticks(np.arange(1, len(order) + 1), [f"{c}\n({d.size} cells)" for c, d in zip(order, data)])
    ax.set_yscale("log")
    ax.set_ylabel("UMIs per cell + 1 (measured genes)")
    medians = ", ".join(f"{c} {np.median(d):.0f}" for c, d in zip(order, data))
    ax.set_title(f"Transcriptome UMIs per cell by guide call\nmedians: {medians}", fontsize=10)
    return fig


# --------------------------------------------------------------------------- perturbation effects


def target_knockdown(df: "pd.DataFrame", *, alpha: float = 0.05) -> "Figure":
    """On-target check: log2 fold change of each target gene in its cells versus control.

    Taught in ``01_perturbseq_qc``.

    Args:
        df: output of :func:`tutorial_kit.qc.target_expression`.
        alpha: q-value below which a point is filled (significant).

    Returns:
        A Figure with one axes: one point per measured row (colour: condition; filled:
        ``qvalue < alpha``; grey cross: target never detected in these cells). Unmeasured
        targets are counted in the title.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> from tutorial_kit.qc import target_expression
        >>> from tutorial_kit.simulate import simulate_screen
        >>> len(target_knockdown(target_expression(simulate_screen(seed=0))).axes)
        1
    """
    require_columns(df, ["target", "measured", "log2_fold_change", "qvalue"], "df")
    measured = df[df["measured"].astype(bool)]
    label_key = "guide" if "guide" in df.columns else "perturbation"
    has_cond = "condition" in df.columns
    conditions = list(dict.fromkeys(measured["condition"])) if has_cond else [None]
    rows = list(dict.fromkeys(measured[label_key].astype(str)))
    fig, (ax,) = subplots(1, width=6.0, height=max(2.5, 0.28 * len(rows) + 1.5))
    offsets = np.linspace(-0.15, 0.15, len(conditions)) if len(conditions) > 1 else [0.0]
    for i, (cond, off) in enumerate(zip(conditions, offsets)):
        part = measured if cond is None else measured[measured["condition"] == cond]
        y = np.array([rows.index(str(v)) for v in part[label_key]], dtype=float) + off
        lfc = part["log2_fold_change"].to_numpy(dtype=float)
        sig = part["qvalue"].to_numpy(dtype=float) < alpha
        seen = part["detected"].to_numpy(dtype=bool) if "detected" in part.columns else np.ones(len(part), bool)
        color = f"C{i}"
        name = "all cells" if cond is None else str(cond)
        ax.scatter(lfc[seen & sig], y[seen & sig], color=color, s=40, label=f"{name}: q < {alpha}")
        ax.scatter(lfc[seen & ~sig], y[seen & ~sig], facecolors="none", edgecolors=color, s=40, label=f"{name}: n.s.")
        if np.any(~seen):
            ax.scatter(lfc[~seen], y[~seen], marker="x", color="0.6", s=30, label=f"{name}: not detected")
    ax.axvline(0, color="0.3", lw=1)
    ax.set_yticks(np.arange(len(rows)), rows)
    ax.invert_yaxis()
    ax.set_xlabel("log2 fold change of the target gene vs control")
    if not rows:
        ax.text(0.5, 0.5, "no target gene is measured", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.legend(fontsize=7, frameon=False, loc="best")
    n_missing = int((~df["measured"].astype(bool)).sum())
    ax.set_title(f"On-target check: target expression vs control\n"
                 f"({len(measured)} rows measured, {n_missing} rows whose target is not among the genes)", fontsize=10)
    return fig


def mixscape_classes(adata: "AnnData") -> "Figure":
    """Mixscape at a glance: DE genes per target (the entry criterion) and the perturbed / NP split.

    Taught in ``01_perturbseq_qc``.

    Args:
        adata: output of :func:`tutorial_kit.qc.mixscape` (uses ``uns['mixscape_summary']`` and
            ``uns['mixscape_params']``).

    Returns:
        A Figure with two axes: DE genes per target with the ``min_de_genes`` line, and the
        fraction of each target's cells called perturbed versus not perturbed (NP).

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import anndata as ad, pandas as pd
        >>> a = ad.AnnData(np.zeros((1, 1)))
        >>> a.uns["mixscape_summary"] = pd.DataFrame({"perturbation": ["A"], "n_cells": [10], "n_de_genes": [7],
        ...     "classified": [True], "n_perturbed": [6], "fraction_perturbed": [0.6]})
        >>> a.uns["mixscape_params"] = {"min_de_genes": 5, "perturbation_type": "KO", "split_key": None}
        >>> len(mixscape_classes(a).axes)
        2
    """
    summary = getattr(adata, "uns", {}).get("mixscape_summary")
    params = getattr(adata, "uns", {}).get("mixscape_params", {})
    if summary is None:
        raise ValueError("adata has no uns['mixscape_summary']; pass the AnnData returned by tk.qc.mixscape(...).")
    split_key = params.get("split_key")
    kind = params.get("perturbation_type", "KO")
    splits = list(dict.fromkeys(summary[split_key])) if split_key else [None]
    targets = sorted(dict.fromkeys(summary["perturbation"].astype(str)))
    fig, (left, right) = subplots(2, ncols=2, width=5.2, height=max(3.0, 0.25 * len(targets) + 1.5))
    height = 0.8 / len(splits)
    for i, s in enumerate(splits):
        part = summary if s is None else summary[summary[split_key] == s]
        pos = {t: j for j, t in enumerate(targets)}
        y = np.array([pos[t] for t in part["perturbation"].astype(str)]) - 0.4 + height * (i + 0.5)
        label = "all cells" if s is None else str(s)
        left.barh(y, part["n_de_genes"], height=height, color=f"C{i}", label=label)
        frac = part["fraction_perturbed"].to_numpy(dtype=float)
        right.barh(y, frac, height=height, color=f"C{i}", label=f"{label}: {kind}")
        right.barh(y, 1 - frac, left=frac, height=height, color=f"C{i}", alpha=0.25, label=f"{label}: NP")
    min_de = params.get("min_de_genes")
    if min_de is not None:
        left.axvline(min_de, color="C3", lw=1.5, ls="--", label=f"min_de_genes = {min_de}")
    for ax in (left, right):
        ax.set_yticks(np.arange(len(targets)), targets)
        ax.invert_yaxis()
        ax.legend(fontsize=7, frameon=False, loc="lower right")
    left.set_xlabel("DE genes vs control (Wilcoxon, adjusted p)")
    left.set_title("Entry criterion: DE genes per target", fontsize=10)
    right.set_xlabel(f"fraction of the target's cells (solid: {kind}, light: NP)")
    right.set_xlim(0, 1)
    if not summary["classified"].astype(bool).any():
        right.text(0.5, 0.5, "no target passed the DE criterion:\nevery targeted cell is NP", ha="center",
                   va="center", transform=right.transAxes, fontsize=9, bbox={"facecolor": "white", "alpha": 0.9})
    right.set_title(f"Mixscape classes: {kind} (perturbed) vs NP (not perturbed)", fontsize=10)
    fig.suptitle("Escaping cells with Mixscape")
    return fig


def perturbation_strength(df: "pd.DataFrame", *, top: int | None = None) -> "Figure":
    """E-distance of each perturbation to control, sorted, with the significant ones marked.

    Taught in ``01_perturbseq_qc``.

    Args:
        df: output of :func:`tutorial_kit.qc.perturbation_strength`.
        top: show only the ``top`` strongest per panel (``None``: all).

    Returns:
        A Figure with one axes per condition (one if the table has no ``condition``): horizontal
        bars, filled when ``significant`` (BH q-value below alpha), light otherwise.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import pandas as pd
        >>> df = pd.DataFrame({"perturbation": ["A", "B"], "edistance": [2.0, 0.1], "qvalue": [0.01, 0.8],
        ...                    "significant": [True, False]})
        >>> len(perturbation_strength(df).axes)
        1
    """
    require_columns(df, ["perturbation", "edistance", "qvalue", "significant"], "df")
    has_cond = "condition" in df.columns
    conditions = list(dict.fromkeys(df["condition"])) if has_cond else [None]
    n_max = max(len(df) if c is None else int((df["condition"] == c).sum()) for c in conditions)
    n_show = n_max if top is None else min(top, n_max)
    fig, axes = subplots(len(conditions), ncols=2, width=4.8, height=max(2.5, 0.24 * n_show + 1.5))
    distance = df.attrs.get("distance", "euclidean")
    n_comps = df.attrs.get("n_comps")
    alpha = df.attrs.get("alpha", 0.05)
    xmax = float(df["edistance"].max()) * 1.1 if len(df) else 1.0
    for ax, cond in zip(axes, conditions):
        part = df if cond is None else df[df["condition"] == cond]
        n_sig, n_all = int(part["significant"].astype(bool).sum()), len(part)
        part = part.sort_values("edistance", ascending=False).head(n_show)
        y = np.arange(len(part))
        sig = part["significant"].to_numpy(dtype=bool)
        ax.barh(y[sig], part["edistance"].to_numpy()[sig], color="C0", label=f"q < {alpha}")
        ax.barh(y[~sig], part["edistance"].to_numpy()[~sig], color="C0", alpha=0.3, label="not significant")
        ax.set_yticks(y, part["perturbation"].astype(str))
        ax.invert_yaxis()
        ax.set_xlim(0, xmax)
        pcs = f", {n_comps} PCs" if n_comps else ""
        ax.set_xlabel(f"E-distance to control ({distance}{pcs})")
        ax.set_title(f"{'all cells' if cond is None else cond}: {n_sig} of {n_all} significant",
                     fontsize=10)
        ax.legend(fontsize=8, frameon=False, loc="lower right")
    fig.suptitle("Perturbation strength: E-distance to control, permutation test (BH q-values)")
    return fig
