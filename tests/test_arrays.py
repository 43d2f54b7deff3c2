"""tk.arrays: the same answer for a dense and a sparse matrix, without densifying more than asked."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from tutorial_kit.arrays import as_matrix, col_mean, col_mean_var, dense_rows, to_dense


@pytest.fixture(params=["dense", "csr", "csc"])
def matrix(request):
    x = np.random.default_rng(0).poisson(1.0, size=(6, 4)).astype(np.float32)
    return x, {"dense": x, "csr": sp.csr_matrix(x), "csc": sp.csc_matrix(x)}[request.param]


def test_dense_copies_agree_with_numpy(matrix):
    x, m = matrix
    assert to_dense(m).dtype == np.float64 and np.array_equal(to_dense(m), x)
    assert to_dense(m, dtype=None).dtype == np.float32
    mask = np.array([True, False, True, False, False, True])
    np.testing.assert_array_equal(dense_rows(m, mask), x[mask])
    np.testing.assert_array_equal(dense_rows(m, [5, 0]), x[[5, 0]])
    np.testing.assert_array_equal(dense_rows(m, mask, columns=[3, 1]), x[mask][:, [3, 1]])
    np.testing.assert_array_equal(dense_rows(m, [4], columns=np.array([True, False, True, False])), x[[4]][:, [0, 2]])
    assert dense_rows(m, [2], columns=[1], dtype=np.float32).dtype == np.float32
    np.testing.assert_allclose(col_mean(m), x.mean(axis=0))
    mean, var = col_mean_var(m)
    np.testing.assert_allclose(mean, x.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(var, x.astype(np.float64).var(axis=0, ddof=1), rtol=1e-5)


def test_copies_are_new_arrays_and_inputs_are_not_changed():
    x = np.arange(6.0).reshape(2, 3)
    assert to_dense(x) is x  # no copy unless asked: do not write into it
    copy = to_dense(x, copy=True)
    copy[0, 0] = 99.0
    rows = dense_rows(x, [0])
    rows[0, 1] = 99.0
    assert x[0, 0] == 0.0 and x[0, 1] == 1.0
    assert not np.shares_memory(dense_rows(x, [0, 1], columns=[0, 1]), x)


def test_as_matrix_checks():
    assert sp.isspmatrix_csr(as_matrix(sp.coo_matrix(np.eye(2)))) and as_matrix(np.eye(2, dtype=int)).dtype == np.float64
    for bad, message in [(np.zeros(3), "must be a 2-D cells x genes matrix"), (np.zeros((0, 3)), "has no cells"),
                         (np.array([[np.nan]]), "NaN or infinite"), (sp.csr_matrix([[np.inf]]), "NaN or infinite")]:
        with pytest.raises(ValueError, match=message):
            as_matrix(bad, name="pred.X")
    with pytest.raises(ValueError, match="at least 2 rows"):
        col_mean_var(np.ones((1, 3)))
