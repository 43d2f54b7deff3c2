"""The figures of the course, so that a notebook cell that draws one stays one line.

Each function takes the output of a ``tutorial_kit`` function, draws one figure with
readable labels (units included) and a title that names the statistic, and returns the
``matplotlib.figure.Figure``. matplotlib is imported inside the functions; importing this
module changes no settings (no rcParams, no style). In a notebook, end the line with ``;``
so the figure is shown once.
Taught in notebook 01 (Perturb-seq QC) and used by the later notebooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from tutorial_kit.metrics import LOWER_IS_BETTER as _LOWER_IS_BETTER

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


def _subplots(n: int, *, ncols: int = 3, width: float = 4.0, height: float = 3.2):
    """A figure with exactly ``n`` axes on a grid of at most ``ncols`` columns (spare cells removed)."""
    import matplotlib.pyplot as plt

    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained")
    flat = list(axes.ravel())
    for ax in flat[n:]:
        fig.delaxes(ax)
    return fig, flat[:n]


def _require_columns(df: Any, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in getattr(df, "columns", [])]
    if missing:
        raise ValueError(f"{what} is missing column(s) {missing}; pass the output of the matching tk.qc function.")


# --------------------------------------------------------------------------- guides


def umi_histograms(guide_counts: "pd.DataFrame", thresholds: Any, *, bins: int = 30) -> "Figure":
    """One histogram of guide UMIs per cell for each guide, with the guide's threshold.

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
        _require_columns(thresholds, ["threshold"], "thresholds")
        thresholds = thresholds["threshold"]
    limits = dict(thresholds)
    missing = [g for g in guide_counts.columns if g not in limits]
    if missing:
        raise ValueError(f"no threshold for guide(s) {missing}; pass tk.qc.guide_thresholds(guide_counts).")
    fig, axes = _subplots(guide_counts.shape[1])
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
    fig, axes = _subplots(len(estimates), ncols=2, width=4.8)
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
    _require_columns(table, ["read_count", "umi_count"], "table")
    if len(table) == 0:
        raise ValueError("table has no rows.")
    reads = table["read_count"].to_numpy(dtype=float)
    umis = table["umi_count"].to_numpy(dtype=float)
    ratio = np.median(reads[umis > 0] / umis[umis > 0]) if np.any(umis > 0) else float("nan")
    fig, (left, right) = _subplots(2, ncols=2, width=4.6, height=3.6)
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
    _require_columns(table, [guide_key, cell_key], "table")
    per_guide = table.groupby(guide_key, observed=True)[cell_key].nunique()
    if per_guide.empty:
        raise ValueError("table has no rows.")
    fig, (ax,) = _subplots(1, width=5.5, height=3.4)
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
    fig, (ax,) = _subplots(1, width=5.0, height=3.6)
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

    Args:
        df: output of :func:`tutorial_kit.qc.target_expression`.
        alpha: q-value below which a point is filled (significant).

    Returns:
        A Figure with one axes: one point per measured row (colour: condition; filled:
        ``qvalue < alpha``; grey cross: target never detected in these cells). Unmeasured
        targets are counted in the title.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> from tutorial_kit.qc import simulate_screen, target_expression
        >>> len(target_knockdown(target_expression(simulate_screen(seed=0))).axes)
        1
    """
    _require_columns(df, ["target", "measured", "log2_fold_change", "qvalue"], "df")
    measured = df[df["measured"].astype(bool)]
    label_key = "guide" if "guide" in df.columns else "perturbation"
    has_cond = "condition" in df.columns
    conditions = list(dict.fromkeys(measured["condition"])) if has_cond else [None]
    rows = list(dict.fromkeys(measured[label_key].astype(str)))
    fig, (ax,) = _subplots(1, width=6.0, height=max(2.5, 0.28 * len(rows) + 1.5))
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
    fig, (left, right) = _subplots(2, ncols=2, width=5.2, height=max(3.0, 0.25 * len(targets) + 1.5))
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
    _require_columns(df, ["perturbation", "edistance", "qvalue", "significant"], "df")
    has_cond = "condition" in df.columns
    conditions = list(dict.fromkeys(df["condition"])) if has_cond else [None]
    n_max = max(len(df) if c is None else int((df["condition"] == c).sum()) for c in conditions)
    n_show = n_max if top is None else min(top, n_max)
    fig, axes = _subplots(len(conditions), ncols=2, width=4.8, height=max(2.5, 0.24 * n_show + 1.5))
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


# --------------------------------------------------------------------------- GRN simulator

__all__ += ["grn_network", "interaction_scatter", "true_effects"]

_GRN_LABEL_COLORS = {"additive": "0.45", "synergistic": "C3", "buffering": "C0"}


def _grn_layout(grn: Any) -> dict[str, tuple[float, float]]:
    """Regulators on rows by depth (top), targets on two staggered rows below; modules left to right."""
    depth = grn.depth
    regs = list(grn.regulators)
    reg_depth = depth[regs]
    pos: dict[str, tuple[float, float]] = {}
    for d in sorted(set(reg_depth)):
        row = sorted((g for g in regs if reg_depth[g] == d), key=lambda g: (grn.module[g], g))
        for i, g in enumerate(row):
            pos[g] = ((i + 0.5) / len(row), -float(d))
    targets = [g for g in grn.genes if g not in set(regs)]
    first_parent = {t: min(grn.parents(t)) for t in targets}
    targets.sort(key=lambda t: (grn.module[t], first_parent[t], t))
    bottom = -float(reg_depth.max()) - 1.2
    for i, g in enumerate(targets):
        pos[g] = ((i + 0.5) / max(len(targets), 1), bottom - 0.35 * (i % 2))
    return pos


def grn_network(grn: Any, *, highlight: str | None = None) -> "Figure":
    """The GRN as a layered drawing: regulators on top rows by depth, targets below, edges by sign.

    Args:
        grn: a :class:`tutorial_kit.simulate.GRN` (from ``tk.simulate.make_grn``).
        highlight: a perturbation (``'TF01'`` or ``'TF01+TF07'``): its genes are marked and its
            descendants coloured, and only their outgoing edges are drawn strongly.

    Returns:
        A Figure with one axes (activating edges green, repressing edges red).

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> from tutorial_kit.simulate import make_grn
        >>> len(grn_network(make_grn(n_genes=40, n_regulators=6), highlight="TF01").axes)
        1
    """
    from matplotlib.collections import LineCollection
    from matplotlib.lines import Line2D

    from tutorial_kit.data.schema import perturbation_parts
    from tutorial_kit.simulate.grn import GRN

    if not isinstance(grn, GRN):
        raise ValueError(f"grn must be a GRN from tk.simulate.make_grn(...); got {type(grn).__name__}.")
    pos = _grn_layout(grn)
    hit: set[str] = set()
    down: set[str] = set()
    if highlight is not None:
        grn._parse(highlight)
        from tutorial_kit.data.schema import normalize_perturbation

        highlight = normalize_perturbation(highlight)
        hit = set(perturbation_parts(highlight))
        for g in hit:
            down |= grn.descendants(g)
        down -= hit
    fig, (ax,) = _subplots(1, width=12.0, height=5.5)
    active = hit | down
    for sign, color in ((1, "C2"), (-1, "C3")):
        part = grn.edges[grn.edges["sign"] == sign]
        strong = part["source"].isin(active).to_numpy() if highlight is not None else np.ones(len(part), bool)
        segs = np.array([[pos[s], pos[t]] for s, t in zip(part["source"], part["target"])]).reshape(-1, 2, 2)
        ax.add_collection(LineCollection(segs[~strong], colors=color, alpha=0.08, linewidths=0.6))
        ax.add_collection(LineCollection(segs[strong], colors=color, alpha=0.5 if highlight is None else 0.8,
                                         linewidths=0.8 if highlight is None else 1.2))
    regs = set(grn.regulators)
    for is_reg, marker, size in ((False, "o", 14), (True, "s", 90)):
        names = [g for g in grn.genes if (g in regs) == is_reg]
        xy = np.array([pos[g] for g in names])
        colors = ["k" if g in hit else "C1" if g in down else ("0.35" if is_reg else "0.6") for g in names]
        ax.scatter(xy[:, 0], xy[:, 1], s=size, marker=marker, c=colors, zorder=3, edgecolors="white", linewidths=0.5)
    for g in grn.regulators:
        ax.annotate(g, pos[g], xytext=(0, 7), textcoords="offset points", ha="center", fontsize=7,
                    fontweight="bold" if g in hit else "normal")
    ax.set_xlim(-0.02, 1.02)
    rows = sorted({pos[g][1] for g in grn.regulators}, reverse=True)
    bottom = min(y for _, y in pos.values())
    ax.set_yticks(rows + [bottom + 0.175], [f"regulators, depth {int(-y)}" for y in rows] + ["targets"], fontsize=8)
    ax.set_xticks([])
    ax.set_xlabel(f"targets (bottom rows, {len(grn.genes) - len(regs)} genes), ordered by module")
    handles = [Line2D([], [], color="C2", label="activating edge"), Line2D([], [], color="C3", label="repressing edge"),
               Line2D([], [], marker="s", ls="", color="0.35", label="regulator"),
               Line2D([], [], marker="o", ls="", color="0.6", label="target")]
    if highlight is not None:
        handles += [Line2D([], [], marker="o", ls="", color="k", label=f"perturbed: {highlight}"),
                    Line2D([], [], marker="o", ls="", color="C1", label=f"descendants ({len(down)})")]
    ax.legend(handles=handles, fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    title = (f"Gene regulatory network: {len(regs)} regulators, {len(grn.genes) - len(regs)} targets, "
             f"{len(grn.edges)} edges")
    if highlight is not None:
        title += f"\n{highlight} reaches {len(down)} descendant genes; every other gene is unchanged by construction"
    ax.set_title(title, fontsize=10)
    return fig


def _grn_uns(adata: Any, key: str) -> Any:
    value = getattr(adata, "uns", {}).get(key)
    if value is None:
        raise ValueError(f"adata has no uns[{key!r}]; pass the AnnData returned by tk.simulate.simulate_perturbseq(...).")
    return value


def true_effects(adata: "AnnData", *, perturbations: Sequence[str] | None = None, top: int = 30) -> "Figure":
    """Heatmap of the true effects of a GRN screen on the genes they move most.

    Args:
        adata: output of ``tk.simulate.simulate_perturbseq`` (uses ``uns['true_effect']``).
        perturbations: rows to show (default: all).
        top: genes to show: those with the largest summed absolute true effect over the rows
            shown, not counting a perturbed gene's effect on itself.

    Returns:
        A Figure with the heatmap axes and its colour bar (natural-log fold change, centred at 0).

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> from tutorial_kit.simulate import make_grn, simulate_perturbseq
        >>> a = simulate_perturbseq(make_grn(n_genes=40, n_regulators=6), n_cells=2, n_control=2)
        >>> fig = true_effects(a, top=10)
        >>> len(fig.axes[0].get_xticklabels())
        10
    """
    from tutorial_kit.data.schema import normalize_perturbation

    eff = _grn_uns(adata, "true_effect")
    if isinstance(top, (bool, np.bool_)) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ValueError(f"top must be a positive integer (genes to show); got {top!r}.")
    if perturbations is not None:
        rows = [normalize_perturbation(p) for p in ([perturbations] if isinstance(perturbations, str) else perturbations)]
        unknown = [p for p in rows if p not in eff.index]
        if unknown:
            raise ValueError(f"perturbation(s) {unknown} are not in this screen; known: {list(eff.index)}.")
        eff = eff.loc[rows]
    downstream = eff.abs()
    for p in downstream.index:  # rank by propagated effects, not by the perturbed genes themselves
        downstream.loc[p, [g for g in str(p).split("+") if g in downstream.columns]] = 0.0
    strength = downstream.sum(axis=0)
    cols = [c for c in eff.columns if c in set(strength.nlargest(min(top, eff.shape[1])).index)]
    data = eff[cols].to_numpy(float)
    lim = max(float(np.abs(data).max()), 1e-9)
    fig, (ax,) = _subplots(1, width=max(6.0, 0.22 * len(cols) + 3), height=max(3.0, 0.22 * len(eff) + 2))
    im = ax.imshow(data, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
    ax.set_xticks(np.arange(len(cols)), cols, rotation=90, fontsize=7)
    ax.set_yticks(np.arange(len(eff)), list(eff.index), fontsize=7)
    ax.set_xlabel(f"gene (the {len(cols)} most moved downstream, in network order)")
    ax.set_ylabel("perturbation")
    fig.colorbar(im, ax=ax, label="true log fold change (natural log)", shrink=0.9)
    kind = getattr(adata, "uns", {}).get("simulation", {}).get("kind", "")
    ax.set_title(f"True effects of the GRN screen ({kind}); white = exactly unchanged", fontsize=10)
    return fig


def interaction_scatter(adata: "AnnData") -> "Figure":
    """Doubles against the additive prediction from their singles, observed (counts) and true.

    Each point is one gene of one double: ``x`` = effect of ``A`` + effect of ``B``, ``y`` =
    effect of ``A+B`` (natural-log fold change of the mean vs control), over the genes that the
    double moves in truth; colour = the double's true label, larger points = shared descendants.
    On the diagonal a double is additive; synergistic points lie farther from 0 than the
    diagonal, buffering points closer to 0.

    Args:
        adata: output of ``tk.simulate.simulate_perturbseq`` with doubles and their singles.

    Returns:
        A Figure with two axes: observed (from ``layers['counts']``) and true (noise-free).

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> from tutorial_kit.simulate import make_grn, simulate_perturbseq
        >>> a = simulate_perturbseq(make_grn(n_genes=40, n_regulators=6), n_cells=20, n_control=20)
        >>> len(interaction_scatter(a).axes)
        2
    """
    from matplotlib.lines import Line2D

    from tutorial_kit.simulate.grn import observed_effects

    table = _grn_uns(adata, "interactions")
    truth = _grn_uns(adata, "true_effect")
    usable = [d for d, a, b in zip(table.index, table["a"], table["b"]) if a in truth.index and b in truth.index]
    if not usable:
        raise ValueError("the screen has no double whose two singles were also simulated; "
                         "include 'A', 'B' and 'A+B' in perturbations (the default screen does).")
    observed = observed_effects(adata)
    fig, axes = _subplots(2, ncols=2, width=5.0, height=4.6)
    for ax, eff, what in ((axes[0], observed, "observed (mean counts)"), (axes[1], truth, "true (noise-free)")):
        lo, hi = 0.0, 0.0
        for d in usable:
            a, b = table.loc[d, "a"], table.loc[d, "b"]
            moved = truth.loc[d].to_numpy() != 0
            shared = (truth.loc[d] - truth.loc[a] - truth.loc[b]).to_numpy() != 0
            x = (eff.loc[a] + eff.loc[b]).to_numpy()[moved]
            y = eff.loc[d].to_numpy()[moved]
            color = _GRN_LABEL_COLORS.get(table.loc[d, "label"], "k")
            ax.scatter(x, y, s=np.where(shared[moved], 40, 10), color=color, alpha=0.7, edgecolors="none")
            if x.size:
                lo, hi = min(lo, x.min(), y.min()), max(hi, x.max(), y.max())
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls="--")
        ax.set_xlabel("additive prediction: effect(A) + effect(B)\n(natural-log fold change vs control)")
        ax.set_ylabel("effect of the double A+B")
        ax.set_title(f"{what}: {len(usable)} doubles", fontsize=10)
    handles = [Line2D([], [], marker="o", ls="", color=c, label=f"{lab} ({int((table.loc[usable, 'label'] == lab).sum())})")
               for lab, c in _GRN_LABEL_COLORS.items()]
    handles.append(Line2D([], [], marker="o", ls="", color="0.2", markersize=8, label="shared descendant (larger)"))
    axes[1].legend(handles=handles, fontsize=8, frameon=False, loc="upper left")
    fig.suptitle("Double perturbations vs the additive prediction from singles (dashed: additive)")
    return fig


# --------------------------------------------------------------------------- simulator realism

__all__ += ["gene_stat_agreement", "realism_summary"]

_REALISM_LABELS = {
    "rf_auroc": ("RF AUROC, real vs generated", "0.5 = indistinguishable"),
    "mmd_rbf": ("MMD² (RBF kernel, PCA space)", "lower is closer"),
    "mean_pearson": ("Pearson r of per-gene means", "1 = perfect"),
    "var_pearson": ("Pearson r of per-gene variances", "1 = perfect"),
    "zero_frac_pearson": ("Pearson r of per-gene zero fractions", "1 = perfect"),
    "corr_agreement": ("agreement of gene-gene correlations", "r, within groups; 1 = perfect"),
}


def realism_summary(summary: "pd.DataFrame", *, by: str = "simulator") -> "Figure":
    """One panel per realism metric: each simulator's mean across seeds with its confidence interval.

    The real-versus-real floor (``summary.attrs['floor']``) is drawn in red, first, with its
    interval shaded across the panel, so every simulator can be read against it; the AUROC
    panel has a dashed line at 0.5 (a classifier that cannot tell real from generated).
    Taught in ``02_simulation_statistical`` and ``03_simulation_gan``.

    Args:
        summary: output of :func:`tutorial_kit.simulate.evaluation.summarize_realism`.
        by: the column naming the simulator.

    Returns:
        A Figure with one axes per metric (simulators on the y axis, floor on top).

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import pandas as pd
        >>> from tutorial_kit.simulate.evaluation import FLOOR, summarize_realism
        >>> rows = pd.DataFrame({"simulator": [FLOOR, FLOOR, "toy", "toy"], "seed": [0, 1, 0, 1],
        ...                      "rf_auroc": [0.50, 0.52, 0.80, 0.84], "mmd_rbf": [0.0, 0.01, 0.2, 0.3]})
        >>> len(realism_summary(summarize_realism(rows)).axes)
        2
    """
    _require_columns(summary, [by, "metric", "mean", "ci_low", "ci_high"], "summary")
    if len(summary) == 0:
        raise ValueError("summary is empty; pass tk.simulate.summarize_realism(results).")
    floor = summary.attrs.get("floor", "real (split-half)")
    level = summary.attrs.get("ci", 0.95)
    metrics = list(dict.fromkeys(summary["metric"].astype(str)))
    names = list(dict.fromkeys(summary[by].astype(str)))
    fig, axes = _subplots(len(metrics), ncols=3, width=4.4, height=0.42 * len(names) + 1.8)
    for ax, metric in zip(axes, metrics):
        part = summary[summary["metric"].astype(str) == metric]
        part = part.set_index(part[by].astype(str))
        for y, name in enumerate(names):
            if name not in part.index:
                continue
            mean, lo, hi = (float(part.loc[name, c]) for c in ("mean", "ci_low", "ci_high"))
            color = "C3" if name == floor else "C0"
            if np.isfinite(lo) and np.isfinite(hi):
                ax.errorbar(mean, y, xerr=[[mean - lo], [hi - mean]], fmt="o", color=color, capsize=3)
                if name == floor:
                    ax.axvspan(lo, hi, color="C3", alpha=0.12, lw=0)
            else:
                ax.plot(mean, y, "o", color=color)
        if metric == "rf_auroc":
            ax.axvline(0.5, color="0.3", ls="--", lw=1, label="0.5: indistinguishable")
            ax.legend(fontsize=8, frameon=False, loc="lower right")
        title, hint = _REALISM_LABELS.get(metric, (metric, ""))
        ax.set_yticks(range(len(names)), names)
        ax.set_ylim(len(names) - 0.5, -0.5)
        for tick, name in zip(ax.get_yticklabels(), names):
            if name == floor:
                tick.set_color("C3")
                tick.set_fontweight("bold")
        ax.set_xlabel(f"{metric} ({hint})" if hint else metric)
        ax.set_title(title, fontsize=10)
    fig.suptitle(f"Realism across seeds: mean and {level:.0%} t-interval (red, shaded: the real-vs-real floor)")
    return fig


def gene_stat_agreement(
    reference: "AnnData", generated: "dict[str, AnnData]", *, layer: str | None = "counts"
) -> "Figure":
    """Per-gene mean, variance and zero fraction of each simulator against the real cells.

    One row of three scatter plots per simulator (one point per gene; x: real, y: generated),
    with the identity line; statistics from :func:`tutorial_kit.simulate.evaluation.gene_stats`
    (log1p CP10k recomputed from the counts; zero fraction of raw counts). The Pearson r in each
    title is the ``mean_pearson`` / ``var_pearson`` / ``zero_frac_pearson`` of ``realism``.
    Taught in ``02_simulation_statistical`` and ``03_simulation_gan``.

    Args:
        reference: real cells with raw counts in ``layers[layer]``.
        generated: simulator name -> its cells, same genes in the same order.
        layer: the counts layer (``None``: ``X`` holds counts).

    Returns:
        A Figure with ``3 * len(generated)`` axes.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import anndata as ad
        >>> rng = np.random.default_rng(0)
        >>> real, sim = (ad.AnnData(rng.poisson(3.0, (30, 8)).astype(float)) for _ in range(2))
        >>> len(gene_stat_agreement(real, {"toy": sim}, layer=None).axes)
        3
    """
    from tutorial_kit.simulate.evaluation import gene_stats
    from tutorial_kit.validate import check_same_genes

    if not hasattr(generated, "items") or not generated:
        raise ValueError("generated must be a non-empty dict from simulator name to AnnData, e.g. {'copula': sim}.")
    ref = gene_stats(reference, layer=layer)
    labels = {"mean": "mean of log1p CP10k", "var": "variance of log1p CP10k", "zero_frac": "fraction of zero counts"}
    fig, axes = _subplots(3 * len(generated), ncols=3, width=3.8, height=3.6)
    for row, (name, adata) in enumerate(generated.items()):
        check_same_genes(reference, adata, where="gene_stat_agreement", names=("reference", str(name)))
        gen = gene_stats(adata, layer=layer)
        for col, stat in enumerate(labels):
            ax = axes[3 * row + col]
            x, y = ref[stat].to_numpy(), gen[stat].to_numpy()
            ax.scatter(x, y, s=6, alpha=0.5, color="C0", edgecolors="none")
            lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
            ax.plot([lo, hi], [lo, hi], color="k", ls="--", lw=0.8, label="identity")
            r = np.corrcoef(x, y)[0, 1] if np.ptp(x) > 0 and np.ptp(y) > 0 else float("nan")
            ax.set_xlabel(f"real: {labels[stat]}")
            ax.set_ylabel(f"{name}: {labels[stat]}")
            short = {"mean": "mean", "var": "variance", "zero_frac": "zero fraction"}[stat]
            ax.set_title(f"{name}: {short} (r = {r:.3f})", fontsize=10)
    axes[0].legend(fontsize=8, frameon=False, loc="upper left")
    fig.suptitle("Per-gene statistics, generated vs real (one point per gene; dashed: identity)")
    return fig


# --------------------------------------------------------------------------- GAN (notebook 03)

__all__ += ["augmentation_results", "diversity_comparison", "embedding_overlay", "gan_history", "training_history"]


def gan_history(history: "pd.DataFrame") -> "Figure":
    """Training dynamics of a WGAN-GP: the two losses and the critic's Wasserstein estimate per epoch.

    Taught in ``03_simulation_gan``.

    Args:
        history: ``GANSimulator.history`` (columns ``epoch``, ``critic_loss``, ``generator_loss``,
            ``wasserstein``).

    Returns:
        A Figure with two axes: the critic and generator losses (left) and the Wasserstein
        estimate ``E[D(real)] - E[D(generated)]`` (right), both against the epoch.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import pandas as pd
        >>> h = pd.DataFrame({"epoch": [1, 2], "critic_loss": [-3.0, -2.0], "generator_loss": [1.0, 0.5],
        ...                   "wasserstein": [4.0, 2.5]})
        >>> len(gan_history(h).axes)
        2
    """
    _require_columns(history, ["epoch", "critic_loss", "generator_loss", "wasserstein"], "history")
    fig, (left, right) = _subplots(2, ncols=2, width=4.8, height=3.4)
    epoch = history["epoch"].to_numpy()
    left.plot(epoch, history["critic_loss"].to_numpy(), color="C3", label="critic loss")
    left.plot(epoch, history["generator_loss"].to_numpy(), color="C0", label="generator loss")
    left.axhline(0.0, color="0.6", lw=0.8)
    left.set_xlabel("epoch")
    left.set_ylabel("loss (mean over the epoch's critic steps)")
    left.set_title("Losses: critic D(fake) - D(real) + penalty; generator -D(fake)", fontsize=9)
    left.legend(fontsize=8, frameon=False)
    right.plot(epoch, history["wasserstein"].to_numpy(), color="C2", label="E[D(real)] - E[D(generated)]")
    right.axhline(0.0, color="0.6", lw=0.8)
    right.set_xlabel("epoch")
    right.set_ylabel("critic's Wasserstein estimate")
    right.set_title("Distance between real and generated cells, as the critic sees it", fontsize=9)
    right.legend(fontsize=8, frameon=False)
    fig.suptitle("WGAN-GP training dynamics")
    return fig


def training_history(history: "pd.DataFrame", *, title: str = "Training history") -> "Figure":
    """Per-epoch losses of a trained model (``model.history_``), one panel per loss.

    Losses of different kinds (reconstruction, KL divergence, validation) live on different
    scales, so each gets its own panel and axis. Taught in ``04_scgen`` and ``05_scpram``.

    Args:
        history: a DataFrame with one row per epoch: an ``epoch`` column (else the index is
            the epoch) and one numeric column per recorded loss.
        title: the figure's title (name the model and its seed).

    Returns:
        The Figure.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import pandas as pd
        >>> h = pd.DataFrame({"epoch": [1, 2, 3], "loss": [3.0, 2.0, 1.5], "kl": [0.1, 0.3, 0.4]})
        >>> len(training_history(h, title="toy").axes)
        2
    """
    import pandas as pd

    if not isinstance(history, pd.DataFrame) or history.empty:
        raise ValueError("training_history: history must be a non-empty DataFrame (model.history_ after fit).")
    epoch = history["epoch"].to_numpy() if "epoch" in history else history.index.to_numpy()
    columns = [c for c in history.columns if c != "epoch" and pd.api.types.is_numeric_dtype(history[c])]
    if not columns:
        raise ValueError(f"training_history: no numeric loss column in history (columns {list(history.columns)}).")
    fig, axes = _subplots(len(columns), ncols=min(len(columns), 3), width=3.8, height=3.0)
    for column, ax in zip(columns, axes):
        ax.plot(epoch, history[column].to_numpy(dtype=float), marker="o", ms=3, color="C0")
        ax.set_xlabel("epoch")
        ax.set_ylabel(str(column))
        ax.set_title(str(column), fontsize=10)
    fig.suptitle(title)
    return fig


def embedding_overlay(real: "AnnData", generated: "dict[str, AnnData]", *, color: str = "cell_type") -> "Figure":
    """Real and generated cells side by side in the first two PCs of ONE PCA fitted on the real cells.

    The PCA (:func:`tutorial_kit.metrics.fit_pca`, 2 components, seed 0) is fitted on
    ``real.X`` only; generated cells are projected into it, never refitted. All panels share
    their axis limits and colours, so a shifted, shrunken or missing population shows.
    Taught in ``03_simulation_gan``.

    Args:
        real: real cells (log-normalized ``X``) with ``obs[color]``.
        generated: name -> generated cells, same genes in the same order, with ``obs[color]``.
        color: the obs column that colours the points.

    Returns:
        A Figure with ``1 + len(generated)`` axes: real first, then each generated set.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import anndata as ad, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> obs = pd.DataFrame({"cell_type": ["A", "B"] * 10}, index=[f"c{i}" for i in range(20)])
        >>> real, sim = ad.AnnData(rng.normal(size=(20, 5)), obs=obs), ad.AnnData(rng.normal(size=(20, 5)), obs=obs)
        >>> len(embedding_overlay(real, {"toy": sim}).axes)
        2
    """
    from tutorial_kit.metrics import fit_pca
    from tutorial_kit.validate import check_obs_columns, check_same_genes

    if not hasattr(generated, "items") or not generated:
        raise ValueError("generated must be a non-empty dict from simulator name to AnnData, e.g. {'GAN': sim}.")
    sets = {"real": real, **generated}
    for name, adata in sets.items():
        check_obs_columns(adata, [color], where=f"embedding_overlay[{name!r}]")
        if name != "real":
            check_same_genes(real, adata, where="embedding_overlay", names=("real", str(name)))
    pca = fit_pca(real.X, n_comps=2, seed=0)
    coords = {name: np.asarray(pca.transform(adata.X)) for name, adata in sets.items()}
    stacked = np.vstack(list(coords.values()))
    pad = 0.05 * np.ptp(stacked, axis=0)
    lims = (stacked.min(axis=0) - pad, stacked.max(axis=0) + pad)
    levels = sorted(set().union(*(map(str, a.obs[color].unique()) for a in sets.values())))
    colors = {lev: f"C{i % 10}" for i, lev in enumerate(levels)}
    fig, axes = _subplots(len(sets), ncols=3, width=4.0, height=3.8)
    ratio = pca.explained_variance_ratio_
    for ax, (name, adata) in zip(axes, sets.items()):
        z, labels = coords[name], adata.obs[color].astype(str).to_numpy()
        for lev in levels:
            mask = labels == lev
            if mask.any():
                ax.scatter(z[mask, 0], z[mask, 1], s=5, alpha=0.6, color=colors[lev], edgecolors="none", label=lev)
        ax.set_xlim(lims[0][0], lims[1][0])
        ax.set_ylim(lims[0][1], lims[1][1])
        ax.set_xlabel(f"PC1 ({ratio[0]:.0%} of real variance)")
        ax.set_ylabel(f"PC2 ({ratio[1]:.0%})")
        ax.set_title(f"{name} ({adata.n_obs} cells)", fontsize=10)
    handles = [axes[0].scatter([], [], s=20, color=colors[lev], label=lev) for lev in levels]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(levels), 5), fontsize=8, frameon=False,
               markerscale=1.5, title=color)
    fig.suptitle("Real and generated cells in one PCA fitted on the real cells")
    return fig


def diversity_comparison(table: "pd.DataFrame") -> "Figure":
    """Per-group diversity (mean pairwise distance between cells) of real and generated cells.

    A generated group whose bar is much shorter than the real one has collapsed onto fewer
    kinds of cells than exist (mode collapse); a longer bar means more spread than real.
    Taught in ``03_simulation_gan``.

    Args:
        table: index = group labels, one column per source (``real`` first), values from
            :func:`tutorial_kit.simulate.gan.diversity` in one shared PCA;
            ``table.attrs['pca']`` (optional) names the PCA for the axis label.

    Returns:
        A Figure with one axes: horizontal bars, one bar per source within each group.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import pandas as pd
        >>> t = pd.DataFrame({"real": [10.0, 12.0], "GAN": [9.0, 4.0]}, index=["A", "B"])
        >>> len(diversity_comparison(t).axes[0].patches)
        4
    """
    if getattr(table, "empty", True) or not hasattr(table, "columns"):
        raise ValueError("table must be a non-empty DataFrame: groups x sources (e.g. 'real', 'GAN').")
    sources = list(table.columns)
    groups = list(map(str, table.index))
    fig, axes = _subplots(1, ncols=1, width=8.5, height=0.13 * len(groups) * len(sources) + 1.8)
    ax = axes[0]
    height = 0.8 / len(sources)
    y = np.arange(len(groups))
    for i, source in enumerate(sources):
        ax.barh(y + (i - (len(sources) - 1) / 2) * height, table[source].to_numpy(dtype=float), height=height,
                color="0.55" if i == 0 else f"C{i - 1}", label=str(source))
    ax.set_yticks(y, groups)
    ax.invert_yaxis()
    where = table.attrs.get("pca", "one PCA fitted on real cells")
    ax.set_xlabel(f"diversity: mean Euclidean distance between two cells ({where})", fontsize=9)
    fig.legend(loc="outside lower center", ncols=min(len(sources), 3), fontsize=8, frameon=False)
    ax.set_title("Diversity per group (shorter than real: collapsed; longer: too spread)", fontsize=10)
    return fig


def augmentation_results(df: "pd.DataFrame", *, by: str = "training set", metrics: Sequence[str] = ("recall", "f1")) -> "Figure":
    """Scores of a classifier trained with and without generated cells: mean bar and one dot per run.

    Taught in ``03_simulation_gan`` (augmenting a rare cell type).

    Args:
        df: one row per run (e.g. seed) and training set; column ``by`` names the training set,
            and one column per metric.
        by: the column naming the training set.
        metrics: the metric columns to plot, one panel each.

    Returns:
        A Figure with one axes per metric.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import pandas as pd
        >>> df = pd.DataFrame({"training set": ["real", "real", "+ GAN", "+ GAN"], "recall": [0.5, 0.6, 0.7, 0.6],
        ...                    "f1": [0.6, 0.6, 0.7, 0.65]})
        >>> len(augmentation_results(df).axes)
        2
    """
    _require_columns(df, [by, *metrics], "df")
    if len(df) == 0:
        raise ValueError("df is empty; pass one row per run and training set.")
    names = list(dict.fromkeys(df[by].astype(str)))
    fig, axes = _subplots(len(metrics), ncols=len(metrics), width=3.4, height=0.45 * len(names) + 1.6)
    labels = df[by].astype(str).to_numpy()
    for i, (ax, metric) in enumerate(zip(axes, metrics)):
        for y, name in enumerate(names):
            values = df.loc[labels == name, metric].to_numpy(dtype=float)
            ax.barh(y, values.mean(), color=f"C{y % 10}", alpha=0.35)
            ax.plot(values, np.full(values.size, y), "o", color=f"C{y % 10}", ms=4)
        ax.set_yticks(range(len(names)), names if i == 0 else [])
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"{metric} of the rare group")
        ax.set_title(metric, fontsize=10)
    fig.suptitle("Rare-group classification on held-out real cells (bar: mean; dots: runs)", fontsize=11)
    return fig


# --------------------------------------------------------------------------- copula simulator (notebook 02)

__all__ += ["correlation_heatmaps", "family_counts", "marginal_fits"]

_FAMILY_COLORS = {"poisson": "C0", "nb": "C1", "zip": "C2", "zinb": "C3"}


def marginal_fits(
    adata: "AnnData", simulator: Any, *, genes: Sequence[str], group: str, layer: str | None = "counts", max_count: int = 30
) -> "Figure":
    """Observed count distribution of a few genes in one group beside the fitted marginal.

    Bars: the fraction of the group's cells with each count; dots and line: the probability mass
    of the family chosen for the gene (from ``simulator.marginals``); dashed: a Poisson with the
    same mean, which shows what over-dispersion and extra zeros change.
    Taught in ``02_simulation_statistical``.

    Args:
        adata: the real cells the simulator was fitted on (raw counts in ``layers[layer]``).
        simulator: a fitted :class:`tutorial_kit.simulate.CopulaSimulator`.
        genes: gene names to show (one panel each).
        group: a group label, e.g. ``'CD14+ Monocytes | control'`` (see ``simulator.group_sizes``).
        layer: the counts layer (``None``: ``X`` holds counts).
        max_count: counts above this are pooled into the last bar and the last pmf point.

    Returns:
        A Figure with one axes per gene.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import anndata as ad, pandas as pd, tutorial_kit as tk
        >>> rng = np.random.default_rng(0)
        >>> obs = pd.DataFrame({"cell_type": ["B"] * 40, "condition": "control"}, index=[f"c{i}" for i in range(40)])
        >>> a = ad.AnnData(rng.poisson(2.0, (40, 3)).astype(float), obs=obs)
        >>> sim = tk.simulate.fit_copula(a, layer=None)
        >>> len(marginal_fits(a, sim, genes=["0", "1"], group="B | control", layer=None).axes)
        2
    """
    import scipy.sparse as sp
    from scipy import stats

    from tutorial_kit.simulate._base import group_labels
    from tutorial_kit.simulate.marginals import marginal_pmf

    marg = getattr(simulator, "marginals", None)
    if marg is None or not hasattr(simulator, "groupby"):
        raise ValueError("simulator must be a fitted CopulaSimulator (tk.simulate.fit_copula(...)).")
    genes = [genes] if isinstance(genes, str) else list(genes)
    if not genes:
        raise ValueError("genes must name at least one gene.")
    part = marg[marg["group"].astype(str) == str(group)]
    if part.empty:
        raise ValueError(f"unknown group {group!r}; known groups: {list(simulator.group_sizes.index)}.")
    part = part.set_index(part["gene"].astype(str))
    unknown = [g for g in genes if g not in part.index]
    if unknown:
        raise ValueError(f"gene(s) {unknown} are not among the simulator's genes.")
    cells = group_labels(adata, simulator.groupby) == str(group)
    if not cells.any():
        raise ValueError(f"adata has no cells in group {group!r}; pass the data the simulator was fitted on.")
    var = list(map(str, adata.var_names))
    x = adata.X if layer is None else adata.layers[layer]
    fig, axes = _subplots(len(genes), ncols=3, width=4.0, height=3.2)
    for ax, gene in zip(axes, genes):
        col = x[np.flatnonzero(cells)][:, var.index(gene)]
        obs = np.asarray(col.toarray() if sp.issparse(col) else col, dtype=float).ravel()
        row = part.loc[gene]
        top = int(min(max(obs.max(), 1), max_count))
        k = np.arange(top + 1)
        freq = np.bincount(np.minimum(obs, top).astype(int), minlength=top + 1) / obs.size
        table = part.loc[[gene], ["mu", "theta", "pi"]]
        pmf = marginal_pmf(k[:, None], table).ravel()
        pmf[-1] = 1.0 - pmf[:-1].sum()  # the last point pools the tail, as the last bar does
        pois = stats.poisson.pmf(k, obs.mean())
        pois[-1] = 1.0 - pois[:-1].sum()
        ax.bar(k, freq, color="0.75", label="observed")
        family = str(row["family"])
        ax.plot(k, pmf, "o-", ms=3, color=_FAMILY_COLORS.get(family, "C0"), label=f"fitted {family.upper()}")
        ax.plot(k, pois, ls="--", color="k", lw=1, label="Poisson, same mean")
        params = f"mu={row['mu']:.2g}"
        if np.isfinite(row["theta"]):
            params += f", theta={row['theta']:.2g}"
        if row["pi"] > 0:
            params += f", pi={row['pi']:.2f}"
        ax.set_title(f"{gene}: {family.upper()} ({params})", fontsize=9)
        ax.set_xlabel(f"UMI count (last bar: >= {top})" if obs.max() > top else "UMI count")
        ax.set_ylabel("fraction of cells")
    axes[0].legend(fontsize=8, frameon=False)
    fig.suptitle(f"Observed counts vs fitted marginal, {group} ({int(cells.sum())} cells)")
    return fig


def family_counts(simulator: Any) -> "Figure":
    """Stacked bars: how many genes got each marginal family in each group.

    Taught in ``02_simulation_statistical``.

    Args:
        simulator: a fitted :class:`tutorial_kit.simulate.CopulaSimulator` (or its
            ``family_table()``: groups x families counts).

    Returns:
        A Figure with one axes (groups on the y axis, genes on the x axis).

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import pandas as pd
        >>> tab = pd.DataFrame({"poisson": [3, 1], "nb": [1, 3]}, index=["B | control", "T | control"])
        >>> len(family_counts(tab).axes[0].patches)
        4
    """
    import matplotlib.pyplot as plt
    import pandas as pd

    tab = simulator.family_table() if hasattr(simulator, "family_table") else simulator
    if not isinstance(tab, pd.DataFrame) or tab.empty:
        raise ValueError("pass a fitted CopulaSimulator or its family_table() (groups x families counts).")
    fig, ax = plt.subplots(figsize=(7.5, 0.42 * len(tab) + 1.6), layout="constrained")
    left = np.zeros(len(tab))
    y = np.arange(len(tab))
    for family in tab.columns:
        values = tab[family].to_numpy(dtype=float)
        ax.barh(y, values, left=left, color=_FAMILY_COLORS.get(str(family)), label=str(family).upper())
        left += values
    ax.set_yticks(y, [str(g) for g in tab.index])
    ax.invert_yaxis()
    ax.set_xlabel("genes")
    ax.legend(ncols=len(tab.columns), frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), fontsize=9)
    ax.set_title("Marginal family chosen per gene (lowest BIC), per group", pad=24)
    return fig


def _group_lognorm(adata: "AnnData", layer: str | None, cells: np.ndarray, genes: np.ndarray) -> np.ndarray:
    """log1p CP10k (library size over all genes) of some cells, for some genes, dense."""
    import scipy.sparse as sp

    from tutorial_kit.data.schema import log1p_cp10k

    x = adata.X if layer is None else adata.layers[layer]
    x = sp.csr_matrix(x, dtype=np.float64)[np.flatnonzero(cells)]
    return np.asarray(sp.csr_matrix(log1p_cp10k(x))[:, genes].toarray())


def _corr(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=0)
    sd = np.sqrt((x**2).sum(axis=0))
    ok = sd > 0
    r = np.zeros((x.shape[1], x.shape[1]))
    r[np.ix_(ok, ok)] = (x[:, ok].T @ x[:, ok]) / np.outer(sd[ok], sd[ok])
    np.fill_diagonal(r, 1.0)
    return r


def correlation_heatmaps(
    real: "AnnData",
    simulated: "dict[str, AnnData]",
    *,
    n_genes: int = 50,
    group: str | None = None,
    groupby: str | Sequence[str] = ("cell_type", "condition"),
    layer: str | None = "counts",
) -> "Figure":
    """Gene-gene Pearson correlations of the top expressed genes: real beside each simulator.

    Genes: the ``n_genes`` with the highest mean log1p CP10k in the real cells (of ``group`` when
    given), ordered by average-linkage clustering of the real correlations, the same order in
    every panel. Correlations of log1p CP10k (recomputed from counts for every input), the
    diagonal left blank; each title gives the Pearson correlation of the panel's upper triangle
    with the real one. Within one group, a simulator of independent genes shows an empty map.
    Taught in ``02_simulation_statistical``.

    Args:
        real: real cells with raw counts.
        simulated: simulator name -> its cells (same genes in the same order).
        n_genes: how many top expressed genes to show (at least 2).
        group: restrict every panel to one group label (e.g. ``'CD14+ Monocytes | control'``);
            ``None`` pools all cells (correlations then mostly reflect cell types).
        groupby: the obs columns that ``group`` labels join.
        layer: the counts layer (``None``: ``X`` holds counts).

    Returns:
        A Figure with ``1 + len(simulated)`` heatmaps and a colour bar.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import anndata as ad
        >>> rng = np.random.default_rng(0)
        >>> real, sim = (ad.AnnData(rng.poisson(3.0, (30, 8)).astype(float)) for _ in range(2))
        >>> len(correlation_heatmaps(real, {"toy": sim}, n_genes=5, layer=None).axes)
        3
    """
    import matplotlib.pyplot as plt
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    from tutorial_kit.simulate._base import group_labels
    from tutorial_kit.validate import check_same_genes

    if not hasattr(simulated, "items") or not simulated:
        raise ValueError("simulated must be a non-empty dict from simulator name to AnnData, e.g. {'copula': sim}.")
    if isinstance(n_genes, (bool, np.bool_)) or not isinstance(n_genes, (int, np.integer)) or n_genes < 2:
        raise ValueError(f"n_genes must be an integer of at least 2; got {n_genes!r}.")

    def cells_of(adata: "AnnData", name: str) -> np.ndarray:
        if group is None:
            return np.ones(adata.n_obs, dtype=bool)
        mask = group_labels(adata, groupby) == str(group)
        if mask.sum() < 3:
            raise ValueError(f"{name} has {int(mask.sum())} cells in group {group!r}; at least 3 are needed.")
        return mask

    keep = cells_of(real, "the real data")
    every = np.arange(real.n_vars)
    real_x = _group_lognorm(real, layer, keep, every)
    k = int(min(n_genes, real.n_vars))
    top = np.sort(np.argsort(-real_x.mean(axis=0), kind="stable")[:k])
    r_real = _corr(real_x[:, top])
    dist = np.clip(1.0 - r_real, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    order = leaves_list(linkage(squareform(dist, checks=False), method="average")) if k > 2 else np.arange(k)
    panels = {"real": r_real}
    for name, adata in simulated.items():
        check_same_genes(real, adata, where="correlation_heatmaps", names=("real", str(name)))
        panels[str(name)] = _corr(_group_lognorm(adata, layer, cells_of(adata, str(name)), top))
    upper = np.triu_indices(k, 1)
    off = r_real[upper]
    vmax = float(np.clip(np.quantile(np.abs(off), 0.99), 0.05, 1.0)) if off.size else 1.0
    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels) + 0.8, 3.9), layout="constrained", squeeze=False)
    axes = list(axes.ravel())
    names = real.var_names.astype(str).to_numpy()[top][order]
    for ax, (name, r) in zip(axes, panels.items()):
        shown = r[np.ix_(order, order)].copy()
        np.fill_diagonal(shown, np.nan)
        image = ax.imshow(shown, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
        if name == "real":
            ax.set_title("real", fontsize=10)
        else:
            a, b = off, r[upper]
            agree = np.corrcoef(a, b)[0, 1] if a.size > 1 and np.ptp(a) > 0 and np.ptp(b) > 0 else float("nan")
            ax.set_title(f"{name} (r with real = {agree:.2f})", fontsize=10)
        if k <= 30:
            ax.set_xticks(range(k), names, rotation=90, fontsize=6)
            ax.set_yticks(range(k), names, fontsize=6)
        else:
            ax.set_xticks([])
            ax.set_yticks([])
        ax.set_xlabel(f"top {k} expressed genes")
    fig.colorbar(image, ax=axes, shrink=0.8, label="Pearson r (log1p CP10k)")
    where = f"within {group}" if group is not None else "all cells pooled"
    fig.suptitle(f"Gene-gene correlations, {where}")
    return fig


# --------------------------------------------------------------------------- perturbation models (notebooks 04, 05)

__all__ += ["holdout_heatmap", "latent_delta_plot", "model_comparison", "reg_mean_plot", "spread_plot"]

_BASELINE_NAMES = ("no-change", "mean-shift", "mean", "additive")
"""Model names drawn grey as baselines by :func:`model_comparison` (exactly, or followed by a space: 'mean (seed 0)')."""


def _axes_for(ax: Any, n: int, **subplot_kw: Any) -> "tuple[Figure, list]":
    """The figure and ``n`` axes: new ones if ``ax`` is None, else the given Axes (one, or a sequence of n)."""
    if ax is None:
        return _subplots(n, **subplot_kw)
    axes = list(ax) if isinstance(ax, (list, tuple, np.ndarray)) else [ax]
    if len(axes) != n or not all(hasattr(a, "figure") for a in axes):
        raise ValueError(f"ax must be None or {n} matplotlib Axes (one per panel); got {len(axes)}.")
    return axes[0].figure, axes


def _gene_stat(x: Any, statistic: str) -> np.ndarray:
    from tutorial_kit.metrics import _col_mean, _matrix, _mean_var

    mat = _matrix(x, "X")
    if mat.shape[0] < 2:
        if statistic == "var":
            raise ValueError("statistic='var' needs at least 2 cells per group (a variance over cells, ddof=1).")
        return _col_mean(mat)
    mean, var = _mean_var(mat)
    return np.asarray(mean if statistic == "mean" else var, dtype=np.float64).ravel()


def _dense_column(adata: "AnnData", gene: str) -> np.ndarray:
    col = adata[:, gene].X
    return np.asarray(col.toarray() if hasattr(col, "toarray") else col, dtype=np.float64).ravel()


def reg_mean_plot(
    pred: "AnnData | dict[str, AnnData]",
    true: "AnnData",
    *,
    ctrl: "AnnData | None" = None,
    statistic: str = "mean",
    top_genes: Sequence[str] | None = None,
    n_label: int = 10,
    ax: Any = None,
) -> "Figure":
    """Per-gene mean (or variance) of true cells (x) against predicted cells (y), as scGen's ``reg_mean_plot``.

    One point per gene, the diagonal, and the ``top_genes`` highlighted (by default, if
    ``ctrl`` is given, the top-100 DE genes of true vs control by
    :func:`tutorial_kit.metrics.top_de_genes`); the first ``n_label`` of them are labelled.
    The legend gives :func:`tutorial_kit.metrics.r2_mean_sqpearson` (``statistic='mean'``) or
    :func:`tutorial_kit.metrics.r2_var_sqpearson` (``statistic='var'``, variances with
    ``ddof=1``) on all genes and on the highlighted genes. A squared Pearson correlation
    ignores scale and offset, so also look at the points: a good model lies on the diagonal.
    Taught in ``04_scgen`` and ``05_scpram``.

    Args:
        pred: predicted cells x genes, or a dict name -> predicted AnnData for one panel per
            prediction side by side (e.g. a model and the no-change baseline).
        true: observed perturbed cells, same genes in the same order.
        ctrl: control cells (only to choose the default ``top_genes``), same genes.
        statistic: ``'mean'`` or ``'var'``.
        top_genes: gene names to highlight, strongest first (None: top-100 DEGs if ``ctrl``).
        n_label: how many highlighted genes get a name label.
        ax: an Axes to draw on (default: a new figure); one Axes per prediction for a dict.

    Returns:
        The Figure.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import anndata as ad
        >>> rng = np.random.default_rng(0)
        >>> true, pred = ad.AnnData(rng.gamma(2.0, size=(30, 6))), ad.AnnData(rng.gamma(2.0, size=(30, 6)))
        >>> len(reg_mean_plot(pred, true, top_genes=["0", "1"]).axes)
        1
        >>> len(reg_mean_plot({"model": pred, "no-change": true}, true, top_genes=["0", "1"]).axes)
        2
    """
    from tutorial_kit import metrics as tkm
    from tutorial_kit.validate import check_same_genes

    where = "reg_mean_plot"
    if statistic not in ("mean", "var"):
        raise ValueError(f"{where}: statistic must be 'mean' or 'var'; got {statistic!r}.")
    preds = dict(pred) if isinstance(pred, dict) else {"": pred}
    if not preds:
        raise ValueError(f"{where}: pred is an empty dict; pass at least one predicted AnnData.")
    for name, one in preds.items():
        check_same_genes(one, true, where=where, names=(f"pred {name!r}" if name else "pred", "true"))
    if ctrl is not None:
        check_same_genes(true, ctrl, where=where, names=("true", "ctrl"))
    genes = true.var_names
    if top_genes is None and ctrl is not None:
        idx = tkm.top_de_genes(true.X, ctrl.X, k=min(100, true.n_vars))
        top_genes = list(genes[idx])
    top_genes = [] if top_genes is None else [str(g) for g in top_genes]
    unknown = [g for g in top_genes if g not in genes]
    if unknown:
        raise ValueError(f"{where}: top_genes not among the genes of true: {unknown[:5]}; pass names from var_names.")
    x = _gene_stat(true.X, statistic)
    func = tkm.r2_mean_sqpearson if statistic == "mean" else tkm.r2_var_sqpearson
    word = "mean" if statistic == "mean" else "variance"
    fig, axes = _axes_for(ax, len(preds), ncols=min(len(preds), 3), width=4.6, height=4.4)
    for (name, one), panel in zip(preds.items(), axes):
        _reg_panel(panel, x, _gene_stat(one.X, statistic), genes, top_genes, n_label, func, word, name)
    return fig


def _reg_panel(ax: Any, x: np.ndarray, y: np.ndarray, genes: Any, top_genes: list, n_label: int,
               func: Any, word: str, name: str) -> None:
    """One panel of :func:`reg_mean_plot`: per-gene statistic, true (x) vs predicted (y)."""
    fname = func.__name__
    r2_all = func(y, x)
    ax.scatter(x, y, s=8, color="0.6", alpha=0.6, edgecolors="none", label=f"all {x.size} genes: {fname} = {r2_all:.4f}")
    if top_genes:
        idx = genes.get_indexer(top_genes)
        r2_top = func(y[idx], x[idx]) if len(idx) >= 2 else float("nan")
        ax.scatter(x[idx], y[idx], s=14, color="C3", edgecolors="none",
                   label=f"top {len(idx)} genes: {fname} = {r2_top:.4f}")
        for gene, i in zip(top_genes[: max(0, int(n_label))], idx):
            ax.annotate(gene, (x[i], y[i]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    ax.plot([lo, hi], [lo, hi], color="k", ls="--", lw=0.8)
    ax.set_xlabel(f"true cells: {word} expression per gene")
    ax.set_ylabel(f"predicted cells: {word} expression per gene")
    title = f"per-gene {word} ({fname}; dashed: y = x)"
    ax.set_title(f"{name}\n{title}" if name else title, fontsize=9)
    ax.legend(fontsize=8, frameon=False, loc="upper left")


def latent_delta_plot(
    latent: Any,
    obs: "pd.DataFrame",
    *,
    cell_type_key: str = "cell_type",
    perturbation_key: str = "perturbation",
    control: str = "control",
    held_out: str | None = None,
    delta: Any = None,
    ax: Any = None,
    seed: int = 0,
) -> "Figure":
    """A latent space in 2-D (PCA), with each cell type's control-to-perturbed arrow and the predicted one.

    Points are coloured by cell type and marked by condition (circle: control, triangle:
    perturbed). For each cell type other than ``held_out`` that has both conditions, a solid
    arrow joins its control centroid to its perturbed centroid: these are the shifts scGen
    averages into one latent delta. With ``delta`` and ``held_out``, a dashed arrow labelled
    "predicted delta" starts at the held-out type's control centroid: the centroid and
    ``centroid + delta`` are projected into the same PCA (fitted on ``latent`` only, seed ``seed``).
    Taught in ``04_scgen`` (latent arithmetic) and ``05_scpram``.

    Args:
        latent: cells x latent dimensions (>= 2), e.g. ``model.get_latent(adata)``.
        obs: the cells' ``obs`` (same number of rows), with cell type and perturbation columns.
        cell_type_key: the ``obs`` column of cell types.
        perturbation_key: the ``obs`` column of perturbation labels.
        control: the control label.
        held_out: the held-out cell type (no observed arrow is drawn for it).
        delta: a latent vector (length = latent dimensions): the predicted shift.
        ax: an Axes to draw on (default: a new figure).
        seed: random state of the PCA.

    Returns:
        The Figure.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> obs = pd.DataFrame({"cell_type": np.repeat(["A", "B"], 20),
        ...                     "perturbation": np.tile(np.repeat(["control", "IFN"], 10), 2)})
        >>> z = rng.normal(size=(40, 4)) + (obs["perturbation"] == "IFN").to_numpy()[:, None]
        >>> len(latent_delta_plot(z, obs, held_out="B", delta=np.ones(4)).axes[0].patches)
        2
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch
    from sklearn.decomposition import PCA

    where = "latent_delta_plot"
    z = np.asarray(latent, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"{where}: latent must be a cells x dimensions matrix with >= 2 dimensions; got {z.shape}.")
    if not np.all(np.isfinite(z)):
        raise ValueError(f"{where}: latent contains NaN or infinite values.")
    if len(obs) != z.shape[0]:
        raise ValueError(f"{where}: obs has {len(obs)} rows but latent has {z.shape[0]} cells; pass adata.obs of the same cells.")
    missing = [c for c in (cell_type_key, perturbation_key) if c not in getattr(obs, "columns", [])]
    if missing:
        raise ValueError(f"{where}: obs is missing column(s) {missing}; pass adata.obs with the course schema.")
    if delta is not None and held_out is None:
        raise ValueError(f"{where}: delta needs held_out (the cell type whose control centroid it starts from).")
    types = obs[cell_type_key].astype(str).to_numpy()
    labels = obs[perturbation_key].astype(str).to_numpy()
    if held_out is not None and held_out not in set(types):
        raise ValueError(f"{where}: unknown held_out cell type {held_out!r}; known: {sorted(set(types))}.")
    pca = PCA(n_components=2, random_state=seed).fit(z)
    xy = pca.transform(z)
    fig, (ax,) = _axes_for(ax, 1, ncols=1, width=5.6, height=4.6)
    order = list(dict.fromkeys(types))
    colors = {t: f"C{i % 10}" for i, t in enumerate(order)}
    for t in order:
        for is_ctrl, marker in ((True, "o"), (False, "^")):
            mask = (types == t) & ((labels == control) if is_ctrl else (labels != control))
            if mask.any():
                ax.scatter(xy[mask, 0], xy[mask, 1], s=8, alpha=0.35, color=colors[t], marker=marker, edgecolors="none")
    handles = [Line2D([], [], ls="", marker="o", color=colors[t], label=t) for t in order]
    handles += [Line2D([], [], ls="", marker="o", color="0.3", label=control),
                Line2D([], [], ls="", marker="^", color="0.3", label="perturbed")]
    for t in order:
        ctrl, pert = (types == t) & (labels == control), (types == t) & (labels != control)
        if t == held_out or not ctrl.any() or not pert.any():
            continue
        start, end = xy[ctrl].mean(axis=0), xy[pert].mean(axis=0)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, color=colors[t], lw=1.8))
    handles.append(Line2D([], [], color="0.2", lw=1.8, label="observed delta (control -> perturbed centroid)"))
    if delta is not None:
        d = np.asarray(delta, dtype=np.float64).ravel()
        if d.size != z.shape[1] or not np.all(np.isfinite(d)):
            raise ValueError(f"{where}: delta must be a finite vector of length {z.shape[1]} (the latent dimensions); got {d.size}.")
        ctrl = (types == held_out) & (labels == control)
        if not ctrl.any():
            raise ValueError(f"{where}: the held-out cell type {held_out!r} has no {control!r} cells to start from.")
        centroid = z[ctrl].mean(axis=0)
        start, end = pca.transform(np.vstack([centroid, centroid + d]))
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=16, color="k", lw=2.2,
                                     ls="--", label="predicted delta"))
        handles.append(Line2D([], [], color="k", lw=2.2, ls="--", label=f"predicted delta ({held_out})"))
    ax.autoscale_view()
    ratio = pca.explained_variance_ratio_
    ax.set_xlabel(f"latent PC1 ({100 * ratio[0]:.0f}% of variance)")
    ax.set_ylabel(f"latent PC2 ({100 * ratio[1]:.0f}% of variance)")
    title = "Latent space (PCA): per-cell-type deltas"
    ax.set_title(title + (f"; held out: {held_out}" if held_out else ""), fontsize=10)
    ax.legend(handles=handles, fontsize=7, frameon=False, loc="best")
    return fig


