"""What every simulator of the course shares: groups of cells, how many to sample, and the output AnnData.

Taught in ``02_simulation_statistical`` and ``03_simulation_gan``.
A simulator is fitted per group of cells (for example cell type x condition) and samples any
number of cells per group; its output is AnnData in the course schema, so every tool of the
course (metrics, realism, models) takes real and simulated cells alike.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from tutorial_kit.validate import check_nonempty, check_obs_columns

if TYPE_CHECKING:  # pragma: no cover
    import anndata
    import pandas as pd

GROUP_SEP = " | "
"""How a group's key values are joined into one label, e.g. ``'CD4 T cells | stimulated'``."""


def as_groupby(groupby: str | Sequence[str]) -> tuple[str, ...]:
    """``groupby`` as a non-empty tuple of obs column names.

    Example:
        >>> as_groupby("cell_type")
        ('cell_type',)
    """
    keys = (groupby,) if isinstance(groupby, str) else tuple(groupby)
    if not keys or not all(isinstance(k, str) and k for k in keys):
        raise ValueError(f"groupby must name one or more obs columns, e.g. ('cell_type', 'condition'); got {groupby!r}.")
    return keys


def group_labels(adata: "anndata.AnnData", groupby: str | Sequence[str]) -> np.ndarray:
    """One label per cell: the values of the ``groupby`` columns joined by ``' | '``.

    Example:
        >>> import anndata as ad, numpy as np, pandas as pd
        >>> obs = pd.DataFrame({"cell_type": ["B", "T"], "condition": ["control", "stimulated"]}, index=["a", "b"])
        >>> group_labels(ad.AnnData(np.zeros((2, 1)), obs=obs), ("cell_type", "condition")).tolist()
        ['B | control', 'T | stimulated']
    """
    keys = as_groupby(groupby)
    check_obs_columns(adata, keys, where="group_labels")
    parts = [adata.obs[k].astype(str).to_numpy() for k in keys]
    labels = parts[0].astype(object)
    for p in parts[1:]:
        labels = labels + GROUP_SEP + p
    return np.asarray(labels, dtype=object)


def group_sizes(adata: "anndata.AnnData", groupby: str | Sequence[str]) -> "pd.Series":
    """Cells per group (index: group label), in sorted order; every group must have cells.

    Example:
        >>> import anndata as ad, numpy as np, pandas as pd
        >>> obs = pd.DataFrame({"cell_type": ["B", "T", "T"]}, index=["a", "b", "c"])
        >>> group_sizes(ad.AnnData(np.zeros((3, 1)), obs=obs), "cell_type").to_dict()
        {'B': 1, 'T': 2}
    """
    import pandas as pd

    labels = group_labels(adata, groupby)
    check_nonempty(len(labels), what="cells", where="group_sizes")
    return pd.Series(labels).value_counts().sort_index().rename("n_cells")


def resolve_n_cells(n_cells: Any, sizes: "pd.Series") -> "pd.Series":
    """How many cells to sample per group.

    Args:
        n_cells: ``None`` (as many as the training data had per group), an ``int`` (a total,
            split in proportion to the training group sizes, at least one cell per group), or a
            mapping from group label (``'CD4 T cells | stimulated'``) to a count; groups not named
            get none.
        sizes: training cells per group (:func:`group_sizes`).

    Example:
        >>> import pandas as pd
        >>> sizes = pd.Series({"B": 10, "T": 30})
        >>> resolve_n_cells(8, sizes).to_dict()
        {'B': 2, 'T': 6}
        >>> resolve_n_cells({"T": 5}, sizes).to_dict()
        {'B': 0, 'T': 5}
    """
    import pandas as pd

    if n_cells is None:
        return sizes.astype(int).copy()
    if isinstance(n_cells, Mapping):
        unknown = sorted(set(n_cells) - set(sizes.index))
        if unknown:
            raise ValueError(
                f"n_cells names group(s) {unknown} that the simulator was not fitted on; "
                f"known groups: {list(sizes.index)} (labels join the groupby values with {GROUP_SEP!r})."
            )
        out = pd.Series({g: int(n_cells.get(g, 0)) for g in sizes.index}, name="n_cells")
        if (out < 0).any():
            raise ValueError(f"n_cells must be non-negative counts; got {dict(n_cells)}.")
        check_nonempty(int(out.sum()), what="cells to sample", where="resolve_n_cells")
        return out
    if isinstance(n_cells, (bool, np.bool_)) or not isinstance(n_cells, (int, np.integer)):
        raise ValueError(f"n_cells must be None, an int or a mapping from group to int; got {n_cells!r}.")
    total = int(n_cells)
    if total < len(sizes):
        raise ValueError(f"n_cells={total} is fewer than the {len(sizes)} groups; ask for at least one cell per group.")
    share = sizes.to_numpy(float) / sizes.sum()
    raw = share * total
    counts = np.maximum(np.floor(raw).astype(int), 1)
    # hand out what is left by largest remainder, deterministic
    order = np.argsort(-(raw - np.floor(raw)), kind="stable")
    i = 0
    while counts.sum() < total:
        counts[order[i % len(order)]] += 1
        i += 1
    while counts.sum() > total:
        j = int(np.argmax(counts))
        counts[j] -= 1
    return pd.Series(counts, index=sizes.index, name="n_cells")


