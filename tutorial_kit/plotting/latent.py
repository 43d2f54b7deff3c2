"""Figures of latent spaces side by side: what each space shows, and what a classifier reads from it.

Taught in ``07_contrastivevi`` (PCA, background and salient spaces). matplotlib is imported
inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from tutorial_kit.plotting._style import axes_for, require_columns, subplots

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["latent_scatter", "space_scores"]


def _is_numeric(values: np.ndarray) -> bool:
    return values.dtype.kind in "fiu" and np.unique(values).size > 12


def latent_scatter(
    spaces: Mapping[str, Any],
    colours: Mapping[str, Any],
    *,
    max_cells: int = 3000,
    seed: int = 0,
    max_categories: int = 10,
) -> "Figure":
    """Each latent space in its first two principal components, once per colouring (a grid).

    Rows are the colourings (a numeric quantity in a continuous colour map, or labels, the
    ``max_categories - 1`` most frequent in colour and the rest grey as ``'other'``), columns
    the spaces. The same random ``max_cells`` cells are drawn in every panel.
    Taught in ``07_contrastivevi``.

    Args:
        spaces: name -> cells x dimensions (the same cells, in the same order, in every space).
        colours: name -> one value per cell (e.g. ``{'program score': score, 'perturbation': labels}``).
        max_cells: cells drawn at most.
        seed: seed of the cells drawn.
        max_categories: colours of a categorical colouring, ``'other'`` included.

    Returns:
        The figure.

    Raises:
        ValueError: no space or colouring, or a space or colouring whose number of cells differs.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> rng = np.random.default_rng(0)
        >>> fig = latent_scatter({"a": rng.normal(size=(50, 3)), "b": rng.normal(size=(50, 4))},
        ...                      {"score": rng.uniform(size=50), "label": np.repeat(["x", "y"], 25)})
        >>> len(fig.axes)  # 2 x 2 panels and a colour bar
        5
    """
    import pandas as pd
    from sklearn.decomposition import PCA

    if not spaces or not colours:
        raise ValueError("latent_scatter: give at least one space and one colouring.")
    mats = {name: np.asarray(z, dtype=float) for name, z in spaces.items()}
    n = {z.shape[0] for z in mats.values()} | {len(np.asarray(v)) for v in colours.values()}
    if len(n) != 1:
        raise ValueError(f"latent_scatter: every space and colouring needs the same cells; got cell counts {sorted(n)}.")
    n_cells = n.pop()
    rows = np.sort(np.random.default_rng(seed).choice(n_cells, min(max_cells, n_cells), replace=False))
    fig, axes = subplots(len(mats) * len(colours), ncols=len(mats), width=3.3, height=3.0)
    for r, (cname, values) in enumerate(colours.items()):
        values = np.asarray(values)[rows]
        numeric = _is_numeric(values)
        if not numeric:
            labels = pd.Series(values.astype(str))
            top = list(labels.value_counts().index[: max_categories - 1])
            labels = labels.where(labels.isin(top), "other").to_numpy()
            order = top + (["other"] if "other" in set(labels) else [])
        for c, (sname, z) in enumerate(mats.items()):
            ax = axes[r * len(mats) + c]
            xy = PCA(n_components=2, random_state=0).fit_transform(z[rows]) if z.shape[1] > 2 else z[rows]
            if numeric:
                points = ax.scatter(xy[:, 0], xy[:, 1], c=values, s=3, cmap="viridis", rasterized=True)
                if c == len(mats) - 1:
                    fig.colorbar(points, ax=ax, label=cname, shrink=0.8)
            else:
                for k, label in enumerate(order):
                    hit = labels == label
                    colour = "0.8" if label == "other" else f"C{k % 10}"
                    ax.scatter(xy[hit, 0], xy[hit, 1], s=3, color=colour, label=label, rasterized=True)
                if c == len(mats) - 1:
                    ax.legend(markerscale=3, fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), title=cname)
            ax.set_xticks([]), ax.set_yticks([])
            ax.set_title(f"{sname}: coloured by {cname}", fontsize=9)
            ax.set_xlabel("PC 1 of the space", fontsize=8)
            ax.set_ylabel("PC 2", fontsize=8)
    return fig


def space_scores(summary: "pd.DataFrame", *, chance: Mapping[str, float] | None = None, ax: Any = None) -> "Figure":
    """Bars of a score per latent space and label, with the seed interval and the chance level.

    Taught in ``07_contrastivevi``.

    Args:
        summary: columns ``space``, ``label``, ``mean``, ``ci_low``, ``ci_high`` (e.g.
            :func:`tutorial_kit.stats.summarize_seeds` of a long table of scores).
        chance: label -> chance level, drawn as a dashed line in that label's panel.
        ax: Axes to draw on, one per label (default: a new figure).

    Returns:
        The figure.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import pandas as pd
        >>> s = pd.DataFrame({"space": ["PCA", "salient"] * 2, "label": ["a", "a", "b", "b"],
        ...                   "mean": [0.5, 0.6, 0.4, 0.3], "ci_low": [0.4, 0.5, 0.3, 0.2], "ci_high": [0.6, 0.7, 0.5, 0.4]})
        >>> len(space_scores(s, chance={"a": 0.2, "b": 0.33}).axes)
        2
    """
    require_columns(summary, ["space", "label", "mean", "ci_low", "ci_high"], "space_scores")
    labels = list(dict.fromkeys(summary["label"]))
    fig, axes = axes_for(ax, len(labels), ncols=len(labels), width=3.6, height=3.0)
    for axis, label in zip(axes, labels):
        part = summary[summary["label"] == label]
        x = np.arange(len(part))
        mean = part["mean"].to_numpy(float)
        low = np.nan_to_num(mean - part["ci_low"].to_numpy(float))
        high = np.nan_to_num(part["ci_high"].to_numpy(float) - mean)
        axis.bar(x, mean, yerr=[low, high], color=[f"C{k}" for k in range(len(part))], capsize=3)
        axis.set_xticks(x, part["space"].astype(str), rotation=20, fontsize=8)
        if chance and label in chance:
            axis.axhline(chance[label], color="0.3", linestyle="--", linewidth=1, label="chance")
            axis.legend(fontsize=7)
        axis.set_title(label, fontsize=9)
        axis.set_ylim(0, 1)
        axis.set_ylabel("balanced accuracy (5-fold CV)", fontsize=8)
    return fig
