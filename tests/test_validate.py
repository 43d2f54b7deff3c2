import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tutorial_kit import validate


def _adata(x, perts=None, genes=None):
    n, g = np.shape(x)
    obs = pd.DataFrame({"perturbation": perts or ["control"] * n}, index=[f"c{i}" for i in range(n)])
    var = pd.DataFrame(index=genes or [f"g{j}" for j in range(g)])
    return ad.AnnData(x, obs=obs, var=var)


def test_missing_obs_column():
    a = _adata(np.zeros((2, 2)))
    validate.check_obs_columns(a, ["perturbation"])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['cell_type'\].*perturbation_key="):
        validate.check_obs_columns(a, ["perturbation", "cell_type"], where="fit")


def test_counts_accepts_integers_dense_and_sparse():
    counts = np.array([[0, 3], [5, 1]], dtype=float)
    validate.check_counts(_adata(counts), layer=None)
    a = _adata(np.log1p(counts))
    a.layers["counts"] = sp.csr_matrix(counts)
    validate.check_counts(a)
    validate.check_counts(_adata(np.zeros((2, 0))), layer=None)


def test_counts_rejects_lognormalized_negative_nan_and_missing_layer():
    logged = np.log1p(np.array([[0, 3], [5, 1]], dtype=float))
    with pytest.raises(ValueError, match="looks like log-normalized data"):
        validate.check_counts(_adata(logged), layer=None)
    with pytest.raises(ValueError, match="negative values"):
        validate.check_counts(_adata(np.array([[-1.0, 2.0]])), layer=None)
    with pytest.raises(ValueError, match="NaN or infinite"):
        validate.check_counts(_adata(np.array([[np.nan, 2.0]])), layer=None)
    with pytest.raises(ValueError, match="has no 'counts' layer"):
        validate.check_counts(_adata(logged), where="simulate")


def test_empty_group():
    assert validate.check_nonempty(np.array([True, False, True]), what="control") == 2
    assert validate.check_nonempty(3, what="x") == 3
    with pytest.raises(ValueError, match="no cells in stimulated CD4T"):
        validate.check_nonempty(np.zeros(4, dtype=bool), what="stimulated CD4T")


def test_unknown_perturbation():
    a = _adata(np.zeros((3, 1)), perts=["control", "KLF1", "BAK1+KLF1"])
    validate.check_perturbations(a, "KLF1")
    validate.check_perturbations(a, ["BAK1+KLF1", "control"])
    with pytest.raises(ValueError, match=r"unknown perturbation\(s\) \['KLF1\+BAK1'\].*alphabetical"):
        validate.check_perturbations(a, ["KLF1+BAK1"])
    many = _adata(np.zeros((30, 1)), perts=[f"P{i}" for i in range(30)])
    with pytest.raises(ValueError, match="and 10 more"):
        validate.check_perturbations(many, "Q")


def test_gene_mismatch():
    a = _adata(np.zeros((1, 3)), genes=["A", "B", "C"])
    validate.check_same_genes(a, a.copy())
    with pytest.raises(ValueError, match=r"1 gene\(s\) only in the pred.*\['C'\].*only in the true.*\['D'\]"):
        validate.check_same_genes(a, _adata(np.zeros((1, 3)), genes=["A", "B", "D"]), names=("pred", "true"))
    with pytest.raises(ValueError, match="same genes in a different order"):
        validate.check_same_genes(a, _adata(np.zeros((1, 3)), genes=["C", "B", "A"]))


def test_same_shape():
    validate.check_same_shape(np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match=r"different shapes \(3,\) and \(4,\)"):
        validate.check_same_shape(np.zeros(3), np.zeros(4), what="means")