def model_comparison(summary: "pd.DataFrame", *, metrics: Sequence[tuple[str, str]], ax: Any = None) -> "Figure":
    """Models side by side: the mean over seeds and its confidence interval, one panel per metric.

    Reads the output of :func:`tutorial_kit.models.summarize_seeds`. Models are on the y axis
    in the order of the table (the first on top); baselines (``no-change``, ``mean-shift``,
    ``mean``, ``additive``, exactly or followed by a space) are grey. Each panel title names the metric and gene set and says
    whether higher or lower is better. A model without an interval (one seed) shows only its mean;
    a NaN mean (e.g. ``pearson_delta`` of no-change, undefined) shows nothing, with "n/a" beside its name.
    Taught in ``04_scgen`` and ``05_scpram``.

    Args:
        summary: output of ``summarize_seeds`` (columns ``model, metric, gene_set, mean, ci_low, ci_high``),
            for one cell type.
        metrics: ``(metric, gene_set)`` pairs, one panel each.
        ax: one Axes per pair (default: a new figure).

    Returns:
        The Figure.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import pandas as pd
        >>> s = pd.DataFrame({"model": ["no-change", "scGen"], "metric": ["edistance"] * 2,
        ...                   "gene_set": ["pca50"] * 2, "mean": [1.0, 0.4], "ci_low": [0.9, 0.3],
        ...                   "ci_high": [1.1, 0.5]})
        >>> model_comparison(s, metrics=[("edistance", "pca50")]).axes[0].get_title()
        'edistance (pca50)  (lower is better)'
    """
    where = "model_comparison"
    need = ["model", "metric", "gene_set", "mean", "ci_low", "ci_high"]
    missing = [c for c in need if c not in getattr(summary, "columns", [])]
    if missing:
        raise ValueError(f"{where}: summary is missing column(s) {missing}; pass tk.models.summarize_seeds(table).")
    if "task" in summary.columns and summary["task"].nunique() > 1:
        raise ValueError(
            f"{where}: summary has several tasks {list(summary['task'].unique())[:5]}; "
            "select one (summary[summary.task == name]) or draw them all with benchmark_plot."
        )
    if "cell_type" in summary.columns and summary["cell_type"].nunique() > 1:
        raise ValueError(
            f"{where}: summary has several cell types {list(summary['cell_type'].unique())[:5]}; "
            "select one (summary[summary.cell_type == 'CD4T']) or use holdout_heatmap."
        )
    pairs = [tuple(p) for p in metrics]
    if not pairs:
        raise ValueError(f"{where}: metrics is empty; pass (metric, gene_set) pairs, e.g. [('edistance', 'pca50')].")
    available = list(dict.fromkeys(zip(summary["metric"], summary["gene_set"])))
    unknown = [p for p in pairs if p not in available]
    if unknown:
        raise ValueError(f"{where}: unknown (metric, gene_set) {unknown}; available: {available[:12]}.")
    models = list(dict.fromkeys(summary["model"]))
    fig, axes = _axes_for(ax, len(pairs), ncols=3, width=4.0, height=0.5 * len(models) + 1.4)
    for ax_, (metric, gene_set) in zip(axes, pairs):
        rows = summary[(summary["metric"] == metric) & (summary["gene_set"] == gene_set)].set_index("model")
        labels = []
        for y, model in enumerate(models):
            baseline = any(model == b or model.startswith(b + " ") for b in _BASELINE_NAMES)
            color = "0.55" if baseline else "C0"
            mean = float(rows.loc[model, "mean"]) if model in rows.index else float("nan")
            labels.append(model if np.isfinite(mean) else f"{model} (n/a)")
            if not np.isfinite(mean):
                continue
            lo, hi = float(rows.loc[model, "ci_low"]), float(rows.loc[model, "ci_high"])
            if np.isfinite(lo) and np.isfinite(hi):
                ax_.errorbar(mean, y, xerr=[[mean - lo], [hi - mean]], fmt="o", color=color, capsize=3)
            else:
                ax_.plot(mean, y, "o", color=color)
        ax_.set_yticks(range(len(models)))
        ax_.set_yticklabels(labels)
        ax_.set_ylim(len(models) - 0.5, -0.5)
        better = "lower is better" if metric in _LOWER_IS_BETTER else "higher is better"
        arrow = "\u2190" if metric in _LOWER_IS_BETTER else "\u2192"
        ax_.set_title(f"{metric} ({gene_set})  ({better})", fontsize=10)
        ax_.set_xlabel(f"mean over seeds, t interval  {arrow} better", fontsize=9)
    if ax is None:
        fig.suptitle("Models compared (grey: baselines)")
    return fig


