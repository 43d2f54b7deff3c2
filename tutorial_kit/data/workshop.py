"""Loaders of the full public datasets (the workshop tier), each to the course schema.

Taught in ``book/data.md``; the notebooks reach them through the session functions of
:mod:`tutorial_kit.data.sessions` (``tk.data.kang_scgen()``, ``tk.data.norman()``, ...), which
pick the CI file or the full dataset by tier.

Each loader checks the file against the source's published layout (written down in the
loader's docstring, with where it was checked) and fails with a clear error on a mismatch
(a missing column, an unknown control spelling, log values where counts belong). Shapes are
not checked, so a downsized copy in the same layout (a registered stand-in, see
:func:`tutorial_kit.data.register` with ``stands_for=``) loads the same way.

Large files are read a block of cells at a time (:mod:`tutorial_kit.data.h5ad`): ``obs`` and
``var`` in backed mode, the counts straight from the HDF5 file, so no second copy of the whole
matrix is ever held. ``X`` is log1p counts per 10,000, ``layers['counts']`` the raw counts (int32).
"""

from __future__ import annotations

import re
import warnings
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from tutorial_kit.data._checks import X_LOG1P_CP10K, expect, expect_columns, expect_counts, finish, provenance
from tutorial_kit.data.h5ad import read_annotations, read_counts
from tutorial_kit.data.registry import fetch, resolve
from tutorial_kit.data.schema import CONTROL, log1p_cp10k, normalize_perturbations

if TYPE_CHECKING:  # pragma: no cover
    import anndata
    import pandas as pd

__all__ = [
    "SCPERTURB",
    "load_kang2018",
    "load_scgen_pbmc",
    "load_scperturb",
    "scperturb_perturbations",
]


def _read_legacy_h5ad(path: Any) -> "anndata.AnnData":
    import anndata as ad

    with warnings.catch_warnings():
        # files written by a 2018-2020 anndata: their layout warnings are expected and harmless
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", getattr(ad, "OldFormatWarning", FutureWarning))
        return ad.read_h5ad(path)


def _unique_symbols(var: "pd.DataFrame", column: str | None, dataset: str) -> "pd.Index":
    """Gene symbols for ``var_names``: ``var[column]`` (or the index), duplicates made unique (``A``, ``A-1``)."""
    import pandas as pd
    from anndata.utils import make_index_unique

    symbols = var[column].astype(str) if column else pd.Series(var.index.astype(str), index=var.index)
    expect(bool((symbols.str.len() > 0).all()), dataset, "some genes have an empty symbol")
    return make_index_unique(pd.Index(symbols.to_numpy()).astype(str))


def _counts_adata(
    counts: Any,
    obs: "pd.DataFrame",
    var: "pd.DataFrame",
    dataset: str,
    files: list[str],
    *,
    totals: "np.ndarray | None" = None,
) -> "anndata.AnnData":
    """AnnData with int32 ``layers['counts']`` and ``X`` = log1p counts per 10,000 (one conversion, no dense copy).

    ``totals``: each cell's count over all genes of the source, when ``counts`` holds only some genes.
    """
    import anndata as ad
    import scipy.sparse as sp

    counts = sp.csr_matrix(counts)
    expect_counts(counts, dataset)
    counts_int = sp.csr_matrix((counts.data.astype(np.int32, copy=False), counts.indices, counts.indptr), shape=counts.shape)
    x = log1p_cp10k(counts, totals=totals)
    del counts
    adata = ad.AnnData(X=x, obs=obs, var=var)
    adata.layers["counts"] = counts_int
    provenance(adata, dataset, files, X_LOG1P_CP10K)
    return finish(adata, dataset)


# --------------------------------------------------------------------------------------
# Kang 2018 PBMC, IFN-beta (pertpy) and scGen's PBMC splits
# --------------------------------------------------------------------------------------

KANG_LABELS = {"ctrl": ("control", CONTROL), "stim": ("stimulated", "IFN-beta")}
"""pertpy's ``label`` values -> (``condition``, ``perturbation``) in the course schema."""


