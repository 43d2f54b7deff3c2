"""Tests of tutorial_kit.models.benchmark: run_benchmark, rank_methods, tune (and that tuning never sees test cells)."""

from __future__ import annotations

import sys
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import tutorial_kit as tk
import tutorial_kit.metrics as tkm
from tutorial_kit.metrics import LOWER_IS_BETTER
from tutorial_kit.models import (
    Additive,
    Holdout,
    ValidationHoldout,
    LinearModel,
    MeanEffect,
    MeanShift,
    NoChange,
    NotApplicableError,
    PerturbationSplit,
    assert_disjoint,
    evaluate_holdout,
    evaluate_perturbations,
    holdout,
    perturbation_split,
    tuning_data,
    validation_holdout,
)
from tutorial_kit.models.benchmark import (
    OPTUNA_HINT,
    RUN_COLUMNS,
    TABLE_COLUMNS,
    BenchmarkResult,
    Task,
    TuneResult,
    rank_methods,
    run_benchmark,
    tune,
)
from tutorial_kit.models.evaluation import UNDEFINED_CORRELATION

METHODS = {
    "no-change": lambda s: NoChange(seed=s),
    "mean-shift": lambda s: MeanShift(seed=s),
    "mean": lambda s: MeanEffect(seed=s),
    "additive": lambda s: Additive(seed=s),
    "linear": lambda s: LinearModel(n_components=3, seed=s),
}
HOLDOUT_METHODS = ["no-change", "mean-shift"]  # the pseudobulk models fit one cell type only
SEEDS = (0, 1)
SINGLES = list("ABCDEFGH")
DOUBLES = ["A+B", "C+D", "E+F", "G+H", "A+C", "B+D"]


def _screen(seed: int = 0, n_control: int = 40, n_per: int = 5) -> ad.AnnData:
    """One cell line: control, singles A..H and doubles; genes A..H (the targets) and g0..g5."""
    rng = np.random.default_rng(seed)
    genes = SINGLES + [f"g{i}" for i in range(6)]
    labels = ["control"] * n_control + [p for p in SINGLES + DOUBLES for _ in range(n_per)]
    X = rng.normal(1.0, 0.3, size=(len(labels), len(genes)))
    program = rng.normal(0.0, 0.5, size=len(genes))
    for i, label in enumerate(labels):
        if label != "control":
            X[i] += program
            for gene in label.split("+"):
                X[i, genes.index(gene)] += 2.0
    obs = pd.DataFrame({"perturbation": labels, "cell_type": "K562"}, index=[f"s{i}" for i in range(len(labels))])
    return ad.AnnData(X.astype(np.float32), obs=obs, var=pd.DataFrame(index=genes))


@pytest.fixture(scope="module")
def screen():
    return _screen()


@pytest.fixture(scope="module")
def ho_split(cells):
    return holdout(cells, cell_type="B", perturbation="IFN")


def _tasks(screen, ho_split, **holdout_kw):
    return {
        "B held out": Task(split=lambda s: ho_split, methods=HOLDOUT_METHODS, description="IFN on B cells",
                           **holdout_kw),
        "unseen singles": Task(split=lambda s: perturbation_split(screen, kind="unseen_single", seed=s),
                               description="unseen single perturbations"),
    }


@pytest.fixture(scope="module")
def bench(screen, ho_split):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_benchmark(_tasks(screen, ho_split), METHODS, seeds=SEEDS, progress=False)
    return result, caught


# --------------------------------------------------------------------------- run_benchmark: the tables


def test_table_columns_order_and_one_row_set_per_run(bench):
    result, _ = bench
    assert isinstance(result, BenchmarkResult)
    table = result.table
    assert list(table.columns) == list(TABLE_COLUMNS) == [
        "task", "model", "seed", "metric", "gene_set", "value", "fit_seconds", "epochs"]
    # dict order of tasks, then seeds, then methods
    assert list(pd.unique(table["task"])) == ["B held out", "unseen singles"]
    runs = list(dict.fromkeys(zip(table["task"], table["seed"], table["model"])))
    assert runs == ([("B held out", s, m) for s in SEEDS for m in HOLDOUT_METHODS]
                    + [("unseen singles", s, m) for s in SEEDS for m in ("no-change", "mean", "linear")])
    assert not table.duplicated(["task", "model", "seed", "metric", "gene_set"]).any()
    for task, rows in table.groupby("task", sort=False):
        pair_sets = {key: frozenset(zip(g["metric"], g["gene_set"])) for key, g in rows.groupby(["model", "seed"])}
        assert len(set(pair_sets.values())) == 1, task  # every run of a task scores the same metrics
    # default metrics: all of them (discrimination_rank only where several perturbations are held out)
    assert set(table.loc[table.task == "unseen singles", "metric"]) == set(tkm.METRICS)
    assert set(table.loc[table.task == "B held out", "metric"]) == set(tkm.METRICS) - {"discrimination_rank"}
    assert (table["epochs"] == 0).all() and (table["fit_seconds"] >= 0).all()
    assert table.attrs["tasks"] == {"B held out": "IFN on B cells", "unseen singles": "unseen single perturbations"}
    assert result.seconds >= 0


