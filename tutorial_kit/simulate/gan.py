"""A conditional Wasserstein GAN with gradient penalty (WGAN-GP) for counts, in the spirit of scGAN / cscGAN.

Taught in ``03_simulation_gan``.
A generator turns random noise into cells; a critic scores how real a cell looks; the two are
trained against each other until the critic can no longer tell generated cells from real ones.

Design (what :func:`fit_gan` builds):

- **Conditioning (cscGAN, Marouf et al. 2020).** Each cell's group is coded as the
  concatenation of one one-hot vector per ``groupby`` key (e.g. 5 cell types + 2 conditions =
  7 entries). The code is concatenated to the noise for the generator and to the expression
  for the critic, so the generator learns ``p(cell | cell type, condition)``. Groups that share
  a cell type share part of their code, which lets a rare group borrow from its neighbours.
- **Library-size-aware output (scGAN's LSN idea).** The generator ends in a softmax over genes:
  it produces expression *proportions*, not counts, so sequencing depth is not something the
  GAN has to learn. :meth:`GANSimulator.sample` draws a library size for each generated cell
  from the real library sizes of its group and turns proportions into counts with a seeded
  multinomial draw, so every generated cell has exactly the drawn depth.
- **What the critic sees.** Real cells enter the critic as log1p counts per 10,000
  (recomputed from the counts: the normalization of ``X``). A generated cell enters the same
  way by default (``critic_input='counts'``): Poisson counts are drawn from its proportions
  times the library size of a real cell of the same group, and normalized like a real cell, so
  the critic judges exactly the kind of cell that :meth:`GANSimulator.sample` will output,
  sampling noise and zeros included. Sampling has no gradient, so the generator is updated
  through a straight-through estimator (the backward pass treats the draw as the identity on
  the proportions). With ``critic_input='proportions'`` the critic sees
  ``log1p(proportions x 10,000)`` instead (scGAN's choice, without the draw): the generator then
  has to imitate the sampling noise of real cells itself, and ``sample`` adds it a second time.
- **Generator.** ``softmax(MLP([noise, code]) + offset(code))``: ``offset`` is a linear map of
  the code alone, started at the least-squares fit of each group's log mean proportions
  (additive over the keys), so the generator starts at the real group means and the MLP learns
  the variation between cells of a group. Started from uniform proportions instead, Adam
  (whose steps are about ``lr`` in size) needs thousands of steps just to find the means.
  MLP: ``[noise, code] -> hidden[0] -> ... -> hidden[-1] -> genes`` with LeakyReLU(0.2).
- **Critic.** MLP ``[log1p CP10k, code] -> hidden[-1] -> ... -> hidden[0] -> 1``, LeakyReLU(0.2),
  no batch normalization (it would break the per-cell gradient penalty).
- **Wasserstein loss with gradient penalty (Arjovsky et al. 2017; Gulrajani et al. 2017).**
  The critic maximizes ``E[D(real)] - E[D(fake)]``, an estimate of the Wasserstein-1 distance
  when ``D`` is 1-Lipschitz; the penalty ``gp_weight * E[(||grad D(x_hat)|| - 1)^2]`` on random
  interpolates ``x_hat`` of real and generated cells enforces that softly
  (:func:`gradient_penalty`). ``n_critic`` critic steps per generator step, Adam(``lr``,
  ``betas``) for both networks. Each generated cell of a batch takes the group (and the
  library size) of a real cell of the batch.
- **Epochs and history.** One epoch is one pass of the critic over all training cells in
  shuffled batches; the generator takes a step after every ``n_critic``-th critic step (the
  count runs on across epochs). ``history`` records per epoch the means over its critic steps of
  the critic loss, the generator loss on the same generated cells (``-E[D(fake)]``), the
  Wasserstein estimate and the gradient penalty, and the wall-clock seconds.
- **Device and seeds.** Everything (data, networks, batches, random draws) lives on ``device``
  (:func:`tutorial_kit.config.get_device`: CUDA when present). Initial weights come from
  ``torch.manual_seed(seed)`` inside ``torch.random.fork_rng`` (the global RNG is left as it
  was); shuffling, noise, Poisson draws and interpolation weights come from a dedicated
  ``torch.Generator`` on ``device``. Same seed on the same machine and thread count -> same
  numbers (CUDA kernels may add run-to-run noise; CPU results are bitwise reproducible).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from tutorial_kit.arrays import to_dense
from tutorial_kit.config import adam
from tutorial_kit.simulate._base import GROUP_SEP, as_groupby, group_labels, resolve_n_cells, simulated_adata
from tutorial_kit.validate import check_counts, check_int, check_obs_columns

if TYPE_CHECKING:  # pragma: no cover
    import anndata
    import pandas as pd
    import torch

__all__ = ["GANSimulator", "diversity", "fit_gan", "gradient_penalty"]

SCALE = 1e4
"""Counts per cell that the critic's input is normalized to (log1p CP10k, as ``X``)."""

