"""The data of each session, chosen by the tier: one function per session dataset.

Taught in ``book/data.md``. A notebook calls ``tk.data.kang_scgen()``, ``tk.data.norman()``, ...
and never a tier-specific loader: at the ``ci`` tier (the default, and CI) each function returns a
small real file, at the ``workshop`` tier (``TUTORIAL_KIT_TIER=workshop``) the full public dataset,
in the same schema and with the same preprocessing:

========================  ==========================================  ===========================================
function                  ``ci`` tier                                 ``workshop`` tier
========================  ==========================================  ===========================================
:func:`kang`              muscat's Kang 2018 subset, raw counts        pertpy's ``kang_2018.h5ad`` (all cells)
:func:`kang_scgen`        scGen's validation split                     scGen's training and validation splits
:func:`norman`            PerturBench's Norman 2019 development view   scPerturb's Norman 2019 (all cells)
:func:`papalexi`          sceptredata's Papalexi 2021 (299 genes)      scPerturb's Papalexi 2021 (all genes)
:func:`sciplex`           none: a refusal that says what to use        scPerturb's sci-Plex 3, five compounds in A549
========================  ==========================================  ===========================================

sci-Plex 3 has no CI-sized public file, so session 06 teaches doses on the GRN simulator's
graded-dose screen at both tiers (its true curves are known) and adds sci-Plex at the workshop tier.

Perturbation-level sessions keep every measured target gene (the linear model of session 09 embeds a
perturbation by its target's row) and choose the other genes, the most highly variable ones, on
control cells only (:func:`select_genes`): control cells are training data in every
perturbation-level split, so no held-out perturbation can shape the gene set.
A file that already has no more genes than asked for keeps all of them, so the CI files pass
through the same steps unchanged.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Sequence

import numpy as np

from tutorial_kit.data import loaders, workshop
from tutorial_kit.data.schema import CONTROL, perturbation_parts

if TYPE_CHECKING:  # pragma: no cover
    import anndata

__all__ = ["SCIPLEX_COMPOUNDS", "kang", "kang_scgen", "norman", "papalexi", "sciplex", "select_genes", "tier"]

N_TOP_GENES = 2000
"""Highly variable genes kept by the perturbation-level sessions (plus every measured target)."""

SCIPLEX_COMPOUNDS = (
    "Belinostat (PXD101)", "Dacinostat (LAQ824)", "Givinostat (ITF2357)", "Hesperadin", "Quisinostat (JNJ-26481585) 2HCl",
)
"""sci-Plex 3 compounds of session 06, spelled as in the file: four HDAC inhibitors and the Aurora kinase
inhibitor hesperadin, among the screen's strongest responses, so a dose changes something measurable."""

MIN_GUIDE_UMIS = 5
"""Low-MOI guide assignment: a cell's top guide needs at least this many UMIs ..."""

MIN_GUIDE_FRACTION = 0.8
"""... and at least this share of the cell's guide UMIs (otherwise the cell is dropped as ambiguous)."""


def tier() -> str:
    """The active data tier (``tk.config.get_tier()``), read when a session function is called."""
    from tutorial_kit.config import get_tier

    return get_tier()


def select_genes(
    adata: "anndata.AnnData",
    n_top_genes: int = N_TOP_GENES,
    *,
    on: "np.ndarray | None" = None,
    keep: Sequence[str] = (),
) -> list[str]:
    """The genes a session keeps: ``keep`` (where measured) plus the most variable genes of the ``on`` cells.

    Taught in ``book/data.md``. Variability is scanpy's ``highly_variable_genes`` (flavor ``'seurat'``,
    dispersion of the log1p values in ``X``), computed on the cells of ``on`` only, so a caller can
    choose genes on training cells and never look at held-out ones.

    Args:
        adata: cells x genes, ``X`` log-normalized.
        n_top_genes: how many genes to keep in all (``keep`` counts towards it; never fewer than ``keep``).
        on: boolean mask of the cells to choose on (``None``: all cells).
        keep: genes always kept when present (e.g. the perturbed targets).

    Returns:
        Gene names in the order of ``adata.var_names``; all genes when there are no more than ``n_top_genes``.

    Raises:
        ValueError: ``n_top_genes`` < 1, or ``on`` selects no cell.

    Example:
        >>> import anndata as ad, numpy as np
        >>> rng = np.random.default_rng(0)
        >>> a = ad.AnnData(np.log1p(rng.poisson(rng.uniform(0.1, 5, 30), (200, 30)).astype(np.float32)))
        >>> len(select_genes(a, 10, keep=["0"])), "0" in select_genes(a, 10, keep=["0"])
        (10, True)
    """
    if n_top_genes < 1:
        raise ValueError(f"n_top_genes must be >= 1, got {n_top_genes}.")
    names = list(map(str, adata.var_names))
    kept = [g for g in dict.fromkeys(map(str, keep)) if g in set(names)]
    if adata.n_vars <= n_top_genes:
        return names
    mask = np.ones(adata.n_obs, dtype=bool) if on is None else np.asarray(on, dtype=bool)
    if mask.shape != (adata.n_obs,) or not mask.any():
        raise ValueError(f"on= must be a boolean mask of the {adata.n_obs} cells that selects at least one cell.")
    import scanpy as sc

    sub = adata[mask].copy()
    with warnings.catch_warnings():
        # every gene is ranked here (n_top_genes=n_vars); genes without a dispersion come last below
        warnings.filterwarnings("ignore", message=".*n_top_genes.*number of normalized dispersions", category=UserWarning)
        stats = sc.pp.highly_variable_genes(sub, flavor="seurat", n_top_genes=adata.n_vars, inplace=False)
    order = np.argsort(-np.nan_to_num(np.asarray(stats["dispersions_norm"], dtype=float), nan=-np.inf), kind="stable")
    chosen = set(kept)
    for i in order:
        if len(chosen) >= max(n_top_genes, len(kept)):
            break
        chosen.add(names[i])
    return [g for g in names if g in chosen]


