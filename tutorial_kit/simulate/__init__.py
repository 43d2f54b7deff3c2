"""Simulators of single-cell counts and of Perturb-seq screens, and how to judge their realism.

Taught in ``01_perturbseq_qc`` (a screen with a known answer), ``02_simulation_statistical``
(copula simulator, GRN simulator, realism), ``03_simulation_gan`` (conditional WGAN-GP) and
``06_cpa_biolord`` (graded doses).
Every simulator is fitted per group of cells and returns AnnData in the course schema from
``.sample(n_cells, seed=...)``.
Names are imported lazily, so ``tk.simulate`` costs nothing until used, and torch is imported
only by the GAN.

- :func:`fit_copula` (``copula.py``): scDesign3-style marginals (Poisson, NB, ZIP, ZINB) and a Gaussian copula per group.
- :func:`fit_marginals` (``marginals.py``): the per-gene marginal fits and the choice among the four families.
- :func:`fit_independent_poisson` (``baseline.py``): the naive baseline, independent Poisson genes.
- :func:`simulate_screen` (``screen.py``): a small CRISPR screen with planted knockdowns and escapers, for QC.
- :func:`make_grn`, :func:`simulate_perturbseq`, :func:`observed_effects` (``grn.py``): a gene regulatory network and a screen with known effects.
- :func:`simulate_dose_screen`, :func:`true_dose_response`, :func:`hill`, :func:`dose_activity` (``dose.py``): graded doses on the GRN, with the true dose-response curves.
- :func:`add_shared_program` (``nuisance.py``): a shared nuisance program (cell-cycle-like) in every cell of a GRN screen, taught in ``07_contrastivevi``.
- :func:`simulate_cell_type_screen`, :func:`cp10k_log1p` (``celltypes.py``): cell types that respond differently to one perturbation, with every cell's true effect (``08_cinemaot``).
- :func:`fit_gan` (``gan.py``): a conditional WGAN-GP in the spirit of scGAN / cscGAN.
- :func:`realism`, :func:`split_half`, :func:`summarize_realism` (``evaluation.py``): real-versus-generated checks with a real-versus-real floor.
"""

from __future__ import annotations

from tutorial_kit._lazy import lazy_names

_WHERE = {
    "GATES": "grn",
    "fit_copula": "copula",
    "CopulaSimulator": "copula",
    "fit_marginals": "marginals",
    "FAMILIES": "marginals",
    "marginal_cdf": "marginals",
    "marginal_ppf": "marginals",
    "shrinkage_intensity": "copula",
    "diversity": "gan",
    "gradient_penalty": "gan",
    "fit_independent_poisson": "baseline",
    "PoissonSimulator": "baseline",
    "make_grn": "grn",
    "GRN": "grn",
    "simulate_perturbseq": "grn",
    "observed_effects": "grn",
    "simulate_dose_screen": "dose",
    "true_dose_response": "dose",
    "hill": "dose",
    "dose_activity": "dose",
    "sample_counts": "_base",
    "add_shared_program": "nuisance",
    "simulate_cell_type_screen": "celltypes",
    "cp10k_log1p": "celltypes",
    "fit_gan": "gan",
    "GANSimulator": "gan",
    "realism": "evaluation",
    "split_half": "evaluation",
    "summarize_realism": "evaluation",
    "simulate_screen": "screen",
    "gene_stats": "evaluation",
    "FLOOR": "evaluation",
    "group_labels": "_base",
    "group_sizes": "_base",
    "resolve_n_cells": "_base",
    "simulated_adata": "_base",
}
__all__, __getattr__, __dir__ = lazy_names(__name__, _WHERE)
