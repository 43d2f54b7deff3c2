"""Figures of the statistical simulators: the GRN screen, the copula's marginals and correlations, realism.

Taught in ``02_simulation_statistical``; :func:`realism_summary` is used again in ``03_simulation_gan``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from tutorial_kit.arrays import dense_rows, to_dense
from tutorial_kit.plotting._style import require_columns, subplots

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from anndata import AnnData
    from matplotlib.figure import Figure

__all__ = [
    "correlation_heatmaps",
    "family_counts",
    "gene_stat_agreement",
    "grn_network",
    "interaction_scatter",
    "marginal_fits",
    "realism_summary",
    "true_effects",
]


# --------------------------------------------------------------------------- GRN simulator

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

    Taught in ``02_simulation_statistical`` (the GRN simulator).

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
        grn.positions(highlight)  # refuses genes that are not in the network
        from tutorial_kit.data.schema import normalize_perturbation

        highlight = normalize_perturbation(highlight)
        hit = set(perturbation_parts(highlight))
        for g in hit:
            down |= grn.descendants(g)
        down -= hit
    fig, (ax,) = subplots(1, width=12.0, height=5.5)
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

    Taught in ``02_simulation_statistical`` (the GRN simulator).

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
    fig, (ax,) = subplots(1, width=max(6.0, 0.22 * len(cols) + 3), height=max(3.0, 0.22 * len(eff) + 2))
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
    Taught in ``02_simulation_statistical`` (the GRN simulator).

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
    fig, axes = subplots(2, ncols=2, width=5.0, height=4.6)
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
    require_columns(summary, [by, "metric", "mean", "ci_low", "ci_high"], "summary")
    if len(summary) == 0:
        raise ValueError("summary is empty; pass tk.simulate.summarize_realism(results).")
    floor = summary.attrs.get("floor", "real (split-half)")
    level = summary.attrs.get("ci", 0.95)
    metrics = list(dict.fromkeys(summary["metric"].astype(str)))
    names = list(dict.fromkeys(summary[by].astype(str)))
    fig, axes = subplots(len(metrics), ncols=3, width=4.4, height=0.42 * len(names) + 1.8)
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
    No notebook draws it yet: it shows the per-gene statistics behind the realism checks
    taught in ``02_simulation_statistical`` and ``03_simulation_gan``.

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
    fig, axes = subplots(3 * len(generated), ncols=3, width=3.8, height=3.6)
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


# --------------------------------------------------------------------------- copula simulator (notebook 02)

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
    from scipy import stats

    from tutorial_kit.simulate import group_labels
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
    fig, axes = subplots(len(genes), ncols=3, width=4.0, height=3.2)
    for ax, gene in zip(axes, genes):
        obs = dense_rows(x, np.flatnonzero(cells), columns=[var.index(gene)]).ravel()
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
    return to_dense(sp.csr_matrix(log1p_cp10k(x))[:, genes])


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

    from tutorial_kit.simulate import group_labels
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
