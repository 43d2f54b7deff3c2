"""One interface for perturbation-response models, and the held-out-cell-type split.

Every model of the course (the baselines, scGen, scPRAM, and the models of later sessions)
is a :class:`PerturbationModel`: ``fit`` on an AnnData with named ``obs`` keys, then
``predict`` how given control cells respond to a perturbation.
The base class does what every model needs and no model should repeat:
input checks with clear messages, the seed, the device, timing, and the check that
prediction sees the genes the model was trained on.
Taught in ``04_scgen`` (the interface and the split) and used by every later model notebook
and by the benchmark (``10_benchmarking``).

Example:
    >>> import numpy as np, anndata as ad, pandas as pd
    >>> from tutorial_kit.models import MeanShift, holdout
    >>> rng = np.random.default_rng(0)
    >>> obs = pd.DataFrame({
    ...     "cell_type": np.repeat(["A", "B"], 40),
    ...     "perturbation": np.tile(np.repeat(["control", "IFN"], 20), 2)})
    >>> obs.index = [f"c{i}" for i in range(80)]
    >>> X = rng.normal(size=(80, 5)).astype(np.float32) + (obs["perturbation"] == "IFN").to_numpy()[:, None]
    >>> split = holdout(ad.AnnData(X, obs=obs), cell_type="B", perturbation="IFN")
    >>> model = MeanShift().fit(split.train)
    >>> pred = model.predict(split.ctrl, "IFN")
    >>> pred.shape == split.ctrl.shape, set(pred.obs["perturbation"])
    (True, {'IFN'})
"""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from tutorial_kit import config
from tutorial_kit.data.schema import CONTROL
from tutorial_kit.validate import check_nonempty, check_obs_columns

if TYPE_CHECKING:  # pragma: no cover
    import anndata
    import pandas as pd


class NotApplicableError(ValueError):
    """A model cannot make this prediction by design (not a bug, not bad input).

    Raised, for example, when the additive model is asked for a double whose singles were
    never seen, when the linear model is asked for a perturbation whose target gene is not
    measured, or when a model that only predicts seen labels is asked for an unseen one.
    A benchmark records such a method x task pair as "not applicable", with this message,
    instead of failing (:func:`tutorial_kit.models.run_benchmark`).
    It is a ``ValueError``, so ``except ValueError`` still catches it.
    """


# --------------------------------------------------------------------------- the split


class Holdout(NamedTuple):
    """A held-out-cell-type split (see :func:`holdout`).

    Attributes:
        train: every cell except the perturbed cells of the held-out cell type
            (its control cells stay in, as in scGen and scPRAM).
        ctrl: the control cells of the held-out cell type: the input of ``predict``.
        true: the perturbed cells of the held-out cell type: what ``predict`` should produce.
        cell_type: the held-out cell type.
        perturbation: the held-out perturbation label.
        cell_type_key: the ``obs`` column of cell types.
        perturbation_key: the ``obs`` column of perturbations.
    """

    train: "anndata.AnnData"
    ctrl: "anndata.AnnData"
    true: "anndata.AnnData"
    cell_type: str
    perturbation: str
    cell_type_key: str = "cell_type"
    perturbation_key: str = "perturbation"


class ValidationHoldout(Holdout):
    """A :class:`Holdout` made of training cells only (see :func:`validation_holdout`).

    It is used like any ``Holdout``; its own type tells :func:`tune` that it holds no test cell,
    so that a search cannot be run on a test split by mistake.
    """

    __slots__ = ()