def test_runs_record_not_applicable_with_the_models_reason(bench, screen):
    result, _ = bench
    runs = result.runs
    assert list(runs.columns) == list(RUN_COLUMNS)
    assert len(runs) == len(SEEDS) * (len(HOLDOUT_METHODS) + len(METHODS))  # one row per task x method x seed
    assert not runs.duplicated(["task", "model", "seed"]).any()
    na = runs[runs.status == "not applicable"]
    assert set(zip(na.task, na.model)) == {("unseen singles", "additive"), ("unseen singles", "mean-shift")}
    assert na["fit_seconds"].isna().all()
    scored = runs[runs.status == "scored"]
    assert (scored["reason"] == "").all() and (scored["fit_seconds"] >= 0).all()
    assert (runs["seconds"] >= 0).all()
    # not-applicable runs leave no row in the table
    keys = set(zip(result.table.task, result.table.model))
    assert not keys & set(zip(na.task, na.model))
    # the reason is the model's own message for the first held-out perturbation
    for seed in SEEDS:
        split = perturbation_split(screen, kind="unseen_single", seed=seed)
        for name in ("additive", "mean-shift"):
            model = METHODS[name](seed).fit(split.train, progress=False)
            with pytest.raises(NotApplicableError) as err:
                model.predict(split.ctrl, split.test_perturbations[0])
            row = na[(na.model == name) & (na.seed == seed)]
            assert row["reason"].tolist() == [str(err.value)]
    assert "not seen in training" in na.loc[na.model == "additive", "reason"].iloc[0]


def test_holdout_values_equal_evaluate_holdout(bench, ho_split):
    result, _ = bench
    got = result.table[result.table.task == "B held out"]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=UNDEFINED_CORRELATION, category=RuntimeWarning)
        for seed in SEEDS:
            ref = evaluate_holdout({m: METHODS[m] for m in HOLDOUT_METHODS}, ho_split, seeds=[seed],
                                   k_overlap=ho_split.train.n_vars, progress=False).table
            mine = got[got.seed == seed]
            cols = ["model", "seed", "metric", "gene_set", "value", "epochs"]
            pd.testing.assert_frame_equal(mine[cols].reset_index(drop=True), ref[cols].reset_index(drop=True))


def test_perturbation_split_values_equal_evaluate_perturbations(bench, screen):
    result, _ = bench
    got = result.table[result.table.task == "unseen singles"]
    for seed in SEEDS:
        split = perturbation_split(screen, kind="unseen_single", seed=seed)
        fitted = {m: METHODS[m](seed).fit(split.train, control="control", progress=False)
                  for m in ("no-change", "mean", "linear")}
        ref = evaluate_perturbations(fitted, split)
        mine = got[got.seed == seed]
        cols = ["model", "seed", "metric", "gene_set", "value"]
        pd.testing.assert_frame_equal(mine[cols].reset_index(drop=True), ref[cols].reset_index(drop=True))
    # no-change's pearson_delta is undefined: NaN in the table
    nc = got[(got.model == "no-change") & (got.metric == "pearson_delta")]
    assert len(nc) and nc["value"].isna().all()


def test_no_undefined_correlation_warning_escapes(bench):
    _, caught = bench
    assert not [w for w in caught if "correlation is undefined" in str(w.message)]


def test_same_seeds_give_the_same_table(screen, ho_split):
    def run():
        tasks = {"B held out": _tasks(screen, ho_split)["B held out"],
                 "unseen singles": Task(split=lambda s: perturbation_split(screen, kind="unseen_single", seed=s),
                                        methods=["mean", "linear"],
                                        metrics=["pearson_delta", "edistance", "l2_top_expressed"])}
        return run_benchmark(tasks, METHODS, seeds=(3, 4), progress=False)

    a, b = run(), run()
    cols = [c for c in TABLE_COLUMNS if c != "fit_seconds"]
    pd.testing.assert_frame_equal(a.table[cols], b.table[cols])
    pd.testing.assert_frame_equal(a.runs[["task", "model", "seed", "status", "reason"]],
                                  b.runs[["task", "model", "seed", "status", "reason"]])
    # a perturbation-level task draws another split per seed
    pert = a.table[(a.table.task == "unseen singles") & (a.table.metric == "l2_top_expressed")]
    assert pert[pert.seed == 3]["value"].tolist() != pert[pert.seed == 4]["value"].tolist()