def load_kang2018() -> "anndata.AnnData":
    """Kang 2018 PBMC, control vs IFN-beta, all cells with raw counts (workshop tier of sessions 02, 03).

    Published layout (pertpy ``datasets.kang_2018``, file ``kang_2018.h5ad`` on the scverse example-data host;
    checked against pertpy's ``src/pertpy/data/_datasets.py`` and the printed objects of the pertpy and
    single-cell-best-practices tutorials): 24,673 cells x 15,706 genes; ``X`` sparse raw counts (float);
    ``obs``: ``nCount_RNA``, ``nFeature_RNA``, ``tsne1``, ``tsne2``, ``label`` (``'ctrl'`` / ``'stim'``),
    ``cluster``, ``cell_type`` (8 types: ``'CD4 T cells'``, ``'CD14+ Monocytes'``, ``'B cells'``,
    ``'NK cells'``, ``'CD8 T cells'``, ``'FCGR3A+ Monocytes'``, ``'Dendritic cells'``, ``'Megakaryocytes'``),
    ``replicate`` (8 donors, ``'patient_101'`` ...), Seurat columns; ``var``: ``name``, index gene symbols.

    Course schema: ``perturbation`` (``'control'`` / ``'IFN-beta'``), ``condition``
    (``'control'`` / ``'stimulated'``), ``cell_type`` as published, ``donor`` and ``replicate``
    (the donor), ``sample_id`` (donor x condition, as in muscat's CI file), ``label``, ``dataset``.

    Raises:
        ValueError: a column is missing, ``label`` has other values, or ``X`` is not counts.
    """
    import pandas as pd

    name = resolve("kang_2018.h5ad")
    dataset = "kang2018"
    path = fetch(name)
    obs_raw, var_raw = read_annotations(path)
    expect_columns(obs_raw, ["label", "cell_type", "replicate"], dataset)
    labels = obs_raw["label"].astype(str)
    unknown = sorted(set(labels) - set(KANG_LABELS))
    expect(not unknown, dataset, f"label values {unknown}; expected 'ctrl' and 'stim'")
    donor = obs_raw["replicate"].astype(str).to_numpy()
    condition = labels.map(lambda v: KANG_LABELS[v][0]).to_numpy()
    obs = pd.DataFrame(
        {
            "perturbation": labels.map(lambda v: KANG_LABELS[v][1]).to_numpy(),
            "condition": condition,
            "cell_type": obs_raw["cell_type"].astype(str).to_numpy(),
            "donor": donor,
            "replicate": donor,
            "sample_id": [f"{d}_{c}" for d, c in zip(donor, labels)],
            "label": labels.to_numpy(),
            "dataset": dataset,
        },
        index=obs_raw.index.astype(str),
    )
    for col in ("nCount_RNA", "nFeature_RNA"):
        if col in obs_raw:
            obs[col] = obs_raw[col].to_numpy()
    var = pd.DataFrame(index=_unique_symbols(var_raw, None, dataset))
    return _counts_adata(read_counts(path), obs, var, dataset, [name])


SCGEN_SPLITS = {"train": "scgen_train_pbmc.h5ad", "valid": "scgen_valid_pbmc.h5ad"}
"""scGen's two PBMC files by split."""


