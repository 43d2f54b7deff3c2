"""Figures of the GAN simulator: training dynamics, real and generated cells, mode collapse, augmentation.

Taught in ``03_simulation_gan``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from tutorial_kit.plotting._style import BASELINE_COLOR, require_columns, subplots

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from anndata import AnnData
    from matplotlib.figure import Figure

__all__ = ["augmentation_results", "diversity_comparison", "embedding_overlay", "gan_history"]


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
    require_columns(history, ["epoch", "critic_loss", "generator_loss", "wasserstein"], "history")
    fig, (left, right) = subplots(2, ncols=2, width=4.8, height=3.4)
    epoch = history["epoch"].to_numpy()
    panels = (
        (left, [("critic_loss", "C3", "critic loss"), ("generator_loss", "C0", "generator loss")],
         "loss (mean over the epoch's critic steps)", "Losses: critic D(fake) - D(real) + penalty; generator -D(fake)"),
        (right, [("wasserstein", "C2", "E[D(real)] - E[D(generated)]")],
         "critic's Wasserstein estimate", "Distance between real and generated cells, as the critic sees it"),
    )
    for ax, curves, ylabel, title in panels:
        for column, color, label in curves:
            ax.plot(epoch, history[column].to_numpy(), color=color, label=label)
        ax.axhline(0.0, color="0.6", lw=0.8)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=8, frameon=False)
    fig.suptitle("WGAN-GP training dynamics")
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
    fig, axes = subplots(len(sets), ncols=3, width=4.0, height=3.8)
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
    fig, axes = subplots(1, ncols=1, width=8.5, height=0.13 * len(groups) * len(sources) + 1.8)
    ax = axes[0]
    height = 0.8 / len(sources)
    y = np.arange(len(groups))
    for i, source in enumerate(sources):
        ax.barh(y + (i - (len(sources) - 1) / 2) * height, table[source].to_numpy(dtype=float), height=height,
                color=BASELINE_COLOR if i == 0 else f"C{i - 1}", label=str(source))
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
    require_columns(df, [by, *metrics], "df")
    if len(df) == 0:
        raise ValueError("df is empty; pass one row per run and training set.")
    names = list(dict.fromkeys(df[by].astype(str)))
    fig, axes = subplots(len(metrics), ncols=len(metrics), width=3.4, height=0.45 * len(names) + 1.6)
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
