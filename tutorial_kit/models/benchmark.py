"""A benchmark harness: methods x seeds x tasks into one tidy table; ranks; tuning with Optuna.

A benchmark answers "which method is better, on what, by how much, and how sure are we?".
:func:`run_benchmark` runs every method on every task with every seed and returns ONE tidy
table (``task, model, seed, metric, gene_set, value, ...``) plus a table of runs that records
time and every method x task pair that does not apply (e.g. the additive model on unseen
singles), with the reason, instead of silently leaving it out.
A task is a split factory ``seed -> split``: a held-out cell type
(:class:`~tutorial_kit.models.Holdout`, the split is fixed and the seed trains the model) or
a perturbation-level split (:class:`~tutorial_kit.models.PerturbationSplit`, the seed draws the
split AND trains the model, so intervals cover both).
:func:`rank_methods` ranks the methods per metric (and per seed), to see how the ranking
changes with either; :func:`tune` searches hyperparameters with Optuna on validation data
only (:func:`~tutorial_kit.models.tuning_data` or :func:`~tutorial_kit.models.validation_holdout`).
Taught in ``10_benchmarking``.

Example:
    >>> import numpy as np, anndata as ad, pandas as pd
    >>> from tutorial_kit.models import MeanShift, NoChange, holdout
    >>> rng = np.random.default_rng(0)
    >>> obs = pd.DataFrame({"cell_type": np.repeat(["A", "B", "C"], 40),
    ...                     "perturbation": np.tile(np.repeat(["control", "IFN"], 20), 3)})
    >>> obs.index = [f"c{i}" for i in range(120)]
    >>> X = (rng.normal(size=(120, 8)) + (obs["perturbation"] == "IFN").to_numpy()[:, None]).astype(np.float32)
    >>> split = holdout(ad.AnnData(X, obs=obs), cell_type="B", perturbation="IFN")
    >>> result = run_benchmark({"B held out": Task(split=lambda seed: split, metrics=["edistance"])},
    ...                        {"no-change": lambda s: NoChange(seed=s), "mean-shift": lambda s: MeanShift(seed=s)},
    ...                        seeds=(0, 1), progress=False)
    >>> result.table[["task", "model", "seed", "metric"]].values.tolist()[0]
    ['B held out', 'no-change', 0, 'edistance']
    >>> ranks = rank_methods(result.table)
    >>> ranks.query("seed == 0")[["model", "rank"]].values.tolist()
    [['no-change', 2.0], ['mean-shift', 1.0]]
"""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np

from tutorial_kit.models.base import Holdout, NotApplicableError, PerturbationModel, ValidationHoldout
from tutorial_kit.models.evaluation import NO_CHANGE_DEG, UNDEFINED_CORRELATION

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from sklearn.decomposition import PCA

__all__ = ["BenchmarkResult", "Task", "TuneResult", "best_methods", "rank_methods", "run_benchmark", "tune"]

TABLE_COLUMNS = ("task", "model", "seed", "metric", "gene_set", "value", "fit_seconds", "epochs")
"""Columns of :attr:`BenchmarkResult.table`, in order."""

RUN_COLUMNS = ("task", "model", "seed", "status", "fit_seconds", "seconds", "reason")
"""Columns of :attr:`BenchmarkResult.runs`, in order."""

OPTUNA_HINT = (
    "tune needs optuna (pinned in environments/core.yml). Rebuild the core environment with "
    "`python3 environments/build.py core` (conda: `conda env update -f environments/core.yml`), "
    "or `pip install optuna==5.0.0`."
)


