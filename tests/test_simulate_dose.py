"""Tests of tutorial_kit.simulate.dose: graded doses on the GRN and their true curves.

The references are independent of the module: the Hill curve written out, the GRN's own
single-strength screen (simulate_perturbseq / expected_expression) at the same activity, and
the observed means of many simulated cells.
"""

from __future__ import annotations

import numpy as np
import pytest

from tutorial_kit.simulate import (
    dose_activity,
    hill,
    make_grn,
    simulate_dose_screen,
    true_dose_response,
)
from tutorial_kit.simulate.grn import observed_effects


@pytest.fixture(scope="module")
def grn():
    return make_grn(n_genes=60, n_regulators=10, seed=1)


def test_hill_and_activity_follow_the_written_formulas():
    d = np.array([0.0, 1.0, 3.0, 30.0])
    np.testing.assert_allclose(hill(d, ec50=3.0, n=2.0), d**2 / (d**2 + 9.0))
    np.testing.assert_allclose(dose_activity(d, ec50=3.0, n=2.0, knockdown=0.1), 1 - 0.9 * d**2 / (d**2 + 9.0))
    np.testing.assert_allclose(dose_activity(d, ec50=3.0, n=2.0, kind="activation", activation=5.0), 1 + 4 * d**2 / (d**2 + 9.0))
    for bad in (dict(ec50=0.0), dict(ec50=1.0, n=-1.0)):
        with pytest.raises(ValueError, match="positive number"):
            hill([1.0], **bad)
    with pytest.raises(ValueError, match="finite numbers >= 0"):
        hill([-1.0], ec50=1.0)
    with pytest.raises(ValueError, match="kind must be"):
        dose_activity([1.0], ec50=1.0, kind="inhibition")
    with pytest.raises(ValueError, match="knockdown must be in"):
        dose_activity([1.0], ec50=1.0, knockdown=1.0)


def test_truth_at_a_dose_is_the_grn_at_that_strength(grn):
    """The curve at dose d equals the GRN's single-strength effect with knockdown c(d): one model, two entry points."""
    doses = [0.0, 0.5, 2.0, 50.0]
    curve = true_dose_response(grn, "TF02", doses, ec50=2.0, n=1.5)
    assert (curve.loc[0.0] == 0).all()
    c = dose_activity(doses, ec50=2.0, n=1.5)
    for dose, factor in zip(doses[1:], c[1:]):
        expected = np.log(grn.expected_expression("TF02", knockdown=float(factor))) - np.log(grn.expected_expression())
        np.testing.assert_allclose(curve.loc[dose].to_numpy(), expected, rtol=1e-12, atol=1e-12)
    moved = set(curve.columns[(curve.abs() > 0).any()])
    assert moved == grn.descendants("TF02") | {"TF02"}  # a dose moves only the target and its descendants
    target = curve["TF02"].to_numpy()
    assert np.all(np.diff(target) < 0)  # a larger dose knocks down more
    shares = true_dose_response(grn, "TF02", doses, ec50=2.0, normalized=True)
    mu = grn.expected_expression("TF02", knockdown=float(c[2]))
    mu0 = grn.expected_expression()
    np.testing.assert_allclose(shares.loc[2.0].to_numpy(), np.log(mu / mu.sum()) - np.log(mu0 / mu0.sum()), rtol=1e-12)
    with pytest.raises(ValueError, match="one gene per label"):
        true_dose_response(grn, "TF01+TF02", [1.0], ec50=1.0)
    with pytest.raises(ValueError, match="not in the network"):
        true_dose_response(grn, "NOPE", [1.0], ec50=1.0)


def test_screen_has_the_layout_the_truth_and_observed_effects_that_match_it(grn):
    ec50 = {"TF01": 1.0, "TF06": 10.0}
    a = simulate_dose_screen(grn, perturbations=list(ec50), doses=[1.0, 10.0, 100.0], ec50=ec50, n_cells=3000,
                             n_control=3000, dispersion=0.1, seed=3)
    assert a.n_obs == 3000 + 2 * 3 * 3000
    assert set(a.obs.loc[a.obs["perturbation"] == "control", "dose"]) == {0.0}
    assert a.obs.loc[a.obs["perturbation"] == "TF06", "condition"].unique().tolist() == ["TF06 1", "TF06 10", "TF06 100"]
    truth = a.uns["true_dose_effect"]
    assert list(truth.index) == [(p, d) for p in ec50 for d in (1.0, 10.0, 100.0)]
    np.testing.assert_allclose(truth.loc[("TF06", 10.0)].to_numpy(),
                               true_dose_response(grn, "TF06", [10.0], ec50=10.0).iloc[0].to_numpy())
    # the observed log fold change of the target at each dose is within sampling error of the truth
    # (a target of about 2 counts knocked down to 0.1: the standard error of a log mean is about 0.03 here)
    observed = a.copy()
    observed.obs["perturbation"] = observed.obs["condition"]
    eff = observed_effects(observed, pseudocount=1e-3)
    for p in ec50:
        for d in (1.0, 10.0, 100.0):
            assert eff.loc[f"{p} {d:g}", p] == pytest.approx(truth.loc[(p, d), p], abs=0.1)
    # TF01 is ten times more potent: at dose 1 its target is knocked down further than TF06's
    assert truth.loc[("TF01", 1.0), "TF01"] < truth.loc[("TF06", 1.0), "TF06"] - 0.3


def test_screen_is_seeded_and_refuses_bad_input(grn):
    kw = {"perturbations": ["TF01"], "doses": [1.0, 2.0], "ec50": 1.0, "n_cells": 10, "n_control": 10}
    a, b = simulate_dose_screen(grn, seed=5, **kw), simulate_dose_screen(grn, seed=5, **kw)
    assert (a.layers["counts"] != b.layers["counts"]).nnz == 0
    assert (a.layers["counts"] != simulate_dose_screen(grn, seed=6, **kw).layers["counts"]).nnz > 0
    bad = [
        (dict(perturbations=[]), "non-empty list"),
        (dict(perturbations=["TF01", "TF01"]), "more than once"),
        (dict(perturbations=["TF01"], doses=[0.0, 1.0]), "distinct and above 0"),
        (dict(perturbations=["TF01"], doses=[1.0, 1.0]), "distinct and above 0"),
        (dict(perturbations=["TF01", "TF02"], ec50={"TF01": 1.0}), r"no value for \['TF02'\]"),
        (dict(perturbations=["TF01"], dispersion=-1.0), "dispersion must be"),
        (dict(perturbations="TF01"), "non-empty list"),
    ]
    for kwargs, message in bad:
        with pytest.raises(ValueError, match=message):
            simulate_dose_screen(grn, **kwargs)
    with pytest.raises(ValueError, match="must be a GRN"):
        simulate_dose_screen("grn", perturbations=["TF01"])


def test_activation_screen_raises_the_target(grn):
    a = simulate_dose_screen(grn, perturbations=["TF03"], doses=[1.0, 100.0], ec50=1.0, kind="activation", n_cells=5)
    truth = a.uns["true_dose_effect"]
    assert 0 < truth.loc[("TF03", 1.0), "TF03"] < truth.loc[("TF03", 100.0), "TF03"] < np.log(4.0)