def load_scgen_pbmc(split: str = "all") -> "anndata.AnnData":
    """Kang 2018 PBMC as preprocessed by the scGen authors (workshop tier of sessions 04, 05, 10).

    Args:
        split: ``'train'`` (16,893 cells), ``'valid'`` (1,975 cells) or ``'all'`` (both, concatenated).

    Published layout (scGen's ``train_pbmc.h5ad`` / ``valid_pbmc.h5ad``, Dropbox links of
    ``theislab/scgen-reproducibility`` ``code/DataDownloader.py``; the 1,975-cell validation file read
    in the scgen repository, ``data/valid.h5ad``): 6,998 genes, ``X`` sparse log-normalized
    (log1p of counts scaled per cell; no counts in the file); ``obs``: ``condition``
    (``'control'`` / ``'stimulated'``), ``n_counts``, ``n_genes``, ``mt_frac``, ``cell_type``
    (``'CD4T'``, ``'CD14+Mono'``, ``'B'``, ``'CD8T'``, ``'NK'``, ``'FCGR3A+Mono'``, ``'Dendritic'``);
    ``var``: ``gene_symbol``, ``n_cells``; index gene symbols. The CI tier reads the validation
    split from the scgen repository (:func:`tutorial_kit.data.load_kang_scgen_valid`): same layout,
    so both tiers give the same schema, genes and cell-type spellings.

    Course schema: as :func:`tutorial_kit.data.load_kang_scgen_valid`, plus ``split``.

    Raises:
        ValueError: unknown split; a missing column or other condition values.
    """
    import anndata as ad

    if split not in (*SCGEN_SPLITS, "all"):
        raise ValueError(f"Unknown split {split!r}; use 'train', 'valid' or 'all'.")
    parts = []
    names = []
    for part in SCGEN_SPLITS if split == "all" else [split]:
        name = resolve(SCGEN_SPLITS[part])
        names.append(name)
        raw = _read_legacy_h5ad(fetch(name))
        expect_columns(raw.obs, ["condition", "cell_type"], name)
        conditions = set(raw.obs["condition"].astype(str))
        expect(conditions <= {"control", "stimulated"} and bool(conditions), name, f"condition values {sorted(conditions)}")
        keep = [c for c in ("condition", "cell_type", "n_counts", "n_genes") if c in raw.obs]
        obs = raw.obs[keep].copy()
        obs["condition"] = obs["condition"].astype(str)
        obs["cell_type"] = obs["cell_type"].astype(str)
        obs["perturbation"] = np.where(obs["condition"] == "control", CONTROL, "IFN-beta")
        obs["split"] = part
        obs["dataset"] = "kang2018_scgen"
        x = raw.X
        expect(float(x.max()) < 50, name, "X should be log-normalized (values below 50) but looks like counts")
        adata = ad.AnnData(X=x.astype(np.float32), obs=obs, var=raw.var[[]].copy())
        adata.var_names = adata.var_names.astype(str)
        parts.append(adata)
    if len(parts) == 1:
        adata = parts[0]
    else:
        expect(
            all(list(p.var_names) == list(parts[0].var_names) for p in parts),
            "kang2018_scgen",
            "the train and valid files have different genes",
        )
        adata = ad.concat(parts, merge="same")
        adata.obs_names_make_unique()
    provenance(adata, "kang2018_scgen", names, "log-normalized by the scGen authors (no counts)")
    return finish(adata, "kang2018_scgen")


# --------------------------------------------------------------------------------------
# scPerturb's harmonised screens
# --------------------------------------------------------------------------------------

SCPERTURB_OBS = ("perturbation", "nperts")
"""Columns every scPerturb file has (its harmonisation adds them to every dataset)."""

SCPERTURB_KEEP = (
    "guide_id", "gemgroup", "batch", "replicate", "perturbation_type", "dose_value", "dose_unit",
    "time", "ncounts", "ngenes", "percent_mito", "percent_ribo", "cell_line", "celltype",
)
"""scPerturb columns carried into the course schema when the file has them (``nperts`` becomes ``n_perturbations``)."""

SCPERTURB: dict[str, dict[str, Any]] = {
    "norman2019": {
        "file": "NormanWeissman2019_filtered.h5ad",
        "cell_type": "K562",
        "labels": "genes",  # 'control', 'AHR', 'AHR_FEV' (nperts counts the parts)
        "description": "Norman 2019 K562 CRISPRa screen: 105 single genes and 131 pairs",
    },
    "replogle2022": {
        "file": "ReplogleWeissman2022_K562_essential.h5ad",
        "cell_type": "K562",
        "labels": "single",  # the targeted gene; control 'non-targeting' in the processing script
        "description": "Replogle 2022 K562 CRISPRi screen of the common essential genes",
    },
    "adamson2016": {
        "file": "AdamsonWeissman2016_GSM2406681_10X010.h5ad",
        "cell_type": "K562",
        "labels": "guides",  # guide identities 'GENE_pXXnnn'; non-targeting guides '62(mod)_pBA581', ...
        "guide_pattern": r"^(?P<gene>[^_]+)_",
        "description": "Adamson 2016 K562 CRISPRi screen of the unfolded protein response (experiment 10X010)",
    },
    "dixit2016": {
        "file": "DixitRegev2016_K562_TFs_7_days.h5ad",
        "cell_type": "K562",
        "labels": "guides",  # 'p-sgELK1-1', pairs 'p-sgELK1-7_p-sgELF1-1'; nperts is 1 for every cell
        "guide_pattern": r"^p-sg(?P<gene>.+)-\d+$",
        "description": "Dixit 2016 Perturb-seq of transcription factors in K562 cells (7 days)",
    },
    "papalexi2021": {
        "file": "PapalexiSatija2021_eccite_RNA.h5ad",
        "cell_type": "THP-1",
        "labels": "guides",  # 'STAT2g1' (gene, 'g', guide number); 'control' for the NT guides
        "guide_pattern": r"^(?P<gene>.+?)g\d+$",
        "condition": "IFN-gamma",
        "description": "Papalexi 2021 ECCITE-seq knockout screen in THP-1 cells stimulated with IFN-gamma (RNA)",
    },
    "datlinger2021": {
        "file": "DatlingerBock2021.h5ad",
        "cell_type": "Jurkat",
        "labels": "guides",  # 'ZAP70_1' (gene, '_', guide number); 'control'; nperts counts perturbation_2 too
        "guide_pattern": r"^(?P<gene>[^_]+)_\d+$",
        "condition_column": "perturbation_2",  # 'stimulated' / 'unstimulated' (TCR stimulation)
        "description": "Datlinger 2021 CROP-seq knockouts in Jurkat cells, with and without TCR stimulation",
    },
    "sciplex3": {
        "file": "SrivatsanTrapnell2020_sciplex3.h5ad",
        "cell_type": None,  # three cell lines: read from the file
        "labels": "single",  # the compound's name ('control' for the vehicle)
        "description": "sci-Plex 3: 188 compounds at four doses in A549, K562 and MCF7 cells",
    },
}
"""The scPerturb files of the course by dataset name: registry file, cell line, how labels are spelled."""

