"""Every CI dataset loads from the mirror, hash-verified, in the course schema, in under 5 s."""

import time

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import tutorial_kit as tk
from tutorial_kit.data import loaders
from tutorial_kit.data.schema import CONTROL, REQUIRED_OBS

LOAD_BUDGET_S = 5.0


def _timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    elapsed = time.perf_counter() - start
    assert elapsed < LOAD_BUDGET_S, f"{fn.__name__}{args} took {elapsed:.2f} s (budget {LOAD_BUDGET_S} s)"
    return out


def _assert_schema(adata, shape, dataset):
    assert adata.shape == shape
    for col in REQUIRED_OBS:
        assert col in adata.obs.columns
    assert set(adata.obs["dataset"]) == {dataset}
    assert adata.var_names.is_unique
    assert adata.uns["tutorial_kit"]["dataset"] == dataset
    assert adata.uns["tutorial_kit"]["urls"][0].startswith("https://")


def _assert_counts_and_x(adata):
    counts = adata.layers["counts"]
    assert np.issubdtype(counts.dtype, np.integer)
    tk.validate.check_counts(adata)
    # X is log1p of counts per 10,000, recomputed independently here.
    totals = np.asarray(counts.sum(axis=1)).ravel()
    rows = np.flatnonzero(totals > 0)[:20]
    dense = np.asarray(counts[rows].todense(), dtype=float)
    expected = np.log1p(dense / dense.sum(axis=1, keepdims=True) * 1e4)
    np.testing.assert_allclose(np.asarray(adata.X[rows].todense()), expected, rtol=1e-5, atol=1e-5)
    # Cells without any counts stay all-zero rather than NaN.
    assert np.isfinite(adata.X.data).all()


def test_kang_scgen_valid(mirror):
    adata = _timed(tk.data.load_kang_scgen_valid)
    _assert_schema(adata, (1975, 6998), "kang2018_scgen_valid")
    assert "counts" not in adata.layers
    assert adata.uns["tutorial_kit"]["has_counts"] is False
    counts = adata.obs.groupby(["cell_type", "condition"], observed=True).size()
    assert counts[("CD4T", "control")] == 278 and counts[("CD4T", "stimulated")] == 356
    assert set(adata.obs["perturbation"]) == {CONTROL, "IFN-beta"}
    assert ((adata.obs["perturbation"] == CONTROL) == (adata.obs["condition"] == "control")).all()
    assert not adata.obsp and "neighbors" not in adata.uns
    with pytest.raises(ValueError, match="raw counts are needed"):
        tk.validate.check_counts(adata)


def test_kang_muscat(mirror):
    adata = _timed(tk.data.load_kang_muscat)
    _assert_schema(adata, (1556, 1267), "kang2018_muscat")
    _assert_counts_and_x(adata)
    assert adata.obs["cell_type"].nunique() == 5
    samples = adata.obs.groupby("sample_id", observed=True).size().to_dict()
    # The sizes muscat records in metadata(example_sce)$experiment_info.
    assert samples == {"ctrl101": 454, "ctrl107": 296, "stim101": 500, "stim107": 306}
    assert set(adata.obs["donor"]) == {"101", "107"}
    assert set(adata.obs["condition"]) == {"control", "stimulated"}
    assert "ISG15" in adata.var_names and adata.var["ensembl_id"].str.startswith("ENSG").all()
    assert adata.layers["logcounts"].shape == adata.shape
    # IFN-beta strongly induces ISG15: a biological sanity check of the cell/gene orientation.
    isg15 = np.asarray(adata[:, "ISG15"].layers["counts"].todense()).ravel()
    stim = (adata.obs["condition"] == "stimulated").to_numpy()
    assert isg15[stim].mean() > 5 * isg15[~stim].mean()


def test_datlinger2021(mirror):
    adata = _timed(tk.data.load_datlinger2021)
    _assert_schema(adata, (7500, 2000), "datlinger2021_scperturb")
    _assert_counts_and_x(adata)
    assert adata.obs["perturbation"].nunique() == 21
    assert CONTROL in set(adata.obs["perturbation"])
    assert set(adata.obs["condition"]) == {"stimulated", "unstimulated"}
    sub = adata.obs[adata.obs["guide"] == "ZAP70_1"]
    assert set(sub["perturbation"]) == {"ZAP70"}
    assert (adata.obs.loc[adata.obs["perturbation"] == CONTROL, "guide"] == CONTROL).all()
    # ncounts in the metadata is the per-cell total of the full transcriptome, >= the 2,000-HVG total.
    hvg_total = np.asarray(adata.layers["counts"].sum(axis=1)).ravel()
    assert (adata.obs["ncounts"].to_numpy() >= hvg_total).all()


