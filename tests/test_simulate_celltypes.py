"""Tests of tutorial_kit.simulate.celltypes: cell types that respond differently, with every cell's true effect.

The truth is recomputed independently of the module where it can be: the GRN's expected
expression with the type's and state's offsets, the CP10k transform by hand, and the
composition by counting.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import tutorial_kit as tk
from tutorial_kit.data.schema import check_schema
from tutorial_kit.simulate import cp10k_log1p, make_grn, simulate_cell_type_screen


@pytest.fixture(scope="module")
def grn():
    return make_grn(n_genes=80, n_regulators=8, seed=0)


@pytest.fixture(scope="module")
def screen(grn):
    return simulate_cell_type_screen(grn, n_control=150, n_treated=150, n_markers=4, n_state_genes=4, seed=1)


def test_registered_in_tk_simulate():
    assert tk.simulate.simulate_cell_type_screen is simulate_cell_type_screen
    assert "simulate_cell_type_screen" in tk.simulate.__all__ and "cp10k_log1p" in tk.simulate.__all__


def test_schema_and_composition(screen):
    check_schema(screen)
    obs = screen.obs
    assert set(obs["perturbation"]) == {"control", "TF01"}
    counts = obs.groupby(["perturbation", "cell_type"], observed=True).size()
    assert counts["control"].to_dict() == {"type A": 75, "type B": 45, "type C": 30}
    assert counts["TF01"].to_dict() == {"type A": 30, "type B": 45, "type C": 75}
    assert list(screen.uns["true_type_effect"].index) == ["type A", "type B", "type C"]
    assert screen.layers["counts"].dtype == np.int32


def test_cp10k_log1p_by_hand():
    mu = np.array([[2.0, 6.0, 2.0], [1.0, 1.0, 8.0]])
    assert np.allclose(cp10k_log1p(mu), np.log1p(mu / mu.sum(axis=1, keepdims=True) * 10_000))


def test_true_effect_recomputed_from_the_grn(grn, screen):
    """The stored truth of one treated cell equals the GRN's expected expression with its type's and state's offsets."""
    sim = screen.uns["simulation"]
    desc = screen.var["descendant"].to_numpy()
    for name in screen.obs_names[screen.obs["perturbation"] == "TF01"][:3]:
        cell = screen.obs.loc[name]
        k = sim["cell_types"].index(cell["cell_type"])
        basal = grn.basal.to_numpy().copy()
        basal[(screen.var["marker_of"] == cell["cell_type"]).to_numpy()] *= sim["marker_fold"]
        basal[screen.var["state_gene"].to_numpy()] *= sim["state_fold"] ** cell["state"]
        shifted = dataclasses.replace(grn, basal=pd.Series(basal, index=grn.genes),
                                      offset=grn.offset + desc * (sim["offset_shift"][k] + sim["state_strength"] * cell["state"]))
        treated = shifted.expected_expression("TF01")
        expected = cp10k_log1p(treated) - cp10k_log1p(basal)
        row = screen.obs_names.get_loc(name)
        assert np.allclose(screen.layers["true_effect"][row], expected, atol=1e-5)
        assert np.allclose(screen.layers["true_control"][row], cp10k_log1p(basal), atol=1e-5)


def test_markers_and_state_genes_are_not_reached(grn, screen):
    reached = grn.descendants("TF01") | {"TF01"}
    markers = screen.var_names[screen.var["marker_of"] != ""]
    states = screen.var_names[screen.var["state_gene"]]
    assert len(markers) == 12 and len(states) == 4
    assert not (set(markers) | set(states)) & reached
    # genes the knockout does not reach move only through the compositional (CP10k) shift: by one factor per cell
    unreached = ~screen.var["descendant"].to_numpy() & (screen.var_names != "TF01")
    control = screen.layers["true_control"].astype(float)
    treated = control + screen.layers["true_effect"]
    ratio = np.expm1(treated[:, unreached]) / np.expm1(control[:, unreached])
    assert np.allclose(ratio, ratio[:, :1], rtol=1e-3)
    assert sorted(screen.var_names[screen.var["descendant"]]) == sorted(grn.descendants("TF01"))


