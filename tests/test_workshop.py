"""The loaders of the full datasets (tutorial_kit/data/workshop.py), on stand-ins in each source's published layout.

The stand-ins (tests/standins.py) are registered through TUTORIAL_KIT_REGISTRY with ``stands_for``, the
documented way to bring your own data; the malformed cases edit a copy of a stand-in and register it anew.
"""

import tracemalloc

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

import tutorial_kit as tk
from tutorial_kit.data.schema import CONTROL, REQUIRED_OBS


@pytest.fixture(autouse=True)
def workshop(standin_registry, monkeypatch):
    monkeypatch.setenv("TUTORIAL_KIT_REGISTRY", str(standin_registry))
    monkeypatch.setenv("TUTORIAL_KIT_TIER", "workshop")
    yield standin_registry


def _schema(adata, dataset):
    for col in REQUIRED_OBS:
        assert col in adata.obs.columns
    assert set(adata.obs["dataset"]) == {dataset}
    assert adata.var_names.is_unique
    tk.data.check_schema(adata)
    assert adata.uns["tutorial_kit"]["stands_for"], "the stand-in was not used"


def _counts_and_x(adata, totals=None):
    counts = adata.layers["counts"]
    assert counts.dtype == np.int32 and sp.issparse(counts)
    totals = np.asarray(counts.sum(axis=1)).ravel() if totals is None else totals
    expected = np.log1p(counts.toarray() / np.maximum(totals, 1)[:, None] * 1e4)
    np.testing.assert_allclose(adata.X.toarray(), expected, rtol=1e-5, atol=1e-5)


def _variant(standin_registry, tmp_path, builtin, edit):
    """A copy of the stand-in for ``builtin`` changed by ``edit(adata)``, registered in its place."""
    import tomllib

    files = tomllib.loads(standin_registry.read_text())["file"]
    entry = next(f for f in files if f["stands_for"] == builtin)
    adata = ad.read_h5ad(standin_registry.parent / entry["path"])
    adata = edit(adata) or adata
    path = tmp_path / f"bad_{entry['path']}"
    adata.write_h5ad(path)
    toml = tmp_path / "bad.toml"
    toml.write_text(f'[[file]]\nname = "bad_{entry["path"]}"\npath = "{path.name}"\n'
                    f'sha256 = "{tk.data.file_hash(path)}"\nstands_for = "{builtin}"\n')
    return toml


# ---------------------------------------------------------------------------- Kang and scGen


def test_kang2018_has_counts_and_the_course_labels():
    adata = tk.data.load_kang2018()
    _schema(adata, "kang2018")
    _counts_and_x(adata)
    assert set(adata.obs["perturbation"]) == {CONTROL, "IFN-beta"}
    assert set(adata.obs["condition"]) == {"control", "stimulated"}
    assert (adata.obs.loc[adata.obs["label"] == "ctrl", "perturbation"] == CONTROL).all()
    assert adata.obs["donor"].str.startswith("patient_").all()
    assert adata.obs["sample_id"].nunique() == 2 * adata.obs["donor"].nunique()


def test_kang2018_refuses_other_labels_and_log_values(standin_registry, tmp_path, monkeypatch):
    def relabel(a):
        a.obs["label"] = a.obs["label"].astype(str).replace({"ctrl": "control"})

    monkeypatch.setenv("TUTORIAL_KIT_REGISTRY", str(_variant(standin_registry, tmp_path, "kang_2018.h5ad", relabel)))
    with pytest.raises(ValueError, match=r"label values \['control'\]"):
        tk.data.load_kang2018()

    def log(a):
        a.X = sp.csr_matrix(np.log1p(a.X.toarray()) + 0.3)

    monkeypatch.setenv("TUTORIAL_KIT_REGISTRY", str(_variant(standin_registry, tmp_path, "kang_2018.h5ad", log)))
    with pytest.raises(ValueError, match="raw UMI counts"):
        tk.data.load_kang2018()


