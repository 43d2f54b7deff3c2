"""Figures of perturbation-response models: training, predictions, comparisons, benchmarks, rankings, interactions.

Taught in ``04_scgen`` and ``05_scpram`` (training, per-gene and per-cell predictions, models
compared over seeds), ``09_linear_baselines`` (effects and genetic interactions) and
``10_benchmarking`` (every task and metric, rankings). Baselines are drawn grey.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from tutorial_kit.arrays import as_matrix, col_mean, col_mean_var, to_dense
from tutorial_kit.metrics import LOWER_IS_BETTER
from tutorial_kit.plotting._style import BASELINE_COLOR, axes_for, better, is_baseline, subplots

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from anndata import AnnData
    from matplotlib.figure import Figure

__all__ = [
    "dose_curves",
    "benchmark_plot",
    "effect_scatter",
    "holdout_heatmap",
    "interaction_residuals",
    "latent_delta_plot",
    "model_comparison",
    "rank_heatmap",
    "reg_mean_plot",
    "spread_plot",
    "training_history",
]


# --------------------------------------------------------------------------- training (notebooks 04, 05)


def training_history(history: "pd.DataFrame", *, title: str = "Training history") -> "Figure":
    """Per-epoch losses of a trained model (``model.history_``), one panel per loss.

    Losses of different kinds (reconstruction, KL divergence, validation) live on different
    scales, so each gets its own panel and axis. Taught in ``04_scgen`` and ``05_scpram``.

    Args:
        history: a DataFrame with one row per epoch: an ``epoch`` column (else the index is
            the epoch) and one numeric column per recorded loss.
        title: the figure's title (name the model and its seed).

    Returns:
        A Figure with one panel per loss column, each against the epoch.

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
    fig, axes = subplots(len(columns), ncols=min(len(columns), 3), width=3.8, height=3.0)
    for column, ax in zip(columns, axes):
        ax.plot(epoch, history[column].to_numpy(dtype=float), marker="o", ms=3, color="C0")
        ax.set_xlabel("epoch")
        ax.set_ylabel(str(column))
        ax.set_title(str(column), fontsize=10)
    fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------- predictions and comparisons (notebooks 04, 05)