def test_cell_types_respond_differently_and_truth_is_the_mean(screen):
    true_type = screen.uns["true_type_effect"]
    desc = screen.var["descendant"].to_numpy()
    norms = np.linalg.norm(true_type.to_numpy()[:, desc], axis=1)
    assert norms.max() - norms.min() > 0.2 * norms.max()  # effects of different size
    treated = (screen.obs["perturbation"] == "TF01").to_numpy()
    for t in true_type.index:
        rows = treated & (screen.obs["cell_type"] == t).to_numpy()
        assert np.allclose(true_type.loc[t], screen.layers["true_effect"][rows].mean(axis=0), atol=1e-5)
    assert np.allclose(screen.obs["true_effect_norm"], np.linalg.norm(screen.layers["true_effect"], axis=1), atol=1e-4)


def test_control_cells_differ_only_in_markers_and_state(screen):
    """In control cells, a type's markers are up by marker_fold and nothing else differs between types."""
    ctrl = (screen.obs["perturbation"] == "control").to_numpy()
    counts = np.asarray(screen.layers["counts"][ctrl].todense(), dtype=float)
    types = screen.obs["cell_type"].to_numpy()[ctrl]
    markers_a = (screen.var["marker_of"] == "type A").to_numpy()
    ratio = counts[types == "type A"][:, markers_a].mean() / counts[types == "type B"][:, markers_a].mean()
    assert 2.5 < ratio < 6.0  # marker_fold 4


def test_no_state_dependence_when_strength_is_zero(grn):
    a = simulate_cell_type_screen(grn, n_control=30, n_treated=30, n_markers=2, n_state_genes=0, state_strength=0.0)
    treated = (a.obs["perturbation"] == "TF01").to_numpy()
    for t in a.uns["true_type_effect"].index:
        rows = treated & (a.obs["cell_type"] == t).to_numpy()
        assert np.allclose(a.layers["true_effect"][rows], a.layers["true_effect"][rows][0], atol=1e-5)


def test_seed_fixes_everything(grn):
    kw = dict(n_control=20, n_treated=20, n_markers=2, n_state_genes=2)
    a, b = simulate_cell_type_screen(grn, seed=3, **kw), simulate_cell_type_screen(grn, seed=3, **kw)
    c = simulate_cell_type_screen(grn, seed=4, **kw)
    assert (a.layers["counts"] != b.layers["counts"]).nnz == 0
    assert (a.layers["counts"] != c.layers["counts"]).nnz > 0


def test_activation_and_equal_shares(grn):
    a = simulate_cell_type_screen(grn, kind="activation", cell_types=["x", "y"], offset_shift=[0.0, 1.0],
                                  control_composition=None, treated_composition=None, n_control=20, n_treated=20,
                                  n_markers=2, n_state_genes=2)
    assert set(a.obs["condition"]) == {"control", "activation"}
    assert a.obs.groupby("cell_type", observed=True).size().to_dict() == {"x": 20, "y": 20}


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"perturbation": "G001"}, "one regulator"),
    ({"perturbation": "nope"}, "one regulator"),
    ({"kind": "inhibition"}, "kind must be"),
    ({"cell_types": ["a", "a", "b"]}, "distinct names"),
    ({"offset_shift": [0.0, 1.0]}, "one finite shift per cell type"),
    ({"control_composition": [0.5, 0.5]}, "control_composition must be 3"),
    ({"treated_composition": [1.0, -1.0, 1.0]}, "treated_composition must be 3"),
    ({"n_markers": 30}, "does not reach"),
    ({"marker_fold": 0}, "marker_fold must be"),
    ({"dispersion": -1.0}, "dispersion must be"),
    ({"n_control": 0}, "n_control"),
])
def test_errors(grn, kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate_cell_type_screen(grn, **{"n_control": 20, "n_treated": 20, **kwargs})


def test_grn_must_be_a_grn():
    with pytest.raises(ValueError, match="grn must be a GRN"):
        simulate_cell_type_screen("not a grn")