CRITIC_INPUTS = ("counts", "proportions")
"""What the critic may see of a generated cell (see :func:`fit_gan`)."""

_CHUNK = 4096  # cells generated at once in sample()


# --------------------------------------------------------------------------- checks


def _check_options(
    epochs: Any, batch_size: Any, latent_dim: Any, hidden: Any, n_critic: Any, gp_weight: Any, lr: Any, betas: Any
) -> tuple[int, int, int, tuple[int, ...], int]:
    epochs = check_int(epochs, "epochs")
    batch_size = check_int(batch_size, "batch_size", minimum=2)
    latent_dim = check_int(latent_dim, "latent_dim")
    n_critic = check_int(n_critic, "n_critic")
    try:
        hidden = tuple(hidden)
    except TypeError:
        raise ValueError(f"hidden must be a sequence of layer widths, e.g. (256, 512); got {hidden!r}.") from None
    if not hidden:
        raise ValueError("hidden must name at least one layer width, e.g. (256, 512).")
    hidden = tuple(check_int(h, "every hidden layer width") for h in hidden)
    if not _is_number(gp_weight) or gp_weight < 0:
        raise ValueError(f"gp_weight must be a non-negative number (10 in Gulrajani et al.); got {gp_weight!r}.")
    if not _is_number(lr) or lr <= 0:
        raise ValueError(f"lr must be a positive learning rate, e.g. 1e-4; got {lr!r}.")
    pair = tuple(betas) if isinstance(betas, (tuple, list)) else ()
    if len(pair) != 2 or not all(_is_number(b) and 0 <= b < 1 for b in pair):
        raise ValueError(f"betas must be two numbers in [0, 1) for Adam, e.g. (0.5, 0.9); got {betas!r}.")
    return epochs, batch_size, latent_dim, hidden, n_critic


