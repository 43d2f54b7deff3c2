"""scGen (Lotfollahi et al., 2019) behind the course interface, in two implementations.

scGen is a variational autoencoder trained on log-normalized expression. Its prediction is
latent arithmetic: encode the query control cells, add the difference ``delta`` between the
mean latent code of perturbed and of control training cells (cell types balanced by
resampling), and decode. Both classes below train, seed and judge it like every other
:class:`~tutorial_kit.models.PerturbationModel`:

- :class:`ScGen` wraps the original ``scgen.SCGEN`` 2.1.0 (scvi-tools 0.19, PyTorch). ``scgen``
  runs only on its own old stack, so this class needs the session environment ``tk-scgen``
  (``python3 environments/build.py scgen``, or ``conda env create -f environments/scgen.yml``);
  everything else in ``tutorial_kit`` works there too. Taught in ``04_scgen`` and run beside
  scPRAM in ``05_scpram``.
- :class:`ScGenPertpy` wraps pertpy's maintained re-implementation ``pertpy.tl.Scgen``
  (pertpy 1.0.3, a JAX/flax model trained by scvi-tools 1.4.2), which runs in the core
  environment (``python3 environments/build.py core``, kernel ``tk-core``).
  Taught in ``10_benchmarking``.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from tutorial_kit.models.base import PerturbationModel

if TYPE_CHECKING:  # pragma: no cover
    import anndata

INSTALL_HINT = (
    "ScGen needs the scgen package (2.1.0), which runs only on its own pinned stack "
    "(scvi-tools 0.19, anndata 0.9, numpy 1.26). Build the session environment with "
    "`python3 environments/build.py scgen` and choose the Jupyter kernel 'tk-scgen' "
    "(with conda: `conda env create -f environments/scgen.yml && conda activate tk-scgen`)."
)


MONITORS = ("validation_loss", "elbo_validation", "reconstruction_loss_validation")
"""Validation quantities early stopping can watch (logged by scvi-tools every epoch)."""


def _import_scgen() -> Any:
    try:
        with warnings.catch_warnings():
            # pytorch-lightning 1.7 announces its own deprecations when scvi-tools imports it
            # (and re-enables them on import, hence the filter after importing it).
            warnings.simplefilter("ignore", DeprecationWarning)
            import pytorch_lightning  # noqa: F401
            warnings.simplefilter("ignore", DeprecationWarning)
            import scgen
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return scgen


@contextlib.contextmanager
def _quiet_inference() -> Iterator[None]:
    """Hide scvi-tools' notes while scGen encodes or predicts; restore its verbosity after.

    scvi-tools logs "Input AnnData not setup with scvi-tools" for every query (expected here:
    the query is registered on the fly), and scGen's resampling of training cells repeats
    cell names, which anndata warns about; neither is something a participant must act on.
    """
    import scvi

    before = scvi.settings.verbosity
    scvi.settings.verbosity = logging.WARNING
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Observation names are not unique", category=UserWarning)
            yield
    finally:
        scvi.settings.verbosity = before


def _use_gpu(device: str) -> bool | int:
    """scvi-tools 0.19 takes ``use_gpu``: False for the CPU, the GPU index otherwise."""
    if device == "cpu":
        return False
    _, _, index = device.partition(":")
    return int(index) if index else 0


class ScGen(PerturbationModel):
    """scGen: a VAE whose latent space turns a perturbation into one vector, ``delta``.

    ``fit`` trains ``scgen.SCGEN`` on a copy of the training cells (``obs[perturbation_key]``
    is scGen's condition, ``obs[cell_type_key]`` its cell type). ``predict(ctrl, p)`` encodes
    ``ctrl``, adds ``delta_`` (mean latent code of ``p`` cells minus that of control cells of
    the training data, cell types balanced by scGen's resampling, which the seed fixes) and
    decodes. After ``fit``: ``model_`` (the ``scgen.SCGEN``), ``history_`` (columns ``epoch``,
    ``train_loss``, ``validation_loss`` per epoch), ``epochs_`` (epochs actually run; fewer than
    asked when early stopping stops). After ``predict``: ``delta_`` (the latent vector used).
    :meth:`latent` gives the latent means of any cells, to draw the latent space with ``delta_``.

    The defaults are scGen's: ``n_hidden=800``, ``n_latent=100``, ``n_layers=2``,
    ``dropout_rate=0.2``, batch size 32, Adam with learning rate 1e-3, early stopping with
    patience 25, 10% of the cells held out for validation. Early stopping watches scGen's own
    validation loss (see ``monitor``).

    Args:
        n_hidden: units per hidden layer of encoder and decoder.
        n_latent: dimension of the latent space.
        n_layers: hidden layers of encoder and decoder.
        dropout_rate: dropout in encoder and decoder.
        batch_size: cells per minibatch.
        lr: Adam learning rate.
        early_stopping: stop when ``monitor`` has not improved for ``patience`` epochs.
        patience: epochs without improvement before stopping.
        monitor: the validation quantity early stopping watches. ``'validation_loss'`` is the
            objective scGen minimizes (reconstruction + a KL term weighted 5e-5).
            ``'elbo_validation'``, the default of scvi-tools, counts the KL term in full; it is
            lowest after an epoch or two and then rises while the loss still falls, so training
            stops after about ``patience + 2`` epochs (27 of 100 on the Kang CD4T split, where
            the validation loss still fell from 27.3 to 25.0 by epoch 100).
        train_size: fraction of the cells used for training; the rest is the validation set.
        seed: seed of training (``scvi.settings.seed``) and of the resampling in ``predict``.
        device: ``'cpu'``, ``'cuda'``, ``'cuda:N'`` or None for the automatic choice.

    Example:
        >>> from tutorial_kit.models import ScGen
        >>> model = ScGen(n_latent=10, seed=0, device="cpu")
        >>> model.name, model.n_latent, model.is_fitted
        ('scGen', 10, False)
    """

    name = "scGen"
    budget = "scgen"

    def __init__(
        self,
        *,
        n_hidden: int = 800,
        n_latent: int = 100,
        n_layers: int = 2,
        dropout_rate: float = 0.2,
        batch_size: int = 32,
        lr: float = 1e-3,
        early_stopping: bool = True,
        patience: int = 25,
        monitor: str = "validation_loss",
        train_size: float = 0.9,
        seed: int | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(seed=seed, device=device)
        where = type(self).__name__
        for label, value in (("n_hidden", n_hidden), ("n_latent", n_latent), ("n_layers", n_layers),
                             ("batch_size", batch_size), ("patience", patience)):
            if int(value) < 1:
                raise ValueError(f"{where}: {label} must be at least 1, got {value}.")
        if not 0.0 <= dropout_rate < 1.0:
            raise ValueError(f"{where}: dropout_rate must be in [0, 1), got {dropout_rate}.")
        if not lr > 0:
            raise ValueError(f"{where}: lr must be positive, got {lr}.")
        if monitor not in MONITORS:
            raise ValueError(f"{where}: monitor must be one of {MONITORS}, got {monitor!r}.")
        if not 0.0 < train_size < 1.0:
            raise ValueError(
                f"{where}: train_size must be between 0 and 1 (exclusive; the rest validates), got {train_size}."
            )
        self.n_hidden, self.n_latent, self.n_layers = int(n_hidden), int(n_latent), int(n_layers)
        self.dropout_rate, self.batch_size, self.lr = float(dropout_rate), int(batch_size), float(lr)
        self.early_stopping, self.patience, self.monitor = bool(early_stopping), int(patience), monitor
        self.train_size = float(train_size)
        self.model_: Any = None
        self.delta_: np.ndarray | None = None

    # ------------------------------------------------------------------------- training

    def _fit(self, adata: "anndata.AnnData", *, epochs: int, progress: bool) -> None:
        import pandas as pd

        scgen = _import_scgen()
        import scvi

        train = adata.copy()
        for key in (self.perturbation_key, self.cell_type_key):
            train.obs[key] = train.obs[key].astype(str).astype("category")
        self._dummy_type = str(train.obs[self.cell_type_key].cat.categories[0])
        with _quiet_training(), _fused_adam():
            scvi.settings.seed = self.seed
            scgen.SCGEN.setup_anndata(train, batch_key=self.perturbation_key, labels_key=self.cell_type_key)
            model = scgen.SCGEN(train, n_hidden=self.n_hidden, n_latent=self.n_latent, n_layers=self.n_layers,
                                dropout_rate=self.dropout_rate)
            model.train(
                max_epochs=epochs, use_gpu=_use_gpu(self.device), train_size=self.train_size,
                batch_size=self.batch_size, early_stopping=self.early_stopping,
                early_stopping_patience=self.patience, early_stopping_monitor=self.monitor,
                check_val_every_n_epoch=1,
                plan_kwargs={"lr": self.lr}, enable_progress_bar=progress, simple_progress_bar=progress,
            )
        self.model_ = model
        history = model.history
        frame = pd.DataFrame({"train_loss": history["train_loss_epoch"].iloc[:, 0].astype(float)})
        if "validation_loss" in history:
            frame = frame.join(history["validation_loss"].iloc[:, 0].astype(float).rename("validation_loss"))
        self.history_ = frame.rename_axis("epoch").reset_index()
        self.epochs_ = int(len(frame))

    # ------------------------------------------------------------------------- prediction

    def _query(self, adata: "anndata.AnnData") -> "anndata.AnnData":
        """Cells for scGen's encoder: ``adata.X`` with placeholder labels (the encoder reads only X)."""
        import anndata as ad
        import pandas as pd

        obs = pd.DataFrame(
            {self.perturbation_key: self.control, self.cell_type_key: self._dummy_type},
            index=adata.obs_names.copy(),
        )
        X = adata.X.copy() if hasattr(adata.X, "copy") else np.array(adata.X)
        return ad.AnnData(X=X.astype(np.float32), obs=obs, var=adata.var[[]].copy())

    def _predict(self, ctrl: "anndata.AnnData", perturbation: str) -> np.ndarray:
        # scGen balances and subsamples the training cells with NumPy's global generator,
        # which PerturbationModel.predict has just seeded with self.seed.
        with _quiet_inference():
            predicted, delta = self.model_.predict(
                ctrl_key=self.control, stim_key=perturbation, adata_to_predict=self._query(ctrl)
            )
        self.delta_ = np.asarray(delta, dtype=np.float32)
        return np.asarray(predicted.X, dtype=np.float32)

    def latent(self, adata: "anndata.AnnData") -> np.ndarray:
        """Latent means (cells x ``n_latent``) of any cells with the training genes.

        Use it with ``delta_`` to draw scGen's latent space: control and perturbed cells
        differ by roughly ``delta_`` in every cell type.

        Args:
            adata: cells x genes, the training genes in the training order (log-normalized).

        Returns:
            A float32 array, one row per cell of ``adata``.
        """
        where = f"{type(self).__name__}.latent"
        if not self.is_fitted:
            raise RuntimeError(f"{where}: the model is not fitted; call .fit(train) first.")
        if not adata.var_names.equals(self.genes_):
            raise ValueError(
                f"{where}: the genes differ from the {len(self.genes_)} training genes "
                "(names or order). Subset the same way as the training data: adata[:, model.genes_]."
            )
        with _quiet_inference():
            return np.asarray(self.model_.get_latent_representation(self._query(adata)), dtype=np.float32)


# =========================================================================== pertpy's scGen

PERTPY_INSTALL_HINT = (
    "ScGenPertpy needs pertpy (1.0.3) and scvi-tools with JAX (1.4.2), which the course's core "
    "environment has. Build it with `python3 environments/build.py core` and choose the Jupyter "
    "kernel 'tk-core' (with conda: `conda env create -f environments/core.yml && conda activate tk-core`)."
)


def _import_pertpy() -> Any:
    try:
        import pertpy
        import scvi  # noqa: F401
    except ImportError as err:
        raise ImportError(PERTPY_INSTALL_HINT) from err
    return pertpy


def _accelerator(device: str) -> tuple[str, Any]:
    """Lightning's ``accelerator`` and ``devices`` for a course device: ``('cpu', 'auto')`` or ``('gpu', [N])``."""
    if device == "cpu":
        return "cpu", "auto"
    _, _, index = device.partition(":")
    return "gpu", [int(index) if index else 0]


def _jax_has_gpu() -> bool:
    """Whether the installed jaxlib can run on a GPU (the CPU-only jaxlib cannot)."""
    import jax

    try:
        return len(jax.devices("gpu")) > 0
    except RuntimeError:
        return False


@contextlib.contextmanager
def _seeded_default_rng(seed: int) -> Iterator[None]:
    """Make unseeded ``numpy.random.default_rng()`` calls reproducible for the duration of the block.

    Inside the block, ``numpy.random.default_rng()`` (or ``default_rng(None)``) returns a generator
    seeded by the next child of ``numpy.random.SeedSequence(seed)``, so the n-th unseeded call
    gets the same generator every time the block runs; an explicit seed is passed through
    unchanged. The original function is put back when the block ends, also on an error.
    """
    original = np.random.default_rng
    stream = np.random.SeedSequence(seed)

    def default_rng(seed: Any = None) -> np.random.Generator:
        return original(stream.spawn(1)[0] if seed is None else seed)

    np.random.default_rng = default_rng
    try:
        yield
    finally:
        np.random.default_rng = original


@contextlib.contextmanager
def _quiet_training() -> Iterator[None]:
    """Hide Lightning's and scvi-tools' start-up notes while scGen trains; restore them after.

    Used by both implementations (Lightning 1.7's ``pytorch_lightning`` under the scgen package,
    Lightning 2's ``lightning`` under pertpy). The notes say which accelerator *Lightning* uses
    ("GPU available: False, used: False"; the course prints the device itself, and for pertpy's
    JAX model Lightning only drives the loop, see ``jax_device_``), announce the seed ("Global
    seed set to 0", once per fit) and advertise a logging service; two warnings concern
    Lightning's handling of JAX batches. The progress bar (``progress=True``) and early
    stopping's message are kept.
    """
    import scvi

    names = ("lightning.pytorch", "lightning.fabric", "pytorch_lightning", "lightning_lite")
    levels = {name: logging.getLogger(name).level for name in names}
    before = scvi.settings.verbosity
    scvi.settings.verbosity = logging.WARNING
    for name in names:
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
            warnings.filterwarnings("ignore", message="You have overridden `transfer_batch_to_device`")
            yield
    finally:
        scvi.settings.verbosity = before
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


@contextlib.contextmanager
def _fused_adam() -> Iterator[None]:
    """Let scGen (scvi-tools 0.19) train with the fused Adam of :func:`tutorial_kit.config.adam`.

    The update is the same Adam (scvi-tools' own ``lr``, ``eps`` and ``weight_decay``), computed in
    one pass over the weights: a fit of notebook 04 takes 5.5 s instead of 13.4 s on two CPU
    cores, with the same losses to rounding. scvi-tools 0.19 offers no working way to pass an
    optimizer (its ``optimizer="Custom"`` branch returns the wrong callable) and builds its
    ``TrainingPlan`` by name inside ``train``, so that name is pointed at a subclass for the
    duration of one ``train`` call and restored afterwards. Any other layout of scvi-tools
    trains with its default Adam.
    """
    try:
        from scvi.model.base import _training_mixin
        from scvi.train import TrainingPlan
    except ImportError:  # another scvi-tools layout: keep its default optimizer
        yield
        return
    if getattr(_training_mixin, "TrainingPlan", None) is not TrainingPlan:
        yield
        return
    from tutorial_kit.config import adam

    class _FusedAdamPlan(TrainingPlan):
        def get_optimizer_creator(self):
            if self.optimizer_name != "Adam":
                return super().get_optimizer_creator()
            return lambda params: adam(params, lr=self.lr, eps=self.eps, weight_decay=self.weight_decay)

    _training_mixin.TrainingPlan = _FusedAdamPlan
    try:
        yield
    finally:
        _training_mixin.TrainingPlan = TrainingPlan


class ScGenPertpy(ScGen):
    """scGen as pertpy maintains it (``pertpy.tl.Scgen``, JAX), behind the course interface.

    The same model as :class:`ScGen` (a VAE whose latent space turns a perturbation into one
    vector, ``delta``) in pertpy's maintained JAX/flax re-implementation, trained by
    scvi-tools 1.4.2. It runs in the core environment, so the benchmark can put scGen beside
    every other model in one kernel. ``fit`` trains ``pertpy.tl.Scgen`` on a copy of the
    training cells (``obs[perturbation_key]`` is scGen's batch, ``obs[cell_type_key]`` its
    label). ``predict(ctrl, p)`` calls pertpy's own ``Scgen.predict``: encode ``ctrl``, add
    ``delta_`` (mean latent code of ``p`` cells minus that of control cells of the training
    data, cell types balanced by resampling), decode. Taught in ``10_benchmarking``.
    A subclass of :class:`ScGen`: the parameters, their checks, :meth:`latent` and the
    encoder query are shared; training and prediction call pertpy instead of scgen.

    **The one departure from pertpy: seeded resampling.** pertpy draws the cells it balances
    and subsamples for ``delta`` from ``numpy.random.default_rng()`` without a seed, so two
    calls of ``Scgen.predict`` on the same trained model give different predictions (on the
    Kang CD4T split, 10 epochs, the predicted gene means of two calls differed by 0.02 to 0.07
    at the most-changed gene, and R^2 of means moved between 0.84 and 0.85).
    To make a prediction reproducible while still calling pertpy's real ``predict``, this
    class replaces ``numpy.random.default_rng`` for the duration of that one call by a function
    that returns generators drawn from ``numpy.random.SeedSequence(seed)`` when called without
    a seed (explicit seeds pass through), and puts the original back afterwards, also when the
    call fails. Same seed, same prediction; nothing else about pertpy's model is changed.
    (Other threads of the process calling ``default_rng()`` during that call would get seeded
    generators too.)

    After ``fit``: ``model_`` (the trained ``pertpy.tl.Scgen``), ``history_`` (columns
    ``epoch``, ``train_loss``, ``validation_loss``), ``epochs_`` (epochs actually run; fewer than
    asked when early stopping stops), ``jax_device_`` (where JAX trained). After ``predict``:
    ``delta_``. :meth:`latent` gives the latent means of any cells. pertpy's loss sums the
    squared error over the cells of a minibatch, so its values grow with ``batch_size``;
    compare losses at one batch size only. The first ``fit`` in a process also imports pertpy
    (5-10 s), which ``fit_seconds_`` counts.

    The defaults are scGen's (``n_hidden=800``, ``n_latent=100``, ``n_layers=2``,
    ``dropout_rate=0.2``, batch size 32, Adam with learning rate 1e-3, early stopping with
    patience 25 on the validation loss, 10% of the cells for validation). pertpy's ``train``
    defaults to batch size 128; 32 is kept because, at the CI budget of 10 epochs on the Kang
    CD4T split, 128 takes a quarter of the optimizer steps and predicts clearly worse (mean of
    seeds 0-2: R^2 of means 0.70 instead of 0.85, Pearson delta 0.31 instead of 0.51) while
    saving little time (a fit has a fixed cost of about 10 s for JIT compilation and setup, on
    2 shared CPU cores: 18 s instead of 20-27 s per fit).

    Devices: ``'cpu'`` trains on the CPU. ``'cuda'``/``'cuda:N'`` asks scvi-tools for the GPU
    (Lightning accelerator ``'gpu'``); the model itself is JAX, so it runs on the GPU only when
    the installed ``jaxlib`` has CUDA support (``jax[cuda12]``), which the core environment does
    not install. Without it, ``fit`` warns and trains on the CPU. Lightning only drives the loop.

    Args:
        n_hidden: units per hidden layer of encoder and decoder.
        n_latent: dimension of the latent space.
        n_layers: hidden layers of encoder and decoder.
        dropout_rate: dropout in encoder and decoder.
        batch_size: cells per minibatch.
        lr: Adam learning rate.
        early_stopping: stop when ``monitor`` has not improved for ``patience`` epochs.
        patience: epochs without improvement before stopping.
        monitor: the validation quantity early stopping watches (see :class:`ScGen`).
        train_size: fraction of the cells used for training; the rest is the validation set.
        seed: seed of training (``scvi.settings.seed``, which also seeds JAX's keys) and of the
            resampling in ``predict``.
        device: ``'cpu'``, ``'cuda'``, ``'cuda:N'`` or None for the automatic choice.

    Example:
        >>> from tutorial_kit.models import ScGenPertpy
        >>> model = ScGenPertpy(n_latent=10, seed=0, device="cpu")
        >>> model.name, model.n_latent, model.batch_size, model.is_fitted
        ('scGen (pertpy)', 10, 32, False)
    """

    name = "scGen (pertpy)"
    budget = "scgen"

    def __init__(
        self,
        *,
        n_hidden: int = 800,
        n_latent: int = 100,
        n_layers: int = 2,
        dropout_rate: float = 0.2,
        batch_size: int = 32,
        lr: float = 1e-3,
        early_stopping: bool = True,
        patience: int = 25,
        monitor: str = "validation_loss",
        train_size: float = 0.9,
        seed: int | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(n_hidden=n_hidden, n_latent=n_latent, n_layers=n_layers, dropout_rate=dropout_rate,
                         batch_size=batch_size, lr=lr, early_stopping=early_stopping, patience=patience,
                         monitor=monitor, train_size=train_size, seed=seed, device=device)
        self.jax_device_: str | None = None

    # ------------------------------------------------------------------------- training

    def _fit(self, adata: "anndata.AnnData", *, epochs: int, progress: bool) -> None:
        import pandas as pd

        pertpy = _import_pertpy()
        import scvi

        accelerator, devices = _accelerator(self.device)
        if accelerator == "gpu" and not _jax_has_gpu():
            warnings.warn(
                f"ScGenPertpy: device {self.device!r} was chosen, but the installed jaxlib has no CUDA "
                "support, so pertpy's scGen (a JAX model) trains on the CPU. Install the CUDA build of "
                "JAX (e.g. jax[cuda12]) to train on the GPU, or pass device='cpu' to silence this.",
                RuntimeWarning, stacklevel=3,
            )
            accelerator, devices = "cpu", "auto"
        train = adata.copy()
        for key in (self.perturbation_key, self.cell_type_key):
            train.obs[key] = train.obs[key].astype(str).astype("category")
        self._dummy_type = str(train.obs[self.cell_type_key].cat.categories[0])
        with _quiet_training():
            scvi.settings.seed = self.seed
            pertpy.tl.Scgen.setup_anndata(train, batch_key=self.perturbation_key, labels_key=self.cell_type_key)
            model = pertpy.tl.Scgen(train, n_hidden=self.n_hidden, n_latent=self.n_latent,
                                    n_layers=self.n_layers, dropout_rate=self.dropout_rate)
            model.train(
                max_epochs=epochs, accelerator=accelerator, devices=devices, train_size=self.train_size,
                batch_size=self.batch_size, early_stopping=self.early_stopping,
                early_stopping_patience=self.patience, early_stopping_monitor=self.monitor,
                check_val_every_n_epoch=1, plan_kwargs={"lr": self.lr},
                enable_progress_bar=progress, simple_progress_bar=progress,
            )
        self.model_ = model
        self.jax_device_ = str(model.module.device)
        history = model.history
        frame = pd.DataFrame({"train_loss": history["train_loss"].iloc[:, 0].astype(float)})
        frame = frame.join(history["validation_loss"].iloc[:, 0].astype(float).rename("validation_loss"))
        self.history_ = frame.rename_axis("epoch").reset_index()
        self.epochs_ = int(len(frame))

    # ------------------------------------------------------------------------- prediction

    def _predict(self, ctrl: "anndata.AnnData", perturbation: str) -> np.ndarray:
        query = self._query(ctrl)
        with _quiet_inference(), _seeded_default_rng(self.seed):
            predicted, delta = self.model_.predict(ctrl_key=self.control, stim_key=perturbation,
                                                   adata_to_predict=query)
        self.delta_ = np.asarray(delta, dtype=np.float32)
        return np.asarray(predicted.X, dtype=np.float32)