def test_task_pca_is_used(cells, ho_split):
    pca = tkm.fit_pca(cells.X, n_comps=3, seed=0)  # another PCA than the default one on split.train
    tasks = {"B": Task(split=lambda s: ho_split, methods=["mean-shift"], metrics=["edistance"], pca=pca)}
    result = run_benchmark(tasks, METHODS, seeds=(0,), progress=False)
    row = result.table
    assert row["gene_set"].tolist() == ["pca3"]
    model = MeanShift(seed=0).fit(ho_split.train, progress=False)
    pred = model.predict(ho_split.ctrl, "IFN")
    assert row["value"].iloc[0] == pytest.approx(tkm.edistance(pred.X, ho_split.true.X, pca=pca), rel=1e-10)
    ref = evaluate_holdout({"mean-shift": METHODS["mean-shift"]}, ho_split, seeds=[0], metrics=["edistance"],
                           k_overlap=5, pca=pca, progress=False)
    assert row["value"].iloc[0] == ref.table["value"].iloc[0]
    # without task.pca: one PCA per split, fitted on its training cells, n_pca components at most
    default = run_benchmark({"B": tasks["B"]._replace(pca=None)}, METHODS, seeds=(0,), n_pca=4, progress=False)
    own = tkm.fit_pca(ho_split.train.X, n_comps=4, seed=0)
    assert default.table["gene_set"].tolist() == ["pca4"]
    assert default.table["value"].iloc[0] == pytest.approx(tkm.edistance(pred.X, ho_split.true.X, pca=own), rel=1e-10)


def test_split_factory_is_called_once_per_task_and_seed(screen):
    calls = []

    def factory(seed):
        calls.append(seed)
        return perturbation_split(screen, kind="double_seen2", seed=seed)

    result = run_benchmark({"doubles": Task(split=factory, metrics=["l2_top_expressed"])}, METHODS, seeds=(0, 1),
                           progress=False)
    assert calls == [0, 1]
    # on doubles of seen singles the additive model applies; mean-shift does not (unseen labels)
    status = dict(zip(result.runs.model + "/" + result.runs.seed.astype(str), result.runs.status))
    assert status["additive/0"] == status["additive/1"] == "scored"
    assert status["mean-shift/0"] == "not applicable"


def test_linear_model_without_measured_targets_is_not_applicable(screen):
    no_targets = screen[:, [g for g in screen.var_names if g.startswith("g")]].copy()
    tasks = {"t": Task(split=lambda s: perturbation_split(no_targets, kind="unseen_single", seed=s),
                       methods=["mean", "linear"], metrics=["l2_top_expressed"])}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_benchmark(tasks, METHODS, seeds=(0,), progress=False)
    # the model refuses before warning about the perturbations it would drop: one message, not two
    assert not [w for w in caught if "not among the" in str(w.message)]
    runs = result.runs.set_index("model")
    assert runs.loc["linear", "status"] == "not applicable"
    assert "at least 2 training perturbations" in runs.loc["linear", "reason"]
    assert set(result.table.model) == {"mean"}


def test_progress_bar(ho_split, capsys):
    run_benchmark({"B": Task(split=lambda s: ho_split, methods=["no-change"], metrics=["edistance"])}, METHODS,
                  seeds=(0,), progress=True)
    assert "benchmark" in capsys.readouterr().err


# --------------------------------------------------------------------------- run_benchmark: errors


def test_other_errors_propagate(ho_split):
    # the pseudobulk models refuse several cell types: a plain ValueError, not "not applicable"
    with pytest.raises(ValueError, match="cell types") as err:
        run_benchmark({"B": Task(split=lambda s: ho_split, methods=["mean"])}, METHODS, seeds=(0,), progress=False)
    assert not isinstance(err.value, NotApplicableError)

    class Boom(NoChange):
        def _predict(self, ctrl, perturbation):
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_benchmark({"B": Task(split=lambda s: ho_split)}, {"boom": lambda s: Boom(seed=s)}, seeds=(0,),
                      progress=False)


