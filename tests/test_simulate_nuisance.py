"""Tests of tutorial_kit.simulate.nuisance: a shared program on a GRN screen."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import tutorial_kit as tk
from tutorial_kit.simulate import add_shared_program


@pytest.fixture(scope="module")
def screen():
    grn = tk.simulate.make_grn(n_genes=120, n_regulators=10, seed=0)
    module0 = [r for r in grn.regulators if grn.module[r] == grn.module[grn.regulators[0]]]
    return tk.simulate.simulate_perturbseq(grn, perturbations=module0[:3], n_cells=150, n_control=150, seed=0)


def test_program_genes_are_untouched_by_the_perturbations_and_the_truth_is_kept(screen):
    out = add_shared_program(screen, n_genes=10, strength=2.0, seed=0)
    genes = out.var_names[out.var["program"].to_numpy()]
    effect = pd.DataFrame(screen.uns["true_effect"])
    assert len(genes) == 10 and (effect[genes] == 0).all().all()
    pd.testing.assert_frame_equal(pd.DataFrame(out.uns["true_effect"]), effect)
    assert out.uns["shared_program"]["genes"] == list(genes)
    # other genes keep their counts exactly; X is recomputed from the new counts
    other = ~out.var["program"].to_numpy()
    np.testing.assert_array_equal(out.layers["counts"][:, other].toarray(), screen.layers["counts"][:, other].toarray())
    np.testing.assert_allclose(out.X.toarray(), tk.data.log1p_cp10k(out.layers["counts"]).toarray())
    assert "program" not in screen.var  # the input is unchanged


def test_program_mean_follows_exp_strength_times_score(screen):
    out = add_shared_program(screen, n_genes=10, strength=2.0, seed=1)
    genes = out.var["program"].to_numpy()
    score = out.obs["program_score"].to_numpy()
    expected = out.obs["size_factor"].to_numpy()[:, None] * out.var["basal"].to_numpy()[genes] * np.exp(2.0 * score)[:, None]
    observed = out.layers["counts"][:, genes].toarray()
    ratio = observed.sum() / expected.sum()
    assert 0.95 < ratio < 1.05
    high, low = score > 0.8, score < 0.2
    assert observed[high].mean() > 4 * observed[low].mean()  # e^2 x at score 1 vs 1 x at 0
    # independent of the perturbation: the score has the same distribution in control and perturbed cells
    control = (out.obs["perturbation"] == "control").to_numpy()
    assert abs(score[control].mean() - score[~control].mean()) < 0.08


def test_seeded(screen):
    a = add_shared_program(screen, n_genes=5, seed=3)
    b = add_shared_program(screen, n_genes=5, seed=3)
    np.testing.assert_array_equal(a.layers["counts"].toarray(), b.layers["counts"].toarray())


def test_errors(screen):
    with pytest.raises(ValueError, match="strength must be a positive"):
        add_shared_program(screen, strength=0)
    with pytest.raises(ValueError, match="fewer than n_genes=1000"):
        add_shared_program(screen, n_genes=1000)
    bare = screen.copy()
    del bare.uns["true_effect"]
    with pytest.raises(ValueError, match=r"no uns\['true_effect'\]"):
        add_shared_program(bare)
    logged = screen.copy()
    logged.layers["counts"] = logged.X.copy()
    with pytest.raises(ValueError, match="log-normalized"):
        add_shared_program(logged)