def test_scgen_pbmc_splits_have_the_ci_schema():
    both = tk.data.load_scgen_pbmc("all")
    train, valid = tk.data.load_scgen_pbmc("train"), tk.data.load_scgen_pbmc("valid")
    _schema(both, "kang2018_scgen")
    assert both.n_obs == train.n_obs + valid.n_obs
    assert set(both.obs["split"]) == {"train", "valid"}
    ci = tk.data.load_kang_scgen_valid()
    assert list(both.var_names) == list(ci.var_names)
    assert set(both.obs["cell_type"]) == set(ci.obs["cell_type"])
    assert set(ci.obs.columns) <= set(both.obs.columns)
    with pytest.raises(ValueError, match="Unknown split"):
        tk.data.load_scgen_pbmc("test")


def test_scgen_pbmc_refuses_counts_and_a_missing_column(standin_registry, tmp_path, monkeypatch):
    def counts(a):
        a.X = sp.csr_matrix(np.round(np.expm1(a.X.toarray()) * 100))

    monkeypatch.setenv("TUTORIAL_KIT_REGISTRY", str(_variant(standin_registry, tmp_path, "scgen_valid_pbmc.h5ad", counts)))
    with pytest.raises(ValueError, match="log-normalized"):
        tk.data.load_scgen_pbmc("valid")

    def drop(a):
        del a.obs["cell_type"]

    monkeypatch.setenv("TUTORIAL_KIT_REGISTRY", str(_variant(standin_registry, tmp_path, "scgen_valid_pbmc.h5ad", drop)))
    with pytest.raises(ValueError, match=r"missing columns \['cell_type'\]"):
        tk.data.load_scgen_pbmc("valid")


# ---------------------------------------------------------------------------- scPerturb


@pytest.mark.parametrize("dataset", sorted(tk.data.SCPERTURB))
def test_every_scperturb_loader_gives_the_schema_counts_and_control(dataset):
    adata = tk.data.load_scperturb(dataset)
    _schema(adata, f"{dataset}_scperturb")
    _counts_and_x(adata)
    labels = set(adata.obs["perturbation"].astype(str))
    assert CONTROL in labels and len(labels) > 2
    assert all(tk.data.normalize_perturbation(p) == p for p in labels)
    n = adata.obs["n_perturbations"].to_numpy()
    assert ((n == 0) == (adata.obs["perturbation"].astype(str) == CONTROL).to_numpy()).all()


def test_scperturb_label_spellings_become_the_course_schema():
    norman = tk.data.load_scperturb("norman2019")
    raw = norman.obs.loc[norman.obs["n_perturbations"] == 2, ["perturbation_raw", "perturbation"]].drop_duplicates()
    for source, course in raw.itertuples(index=False):
        assert course == "+".join(sorted(source.split("_")))  # 'AHR_FEV' -> 'AHR+FEV', sorted
    replogle = tk.data.load_scperturb("replogle2022")
    assert (replogle.obs.loc[replogle.obs["perturbation_raw"] == "non-targeting", "perturbation"] == CONTROL).all()
    assert {"TBCE_ENSG00000284770", "TBCE_ENSG00000285053"} <= set(replogle.var_names)
    papalexi = tk.data.load_scperturb("papalexi2021")
    guided = papalexi.obs[papalexi.obs["perturbation"] != CONTROL]
    assert all(g.startswith(p) and g[len(p)] == "g" for g, p in zip(guided["guide"], guided["perturbation"]))
    assert set(papalexi.obs["condition"]) == {"IFN-gamma"}
    dixit = tk.data.load_scperturb("dixit2016")
    assert "ELF1+ELK1" in set(dixit.obs["perturbation"]) and dixit.uns["tutorial_kit"]["cells_without_label_dropped"] > 0
    assert (dixit.obs.loc[dixit.obs["perturbation"] == "ELF1+ELK1", "n_perturbations"] == 2).all()  # not the file's nperts
    adamson = tk.data.load_scperturb("adamson2016")
    assert set(adamson.obs["perturbation"]) == {CONTROL, "ATF6", "EIF2AK3", "ERN1"}
    datlinger = tk.data.load_scperturb("datlinger2021")
    guided = datlinger.obs[datlinger.obs["perturbation"] != CONTROL]
    assert all(g.rsplit("_", 1)[0] == p for g, p in zip(guided["guide"], guided["perturbation"]))  # 'ZAP70_1' -> 'ZAP70'
    assert set(datlinger.obs["condition"]) == {"stimulated", "unstimulated"}  # from perturbation_2
    assert (datlinger.obs["n_perturbations"] <= 1).all()  # not the file's nperts, which counts the stimulation
    sciplex = tk.data.load_scperturb("sciplex3")
    assert "Tacedinaline (CI-994)" in set(sciplex.obs["perturbation"])  # a compound's name is never split
    assert set(sciplex.obs["cell_type"]) == {"A549", "K562", "MCF7"}
    treated = sciplex.obs[sciplex.obs["perturbation"] != CONTROL]
    assert all(c == f"{p} {d:g} nM" for c, p, d in zip(treated["condition"], treated["perturbation"], treated["dose_value"]))