def _gene_stat(x: Any, statistic: str) -> np.ndarray:
    """Per-gene mean or variance (``ddof=1``) over the cells of ``x``, float64."""
    mat = as_matrix(x, name="X")
    if mat.shape[0] < 2:
        if statistic == "var":
            raise ValueError("statistic='var' needs at least 2 cells per group (a variance over cells, ddof=1).")
        return col_mean(mat)
    mean, var = col_mean_var(mat)
    return np.asarray(mean if statistic == "mean" else var, dtype=np.float64).ravel()


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
        A Figure with one panel per prediction (the figure of ``ax`` when given).

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
    fig, axes = axes_for(ax, len(preds), ncols=min(len(preds), 3), width=4.6, height=4.4)
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
    Taught in ``04_scgen`` (latent arithmetic).

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
        A Figure with one panel: the cells in the first two latent PCs, with the arrows.

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
    fig, (ax,) = axes_for(ax, 1, ncols=1, width=5.6, height=4.6)
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
    Taught in ``04_scgen`` and ``05_scpram``; used again in ``09_linear_baselines`` and, through
    :func:`benchmark_plot`, in ``10_benchmarking``.

    Args:
        summary: output of ``summarize_seeds`` (columns ``model, metric, gene_set, mean, ci_low, ci_high``),
            for one cell type.
        metrics: ``(metric, gene_set)`` pairs, one panel each.
        ax: one Axes per pair (default: a new figure).

    Returns:
        A Figure with one panel per ``(metric, gene_set)`` pair (the figure of ``ax`` when given).

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
    fig, axes = axes_for(ax, len(pairs), ncols=3, width=4.0, height=0.5 * len(models) + 1.4)
    for ax_, (metric, gene_set) in zip(axes, pairs):
        rows = summary[(summary["metric"] == metric) & (summary["gene_set"] == gene_set)].set_index("model")
        labels = []
        for y, model in enumerate(models):
            color = BASELINE_COLOR if is_baseline(model) else "C0"
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
        arrow = "\u2190" if metric in LOWER_IS_BETTER else "\u2192"
        ax_.set_title(f"{metric} ({gene_set})  ({better(metric)})", fontsize=10)
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
    fig, (ax,) = axes_for(ax, 1, ncols=1, width=1.3 * len(models) + 2.4, height=0.45 * len(cell_types) + 1.6)
    cmap = "viridis_r" if metric in LOWER_IS_BETTER else "viridis"
    im = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="auto")
    finite = values[np.isfinite(values)]
    mid = float(np.mean([finite.min(), finite.max()])) if finite.size else 0.0
    for i in range(len(cell_types)):
        for j in range(len(models)):
            v = values[i, j]
            text = "n/a" if not np.isfinite(v) else f"{v:.2f}"
            dark = np.isfinite(v) and ((v < mid) != (metric in LOWER_IS_BETTER))
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="w" if dark else "k")
    ax.set_xticks(range(len(models)))
    ax.set_xticklabels(models, rotation=30, ha="right")
    ax.set_yticks(range(len(cell_types)))
    ax.set_yticklabels(cell_types)
    ax.set_xlabel("model")
    ax.set_ylabel("held-out cell type")
    ax.set_title(f"{metric} ({gene_set}) per held-out cell type, mean over seeds ({better(metric)})", fontsize=10)
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
    Taught in ``05_scpram`` (scPRAM's per-cell attention aims at the spread).

    Args:
        predictions: model name -> predicted cells (same genes as ``true``).
        true: observed perturbed cells.
        ctrl: control cells, same genes.
        genes: gene names to show (e.g. the top DEGs).
        ax: one Axes per gene (default: a new figure).

    Returns:
        A Figure with one panel of box plots per gene.

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
    fig, axes = axes_for(ax, len(genes), ncols=3, width=max(3.4, 1.0 * len(groups) + 1.2), height=3.4)
    colors = ["0.6", "C3"] + [f"C{i % 10}" for i in range(len(predictions))]
    for ax_, gene in zip(axes, genes):
        data = [to_dense(a[:, gene].X).ravel() for a in groups.values()]
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
        A Figure with one panel: one named point per double.

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
    fig, (ax_,) = axes_for(ax, 1, ncols=1, width=5.6, height=4.4)
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
        A Figure with one panel per model.

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
    fig, axes = subplots(len(predicted), ncols=3, width=4.0, height=3.8)
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
        A Figure with one row of panels per task and one column per metric.

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
            ax.set_title(f"{task}\n{metric} ({gene_set}), {better(metric)}", fontsize=9)
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
        A Figure with the heatmap and its colour bar.

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
    fig, (ax,) = axes_for(ax, 1, ncols=1, width=0.95 * len(columns) + 2.6, height=0.45 * len(models) + 2.0)
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


# --------------------------------------------------------------------------- doses (notebook 06)


def dose_curves(curves: "dict[str, pd.DataFrame]", genes: Sequence[str], *, observed: "pd.DataFrame | None" = None,
                held_out: Sequence[float] = (), truth: "pd.DataFrame | None" = None, title: str = "Dose response") -> "Figure":
    """Dose-response curves of a few genes: each model's curve, the truth and the measured doses.

    One panel per gene, log dose on the x axis, the log fold change versus control on the y axis.
    Taught in ``06_cpa_biolord``.

    Args:
        curves: model name -> doses x genes (:func:`tutorial_kit.models.dose_response`).
        genes: the genes to draw, one panel each.
        observed: doses x genes measured on real cells (:func:`tutorial_kit.models.observed_dose_response`):
            filled dots at trained doses, open circles at ``held_out`` doses.
        held_out: the doses no model was trained on.
        truth: doses x genes of a simulator's true curve, drawn as a black line.
        title: the figure's title.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import pandas as pd
        >>> c = pd.DataFrame({"g": [0.0, -1.0, -2.0]}, index=[1.0, 10.0, 100.0])
        >>> len(dose_curves({"m": c}, ["g"], observed=c, held_out=[10.0], truth=c).axes)
        1
    """
    if not curves and truth is None:
        raise ValueError("dose_curves: give at least one model curve or the truth.")
    genes = list(genes)
    if not genes:
        raise ValueError("dose_curves: genes is empty; name the genes to draw.")
    fig, axes = subplots(len(genes), ncols=min(len(genes), 4), width=3.3, height=2.8)
    held = {float(d) for d in held_out}
    for gene, ax in zip(genes, axes):
        if truth is not None:
            ax.plot(truth.index, truth[gene], color="black", lw=2, label="truth")
        n_baselines = 0
        for i, (name, table) in enumerate(curves.items()):
            style = "-"
            if is_baseline(name):
                style, n_baselines = ("--", ":", "-.")[n_baselines % 3], n_baselines + 1
            colour = BASELINE_COLOR if is_baseline(name) else f"C{i}"
            ax.plot(table.index, table[gene], color=colour, lw=1.5, ls=style, label=name)
        if observed is not None:
            doses = observed.index.to_numpy(dtype=float)
            trained = np.array([d not in held for d in doses])
            ax.scatter(doses[trained], observed[gene].to_numpy()[trained], color="C3", s=18, zorder=3, label="measured (trained)")
            if (~trained).any():
                ax.scatter(doses[~trained], observed[gene].to_numpy()[~trained], facecolors="none", edgecolors="C3",
                           s=40, zorder=3, label="measured (held out)")
        ax.set_xscale("log")
        ax.axhline(0, color="0.8", lw=0.8)
        ax.set_title(str(gene), fontsize=10)
        ax.set_xlabel("dose")
        ax.set_ylabel("log fold change vs control")
    axes[0].legend(fontsize=7)
    fig.suptitle(title)
    return fig
