"""A GRN screen with several cell types whose response to one perturbation differs, by a known amount.

Taught in ``08_cinemaot``: a per-cell treatment-effect estimator (CINEMA-OT) is scored against
the true effect of every cell, beside the naive estimates, which no real screen allows.

The cell types (:func:`simulate_cell_type_screen`)
    All cell types share the network of :func:`tutorial_kit.simulate.make_grn`; they differ in two ways.

    - **Identity (visible in control cells).** Each type has its own ``n_markers`` marker genes,
      chosen among the genes that the perturbation does not reach; their basal mean is multiplied
      by ``marker_fold`` in that type. Markers are the only difference between the control cells
      of two types.
    - **Response (invisible in control cells).** In type ``k`` the offset of every descendant of
      the perturbed gene is shifted by ``offset_shift[k]``. The GRN's activities are relative to
      the control input (``x_g = c_g h(z_g) / h(z_g^ctrl)``), so a shifted offset leaves control
      expression unchanged but moves each descendant along its response curve: towards
      saturation (a smaller change) or towards the steep middle (a larger one).

    Each cell also has a continuous state ``s ~ N(0, 1)``, independent of the treatment, that
    adds ``state_strength * s`` to the same offsets (so the effect varies within a type) and
    multiplies the basal mean of ``n_state_genes`` further unreached genes by
    ``state_fold ** s`` (so the state can be read from the cell's expression, control cells included).

    The composition of treated and control cells differs (``control_composition``,
    ``treated_composition``), so an estimate that compares treated cells with all control cells
    mixes the markers of the types into the effect.

The truth, in the units of ``X``
    For a cell with noise-free mean counts ``mu`` (its type, its state and its condition), let
    ``x(mu) = log1p(10^4 mu / sum(mu))`` (log1p counts per 10,000 of the means).
    The true effect of the perturbation on that cell is ``x(mu_treated) - x(mu_control)``, both
    computed for the same type and state: a difference of ``X`` without sampling noise, the
    quantity that CINEMA-OT and the naive estimates compare ``X`` to. It is stored for every
    cell (treated or not) in ``layers['true_effect']``, and ``x(mu_control)``, the untreated
    counterfactual a matching tries to recover, in ``layers['true_control']``; the true effect of a cell type is the mean
    over its treated cells (``uns['true_type_effect']``), the effect on the treated. Averages of
    ``X`` over cells are not exactly ``x`` of the mean (log1p is concave), so even a perfect
    matching keeps a small error at low counts; a large ``library_size`` makes it smaller.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from tutorial_kit.simulate.grn import GRN, KINDS
from tutorial_kit.validate import check_int

if TYPE_CHECKING:  # pragma: no cover
    import anndata

__all__ = ["simulate_cell_type_screen", "cp10k_log1p"]


def cp10k_log1p(mu: Any) -> np.ndarray:
    """``log1p(10^4 mu / sum(mu))`` per row: the ``X`` of noise-free mean counts.

    Example:
        >>> np.round(cp10k_log1p([1.0, 3.0]), 3).tolist()
        [7.824, 8.923]
    """
    mu = np.asarray(mu, dtype=np.float64)
    return np.log1p(1e4 * mu / mu.sum(axis=-1, keepdims=True))


def _composition(value: Any, n_types: int, name: str) -> np.ndarray:
    p = np.full(n_types, 1.0 / n_types) if value is None else np.asarray(value, dtype=float)
    if p.shape != (n_types,) or np.any(p < 0) or not np.isfinite(p).all() or p.sum() <= 0:
        raise ValueError(f"{name} must be {n_types} non-negative shares, one per cell type; got {value!r}.")
    return p / p.sum()


def _number(value: Any, name: str, *, low: float = -np.inf, low_open: bool = False) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    ok = ok and np.isfinite(value) and (value > low if low_open else value >= low)
    if not ok:
        raise ValueError(f"{name} must be a finite number {'>' if low_open else '>='} {low}; got {value!r}.")
    return float(value)


def simulate_cell_type_screen(
    grn: GRN,
    *,
    perturbation: str = "TF01",
    kind: str = "knockout",
    cell_types: Sequence[str] = ("type A", "type B", "type C"),
    offset_shift: Sequence[float] = (-1.5, 0.0, 1.5),
    n_control: int = 600,
    n_treated: int = 600,
    control_composition: Sequence[float] | None = (0.5, 0.3, 0.2),
    treated_composition: Sequence[float] | None = (0.2, 0.3, 0.5),
    n_markers: int = 8,
    marker_fold: float = 4.0,
    n_state_genes: int = 8,
    state_fold: float = 2.0,
    state_strength: float = 1.0,
    dispersion: float = 0.2,
    library_size: float = 5000.0,
    library_sdlog: float = 0.2,
    knockdown: float = 0.05,
    activation: float = 4.0,
    seed: int = 0,
) -> "anndata.AnnData":
    """Control and perturbed cells of several cell types, with the true effect of every cell.

    The model and the units of the truth are defined in the docstring of
    :mod:`tutorial_kit.simulate.celltypes`. Taught in ``08_cinemaot``.

    Args:
        grn: the network (:func:`tutorial_kit.simulate.make_grn`).
        perturbation: the one perturbed gene (a regulator, so that it has descendants).
        kind: ``'knockout'`` or ``'activation'``.
        cell_types: the names of the cell types.
        offset_shift: per cell type, the shift of the offsets of the perturbation's descendants.
        n_control, n_treated: control and perturbed cells.
        control_composition, treated_composition: the share of each cell type among control and
            perturbed cells (``None``: equal shares).
        n_markers: marker genes per cell type.
        marker_fold: the fold change of a type's markers in that type.
        n_state_genes: genes that read the continuous state.
        state_fold: their fold change per unit of state (``state_fold ** s``).
        state_strength: the offset shift per unit of state (0: the effect does not depend on it).
        dispersion: NB dispersion (variance ``mean + dispersion * mean^2``).
        library_size: mean total count of a cell.
        library_sdlog: standard deviation of the log library-size factor.
        knockdown, activation: the strength of the perturbation, as in
            :meth:`tutorial_kit.simulate.GRN.expected_expression`.
        seed: seed of every random choice (markers, states, counts).

    Returns:
        AnnData in the course schema: ``layers['counts']``, ``X`` = log1p CP10k, obs
        ``perturbation`` (``'control'`` or the gene), ``condition``, ``cell_type``, ``state`` (the
        continuous state) and ``true_effect_norm`` (L2 norm of the cell's true effect);
        ``layers['true_effect']`` (every cell's true effect in units of ``X``) and
        ``layers['true_control']`` (``x`` of the cell's noise-free control means: its true counterfactual); var
        ``descendant`` (reached by the perturbation), ``marker_of`` (the type a marker belongs
        to, ``''`` otherwise) and ``state_gene``; uns ``true_type_effect`` (cell types x genes,
        the mean true effect of each type's perturbed cells) and ``simulation`` (the parameters).

    Raises:
        ValueError: an unknown or non-regulator perturbation, lengths that do not match the
            number of cell types, or a network with too few unreached genes for the markers.

    Example:
        >>> from tutorial_kit.simulate import make_grn
        >>> grn = make_grn(n_genes=60, n_regulators=6, seed=0)
        >>> a = simulate_cell_type_screen(grn, n_control=60, n_treated=60, n_markers=3, n_state_genes=3)
        >>> a.obs.groupby(["perturbation", "cell_type"], observed=True).size().to_dict()
        {('TF01', 'type A'): 12, ('TF01', 'type B'): 18, ('TF01', 'type C'): 30, ('control', 'type A'): 30, ('control', 'type B'): 18, ('control', 'type C'): 12}
        >>> a.uns["true_type_effect"].shape
        (3, 60)
    """
    import pandas as pd

    from tutorial_kit.data.schema import CONTROL
    from tutorial_kit.simulate._base import sample_counts, simulated_adata

    if not isinstance(grn, GRN):
        raise ValueError(f"grn must be a GRN from tk.simulate.make_grn(...); got {type(grn).__name__}.")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}.")
    if perturbation not in grn.regulators:
        raise ValueError(f"perturbation must be one regulator of the network ({grn.regulators[0]!r} to "
                         f"{grn.regulators[-1]!r}), so that it has descendants; got {perturbation!r}.")
    types = [str(t) for t in cell_types]
    n_types = len(types)
    if n_types < 1 or len(set(types)) != n_types:
        raise ValueError(f"cell_types must be distinct names; got {list(cell_types)!r}.")
    shift = np.asarray(offset_shift, dtype=float)
    if shift.shape != (n_types,) or not np.isfinite(shift).all():
        raise ValueError(f"offset_shift must give one finite shift per cell type ({n_types}); got {offset_shift!r}.")
    p_ctrl = _composition(control_composition, n_types, "control_composition")
    p_trt = _composition(treated_composition, n_types, "treated_composition")
    n_control = check_int(n_control, "n_control", minimum=1)
    n_treated = check_int(n_treated, "n_treated", minimum=1)
    n_markers = check_int(n_markers, "n_markers", minimum=0)
    n_state_genes = check_int(n_state_genes, "n_state_genes", minimum=0)
    marker_fold = _number(marker_fold, "marker_fold", low=0.0, low_open=True)
    state_fold = _number(state_fold, "state_fold", low=0.0, low_open=True)
    state_strength = _number(state_strength, "state_strength")
    dispersion = _number(dispersion, "dispersion", low=0.0)
    library_size = _number(library_size, "library_size", low=0.0, low_open=True)
    library_sdlog = _number(library_sdlog, "library_sdlog", low=0.0)
    seed = check_int(seed, "seed", minimum=0)

    genes = list(grn.genes)
    reached = grn.descendants(perturbation)
    desc = np.isin(genes, sorted(reached))
    free = [i for i, g in enumerate(genes) if g not in reached and g != perturbation]
    need = n_types * n_markers + n_state_genes
    if len(free) < need:
        raise ValueError(f"the network has {len(free)} genes that {perturbation} does not reach, but "
                         f"{n_types} x {n_markers} markers and {n_state_genes} state genes need {need}; "
                         "use a larger network or fewer markers.")
    rng = np.random.default_rng(seed)
    picked = rng.choice(free, size=need, replace=False)
    markers = picked[: n_types * n_markers].reshape(n_types, n_markers)
    state_genes = picked[n_types * n_markers:]

    # cells: control first, then treated; types by the compositions (largest-remainder rounding)
    def counts_per_type(n: int, p: np.ndarray) -> np.ndarray:
        raw = n * p
        k = np.floor(raw).astype(int)
        k[np.argsort(-(raw - k), kind="stable")[: n - k.sum()]] += 1
        return k

    type_idx = np.concatenate([np.repeat(np.arange(n_types), counts_per_type(n_control, p_ctrl)),
                               np.repeat(np.arange(n_types), counts_per_type(n_treated, p_trt))])
    treated = np.r_[np.zeros(n_control, bool), np.ones(n_treated, bool)]
    state = rng.normal(size=len(type_idx))

    basal = grn.basal.to_numpy(float)
    offset = grn.offset.to_numpy(float)
    strength = {"knockdown": knockdown, "activation": activation, "kind": kind}
    mu_ctrl = np.empty((len(type_idx), len(genes)))
    mu_trt = np.empty_like(mu_ctrl)
    for c, (k, s) in enumerate(zip(type_idx, state)):
        b = basal.copy()
        b[markers[k]] *= marker_fold
        b[state_genes] *= state_fold ** s
        cell_grn = dataclasses.replace(grn, basal=pd.Series(b, index=genes),
                                       offset=pd.Series(offset + desc * (shift[k] + state_strength * s), index=genes))
        mu_ctrl[c] = b  # control activities are 1 by construction
        mu_trt[c] = cell_grn.expected_expression(perturbation, **strength)
    true_effect = cp10k_log1p(mu_trt) - cp10k_log1p(mu_ctrl)

    size = library_size / basal.sum() * rng.lognormal(-library_sdlog**2 / 2, library_sdlog, len(type_idx))
    means = np.where(treated[:, None], mu_trt, mu_ctrl)
    counts = sample_counts(rng, means, np.arange(len(type_idx)), size, dispersion=dispersion)
    condition = np.where(treated, kind, CONTROL)
    labels = [f"{perturbation if t else CONTROL} | {cond} | {types[k]}"
              for t, cond, k in zip(treated, condition, type_idx)]
    adata = simulated_adata(counts, labels, groupby=("perturbation", "condition", "cell_type"), var_names=genes,
                            source="grn_cell_types")
    adata.obs["cell_type"] = pd.Categorical(adata.obs["cell_type"], categories=types)
    adata.obs["state"] = state
    adata.obs["size_factor"] = size
    adata.obs["true_effect_norm"] = np.linalg.norm(true_effect, axis=1)
    adata.layers["true_effect"] = true_effect.astype(np.float32)
    adata.layers["true_control"] = cp10k_log1p(mu_ctrl).astype(np.float32)
    marker_of = np.full(len(genes), "", dtype=object)
    for k, idx in enumerate(markers):
        marker_of[idx] = types[k]
    adata.var["descendant"] = desc
    adata.var["marker_of"] = marker_of
    adata.var["state_gene"] = np.isin(np.arange(len(genes)), state_genes)
    rows = [true_effect[treated & (type_idx == k)].mean(axis=0) if np.any(treated & (type_idx == k))
            else np.full(len(genes), np.nan) for k in range(n_types)]
    adata.uns["true_type_effect"] = pd.DataFrame(np.array(rows), index=pd.Index(types, name="cell_type"),
                                                 columns=pd.Index(genes, name="gene"))
    adata.uns["simulation"] = {
        "perturbation": perturbation, "kind": kind, "cell_types": types, "offset_shift": shift.tolist(),
        "n_control": n_control, "n_treated": n_treated, "control_composition": p_ctrl.tolist(),
        "treated_composition": p_trt.tolist(), "n_markers": n_markers, "marker_fold": marker_fold,
        "n_state_genes": n_state_genes, "state_fold": state_fold, "state_strength": state_strength,
        "dispersion": dispersion, "library_size": library_size, "library_sdlog": library_sdlog,
        "knockdown": knockdown, "activation": activation, "seed": seed, "grn_seed": grn.seed,
        "true_effect": "log1p CP10k of the noise-free means, treated minus control, same type and state",
    }
    return adata
