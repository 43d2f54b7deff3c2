"""Stand-ins for the full public datasets: small files in each source's exact published layout.

The workshop tier reads files of hundreds of megabytes to gigabytes that CI cannot download. These
stand-ins have the same ``obs`` and ``var`` columns, label spellings, matrix encoding and kind of
values (raw counts, dense or sparse, log-normalized) as the published files, with a few thousand
cells, so the workshop loaders and the notebooks run on them exactly as on the real files.
They are registered through ``TUTORIAL_KIT_REGISTRY`` (a TOML file, ``stands_for=`` the built-in
name), the documented way to bring your own data, so the checks of the built-in entries stay as
they are.

Where a CI file holds the same study, the stand-in is derived from it (real cells, real biology):
Kang (muscat's subset as pertpy's file), scGen's splits (the validation file cut in two), Norman
(PerturBench's cells turned back into counts, plus the targets and extra genes of the full
transcriptome), Papalexi (sceptredata's counts with scPerturb's guide labels), Datlinger 2021 (scPerturb's
test subset with its own metadata columns, plus filler genes). Replogle, Adamson,
Dixit and sci-Plex 3 are synthetic counts in their layouts.

Usage: ``python tests/standins.py OUTDIR`` writes the files and ``OUTDIR/registry.toml``; then
``TUTORIAL_KIT_TIER=workshop TUTORIAL_KIT_REGISTRY=OUTDIR/registry.toml jupyter lab``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Callable

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

import tutorial_kit as tk

SEED = 0


def _qc(obs: pd.DataFrame, counts: sp.csr_matrix) -> pd.DataFrame:
    """scPerturb's QC columns: ncounts, ngenes, percent_mito, percent_ribo (x100)."""
    obs["ncounts"] = np.asarray(counts.sum(axis=1)).ravel().astype(np.float32)
    obs["ngenes"] = np.asarray((counts > 0).sum(axis=1)).ravel().astype(np.int64)
    obs["percent_mito"] = np.float32(0.0)
    obs["percent_ribo"] = np.float32(0.0)
    return obs


def _scperturb_obs(obs: pd.DataFrame, cell_line: str, celltype: str, disease: str, kind: str) -> pd.DataFrame:
    obs["tissue_type"] = "cell_line"
    obs["cell_line"] = cell_line
    obs["cancer"] = True
    obs["disease"] = disease
    obs["perturbation_type"] = kind
    obs["celltype"] = celltype
    obs["organism"] = "human"
    return obs


def _scperturb_var(symbols: list[str], counts: sp.csr_matrix, ensembl: str = "ensembl_id") -> pd.DataFrame:
    var = pd.DataFrame(index=pd.Index(symbols, name="gene_symbol"))
    var[ensembl] = [f"ENSG{i:011d}" for i in range(len(symbols))]
    var["ncounts"] = np.asarray(counts.sum(axis=0)).ravel().astype(np.float32)
    var["ncells"] = np.asarray((counts > 0).sum(axis=0)).ravel().astype(np.int64)
    return var


def _noise_genes(rng: np.random.Generator, n_cells: int, n_genes: int, prefix: str) -> tuple[sp.csr_matrix, list[str]]:
    """Genes of the full transcriptome that a CI file lacks: barely expressed, as most genes of a transcriptome are."""
    rates = rng.gamma(0.3, 0.05, n_genes)
    return sp.csr_matrix(rng.poisson(rates, (n_cells, n_genes)).astype(np.float32)), [f"{prefix}{i:04d}" for i in range(n_genes)]


def _counts_from_log(x: sp.spmatrix, rng: np.random.Generator) -> sp.csr_matrix:
    """Counts whose log1p-per-10,000 profile is ``x``: expm1, a per-cell depth, Poisson noise."""
    depth = rng.uniform(0.8, 1.6, x.shape[0]).astype(np.float32)
    mean = sp.csr_matrix(sp.diags(depth) @ sp.csr_matrix(x, dtype=np.float32).expm1())
    mean.data = rng.poisson(mean.data).astype(np.float32)
    mean.eliminate_zeros()
    return mean


