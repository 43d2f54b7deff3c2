"""Tests of the benchmark plots of tutorial_kit.plotting (notebook 10): benchmark_plot, rank_heatmap,
and model_comparison's refusal of several tasks. Rendering uses Agg; every figure is closed after its test."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tutorial_kit import plotting  # noqa: E402
from tutorial_kit.models import rank_methods  # noqa: E402


def _summary() -> pd.DataFrame:
    """Two tasks; edistance and pearson_delta on both, mse_top_de only on 'cells'."""
    rows = []
    for task in ("cells", "singles"):
        for i, model in enumerate(("no-change", "mean", "linear")):
            rows.append((task, model, "edistance", "pca10", 1.0 - 0.2 * i))
            rows.append((task, model, "pearson_delta", "all", np.nan if model == "no-change" else 0.3 * i))
            rows.append((task, model, "pearson_delta", "top20_de", 0.1 * i))
            if task == "cells":
                rows.append((task, model, "mse_top_de", "top20_de", 0.5 - 0.1 * i))
    s = pd.DataFrame(rows, columns=["task", "model", "metric", "gene_set", "mean"])
    s["ci_low"], s["ci_high"] = s["mean"] - 0.05, s["mean"] + 0.05
    return s


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_benchmark_plot_grid_is_tasks_by_metrics():
    metrics = ["edistance", "pearson_delta", "mse_top_de"]
    fig = plotting.benchmark_plot(_summary(), metrics=metrics)
    assert isinstance(fig, Figure)
    assert len(fig.axes) == 2 * 3
    titles = [ax.get_title() for ax in fig.axes]
    assert [t.splitlines()[0] for t in titles] == ["cells"] * 3 + ["singles"] * 3
    # the gene set shown: 'all' where scored on all genes, else the only one
    assert titles[0].splitlines()[1] == "edistance (pca10), lower is better"
    assert titles[1].splitlines()[1] == "pearson_delta (all), higher is better"
    assert titles[2].splitlines()[1] == "mse_top_de (top20_de), lower is better"
    # one row of y labels per model in each drawn panel
    assert [t.get_text().split()[0] for t in fig.axes[0].get_yticklabels()] == ["no-change", "mean", "linear"]
    # the x label only under the last row
    assert fig.axes[5].get_xlabel().startswith("mean over seeds") and fig.axes[0].get_xlabel() == ""


def test_benchmark_plot_says_not_scored():
    fig = plotting.benchmark_plot(_summary(), metrics=["edistance", "mse_top_de"])
    empty = fig.axes[3]  # singles x mse_top_de
    assert any("not scored on this task" in t for t in _texts(empty))
    assert empty.get_title() == "singles"
    assert not any("not scored" in t for ax in fig.axes[:3] for t in _texts(ax))


def test_benchmark_plot_task_order_and_subset():
    fig = plotting.benchmark_plot(_summary(), metrics=["edistance"], tasks=["singles", "cells"])
    assert [ax.get_title().splitlines()[0] for ax in fig.axes] == ["singles", "cells"]
    fig = plotting.benchmark_plot(_summary(), metrics=["edistance"], tasks=["singles"])
    assert len(fig.axes) == 1


def test_benchmark_plot_errors():
    s = _summary()
    with pytest.raises(ValueError, match=r"missing column\(s\) \['task'\]"):
        plotting.benchmark_plot(s.drop(columns="task"), metrics=["edistance"])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['ci_low', 'ci_high'\]"):
        plotting.benchmark_plot(s.drop(columns=["ci_low", "ci_high"]), metrics=["edistance"])
    with pytest.raises(ValueError, match="metrics is empty"):
        plotting.benchmark_plot(s, metrics=[])
    with pytest.raises(ValueError, match=r"metric\(s\) \['mmd_rbf'\] are not in the summary"):
        plotting.benchmark_plot(s, metrics=["edistance", "mmd_rbf"])
    with pytest.raises(ValueError, match="tasks must be among"):
        plotting.benchmark_plot(s, metrics=["edistance"], tasks=["doubles"])
    with pytest.raises(ValueError, match="tasks must be among"):
        plotting.benchmark_plot(s, metrics=["edistance"], tasks=[])


def _ranks(seeds: bool) -> pd.DataFrame:
    rows = []
    for seed in (0, 1) if seeds else (None,):
        shift = 0.0 if seed in (0, None) else 1.0
        rows += [("no-change", "mse_top_de", "top20_de", 0.5, seed), ("mean", "mse_top_de", "top20_de", 0.5, seed),
                 ("linear", "mse_top_de", "top20_de", 0.1 + shift, seed),
                 ("no-change", "pearson_delta", "all", np.nan, seed), ("mean", "pearson_delta", "all", 0.2, seed),
                 ("linear", "pearson_delta", "all", 0.6, seed)]
    t = pd.DataFrame(rows, columns=["model", "metric", "gene_set", "value", "seed"])
    return t if seeds else t.drop(columns="seed")


def _cell_texts(ax) -> dict[tuple[int, int], str]:
    return {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}


def test_rank_heatmap_cells_show_the_ranks():
    ranks = rank_methods(_ranks(seeds=False))
    fig = plotting.rank_heatmap(ranks)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["no-change", "mean", "linear"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["mse_top_de (top20_de)", "pearson_delta (all)"]
    cells = _cell_texts(ax)
    # mse: 0.5, 0.5 tie at 2.5, linear 1; pearson_delta: no-change undefined, linear 1, mean 2
    assert cells == {(0, 0): "2.5", (1, 0): "2.5", (2, 0): "1", (0, 1): "n/a", (1, 1): "2", (2, 1): "1"}
    assert "metric (mean over seeds)" in ax.get_title()
    assert len(fig.axes) == 2  # the heatmap and its colour bar


def test_rank_heatmap_per_seed_columns_and_given_axes():
    ranks = rank_methods(_ranks(seeds=True))
    fig, ax = plt.subplots()
    out = plotting.rank_heatmap(ranks, title="my ranks", ax=ax)
    assert out is fig and ax.get_title() == "my ranks"
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["mse_top_de (top20_de)\nseed 0", "pearson_delta (all)\nseed 0",
                      "mse_top_de (top20_de)\nseed 1", "pearson_delta (all)\nseed 1"]
    cells = _cell_texts(ax)
    assert cells[(2, 0)] == "1" and cells[(2, 2)] == "3"  # linear: best in seed 0, worst in seed 1
    assert cells[(0, 1)] == cells[(0, 3)] == "n/a"
    fig2 = plotting.rank_heatmap(ranks)
    assert "metric and seed" in fig2.axes[0].get_title()


def test_rank_heatmap_errors():
    ranks = rank_methods(_ranks(seeds=False))
    with pytest.raises(ValueError, match="several tasks"):
        plotting.rank_heatmap(pd.concat([ranks.assign(task="a"), ranks.assign(task="b")], ignore_index=True))
    one_task = plotting.rank_heatmap(ranks.assign(task="a"))
    assert isinstance(one_task, Figure)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['rank'\]"):
        plotting.rank_heatmap(ranks.drop(columns="rank"))
    with pytest.raises(ValueError, match="empty"):
        plotting.rank_heatmap(ranks.iloc[:0])


def test_model_comparison_refuses_several_tasks():
    s = _summary()
    with pytest.raises(ValueError, match="several tasks.*benchmark_plot"):
        plotting.model_comparison(s, metrics=[("edistance", "pca10")])
    fig = plotting.model_comparison(s[s.task == "cells"], metrics=[("edistance", "pca10")])
    assert isinstance(fig, Figure) and len(fig.axes) == 1
