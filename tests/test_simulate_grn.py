"""Tests of tutorial_kit.simulate.grn: the GRN-guided Perturb-seq simulator and its ground truth.

The references are independent of the module: reachability by boolean matrix closure, the
regulation function recomputed by hand with scipy's logistic, Welch t-tests and delta-method
standard errors on the simulated counts, and the moments of the negative binomial.
"""

from __future__ import annotations

import anndata as ad
import matplotlib
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy import stats
from scipy.special import expit

matplotlib.use("Agg")


from tutorial_kit import plotting  # noqa: E402
from tutorial_kit.data.schema import check_schema, log1p_cp10k  # noqa: E402
from tutorial_kit.simulate import GRN, make_grn, simulate_perturbseq  # noqa: E402
from tutorial_kit.simulate import grn as grn_module  # noqa: E402
from tutorial_kit.simulate.grn import observed_effects  # noqa: E402


@pytest.fixture(scope="module")
def grn():
    return make_grn(seed=0)


@pytest.fixture(scope="module")
def screen(grn):
    return simulate_perturbseq(grn, seed=0)


@pytest.fixture(scope="module")
def small():
    return make_grn(n_genes=40, n_regulators=6, seed=3)


def _dense(adata, group):
    mask = adata.obs["perturbation"].astype(str).to_numpy() == group
    return adata.layers["counts"][mask].toarray().astype(float)


def _reachability(grn: GRN) -> np.ndarray:
    """Transitive closure of the adjacency matrix (independent of GRN.descendants)."""
    idx = {g: i for i, g in enumerate(grn.genes)}
    adj = np.zeros((len(grn.genes),) * 2, dtype=bool)
    adj[[idx[s] for s in grn.edges["source"]], [idx[t] for t in grn.edges["target"]]] = True
    reach = adj.copy()
    while True:
        nxt = reach | ((reach.astype(int) @ adj.astype(int)) > 0)
        if (nxt == reach).all():
            return reach
        reach = nxt


# --------------------------------------------------------------------------- the network


def test_network_structure(grn):
    regs = set(grn.regulators)
    assert grn.regulators[:2] == ["TF01", "TF02"] and grn.genes[20] == "G001" and len(grn.genes) == 200
    assert set(grn.edges["source"]) <= regs, "only regulators have children"
    assert set(grn.edges.columns) >= {"source", "target", "weight", "sign"}
    assert (np.sign(grn.edges["weight"]) == grn.edges["sign"]).all()
    n_parents = grn.edges.groupby("target").size()
    targets = [g for g in grn.genes if g not in regs]
    assert n_parents.reindex(targets).between(1, 3).all(), "every target has 1..max_parents parents"
    assert all(len(grn.children(r)) >= 1 for r in grn.regulators)
    assert all(any(c not in regs for c in grn.children(r)) for r in grn.regulators), "every regulator has a target child"
    same_module = grn.module[grn.edges["source"]].to_numpy() == grn.module[grn.edges["target"]].to_numpy()
    assert same_module.all(), "edges stay inside modules"
    assert (grn.basal > 0).all() and grn.depth[grn.regulators].max() >= 2, "regulators form cascades"
    assert (n_parents >= 2).sum() > 10, "some targets have two or more regulators"
    assert grn.parents("G001") == sorted(grn.edges.loc[grn.edges["target"] == "G001", "source"])


def test_dag_is_acyclic_and_depth_is_topological(grn):
    depth = grn.depth
    assert (depth[grn.edges["source"]].to_numpy() < depth[grn.edges["target"]].to_numpy()).all()
    assert not np.diag(_reachability(grn)).any(), "no gene reaches itself"


def test_descendants_are_the_transitive_closure(grn):
    reach = _reachability(grn)
    genes = np.array(grn.genes)
    for i, g in enumerate(grn.genes[:20]):
        desc = grn.descendants(g)
        assert desc == set(genes[reach[i]])
        for c in grn.children(g):
            assert grn.descendants(c) <= desc, "descendants are transitive"