@pytest.mark.parametrize("kind", ["holdout", "perturbation"])
def test_factory_that_ignores_its_seed_is_refused(kind, screen, ho_split):
    split = (lambda s: ho_split) if kind == "holdout" else (
        lambda s: perturbation_split(screen, kind="unseen_single", seed=s))
    with pytest.raises(ValueError, match="seed"):
        run_benchmark({"t": Task(split=split)}, {"no-change": lambda s: NoChange(seed=0)}, seeds=(0, 1),
                      progress=False)
    with pytest.raises(ValueError, match="PerturbationModel"):
        run_benchmark({"t": Task(split=split)}, {"odd": lambda s: "not a model"}, seeds=(0,), progress=False)


def test_bad_tasks_methods_and_splits(screen, ho_split):
    good = {"B": Task(split=lambda s: ho_split)}
    with pytest.raises(ValueError, match=r"unknown method\(s\) \['scgen'\]"):
        run_benchmark({"B": Task(split=lambda s: ho_split, methods=["no-change", "scgen"])}, METHODS,
                      progress=False)
    with pytest.raises(ValueError, match="returned dict.*Holdout or tk.models.PerturbationSplit"):
        run_benchmark({"B": Task(split=lambda s: {"train": ho_split.train})}, METHODS, seeds=(0,), progress=False)
    with pytest.raises(ValueError, match="non-empty dict"):
        run_benchmark({}, METHODS, progress=False)
    with pytest.raises(ValueError, match="must be a tk.models.Task"):
        run_benchmark({"B": lambda s: ho_split}, METHODS, progress=False)
    with pytest.raises(ValueError, match="must be a callable"):
        run_benchmark({"B": Task(split=ho_split)}, METHODS, progress=False)
    with pytest.raises(ValueError, match="models must be a non-empty dict"):
        run_benchmark(good, {}, progress=False)
    with pytest.raises(ValueError, match="distinct"):
        run_benchmark(good, METHODS, seeds=(0, 0), progress=False)
    # a split that breaks its promises is caught before any model is fitted
    split = perturbation_split(screen, kind="unseen_single", seed=0)
    broken = split._replace(val_perturbations=split.test_perturbations)
    with pytest.raises(AssertionError, match="assert_disjoint"):
        run_benchmark({"t": Task(split=lambda s: broken)}, METHODS, seeds=(0,), progress=False)


def test_nothing_applicable_is_an_error(screen):
    tasks = {"t": Task(split=lambda s: perturbation_split(screen, kind="unseen_single", seed=s),
                       methods=["additive"])}
    with pytest.raises(ValueError, match="no method applied to any task.*not seen in training"):
        run_benchmark(tasks, METHODS, seeds=(0,), progress=False)


# --------------------------------------------------------------------------- rank_methods


def _table(values, metric="mse_top_de", gene_set="top20_de", models=("a", "b", "c"), seed=None, column="value"):
    t = pd.DataFrame({"model": list(models), "metric": metric, "gene_set": gene_set, column: values})
    if seed is not None:
        t.insert(0, "seed", seed)
    return t


def test_rank_direction_lower_vs_higher_is_better():
    assert "mse_top_de" in LOWER_IS_BETTER and "pearson_delta" not in LOWER_IS_BETTER
    low = rank_methods(_table([0.3, 0.1, 0.2], metric="mse_top_de"))
    assert low["rank"].tolist() == [3.0, 1.0, 2.0]
    high = rank_methods(_table([0.3, 0.1, 0.2], metric="pearson_delta", gene_set="all"))
    assert high["rank"].tolist() == [1.0, 3.0, 2.0]
    for metric in tkm.METRICS:  # every metric follows LOWER_IS_BETTER
        r = rank_methods(_table([1.0, 2.0, 3.0], metric=metric))["rank"].tolist()
        assert r == ([1.0, 2.0, 3.0] if metric in LOWER_IS_BETTER else [3.0, 2.0, 1.0]), metric


def test_rank_ties_average_and_nan_gets_no_rank():
    assert rank_methods(_table([0.5, 0.5, 0.9]))["rank"].tolist() == [1.5, 1.5, 3.0]
    ranks = rank_methods(_table([np.nan, 0.4, 0.2], metric="pearson_delta", gene_set="all"))["rank"]
    assert np.isnan(ranks.iloc[0]) and ranks.iloc[1:].tolist() == [1.0, 2.0]  # the others are not pushed down
    ranks = rank_methods(_table([np.nan, 0.4, 0.2]))["rank"]
    assert np.isnan(ranks.iloc[0]) and ranks.iloc[1:].tolist() == [2.0, 1.0]