class Task(NamedTuple):
    """One task of a benchmark: how to build its split for a seed, and what to run and score on it.

    Attributes:
        split: ``callable(seed) -> split``: a :class:`~tutorial_kit.models.Holdout` (held-out cell
            type; usually the same split for every seed) or a
            :class:`~tutorial_kit.models.PerturbationSplit` (e.g.
            ``lambda s: tk.models.perturbation_split(adata, kind="double_seen2", seed=s)``).
        methods: names of the methods to run on this task (default: all of them).
        metrics: names from :data:`tutorial_kit.metrics.METRICS` to score (default: all).
        pca: for held-out-cell-type tasks, a PCA fitted on real cells with the split's genes, to
            score ``edistance`` in (default: one PCA per split, fitted on its training cells).
            Pass the PCA of the original split to a variant of it (e.g. fewer training cells),
            so both are measured in the same coordinates.
        description: one line for tables and reports.
    """

    split: Callable[[int], Any]
    methods: Sequence[str] | None = None
    metrics: Sequence[str] | None = None
    pca: "PCA | None" = None
    description: str = ""


class BenchmarkResult(NamedTuple):
    """Result of :func:`run_benchmark`.

    Attributes:
        table: tidy DataFrame, one row per task x method x seed x metric x gene set, columns
            ``task, model, seed, metric, gene_set, value, fit_seconds, epochs``; pass it to
            :func:`~tutorial_kit.models.summarize_seeds` and :func:`rank_methods`.
        runs: one row per task x method x seed, columns
            ``task, model, seed, status, fit_seconds, seconds, reason``: ``status`` is
            ``'scored'`` or ``'not applicable'`` (then ``reason`` says why, in the model's words);
            ``seconds`` is the wall time of the run (fit, predict, score).
        seconds: wall time of the whole benchmark.
    """

    table: "pd.DataFrame"
    runs: "pd.DataFrame"
    seconds: float


def _control_of(split: Any) -> str:
    key = split.perturbation_key
    labels = sorted(set(split.ctrl.obs[key].astype(str)))
    if len(labels) != 1:  # pragma: no cover - the split functions always build one label
        raise ValueError(f"run_benchmark: the split's ctrl cells must carry one control label; they have {labels}.")
    return labels[0]


def _check_tasks(tasks: Any, methods: Mapping[str, Any], where: str) -> dict[str, Task]:
    if not isinstance(tasks, Mapping) or not tasks:
        raise ValueError(f"{where}: tasks must be a non-empty dict name -> tk.models.Task(split=lambda seed: ...).")
    for name, task in tasks.items():
        if not isinstance(task, Task):
            raise ValueError(f"{where}: tasks[{name!r}] must be a tk.models.Task; got {type(task).__name__}.")
        if not callable(task.split):
            raise ValueError(f"{where}: tasks[{name!r}].split must be a callable seed -> split.")
        unknown = [m for m in (task.methods or []) if m not in methods]
        if unknown:
            raise ValueError(f"{where}: tasks[{name!r}] names unknown method(s) {unknown}; methods: {list(methods)}.")
    return dict(tasks)


def _score_perturbation_split(name: str, factory: Callable[[int], PerturbationModel], split: Any, seed: int,
                              task: Task, epochs: int | None, k_overlap: int) -> tuple["pd.DataFrame", PerturbationModel]:
    from tutorial_kit.models.evaluation import evaluate_perturbations

    model = factory(seed)
    if not isinstance(model, PerturbationModel) or model.seed != seed:
        raise ValueError(
            f"run_benchmark: the factory of {name!r} must return a PerturbationModel with the seed it is given, "
            f"e.g. lambda s: tk.models.MeanEffect(seed=s); got {model!r} for seed {seed}."
        )
    model.fit(split.train, perturbation_key=split.perturbation_key, control=_control_of(split), epochs=epochs,
              progress=False)
    table = evaluate_perturbations({name: model}, split, metrics=task.metrics, k_overlap=k_overlap)
    return table.drop(columns="n_perturbations"), model