def holdout_heatmap(table: "pd.DataFrame", *, metric: str, gene_set: str, ax: Any = None) -> "Figure":
    """Held-out cell types x models: the mean over seeds of one metric, annotated.

    Reads the output of :func:`tutorial_kit.models.evaluate_cell_types`. Rows keep the
    table's order of cell types, columns its order of models; NaN cells (undefined values)
    are blank and annotated "n/a".
    Taught in ``04_scgen`` (does the model generalise to every cell type?).

    Args:
        table: columns ``cell_type, model, metric, gene_set, value`` (one row per seed).
        metric: the metric to show.
        gene_set: its gene set (e.g. ``'all'``, ``'top100_de'``, ``'pca50'``).
        ax: an Axes to draw on (default: a new figure).

    Returns:
        The Figure (with a colour bar named after the metric).

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import pandas as pd
        >>> t = pd.DataFrame({"cell_type": ["A", "A", "B", "B"], "model": ["m1", "m2"] * 2, "seed": 0,
        ...                   "metric": "edistance", "gene_set": "pca5", "value": [1.0, 2.0, 3.0, 4.0]})
        >>> len(holdout_heatmap(t, metric="edistance", gene_set="pca5").axes)  # heatmap and colour bar
        2
    """
    import warnings

    where = "holdout_heatmap"
    need = ["cell_type", "model", "metric", "gene_set", "value"]
    missing = [c for c in need if c not in getattr(table, "columns", [])]
    if missing:
        raise ValueError(f"{where}: table is missing column(s) {missing}; pass tk.models.evaluate_cell_types(...).")
    rows = table[(table["metric"] == metric) & (table["gene_set"] == gene_set)]
    if rows.empty:
        available = list(dict.fromkeys(zip(table["metric"], table["gene_set"])))
        raise ValueError(f"{where}: no rows for metric {metric!r} with gene_set {gene_set!r}; available: {available[:12]}.")
    cell_types = list(dict.fromkeys(rows["cell_type"]))
    models = list(dict.fromkeys(rows["model"]))
    values = np.full((len(cell_types), len(models)), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells stay NaN
        for (ct, model), group in rows.groupby(["cell_type", "model"], sort=False):
            values[cell_types.index(ct), models.index(model)] = np.nanmean(group["value"].to_numpy(dtype=float))
    fig, (ax,) = _axes_for(ax, 1, ncols=1, width=1.3 * len(models) + 2.4, height=0.45 * len(cell_types) + 1.6)
    cmap = "viridis_r" if metric in _LOWER_IS_BETTER else "viridis"
    im = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="auto")
    finite = values[np.isfinite(values)]
    mid = float(np.mean([finite.min(), finite.max()])) if finite.size else 0.0
    for i in range(len(cell_types)):
        for j in range(len(models)):
            v = values[i, j]
            text = "n/a" if not np.isfinite(v) else f"{v:.2f}"
            dark = np.isfinite(v) and ((v < mid) != (metric in _LOWER_IS_BETTER))
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="w" if dark else "k")
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels(models, rotation=30, ha="right")
    ax.set_yticks(range(len(cell_types)))
    ax.set_yticklabels(cell_types)
    ax.set_xlabel("model")
    ax.set_ylabel("held-out cell type")
    better = "lower is better" if metric in _LOWER_IS_BETTER else "higher is better"
    ax.set_title(f"{metric} ({gene_set}) per held-out cell type, mean over seeds ({better})", fontsize=10)
    fig.colorbar(im, ax=ax, label=f"{metric} ({gene_set}), mean over seeds")
    return fig


