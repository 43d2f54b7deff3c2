"""The session functions (tutorial_kit/data/sessions.py): the CI file at 'ci', the full dataset at 'workshop'."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import tutorial_kit as tk
from tutorial_kit.data.schema import CONTROL


def test_ci_tier_returns_the_ci_files_unchanged(monkeypatch):
    monkeypatch.setenv("TUTORIAL_KIT_TIER", "ci")
    kang = tk.data.kang()
    muscat = tk.data.load_kang_muscat()
    assert kang.shape == muscat.shape and list(kang.var_names) == list(muscat.var_names)
    np.testing.assert_array_equal(kang.X.toarray(), muscat.X.toarray())
    assert tk.data.kang_scgen().shape == (1975, 6998)
    norman = tk.data.norman()
    devel = tk.data.load_perturbench_devel("norman19")
    assert list(norman.var_names) == list(devel.var_names)
    assert norman.uns["tutorial_kit"]["tier"] == "ci"
    assert norman.uns["tutorial_kit"]["targets_measured"] == ["TMSB4X"]


def test_ci_papalexi_assigns_one_clear_guide_per_cell(monkeypatch):
    monkeypatch.setenv("TUTORIAL_KIT_TIER", "ci")
    adata = tk.data.papalexi()
    guides = adata.obsm["guide_counts"]
    top = guides.to_numpy().max(axis=1)
    assert (top >= 5).all() and (top >= 0.8 * guides.to_numpy().sum(axis=1)).all()
    targets = pd.Series(adata.uns["guide_targets"])
    expected = tk.data.normalize_perturbations(targets.loc[adata.obs["guide"].astype(str)])
    assert adata.obs["perturbation"].astype(str).tolist() == expected
    assert adata.uns["tutorial_kit"]["targets_measured"] == list(tk.data.loaders.PAPALEXI_TARGETS_MEASURED)
    assert adata.n_obs + adata.uns["tutorial_kit"]["cells_without_clear_guide_dropped"] == 20729


def test_workshop_tier_reads_the_full_files_same_schema(standin_registry, monkeypatch):
    monkeypatch.setenv("TUTORIAL_KIT_REGISTRY", str(standin_registry))
    monkeypatch.setenv("TUTORIAL_KIT_TIER", "workshop")
    kang = tk.data.kang()
    assert kang.n_vars == 1267 and "counts" in kang.layers and kang.uns["tutorial_kit"]["stands_for"]
    scgen = tk.data.kang_scgen()
    assert set(scgen.obs["split"]) == {"train", "valid"} and scgen.n_vars == 6998
    for fn in (tk.data.norman, tk.data.papalexi):
        adata = fn(n_top_genes=500)
        info = adata.uns["tutorial_kit"]
        assert info["tier"] == "workshop" and info["stands_for"]
        assert not info["targets_not_measured"], "a measured target was dropped from the genes"
        assert adata.n_vars == 500 and len(info["targets_measured"]) > 9
        tk.data.check_schema(adata)
    assert tk.data.papalexi(n_top_genes=500).obs["replicate"].nunique() == 3  # session 07's shared variation


def test_datlinger_has_the_same_labels_and_shared_condition_at_both_tiers(standin_registry, monkeypatch):
    monkeypatch.setenv("TUTORIAL_KIT_TIER", "ci")
    ci = tk.data.datlinger(n_top_genes=800)
    monkeypatch.setenv("TUTORIAL_KIT_REGISTRY", str(standin_registry))
    monkeypatch.setenv("TUTORIAL_KIT_TIER", "workshop")
    full = tk.data.datlinger(n_top_genes=800)
    in_file = set(tk.data.load_datlinger2021().var_names)  # the stand-in has these genes too (plus filler)
    for adata, tier in ((ci, "ci"), (full, "workshop")):
        info = adata.uns["tutorial_kit"]
        assert info["tier"] == tier and adata.n_vars == 800 and "counts" in adata.layers
        targets = set(info["targets_measured"]) | set(info["targets_not_measured"])
        assert set(info["targets_measured"]) == targets & in_file, "a measured target was dropped from the genes"
        assert set(adata.obs["condition"]) == {"stimulated", "unstimulated"}
        tk.data.check_schema(adata)
    assert set(ci.obs["perturbation"]) == set(full.obs["perturbation"]) and len(set(ci.obs["perturbation"])) == 21
    assert (ci.obs["perturbation"] == CONTROL).sum() == (full.obs["perturbation"] == CONTROL).sum() == 200
    assert full.uns["tutorial_kit"]["stands_for"]


def test_select_genes_looks_only_at_the_chosen_cells_and_keeps_targets():
    rng = np.random.default_rng(0)
    x = rng.poisson(2.0, (200, 50)).astype(np.float32)
    x[100:, 7] = rng.choice([0, 40], 100)  # variable only in the cells that are NOT chosen
    adata = ad.AnnData(np.log1p(x))
    adata.var_names = [f"g{i}" for i in range(50)]
    on = np.arange(200) < 100
    assert "g7" not in tk.data.select_genes(adata, 10, on=on)
    assert "g7" in tk.data.select_genes(adata, 10)
    kept = tk.data.select_genes(adata, 10, on=on, keep=["g3", "absent"])
    assert len(kept) == 10 and "g3" in kept
    assert tk.data.select_genes(adata, 60) == list(adata.var_names)
    with pytest.raises(ValueError, match="n_top_genes"):
        tk.data.select_genes(adata, 0)
    with pytest.raises(ValueError, match="selects at least one cell"):
        tk.data.select_genes(adata, 10, on=np.zeros(200, dtype=bool))


def test_sciplex_is_workshop_only_and_reads_one_cell_line_with_numeric_doses(standin_registry, monkeypatch):
    monkeypatch.setenv("TUTORIAL_KIT_TIER", "ci")
    with pytest.raises(ValueError, match="no CI-sized file.*simulate_dose_screen"):
        tk.data.sciplex()
    monkeypatch.setenv("TUTORIAL_KIT_REGISTRY", str(standin_registry))
    monkeypatch.setenv("TUTORIAL_KIT_TIER", "workshop")
    adata = tk.data.sciplex(n_top_genes=100)
    assert set(adata.obs["cell_type"]) == {"A549"} and adata.n_vars == 100
    assert set(adata.obs["perturbation"]) == {CONTROL, *tk.data.SCIPLEX_COMPOUNDS}
    control = (adata.obs["perturbation"] == CONTROL).to_numpy()
    assert (adata.obs.loc[control, "dose"] == 0).all()
    assert set(adata.obs.loc[~control, "dose"]) == {10.0, 100.0, 1000.0, 10000.0}
    np.testing.assert_array_equal(adata.obs.loc[~control, "dose"], adata.obs.loc[~control, "dose_value"].astype(float))
    assert "counts" in adata.layers and adata.uns["tutorial_kit"]["tier"] == "workshop"
    tk.data.check_schema(adata)
    with pytest.raises(ValueError, match=r"not in the file \(close names: \{'Hesperadine': \['Hesperadin'\]"):
        tk.data.sciplex(compounds=["Hesperadine"])
    with pytest.raises(ValueError, match="no cells of cell line 'HeLa'"):
        tk.data.sciplex(cell_line="HeLa")