def _run_one(name: str, factory: Callable[[int], PerturbationModel], split: Any, seed: int, task: Task, pca: Any,
             epochs: int | None, k_overlap: int) -> tuple["pd.DataFrame", PerturbationModel]:
    """One method x task x seed of :func:`run_benchmark`: fit, predict, score."""
    from tutorial_kit.models.evaluation import evaluate_holdout

    if isinstance(split, Holdout):
        result = evaluate_holdout({name: factory}, split, seeds=[seed], epochs=epochs, metrics=task.metrics,
                                  k_overlap=min(int(k_overlap), split.train.n_vars), progress=False, pca=pca)
        table = result.table[["model", "seed", "metric", "gene_set", "value", "fit_seconds", "epochs"]]
        return table, result.models[(name, seed)]
    table, model = _score_perturbation_split(name, factory, split, seed, task, epochs, k_overlap)
    return table.assign(fit_seconds=float(model.fit_seconds_), epochs=int(model.epochs_)), model


def run_benchmark(
    tasks: Mapping[str, Task],
    methods: Mapping[str, Callable[[int], PerturbationModel]],
    *,
    seeds: Sequence[int] = (0, 1, 2),
    epochs: int | None = None,
    k_overlap: int = 100,
    n_pca: int = 50,
    progress: bool = True,
) -> BenchmarkResult:
    """Run every method on every task with every seed; one tidy table of scores.

    For each task and seed, ``task.split(seed)`` builds the split (checked with
    :func:`~tutorial_kit.models.assert_disjoint` when it is a perturbation-level split); then
    each method is built with ``factory(seed)``, fitted on ``split.train`` and scored:
    held-out cell types with :func:`~tutorial_kit.models.evaluate_holdout` (in ONE PCA per
    split, fitted on real training cells, or ``task.pca``), perturbation-level splits with
    :func:`~tutorial_kit.models.evaluate_perturbations` on the test perturbations.
    A method that cannot make the prediction by design raises
    :class:`~tutorial_kit.models.NotApplicableError`: the run is recorded in ``runs`` as
    ``'not applicable'`` with the reason and the benchmark goes on. Any other error stops it.
    Taught in ``10_benchmarking``.

    Args:
        tasks: name -> :class:`Task` (the dict order is kept in the tables).
        methods: name -> factory ``callable(seed) -> PerturbationModel`` that passes the seed on.
        seeds: distinct integer seeds.
        epochs: training epochs of every trained model (default: each model's tier budget).
        k_overlap: top DE genes of ``deg_overlap_k`` (capped at the number of genes).
        n_pca: components of the shared PCA of held-out-cell-type tasks.
        progress: one progress bar over all runs.

    Returns:
        A :class:`BenchmarkResult` (``table``, ``runs``, ``seconds``).

    Raises:
        ValueError: ``tasks`` or ``methods`` is empty or malformed, a task names an unknown
            method, a split factory returns something that is not a split, or a factory ignores
            its seed.
    """
    import pandas as pd
    from tqdm import tqdm

    from tutorial_kit import metrics as tkm
    from tutorial_kit.models.evaluation import check_models, check_seeds
    from tutorial_kit.models.splits import PerturbationSplit, assert_disjoint

    where = "run_benchmark"
    methods = check_models(methods, where)
    seeds = check_seeds(seeds, where)
    tasks = _check_tasks(tasks, methods, where)
    plan = [(t, s, m) for t, task in tasks.items() for s in seeds for m in (task.methods or list(methods))]
    start = time.perf_counter()
    frames, runs = [], []
    split_cache: dict[tuple[str, int], tuple[Any, Any]] = {}
    bar = tqdm(plan, desc="benchmark", disable=not progress)
    for task_name, seed, name in bar:
        bar.set_postfix_str(f"{task_name} | {name} | seed {seed}", refresh=False)
        task = tasks[task_name]
        if (task_name, seed) not in split_cache:
            split = task.split(seed)
            pca = task.pca
            if isinstance(split, PerturbationSplit):
                if pca is not None:
                    raise ValueError(f"{where}: tasks[{task_name!r}] has a pca, but its split is a PerturbationSplit, "
                                     "which is scored without one (no edistance); leave Task.pca out.")
                assert_disjoint(split)
            elif isinstance(split, Holdout):
                if pca is None:
                    n_comps = max(1, min(int(n_pca), split.train.n_vars, split.train.n_obs - 1))
                    pca = tkm.fit_pca(split.train.X, n_comps=n_comps, seed=0)
            else:
                raise ValueError(
                    f"{where}: tasks[{task_name!r}].split({seed}) returned {type(split).__name__}; it must return a "
                    "tk.models.Holdout or tk.models.PerturbationSplit."
                )
            split_cache = {(task_name, seed): (split, pca)}  # one split in memory at a time
        split, pca = split_cache[(task_name, seed)]
        t0 = time.perf_counter()
        try:
            with warnings.catch_warnings():
                # no-change's pearson_delta is undefined (NaN, counted out by summarize_seeds): said once, in the docs
                warnings.filterwarnings("ignore", message=UNDEFINED_CORRELATION, category=RuntimeWarning)
                warnings.filterwarnings("ignore", message=NO_CHANGE_DEG, category=RuntimeWarning)
                table, model = _run_one(name, methods[name], split, seed, task, pca, epochs, k_overlap)
        except NotApplicableError as error:
            runs.append((task_name, name, seed, "not applicable", float("nan"), time.perf_counter() - t0, str(error)))
            continue
        table.insert(0, "task", task_name)
        frames.append(table)
        runs.append((task_name, name, seed, "scored", float(model.fit_seconds_), time.perf_counter() - t0, ""))
    if not frames:
        raise ValueError(f"{where}: no method applied to any task; see the reasons: "
                         f"{sorted({r[-1] for r in runs})[:3]}.")
    out = pd.concat(frames, ignore_index=True)[list(TABLE_COLUMNS)]
    out.attrs["tasks"] = {name: task.description for name, task in tasks.items()}
    runs_table = pd.DataFrame(runs, columns=list(RUN_COLUMNS))
    return BenchmarkResult(table=out, runs=runs_table, seconds=time.perf_counter() - start)