def _is_number(value: Any) -> bool:
    """A finite real number (not a bool)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool) and np.isfinite(value)


def _training_data(adata: "anndata.AnnData", keys: tuple[str, ...], layer: str | None):
    """Dense float32 counts, group labels and library sizes of the training cells, checked."""
    import pandas as pd

    check_obs_columns(adata, keys, where="fit_gan")
    check_counts(adata, layer=layer, where="fit_gan")
    if adata.n_obs == 0 or adata.n_vars < 2:
        raise ValueError(f"fit_gan needs cells and at least 2 genes; got shape {adata.shape}.")
    raw = adata.X if layer is None else adata.layers[layer]
    counts = to_dense(raw, dtype=np.float32, copy=True)
    library = counts.sum(axis=1)
    if (library <= 0).any():
        raise ValueError(
            f"fit_gan: {int((library <= 0).sum())} cell(s) have no counts, so their expression proportions are "
            "undefined; remove them first, e.g. adata = adata[np.asarray(adata.layers['counts'].sum(axis=1)).ravel() > 0]."
        )
    labels = group_labels(adata, keys)
    sizes = pd.Series(labels).value_counts().sort_index().rename("n_cells")
    small = sizes[sizes < 2]
    if len(small):
        raise ValueError(
            f"fit_gan: group(s) {small.to_dict()} have fewer than 2 cells; a GAN cannot learn a group from one cell. "
            "Remove those cells or group more coarsely (e.g. groupby='cell_type')."
        )
    return counts, labels, sizes, library


# --------------------------------------------------------------------------- conditioning


class _Coder:
    """One one-hot block per groupby key; a group label maps to their concatenation."""

    def __init__(self, labels: np.ndarray, keys: tuple[str, ...]):
        parts = [str(g).split(GROUP_SEP) for g in labels]
        self.keys = keys
        self.levels = [sorted({p[i] for p in parts}) for i in range(len(keys))]
        self.width = sum(len(v) for v in self.levels)

    def encode(self, labels: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(labels), self.width), dtype=np.float32)
        offset = 0
        split = [str(g).split(GROUP_SEP) for g in labels]
        for i, levels in enumerate(self.levels):
            index = {v: j for j, v in enumerate(levels)}
            out[np.arange(len(labels)), [offset + index[p[i]] for p in split]] = 1.0
            offset += len(levels)
        return out


# --------------------------------------------------------------------------- networks and losses


def _mlp(widths: Sequence[int]) -> "torch.nn.Sequential":
    """Linear layers of the given widths with LeakyReLU(0.2) between them (none after the last)."""
    import torch

    layers: list[torch.nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(torch.nn.LeakyReLU(0.2))
    return torch.nn.Sequential(*layers)


def _make_generator(latent_dim: int, code_width: int, hidden: Sequence[int], n_genes: int) -> "torch.nn.Module":
    """The generator: ``softmax(MLP([noise, code]) + offset(code))``, proportions over genes.

    ``offset`` is a linear map of the code alone: per-group log-proportions, started at the
    real group means by :func:`_start_at_group_means`; the MLP adds the variation between
    cells of a group, driven by the noise.
    """
    import torch

    class Generator(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = _mlp([latent_dim + code_width, *hidden, n_genes])
            self.offset = torch.nn.Linear(code_width, n_genes)

        def forward(self, z: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
            logits = self.body(torch.cat([z, code], dim=1)) + self.offset(code)
            return torch.softmax(logits, dim=1)

    return Generator()


def _start_at_group_means(generator: Any, counts: np.ndarray, library: np.ndarray, code: np.ndarray) -> None:
    """Start the generator near the real group means: ``offset(code)`` ~ log mean proportions of the group.

    The offset's weights are the least-squares fit of each group's log mean proportions on its
    code (additive over the groupby keys); the MLP's last layer starts at zero bias. Without
    this, the untrained generator starts at uniform proportions (every gene 1 / n_genes), and
    Adam, whose steps are about ``lr`` in size, needs thousands of steps to move log-proportions
    by several units.
    """
    import torch

    groups, inverse = np.unique(code, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    props = counts / library[:, None]
    means = np.vstack([props[inverse == k].mean(axis=0) for k in range(len(groups))])
    logs = np.log(means + 1e-6 / counts.shape[1])
    design = np.hstack([np.ones((len(groups), 1)), groups])
    coef = np.linalg.lstsq(design, logs, rcond=None)[0]
    with torch.no_grad():
        generator.offset.bias.copy_(torch.from_numpy(coef[0].astype(np.float32)))
        generator.offset.weight.copy_(torch.from_numpy(coef[1:].T.astype(np.float32)))
        generator.body[-1].bias.zero_()


def _to_critic_input(proportions: "torch.Tensor") -> "torch.Tensor":
    """log1p(proportions x 10,000): the same normalization as the real cells' ``X``."""
    import torch

    return torch.log1p(proportions * SCALE)


