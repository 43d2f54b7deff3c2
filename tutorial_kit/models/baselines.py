"""Baselines that every perturbation model must beat (CURRICULUM section 5).

- :class:`NoChange`: the prediction is the control cells themselves (no effect at all).
- :class:`MeanShift`: add to each control cell the average perturbed-minus-control shift of
  the training cell types, in expression space. It is scGen's latent arithmetic without the
  latent space, and a strong baseline.

Taught in ``04_scgen`` and ``05_scpram``; more baselines (mean, additive, linear) come in
``09_linear_baselines``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tutorial_kit.models.base import NotApplicableError, PerturbationModel, dense

if TYPE_CHECKING:  # pragma: no cover
    import anndata


class NoChange(PerturbationModel):
    """Predict no effect: every control cell is returned unchanged.

    Example:
        >>> import numpy as np, anndata as ad, pandas as pd
        >>> obs = pd.DataFrame({"perturbation": ["control", "A"], "cell_type": ["T", "T"]}, index=["a", "b"])
        >>> train = ad.AnnData(np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32), obs=obs)
        >>> NoChange().fit(train).predict(train[:1], "A").X.tolist()
        [[1.0, 2.0]]
        >>> NoChange().fit(train).predict(train[:1], "B+C").X.tolist()  # unseen perturbations too
        [[1.0, 2.0]]
    """

    name = "no-change"

    def _fit(self, adata: "anndata.AnnData", *, epochs: int, progress: bool) -> None:
        self.epochs_ = 0

    def _check_perturbation(self, perturbation: str, where: str) -> None:
        # "nothing happens" is a prediction for any perturbation, seen in training or not
        _label_parts(perturbation, control=self.control, where=where)

    def _predict(self, ctrl: "anndata.AnnData", perturbation: str) -> np.ndarray:
        return dense(ctrl.X)


class MeanShift(PerturbationModel):
    """Add the average perturbed-minus-control shift of the training cell types to each control cell.

    For each training cell type that has both control and ``perturbation`` cells, the shift is
    ``mean(perturbed) - mean(control)`` per gene; the shifts are averaged over cell types with
    equal weight (a large cell type does not dominate). ``shifts_`` keeps the per-type shifts.

    Example:
        >>> import numpy as np, anndata as ad, pandas as pd
        >>> obs = pd.DataFrame({"perturbation": ["control", "A"] * 2, "cell_type": ["T", "T", "B", "B"]},
        ...                    index=list("abcd"))
        >>> X = np.array([[0.0], [1.0], [0.0], [3.0]], dtype=np.float32)
        >>> model = MeanShift().fit(ad.AnnData(X, obs=obs))
        >>> model.predict(ad.AnnData(X[:1], obs=obs[:1]), "A").X.tolist()
        [[2.0]]
    """

    name = "mean-shift"

    def _fit(self, adata: "anndata.AnnData", *, epochs: int, progress: bool) -> None:
        import pandas as pd

        X = dense(adata.X)
        labels = adata.obs[self.perturbation_key].astype(str).to_numpy()
        types = adata.obs[self.cell_type_key].astype(str).to_numpy()
        shifts = {}
        for pert in self.perturbations_:
            rows = {}
            for cell_type in sorted(set(types)):
                ctrl = (types == cell_type) & (labels == self.control)
                pert_cells = (types == cell_type) & (labels == pert)
                if ctrl.any() and pert_cells.any():
                    rows[cell_type] = X[pert_cells].mean(axis=0) - X[ctrl].mean(axis=0)
            if not rows:
                raise ValueError(
                    f"MeanShift.fit: no cell type has both {self.control!r} and {pert!r} cells, "
                    "so no shift can be learned for it."
                )
            shifts[pert] = pd.DataFrame(rows, index=adata.var_names).T
        self.shifts_ = shifts
        self.epochs_ = 0

    def shift(self, perturbation: str) -> np.ndarray:
        """The shift added to every control cell for ``perturbation`` (mean over cell types)."""
        return self.shifts_[perturbation].to_numpy().mean(axis=0)

    def _predict(self, ctrl: "anndata.AnnData", perturbation: str) -> np.ndarray:
        return dense(ctrl.X) + self.shift(perturbation)[None, :]


# --------------------------------------------------------------------------- perturbation-level baselines
#
# The models below predict a perturbation from the pseudobulk (mean log expression) of each
# training condition. Every prediction is the control cell shifted by the predicted change of
# the pseudobulk mean, so the per-cell spread of a prediction is that of the control cells.
# Taught in ``09_linear_baselines``.


def _pseudobulk(adata: "anndata.AnnData", labels: np.ndarray, names: list[str]) -> np.ndarray:
    """Mean expression per label: an array ``len(names) x n_genes`` (float64)."""
    X = dense(adata.X).astype(np.float64)
    return np.stack([X[labels == name].mean(axis=0) for name in names]) if names else np.zeros((0, X.shape[1]))


def _label_parts(perturbation: object, *, control: str, where: str) -> list[str]:
    """The single targets of a perturbed label (``'A+B'`` -> ``['A', 'B']``); refuses control and empty labels."""
    if not isinstance(perturbation, str) or not perturbation.strip():
        raise ValueError(
            f"{where}: the perturbation label must be a non-empty string such as 'KLF1' or 'KLF1+SET'; "
            f"got {perturbation!r}."
        )
    if perturbation == control:
        raise ValueError(
            f"{where}: {control!r} is the control label, not a perturbation; predicting control from control "
            "is the identity (use NoChange to see that baseline)."
        )
    parts = [p.strip() for p in perturbation.split("+")]
    if any(not p for p in parts) or control in parts:
        raise ValueError(
            f"{where}: malformed perturbation label {perturbation!r}; combinations are written 'A+B' "
            "(normalize labels with tutorial_kit.data.schema.normalize_perturbation)."
        )
    return parts


class _PseudobulkModel(PerturbationModel):
    """Shared fit of the perturbation-level baselines: the control and per-condition pseudobulks.

    After ``fit``: ``control_mean_`` (genes), ``effects_`` (a DataFrame conditions x genes of
    ``pseudobulk(condition) - control_mean_``, one row per training perturbation).
    """

    def _fit(self, adata: "anndata.AnnData", *, epochs: int, progress: bool) -> None:
        import pandas as pd

        where = f"{type(self).__name__}.fit"
        types = sorted(set(adata.obs[self.cell_type_key].astype(str)))
        if len(types) > 1:
            raise ValueError(
                f"{where}: the training cells come from {len(types)} cell types {types[:5]}; this model pools "
                "all cells of a condition into one pseudobulk, so fit one model per cell type "
                "(e.g. on adata[adata.obs['cell_type'] == 'K562'])."
            )
        labels = adata.obs[self.perturbation_key].astype(str).to_numpy()
        self.control_mean_ = _pseudobulk(adata, labels, [self.control])[0]
        effects = _pseudobulk(adata, labels, self.perturbations_) - self.control_mean_[None, :]
        self.effects_ = pd.DataFrame(effects, index=self.perturbations_, columns=adata.var_names)
        self.epochs_ = 0

    def shift(self, perturbation: str) -> np.ndarray:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def _predict(self, ctrl: "anndata.AnnData", perturbation: str) -> np.ndarray:
        return dense(ctrl.X) + self.shift(perturbation).astype(np.float32)[None, :]


class MeanEffect(_PseudobulkModel):
    """Predict the average training effect for any perturbation: the 'mean' baseline.

    With ``pb(p)`` the pseudobulk (mean log expression over the cells) of condition ``p`` and
    ``T`` the training perturbations (control excluded), the predicted shift is
    ``mean_{p in T} (pb(p) - pb(control))``, every perturbation weighted equally whatever its
    number of cells. Each control cell is shifted by it, so the per-cell spread of a prediction
    is the control's. It ignores which gene was perturbed, so it predicts every label (seen or
    not) the same; Ahlmann-Eltze, Huber & Anders (Nature Methods 2025) found that no deep
    model beat it on unseen single perturbations.
    After ``fit``: ``control_mean_``, ``effects_`` (training perturbations x genes) and
    ``mean_effect_`` (genes). Fits one cell type (one cell line).
    Taught in ``09_linear_baselines``.

    Example:
        >>> import numpy as np, anndata as ad, pandas as pd
        >>> obs = pd.DataFrame({"perturbation": ["control", "A", "A", "B"], "cell_type": ["K562"] * 4},
        ...                    index=list("abcd"))
        >>> X = np.array([[1.0], [2.0], [4.0], [5.0]], dtype=np.float32)  # effects: A +2, B +4
        >>> model = MeanEffect().fit(ad.AnnData(X, obs=obs), progress=False)
        >>> model.predict(ad.AnnData(X[:1], obs=obs[:1]), "C+D").X.tolist()  # any label: 1 + (2 + 4) / 2
        [[4.0]]
    """

    name = "mean"

    def _fit(self, adata: "anndata.AnnData", *, epochs: int, progress: bool) -> None:
        super()._fit(adata, epochs=epochs, progress=progress)
        self.mean_effect_ = self.effects_.to_numpy().mean(axis=0)

    def _check_perturbation(self, perturbation: str, where: str) -> None:
        _label_parts(perturbation, control=self.control, where=where)

    def shift(self, perturbation: str) -> np.ndarray:
        """The shift added to every control cell (the same for every perturbation)."""
        return self.mean_effect_


class Additive(_PseudobulkModel):
    """Predict a combination as the sum of its single effects: the 'additive' baseline.

    For a combination ``'A+B'`` the predicted shift is ``(pb(A) - pb(control)) + (pb(B) -
    pb(control))``, with ``pb`` the training pseudobulks (mean log expression), so the predicted
    pseudobulk is ``pb(control) + effect(A) + effect(B)``; combinations of more singles sum all
    of them. A single seen in training is predicted by its own training effect. Every single of
    the label must have been a training condition: an unseen single, or a combination with an
    unseen single, is refused with the missing single named. The sum is taken in log space: a
    combination whose singles do not add up there is a genetic interaction (Norman et al. 2019).
    Each control cell is shifted by the predicted change, so the per-cell spread of a prediction
    is the control's. In Ahlmann-Eltze, Huber & Anders (Nature Methods 2025) no deep model beat
    it on Norman's double perturbations. Fits one cell type (one cell line).
    After ``fit``: ``control_mean_`` and ``effects_`` (training perturbations x genes).
    Taught in ``09_linear_baselines``.

    Example:
        >>> import numpy as np, anndata as ad, pandas as pd
        >>> obs = pd.DataFrame({"perturbation": ["control", "A", "B"], "cell_type": ["K562"] * 3},
        ...                    index=list("abc"))
        >>> X = np.array([[1.0, 1.0], [3.0, 1.0], [1.0, 0.5]], dtype=np.float32)
        >>> model = Additive().fit(ad.AnnData(X, obs=obs), progress=False)
        >>> model.predict(ad.AnnData(X[:1], obs=obs[:1]), "A+B").X.tolist()  # (1, 1) + (2, 0) + (0, -0.5)
        [[3.0, 0.5]]
    """

    name = "additive"

    def _check_perturbation(self, perturbation: str, where: str) -> list[str]:  # type: ignore[override]
        parts = _label_parts(perturbation, control=self.control, where=where)
        missing = [p for p in parts if p not in self.effects_.index]
        if missing:
            seen = sorted(p for p in self.effects_.index if "+" not in p)
            what = (f"the single perturbation {perturbation!r} was" if len(parts) == 1
                    else f"the combination {perturbation!r} needs the single(s) {missing}, which were")
            raise NotApplicableError(
                f"{where}: {what} not seen in training; the additive model sums the effects of "
                f"training singles (seen singles: {seen[:20]}{' ...' if len(seen) > 20 else ''}). "
                "Use MeanEffect or LinearModel for perturbations whose singles were not measured."
            )
        return parts

    def shift(self, perturbation: str) -> np.ndarray:
        """The predicted change of the pseudobulk: the sum of the training effects of the singles."""
        parts = self._check_perturbation(perturbation, f"{type(self).__name__}.shift")
        return self.effects_.loc[parts].to_numpy().sum(axis=0)
