"""Array helpers for cells x genes matrices that may be dense (numpy) or sparse (scipy).

AnnData stores ``X`` and its layers either way; every module of tutorial_kit reads them
through these few functions instead of writing ``x.toarray() if sparse else x`` again.
Nothing here modifies its input.
Used throughout the package; the AnnData layout is introduced in ``00_setup_check``.

- :func:`to_dense`: a dense numpy array of a whole matrix.
- :func:`dense_rows`: a dense copy of some rows (cells), and of some columns (genes) only if asked,
  so a large sparse matrix is never densified whole.
- :func:`col_mean`, :func:`col_mean_var`: per-column (per-gene) mean, and mean with variance, without densifying.
- :func:`as_matrix`: a checked, finite 2-D float64 matrix (dense or CSR), as the metrics need.

Only numpy is imported at module level.

Example:
    >>> import numpy as np, scipy.sparse as sp
    >>> x = sp.csr_matrix(np.array([[1.0, 0.0], [3.0, 4.0]]))
    >>> to_dense(x).tolist(), dense_rows(x, [1]).tolist(), col_mean(x).tolist()
    ([[1.0, 0.0], [3.0, 4.0]], [[3.0, 4.0]], [2.0, 2.0])
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["as_matrix", "col_mean", "col_mean_var", "dense_rows", "to_dense"]


def _is_sparse(x: Any) -> bool:
    import scipy.sparse as sp

    return sp.issparse(x)


def to_dense(x: Any, *, dtype: Any = np.float64, copy: bool = False) -> np.ndarray:
    """A dense numpy array of ``x`` (a scipy sparse matrix, a numpy array or anything array-like).

    Args:
        x: the matrix.
        dtype: the dtype of the result (``None`` keeps the dtype of ``x``).
        copy: always return a new array. Without it, a dense ``x`` that already has the
            dtype is returned as it is (no copy), so do not write into the result.

    Returns:
        The dense array (same shape as ``x``).

    Example:
        >>> import scipy.sparse as sp
        >>> to_dense(sp.csr_matrix([[0, 2]]), dtype=np.float32)
        array([[0., 2.]], dtype=float32)
        >>> a = np.zeros(2)
        >>> to_dense(a) is a, to_dense(a, copy=True) is a
        (True, False)
    """
    dense = x.toarray() if _is_sparse(x) else x
    return np.array(dense, dtype=dtype, copy=True) if copy else np.asarray(dense, dtype=dtype)


def dense_rows(x: Any, rows: Any, *, columns: Any = None, dtype: Any = np.float64) -> np.ndarray:
    """A dense copy of some rows (cells) of ``x``, and of some columns (genes) only if ``columns`` is given.

    Only the selected part is densified, so a large sparse matrix never is as a whole.

    Args:
        x: a cells x genes matrix, sparse or dense.
        rows: row positions (integers) or a boolean mask with one value per row.
        columns: column positions or a boolean mask (default: every column).
        dtype: the dtype of the result.

    Returns:
        A ``len(rows) x len(columns)`` array (use ``.ravel()`` for the values of one column).

    Example:
        >>> import scipy.sparse as sp
        >>> x = sp.csr_matrix(np.arange(6).reshape(3, 2))
        >>> dense_rows(x, np.array([True, False, True])).tolist(), dense_rows(x, [2, 0], columns=[1]).ravel().tolist()
        ([[0.0, 1.0], [4.0, 5.0]], [5.0, 1.0])
    """
    part = x[np.asarray(rows)]
    if columns is not None:
        part = part[:, np.asarray(columns)]
    return to_dense(part, dtype=dtype, copy=True)


def col_mean(x: Any) -> np.ndarray:
    """The mean of every column (gene) over the rows (cells), as a 1-D float64 array.

    Example:
        >>> import scipy.sparse as sp
        >>> col_mean(sp.csr_matrix([[1.0, 0.0], [2.0, 6.0]])).tolist()
        [1.5, 3.0]
    """
    return np.asarray(x.mean(axis=0), dtype=np.float64).ravel()


def col_mean_var(x: Any) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and unbiased (``ddof=1``) variance of a dense or sparse matrix with >= 2 rows.

    A sparse matrix is not densified: the variance comes from the mean of the squares.

    Returns:
        ``(mean, var)``, two 1-D arrays with one value per column.

    Example:
        >>> import scipy.sparse as sp
        >>> x = np.array([[1.0, 0.0], [3.0, 4.0]])
        >>> [v.tolist() for v in col_mean_var(x)], [v.tolist() for v in col_mean_var(sp.csr_matrix(x))]
        ([[2.0, 2.0], [2.0, 8.0]], [[2.0, 2.0], [2.0, 8.0]])
    """
    n = x.shape[0]
    if n < 2:
        raise ValueError(f"a variance over rows needs at least 2 rows (ddof=1); got {n}.")
    if _is_sparse(x):
        mean = col_mean(x)
        mean_sq = col_mean(x.multiply(x))
        var = np.maximum(mean_sq - mean**2, 0.0) * (n / (n - 1))
    else:
        mean = np.asarray(x).mean(axis=0)
        var = np.asarray(x).var(axis=0, ddof=1)
    return np.asarray(mean).ravel(), np.asarray(var).ravel()


def as_matrix(x: Any, *, name: str = "X") -> Any:
    """A finite 2-D float64 matrix with at least one row: a numpy array, or a scipy CSR matrix if ``x`` is sparse.

    Args:
        x: the matrix (e.g. ``adata.X``).
        name: how the error messages call it.

    Returns:
        The checked matrix (a copy only where the type or dtype changes).

    Raises:
        ValueError: when ``x`` is not 2-D, has no rows, or holds NaN or infinite values.

    Example:
        >>> as_matrix([[1, 2]]).dtype
        dtype('float64')
        >>> as_matrix([1, 2], name="pred.X")
        Traceback (most recent call last):
        ...
        ValueError: pred.X must be a 2-D cells x genes matrix; got shape (2,). Pass adata.X (or reshape a single cell with x[None, :]).
    """
    import scipy.sparse as sp

    if sp.issparse(x):
        mat = sp.csr_matrix(x, dtype=np.float64)
        values = mat.data
    else:
        mat = np.asarray(x, dtype=np.float64)
        values = mat
        if mat.ndim != 2:
            raise ValueError(
                f"{name} must be a 2-D cells x genes matrix; got shape {mat.shape}. "
                "Pass adata.X (or reshape a single cell with x[None, :])."
            )
    if mat.shape[0] == 0:
        raise ValueError(f"{name} has no cells (shape {mat.shape}); select a non-empty group.")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} contains NaN or infinite values; remove or impute them upstream.")
    return mat
