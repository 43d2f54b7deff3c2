"""Models x seeds on a held-out-cell-type split, as one tidy table.

A single training run says little: the same model trained with another seed can score
quite differently. :func:`evaluate_holdout` trains every model with several seeds on the
same split, scores every prediction with :func:`tutorial_kit.metrics.evaluate` in ONE shared
PCA fitted on the training cells, and returns a tidy table; :func:`summarize_seeds` turns it
into a mean, a standard deviation and a Student t confidence interval per model and metric;
:func:`evaluate_cell_types` repeats the whole split for every cell type.
Taught in ``04_scgen`` (seeds, baselines, the cross-cell-type loop) and ``05_scpram``.

Example:
    >>> import numpy as np, anndata as ad, pandas as pd
    >>> from tutorial_kit.models import MeanShift, NoChange, holdout
    >>> rng = np.random.default_rng(0)
    >>> obs = pd.DataFrame({"cell_type": np.repeat(["A", "B", "C"], 40),
    ...                     "perturbation": np.tile(np.repeat(["control", "IFN"], 20), 3)})
    >>> obs.index = [f"c{i}" for i in range(120)]
    >>> X = rng.normal(size=(120, 8)) + (obs["perturbation"] == "IFN").to_numpy()[:, None]
    >>> split = holdout(ad.AnnData(X.astype(np.float32), obs=obs), cell_type="B", perturbation="IFN")
    >>> res = evaluate_holdout({"no-change": lambda s: NoChange(seed=s), "mean-shift": lambda s: MeanShift(seed=s)},
    ...                        split, seeds=(0, 1), metrics=["edistance"], k_overlap=5, progress=False)
    >>> res.table[["model", "seed", "metric", "gene_set"]].values.tolist()[:2]
    [['no-change', 0, 'edistance', 'pca8'], ['no-change', 1, 'edistance', 'pca8']]
    >>> summary = summarize_seeds(res.table)
    >>> summary["model"].tolist(), bool(summary["mean"].iloc[1] < summary["mean"].iloc[0])
    (['no-change', 'mean-shift'], True)
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from tutorial_kit.models.base import Holdout, PerturbationModel, holdout, training_hvgs

if TYPE_CHECKING:  # pragma: no cover
    import anndata
    import pandas as pd
    from sklearn.decomposition import PCA

__all__ = ["HoldoutResult", "evaluate_cell_types", "evaluate_holdout", "evaluate_perturbations", "interval_table",
           "summarize_seeds"]

TABLE_COLUMNS = (
    "model", "seed", "metric", "gene_set", "value", "n_genes", "fit_seconds", "seconds_per_epoch", "epochs",
)
"""Columns of :attr:`HoldoutResult.table`, in order."""

_SUMMARY_KEYS = ("task", "cell_type", "model", "metric", "gene_set")


class HoldoutResult(NamedTuple):
    """Result of :func:`evaluate_holdout`.

    Attributes:
        table: tidy DataFrame, one row per model x seed x metric x gene set, columns
            ``model, seed, metric, gene_set, value, n_genes, fit_seconds, seconds_per_epoch, epochs``
            (``epochs``: epochs actually run, 0 for closed-form models, whose
            ``seconds_per_epoch`` is NaN).
        predictions: ``(model, seed) -> predicted AnnData`` (one cell per control cell of the split).
        models: ``(model, seed) -> fitted model``.
        pca: the ONE PCA (fitted on the split's training cells) every model and seed is scored in.
    """

    table: "pd.DataFrame"
    predictions: "dict[tuple[str, int], anndata.AnnData]"
    models: "dict[tuple[str, int], PerturbationModel]"
    pca: "PCA"


def check_models(models: Any, where: str) -> dict[str, Callable[[int], PerturbationModel]]:
    """The models of an evaluation, checked: a non-empty dict name -> factory ``callable(seed)``.

    Used by :func:`evaluate_holdout`, :func:`evaluate_perturbations` and
    :func:`tutorial_kit.models.run_benchmark`; ``where`` names the caller in the errors.

    Example:
        >>> from tutorial_kit.models import NoChange
        >>> list(check_models({"no-change": lambda s: NoChange(seed=s)}, "evaluate_holdout"))
        ['no-change']
    """
    if not isinstance(models, Mapping) or not models:
        raise ValueError(
            f"{where}: models must be a non-empty dict name -> factory, e.g. "
            "{'no-change': lambda s: tk.models.NoChange(seed=s)}; got "
            f"{type(models).__name__ if not isinstance(models, Mapping) else 'an empty dict'}."
        )
    for name, factory in models.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}: model names must be non-empty strings; got {name!r}.")
        if not callable(factory):
            raise ValueError(
                f"{where}: models[{name!r}] must be a factory callable(seed) -> PerturbationModel, e.g. "
                f"lambda s: tk.models.NoChange(seed=s); got {type(factory).__name__}."
            )
    return dict(models)


def check_seeds(seeds: Any, where: str) -> list[int]:
    """The seeds of an evaluation as a list of distinct integers (one integer is one seed).

    Example:
        >>> check_seeds((0, 1, 2), "evaluate_holdout"), check_seeds(3, "evaluate_holdout")
        ([0, 1, 2], [3])
    """
    seeds = list(seeds) if not isinstance(seeds, (int, np.integer)) else [seeds]
    if not seeds:
        raise ValueError(f"{where}: seeds is empty; pass at least one seed, e.g. seeds=(0, 1, 2).")
    if any(isinstance(s, bool) or not isinstance(s, (int, np.integer)) for s in seeds):
        raise ValueError(f"{where}: seeds must be integers; got {seeds!r}.")
    seeds = [int(s) for s in seeds]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{where}: seeds must be distinct (a repeated seed repeats the same run); got {seeds}.")
    return seeds


def _control_label(split: Holdout, where: str) -> str:
    labels = sorted(set(split.ctrl.obs[split.perturbation_key].astype(str)))
    if len(labels) != 1:  # pragma: no cover - holdout() always builds one label
        raise ValueError(f"{where}: split.ctrl must hold one control label; it has {labels}.")
    return labels[0]


def _check_fitted(fitted: Any, models: Mapping[str, Any], seeds: Sequence[int], split: Holdout,
                  where: str) -> dict[tuple[str, int], PerturbationModel]:
    """The ``fitted`` models of :func:`evaluate_holdout`, checked to belong to this split and run."""
    if fitted is None:
        return {}
    out = {}
    for key, model in dict(fitted).items():
        if not (isinstance(key, tuple) and len(key) == 2 and key[0] in models and key[1] in seeds):
            raise ValueError(
                f"{where}: fitted keys must be (model name, seed) pairs among the runs; got {key!r} "
                f"(models {list(models)}, seeds {list(seeds)})."
            )
        if not isinstance(model, PerturbationModel) or not model.is_fitted:
            raise ValueError(f"{where}: fitted[{key!r}] must be a fitted PerturbationModel; call fit first.")
        if model.seed != key[1]:
            raise ValueError(f"{where}: fitted[{key!r}] has seed {model.seed}, not {key[1]}.")
        if list(model.genes_) != list(split.train.var_names):
            raise ValueError(
                f"{where}: fitted[{key!r}] was trained on other genes than split.train; "
                "pass only models fitted on this split's training cells."
            )
        out[key] = model
    return out


def _train(factory: Callable[[int], PerturbationModel], name: str, seed: int, split: Holdout, control: str,
           epochs: int | None, where: str) -> PerturbationModel:
    """One training run of :func:`evaluate_holdout`: the factory's model, checked, fitted on ``split.train``."""
    model = factory(seed)
    if not isinstance(model, PerturbationModel):
        raise ValueError(
            f"{where}: the factory of {name!r} returned {type(model).__name__}, not a PerturbationModel; "
            f"it should be e.g. lambda s: tk.models.NoChange(seed=s)."
        )
    if model.seed != seed:
        raise ValueError(
            f"{where}: the factory of {name!r} ignored its seed (asked for {seed}, the model has {model.seed}); "
            "write it as lambda s: Model(seed=s), or every seed repeats the same run."
        )
    return model.fit(
        split.train, perturbation_key=split.perturbation_key, cell_type_key=split.cell_type_key,
        control=control, epochs=epochs, progress=False,
    )


def evaluate_holdout(
    models: Mapping[str, Callable[[int], PerturbationModel]],
    split: Holdout,
    *,
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int | None = None,
    metrics: Sequence[str] | None = None,
    k_overlap: int = 100,
    n_pca: int = 50,
    progress: bool = True,
    fitted: Mapping[tuple[str, int], PerturbationModel] | None = None,
    pca: "PCA | None" = None,
) -> HoldoutResult:
    """Train every model with every seed on one split and score each prediction.

    For each model and seed: ``factory(seed).fit(split.train, epochs=epochs)``, then
    ``predict(split.ctrl, split.perturbation)`` and :func:`tutorial_kit.metrics.evaluate`
    against ``split.true`` (control: ``split.ctrl``). Every model and seed is scored in the
    SAME PCA, fitted once on the real training cells (``split.train.X``, seed 0,
    ``min(n_pca, n_genes, n_train_cells - 1)`` components): refitting it per model would put
    each model in its own coordinates. ``evaluate`` runs with ``n_top_de=min(20, n_genes)``
    and ``k_top_expressed=min(1000, n_genes)``. Models train without their own progress bar;
    one bar runs over (model, seed).
    Taught in ``04_scgen`` and ``05_scpram``.

    Args:
        models: name -> factory ``callable(seed) -> PerturbationModel`` (the factory must pass
            the seed on, e.g. ``lambda s: tk.models.ScGen(seed=s)``); the dict order is kept.
        split: a :class:`tutorial_kit.models.Holdout` (e.g. after :func:`training_hvgs`).
        seeds: distinct integer seeds, one training run each.
        epochs: training epochs for every model (default: each model's tier budget).
        metrics: names from :data:`tutorial_kit.metrics.METRICS` (default all).
        k_overlap: top DE genes for ``deg_overlap_k`` and the ``top{k}_de`` gene sets.
        n_pca: components of the shared PCA (fewer if the data are smaller).
        progress: show the progress bar.
        fitted: models already trained on ``split.train``, as ``{(name, seed): model}`` (e.g.
            the model a notebook trained step by step): reused instead of training that run
            again. Each must be fitted, have that seed and the genes of ``split.train``.
        pca: a PCA already fitted on real cells with these genes, to score in instead of one fitted
            on ``split.train`` (e.g. so that a variant of the split with fewer training cells is
            scored in the same coordinates as the original, ``10_benchmarking``).

    Returns:
        A :class:`HoldoutResult` (table, predictions, models, pca). A correlation that is undefined
        because a prediction equals control on a gene set (``pearson_delta`` of no-change) is NaN in
        the table, without the metric's warning; :func:`interval_table` shows it as ``n/a``.

    Raises:
        ValueError: ``models`` is empty or not a dict of callables, a factory does not return
            a :class:`PerturbationModel` or ignores its seed, ``seeds`` is empty or not
            distinct integers, ``split`` is not a :class:`Holdout`, or a ``fitted`` model
            does not belong to this split, its name or its seed.
    """
    import pandas as pd
    from tqdm import tqdm

    from tutorial_kit import metrics as tkm

    where = "evaluate_holdout"
    models = check_models(models, where)
    seeds = check_seeds(seeds, where)
    if not isinstance(split, Holdout):
        raise ValueError(
            f"{where}: split must be a tk.models.Holdout (from tk.models.holdout); got {type(split).__name__}."
        )
    control = _control_label(split, where)
    fitted_in = _check_fitted(fitted, models, seeds, split, where)
    n_genes = int(split.train.n_vars)
    if pca is None:
        n_comps = max(1, min(int(n_pca), n_genes, split.train.n_obs - 1))
        pca = tkm.fit_pca(split.train.X, n_comps=n_comps, seed=0)
        pca_note = f"fitted once on the {split.train.n_obs} training cells (real cells only), seed 0"
    else:
        if getattr(pca, "n_features_in_", None) != n_genes:
            raise ValueError(
                f"{where}: the pca given was fitted on {getattr(pca, 'n_features_in_', 'unknown')} genes, the split "
                f"has {n_genes}; fit it with tk.metrics.fit_pca on real cells with the split's genes."
            )
        pca_note = "given by the caller (fitted on real cells)"

    frames, predictions, trained = [], {}, {}
    runs = [(name, seed) for name in models for seed in seeds]
    for name, seed in tqdm(runs, desc="models x seeds", disable=not progress):
        if (name, seed) in fitted_in:
            model = fitted_in[(name, seed)]
        else:
            model = _train(models[name], name, seed, split, control, epochs, where)
        pred = model.predict(split.ctrl, split.perturbation)
        with warnings.catch_warnings():
            # correlations of a prediction equal to control are undefined: NaN, shown as n/a (see Returns)
            warnings.filterwarnings("ignore", message=UNDEFINED_CORRELATION, category=RuntimeWarning)
            warnings.filterwarnings("ignore", message=NO_CHANGE_DEG, category=RuntimeWarning)
            df = tkm.evaluate(
                pred, split.true, split.ctrl, perturbation_key=split.perturbation_key, metrics=metrics, pca=pca,
                n_top_de=min(20, n_genes), k_overlap=k_overlap, k_top_expressed=min(1000, n_genes),
            )
        df = df.drop(columns="perturbation")
        df.insert(0, "seed", seed)
        df.insert(0, "model", name)
        df["fit_seconds"] = float(model.fit_seconds_)
        spe = model.seconds_per_epoch_
        df["seconds_per_epoch"] = float("nan") if spe is None else float(spe)
        df["epochs"] = int(model.epochs_)
        frames.append(df)
        predictions[(name, seed)] = pred
        trained[(name, seed)] = model
    table = pd.concat(frames, ignore_index=True)[list(TABLE_COLUMNS)]
    table.attrs.update({
        "cell_type": split.cell_type,
        "perturbation": split.perturbation,
        "pca": pca_note,
        "pca_n_comps": int(pca.n_components_),
    })
    return HoldoutResult(table=table, predictions=predictions, models=trained, pca=pca)


def summarize_seeds(table: "pd.DataFrame", *, confidence: float = 0.95) -> "pd.DataFrame":
    """Mean, standard deviation and Student t confidence interval over seeds.

    One row per (model, metric, gene_set), and per ``cell_type`` too when the table has that
    column (the output of :func:`evaluate_cell_types`). Rows keep the order in which the
    models (and cell types, metrics, gene sets) first appear in ``table``, not alphabetical.
    ``sd`` uses ``ddof=1``; the interval is ``mean -+ t_{(1+confidence)/2, n-1} * sd / sqrt(n)``.
    With a single seed the spread is unknown: ``sd``, ``ci_low`` and ``ci_high`` are NaN.
    With zero spread the interval collapses to the mean. NaN values (e.g. ``pearson_delta`` of
    a no-change model) are left out: ``n_seeds`` counts the finite values used.
    This is :func:`tutorial_kit.stats.summarize_seeds` with the key columns of the model tables
    (``task``, ``cell_type``, ``model``, ``metric``, ``gene_set``, those present, in this order).
    Taught in ``04_scgen``.

    Args:
        table: a tidy table with columns ``model, seed, metric, gene_set, value`` (and optionally
            ``cell_type``), e.g. :attr:`HoldoutResult.table`.
        confidence: confidence level of the interval, in (0, 1).

    Returns:
        DataFrame with the key columns and ``mean, sd, n_seeds, ci_low, ci_high``.

    Example:
        >>> import pandas as pd
        >>> t = pd.DataFrame({"model": ["m"] * 3, "seed": [0, 1, 2], "metric": ["r2"] * 3,
        ...                   "gene_set": ["all"] * 3, "value": [1.0, 2.0, 3.0]})
        >>> row = summarize_seeds(t).iloc[0]  # mean 2, sd 1, t(0.975, 2) = 4.303
        >>> float(row["mean"]), float(row["sd"]), round(float(row["ci_high"]), 3)
        (2.0, 1.0, 4.484)
    """
    from tutorial_kit import stats

    where = "summarize_seeds"
    need = ["model", "seed", "metric", "gene_set", "value"]
    missing = [c for c in need if c not in getattr(table, "columns", [])]
    if missing:
        raise ValueError(
            f"{where}: the table is missing column(s) {missing}; pass the table of "
            "tk.models.evaluate_holdout(...).table or evaluate_cell_types(...)."
        )
    return stats.summarize_seeds(table, by=[k for k in _SUMMARY_KEYS if k in table.columns], confidence=confidence)


def evaluate_cell_types(
    models: Mapping[str, Callable[[int], PerturbationModel]],
    adata: "anndata.AnnData",
    *,
    perturbation: str,
    cell_types: Sequence[str] | None = None,
    seeds: Sequence[int] = (0,),
    n_top_genes: int | None = 2000,
    epochs: int | None = None,
    metrics: Sequence[str] | None = None,
    k_overlap: int = 100,
    progress: bool = True,
    cell_type_key: str = "cell_type",
    perturbation_key: str = "perturbation",
    control: str | None = None,
) -> "pd.DataFrame":
    """Hold out each cell type in turn: the cross-cell-type loop of ``04_scgen``.

    For each cell type: :func:`holdout`, then :func:`training_hvgs` (genes chosen on that
    split's training cells only; skipped when ``n_top_genes`` is None), then
    :func:`evaluate_holdout` (its own shared PCA per split). The tables are concatenated with a
    ``cell_type`` column first; pass the result to :func:`summarize_seeds` (which keeps
    cell types apart) or :func:`tutorial_kit.plotting.holdout_heatmap`.
    Taught in ``04_scgen``.

    Args:
        models: name -> factory ``callable(seed) -> PerturbationModel``, as in :func:`evaluate_holdout`.
        adata: all cells, log-normalized ``.X``, with cell type and perturbation columns.
        perturbation: the perturbation label to hold out.
        cell_types: the cell types to hold out, in this order (default: every type with both
            control and ``perturbation`` cells, sorted).
        seeds: seeds per model and cell type.
        n_top_genes: highly variable genes per split (None: keep all genes).
        epochs: training epochs (default: each model's tier budget).
        metrics: names from :data:`tutorial_kit.metrics.METRICS` (default all).
        k_overlap: top DE genes for ``deg_overlap_k`` (at most the number of genes kept).
        progress: show a progress bar over cell types.
        cell_type_key: the ``obs`` column of cell types.
        perturbation_key: the ``obs`` column of perturbation labels.
        control: the control label (default: the course's ``'control'``).

    Returns:
        DataFrame: ``cell_type`` then the columns of :attr:`HoldoutResult.table`.
    """
    import pandas as pd
    from tqdm import tqdm

    from tutorial_kit.data.schema import CONTROL
    from tutorial_kit.validate import check_obs_columns

    where = "evaluate_cell_types"
    models = check_models(models, where)
    seeds = check_seeds(seeds, where)
    control = CONTROL if control is None else control
    check_obs_columns(adata, [cell_type_key, perturbation_key], where=where)
    types = adata.obs[cell_type_key].astype(str).to_numpy()
    labels = adata.obs[perturbation_key].astype(str).to_numpy()
    eligible = sorted(set(types[labels == control]) & set(types[labels == perturbation]))
    if cell_types is None:
        cell_types = eligible
        if not cell_types:
            raise ValueError(
                f"{where}: no cell type has both {control!r} and {perturbation!r} cells in "
                f"obs[{perturbation_key!r}]; check the labels (known: {sorted(set(labels))[:10]})."
            )
    else:
        cell_types = [str(c) for c in cell_types]
        if not cell_types:
            raise ValueError(f"{where}: cell_types is empty; pass None to use every eligible cell type.")
    frames = []
    for cell_type in tqdm(cell_types, desc="held-out cell types", disable=not progress):
        split = holdout(
            adata, cell_type=cell_type, perturbation=perturbation,
            cell_type_key=cell_type_key, perturbation_key=perturbation_key, control=control,
        )
        if n_top_genes is not None:
            split = training_hvgs(split, n_top_genes=n_top_genes)
        result = evaluate_holdout(
            models, split, seeds=seeds, epochs=epochs, metrics=metrics, k_overlap=k_overlap, progress=False,
        )
        table = result.table
        table.insert(0, "cell_type", cell_type)
        frames.append(table)
    out = pd.concat(frames, ignore_index=True)
    out.attrs.update({"perturbation": perturbation, "n_top_genes": n_top_genes,
                      "pca": "one PCA per held-out cell type, fitted on that split's training cells"})
    return out


UNDEFINED_CORRELATION = ".*the Pearson correlation is undefined"
"""Message of the warning the metrics give for a correlation with a constant vector (NaN), e.g. no-change's delta."""

NO_CHANGE_DEG = "deg_overlap_k: the predicted cells do not differ from the control cells"
"""Message of the warning of ``deg_overlap_k`` for a prediction equal to control (NaN), e.g. no-change's."""

PERTURBATION_COLUMNS = ("model", "seed", "metric", "gene_set", "value", "n_perturbations")
"""Columns of :func:`evaluate_perturbations`, in order."""


def evaluate_perturbations(
    models: Mapping[str, PerturbationModel],
    data: Any,
    *,
    metrics: Sequence[str] | None = None,
    n_top_de: int = 20,
    k_overlap: int = 100,
    k_top_expressed: int = 1000,
) -> "pd.DataFrame":
    """Score fitted models on the held-out perturbations of a perturbation-level split.

    For every model, each held-out perturbation is predicted from the split's control cells
    (``data.ctrl``) and all predictions are scored together with
    :func:`tutorial_kit.metrics.evaluate` against the real held-out cells, so
    ``discrimination_rank`` ranks each prediction among all held-out perturbations. The value
    of a metric is its mean over the held-out perturbations where it is defined
    (``n_perturbations`` counts them; ``pearson_delta`` of a no-change prediction is
    undefined, so its value is NaN with ``n_perturbations`` 0).
    Which part is held out is fixed by the object passed: a
    :class:`~tutorial_kit.models.PerturbationSplit` is scored on its ``test`` part; a
    :class:`~tutorial_kit.models.TuningData` (from :func:`tuning_data`) on its ``val`` part,
    because it has no test cells: tuning objectives can therefore never read the test split.
    Taught in ``09_linear_baselines`` and ``10_benchmarking``.

    Args:
        models: name -> a model already fitted on ``data.train`` (the dict order is kept).
        data: a ``PerturbationSplit`` (scores ``test``) or ``TuningData`` (scores ``val``).
        metrics: names from :data:`tutorial_kit.metrics.METRICS` (default all).
        n_top_de: top DE genes of ``mse_top_de`` and ``direction_agreement_k``.
        k_overlap: top DE genes of ``deg_overlap_k``.
        k_top_expressed: genes of ``l2_top_expressed``. Each of these three is capped at the number of genes.

    Returns:
        DataFrame with columns ``model, seed, metric, gene_set, value, n_perturbations``: one
        row per model x metric x gene set.

    Raises:
        ValueError: ``models`` is empty, a model is not fitted or was trained on other genes, or
            ``data`` is neither a ``PerturbationSplit`` nor a ``TuningData``.
        NotApplicableError: a model cannot predict one of the held-out perturbations.

    Example:
        >>> import numpy as np, anndata as ad, pandas as pd
        >>> from tutorial_kit.models import MeanEffect, NoChange, perturbation_split
        >>> labels = ["control"] * 40 + [p for p in "ABCDEFGH" for _ in range(5)]
        >>> obs = pd.DataFrame({"perturbation": labels, "cell_type": "K562"}, index=[f"c{i}" for i in range(80)])
        >>> X = np.random.default_rng(0).normal(size=(80, 6)).astype(np.float32)
        >>> X[40:, 0] += 2.0  # every perturbation raises gene 0
        >>> split = perturbation_split(ad.AnnData(X, obs=obs), kind="unseen_single", seed=0)
        >>> models = {m.name: m.fit(split.train, progress=False) for m in (NoChange(), MeanEffect())}
        >>> t = evaluate_perturbations(models, split, metrics=["l2_top_expressed"], k_top_expressed=6)
        >>> t[["model", "metric", "n_perturbations"]].values.tolist()
        [['no-change', 'l2_top_expressed', 2], ['mean', 'l2_top_expressed', 2]]
        >>> bool(t["value"].iloc[1] < t["value"].iloc[0])
        True
    """
    import anndata as ad
    import pandas as pd

    from tutorial_kit import metrics as tkm
    from tutorial_kit.models.splits import PerturbationSplit, TuningData

    where = "evaluate_perturbations"
    if isinstance(data, PerturbationSplit):
        truth, held_out = data.test, list(data.test_perturbations)
    elif isinstance(data, TuningData):
        truth, held_out = data.val, list(data.val_perturbations)
    else:
        raise ValueError(
            f"{where}: data must be a tk.models.PerturbationSplit (scored on its test part) or the "
            f"tk.models.tuning_data(split) of one (scored on its validation part); got {type(data).__name__}."
        )
    if not isinstance(models, Mapping) or not models:
        raise ValueError(f"{where}: models must be a non-empty dict name -> fitted model, e.g. "
                         "{'mean': tk.models.MeanEffect().fit(split.train)}.")
    if not held_out:
        raise ValueError(f"{where}: the split holds out no perturbation to score.")
    for name, model in models.items():
        if not isinstance(model, PerturbationModel) or not model.is_fitted:
            raise ValueError(f"{where}: models[{name!r}] must be a fitted PerturbationModel; call .fit(split.train).")
        if list(model.genes_) != list(data.train.var_names):
            raise ValueError(f"{where}: models[{name!r}] was trained on other genes than the split; "
                             "fit it on this split's train part.")
    key = data.perturbation_key
    k_top_expressed = min(int(k_top_expressed), int(truth.n_vars))
    frames = []
    for name, model in models.items():
        pred = ad.concat([model.predict(data.ctrl, p) for p in held_out], index_unique="-")
        with warnings.catch_warnings():
            # correlations of a no-change prediction are undefined: NaN, documented above
            warnings.filterwarnings("ignore", message=UNDEFINED_CORRELATION, category=RuntimeWarning)
            warnings.filterwarnings("ignore", message=NO_CHANGE_DEG, category=RuntimeWarning)
            table = tkm.evaluate(pred, truth, data.ctrl, perturbation_key=key, metrics=metrics,
                                 n_top_de=min(int(n_top_de), int(truth.n_vars)), k_top_expressed=k_top_expressed,
                                 k_overlap=min(int(k_overlap), int(truth.n_vars)))
        grouped = table.groupby(["metric", "gene_set"], sort=False)["value"]
        summary = pd.DataFrame({"value": grouped.mean(), "n_perturbations": grouped.count()}).reset_index()
        summary.insert(0, "seed", int(model.seed))
        summary.insert(0, "model", name)
        frames.append(summary)
    out = pd.concat(frames, ignore_index=True)[list(PERTURBATION_COLUMNS)]
    out.attrs["held_out"] = held_out
    return out


def interval_table(summary: "pd.DataFrame", *, metrics: Sequence[tuple[str, str]] | None = None,
                   digits: int = 3) -> "pd.DataFrame":
    """A readable wide table of a summary: one row per model (and task), ``mean [ci_low, ci_high]`` per metric.

    Reads the output of :func:`summarize_seeds`. A metric that is undefined for a model (NaN
    mean, e.g. ``pearson_delta`` of no-change) reads ``n/a``; with one seed (no interval) the
    cell is the mean alone. Rows keep the order of the summary; columns are
    ``metric (gene_set)`` in the order of ``metrics``. A model not scored on a metric of its
    task reads ``-``. The cells are those of :func:`tutorial_kit.stats.interval_table`.
    Taught in ``09_linear_baselines`` and ``10_benchmarking``.

    Args:
        summary: output of :func:`summarize_seeds` (optionally with a ``task`` column).
        metrics: ``(metric, gene_set)`` pairs to show (default: every pair, in order).
        digits: decimals shown.

    Returns:
        DataFrame of strings, indexed by ``model`` (or ``task, model``; with a ``cell_type``
        column, ``cell_type`` comes before ``model``).

    Example:
        >>> import pandas as pd
        >>> s = pd.DataFrame({"model": ["no-change", "mean"], "metric": "pearson_delta", "gene_set": "all",
        ...                   "mean": [float("nan"), 0.5], "ci_low": [float("nan"), 0.25], "ci_high": [float("nan"), 0.75]})
        >>> interval_table(s).to_dict()
        {'pearson_delta (all)': {'no-change': 'n/a', 'mean': '0.500 [0.250, 0.750]'}}
    """
    from tutorial_kit import stats

    where = "interval_table"
    need = ["model", "metric", "gene_set", "mean", "ci_low", "ci_high"]
    missing = [c for c in need if c not in getattr(summary, "columns", [])]
    if missing:
        raise ValueError(f"{where}: summary is missing column(s) {missing}; pass tk.models.summarize_seeds(table).")
    pairs = list(dict.fromkeys(zip(summary["metric"], summary["gene_set"]))) if metrics is None else \
        [tuple(p) for p in metrics]
    unknown = [p for p in pairs if p not in set(zip(summary["metric"], summary["gene_set"]))]
    if unknown:
        raise ValueError(f"{where}: (metric, gene_set) {unknown} not in the summary; it has "
                         f"{list(dict.fromkeys(zip(summary['metric'], summary['gene_set'])))[:10]}.")
    index = [k for k in ("task", "cell_type") if k in summary.columns] + ["model"]
    keyed = summary.assign(**{"metric (gene_set)": summary["metric"] + " (" + summary["gene_set"] + ")"})
    wide = stats.interval_table(keyed, index=index, columns="metric (gene_set)", digits=digits)
    wide = wide.reindex(columns=[f"{m} ({g})" for m, g in pairs]).fillna("-")
    wide.columns.name = None
    return wide