def test_designed_pairs(grn):
    d = grn.designed_doubles
    assert d["gate"].tolist() == ["none"] * 4 + list(grn_module.GATES)
    assert sorted(d["knockout"].value_counts().items()) == [("additive", 5), ("buffering", 2), ("synergistic", 1)]
    assert sorted(d["activation"].value_counts().items()) == [("additive", 6), ("buffering", 1), ("synergistic", 1)]
    for a, b, gate in d[["a", "b", "gate"]].itertuples(index=False):
        shared = grn.shared_descendants(a, b)
        if gate == "none":
            assert shared == set() and grn.module[a] != grn.module[b]
        else:
            assert len(shared) == grn_module.GATE_TARGETS
            assert all(grn.parents(t) == sorted([a, b]) for t in shared)
    assert grn.default_perturbations()[:20] == grn.regulators and len(grn.default_perturbations()) == 28


def test_same_seed_same_network_other_seed_differs():
    a, b, c = make_grn(seed=5), make_grn(seed=5), make_grn(seed=6)
    pd.testing.assert_frame_equal(a.edges, b.edges)
    assert np.array_equal(a.basal, b.basal)
    assert not (len(a.edges) == len(c.edges) and np.allclose(a.edges["weight"], c.edges["weight"]))


def test_regulation_function_by_hand(grn):
    """A target with one root parent: mu = basal * h(offset + w * x) / h(offset + w), h a leaky logistic."""
    roots = [r for r in grn.regulators if grn.depth[r] == 0]
    single = [(s, t, w) for s, t, w in grn.edges[["source", "target", "weight"]].itertuples(index=False)
              if s in roots and len(grn.parents(t)) == 1 and t not in grn.regulators]
    assert single
    s, t, w = single[0]
    leak, off = grn.leak, grn.offset[t]

    def h(z):
        return leak + (1 - leak) * expit(z)

    i = grn.genes.index(t)
    for kind, factor in (("knockout", 0.05), ("activation", 4.0)):
        mu = grn.expected_expression(s, kind=kind)
        assert mu[i] == pytest.approx(grn.basal[t] * h(off + w * factor) / h(off + w), rel=1e-12)
        assert mu[grn.genes.index(s)] == pytest.approx(grn.basal[s] * factor, rel=1e-12)
    mu = grn.expected_expression(s, kind="knockout", knockdown=0.3)
    assert mu[i] == pytest.approx(grn.basal[t] * h(off + w * 0.3) / h(off + w), rel=1e-12)


# --------------------------------------------------------------------------- ground truth: knockouts


def test_knockout_truth_moves_exactly_the_descendants(grn):
    eff = grn.true_effects(grn.regulators + ["G005"])
    for reg in grn.regulators:
        moved = set(eff.columns[eff.loc[reg].to_numpy() != 0])
        assert moved == grn.descendants(reg) | {reg}
    assert set(eff.columns[eff.loc["G005"].to_numpy() != 0]) == {"G005"}, "a perturbed target changes only itself"
    assert eff.loc["G005", "G005"] == pytest.approx(np.log(0.05))


def test_knockout_observed_changes_only_descendants(grn, screen):
    """Welch t-tests of log1p(counts) vs control, Bonferroni at 0.05 per perturbation.

    Library size does not depend on the perturbation, so a non-descendant has the same count
    distribution as in control: across the 20 knockouts the expected number of false positives
    is at most 20 * 0.05 = 1.
    """
    ctrl = np.log1p(_dense(screen, "control"))
    genes = np.array(grn.genes)
    false_pos, moved_children = 0, []
    for reg in grn.regulators:
        ko = np.log1p(_dense(screen, reg))
        p = stats.ttest_ind(ko, ctrl, equal_var=False).pvalue
        p = np.where(np.isnan(p), 1.0, p)
        affected = np.isin(genes, list(grn.descendants(reg) | {reg}))
        false_pos += int((p[~affected] < 0.05 / (~affected).sum()).sum())
        children = np.isin(genes, grn.children(reg))
        moved_children.append((p[children] < 0.05 / children.sum()).mean())
        assert ko[:, grn.genes.index(reg)].mean() < 0.5 * ctrl[:, grn.genes.index(reg)].mean(), "the target drops"
    assert false_pos <= 1
    assert np.mean(moved_children) > 0.6 and min(moved_children) >= 0.5, "most direct children move"


