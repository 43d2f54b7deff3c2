"""tk.simulate.simulate_screen: the small screen with a known answer (planted knockdowns, escapers, a null guide).

It moved from tk.qc to tk.simulate with the same signature and the same cells: the fingerprint
below was taken from the tk.qc version.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

import tutorial_kit as tk
from tutorial_kit.simulate import simulate_screen


def test_simulate_screen_truth_and_schema():
    a = simulate_screen(effects=(1.5, 0.0), n_cells_per_target=200, n_control=100, n_genes=80,
                        n_response_genes=10, escape_fraction=0.25, seed=4)
    tk.data.check_schema(a)
    tk.validate.check_counts(a)
    assert a.shape == (500, 80) and a.var_names[:2].tolist() == ["TGT1", "TGT2"]
    assert a.obs["escaped"].sum() == pytest.approx(0.25 * 400, abs=30)
    assert not a.obs.loc[a.obs["perturbation"] == "control", "escaped"].any()
    assert len(a.uns["response_genes"]["TGT1"]) == 10 and a.uns["response_genes"]["TGT2"] == []
    assert set(a.obs.loc[a.obs["perturbation"] == "TGT1", "guide"]) == {"TGT1_1", "TGT1_2"}
    b = simulate_screen(effects=(1.5, 0.0), n_cells_per_target=200, n_control=100, n_genes=80,
                        n_response_genes=10, escape_fraction=0.25, seed=4)
    assert (a.layers["counts"] != b.layers["counts"]).nnz == 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"effects": ()}, "effects"),
        ({"effects": (-1.0,)}, "effects"),
        ({"n_genes": 10, "n_response_genes": 15}, "must exceed"),
        ({"escape_fraction": 1.0}, "escape_fraction"),
        ({"knockdown": 1.5}, "knockdown"),
        ({"n_control": 0}, "n_control"),
    ],
)
def test_simulate_screen_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        simulate_screen(**kwargs)


def test_same_cells_as_before_the_move_and_gone_from_qc():
    # taken from tk.qc.simulate_screen before it moved (the screen of notebook 01)
    a = simulate_screen(effects=(2.0, 1.0, 0.0), escape_fraction=0.3, seed=0)
    counts = a.layers["counts"]
    assert (int(counts.sum()), counts.nnz, int(a.obs["escaped"].sum())) == (239467, 56295, 141)
    assert a.uns["response_genes"]["TGT1"][:3] == ["GENE003", "GENE066", "GENE021"]
    assert float(a.X.sum()) == pytest.approx(255404.19, abs=0.01) and a.X.dtype == np.float32
    assert list(inspect.signature(simulate_screen).parameters) == [
        "effects", "n_cells_per_target", "n_control", "n_genes", "n_response_genes", "escape_fraction", "knockdown",
        "seed"]
    assert tk.simulate.simulate_screen is simulate_screen and "simulate_screen" in tk.simulate.__all__
    assert not hasattr(tk.qc, "simulate_screen") and "simulate_screen" not in tk.qc.__all__
