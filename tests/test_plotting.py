"""Tests of tutorial_kit.plotting: each function returns a Figure with the expected axes and artists.

Rendering uses the non-interactive Agg backend; every figure is closed after its test.
"""

from __future__ import annotations

import subprocess
import sys

import anndata as ad
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from tutorial_kit import plotting, qc  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def guide_counts():
    rng = np.random.default_rng(0)
    carries = rng.random((300, 3)) < 0.3
    umis = np.where(carries, rng.poisson(30, (300, 3)), rng.poisson(0.3, (300, 3)))
    return pd.DataFrame(umis, columns=["g1", "g2", "g3"], index=[f"c{i}" for i in range(300)])


def _vertical_lines(ax):
    return [ln for ln in ax.get_lines() if np.ptp(ln.get_xdata()) == 0]


def test_import_has_no_side_effects():
    code = ("import sys, tutorial_kit.plotting, tutorial_kit.qc; "
            "print('matplotlib' in sys.modules, 'sklearn' in sys.modules, 'pertpy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "False"]


def test_umi_histograms(guide_counts):
    thresholds = qc.guide_thresholds(guide_counts, min_umis=3)
    fig = plotting.umi_histograms(guide_counts, thresholds, bins=20)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    for ax, guide in zip(fig.axes, guide_counts.columns):
        assert len(ax.patches) == 20
        lines = _vertical_lines(ax)
        assert len(lines) == 1 and lines[0].get_xdata()[0] == thresholds.loc[guide, "threshold"]
        assert ax.get_xscale() == "log" and "UMIs" in ax.get_xlabel()
        assert guide in ax.get_title()
    assert "threshold" in fig._suptitle.get_text()
    four = guide_counts.assign(g4=guide_counts["g1"])
    fig4 = plotting.umi_histograms(four, {"g1": 5, "g2": 7, "g3": 5, "g4": 5})
    assert len(fig4.axes) == 4  # a 2 x 3 grid with the two spare cells removed
    with pytest.raises(ValueError, match="no threshold"):
        plotting.umi_histograms(guide_counts, {"g1": 5})
    with pytest.raises(ValueError, match="missing column"):
        plotting.umi_histograms(guide_counts, pd.DataFrame({"t": [5, 5, 5]}, index=guide_counts.columns))
    with pytest.raises(ValueError, match="DataFrame"):
        plotting.umi_histograms(guide_counts.to_numpy(), {"g1": 5})


def test_guides_per_cell():
    k = np.random.default_rng(1).poisson(0.6, 2000)
    zf = qc.estimate_moi(k)
    zt = qc.estimate_moi(k, method="zero_truncated")
    one = plotting.guides_per_cell(zf)
    assert len(one.axes) == 1
    n_k = len(zf.table)
    assert len(one.axes[0].patches) == 2 * n_k  # observed and expected for every k
    assert f"{zf.moi:.2f}" in " ".join(t.get_text() for t in one.axes[0].get_legend().get_texts())
    both = plotting.guides_per_cell([zf, zt])
    assert len(both.axes) == 2
    assert len(both.axes[1].patches) == 2 * len(zt.table) - 1  # no expectation for 0 guides when truncated
    assert "Poisson" in both._suptitle.get_text()
    with pytest.raises(ValueError, match="estimate_moi"):
        plotting.guides_per_cell([])
    with pytest.raises(ValueError, match="estimate_moi"):
        plotting.guides_per_cell([1.0])


def test_reads_vs_umis_and_guide_coverage():
    table = pd.DataFrame({"cell": ["a", "a", "b", "c"], "barcode": ["g1", "g2", "g1", "g3"],
                          "read_count": [2, 8, 40, 1], "umi_count": [1, 4, 35, 1]})
    fig = plotting.reads_vs_umis(table, max_umis=10)
    assert len(fig.axes) == 2
    left, right = fig.axes
    scatters = [c for c in left.collections if isinstance(c, PathCollection)]
    assert len(scatters) == 1 and len(scatters[0].get_offsets()) == 4
    assert left.get_xscale() == "log" and left.get_yscale() == "log"
    assert len(right.patches) == 10 and right.patches[-1].get_height() == 1  # 35 UMIs pooled in the last bar
    assert "median 1.57 reads per UMI" in left.get_title()  # ratios 2, 2, 1.14, 1
    with pytest.raises(ValueError, match="missing column"):
        plotting.reads_vs_umis(table.drop(columns="read_count"))
    with pytest.raises(ValueError, match="no rows"):
        plotting.reads_vs_umis(table.iloc[:0])
    cov = plotting.guide_coverage(table)
    assert len(cov.axes) == 1 and len(cov.axes[0].patches) == 30
    assert "3 guides" in cov.axes[0].get_title()
    with pytest.raises(ValueError, match="missing column"):
        plotting.guide_coverage(table, guide_key="sgrna")
    with pytest.raises(ValueError, match="no rows"):
        plotting.guide_coverage(table.iloc[:0])


def test_umis_by_call():
    obs = pd.DataFrame({"guide_call": ["none", "single", "single", "multiplet", "odd"]}, index=list("abcde"))
    a = ad.AnnData(np.arange(10, dtype=float).reshape(5, 2), obs=obs)
    a.layers["counts"] = a.X.copy()
    fig = plotting.umis_by_call(a)
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels == ["none\n(1 cells)", "single\n(2 cells)", "multiplet\n(1 cells)", "odd\n(1 cells)"]
    assert ax.get_yscale() == "log" and "multiplet 13" in ax.get_title()
    with pytest.raises(ValueError, match="missing column"):
        plotting.umis_by_call(a, call_key="call")
    with pytest.raises(ValueError, match="no 'raw' layer"):
        plotting.umis_by_call(a, layer="raw")


def test_target_knockdown():
    df = pd.DataFrame({
        "guide": ["A_1", "A_2", "B_1", "C_1", "A_1"],
        "target": ["A", "A", "B", "C", "A"],
        "condition": ["rest", "rest", "rest", "rest", "stim"],
        "measured": [True, True, True, False, True],
        "detected": [True, True, False, False, True],
        "log2_fold_change": [-2.0, -0.1, 0.0, np.nan, -1.5],
        "qvalue": [0.001, 0.8, 1.0, np.nan, 0.01],
    })
    fig = plotting.target_knockdown(df)
    ax = fig.axes[0]
    points = sum(len(c.get_offsets()) for c in ax.collections)
    assert len(fig.axes) == 1 and points == 4  # measured rows only
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A_1", "A_2", "B_1"]
    assert "1 rows whose target is not among the genes" in ax.get_title()
    no_guides = plotting.target_knockdown(df.drop(columns=["guide", "condition", "detected"])
                                          .assign(perturbation=df["target"]))
    assert len(no_guides.axes) == 1
    nothing = plotting.target_knockdown(df.assign(measured=False))
    assert any("no target gene is measured" in t.get_text() for t in nothing.axes[0].texts)
    with pytest.raises(ValueError, match="missing column"):
        plotting.target_knockdown(df.drop(columns="qvalue"))


def test_mixscape_classes():
    summary = pd.DataFrame({"condition": ["rest", "rest", "stim", "stim"], "perturbation": ["A", "B", "A", "B"],
                            "n_cells": [10, 10, 10, 10], "n_de_genes": [7, 0, 9, 1],
                            "classified": [True, False, True, False], "n_perturbed": [6, 0, 8, 0],
                            "fraction_perturbed": [0.6, 0.0, 0.8, 0.0]})
    a = ad.AnnData(np.zeros((1, 1)))
    a.uns["mixscape_summary"] = summary
    a.uns["mixscape_params"] = {"min_de_genes": 5, "perturbation_type": "KO", "split_key": "condition"}
    fig = plotting.mixscape_classes(a)
    left, right = fig.axes
    assert len(left.patches) == 4 and len(right.patches) == 8  # perturbed + NP bar per target and split
    assert len(_vertical_lines(left)) == 1 and not right.texts
    a.uns["mixscape_summary"] = summary.assign(classified=False)
    assert plotting.mixscape_classes(a).axes[1].texts  # says that no target was classified
    with pytest.raises(ValueError, match="mixscape_summary"):
        plotting.mixscape_classes(ad.AnnData(np.zeros((1, 1))))


def test_mixscape_classes_from_the_real_wrapper():
    sim = qc.simulate_screen(effects=(2.0, 0.0), n_cells_per_target=80, n_control=120, n_genes=60, seed=0)
    fig = plotting.mixscape_classes(qc.mixscape(sim, seed=0))
    assert len(fig.axes) == 2 and len(fig.axes[0].patches) == 2


def test_perturbation_strength_plot():
    df = pd.DataFrame({"perturbation": ["A", "B", "C", "A", "B", "C"],
                       "condition": ["rest"] * 3 + ["stim"] * 3,
                       "edistance": [2.0, 0.5, 0.1, 1.0, 0.2, 0.3], "qvalue": [0.01, 0.02, 0.9, 0.01, 0.5, 0.4],
                       "significant": [True, True, False, True, False, False]})
    df.attrs.update({"distance": "euclidean", "n_comps": 20, "alpha": 0.05})
    fig = plotting.perturbation_strength(df)
    assert len(fig.axes) == 2
    rest, stim = fig.axes
    assert len(rest.patches) == 3 and [t.get_text() for t in stim.get_yticklabels()] == ["A", "C", "B"]
    assert rest.get_title() == "rest: 2 of 3 significant" and "20 PCs" in rest.get_xlabel()
    top = plotting.perturbation_strength(df, top=2)
    assert len(top.axes[0].patches) == 2 and top.axes[0].get_title() == "rest: 2 of 3 significant"
    pooled = plotting.perturbation_strength(df.drop(columns="condition").head(3))
    assert len(pooled.axes) == 1 and pooled.axes[0].get_title().startswith("all cells")
    with pytest.raises(ValueError, match="missing column"):
        plotting.perturbation_strength(df.drop(columns="significant"))
