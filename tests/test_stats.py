"""tk.stats: the one Student t interval over seeds, and the readable table of intervals.

Checked by hand (scipy's t quantile), against the two wrappers that must keep their outputs
(tk.models.summarize_seeds, tk.simulate.summarize_realism), and against the local helper that
notebook 02 used before (interval_table of a realism summary).
"""

from __future__ import annotations

import importlib

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import tutorial_kit as tk
from tutorial_kit.stats import BOOKKEEPING, interval_table, summarize_seeds


def _runs() -> pd.DataFrame:
    rows = [(model, metric, seed, value)
            for model, metric, values in (("zeta", "r2", [0.2, 0.4, 0.9]), ("alpha", "r2", [1.0, np.nan, 3.0]),
                                          ("zeta", "mse", [0.5, 0.5, 0.5]), ("alpha", "mse", [7.0, np.nan, np.nan]))
            for seed, value in enumerate(values)]
    return pd.DataFrame(rows, columns=["model", "metric", "seed", "value"])


def test_summarize_seeds_by_hand():
    out = summarize_seeds(_runs())
    assert list(out.columns) == ["model", "metric", "mean", "sd", "n_seeds", "ci_low", "ci_high"]
    assert out[["model", "metric"]].values.tolist() == [["zeta", "r2"], ["alpha", "r2"], ["zeta", "mse"], ["alpha", "mse"]]
    v = np.array([0.2, 0.4, 0.9])
    half = stats.t.ppf(0.975, 2) * v.std(ddof=1) / np.sqrt(3)
    row = out.iloc[0]
    assert row["mean"] == pytest.approx(0.5) and row["sd"] == pytest.approx(v.std(ddof=1)) and row["n_seeds"] == 3
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((0.5 - half, 0.5 + half))
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(stats.t.interval(0.95, 2, loc=v.mean(), scale=stats.sem(v)))
    nan_left_out = out.iloc[1]  # NaN is neither used nor counted
    assert nan_left_out["n_seeds"] == 2 and nan_left_out["mean"] == 2.0
    flat = out.iloc[2]  # zero spread: the interval is the mean
    assert flat["sd"] == 0 and flat["ci_low"] == flat["ci_high"] == pytest.approx(0.5)
    single = out.iloc[3]  # one finite seed: the spread is unknown
    assert single["n_seeds"] == 1 and single["mean"] == 7.0
    assert np.isnan(single["sd"]) and np.isnan(single["ci_low"]) and np.isnan(single["ci_high"])
    assert out["n_seeds"].dtype == np.int64 and out.attrs["confidence"] == 0.95
    narrow = summarize_seeds(_runs(), confidence=0.9).iloc[0]
    assert narrow["ci_high"] - narrow["mean"] == pytest.approx(stats.t.ppf(0.95, 2) * v.std(ddof=1) / np.sqrt(3))


def test_summarize_seeds_keys_names_and_bookkeeping():
    runs = _runs().rename(columns={"seed": "split_seed", "value": "score"})
    runs["fit_seconds"] = np.arange(len(runs), dtype=float)  # bookkeeping: not a key
    runs["n_genes"] = 100
    out = summarize_seeds(runs, value="score", seed="split_seed")
    assert list(out.columns[:2]) == ["model", "metric"] and len(out) == 4
    assert set(runs.columns) - {"model", "metric", "split_seed", "score"} <= set(BOOKKEEPING)  # the extras are not keys
    by_model = summarize_seeds(runs.query("metric == 'r2'"), by="model", value="score", seed="split_seed")
    assert by_model["model"].tolist() == ["zeta", "alpha"]
    everything = summarize_seeds(pd.DataFrame({"seed": [0, 1, 2], "value": [1.0, 2.0, 3.0]}))  # no key at all
    assert everything.columns.tolist() == ["mean", "sd", "n_seeds", "ci_low", "ci_high"]
    assert everything["mean"].tolist() == [2.0]
    categorical = _runs().astype({"model": "category"})
    categorical["model"] = categorical["model"].cat.add_categories(["unused"])
    assert len(summarize_seeds(categorical)) == 4  # no row for a category without values


