"""A conditional VAE with a negative-binomial likelihood on raw counts: the count-aware baseline.

Taught in ``11_jepa`` (the baseline a JEPA must beat) and ``12_latent_diffusion`` (the
autoencoder whose latent space the diffusion model works in).

The model (:class:`CountVAE`), for a cell with counts ``x`` (genes ``g``), library size
``l = sum_g x_g``, perturbation ``p`` and cell type ``t`` (one-hot codes ``c_p`` and ``c_t``):

- encoder: ``q(z | x) = N(mu(x), diag sigma^2(x))`` from ``log1p(x / l * 10^4)``; it sees neither
  the perturbation nor the cell type, so ``z`` is the cell's state without them;
- decoder: ``rho = softmax(f(z, c_p, c_t))``, the proportions of the transcripts, and the mean
  count ``m_g = l * rho_g``; the likelihood is negative binomial with that mean and one inverse
  dispersion ``theta_g`` per gene (learned), ``Var = m + m^2 / theta``;
- loss per cell: ``-log NB(x | m, theta) + beta * KL(q(z | x) || N(0, I))``, averaged over cells.

A prediction encodes each control cell, keeps its ``z`` and library size, decodes with the code
of the perturbation instead of control, and returns the expected expression in the course's
units, ``log1p(10^4 * rho)`` (log1p CP10k of the mean), so it is scored with the same metrics
as every other model. Only perturbations seen in training can be predicted (each has its own
code); a model that predicts unseen ones needs an embedding of them (``11_jepa``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from tutorial_kit.arrays import to_dense
from tutorial_kit.config import adam
from tutorial_kit.models.base import PerturbationModel
from tutorial_kit.validate import check_counts

if TYPE_CHECKING:  # pragma: no cover
    import anndata
    import torch

__all__ = ["CountVAE", "nb_log_likelihood"]


def nb_log_likelihood(x: "torch.Tensor", mean: "torch.Tensor", theta: "torch.Tensor") -> "torch.Tensor":
    """Log-likelihood of counts under a negative binomial with mean ``mean`` and inverse dispersion ``theta``.

    ``log NB(x | m, theta) = lgamma(x + theta) - lgamma(theta) - lgamma(x + 1)
    + theta * log(theta / (theta + m)) + x * log(m / (theta + m))``, summed over the last axis
    (genes). It equals ``scipy.stats.nbinom.logpmf(x, theta, theta / (theta + m))``.

    Example:
        >>> import torch
        >>> from scipy import stats
        >>> x, m, th = torch.tensor([[0.0, 3.0]]), torch.tensor([[1.0, 2.0]]), torch.tensor([2.0, 5.0])
        >>> ours = float(nb_log_likelihood(x, m, th)[0])
        >>> ref = sum(stats.nbinom.logpmf(k, t, t / (t + mu)) for k, mu, t in [(0, 1, 2), (3, 2, 5)])
        >>> round(ours, 6) == round(float(ref), 6)
        True
    """
    import torch

    eps = 1e-8
    log_theta_mu = torch.log(theta + mean + eps)
    return (
        torch.lgamma(x + theta) - torch.lgamma(theta) - torch.lgamma(x + 1.0)
        + theta * (torch.log(theta + eps) - log_theta_mu)
        + x * (torch.log(mean + eps) - log_theta_mu)
    ).sum(dim=-1)


def _mlp(widths: list[int]) -> "torch.nn.Sequential":
    import torch

    layers: list[Any] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(widths) - 2:
            layers += [torch.nn.LayerNorm(b), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers)


class CountVAE(PerturbationModel):
    """A conditional VAE on raw counts with a negative-binomial likelihood (the model is in the module docstring).

    Taught in ``11_jepa`` and ``12_latent_diffusion``. It trains on ``adata.layers[layer]`` (raw
    counts; log-normalized values are refused) and predicts ``log1p(10^4 * rho)``.

    After ``fit``: ``history_`` (per epoch: ``loss``, ``nll`` and ``kl``, means per cell),
    ``theta_`` (the per-gene inverse dispersion), and the :meth:`latent` of any cells.

    Args:
        latent_dim: dimensions of ``z``.
        hidden_dim: width of the hidden layers.
        n_hidden: hidden layers in the encoder and in the decoder.
        kl_weight: ``beta``, reached after a linear warm-up over the first ``kl_warmup`` of the epochs.
        kl_warmup: fraction of the epochs over which ``beta`` rises from 0 (0: no warm-up).
        lr: Adam learning rate.
        batch_size: cells per batch.
        layer: the layer with raw counts.
        seed: seed of weights, batches and sampling.
        device: ``'cpu'``, ``'cuda'`` or None (automatic).

    Example:
        >>> import anndata as ad, pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> obs = pd.DataFrame({"perturbation": np.repeat(["control", "A"], 40), "cell_type": "K562"},
        ...                    index=[f"c{i}" for i in range(80)])
        >>> counts = rng.poisson(3.0, (80, 12)).astype(np.float32)
        >>> counts[40:, 0] += 20  # perturbation A raises gene 0
        >>> adata = ad.AnnData(np.log1p(counts), obs=obs)
        >>> adata.layers["counts"] = counts
        >>> model = CountVAE(latent_dim=4, hidden_dim=16, device="cpu").fit(adata, epochs=30, progress=False)
        >>> pred = model.predict(adata[:40], "A")
        >>> bool(pred.X[:, 0].mean() > adata.X[:40, 0].mean() + 0.5), model.latent(adata).shape
        (True, (80, 4))
    """

    name = "NB-VAE"
    budget = "vae"

    def __init__(
        self,
        *,
        latent_dim: int = 16,
        hidden_dim: int = 128,
        n_hidden: int = 1,
        kl_weight: float = 1.0,
        kl_warmup: float = 0.25,
        lr: float = 1e-3,
        batch_size: int = 128,
        layer: str = "counts",
        seed: int | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(seed=seed, device=device)
        for name, value in (("latent_dim", latent_dim), ("hidden_dim", hidden_dim), ("n_hidden", n_hidden),
                            ("batch_size", batch_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"CountVAE: {name} must be a positive integer; got {value!r}.")
        if not 0 <= float(kl_warmup) < 1:
            raise ValueError(f"CountVAE: kl_warmup is a fraction of the epochs in [0, 1); got {kl_warmup!r}.")
        if float(kl_weight) < 0 or float(lr) <= 0:
            raise ValueError(f"CountVAE: kl_weight must be >= 0 and lr > 0; got {kl_weight!r} and {lr!r}.")
        self.latent_dim, self.hidden_dim, self.n_hidden = int(latent_dim), int(hidden_dim), int(n_hidden)
        self.kl_weight, self.kl_warmup, self.lr = float(kl_weight), float(kl_warmup), float(lr)
        self.batch_size, self.layer = int(batch_size), layer

    # ---- data

    def _counts(self, adata: "anndata.AnnData", where: str) -> np.ndarray:
        check_counts(adata, layer=self.layer, where=where)
        x = to_dense(adata.layers[self.layer], dtype=np.float32)
        empty = np.flatnonzero(x.sum(axis=1) == 0)
        if empty.size:
            raise ValueError(f"{where}: {empty.size} cell(s) have no counts at all (e.g. {adata.obs_names[empty[0]]!r}); "
                             "filter empty cells first.")
        return x

    @staticmethod
    def _normalized(x: "torch.Tensor") -> "torch.Tensor":
        import torch

        return torch.log1p(x / x.sum(dim=1, keepdim=True) * 1e4)

    def _codes(self, labels: np.ndarray, cell_types: np.ndarray) -> "torch.Tensor":
        import torch

        p = np.searchsorted(self.conditions_, labels)
        t = np.searchsorted(self.cell_types_, cell_types)
        code = np.zeros((labels.size, len(self.conditions_) + len(self.cell_types_)), dtype=np.float32)
        code[np.arange(labels.size), p] = 1.0
        code[np.arange(labels.size), len(self.conditions_) + t] = 1.0
        return torch.from_numpy(code).to(self.device)

    # ---- training

    def _fit(self, adata: "anndata.AnnData", *, epochs: int, progress: bool) -> None:
        import pandas as pd
        import torch
        from tqdm import tqdm

        x_np = self._counts(adata, f"{type(self).__name__}.fit")
        labels = adata.obs[self.perturbation_key].astype(str).to_numpy()
        types = adata.obs[self.cell_type_key].astype(str).to_numpy()
        self.conditions_ = np.array(sorted(set(labels)))
        self.cell_types_ = np.array(sorted(set(types)))
        X = torch.from_numpy(x_np).to(self.device)
        C = self._codes(labels, types)
        n_genes, width = X.shape[1], C.shape[1]
        hidden = [self.hidden_dim] * self.n_hidden
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.module_ = torch.nn.ModuleDict({
                "encoder": _mlp([n_genes, *hidden, 2 * self.latent_dim]),
                "decoder": _mlp([self.latent_dim + width, *hidden, n_genes]),
            }).to(self.device)
            self.log_theta_ = torch.nn.Parameter(torch.zeros(n_genes, device=self.device))
        gen = torch.Generator(device=self.device).manual_seed(self.seed)
        order = torch.Generator().manual_seed(self.seed)
        optim = adam([*self.module_.parameters(), self.log_theta_], lr=self.lr)
        warm = max(1, int(round(self.kl_warmup * epochs))) if self.kl_warmup > 0 else 0
        rows = []
        self.module_.train()
        bar = tqdm(range(1, epochs + 1), desc="NB-VAE", unit="epoch", disable=not progress)
        for epoch in bar:
            beta = self.kl_weight * (min(1.0, epoch / warm) if warm else 1.0)
            totals = np.zeros(3)
            for idx in torch.randperm(X.shape[0], generator=order).split(self.batch_size):
                idx = idx.to(self.device)
                nll, kl = self._losses(X[idx], C[idx], gen)
                loss = (nll + beta * kl).mean()
                optim.zero_grad()
                loss.backward()
                optim.step()
                totals += len(idx) * np.array([loss.item(), nll.mean().item(), kl.mean().item()])
            row = dict(zip(("loss", "nll", "kl"), totals / X.shape[0]))
            rows.append(row)
            bar.set_postfix(loss=f"{row['loss']:.4g}")
        self.module_.eval()
        self.history_ = pd.DataFrame(rows, index=pd.RangeIndex(1, epochs + 1, name="epoch"))
        self.epochs_ = epochs
        self.theta_ = np.exp(self.log_theta_.detach().cpu().numpy())

    def _losses(self, x: "torch.Tensor", code: "torch.Tensor", gen: "torch.Generator") -> tuple[Any, Any]:
        import torch

        mu, logvar = self.module_["encoder"](self._normalized(x)).chunk(2, dim=1)
        z = mu + torch.randn(mu.shape, generator=gen, device=x.device) * torch.exp(0.5 * logvar)
        rho = torch.softmax(self.module_["decoder"](torch.cat([z, code], dim=1)), dim=1)
        mean = x.sum(dim=1, keepdim=True) * rho
        nll = -nb_log_likelihood(x, mean, torch.exp(self.log_theta_))
        kl = 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(dim=1)
        return nll, kl

    # ---- latent and prediction

    def latent(self, adata: "anndata.AnnData") -> np.ndarray:
        """The encoder's mean ``mu(x)`` of each cell (cells x ``latent_dim``), from ``layers[layer]``."""
        import torch

        if not self.is_fitted:
            raise RuntimeError("CountVAE.latent: the model is not fitted; call .fit(train) first.")
        x = torch.from_numpy(self._counts(adata, "CountVAE.latent")).to(self.device)
        with torch.no_grad():
            mu, _ = self.module_["encoder"](self._normalized(x)).chunk(2, dim=1)
        return mu.cpu().numpy()

    def decode(self, z: np.ndarray, perturbation: str, cell_types: Any) -> np.ndarray:
        """Expected expression ``log1p(10^4 * rho)`` of latents ``z`` under ``perturbation`` (one cell type per row).

        Raises:
            ValueError: an unknown perturbation or cell type, or a ``z`` of the wrong width.
        """
        import torch

        z = np.asarray(z, dtype=np.float32)
        if z.ndim != 2 or z.shape[1] != self.latent_dim:
            raise ValueError(f"CountVAE.decode: z must be cells x {self.latent_dim}; got shape {z.shape}.")
        types = np.asarray(cell_types, dtype=str)
        if types.ndim == 0:
            types = np.full(z.shape[0], str(types))
        for name, values, known in (("perturbation", np.array([perturbation]), self.conditions_),
                                    ("cell type", types, self.cell_types_)):
            unknown = sorted(set(values) - set(known))
            if unknown:
                raise ValueError(f"CountVAE.decode: unknown {name} {unknown[:3]}; the model knows {list(known)[:10]}.")
        code = self._codes(np.full(z.shape[0], perturbation), types)
        with torch.no_grad():
            rho = torch.softmax(self.module_["decoder"](torch.cat([torch.from_numpy(z).to(self.device), code], 1)), 1)
        return np.log1p(1e4 * rho.cpu().numpy())

    def _predict(self, ctrl: "anndata.AnnData", perturbation: str) -> np.ndarray:
        return self.decode(self.latent(ctrl), perturbation, ctrl.obs[self.cell_type_key].astype(str).to_numpy())