def _targets(adata: "anndata.AnnData") -> list[str]:
    labels = adata.obs["perturbation"].astype(str).unique()
    return sorted({g for p in labels for g in perturbation_parts(p)})


def _finish_genes(adata: "anndata.AnnData", genes: list[str], description: str) -> "anndata.AnnData":
    out = adata[:, genes].copy()
    targets = _targets(out)
    info = dict(out.uns.get("tutorial_kit", {}))
    info["tier"] = tier()
    info["genes"] = description
    info["targets_measured"] = [t for t in targets if t in set(out.var_names)]
    info["targets_not_measured"] = [t for t in targets if t not in set(out.var_names)]
    out.uns["tutorial_kit"] = info
    return out


def kang() -> "anndata.AnnData":
    """Kang 2018 PBMC, control vs IFN-beta, with raw counts (sessions 02, 03).

    ``ci``: muscat's 1,556-cell subset (:func:`tutorial_kit.data.load_kang_muscat`, 1,267 genes);
    ``workshop``: pertpy's 24,673 cells (:func:`tutorial_kit.data.load_kang2018`), reduced to the
    same number of genes as the CI file, the most variable in control cells.
    Both: ``layers['counts']``, ``X`` log1p counts per 10,000, ``obs`` ``perturbation``,
    ``condition``, ``cell_type``, ``donor``, ``sample_id``, ``dataset``.
    """
    if tier() == "ci":
        adata = loaders.load_kang_muscat()
        return _finish_genes(adata, list(adata.var_names), "all genes of the file")
    adata = workshop.load_kang2018()
    genes = select_genes(adata, 1267, on=(adata.obs["perturbation"] == CONTROL).to_numpy())
    return _finish_genes(adata, genes, "the 1,267 most variable genes of control cells (as many as the CI file)")


def kang_scgen() -> "anndata.AnnData":
    """Kang 2018 PBMC as preprocessed by the scGen authors, 6,998 genes, log-normalized (sessions 04, 05, 10).

    ``ci``: the 1,975-cell validation split (:func:`tutorial_kit.data.load_kang_scgen_valid`);
    ``workshop``: the training and validation splits together (:func:`tutorial_kit.data.load_scgen_pbmc`),
    18,868 cells. Same genes, cell-type spellings and ``obs`` columns at both tiers
    (``split`` tells the two files apart at the workshop tier).
    """
    if tier() == "ci":
        adata = loaders.load_kang_scgen_valid()
        adata.obs["split"] = "valid"
    else:
        adata = workshop.load_scgen_pbmc("all")
    return _finish_genes(adata, list(adata.var_names), "the 6,998 genes of scGen's files")


def norman(n_top_genes: int = N_TOP_GENES) -> "anndata.AnnData":
    """Norman 2019 K562 CRISPRa screen, singles and pairs ``'A+B'`` (sessions 01, 09, 10).

    ``ci``: PerturBench's development view (:func:`tutorial_kit.data.load_perturbench_devel`,
    3,375 cells, 500 genes, log-normalized, no counts);
    ``workshop``: scPerturb's 111,445 cells (:func:`tutorial_kit.data.load_scperturb`), counts in
    ``layers['counts']``, the ``n_top_genes`` most variable genes of control cells plus every
    measured target. The file is read twice, a block of cells at a time: control cells with all
    genes (to choose the genes), then every cell with the chosen genes only.
    ``obs``: ``perturbation``, ``condition``, ``n_perturbations``, ``cell_type``, ``dataset``.
    """
    if tier() == "ci":
        adata = loaders.load_perturbench_devel("norman19")
        return _finish_genes(adata, select_genes(adata, n_top_genes), "the 500 HVGs of PerturBench's file")
    return _scperturb_session("norman2019", n_top_genes)


