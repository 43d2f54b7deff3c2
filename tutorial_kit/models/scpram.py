"""scPRAM: a VAE latent space, optimal-transport pairs and per-cell attention over their shifts.

Taught in ``05_scpram``. After Jiang et al., "scPRAM accurately predicts single-cell gene
expression perturbation response based on attention mechanism", *Bioinformatics* 40(5),
btae265 (2024). :class:`ScPRAM` is the course's own implementation of the method;
:class:`ScpramPackage` runs the authors' ``scpram`` package (0.0.3) behind the same interface,
so that the two can be compared on the same split.

The method (:class:`ScPRAM`):

1. **VAE.** A variational autoencoder is trained on the log-normalized expression of all
   training cells (control and perturbed, every cell type): an MLP encoder gives the mean and
   log-variance of a Gaussian latent, a sample ``z = mu + sigma * eps`` is decoded by an MLP,
   and the loss per cell is the summed squared reconstruction error plus ``beta`` times the
   KL divergence to ``N(0, I)``. As in the package the input is lightly corrupted with Gaussian
   noise (``noise_rate``) while training. The package's decoder ends in a ReLU; the course's
   default is a linear output clipped at 0 when predicting (``output_relu`` says why).
2. **Optimal transport pairs.** For each training cell type that has both control and
   perturbed cells, the latent means of its control cells (``n``) and perturbed cells (``m``)
   are matched by exact optimal transport (``ot.emd``, squared-Euclidean cost, uniform weights
   ``1/n`` and ``1/m``). The plan ``P`` (``n x m``, rows sum to ``1/n``, columns to ``1/m``) is
   turned into pairs by giving each control cell the perturbed cell that receives most of its
   mass (``argmax`` of its row). With ``n == m`` the plan is a permutation and the pairs are a
   one-to-one matching; with ``n != m`` every control cell still has exactly one partner and a
   perturbed cell may serve several control cells (or none).
3. **Shifts.** Each pair gives a latent response vector ``shift = z_perturbed - z_control``
   (``shifts_``; which cell type and which cells in ``pairs_``).
4. **Per-cell attention.** A query control cell with latent ``q`` attends to the matched
   control latents (keys): cosine similarity to every key, keep the ``top_fraction`` most
   similar keys (the package default, 5 %), turn their similarities into weights (softmax with
   ``temperature``, or the package's division by their sum with ``weighting='sum'``), and take
   the weighted mean of their shifts (values). Every query cell gets **its own** shift.
5. **Decode.** The prediction of each cell is ``decoder(q + its shift)``.

The package (:class:`ScpramPackage`) differs from the paper in ways worth teaching (``05_scpram``), all
visible in ``scpram/models.py``, method ``SCPRAM.predict`` (lines 211-248 of 0.0.3):

- it computes the cosine similarities of every query cell, but then keeps only the first row:
  ``top_indices = np.argsort(cos_sim)[0][-n_top:]`` and ``cos_sim[0][top_indices]``
  (lines 240-241), so the attention of the **first** query cell gives one ``delta_pred`` that
  is added to every query cell (``pred_z = test_z + delta_pred``, line 244): one shared shift;
- it matches all perturbed cells against all control cells of the other cell types in one
  transport problem (Euclidean, not squared, cost; line 229), not cell type by cell type;
- its latents are random samples ``z`` rather than means (``get_latent_adata`` encodes with
  sampling), so two calls give different predictions, and its weights are the similarities
  divided by their sum.

Cost of the transport step: the cost matrix is ``n x m`` (``8 n m`` bytes) and the network
simplex behind ``ot.emd`` takes roughly cubic time, so a group larger than ``max_ot_cells``
(per condition and cell type) is subsampled to that many cells with the model's seed; only
the subsampled control cells become keys.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from tutorial_kit.arrays import to_dense
from tutorial_kit.config import adam
from tutorial_kit.models.base import PerturbationModel

if TYPE_CHECKING:  # pragma: no cover
    import anndata
    import pandas as pd
    import torch

__all__ = ["ScPRAM", "ScpramPackage", "match_pairs"]

WEIGHTINGS = ("softmax", "sum")
"""How the top similarities become attention weights (see :class:`ScPRAM`)."""

_CHUNK = 4096  # cells encoded / decoded at once


def _import_ot() -> Any:
    try:
        import ot
    except ImportError:
        raise ImportError(
            "scPRAM's optimal-transport step needs the POT package (imported as `ot`). "
            "Install it with `pip install POT`, or use the session environment (environments/)."
        ) from None
    return ot


def _import_scpram() -> Any:
    try:
        import scpram.models
    except ImportError as err:
        raise ImportError(
            "ScpramPackage needs the `scpram` package, installed without its obsolete pins: "
            "`pip install --no-deps scpram==0.0.3` (see environments/sessions.toml, `no_deps`); "
            f"it also needs POT, seaborn and adjustText. Import failed with: {err}"
        ) from None
    return scpram.models


def _positive(value: Any, name: str, *, integer: bool = True) -> Any:
    ok = isinstance(value, (int, np.integer)) if integer else isinstance(value, (int, float, np.number))
    if isinstance(value, bool) or not ok or not value > 0:
        kind = "a positive integer" if integer else "a positive number"
        raise ValueError(f"ScPRAM: {name} must be {kind}, got {value!r}.")
    return int(value) if integer else float(value)


def _top_fraction(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not 0 < value <= 1:
        raise ValueError(f"{where}: top_fraction must be in (0, 1], got {value!r} (the paper uses 0.05).")
    return float(value)


def _mlp(widths: list[int], *, last_relu: bool) -> "torch.nn.Sequential":
    import torch

    layers: list[Any] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(widths) - 2 or last_relu:
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def match_pairs(z_ctrl: np.ndarray, z_pert: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact optimal transport between two groups of latents, and the pairs it implies.

    Squared-Euclidean cost, uniform weights ``1/n`` and ``1/m`` (``ot.emd``). Each control cell
    is paired with the perturbed cell that receives most of its mass (the argmax of its row).
    Taught in ``05_scpram``.

    Args:
        z_ctrl: ``n x d`` control latents.
        z_pert: ``m x d`` perturbed latents.

    Returns:
        ``(partner, plan)``: ``partner[i]`` is the row of ``z_pert`` matched to control ``i``;
        ``plan`` is the ``n x m`` transport plan (rows sum to ``1/n``, columns to ``1/m``).

    Example:
        >>> import numpy as np
        >>> partner, plan = match_pairs(np.array([[0.0], [10.0]]), np.array([[11.0], [1.0]]))
        >>> partner.tolist(), round(float(plan.sum()), 6)
        ([1, 0], 1.0)
    """
    ot = _import_ot()
    a = np.full(len(z_ctrl), 1.0 / len(z_ctrl))
    b = np.full(len(z_pert), 1.0 / len(z_pert))
    cost = ot.dist(np.asarray(z_ctrl, dtype=np.float64), np.asarray(z_pert, dtype=np.float64), metric="sqeuclidean")
    plan = np.asarray(ot.emd(a, b, cost, numItermax=max(100_000, 50 * len(a) * len(b))))
    return plan.argmax(axis=1), plan


