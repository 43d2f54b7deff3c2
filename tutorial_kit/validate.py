"""Input checks shared by every public function of tutorial_kit.

Each check raises a ``ValueError`` whose message says what is wrong and how to fix it,
so that bad input never turns into a silent wrong result.
Taught implicitly everywhere; the AnnData layout is introduced in ``00_setup_check``.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np


def _where(where: str | None) -> str:
    return f"{where}: " if where else ""


def check_obs_columns(adata: Any, columns: Iterable[str], *, where: str | None = None) -> None:
    """Raise if any of ``columns`` is missing from ``adata.obs``.

    Example:
        >>> import anndata as ad, numpy as np, pandas as pd
        >>> a = ad.AnnData(np.zeros((2, 1)), obs=pd.DataFrame({"perturbation": ["control", "A"]}, index=["c1", "c2"]))
        >>> check_obs_columns(a, ["perturbation"])
    """
    missing = [c for c in columns if c not in adata.obs.columns]
    if missing:
        raise ValueError(
            f"{_where(where)}adata.obs is missing column(s) {missing}; "
            f"it has {list(adata.obs.columns)}. "
            "Load data with a tutorial_kit loader (which writes the course schema) "
            "or pass the name of your column, e.g. perturbation_key='my_column'."
        )


def sample_values(x: Any, max_values: int = 200_000) -> np.ndarray:
    """Up to ``max_values`` stored values of a matrix (the non-zeros of a sparse one), for cheap checks of its content.

    Example:
        >>> import scipy.sparse as sp
        >>> sample_values(sp.csr_matrix([[0.0, 2.5], [0.0, 1.0]])).tolist()
        [2.5, 1.0]
    """
    import scipy.sparse as sp

    if sp.issparse(x):
        vals = x.data if hasattr(x, "data") else x.tocsr().data
    else:
        vals = np.asarray(x).ravel()
    return np.asarray(vals[:max_values])


def check_int(value: Any, name: str, *, minimum: int = 1, where: str | None = None) -> int:
    """Return ``value`` as an ``int``; raise unless it is an integer (not a bool) of at least ``minimum``.

    Example:
        >>> check_int(3, "n_cells")
        3
        >>> check_int(0.5, "n_cells")
        Traceback (most recent call last):
        ...
        ValueError: n_cells must be an integer >= 1; got 0.5.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{_where(where)}{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def check_counts(adata: Any, *, layer: str | None = "counts", where: str | None = None) -> None:
    """Raise unless ``adata.layers[layer]`` (or ``adata.X`` if ``layer`` is None) holds raw counts.

    Raw counts are non-negative integers.
    Log-normalized data (non-integers) is the most common mistake and gets its own message.

    Example:
        >>> import anndata as ad, numpy as np
        >>> check_counts(ad.AnnData(np.array([[0.0, 3.0]])), layer=None)
    """
    if layer is not None and layer not in adata.layers:
        raise ValueError(
            f"{_where(where)}raw counts are needed but adata.layers has no {layer!r} layer "
            f"(layers: {list(adata.layers.keys())}). This dataset may be log-normalized only; "
            "use a dataset with counts (e.g. tk.data.load_kang_muscat()) or pass layer=None if adata.X holds counts."
        )
    x = adata.X if layer is None else adata.layers[layer]
    where_x = "adata.X" if layer is None else f"adata.layers[{layer!r}]"
    vals = sample_values(x)
    if vals.size == 0:
        return
    if not np.all(np.isfinite(vals)):
        raise ValueError(f"{_where(where)}{where_x} contains NaN or infinite values; raw counts must be finite.")
    if vals.min() < 0:
        raise ValueError(
            f"{_where(where)}{where_x} has negative values (min {vals.min():.3g}); raw counts are needed. "
            "Scaled or centred data cannot be used here."
        )
    if not np.allclose(vals, np.round(vals)):
        raise ValueError(
            f"{_where(where)}{where_x} holds non-integer values (e.g. {vals[~np.isclose(vals, np.round(vals))][0]:.4g}): "
            "this looks like log-normalized data, but raw counts are needed. "
            "Use the 'counts' layer of a tutorial_kit loader, or undo the normalization upstream."
        )


def check_nonempty(n_or_mask: Any, *, what: str, where: str | None = None) -> int:
    """Raise if a group selects no cells; returns the number of cells selected.

    Example:
        >>> check_nonempty(np.array([True, False]), what="control cells")
        1
    """
    n = int(np.sum(n_or_mask)) if np.ndim(n_or_mask) else int(n_or_mask)
    if n == 0:
        raise ValueError(
            f"{_where(where)}no cells in {what}. Check the spelling of the group "
            "(control is spelled 'control' in the course schema) and that filtering did not remove it."
        )
    return n


def check_perturbations(
    adata: Any, perturbations: Sequence[str] | str, *, key: str = "perturbation", where: str | None = None
) -> None:
    """Raise if any requested perturbation does not occur in ``adata.obs[key]``.

    Example:
        >>> import anndata as ad, numpy as np, pandas as pd
        >>> a = ad.AnnData(np.zeros((2, 1)), obs=pd.DataFrame({"perturbation": ["control", "A"]}, index=["c1", "c2"]))
        >>> check_perturbations(a, ["A"])
    """
    check_obs_columns(adata, [key], where=where)
    wanted = [perturbations] if isinstance(perturbations, str) else list(perturbations)
    known = set(map(str, adata.obs[key].unique()))
    unknown = [p for p in wanted if p not in known]
    if unknown:
        shown = sorted(known)[:20]
        more = f" (and {len(known) - 20} more)" if len(known) > 20 else ""
        raise ValueError(
            f"{_where(where)}unknown perturbation(s) {unknown} in adata.obs[{key!r}]. "
            f"Known: {shown}{more}. Doubles are written 'A+B' in alphabetical order; "
            "tk.data.normalize_perturbation('B+A') gives the canonical name."
        )


def check_same_genes(a: Any, b: Any, *, where: str | None = None, names: tuple[str, str] = ("first", "second")) -> None:
    """Raise unless two AnnData objects have the same genes in the same order.

    Example:
        >>> import anndata as ad, numpy as np
        >>> x = ad.AnnData(np.zeros((1, 2))); check_same_genes(x, x.copy())
    """
    ga, gb = list(map(str, a.var_names)), list(map(str, b.var_names))
    if ga == gb:
        return
    sa, sb = set(ga), set(gb)
    only_a, only_b = sorted(sa - sb), sorted(sb - sa)
    if not only_a and not only_b:
        detail = "the same genes in a different order"
    else:
        detail = (
            f"{len(only_a)} gene(s) only in the {names[0]} (e.g. {only_a[:5]}), "
            f"{len(only_b)} only in the {names[1]} (e.g. {only_b[:5]})"
        )
    raise ValueError(
        f"{_where(where)}the {names[0]} and {names[1]} AnnData have different genes: {detail}. "
        f"Subset both to shared genes first, e.g. common = a.var_names.intersection(b.var_names); "
        "a = a[:, common]; b = b[:, common]."
    )


def check_same_shape(x: np.ndarray, y: np.ndarray, *, what: str = "inputs", where: str | None = None) -> None:
    """Raise unless two arrays have equal shapes (used by metrics on per-gene vectors)."""
    if np.shape(x) != np.shape(y):
        raise ValueError(
            f"{_where(where)}{what} have different shapes {np.shape(x)} and {np.shape(y)}; "
            "they must describe the same genes in the same order."
        )
