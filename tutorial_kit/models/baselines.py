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

from tutorial_kit.models.base import PerturbationModel, dense

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
    """

    name = "no-change"

    def _fit(self, adata: "anndata.AnnData", *, epochs: int, progress: bool) -> None:
        self.epochs_ = 0

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
