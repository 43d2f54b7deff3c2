"""Biolord (Piran et al., 2024): the real ``biolord`` package behind the course interface.

Biolord decodes a cell from embeddings of its *known* attributes (here the perturbation and
the cell type) plus a free latent code per cell for everything else, its *unknown* attributes.
The per-cell code is learned directly (an autodecoder: no encoder), with noise and an L2
penalty that keep it from absorbing the known attributes; that penalty is the disentanglement
that CPA buys with an adversary. A counterfactual keeps a cell's unknown code and cell type
and swaps the perturbation embedding. Taught in ``06_cpa_biolord``.

Because the unknown code is learned per training cell, Biolord predicts only from cells it was
trained on: the control cells of a held-out cell type must be in the training data (they are,
in :func:`tutorial_kit.models.holdout`). ``biolord`` 0.0.2 uses the scvi-tools 0.20 API, so this
class needs the session environment ``tk-cpa`` (``python3 environments/build.py cpa``).
"""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING, Any

import numpy as np

from tutorial_kit.models.base import NotApplicableError, PerturbationModel
from tutorial_kit.models.cpa import quiet

if TYPE_CHECKING:  # pragma: no cover
    import anndata

INSTALL_HINT = (
    "Biolord needs biolord 0.0.2 on scvi-tools 0.20.3, the stack of the session environment tk-cpa. "
    "Build it with `python3 environments/build.py cpa` and choose the Jupyter kernel 'tk-cpa'."
)


def _import_biolord() -> Any:
    try:
        with quiet():
            import biolord
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return biolord