def gradient_penalty(
    critic: Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"],
    real: "torch.Tensor",
    fake: "torch.Tensor",
    code: "torch.Tensor",
    eps: "torch.Tensor",
) -> "torch.Tensor":
    """The WGAN-GP penalty ``mean((||grad_x critic(x_hat, code)||_2 - 1)^2)`` (Gulrajani et al. 2017).

    ``x_hat = eps * real + (1 - eps) * fake`` are random points on the lines between real and
    generated cells; the gradient is taken with respect to the expression only (not the code).
    A 1-Lipschitz critic has gradient norm at most 1 everywhere; the penalty pulls the norm
    towards 1 where it matters, between the two distributions.
    Taught in ``03_simulation_gan``.

    Args:
        critic: a function of (cells x genes, cells x code) returning one score per cell.
        real: real cells, cells x genes.
        fake: generated cells, same shape.
        code: the condition code of each cell, cells x code width.
        eps: interpolation weights in [0, 1], shape (cells, 1).

    Returns:
        A scalar tensor that keeps the graph, so it can be added to the critic's loss.

    Example:
        >>> import torch
        >>> w = torch.tensor([3.0, 4.0])  # a linear critic with gradient norm 5 everywhere
        >>> gp = gradient_penalty(lambda x, c: x @ w, torch.zeros(4, 2), torch.ones(4, 2),
        ...                       torch.zeros(4, 1), torch.full((4, 1), 0.5))
        >>> float(gp)  # (5 - 1)^2
        16.0
    """
    import torch

    x_hat = (eps * real + (1.0 - eps) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat, code)
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)
    return ((grad.norm(2, dim=1) - 1.0) ** 2).mean()


def _fake_cells(
    generator: Any, z: "torch.Tensor", code: "torch.Tensor", library: "torch.Tensor", *, critic_input: str, gen: Any
) -> "torch.Tensor":
    """Generated cells as the critic sees them (log1p CP10k), differentiable in the generator's weights.

    With ``critic_input='counts'`` the forward pass uses Poisson counts drawn from
    ``proportions x library`` and normalized like real cells; the backward pass treats the
    draw as the identity (a straight-through estimator), since sampling has no gradient.
    """
    import torch

    proportions = generator(z, code)
    if critic_input == "counts":
        with torch.no_grad():
            drawn = torch.poisson(proportions * library[:, None], generator=gen)
            observed = drawn / drawn.sum(dim=1, keepdim=True).clamp(min=1.0)
        proportions = proportions + (observed - proportions).detach()
    return _to_critic_input(proportions)