SCPERTURB_CONTROLS = re.compile(r"^(control|non-targeting|NegCtrl.*|6[23]\(mod\).*|(p-)?INTERGENIC.*)$")
"""Raw labels that mean control in scPerturb's files (scPerturb's own 'control' and the source spellings it kept)."""

SCPERTURB_MISSING = frozenset({"", "nan", "None", "NaN"})
"""Raw labels of cells without a perturbation call; these cells are dropped (the count is kept in ``uns``)."""


def scperturb_perturbations(obs_raw: "pd.DataFrame", dataset: str) -> tuple[np.ndarray, list[str], list[str]]:
    """``(keep, perturbation, guide)`` from scPerturb's labels, per :data:`SCPERTURB` ``labels``.

    ``'genes'``: the label is the target, pairs joined by ``_`` (gene symbols have no ``_``); the parts must match ``nperts``.
    ``'single'``: the label is one target or compound, never split (names may contain ``_``).
    ``'guides'``: the label names guides, joined by ``_``; the target is read with ``guide_pattern``.
    Control labels (``SCPERTURB_CONTROLS`` in ``tutorial_kit.data.workshop``) become ``'control'``; cells without a label are dropped.
    """
    spec = SCPERTURB[dataset]
    raw = obs_raw["perturbation"].astype(object).where(obs_raw["perturbation"].notna(), "").astype(str).to_numpy()
    keep = ~np.isin(raw, list(SCPERTURB_MISSING))
    expect(bool(keep.any()), dataset, "no cell has a perturbation label")
    is_control = np.array([bool(SCPERTURB_CONTROLS.match(r)) for r in raw])
    expect(
        bool(is_control.any()),
        dataset,
        f"no cell is labelled as control ({CONTROL!r} in scPerturb's files); labels include {sorted(set(raw[keep]))[:8]}",
    )
    nperts = np.asarray(obs_raw["nperts"], dtype=float)
    pert, guide = [], []
    pattern = re.compile(spec.get("guide_pattern", r"^(?P<gene>.+)$"))
    unparsed: set[str] = set()
    for label, n, control, ok in zip(raw, nperts, is_control, keep):
        if not ok:
            pert.append("")
            guide.append("")
            continue
        if control:
            pert.append(CONTROL)
            guide.append(label)
            continue
        if spec["labels"] == "single":
            parts = [label]
        else:
            parts = label.split("_") if spec["labels"] == "genes" else _guide_parts(label, pattern)
        if spec["labels"] == "guides":
            genes = []
            for part in parts:
                match = pattern.match(part)
                if match is None and not SCPERTURB_CONTROLS.match(part):
                    unparsed.add(part)
                genes.append(CONTROL if match is None else match.group("gene"))
            parts = genes
        pert.append("+".join(parts))
        guide.append(label)
    expect(not unparsed, dataset, f"guide labels that name no gene: {sorted(unparsed)[:5]}")
    pert = normalize_perturbations(pert, separators="+")
    if spec["labels"] == "genes":
        wrong = sorted({r for r, p, n, ok in zip(raw, pert, nperts, keep) if ok and p != CONTROL and p.count("+") + 1 != int(n)})
        expect(not wrong, dataset, f"combinations whose parts do not match nperts: {wrong[:5]}")
    return keep, pert, guide