def spread_plot(
    predictions: "dict[str, AnnData]", true: "AnnData", ctrl: "AnnData", *, genes: Sequence[str], ax: Any = None
) -> "Figure":
    """Per-cell expression of a few genes in control, true perturbed and predicted cells (box plots).

    One panel per gene; the standard deviation over cells of each group is written under its
    box. A model that adds one shared shift to every control cell (mean-shift, and scGen's
    latent arithmetic to a large extent) moves the box but keeps the control spread, while the
    real perturbed cells may spread differently: what ``r2_var_sqpearson`` measures.
    Taught in ``04_scgen`` and ``05_scpram`` (scPRAM's per-cell attention aims at the spread).

    Args:
        predictions: model name -> predicted cells (same genes as ``true``).
        true: observed perturbed cells.
        ctrl: control cells, same genes.
        genes: gene names to show (e.g. the top DEGs).
        ax: one Axes per gene (default: a new figure).

    Returns:
        The Figure.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import anndata as ad
        >>> rng = np.random.default_rng(0)
        >>> ctrl, true = ad.AnnData(rng.normal(size=(20, 3))), ad.AnnData(rng.normal(2.0, 2.0, size=(20, 3)))
        >>> pred = ad.AnnData(ctrl.X + 2.0)
        >>> len(spread_plot({"mean-shift": pred}, true, ctrl, genes=["0", "2"]).axes)
        2
    """
    from tutorial_kit.validate import check_same_genes

    where = "spread_plot"
    if not hasattr(predictions, "items"):
        raise ValueError(f"{where}: predictions must be a dict from model name to predicted AnnData.")
    check_same_genes(true, ctrl, where=where, names=("true", "ctrl"))
    for name, pred in predictions.items():
        check_same_genes(true, pred, where=where, names=("true", str(name)))
    genes = [str(g) for g in genes]
    if not genes:
        raise ValueError(f"{where}: genes is empty; pass a few gene names, e.g. the top DE genes.")
    unknown = [g for g in genes if g not in true.var_names]
    if unknown:
        raise ValueError(f"{where}: genes not among the genes of true: {unknown[:5]}.")
    groups = {"control": ctrl, "true": true, **{str(k): v for k, v in predictions.items()}}
    fig, axes = _axes_for(ax, len(genes), ncols=3, width=max(3.4, 1.0 * len(groups) + 1.2), height=3.4)
    colors = ["0.6", "C3"] + [f"C{i % 10}" for i in range(len(predictions))]
    for ax_, gene in zip(axes, genes):
        data = [_dense_column(a, gene) for a in groups.values()]
        box = ax_.boxplot(data, positions=np.arange(len(data)), widths=0.6, patch_artist=True, showfliers=False)
        for patch, color in zip(box["boxes"], colors):
            patch.set_facecolor(color)
            patch.set_alpha(0.6)
        ax_.set_xticks(np.arange(len(data)))
        ax_.set_xticklabels([f"{name}\nsd {np.std(d, ddof=1) if d.size > 1 else float('nan'):.2f}"
                             for name, d in zip(groups, data)], fontsize=8)
        ax_.set_ylabel("expression per cell (log-normalized)")
        ax_.set_title(gene, fontsize=10)
    if ax is None:
        fig.suptitle("Per-cell expression: a shared shift moves the box but keeps the control spread")
    return fig