# ---------------------------------------------------------------------------- Kang 2018, pertpy and scGen


def kang_2018(path: Path, rng: np.random.Generator) -> None:
    """pertpy's kang_2018.h5ad: X sparse float raw counts; obs label ctrl/stim, cell_type, replicate, Seurat columns."""
    src = tk.data.load_kang_muscat()
    counts = sp.csr_matrix(src.layers["counts"], dtype=np.float32)
    label = np.where(src.obs["perturbation"].astype(str) == "control", "ctrl", "stim")
    n = src.n_obs
    obs = pd.DataFrame(
        {
            "nCount_RNA": np.asarray(counts.sum(axis=1)).ravel(),
            "nFeature_RNA": np.asarray((counts > 0).sum(axis=1)).ravel().astype(np.int32),
            "tsne1": rng.normal(size=n),
            "tsne2": rng.normal(size=n),
            "label": pd.Categorical(label),
            "cluster": pd.Categorical(src.obs["cell_type"].cat.codes.astype(str)),
            "cell_type": pd.Categorical(src.obs["cell_type"].astype(str)),
            "replicate": pd.Categorical(["patient_" + str(d) for d in src.obs["donor"]]),
            "nCount_SCT": np.asarray(counts.sum(axis=1)).ravel(),
            "nFeature_SCT": np.asarray((counts > 0).sum(axis=1)).ravel().astype(np.int32),
            "integrated_snn_res.0.4": pd.Categorical(src.obs["cell_type"].cat.codes.astype(str)),
            "seurat_clusters": pd.Categorical(src.obs["cell_type"].cat.codes.astype(str)),
        },
        index=pd.Index([f"{c}-1" for c in src.obs_names], name="index"),
    )
    extra, names = _noise_genes(rng, n, 600, "KANGX")
    var = pd.DataFrame({"name": list(src.var_names) + names}, index=pd.Index(list(src.var_names) + names, name="index"))
    adata = ad.AnnData(X=sp.hstack([counts, extra], format="csr"), obs=obs, var=var)
    adata.obsm["X_pca"] = rng.normal(size=(n, 10)).astype(np.float32)
    adata.obsm["X_umap"] = rng.normal(size=(n, 2)).astype(np.float32)
    adata.write_h5ad(path)


def _scgen(path: Path, rows: np.ndarray) -> None:
    raw = ad.read_h5ad(tk.data.fetch("kang2018_scgen_valid.h5ad"))
    sub = raw[rows]
    obs = sub.obs[["condition", "n_counts", "n_genes", "mt_frac", "cell_type"]].copy()
    var = sub.var[["gene_symbol", "n_cells"]].copy()
    ad.AnnData(X=sp.csr_matrix(sub.X, dtype=np.float32), obs=obs, var=var).write_h5ad(path)


def scgen_splits(train: Path, valid: Path, rng: np.random.Generator) -> None:
    """scGen's train_pbmc / valid_pbmc: X sparse log-normalized; obs condition, n_counts, n_genes, mt_frac, cell_type."""
    n = 1975
    order = rng.permutation(n)
    _scgen(train, np.sort(order[: int(0.75 * n)]))
    _scgen(valid, np.sort(order[int(0.75 * n):]))


# ---------------------------------------------------------------------------- scPerturb: Norman, Papalexi


