"""Checks and finishing steps shared by the loaders of :mod:`tutorial_kit.data` (for that package only).

Every loader checks the layout it reads against the published one and fails loudly on a
mismatch (:func:`expect`, :func:`expect_columns`), records where its data came from
(:func:`provenance`) and ends with the schema check (:func:`finish`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tutorial_kit.data.registry import lookup
from tutorial_kit.data.schema import check_schema

if TYPE_CHECKING:  # pragma: no cover
    import anndata
    import pandas as pd

X_LOG1P_CP10K = "log1p(counts per 10,000), computed by tutorial_kit from layers['counts']"
"""What ``X`` holds when a loader computed it from counts."""


def expect(condition: bool, dataset: str, message: str) -> None:
    """Raise a ValueError naming the dataset and what differs from its published layout."""
    if not condition:
        raise ValueError(
            f"{dataset}: the file does not look as expected ({message}). "
            "It may be a different version of the dataset; delete it from the cache "
            "(tk.data.cache_dir()) and load again, or report the problem."
        )


def expect_columns(frame: "pd.DataFrame", columns: list[str], dataset: str) -> None:
    """Raise unless every one of ``columns`` is in ``frame`` (the error lists what is there)."""
    missing = [c for c in columns if c not in frame.columns]
    expect(not missing, dataset, f"missing columns {missing}; found {list(frame.columns)}")


def expect_counts(values: Any, dataset: str) -> None:
    """Raise unless ``values`` (an array, or the ``data`` of a sparse matrix) are non-negative whole numbers."""
    data = np.asarray(getattr(values, "data", values))
    if data.size == 0:
        return
    sample = data[:: max(1, data.size // 200_000)]
    ok = bool(np.all(sample >= 0) and np.all(np.abs(sample - np.round(sample)) < 1e-4))
    expect(
        ok,
        dataset,
        "the matrix should hold raw UMI counts (non-negative whole numbers) but holds values such as "
        f"{np.unique(sample)[:5].tolist()}; log-normalized data cannot be used where counts are needed",
    )


def provenance(adata: "anndata.AnnData", name: str, files: list[str], x: str) -> None:
    """Record in ``adata.uns['tutorial_kit']`` the dataset, what ``X`` holds, the files and their sources."""
    entries = [lookup(f) for f in files]
    adata.uns["tutorial_kit"] = {
        "dataset": name,
        "X": x,
        "has_counts": "counts" in adata.layers,
        "files": files,
        "urls": [e.urls[0] if e.urls else str(e.local) for e in entries],
    }
    stand_ins = {e.name: e.stands_for for e in entries if e.stands_for}
    if stand_ins:
        adata.uns["tutorial_kit"]["stands_for"] = stand_ins


def finish(adata: "anndata.AnnData", name: str) -> "anndata.AnnData":
    """Make the schema columns categorical and check the schema; return ``adata``."""
    for col in ("perturbation", "condition", "cell_type", "dataset"):
        adata.obs[col] = adata.obs[col].astype(str).astype("category")
    check_schema(adata, where=name)
    return adata