def test_scperturb_subset_is_normalized_by_all_genes_and_reads_no_dense_copy():
    full = tk.data.load_scperturb("norman2019")
    genes = list(full.var_names[:40])
    cells = np.zeros(full.n_obs, dtype=bool)
    cells[::3] = True
    tracemalloc.start()
    part = tk.data.load_scperturb("norman2019", cells=cells, genes=genes, chunk_rows=500)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert list(part.var_names) == genes and part.n_obs == cells.sum()
    np.testing.assert_allclose(part.X.toarray(), full[cells, genes].X.toarray(), rtol=1e-5, atol=1e-6)
    dense_bytes = full.n_obs * full.n_vars * 4
    assert peak < dense_bytes / 2, f"reading a subset peaked at {peak / 1e6:.1f} MB, not far below one dense copy"
    with pytest.raises(ValueError, match=r"genes \['NOT_A_GENE'\] are not in the file"):
        tk.data.load_scperturb("norman2019", genes=["NOT_A_GENE"])
    with pytest.raises(ValueError, match="Unknown scPerturb dataset"):
        tk.data.load_scperturb("norman")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda a: a.obs.drop(columns="nperts", inplace=True), r"missing columns \['nperts'\]"),
        (lambda a: a.obs.__setitem__("perturbation", a.obs["perturbation"].astype(str).replace({"control": "ctrl_wt"})),
         "no cell is labelled as control"),
        (lambda a: a.obs.__setitem__("nperts", 1), "combinations whose parts do not match nperts"),
        (lambda a: setattr(a, "X", sp.csr_matrix(np.log1p(a.X.toarray()))), "raw UMI counts"),
    ],
    ids=["missing column", "wrong control spelling", "nperts contradicts the label", "log values"],
)
def test_malformed_norman_files_fail_with_a_clear_error(edit, message, standin_registry, tmp_path, monkeypatch):
    toml = _variant(standin_registry, tmp_path, "NormanWeissman2019_filtered.h5ad", edit)
    monkeypatch.setenv("TUTORIAL_KIT_REGISTRY", str(toml))
    with pytest.raises(ValueError, match=message):
        tk.data.load_scperturb("norman2019")


def test_duplicated_gene_symbols_are_made_unique(standin_registry, tmp_path, monkeypatch):
    def duplicate(a):
        names = list(a.var_names)
        names[1] = names[0]
        a.var_names = names

    monkeypatch.setenv("TUTORIAL_KIT_REGISTRY", str(_variant(standin_registry, tmp_path, "NormanWeissman2019_filtered.h5ad", duplicate)))
    adata = tk.data.load_scperturb("norman2019")
    first = adata.var_names[0]
    assert adata.var_names.is_unique and f"{first}-1" == adata.var_names[1]


def test_a_changed_standin_is_refused_by_its_registered_hash(standin_registry, tmp_path, monkeypatch):
    toml = _variant(standin_registry, tmp_path, "DixitRegev2016_K562_TFs_7_days.h5ad", lambda a: None)
    path = next(tmp_path.glob("bad_*.h5ad"))
    with open(path, "ab") as fh:
        fh.write(b"tampered")
    monkeypatch.setenv("TUTORIAL_KIT_REGISTRY", str(toml))
    with pytest.raises(tk.data.DataUnavailableError, match="sha256"):
        tk.data.load_scperturb("dixit2016")