def norman(path: Path, rng: np.random.Generator) -> None:
    """scPerturb's Norman 2019: X sparse raw counts, perturbation 'control' / 'AHR' / 'AHR_FEV', nperts, guide_id, gemgroup."""
    src = tk.data.load_perturbench_devel("norman19")
    counts = _counts_from_log(src.X, rng)
    labels = src.obs["perturbation"].astype(str).to_numpy()
    targets = sorted({g for p in labels for g in tk.data.perturbation_parts(p)} - set(src.var_names))
    n = src.n_obs
    target_counts = rng.poisson(0.3, (n, len(targets))).astype(np.float32)
    for j, gene in enumerate(targets):  # CRISPRa: the target is switched on in its cells
        hit = np.array([gene in tk.data.perturbation_parts(p) for p in labels])
        target_counts[hit, j] = rng.poisson(25, hit.sum())
    extra, names = _noise_genes(rng, n, 2500, "NORMX")
    x = sp.hstack([counts, sp.csr_matrix(target_counts), extra], format="csr")
    symbols = list(src.var_names) + targets + names
    raw = [p.replace("+", "_") if p != "control" else "control" for p in labels]
    nperts = [0 if p == "control" else p.count("+") + 1 for p in labels]
    guides = [("NegCtrl0_NegCtrl0" if p == "control" else (p.replace("+", "_") if "+" in p else f"{p}_NegCtrl0")) for p in labels]
    obs = pd.DataFrame(
        {
            "guide_id": pd.Categorical([f"{g};{g}" for g in guides]),
            "read_count": rng.integers(100, 2000, n),
            "UMI_count": rng.integers(10, 200, n),
            "coverage": rng.uniform(5, 30, n),
            "gemgroup": rng.integers(1, 9, n),
            "good_coverage": True,
            "number_of_cells": 1,
        },
        index=pd.Index([f"{c}-{i}" for i, c in enumerate(src.obs_names)], name="cell_barcode"),
    )
    obs = _scperturb_obs(obs, "K562", "lymphoblasts", "chronic myelogenous leukemia", "CRISPR")
    obs["perturbation"] = pd.Categorical(raw)
    obs["nperts"] = nperts
    obs = _qc(obs, x)
    ad.AnnData(X=x, obs=obs, var=_scperturb_var(symbols, x, "ensemble_id")).write_h5ad(path)


def papalexi(path: Path, rng: np.random.Generator, n_cells: int = 4000) -> None:
    """scPerturb's Papalexi eccite RNA: raw counts; perturbation per guide ('STAT2g1'), 'control' for NT guides."""
    src = tk.data.load_papalexi2021()
    guides = src.obsm["guide_counts"].to_numpy()
    top = guides.argmax(axis=1)
    clear = guides[np.arange(len(guides)), top] >= 5
    rows = np.sort(rng.choice(np.flatnonzero(clear), n_cells, replace=False))
    counts = sp.csr_matrix(src.layers["counts"][rows], dtype=np.float32)
    names = np.asarray(src.obsm["guide_counts"].columns.astype(str))[top[rows]]
    targets = src.uns["guide_targets"]
    label = ["control" if targets[g] == "non-targeting" else g for g in names]
    measured = set(src.var_names)
    missing = sorted({targets[g] for g in names if targets[g] != "non-targeting"} - measured)
    target_counts = rng.poisson(2.0, (n_cells, len(missing))).astype(np.float32)
    for j, gene in enumerate(missing):  # knockout: the target loses most of its transcripts
        hit = np.array([targets[g] == gene for g in names])
        target_counts[hit, j] = rng.poisson(0.3, hit.sum())
    extra, extra_names = _noise_genes(rng, n_cells, 2500, "PAPX")
    x = sp.hstack([counts, sp.csr_matrix(target_counts), extra], format="csr")
    symbols = list(src.var_names) + missing + extra_names
    obs = pd.DataFrame(
        {
            "hto": pd.Categorical(rng.choice([f"rep{r}-tx" for r in (1, 2, 3)], n_cells)),
            "guide_id": pd.Categorical(names),
            "hto_barcode": "ACGT",
            "gdo_barcode": "TTGA",
        },
        index=pd.Index([f"l1_AAAC{i:06d}" for i in range(n_cells)], name="cell_barcode"),
    )
    obs["perturbation"] = pd.Categorical(label)
    obs["replicate"] = pd.Categorical([h.split("-")[0] for h in obs["hto"].astype(str)])  # 'rep1', as the Seurat object
    obs = _scperturb_obs(obs, "THP-1", "monocytes", "acute monocytic leukemia", "CRISPR")
    obs["nperts"] = [0 if p == "control" else 1 for p in label]
    obs = _qc(obs, x)
    ad.AnnData(X=x, obs=obs, var=_scperturb_var(symbols, x)).write_h5ad(path)