# --------------------------------------------------------------------------- ground truth: doubles


def _log_mean(x):
    m = x.mean(axis=0)
    return np.log(m), np.sqrt(x.var(axis=0, ddof=1) / len(x)) / m


def test_double_without_shared_descendants_is_additive(grn, screen):
    table = screen.uns["interactions"]
    additive = table[table["n_shared_descendants"] == 0]
    assert len(additive) == 4 and (additive["label"] == "additive").all()
    assert (additive["interaction_score"] == 0).all() and (additive["residual_norm"] == 0).all()
    truth = screen.uns["true_effect"]
    ctrl = _dense(screen, "control")
    genes = np.array(grn.genes)
    for name, row in additive.iterrows():
        exact = truth.loc[name] - truth.loc[row["a"]] - truth.loc[row["b"]]
        assert (exact.to_numpy() == 0).all(), "truth is exactly additive in log space"
        # observed: log-mean residual within 4 delta-method standard errors on every affected gene
        lc, sc = _log_mean(ctrl)
        la, sa = _log_mean(_dense(screen, row["a"]))
        lb, sb = _log_mean(_dense(screen, row["b"]))
        lab, sab = _log_mean(_dense(screen, name))
        z = (lab - la - lb + lc) / np.sqrt(sab**2 + sa**2 + sb**2 + sc**2)
        affected = np.isin(genes, list(grn.descendants(row["a"]) | grn.descendants(row["b"]) | {row["a"], row["b"]}))
        assert affected.sum() > 30
        assert np.nanmax(np.abs(z[affected])) < 4.0
        # and the singles' observed effects are real: the double is not trivially additive
        assert np.abs((lab - lc)[affected]).max() > 1.0


def test_any_pair_without_shared_descendants_is_exactly_additive(grn):
    pairs = [("TF04", "TF05"), ("TF01", "TF20"), ("TF09", "TF14")]
    eff = grn.true_effects([p for ab in pairs for p in ab] + [f"{a}+{b}" for a, b in pairs])
    for a, b in pairs:
        assert grn.shared_descendants(a, b) == set()
        assert (eff.loc[f"{a}+{b}"] == eff.loc[a] + eff.loc[b]).all()


@pytest.mark.parametrize("kind", ["knockout", "activation"])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_default_screen_has_all_three_labels_as_designed(seed, kind):
    table = make_grn(seed=seed).interactions(kind=kind)
    assert set(table["label"]) == {"additive", "synergistic", "buffering"}
    assert (table["label"] == table["design"]).all()
    interacting = table[table["label"] != "additive"]
    assert (interacting["residual_norm"] > 5 * grn_module.INTERACTION_THRESHOLD).all(), "clearly above the threshold"
    additive = table[table["label"] == "additive"]
    assert (additive["residual_norm"] < 0.6 * grn_module.INTERACTION_THRESHOLD).all(), "clearly below the threshold"


@pytest.fixture(scope="module")
def activation_screen(grn):
    return simulate_perturbseq(grn, kind="activation", seed=1)


@pytest.mark.parametrize("kind", ["knockout", "activation"])
def test_synergy_and_buffering_have_the_claimed_sign(grn, screen, activation_screen, kind):
    screen = screen if kind == "knockout" else activation_screen
    table = screen.uns["interactions"]
    assert set(table["label"]) == {"additive", "synergistic", "buffering"}
    truth = screen.uns["true_effect"]
    obs = observed_effects(screen)
    genes = np.array(grn.genes)
    for name, row in table[table["label"] != "additive"].iterrows():
        shared = np.isin(genes, list(grn.shared_descendants(row["a"], row["b"])))
        want = 1 if row["label"] == "synergistic" else -1
        assert np.sign(row["interaction_score"]) == want
        for eff in (truth, obs):
            double = np.abs(eff.loc[name].to_numpy()[shared]).sum()
            additive = np.abs((eff.loc[row["a"]] + eff.loc[row["b"]]).to_numpy()[shared]).sum()
            assert np.sign(double - additive) == want
        residual = (truth.loc[name] - truth.loc[row["a"]] - truth.loc[row["b"]]).to_numpy()
        assert row["residual_norm"] == pytest.approx(np.linalg.norm(residual))
        assert (residual[~shared] == 0).all(), "non-additivity lives on the shared descendants only"