def rank_methods(table: "pd.DataFrame", *, metrics: Sequence[tuple[str, str]] | None = None) -> "pd.DataFrame":
    """Rank the methods per metric (1 = best), per seed when the table has seeds.

    Reads either the tidy table of :func:`run_benchmark` (column ``value``, ranks per seed) or
    the output of :func:`~tutorial_kit.models.summarize_seeds` (column ``mean``, ranks of the
    mean over seeds). Methods are ranked within each task, metric, gene set (and seed);
    lower values rank first for the metrics in :data:`tutorial_kit.metrics.LOWER_IS_BETTER`,
    higher values otherwise; ties share the average rank; an undefined value (NaN, e.g.
    ``pearson_delta`` of no-change) gets no rank (NaN) and does not push others down.
    Taught in ``10_benchmarking``.

    Args:
        table: a benchmark table or a summary, with ``model, metric, gene_set`` and ``value``
            or ``mean`` (and optionally ``task``, ``seed``).
        metrics: ``(metric, gene_set)`` pairs to keep (default: every pair in the table).

    Returns:
        DataFrame with the key columns (``task``, ``cell_type``, ``metric``, ``gene_set``, ``seed`` where present),
        ``model``, ``value`` and ``rank``, in the order of the input.

    Example:
        >>> import pandas as pd
        >>> t = pd.DataFrame({"model": ["a", "b", "c"], "metric": ["mse_top_de"] * 3,
        ...                   "gene_set": ["top20_de"] * 3, "mean": [0.3, 0.1, float("nan")]})
        >>> rank_methods(t)["rank"].tolist()
        [2.0, 1.0, nan]
    """
    from tutorial_kit.metrics import LOWER_IS_BETTER

    where = "rank_methods"
    columns = getattr(table, "columns", [])
    value = "value" if "value" in columns else "mean" if "mean" in columns else None
    missing = [c for c in ("model", "metric", "gene_set") if c not in columns]
    if value is None or missing:
        raise ValueError(
            f"{where}: the table needs columns model, metric, gene_set and value (a benchmark table) or mean "
            f"(a summary); missing {missing + ([] if value else ['value or mean'])}."
        )
    frame = table
    if metrics is not None:
        pairs = {(str(m), str(g)) for m, g in metrics}
        keep = [(m, g) in pairs for m, g in zip(frame["metric"], frame["gene_set"])]
        frame = frame[keep]
        found = set(zip(frame["metric"], frame["gene_set"]))
        if pairs - found:
            raise ValueError(f"{where}: (metric, gene_set) pair(s) {sorted(pairs - found)} are not in the table; "
                             f"it has {sorted(set(zip(table['metric'], table['gene_set'])))[:8]}.")
    if len(frame) == 0:
        raise ValueError(f"{where}: the table is empty; nothing to rank.")
    keys = [k for k in ("task", "cell_type", "metric", "gene_set", "seed") if k in frame.columns]
    out = frame[keys + ["model", value]].rename(columns={value: "value"}).copy()
    sign = np.where(out["metric"].isin(LOWER_IS_BETTER), 1.0, -1.0)
    out["rank"] = (out["value"] * sign).groupby([out[k] for k in keys], sort=False).rank(method="average")
    return out.reset_index(drop=True)