def _guide_parts(label: str, pattern: "re.Pattern[str]") -> list[str]:
    """Split a label of joined guides at the ``_`` that separate whole guide names."""
    pieces = label.split("_")
    parts, current = [], ""
    for piece in pieces:
        current = f"{current}_{piece}" if current else piece
        if pattern.match(current) or SCPERTURB_CONTROLS.match(current):
            parts.append(current)
            current = ""
    if current:
        parts.append(current)
    return parts


def load_scperturb(
    dataset: str,
    *,
    cells: "np.ndarray | None" = None,
    genes: "Sequence[str] | None" = None,
    chunk_rows: int = 10_000,
) -> "anndata.AnnData":
    """One of scPerturb's harmonised screens in the course schema (workshop tier of sessions 01, 09-14).

    Args:
        dataset: a key of :data:`SCPERTURB` (``'norman2019'``, ``'replogle2022'``, ``'adamson2016'``,
            ``'dixit2016'``, ``'papalexi2021'``, ``'datlinger2021'``, ``'sciplex3'``).
        cells: boolean mask or increasing integer positions of the cells to read (``None``: all).
        genes: gene symbols to keep, in that order (``None``: all). ``X`` is still normalized by
            each cell's total over *all* genes, as if the whole matrix had been normalized first.
        chunk_rows: cells read at a time (peak memory: the result plus one block of all genes).

    Published layout (scPerturb, Peidli et al. 2024; Zenodo record 13350497; the harmonisation
    scripts of ``sanderlab/scPerturb``, ``dataset_processing/``): ``X`` raw UMI counts (sparse CSR,
    or dense in the Replogle files); ``obs['perturbation']`` with control spelled ``'control'`` and
    the targets of a combination joined by ``_`` (``'AHR_FEV'``), ``obs['nperts']`` (0 for
    control, 1, 2, ...), and, in most files, ``perturbation_type``, ``celltype``, ``cell_line``,
    ``ncounts``, ``ngenes``, ``percent_mito``, ``percent_ribo``; dataset columns such as
    ``guide_id``, ``gemgroup`` (Norman), ``replicate`` (Papalexi), ``dose_value`` and
    ``dose_unit`` (sci-Plex 3), ``perturbation_2`` (Datlinger 2021: the TCR stimulation; its guide
    labels are ``'ZAP70_1'``, and ``nperts`` counts the stimulation as a second perturbation, as
    in the CI subset's metadata). ``var``: index gene symbols (may repeat), ``ensembl_id`` in some.

    Course schema: ``perturbation`` (``'A+B'`` sorted; for sci-Plex the compound),
    ``condition`` (the perturbation, with the dose for sci-Plex, e.g. ``'Dex 1000 nM'``;
    ``'IFN-gamma'`` for Papalexi, where every cell was stimulated; Datlinger's ``perturbation_2``,
    ``'stimulated'`` or ``'unstimulated'``), ``n_perturbations``,
    ``perturbation_raw``, ``cell_type``, ``dataset``, and the columns of ``tutorial_kit.data.workshop.SCPERTURB_KEEP`` present.

    Raises:
        ValueError: unknown dataset or gene; a missing column; control not spelled ``'control'``;
            combinations that do not match ``nperts``; ``X`` not counts.
    """
    import pandas as pd

    if dataset not in SCPERTURB:
        raise ValueError(f"Unknown scPerturb dataset {dataset!r}; use one of {sorted(SCPERTURB)}.")
    spec = SCPERTURB[dataset]
    name = resolve(spec["file"])
    path = fetch(name)
    obs_raw, var_raw = read_annotations(path)
    expect_columns(obs_raw, list(SCPERTURB_OBS), dataset)
    rows = None
    if cells is not None:
        cells = np.asarray(cells)
        rows = np.flatnonzero(cells) if cells.dtype == bool else cells.astype(np.int64)
        expect(cells.dtype != bool or cells.size == len(obs_raw), dataset, f"a mask of {cells.size} cells for {len(obs_raw)}")
        obs_raw = obs_raw.iloc[rows]
    symbols = _unique_symbols(var_raw, None, dataset)
    columns = None
    if genes is not None:
        position = pd.Series(np.arange(len(symbols)), index=symbols)
        unknown = [g for g in genes if g not in position.index]
        if unknown:
            raise ValueError(f"{dataset}: genes {unknown[:10]} are not in the file ({len(symbols)} genes).")
        columns = position.loc[list(genes)].to_numpy()
        symbols = pd.Index(list(genes))
    keep, labels, guides = scperturb_perturbations(obs_raw, dataset)
    n_dropped = int((~keep).sum())
    if n_dropped:
        rows = np.flatnonzero(keep) if rows is None else rows[keep]
        obs_raw = obs_raw.iloc[np.flatnonzero(keep)]
        labels = [p for p, k in zip(labels, keep) if k]
        guides = [g for g, k in zip(guides, keep) if k]
    obs = pd.DataFrame({"perturbation": labels}, index=obs_raw.index.astype(str))
    obs["perturbation_raw"] = obs_raw["perturbation"].astype(str).to_numpy()
    if spec["labels"] == "guides":
        obs["guide"] = guides
    obs["n_perturbations"] = [0 if p == CONTROL else p.count("+") + 1 for p in labels]
    if "condition" in spec:
        obs["condition"] = spec["condition"]
    elif "condition_column" in spec:
        expect_columns(obs_raw, [spec["condition_column"]], dataset)
        obs["condition"] = obs_raw[spec["condition_column"]].astype(str).to_numpy()
    elif "dose_value" in obs_raw:
        dose = pd.to_numeric(obs_raw["dose_value"], errors="coerce").to_numpy()
        unit = obs_raw["dose_unit"].astype(str).to_numpy() if "dose_unit" in obs_raw else np.full(len(obs), "")
        obs["condition"] = [
            p if p == CONTROL or not np.isfinite(d) else f"{p} {d:g} {u}".strip()
            for p, d, u in zip(labels, dose, unit)
        ]
    else:
        obs["condition"] = labels
    if spec["cell_type"] is not None:
        obs["cell_type"] = spec["cell_type"]
    else:
        column = next((c for c in ("cell_line", "celltype") if c in obs_raw), None)
        expect(column is not None, dataset, f"no cell_line or celltype column; found {list(obs_raw.columns)}")
        obs["cell_type"] = obs_raw[column].astype(str).to_numpy()
    for col in SCPERTURB_KEEP:
        if col in obs_raw and col not in obs:
            values = obs_raw[col]
            obs[col] = values.astype(str).to_numpy() if values.dtype.kind in "OU" or str(values.dtype) == "category" else values.to_numpy()
    obs["dataset"] = f"{dataset}_scperturb"
    counts, totals = _read_counts_and_totals(path, rows, columns, chunk_rows, dataset)
    var = pd.DataFrame(index=symbols)
    adata = _counts_adata(counts, obs, var, f"{dataset}_scperturb", [name], totals=totals)
    adata.uns["tutorial_kit"]["cells_without_label_dropped"] = n_dropped
    return adata


def _read_counts_and_totals(
    path: Any, rows: "np.ndarray | None", columns: "np.ndarray | None", chunk_rows: int, dataset: str
) -> tuple[Any, np.ndarray]:
    """The selected counts (int32 CSR) and each selected cell's total over all genes, block by block."""
    import scipy.sparse as sp

    from tutorial_kit.data.h5ad import iter_blocks

    parts, totals = [], []
    for _, block in iter_blocks(path, chunk_rows=chunk_rows, rows=rows):
        expect_counts(block, dataset)
        totals.append(np.asarray(block.sum(axis=1)).ravel())
        if columns is not None:
            block = block[:, columns]
        parts.append(sp.csr_matrix(block, dtype=np.int32))
        del block
    n_cols = len(columns) if columns is not None else None
    if not parts:
        raise ValueError(f"{dataset}: no cells selected.")
    out = sp.vstack(parts, format="csr") if len(parts) > 1 else parts[0]
    if n_cols is not None:
        assert out.shape[1] == n_cols
    return out, np.concatenate(totals)