def datlinger(path: Path, rng: np.random.Generator) -> None:
    """scPerturb's Datlinger 2021: the CI subset's cells and metadata columns, plus filler genes of a full transcriptome."""
    meta_path = tk.data.fetch("datlinger2021_scperturb/seurat_metadata.csv")
    meta = pd.read_csv(meta_path, index_col=0)
    src = tk.data.load_datlinger2021()
    assert list(src.obs_names) == list(meta.index.astype(str))
    extra, extra_names = _noise_genes(rng, src.n_obs, 1500, "DATL")
    x = sp.hstack([sp.csr_matrix(src.layers["counts"], dtype=np.float32), extra], format="csr")
    obs = meta.drop(columns=["orig.ident", "nCount_originalexp", "nFeature_originalexp"])
    for col in ("sample", "cell_line", "perturbation", "perturbation_2", "celltype", "perturbation_type_2"):
        obs[col] = pd.Categorical(obs[col].astype(str))
    obs.index = pd.Index(meta.index.astype(str), name="cell_barcode")
    ad.AnnData(X=x, obs=obs, var=_scperturb_var(list(src.var_names) + extra_names, x)).write_h5ad(path)


# ---------------------------------------------------------------------------- scPerturb: synthetic ones


def _synthetic(rng: np.random.Generator, labels: list[str], n_genes: int, genes: list[str]) -> tuple[sp.csr_matrix, list[str]]:
    """Counts with a per-label shift on a few genes; the named ``genes`` first, then filler genes."""
    n = len(labels)
    base = rng.gamma(0.6, 1.0, n_genes)
    effect = {p: np.where(rng.random(n_genes) < 0.05, rng.normal(0, 1, n_genes), 0.0) for p in set(labels)}
    rates = np.vstack([base * np.exp(effect[p]) for p in labels])
    x = sp.csr_matrix(rng.poisson(rates).astype(np.float32))
    symbols = genes + [f"SYNX{i:04d}" for i in range(n_genes - len(genes))]
    return x, symbols


def replogle(path: Path, rng: np.random.Generator, n_cells: int = 1500) -> None:
    """scPerturb's Replogle K562 essential: X DENSE raw counts; perturbation = gene, control 'non-targeting'."""
    genes = ["POLR2A", "RPL3", "SF3B1", "TBCE", "TBCE"]  # the full file has duplicated symbols made unique
    targets = ["POLR2A", "RPL3", "SF3B1", "non-targeting"]
    labels = list(rng.choice(targets, n_cells, p=[0.25, 0.25, 0.25, 0.25]))
    x, symbols = _synthetic(rng, labels, 300, genes)
    symbols[3], symbols[4] = "TBCE_ENSG00000284770", "TBCE_ENSG00000285053"
    obs = pd.DataFrame(
        {
            "batch": rng.integers(1, 49, n_cells),
            "gene": labels,
            "gene_id": [f"ENSG{abs(hash(g)) % 10**11:011d}" for g in labels],
            "transcript": "P1P2",
            "gene_transcript": [f"{g}_P1P2" for g in labels],
            "guide_id": [f"{g}_+_1234.23-P1P2|{g}_-_1234.23-P1P2" for g in labels],
            "percent_mito": rng.uniform(0.02, 0.12, n_cells).astype(np.float32),
            "UMI_count": np.asarray(x.sum(axis=1)).ravel(),
            "z_gemgroup_UMI": rng.normal(size=n_cells),
            "core_scale_factor": rng.uniform(0.8, 1.2, n_cells),
            "core_adjusted_UMI_count": np.asarray(x.sum(axis=1)).ravel(),
            "disease": "chronic myeloid leukemia",
            "cancer": True,
            "cell_line": "K562",
            "sex": "Female",
            "age": 53,
            "perturbation": labels,
            "organism": "human",
            "perturbation_type": "CRISPR",
            "tissue_type": "cell_line",
        },
        index=pd.Index([f"AAAC{i:06d}-{i % 48 + 1}" for i in range(n_cells)], name="cell_barcode"),
    )
    obs["ncounts"] = np.asarray(x.sum(axis=1)).ravel()
    obs["ngenes"] = np.asarray((x > 0).sum(axis=1)).ravel()
    obs["nperts"] = [0 if g == "non-targeting" else 1 for g in labels]
    obs["percent_ribo"] = np.float32(0.0)
    var = _scperturb_var(symbols, x)
    ad.AnnData(X=np.asarray(x.toarray(), dtype=np.float32), obs=obs, var=var).write_h5ad(path)