def test_rank_per_seed_and_per_task_vs_summary():
    per_seed = pd.concat([_table([0.1, 0.2, 0.3], seed=0), _table([0.3, 0.2, 0.1], seed=1)], ignore_index=True)
    ranks = rank_methods(per_seed)
    assert list(ranks.columns) == ["metric", "gene_set", "seed", "model", "value", "rank"]
    assert ranks["rank"].tolist() == [1.0, 2.0, 3.0, 3.0, 2.0, 1.0]  # each seed ranked apart
    summary = _table([0.2, 0.25, 0.2], column="mean")
    summary["sd"] = 0.1  # other columns of a summary are ignored
    ranks = rank_methods(summary)
    assert list(ranks.columns) == ["metric", "gene_set", "model", "value", "rank"]
    assert ranks["rank"].tolist() == [1.5, 3.0, 1.5]
    two_tasks = pd.concat([_table([0.1, 0.2, 0.3]).assign(task="t1"), _table([0.3, 0.2, 0.1]).assign(task="t2")],
                          ignore_index=True)
    ranks = rank_methods(two_tasks)
    assert ranks.columns[0] == "task" and ranks["rank"].tolist() == [1.0, 2.0, 3.0, 3.0, 2.0, 1.0]


def test_rank_keeps_cell_types_apart():
    """summarize_seeds keeps cell types apart (evaluate_cell_types); ranks must be within each cell type too."""
    summary = pd.DataFrame({"cell_type": ["A", "A", "B", "B"], "model": ["m1", "m2", "m1", "m2"],
                            "metric": "mse_top_de", "gene_set": "top20_de", "mean": [0.1, 0.2, 0.5, 0.6]})
    ranks = rank_methods(summary)
    assert ranks["rank"].tolist() == [1.0, 2.0, 1.0, 2.0]
    assert ranks["cell_type"].tolist() == ["A", "A", "B", "B"]


def test_rank_metrics_filter_and_errors():
    both = pd.concat([_table([0.1, 0.2, 0.3]), _table([0.1, 0.2, 0.3], metric="pearson_delta", gene_set="all")],
                     ignore_index=True)
    kept = rank_methods(both, metrics=[("pearson_delta", "all")])
    assert set(kept["metric"]) == {"pearson_delta"} and kept["rank"].tolist() == [3.0, 2.0, 1.0]
    assert len(rank_methods(both)) == 6
    with pytest.raises(ValueError, match=r"\('pearson_delta', 'top20_de'\).*not in the table"):
        rank_methods(both, metrics=[("pearson_delta", "top20_de")])
    with pytest.raises(ValueError, match="missing.*value or mean"):
        rank_methods(both.drop(columns="value"))
    with pytest.raises(ValueError, match=r"missing \['gene_set'\]"):
        rank_methods(both.drop(columns="gene_set"))
    with pytest.raises(ValueError, match="empty"):
        rank_methods(both.iloc[:0])
    with pytest.raises(ValueError, match="missing"):
        rank_methods([1, 2, 3])


def test_rank_methods_reads_a_benchmark_table(bench):
    result, _ = bench
    ranks = rank_methods(result.table, metrics=[("l2_top_expressed", "top14_expressed")])
    assert set(ranks["task"]) == {"unseen singles"}
    for seed, group in ranks.groupby("seed"):
        assert sorted(group["rank"]) == [1.0, 2.0, 3.0]
        best = group.loc[group["value"].idxmin(), "model"]
        assert group.set_index("model").loc[best, "rank"] == 1.0
    summary = tk.models.summarize_seeds(result.table)
    by_mean = rank_methods(summary)
    assert "seed" not in by_mean.columns and {"task", "rank"} <= set(by_mean.columns)


def _winners_of_notebook_10(ranks):
    """The local helper notebook 10 used before tk.models.best_methods (kept here as the reference)."""
    best = ranks[ranks["rank"] == ranks.groupby([c for c in ("task", "metric", "gene_set", "seed") if c in ranks],
                                                 sort=False)["rank"].transform("min")]
    keys = [c for c in ("task", "metric", "gene_set", "seed") if c in best]
    return best.groupby(keys, sort=False)["model"].agg(" = ".join)


