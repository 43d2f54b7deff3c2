"""The linear model of Ahlmann-Eltze, Huber & Anders (Nature Methods, 2025).

"Deep-learning-based gene perturbation effect prediction does not yet outperform simple linear
baselines": a bilinear ridge regression of the pseudobulk of each perturbation on an embedding
of the read-out genes (``G``) and an embedding of the perturbations (``P``), both taken from
the training data. Because a perturbation is embedded by the row of ``G`` of its target gene,
the model predicts perturbations never seen in training, as long as their target gene is
measured. Taught in ``09_linear_baselines``.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

from tutorial_kit.models.base import NotApplicableError
from tutorial_kit.models.baselines import PseudobulkModel, label_parts

if TYPE_CHECKING:  # pragma: no cover
    import anndata

__all__ = ["LinearModel"]


def _ridge_inverse(M: np.ndarray, ridge: float) -> np.ndarray:
    """``(M + ridge I)^-1``; the pseudo-inverse when ``ridge == 0`` (plain least squares)."""
    if ridge == 0:
        return np.linalg.pinv(M)
    return np.linalg.inv(M + ridge * np.eye(M.shape[0]))


class LinearModel(PseudobulkModel):
    """The linear model of Ahlmann-Eltze, Huber & Anders (Nature Methods, 2025).

    Pseudobulk: ``Y`` (genes x training conditions) holds the mean log expression of each
    training perturbation (the control is not a column of ``Y``). Then, as in the paper:

    - ``b`` = the row means of ``Y`` (each gene's mean over the training conditions), the vector
      the paper subtracts ("b is the vector of row means of Y_train"); not the control pseudobulk.
    - ``G`` (genes x K) = the top-K principal components of the training pseudobulk: with the
      SVD ``Y - b 1' = U S V'``, ``G = U_K S_K`` (left singular vectors times singular values,
      i.e. the PCA scores of the genes; each column's sign fixed so that its largest entry is
      positive). ``K = min(n_components, n_genes, n_conditions - 1)`` because ``Y - b 1'`` has
      rank at most ``n_conditions - 1``; the K used is ``n_components_``.
    - ``P`` (K x conditions): the column of a perturbation is the row of ``G`` of its target
      gene; for a combination ``'A+B'`` the sum of the rows of A and B.
    - ``W = (G'G + lambda I)^-1 G'(Y - b 1') P'(P P' + lambda I)^-1`` (K x K), the ridge
      solution of ``min_W ||Y - b 1' - G W P||^2 + penalties``; ``lambda = ridge``
      (``ridge=0`` gives the least-squares solution via pseudo-inverses).
    - Prediction for a perturbation with embedding ``p``: ``y = G W p + b``.

    The returned cells are the control cells shifted by ``y - pb(control)`` (``pb(control)``:
    the training control pseudobulk), so the per-cell spread of a prediction is the control's.
    Training perturbations whose target gene is not measured have no embedding: they are left
    out of ``Y`` with a warning (as the paper does), listed in ``dropped_perturbations_``.
    Any perturbation whose targets are all measured can be predicted, seen or not.
    After ``fit``: ``G_``, ``W_``, ``b_``, ``P_``, ``conditions_`` (the columns of ``Y``),
    ``n_components_``, ``dropped_perturbations_``, ``control_mean_``, ``effects_``.
    Nothing is random: ``seed`` is kept for the common interface; ``device`` is unused (numpy).
    Fits one cell type (one cell line).
    Taught in ``09_linear_baselines``.

    Args:
        n_components: K, the number of principal components of the gene embedding (paper: 10).
        ridge: lambda, the ridge penalty on both sides (paper: 0.1); 0 for least squares.
        seed: kept for the common interface (the fit is deterministic).
        device: kept for the common interface (the fit runs in numpy).

    Example:
        >>> import numpy as np, anndata as ad, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> genes = [f"g{i}" for i in range(6)]
        >>> labels = ["control", "g0", "g1", "g2", "g3"]
        >>> obs = pd.DataFrame({"perturbation": np.repeat(labels, 3), "cell_type": "K562"})
        >>> obs.index = [f"c{i}" for i in range(15)]
        >>> adata = ad.AnnData(rng.normal(size=(15, 6)).astype(np.float32), obs=obs)
        >>> adata.var_names = genes
        >>> model = LinearModel(n_components=2).fit(adata, progress=False)
        >>> model.G_.shape, model.W_.shape, model.P_.shape
        ((6, 2), (2, 2), (2, 4))
        >>> pred = model.predict(adata[:3], "g5")  # never seen in training: its target g5 is measured
        >>> pred.shape
        (3, 6)
    """

    name = "linear"

    def __init__(
        self,
        *,
        n_components: int = 10,
        ridge: float = 0.1,
        seed: int | None = None,
        device: str | None = None,
    ) -> None:
        if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
            raise ValueError(f"LinearModel: n_components must be a positive integer (paper: 10); got {n_components!r}.")
        ridge_value = float(ridge)
        if not np.isfinite(ridge_value) or ridge_value < 0:
            raise ValueError(f"LinearModel: ridge must be a finite number >= 0 (paper: 0.1); got {ridge!r}.")
        super().__init__(seed=seed, device=device)
        self.n_components = int(n_components)
        self.ridge = ridge_value

    def __repr__(self) -> str:
        state = "fitted" if self.is_fitted else "not fitted"
        return f"LinearModel(n_components={self.n_components}, ridge={self.ridge}, seed={self.seed}, {state})"

    # fit ---------------------------------------------------------------------------------

    def _fit(self, adata: "anndata.AnnData", *, epochs: int, progress: bool) -> None:
        super()._fit(adata, epochs=epochs, progress=progress)
        where = "LinearModel.fit"
        self._gene_index = {g: i for i, g in enumerate(adata.var_names.astype(str))}
        used, dropped = [], []
        for pert in self.perturbations_:
            parts = label_parts(pert, control=self.control, where=where)
            (used if all(p in self._gene_index for p in parts) else dropped).append(pert)
        n_genes = adata.n_vars
        if len(used) < 2:
            raise NotApplicableError(
                f"{where}: the linear model needs at least 2 training perturbations whose target genes are among "
                f"the {n_genes} measured genes (a perturbation is embedded by its target's row of G); found "
                f"{len(used)} {used}. Keep the target genes in the gene set (e.g. add them to the highly variable "
                "genes) or use MeanEffect / Additive."
            )
        if dropped:
            warnings.warn(
                f"{where}: {len(dropped)} of {len(self.perturbations_)} training perturbations target genes that "
                f"are not among the {n_genes} measured genes, so they have no embedding and are left out of Y "
                f"(as in the paper): {dropped[:10]}{' ...' if len(dropped) > 10 else ''}.",
                UserWarning,
                stacklevel=4,
            )
        Y = (self.control_mean_[None, :] + self.effects_.loc[used].to_numpy()).T  # genes x conditions
        b = Y.mean(axis=1)
        Yc = Y - b[:, None]
        k = min(self.n_components, n_genes, len(used) - 1)
        U, s, _ = np.linalg.svd(Yc, full_matrices=False)
        U = U[:, :k]
        signs = np.sign(U[np.argmax(np.abs(U), axis=0), np.arange(k)])
        G = U * np.where(signs == 0, 1.0, signs)[None, :] * s[:k][None, :]
        self.G_, self.b_, self.conditions_ = G, b, used
        self.n_components_ = k
        self.dropped_perturbations_ = dropped
        self.P_ = np.stack([self.embedding(p) for p in used], axis=1)
        P = self.P_
        self.W_ = _ridge_inverse(G.T @ G, self.ridge) @ G.T @ Yc @ P.T @ _ridge_inverse(P @ P.T, self.ridge)

    # predict -----------------------------------------------------------------------------

    def _check_perturbation(self, perturbation: str, where: str) -> list[str]:  # type: ignore[override]
        parts = label_parts(perturbation, control=self.control, where=where)
        for part in parts:
            if part not in self._gene_index:
                raise NotApplicableError(
                    f"{where}: the target gene {part!r} of {perturbation!r} is not among the "
                    f"{len(self._gene_index)} measured genes; the linear model embeds a perturbation by its "
                    "target's row of G, so it predicts only perturbations of measured genes. "
                    "Use MeanEffect (or Additive for combinations of seen singles)."
                )
        return parts

    def embedding(self, perturbation: str) -> np.ndarray:
        """The K-vector ``p`` of a perturbation: its target's row of ``G_`` (summed over a combination's targets)."""
        parts = self._check_perturbation(perturbation, "LinearModel.embedding")
        return self.G_[[self._gene_index[p] for p in parts]].sum(axis=0)

    def predict_pseudobulk(self, perturbation: str) -> np.ndarray:
        """The predicted mean log expression ``y = G W p + b`` of ``perturbation`` (one value per gene)."""
        if not hasattr(self, "W_"):
            raise RuntimeError("LinearModel.predict_pseudobulk: the model is not fitted; call .fit(train) first.")
        return self.G_ @ self.W_ @ self.embedding(perturbation) + self.b_

    def shift(self, perturbation: str) -> np.ndarray:
        """The shift added to every control cell: ``G W p + b - pb(control)``."""
        return self.predict_pseudobulk(perturbation) - self.control_mean_
