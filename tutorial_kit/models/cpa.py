"""CPA (Lotfollahi et al., 2023): the real ``cpa-tools`` package behind the course interface.

The compositional perturbation autoencoder splits a cell into a *basal* latent state, from
which an adversary tries and fails to read the perturbation, plus learned embeddings of the
perturbation (scaled by a dose-response network) and of the covariates (cell type):
``z = z_basal + sum_p f_p(dose_p) e_p + sum_c e_c``. A counterfactual keeps a control cell's
``z_basal`` and adds the embedding of the perturbation it never received; combinations add
the embeddings of their parts. Taught in ``06_cpa_biolord``.

``cpa-tools`` 0.8.5 runs only on scvi-tools 0.20 (Lightning 1.9), so this class needs the session
environment ``tk-cpa`` (``python3 environments/build.py cpa``). The wrapper handles the package's
traps: its encoders live on the class and would carry over to a second dataset (reset before
every fit), ``train()`` writes the model into the working directory (here: a temporary folder,
removed after), its setup function appends to a mutable default list (fresh lists are passed),
and with few epochs the adversary never starts (pretraining and warm-up scale with ``epochs``).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from tutorial_kit.models.base import NotApplicableError, PerturbationModel
from tutorial_kit.validate import check_counts, check_obs_columns

if TYPE_CHECKING:  # pragma: no cover
    import anndata
    import pandas as pd

INSTALL_HINT = (
    "CPA needs cpa-tools 0.8.5, which runs only on its own pinned stack (scvi-tools 0.20.3, "
    "pytorch-lightning 1.9, anndata 0.9, numpy 1.26). Build the session environment with "
    "`python3 environments/build.py cpa` and choose the Jupyter kernel 'tk-cpa' "
    "(with conda: `conda env create -f environments/cpa.yml && conda activate tk-cpa`, then the "
    "no_deps step of environments/sessions.toml)."
)

DOSE_COLUMN = "tk_dose"
"""``obs`` column the wrapper writes CPA's doses into (``'1.0'`` or ``'0.5+1.0'`` for a pair)."""


def _import_cpa() -> Any:
    try:
        with quiet():  # Lightning 1.9 and scvi-tools 0.20 announce their deprecations, JAX its missing GPU
            import cpa
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return cpa


def _use_gpu(device: str) -> bool | int:
    """scvi-tools 0.20 takes ``use_gpu``: False for the CPU, the GPU index otherwise."""
    if device == "cpu":
        return False
    _, _, index = device.partition(":")
    return int(index) if index else 0


@contextlib.contextmanager
def quiet(*, streams: bool = True) -> Iterator[None]:
    """Hide the notes of the scvi-tools 0.20 stack (Lightning, JAX, CPA, Biolord) and their per-call progress bars.

    Used by :class:`CPA` and :class:`~tutorial_kit.models.Biolord` around setup, prediction and
    training; errors still propagate.

    ``streams=False`` leaves stdout and stderr alone (the training progress bar is on stderr).
    """
    import io
    import sys

    names = ("pytorch_lightning", "lightning_fabric", "lightning_lite", "lightning_fabric.utilities.seed",
             "pytorch_lightning.utilities.seed", "scvi", "jax._src.xla_bridge")
    levels = {name: logging.getLogger(name).level for name in names}
    for name in names:
        logging.getLogger(name).setLevel(logging.ERROR)
    stdout, stderr = sys.stdout, sys.stderr
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if streams:
                # "Warning: dosage_key is not set", tqdm bars of setup and prediction, "Global seed set to 0"
                sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
            yield
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


