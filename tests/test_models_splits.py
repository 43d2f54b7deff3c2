"""Tests of tutorial_kit.models.splits: perturbation-level splits, their promises, and tuning data."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import tutorial_kit as tk
from tutorial_kit.data.schema import perturbation_parts
from tutorial_kit.models.splits import (
    SPLIT_KINDS,
    PerturbationSplit,
    TuningData,
    assert_disjoint,
    perturbation_split,
    tuning_data,
)

DOUBLE_KINDS = [k for k in SPLIT_KINDS if k.startswith("double")]


def _synthetic(labels_per_cond: dict[str, int] | None = None, n_genes: int = 4, seed: int = 0) -> ad.AnnData:
    """Control, 6 singles A..F and 8 doubles covering 2, 1 and 0 measured singles (X, Y, Z, W unmeasured)."""
    if labels_per_cond is None:
        conds = ["control"] + list("ABCDEF") + ["A+B", "C+D", "E+F", "A+C", "A+X", "B+Y", "X+Z", "W+Y"]
        labels_per_cond = {c: (10 if c == "control" else 3) for c in conds}
    labels = [c for c, n in labels_per_cond.items() for _ in range(n)]
    rng = np.random.default_rng(seed)
    obs = pd.DataFrame({"perturbation": labels, "cell_type": "K562"}, index=[f"cell{i}" for i in range(len(labels))])
    return ad.AnnData(rng.normal(size=(len(labels), n_genes)).astype(np.float32), obs=obs)


@pytest.fixture(scope="module")
def norman():
    return tk.data.load_perturbench_devel("norman19")


def _check_promises(split: PerturbationSplit, adata: ad.AnnData) -> None:
    """The promises checked here independently of assert_disjoint."""
    parts = {n: getattr(split, n) for n in ("train", "val", "test", "ctrl")}
    names = {n: set(p.obs_names) for n, p in parts.items()}
    for a in names:
        for b in names:
            if a < b:
                assert not names[a] & names[b], (a, b)
    lists = [set(split.train_perturbations), set(split.val_perturbations), set(split.test_perturbations),
             set(split.excluded_perturbations)]
    assert sum(map(len, lists)) == len(set.union(*lists))
    assert split.val_perturbations and split.test_perturbations
    # every cell is in exactly one part or in an excluded perturbation
    n_parts = sum(p.n_obs for p in parts.values()) + sum(split.excluded_perturbations.values())
    assert n_parts == adata.n_obs
    assert set(split.ctrl.obs["perturbation"].astype(str)) == {"control"}
    assert "control" in set(split.train.obs["perturbation"].astype(str))
    train_singles = {p for p in split.train_perturbations if "+" not in p}
    train_genes = {g for p in split.train_perturbations for g in perturbation_parts(p)}
    held = split.val_perturbations + split.test_perturbations
    if split.kind == "unseen_single":
        assert all("+" not in p for p in held)
        assert not set(held) & train_genes
    else:
        k = int(split.kind[-1])
        for p in held:
            genes = perturbation_parts(p)
            assert len(genes) == 2
            assert sum(g in train_singles for g in genes) == k, p
            assert not {g for g in genes if g not in train_singles} & train_genes, p
        summary = split.summary()
        assert (summary.loc[summary["part"] == "test", "n_singles_seen"] == k).all()
    assert_disjoint(split)


# --------------------------------------------------------------------------- promises on the real data


NORMAN_SEED0 = {  # (train cells, val cells, test cells, ctrl cells, n train perts, n val, n test, n excluded)
    "unseen_single": (2030, 500, 495, 50, 20, 5, 5, 3),
    "double_seen2": (3125, 100, 100, 50, 31, 1, 1, 0),
    "double_seen1": (2625, 200, 200, 50, 26, 2, 2, 3),
    "double_seen0": (2345, 400, 380, 50, 23, 4, 4, 2),
}


@pytest.mark.parametrize("kind", SPLIT_KINDS)
def test_norman19_every_kind_keeps_its_promises(norman, kind):
    split = perturbation_split(norman, kind=kind, seed=0)
    assert isinstance(split, PerturbationSplit) and split.kind == kind and split.seed == 0
    _check_promises(split, norman)
    got = (split.train.n_obs, split.val.n_obs, split.test.n_obs, split.ctrl.n_obs, len(split.train_perturbations),
           len(split.val_perturbations), len(split.test_perturbations), len(split.excluded_perturbations))
    assert got == NORMAN_SEED0[kind]
    assert list(split.train.var_names) == list(norman.var_names)


@pytest.mark.parametrize("kind", SPLIT_KINDS)
def test_norman19_promises_hold_for_many_seeds(norman, kind):
    for seed in range(1, 16):
        _check_promises(perturbation_split(norman, kind=kind, seed=seed), norman)


def test_norman19_unseen_single_excludes_doubles_with_held_out_singles(norman):
    split = perturbation_split(norman, kind="unseen_single", seed=0)
    held = set(split.val_perturbations) | set(split.test_perturbations)
    for p in split.excluded_perturbations:
        assert "+" in p and set(perturbation_parts(p)) & held
    # doubles whose genes are not held out stay in training (e.g. the never-measured pairs)
    assert "PTPN12+PTPN9" in split.train_perturbations


def test_norman19_seen1_and_seen0_remove_singles_from_training(norman):
    """Beyond the naturally seen-0 doubles, a seen-0 split removes the measured singles of its doubles."""
    split = perturbation_split(norman, kind="double_seen0", seed=0)
    removed = [p for p in split.excluded_perturbations if "+" not in p]
    assert removed == ["MAPK1"] and "CNN1+MAPK1" in split.val_perturbations + split.test_perturbations


def test_seed_reproducible_and_different(norman):
    for kind in SPLIT_KINDS:
        a = perturbation_split(norman, kind=kind, seed=3)
        b = perturbation_split(norman, kind=kind, seed=3)
        assert a.test_perturbations == b.test_perturbations and a.val_perturbations == b.val_perturbations
        assert list(a.train.obs_names) == list(b.train.obs_names)
        assert list(a.ctrl.obs_names) == list(b.ctrl.obs_names)
        draws = {tuple(perturbation_split(norman, kind=kind, seed=s).test_perturbations) for s in range(6)}
        assert len(draws) > 1, kind
    c0, c1 = (set(perturbation_split(norman, kind="double_seen2", seed=s).ctrl.obs_names) for s in (0, 1))
    assert c0 != c1


def test_ctrl_depends_on_seed_only(norman):
    ctrls = {tuple(perturbation_split(norman, kind=k, seed=2).ctrl.obs_names) for k in SPLIT_KINDS}
    assert len(ctrls) == 1


@pytest.mark.parametrize("fraction, n_ctrl", [(0.2, 20), (0.5, 50), (0.9, 90)])
def test_ctrl_fraction(norman, fraction, n_ctrl):
    split = perturbation_split(norman, kind="double_seen2", ctrl_fraction=fraction, seed=0)
    n_train_ctrl = int((split.train.obs["perturbation"] == "control").sum())
    assert (split.ctrl.n_obs, n_train_ctrl) == (n_ctrl, 100 - n_ctrl)


def test_input_not_modified(norman):
    before = norman.obs.copy()
    perturbation_split(norman, kind="double_seen1", seed=0)
    pd.testing.assert_frame_equal(norman.obs, before)


# --------------------------------------------------------------------------- synthetic data


@pytest.mark.parametrize("kind", SPLIT_KINDS)
def test_synthetic_every_kind_many_seeds(kind):
    adata = _synthetic()
    for seed in range(25):
        _check_promises(perturbation_split(adata, kind=kind, seed=seed), adata)


def test_synthetic_seen1_draws_natural_doubles_first():
    adata = _synthetic()
    split = perturbation_split(adata, kind="double_seen1", test_fraction=0.2, val_fraction=0.2, seed=0)
    # 7 eligible doubles -> 1 + 1 held out; the naturally seen-1 doubles A+X and B+Y come first
    assert sorted(split.val_perturbations + split.test_perturbations) == ["A+X", "B+Y"]
    assert not [p for p in split.excluded_perturbations if "+" not in p]  # no single was removed


def test_b_plus_a_is_one_condition():
    labels = {"ctrl": 4, "NT": 4, "A": 2, "B": 2, "C": 2, "D": 2, "B+A": 3, "A+B": 2, "C+D": 2, "D+C": 1,
              "A+C": 2, "B+D": 2}
    adata = _synthetic(labels)
    split = perturbation_split(adata, kind="double_seen2", seed=0)
    every = split.train_perturbations + split.val_perturbations + split.test_perturbations
    assert "B+A" not in every and "D+C" not in every
    assert sorted(p for p in every if "+" in p) == ["A+B", "A+C", "B+D", "C+D"]
    summary = split.summary()
    cells = summary.groupby("perturbation")["n_cells"].sum()
    assert cells["A+B"] == 5 and cells["C+D"] == 3 and cells["control"] == 8
    for part in (split.train, split.val, split.test, split.ctrl):
        assert not {"B+A", "D+C", "ctrl", "NT"} & set(part.obs["perturbation"].astype(str))


def test_custom_control_label():
    labels = {"DMSO_0": 6, "A": 2, "B": 2, "C": 2, "D": 2}
    split = perturbation_split(_synthetic(labels), kind="unseen_single", seed=0, control="DMSO_0")
    assert split.ctrl.n_obs == 3 and set(split.ctrl.obs["perturbation"]) == {"control"}
    assert "DMSO_0" not in split.train_perturbations


def test_summary_columns_and_counts(norman):
    split = perturbation_split(norman, kind="double_seen1", seed=0)
    s = split.summary()
    assert list(s.columns) == ["perturbation", "part", "n_cells", "n_perturbations", "n_singles_seen"]
    assert s["n_cells"].sum() == norman.n_obs
    assert set(s["part"]) == {"train", "val", "test", "ctrl", "excluded"}
    assert s.loc[s["perturbation"] == "control", "n_perturbations"].eq(0).all()
    assert s.loc[s["n_perturbations"] == 1, "n_singles_seen"].isna().all()
    assert (s.loc[s["part"] == "val", "n_singles_seen"] == 1).all()
    assert split.n_seen == 1 and perturbation_split(norman, kind="unseen_single", seed=0).n_seen is None


# --------------------------------------------------------------------------- tuning never sees test cells


def test_tuning_never_sees_test_cells(norman):
    """A real (mean-effect) objective built from tuning_data reads only train, val and ctrl cells."""
    split = perturbation_split(norman, kind="double_seen1", seed=0)
    seen: set[str] = set()

    def read(a: ad.AnnData) -> np.ndarray:
        seen.update(a.obs_names)
        x = a.X.toarray() if sp.issparse(a.X) else a.X
        return np.asarray(x, dtype=np.float64)

    def objective(tune: TuningData, shrink: float) -> float:
        labels = tune.train.obs[tune.perturbation_key].astype(str).to_numpy()
        x_train = read(tune.train)
        control = x_train[labels == "control"].mean(axis=0)
        effect = np.mean([x_train[labels == p].mean(axis=0) - control for p in set(labels) - {"control"}], axis=0)
        pred = read(tune.ctrl).mean(axis=0) + shrink * effect
        val_labels = tune.val.obs[tune.perturbation_key].astype(str).to_numpy()
        x_val = read(tune.val)
        return float(np.mean([np.mean((x_val[val_labels == p].mean(axis=0) - pred) ** 2)
                              for p in tune.val_perturbations]))

    tune = tuning_data(split)
    assert isinstance(tune, TuningData) and tune.val_perturbations == split.val_perturbations
    scores = {s: objective(tune, s) for s in (0.0, 0.5, 1.0)}
    assert len(set(scores.values())) == 3  # the objective depends on the hyperparameter
    assert seen and not seen & set(split.test.obs_names)
    allowed = set(split.train.obs_names) | set(split.val.obs_names) | set(split.ctrl.obs_names)
    assert seen == allowed
    assert not set(tune.val.obs_names) & set(split.test.obs_names)


def test_tuning_data_refuses_a_leaky_split(norman):
    split = perturbation_split(norman, kind="unseen_single", seed=0)
    leaky = split._replace(val=split.test, val_perturbations=split.test_perturbations)
    with pytest.raises(AssertionError, match="in both val and test"):
        tuning_data(leaky)


# --------------------------------------------------------------------------- assert_disjoint catches broken splits


@pytest.fixture(scope="module")
def synth_split():
    adata = _synthetic()
    return adata, perturbation_split(adata, kind="double_seen1", seed=0)


def test_assert_disjoint_method(synth_split):
    _, split = synth_split
    split.assert_disjoint()
    with pytest.raises(AssertionError, match="validation|val part has no perturbations"):
        split._replace(val_perturbations=[], val=split.val[:0]).assert_disjoint()


def test_assert_disjoint_catches_label_mismatch(synth_split):
    _, split = synth_split
    with pytest.raises(AssertionError, match="the test cells have labels"):
        assert_disjoint(split._replace(test=split.val))


def test_assert_disjoint_catches_shared_cells(synth_split):
    _, split = synth_split
    train_ctrl = split.train[split.train.obs["perturbation"] == "control"]
    with pytest.raises(AssertionError, match="cell\\(s\\) are in both train and ctrl"):
        assert_disjoint(split._replace(ctrl=train_ctrl))


def test_assert_disjoint_catches_wrong_seen_count(norman):
    split = perturbation_split(norman, kind="double_seen2", seed=0)
    with pytest.raises(AssertionError, match="promised 1"):
        assert_disjoint(split._replace(kind="double_seen1"))


def test_assert_disjoint_catches_leaked_gene(synth_split):
    adata, split = synth_split
    leak = next(p for p in split.excluded_perturbations if "+" in p)
    extra = adata[adata.obs["perturbation"] == leak].copy()
    extra.obs["perturbation"] = pd.Categorical([leak] * extra.n_obs)
    train = ad.concat([split.train, extra])
    broken = split._replace(train=train, train_perturbations=sorted(split.train_perturbations + [leak]),
                            excluded_perturbations={k: v for k, v in split.excluded_perturbations.items() if k != leak})
    with pytest.raises(AssertionError, match="appear in training"):
        assert_disjoint(broken)


# --------------------------------------------------------------------------- errors


def test_error_missing_column(norman):
    with pytest.raises(ValueError, match="missing column"):
        perturbation_split(norman, kind="unseen_single", perturbation_key="guide")


def test_error_no_control_cells():
    adata = _synthetic({"A": 3, "B": 3, "C": 3, "D": 3})
    with pytest.raises(ValueError, match="0 control cell"):
        perturbation_split(adata, kind="unseen_single")
    with pytest.raises(ValueError, match="1 control cell"):
        perturbation_split(_synthetic({"control": 1, "A": 3, "B": 3, "C": 3}), kind="unseen_single")


def test_error_unknown_kind(norman):
    with pytest.raises(ValueError, match="unknown kind 'seen2'"):
        perturbation_split(norman, kind="seen2")


@pytest.mark.parametrize("option, value", [
    ("test_fraction", 0.0), ("test_fraction", 1.0), ("val_fraction", -0.1), ("val_fraction", 1.5),
    ("ctrl_fraction", 0), ("ctrl_fraction", 1), ("test_fraction", True), ("val_fraction", "0.2"),
])
def test_error_fraction_out_of_range(norman, option, value):
    with pytest.raises(ValueError, match=f"{option} must be a number strictly between 0 and 1"):
        perturbation_split(norman, kind="unseen_single", **{option: value})


def test_error_fractions_sum(norman):
    with pytest.raises(ValueError, match="must be below 1"):
        perturbation_split(norman, kind="unseen_single", test_fraction=0.5, val_fraction=0.5)


def test_error_seed_and_duplicate_names(norman):
    for seed in (1.5, -1, True):
        with pytest.raises(ValueError, match="seed must be a non-negative integer"):
            perturbation_split(norman, kind="unseen_single", seed=seed)
    dup = _synthetic()
    dup.obs_names = ["same"] * dup.n_obs
    with pytest.raises(ValueError, match="obs_names are not unique"):
        perturbation_split(dup, kind="unseen_single")


def test_error_too_few_perturbations_of_the_kind():
    adata = _synthetic({"control": 4, "A": 2, "B": 2, "A+B": 2, "C+D": 2})
    with pytest.raises(ValueError, match="has 2 single perturbations, too few .* and at least one for training"):
        perturbation_split(adata, kind="unseen_single")
    with pytest.raises(ValueError, match="has 1 doubles with at least 2 of their singles measured"):
        perturbation_split(adata, kind="double_seen2")
    # two doubles (one natural seen-0, one made seen-0 by removing A and B) are enough
    split = perturbation_split(adata, kind="double_seen0", seed=0)
    assert sorted(split.val_perturbations + split.test_perturbations) == ["A+B", "C+D"]
    assert set(split.excluded_perturbations) == {"A", "B"}


def test_error_doubles_cannot_be_placed():
    """A+C and B+C need A and B seen, so A+B cannot also have exactly one seen single."""
    adata = _synthetic({"control": 4, "A": 2, "B": 2, "A+C": 2, "B+C": 2, "A+B": 2})
    with pytest.raises(ValueError, match="could place only 2 test and 0 validation doubles"):
        perturbation_split(adata, kind="double_seen1", test_fraction=0.5, val_fraction=0.4)
