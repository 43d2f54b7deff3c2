"""A small simulated CRISPR screen with a known answer: planted knockdowns, escapers and a guide that does nothing.

Taught in ``01_perturbseq_qc``: every QC step of :mod:`tutorial_kit.qc` (on-target check,
Mixscape, perturbation strength) is first run where the right answer is known. The tests of
:mod:`tutorial_kit.qc` use it too. For screens simulated from a gene regulatory network (with
true effects and genetic interactions), see :mod:`tutorial_kit.simulate.grn`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

from tutorial_kit.validate import check_counts, check_int

if TYPE_CHECKING:  # pragma: no cover
    from anndata import AnnData

__all__ = ["simulate_screen"]


def simulate_screen(
    *,
    effects: Sequence[float] = (2.0, 1.0, 0.0),
    n_cells_per_target: int = 150,
    n_control: int = 300,
    n_genes: int = 100,
    n_response_genes: int = 15,
    escape_fraction: float = 0.0,
    knockdown: float = 0.9,
    seed: int = 0,
) -> "AnnData":
    """A small simulated CRISPR screen with a known answer, for tests and for teaching.

    Counts are Poisson with a per-gene mean (log-normal) times a per-cell size factor.
    Target ``TGT<i>`` has two guides (``TGT<i>_1``, ``TGT<i>_2``). In its perturbed cells the
    target gene keeps ``1 - knockdown`` of its expression and ``n_response_genes`` other genes
    change by a log fold change of ``+-effects[i]``; a fraction ``escape_fraction`` of its cells
    escape (no change at all). A target with effect 0 is a guide that does nothing: no knockdown,
    no response. Target genes are expressed at a mean of 4 UMIs per cell so that a knockdown is
    visible.
    Taught in ``01_perturbseq_qc`` (the QC steps of :mod:`tutorial_kit.qc` against a known answer).

    Args:
        effects: one log fold change per target (0 for a non-functional guide).
        n_cells_per_target: cells per target.
        n_control: control cells (non-targeting guide ``'control'``).
        n_genes: genes, targets included (> number of targets + ``n_response_genes``).
        n_response_genes: genes changed by each effective target.
        escape_fraction: fraction of targeted cells that escape, in [0, 1).
        knockdown: fraction of the target's expression removed in perturbed cells, in [0, 1].
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        AnnData in the course schema: ``layers['counts']`` (integers), ``X`` (log1p counts per
        10,000, sparse), ``obs``: ``perturbation``, ``guide``, ``condition`` (``'simulated'``),
        ``cell_type``, ``dataset`` and ``escaped`` (the truth); ``uns['response_genes']``
        (target -> list of responding genes).

    Example:
        >>> a = simulate_screen(effects=(1.0,), n_cells_per_target=10, n_control=10, n_genes=30, seed=0)
        >>> a.shape, sorted(a.obs["perturbation"].unique())
        ((20, 30), ['TGT1', 'control'])
    """
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    effects = [float(e) for e in effects]
    n_targets = len(effects)
    if n_targets == 0 or any(not np.isfinite(e) or e < 0 for e in effects):
        raise ValueError(f"effects must be one or more non-negative log fold changes; got {effects}.")
    n_cells_per_target = check_int(n_cells_per_target, "n_cells_per_target")
    n_control = check_int(n_control, "n_control")
    n_response_genes = check_int(n_response_genes, "n_response_genes")
    n_genes = check_int(n_genes, "n_genes")
    if n_genes <= n_targets + n_response_genes:
        raise ValueError(f"n_genes ({n_genes}) must exceed the number of targets plus n_response_genes "
                         f"({n_targets} + {n_response_genes}).")
    if not 0 <= escape_fraction < 1 or not 0 <= knockdown <= 1:
        raise ValueError("escape_fraction must be in [0, 1) and knockdown in [0, 1].")
    rng = np.random.default_rng(seed)
    targets = [f"TGT{i + 1}" for i in range(n_targets)]
    genes = targets + [f"GENE{j + 1:03d}" for j in range(n_genes - n_targets)]
    base = rng.lognormal(mean=0.5, sigma=1.0, size=n_genes)
    base[:n_targets] = 4.0
    labels = ["control"] * n_control + [t for t in targets for _ in range(n_cells_per_target)]
    n_cells = len(labels)
    size = rng.lognormal(mean=0.0, sigma=0.3, size=n_cells)
    log_fc = np.zeros((n_cells, n_genes))
    escaped = np.zeros(n_cells, dtype=bool)
    guides = np.array(["control"] * n_cells, dtype=object)
    response: dict[str, list[str]] = {}
    for i, (t, e) in enumerate(zip(targets, effects)):
        rows = np.arange(n_control + i * n_cells_per_target, n_control + (i + 1) * n_cells_per_target)
        guides[rows] = [f"{t}_{1 + r % 2}" for r in range(rows.size)]
        picked = rng.choice(np.arange(n_targets, n_genes), size=n_response_genes, replace=False)
        signs = rng.choice([-1.0, 1.0], size=n_response_genes)
        response[t] = [genes[j] for j in picked] if e > 0 else []
        escaped[rows] = rng.random(rows.size) < escape_fraction
        if e > 0:
            hit = rows[~escaped[rows]]
            log_fc[np.ix_(hit, picked)] = signs * e
            log_fc[hit, i] = np.log(max(1.0 - knockdown, 1e-6))
    mu = base[None, :] * size[:, None] * np.exp(log_fc)
    counts = sp.csr_matrix(rng.poisson(mu).astype(np.int32))
    totals = np.asarray(counts.sum(axis=1)).ravel().astype(np.float64)
    scale = np.divide(1e4, totals, out=np.zeros_like(totals), where=totals > 0)
    x = sp.csr_matrix(sp.diags(scale) @ counts, dtype=np.float32)
    np.log1p(x.data, out=x.data)
    obs = pd.DataFrame(
        {"perturbation": labels, "guide": guides.astype(str), "condition": "simulated", "cell_type": "simulated",
         "dataset": "simulate_screen", "escaped": escaped},
        index=pd.Index([f"cell{i:05d}" for i in range(n_cells)]),
    )
    for col in ("perturbation", "guide", "condition", "cell_type", "dataset"):
        obs[col] = obs[col].astype("category")
    adata = ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=pd.Index(genes)))
    adata.layers["counts"] = counts
    adata.uns["response_genes"] = response
    check_counts(adata, where="simulate_screen")
    return adata