class CPA(PerturbationModel):
    """CPA: basal state plus perturbation, dose and covariate embeddings, with an adversary.

    ``fit`` trains ``cpa.CPA`` on the raw counts of the training cells (``layers[layer]``,
    negative-binomial likelihood), with ``obs[cell_type_key]`` as a covariate and, when
    ``dose_key`` is given, that column's doses. ``predict(ctrl, p)`` encodes the control cells,
    swaps their (empty) perturbation for ``p`` and decodes: a counterfactual, never a
    reconstruction of the cells being predicted. The decoded means (counts) become log1p counts
    per 10,000, like ``X`` of the course's data. A combination ``'A+B'`` can be predicted when
    both parts were seen in training (alone or in other combinations), however it was split.

    After ``fit``: ``model_`` (the ``cpa.CPA``), ``history_`` (CPA's per-epoch training metrics:
    ``recon_loss``, ``adv_loss``, ``acc_perts``, ...), ``epochs_``. :meth:`latent` gives the basal
    and the full latent states, :meth:`reconstruct` the score-inflating reconstruction that the
    notebook compares with a prediction.

    Args:
        n_latent: dimension of the latent space (basal and embeddings).
        n_hidden: units per hidden layer of encoder and decoder.
        n_layers: hidden layers of encoder and decoder.
        doser_type: CPA's dose-response curve ``f_p(d)``: ``'linear'`` (``d``), ``'sigm'``
            (``sigmoid(b d + c) - sigmoid(c)``) or ``'logsigm'`` (the same in ``log1p(d)``), with
            ``b, c`` learned per perturbation. (cpa-tools' ``'mlp'`` doser fails in its forward pass.)
        dose_key: ``obs`` column of doses (numbers; ``'0.5+1.0'`` strings for combinations), or
            None for one dose for everything.
        max_comb_len: the most perturbations in one label that the model is set up for.
        adversary: train the adversary (CPA's disentanglement); off, CPA is a conditional autoencoder.
        reg_adv: weight of the adversary's loss in the autoencoder's loss (CPA's ``reg_adv``; its
            tutorials use 5 to 20): the larger, the harder the encoder works to hide the perturbation.
        pen_adv: weight of the gradient penalty that smooths the adversary (CPA's ``pen_adv``).
        pretrain_fraction: fraction of the epochs that train the autoencoder alone, before the adversary.
        batch_size: cells per minibatch.
        lr: learning rate of the autoencoder.
        layer: the layer with raw counts (``likelihood='nb'``).
        likelihood: ``'nb'``, a negative binomial on the raw counts of ``layer`` (CPA's default), or
            ``'gauss'``, a Gaussian on the log-normalized ``X``, for data without counts.
        sample: predicted cells are counts drawn from the decoded negative binomial (True), or its
            means (False, as in CPA's tutorials); either way as log1p counts per 10,000.
        seed: seed of training and prediction.
        device: ``'cpu'``, ``'cuda'``, ``'cuda:N'`` or None for the automatic choice.

    Example:
        >>> from tutorial_kit.models import CPA
        >>> model = CPA(n_latent=16, seed=0, device="cpu")
        >>> model.name, model.n_latent, model.is_fitted
        ('CPA', 16, False)
    """

    name = "CPA"
    budget = "cpa"

    def __init__(
        self,
        *,
        n_latent: int = 32,
        n_hidden: int = 128,
        n_layers: int = 2,
        doser_type: str = "linear",
        dose_key: str | None = None,
        max_comb_len: int = 2,
        adversary: bool = True,
        reg_adv: float = 1.0,
        pen_adv: float = 1.0,
        pretrain_fraction: float = 0.3,
        batch_size: int = 128,
        lr: float = 3e-3,
        layer: str = "counts",
        likelihood: str = "nb",
        sample: bool = True,
        seed: int | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(seed=seed, device=device)
        where = type(self).__name__
        for label, value in (("n_latent", n_latent), ("n_hidden", n_hidden), ("n_layers", n_layers),
                             ("max_comb_len", max_comb_len), ("batch_size", batch_size)):
            if int(value) < 1:
                raise ValueError(f"{where}: {label} must be at least 1, got {value}.")
        if doser_type not in ("linear", "sigm", "logsigm"):
            hint = " (cpa-tools 0.8.5's 'mlp' doser has no forward pass)" if doser_type == "mlp" else ""
            raise ValueError(f"{where}: doser_type must be 'linear', 'sigm' or 'logsigm', got {doser_type!r}{hint}.")
        if not 0.0 <= pretrain_fraction < 1.0:
            raise ValueError(f"{where}: pretrain_fraction must be in [0, 1), got {pretrain_fraction}.")
        if not lr > 0:
            raise ValueError(f"{where}: lr must be positive, got {lr}.")
        self.n_latent, self.n_hidden, self.n_layers = int(n_latent), int(n_hidden), int(n_layers)
        self.doser_type, self.dose_key, self.max_comb_len = doser_type, dose_key, int(max_comb_len)
        if not (reg_adv >= 0 and pen_adv >= 0):
            raise ValueError(f"{where}: reg_adv and pen_adv must be >= 0, got {reg_adv} and {pen_adv}.")
        self.adversary, self.pretrain_fraction = bool(adversary), float(pretrain_fraction)
        self.reg_adv, self.pen_adv = float(reg_adv), float(pen_adv)
        self.batch_size, self.lr, self.layer = int(batch_size), float(lr), layer
        if likelihood not in ("nb", "gauss"):
            raise ValueError(f"{where}: likelihood must be 'nb' (raw counts) or 'gauss' (log-normalized X), got {likelihood!r}.")
        self.likelihood = likelihood
        self.sample = bool(sample)
        self.model_: Any = None

    # ------------------------------------------------------------------------- inputs

    def _doses(self, obs: "pd.DataFrame", labels: "pd.Series", where: str) -> list[str]:
        """CPA's dose strings, one number per part of each label."""
        if self.dose_key is None:
            return ["+".join("1.0" for _ in label.split("+")) for label in labels]
        _require_columns(obs, [self.dose_key], where)
        out = []
        for label, dose in zip(labels, obs[self.dose_key].astype(str)):
            parts = dose.split("+")
            n = len(label.split("+"))
            if len(parts) == 1 and n > 1:
                parts = parts * n
            try:
                values = [float(p) for p in parts]
            except ValueError:
                raise ValueError(f"{where}: obs[{self.dose_key!r}] must hold numbers (or 'a+b' for pairs); got {dose!r}.") from None
            if len(values) != n or not all(np.isfinite(values)):
                raise ValueError(f"{where}: dose {dose!r} does not give one finite number per part of {label!r}.")
            out.append("+".join(f"{v:g}" for v in values))
        return out

    def _matrix(self, adata: "anndata.AnnData") -> Any:
        """What CPA reads: the counts of ``layer`` (``'nb'``) or the log-normalized ``X`` (``'gauss'``), float32 CSR."""
        import scipy.sparse as sp

        return sp.csr_matrix(adata.layers[self.layer] if self.likelihood == "nb" else adata.X, dtype=np.float32)

    def _check_lengths(self, labels: "pd.Series", where: str) -> None:
        longest = max(len(str(p).split("+")) for p in labels)
        if longest > self.max_comb_len:
            example = next(p for p in labels if len(str(p).split("+")) == longest)
            raise ValueError(
                f"{where}: {example!r} combines {longest} perturbations, but the model is set up for at most "
                f"{self.max_comb_len}; pass CPA(max_comb_len={longest})."
            )

    # ------------------------------------------------------------------------- training

    def _fit(self, adata: "anndata.AnnData", *, epochs: int, progress: bool) -> None:
        import anndata as ad
        import pandas as pd

        where = f"{type(self).__name__}.fit"
        if self.likelihood == "nb":
            check_counts(adata, layer=self.layer, where=where)
        cpa = _import_cpa()
        import scvi

        labels = adata.obs[self.perturbation_key].astype(str)
        self._check_lengths(labels, where)
        obs = pd.DataFrame(
            {
                self.perturbation_key: labels.to_numpy(),
                self.cell_type_key: adata.obs[self.cell_type_key].astype(str).to_numpy(),
                DOSE_COLUMN: self._doses(adata.obs, labels, where),
            },
            index=adata.obs_names.astype(str),
        )
        train = ad.AnnData(X=self._matrix(adata), obs=obs, var=adata.var[[]].copy())
        n_pretrain = int(round(self.pretrain_fraction * epochs))
        plan = {
            "lr": self.lr,
            "n_epochs_pretrain_ae": n_pretrain,
            "n_epochs_adv_warmup": max(1, (epochs - n_pretrain) // 3),
            "n_epochs_kl_warmup": None,
            "adv_steps": 2,
            "reg_adv": self.reg_adv if self.adversary else 0.0,
            "pen_adv": self.pen_adv if self.adversary else 0.0,
            "n_epochs_verbose": 10 ** 6,
            "step_size_lr": max(epochs // 2, 1),
        }
        check_every = max(1, min(5, epochs // 4))
        with tempfile.TemporaryDirectory(prefix="tk-cpa-") as folder:
            with quiet():
                # The encoders are class attributes: reset them so that this dataset gets its own.
                cpa.CPA.pert_encoder = None
                cpa.CPA.covars_encoder = None
                cpa.CPA.pert_smiles_map = None
                scvi.settings.seed = self.seed
                cpa.CPA.setup_anndata(
                    train, perturbation_key=self.perturbation_key, control_group=self.control, dosage_key=DOSE_COLUMN,
                    categorical_covariate_keys=[self.cell_type_key], is_count_data=self.likelihood == "nb",
                    max_comb_len=self.max_comb_len,
                )
                model = cpa.CPA(
                    train, n_latent=self.n_latent, recon_loss=self.likelihood, doser_type=self.doser_type,
                    n_hidden_encoder=self.n_hidden, n_layers_encoder=self.n_layers,
                    n_hidden_decoder=self.n_hidden, n_layers_decoder=self.n_layers, seed=self.seed,
                )
            with quiet(streams=not progress):
                model.train(
                    max_epochs=epochs, use_gpu=_use_gpu(self.device), batch_size=self.batch_size, save_path=folder,
                    check_val_every_n_epoch=check_every, early_stopping_patience=10 ** 6, plan_kwargs=plan,
                    enable_progress_bar=progress,
                )
        self.model_ = model
        self.pert_encoder_ = dict(cpa.CPA.pert_encoder)
        self.covars_encoder_ = {k: dict(v) for k, v in cpa.CPA.covars_encoder.items()}
        self._cat_value = str(train.obs["CPA_cat"].iloc[0])
        history = model.epoch_history
        history = history[history["mode"] == "train"].drop(columns=["mode"]).reset_index(drop=True)
        self.history_ = history
        self.epochs_ = int(len(history))

    # ------------------------------------------------------------------------- queries

    def _check_perturbation(self, perturbation: str, where: str) -> None:
        parts = [p for p in str(perturbation).split("+") if p]
        unknown = [p for p in parts if p not in getattr(self, "pert_encoder_", {})]
        if unknown or not parts:
            seen = sorted(p for p in getattr(self, "pert_encoder_", {}) if p not in ("<PAD>", self.control))
            raise NotApplicableError(
                f"{where}: unknown perturbation {perturbation!r}: CPA embeds only what it saw in training, "
                f"and {unknown or [perturbation]} was not among {seen}."
            )
        if len(parts) > self.max_comb_len:
            raise ValueError(
                f"{where}: {perturbation!r} combines {len(parts)} perturbations; the model is set up for at most "
                f"{self.max_comb_len}."
            )

    def _query(self, adata: "anndata.AnnData", labels: "list[str]", doses: "list[str]", where: str) -> "anndata.AnnData":
        """Cells in CPA's registered layout, with the perturbation and dose of each cell given here."""
        import anndata as ad
        import pandas as pd

        if self.likelihood == "nb":
            check_counts(adata, layer=self.layer, where=where)
        cell_types = adata.obs[self.cell_type_key].astype(str) if self.cell_type_key in adata.obs else None
        if cell_types is None:
            raise ValueError(f"{where}: obs has no {self.cell_type_key!r} column; CPA embeds each cell's cell type.")
        known = self.covars_encoder_[self.cell_type_key]
        unseen = sorted(set(cell_types) - set(known))
        if unseen:
            raise ValueError(f"{where}: cell type(s) {unseen} were not in training; CPA has no embedding for them.")
        obs = pd.DataFrame(
            {
                # the categorical fields of CPA's registry only feed its training metrics and adversary;
                # the perturbation that is decoded is the one written to obsm below
                self.perturbation_key: self.control,
                self.cell_type_key: cell_types.to_numpy(),
                DOSE_COLUMN: "1.0",
                "CPA_cat": self._cat_value,
                f"CPA_{self.control}": 1,
            },
            index=adata.obs_names.astype(str),
        )
        query = ad.AnnData(X=self._matrix(adata), obs=obs, var=adata.var[[]].copy())
        index = np.zeros((adata.n_obs, self.max_comb_len), dtype=int)
        dose = np.zeros((adata.n_obs, self.max_comb_len), dtype=float)
        for i, (label, d) in enumerate(zip(labels, doses)):
            if label == self.control:
                index[i, 0], dose[i, 0] = self.pert_encoder_[self.control], 1.0
                continue
            for j, (part, value) in enumerate(zip(label.split("+"), d.split("+"))):
                index[i, j], dose[i, j] = self.pert_encoder_[part], float(value)
        query.obsm["perts"] = index
        query.obsm["perts_doses"] = dose
        return query

    def _decode(self, query: "anndata.AnnData") -> np.ndarray:
        """Decoded cells as log1p counts per 10,000: counts drawn from CPA's negative binomial, or its means.

        The course compares predicted and real cells on the same scale. The log of a mean is not
        the mean of the logs (a gene with mean 0.2 counts is 0 in most real cells), so by default
        each predicted cell is a draw of counts from the decoded negative binomial (mean ``mu``,
        the per-gene dispersion ``theta`` that CPA learned), seeded by ``seed``; ``sample=False``
        in the constructor keeps the means, as CPA's own tutorials do.
        """
        from tutorial_kit.data import log1p_cp10k

        with quiet():
            self.model_.predict(query, batch_size=256, n_samples=1)
        means = np.asarray(query.obsm["CPA_pred"], dtype=np.float64)
        if self.likelihood == "gauss":  # the Gaussian's means are log-normalized values already
            return means.astype(np.float32)
        if self.sample:
            theta = np.exp(self.model_.module.px_r.detach().cpu().numpy().astype(np.float64))
            rng = np.random.default_rng(self.seed)
            rate = rng.gamma(shape=theta[None, :], scale=means / theta[None, :])
            means = rng.poisson(rate).astype(np.float64)
        return np.asarray(log1p_cp10k(means).toarray(), dtype=np.float32)

    def _predict(self, ctrl: "anndata.AnnData", perturbation: str) -> np.ndarray:
        if self.dose_key is not None:
            raise ValueError(
                f"{type(self).__name__}.predict: this model was trained on the doses of obs[{self.dose_key!r}], so a "
                "prediction needs a dose: use predict_dose(ctrl, perturbation, dose)."
            )
        labels = [perturbation] * ctrl.n_obs
        dose = "+".join("1.0" for _ in perturbation.split("+"))
        return self._decode(self._query(ctrl, labels, [dose] * ctrl.n_obs, f"{type(self).__name__}.predict"))

    def predict_dose(self, ctrl: "anndata.AnnData", perturbation: str, dose: float) -> "anndata.AnnData":
        """Like :meth:`predict`, at one dose of ``perturbation`` (every part of a combination at ``dose``).

        Doses are on the scale of ``obs[dose_key]`` in training; CPA's dose network has seen only
        the doses it was trained on, so a dose between them is an interpolation by the network,
        and one outside them an extrapolation (taught in ``06_cpa_biolord``).
        """
        import anndata as ad

        where = f"{type(self).__name__}.predict_dose"
        if not self.is_fitted:
            raise RuntimeError(f"{where}: the model is not fitted; call .fit(train) first.")
        self._check_perturbation(perturbation, where)
        if not np.isfinite(dose) or dose < 0:
            raise ValueError(f"{where}: dose must be a finite number >= 0, got {dose}.")
        labels = [perturbation] * ctrl.n_obs
        text = "+".join(f"{float(dose):g}" for _ in perturbation.split("+"))
        X = self._decode(self._query(ctrl, labels, [text] * ctrl.n_obs, where))
        obs = ctrl.obs.copy()
        obs[self.perturbation_key] = perturbation
        obs[self.dose_key or "dose"] = float(dose)
        obs["predicted"] = True
        return ad.AnnData(X=X, obs=obs, var=ctrl.var.copy())

    def _own_labels(self, adata: "anndata.AnnData", where: str) -> tuple[list[str], list[str]]:
        check_obs_columns(adata, [self.perturbation_key], where=where)
        labels = adata.obs[self.perturbation_key].astype(str).tolist()
        for label in sorted(set(labels) - {self.control}):
            self._check_perturbation(label, where)
        return labels, self._doses(adata.obs, adata.obs[self.perturbation_key].astype(str), where)

    def reconstruct(self, adata: "anndata.AnnData") -> "anndata.AnnData":
        """Encode cells *with their own perturbation* and decode them: a reconstruction, not a prediction.

        This is what CPA's Kang tutorial scores as ``CPA_pred``: the cells being "predicted" are
        the input, so their response is already in the basal state that the adversary failed to
        clean completely. The notebook measures how much better this looks than :meth:`predict`.
        """
        import anndata as ad

        where = f"{type(self).__name__}.reconstruct"
        if not self.is_fitted:
            raise RuntimeError(f"{where}: the model is not fitted; call .fit(train) first.")
        labels, doses = self._own_labels(adata, where)
        X = self._decode(self._query(adata, labels, doses, where))
        obs = adata.obs.copy()
        obs["predicted"] = True
        return ad.AnnData(X=X, obs=obs, var=adata.var.copy())

    def latent(self, adata: "anndata.AnnData", kind: str = "basal") -> np.ndarray:
        """Latent states of cells with their own perturbations: ``'basal'`` (``z_basal``) or ``'full'`` (``z``).

        The basal state is what the adversary is trained to make perturbation-free; the full
        state adds the perturbation and cell-type embeddings and is what the decoder reads.
        """
        where = f"{type(self).__name__}.latent"
        if kind not in ("basal", "full"):
            raise ValueError(f"{where}: kind must be 'basal' or 'full', got {kind!r}.")
        if not self.is_fitted:
            raise RuntimeError(f"{where}: the model is not fitted; call .fit(train) first.")
        labels, doses = self._own_labels(adata, where)
        query = self._query(adata, labels, doses, where)
        with quiet():
            out = self.model_.get_latent_representation(query, batch_size=256)
        return np.asarray(out["latent_basal" if kind == "basal" else "latent_after"].X, dtype=np.float32)


def _require_columns(obs: "pd.DataFrame", columns: list[str], where: str) -> None:
    """Raise when ``obs`` lacks one of ``columns`` (the message names the missing ones)."""
    missing = [c for c in columns if c not in obs.columns]
    if missing:
        raise ValueError(f"{where}: obs has no column(s) {missing}; found {list(obs.columns)[:12]}.")