def test_activation_has_the_opposite_sign_of_knockout(grn):
    """On every single-parent child, knockout moves it against the edge sign and activation with it."""
    checked = 0
    for s, t, w in grn.edges[["source", "target", "weight"]].itertuples(index=False):
        if len(grn.parents(t)) != 1:
            continue
        i = grn.genes.index(t)
        ko = np.log(grn.expected_expression(s, kind="knockout")[i] / grn.basal[t])
        up = np.log(grn.expected_expression(s, kind="activation")[i] / grn.basal[t])
        assert np.sign(ko) == -np.sign(w) and np.sign(up) == np.sign(w)
        checked += 1
    assert checked > 20


# --------------------------------------------------------------------------- the screen


def test_screen_schema(grn, screen):
    check_schema(screen)
    assert screen.shape == (300 + 28 * 100, 200)
    counts = screen.layers["counts"]
    assert sp.isspmatrix_csr(counts) or isinstance(counts, sp.csr_array)
    assert counts.dtype == np.int32
    assert np.allclose(screen.X.toarray(), log1p_cp10k(counts).toarray())
    obs = screen.obs
    assert obs["perturbation"].value_counts()["control"] == 300 and obs["perturbation"].value_counts()["TF02+TF03"] == 100
    assert set(obs.loc[obs["perturbation"] == "control", "condition"]) == {"control"}
    assert set(obs.loc[obs["perturbation"] != "control", "condition"]) == {"knockout"}
    assert set(obs["cell_type"]) == {"simulated"} and set(obs["dataset"]) == {"simulated:grn"}
    assert screen.var["is_regulator"].sum() == 20 and screen.var["is_regulator"].iloc[0]
    assert list(screen.uns["true_effect"].index) == grn.default_perturbations()
    assert list(screen.uns["true_effect"].columns) == grn.genes
    assert screen.uns["simulation"]["kind"] == "knockout" and screen.uns["simulation"]["seed"] == 0
    assert len(screen.uns["grn_edges"]) == len(grn.edges)


def test_counts_follow_the_negative_binomial(small):
    """Control counts with a fixed library: mean basal, variance mean + dispersion * mean^2."""
    a = simulate_perturbseq(small, perturbations=["TF01"], n_cells=1, n_control=4000, dispersion=0.2,
                            library_sdlog=0.0, seed=1)
    x = _dense(a, "control")
    mu = small.basal.to_numpy()
    se = np.sqrt((mu + 0.2 * mu**2) / len(x))
    assert np.abs(x.mean(axis=0) - mu).max() < 4.5 * se.max()
    ratio = x.var(axis=0, ddof=1) / (mu + 0.2 * mu**2)
    assert 0.85 < np.median(ratio) < 1.15
    p = simulate_perturbseq(small, perturbations=["TF01"], n_cells=1, n_control=4000, dispersion=0.0,
                            library_sdlog=0.0, seed=1)
    ratio = _dense(p, "control").var(axis=0, ddof=1) / mu
    assert 0.9 < np.median(ratio) < 1.1, "dispersion=0 is Poisson"


def test_library_size_sets_the_mean_total(small):
    a = simulate_perturbseq(small, perturbations=["G001"], n_cells=1, n_control=2000, library_size=5000.0, seed=2)
    totals = np.asarray(a.layers["counts"][(a.obs["perturbation"] == "control").to_numpy()].sum(axis=1)).ravel()
    assert totals.mean() == pytest.approx(5000, rel=0.03)
    assert a.uns["simulation"]["library_size"] == pytest.approx(5000)
    assert a.obs["size_factor"].mean() == pytest.approx(5000 / small.basal.sum(), rel=0.03)