class _Training:
    """The networks, optimizers, data and random generator of one WGAN-GP run, all on ``device``."""

    def __init__(self, counts: np.ndarray, library: np.ndarray, code: np.ndarray, *, latent_dim: int,
                 hidden: tuple[int, ...], lr: float, betas: tuple[float, float], gp_weight: float,
                 critic_input: str, device: str, seed: int):
        import torch

        n_genes = counts.shape[1]
        self.x = torch.from_numpy(np.log1p(counts / library[:, None] * SCALE).astype(np.float32)).to(device)
        self.code = torch.from_numpy(code).to(device)
        self.library = torch.from_numpy(library.astype(np.float32)).to(device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.generator = _make_generator(latent_dim, code.shape[1], hidden, n_genes)
            self.critic_net = _mlp([n_genes + code.shape[1], *reversed(hidden), 1])
        _start_at_group_means(self.generator, counts, library, code)
        self.generator.to(device)
        self.critic_net.to(device)
        self.opt_g = adam(self.generator.parameters(), lr=lr, betas=betas)
        self.opt_c = adam(self.critic_net.parameters(), lr=lr, betas=betas)
        self.gen = torch.Generator(device=device).manual_seed(seed)
        self.latent_dim, self.gp_weight, self.critic_input, self.device = latent_dim, gp_weight, critic_input, device
        self.steps = 0

    def critic(self, expr: "torch.Tensor", code: "torch.Tensor") -> "torch.Tensor":
        import torch

        return self.critic_net(torch.cat([expr, code], dim=1)).squeeze(1)

    def fake(self, idx: "torch.Tensor") -> "torch.Tensor":
        """Generated cells for the groups (and library sizes) of the real cells ``idx``."""
        import torch

        z = torch.randn(len(idx), self.latent_dim, generator=self.gen, device=self.device)
        return _fake_cells(self.generator, z, self.code[idx], self.library[idx],
                           critic_input=self.critic_input, gen=self.gen)

    def critic_step(self, idx: "torch.Tensor") -> "torch.Tensor":
        """One critic update on the real cells ``idx``; returns [loss, -D(fake), W estimate, penalty]."""
        import torch

        real, code = self.x[idx], self.code[idx]
        with torch.no_grad():
            fake = self.fake(idx)
        d_real, d_fake = self.critic(real, code).mean(), self.critic(fake, code).mean()
        eps = torch.rand(len(idx), 1, generator=self.gen, device=self.device)
        gp = gradient_penalty(self.critic, real, fake, code, eps)
        loss = d_fake - d_real + self.gp_weight * gp
        self.opt_c.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_c.step()
        return torch.stack([loss, -d_fake, d_real - d_fake, gp]).detach()

    def generator_step(self, idx: "torch.Tensor") -> None:
        """One generator update: make the critic score generated cells of the groups of ``idx`` higher."""
        loss = -self.critic(self.fake(idx), self.code[idx]).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()

    def epoch(self, *, batch_size: int, n_critic: int) -> list[float]:
        """One pass of the critic over all cells, a generator step after every ``n_critic``-th critic step."""
        import torch

        order = torch.randperm(len(self.x), generator=self.gen, device=self.device)
        sums = torch.zeros(4, device=self.device)
        batches = list(torch.split(order, batch_size))
        for idx in batches:
            sums += self.critic_step(idx)
            self.steps += 1
            if self.steps % n_critic == 0:
                self.generator_step(idx)
        return (sums / len(batches)).tolist()  # .tolist() waits for the device, so timings are honest


# --------------------------------------------------------------------------- the fitted simulator


class GANSimulator:
    """A fitted conditional WGAN-GP; :meth:`sample` draws new cells as AnnData.

    Made by :func:`fit_gan` (read its docstring for the design). Taught in ``03_simulation_gan``.

    Attributes:
        groupby: the obs columns whose combinations are the groups.
        var_names: gene symbols, in the order of the training data.
        group_sizes: training cells per group (index: group label joined with ``' | '``).
        history: one row per epoch: ``epoch, critic_loss, generator_loss, wasserstein,
            gradient_penalty, seconds``.
        device: where the networks live (``'cpu'``, ``'cuda:0'``).
        generator, critic: the trained ``torch.nn.Sequential`` networks.
        library_sizes: the real library sizes (total counts) of each group, from which
            generated cells draw theirs.
    """

    def __init__(
        self,
        *,
        groupby: tuple[str, ...],
        var_names: "pd.Index",
        group_sizes: "pd.Series",
        library_sizes: dict[str, np.ndarray],
        coder: _Coder,
        generator: Any,
        critic: Any,
        latent_dim: int,
        device: str,
        history: "pd.DataFrame",
        template_obs: "pd.DataFrame",
    ):
        self.groupby = groupby
        self.var_names = var_names
        self.group_sizes = group_sizes
        self.library_sizes = library_sizes
        self.generator = generator
        self.critic = critic
        self.latent_dim = latent_dim
        self.device = device
        self.history = history
        self._coder = coder
        self._template_obs = template_obs

    @property
    def seconds_per_epoch(self) -> float:
        """Median wall-clock seconds per training epoch (robust to a slow first epoch)."""
        return float(self.history["seconds"].median())

    def __repr__(self) -> str:
        return (
            f"GANSimulator({len(self.group_sizes)} groups of {self.groupby}, {len(self.var_names)} genes, "
            f"{len(self.history)} epochs on {self.device}, {self.seconds_per_epoch:.3g} s/epoch)"
        )

    def proportions(self, groups: Sequence[str], *, seed: int = 0, noise_scale: float = 1.0) -> np.ndarray:
        """Generated expression proportions (rows sum to 1), one row per requested group label.

        ``noise_scale`` multiplies the generator's noise: 1 samples the trained distribution,
        values below 1 trade diversity for typicality (the "truncation trick"), and 0 gives every
        cell of a group the same proportions, a generator collapsed onto one mode per group.

        Example:
            >>> import anndata as ad, numpy as np, pandas as pd, tutorial_kit as tk
            >>> rng = np.random.default_rng(0)
            >>> toy = ad.AnnData(rng.poisson(5, (20, 4)).astype(float),
            ...                  obs=pd.DataFrame({"cell_type": ["A"] * 10 + ["B"] * 10}, index=[f"c{i}" for i in range(20)]))
            >>> gan = tk.simulate.fit_gan(toy, groupby="cell_type", layer=None, epochs=1, hidden=(8,),
            ...                           latent_dim=4, device="cpu", progress=False)
            >>> gan.proportions(["A", "B"]).sum(axis=1).round(5).tolist()
            [1.0, 1.0]
        """
        import torch

        if not np.isfinite(noise_scale) or noise_scale < 0:
            raise ValueError(f"noise_scale must be a non-negative number (1 = as trained); got {noise_scale!r}.")
        unknown = sorted(set(map(str, groups)) - set(self.group_sizes.index))
        if unknown:
            raise ValueError(f"unknown group(s) {unknown}; known groups: {list(self.group_sizes.index)}.")
        gen = torch.Generator().manual_seed(int(seed))
        code = torch.from_numpy(self._coder.encode(list(groups)))
        out = []
        self.generator.eval()
        with torch.no_grad():
            for start in range(0, len(code), _CHUNK):
                c = code[start : start + _CHUNK]
                z = torch.randn(len(c), self.latent_dim, generator=gen) * noise_scale
                p = self.generator(z.to(self.device), c.to(self.device))
                out.append(p.double().cpu().numpy())
        props = np.vstack(out) if out else np.zeros((0, len(self.var_names)))
        return props / props.sum(axis=1, keepdims=True)

    def sample(self, n_cells: Any = None, *, seed: int = 0, noise_scale: float = 1.0) -> "anndata.AnnData":
        """Draw generated cells: proportions from the generator, library sizes from the real group, counts.

        Each cell of group ``g`` gets a library size drawn (with replacement) from the real
        library sizes of ``g``, and counts ~ Multinomial(library size, generated proportions).

        Args:
            n_cells: ``None`` (as many per group as in training), a total split in proportion to
                the training groups, or a mapping from group label to count
                (see :func:`tutorial_kit.simulate.resolve_n_cells`).
            seed: seeds the noise (torch) and the library sizes and counts (numpy).
            noise_scale: multiplies the generator's noise (see :meth:`proportions`); 0 shows
                what a fully mode-collapsed generator would produce.

        Returns:
            AnnData in the course schema (``layers['counts']`` int32, ``X`` log1p CP10k,
            ``obs['dataset'] = 'simulated:gan'``, ``obs['group']``).

        Example:
            >>> import anndata as ad, numpy as np, pandas as pd, tutorial_kit as tk
            >>> rng = np.random.default_rng(0)
            >>> toy = ad.AnnData(rng.poisson(5, (20, 4)).astype(float),
            ...                  obs=pd.DataFrame({"cell_type": ["A"] * 10 + ["B"] * 10}, index=[f"c{i}" for i in range(20)]))
            >>> gan = tk.simulate.fit_gan(toy, groupby="cell_type", layer=None, epochs=2, hidden=(8,),
            ...                           latent_dim=4, device="cpu", progress=False)
            >>> sim = gan.sample({"B": 3}, seed=1)
            >>> sim.shape, sim.obs["cell_type"].tolist()
            ((3, 4), ['B', 'B', 'B'])
        """
        per_group = resolve_n_cells(n_cells, self.group_sizes)
        labels = np.repeat(per_group.index.to_numpy(dtype=object), per_group.to_numpy())
        rng = np.random.default_rng(seed)
        library = np.concatenate(
            [rng.choice(self.library_sizes[g], size=int(n), replace=True) for g, n in per_group.items()]
        ).astype(np.int64)
        props = self.proportions(labels, seed=seed, noise_scale=noise_scale)
        counts = rng.multinomial(library, props)
        return simulated_adata(
            counts,
            labels,
            groupby=self.groupby,
            var_names=self.var_names,
            source="gan",
            template_obs=self._template_obs,
        )


# --------------------------------------------------------------------------- training


def fit_gan(
    adata: "anndata.AnnData",
    *,
    groupby: str | Sequence[str] = ("cell_type", "condition"),
    layer: str | None = "counts",
    epochs: int | None = None,
    batch_size: int = 128,
    latent_dim: int = 64,
    hidden: Sequence[int] = (256, 512),
    n_critic: int = 5,
    gp_weight: float = 10.0,
    lr: float = 1e-4,
    betas: tuple[float, float] = (0.5, 0.9),
    critic_input: str = "counts",
    device: str | None = None,
    seed: int = 0,
    progress: bool = True,
) -> GANSimulator:
    """Train a conditional WGAN-GP on raw counts, conditioned on the ``groupby`` groups.

    See the module docstring for the design (one-hot code per key, softmax proportions with
    library sizes drawn from the real group, Wasserstein loss with gradient penalty).
    Taught in ``03_simulation_gan``.

    Args:
        adata: cells with raw counts in ``layers[layer]`` (``adata.X`` if ``layer`` is None) and
            the ``groupby`` columns in ``obs``; every group needs at least 2 cells and every cell
            at least one count.
        groupby: obs column(s) whose combinations are the conditions of the GAN.
        layer: the layer with raw counts.
        epochs: passes of the critic over the data; ``None`` means
            ``tk.config.epochs("gan")`` (the CI or workshop budget).
        batch_size: cells per critic step (at least 2).
        latent_dim: size of the noise vector.
        hidden: widths of the generator's hidden layers (the critic uses them in reverse).
        n_critic: critic steps per generator step.
        gp_weight: weight of the gradient penalty (0 turns it off: a plain, unconstrained critic).
        lr: Adam learning rate of both networks.
        betas: Adam's betas.
        critic_input: what the critic sees of a generated cell: ``'counts'`` (default), the
            log1p CP10k of Poisson counts drawn from the generated proportions with the library
            size of a real cell of the same group, exactly like a real cell (gradients pass
            straight through the draw); or ``'proportions'``, log1p(proportions x 10,000)
            without sampling noise (the generator must then fake the noise itself, and
            :meth:`GANSimulator.sample` adds it a second time).
        device: ``'cpu'``, ``'cuda'``, ``'cuda:N'``; ``None`` means :func:`tutorial_kit.config.get_device`.
        seed: seeds the initial weights, the shuffling, the noise and the interpolation weights.
        progress: show a progress bar over epochs.

    Returns:
        A :class:`GANSimulator`.

    Example:
        >>> import anndata as ad, numpy as np, pandas as pd, tutorial_kit as tk
        >>> rng = np.random.default_rng(0)
        >>> toy = ad.AnnData(rng.poisson(5, (20, 4)).astype(float),
        ...                  obs=pd.DataFrame({"cell_type": ["A"] * 10 + ["B"] * 10}, index=[f"c{i}" for i in range(20)]))
        >>> gan = tk.simulate.fit_gan(toy, groupby="cell_type", layer=None, epochs=3, hidden=(8,),
        ...                           latent_dim=4, device="cpu", progress=False)
        >>> gan.history[["epoch", "critic_loss", "wasserstein"]].shape
        (3, 3)
    """
    import pandas as pd
    import torch
    from tqdm import tqdm

    from tutorial_kit import config

    keys = as_groupby(groupby)
    epochs = config.epochs("gan") if epochs is None else epochs
    epochs, batch_size, latent_dim, hidden, n_critic = _check_options(
        epochs, batch_size, latent_dim, hidden, n_critic, gp_weight, lr, betas
    )
    if critic_input not in CRITIC_INPUTS:
        raise ValueError(f"critic_input must be one of {CRITIC_INPUTS}; got {critic_input!r}.")
    device = config.get_device(device)
    counts, labels, sizes, library = _training_data(adata, keys, layer)
    coder = _Coder(labels, keys)
    training = _Training(
        counts, library, coder.encode(labels), latent_dim=latent_dim, hidden=hidden, lr=lr, betas=tuple(betas),
        gp_weight=float(gp_weight), critic_input=critic_input, device=device, seed=int(seed),
    )
    rows = []
    bar = tqdm(range(1, epochs + 1), desc="WGAN-GP", unit="epoch", disable=not progress)
    for epoch in bar:
        start = time.perf_counter()
        means = training.epoch(batch_size=batch_size, n_critic=n_critic)
        rows.append((epoch, *means, time.perf_counter() - start))
        bar.set_postfix(W=f"{means[2]:.3f}")
    bar.close()
    history = pd.DataFrame(
        rows, columns=["epoch", "critic_loss", "generator_loss", "wasserstein", "gradient_penalty", "seconds"]
    )
    keep = [c for c in dict.fromkeys((*keys, "perturbation", "condition", "cell_type")) if c in adata.obs.columns]
    return GANSimulator(
        groupby=keys,
        var_names=pd.Index(adata.var_names.astype(str)),
        group_sizes=sizes,
        library_sizes={g: library[labels == g].astype(np.int64) for g in sizes.index},
        coder=coder,
        generator=training.generator,
        critic=training.critic_net,
        latent_dim=latent_dim,
        device=device,
        history=history,
        template_obs=adata.obs[keep].copy(),
    )


# --------------------------------------------------------------------------- diversity (mode collapse)


def diversity(adata: "anndata.AnnData", *, groupby: str | Sequence[str] = ("cell_type", "condition"), pca: Any) -> "pd.Series":
    """Mean pairwise Euclidean distance between the cells of each group, in a fitted PCA.

    A measure of spread: a GAN whose generator collapsed onto a few modes produces cells that
    are closer to each other than real cells are, so its diversity falls below the real one.
    Compare generated with real cells in the SAME PCA (fitted on real cells only,
    :func:`tutorial_kit.metrics.fit_pca`). The average includes the zero diagonal
    (V-statistic, as in :func:`tutorial_kit.metrics.edistance`).
    Taught in ``03_simulation_gan`` (mode collapse).

    Args:
        adata: cells with log-normalized ``X`` and the ``groupby`` columns.
        groupby: obs column(s) defining the groups.
        pca: a fitted PCA (from :func:`tutorial_kit.metrics.fit_pca` on real cells).

    Returns:
        A Series indexed by group label (``' | '``-joined values), named ``diversity``.

    Example:
        >>> import anndata as ad, numpy as np, pandas as pd, tutorial_kit as tk
        >>> x = np.array([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0], [1.0, 1.0]])
        >>> a = ad.AnnData(x, obs=pd.DataFrame({"cell_type": ["A", "A", "B", "B"]}, index=list("abcd")))
        >>> pca = tk.metrics.fit_pca(x, n_comps=2)
        >>> diversity(a, groupby="cell_type", pca=pca).round(6).tolist()  # A: (0 + 5 + 5 + 0) / 4
        [2.5, 0.0]
    """
    import pandas as pd
    from scipy.spatial.distance import pdist

    from tutorial_kit.metrics import embed

    if getattr(pca, "n_features_in_", None) is None:
        raise ValueError("diversity needs a fitted PCA (tk.metrics.fit_pca on real cells), so groups are comparable.")
    labels = group_labels(adata, groupby)
    emb = embed(adata.X, pca=pca, name="adata.X")
    out = {}
    for g in sorted(set(labels)):
        n = int((labels == g).sum())
        out[g] = 2.0 * float(pdist(emb[labels == g]).sum()) / n**2
    return pd.Series(out, name="diversity", dtype=float)
