"""Figures of per-cell treatment effects (CINEMA-OT): the component split, effects by group, errors against the truth.

Taught in ``08_cinemaot``. Each function takes the output of a function of
:mod:`tutorial_kit.models.cinemaot` and returns the Figure. Naive estimates (methods whose name
starts with ``'naive'``) and baselines are drawn grey.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from tutorial_kit.plotting._style import BASELINE_COLOR, axes_for, is_baseline, require_columns

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from matplotlib.figure import Figure

__all__ = ["component_xi", "effect_errors_plot", "group_effect_heatmap"]

_LEVELS = {"cell type": "per cell type", "cell": "per cell", "counterfactual": "per cell, counterfactual only"}


def _is_naive(name: str) -> bool:
    return str(name).startswith("naive") or is_baseline(str(name))


def component_xi(table: "pd.DataFrame", *, thres: float, title: str = "Which components depend on the treatment?",
                 ax: Any = None) -> "Figure":
    """Chatterjee's xi of each independent component with the treatment, the threshold drawn across.

    Bars below the threshold are confounders (blue), the others carry the treatment (red).
    Taught in ``08_cinemaot``.

    Args:
        table: the output of :func:`tutorial_kit.models.component_dependence` (``component``, ``xi``, ``role``).
        thres: the threshold used.
        title: the figure's title.
        ax: an existing Axes, or None.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import pandas as pd
        >>> t = pd.DataFrame({"component": [0, 1], "xi": [0.02, 0.9], "role": ["confounder", "treatment"]})
        >>> component_xi(t, thres=0.15).axes[0].get_ylabel()
        "Chatterjee's xi with the treatment"
    """
    require_columns(table, ["component", "xi", "role"], "component_xi: table")
    fig, (ax,) = axes_for(ax, 1, width=max(4.0, 0.35 * len(table) + 2), height=3.0)
    colors = ["C0" if r == "confounder" else "C3" for r in table["role"]]
    ax.bar(table["component"].astype(str), table["xi"], color=colors)
    ax.axhline(thres, color="k", ls="--", lw=0.8, label=f"thres = {thres:g}")
    n_conf = int((table["role"] == "confounder").sum())
    ax.set_xlabel(f"independent component ({n_conf} confounders in blue, {len(table) - n_conf} treatment in red)")
    ax.set_ylabel("Chatterjee's xi with the treatment")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title(title, fontsize=10)
    return fig


def group_effect_heatmap(effects: "pd.DataFrame", *, n_genes: int = 20, genes: Sequence[str] | None = None,
                         title: str = "Mean per-cell effect by group", ax: Any = None) -> "Figure":
    """Groups x genes heatmap of mean effects (e.g. :func:`tutorial_kit.models.group_effects`).

    The genes shown are ``genes``, or the ``n_genes`` with the largest mean absolute effect over
    groups; the colour scale is symmetric around 0 (red up, blue down). Taught in ``08_cinemaot``.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import pandas as pd
        >>> df = pd.DataFrame([[1.0, -0.5, 0.0], [2.0, 0.0, 0.1]], index=["a", "b"], columns=["g1", "g2", "g3"])
        >>> [t.get_text() for t in group_effect_heatmap(df, n_genes=2).axes[0].get_xticklabels()]
        ['g1', 'g2']
    """
    import pandas as pd

    if not isinstance(effects, pd.DataFrame) or effects.empty:
        raise ValueError("group_effect_heatmap: effects must be a non-empty groups x genes DataFrame "
                         "(tk.models.group_effects).")
    if genes is None:
        genes = list(effects.abs().mean().nlargest(min(n_genes, effects.shape[1])).index)
    missing = [g for g in genes if g not in effects.columns]
    if missing:
        raise ValueError(f"group_effect_heatmap: genes {missing[:5]} are not columns of effects.")
    data = effects[list(genes)].to_numpy(dtype=float)
    fig, (ax,) = axes_for(ax, 1, width=max(4.0, 0.32 * len(genes) + 2.5), height=0.45 * len(effects) + 1.6)
    vmax = float(np.nanmax(np.abs(data))) or 1.0
    im = ax.imshow(data, cmap="RdBu_r", vmin=-vmax, vmax=vmax, aspect="auto")
    ax.set_xticks(range(len(genes)), list(genes), rotation=90, fontsize=8)
    ax.set_yticks(range(len(effects)), list(map(str, effects.index)), fontsize=9)
    fig.colorbar(im, ax=ax, label="mean effect (units of X)")
    ax.set_title(title, fontsize=10)
    return fig


def effect_errors_plot(errors: "pd.DataFrame", *, title: str = "Effect estimates against the truth",
                       ax: Any = None) -> "Figure":
    """RMSE of each method at each level (the ``'all'`` rows of :func:`tutorial_kit.models.effect_errors`).

    One panel per level (per cell type, per cell, counterfactual), one bar per method; naive
    estimates grey. Lower is better. Taught in ``08_cinemaot``.

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> import pandas as pd
        >>> e = pd.DataFrame({"method": ["CINEMA-OT", "naive"], "level": ["cell", "cell"], "group": ["all", "all"],
        ...                   "rmse": [0.2, 0.3]})
        >>> effect_errors_plot(e).axes[0].get_title()
        'per cell'
    """
    require_columns(errors, ["method", "level", "group", "rmse"], "effect_errors_plot: errors")
    rows = errors[errors["group"] == "all"]
    if rows.empty:
        raise ValueError("effect_errors_plot: no 'all' rows; pass the output of tk.models.effect_errors.")
    levels = list(dict.fromkeys(rows["level"]))
    fig, axes = axes_for(ax, len(levels), ncols=len(levels), width=3.6, height=3.2)
    methods = list(dict.fromkeys(rows["method"]))
    for ax_, level in zip(axes, levels):
        values = rows[rows["level"] == level].set_index("method")["rmse"].reindex(methods)
        colors = [BASELINE_COLOR if _is_naive(m) else "C0" for m in methods]
        ax_.bar(range(len(methods)), values.to_numpy(dtype=float), color=colors)
        ax_.set_xticks(range(len(methods)), methods, rotation=30, ha="right", fontsize=8)
        ax_.set_ylabel("RMSE over genes (lower is better)", fontsize=8)
        ax_.set_title(_LEVELS.get(level, str(level)), fontsize=10)
    fig.suptitle(title)
    return fig