def simulated_adata(
    counts: Any,
    groups: Sequence[str],
    *,
    groupby: Sequence[str],
    var_names: Sequence[str],
    source: str,
    template_obs: "pd.DataFrame | None" = None,
) -> "anndata.AnnData":
    """AnnData in the course schema for simulated cells.

    Args:
        counts: cells x genes non-negative integer counts (dense or sparse).
        groups: one group label per cell (``' | '``-joined values of ``groupby``).
        groupby: the obs columns the labels stand for; each gets its own column.
        var_names: gene symbols.
        source: a short name of the simulator; ``obs['dataset']`` is ``'simulated:<source>'``.
        template_obs: obs of the real cells; schema columns not in ``groupby`` are taken
            from the first real cell of the same group when possible.

    Returns:
        AnnData with ``layers['counts']`` (int32 sparse), ``X`` = log1p CP10k, obs columns
        ``perturbation``, ``condition``, ``cell_type``, ``dataset``, the ``groupby`` columns,
        and ``obs['group']``.

    Example:
        >>> import numpy as np
        >>> a = simulated_adata(np.array([[1, 0], [2, 3]]), ["B | control", "T | control"],
        ...                     groupby=("cell_type", "condition"), var_names=["g1", "g2"], source="toy")
        >>> a.obs[["cell_type", "condition", "perturbation", "dataset"]].iloc[1].tolist()
        ['T', 'control', 'control', 'simulated:toy']
    """
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    from tutorial_kit.data.schema import CONTROL, log1p_cp10k

    keys = as_groupby(groupby)
    groups = np.asarray(groups, dtype=object)
    counts = sp.csr_matrix(counts)
    if counts.shape != (len(groups), len(var_names)):
        raise ValueError(
            f"simulated counts have shape {counts.shape} but there are {len(groups)} group labels "
            f"and {len(var_names)} genes."
        )
    if counts.nnz and (counts.data.min() < 0 or (counts.dtype.kind == "f" and not np.allclose(counts.data, np.round(counts.data)))):
        raise ValueError("simulated counts must be non-negative integers.")
    counts = sp.csr_matrix(np.round(counts).astype(np.int32)) if counts.dtype.kind == "f" else counts.astype(np.int32)
    split = [str(g).split(GROUP_SEP) for g in groups]
    if any(len(s) != len(keys) for s in split):
        raise ValueError(f"group labels must join {len(keys)} value(s) of {keys} with {GROUP_SEP!r}; got e.g. {groups[0]!r}.")
    obs = pd.DataFrame(split, columns=list(keys), index=[f"sim{i}" for i in range(len(groups))])
    obs["group"] = groups
    if template_obs is not None:
        tmpl = template_obs.copy()
        tmpl["group"] = [GROUP_SEP.join(map(str, row)) for row in tmpl[list(keys)].astype(str).itertuples(index=False)]
        first = tmpl.drop_duplicates("group").set_index("group")
        for col in ("perturbation", "condition", "cell_type"):
            if col not in obs.columns and col in first.columns:
                obs[col] = obs["group"].map(first[col].astype(str)).to_numpy()
    for col in ("perturbation", "condition"):
        if col not in obs.columns:
            obs[col] = CONTROL
    if "cell_type" not in obs.columns:
        obs["cell_type"] = "simulated"
    obs["dataset"] = f"simulated:{source}"
    for col in obs.columns:
        obs[col] = pd.Categorical(obs[col].astype(str))
    adata = ad.AnnData(X=log1p_cp10k(counts), obs=obs, var=pd.DataFrame(index=pd.Index([str(v) for v in var_names])))
    adata.layers["counts"] = counts
    adata.uns["tutorial_kit"] = {"dataset": f"simulated:{source}", "X": "log1p(counts per 10,000)", "has_counts": True}
    return adata


def sample_counts(rng: np.random.Generator, means: np.ndarray, rows: np.ndarray, size: np.ndarray, *,
                  dispersion: float, progress: bool = False, chunk: int = 1 << 21) -> Any:
    """Negative-binomial counts, cell by cell, block by block (the sampler of the GRN screens).

    Cell ``c`` gets mean ``size[c] * means[rows[c]]`` and variance ``mean + dispersion * mean^2``
    (Poisson when ``dispersion`` is 0). Taught in ``02_simulation_statistical``.

    Args:
        rng: the generator (the only source of randomness, so a seed fixes the counts).
        means: groups x genes, the noise-free mean counts of a cell of average library size.
        rows: one group index per cell.
        size: one library-size factor per cell.
        dispersion: NB dispersion, >= 0.
        progress: show a progress bar.
        chunk: matrix entries sampled per block (bounds memory; the counts do not depend on it).

    Returns:
        cells x genes int32 CSR matrix.

    Example:
        >>> x = sample_counts(np.random.default_rng(0), np.array([[1.0, 50.0]]), np.zeros(3, int), np.ones(3), dispersion=0)
        >>> x.shape, x.dtype.name
        ((3, 2), 'int32')
    """
    import scipy.sparse as sp
    from tqdm import tqdm

    n_genes = means.shape[1]
    step = max(1, int(chunk) // n_genes)
    blocks = []
    for start in tqdm(range(0, len(rows), step), desc="sampling counts", disable=not progress):
        mu = size[start:start + step, None] * means[rows[start:start + step]]
        if dispersion > 0:
            r = 1.0 / dispersion
            block = rng.negative_binomial(r, r / (r + mu))
        else:
            block = rng.poisson(mu)
        blocks.append(sp.csr_matrix(block.astype(np.int32)))
    return sp.vstack(blocks, format="csr")