def adamson(path: Path, rng: np.random.Generator, n_cells: int = 1500) -> None:
    """scPerturb's Adamson 10X010: perturbation = guide identity 'GENE_pDSnnn', controls '62(mod)_pBA581', some missing."""
    ids = ["ATF6_pDS001", "ERN1_pDS002", "EIF2AK3_pDS003", "62(mod)_pBA581"]
    labels = list(rng.choice(ids, n_cells))
    x, symbols = _synthetic(rng, labels, 300, ["ATF6", "ERN1", "EIF2AK3"])
    raw = pd.Series(labels, dtype=object)
    raw[rng.random(n_cells) < 0.04] = np.nan  # cells without a guide identity
    obs = pd.DataFrame({"read count": rng.integers(50, 500, n_cells), "UMI count": rng.integers(5, 50, n_cells),
                        "gemgroup": rng.integers(1, 5, n_cells)},
                       index=pd.Index([f"AAAC{i:06d}-1" for i in range(n_cells)], name="cell_barcode"))
    obs = _scperturb_obs(obs, "K562", "lymphoblasts", "chronic myelogenous leukemia", "CRISPR")
    obs["perturbation"] = pd.Categorical(raw.to_numpy())
    obs["nperts"] = [0 if not isinstance(v, str) else 1 for v in raw]
    obs = _qc(obs, x)
    ad.AnnData(X=x, obs=obs, var=_scperturb_var(symbols, x)).write_h5ad(path)


def dixit(path: Path, rng: np.random.Generator, n_cells: int = 1500) -> None:
    """scPerturb's Dixit 7 days: guide-level labels 'p-sgELK1-1', pairs joined by '_', 'control', 'nan'; nperts 1 everywhere."""
    ids = ["p-sgELK1-1", "p-sgELK1-7", "p-sgETS1-3", "p-sgELF1-1", "p-sgELK1-7_p-sgELF1-1", "control", "nan"]
    labels = list(rng.choice(ids, n_cells))
    x, symbols = _synthetic(rng, labels, 300, ["ELK1", "ETS1", "ELF1"])
    obs = pd.DataFrame({"perturbation": labels, "grna_lenient": labels, "target": [l.split("-")[1][2:] if l.startswith("p-") else l for l in labels],
                        "moi": "normal", "time": 168},
                       index=pd.Index([f"AAAC{i:06d}" for i in range(n_cells)], name="cell_barcode"))
    obs = _scperturb_obs(obs, "K562", "lymphoblasts", "myelogenous leukemia", "CRISPR")
    obs["guide_id"] = [l.replace("_", " + ") for l in labels]
    obs = _qc(obs, x)
    obs["nperts"] = 1  # as published: not the number of guides
    var = _scperturb_var(symbols, x, "gene_id")
    ad.AnnData(X=x, obs=obs, var=var).write_h5ad(path)