def best_methods(ranks: "pd.DataFrame") -> "pd.Series":
    """The method ranked first for every task, metric and gene set (and seed, for ranks per seed).

    Reads the output of :func:`rank_methods`. Methods tied for the best rank are all named,
    joined by ``' = '`` in the order of the table. A metric that no method has a rank for
    (every value NaN) has no best method and no row.
    Taught in ``10_benchmarking`` (does the best method depend on the metric, or on the seed?).

    Args:
        ranks: columns ``model`` and ``rank`` and the key columns of :func:`rank_methods`.

    Returns:
        A Series named ``model``, indexed by ``task``, ``cell_type``, ``metric``, ``gene_set`` and
        ``seed`` (those present), in the order in which the keys first appear.

    Example:
        >>> import pandas as pd
        >>> t = pd.DataFrame({"model": ["a", "b", "c"] * 2, "metric": ["mse_top_de"] * 3 + ["pearson_delta"] * 3,
        ...                   "gene_set": ["top20_de"] * 3 + ["all"] * 3, "mean": [0.3, 0.1, 0.1, 0.2, 0.5, 0.1]})
        >>> best_methods(rank_methods(t)).to_dict()
        {('mse_top_de', 'top20_de'): 'b = c', ('pearson_delta', 'all'): 'b'}
    """
    where = "best_methods"
    missing = [c for c in ("model", "rank") if c not in getattr(ranks, "columns", [])]
    if missing:
        raise ValueError(f"{where}: ranks is missing column(s) {missing}; pass tk.models.rank_methods(table).")
    keys = [k for k in ("task", "cell_type", "metric", "gene_set", "seed") if k in ranks.columns]
    if not keys:
        raise ValueError(f"{where}: ranks has none of the key columns task, metric, gene_set, seed; "
                         "pass tk.models.rank_methods(table).")
    if len(ranks) == 0:
        raise ValueError(f"{where}: ranks is empty.")
    best = ranks[ranks["rank"] == ranks.groupby(keys, sort=False)["rank"].transform("min")]
    return best.groupby(keys, sort=False)["model"].agg(" = ".join)


class TuneResult(NamedTuple):
    """Result of :func:`tune`.

    Attributes:
        best_params: the hyperparameters of the best trial (names as suggested in ``make_model``).
        best_value: its validation score.
        trials: one row per trial: ``number, value, state, seconds`` and one ``param_*`` column each.
        seconds: wall time of the whole search.
        metric: the metric and gene set optimized, e.g. ``'pearson_delta (all)'``.
        direction: ``'maximize'`` or ``'minimize'``.
        study: the ``optuna.Study`` (for Optuna's own plots).
    """

    best_params: dict[str, Any]
    best_value: float
    trials: "pd.DataFrame"
    seconds: float
    metric: str
    direction: str
    study: Any