# --------------------------------------------------------------------------- linear baselines (notebook 09)

__all__ += ["effect_scatter", "interaction_residuals"]


def interaction_residuals(table: "pd.DataFrame", *, x: str, y: str, label: str = "perturbation",
                          ax: Any = None) -> "Figure":
    """One point per double perturbation: two interaction scores against each other, each point named.

    The title gives the Spearman rank correlation and the number of doubles, because with a
    handful of doubles the eye reads patterns that a rank test does not support.
    Taught in ``09_linear_baselines`` (the non-additive residual of each double against the
    Norman 2019 interaction table).

    Args:
        table: one row per double with numeric columns ``x`` and ``y`` and a name column ``label``.
        x: column on the x axis (e.g. ``'1 - corr_fit'`` from the Norman 2019 table).
        y: column on the y axis (e.g. ``'residual_l2'``, the norm of observed minus additive).
        label: column naming each point.
        ax: an Axes to draw on (default: a new figure).

    Returns:
        The Figure.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import pandas as pd
        >>> t = pd.DataFrame({"perturbation": ["A+B", "C+D", "E+F"], "u": [0.1, 0.2, 0.3], "v": [1.0, 3.0, 2.0]})
        >>> interaction_residuals(t, x="u", y="v").axes[0].get_title()
        'v vs u: Spearman rho = 0.50 over 3 doubles'
    """
    from scipy import stats

    where = "interaction_residuals"
    missing = [c for c in (x, y, label) if c not in getattr(table, "columns", [])]
    if missing:
        have = list(getattr(table, "columns", []))[:10]
        raise ValueError(f"{where}: table is missing column(s) {missing}; it has {have}.")
    xs = np.asarray(table[x], dtype=float)
    ys = np.asarray(table[y], dtype=float)
    keep = np.isfinite(xs) & np.isfinite(ys)
    if keep.sum() < 2:
        raise ValueError(f"{where}: fewer than 2 rows with finite {x!r} and {y!r}; nothing to compare.")
    xs, ys, names = xs[keep], ys[keep], np.asarray(table[label].astype(str))[keep]
    fig, (ax_,) = _axes_for(ax, 1, ncols=1, width=5.6, height=4.4)
    ax_.scatter(xs, ys, s=40, color="C0")
    for xi, yi, name in zip(xs, ys, names):
        ax_.annotate(name, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
    rho = float(stats.spearmanr(xs, ys)[0]) if keep.sum() > 2 else float("nan")
    ax_.set_xlabel(x)
    ax_.set_ylabel(y)
    ax_.set_title(f"{y} vs {x}: Spearman rho = {rho:.2f} over {int(keep.sum())} doubles", fontsize=10)
    return fig


def effect_scatter(predicted: "dict[str, Any]", true: Any, *, title: str = "Predicted vs true effect",
                   xlabel: str = "true effect", ylabel: str = "predicted effect") -> "Figure":
    """One panel per model: the predicted effect of each gene against the true (or observed) effect.

    The dashed line is ``y = x``; each panel title gives the Pearson correlation over genes
    ("n/a" when a prediction is constant, e.g. no-change). Use it for one perturbation, or for
    several stacked, as long as ``true`` lines up with every prediction.
    Taught in ``09_linear_baselines`` (the linear model on a simulated screen, where the truth is known).

    Args:
        predicted: model name -> predicted effect per gene (1-D, same length as ``true``).
        true: the effect to compare with, per gene.
        title: the figure's title.
        xlabel: x-axis label (say what the effect is and its units).
        ylabel: y-axis label.

    Returns:
        The Figure.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> fig = effect_scatter({"m": [0.0, 1.0, 2.0]}, [0.0, 1.0, 3.0])
        >>> fig.axes[0].get_title()
        'm: Pearson r = 0.98'
    """
    where = "effect_scatter"
    if not hasattr(predicted, "items") or not predicted:
        raise ValueError(f"{where}: predicted must be a non-empty dict from model name to a vector of effects.")
    t = np.asarray(true, dtype=float).ravel()
    fig, axes = _subplots(len(predicted), ncols=3, width=4.0, height=3.8)
    for ax_, (name, values) in zip(axes, predicted.items()):
        p = np.asarray(values, dtype=float).ravel()
        if p.shape != t.shape:
            raise ValueError(f"{where}: the prediction of {name!r} has {p.size} values but true has {t.size}; "
                             "pass one value per gene, in the same order.")
        ax_.scatter(t, p, s=8, alpha=0.6, color="C0", edgecolors="none")
        lo, hi = float(min(t.min(), p.min())), float(max(t.max(), p.max()))
        ax_.plot([lo, hi], [lo, hi], color="k", lw=0.8, ls="--")
        r = float(np.corrcoef(t, p)[0, 1]) if np.std(p) > 0 and np.std(t) > 0 else float("nan")
        ax_.set_title(f"{name}: Pearson r = {r:.2f}" if np.isfinite(r) else f"{name}: Pearson r = n/a", fontsize=10)
        ax_.set_xlabel(xlabel, fontsize=9)
        ax_.set_ylabel(ylabel, fontsize=9)
    fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------- benchmarking (notebook 10)

__all__ += ["benchmark_plot", "rank_heatmap"]


def _gene_set_for(rows: "pd.DataFrame", metric: str) -> str | None:
    """The gene set a benchmark panel shows for ``metric``: ``'all'`` if scored, else the only one."""
    sets = list(dict.fromkeys(rows.loc[rows["metric"] == metric, "gene_set"]))
    if "all" in sets:
        return "all"
    return sets[0] if sets else None


def benchmark_plot(summary: "pd.DataFrame", *, metrics: Sequence[str], tasks: Sequence[str] | None = None) -> "Figure":
    """Every task x metric of a benchmark: the mean over seeds and its interval per method.

    One row of panels per task, one column per metric (x axes shared per column, so a task
    can be compared with its variant, e.g. balanced vs unbalanced training data). Each panel
    is a :func:`model_comparison` panel (baselines grey); its gene set is ``'all'`` when the
    metric was scored on all genes, else the one gene set it was scored on (e.g. ``top20_de``).
    A metric not scored on a task leaves an empty panel that says so.
    Taught in ``10_benchmarking``.

    Args:
        summary: output of :func:`tutorial_kit.models.summarize_seeds` of a benchmark table
            (with a ``task`` column).
        metrics: metric names, one column of panels each.
        tasks: tasks to draw, in this order (default: all, in the order of the table).

    Returns:
        The Figure.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import pandas as pd
        >>> s = pd.DataFrame({"task": ["t1", "t1", "t2"], "model": ["no-change", "scGen", "scGen"],
        ...                   "metric": "edistance", "gene_set": "pca50", "mean": [1.0, 0.4, 0.5],
        ...                   "ci_low": [0.9, 0.3, 0.4], "ci_high": [1.1, 0.5, 0.6]})
        >>> [a.get_title().splitlines()[0] for a in benchmark_plot(s, metrics=["edistance"]).axes]
        ['t1', 't2']
    """
    import matplotlib.pyplot as plt

    where = "benchmark_plot"
    need = ["task", "model", "metric", "gene_set", "mean", "ci_low", "ci_high"]
    missing = [c for c in need if c not in getattr(summary, "columns", [])]
    if missing:
        raise ValueError(f"{where}: summary is missing column(s) {missing}; pass "
                         "tk.models.summarize_seeds(result.table) of tk.models.run_benchmark.")
    metrics = list(metrics)
    if not metrics:
        raise ValueError(f"{where}: metrics is empty; pass metric names, e.g. ['pearson_delta', 'edistance'].")
    unknown = [m for m in metrics if m not in set(summary["metric"])]
    if unknown:
        raise ValueError(f"{where}: metric(s) {unknown} are not in the summary; it has {sorted(set(summary['metric']))}.")
    known_tasks = list(dict.fromkeys(summary["task"]))
    tasks = known_tasks if tasks is None else list(tasks)
    if not tasks or any(t not in known_tasks for t in tasks):
        raise ValueError(f"{where}: tasks must be among {known_tasks}; got {tasks}.")
    n_models = max(summary.loc[summary["task"] == t, "model"].nunique() for t in tasks)
    fig, axes = plt.subplots(len(tasks), len(metrics), squeeze=False, sharex="col",
                             figsize=(3.6 * len(metrics) + 1.2, (0.42 * n_models + 1.3) * len(tasks)))
    for row, task in zip(axes, tasks):
        rows = summary[summary["task"] == task]
        for ax, metric in zip(row, metrics):
            gene_set = _gene_set_for(rows, metric)
            if gene_set is None:
                ax.text(0.5, 0.5, f"{metric}\nnot scored on this task", ha="center", va="center",
                        transform=ax.transAxes, fontsize=9, color="0.4")
                ax.set_yticks([])
                ax.set_title(task, fontsize=10)
                continue
            model_comparison(rows, metrics=[(metric, gene_set)], ax=ax)
            better = "lower is better" if metric in _LOWER_IS_BETTER else "higher is better"
            ax.set_title(f"{task}\n{metric} ({gene_set}), {better}", fontsize=9)
            ax.set_xlabel("")
    for ax in axes[-1]:
        ax.set_xlabel("mean over seeds, t interval", fontsize=9)
    fig.suptitle("Benchmark: methods per task and metric (grey: baselines)")
    fig.tight_layout()
    return fig


def rank_heatmap(ranks: "pd.DataFrame", *, title: str | None = None, ax: Any = None) -> "Figure":
    """Ranks of the methods (1 = best) per metric, and per seed when there are seeds.

    Reads the output of :func:`tutorial_kit.models.rank_methods` for ONE task: rows are the
    methods, columns the metrics (``metric (gene_set)``, with ``seed s`` under it when the ranks
    are per seed). Each cell shows the rank; an undefined value shows ``n/a``. When the colours
    of a row change across columns, the ranking depends on the metric or the seed.
    Taught in ``10_benchmarking``.

    Args:
        ranks: columns ``model, metric, gene_set, rank`` (and optionally ``seed``; ``task`` with
            a single value).
        title: the title (default: says what the columns are).
        ax: an Axes to draw in (default: a new figure).

    Returns:
        The Figure.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import pandas as pd
        >>> r = pd.DataFrame({"model": ["a", "b"] * 2, "metric": ["mse_top_de"] * 2 + ["pearson_delta"] * 2,
        ...                   "gene_set": ["top20_de"] * 2 + ["all"] * 2, "rank": [1.0, 2.0, 2.0, 1.0]})
        >>> rank_heatmap(r).axes[0].get_xticklabels()[1].get_text()
        'pearson_delta (all)'
    """
    where = "rank_heatmap"
    need = ["model", "metric", "gene_set", "rank"]
    missing = [c for c in need if c not in getattr(ranks, "columns", [])]
    if missing:
        raise ValueError(f"{where}: ranks is missing column(s) {missing}; pass tk.models.rank_methods(table).")
    if "task" in ranks.columns and ranks["task"].nunique() > 1:
        raise ValueError(f"{where}: ranks has several tasks {list(ranks['task'].unique())[:5]}; "
                         "select one: ranks[ranks.task == name].")
    if "cell_type" in ranks.columns and ranks["cell_type"].nunique() > 1:
        raise ValueError(f"{where}: ranks has several cell types {list(ranks['cell_type'].unique())[:5]}; "
                         "select one: ranks[ranks.cell_type == name].")
    if len(ranks) == 0:
        raise ValueError(f"{where}: ranks is empty.")
    label = ranks["metric"] + " (" + ranks["gene_set"] + ")"
    if "seed" in ranks.columns:
        label = label + "\nseed " + ranks["seed"].astype(str)
    columns = list(dict.fromkeys(label))
    models = list(dict.fromkeys(ranks["model"]))
    values = np.full((len(models), len(columns)), np.nan)
    for model, col, rank in zip(ranks["model"], label, ranks["rank"]):
        values[models.index(model), columns.index(col)] = rank
    fig, (ax,) = _axes_for(ax, 1, ncols=1, width=0.95 * len(columns) + 2.6, height=0.45 * len(models) + 2.0)
    im = ax.imshow(np.ma.masked_invalid(values), cmap="viridis_r", aspect="auto", vmin=1, vmax=max(len(models), 2))
    for i in range(len(models)):
        for j in range(len(columns)):
            v = values[i, j]
            text = "n/a" if not np.isfinite(v) else (f"{v:.0f}" if v == int(v) else f"{v:.1f}")
            ax.text(j, i, text, ha="center", va="center", fontsize=8,
                    color="k" if np.isfinite(v) and v > (len(models) + 1) / 2 else "w" if np.isfinite(v) else "0.3")
    ax.set_xticks(range(len(columns)))
    ax.set_xticklabels(columns, rotation=40, ha="right", fontsize=8)
    ax.set_yticks(range(len(models)))
    ax.set_yticklabels(models)
    what = "metric and seed" if "seed" in ranks.columns else "metric (mean over seeds)"
    ax.set_title(title or f"Rank of each method per {what} (1 = best)", fontsize=10)
    fig.colorbar(im, ax=ax, label="rank (1 = best)")
    return fig