class ScPRAM(PerturbationModel):
    """scPRAM from the paper: VAE, optimal-transport pairs per cell type, per-cell attention.

    The method is described in the module docstring. Taught in ``05_scpram``.
    Defaults follow the ``scpram`` package: two hidden layers of 1000 units, 100 latent
    dimensions, ``beta`` (``kl_weight``) 5e-4, input noise 0.1, Adam with learning rate 5e-4
    and weight decay 1e-5, gradient norm clipped at 10, batches of 128 cells, top 5 % of keys.

    After ``fit``: ``history_`` (per epoch: ``loss``, ``reconstruction``, ``kl``, means per
    cell), ``epochs_``, ``pairs_[perturbation]`` (a DataFrame, one row per matched pair:
    ``cell_type``, ``control``, ``perturbed`` obs names), ``shifts_[perturbation]`` (the
    ``n_pairs x latent_dim`` latent shifts, rows aligned with ``pairs_``), ``keys_[perturbation]``
    (the matched control latents), ``skipped_types_[perturbation]`` (training cell types that
    lack control or perturbed cells and so give no pairs), ``match_seconds_`` (the part of
    ``fit_seconds_`` spent encoding the training cells and solving the transport problems).

    Args:
        hidden_dim: width of the hidden layers of encoder and decoder.
        n_hidden: number of hidden layers in each.
        latent_dim: latent dimensions.
        kl_weight: ``beta``, the weight of the KL term.
        noise_rate: standard deviation of the Gaussian noise added to the input while training.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        grad_clip: maximum gradient norm (None: no clipping).
        batch_size: cells per training batch.
        top_fraction: fraction of keys each query cell attends to (at least one key).
        weighting: ``'softmax'`` (``softmax(similarity / temperature)`` over the kept keys) or
            ``'sum'`` (similarities divided by their sum, as the package does).
        temperature: softmax temperature (cosine similarities lie in [-1, 1]; a small
            temperature sharpens the attention towards the most similar keys).
        max_ot_cells: largest group (per cell type and condition) given to optimal transport;
            larger groups are subsampled with the seed.
        output_relu: end the decoder in a ReLU, as the package does (log expression is >= 0).
            A gene whose output unit goes negative for every cell gets no gradient any more and
            is predicted as exactly 0 for every cell (a "dead" output; on the Kang CI data about
            89 % of genes end that way within 10 epochs). The default ``False`` is the course's
            one deliberate change to the architecture: a linear output layer, trained on every
            gene, with predictions clipped at 0 (log expression cannot be negative).
        seed: seed of weights, batches, noise and subsampling.
        device: ``'cpu'``, ``'cuda'`` or None (automatic).

    Example:
        >>> import numpy as np, anndata as ad, pandas as pd
        >>> from tutorial_kit.models import ScPRAM, holdout
        >>> rng = np.random.default_rng(0)
        >>> obs = pd.DataFrame({"cell_type": np.repeat(["A", "B"], 40),
        ...                     "perturbation": np.tile(np.repeat(["control", "IFN"], 20), 2)},
        ...                    index=[f"c{i}" for i in range(80)])
        >>> X = rng.random((80, 6)).astype(np.float32) + (obs["perturbation"] == "IFN").to_numpy()[:, None]
        >>> split = holdout(ad.AnnData(X, obs=obs), cell_type="B", perturbation="IFN")
        >>> model = ScPRAM(hidden_dim=16, latent_dim=4, device="cpu").fit(split.train, epochs=2, progress=False)
        >>> model.predict(split.ctrl, "IFN").shape, model.shifts_["IFN"].shape
        ((20, 6), (20, 4))
    """

    name = "scPRAM"
    budget = "scpram"

    def __init__(
        self,
        *,
        hidden_dim: int = 1000,
        n_hidden: int = 2,
        latent_dim: int = 100,
        kl_weight: float = 5e-4,
        noise_rate: float = 0.1,
        lr: float = 5e-4,
        weight_decay: float = 1e-5,
        grad_clip: float | None = 10.0,
        batch_size: int = 128,
        top_fraction: float = 0.05,
        weighting: str = "softmax",
        temperature: float = 1.0,
        max_ot_cells: int = 3000,
        output_relu: bool = False,
        seed: int | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(seed=seed, device=device)
        self.output_relu = bool(output_relu)
        self.hidden_dim = _positive(hidden_dim, "hidden_dim")
        self.n_hidden = _positive(n_hidden, "n_hidden")
        self.latent_dim = _positive(latent_dim, "latent_dim")
        if isinstance(kl_weight, bool) or not isinstance(kl_weight, (int, float)) or kl_weight < 0:
            raise ValueError(f"ScPRAM: kl_weight must be a number >= 0, got {kl_weight!r}.")
        if isinstance(noise_rate, bool) or not isinstance(noise_rate, (int, float)) or noise_rate < 0:
            raise ValueError(f"ScPRAM: noise_rate must be a number >= 0, got {noise_rate!r}.")
        self.kl_weight, self.noise_rate = float(kl_weight), float(noise_rate)
        self.lr = _positive(lr, "lr", integer=False)
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or weight_decay < 0:
            raise ValueError(f"ScPRAM: weight_decay must be a number >= 0, got {weight_decay!r}.")
        self.weight_decay = float(weight_decay)
        self.grad_clip = None if grad_clip is None else _positive(grad_clip, "grad_clip", integer=False)
        self.batch_size = _positive(batch_size, "batch_size")
        self.top_fraction = _top_fraction(top_fraction, "ScPRAM")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"ScPRAM: weighting must be one of {WEIGHTINGS}, got {weighting!r}.")
        self.weighting = weighting
        self.temperature = _positive(temperature, "temperature", integer=False)
        self.max_ot_cells = _positive(max_ot_cells, "max_ot_cells")
        self.module_: Any = None

    # ------------------------------------------------------------------ training

    def _build(self, n_genes: int) -> Any:
        import torch

        hidden = [self.hidden_dim] * self.n_hidden
        return torch.nn.ModuleDict({
            "encoder": _mlp([n_genes, *hidden, 2 * self.latent_dim], last_relu=False),
            "decoder": _mlp([self.latent_dim, *hidden, n_genes], last_relu=self.output_relu),
        })

    def _losses(self, x: "torch.Tensor", gen: "torch.Generator") -> tuple["torch.Tensor", "torch.Tensor"]:
        import torch

        noisy = x + self.noise_rate * torch.randn(x.shape, generator=gen, device=x.device)
        mu, logvar = self.module_["encoder"](noisy).chunk(2, dim=1)
        eps = torch.randn(mu.shape, generator=gen, device=x.device)
        z = mu + eps * torch.exp(0.5 * logvar)
        recon = ((self.module_["decoder"](z) - x) ** 2).sum(dim=1)
        kl = 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(dim=1)
        return recon, kl

    def _fit(self, adata: "anndata.AnnData", *, epochs: int, progress: bool) -> None:
        import pandas as pd
        import torch
        from tqdm import tqdm

        _import_ot()  # fail before training, not after
        self._check_pairs_possible(adata)
        X = torch.from_numpy(to_dense(adata.X, dtype=np.float32)).to(self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.module_ = self._build(adata.n_vars).to(self.device)
        gen = torch.Generator(device=self.device).manual_seed(self.seed)
        order_gen = torch.Generator().manual_seed(self.seed)
        optim = adam(self.module_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        rows = []
        self.module_.train()
        bar = tqdm(range(1, epochs + 1), desc="scPRAM", unit="epoch", disable=not progress)
        for _ in bar:
            totals = np.zeros(3)
            for idx in torch.randperm(X.shape[0], generator=order_gen).split(self.batch_size):
                recon, kl = self._losses(X[idx.to(self.device)], gen)
                loss = (recon + self.kl_weight * kl).mean()
                optim.zero_grad()
                loss.backward()
                if self.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(self.module_.parameters(), self.grad_clip)
                optim.step()
                n = len(idx)
                totals += n * np.array([loss.item(), recon.mean().item(), kl.mean().item()])
            row = dict(zip(("loss", "reconstruction", "kl"), totals / X.shape[0]))
            rows.append(row)
            bar.set_postfix(loss=f"{row['loss']:.3g}")
        self.module_.eval()
        self.history_ = pd.DataFrame(rows, index=pd.RangeIndex(1, epochs + 1, name="epoch"))
        self.epochs_ = epochs
        start = time.perf_counter()
        self._match(adata)
        self.match_seconds_ = time.perf_counter() - start

    def _check_pairs_possible(self, adata: "anndata.AnnData") -> None:
        labels = adata.obs[self.perturbation_key].astype(str).to_numpy()
        types = adata.obs[self.cell_type_key].astype(str).to_numpy()
        ctrl_types = set(types[labels == self.control])
        for pert in self.perturbations_:
            if not ctrl_types & set(types[labels == pert]):
                raise ValueError(
                    f"ScPRAM.fit: no training cell type has both {self.control!r} and {pert!r} cells, so no "
                    "control-perturbed pairs (and no shifts) can be formed. Each perturbation needs at least "
                    "one cell type measured in both conditions."
                )

    def _match(self, adata: "anndata.AnnData") -> None:
        import pandas as pd

        labels = adata.obs[self.perturbation_key].astype(str).to_numpy()
        types = adata.obs[self.cell_type_key].astype(str).to_numpy()
        names = adata.obs_names.to_numpy()
        z = self._encode(to_dense(adata.X, dtype=np.float32))
        rng = np.random.default_rng(self.seed)
        self.pairs_, self.shifts_, self.keys_, self.skipped_types_ = {}, {}, {}, {}
        for pert in self.perturbations_:
            frames, shifts, keys, skipped = [], [], [], []
            for cell_type in sorted(set(types)):
                c = np.flatnonzero((types == cell_type) & (labels == self.control))
                p = np.flatnonzero((types == cell_type) & (labels == pert))
                if not len(c) or not len(p):
                    skipped.append(cell_type)
                    continue
                if len(c) > self.max_ot_cells:
                    c = np.sort(rng.choice(c, self.max_ot_cells, replace=False))
                if len(p) > self.max_ot_cells:
                    p = np.sort(rng.choice(p, self.max_ot_cells, replace=False))
                partner, _ = match_pairs(z[c], z[p])
                frames.append(pd.DataFrame({"cell_type": cell_type, "control": names[c], "perturbed": names[p[partner]]}))
                shifts.append(z[p[partner]] - z[c])
                keys.append(z[c])
            self.pairs_[pert] = pd.concat(frames, ignore_index=True)
            self.shifts_[pert] = np.concatenate(shifts).astype(np.float32)
            self.keys_[pert] = np.concatenate(keys).astype(np.float32)
            self.skipped_types_[pert] = skipped

    # ------------------------------------------------------------------ inference

    def _encode(self, X: np.ndarray) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for start in range(0, len(X), _CHUNK):
                x = torch.from_numpy(X[start:start + _CHUNK]).to(self.device)
                out.append(self.module_["encoder"](x)[:, : self.latent_dim].cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def _decode(self, Z: np.ndarray) -> np.ndarray:
        import torch

        out = []
        with torch.no_grad():
            for start in range(0, len(Z), _CHUNK):
                z = torch.from_numpy(np.ascontiguousarray(Z[start:start + _CHUNK], dtype=np.float32)).to(self.device)
                out.append(self.module_["decoder"](z).cpu().numpy())
        return np.concatenate(out)

    def _checked(self, adata: "anndata.AnnData", where: str) -> np.ndarray:
        if not self.is_fitted:
            raise RuntimeError(f"ScPRAM.{where}: the model is not fitted; call .fit(train) first.")
        if not adata.var_names.equals(self.genes_):
            raise ValueError(
                f"ScPRAM.{where}: the genes differ from the {len(self.genes_)} training genes (or their order); "
                "subset the cells the same way as the training data: adata[:, model.genes_]."
            )
        return to_dense(adata.X, dtype=np.float32)

    def _perturbation(self, perturbation: str | None, where: str) -> str:
        if not self.is_fitted:
            raise RuntimeError(f"ScPRAM.{where}: the model is not fitted; call .fit(train) first.")
        if perturbation is None:
            if len(self.perturbations_) != 1:
                raise ValueError(f"ScPRAM.{where}: name the perturbation, one of {self.perturbations_}.")
            return self.perturbations_[0]
        if perturbation not in self.perturbations_:
            raise ValueError(
                f"ScPRAM.{where}: unknown perturbation {perturbation!r}; this model was trained on {self.perturbations_}."
            )
        return perturbation

    def latent(self, adata: "anndata.AnnData") -> np.ndarray:
        """Latent means (``cells x latent_dim``) of cells with the training genes."""
        return self._encode(self._checked(adata, "latent"))

    def _attend(self, z: np.ndarray, pert: str) -> tuple[np.ndarray, np.ndarray]:
        keys = self.keys_[pert]
        k = max(1, math.ceil(self.top_fraction * len(keys)))
        qn = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        kn = keys / np.maximum(np.linalg.norm(keys, axis=1, keepdims=True), 1e-12)
        sim = qn @ kn.T
        top = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        top_sim = np.take_along_axis(sim, top, axis=1)
        order = np.argsort(-top_sim, axis=1, kind="stable")
        top, top_sim = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_sim, order, axis=1)
        if self.weighting == "softmax":
            logits = top_sim / self.temperature
            w = np.exp(logits - logits.max(axis=1, keepdims=True))
        else:
            w = top_sim
        return (w / w.sum(axis=1, keepdims=True)).astype(np.float64), top

    def attention(self, ctrl: "anndata.AnnData", perturbation: str | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The attention of every query cell: which matched pairs it uses, with what weight.

        Args:
            ctrl: control cells with the training genes.
            perturbation: the perturbation (may be omitted when the model knows only one).

        Returns:
            ``(weights, key_index)``, both ``cells x k`` with ``k = ceil(top_fraction * n_pairs)``:
            row ``i`` lists the pairs (rows of ``pairs_[perturbation]`` / ``shifts_[perturbation]``)
            that cell ``i`` attends to, most similar first, and their weights (each row sums to 1).
        """
        pert = self._perturbation(perturbation, "attention")
        return self._attend(self.latent(ctrl), pert)

    def cell_shifts(self, ctrl: "anndata.AnnData", perturbation: str | None = None) -> np.ndarray:
        """The latent shift each query cell receives (``cells x latent_dim``): its attention-weighted shifts."""
        pert = self._perturbation(perturbation, "cell_shifts")
        w, idx = self._attend(self.latent(ctrl), pert)
        return np.einsum("ck,ckd->cd", w, self.shifts_[pert][idx]).astype(np.float32)

    def _predict(self, ctrl: "anndata.AnnData", perturbation: str) -> np.ndarray:
        z = self.latent(ctrl)
        w, idx = self._attend(z, perturbation)
        shift = np.einsum("ck,ckd->cd", w, self.shifts_[perturbation][idx])
        return np.maximum(self._decode(z + shift), 0.0)  # log expression is >= 0 (a no-op with output_relu)


class ScpramPackage(PerturbationModel):
    """The ``scpram`` package (0.0.3) behind the course interface, for comparison with :class:`ScPRAM`.

    ``fit`` builds the package's ``SCPRAM`` VAE on ``self.device`` and trains it with its own
    ``train_SCPRAM`` (the package's loop: input noise, Adam with weight decay 1e-5, gradient
    clipping at 10, its own tqdm bar, silenced when ``progress=False``; it records no losses, so
    ``history_`` is empty). ``predict`` calls the package's ``SCPRAM.predict`` on a copy of the
    training cells of this perturbation plus the query cells, labelled with a cell type of their
    own; the training control cells of the query's cell type are left out of the keys, as in the
    package's own use where they are the cells to predict. The package's behaviour is not
    changed: after ``predict``, ``last_latent_shift_`` holds the latent shift each query cell
    received (decoder input minus the query latent, recorded by observing its encoder and
    decoder calls) - identical rows, because the package uses the attention of the first query
    cell for every cell (see the module docstring). Taught in ``05_scpram``.

    Args:
        hidden_dim, latent_dim, kl_weight, noise_rate, lr, batch_size: as in :class:`ScPRAM`
            (the package fixes two hidden layers, weight decay and clipping).
        top_fraction: the package's ``ratio``.
        seed: seeds torch and NumPy globally before training and prediction (the package uses the
            global random generators).
        device: passed to the package's ``SCPRAM(device=...)``; the module is moved there.
    """

    name = "scpram (package)"
    budget = "scpram"

    def __init__(
        self,
        *,
        hidden_dim: int = 1000,
        latent_dim: int = 100,
        kl_weight: float = 5e-4,
        noise_rate: float = 0.1,
        lr: float = 5e-4,
        batch_size: int = 128,
        top_fraction: float = 0.05,
        seed: int | None = None,
        device: str | None = None,
    ) -> None:
        super().__init__(seed=seed, device=device)
        self.hidden_dim = _positive(hidden_dim, "hidden_dim")
        self.latent_dim = _positive(latent_dim, "latent_dim")
        self.kl_weight = float(kl_weight)
        self.noise_rate = float(noise_rate)
        self.lr = _positive(lr, "lr", integer=False)
        self.batch_size = _positive(batch_size, "batch_size")
        self.top_fraction = _top_fraction(top_fraction, "ScpramPackage")
        self.module_: Any = None
        self.last_latent_shift_: np.ndarray | None = None

    def _fit(self, adata: "anndata.AnnData", *, epochs: int, progress: bool) -> None:
        import anndata as ad
        import pandas as pd
        import torch

        models = _import_scpram()
        _import_ot()
        self.module_ = models.SCPRAM(
            input_dim=adata.n_vars, latent_dim=self.latent_dim, hidden_dim=self.hidden_dim,
            noise_rate=self.noise_rate, kl_weight=self.kl_weight, device=torch.device(self.device),
        ).to(self.device)
        train = ad.AnnData(to_dense(adata.X, dtype=np.float32), obs=pd.DataFrame({
            "cell_type": adata.obs[self.cell_type_key].astype(str).to_numpy(),
            "condition": adata.obs[self.perturbation_key].astype(str).to_numpy(),
        }, index=[f"t{i}" for i in range(adata.n_obs)]), var=pd.DataFrame(index=adata.var_names.copy()))
        quiet = contextlib.nullcontext() if progress else contextlib.redirect_stderr(io.StringIO())
        with quiet:
            self.module_.train_SCPRAM(train, epochs=epochs, batch_size=self.batch_size, lr=self.lr)
        self.train_ = train
        self.history_ = pd.DataFrame(columns=["loss", "reconstruction", "kl"])
        self.epochs_ = epochs

    def _predict(self, ctrl: "anndata.AnnData", perturbation: str) -> np.ndarray:
        import anndata as ad
        import pandas as pd

        query_type = "__query__"
        train = self.train_
        keep = train.obs["condition"].isin([self.control, perturbation]).to_numpy()
        if self.cell_type_key in ctrl.obs:
            query_types = set(ctrl.obs[self.cell_type_key].astype(str))
            keep &= ~(train.obs["cell_type"].isin(query_types) & (train.obs["condition"] == self.control)).to_numpy()
        query = ad.AnnData(to_dense(ctrl.X, dtype=np.float32), obs=pd.DataFrame(
            {"cell_type": query_type, "condition": self.control}, index=[f"q{i}" for i in range(ctrl.n_obs)]),
            var=train.var.copy())
        combined = ad.concat([train[keep], query])
        key_dic = {"cell_type_key": "cell_type", "condition_key": "condition", "ctrl_key": self.control,
                   "stim_key": perturbation, "pred_key": "pred"}
        seen: dict[str, Any] = {}
        module = self.module_
        encode = module.encode

        def recording_encode(x: Any) -> Any:  # observe, do not change: same call, same result
            out = encode(x)
            seen["z"] = out[0].detach().cpu().numpy()
            return out

        handle = module.decoder.register_forward_pre_hook(
            lambda _m, args: seen.__setitem__("decoder_in", args[0].detach().cpu().numpy()))
        module.encode = recording_encode
        try:
            pred = module.predict(combined, query_type, key_dic, ratio=self.top_fraction)
        finally:
            del module.encode
            handle.remove()
        self.last_latent_shift_ = (seen["decoder_in"] - seen["z"]).astype(np.float32)
        order = pd.Index(pred.obs_names).get_indexer(query.obs_names)
        return to_dense(pred.X, dtype=np.float32)[order]
