"""The figures of the course, so that a notebook cell that draws one stays one line.

Each function takes the output of a ``tutorial_kit`` function, draws one figure with
readable labels (units included) and a title that names the statistic, and returns the
``matplotlib.figure.Figure``. In a notebook, end the line with ``;`` so the figure is shown once.
Names are imported lazily: ``import tutorial_kit`` and ``tutorial_kit.plotting`` import no
matplotlib, and drawing changes no settings (no rcParams, no style). One module per area:

- ``qc.py`` (``01_perturbseq_qc``): :func:`umi_histograms`, :func:`guides_per_cell`, :func:`reads_vs_umis`,
  :func:`guide_coverage`, :func:`umis_by_call`, :func:`target_knockdown`, :func:`mixscape_classes`,
  :func:`perturbation_strength`.
- ``simulation.py`` (``02_simulation_statistical``): :func:`grn_network`, :func:`true_effects`,
  :func:`interaction_scatter`, :func:`marginal_fits`, :func:`family_counts`, :func:`correlation_heatmaps`,
  :func:`realism_summary`, :func:`gene_stat_agreement`.
- ``gan.py`` (``03_simulation_gan``): :func:`gan_history`, :func:`embedding_overlay`,
  :func:`diversity_comparison`, :func:`augmentation_results`.
- ``models.py`` (``04_scgen`` to ``10_benchmarking``): :func:`training_history`, :func:`reg_mean_plot`,
  :func:`latent_delta_plot`, :func:`model_comparison`, :func:`holdout_heatmap`, :func:`spread_plot`,
  :func:`interaction_residuals`, :func:`effect_scatter`, :func:`benchmark_plot`, :func:`rank_heatmap`, :func:`dose_curves`.
- ``latent.py`` (``07_contrastivevi``): :func:`latent_scatter`, :func:`space_scores`.
- ``causal.py`` (``08_cinemaot``): :func:`component_xi`, :func:`group_effect_heatmap`, :func:`effect_errors_plot`.
- ``_style.py``: what they share (the figure grid, column checks, baselines in grey).

Example:
    >>> import tutorial_kit as tk
    >>> "model_comparison" in tk.plotting.__all__, tk.plotting.model_comparison.__module__
    (True, 'tutorial_kit.plotting.models')
"""

from __future__ import annotations

from tutorial_kit._lazy import lazy_names

_WHERE = {
    **dict.fromkeys(
        ("guide_coverage", "guides_per_cell", "mixscape_classes", "perturbation_strength", "reads_vs_umis",
         "target_knockdown", "umi_histograms", "umis_by_call"),
        "qc",
    ),
    **dict.fromkeys(
        ("correlation_heatmaps", "family_counts", "gene_stat_agreement", "grn_network", "interaction_scatter",
         "marginal_fits", "realism_summary", "true_effects"),
        "simulation",
    ),
    **dict.fromkeys(("component_xi", "effect_errors_plot", "group_effect_heatmap"), "causal"),
    **dict.fromkeys(("latent_scatter", "space_scores"), "latent"),
    **dict.fromkeys(("augmentation_results", "diversity_comparison", "embedding_overlay", "gan_history"), "gan"),
    **dict.fromkeys(
        ("benchmark_plot", "effect_scatter", "holdout_heatmap", "interaction_residuals", "latent_delta_plot",
         "model_comparison", "rank_heatmap", "reg_mean_plot", "spread_plot", "training_history", "dose_curves"),
        "models",
    ),
}
__all__, __getattr__, __dir__ = lazy_names(__name__, _WHERE)