def test_same_seed_same_counts_other_seed_differs(small):
    kw = {"perturbations": ["TF02", "TF03", "TF02+TF03"], "n_cells": 20, "n_control": 20}
    a, b = simulate_perturbseq(small, seed=4, **kw), simulate_perturbseq(small, seed=4, **kw)
    c = simulate_perturbseq(small, seed=5, **kw)
    assert (a.layers["counts"] != b.layers["counts"]).nnz == 0
    assert (a.layers["counts"] != c.layers["counts"]).nnz > 0
    pd.testing.assert_frame_equal(a.uns["true_effect"], c.uns["true_effect"])


def test_sampling_in_blocks_gives_the_same_counts(small, monkeypatch):
    kw = {"perturbations": ["TF02"], "n_cells": 30, "n_control": 30, "seed": 7}
    whole = simulate_perturbseq(small, **kw)
    monkeypatch.setattr(grn_module, "_CHUNK", 100)
    blocks = simulate_perturbseq(small, progress=True, **kw)
    assert (whole.layers["counts"] != blocks.layers["counts"]).nnz == 0


def test_activation_screen_and_perturbed_target(small):
    a = simulate_perturbseq(small, perturbations=["TF01", "G010"], kind="activation", n_cells=200, n_control=200)
    assert set(a.obs["condition"]) == {"activation", "control"}
    assert len(a.uns["interactions"]) == 0
    eff = observed_effects(a)
    assert eff.loc["TF01", "TF01"] == pytest.approx(np.log(4), abs=0.15)
    assert eff.loc["G010", "G010"] == pytest.approx(np.log(4), abs=0.15)