def holdout(
    adata: "anndata.AnnData",
    *,
    cell_type: str,
    perturbation: str,
    cell_type_key: str = "cell_type",
    perturbation_key: str = "perturbation",
    control: str = CONTROL,
) -> Holdout:
    """Hold out the ``perturbation`` cells of one ``cell_type``: the out-of-distribution test of scGen.

    The model is trained on ``train`` (which contains the held-out type's control cells but
    none of its perturbed cells), predicts from ``ctrl`` and is judged against ``true``.
    Taught in ``04_scgen``.

    Args:
        adata: cells x genes with ``obs[cell_type_key]`` and ``obs[perturbation_key]``.
        cell_type: the cell type whose perturbed cells are hidden from training.
        perturbation: the perturbation label to hold out (not ``control``).
        cell_type_key: the ``obs`` column of cell types.
        perturbation_key: the ``obs`` column of perturbation labels.
        control: the label of control cells.

    Returns:
        A :class:`Holdout` of three new AnnData objects (copies; ``adata`` is not changed).

    Raises:
        ValueError: a column is missing, the cell type or perturbation is unknown, or a part
            of the split would be empty.
    """
    where = "holdout"
    check_obs_columns(adata, [cell_type_key, perturbation_key], where=where)
    types = adata.obs[cell_type_key].astype(str).to_numpy()
    labels = adata.obs[perturbation_key].astype(str).to_numpy()
    if cell_type not in set(types):
        raise ValueError(
            f"{where}: unknown cell type {cell_type!r} in obs[{cell_type_key!r}]; "
            f"known: {sorted(set(types))}."
        )
    if perturbation == control:
        raise ValueError(f"{where}: perturbation must be a perturbed label, not the control label {control!r}.")
    if perturbation not in set(labels):
        raise ValueError(
            f"{where}: unknown perturbation {perturbation!r} in obs[{perturbation_key!r}]; "
            f"known: {sorted(set(labels))}."
        )
    in_type = types == cell_type
    test = in_type & (labels == perturbation)
    ctrl = in_type & (labels == control)
    check_nonempty(int(test.sum()), what=f"{perturbation!r} cells of {cell_type!r}", where=where)
    check_nonempty(int(ctrl.sum()), what=f"{control!r} cells of {cell_type!r}", where=where)
    others = (~in_type) & (labels == perturbation)
    check_nonempty(
        int(others.sum()), what=f"{perturbation!r} cells of any other cell type (the training signal)", where=where
    )
    return Holdout(
        train=adata[~test].copy(), ctrl=adata[ctrl].copy(), true=adata[test].copy(),
        cell_type=cell_type, perturbation=perturbation,
        cell_type_key=cell_type_key, perturbation_key=perturbation_key,
    )


def training_hvgs(split: Holdout, *, n_top_genes: int = 2000) -> Holdout:
    """Restrict a split to highly variable genes chosen on its training cells only.

    Choosing genes on all cells would let the held-out cells decide which genes are kept
    (a leak; see the book page *How the course evaluates models*, book/evaluation.md).
    Uses scanpy's ``seurat`` flavour, which expects log-normalized ``.X``; raw integer counts
    are refused.
    Taught in ``04_scgen``.

    Args:
        split: a :class:`Holdout`.
        n_top_genes: how many genes to keep (at most the number of genes).

    Returns:
        A new :class:`Holdout` whose three parts share the chosen genes, in the original order.
        Exactly ``n_top_genes`` genes: where scanpy keeps extra genes tied at the cut-off,
        the ties are broken by gene order.
    """
    import scanpy as sc

    from tutorial_kit.validate import sample_values

    n_genes = split.train.n_vars
    if not 1 <= int(n_top_genes) <= n_genes:
        raise ValueError(f"training_hvgs: n_top_genes must be between 1 and {n_genes}, got {n_top_genes}.")
    values = sample_values(split.train.X)
    if values.size and np.all(values == np.round(values)) and values.max() > 20:
        raise ValueError(
            "training_hvgs: .X looks like raw counts (all integers); highly variable genes are chosen on "
            "log-normalized data. Normalize first, e.g. adata.X = tk.data.log1p_cp10k(adata.layers['counts'])."
        )
    probe = split.train.copy()
    with warnings.catch_warnings():
        # scanpy 1.9 (the tk-scgen environment) calls pandas' groupby without `observed`, which
        # pandas 2 announces as a FutureWarning on every call; it does not change the genes chosen.
        warnings.filterwarnings("ignore", message="The default of observed=False is deprecated", category=FutureWarning)
        sc.pp.highly_variable_genes(probe, n_top_genes=int(n_top_genes), flavor="seurat")
    chosen = probe.var["highly_variable"].to_numpy()
    if chosen.sum() > int(n_top_genes):
        # scanpy keeps every gene tied with the cut-off (e.g. single-gene mean bins all score 1):
        # keep exactly n_top_genes, ties broken by gene order, with scanpy's score (NaN as 0).
        score = np.nan_to_num(probe.var["dispersions_norm"].to_numpy(dtype=np.float64))
        top = np.sort(np.argsort(-score, kind="stable")[: int(n_top_genes)])
        chosen = np.zeros(n_genes, dtype=bool)
        chosen[top] = True
    keep = probe.var_names[chosen]
    return split._replace(train=split.train[:, keep].copy(), ctrl=split.ctrl[:, keep].copy(),
                          true=split.true[:, keep].copy())