class Biolord(PerturbationModel):
    """Biolord: known attributes (perturbation, cell type) plus a learned code per cell for the rest.

    ``fit`` trains ``biolord.Biolord`` on ``X`` (log-normalized, Gaussian likelihood, as in
    Biolord's single-cell tutorials) with ``obs[perturbation_key]`` and ``obs[cell_type_key]``
    as categorical attributes. Every training cell is used for training (no validation split:
    a cell held out for validation would get no code). ``predict(ctrl, p)`` takes the codes and
    cell types of the control cells ``ctrl`` (which must be training cells) and decodes them with
    the embedding of ``p``.

    After ``fit``: ``model_`` (the ``biolord.Biolord``), ``history_`` (the training losses per
    epoch), ``epochs_``. :meth:`latent` gives the unknown-attribute codes (``'basal'``) or the
    full latent (``'full'``, codes plus attribute embeddings).

    Args:
        n_latent: dimension of the per-cell code of the unknown attributes.
        n_latent_attribute: dimension of each categorical attribute's embedding.
        decoder_width: units per hidden layer of the decoder.
        decoder_depth: hidden layers of the decoder.
        unknown_attribute_penalty: weight of the L2 penalty on the per-cell codes.
        unknown_attribute_noise: standard deviation of the noise added to the codes in training.
        batch_size: cells per minibatch.
        lr: learning rate of the decoder and embeddings.
        seed: seed of training.
        device: ``'cpu'``, ``'cuda'``, ``'cuda:N'`` or None for the automatic choice.

    Example:
        >>> from tutorial_kit.models import Biolord
        >>> model = Biolord(n_latent=16, seed=0, device="cpu")
        >>> model.name, model.n_latent, model.is_fitted
        ('Biolord', 16, False)
    """

    name = "Biolord"
    budget = "cpa"

    def __init__(
        self,
        *,
        n_latent: int = 32,
        n_latent_attribute: int = 16,
        decoder_width: int = 256,
        decoder_depth: int = 3,
        unknown_attribute_penalty: float = 10.0,
        unknown_attribute_noise: float = 0.1,
        batch_size: int = 128,
        lr: float = 3e-3,
        seed: int | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(seed=seed, device=device)
        where = type(self).__name__
        for label, value in (("n_latent", n_latent), ("n_latent_attribute", n_latent_attribute),
                             ("decoder_width", decoder_width), ("decoder_depth", decoder_depth),
                             ("batch_size", batch_size)):
            if int(value) < 1:
                raise ValueError(f"{where}: {label} must be at least 1, got {value}.")
        if unknown_attribute_penalty < 0 or unknown_attribute_noise < 0 or not lr > 0:
            raise ValueError(f"{where}: the penalty and the noise must be >= 0 and lr > 0.")
        self.n_latent, self.n_latent_attribute = int(n_latent), int(n_latent_attribute)
        self.decoder_width, self.decoder_depth = int(decoder_width), int(decoder_depth)
        self.unknown_attribute_penalty = float(unknown_attribute_penalty)
        self.unknown_attribute_noise = float(unknown_attribute_noise)
        self.batch_size, self.lr = int(batch_size), float(lr)
        self.model_: Any = None

    def _fit(self, adata: "anndata.AnnData", *, epochs: int, progress: bool) -> None:
        import anndata as ad
        import pandas as pd
        import scipy.sparse as sp

        biolord = _import_biolord()
        import scvi

        X = adata.X
        X = sp.csr_matrix(X, dtype=np.float32) if sp.issparse(X) else np.asarray(X, dtype=np.float32)
        obs = pd.DataFrame(
            {
                self.perturbation_key: adata.obs[self.perturbation_key].astype(str).to_numpy(),
                self.cell_type_key: adata.obs[self.cell_type_key].astype(str).to_numpy(),
            },
            index=adata.obs_names.astype(str),
        )
        train = ad.AnnData(X=X, obs=obs, var=adata.var[[]].copy())
        keys = [self.perturbation_key, self.cell_type_key]
        module = {
            "n_latent_attribute_categorical": self.n_latent_attribute,
            "gene_likelihood": "normal",
            "unknown_attribute_penalty": self.unknown_attribute_penalty,
            "unknown_attribute_noise_param": self.unknown_attribute_noise,
            "decoder_width": self.decoder_width,
            "decoder_depth": self.decoder_depth,
            "seed": self.seed,
        }
        plan = {"latent_lr": self.lr, "decoder_lr": self.lr, "attribute_nn_lr": self.lr, "step_size_lr": max(epochs // 2, 1)}
        with tempfile.TemporaryDirectory(prefix="tk-biolord-") as folder:
            with quiet():
                scvi.settings.seed = self.seed
                biolord.Biolord.setup_anndata(train, categorical_attributes_keys=list(keys))
                model = biolord.Biolord(train, n_latent=self.n_latent, module_params=module, train_classifiers=False)
            with quiet(streams=not progress):
                model.train(
                    max_epochs=epochs, use_gpu=self.device != "cpu", batch_size=self.batch_size, train_size=1.0,
                    plan_kwargs=plan, early_stopping=False, enable_checkpointing=False, default_root_dir=folder,
                    enable_progress_bar=progress, check_val_every_n_epoch=10 ** 6,
                )
        self.model_ = model
        self._train = train
        self._index = pd.Series(np.arange(train.n_obs), index=train.obs_names)
        history = pd.DataFrame(model.training_plan.epoch_history) if hasattr(model.training_plan, "epoch_history") else None
        if history is not None and "mode" in history:
            history = history[history["mode"] == "train"].drop(columns=["mode"]).reset_index(drop=True)
        history = history if history is not None else pd.DataFrame()
        self.history_ = history.rename(columns=lambda c: str(c).replace("LOSS_KEYS.", "").lower())
        self.epochs_ = int(epochs)

    def _training_rows(self, adata: "anndata.AnnData", where: str) -> np.ndarray:
        names = adata.obs_names.astype(str)
        missing = [n for n in names if n not in self._index.index]
        if missing:
            raise ValueError(
                f"{where}: {len(missing)} cell(s) were not in training (e.g. {missing[:3]}). Biolord learns a "
                "code per training cell and has none for new cells: predict from training control cells "
                "(those of tk.models.holdout(...).ctrl are)."
            )
        return self._index.loc[names].to_numpy()

    def _predict(self, ctrl: "anndata.AnnData", perturbation: str) -> np.ndarray:
        where = f"{type(self).__name__}.predict"
        rows = self._training_rows(ctrl, where)
        source = self._train[rows].copy()
        import torch

        mapping = list(self.model_.adata_manager.get_state_registry(self.perturbation_key).categorical_mapping)
        with quiet():
            dataset = self.model_.get_dataset(source)
            dataset[self.perturbation_key] = torch.full_like(dataset[self.perturbation_key], mapping.index(perturbation))
            means, _ = self.model_.module.get_expression(dataset)
        return means.detach().cpu().numpy().astype(np.float32)

    def latent(self, adata: "anndata.AnnData", kind: str = "basal") -> np.ndarray:
        """Per-cell codes of the unknown attributes (``'basal'``) or the full latent (``'full'``) of training cells."""
        where = f"{type(self).__name__}.latent"
        if kind not in ("basal", "full"):
            raise ValueError(f"{where}: kind must be 'basal' or 'full', got {kind!r}.")
        if not self.is_fitted:
            raise RuntimeError(f"{where}: the model is not fitted; call .fit(train) first.")
        rows = self._training_rows(adata, where)
        with quiet():
            unknown, full = self.model_.get_latent_representation_adata(self._train[rows].copy())
        return np.asarray((unknown if kind == "basal" else full).X, dtype=np.float32)

    def _check_perturbation(self, perturbation: str, where: str) -> None:
        if perturbation not in self.perturbations_:
            raise NotApplicableError(
                f"{where}: unknown perturbation {perturbation!r}: Biolord embeds each perturbation label it saw "
                f"as a category ({self.perturbations_}); combinations it did not see have no embedding."
            )
