"""One loader per course data source, each returning the course schema.

Taught in ``00_setup_check`` (the AnnData layout) and ``01_perturbseq_qc`` (guides).
Every loader fetches its files through the registry (cache, then mirror, then network,
always hash-verified), checks what it read (shape, columns) and fails loudly on a mismatch.

The schema (see :mod:`tutorial_kit.data.schema`):

================  ==================================================================
``X``             log1p of counts per 10,000 when the source has counts (computed here);
                  otherwise the source's log-normalized values, unchanged
``layers``        ``'counts'``: raw UMI counts, only when the source has them
``obs``           ``perturbation`` (``'control'`` or ``'A'`` / ``'A+B'``), ``condition``,
                  ``cell_type``, ``dataset``, plus source columns listed per loader
``var_names``     gene symbols, unique
``uns``           ``'tutorial_kit'``: dataset name, what ``X`` holds, source URL
================  ==================================================================
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tutorial_kit.data._checks import X_LOG1P_CP10K
from tutorial_kit.data._checks import expect as _expect
from tutorial_kit.data._checks import expect_columns as _expect_columns
from tutorial_kit.data._checks import finish as _finish
from tutorial_kit.data._checks import provenance as _provenance
from tutorial_kit.data.registry import fetch
from tutorial_kit.data.schema import CONTROL, normalize_perturbations
from tutorial_kit.data.schema import log1p_cp10k as _log1p_cp10k

if TYPE_CHECKING:  # pragma: no cover
    import anndata
    import pandas as pd

def load_kang_scgen_valid() -> "anndata.AnnData":
    """Kang 2018 PBMC, control vs IFN-beta: scGen's validation split (CI tier of sessions 04, 05, 10).

    1,975 cells x 6,998 genes, log-normalized by the scGen authors (no counts in the file).
    ``obs``: ``perturbation`` (``'control'`` / ``'IFN-beta'``), ``condition``
    (``'control'`` / ``'stimulated'``, as scGen names it), ``cell_type`` (7 types), ``dataset``.
    The 2018 file's precomputed neighbours and embeddings are dropped: they were fitted on
    the full data and would leak into any analysis of this subset.

    Example:
        >>> import tutorial_kit as tk
        >>> adata = tk.data.load_kang_scgen_valid()
        >>> adata.obs.groupby(["cell_type", "condition"], observed=True).size()["CD4T"].to_dict()
        {'control': 278, 'stimulated': 356}
    """
    import anndata as ad

    name = "kang2018_scgen_valid.h5ad"
    path = fetch(name)
    with warnings.catch_warnings():
        # The file was written by a 2018 anndata; its layout warnings are expected and harmless.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", getattr(ad, "OldFormatWarning", FutureWarning))
        raw = ad.read_h5ad(path)
    _expect(raw.shape == (1975, 6998), name, f"shape {raw.shape}, expected (1975, 6998)")
    _expect_columns(raw.obs, ["condition", "cell_type"], name)
    conditions = set(raw.obs["condition"].astype(str))
    _expect(conditions == {"control", "stimulated"}, name, f"condition values {sorted(conditions)}")
    obs = raw.obs[["condition", "cell_type", "n_counts", "n_genes"]].copy()
    obs["condition"] = obs["condition"].astype(str)
    obs["perturbation"] = np.where(obs["condition"] == "control", CONTROL, "IFN-beta")
    obs["dataset"] = "kang2018_scgen_valid"
    adata = ad.AnnData(X=raw.X.astype(np.float32), obs=obs, var=raw.var[[]].copy())
    adata.var_names = adata.var_names.astype(str)
    _provenance(adata, "kang2018_scgen_valid", [name], "log-normalized by the scGen authors (no counts)")
    return _finish(adata, name)


def _rdata_read(path: Path) -> Any:
    import rdata

    with warnings.catch_warnings():
        # rdata has no Python class for Bioconductor S4 objects; it returns their slots, which we read.
        warnings.filterwarnings("ignore", message="Missing constructor")
        return rdata.read_rda(str(path))


def _dgc_to_csr(mat: Any, dataset: str) -> Any:
    """An R ``dgCMatrix`` (genes x cells, column-compressed) as a cells x genes CSR matrix."""
    import scipy.sparse as sp

    for slot in ("i", "p", "x", "Dim"):
        _expect(hasattr(mat, slot), dataset, f"sparse matrix without slot {slot!r}")
    n_rows, n_cols = (int(v) for v in mat.Dim)
    csc = sp.csc_matrix((np.asarray(mat.x), np.asarray(mat.i), np.asarray(mat.p)), shape=(n_rows, n_cols))
    return csc.T.tocsr()


def load_kang_muscat() -> "anndata.AnnData":
    """Kang 2018 PBMC with raw counts: muscat's ``example_sce`` (CI tier of sessions 02, 03, 06-08).

    1,556 cells x 1,267 genes from an R SingleCellExperiment, read in pure Python
    with the ``rdata`` package (no R needed).
    ``layers['counts']``: raw UMI counts; ``layers['logcounts']``: muscat's own log2 values;
    ``X``: log1p counts per 10,000.
    ``obs``: ``perturbation`` (``'control'`` / ``'IFN-beta'``), ``condition``
    (``'control'`` / ``'stimulated'``), ``cell_type`` (muscat's 5 clusters),
    ``donor`` and ``sample_id`` (donor x condition), ``dataset``.

    Example:
        >>> import tutorial_kit as tk
        >>> adata = tk.data.load_kang_muscat()
        >>> adata.shape, adata.layers["counts"].dtype.kind
        ((1556, 1267), 'i')
    """
    import anndata as ad
    import pandas as pd

    name = "kang2018_muscat_example_sce.rda"
    objects = _rdata_read(fetch(name))
    _expect("example_sce" in objects, name, f"objects {list(objects)}, expected 'example_sce'")
    sce = objects["example_sce"]
    try:
        assays = sce.assays.data.listData
        coldata = sce.colData
        columns = coldata.listData
        cell_ids = np.asarray(coldata.rownames).astype(str)
    except AttributeError as err:
        raise ValueError(f"{name}: not a SingleCellExperiment as expected ({err}).") from None
    _expect({"counts", "logcounts"} <= set(map(str, assays)), name, f"assays {list(assays)}")
    _expect({"cluster_id", "sample_id", "group_id"} <= set(map(str, columns)), name, f"colData {list(columns)}")
    counts = _dgc_to_csr(assays["counts"], name)
    logcounts = _dgc_to_csr(assays["logcounts"], name)
    genes = np.asarray(assays["counts"].Dimnames[0]).astype(str)
    _expect(counts.shape == (1556, 1267), name, f"shape {counts.shape}, expected (1556, 1267)")
    group = np.asarray(columns["group_id"]).astype(str)
    _expect(set(group) == {"ctrl", "stim"}, name, f"group_id values {sorted(set(group))}")
    sample = np.asarray(columns["sample_id"]).astype(str)
    obs = pd.DataFrame(
        {
            "perturbation": np.where(group == "ctrl", CONTROL, "IFN-beta"),
            "condition": np.where(group == "ctrl", "control", "stimulated"),
            "cell_type": np.asarray(columns["cluster_id"]).astype(str),
            "donor": [s.replace("ctrl", "").replace("stim", "") for s in sample],
            "sample_id": sample,
            "dataset": "kang2018_muscat",
        },
        index=pd.Index(cell_ids, name=None),
    )
    var = pd.DataFrame(index=pd.Index(genes))
    element = getattr(getattr(sce, "rowRanges", None), "elementMetadata", None)
    listdata = getattr(element, "listData", {}) or {}
    if "ENSEMBL" in listdata:
        var["ensembl_id"] = np.asarray(listdata["ENSEMBL"]).astype(str)
    counts_int = counts.astype(np.int32)
    adata = ad.AnnData(X=_log1p_cp10k(counts_int), obs=obs, var=var)
    adata.layers["counts"] = counts_int
    adata.layers["logcounts"] = logcounts.astype(np.float32)
    adata.var_names_make_unique()
    _provenance(adata, "kang2018_muscat", [name], X_LOG1P_CP10K)
    return _finish(adata, name)


def load_datlinger2021() -> "anndata.AnnData":
    """Datlinger 2021 CROP-seq in Jurkat cells, scPerturb-harmonised subset (CI tier of sessions 01, 07).

    7,500 cells x 2,000 genes, raw counts. 20 target genes with 2 guides each, plus control,
    with and without TCR stimulation.
    ``obs``: ``perturbation`` (the target gene, or ``'control'``), ``guide`` (``'GENE_1'``),
    ``condition`` (``'stimulated'`` / ``'unstimulated'``: TCR stimulation), ``cell_type``
    (``'Jurkat'``), ``sample`` (well), ``ncounts``, ``ngenes``, ``percent_mito``, ``dataset``.

    Example:
        >>> import tutorial_kit as tk
        >>> adata = tk.data.load_datlinger2021()
        >>> adata.obs["perturbation"].nunique()
        21
    """
    import anndata as ad
    import pandas as pd
    import scipy.io

    prefix = "datlinger2021_scperturb/"
    files = [prefix + f for f in ("matrix.mtx", "barcodes.csv", "genes.csv", "seurat_metadata.csv")]
    paths = {f.split("/")[-1]: fetch(f) for f in files}
    matrix = scipy.io.mmread(paths["matrix.mtx"])
    barcodes = pd.read_csv(paths["barcodes.csv"], index_col=0)["x"].astype(str).to_numpy()
    genes = pd.read_csv(paths["genes.csv"], index_col=0)["x"].astype(str).to_numpy()
    meta = pd.read_csv(paths["seurat_metadata.csv"], index_col=0)
    name = "datlinger2021_scperturb"
    _expect(matrix.shape == (genes.size, barcodes.size), name, f"matrix {matrix.shape} vs {genes.size} genes x {barcodes.size} cells")
    _expect(matrix.shape == (2000, 7500), name, f"matrix shape {matrix.shape}, expected (2000, 7500)")
    _expect_columns(meta, ["perturbation", "perturbation_2", "sample", "ncounts", "ngenes", "percent_mito"], name)
    _expect(list(meta.index.astype(str)) == list(barcodes), name, "metadata rows are not in barcode order")
    guide = meta["perturbation"].astype(str)
    target = guide.str.replace(r"_\d+$", "", regex=True)
    obs = pd.DataFrame(
        {
            "perturbation": normalize_perturbations(target),
            "guide": np.where(guide == "control", CONTROL, guide),
            "condition": meta["perturbation_2"].astype(str).to_numpy(),
            "cell_type": "Jurkat",
            "sample": meta["sample"].astype(str).to_numpy(),
            "ncounts": meta["ncounts"].to_numpy(),
            "ngenes": meta["ngenes"].to_numpy(),
            "percent_mito": meta["percent_mito"].to_numpy(),
            "dataset": name,
        },
        index=pd.Index(barcodes),
    )
    counts = matrix.T.tocsr().astype(np.int32)
    adata = ad.AnnData(X=_log1p_cp10k(counts), obs=obs, var=pd.DataFrame(index=pd.Index(genes)))
    adata.layers["counts"] = counts
    adata.var_names_make_unique()
    _provenance(adata, name, files, X_LOG1P_CP10K)
    return _finish(adata, name)


PERTURBENCH_VIEWS = ("norman19", "mcfaline23")
"""The two datasets inside PerturBench's ``devel.h5ad``."""


def load_perturbench_devel(view: str = "norman19") -> "anndata.AnnData":
    """PerturBench's development file, one of its two datasets (CI tier of sessions 06, 09-13).

    Args:
        view: ``'norman19'`` (K562 CRISPRa: control, 18 singles and 15 doubles ``'A+B'``,
            3,375 cells) or ``'mcfaline23'`` (CRISPRi in three glioblastoma lines, 9 targets).

    500 HVGs, log-normalized by PerturBench (no counts). Combination names are normalized,
    so ``'SAMD1+PTPN12'`` becomes ``'PTPN12+SAMD1'`` and ``A+B`` equals ``B+A``.
    ``obs``: ``perturbation``, ``condition`` (same as ``perturbation`` for these screens),
    ``n_perturbations`` (0, 1 or 2), ``perturbation_raw`` (as in the file), ``cell_type``
    (cell line), ``perturbation_type`` (CRISPRa / CRISPRi), ``dose``, ``dataset``.

    Example:
        >>> import tutorial_kit as tk
        >>> adata = tk.data.load_perturbench_devel("norman19")
        >>> sorted(adata.obs["n_perturbations"].unique().tolist())
        [0, 1, 2]
    """
    import anndata as ad

    if view not in PERTURBENCH_VIEWS:
        raise ValueError(f"Unknown view {view!r} of perturbench_devel.h5ad; use one of {PERTURBENCH_VIEWS}.")
    name = "perturbench_devel.h5ad"
    raw = ad.read_h5ad(fetch(name))
    _expect(raw.shape == (5961, 500), name, f"shape {raw.shape}, expected (5961, 500)")
    _expect_columns(raw.obs, ["condition", "perturbation", "dataset", "cell_type", "dose", "perturbation_type"], name)
    sub = raw[raw.obs["dataset"].astype(str) == view]
    _expect(sub.n_obs > 0, name, f"no cells of dataset {view!r}")
    obs = sub.obs[["perturbation", "cell_type", "perturbation_type", "dose"]].copy()
    for col in obs.columns:
        obs[col] = obs[col].astype(str)
    obs["perturbation_raw"] = obs["perturbation"]
    obs["perturbation"] = normalize_perturbations(obs["perturbation_raw"])
    obs["condition"] = normalize_perturbations(sub.obs["condition"].astype(str))
    obs["n_perturbations"] = [0 if p == CONTROL else p.count("+") + 1 for p in obs["perturbation"]]
    obs["dataset"] = f"perturbench_{view}"
    adata = ad.AnnData(X=sub.X.astype(np.float32), obs=obs, var=sub.var[[]].copy())
    adata.var_names = adata.var_names.astype(str)
    _provenance(adata, f"perturbench_{view}", [name], "log-normalized by PerturBench (no counts)")
    return _finish(adata, name)


def load_parse_guides() -> "anndata.AnnData":
    """Parse Biosciences CRISPR Detect example: guide UMI counts with a shallow transcriptome (session 01).

    5,000 cells x 266 genes (raw counts), and per-cell UMI counts of 3 guides in
    ``obsm['guide_counts']`` (a cells x guides DataFrame) for guide calling and MOI.
    Guides are not yet assigned to cells: ``obs['perturbation']`` is ``'unassigned'``
    until guide calling (taught in notebook 01) replaces it.
    ``cell_type`` is ``'cell line'``: the public subset does not say which line.

    Example:
        >>> import tutorial_kit as tk
        >>> adata = tk.data.load_parse_guides()
        >>> list(adata.obsm["guide_counts"].columns)
        ['guide_A', 'guide_B', 'guide_C']
    """
    import anndata as ad
    import pandas as pd
    import scipy.io

    prefix = "parse_sceptre_example/"
    files = [prefix + f for f in ("gene_mat.mtx", "all_genes.csv", "grna_mat.mtx", "all_grnas.csv")]
    paths = {f.split("/")[-1]: fetch(f) for f in files}
    name = "parse_sceptre_example"
    gene_mat = scipy.io.mmread(paths["gene_mat.mtx"]).tocsr()
    grna_mat = scipy.io.mmread(paths["grna_mat.mtx"]).toarray()
    genes = pd.read_csv(paths["all_genes.csv"])
    grnas = pd.read_csv(paths["all_grnas.csv"])
    _expect_columns(genes, ["gene_id", "gene_name"], name)
    _expect_columns(grnas, ["gene_name"], name)
    _expect(gene_mat.shape == (5000, len(genes)), name, f"gene matrix {gene_mat.shape} vs {len(genes)} genes")
    _expect(grna_mat.shape == (5000, len(grnas)), name, f"guide matrix {grna_mat.shape} vs {len(grnas)} guides")
    cells = pd.Index([f"cell_{i + 1}" for i in range(gene_mat.shape[0])])
    guide_counts = pd.DataFrame(grna_mat.astype(np.int32), index=cells, columns=grnas["gene_name"].astype(str).to_numpy())
    obs = pd.DataFrame(
        {
            "perturbation": "unassigned",
            "condition": "unassigned",
            "cell_type": "cell line",
            "dataset": name,
            "guide_umis": guide_counts.sum(axis=1).to_numpy(),
        },
        index=cells,
    )
    var = pd.DataFrame({"gene_id": genes["gene_id"].astype(str).to_numpy()}, index=pd.Index(genes["gene_name"].astype(str)))
    counts = gene_mat.astype(np.int32)
    adata = ad.AnnData(X=_log1p_cp10k(counts), obs=obs, var=var)
    adata.layers["counts"] = counts
    adata.obsm["guide_counts"] = guide_counts
    adata.var_names_make_unique()
    _provenance(adata, name, files, X_LOG1P_CP10K)
    return _finish(adata, name)


def _dgt_to_csr(mat: Any, dataset: str) -> Any:
    """An R ``dgTMatrix`` (genes x cells, triplets with 0-based ``i``, ``j``) as a cells x genes CSR matrix."""
    import scipy.sparse as sp

    for slot in ("i", "j", "x", "Dim"):
        _expect(hasattr(mat, slot), dataset, f"triplet matrix without slot {slot!r}")
    n_rows, n_cols = (int(v) for v in mat.Dim)
    coo = sp.coo_matrix((np.asarray(mat.x), (np.asarray(mat.i), np.asarray(mat.j))), shape=(n_rows, n_cols))
    return coo.T.tocsr()


PAPALEXI_TARGETS_MEASURED = ("CMTM6", "IFNGR2", "JAK2", "NFKBIA", "STAT1", "STAT2", "STAT3", "TNFRSF14", "UBE2L6")
"""The 9 knockout targets among the 299 genes of the CI file (the other 17 targets are not measured)."""


def load_papalexi2021() -> "anndata.AnnData":
    """Papalexi 2021 ECCITE-seq knockout screen in THP-1 cells: expression and guide UMI counts (sessions 01, 09).

    The low-MOI example of the sceptredata R package, read in pure Python with ``rdata``:
    20,729 cells x 299 genes (raw UMI counts: a random subset of genes plus 9 of the 26
    knockout targets, ``tutorial_kit.data.loaders.PAPALEXI_TARGETS_MEASURED``), and the UMI counts of 110 guides
    (3-4 guides for each of 26 genes, and 9 non-targeting guides) in ``obsm['guide_counts']``.
    The file has no cell barcodes: cells are named ``cell_1``, ... in column order.

    Guides are not yet assigned to cells: ``obs['perturbation']`` is ``'unassigned'`` until
    guide calling (``tk.qc.call_guides`` then ``tk.qc.assign_guides`` with
    ``guide_targets=adata.uns['guide_targets']``) replaces it, as taught in notebook 01.
    ``obs``: ``perturbation``, ``condition`` (``'IFN-gamma'``: every cell was stimulated),
    ``cell_type`` (``'THP-1'``), ``replicate`` (``'rep_1'`` to ``'rep_3'``), ``guide_umis``, ``dataset``.
    ``uns['guide_targets']``: guide -> target gene (``'non-targeting'`` for controls).

    Published layout (sceptredata ``data/lowmoi_example_data.rda``): an R list with
    ``response_matrix`` (genes x cells ``dgTMatrix``, gene symbols as row names),
    ``grna_matrix`` (guides x cells ``dgTMatrix``), ``grna_target_data_frame`` (``grna_id``,
    ``grna_target``) and ``extra_covariates`` (``bio_rep``).

    Example:
        >>> import tutorial_kit as tk
        >>> adata = tk.data.load_papalexi2021()
        >>> adata.shape, adata.obsm["guide_counts"].shape[1]
        ((20729, 299), 110)
    """
    import anndata as ad
    import pandas as pd

    name = "papalexi2021_sceptre/lowmoi_example_data.rda"
    dataset = "papalexi2021_sceptre"
    objects = _rdata_read(fetch(name))
    _expect("lowmoi_example_data" in objects, name, f"objects {list(objects)}, expected 'lowmoi_example_data'")
    data = objects["lowmoi_example_data"]
    _expect(
        {"response_matrix", "grna_matrix", "grna_target_data_frame", "extra_covariates"} <= set(map(str, data)),
        name,
        f"list elements {list(map(str, data))}",
    )
    counts = _dgt_to_csr(data["response_matrix"], name).astype(np.int32)
    guides = _dgt_to_csr(data["grna_matrix"], name).astype(np.int32)
    genes = np.asarray(data["response_matrix"].Dimnames[0]).astype(str)
    guide_ids = np.asarray(data["grna_matrix"].Dimnames[0]).astype(str)
    targets = data["grna_target_data_frame"]
    covariates = data["extra_covariates"]
    _expect_columns(targets, ["grna_id", "grna_target"], name)
    _expect_columns(covariates, ["bio_rep"], name)
    _expect(counts.shape == (20729, 299), name, f"expression {counts.shape}, expected (20729, 299)")
    _expect(guides.shape == (20729, 110), name, f"guide matrix {guides.shape}, expected (20729, 110)")
    _expect(set(targets["grna_id"].astype(str)) == set(guide_ids), name, "guide table and guide matrix differ")
    _expect(len(covariates) == counts.shape[0], name, f"{len(covariates)} covariate rows for {counts.shape[0]} cells")
    cells = pd.Index([f"cell_{i + 1}" for i in range(counts.shape[0])])
    guide_counts = pd.DataFrame(guides.toarray(), index=cells, columns=guide_ids)
    obs = pd.DataFrame(
        {
            "perturbation": "unassigned",
            "condition": "IFN-gamma",
            "cell_type": "THP-1",
            "replicate": covariates["bio_rep"].astype(str).to_numpy(),
            "guide_umis": guide_counts.sum(axis=1).to_numpy(),
            "dataset": dataset,
        },
        index=cells,
    )
    adata = ad.AnnData(X=_log1p_cp10k(counts), obs=obs, var=pd.DataFrame(index=pd.Index(genes)))
    adata.layers["counts"] = counts
    adata.obsm["guide_counts"] = guide_counts
    adata.uns["guide_targets"] = dict(zip(targets["grna_id"].astype(str), targets["grna_target"].astype(str)))
    adata.var_names_make_unique()
    _provenance(adata, dataset, [name], X_LOG1P_CP10K)
    return _finish(adata, name)


def load_scmageck_guides() -> "pd.DataFrame":
    """scMAGeCK's real guide-assignment table: one row per cell x guide (session 01).

    Columns: ``cell``, ``barcode`` (guide id), ``sgrna`` (protospacer), ``gene`` (target),
    ``read_count``, ``umi_count``, and ``perturbation`` (the target, canonical).
    Many cells carry several guides: the table is where MOI and multiplets are taught.

    Example:
        >>> import tutorial_kit as tk
        >>> guides = tk.data.load_scmageck_guides()
        >>> bool(guides.groupby("cell").size().max() > 1)
        True
    """
    import pandas as pd

    name = "scmageck_barcode_rec.txt"
    table = pd.read_csv(fetch(name), sep="\t")
    _expect_columns(table, ["cell", "barcode", "sgrna", "gene", "read_count", "umi_count"], name)
    _expect(len(table) == 8425, name, f"{len(table)} rows, expected 8425")
    _expect(
        bool((table["read_count"] >= table["umi_count"]).all()), name, "some guides have more UMIs than reads"
    )
    table["perturbation"] = normalize_perturbations(table["gene"].astype(str))
    return table


NORMAN_GI_TABLES = {
    "regr_fits": "norman2019_gi/regr_fits_final.csv",
    "umap_layout": "norman2019_gi/optimal_umap_layout.csv",
    "guides": "norman2019_gi/20180821_guides_chosen_for_perturbseq.csv",
}
"""The Norman 2019 genetic-interaction tables, by short name."""


def load_norman_gi(table: str = "regr_fits") -> "pd.DataFrame":
    """A Norman 2019 genetic-interaction table (sessions 09, 10).

    Args:
        table: ``'regr_fits'`` (one row per double: ``coef_first``, ``coef_second``, ``dcor``,
            ``corr_fit``, ``mad_explained``, ...), ``'umap_layout'`` (perturbation UMAP with
            functional programs) or ``'guides'`` (the guides of the screen).

    The two per-perturbation tables gain a ``perturbation`` column in the course spelling
    (``'AHR_FEV'`` becomes ``'AHR+FEV'``), so they join with :func:`load_perturbench_devel`.

    Example:
        >>> import tutorial_kit as tk
        >>> fits = tk.data.load_norman_gi("regr_fits")
        >>> fits.loc[fits["perturbation"] == "AHR+FEV", "coef_first"].size
        1
    """
    import pandas as pd

    if table not in NORMAN_GI_TABLES:
        raise ValueError(f"Unknown Norman 2019 table {table!r}; use one of {list(NORMAN_GI_TABLES)}.")
    name = NORMAN_GI_TABLES[table]
    if table == "regr_fits":
        frame = pd.read_csv(fetch(name))
        _expect_columns(frame, ["name", "coef_first", "coef_second", "dcor", "corr_fit", "mad_explained"], name)
        frame["perturbation"] = normalize_perturbations(frame["name"], separators="_")
    elif table == "umap_layout":
        frame = pd.read_csv(fetch(name), index_col=0)
        _expect_columns(frame, ["x", "y", "cluster"], name)
        frame.index.name = "name"
        frame = frame.reset_index()
        frame["perturbation"] = normalize_perturbations(frame["name"], separators="_")
    else:
        frame = pd.read_csv(fetch(name))
        _expect_columns(frame, ["gene", "guide_id", "protospacer"], name)
    _expect(len(frame) > 0, name, "the table is empty")
    return frame
