"""Graded doses on the GRN simulator: screens whose dose-response curves are known exactly.

Taught in ``06_cpa_biolord``. The network and the counts are those of :mod:`tutorial_kit.simulate.grn`;
only the strength of a perturbation changes with its dose.

The dose model
    A dose ``d >= 0`` of perturbation ``P`` (a gene of the network) reaches ``P`` through a Hill curve
    ``H(d) = d^n / (d^n + EC50_P^n)`` (``n``: the Hill coefficient; ``EC50_P``: the dose of half
    the maximal effect, one per perturbation, like the potency of a compound).
    A knockout at dose ``d`` leaves ``c(d) = 1 - (1 - knockdown) * H(d)`` of the target's activity
    (``knockdown`` is the residual at a saturating dose); an activation multiplies it by
    ``c(d) = 1 + (activation - 1) * H(d)``. Dose 0 is control.
    The target's descendants read ``c(d)`` through the network's logistic responses, so every
    downstream gene has its own curve: shifted, steeper or flatter than ``H``, saturating
    earlier or later, although only one number, the dose, changed.

The truth
    :func:`true_dose_response` gives, for any doses, the natural-log fold change of every gene's
    noise-free mean versus control (``normalized=True``: of its expected share of the cell's
    counts, which is what a log-fold change of counts per 10,000 estimates).
    :func:`simulate_dose_screen` stores the same at the sampled doses in ``uns['true_dose_effect']``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from tutorial_kit.validate import check_int

if TYPE_CHECKING:  # pragma: no cover
    import anndata
    import pandas as pd

    from tutorial_kit.simulate.grn import GRN

DOSES = (0.01, 0.03, 0.1, 0.3, 1.0)
"""Default doses: five steps of about half a log unit, in units of the top dose (sci-Plex used 10 nM to 10 uM)."""

HILL = 1.5
"""Default Hill coefficient ``n`` of the dose curve."""


def _positive(value: Any, name: str) -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not ok or not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number; got {value!r}.")
    return float(value)


def _doses(doses: Any, name: str = "doses") -> np.ndarray:
    values = np.atleast_1d(np.asarray(doses, dtype=float)) if not isinstance(doses, str) else np.array([np.nan])
    if values.size == 0 or values.ndim != 1 or not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError(f"{name} must be one or more finite numbers >= 0 (0 is control); got {doses!r}.")
    return values


def hill(doses: Any, *, ec50: float, n: float = HILL) -> np.ndarray:
    """The Hill curve ``H(d) = d^n / (d^n + ec50^n)``: the fraction of the maximal effect at each dose.

    Example:
        >>> hill([0.0, 0.1, 1.0], ec50=0.1, n=1.0).round(3).tolist()
        [0.0, 0.5, 0.909]
    """
    d = _doses(doses)
    ec50, n = _positive(ec50, "ec50"), _positive(n, "n")
    return d**n / (d**n + ec50**n)


def dose_activity(doses: Any, *, ec50: float, n: float = HILL, kind: str = "knockout", knockdown: float = 0.05,
                  activation: float = 4.0) -> np.ndarray:
    """The target's activity factor ``c(d)`` at each dose (1 at dose 0; see the module docstring).

    Example:
        >>> dose_activity([0.0, 0.1, 10.0], ec50=0.1, n=1.0).round(3).tolist()
        [1.0, 0.525, 0.059]
    """
    fraction = hill(doses, ec50=ec50, n=n)
    if kind == "knockout":
        if not 0 < knockdown < 1:
            raise ValueError(f"knockdown must be in (0, 1), the activity left at a saturating dose; got {knockdown!r}.")
        return 1.0 - (1.0 - knockdown) * fraction
    if kind == "activation":
        if not activation > 1:
            raise ValueError(f"activation must be above 1, the activity multiplier at a saturating dose; got {activation!r}.")
        return 1.0 + (activation - 1.0) * fraction
    raise ValueError(f"kind must be 'knockout' or 'activation'; got {kind!r}.")


def _means(grn: "GRN", perturbation: str, doses: np.ndarray, *, ec50: float, n: float, kind: str, knockdown: float,
           activation: float) -> np.ndarray:
    """Noise-free mean counts, doses x genes; dose 0 (or a factor that rounds to 1) is control."""
    from tutorial_kit.data.schema import CONTROL

    control = grn.expected_expression(CONTROL)
    rows = []
    for c in dose_activity(doses, ec50=ec50, n=n, kind=kind, knockdown=knockdown, activation=activation):
        if abs(c - 1.0) < 1e-12:
            rows.append(control)
        elif kind == "knockout":
            rows.append(grn.expected_expression(perturbation, kind=kind, knockdown=float(c)))
        else:
            rows.append(grn.expected_expression(perturbation, kind=kind, activation=float(c)))
    return np.vstack(rows)


def _single(grn: "GRN", perturbation: Any) -> str:
    from tutorial_kit.data.schema import CONTROL

    if not isinstance(perturbation, str) or "+" in perturbation or perturbation == CONTROL:
        raise ValueError(f"a dose screen perturbs one gene per label, e.g. 'TF01'; got {perturbation!r} "
                         "(combinations and 'control' have no single dose here).")
    grn.positions(perturbation)  # refuses genes that are not in the network, naming the known ones
    return perturbation


def true_dose_response(grn: "GRN", perturbation: str, doses: Any, *, ec50: float, n: float = HILL,
                       kind: str = "knockout", knockdown: float = 0.05, activation: float = 4.0,
                       normalized: bool = False) -> "pd.DataFrame":
    """The true dose-response curve of every gene: log fold change of its noise-free mean vs control.

    Args:
        grn: the network (:func:`tutorial_kit.simulate.make_grn`).
        perturbation: the perturbed gene, e.g. ``'TF01'``.
        doses: the doses to evaluate (0 is control: a row of zeros).
        ec50, n, kind, knockdown, activation: the dose model (module docstring).
        normalized: ``False``: ``log(mu_g(d) / mu_g(0))``; ``True``: the same of the expected
            share of the cell's counts, ``mu_g / sum(mu)``, which is what a log fold change of
            counts per 10,000 estimates (a knockdown that lowers the total raises every share a little).

    Returns:
        DataFrame, doses x genes (natural log).

    Example:
        >>> from tutorial_kit.simulate import make_grn
        >>> curve = true_dose_response(make_grn(n_genes=40, n_regulators=6), "TF01", [0, 0.1, 1], ec50=0.1)
        >>> curve["TF01"].round(3).tolist()  # the target itself: log c(d)
        [0.0, -0.644, -2.537]
    """
    import pandas as pd

    perturbation = _single(grn, perturbation)
    d = _doses(doses)
    means = _means(grn, perturbation, np.concatenate([[0.0], d]), ec50=_positive(ec50, "ec50"), n=n, kind=kind,
                   knockdown=knockdown, activation=activation)
    if normalized:
        means = means / means.sum(axis=1, keepdims=True)
    effect = np.log(means[1:]) - np.log(means[:1])
    return pd.DataFrame(effect, index=pd.Index(d, name="dose"), columns=pd.Index(grn.genes, name="gene"))


def _ec50s(ec50: "float | Mapping[str, float]", names: list[str]) -> dict[str, float]:
    if isinstance(ec50, Mapping):
        missing = [p for p in names if p not in ec50]
        if missing:
            raise ValueError(f"ec50 gives no value for {missing}; give one per perturbation or a single number.")
        return {p: _positive(ec50[p], f"ec50[{p!r}]") for p in names}
    value = _positive(ec50, "ec50")
    return {p: value for p in names}


def simulate_dose_screen(
    grn: "GRN",
    *,
    perturbations: Sequence[str],
    doses: Sequence[float] = DOSES,
    ec50: "float | Mapping[str, float]" = 0.1,
    n: float = HILL,
    kind: str = "knockout",
    n_cells: int = 100,
    n_control: int = 300,
    dispersion: float = 0.2,
    library_size: float | None = None,
    library_sdlog: float = 0.3,
    knockdown: float = 0.05,
    activation: float = 4.0,
    seed: int = 0,
    progress: bool = False,
) -> "anndata.AnnData":
    """A screen of each perturbation at several doses, with the true dose-response curves.

    Taught in ``06_cpa_biolord``. Counts are sampled as in :func:`tutorial_kit.simulate.simulate_perturbseq`
    (negative binomial around a library-size factor times the noise-free mean).

    Args:
        grn: the network (:func:`tutorial_kit.simulate.make_grn`).
        perturbations: single genes, e.g. ``['TF01', 'TF06']``.
        doses: doses > 0 given to every perturbation (units of your choice; the default is
            ``DOSES``, in units of the top dose).
        ec50: dose of half the maximal effect: one number, or one per perturbation (a mapping).
        n: Hill coefficient.
        kind: ``'knockout'`` or ``'activation'``.
        n_cells: cells per perturbation and dose.
        n_control: control cells (dose 0).
        dispersion, library_size, library_sdlog: the counts, as in ``simulate_perturbseq``.
        knockdown: activity left at a saturating dose of a knockout, in (0, 1).
        activation: activity multiplier at a saturating dose of an activation, above 1.
        seed: seed of the sampling.
        progress: show a progress bar while sampling.

    Returns:
        AnnData in the course schema: ``layers['counts']``, ``X`` = log1p CP10k, obs
        ``perturbation`` (``'control'`` or the gene), ``dose`` (float, 0 for control),
        ``condition`` (``'TF01 0.1'``, or ``'control'``), ``cell_type`` (``'simulated'``),
        ``dataset`` (``'simulated:grn_dose'``), ``size_factor``; uns ``true_dose_effect``
        (DataFrame indexed by perturbation and dose, genes as columns: natural-log fold change of
        the noise-free mean vs control), ``ec50`` (perturbation -> EC50) and ``simulation``.

    Example:
        >>> from tutorial_kit.simulate import make_grn
        >>> a = simulate_dose_screen(make_grn(n_genes=40, n_regulators=6), perturbations=["TF01"],
        ...                          doses=[0.1, 1.0], n_cells=5, n_control=5)
        >>> a.obs["condition"].value_counts().sort_index().to_dict()
        {'TF01 0.1': 5, 'TF01 1': 5, 'control': 5}
    """
    import pandas as pd

    from tutorial_kit.data.schema import CONTROL
    from tutorial_kit.simulate._base import sample_counts, simulated_adata
    from tutorial_kit.simulate.grn import GRN

    if not isinstance(grn, GRN):
        raise ValueError(f"grn must be a GRN from tk.simulate.make_grn(...); got {type(grn).__name__}.")
    if isinstance(perturbations, str) or not list(perturbations):
        raise ValueError(f"perturbations must be a non-empty list of genes, e.g. ['TF01', 'TF06']; got {perturbations!r}.")
    names = [_single(grn, p) for p in perturbations]
    if len(set(names)) != len(names):
        raise ValueError(f"perturbations {sorted({p for p in names if names.count(p) > 1})} are listed more than once.")
    d = _doses(doses)
    if np.any(d <= 0) or len(set(d.tolist())) != len(d):
        raise ValueError(f"doses must be distinct and above 0 (control cells are added by n_control); got {list(doses)}.")
    d = np.sort(d)
    ec50s = _ec50s(ec50, names)
    n = _positive(n, "n")
    n_cells = check_int(n_cells, "n_cells", minimum=1)
    n_control = check_int(n_control, "n_control", minimum=1)
    dispersion = float(dispersion)
    if not np.isfinite(dispersion) or dispersion < 0:
        raise ValueError(f"dispersion must be >= 0 (0 gives Poisson counts); got {dispersion!r}.")
    seed = check_int(seed, "seed", minimum=0)

    model = {"n": n, "kind": kind, "knockdown": knockdown, "activation": activation}
    blocks = [grn.expected_expression(CONTROL)[None, :]]
    labels, index = [f"{CONTROL} | {CONTROL}"], []
    for p in names:
        blocks.append(_means(grn, p, d, ec50=ec50s[p], **model))
        labels += [f"{p} | {p} {dose:g}" for dose in d]
        index += [(p, float(dose)) for dose in d]
    means = np.vstack(blocks)
    sizes = np.array([n_control] + [n_cells] * (len(labels) - 1))
    rows = np.repeat(np.arange(len(sizes)), sizes)
    rng = np.random.default_rng(seed)
    scale = 1.0 if library_size is None else _positive(library_size, "library_size") / float(grn.basal.sum())
    size = scale * rng.lognormal(-float(library_sdlog) ** 2 / 2, float(library_sdlog), len(rows))
    counts = sample_counts(rng, means, rows, size, dispersion=dispersion, progress=progress)

    adata = simulated_adata(counts, np.asarray(labels, dtype=object)[rows], groupby=("perturbation", "condition"),
                            var_names=grn.genes, source="grn_dose")
    adata.obs["dose"] = np.concatenate([[0.0], [dose for _, dose in index]])[rows]
    adata.obs["size_factor"] = size
    effect = np.log(means[1:]) - np.log(means[:1])
    adata.uns["true_dose_effect"] = pd.DataFrame(
        effect, index=pd.MultiIndex.from_tuples(index, names=["perturbation", "dose"]),
        columns=pd.Index(grn.genes, name="gene"),
    )
    adata.uns["ec50"] = ec50s
    adata.uns["simulation"] = {
        "kind": kind, "doses": d.tolist(), "hill_n": n, "n_cells": n_cells, "n_control": n_control,
        "dispersion": dispersion, "library_size": float(scale * grn.basal.sum()), "library_sdlog": float(library_sdlog),
        "knockdown": knockdown, "activation": activation, "seed": seed, "grn_seed": grn.seed,
        "true_dose_effect": "natural-log fold change of the noise-free mean count vs control",
    }
    return adata