def test_best_methods_names_the_first_ranked_and_ties():
    tables = [_table([0.3, 0.1, 0.1]).assign(task="t1"),  # lower is better: b and c tie
              _table([0.3, 0.1, 0.2], metric="pearson_delta", gene_set="all").assign(task="t1"),
              _table([np.nan, np.nan, np.nan], metric="edistance", gene_set="pca5").assign(task="t1"),  # no rank
              _table([0.5, 0.4, 0.6]).assign(task="t2")]
    ranks = rank_methods(pd.concat(tables, ignore_index=True))
    best = tk.models.best_methods(ranks)
    assert best.name == "model" and best.index.names == ["task", "metric", "gene_set"]
    assert best.to_dict() == {("t1", "mse_top_de", "top20_de"): "b = c", ("t1", "pearson_delta", "all"): "a",
                              ("t2", "mse_top_de", "top20_de"): "b"}
    pd.testing.assert_series_equal(best, _winners_of_notebook_10(ranks))
    per_seed = rank_methods(pd.concat([_table([0.1, 0.2, 0.3], seed=0), _table([0.3, 0.2, 0.1], seed=1)]))
    assert tk.models.best_methods(per_seed).to_dict() == {("mse_top_de", "top20_de", 0): "a",
                                                          ("mse_top_de", "top20_de", 1): "c"}
    cells = rank_methods(pd.DataFrame({"cell_type": ["A", "A", "B", "B"], "model": ["m1", "m2", "m1", "m2"],
                                       "metric": "mse_top_de", "gene_set": "top20_de", "mean": [0.1, 0.2, 0.6, 0.5]}))
    assert tk.models.best_methods(cells).tolist() == ["m1", "m2"]  # one best per cell type


def test_best_methods_reads_a_benchmark_and_refuses_other_tables(bench):
    result, _ = bench
    ranks = rank_methods(result.table)
    pd.testing.assert_series_equal(tk.models.best_methods(ranks), _winners_of_notebook_10(ranks))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['rank'\]"):
        tk.models.best_methods(result.table)
    with pytest.raises(ValueError, match="none of the key columns"):
        tk.models.best_methods(pd.DataFrame({"model": ["a"], "rank": [1.0]}))
    with pytest.raises(ValueError, match="empty"):
        tk.models.best_methods(ranks.iloc[:0])


# --------------------------------------------------------------------------- tune


def _linear(trial, seed):
    return LinearModel(ridge=trial.suggest_float("ridge", 1e-3, 10.0, log=True),
                       n_components=trial.suggest_int("k", 1, 3), seed=seed)


@pytest.fixture(scope="module")
def tdata(screen):
    return tuning_data(perturbation_split(screen, kind="unseen_single", seed=0))


def test_tune_is_seeded_and_reports_its_trials(tdata):
    a = tune(_linear, tdata, metric="l2_top_expressed", gene_set="top14_expressed", n_trials=4, seed=5,
             progress=False)
    b = tune(_linear, tdata, metric="l2_top_expressed", gene_set="top14_expressed", n_trials=4, seed=5,
             progress=False)
    assert isinstance(a, TuneResult)
    assert list(a.trials.columns) == ["number", "value", "state", "seconds", "param_ridge", "param_k"]
    assert a.trials["number"].tolist() == [0, 1, 2, 3] and (a.trials["state"] == "COMPLETE").all()
    assert (a.trials["seconds"] >= 0).all() and a.seconds >= 0
    cols = ["number", "value", "state", "param_ridge", "param_k"]
    pd.testing.assert_frame_equal(a.trials[cols], b.trials[cols])
    assert a.best_params == b.best_params and a.best_value == b.best_value
    assert a.direction == "minimize" and a.metric == "l2_top_expressed (top14_expressed)"
    assert a.best_value == a.trials["value"].min()
    assert a.best_params == {"ridge": a.trials.loc[a.trials["value"].idxmin(), "param_ridge"],
                             "k": a.trials.loc[a.trials["value"].idxmin(), "param_k"]}
    assert len(a.study.trials) == 4
    # each trial's value is the validation score of that model, recomputed here
    row = a.trials.iloc[2]
    model = LinearModel(ridge=row["param_ridge"], n_components=int(row["param_k"]), seed=5)
    model.fit(tdata.train, progress=False)
    ref = evaluate_perturbations({"m": model}, tdata, metrics=["l2_top_expressed"])
    assert row["value"] == pytest.approx(ref["value"].iloc[0], rel=1e-12)
    other = tune(_linear, tdata, metric="l2_top_expressed", gene_set="top14_expressed", n_trials=4, seed=6,
                 progress=False)
    assert other.trials["param_ridge"].tolist() != a.trials["param_ridge"].tolist()


@pytest.mark.parametrize("metric, gene_set", [("l2_top_expressed", "top14_expressed"), ("mse_top_de", "top14_de"),
                                              ("pearson_delta", "all"), ("r2_mean_cod", "all")])
