"""Reading large h5ad files a block of cells at a time, without a second copy in memory.

Used by the loaders of the full datasets (:mod:`tutorial_kit.data.workshop`): a genome-scale
screen is too large to read whole, convert and subset (that holds two or three copies of the
matrix at once). Here the annotations come from anndata in backed mode (``obs`` and ``var`` only),
and the matrix is read straight from the HDF5 file, ``chunk_rows`` cells at a time, keeping
only the requested cells and genes as a sparse CSR matrix.

The matrix ``X`` may be stored as CSR (anndata's ``csr_matrix`` encoding, or the pre-0.7
``h5sparse`` layout) or as a dense array (as in the Replogle 2022 files); a CSC matrix has no
cheap row blocks and is read whole, with a warning.

Example:
    >>> import anndata as ad, numpy as np, scipy.sparse as sp, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.h5ad"
    >>> ad.AnnData(sp.csr_matrix(np.arange(12, dtype=np.float32).reshape(4, 3))).write_h5ad(path)
    >>> read_counts(path, rows=np.array([1, 3]), columns=np.array([0, 2]), chunk_rows=1).toarray().tolist()
    [[3.0, 5.0], [9.0, 11.0]]
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["iter_blocks", "read_annotations", "read_counts", "x_layout"]


def read_annotations(path: str | os.PathLike) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """``(obs, var)`` of an h5ad file, read in backed mode (the matrix is not loaded).

    Example:
        >>> import anndata as ad, numpy as np, tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.h5ad"
        >>> ad.AnnData(np.zeros((2, 3), dtype=np.float32)).write_h5ad(path)
        >>> [frame.shape[0] for frame in read_annotations(path)]
        [2, 3]
    """
    import anndata as ad

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # old files: layout warnings are harmless here
        backed = ad.read_h5ad(path, backed="r")
    try:
        return backed.obs.copy(), backed.var.copy()
    finally:
        backed.file.close()


def x_layout(path: str | os.PathLike) -> tuple[str, tuple[int, int]]:
    """How ``X`` is stored: ``('csr' | 'csc' | 'dense', (cells, genes))``.

    Raises:
        ValueError: the file has no ``X`` or an encoding this reader does not know.
    """
    import h5py

    with h5py.File(path, "r") as handle:
        if "X" not in handle:
            raise ValueError(f"{path}: no X matrix in the file; is it an h5ad file?")
        x = handle["X"]
        if isinstance(x, h5py.Dataset):
            return "dense", tuple(int(v) for v in x.shape)
        attrs = dict(x.attrs)
        kind = attrs.get("encoding-type", attrs.get("h5sparse_format", ""))
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        shape = attrs.get("shape", attrs.get("h5sparse_shape"))
        if kind in ("csr_matrix", "csr"):
            return "csr", tuple(int(v) for v in shape)
        if kind in ("csc_matrix", "csc"):
            return "csc", tuple(int(v) for v in shape)
    raise ValueError(f"{path}: X has an unknown encoding {kind!r}; expected a CSR, CSC or dense matrix.")


def iter_blocks(
    path: str | os.PathLike, *, chunk_rows: int = 10_000, rows: np.ndarray | None = None
) -> Iterator[tuple[int, Any]]:
    """Yield ``(first_row, block)``: consecutive blocks of ``chunk_rows`` cells as CSR matrices (all genes).

    With ``rows`` (increasing integer positions), each block holds only the selected cells of
    its range, and blocks without any are skipped.

    Example:
        >>> import anndata as ad, numpy as np, tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "toy.h5ad"
        >>> ad.AnnData(np.ones((5, 2), dtype=np.float32)).write_h5ad(path)
        >>> [(start, block.shape) for start, block in iter_blocks(path, chunk_rows=2)]
        [(0, (2, 2)), (2, (2, 2)), (4, (1, 2))]
    """
    import h5py
    import scipy.sparse as sp

    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}.")
    if rows is not None:
        rows = np.asarray(rows, dtype=np.int64)
        for start, block in iter_blocks(path, chunk_rows=chunk_rows):
            inside = rows[(rows >= start) & (rows < start + block.shape[0])] - start
            if inside.size:
                yield start, block[inside]
        return
    kind, (n_rows, n_cols) = x_layout(path)
    if kind == "csc":
        warnings.warn(
            f"{path}: X is stored column-compressed (CSC), which has no cheap blocks of cells; "
            "it is read whole (peak memory: the full matrix).",
            UserWarning,
            stacklevel=2,
        )
        import anndata as ad

        whole = sp.csr_matrix(ad.read_h5ad(path).X)
        for start in range(0, n_rows, chunk_rows):
            yield start, whole[start : start + chunk_rows]
        return
    with h5py.File(path, "r") as handle:
        x = handle["X"]
        if kind == "dense":
            for start in range(0, n_rows, chunk_rows):
                yield start, sp.csr_matrix(np.asarray(x[start : start + chunk_rows]))
            return
        indptr = np.asarray(x["indptr"][...], dtype=np.int64)
        data, indices = x["data"], x["indices"]
        for start in range(0, n_rows, chunk_rows):
            stop = min(start + chunk_rows, n_rows)
            lo, hi = int(indptr[start]), int(indptr[stop])
            block = sp.csr_matrix(
                (np.asarray(data[lo:hi]), np.asarray(indices[lo:hi]), indptr[start : stop + 1] - lo),
                shape=(stop - start, n_cols),
            )
            yield start, block


def read_counts(
    path: str | os.PathLike,
    *,
    rows: np.ndarray | None = None,
    columns: np.ndarray | None = None,
    chunk_rows: int = 10_000,
    dtype: Any = np.float32,
) -> Any:
    """The selected cells (``rows``) and genes (``columns``) of ``X`` as one CSR matrix, block by block.

    Peak memory: the result plus one block of ``chunk_rows`` cells with all genes.

    Args:
        path: an h5ad file.
        rows: integer positions of the cells to keep, in increasing order (``None``: all).
        columns: integer positions of the genes to keep, in the order wanted (``None``: all).
        chunk_rows: cells per block.
        dtype: dtype of the result.
    """
    import scipy.sparse as sp

    if rows is not None:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and np.any(np.diff(rows) <= 0):
            raise ValueError("rows must be increasing positions without repeats.")
    if columns is not None:
        columns = np.asarray(columns, dtype=np.int64)
    parts = []
    for _, block in iter_blocks(path, chunk_rows=chunk_rows, rows=rows):
        if columns is not None:
            block = block[:, columns]
        parts.append(sp.csr_matrix(block, dtype=dtype))
    if not parts:
        n_cols = len(columns) if columns is not None else x_layout(path)[1][1]
        return sp.csr_matrix((0, n_cols), dtype=dtype)
    return sp.vstack(parts, format="csr")
