"""What every figure of :mod:`tutorial_kit.plotting` shares: the figure grid, column checks, baselines in grey.

matplotlib is imported inside :func:`subplots`, never at import time, and no setting
(rcParams, style) is changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from tutorial_kit.metrics import LOWER_IS_BETTER

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

BASELINE_NAMES = ("no-change", "mean-shift", "mean", "additive", "interpolation", "nearest dose")
"""Model names drawn grey as baselines (exactly, or followed by a space: 'mean (seed 0)')."""

BASELINE_COLOR = "0.55"
"""The grey of baselines (and of the real cells beside generated ones)."""


def subplots(n: int, *, ncols: int = 3, width: float = 4.0, height: float = 3.2) -> "tuple[Figure, list]":
    """A figure with exactly ``n`` axes on a grid of at most ``ncols`` columns (spare cells removed).

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> fig, axes = subplots(4)
        >>> len(axes), len(fig.axes)
        (4, 4)
    """
    import matplotlib.pyplot as plt

    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained")
    flat = list(axes.ravel())
    for ax in flat[n:]:
        fig.delaxes(ax)
    return fig, flat[:n]


def axes_for(ax: Any, n: int, **subplot_kw: Any) -> "tuple[Figure, list]":
    """The figure and ``n`` axes: new ones (:func:`subplots`) if ``ax`` is None, else the given Axes (one, or a sequence of n).

    Example:
        >>> import matplotlib; matplotlib.use("Agg")
        >>> fig, (ax,) = axes_for(None, 1)
        >>> axes_for(ax, 1)[0] is fig
        True
    """
    if ax is None:
        return subplots(n, **subplot_kw)
    axes = list(ax) if isinstance(ax, (list, tuple, np.ndarray)) else [ax]
    if len(axes) != n or not all(hasattr(a, "figure") for a in axes):
        raise ValueError(f"ax must be None or {n} matplotlib Axes (one per panel); got {len(axes)}.")
    return axes[0].figure, axes


def require_columns(df: Any, columns: Sequence[str], what: str) -> None:
    """Raise unless the table ``df`` has every column in ``columns`` (``what`` names it in the message).

    Example:
        >>> import pandas as pd
        >>> require_columns(pd.DataFrame({"a": [1]}), ["a", "b"], "df")
        Traceback (most recent call last):
        ...
        ValueError: df is missing column(s) ['b']; pass the output of the matching tutorial_kit function.
    """
    missing = [c for c in columns if c not in getattr(df, "columns", [])]
    if missing:
        raise ValueError(f"{what} is missing column(s) {missing}; pass the output of the matching tutorial_kit function.")


def is_baseline(model: str) -> bool:
    """True for a baseline's name (:data:`BASELINE_NAMES`, exactly or followed by a space).

    Example:
        >>> is_baseline("mean (seed 0)"), is_baseline("mean-shift"), is_baseline("scGen")
        (True, True, False)
    """
    return any(model == b or model.startswith(b + " ") for b in BASELINE_NAMES)


def better(metric: str) -> str:
    """``'lower is better'`` for the metrics of :data:`tutorial_kit.metrics.LOWER_IS_BETTER`, else ``'higher is better'``.

    Example:
        >>> better("edistance"), better("pearson_delta")
        ('lower is better', 'higher is better')
    """
    return "lower is better" if metric in LOWER_IS_BETTER else "higher is better"
