"""Baselines that every perturbation model must beat, on the same split and the same metrics.

- :class:`NoChange`: the prediction is the control cells themselves (no effect at all).
- :class:`MeanShift`: add to each control cell the average perturbed-minus-control shift of
  the training cell types, in expression space. It is scGen's latent arithmetic without the
  latent space, and a strong baseline.

Taught in ``04_scgen`` and ``05_scpram``; more baselines (mean, additive, linear) come in
``09_linear_baselines``, fitted on :func:`pseudobulk` means.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tutorial_kit.arrays import dense_rows, to_dense
from tutorial_kit.models.base import NotApplicableError, PerturbationModel
from tutorial_kit.validate import check_nonempty, check_obs_columns

if TYPE_CHECKING:  # pragma: no cover
    import anndata
    import pandas as pd


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
        label_parts(perturbation, control=self.control, where=where)

    def _predict(self, ctrl: "anndata.AnnData", perturbation: str) -> np.ndarray:
        return to_dense(ctrl.X, dtype=np.float32)


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

        X = to_dense(adata.X, dtype=np.float32)
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
        return to_dense(ctrl.X, dtype=np.float32) + self.shift(perturbation)[None, :]


# --------------------------------------------------------------------------- perturbation-level baselines
#
# The models below predict a perturbation from the pseudobulk (mean log expression) of each
# training condition. Every prediction is the control cell shifted by the predicted change of
# the pseudobulk mean, so the per-cell spread of a prediction is that of the control cells.
# Taught in ``09_linear_baselines``.


def pseudobulk(adata: "anndata.AnnData", *, by: str = "perturbation", layer: str | None = None) -> "pd.DataFrame":
    """Mean expression of every group of cells (a pseudobulk): groups x genes.

    The groups are the values of ``obs[by]``, compared as strings, in sorted order (the order
    of ``pandas.DataFrame.groupby``); each row is the mean over the group's cells of ``X`` (or
    of ``layers[layer]``), in float64. A sparse matrix is densified one group at a time.
    The perturbation-level baselines (:class:`MeanEffect`, :class:`Additive` and
    :class:`~tutorial_kit.models.LinearModel`) are fitted on these means.
    Taught in ``09_linear_baselines`` (effects and genetic interactions of the pseudobulks).

    Args:
        adata: cells x genes (log-normalized ``X`` in the course schema).
        by: the ``obs`` column that names each cell's group.
        layer: the layer to average (``None``: ``X``).

    Returns:
        DataFrame indexed by group (index named ``by``), one column per gene (``var_names``).

    Raises:
        ValueError: when ``obs[by]`` or the layer is missing, there are no cells, or a cell has
            no group (NaN in ``obs[by]``).

    Example:
        >>> import anndata as ad, pandas as pd
        >>> obs = pd.DataFrame({"perturbation": ["control", "A", "A"]}, index=["c1", "c2", "c3"])
        >>> a = ad.AnnData(np.array([[1.0, 0.0], [2.0, 4.0], [4.0, 6.0]], dtype=np.float32), obs=obs)
        >>> pseudobulk(a).to_dict("index")
        {'A': {'0': 3.0, '1': 5.0}, 'control': {'0': 1.0, '1': 0.0}}
    """
    import pandas as pd

    where = "pseudobulk"
    check_obs_columns(adata, [by], where=where)
    if layer is not None and layer not in adata.layers:
        raise ValueError(f"{where}: adata.layers has no {layer!r} layer (layers: {list(adata.layers.keys())}); "
                         "pass layer=None to average adata.X.")
    check_nonempty(adata.n_obs, what="adata (there is nothing to average)", where=where)
    missing = adata.obs[by].isna().to_numpy()
    if missing.any():
        raise ValueError(f"{where}: {int(missing.sum())} cell(s) have no group (NaN in obs[{by!r}]); label them, "
                         f"or drop them first: adata[adata.obs[{by!r}].notna()].")
    labels = adata.obs[by].astype(str).to_numpy()
    x = adata.X if layer is None else adata.layers[layer]
    groups = sorted(set(labels))
    means = np.stack([dense_rows(x, np.flatnonzero(labels == g)).mean(axis=0) for g in groups])
    return pd.DataFrame(means, index=pd.Index(groups, name=by), columns=adata.var_names.copy())


def label_parts(perturbation: object, *, control: str, where: str) -> list[str]:
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


class PseudobulkModel(PerturbationModel):
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
        means = pseudobulk(adata, by=self.perturbation_key)
        self.control_mean_ = means.loc[self.control].to_numpy()
        effects = means.loc[self.perturbations_].to_numpy() - self.control_mean_[None, :]
        self.effects_ = pd.DataFrame(effects, index=self.perturbations_, columns=adata.var_names)
        self.epochs_ = 0

    def shift(self, perturbation: str) -> np.ndarray:  # pragma: no cover - every subclass overrides
        raise NotImplementedError

    def _predict(self, ctrl: "anndata.AnnData", perturbation: str) -> np.ndarray:
        return to_dense(ctrl.X, dtype=np.float32) + self.shift(perturbation).astype(np.float32)[None, :]


class MeanEffect(PseudobulkModel):
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
        label_parts(perturbation, control=self.control, where=where)

    def shift(self, perturbation: str) -> np.ndarray:
        """The shift added to every control cell (the same for every perturbation)."""
        return self.mean_effect_


class Additive(PseudobulkModel):
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
        parts = label_parts(perturbation, control=self.control, where=where)
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
