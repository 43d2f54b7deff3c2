"""The naive baseline simulator: every gene an independent Poisson with its group's mean.

Taught in ``02_simulation_statistical``.
It keeps the mean of every gene in every group and nothing else: no over-dispersion, no
excess zeros, no gene-gene dependence. The course always shows it beside a richer simulator,
so that the realism of the richer one has a floor to be compared with.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from tutorial_kit.simulate._base import as_groupby, group_labels, group_sizes, resolve_n_cells, simulated_adata
from tutorial_kit.validate import check_counts, check_obs_columns

if TYPE_CHECKING:  # pragma: no cover
    import anndata
    import pandas as pd

_TEMPLATE_COLUMNS = ("perturbation", "condition", "cell_type")


@dataclass(frozen=True)
class _Prepared:
    keys: tuple[str, ...]
    labels: np.ndarray
    sizes: "pd.Series"
    counts: Any  # cells x genes CSR
    var_names: "pd.Index"
    template_obs: "pd.DataFrame"


def prepare_groups(
    adata: "anndata.AnnData", groupby: str | Sequence[str], layer: str | None, *, where: str, min_cells: int = 1
) -> _Prepared:
    """Check the input of a per-group simulator and collect its groups, counts and template obs.

    Raises a ValueError naming every group with fewer than ``min_cells`` cells.
    """
    import pandas as pd
    import scipy.sparse as sp

    if not (hasattr(adata, "obs") and hasattr(adata, "var_names")):
        raise ValueError(f"{where}: expected an AnnData with raw counts, got {type(adata).__name__}.")
    keys = as_groupby(groupby)
    check_obs_columns(adata, keys, where=where)
    if adata.n_vars == 0:
        raise ValueError(f"{where}: adata has no genes.")
    check_counts(adata, layer=layer, where=where)
    labels = group_labels(adata, keys)
    sizes = group_sizes(adata, keys)
    small = sizes[sizes < min_cells]
    if len(small):
        raise ValueError(
            f"{where}: group(s) {small.to_dict()} have fewer than {min_cells} cells; a fit needs at least "
            f"{min_cells} per group. Drop those cells (e.g. adata[adata.obs['cell_type'] != ...]) or group more coarsely."
        )
    x = adata.X if layer is None else adata.layers[layer]
    counts = sp.csr_matrix(x, dtype=np.float64)
    cols = list(dict.fromkeys([*keys, *(c for c in _TEMPLATE_COLUMNS if c in adata.obs.columns)]))
    first = ~pd.Series(labels).duplicated().to_numpy()
    template = adata.obs.loc[first, cols].copy()
    return _Prepared(keys, labels, sizes, counts, adata.var_names.copy(), template)


def group_rngs(seed: int, n_groups: int) -> list[np.random.Generator]:
    """One independent generator per group, so a group's cells do not depend on the other groups' sizes."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int; got {seed!r}.")
    return [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(n_groups)]


@dataclass
class PoissonSimulator:
    """Independent Poisson genes with per-group means (from :func:`fit_independent_poisson`).

    Attributes:
        groupby: the obs columns that define the groups.
        var_names: the genes.
        group_sizes: training cells per group (index: group label ``'B cells | control'``).
        means: groups x genes DataFrame of mean counts.
        fit_seconds: wall time of the fit.
    """

    groupby: tuple[str, ...]
    var_names: "pd.Index"
    group_sizes: "pd.Series"
    means: "pd.DataFrame" = field(repr=False)
    fit_seconds: float
    template_obs: "pd.DataFrame" = field(repr=False)

    def __repr__(self) -> str:
        return (
            f"PoissonSimulator({len(self.group_sizes)} groups of {self.groupby}, {len(self.var_names)} genes, "
            "independent Poisson genes)"
        )

    def sample(self, n_cells: Any = None, *, seed: int = 0) -> "anndata.AnnData":
        """Draw cells: ``None`` (as many as in training per group), a total, or a dict group -> count.

        Returns AnnData in the course schema, ``obs['dataset'] == 'simulated:independent_poisson'``.
        The same seed gives identical counts.
        """
        n_per = resolve_n_cells(n_cells, self.group_sizes)
        rngs = group_rngs(seed, len(n_per))
        blocks, groups = [], []
        for rng, (group, n) in zip(rngs, n_per.items()):
            if n == 0:
                continue
            mu = self.means.loc[group].to_numpy(float)
            blocks.append(rng.poisson(mu, size=(int(n), mu.size)).astype(np.int32))
            groups += [group] * int(n)
        return simulated_adata(
            np.vstack(blocks), groups, groupby=self.groupby, var_names=self.var_names,
            source="independent_poisson", template_obs=self.template_obs,
        )


def fit_independent_poisson(
    adata: "anndata.AnnData", *, groupby: str | Sequence[str] = ("cell_type", "condition"), layer: str | None = "counts"
) -> PoissonSimulator:
    """Fit the naive baseline: each gene Poisson with the mean count of its group.

    Args:
        adata: cells with raw counts in ``adata.layers[layer]`` (``adata.X`` when ``layer=None``).
        groupby: obs column(s) whose combinations define the groups.
        layer: the counts layer.

    Returns:
        A :class:`PoissonSimulator`; ``.sample(n_cells, seed=...)`` draws new cells.

    Example:
        >>> import anndata as ad, numpy as np, pandas as pd
        >>> obs = pd.DataFrame({"cell_type": ["B"] * 4 + ["T"] * 4, "condition": "control"}, index=[f"c{i}" for i in range(8)])
        >>> a = ad.AnnData(np.zeros((8, 2)), obs=obs); a.layers["counts"] = np.array([[1, 0]] * 4 + [[9, 2]] * 4)
        >>> sim = fit_independent_poisson(a)
        >>> sim.means.round(1).values.tolist()
        [[1.0, 0.0], [9.0, 2.0]]
        >>> sim.sample(100, seed=0).obs["cell_type"].value_counts().sort_index().tolist()
        [50, 50]

    Taught in ``02_simulation_statistical``.
    """
    import pandas as pd

    start = time.perf_counter()
    prep = prepare_groups(adata, groupby, layer, where="fit_independent_poisson")
    means = {}
    for group in prep.sizes.index:
        rows = np.flatnonzero(prep.labels == group)
        means[group] = np.asarray(prep.counts[rows].mean(axis=0)).ravel()
    table = pd.DataFrame.from_dict(means, orient="index", columns=prep.var_names)
    return PoissonSimulator(
        groupby=prep.keys, var_names=prep.var_names, group_sizes=prep.sizes, means=table,
        fit_seconds=time.perf_counter() - start, template_obs=prep.template_obs,
    )
