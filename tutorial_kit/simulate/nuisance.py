"""A shared nuisance program on a simulated screen: variation every cell has, perturbed or not.

Taught in ``07_contrastivevi``. Real screens carry variation that has nothing to do with the
perturbations (the cell cycle, a stimulation, a replicate) and that is often the strongest
signal in the data, so principal components and latent spaces show it first. Added to a
screen of :func:`tutorial_kit.simulate.simulate_perturbseq`, whose perturbation effects are
known, it makes a test bed with two known sources of variation.

The model (:func:`add_shared_program`): every cell ``c`` gets a program score ``u_c ~ U(0, 1)``,
drawn independently of its perturbation. A set of program genes, chosen among the genes that no
perturbation of the screen changes, has its mean multiplied by ``exp(strength * u_c)``: the
counts gain ``Poisson(m_gc * (exp(strength * u_c) - 1))`` on top of the original counts, where
``m_gc = size_factor_c * basal_g`` is the gene's noise-free mean in that cell. The program genes
keep their zero perturbation effect, so ``uns['true_effect']`` stays the truth of the screen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tutorial_kit.validate import check_counts, check_int

if TYPE_CHECKING:  # pragma: no cover
    import anndata

__all__ = ["add_shared_program"]


def add_shared_program(
    adata: "anndata.AnnData",
    *,
    n_genes: int = 30,
    strength: float = 2.0,
    seed: int = 0,
    key: str = "program",
) -> "anndata.AnnData":
    """A copy of a simulated screen with a shared program active, to a varying degree, in every cell.

    Args:
        adata: a screen of :func:`tutorial_kit.simulate.simulate_perturbseq` (``layers['counts']``,
            ``obs['size_factor']``, ``var['basal']`` and ``uns['true_effect']``).
        n_genes: program genes, chosen at random (``seed``) among the genes that no perturbation changes.
        strength: log fold change of a program gene in a cell with score 1 (score 0: no change).
        seed: seed of the gene choice, the scores and the added counts.
        key: name of the program: ``obs[f'{key}_score']`` holds ``u_c`` and ``var[key]`` marks its genes.

    Returns:
        A new AnnData: the counts with the program added, ``X`` recomputed (log1p CP10k), the
        score and the gene flag, and ``uns['shared_program']`` (genes, strength, seed). The
        input is not changed.

    Raises:
        ValueError: the screen lacks the columns above or raw counts; fewer genes without any
            perturbation effect than ``n_genes``; ``strength`` not positive.

    Example:
        >>> import tutorial_kit as tk
        >>> grn = tk.simulate.make_grn(n_genes=60, n_regulators=6, seed=0)
        >>> screen = tk.simulate.simulate_perturbseq(grn, perturbations=["TF02"], n_cells=20, n_control=20)
        >>> a = add_shared_program(screen, n_genes=5, strength=2.0, seed=0)
        >>> int(a.var["program"].sum()), bool(a.obs["program_score"].between(0, 1).all())
        (5, True)
        >>> bool((a.layers["counts"] >= screen.layers["counts"]).toarray().all())
        True
    """
    import pandas as pd
    import scipy.sparse as sp

    from tutorial_kit.data.schema import log1p_cp10k

    where = "add_shared_program"
    n_genes = check_int(n_genes, "n_genes", where=where)
    strength = float(strength)
    if not np.isfinite(strength) or strength <= 0:
        raise ValueError(f"{where}: strength must be a positive log fold change; got {strength!r}.")
    check_counts(adata, layer="counts", where=where)
    missing = [name for name, ok in (("obs['size_factor']", "size_factor" in adata.obs),
                                     ("var['basal']", "basal" in adata.var),
                                     ("uns['true_effect']", "true_effect" in adata.uns)) if not ok]
    if missing:
        raise ValueError(
            f"{where}: the screen has no {', '.join(missing)}; use a screen of tk.simulate.simulate_perturbseq, "
            "whose noise-free means and true effects are known."
        )
    effect = pd.DataFrame(adata.uns["true_effect"])
    untouched = np.flatnonzero(~(effect.reindex(columns=adata.var_names).fillna(0).to_numpy() != 0).any(axis=0))
    if untouched.size < n_genes:
        raise ValueError(
            f"{where}: only {untouched.size} genes are changed by no perturbation of this screen, fewer than "
            f"n_genes={n_genes}; ask for fewer program genes or simulate more genes."
        )
    rng = np.random.default_rng(seed)
    genes = np.sort(rng.choice(untouched, size=n_genes, replace=False))
    score = rng.uniform(0.0, 1.0, size=adata.n_obs)
    mean = adata.obs["size_factor"].to_numpy(float)[:, None] * adata.var["basal"].to_numpy(float)[genes][None, :]
    extra = rng.poisson(mean * np.expm1(strength * score)[:, None])

    counts = sp.csr_matrix(adata.layers["counts"], copy=True).tolil()
    counts[:, genes] = counts[:, genes].toarray() + extra
    counts = counts.tocsr().astype(adata.layers["counts"].dtype)
    out = adata.copy()
    out.layers["counts"] = counts
    out.X = log1p_cp10k(counts)
    out.obs[f"{key}_score"] = score
    out.var[key] = np.isin(np.arange(adata.n_vars), genes)
    out.uns["shared_program"] = {
        "genes": [str(g) for g in adata.var_names[genes]],
        "strength": strength,
        "seed": int(seed),
        "model": "mean x exp(strength * score), score ~ U(0, 1) per cell, independent of the perturbation",
    }
    return out