def test_tune_direction_follows_lower_is_better(tdata, metric, gene_set):
    result = tune(_linear, tdata, metric=metric, gene_set=gene_set, n_trials=3, progress=False)
    lower = metric in LOWER_IS_BETTER
    assert result.direction == ("minimize" if lower else "maximize")
    values = result.trials["value"]
    assert result.best_value == (values.min() if lower else values.max())


def test_tune_progress_bar_and_optuna_verbosity_restored(tdata, capsys):
    import optuna

    before = optuna.logging.get_verbosity()
    tune(_linear, tdata, metric="l2_top_expressed", gene_set="top14_expressed", n_trials=1, progress=True)
    assert "tuning (l2_top_expressed)" in capsys.readouterr().err
    assert optuna.logging.get_verbosity() == before
    with pytest.raises(ValueError):
        tune(lambda t, s: MeanEffect(seed=s + 1), tdata, metric="l2_top_expressed", n_trials=1, progress=False)
    assert optuna.logging.get_verbosity() == before


def test_tune_refuses_test_splits_and_bad_arguments(screen, tdata, ho_split):
    split = perturbation_split(screen, kind="unseen_single", seed=0)
    with pytest.raises(ValueError, match="tuning_data"):
        tune(_linear, split, n_trials=1, progress=False)
    # a held-out-cell-type split is a test split: only validation_holdout(...) of it may be tuned on
    with pytest.raises(ValueError, match=r"Holdout whose held-out cell type \('B'\) is the test set.*validation_holdout"):
        tune(lambda t, s: MeanShift(seed=s), ho_split, metric="pearson_delta", n_trials=1, progress=False)
    val = validation_holdout(ho_split, cell_type="A")
    assert isinstance(val, ValidationHoldout) and isinstance(val, Holdout)
    assert isinstance(val._replace(cell_type="A"), ValidationHoldout)  # training_hvgs and friends keep the type
    with pytest.raises(ValueError, match="data must be"):
        tune(_linear, {"train": split.train}, n_trials=1, progress=False)
    with pytest.raises(ValueError, match="unknown metric"):
        tune(_linear, tdata, metric="accuracy", n_trials=1, progress=False)
    with pytest.raises(ValueError, match="n_trials"):
        tune(_linear, tdata, n_trials=0, progress=False)
    with pytest.raises(ValueError, match="built with the seed"):
        tune(lambda t, s: MeanEffect(seed=s + 1), tdata, metric="l2_top_expressed", n_trials=1, progress=False)
    with pytest.raises(ValueError, match="built with the seed"):
        tune(lambda t, s: "not a model", tdata, metric="l2_top_expressed", n_trials=1, progress=False)
    with pytest.raises(ValueError, match=r"no gene set 'top5_expressed'.*top14_expressed"):
        tune(_linear, tdata, metric="l2_top_expressed", gene_set="top5_expressed", n_trials=1, progress=False)


def test_tune_every_trial_failed(tdata, ho_split):
    # no-change's pearson_delta is undefined (NaN): every trial fails, and tune says so
    with pytest.raises(ValueError, match=r"every trial failed.*\['FAIL', 'FAIL'\]"):
        tune(lambda t, s: NoChange(seed=s), tdata, metric="pearson_delta", n_trials=2, progress=False)
    val = validation_holdout(ho_split, cell_type="A")
    with pytest.raises(ValueError, match="every trial failed"):
        tune(lambda t, s: NoChange(seed=s), val, metric="pearson_delta", n_trials=1, progress=False)