@pytest.mark.parametrize("view, n_cells, n_perts", [("norman19", 3375, 34), ("mcfaline23", 2586, 10)])
def test_perturbench_devel(mirror, view, n_cells, n_perts):
    adata = _timed(tk.data.load_perturbench_devel, view)
    _assert_schema(adata, (n_cells, 500), f"perturbench_{view}")
    assert adata.obs["perturbation"].nunique() == n_perts
    for pert in adata.obs["perturbation"].unique():
        assert pert == tk.data.normalize_perturbation(pert)


def test_perturbench_norman19_doubles_normalized(mirror):
    adata = tk.data.load_perturbench_devel("norman19")
    obs = adata.obs
    assert (obs["n_perturbations"] == 2).groupby(obs["perturbation"], observed=True).any().sum() == 15
    raw = obs.loc[obs["perturbation_raw"] == "SAMD1+PTPN12", "perturbation"]
    assert set(raw) == {"PTPN12+SAMD1"}
    assert set(obs.loc[obs["perturbation"] == CONTROL, "n_perturbations"]) == {0}
    with pytest.raises(ValueError, match="Unknown view 'norman'"):
        tk.data.load_perturbench_devel("norman")


def test_parse_guides(mirror):
    adata = _timed(tk.data.load_parse_guides)
    _assert_schema(adata, (5000, 266), "parse_sceptre_example")
    _assert_counts_and_x(adata)
    guides = adata.obsm["guide_counts"]
    assert list(guides.columns) == ["guide_A", "guide_B", "guide_C"]
    assert (guides.index == adata.obs_names).all()
    assert (guides.sum(axis=1).to_numpy() == adata.obs["guide_umis"].to_numpy()).all()
    assert (guides.to_numpy() > 0).sum() == 4897  # the number of entries of grna_mat.mtx


def test_scmageck_guides(mirror):
    table = _timed(tk.data.load_scmageck_guides)
    assert table.shape == (8425, 7)
    assert table["cell"].nunique() == 6704
    assert (table.groupby("cell").size() > 1).any()
    assert (table["read_count"] >= table["umi_count"]).all()


def test_norman_gi_tables(mirror):
    fits = _timed(tk.data.load_norman_gi, "regr_fits")
    row = fits.loc[fits["name"] == "AHR_FEV"]
    assert row["perturbation"].item() == "AHR+FEV"
    assert row["coef_first"].item() == pytest.approx(0.2721199162410912)
    layout = tk.data.load_norman_gi("umap_layout")
    assert {"name", "x", "y", "cluster", "perturbation"} <= set(layout.columns)
    guides = tk.data.load_norman_gi("guides")
    assert guides.loc[0, "gene"] == "AHR"
    with pytest.raises(ValueError, match="Unknown Norman 2019 table"):
        tk.data.load_norman_gi("fits")


def test_loader_rejects_unexpected_file(monkeypatch, tmp_path):
    """A file of the wrong shape or columns fails loudly, naming the problem."""
    bad = tmp_path / "bad.txt"
    pd.DataFrame({"cell": ["a"], "gene": ["X"]}).to_csv(bad, sep="\t", index=False)
    monkeypatch.setattr(loaders, "fetch", lambda name: bad)
    with pytest.raises(ValueError, match=r"missing columns \['barcode'"):
        tk.data.load_scmageck_guides()
    frame = pd.DataFrame({"cell": ["a"], "barcode": ["b"], "sgrna": ["s"], "gene": ["X"], "read_count": [1], "umi_count": [1]})
    frame.to_csv(bad, sep="\t", index=False)
    with pytest.raises(ValueError, match="1 rows, expected 8425"):
        tk.data.load_scmageck_guides()


def test_log1p_cp10k_handles_empty_cells():
    counts = sp.csr_matrix(np.array([[0, 0], [1, 3]]))
    out = loaders._log1p_cp10k(counts).toarray()
    np.testing.assert_allclose(out[0], 0)
    np.testing.assert_allclose(out[1], np.log1p([2500.0, 7500.0]), rtol=1e-6)