# --------------------------------------------------------------------------- the interface


class PerturbationModel:
    """Base class of every perturbation-response model of the course.

    Subclasses implement ``_fit(adata, epochs, progress)`` and ``_predict(ctrl, perturbation)``
    (a cells x genes array); the base class checks inputs, seeds, resolves the device,
    times training and builds the returned AnnData.
    After ``fit``: ``fit_seconds_`` (wall time), ``epochs_`` (epochs run, 0 for closed-form
    models), ``seconds_per_epoch_``, ``history_`` (a DataFrame of losses per epoch, possibly
    empty), ``perturbations_`` (labels it can predict), ``genes_`` (training genes).

    Args:
        seed: seed of everything random in ``fit`` and ``predict`` (course default if None).
        device: ``'cpu'``, ``'cuda'``, ``'cuda:N'`` or None for the automatic choice
            (:func:`tutorial_kit.config.get_device`).
    """

    name = "model"
    """Short name used in tables and plots."""
    budget = "vae"
    """Key of :data:`tutorial_kit.config.EPOCHS` for the default number of epochs."""

    def __init__(self, *, seed: int | None = None, device: str | None = None) -> None:
        self.seed = config.default_seed() if seed is None else int(seed)
        self.device = config.get_device(device)
        self.fit_seconds_: float | None = None
        self.epochs_ = 0
        self.history_: "pd.DataFrame | None" = None
        self.perturbations_: list[str] = []
        self.genes_: "pd.Index | None" = None

    def __repr__(self) -> str:
        state = "fitted" if self.is_fitted else "not fitted"
        return f"{type(self).__name__}(seed={self.seed}, device={self.device!r}, {state})"

    @property
    def is_fitted(self) -> bool:
        return self.genes_ is not None

    @property
    def seconds_per_epoch_(self) -> float | None:
        """Training wall time per epoch (None before fit or for closed-form models)."""
        if self.fit_seconds_ is None or not self.epochs_:
            return None
        return self.fit_seconds_ / self.epochs_

    def fit(
        self,
        adata: "anndata.AnnData",
        *,
        perturbation_key: str = "perturbation",
        cell_type_key: str = "cell_type",
        control: str = CONTROL,
        epochs: int | None = None,
        progress: bool = True,
    ) -> "PerturbationModel":
        """Train on ``adata`` (log-normalized ``.X``); returns ``self``.

        Args:
            adata: training cells with control and at least one perturbed label.
            perturbation_key: ``obs`` column of perturbation labels.
            cell_type_key: ``obs`` column of cell types.
            control: the control label.
            epochs: training epochs (default: the tier's budget, :func:`tutorial_kit.config.epochs`).
            progress: show a progress bar.
        """
        where = f"{type(self).__name__}.fit"
        check_obs_columns(adata, [perturbation_key, cell_type_key], where=where)
        labels = adata.obs[perturbation_key].astype(str)
        if control not in set(labels):
            raise ValueError(
                f"{where}: no control cells: obs[{perturbation_key!r}] has no {control!r} label "
                f"(labels: {sorted(set(labels))[:10]}). Pass control='your label'."
            )
        perturbed = sorted(set(labels) - {control})
        check_nonempty(len(perturbed), what=f"perturbed labels in obs[{perturbation_key!r}]", where=where)
        _check_finite(adata.X, where=where)
        if epochs is None:
            epochs = config.epochs(self.budget)
        if int(epochs) < 1:
            raise ValueError(f"{where}: epochs must be at least 1, got {epochs}.")
        self.perturbation_key, self.cell_type_key, self.control = perturbation_key, cell_type_key, control
        self.perturbations_ = perturbed
        config.seed_everything(self.seed)
        start = time.perf_counter()
        self._fit(adata, epochs=int(epochs), progress=progress)
        self.fit_seconds_ = time.perf_counter() - start
        self.genes_ = adata.var_names.copy()
        return self

    def predict(self, ctrl: "anndata.AnnData", perturbation: str) -> "anndata.AnnData":
        """Predict how the control cells ``ctrl`` respond to ``perturbation``.

        Args:
            ctrl: control cells with the training genes in the training order.
            perturbation: a perturbed label seen in training (or, for models that predict unseen
                perturbations, one they can build from what they saw).

        Returns:
            A new AnnData, one predicted cell per input cell: ``obs`` copied from ``ctrl`` with
            ``obs[perturbation_key]`` set to ``perturbation`` and ``obs['predicted'] = True``.
        """
        import anndata as ad

        where = f"{type(self).__name__}.predict"
        if not self.is_fitted:
            raise RuntimeError(f"{where}: the model is not fitted; call .fit(train) first.")
        self._check_perturbation(perturbation, where)
        check_nonempty(ctrl.n_obs, what="control cells to predict from", where=where)
        if not ctrl.var_names.equals(self.genes_):
            missing = self.genes_.difference(ctrl.var_names)
            raise ValueError(
                f"{where}: the genes of ctrl differ from the {len(self.genes_)} training genes "
                f"({len(missing)} missing, e.g. {list(missing[:5])}; or a different order). "
                "Subset ctrl the same way as the training data: ctrl[:, model.genes_]."
            )
        if self.perturbation_key in ctrl.obs:
            seen = set(ctrl.obs[self.perturbation_key].astype(str)) - {self.control}
            if seen:
                raise ValueError(
                    f"{where}: ctrl must hold control cells only, but obs[{self.perturbation_key!r}] "
                    f"also has {sorted(seen)[:5]}."
                )
        _check_finite(ctrl.X, where=where)
        config.seed_everything(self.seed)
        X = np.asarray(self._predict(ctrl, perturbation), dtype=np.float32)
        if X.shape != ctrl.shape:  # pragma: no cover - a broken subclass
            raise RuntimeError(f"{where}: {type(self).__name__} returned shape {X.shape}, expected {ctrl.shape}.")
        obs = ctrl.obs.copy()
        if self.perturbation_key in obs and hasattr(obs[self.perturbation_key], "cat"):
            obs[self.perturbation_key] = obs[self.perturbation_key].astype(str)
        obs[self.perturbation_key] = perturbation
        obs["predicted"] = True
        return ad.AnnData(X=X, obs=obs, var=ctrl.var.copy())

    # subclasses ------------------------------------------------------------------------

    def _check_perturbation(self, perturbation: str, where: str) -> None:
        """Refuse a perturbation this model cannot predict (default: any label not seen in training).

        Models that predict unseen perturbations (e.g. from the training singles of a double,
        or from an embedding of the target gene) override this with their own rule and message.
        """
        if perturbation not in self.perturbations_:
            raise NotApplicableError(
                f"{where}: unknown perturbation {perturbation!r}; this model was trained on {self.perturbations_}."
            )

    def _fit(self, adata: "anndata.AnnData", *, epochs: int, progress: bool) -> None:  # pragma: no cover
        raise NotImplementedError

    def _predict(self, ctrl: "anndata.AnnData", perturbation: str) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError


def _check_finite(x: Any, *, where: str) -> None:
    import scipy.sparse as sp

    values = x.data if sp.issparse(x) else np.asarray(x)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{where}: .X contains NaN or infinite values; fix or remove those cells first.")
