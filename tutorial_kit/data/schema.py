"""The course's AnnData schema and perturbation-name normalization.

Every loader returns AnnData in this layout (taught in ``00_setup_check``):

- ``obs['perturbation']``: what was done to the cell. Control is always ``'control'``;
  combinations are ``'A+B'`` with the parts in alphabetical order, so ``A+B`` equals ``B+A``.
- ``obs['condition']``: the experimental arm as the study names it (see each loader).
- ``obs['cell_type']``: cell type or cell line.
- ``obs['dataset']``: the registry name of the source.
- ``layers['counts']``: raw UMI counts when the source has them (absent otherwise).
- ``var_names``: gene symbols, unique.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

CONTROL = "control"
"""The one spelling of control in the course schema."""

REQUIRED_OBS = ("perturbation", "condition", "cell_type", "dataset")
"""Columns every loader writes to ``obs``."""

CONTROL_SPELLINGS = frozenset(
    {
        "control", "ctrl", "ctl", "non-targeting", "nontargeting", "non_targeting", "nt",
        "unperturbed", "vehicle", "dmso", "safe-targeting", "safe_targeting", "none", "",
    }
)
"""Lower-cased labels that mean 'no perturbation' in the sources of the course."""

_SEPARATORS = re.compile(r"\s*[+_|;,]\s*")


def normalize_perturbation(name: object, *, separators: str = "+") -> str:
    """Canonical perturbation name: control spelled ``'control'``, combinations sorted.

    Args:
        name: a label such as ``'ctrl'``, ``'KLF1+BAK1'`` or ``'CEBPE+ctrl'``.
        separators: characters that join the parts of a combination in the source
            (``'+'`` by default; Norman's GI table uses ``'_'``, pass ``'_'`` or ``'+_'``).

    Returns:
        ``'control'``, a single name, or ``'A+B'`` in alphabetical order.
        Control parts inside a combination are dropped (``'CEBPE+ctrl'`` is ``'CEBPE'``),
        and a repeated part is kept once.

    Example:
        >>> normalize_perturbation("KLF1+BAK1")
        'BAK1+KLF1'
        >>> normalize_perturbation("ctrl")
        'control'
        >>> normalize_perturbation("CEBPE+ctrl")
        'CEBPE'
        >>> normalize_perturbation("AHR_FEV", separators="_")
        'AHR+FEV'
    """
    if name is None:
        raise ValueError("A perturbation name is missing (None); every cell needs a label, control is 'control'.")
    text = str(name).strip()
    pattern = "[" + re.escape(separators) + "]"
    parts = [p.strip() for p in re.split(pattern, text)] if separators else [text]
    kept = sorted({p for p in parts if p.lower() not in CONTROL_SPELLINGS})
    return "+".join(kept) if kept else CONTROL


def normalize_perturbations(names: Iterable[object], *, separators: str = "+") -> list[str]:
    """Vectorized :func:`normalize_perturbation` (a plain list out).

    Example:
        >>> normalize_perturbations(["B+A", "NT"])
        ['A+B', 'control']
    """
    cache: dict[object, str] = {}
    out = []
    for n in names:
        if n not in cache:
            cache[n] = normalize_perturbation(n, separators=separators)
        out.append(cache[n])
    return out


def perturbation_parts(name: str) -> list[str]:
    """The single perturbations of a canonical name (``[]`` for control).

    Example:
        >>> perturbation_parts("BAK1+KLF1")
        ['BAK1', 'KLF1']
    """
    return [] if name == CONTROL else name.split("+")


def log1p_cp10k(counts: Any, *, totals: Any = None) -> Any:
    """The course's ``X``: log1p of counts scaled to 10,000 per cell (sparse in, sparse out; float32).

    Cells with no counts stay all zero.
    Loaders and simulators write this to ``adata.X`` beside the raw ``layers['counts']``.

    Args:
        counts: cells x genes counts.
        totals: each cell's total count over *all* genes, when ``counts`` holds only some of them
            (a subset read from a larger file is normalized as if the whole matrix had been); by
            default the row sums of ``counts``.

    Example:
        >>> import numpy as np
        >>> x = log1p_cp10k(np.array([[1, 3], [0, 0]])).toarray()
        >>> np.round(x.astype(float), 3).tolist()
        [[7.824, 8.923], [0.0, 0.0]]
    """
    import numpy as np
    import scipy.sparse as sp

    counts = sp.csr_matrix(counts, dtype=np.float32)
    if totals is None:
        totals = np.asarray(counts.sum(axis=1)).ravel()
    totals = np.asarray(totals, dtype=np.float32).ravel()
    if totals.shape != (counts.shape[0],):
        raise ValueError(f"totals has {totals.size} values for {counts.shape[0]} cells; give one total per cell.")
    scale = np.divide(1e4, totals, out=np.zeros_like(totals), where=totals > 0)
    out = sp.csr_matrix(sp.diags(scale.astype(np.float32)) @ counts, dtype=np.float32)
    np.log1p(out.data, out=out.data)
    return out


def check_schema(adata, *, where: str | None = None) -> None:
    """Raise a ValueError unless ``adata`` follows the course schema (see module docstring).

    Example:
        >>> import anndata as ad, numpy as np, pandas as pd
        >>> obs = pd.DataFrame({"perturbation": ["control"], "condition": ["control"],
        ...                     "cell_type": ["K562"], "dataset": ["toy"]}, index=["c1"])
        >>> check_schema(ad.AnnData(np.zeros((1, 2)), obs=obs))
    """
    from tutorial_kit.validate import check_obs_columns

    check_obs_columns(adata, REQUIRED_OBS, where=where)
    prefix = f"{where}: " if where else ""
    if not adata.var_names.is_unique:
        raise ValueError(f"{prefix}var_names (gene symbols) are not unique; call adata.var_names_make_unique().")
    bad = sorted({p for p in adata.obs["perturbation"].astype(str).unique() if normalize_perturbation(p) != p})
    if bad:
        raise ValueError(
            f"{prefix}perturbation labels {bad[:10]} are not canonical; "
            "map them with tk.data.normalize_perturbations(adata.obs['perturbation'])."
        )