def _import_optuna() -> Any:
    import warnings

    try:
        with warnings.catch_warnings():
            # optuna imports tqdm.auto, which warns in Jupyter when ipywidgets is absent; our bars are plain tqdm
            warnings.filterwarnings("ignore", message="IProgress not found")
            import optuna
    except ImportError as err:
        raise ImportError(OPTUNA_HINT) from err
    return optuna


def _validation_score(model: PerturbationModel, data: Any, metric: str, gene_set: str) -> float:
    """The model's score on the validation part of ``data`` (a TuningData or a validation Holdout)."""
    import warnings

    from tutorial_kit import metrics as tkm
    from tutorial_kit.models.evaluation import evaluate_perturbations

    if isinstance(data, Holdout):
        pred = model.predict(data.ctrl, data.perturbation)
        n = int(data.true.n_vars)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an undefined score is NaN: the trial fails, visibly
            table = tkm.evaluate(pred, data.true, data.ctrl, perturbation_key=data.perturbation_key, metrics=[metric],
                                 n_top_de=min(20, n), k_overlap=min(100, n), k_top_expressed=min(1000, n))
    else:
        table = evaluate_perturbations({"trial": model}, data, metrics=[metric])
    row = table[table["gene_set"] == gene_set]
    if row.empty:
        raise ValueError(f"tune: {metric} has no gene set {gene_set!r} here; it has {sorted(set(table['gene_set']))}.")
    return float(row["value"].iloc[0])