def test_h5ad_round_trip(screen, tmp_path):
    path = tmp_path / "grn.h5ad"
    screen.write_h5ad(path)
    back = ad.read_h5ad(path)
    assert (back.layers["counts"] != screen.layers["counts"]).nnz == 0
    pd.testing.assert_frame_equal(back.uns["true_effect"], screen.uns["true_effect"], check_names=False)
    pd.testing.assert_frame_equal(back.uns["interactions"], screen.uns["interactions"], check_names=False)
    pd.testing.assert_frame_equal(back.uns["grn_edges"], screen.uns["grn_edges"])
    assert back.uns["simulation"]["kind"] == "knockout"


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_regulators": 5}, "n_regulators"),
        ({"n_regulators": True}, "n_regulators"),
        ({"n_genes": 30, "n_regulators": 20}, "n_genes >= "),
        ({"max_parents": 1}, "max_parents"),
        ({"p_activation": 1.5}, "p_activation"),
        ({"p_activation": "high"}, "p_activation"),
        ({"seed": -1}, "seed"),
    ],
)
def test_make_grn_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_grn(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"perturbations": ["TF01", "XYZ"]}, r"Known regulators: \['TF01'"),
        ({"perturbations": ["TF01+NOPE"]}, "NOPE"),
        ({"perturbations": [3]}, "string"),
        ({"perturbations": []}, "empty"),
        ({"perturbations": ["control"]}, "n_control"),
        ({"perturbations": ["TF02+TF01", "TF01+TF02"]}, "more than once"),
        ({"kind": "inhibition"}, "kind"),
        ({"n_cells": 0}, "n_cells"),
        ({"n_cells": 2.5}, "n_cells"),
        ({"n_control": 0}, "n_control"),
        ({"dispersion": -0.1}, "dispersion"),
        ({"library_size": 0}, "library_size"),
        ({"library_sdlog": -1}, "library_sdlog"),
        ({"knockdown": 0}, "knockdown"),
        ({"knockdown": 1}, "knockdown"),
        ({"knockdown": float("nan")}, "knockdown"),
        ({"activation": 1.0}, "activation"),
        ({"interaction_threshold": -1}, "threshold"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_simulate_errors(small, kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate_perturbseq(small, **{"n_cells": 2, "n_control": 2, **kwargs})


def test_other_errors(small):
    with pytest.raises(ValueError, match="GRN from tk.simulate.make_grn"):
        simulate_perturbseq("not a grn")
    with pytest.raises(ValueError, match="not a gene of this network"):
        small.descendants("TF99")
    with pytest.raises(ValueError, match="doubles 'A\\+B'"):
        small.interactions(["TF01"])
    with pytest.raises(ValueError, match="kind"):
        small.expected_expression("TF01", kind="crispri")
    a = simulate_perturbseq(small, perturbations=["TF01"], n_cells=3, n_control=3)
    with pytest.raises(ValueError, match="pseudocount"):
        observed_effects(a, pseudocount=0)
    with pytest.raises(ValueError, match="raw counts"):
        observed_effects(a, layer="missing")


def test_a_cycle_is_reported():
    edges = pd.DataFrame({"source": ["A", "B"], "target": ["B", "A"], "weight": [1.0, 1.0], "sign": [1, 1]})
    s = pd.Series([1.0, 1.0], index=["A", "B"])
    cyclic = GRN(genes=["A", "B"], regulators=["A", "B"], edges=edges, basal=s, offset=s, module=s,
                 designed_doubles=pd.DataFrame(columns=["a", "b", "design"]))
    with pytest.raises(ValueError, match="cycle"):
        cyclic.expected_expression("A")


# --------------------------------------------------------------------------- plots


def test_grn_network_plot(grn):
    fig = plotting.grn_network(grn, highlight="TF03+TF02")
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    n_down = len((grn.descendants("TF02") | grn.descendants("TF03")) - {"TF02", "TF03"})
    assert f"descendants ({n_down})" in labels and "perturbed: TF02+TF03" in labels
    points = sum(len(c.get_offsets()) for c in ax.collections if c.get_offsets().shape[0] > 2)
    assert points == len(grn.genes)
    assert len(plotting.grn_network(grn).axes) == 1
    with pytest.raises(ValueError, match="GRN"):
        plotting.grn_network("nope")
    with pytest.raises(ValueError, match="Known regulators"):
        plotting.grn_network(grn, highlight="TF99")


def test_true_effects_plot(screen):
    fig = plotting.true_effects(screen, perturbations=["TF01", "TF07", "TF01+TF07"], top=12)
    ax = fig.axes[0]
    genes = [t.get_text() for t in ax.get_xticklabels()]
    assert len(genes) == 12 and [t.get_text() for t in ax.get_yticklabels()] == ["TF01", "TF07", "TF01+TF07"]
    shown = ax.get_images()[0].get_array()
    assert np.allclose(shown, screen.uns["true_effect"].loc[["TF01", "TF07", "TF01+TF07"], genes].to_numpy())
    assert len(fig.axes) == 2, "heatmap and colour bar"
    with pytest.raises(ValueError, match="top"):
        plotting.true_effects(screen, top=0)
    with pytest.raises(ValueError, match="not in this screen"):
        plotting.true_effects(screen, perturbations="TF99")
    with pytest.raises(ValueError, match="simulate_perturbseq"):
        plotting.true_effects(ad.AnnData(np.zeros((1, 1))))


def test_interaction_scatter_plot(screen):
    fig = plotting.interaction_scatter(screen)
    assert len(fig.axes) == 2
    truth = screen.uns["true_effect"]
    table = screen.uns["interactions"]
    expected = sum(int((truth.loc[d] != 0).sum()) for d in table.index)
    for ax in fig.axes:
        assert sum(len(c.get_offsets()) for c in ax.collections) == expected
        assert "additive prediction" in ax.get_xlabel()
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels[:3] == [f"{lab} ({(table['label'] == lab).sum()})" for lab in ("additive", "synergistic", "buffering")]
    assert (table["label"] == "additive").sum() == 5
    singles_only = simulate_perturbseq(make_grn(n_genes=40, n_regulators=6), perturbations=["TF02+TF03"],
                                       n_cells=2, n_control=2)
    with pytest.raises(ValueError, match="singles"):
        plotting.interaction_scatter(singles_only)