def sciplex3(path: Path, rng: np.random.Generator, n_cells: int = 4000) -> None:
    """scPerturb's sci-Plex 3: perturbation = compound ('control' for vehicle), dose_value (nM), dose_unit, time, cell_line."""
    drugs = ["Dexamethasone", "(+)-JQ1", "Tacedinaline (CI-994)", *tk.data.SCIPLEX_COMPOUNDS, "control", "control"]
    labels = list(rng.choice(drugs, n_cells))
    x, symbols = _synthetic(rng, labels, 300, ["NR3C1", "BRD4", "HDAC1"])
    dose = np.array([0.0 if d == "control" else rng.choice([10.0, 100.0, 1000.0, 10000.0]) for d in labels])
    lines = rng.choice(["A549", "K562", "MCF7"], n_cells)
    raw = pd.Series(labels, dtype=object)
    unassigned = rng.random(n_cells) < 0.04
    raw[unassigned] = np.nan
    obs = pd.DataFrame(
        {"ncounts": np.asarray(x.sum(axis=1)).ravel(), "cell_line": lines, "replicate": rng.choice(["rep1", "rep2"], n_cells),
         "time": 24.0, "dose_value": np.where(unassigned, np.nan, dose), "perturbation": pd.Categorical(raw.to_numpy()),
         "well": "A01", "plate": "P1", "target": "x", "pathway": "y", "dose_unit": "nM",
         "celltype": [{"A549": "alveolar basal epithelial cells", "K562": "lymphoblasts", "MCF7": "mammary epithelial cells"}[c] for c in lines],
         "disease": "cancer", "cancer": True, "tissue_type": "cell_line", "organism": "human", "perturbation_type": "drug"},
        index=pd.Index([f"sci_{i:06d}" for i in range(n_cells)], name="cell_barcode"),
    )
    obs["ngenes"] = np.asarray((x > 0).sum(axis=1)).ravel()
    obs["nperts"] = [0 if not isinstance(v, str) or v == "control" else 1 for v in raw]
    obs["percent_mito"] = 0.0
    obs["percent_ribo"] = 0.0
    ad.AnnData(X=x, obs=obs, var=_scperturb_var(symbols, x)).write_h5ad(path)


# ---------------------------------------------------------------------------- all of them, registered


BUILDERS: dict[str, tuple[str, Callable[..., None]]] = {
    "kang_2018.h5ad": ("standin_kang_2018.h5ad", kang_2018),
    "NormanWeissman2019_filtered.h5ad": ("standin_norman2019.h5ad", norman),
    "PapalexiSatija2021_eccite_RNA.h5ad": ("standin_papalexi2021.h5ad", papalexi),
    "ReplogleWeissman2022_K562_essential.h5ad": ("standin_replogle2022.h5ad", replogle),
    "AdamsonWeissman2016_GSM2406681_10X010.h5ad": ("standin_adamson2016.h5ad", adamson),
    "DixitRegev2016_K562_TFs_7_days.h5ad": ("standin_dixit2016.h5ad", dixit),
    "SrivatsanTrapnell2020_sciplex3.h5ad": ("standin_sciplex3.h5ad", sciplex3),
    "DatlingerBock2021.h5ad": ("standin_datlinger2021.h5ad", datlinger),  # last: the others keep their draws
}
"""Built-in workshop file -> (stand-in file name, builder)."""


def build(outdir: Path) -> Path:
    """Write every stand-in into ``outdir`` with a ``registry.toml`` that registers each one; return its path."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    written = {}
    for builtin, (name, builder) in BUILDERS.items():
        builder(outdir / name, rng)
        written[builtin] = name
    scgen_splits(outdir / "standin_scgen_train.h5ad", outdir / "standin_scgen_valid.h5ad", rng)
    written["scgen_train_pbmc.h5ad"] = "standin_scgen_train.h5ad"
    written["scgen_valid_pbmc.h5ad"] = "standin_scgen_valid.h5ad"
    lines = ["# Stand-ins for the workshop files (tests/standins.py): same layout, a few thousand cells.\n"]
    for builtin, name in written.items():
        lines += [
            "[[file]]",
            f'name = "{name}"',
            f'path = "{name}"',
            f'sha256 = "{tk.data.file_hash(outdir / name)}"',
            f'stands_for = "{builtin}"',
            f'description = "stand-in for {builtin} (tests/standins.py)"',
            "",
        ]
    toml = outdir / "registry.toml"
    toml.write_text("\n".join(lines))
    return toml


if __name__ == "__main__":  # pragma: no cover
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/standins.py OUTDIR")
    print(build(Path(sys.argv[1])))