def tune(
    make_model: Callable[[Any, int], PerturbationModel],
    data: Any,
    *,
    metric: str = "pearson_delta",
    gene_set: str = "all",
    n_trials: int = 20,
    timeout: float | None = None,
    seed: int = 0,
    epochs: int | None = None,
    progress: bool = True,
) -> TuneResult:
    """Search hyperparameters with Optuna on validation data only: never the test split.

    ``data`` is what a tuner may read, and nothing else: the :func:`~tutorial_kit.models.tuning_data`
    of a perturbation-level split (train, val, ctrl; no test cells) or the
    :func:`~tutorial_kit.models.validation_holdout` of a held-out-cell-type split (built from
    training cells only). Each trial builds ``make_model(trial, seed)`` (which calls
    ``trial.suggest_*``), fits it on ``data.train`` and scores ``metric`` on the validation
    part. Optuna's TPE sampler is seeded with ``seed``, so the same call gives the same trials.
    Report the number of trials and :attr:`TuneResult.seconds` beside the tuned result.
    Taught in ``10_benchmarking``.

    Args:
        make_model: ``callable(trial, seed) -> PerturbationModel``, e.g.
            ``lambda trial, s: tk.models.LinearModel(ridge=trial.suggest_float("ridge", 1e-3, 10, log=True), seed=s)``.
        data: a ``TuningData`` (from ``tuning_data``) or a ``ValidationHoldout`` (from
            ``validation_holdout``); a ``PerturbationSplit`` or a plain (test) ``Holdout`` is refused.
        metric: a name from :data:`tutorial_kit.metrics.METRICS`; minimized if it is in
            :data:`tutorial_kit.metrics.LOWER_IS_BETTER`, maximized otherwise.
        gene_set: the gene set of ``metric`` to optimize (e.g. ``'all'``, ``'top20_de'``).
        n_trials: number of trials.
        timeout: stop after this many seconds (Optuna finishes the running trial).
        seed: seed of the sampler and of every model.
        epochs: training epochs of each trial's model (default: the model's tier budget).
        progress: a progress bar over trials.

    Returns:
        A :class:`TuneResult`.

    Raises:
        ImportError: optuna is not installed (with the install hint).
        ValueError: ``data`` is a test split or not tuning data, ``metric`` is unknown,
            ``make_model`` does not return a model with the seed, or every trial failed.

    Example:
        >>> import numpy as np, anndata as ad, pandas as pd
        >>> from tutorial_kit.models import MeanEffect, perturbation_split, tuning_data
        >>> labels = ["control"] * 40 + [p for p in "ABCDEFGH" for _ in range(5)]
        >>> obs = pd.DataFrame({"perturbation": labels, "cell_type": "K562"}, index=[f"c{i}" for i in range(80)])
        >>> X = np.random.default_rng(0).normal(size=(80, 6)).astype(np.float32)
        >>> split = perturbation_split(ad.AnnData(X, obs=obs), kind="unseen_single", seed=0)
        >>> result = tune(lambda trial, s: MeanEffect(seed=s), tuning_data(split), metric="l2_top_expressed",
        ...               gene_set="top6_expressed", n_trials=2, progress=False)
        >>> result.direction, len(result.trials)
        ('minimize', 2)
    """
    import pandas as pd
    from tqdm import tqdm

    from tutorial_kit.metrics import LOWER_IS_BETTER, METRICS
    from tutorial_kit.models.splits import PerturbationSplit, TuningData

    where = "tune"
    if isinstance(data, PerturbationSplit):
        raise ValueError(
            f"{where}: got a whole PerturbationSplit, which holds the test cells; pass tk.models.tuning_data(split) "
            "so the search can read only train, val and ctrl."
        )
    if isinstance(data, Holdout) and not isinstance(data, ValidationHoldout):
        raise ValueError(
            f"{where}: got a Holdout whose held-out cell type ({data.cell_type!r}) is the test set; build "
            "validation data from its training cells with tk.models.validation_holdout(split, cell_type=...) "
            "and pass that."
        )
    if not isinstance(data, (TuningData, ValidationHoldout)):
        raise ValueError(
            f"{where}: data must be tk.models.tuning_data(split) or tk.models.validation_holdout(split, cell_type=...); "
            f"got {type(data).__name__}."
        )
    if metric not in METRICS:
        raise ValueError(f"{where}: unknown metric {metric!r}; known: {list(METRICS)}.")
    if int(n_trials) < 1:
        raise ValueError(f"{where}: n_trials must be at least 1, got {n_trials}.")
    optuna = _import_optuna()
    direction = "minimize" if metric in LOWER_IS_BETTER else "maximize"
    control = sorted(set(data.ctrl.obs[data.perturbation_key].astype(str)))[0]
    fit_keys: dict[str, Any] = {"perturbation_key": data.perturbation_key, "control": control}
    if isinstance(data, Holdout):
        fit_keys["cell_type_key"] = data.cell_type_key

    def objective(trial: Any) -> float:
        model = make_model(trial, seed)
        if not isinstance(model, PerturbationModel) or model.seed != int(seed):
            raise ValueError(f"{where}: make_model must return a PerturbationModel built with the seed it is given, "
                             f"e.g. lambda trial, s: tk.models.LinearModel(seed=s, ...); got {model!r}.")
        model.fit(data.train, epochs=epochs, progress=False, **fit_keys)
        return _validation_score(model, data, metric, gene_set)

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=int(seed)))
        with tqdm(total=int(n_trials), desc=f"tuning ({metric})", disable=not progress) as bar:
            start = time.perf_counter()
            study.optimize(objective, n_trials=int(n_trials), timeout=timeout,
                           callbacks=[lambda study, trial: bar.update()])
            seconds = time.perf_counter() - start
    finally:
        optuna.logging.set_verbosity(verbosity)
    rows = []
    for t in study.trials:
        took = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete else float("nan")
        rows.append({"number": t.number, "value": t.value, "state": t.state.name, "seconds": took,
                     **{f"param_{k}": v for k, v in t.params.items()}})
    trials = pd.DataFrame(rows)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not complete:
        raise ValueError(f"{where}: every trial failed (e.g. {metric} undefined for every model); "
                         f"states: {trials['state'].tolist()}.")
    return TuneResult(best_params=dict(study.best_params), best_value=float(study.best_value), trials=trials,
                      seconds=seconds, metric=f"{metric} ({gene_set})", direction=direction, study=study)
