"""Doses: a held-out-dose split, the interpolation baselines, dose-response curves and their scores.

Taught in ``06_cpa_biolord``. A dose screen gives each perturbation at several doses
(``obs['dose']``, 0 for control cells). The question a dose model answers is what cells do at a
dose that was not measured: :func:`dose_split` holds out whole doses (every perturbation at those
doses), the baselines interpolate between the measured doses of the same perturbation, and
:func:`evaluate_doses` scores every model's prediction from control cells with the course's metrics.

A model that predicts doses has ``predict_dose(ctrl, perturbation, dose)``: :class:`DoseInterpolation`
below and :class:`tutorial_kit.models.CPA` fitted with ``dose_key``.
:func:`dose_response` turns such a model into curves (the log fold change of each gene's mean
counts per 10,000 versus control, at any doses), :func:`observed_dose_response` measures the same on
real cells, so both can be drawn on one axis, beside a simulator's truth.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, NamedTuple, Sequence

import numpy as np

from tutorial_kit.arrays import to_dense
from tutorial_kit.data.schema import CONTROL
from tutorial_kit.models.base import NotApplicableError, PerturbationModel
from tutorial_kit.validate import check_obs_columns

if TYPE_CHECKING:  # pragma: no cover
    import anndata
    import pandas as pd

__all__ = ["DoseInterpolation", "DoseSplit", "dose_response", "dose_split", "evaluate_doses", "observed_dose_response"]

PSEUDOCOUNT = 0.1
"""Counts per 10,000 added to both means of a log fold change (:func:`dose_response`)."""

CONDITION_KEY = "tk_dose_condition"
"""``obs`` column that :func:`evaluate_doses` writes: ``'<perturbation> <dose>'``, the unit it scores."""


def _numeric_doses(adata: "anndata.AnnData", dose_key: str, where: str) -> np.ndarray:
    import pandas as pd

    check_obs_columns(adata, [dose_key], where=where)
    raw = adata.obs[dose_key]
    values = pd.to_numeric(raw.astype(str) if hasattr(raw, "cat") else raw, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        example = raw.astype(str).to_numpy()[bad][:3].tolist()
        raise ValueError(f"{where}: obs[{dose_key!r}] must hold one number >= 0 per cell (0 for control); "
                         f"{int(bad.sum())} cells do not, e.g. {example}.")
    return values


class DoseSplit(NamedTuple):
    """Cells at the measured doses (``train``) and at held-out doses (``test``), from :func:`dose_split`."""

    train: "anndata.AnnData"
    """Control cells and every perturbation at the doses that are not held out."""
    ctrl: "anndata.AnnData"
    """The control cells (part of ``train``): the input of every prediction."""
    test: "anndata.AnnData"
    """Every perturbation at the held-out doses: the answers."""
    held_out: tuple
    """The held-out doses."""
    dose_key: str
    perturbation_key: str
    control: str

    def summary(self) -> "pd.DataFrame":
        """Cells per perturbation and dose, and whether each dose is trained on or held out."""
        import pandas as pd

        frames = []
        for part, data in (("train", self.train), ("test", self.test)):
            obs = data.obs[[self.perturbation_key, self.dose_key]].astype({self.perturbation_key: str})
            table = obs.value_counts().rename("cells").reset_index()
            table["part"] = part
            frames.append(table)
        out = pd.concat(frames, ignore_index=True)
        return out.sort_values([self.perturbation_key, self.dose_key]).reset_index(drop=True)


def dose_split(
    adata: "anndata.AnnData",
    *,
    hold_out: Sequence[float],
    dose_key: str = "dose",
    perturbation_key: str = "perturbation",
    control: str = CONTROL,
) -> DoseSplit:
    """Hold out whole doses: every perturbation at the doses of ``hold_out`` becomes the test set.

    Taught in ``06_cpa_biolord``. Each perturbation keeps at least one measured dose in training,
    so every held-out condition can be predicted from the same perturbation at other doses.

    Args:
        adata: cells with ``obs[perturbation_key]`` and numeric ``obs[dose_key]`` (0 for control).
        hold_out: the doses to hold out (each must be measured).
        dose_key, perturbation_key, control: where the dose and the label live, and the control label.

    Raises:
        ValueError: a missing column, non-numeric doses, control cells with a dose, a held-out
            dose that was not measured, or a perturbation left with no training dose.

    Example:
        >>> import anndata as ad, numpy as np, pandas as pd
        >>> obs = pd.DataFrame({"perturbation": ["control"] * 2 + ["A"] * 6, "dose": [0, 0, 1, 1, 2, 2, 3, 3]})
        >>> split = dose_split(ad.AnnData(np.zeros((8, 2), np.float32), obs=obs), hold_out=[2])
        >>> split.train.n_obs, split.test.n_obs, split.held_out
        (6, 2, (2.0,))
    """
    where = "dose_split"
    check_obs_columns(adata, [perturbation_key], where=where)
    doses = _numeric_doses(adata, dose_key, where)
    labels = adata.obs[perturbation_key].astype(str).to_numpy()
    is_control = labels == control
    if not is_control.any():
        raise ValueError(f"{where}: no control cells (obs[{perturbation_key!r}] == {control!r}); pass control='your label'.")
    if np.any(doses[is_control] != 0):
        raise ValueError(f"{where}: control cells must have dose 0, but some have {sorted(set(doses[is_control]))[:5]}.")
    if isinstance(hold_out, (str, bytes)) or not len(list(hold_out)):
        raise ValueError(f"{where}: hold_out must list one or more measured doses, e.g. [0.1]; got {hold_out!r}.")
    held = tuple(sorted(float(d) for d in hold_out))
    measured = sorted(set(doses[~is_control].tolist()))
    missing = [d for d in held if d not in measured]
    if missing:
        raise ValueError(f"{where}: dose(s) {missing} were not measured; the doses of the screen are {measured}.")
    test = ~is_control & np.isin(doses, held)
    for p in sorted(set(labels[~is_control])):
        if not (~test & (labels == p)).any():
            raise ValueError(f"{where}: {p!r} has no dose left for training once {list(held)} are held out; "
                             "hold out fewer doses.")
    train = adata[~test].copy()
    return DoseSplit(train=train, ctrl=train[train.obs[perturbation_key].astype(str).to_numpy() == control].copy(),
                     test=adata[test].copy(), held_out=held, dose_key=dose_key, perturbation_key=perturbation_key,
                     control=control)


class DoseInterpolation(PerturbationModel):
    """Interpolate the measured doses of the same perturbation: the baseline of a held-out dose.

    ``fit`` keeps the mean expression (``X``) of the control cells and of each perturbation at each
    measured dose. ``predict_dose(ctrl, p, d)`` adds to each control cell the change of the mean
    at dose ``d``, read off those means:

    - ``method='linear'``: linear in ``log10(dose)`` between the two measured doses around ``d``;
      below the lowest measured dose, linear in the dose itself between control (dose 0) and that dose;
      above the highest, the highest (no extrapolation);
    - ``method='nearest'``: the measured dose nearest to ``d`` in ``log10(dose)``.

    Args:
        method: ``'linear'`` or ``'nearest'``.
        dose_key: ``obs`` column of the doses (numbers, 0 for control).
        seed, device: as for every model (nothing here is random).

    Example:
        >>> import anndata as ad, numpy as np, pandas as pd
        >>> obs = pd.DataFrame({"perturbation": ["control", "A", "A"], "dose": [0.0, 1.0, 100.0], "cell_type": "x"})
        >>> X = np.array([[0.0], [1.0], [3.0]], dtype=np.float32)
        >>> model = DoseInterpolation().fit(ad.AnnData(X, obs=obs), progress=False)
        >>> float(model.predict_dose(ad.AnnData(X[:1], obs=obs[:1]), "A", 10.0).X[0, 0])
        2.0
    """

    budget = "vae"

    def __init__(self, *, method: str = "linear", dose_key: str = "dose", seed: int | None = None,
                 device: str | None = None) -> None:
        super().__init__(seed=seed, device=device)
        if method not in ("linear", "nearest"):
            raise ValueError(f"DoseInterpolation: method must be 'linear' or 'nearest', got {method!r}.")
        self.method, self.dose_key = method, dose_key
        self.name = "interpolation" if method == "linear" else "nearest dose"

    def _fit(self, adata: "anndata.AnnData", *, epochs: int, progress: bool) -> None:
        where = f"{type(self).__name__}.fit"
        doses = _numeric_doses(adata, self.dose_key, where)
        labels = adata.obs[self.perturbation_key].astype(str).to_numpy()
        X = to_dense(adata.X, dtype=np.float64)
        self.control_mean_ = X[labels == self.control].mean(axis=0)
        self.curves_: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for p in self.perturbations_:
            rows = (labels == p) & (doses > 0)
            if not rows.any():
                raise ValueError(f"{where}: {p!r} has no cells with a dose above 0 in obs[{self.dose_key!r}].")
            measured = np.array(sorted(set(doses[rows].tolist())))
            means = np.vstack([X[rows & (doses == d)].mean(axis=0) for d in measured])
            self.curves_[p] = (measured, means - self.control_mean_)
        self.epochs_ = 0

    def shift(self, perturbation: str, dose: float) -> np.ndarray:
        """The change of the mean expression at ``dose`` that is added to every control cell."""
        measured, shifts = self.curves_[perturbation]
        if dose <= 0:
            return np.zeros(shifts.shape[1])
        log_d, log_m = np.log10(dose), np.log10(measured)
        if self.method == "nearest":
            return shifts[int(np.argmin(np.abs(log_m - log_d)))]
        if dose <= measured[0]:
            return shifts[0] * (dose / measured[0])
        if dose >= measured[-1]:
            return shifts[-1]
        hi = int(np.searchsorted(measured, dose))
        w = (log_d - log_m[hi - 1]) / (log_m[hi] - log_m[hi - 1])
        return (1 - w) * shifts[hi - 1] + w * shifts[hi]

    def _predict(self, ctrl: "anndata.AnnData", perturbation: str) -> np.ndarray:
        return to_dense(ctrl.X, dtype=np.float32) + self.shift(perturbation, float(self.curves_[perturbation][0][-1]))

    def predict_dose(self, ctrl: "anndata.AnnData", perturbation: str, dose: float) -> "anndata.AnnData":
        """Control cells shifted by the interpolated change at ``dose`` (``obs['dose']`` records it)."""
        pred = self.predict(ctrl, perturbation)
        dose = _check_dose(dose, f"{type(self).__name__}.predict_dose")
        pred.X = to_dense(ctrl.X, dtype=np.float32) + self.shift(perturbation, dose).astype(np.float32)
        pred.obs[self.dose_key] = dose
        return pred


def _check_dose(dose: Any, where: str) -> float:
    try:
        value = float(dose)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: dose must be a number >= 0, got {dose!r}.") from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{where}: dose must be a finite number >= 0, got {dose!r}.")
    return value


def _needs_dose_model(model: Any, name: str, where: str) -> None:
    if not isinstance(model, PerturbationModel) or not model.is_fitted:
        raise ValueError(f"{where}: {name} must be a fitted model; call .fit(split.train) first.")
    if not callable(getattr(model, "predict_dose", None)):
        raise NotApplicableError(f"{where}: {name} ({type(model).__name__}) has no predict_dose; use "
                                 "tk.models.DoseInterpolation or tk.models.CPA(dose_key=...).")


def _log_fold_change(X: Any, X_ctrl: Any, pseudocount: float) -> np.ndarray:
    """``log((mean CP10k of X + pc) / (mean CP10k of X_ctrl + pc))`` per gene, from log1p CP10k values."""
    mean = np.expm1(to_dense(X, dtype=np.float64)).mean(axis=0)
    base = np.expm1(to_dense(X_ctrl, dtype=np.float64)).mean(axis=0)
    return np.log(mean + pseudocount) - np.log(base + pseudocount)


def dose_response(model: PerturbationModel, ctrl: "anndata.AnnData", perturbation: str, doses: Sequence[float], *,
                  pseudocount: float = PSEUDOCOUNT) -> "pd.DataFrame":
    """A model's dose-response curves: log fold change of each gene's mean CP10k vs ``ctrl``, per dose.

    ``X`` is log1p counts per 10,000 (the course's scale), so ``expm1`` gives counts per 10,000;
    the fold change of their means is comparable with :func:`observed_dose_response` on real
    cells and with a simulator's ``true_dose_response(..., normalized=True)``.

    Returns:
        DataFrame, doses x genes (natural log).
    """
    import pandas as pd

    where = "dose_response"
    _needs_dose_model(model, "the model", where)
    values = [_check_dose(d, where) for d in doses]
    rows = [_log_fold_change(model.predict_dose(ctrl, perturbation, d).X, ctrl.X, pseudocount) for d in values]
    return pd.DataFrame(np.vstack(rows), index=pd.Index(values, name="dose"), columns=pd.Index(ctrl.var_names, name="gene"))


def observed_dose_response(adata: "anndata.AnnData", perturbation: str, *, dose_key: str = "dose",
                           perturbation_key: str = "perturbation", control: str = CONTROL,
                           pseudocount: float = PSEUDOCOUNT) -> "pd.DataFrame":
    """The same curves measured on real cells: one row per measured dose of ``perturbation``.

    Example:
        >>> import anndata as ad, numpy as np, pandas as pd
        >>> obs = pd.DataFrame({"perturbation": ["control", "A"], "dose": [0.0, 1.0]})
        >>> X = np.log1p(np.array([[9.9], [19.9]], dtype=np.float32))
        >>> float(observed_dose_response(ad.AnnData(X, obs=obs), "A").iloc[0, 0].round(3))  # log(20 / 10)
        0.693
    """
    import pandas as pd

    where = "observed_dose_response"
    check_obs_columns(adata, [perturbation_key], where=where)
    doses = _numeric_doses(adata, dose_key, where)
    labels = adata.obs[perturbation_key].astype(str).to_numpy()
    if not (labels == control).any():
        raise ValueError(f"{where}: no control cells (obs[{perturbation_key!r}] == {control!r}).")
    mine = labels == perturbation
    if not mine.any():
        raise ValueError(f"{where}: no cells of {perturbation!r}; the labels are {sorted(set(labels))[:10]}.")
    measured = sorted(set(doses[mine].tolist()))
    rows = [_log_fold_change(adata.X[mine & (doses == d)], adata.X[labels == control], pseudocount) for d in measured]
    return pd.DataFrame(np.vstack(rows), index=pd.Index(measured, name="dose"),
                        columns=pd.Index(adata.var_names, name="gene"))


def evaluate_doses(
    models: Mapping[str, PerturbationModel],
    split: DoseSplit,
    *,
    metrics: Sequence[str] | None = None,
    n_top_de: int = 20,
    k_overlap: int = 100,
    k_top_expressed: int = 1000,
    per_condition: bool = False,
) -> "pd.DataFrame":
    """Score dose models on the held-out doses of a :class:`DoseSplit`, from control cells.

    Every held-out condition (a perturbation at a held-out dose) is predicted with
    ``model.predict_dose(split.ctrl, p, d)`` and scored by :func:`tutorial_kit.metrics.evaluate`
    against the real cells of that condition (``split.test``); the value of a metric is its mean
    over the held-out conditions.

    Args:
        models: name -> a model fitted on ``split.train`` with ``predict_dose``.
        split: the :class:`DoseSplit`.
        metrics: names from :data:`tutorial_kit.metrics.METRICS` (default all).
        n_top_de, k_overlap, k_top_expressed: as in :func:`tutorial_kit.metrics.evaluate` (capped at the genes).
        per_condition: return one row per held-out condition (column ``condition``, ``'TF01 100'``)
            instead of the mean over them.

    Returns:
        DataFrame with columns ``model, seed, metric, gene_set, value, n_conditions``, ready for
        :func:`tutorial_kit.models.summarize_seeds` (with ``per_condition``: ``model, seed,
        condition, metric, gene_set, value, n_genes``).

    Raises:
        ValueError: ``split`` is not a ``DoseSplit``, ``models`` is empty, a model is not fitted.
        NotApplicableError: a model has no ``predict_dose``.
    """
    import warnings

    import anndata as ad
    import pandas as pd

    from tutorial_kit import metrics as tkm

    where = "evaluate_doses"
    if not isinstance(split, DoseSplit):
        raise ValueError(f"{where}: split must come from tk.models.dose_split(...); got {type(split).__name__}.")
    if not isinstance(models, Mapping) or not models:
        raise ValueError(f"{where}: models must be a non-empty dict name -> model fitted on split.train.")
    for name, model in models.items():
        _needs_dose_model(model, f"models[{name!r}]", where)
    truth = split.test.copy()
    doses = _numeric_doses(truth, split.dose_key, where)
    labels = truth.obs[split.perturbation_key].astype(str).to_numpy()
    truth.obs[CONDITION_KEY] = [f"{p} {d:g}" for p, d in zip(labels, doses)]
    conditions = list(dict.fromkeys(zip(labels.tolist(), doses.tolist())))
    frames, rows = [], []
    for name, model in models.items():
        preds = []
        for p, d in conditions:
            pred = model.predict_dose(split.ctrl, p, d)
            pred.obs[CONDITION_KEY] = f"{p} {d:g}"
            preds.append(pred)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*the Pearson correlation is undefined", category=RuntimeWarning)
            table = tkm.evaluate(ad.concat(preds, index_unique="-"), truth, split.ctrl, perturbation_key=CONDITION_KEY,
                                 metrics=metrics, n_top_de=min(n_top_de, truth.n_vars),
                                 k_overlap=min(k_overlap, truth.n_vars), k_top_expressed=min(k_top_expressed, truth.n_vars))
        table.insert(0, "seed", int(model.seed))
        table.insert(0, "model", name)
        rows.append(table)
        grouped = table.groupby(["metric", "gene_set"], sort=False)["value"]
        summary = pd.DataFrame({"value": grouped.mean(), "n_conditions": grouped.count()}).reset_index()
        summary.insert(0, "seed", int(model.seed))
        summary.insert(0, "model", name)
        frames.append(summary)
    if per_condition:
        out = pd.concat(rows, ignore_index=True).rename(columns={"perturbation": "condition"})
    else:
        out = pd.concat(frames, ignore_index=True)
    out.attrs = {}
    return out
