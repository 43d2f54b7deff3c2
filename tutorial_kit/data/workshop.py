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
    counts: Any, obs: "pd.DataFrame", var: "pd.DataFrame", dataset: str, files: list[str]
) -> "anndata.AnnData":
    """AnnData with int32 ``layers['counts']`` and ``X`` = log1p counts per 10,000 (one conversion, no dense copy)."""
    import anndata as ad
    import scipy.sparse as sp

    counts = sp.csr_matrix(counts)
    expect_counts(counts, dataset)
    counts_int = sp.csr_matrix((counts.data.astype(np.int32), counts.indices, counts.indptr), shape=counts.shape)
    x = log1p_cp10k(counts)
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
