"""Perturbation-response models behind one interface, and the split they are judged on.

Taught in ``04_scgen`` (interface, split, scGen, baselines), ``05_scpram`` (scPRAM),
``09_linear_baselines`` (perturbation-level splits, linear baselines) and ``10_benchmarking`` (the harness).
Every model is a :class:`PerturbationModel`: ``model.fit(train)`` then
``model.predict(ctrl, perturbation)`` returns predicted cells as AnnData, ready for
:func:`tutorial_kit.metrics.evaluate`. Names are imported lazily; torch, scgen and POT are
imported only by the model that needs them.

- :class:`PerturbationModel`, :func:`holdout`, :func:`training_hvgs`, :class:`NotApplicableError` (``base.py``): the interface and the split.
- :class:`NoChange`, :class:`MeanShift`, :class:`MeanEffect`, :class:`Additive` (``baselines.py``): the baselines every model must beat;
  :func:`pseudobulk` (``baselines.py``): the mean expression of every group of cells, as they use it.
- :class:`LinearModel` (``linear.py``): the linear model of Ahlmann-Eltze, Huber and Anders (2025).
- :class:`ScGen` (``scgen.py``): the real ``scgen`` package behind the interface.
- :class:`ScGenPertpy` (``scgen.py``): pertpy's maintained scGen (JAX), in the core environment, for the benchmark (``10_benchmarking``).
- :class:`CPA` (``cpa.py``): the real ``cpa-tools`` package behind the interface (session environment ``tk-cpa``), taught in ``06_cpa_biolord``.
- :class:`Biolord` (``biolord.py``): the real ``biolord`` package behind the interface (``tk-cpa``), taught in ``06_cpa_biolord``.
- :class:`ScPRAM` (``scpram.py``): scPRAM from the paper: VAE, optimal transport, per-cell attention.
- :class:`ScpramPackage` (``scpram.py``): the ``scpram`` package behind the interface, for comparison.
- :func:`perturbation_split`, :func:`tuning_data` (``splits.py``): perturbation-level splits (unseen singles, doubles with 0-2 singles seen) with a validation part for tuning;
  :func:`subsample_perturbed` (unbalanced data) and :func:`validation_holdout` (a validation cell type, a :class:`ValidationHoldout`) for held-out cell types.
- :func:`dose_split`, :class:`DoseInterpolation`, :func:`evaluate_doses`, :func:`dose_response`, :func:`observed_dose_response` (``dose.py``): held-out doses, the interpolation baselines and dose-response curves, taught in ``06_cpa_biolord``.
- :class:`CountVAE`, :func:`nb_log_likelihood` (``vae.py``): a conditional VAE with a negative-binomial likelihood on raw counts, the count-aware baseline of ``11_jepa`` and the autoencoder of ``12_latent_diffusion``.
- :func:`contrastive_indices` (``contrastive.py``): the background (control) and target cells of scvi-tools' contrastiveVI, checked, taught in ``07_contrastivevi``.
- :func:`evaluate_holdout`, :func:`evaluate_perturbations`, :func:`summarize_seeds`, :func:`interval_table`, :func:`evaluate_cell_types` (``evaluation.py``): models x seeds on one split, as tidy tables with intervals.
- :func:`cinemaot_effects`, :func:`component_dependence`, :func:`ica_components`, :func:`naive_effects`, :func:`group_effects`, :func:`effect_summary`, :func:`effect_errors`, :func:`cinemaot_synergy`, :func:`additive_residual` (``cinemaot.py``): CINEMA-OT's per-cell treatment effects (pertpy), their naive rivals, summaries and synergy, taught in ``08_cinemaot``.
- :func:`run_benchmark`, :class:`Task`, :func:`rank_methods`, :func:`best_methods`, :func:`tune` (``benchmark.py``): methods x seeds x tasks in one table, rankings and the best method of each, Optuna on validation data.
"""

from __future__ import annotations

from tutorial_kit._lazy import lazy_names

_WHERE = {
    "PerturbationModel": "base",
    "NotApplicableError": "base",
    "ScGenPertpy": "scgen",
    "Holdout": "base",
    "ValidationHoldout": "base",
    "holdout": "base",
    "training_hvgs": "base",
    "NoChange": "baselines",
    "MeanShift": "baselines",
    "MeanEffect": "baselines",
    "Additive": "baselines",
    "pseudobulk": "baselines",
    "LinearModel": "linear",
    "ScGen": "scgen",
    "CPA": "cpa",
    "Biolord": "biolord",
    "contrastive_indices": "contrastive",
    "CountVAE": "vae",
    "nb_log_likelihood": "vae",
    "DoseSplit": "dose",
    "dose_split": "dose",
    "DoseInterpolation": "dose",
    "evaluate_doses": "dose",
    "dose_response": "dose",
    "observed_dose_response": "dose",
    "ScPRAM": "scpram",
    "ScpramPackage": "scpram",
    "PerturbationSplit": "splits",
    "perturbation_split": "splits",
    "assert_disjoint": "splits",
    "tuning_data": "splits",
    "subsample_perturbed": "splits",
    "validation_holdout": "splits",
    "evaluate_perturbations": "evaluation",
    "interval_table": "evaluation",
    "Task": "benchmark",
    "BenchmarkResult": "benchmark",
    "run_benchmark": "benchmark",
    "rank_methods": "benchmark",
    "best_methods": "benchmark",
    "tune": "benchmark",
    "TuneResult": "benchmark",
    "TuningData": "splits",
    "SPLIT_KINDS": "splits",
    "evaluate_holdout": "evaluation",
    "summarize_seeds": "evaluation",
    "evaluate_cell_types": "evaluation",
    "HoldoutResult": "evaluation",
    **dict.fromkeys(
        ("cinemaot_effects", "component_dependence", "ica_components", "naive_effects", "group_effects",
         "effect_summary", "effect_errors", "cinemaot_synergy", "additive_residual"),
        "cinemaot",
    ),
}
__all__, __getattr__, __dir__ = lazy_names(__name__, _WHERE)
