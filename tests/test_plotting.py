"""Tests of tutorial_kit.plotting: each function returns a Figure with the expected axes and artists.

Rendering uses the non-interactive Agg backend; every figure is closed after its test.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import anndata as ad
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import tutorial_kit as tk  # noqa: E402
from tutorial_kit import plotting, qc  # noqa: E402


@pytest.fixture(scope="module")
def guide_counts():
    rng = np.random.default_rng(0)
    carries = rng.random((300, 3)) < 0.3
    umis = np.where(carries, rng.poisson(30, (300, 3)), rng.poisson(0.3, (300, 3)))
    return pd.DataFrame(umis, columns=["g1", "g2", "g3"], index=[f"c{i}" for i in range(300)])


def _vertical_lines(ax):
    return [ln for ln in ax.get_lines() if np.ptp(ln.get_xdata()) == 0]


def test_import_has_no_side_effects():
    code = ("import sys, tutorial_kit as tk, tutorial_kit.plotting, tutorial_kit.qc; names = tk.plotting.__all__; "
            "dir(tk.plotting); "
            "print('matplotlib' in sys.modules, 'sklearn' in sys.modules, 'pertpy' in sys.modules, len(names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "False", "36"]


def _plotting_modules():
    return [importlib.import_module(f"tutorial_kit.plotting.{m.name}")
            for m in pkgutil.iter_modules(plotting.__path__) if not m.name.startswith("_")]


def test_every_public_function_of_every_plotting_module_is_in_all():
    modules = _plotting_modules()
    assert {m.__name__.rsplit(".", 1)[1] for m in modules} == {"qc", "simulation", "gan", "models", "causal", "latent"}
    public = {}
    for module in modules:
        functions = {name for name, obj in vars(module).items()
                     if inspect.isfunction(obj) and obj.__module__ == module.__name__ and not name.startswith("_")}
        assert functions == set(module.__all__), module.__name__  # each module lists its own functions
        public.update({name: getattr(module, name) for name in functions})
    assert sorted(public) == plotting.__all__ == sorted(dir(plotting))
    for name, function in public.items():
        assert getattr(plotting, name) is function  # tk.plotting.X is the module's function
    from tutorial_kit.plotting import benchmark_plot, umi_histograms  # the old import style keeps working

    assert benchmark_plot is public["benchmark_plot"] and umi_histograms is public["umi_histograms"]
    with pytest.raises(AttributeError, match="no attribute 'no_such_plot'"):
        plotting.no_such_plot  # noqa: B018


def test_every_plot_docstring_names_the_notebook_that_teaches_it():
    notebooks = {p.stem: p.read_text() for p in (Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9]*.ipynb")}
    for name in plotting.__all__:
        doc = inspect.getdoc(getattr(plotting, name))
        named = set(re.findall(r"``(\d\d_[a-z_]+)``", doc))
        assert named, f"{name}: its docstring names no notebook (write 'Taught in ``NN_title``.')"
        assert named <= set(notebooks), f"{name}: no notebook {sorted(named - set(notebooks))}"
        if "No notebook draws it" not in doc:
            assert "Taught in" in doc, name
            assert any(re.search(rf"plotting\.{name}\(", notebooks[nb]) for nb in named), \
                f"{name}: none of the notebooks its docstring names ({sorted(named)}) draws it"


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
    sim = tk.simulate.simulate_screen(effects=(2.0, 0.0), n_cells_per_target=80, n_control=120, n_genes=60, seed=0)
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


# --------------------------------------------------------------------------- perturbation models (notebooks 04, 05)


def _cells(rng, n, n_genes, *, shift=0.0, scale=1.0, label="control", prefix="c"):
    obs = pd.DataFrame({"perturbation": [label] * n}, index=[f"{prefix}{i}" for i in range(n)])
    var = pd.DataFrame(index=[f"g{j}" for j in range(n_genes)])
    x = rng.gamma(2.0, 0.5, size=(n, n_genes)) * scale + shift
    return ad.AnnData(x.astype(np.float32), obs=obs, var=var)


@pytest.fixture(scope="module")
def model_cells():
    rng = np.random.default_rng(3)
    effect = np.linspace(0, 2, 15)
    ctrl = _cells(rng, 40, 15)
    true = _cells(rng, 40, 15, shift=effect, scale=1.5, label="IFN", prefix="t")
    pred = ctrl.copy()
    pred.X = pred.X + 0.8 * effect.astype(np.float32)
    pred.obs["perturbation"] = "IFN"
    return pred, true, ctrl


def _legend_value(ax, prefix):
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    hit = [t for t in texts if t.startswith(prefix)]
    assert len(hit) == 1, texts
    return float(hit[0].rsplit("=", 1)[1])


@pytest.mark.parametrize("statistic", ["mean", "var"])
def test_reg_mean_plot_r2_equals_metrics(model_cells, statistic):
    from tutorial_kit import metrics as m

    pred, true, ctrl = model_cells
    fig = plotting.reg_mean_plot(pred, true, ctrl=ctrl, statistic=statistic, n_label=4)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert [len(c.get_offsets()) for c in points] == [15, 15]  # all genes; top-100 DEGs capped at 15
    assert len(ax.texts) == 4  # labelled genes
    name = "r2_mean_sqpearson" if statistic == "mean" else "r2_var_sqpearson"
    func = getattr(m, name)
    if statistic == "mean":
        p, t = pred.X.mean(0), true.X.mean(0)
    else:
        p, t = pred.X.astype(float).var(0, ddof=1), true.X.astype(float).var(0, ddof=1)
    assert _legend_value(ax, f"all 15 genes: {name}") == pytest.approx(func(p, t), abs=1e-4)
    assert name in ax.get_title() and ("variance" in ax.get_title()) == (statistic == "var")
    # given highlighted genes, strongest first
    fig = plotting.reg_mean_plot(pred, true, top_genes=["g14", "g13", "g0"], statistic=statistic, n_label=2)
    ax = fig.axes[0]
    idx = [14, 13, 0]
    assert _legend_value(ax, f"top 3 genes: {name}") == pytest.approx(func(p[idx], t[idx]), abs=1e-4)
    assert [tx.get_text() for tx in ax.texts] == ["g14", "g13"]


def test_reg_mean_plot_side_by_side_panels(model_cells):
    from tutorial_kit import metrics as m

    pred, true, ctrl = model_cells
    fig = plotting.reg_mean_plot({"model": pred, "no-change": ctrl}, true, ctrl=ctrl, n_label=0)
    assert len(fig.axes) == 2
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0].startswith("model\n") and titles[1].startswith("no-change\n")
    # each panel's legend carries its own prediction's r2 on all genes
    assert _legend_value(fig.axes[0], "all 15 genes") == pytest.approx(m.r2_mean_sqpearson(pred.X.mean(0), true.X.mean(0)), abs=1e-4)
    assert _legend_value(fig.axes[1], "all 15 genes") == pytest.approx(m.r2_mean_sqpearson(ctrl.X.mean(0), true.X.mean(0)), abs=1e-4)
    with pytest.raises(ValueError, match="empty dict"):
        plotting.reg_mean_plot({}, true)
    with pytest.raises(ValueError, match="pred 'bad' and true AnnData have different genes"):
        plotting.reg_mean_plot({"bad": pred[:, :10]}, true)


def test_training_history_one_panel_per_loss():
    history = pd.DataFrame({"epoch": [1, 2, 3], "loss": [3.0, 2.0, 1.5], "kl": [0.1, 0.3, 0.4], "note": ["a", "b", "c"]})
    fig = plotting.training_history(history, title="scGen (seed 0)")
    assert [ax.get_title() for ax in fig.axes] == ["loss", "kl"]  # non-numeric columns are not losses
    np.testing.assert_allclose(fig.axes[1].lines[0].get_ydata(), [0.1, 0.3, 0.4])
    np.testing.assert_allclose(fig.axes[0].lines[0].get_xdata(), [1, 2, 3])
    assert fig._suptitle.get_text() == "scGen (seed 0)"
    no_epoch = plotting.training_history(history.drop(columns="epoch").set_index(pd.Index([5, 6, 7])))
    np.testing.assert_allclose(no_epoch.axes[0].lines[0].get_xdata(), [5, 6, 7])
    with pytest.raises(ValueError, match="non-empty DataFrame"):
        plotting.training_history(pd.DataFrame())
    with pytest.raises(ValueError, match="no numeric loss column"):
        plotting.training_history(pd.DataFrame({"epoch": [1], "note": ["x"]}))


def test_reg_mean_plot_on_given_axes_and_errors(model_cells):
    pred, true, ctrl = model_cells
    fig, ax = plt.subplots()
    assert plotting.reg_mean_plot(pred, true, ax=ax) is fig
    assert len(ax.collections) == 1 and len(ax.get_legend().get_texts()) == 1  # no highlight without ctrl
    with pytest.raises(ValueError, match="statistic must be 'mean' or 'var'"):
        plotting.reg_mean_plot(pred, true, statistic="median")
    with pytest.raises(ValueError, match="pred and true AnnData have different genes"):
        plotting.reg_mean_plot(pred[:, :10], true)
    with pytest.raises(ValueError, match="true and ctrl AnnData have different genes"):
        plotting.reg_mean_plot(pred, true, ctrl=ctrl[:, ::-1])
    with pytest.raises(ValueError, match=r"top_genes not among the genes of true: \['XIST'\]"):
        plotting.reg_mean_plot(pred, true, top_genes=["XIST"])
    with pytest.raises(ValueError, match="needs at least 2 cells"):
        plotting.reg_mean_plot(pred[:1], true, statistic="var")
    one = plotting.reg_mean_plot(pred[:1], true)  # a mean of one predicted cell is fine
    np.testing.assert_allclose(one.axes[0].collections[0].get_offsets()[:, 1], pred.X[0], rtol=1e-6)
    with pytest.raises(ValueError, match="ax must be None or 1 matplotlib Axes"):
        plotting.reg_mean_plot(pred, true, ax=[ax, ax])


@pytest.fixture(scope="module")
def latent():
    rng = np.random.default_rng(0)
    obs = pd.DataFrame({"cell_type": np.repeat(["A", "B", "C"], 30),
                        "perturbation": np.tile(np.repeat(["control", "IFN"], 15), 3)})
    z = rng.normal(size=(90, 5)) + np.repeat(np.eye(5)[:3] * 4, 30, axis=0)
    z[obs["perturbation"].to_numpy() == "IFN", 4] += 3.0
    return z, obs


def test_latent_delta_plot_arrows_and_projection(latent):
    from matplotlib.patches import FancyArrowPatch
    from sklearn.decomposition import PCA

    z, obs = latent
    fig = plotting.latent_delta_plot(z, obs)
    ax = fig.axes[0]
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert len(ax.collections) == 6  # 3 cell types x 2 conditions
    assert len([p for p in ax.patches if isinstance(p, FancyArrowPatch)]) == 3  # one observed arrow per type
    # held out B: no observed arrow for it, one dashed predicted arrow from its control centroid
    delta = np.array([0, 0, 0, 0, 3.0])
    fig = plotting.latent_delta_plot(z, obs, held_out="B", delta=delta)
    ax = fig.axes[0]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == 3
    predicted = [p for p in arrows if p.get_label() == "predicted delta"]
    assert len(predicted) == 1 and predicted[0].get_linestyle() in ("--", "dashed")
    pca = PCA(n_components=2, random_state=0).fit(z)
    centroid = z[(obs.cell_type == "B").to_numpy() & (obs.perturbation == "control").to_numpy()].mean(0)
    start, end = pca.transform(np.vstack([centroid, centroid + delta]))
    posA, posB = predicted[0]._posA_posB
    np.testing.assert_allclose(posA, start)
    np.testing.assert_allclose(posB, end)
    assert "held out: B" in ax.get_title() and "PC1" in ax.get_xlabel()
    assert any("predicted delta" in t.get_text() for t in ax.get_legend().get_texts())


def test_latent_delta_plot_errors(latent):
    z, obs = latent
    with pytest.raises(ValueError, match=">= 2 dimensions"):
        plotting.latent_delta_plot(z[:, :1], obs)
    with pytest.raises(ValueError, match="obs has 89 rows but latent has 90 cells"):
        plotting.latent_delta_plot(z, obs.iloc[1:])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['condition'\]"):
        plotting.latent_delta_plot(z, obs, perturbation_key="condition")
    with pytest.raises(ValueError, match="delta needs held_out"):
        plotting.latent_delta_plot(z, obs, delta=np.ones(5))
    with pytest.raises(ValueError, match="unknown held_out cell type 'Z'"):
        plotting.latent_delta_plot(z, obs, held_out="Z")
    with pytest.raises(ValueError, match="delta must be a finite vector of length 5"):
        plotting.latent_delta_plot(z, obs, held_out="A", delta=np.ones(3))
    bad = z.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        plotting.latent_delta_plot(bad, obs)
    no_ctrl = obs.copy()
    no_ctrl.loc[no_ctrl.cell_type == "A", "perturbation"] = "IFN"
    with pytest.raises(ValueError, match="'A' has no 'control' cells"):
        plotting.latent_delta_plot(z, no_ctrl, held_out="A", delta=np.ones(5))


@pytest.fixture(scope="module")
def summary():
    from tutorial_kit.models.evaluation import summarize_seeds

    rows = []
    for model, base in (("scGen", 0.8), ("no-change", np.nan), ("mean-shift", 0.6)):
        for seed in range(3):
            rows.append((model, seed, "pearson_delta", "all", base + 0.01 * seed))
            rows.append((model, seed, "edistance", "pca50", 1.0 - (0 if np.isnan(base) else base) + 0.1 * seed))
    table = pd.DataFrame(rows, columns=["model", "seed", "metric", "gene_set", "value"])
    return summarize_seeds(table)


def test_model_comparison(summary):
    from matplotlib.colors import to_rgba

    pairs = [("pearson_delta", "all"), ("edistance", "pca50")]
    fig = plotting.model_comparison(summary, metrics=pairs)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    left, right = fig.axes
    assert left.get_title() == "pearson_delta (all)  (higher is better)"
    assert right.get_title() == "edistance (pca50)  (lower is better)"
    assert [t.get_text() for t in left.get_yticklabels()] == ["scGen", "no-change (n/a)", "mean-shift"]
    assert [t.get_text() for t in right.get_yticklabels()] == ["scGen", "no-change", "mean-shift"]
    assert left.get_ylim()[0] > left.get_ylim()[1]  # first model on top
    points = [ln for ln in right.get_lines() if ln.get_marker() == "o"]
    assert len(points) == 3
    scgen = summary[(summary.model == "scGen") & (summary.metric == "edistance")].iloc[0]
    assert points[0].get_xdata()[0] == pytest.approx(scgen["mean"])
    assert to_rgba(points[1].get_color()) == to_rgba("0.55") and to_rgba(points[0].get_color()) == to_rgba("C0")
    # CI bar: the error-bar segment spans ci_low..ci_high
    segs = [c for c in right.collections if hasattr(c, "get_segments")][0].get_segments()
    np.testing.assert_allclose(sorted(segs[0][:, 0]), [scgen["ci_low"], scgen["ci_high"]])


def test_model_comparison_errors(summary):
    with pytest.raises(ValueError, match=r"unknown \(metric, gene_set\) \[\('r2', 'all'\)\]"):
        plotting.model_comparison(summary, metrics=[("r2", "all")])
    with pytest.raises(ValueError, match="metrics is empty"):
        plotting.model_comparison(summary, metrics=[])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['ci_low'\]"):
        plotting.model_comparison(summary.drop(columns="ci_low"), metrics=[("edistance", "pca50")])
    two = pd.concat([summary.assign(cell_type="A"), summary.assign(cell_type="B")])
    with pytest.raises(ValueError, match="several cell types"):
        plotting.model_comparison(two, metrics=[("edistance", "pca50")])
    fig, axes = plt.subplots(1, 2)
    assert plotting.model_comparison(summary, metrics=[("edistance", "pca50")] * 2, ax=axes) is fig
    single = summary.assign(ci_low=np.nan, ci_high=np.nan)  # one seed: no interval, only the mean
    fig = plotting.model_comparison(single, metrics=[("edistance", "pca50")])
    assert len(fig.axes[0].collections) == 0 and len([ln for ln in fig.axes[0].get_lines() if ln.get_marker() == "o"]) == 3
    with pytest.raises(ValueError, match="ax must be None or 2 matplotlib Axes"):
        plotting.model_comparison(summary, metrics=[("edistance", "pca50")] * 2, ax=axes[0])


def test_holdout_heatmap():
    rows = [(ct, model, seed, "edistance", "pca5", v + seed)
            for ct, base in (("CD4T", 1.0), ("B", 3.0)) for model, v in (("m2", base), ("m1", base + 1))
            for seed in (0, 1)]
    rows += [("CD4T", "m2", 0, "pearson_delta", "all", np.nan)]
    table = pd.DataFrame(rows, columns=["cell_type", "model", "seed", "metric", "gene_set", "value"])
    fig = plotting.holdout_heatmap(table, metric="edistance", gene_set="pca5")
    assert isinstance(fig, Figure) and len(fig.axes) == 2  # heatmap and colour bar
    ax, cbar = fig.axes
    image = ax.get_images()[0].get_array()
    np.testing.assert_allclose(image, [[1.5, 2.5], [3.5, 4.5]])  # mean over seeds 0 and 1
    assert [t.get_text() for t in ax.texts] == ["1.50", "2.50", "3.50", "4.50"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["m2", "m1"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["CD4T", "B"]
    assert cbar.get_ylabel() == "edistance (pca5), mean over seeds"
    assert "lower is better" in ax.get_title()
    nan = plotting.holdout_heatmap(table, metric="pearson_delta", gene_set="all")
    assert [t.get_text() for t in nan.axes[0].texts] == ["n/a"]
    with pytest.raises(ValueError, match="no rows for metric 'edistance' with gene_set 'all'"):
        plotting.holdout_heatmap(table, metric="edistance", gene_set="all")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['cell_type'\]"):
        plotting.holdout_heatmap(table.drop(columns="cell_type"), metric="edistance", gene_set="pca5")


def test_spread_plot(model_cells):
    pred, true, ctrl = model_cells
    fig = plotting.spread_plot({"mean-shift": pred}, true, ctrl, genes=["g14", "g7"])
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    ax = fig.axes[0]
    assert ax.get_title() == "g14" and len(ax.patches) == 3  # control, true, mean-shift boxes
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert [lab.split("\n")[0] for lab in labels] == ["control", "true", "mean-shift"]
    sds = [float(lab.split("sd ")[1]) for lab in labels]
    # a shared shift keeps the control spread; the true cells (scale 1.5) are wider
    assert sds[2] == pytest.approx(sds[0], abs=0.01) and sds[1] > sds[0]
    assert sds[1] == pytest.approx(np.std(true[:, "g14"].X.ravel(), ddof=1), abs=0.006)
    with pytest.raises(ValueError, match="true and mean-shift AnnData have different genes"):
        plotting.spread_plot({"mean-shift": pred[:, :5]}, true, ctrl, genes=["g1"])
    with pytest.raises(ValueError, match=r"genes not among the genes of true: \['XIST'\]"):
        plotting.spread_plot({"mean-shift": pred}, true, ctrl, genes=["XIST"])
    with pytest.raises(ValueError, match="genes is empty"):
        plotting.spread_plot({"mean-shift": pred}, true, ctrl, genes=[])
    with pytest.raises(ValueError, match="predictions must be a dict"):
        plotting.spread_plot([pred], true, ctrl, genes=["g1"])


def test_interaction_residuals():
    table = pd.DataFrame({"perturbation": ["A+B", "C+D", "E+F", "G+H"], "score": [0.1, 0.2, 0.3, np.nan],
                          "residual": [1.0, 2.0, 3.0, 9.0]})
    fig = plotting.interaction_residuals(table, x="score", y="residual")
    ax = fig.axes[0]
    assert ax.get_title() == "residual vs score: Spearman rho = 1.00 over 3 doubles"  # the NaN row is left out
    assert [t.get_text() for t in ax.texts] == ["A+B", "C+D", "E+F"]
    assert ax.get_xlabel() == "score" and ax.get_ylabel() == "residual"
    two = plotting.interaction_residuals(table.iloc[:2], x="score", y="residual")
    assert "rho = nan over 2 doubles" in two.axes[0].get_title()
    with pytest.raises(ValueError, match=r"missing column\(s\) \['dcor'\]"):
        plotting.interaction_residuals(table, x="dcor", y="residual")
    with pytest.raises(ValueError, match="fewer than 2 rows"):
        plotting.interaction_residuals(table.iloc[2:], x="score", y="residual")
    plt.close("all")


def test_effect_scatter():
    true = np.array([0.0, 1.0, 2.0, 3.0])
    fig = plotting.effect_scatter({"perfect": true * 2, "no-change": np.zeros(4)}, true, title="T", xlabel="x (log)")
    assert len(fig.axes) == 2 and fig._suptitle.get_text() == "T"
    assert fig.axes[0].get_title() == "perfect: Pearson r = 1.00"
    assert fig.axes[1].get_title() == "no-change: Pearson r = n/a"
    assert fig.axes[0].get_xlabel() == "x (log)"
    offsets = fig.axes[0].collections[0].get_offsets()
    assert np.allclose(offsets[:, 1], true * 2)
    with pytest.raises(ValueError, match="has 3 values but true has 4"):
        plotting.effect_scatter({"m": [1.0, 2.0, 3.0]}, true)
    with pytest.raises(ValueError, match="non-empty dict"):
        plotting.effect_scatter({}, true)
    plt.close("all")


def test_model_comparison_greys_exactly_the_baselines():
    rows = [{"model": m, "metric": "pearson_delta", "gene_set": "all", "mean": v, "sd": 0.0, "n_seeds": 3,
             "ci_low": v, "ci_high": v}
            for m, v in [("mean", 0.2), ("additive", 0.8), ("linear", 0.5), ("meanVAE", 0.6), ("mean-shift (seed 0)", 0.3)]]
    fig = plotting.model_comparison(pd.DataFrame(rows), metrics=[("pearson_delta", "all")])
    colors = [tuple(np.round(matplotlib.colors.to_rgb(line.get_color()), 3))
              for line in fig.axes[0].lines if line.get_marker() == "o"]
    grey = tuple(np.round(matplotlib.colors.to_rgb("0.55"), 3))
    assert [c == grey for c in colors] == [True, True, False, False, True]


def test_latent_figures_draw_every_panel_and_refuse_mismatched_cells():
    import matplotlib

    matplotlib.use("Agg")
    rng = np.random.default_rng(0)
    spaces = {"PCA": rng.normal(size=(60, 5)), "salient": rng.normal(size=(60, 2))}
    fig = tk.plotting.latent_scatter(spaces, {"score": rng.uniform(size=60), "label": np.repeat(list("abcdef"), 10)},
                                     max_categories=3, max_cells=40)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert len(panels) == 4 and panels[-1].get_legend() is not None
    assert [t.get_text() for t in panels[-1].get_legend().get_texts()][-1] == "other"  # 2 labels in colour, the rest grey
    with pytest.raises(ValueError, match="same cells"):
        tk.plotting.latent_scatter({"a": np.zeros((5, 2))}, {"x": np.zeros(4)})
    with pytest.raises(ValueError, match="at least one space"):
        tk.plotting.latent_scatter({}, {"x": np.zeros(4)})
    summary = pd.DataFrame({"space": ["PCA", "salient"], "label": ["replicate"] * 2, "mean": [0.5, 0.4],
                            "ci_low": [np.nan, 0.3], "ci_high": [np.nan, 0.5]})
    fig = tk.plotting.space_scores(summary, chance={"replicate": 1 / 3})
    assert len(fig.axes) == 1 and fig.axes[0].get_lines()[-1].get_ydata()[0] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="space"):
        tk.plotting.space_scores(summary.drop(columns="space"))