def test_summarize_seeds_errors():
    runs = _runs()
    cases = [
        (dict(table=runs.to_dict()), "must be a pandas DataFrame"),
        (dict(table=runs.drop(columns="seed")), r"missing column\(s\) \['seed'\]"),
        (dict(table=runs, by=["model", "task"]), r"missing column\(s\) \['task'\]"),
        (dict(table=runs, by=["model", "seed"]), "must not contain the seed"),
        (dict(table=runs, by=["model", 3]), "must be a column name"),
        (dict(table=runs.assign(fraction=0.2)), r"\['fraction'\] hold floating-point numbers"),
        (dict(table=runs, confidence=95), "confidence must be between 0 and 1"),
        (dict(table=runs, confidence=True), "confidence must be between 0 and 1"),
        (dict(table=runs[:0]), "the table is empty"),
        (dict(table=pd.concat([runs, runs.iloc[:1]])), r"1 duplicated row\(s\) for one key and seed"),
        (dict(table=runs, by="model"), "leave out a key column"),  # model x seed repeats over metrics
        (dict(table=runs.assign(value="high")), "must hold numbers"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            summarize_seeds(**kwargs)


def test_models_and_simulate_delegate_with_their_own_columns():
    models_table = _runs().assign(gene_set="all", n_genes=5)[["model", "seed", "metric", "gene_set", "value", "n_genes"]]
    summary = tk.models.summarize_seeds(models_table)
    assert list(summary.columns) == ["model", "metric", "gene_set", "mean", "sd", "n_seeds", "ci_low", "ci_high"]
    pd.testing.assert_frame_equal(summary, summarize_seeds(models_table, by=["model", "metric", "gene_set"]))
    evaluation = importlib.import_module("tutorial_kit.simulate.evaluation")
    wide = _runs().pivot(index=["model", "seed"], columns="metric", values="value").reset_index()
    wide = wide.rename(columns={"model": "simulator", "r2": "rf_auroc", "mse": "mmd_rbf"})
    wide["simulator"] = wide["simulator"].replace({"alpha": evaluation.FLOOR})
    realism = tk.simulate.summarize_realism(wide)
    assert list(realism.columns) == ["simulator", "metric", "n_seeds", "mean", "sd", "ci_low", "ci_high"]
    assert realism[["simulator", "metric"]].values.tolist() == [
        [evaluation.FLOOR, "rf_auroc"], [evaluation.FLOOR, "mmd_rbf"], ["zeta", "rf_auroc"], ["zeta", "mmd_rbf"]]
    long = wide.melt(id_vars=["simulator", "seed"], var_name="metric")
    same = summarize_seeds(long, by=["simulator", "metric"]).set_index(["simulator", "metric"])
    pd.testing.assert_frame_equal(realism.set_index(["simulator", "metric"])[same.columns], same.loc[
        realism.set_index(["simulator", "metric"]).index])
    assert realism.attrs == {"ci": 0.95, "floor": evaluation.FLOOR,
                             "interval": "Student t over seeds: mean -/+ t * sd / sqrt(n)"}


def _notebook02_interval_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The local helper notebook 02 used before tk.stats.interval_table (kept here as the reference)."""
    text = (summary["mean"].map("{:.3f}".format) + " [" + summary["ci_low"].map("{:.3f}".format)
            + ", " + summary["ci_high"].map("{:.3f}".format) + "]")
    table = summary.assign(value=text).pivot(index="simulator", columns="metric", values="value")
    return table.loc[summary["simulator"].unique(), summary["metric"].unique()]


def test_interval_table_reproduces_the_notebook_02_helper():
    evaluation = importlib.import_module("tutorial_kit.simulate.evaluation")
    rng = np.random.default_rng(0)
    rows = [{"simulator": name, "seed": seed, **{m: float(rng.uniform()) for m in evaluation.METRICS}}
            for seed in range(3) for name in ("copula", evaluation.FLOOR, "independent Poisson", "marginals only")]
    summary = tk.simulate.summarize_realism(pd.DataFrame(rows))
    ours = interval_table(summary, index="simulator", columns="metric")
    pd.testing.assert_frame_equal(ours, _notebook02_interval_table(summary))
    assert list(ours.index)[0] == evaluation.FLOOR and list(ours.columns) == list(evaluation.METRICS)
    assert ours.index.name == "simulator" and ours.columns.name == "metric"


def test_interval_table_cells_order_and_several_keys():
    s = pd.DataFrame({
        "task": ["t1", "t1", "t1", "t2"], "model": ["b", "a", "b", "a"], "metric": ["m2", "m2", "m1", "m2"],
        "mean": [np.nan, 0.123456, 0.5, 0.2], "ci_low": [np.nan, np.nan, 0.4, 0.1], "ci_high": [np.nan, np.nan, 0.6, 0.3]})
    wide = interval_table(s, index=["task", "model"], columns="metric", digits=2)
    assert list(wide.index) == [("t1", "b"), ("t1", "a"), ("t2", "a")] and list(wide.columns) == ["m2", "m1"]
    assert wide.values.tolist() == [["n/a", "0.50 [0.40, 0.60]"], ["0.12", "-"], ["0.20 [0.10, 0.30]", "-"]]
    by_column_pairs = interval_table(s, index="task", columns=["model", "metric"])
    assert list(by_column_pairs.columns) == [("b", "m2"), ("a", "m2"), ("b", "m1")]
    for kwargs, message in [
        (dict(index="task", columns="metric"), r"share one cell of the table \(e.g. \{'task': 't1', 'metric': 'm2'\}\)"),
        (dict(index="model", columns="gene_set"), r"missing column\(s\) \['gene_set'\]"),
        (dict(index=["task", "model"], columns="metric", digits=-1), "digits must be a non-negative integer"),
    ]:
        with pytest.raises(ValueError, match=message):
            interval_table(s, **kwargs)


def test_models_interval_table_keeps_cell_types_apart():
    s = pd.DataFrame({"cell_type": ["T", "B"], "model": ["m", "m"], "metric": "r2", "gene_set": "all",
                      "mean": [0.1, 0.2], "ci_low": [0.0, 0.1], "ci_high": [0.2, 0.3]})
    wide = tk.models.interval_table(s)
    assert list(wide.index) == [("T", "m"), ("B", "m")] and wide["r2 (all)"].tolist() == ["0.100 [0.000, 0.200]",
                                                                                        "0.200 [0.100, 0.300]"]


def test_only_tk_stats_computes_a_t_interval():
    from pathlib import Path

    root = Path(tk.__file__).parent
    users = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if "stats.t.ppf(" in p.read_text())
    assert users == ["stats.py"]
