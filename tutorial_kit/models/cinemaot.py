"""CINEMA-OT behind the course's conventions: per-cell treatment effects, their naive rivals and summaries.

Taught in ``08_cinemaot``; the method is explained on the lecture page ``book/disentangling.md``
(section *CINEMA-OT*); effects are scored as on the book page *How the course evaluates models* (book/evaluation.md).

CINEMA-OT (Dong et al. 2023, pertpy's ``pt.tl.Cinemaot``) estimates what each treated cell would
have looked like untreated:

1. independent components (FastICA) of the first ``dim`` principal components of all cells;
2. Chatterjee's rank correlation ``xi`` of each component with the treatment indicator: components
   with ``xi < thres`` are *confounders* (they vary independently of the treatment: cell type,
   cell state), the others carry the treatment;
3. entropic optimal transport (Sinkhorn) between control and treated cells in the confounder
   components: each treated cell gets a weighted set of control cells that share its confounders;
4. the treatment effect of a treated cell is its ``X`` minus the transport-weighted mean ``X`` of
   its matched control cells.

The functions here add what a careful analysis needs around pertpy's call: one perturbation at a
time (pertpy counts every non-control label as treated), the PCA computed when missing, an error
that explains itself when no component falls under the threshold (:func:`component_dependence`
shows the ``xi`` of every component), the two naive estimates (:func:`naive_effects`), per-group
summaries (:func:`group_effects`, :func:`effect_summary`), errors against a known truth
(:func:`effect_errors`), synergy (:func:`cinemaot_synergy`) beside the additive residual
(:func:`additive_residual`).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from tutorial_kit.arrays import to_dense as dense
from tutorial_kit.validate import check_int, check_obs_columns, sample_values

if TYPE_CHECKING:  # pragma: no cover
    import anndata
    import pandas as pd

__all__ = [
    "additive_residual",
    "cinemaot_effects",
    "cinemaot_synergy",
    "component_dependence",
    "effect_errors",
    "effect_summary",
    "group_effects",
    "ica_components",
    "naive_effects",
]

DIM = 20
"""Independent components CINEMA-OT computes by default (pertpy's ``dim``)."""

THRES = 0.15
"""pertpy's default threshold on Chatterjee's xi below which a component is a confounder."""


# --------------------------------------------------------------------------- checks


def _labels(adata: "anndata.AnnData", key: str, where: str) -> np.ndarray:
    check_obs_columns(adata, [key], where=where)
    return adata.obs[key].astype(str).to_numpy()


def _check_one(adata: "anndata.AnnData", *, perturbation: Any, control: str, key: str,
               where: str) -> "anndata.AnnData":
    """Control cells plus the cells of ONE perturbation, as a copy (pertpy treats every other label as treated)."""
    labels = _labels(adata, key, where)
    if not np.any(labels == control):
        raise ValueError(f"{where}: no control cells: obs[{key!r}] has no {control!r}; "
                         f"labels are {sorted(set(labels))[:10]}. Pass control= the label of the control cells.")
    if not isinstance(perturbation, str):
        raise ValueError(
            f"{where}: perturbation must be ONE label (a string); got {perturbation!r}. CINEMA-OT counts every "
            "non-control cell as treated, so several perturbations would be pooled into one effect: "
            "call it once per perturbation."
        )
    if perturbation == control:
        raise ValueError(f"{where}: perturbation {perturbation!r} is the control label; name a perturbation.")
    if not np.any(labels == perturbation):
        known = sorted(set(labels) - {control})
        raise ValueError(f"{where}: unknown perturbation {perturbation!r}; obs[{key!r}] has "
                         f"{known[:10]}{' ...' if len(known) > 10 else ''}.")
    return adata[np.isin(labels, [control, perturbation])].copy()


def _check_log_normalized(adata: "anndata.AnnData", where: str) -> None:
    values = sample_values(adata.X)
    if values.size and np.allclose(values, np.round(values)) and values.max() > 20:
        raise ValueError(
            f"{where}: X holds integer counts (max {values.max():g}); CINEMA-OT's effects are differences of X, "
            "so X should be log-normalized (e.g. log1p counts per 10,000, as the course's loaders give): "
            "keep counts in layers['counts'] and set X = log1p CP10k."
        )


def _ensure_pca(adata: "anndata.AnnData", dim: int, seed: int) -> None:
    if "X_pca" in adata.obsm and adata.obsm["X_pca"].shape[1] >= dim:
        return
    import scanpy as sc

    n_comps = min(max(dim, 30), min(adata.shape) - 1)
    if n_comps < dim:
        raise ValueError(f"dim={dim} independent components need at least {dim + 1} cells and genes; "
                         f"the data have {adata.shape}. Use a smaller dim.")
    sc.pp.pca(adata, n_comps=n_comps, random_state=seed)


def _check_dim_thres(dim: Any, thres: Any) -> tuple[int, float]:
    dim = check_int(dim, "dim", minimum=1)
    if not isinstance(thres, (int, float, np.floating)) or isinstance(thres, bool) or not 0 < thres <= 1:
        raise ValueError(f"thres must be a number in (0, 1]; got {thres!r}.")
    return dim, float(thres)


# --------------------------------------------------------------------------- components


def ica_components(adata: "anndata.AnnData", *, dim: int = DIM, use_rep: str = "X_pca") -> np.ndarray:
    """The independent components CINEMA-OT computes: FastICA of the first ``dim`` columns of ``obsm[use_rep]``.

    The same settings as pertpy's ``Cinemaot.causaleffect`` (``random_state=0``,
    ``whiten='arbitrary-variance'``), so the components are the ones it splits.
    Taught in ``08_cinemaot``.

    Args:
        adata: cells, with ``obsm[use_rep]`` (e.g. ``'X_pca'`` from ``scanpy.pp.pca``).
        dim: number of components.
        use_rep: the representation to decompose.

    Returns:
        cells x ``dim`` array of component scores.

    Raises:
        ValueError: ``obsm[use_rep]`` is missing or has fewer than ``dim`` columns.

    Example:
        >>> import anndata as ad
        >>> rng = np.random.default_rng(0)
        >>> a = ad.AnnData(rng.normal(size=(50, 4)), obsm={"X_pca": rng.laplace(size=(50, 3))})
        >>> ica_components(a, dim=3).shape
        (50, 3)
    """
    from sklearn.decomposition import FastICA

    dim = check_int(dim, "dim", minimum=1)
    if use_rep not in adata.obsm:
        raise ValueError(f"ica_components: obsm[{use_rep!r}] is missing; run scanpy.pp.pca(adata) first "
                         "(cinemaot_effects does it for you).")
    rep = np.asarray(adata.obsm[use_rep])
    if rep.shape[1] < dim:
        raise ValueError(f"ica_components: obsm[{use_rep!r}] has {rep.shape[1]} columns, fewer than dim={dim}.")
    with warnings.catch_warnings():
        # FastICA may stop at its iteration limit on nearly Gaussian components; pertpy ignores it too
        warnings.filterwarnings("ignore", message=".*did not converge.*")
        ica = FastICA(n_components=dim, random_state=0, whiten="arbitrary-variance")
        return np.asarray(ica.fit_transform(rep[:, :dim]), dtype=np.float64)


def component_dependence(adata: "anndata.AnnData", *, perturbation: str, control: str = "control",
                         perturbation_key: str = "perturbation", dim: int = DIM, thres: float = THRES,
                         seed: int = 0, return_components: bool = False) -> Any:
    """Chatterjee's xi of every independent component with the treatment, and the split it implies.

    The control cells and the cells of ``perturbation`` are taken (as :func:`cinemaot_effects`
    does), their PCA computed if ``obsm['X_pca']`` is missing, and each of the ``dim``
    components of :func:`ica_components` is compared with the indicator "is a control cell"
    by ``scipy.stats.chatterjeexi`` (``xi`` near 0: the indicator is not a function of the
    component). Components with ``xi < thres`` are the confounders. Taught in ``08_cinemaot``.

    Args:
        adata: cells, ``X`` log-normalized; obs ``perturbation_key``.
        perturbation: the one perturbation.
        control: the label of control cells.
        perturbation_key: the obs column of labels.
        dim: number of components.
        thres: the threshold on xi.
        seed: seed of the PCA when it is computed here.
        return_components: also return the cells x ``dim`` component scores and the cells' labels.

    Returns:
        DataFrame, one row per component (``component`` 0..dim-1): ``xi``, ``pvalue`` (asymptotic
        test of independence) and ``role`` (``'confounder'`` or ``'treatment'``), sorted by
        component; with ``return_components``, ``(table, scores, labels)``.

    Example:
        >>> import anndata as ad
        >>> rng = np.random.default_rng(0)
        >>> x = rng.normal(size=(200, 12)); x[100:, :3] += 3.0
        >>> a = ad.AnnData(x, obs={"perturbation": ["control"] * 100 + ["drug"] * 100})
        >>> table = component_dependence(a, perturbation="drug", dim=5)
        >>> list(table.columns), int((table["role"] == "treatment").sum()) >= 1
        (['component', 'xi', 'pvalue', 'role'], True)
    """
    import pandas as pd
    from scipy.stats import chatterjeexi

    dim, thres = _check_dim_thres(dim, thres)
    sub = _check_one(adata, perturbation=perturbation, control=control, key=perturbation_key,
                     where="component_dependence")
    _ensure_pca(sub, dim, seed)
    scores = ica_components(sub, dim=dim)
    is_control = (sub.obs[perturbation_key].astype(str) == control).to_numpy().astype(float)
    rows = []
    for j in range(dim):
        res = chatterjeexi(scores[:, j], is_control)
        rows.append({"component": j, "xi": float(res.statistic), "pvalue": float(res.pvalue)})
    table = pd.DataFrame(rows)
    table["role"] = np.where(table["xi"] < thres, "confounder", "treatment")
    if return_components:
        return table, scores, sub.obs[perturbation_key].astype(str).to_numpy()
    return table


def _no_confounder_message(table: "pd.DataFrame", thres: float) -> str:
    xi = np.sort(table["xi"].to_numpy())
    keep = ", ".join(f"thres > {v:.3f} keeps {k + 1}" for k, v in enumerate(xi[:3]))
    listed = ", ".join(f"{c}: {v:.3f}" for c, v in zip(table["component"], table["xi"]))
    return (
        f"No confounder components identified: every one of the {len(table)} independent components has "
        f"Chatterjee's xi >= thres={thres:g} with the treatment, so none is treated as independent of it "
        f"(xi per component: {listed}). {keep}. A strong, global effect (or a treated population that differs "
        "in composition from the controls) makes every component depend on the treatment; raise thres, "
        "use more components (dim), or check what differs between treated and control cells."
    )


# --------------------------------------------------------------------------- effects


def cinemaot_effects(adata: "anndata.AnnData", *, perturbation: str, control: str = "control",
                     perturbation_key: str = "perturbation", dim: int = DIM, thres: float = THRES,
                     smoothness: float = 1e-4, eps: float = 1e-3, preweight_label: str | None = None,
                     return_matching: bool = False, seed: int = 0) -> "anndata.AnnData":
    """Per-cell treatment effects of ONE perturbation with CINEMA-OT (pertpy's ``Cinemaot.causaleffect``).

    Takes the control cells and the cells of ``perturbation`` (a copy: ``adata`` is not changed),
    computes their PCA when ``obsm['X_pca']`` is missing, and calls pertpy with every argument by
    keyword (Sinkhorn solver). Taught in ``08_cinemaot``.

    Args:
        adata: cells, ``X`` log-normalized (the effects are differences of ``X``); obs ``perturbation_key``.
        perturbation: the one perturbation (a label of ``obs[perturbation_key]``).
        control: the label of control cells.
        perturbation_key: the obs column of labels.
        dim: independent components.
        thres: Chatterjee's xi below which a component is a confounder.
        smoothness: entropic regularisation per confounder component (pertpy's ``epsilon`` is
            ``smoothness * n_confounders``); smaller is closer to a one-to-one matching.
        eps: the Sinkhorn tolerance.
        preweight_label: an obs column (e.g. ``'cell_type'``) whose composition is balanced
            between control and treated cells before matching; ``None``: no reweighting.
        return_matching: keep the transport plan in ``obsm['ot']`` (treated x control cells).
        seed: seed of the PCA and of pertpy's tie-breaking.

    Returns:
        AnnData of the treated cells: ``X`` the per-cell effect (same genes as ``adata``), obs
        copied, ``obsm['X_embedding']`` the effect in component space, ``obsm['counterfactual']``
        the matched control mean (``X`` minus the effect), and ``uns['cinemaot']`` with ``dim``,
        ``thres``, ``n_confounders`` and the xi table (as records).

    Raises:
        ValueError: a missing obs column, no control cells, an unknown or several perturbations,
            integer counts in ``X``, or no confounder component (the message lists each
            component's xi and the thresholds that would keep one, two or three).

    Example:
        >>> from tutorial_kit.simulate import make_grn, simulate_cell_type_screen
        >>> sim = simulate_cell_type_screen(make_grn(n_genes=60, n_regulators=6), n_control=80, n_treated=80,
        ...                                 n_markers=3, n_state_genes=3)
        >>> te = cinemaot_effects(sim, perturbation="TF01", dim=8, thres=0.3)
        >>> te.shape, te.uns["cinemaot"]["n_confounders"] > 0
        ((80, 60), True)
    """
    import pandas as pd

    dim, thres = _check_dim_thres(dim, thres)
    sub = _check_one(adata, perturbation=perturbation, control=control, key=perturbation_key,
                     where="cinemaot_effects")
    _check_log_normalized(sub, "cinemaot_effects")
    if preweight_label is not None:
        check_obs_columns(sub, [preweight_label], where="cinemaot_effects")
    _ensure_pca(sub, dim, seed)
    table = component_dependence(sub, perturbation=perturbation, control=control, perturbation_key=perturbation_key,
                                 dim=dim, thres=thres, seed=seed)
    if not (table["role"] == "confounder").any():
        raise ValueError(_no_confounder_message(table, thres))
    sub.obs[perturbation_key] = sub.obs[perturbation_key].astype(str)
    te = _run_causaleffect(sub, perturbation_key=perturbation_key, control=control, dim=dim, thres=thres,
                           smoothness=smoothness, eps=eps, preweight_label=preweight_label,
                           return_matching=return_matching, seed=seed)
    treated = (sub.obs[perturbation_key] != control).to_numpy()
    te.obsm["counterfactual"] = dense(sub.X)[treated] - np.asarray(te.X)
    te.obs_names = sub.obs_names[treated]
    te.uns["cinemaot"] = {"perturbation": perturbation, "control": control, "dim": dim, "thres": thres,
                          "smoothness": smoothness, "n_confounders": int(np.asarray(sub.obsm["cf"]).shape[1]),
                          "xi": pd.DataFrame(table).to_dict("records")}
    return te


def _pertpy() -> Any:
    """pertpy, imported without two notices that are not about the analysis.

    jaxopt (a dependency of ott-jax) announces that it is no longer maintained, and tqdm, imported
    by pertpy in a notebook without ipywidgets, that it falls back to a text progress bar.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*JAXopt is no longer maintained.*", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*IProgress not found.*")
        import pertpy as pt
    return pt


def _run_causaleffect(sub: "anndata.AnnData", **kw: Any) -> "anndata.AnnData":
    """pertpy's causaleffect with every argument by keyword; its 'No confounder' error explained."""
    pt = _pertpy()

    try:
        with warnings.catch_warnings():
            # pertpy builds its result AnnData from a float array: anndata's implicit-conversion notice is noise here
            warnings.filterwarnings("ignore", message=".*Transforming to str index.*")
            # pertpy's FastICA may stop at its iteration limit on nearly Gaussian (noise) components
            warnings.filterwarnings("ignore", message=".*FastICA did not converge.*")
            return pt.tl.Cinemaot().causaleffect(
                sub, pert_key=kw["perturbation_key"], control=kw["control"], return_matching=kw["return_matching"],
                use_rep="X_pca", dim=kw["dim"], thres=kw["thres"], smoothness=kw["smoothness"], eps=kw["eps"],
                solver="Sinkhorn", preweight_label=kw["preweight_label"], random_state=kw["seed"],
            )
    except ValueError as err:  # pragma: no cover - component_dependence catches it first with the same components
        if "No confounder" in str(err):
            table = component_dependence(sub, perturbation=str(sub.obs[kw["perturbation_key"]].iloc[-1]),
                                         control=kw["control"], perturbation_key=kw["perturbation_key"],
                                         dim=kw["dim"], thres=kw["thres"])
            raise ValueError(_no_confounder_message(table, kw["thres"])) from err
        raise


def naive_effects(adata: "anndata.AnnData", *, perturbation: str, control: str = "control",
                  perturbation_key: str = "perturbation", groupby: str | None = None) -> "anndata.AnnData":
    """The naive per-cell effect: a treated cell's ``X`` minus the mean ``X`` of control cells.

    ``groupby=None`` subtracts the mean of all control cells; ``groupby='cell_type'`` the mean of
    the control cells of the same group (a group without control cells is an error). These are
    the baselines of CINEMA-OT in ``08_cinemaot``.

    Args:
        adata: cells, ``X`` log-normalized; obs ``perturbation_key`` (and ``groupby``).
        perturbation: the one perturbation.
        control: the label of control cells.
        perturbation_key: the obs column of labels.
        groupby: an obs column to match control cells on, or ``None``.

    Returns:
        AnnData of the treated cells, ``X`` the effect, obs copied.

    Raises:
        ValueError: a missing column, no control cells, an unknown perturbation, or a group with
            treated cells and no control cells.

    Example:
        >>> import anndata as ad
        >>> a = ad.AnnData(np.array([[0.0], [2.0], [5.0], [9.0]]),
        ...                obs={"perturbation": ["control", "control", "drug", "drug"], "cell_type": list("abab")})
        >>> naive_effects(a, perturbation="drug").X.ravel().tolist()
        [4.0, 8.0]
        >>> naive_effects(a, perturbation="drug", groupby="cell_type").X.ravel().tolist()
        [5.0, 7.0]
    """
    import anndata as ad

    sub = _check_one(adata, perturbation=perturbation, control=control, key=perturbation_key, where="naive_effects")
    x = dense(sub.X).astype(np.float64)
    is_ctrl = (sub.obs[perturbation_key].astype(str) == control).to_numpy()
    base = np.empty((int((~is_ctrl).sum()), sub.n_vars))
    if groupby is None:
        base[:] = x[is_ctrl].mean(axis=0)
    else:
        groups = _labels(sub, groupby, "naive_effects")
        for g in np.unique(groups[~is_ctrl]):
            ctrl_g = is_ctrl & (groups == g)
            if not ctrl_g.any():
                raise ValueError(f"naive_effects: group {g!r} of {groupby!r} has treated cells but no control cells; "
                                 "use groupby=None or drop the group.")
            base[groups[~is_ctrl] == g] = x[ctrl_g].mean(axis=0)
    return ad.AnnData(x[~is_ctrl] - base, obs=sub.obs[~is_ctrl].copy(), var=sub.var.copy())


# --------------------------------------------------------------------------- summaries


def group_effects(effects: "anndata.AnnData", *, groupby: str = "cell_type") -> "pd.DataFrame":
    """The mean per-cell effect of each group: groups x genes.

    Example:
        >>> import anndata as ad
        >>> te = ad.AnnData(np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0]]), obs={"cell_type": ["a", "a", "b"]})
        >>> group_effects(te).to_numpy().tolist()
        [[2.0, 0.0], [0.0, 2.0]]
    """
    import pandas as pd

    groups = _labels(effects, groupby, "group_effects")
    x = dense(effects.X).astype(np.float64)
    names = sorted(set(groups), key=list(dict.fromkeys(_ordered(effects, groupby))).index)
    return pd.DataFrame([x[groups == g].mean(axis=0) for g in names], index=pd.Index(names, name=groupby),
                        columns=pd.Index(list(map(str, effects.var_names)), name="gene"))


def _ordered(adata: "anndata.AnnData", column: str) -> list[str]:
    col = adata.obs[column]
    if hasattr(col, "cat"):
        present = set(col.astype(str))
        return [str(c) for c in col.cat.categories if str(c) in present]
    return sorted(set(col.astype(str)))


def effect_summary(effects: "anndata.AnnData", *, groupby: str = "cell_type", n_top: int = 5) -> "pd.DataFrame":
    """Which groups respond most, and with which genes: the heterogeneity table of per-cell effects.

    Per group: ``cells``; ``effect_norm``, the L2 norm of the group's mean effect over genes;
    ``cell_norm``, the mean over its cells of the L2 norm of each cell's effect (it includes each
    cell's noise, so it is larger); ``spread``, the mean distance of a cell's effect from its
    group's mean; and ``top_genes``, the ``n_top`` genes with the largest absolute mean effect
    (with their signed mean effect). Sorted by ``effect_norm``, largest first. Taught in ``08_cinemaot``.

    Example:
        >>> import anndata as ad
        >>> te = ad.AnnData(np.array([[1.0, 0.0], [3.0, 0.0], [0.0, 0.5]]), obs={"cell_type": ["a", "a", "b"]})
        >>> te.var_names = ["IFI6", "CD3E"]
        >>> effect_summary(te, n_top=1)[["cells", "effect_norm", "top_genes"]].to_numpy().tolist()
        [[2, 2.0, 'IFI6 (+2.00)'], [1, 0.5, 'CD3E (+0.50)']]
    """
    import pandas as pd

    n_top = check_int(n_top, "n_top", minimum=1)
    means = group_effects(effects, groupby=groupby)
    groups = _labels(effects, groupby, "effect_summary")
    x = dense(effects.X).astype(np.float64)
    rows = []
    for g, mean in means.iterrows():
        cells = x[groups == g]
        top = mean.abs().nlargest(n_top).index
        rows.append({groupby: g, "cells": int(len(cells)), "effect_norm": float(np.linalg.norm(mean)),
                     "cell_norm": float(np.linalg.norm(cells, axis=1).mean()),
                     "spread": float(np.linalg.norm(cells - mean.to_numpy(), axis=1).mean()),
                     "top_genes": ", ".join(f"{gene} ({mean[gene]:+.2f})" for gene in top)})
    return pd.DataFrame(rows).sort_values("effect_norm", ascending=False, kind="stable").set_index(groupby)


def effect_errors(estimates: Mapping[str, "anndata.AnnData"], truth: "anndata.AnnData", *,
                  groupby: str = "cell_type", genes: Sequence[str] | None = None) -> "pd.DataFrame":
    """Root-mean-square errors of per-cell and per-group effect estimates against a known truth.

    The truth is a simulated screen (:func:`tutorial_kit.simulate.simulate_cell_type_screen`):
    ``layers['true_effect']`` per cell and ``uns['true_type_effect']`` per group. Each estimate is
    the output of :func:`cinemaot_effects` or :func:`naive_effects` on it (treated cells, matched
    to the truth by cell name). Taught in ``08_cinemaot``.

    Args:
        estimates: method name -> per-cell effects.
        truth: the simulated screen.
        groupby: the obs column of the groups.
        genes: the genes to score (default: all).

    Returns:
        Long table: ``method``, ``level``, ``group`` (the group, or ``'all'`` for the mean over
        groups / cells) and ``rmse`` over genes. Levels: ``'cell type'``, the group's mean effect
        against ``uns['true_type_effect']``; ``'cell'``, each treated cell's effect against
        ``layers['true_effect']`` (mean over cells of each cell's RMSE: it includes the cell's own
        sampling noise, which no method removes); ``'counterfactual'``, what the method compares
        the cell with (``X`` minus the effect: matched controls, or a control mean) against
        ``layers['true_control']``, the noise-free control of that cell: the matching alone.

    Raises:
        ValueError: the truth lacks its layers, or an estimate has cells that the truth lacks.

    Example:
        >>> from tutorial_kit.simulate import make_grn, simulate_cell_type_screen
        >>> sim = simulate_cell_type_screen(make_grn(n_genes=60, n_regulators=6), n_control=60, n_treated=60,
        ...                                 n_markers=3, n_state_genes=3)
        >>> err = effect_errors({"same type": naive_effects(sim, perturbation="TF01", groupby="cell_type")}, sim)
        >>> err[err["group"] == "all"]["level"].tolist()
        ['cell type', 'cell', 'counterfactual']
    """
    import pandas as pd

    if not {"true_effect", "true_control"} <= set(truth.layers) or "true_type_effect" not in truth.uns:
        raise ValueError("effect_errors: truth must be a screen of tk.simulate.simulate_cell_type_screen "
                         "(layers['true_effect'], layers['true_control'] and uns['true_type_effect']).")
    names = list(map(str, truth.var_names))
    cols = np.arange(len(names)) if genes is None else np.array([names.index(g) for g in genes])
    position = {n: i for i, n in enumerate(map(str, truth.obs_names))}
    true_type = truth.uns["true_type_effect"]
    rows = []
    for method, est in estimates.items():
        missing = [n for n in map(str, est.obs_names) if n not in position]
        if missing:
            raise ValueError(f"effect_errors: {method!r} has cells the truth lacks (e.g. {missing[:3]}); "
                             "estimate on the simulated screen itself.")
        if list(map(str, est.var_names)) != names:
            raise ValueError(f"effect_errors: {method!r} has other genes than the truth.")
        idx = np.array([position[n] for n in map(str, est.obs_names)])
        cell_true = np.asarray(truth.layers["true_effect"])[idx][:, cols]
        cell_est = dense(est.X)[:, cols]
        per_cell = np.sqrt(((cell_est - cell_true) ** 2).mean(axis=1))
        # the counterfactual each method compares a treated cell with (X minus the effect), against the truth
        counterfactual = dense(truth.X)[idx][:, cols] - cell_est
        per_cf = np.sqrt(((counterfactual - np.asarray(truth.layers["true_control"])[idx][:, cols]) ** 2).mean(axis=1))
        groups = est.obs[groupby].astype(str).to_numpy()
        means = group_effects(est, groupby=groupby)
        type_rmse = []
        for g in means.index:
            r = float(np.sqrt(((means.loc[g].to_numpy()[cols] - true_type.loc[g].to_numpy()[cols]) ** 2).mean()))
            type_rmse.append(r)
            rows.append({"method": method, "level": "cell type", "group": g, "rmse": r})
            rows.append({"method": method, "level": "cell", "group": g, "rmse": float(per_cell[groups == g].mean())})
            rows.append({"method": method, "level": "counterfactual", "group": g,
                         "rmse": float(per_cf[groups == g].mean())})
        rows.append({"method": method, "level": "cell type", "group": "all", "rmse": float(np.mean(type_rmse))})
        rows.append({"method": method, "level": "cell", "group": "all", "rmse": float(per_cell.mean())})
        rows.append({"method": method, "level": "counterfactual", "group": "all", "rmse": float(per_cf.mean())})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- combinations


def _check_combination(adata: "anndata.AnnData", a: str, b: str, control: str, key: str, where: str) -> str:
    labels = set(_labels(adata, key, where))
    from tutorial_kit.data.schema import normalize_perturbation

    ab = normalize_perturbation(f"{a}+{b}")
    missing = [p for p in (control, a, b, ab) if p not in labels]
    if missing:
        raise ValueError(f"{where}: obs[{key!r}] lacks {missing}; a double needs its control cells, both singles "
                         f"and the double ({control!r}, {a!r}, {b!r}, {ab!r}).")
    return ab


def additive_residual(adata: "anndata.AnnData", *, a: str, b: str, control: str = "control",
                      perturbation_key: str = "perturbation") -> "pd.Series":
    """The non-additive residual of a double (session 09): ``delta_AB - (delta_A + delta_B)``, per gene.

    Each ``delta`` is a pseudobulk difference of mean ``X`` from the mean of control cells.
    Taught in ``09_linear_baselines`` and, beside CINEMA-OT's synergy, in ``08_cinemaot``.

    Example:
        >>> import anndata as ad
        >>> a = ad.AnnData(np.array([[0.0], [1.0], [2.0], [5.0]]),
        ...                obs={"perturbation": ["control", "A", "B", "A+B"]})
        >>> additive_residual(a, a="A", b="B").tolist()
        [2.0]
    """
    import pandas as pd

    ab = _check_combination(adata, a, b, control, perturbation_key, "additive_residual")
    labels = _labels(adata, perturbation_key, "additive_residual")
    x = dense(adata.X).astype(np.float64)
    mean = {p: x[labels == p].mean(axis=0) for p in (control, a, b, ab)}
    residual = (mean[ab] - mean[control]) - (mean[a] - mean[control]) - (mean[b] - mean[control])
    return pd.Series(residual, index=pd.Index(list(map(str, adata.var_names)), name="gene"), name=f"{ab} residual")


def cinemaot_synergy(adata: "anndata.AnnData", *, a: str, b: str, control: str = "control",
                     perturbation_key: str = "perturbation", dim: int = DIM, thres: float = THRES,
                     smoothness: float = 1e-4, eps: float = 1e-3, seed: int = 0) -> "anndata.AnnData":
    """CINEMA-OT's per-cell synergy of a double ``A+B`` (pertpy's ``Cinemaot.synergy``).

    pertpy matches control to A, B to A+B and control to B, and returns for each control cell
    ``(AB - B) - (A - control)`` of matched cells, with the sign pertpy gives it
    (``-(ot0 @ de2 - de1)``): per cell, ``AB - A - B + control``, whose mean over cells estimates
    the additive residual of :func:`additive_residual`. The PCA is computed on the four groups.
    Taught in ``08_cinemaot``.

    Returns:
        AnnData of the control cells, ``X`` the per-cell synergy (genes of ``adata``).

    Raises:
        ValueError: a group is missing, ``X`` holds counts, or no confounder component in one of
            the three matchings (the message lists the xi of each component).

    Example:
        >>> import anndata as ad
        >>> rng = np.random.default_rng(0)
        >>> labels = np.repeat(["control", "A", "B", "A+B"], 60)
        >>> x = rng.normal(size=(240, 15)) + np.isin(labels, ["A", "A+B"])[:, None] * np.r_[2.0, np.zeros(14)]
        >>> syn = cinemaot_synergy(ad.AnnData(x, obs={"perturbation": labels}), a="A", b="B", dim=5, thres=0.3)
        >>> syn.shape
        (60, 15)
    """
    pt = _pertpy()
    dim, thres = _check_dim_thres(dim, thres)
    ab = _check_combination(adata, a, b, control, perturbation_key, "cinemaot_synergy")
    labels = _labels(adata, perturbation_key, "cinemaot_synergy")
    sub = adata[np.isin(labels, [control, a, b, ab])].copy()
    sub.obs[perturbation_key] = sub.obs[perturbation_key].astype(str)
    _check_log_normalized(sub, "cinemaot_synergy")
    _ensure_pca(sub, dim, seed)
    # the three matchings pertpy makes; each must find a confounder, so say which fails and why
    for treated, reference in ((control, a), (b, ab), (control, b)):
        pair = sub[sub.obs[perturbation_key].isin([treated, reference])].copy()
        table = component_dependence(pair, perturbation=treated, control=reference,
                                     perturbation_key=perturbation_key, dim=dim, thres=thres, seed=seed)
        if not (table["role"] == "confounder").any():
            raise ValueError(f"cinemaot_synergy: matching {treated!r} to {reference!r}: "
                             + _no_confounder_message(table, thres))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Transforming to str index.*")
        warnings.filterwarnings("ignore", message=".*FastICA did not converge.*")
        syn = pt.tl.Cinemaot().synergy(sub, pert_key=perturbation_key, base=control, A=a, B=b, AB=ab, dim=dim,
                                       thres=thres, smoothness=smoothness, eps=eps, solver="Sinkhorn",
                                       random_state=seed)
    syn.obs_names = sub.obs_names[(sub.obs[perturbation_key] == control).to_numpy()]
    return syn
