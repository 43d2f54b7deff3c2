"""Background and target cells for contrastive models (scvi-tools' ``ContrastiveVI``), checked.

Taught in ``07_contrastivevi``. contrastiveVI learns two latent spaces: a background (shared)
space from every cell and a salient space from the target cells only. The control cells are the
background: they carry the variation every cell has (cell cycle, stimulation, replicate) and
none of the perturbations. scvi-tools takes the two sets as integer positions
(``model.train(background_indices=..., target_indices=...)``); :func:`contrastive_indices` builds
them from the perturbation labels and refuses the inputs that scvi-tools would only warn about
or silently train on (log-normalized values, an empty set).

What scvi-tools does with the two sets (scvi-tools 1.4, ``scvi/external/contrastivevi``): each
training step draws one minibatch of background and one of target cells; the loader walks through
the larger set and cycles the smaller one, and the loss cuts both minibatches to the size of the
smaller one, so a small background is reused many times per epoch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from tutorial_kit.validate import check_counts, check_obs_columns

if TYPE_CHECKING:  # pragma: no cover
    import anndata

__all__ = ["contrastive_indices"]


def contrastive_indices(
    adata: "anndata.AnnData",
    *,
    perturbation_key: str = "perturbation",
    control: str = "control",
    layer: str | None = "counts",
    min_cells: int = 20,
) -> tuple[np.ndarray, np.ndarray]:
    """The background (control) and target (perturbed) cells of a screen, as scvi-tools wants them.

    Args:
        adata: a screen in the course schema, with raw counts in ``layers[layer]`` (the data
            contrastiveVI models: its likelihood is a zero-inflated negative binomial on counts).
        perturbation_key: obs column of perturbation labels.
        control: the label of the control cells (the background).
        layer: the layer with raw counts (``None``: ``adata.X`` holds them); the same layer must
            be given to ``ContrastiveVI.setup_anndata(adata, layer=...)``.
        min_cells: fewest cells accepted in each set.

    Returns:
        ``(background, target)``: increasing integer positions of the control cells and of all
        other cells, for ``ContrastiveVI.train(background_indices=..., target_indices=...)``.

    Raises:
        ValueError: the obs column is missing; the layer is missing or holds log-normalized or
            other non-count values (scvi-tools only warns and trains on them); fewer than
            ``min_cells`` control or perturbed cells.

    Example:
        >>> import anndata as ad, pandas as pd
        >>> obs = pd.DataFrame({"perturbation": ["control"] * 30 + ["A"] * 40},
        ...                    index=[f"c{i}" for i in range(70)])
        >>> a = ad.AnnData(np.ones((70, 3), dtype=np.float32), obs=obs)
        >>> a.layers["counts"] = a.X.copy()
        >>> background, target = contrastive_indices(a)
        >>> background.size, target.size, int(target[0])
        (30, 40, 30)
    """
    where = "contrastive_indices"
    check_obs_columns(adata, [perturbation_key], where=where)
    check_counts(adata, layer=layer, where=where)
    labels = adata.obs[perturbation_key].astype(str).to_numpy()
    background = np.flatnonzero(labels == control)
    target = np.flatnonzero(labels != control)
    min_cells = int(min_cells)
    if background.size < min_cells:
        found = sorted(set(labels))[:10]
        raise ValueError(
            f"{where}: {background.size} control cells ({perturbation_key} == {control!r}); the background "
            f"needs at least {min_cells}. Labels found: {found}. Pass control= the label of the control cells."
        )
    if target.size < min_cells:
        raise ValueError(
            f"{where}: {target.size} perturbed cells (not {control!r}); the target needs at least {min_cells}."
        )
    return background, target
