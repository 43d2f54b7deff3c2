"""Tests of tutorial_kit.models.dose: held-out doses, the interpolation baselines, curves and scores.

The references are written out by hand: means of toy cells and linear interpolation in log10 dose.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import tutorial_kit as tk
from tutorial_kit.models import DoseInterpolation, NoChange, NotApplicableError, dose_split, evaluate_doses
from tutorial_kit.models.dose import dose_response, observed_dose_response


def _screen() -> ad.AnnData:
    """Control plus 'A' and 'B' at doses 1, 10, 100, 1000; gene 0 rises by log10(dose) under 'A', gene 1 by 2 x under 'B'."""
    rng = np.random.default_rng(0)
    rows, X = [], []
    for p, d in [("control", 0.0)] + [(p, d) for p in "AB" for d in (1.0, 10.0, 100.0, 1000.0)]:
        for _ in range(20):
            x = rng.normal(1.0, 0.05, 4)
            if p == "A":
                x[0] += np.log10(d)
            if p == "B":
                x[1] += 2 * np.log10(d)
            X.append(x)
            rows.append({"perturbation": p, "dose": d, "cell_type": "K562"})
    obs = pd.DataFrame(rows, index=[f"c{i}" for i in range(len(rows))])
    return ad.AnnData(np.clip(np.array(X, dtype=np.float32), 0, None), obs=obs,
                      var=pd.DataFrame(index=[f"g{i}" for i in range(4)]))


def test_dose_split_holds_out_whole_doses_and_refuses_bad_input():
    data = _screen()
    split = dose_split(data, hold_out=[10.0, 100.0])
    assert split.held_out == (10.0, 100.0)
    assert set(split.test.obs["dose"]) == {10.0, 100.0} and split.test.n_obs == 2 * 2 * 20
    assert set(split.train.obs["dose"]) == {0.0, 1.0, 1000.0} and split.ctrl.n_obs == 20
    assert (split.ctrl.obs["perturbation"] == "control").all()
    summary = split.summary()
    assert summary["cells"].sum() == data.n_obs and set(summary["part"]) == {"train", "test"}
    with pytest.raises(ValueError, match=r"dose\(s\) \[5.0\] were not measured"):
        dose_split(data, hold_out=[5.0])
    with pytest.raises(ValueError, match="no dose left for training"):
        dose_split(data, hold_out=[1.0, 10.0, 100.0, 1000.0])
    with pytest.raises(ValueError, match="one or more measured doses"):
        dose_split(data, hold_out=[])
    bad = data.copy()
    bad.obs.loc[bad.obs_names[0], "dose"] = 3.0
    with pytest.raises(ValueError, match="control cells must have dose 0"):
        dose_split(bad, hold_out=[10.0])
    text = data.copy()
    text.obs["dose"] = text.obs["dose"].astype(str).replace({"10.0": "ten"})
    with pytest.raises(ValueError, match=r"must hold one number >= 0 per cell.*'ten'"):
        dose_split(text, hold_out=[1.0])
    with pytest.raises(ValueError, match=r"missing column\(s\) \['concentration'\]"):
        dose_split(data, hold_out=[1.0], dose_key="concentration")


def test_interpolation_is_linear_in_log_dose_and_nearest_picks_the_closest():
    split = dose_split(_screen(), hold_out=[10.0, 100.0])
    linear = DoseInterpolation().fit(split.train, progress=False)
    nearest = DoseInterpolation(method="nearest").fit(split.train, progress=False)
    assert (linear.name, nearest.name) == ("interpolation", "nearest dose")
    measured, shifts = linear.curves_["A"]
    assert measured.tolist() == [1.0, 1000.0]
    # between 1 and 1000 the interpolated change of gene 0 is (log10 d / 3) of the change at 1000
    for d in (10.0, 100.0):
        np.testing.assert_allclose(linear.shift("A", d), shifts[0] + (np.log10(d) / 3) * (shifts[1] - shifts[0]))
    np.testing.assert_allclose(nearest.shift("A", 10.0), shifts[0])
    np.testing.assert_allclose(nearest.shift("A", 100.0), shifts[1])
    np.testing.assert_allclose(linear.shift("A", 0.5), 0.5 * shifts[0])  # below the range: towards control
    np.testing.assert_allclose(linear.shift("A", 1e5), shifts[1])  # above: flat
    assert not linear.shift("A", 0.0).any()
    pred = linear.predict_dose(split.ctrl, "A", 100.0)
    assert set(pred.obs["dose"]) == {100.0} and pred.obs["predicted"].all()
    np.testing.assert_allclose(pred.X, split.ctrl.X + linear.shift("A", 100.0), rtol=1e-6)
    np.testing.assert_allclose(linear.predict(split.ctrl, "A").X, split.ctrl.X + shifts[1], rtol=1e-6)  # top dose
    with pytest.raises(ValueError, match="dose must be a finite number"):
        linear.predict_dose(split.ctrl, "A", -1.0)
    with pytest.raises(NotApplicableError, match="unknown perturbation 'C'"):
        linear.predict_dose(split.ctrl, "C", 1.0)
    with pytest.raises(ValueError, match="method must be"):
        DoseInterpolation(method="cubic")


def test_evaluate_doses_scores_each_held_out_condition_from_control_cells():
    split = dose_split(_screen(), hold_out=[10.0, 100.0])
    models = {"interpolation": DoseInterpolation().fit(split.train, progress=False),
              "nearest dose": DoseInterpolation(method="nearest").fit(split.train, progress=False)}
    table = evaluate_doses(models, split, metrics=["mse_top_de", "pearson_delta"], n_top_de=2)
    assert list(table.columns) == ["model", "seed", "metric", "gene_set", "value", "n_conditions"]
    assert (table["n_conditions"] == 4).all()
    mse = table[table["metric"] == "mse_top_de"].set_index("model")["value"]
    assert mse["interpolation"] < mse["nearest dose"]  # the toy curves are linear in log dose
    rows = evaluate_doses(models, split, metrics=["mse_top_de"], n_top_de=2, per_condition=True)
    assert sorted(set(rows["condition"])) == ["A 10", "A 100", "B 10", "B 100"]
    means = rows.groupby("model")["value"].mean()
    assert means["interpolation"] == pytest.approx(mse["interpolation"])
    summary = tk.models.summarize_seeds(table)
    assert set(summary["model"]) == set(models)
    with pytest.raises(NotApplicableError, match="has no predict_dose"):
        evaluate_doses({"no-change": NoChange().fit(split.train, progress=False)}, split)
    with pytest.raises(ValueError, match="must come from tk.models.dose_split"):
        evaluate_doses(models, "split")
    with pytest.raises(ValueError, match="fitted model"):
        evaluate_doses({"x": DoseInterpolation()}, split)


def test_curves_of_a_model_and_of_real_cells_share_one_scale():
    counts = np.array([[9.0, 1.0], [19.0, 1.0], [39.0, 1.0]], dtype=np.float32)
    obs = pd.DataFrame({"perturbation": ["control", "A", "A"], "dose": [0.0, 1.0, 10.0], "cell_type": "x"},
                       index=["a", "b", "c"])
    data = ad.AnnData(np.log1p(counts), obs=obs)
    observed = observed_dose_response(data, "A", pseudocount=1.0)
    np.testing.assert_allclose(observed["0"], [np.log(20 / 10), np.log(40 / 10)], rtol=1e-6)
    model = DoseInterpolation().fit(data, progress=False)
    ctrl = data[:1].copy()
    curve = dose_response(model, ctrl, "A", [1.0, 10.0], pseudocount=1.0)
    np.testing.assert_allclose(curve.to_numpy(), observed.to_numpy(), rtol=1e-5)
    with pytest.raises(ValueError, match="no cells of 'B'"):
        observed_dose_response(data, "B")
    with pytest.raises(NotApplicableError, match="has no predict_dose"):
        dose_response(NoChange().fit(data, progress=False), ctrl, "A", [1.0])