def test_tune_without_optuna_says_how_to_install(tdata, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(ImportError, match="pip install optuna==5.0.0") as err:
        tune(_linear, tdata, metric="l2_top_expressed", n_trials=1, progress=False)
    assert str(err.value) == OPTUNA_HINT and "environments/build.py core" in str(err.value)


# --------------------------------------------------------------------------- THE test: tuning never sees test cells


class _Recording:
    """Records the cells every fit and predict call is given."""

    def __init__(self, log, **kw):
        super().__init__(**kw)
        self.log = log

    def fit(self, adata, **kw):
        self.log["fit"].append(set(adata.obs_names))
        return super().fit(adata, **kw)

    def predict(self, ctrl, perturbation):
        self.log["predict"].append(set(ctrl.obs_names))
        return super().predict(ctrl, perturbation)


class RecordingMeanEffect(_Recording, MeanEffect):
    pass


class RecordingMeanShift(_Recording, MeanShift):
    pass


def _spy_on_scoring(monkeypatch, log):
    original = tkm.evaluate

    def spy(pred, true, ctrl, **kw):
        log["truth"].append(set(true.obs_names))
        log["score_ctrl"].append(set(ctrl.obs_names))
        return original(pred, true, ctrl, **kw)

    monkeypatch.setattr(tkm, "evaluate", spy)


def _tune_recorded(cls, data, monkeypatch, n_trials, metric, gene_set):
    log = {"fit": [], "predict": [], "truth": [], "score_ctrl": []}
    _spy_on_scoring(monkeypatch, log)

    def make_model(trial, seed):
        trial.suggest_float("unused", 0.0, 1.0)
        return cls(log, seed=seed)

    result = tune(make_model, data, metric=metric, gene_set=gene_set, n_trials=n_trials, progress=False)
    assert (result.trials["state"] == "COMPLETE").all()
    assert len(log["fit"]) == n_trials and len(log["truth"]) == n_trials  # the recording model was used
    assert log["predict"]
    return log


def _seen(log):
    return set().union(*log["fit"], *log["predict"], *log["truth"], *log["score_ctrl"])


def test_tuning_never_sees_test_cells_perturbation_split(screen, monkeypatch):
    split = perturbation_split(screen, kind="unseen_single", seed=0)
    assert_disjoint(split)
    data = tuning_data(split)
    log = _tune_recorded(RecordingMeanEffect, data, monkeypatch, n_trials=4, metric="l2_top_expressed",
                         gene_set="top14_expressed")
    test_cells = set(split.test.obs_names)
    assert test_cells and not _seen(log) & test_cells
    # fit on train, predict from ctrl, judged against exactly the validation cells
    assert all(cells == set(split.train.obs_names) for cells in log["fit"])
    assert all(cells == set(split.ctrl.obs_names) for cells in log["predict"])
    assert all(cells == set(split.val.obs_names) for cells in log["truth"])
    assert len(log["predict"]) == 4 * len(split.val_perturbations)
    assert set().union(*log["truth"]) == set(split.val.obs_names)
    # and no test perturbation was ever asked for: the spied labels are the validation ones
    assert set(split.val_perturbations).isdisjoint(split.test_perturbations)


def test_tuning_never_sees_test_cells_holdout(cells, monkeypatch):
    split = holdout(cells, cell_type="C", perturbation="IFN")
    val = validation_holdout(split, cell_type="B")
    assert isinstance(val, Holdout) and val.cell_type == "B"
    # the splits are disjoint: the validation split holds training cells of split only
    for part in (val.train, val.ctrl, val.true):
        assert set(part.obs_names) <= set(split.train.obs_names)
    assert not set(val.train.obs_names) & set(val.true.obs_names)
    assert not set(val.ctrl.obs_names) & set(val.true.obs_names)
    log = _tune_recorded(RecordingMeanShift, val, monkeypatch, n_trials=3, metric="mse_top_de", gene_set="top12_de")
    test_type = set(cells.obs_names[cells.obs["cell_type"] == "C"])  # its perturbed AND its control cells
    assert set(split.true.obs_names) | set(split.ctrl.obs_names) <= test_type
    assert not _seen(log) & test_type
    assert all(c == set(val.train.obs_names) for c in log["fit"])
    assert all(c == set(val.ctrl.obs_names) for c in log["predict"])
    truth = set(cells.obs_names[(cells.obs["cell_type"] == "B") & (cells.obs["perturbation"] == "IFN")])
    assert all(c == truth == set(val.true.obs_names) for c in log["truth"])


def test_recording_spy_would_see_a_leak(screen, monkeypatch):
    """The recorder is not blind: scoring the whole split (test part) shows up in the record."""
    split = perturbation_split(screen, kind="unseen_single", seed=0)
    log = {"fit": [], "predict": [], "truth": [], "score_ctrl": []}
    _spy_on_scoring(monkeypatch, log)
    model = RecordingMeanEffect(log, seed=0).fit(split.train, progress=False)
    evaluate_perturbations({"m": model}, split, metrics=["l2_top_expressed"])
    assert log["truth"] == [set(split.test.obs_names)]
    assert isinstance(split, PerturbationSplit)


def test_a_pca_on_a_perturbation_task_is_refused(screen, ho_split):
    # a PCA given to a perturbation-level task would be ignored in silence: refused instead
    pca = tkm.fit_pca(ho_split.train.X, n_comps=3, seed=0)
    tasks = {"p": Task(split=lambda s: perturbation_split(screen, kind="unseen_single", seed=s), methods=["mean"],
                       metrics=["l2_top_expressed"], pca=pca)}
    with pytest.raises(ValueError, match="leave Task.pca out"):
        run_benchmark(tasks, METHODS, seeds=(0,), progress=False)
