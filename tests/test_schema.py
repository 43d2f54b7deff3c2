import anndata as ad
import numpy as np
import pandas as pd
import pytest

from tutorial_kit.data import schema


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("ctrl", "control"),
        ("Non-Targeting", "control"),
        ("NT", "control"),
        ("  KLF1 ", "KLF1"),
        ("KLF1+BAK1", "BAK1+KLF1"),
        ("BAK1+KLF1", "BAK1+KLF1"),
        ("CEBPE+ctrl", "CEBPE"),
        ("ctrl+ctrl", "control"),
        ("A+A", "A"),
    ],
)
def test_normalize_perturbation(raw, expected):
    assert schema.normalize_perturbation(raw) == expected


def test_normalize_with_other_separators():
    assert schema.normalize_perturbation("FEV_AHR", separators="_") == "AHR+FEV"
    assert schema.normalize_perturbation("CEBPE_ctrl", separators="_") == "CEBPE"
    assert schema.normalize_perturbation("A_B", separators="") == "A_B"
    assert schema.normalize_perturbations(["B+A", "A+B", "ctrl"]) == ["A+B", "A+B", "control"]
    with pytest.raises(ValueError, match="missing"):
        schema.normalize_perturbation(None)


def test_parts():
    assert schema.perturbation_parts("control") == []
    assert schema.perturbation_parts("A+B") == ["A", "B"]


def _obs(perts):
    return pd.DataFrame(
        {"perturbation": perts, "condition": "x", "cell_type": "K562", "dataset": "toy"},
        index=[f"c{i}" for i in range(len(perts))],
    )


def test_check_schema():
    schema.check_schema(ad.AnnData(np.zeros((2, 2)), obs=_obs(["control", "A+B"])))
    with pytest.raises(ValueError, match="not canonical"):
        schema.check_schema(ad.AnnData(np.zeros((2, 2)), obs=_obs(["ctrl", "B+A"])))
    bad = ad.AnnData(np.zeros((1, 2)), obs=_obs(["control"]), var=pd.DataFrame(index=["G", "G"]))
    with pytest.raises(ValueError, match="not unique"):
        schema.check_schema(bad, where="toy")
    with pytest.raises(ValueError, match="missing column"):
        schema.check_schema(ad.AnnData(np.zeros((1, 1)), obs=_obs(["control"]).drop(columns="dataset")))