def datlinger(n_top_genes: int = 1000) -> "anndata.AnnData":
    """Datlinger 2021 CROP-seq knockouts in Jurkat cells, with and without TCR stimulation (session 07).

    ``ci``: scPerturb's test subset (:func:`tutorial_kit.data.load_datlinger2021`, 7,500 cells,
    2,000 genes); ``workshop``: scPerturb's full file (:func:`tutorial_kit.data.load_scperturb`).
    Both are reduced to the ``n_top_genes`` most variable genes of the control cells plus every
    measured target. ``obs``: ``perturbation`` (the target gene or ``'control'``), ``guide``,
    ``condition`` (``'stimulated'`` / ``'unstimulated'``: TCR stimulation, the variation control
    and perturbed cells share), ``cell_type`` (``'Jurkat'``), ``dataset``; raw counts in
    ``layers['counts']``.
    """
    if tier() == "ci":
        adata = loaders.load_datlinger2021()
        control = (adata.obs["perturbation"] == CONTROL).to_numpy()
        genes = select_genes(adata, n_top_genes, on=control, keep=_targets(adata))
        n_targets = sum(t in set(genes) for t in _targets(adata))
        return _finish_genes(adata, genes, f"the most variable genes of control cells and every measured target "
                                           f"({n_targets}), {len(genes)} in all")
    return _scperturb_session("datlinger2021", n_top_genes)


def papalexi(n_top_genes: int = N_TOP_GENES) -> "anndata.AnnData":
    """Papalexi 2021 ECCITE-seq CRISPR knockout screen in THP-1 cells, one guide per cell (sessions 07, 09).

    ``ci``: sceptredata's file (:func:`tutorial_kit.data.load_papalexi2021`: every cell of the
    screen, 299 genes of which 9 are targets), guides assigned by the low-MOI maximum rule
    (a cell gets its top guide when that guide has at least ``MIN_GUIDE_UMIS`` (5) UMIs and
    ``MIN_GUIDE_FRACTION`` (80%) of the cell's guide UMIs; other cells are dropped);
    ``workshop``: scPerturb's file with all 18,649 genes and its guide calls
    (:func:`tutorial_kit.data.load_scperturb`), reduced to the ``n_top_genes`` most variable
    genes of control cells plus every measured target.
    ``obs``: ``perturbation`` (target gene or ``'control'``), ``guide``, ``condition``
    (``'IFN-gamma'``), ``n_perturbations``, ``cell_type``, ``replicate`` (the biological
    replicate, three at both tiers: ``'rep_1'`` in sceptredata's spelling, ``'rep1'`` in
    scPerturb's), ``dataset``.
    """
    if tier() == "ci":
        adata = _assign_low_moi(loaders.load_papalexi2021())
        genes = select_genes(adata, n_top_genes, on=(adata.obs["perturbation"] == CONTROL).to_numpy(), keep=_targets(adata))
        return _finish_genes(adata, genes, "the 299 genes of sceptredata's file")
    return _scperturb_session("papalexi2021", n_top_genes)


def _assign_low_moi(adata: "anndata.AnnData") -> "anndata.AnnData":
    """Keep the cells whose top guide is clear (see :func:`papalexi`); label them by the guide's target."""
    from tutorial_kit import qc

    calls = qc.call_top_guide(adata.obsm["guide_counts"], min_umis=MIN_GUIDE_UMIS, min_fraction=MIN_GUIDE_FRACTION)
    clear = (calls["call"] == "single").to_numpy()
    out = qc.assign_guides(adata[clear], calls[clear], guide_targets=adata.uns["guide_targets"])
    out.obs = out.obs.drop(columns=["guides", "n_guides", "guide_call"])
    out.obs["guide"] = out.obs["guide"].astype(str)
    out.obs["n_perturbations"] = (out.obs["perturbation"] != CONTROL).astype(np.int64).to_numpy()
    out.uns["tutorial_kit"] = {**adata.uns["tutorial_kit"], "cells_without_clear_guide_dropped": int((~clear).sum())}
    return out


def _scperturb_session(dataset: str, n_top_genes: int) -> "anndata.AnnData":
    """Two passes over a scPerturb file: control cells with all genes (to choose them), then all cells."""
    from tutorial_kit.data.h5ad import read_annotations
    from tutorial_kit.data.registry import fetch, resolve

    obs_raw, _ = read_annotations(fetch(resolve(workshop.SCPERTURB[dataset]["file"])))
    keep, labels, _ = workshop.scperturb_perturbations(obs_raw, dataset)
    labels = np.asarray(labels)
    control = keep & (labels == CONTROL)
    targets = sorted({g for p in set(labels[keep]) for g in perturbation_parts(p)})
    del obs_raw
    controls = workshop.load_scperturb(dataset, cells=control)
    genes = select_genes(controls, n_top_genes, keep=targets)
    del controls
    adata = workshop.load_scperturb(dataset, genes=genes)
    n_targets = sum(t in set(genes) for t in targets)
    return _finish_genes(
        adata,
        genes,
        f"the most variable genes of control cells and every measured target ({n_targets}), {len(genes)} in all",
    )


def sciplex(
    compounds: Sequence[str] = SCIPLEX_COMPOUNDS, cell_line: str = "A549", n_top_genes: int = N_TOP_GENES
) -> "anndata.AnnData":
    """sci-Plex 3 (Srivatsan 2020): compounds at four doses and their vehicle in one cell line (session 06).

    ``workshop`` only: scPerturb's file (:func:`tutorial_kit.data.load_scperturb`), the cells of
    ``cell_line`` treated with ``compounds`` (default :data:`SCIPLEX_COMPOUNDS`) or with the vehicle
    (``'control'``), and the ``n_top_genes`` most variable genes of those vehicle cells.
    ``obs``: the course schema plus ``dose`` (nM, a number; 0 for the vehicle), ``dose_value``,
    ``dose_unit`` and ``condition`` (``'Hesperadin 1000 nM'``).
    At the ``ci`` tier there is no sci-Plex file small enough, and this function says so.

    Raises:
        ValueError: at the ``ci`` tier; an unknown cell line or compound (the message lists the
            names in the file); a treated cell without a dose.
    """
    import difflib

    import pandas as pd

    from tutorial_kit.data._checks import expect_columns
    from tutorial_kit.data.h5ad import read_annotations
    from tutorial_kit.data.registry import fetch, resolve

    if tier() == "ci":
        raise ValueError(
            "tk.data.sciplex(): sci-Plex 3 has no CI-sized file (the public one is 2.5 GB); it is read at the "
            "workshop tier (TUTORIAL_KIT_TIER=workshop). At the CI tier, tk.simulate.simulate_dose_screen gives a "
            "screen with graded doses and known curves."
        )
    dataset = "sciplex3"
    obs_raw, _ = read_annotations(fetch(resolve(workshop.SCPERTURB[dataset]["file"])))
    keep, labels, _ = workshop.scperturb_perturbations(obs_raw, dataset)
    labels = np.asarray(labels, dtype=object)
    expect_columns(obs_raw, ["cell_line", "dose_value"], dataset)
    lines = obs_raw["cell_line"].astype(str).to_numpy()
    if cell_line not in set(lines):
        raise ValueError(f"{dataset}: no cells of cell line {cell_line!r}; the file has {sorted(set(lines))}.")
    names = sorted(set(labels[keep]) - {CONTROL})
    unknown = [c for c in compounds if c not in set(names)]
    if unknown or not len(compounds):
        close = {c: difflib.get_close_matches(c, names, n=3, cutoff=0.4) for c in unknown}
        raise ValueError(f"{dataset}: compound(s) {unknown or compounds} are not in the file (close names: {close}); "
                         f"it has {len(names)} compounds, e.g. {names[:8]}.")
    mine = keep & (lines == cell_line)
    vehicle = mine & (labels == CONTROL)
    chosen = mine & (np.isin(labels, list(compounds)) | (labels == CONTROL))
    del obs_raw
    controls = workshop.load_scperturb(dataset, cells=vehicle)
    genes = select_genes(controls, n_top_genes)
    del controls
    adata = workshop.load_scperturb(dataset, cells=chosen, genes=genes)
    is_control = (adata.obs["perturbation"] == CONTROL).to_numpy()
    dose = pd.to_numeric(adata.obs["dose_value"], errors="coerce").to_numpy(dtype=float)
    dose[is_control] = 0.0
    missing = ~np.isfinite(dose)
    if missing.any():
        raise ValueError(f"{dataset}: {int(missing.sum())} treated cells have no dose_value; the file is not in scPerturb's layout.")
    adata.obs["dose"] = dose
    return _finish_genes(adata, genes, f"the {len(genes)} most variable genes of the {cell_line} vehicle cells")
