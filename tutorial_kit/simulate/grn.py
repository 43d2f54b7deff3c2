"""A GRN-guided Perturb-seq simulator whose every effect and interaction is known by construction.

Taught in ``02_simulation_statistical`` and reused as a calibration set in ``11_jepa`` and
``12_latent_diffusion``: a model's predicted effects can be scored against the truth, which no
real screen offers.

The network (:func:`make_grn`)
    ``n_regulators`` regulators (``TF01``, ``TF02``, ...) and ``n_genes - n_regulators`` targets
    (``G001``, ...). Regulators are split into modules (pathways) of about five; edges never cross
    modules, so regulators of different modules share no descendants. Inside a module the first
    regulator ``r0`` is the root, ``r1`` and ``r2`` are its children, and each later ``r_i`` hangs
    under ``r_{i-2}`` (sometimes with a second parent higher up the same branch): odd members form
    branch 1, even members branch 2, so regulators sit in layers and knockouts cascade.
    Every target has 1 to ``max_parents`` regulator parents, all in one branch of one module
    (``r0`` belongs to both branches), and every regulator has at least one target child.
    Edge signs are activating with probability ``p_activation``; weights are ``|w| ~ U(2, 3.5)``
    between regulators and ``U(1.5, 3.5)`` into targets, and each gene's ``offset`` puts its
    control input ``z^ctrl`` (below) at ``U(-1, 1)`` (regulators) or ``U(-1.5, 1.5)`` (targets),
    the steep middle of the response curve, so knockouts propagate. Basal means are
    ``LogNormal(log 8, 0.8)`` counts (about 2,000 UMIs per cell for 200 genes).
    By design, ``r1`` and ``r2`` of each module (with three or more regulators) share exactly
    :data:`GATE_TARGETS` "gate" targets with two activating parents, and nothing else. The gate's
    operating point (control input ``z^ctrl``) and weights set the interaction (:data:`GATES`,
    used in turn across modules):

    - ``'or'`` (on and saturated, either input keeps it on; ``z^ctrl = 7``, ``w ~ U(3.5, 4.5)``):
      synergistic under double knockout, additive under activation (already at the ceiling);
    - ``'and'`` (on, both inputs needed; ``z^ctrl = 3.5``, ``w ~ U(6, 6.5)``): one knockout
      already drops it to the floor, so the double is buffering; additive under activation;
    - ``'and_off'`` (off, both inputs must rise; ``z^ctrl = -10``, ``w ~ U(1.9, 2.3)``):
      synergistic under double activation, additive under knockout (already at the floor);
    - ``'or_mid'`` (half on, either raised input saturates it; ``z^ctrl = -0.5``,
      ``w ~ U(2.5, 3)``): buffering under both kinds.

    Each module also contributes a cross-module pair (its root with ``r1`` of the next module),
    additive by construction. These pairs are :attr:`GRN.designed_doubles`.

The regulation function (noise-free means, :meth:`GRN.expected_expression`)
    Let ``x_g`` be the relative activity of gene ``g`` (its mean divided by its control mean;
    1 everywhere in control). Genes are computed in topological order (depth in the DAG):

    - input: ``z_g = offset_g + sum_p w_pg * x_p`` over the parents ``p`` of ``g``
      (``w_pg > 0`` activates, ``< 0`` represses);
    - response: ``h(z) = leak + (1 - leak) / (1 + exp(-z))`` (a logistic curve that saturates
      at 1 and never falls below ``leak`` = :data:`LEAK`);
    - activity: ``x_g = c_g * h(z_g) / h(z_g^ctrl)``, where ``z_g^ctrl`` is the input with every
      ``x_p = 1`` and ``c_g`` is the perturbation of ``g`` itself: ``knockdown`` (default 0.05,
      the residual fraction after a knockout) if ``g`` is knocked out, ``activation`` (default 4)
      if ``g`` is activated, 1 otherwise. Genes without parents have ``x_g = c_g``;
    - mean: ``mu_g = basal_g * x_g`` (``basal_g``: the control mean count of ``g`` in a cell of
      average library size).

    A perturbed gene multiplies its own activity, so its children read the change through ``h``;
    a perturbation therefore changes only the target and its descendants, exactly.
    Perturbing a non-regulator target is allowed and changes only that gene.

The truth stored with a screen (:func:`simulate_perturbseq`)
    - ``uns['true_effect']``: for each perturbation ``P`` and gene ``g``, the natural-log fold
      change of the noise-free mean, ``log(mu_g(P)) - log(mu_g(control))`` (exactly 0 off the
      descendants). It is not a difference of ``X`` (log1p CP10k): a perturbation that lowers
      total counts raises every other gene's CP10k a little (a compositional shift), so compare
      ``X``-based estimates with care; raw counts are free of that shift.
    - ``uns['interactions']`` (per double ``A+B``): with effects ``e`` as above, the additive
      prediction is ``e_A + e_B`` and the residual ``r = e_AB - (e_A + e_B)``, exactly 0 outside
      the shared descendants of ``A`` and ``B``. ``residual_norm = ||r||_2``;
      ``interaction_score = s * ||r||_2`` with ``s = +1`` when the double moves the shared
      descendants more than additive (``sum |e_AB| > sum |e_A + e_B|`` over them) and ``-1``
      otherwise; ``label`` is ``'additive'`` when ``residual_norm <= threshold``
      (:data:`INTERACTION_THRESHOLD`, natural-log units), else ``'synergistic'`` (``s = +1``) or
      ``'buffering'`` (``s = -1``). Doubles without shared descendants are exactly additive.

Counts: cell ``c`` has a library-size factor ``s_c = L * m_c`` with ``m_c ~ LogNormal(-sd^2/2, sd)``
(mean 1) and ``L`` set by ``library_size``; its count of gene ``g`` is negative binomial with mean
``s_c * mu_g(P_c)`` and variance ``mean + dispersion * mean^2`` (Poisson when ``dispersion = 0``).
Library size does not depend on the perturbation, so a gene's raw counts have the same
distribution in control and in any perturbation that does not reach it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from tutorial_kit.validate import check_int

if TYPE_CHECKING:  # pragma: no cover
    import anndata
    import pandas as pd

KINDS = ("knockout", "activation")
"""The two kinds of perturbation: CRISPR knockout (or interference) and CRISPR activation."""

LEAK = 0.05
"""Floor of the response curve ``h``: a target with no active input keeps 5 % of its maximum."""

GATE_TARGETS = 3
"""Targets shared by the designed regulator pair of each module (the gates)."""

GATES: dict[str, dict[str, Any]] = {
    "or": {"z_ctrl": 7.0, "w": (3.5, 4.5), "knockout": "synergistic", "activation": "additive"},
    "and": {"z_ctrl": 3.5, "w": (6.0, 6.5), "knockout": "buffering", "activation": "additive"},
    "and_off": {"z_ctrl": -10.0, "w": (1.9, 2.3), "knockout": "additive", "activation": "synergistic"},
    "or_mid": {"z_ctrl": -0.5, "w": (2.5, 3.0), "knockout": "buffering", "activation": "buffering"},
}
"""The gate designs, in the order modules use them: control input, weight range and the intended
label under double knockout / activation (with the default knockdown 0.05 and activation 4)."""

INTERACTION_THRESHOLD = 0.1
"""A double is labelled 'additive' when the L2 norm of its non-additive residual (natural log) is at most this."""

_CHUNK = 1 << 21  # matrix entries sampled per block (bounds memory for large screens)


# --------------------------------------------------------------------------- validation


def _check_float(value: Any, name: str, *, low: float, high: float = np.inf, low_open: bool = False,
                 hint: str = "") -> float:
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    ok = ok and np.isfinite(value) and (value > low if low_open else value >= low) and value <= high
    if not ok:
        bracket = "(" if low_open else "["
        raise ValueError(f"{name} must be a number in {bracket}{low}, {high}]; got {value!r}. {hint}".rstrip())
    return float(value)


def _check_kind(kind: Any) -> str:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}.")
    return kind


def _check_strength(knockdown: Any, activation: Any) -> tuple[float, float]:
    kd = _check_float(knockdown, "knockdown", low=0.0, high=1.0, low_open=True,
                      hint="It is the fraction of activity left after a knockout, e.g. 0.05.")
    if kd == 1.0:
        raise ValueError("knockdown=1 leaves the target untouched; use a fraction in (0, 1), e.g. 0.05.")
    act = _check_float(activation, "activation", low=1.0, low_open=True,
                       hint="It multiplies the target's activity, e.g. 4.")
    return kd, act


# --------------------------------------------------------------------------- the network


def _response(z: np.ndarray, leak: float) -> np.ndarray:
    """``h(z) = leak + (1 - leak) * logistic(z)``."""
    return leak + (1.0 - leak) / (1.0 + np.exp(-z))


@dataclass(frozen=True, eq=False)
class GRN:
    """A directed acyclic gene regulatory network with the parameters of its regulation function.

    Build one with :func:`make_grn`; the model is stated formula by formula in the docstring of
    :mod:`tutorial_kit.simulate.grn`. Taught in ``02_simulation_statistical``.

    Attributes:
        genes: all gene names, regulators first (``TF01``, ...), then targets (``G001``, ...).
        regulators: the regulator names.
        edges: one row per edge: ``source``, ``target``, ``weight`` (signed), ``sign`` (+1 / -1).
        basal: control mean count of every gene in a cell of average library size (index: genes).
        offset: ``offset_g`` of the input ``z_g`` (index: genes).
        module: the module (pathway) of every gene (index: genes).
        designed_doubles: the pairs chosen by construction: ``a``, ``b``, ``gate`` (a key of
            :data:`GATES`, or ``'none'`` for a pair without shared descendants) and the intended
            label under each kind (columns ``knockout`` and ``activation``).
        leak: the floor of the response curve.
        seed: the seed that built the network.

    Example:
        >>> grn = make_grn(n_genes=40, n_regulators=6, seed=0)
        >>> grn.regulators[:3], len(grn.genes)
        (['TF01', 'TF02', 'TF03'], 40)
        >>> bool(np.all(grn.expected_expression("control") == grn.basal.to_numpy()))
        True
    """

    genes: list[str]
    regulators: list[str]
    edges: "pd.DataFrame"
    basal: "pd.Series"
    offset: "pd.Series"
    module: "pd.Series"
    designed_doubles: "pd.DataFrame"
    leak: float = LEAK
    seed: int = 0

    # ---- structure

    @cached_property
    def _index(self) -> dict[str, int]:
        return {g: i for i, g in enumerate(self.genes)}

    @cached_property
    def _parents(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {g: [] for g in self.genes}
        for s, t in zip(self.edges["source"], self.edges["target"]):
            out[t].append(s)
        return out

    @cached_property
    def _children(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {g: [] for g in self.genes}
        for s, t in zip(self.edges["source"], self.edges["target"]):
            out[s].append(t)
        return out

    def _check_gene(self, gene: str) -> str:
        if gene not in self._index:
            raise ValueError(
                f"{gene!r} is not a gene of this network. Known regulators: {self.regulators}; "
                f"targets are named {self.genes[len(self.regulators)]!r} to {self.genes[-1]!r}."
            )
        return gene

    def parents(self, gene: str) -> list[str]:
        """The direct regulators of ``gene`` (sorted).

        Example:
            >>> make_grn(n_genes=40, n_regulators=6).parents("TF02")
            ['TF01']
        """
        return sorted(self._parents[self._check_gene(gene)])

    def children(self, gene: str) -> list[str]:
        """The genes that ``gene`` regulates directly (sorted; empty for a target).

        Example:
            >>> make_grn(n_genes=40, n_regulators=6).children("G001")
            []
        """
        return sorted(self._children[self._check_gene(gene)])

    def descendants(self, gene: str) -> set[str]:
        """Every gene reachable from ``gene`` along edges (``gene`` itself excluded).

        Example:
            >>> grn = make_grn(n_genes=40, n_regulators=6)
            >>> grn.descendants("TF02") <= grn.descendants("TF01")
            True
        """
        seen: set[str] = set()
        stack = list(self._children[self._check_gene(gene)])
        while stack:
            g = stack.pop()
            if g not in seen:
                seen.add(g)
                stack.extend(self._children[g])
        return seen

    def shared_descendants(self, a: str, b: str) -> set[str]:
        """Genes downstream of both ``a`` and ``b``: the only genes where a double can be non-additive.

        Example:
            >>> grn = make_grn(n_genes=40, n_regulators=6)
            >>> grn.shared_descendants("TF01", "TF04")
            set()
        """
        return self.descendants(a) & self.descendants(b)

    @cached_property
    def depth(self) -> "pd.Series":
        """Depth of every gene in the DAG (0 for genes without parents); computation follows it."""
        import pandas as pd

        depth: dict[str, int] = {}

        def visit(g: str, trail: tuple[str, ...]) -> int:
            if g in trail:
                raise ValueError(f"the network has a cycle through {g!r}; a GRN must be acyclic.")
            if g not in depth:
                ps = self._parents[g]
                depth[g] = 1 + max(visit(p, trail + (g,)) for p in ps) if ps else 0
            return depth[g]

        for g in self.genes:
            visit(g, ())
        return pd.Series([depth[g] for g in self.genes], index=self.genes, name="depth")

    @cached_property
    def _tables(self) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, list[np.ndarray]]:
        """Per depth level: gene indices, and padded parent indices / weights (one row per gene)."""
        n = len(self.genes)
        width = max([len(p) for p in self._parents.values()] + [1])
        par = np.full((n, width), n, dtype=np.intp)  # index n points at a constant activity of 1
        wts = np.zeros((n, width))
        for s, t, w in zip(self.edges["source"], self.edges["target"], self.edges["weight"]):
            i = self._index[t]
            k = int(np.argmax(par[i] == n))
            par[i, k], wts[i, k] = self._index[s], float(w)
        depth = self.depth.to_numpy()
        levels = [np.flatnonzero(depth == d) for d in range(int(depth.max()) + 1)]
        ctrl = [self._input(np.ones(n + 1), idx, par, wts) for idx in levels]
        return levels, par, wts, ctrl

    def _input(self, x: np.ndarray, idx: np.ndarray, par: np.ndarray, wts: np.ndarray) -> np.ndarray:
        """``z = offset + sum_p w_p * x_p`` for the genes ``idx`` (one code path for control and perturbed)."""
        return self.offset.to_numpy(float)[idx] + (wts[idx] * x[par[idx]]).sum(axis=1)

    # ---- expression and effects

    def positions(self, perturbation: str) -> list[int]:
        """The positions in :attr:`genes` of the genes that ``perturbation`` names; refuses unknown genes.

        Example:
            >>> grn = make_grn(n_genes=40, n_regulators=6)
            >>> grn.positions("TF02+TF01")  # normalized: 'TF01+TF02'
            [0, 1]
        """
        from tutorial_kit.data.schema import normalize_perturbation, perturbation_parts

        if not isinstance(perturbation, str):
            raise ValueError(f"a perturbation is a string such as 'TF01' or 'TF01+TF02'; got {perturbation!r}.")
        parts = perturbation_parts(normalize_perturbation(perturbation))
        unknown = [p for p in parts if p not in self._index]
        if unknown:
            raise ValueError(
                f"perturbation {perturbation!r} names gene(s) {unknown} that are not in the network. "
                f"Known regulators: {self.regulators}. Targets ({self.genes[len(self.regulators)]!r} to "
                f"{self.genes[-1]!r}) may be perturbed too; they change only themselves."
            )
        return [self._index[p] for p in parts]

    def expected_expression(self, perturbation: str = "control", *, kind: str = "knockout",
                            knockdown: float = 0.05, activation: float = 4.0) -> np.ndarray:
        """The noise-free mean count of every gene under a perturbation (cell of average library size).

        Args:
            perturbation: ``'control'``, a gene (``'TF03'``) or a combination (``'TF03+TF07'``).
            kind: ``'knockout'`` (activity times ``knockdown``) or ``'activation'`` (times ``activation``).
            knockdown: residual fraction of activity after a knockout, in (0, 1).
            activation: activity multiplier of an activation, above 1.

        Returns:
            ``mu`` in the order of :attr:`genes` (see the module docstring for the formulas).

        Example:
            >>> grn = make_grn(n_genes=40, n_regulators=6)
            >>> mu = grn.expected_expression("TF01")
            >>> float(mu[0] / grn.basal["TF01"])
            0.05
        """
        _check_kind(kind)
        kd, act = _check_strength(knockdown, activation)
        factor = np.ones(len(self.genes) + 1)
        factor[self.positions(perturbation)] = kd if kind == "knockout" else act
        levels, par, wts, ctrl = self._tables
        x = np.ones(len(self.genes) + 1)
        for idx, z_ctrl in zip(levels, ctrl):
            z = self._input(x, idx, par, wts)
            x[idx] = factor[idx] * (_response(z, self.leak) / _response(z_ctrl, self.leak))
        return self.basal.to_numpy(float) * x[:-1]

    def true_effects(self, perturbations: Sequence[str], *, kind: str = "knockout", knockdown: float = 0.05,
                     activation: float = 4.0) -> "pd.DataFrame":
        """The true effect of each perturbation: natural-log fold change of the mean vs control.

        Returns:
            DataFrame, perturbations (canonical names) x genes; exactly 0 off the descendants.

        Example:
            >>> grn = make_grn(n_genes=40, n_regulators=6)
            >>> eff = grn.true_effects(["TF04"])
            >>> sorted(eff.columns[eff.loc["TF04"] != 0]) == sorted(grn.descendants("TF04") | {"TF04"})
            True
        """
        import pandas as pd

        from tutorial_kit.data.schema import normalize_perturbation

        names = [normalize_perturbation(p) for p in perturbations]
        log_ctrl = np.log(self.basal.to_numpy(float))
        rows = [np.log(self.expected_expression(p, kind=kind, knockdown=knockdown, activation=activation)) - log_ctrl
                for p in names]
        data = np.array(rows).reshape(len(names), len(self.genes))
        return pd.DataFrame(data, index=pd.Index(names, name="perturbation"), columns=pd.Index(self.genes, name="gene"))

    def interactions(self, doubles: Sequence[str] | None = None, *, kind: str = "knockout", knockdown: float = 0.05,
                     activation: float = 4.0, threshold: float = INTERACTION_THRESHOLD) -> "pd.DataFrame":
        """The true interaction of each double ``A+B`` (definitions in the module docstring).

        Args:
            doubles: names ``'A+B'``; default: :attr:`designed_doubles`.
            kind, knockdown, activation: the perturbation, as in :meth:`expected_expression`.
            threshold: largest ``residual_norm`` still labelled ``'additive'`` (natural log).

        Returns:
            DataFrame indexed by the double: ``a``, ``b``, ``n_shared_descendants``,
            ``residual_norm``, ``interaction_score`` (signed: + synergistic, - buffering),
            ``label`` and ``design`` (the label the construction intended for this kind, ``''`` if
            the pair was not designed).

        Example:
            >>> make_grn(n_genes=40, n_regulators=6).interactions()["label"].tolist()
            ['additive', 'additive', 'synergistic', 'buffering']
        """
        import pandas as pd

        from tutorial_kit.data.schema import normalize_perturbation, perturbation_parts

        threshold = _check_float(threshold, "threshold", low=0.0)
        if doubles is None:
            doubles = [f"{a}+{b}" for a, b in zip(self.designed_doubles["a"], self.designed_doubles["b"])]
        names = [normalize_perturbation(d) for d in doubles]
        bad = [d for d, n in zip(doubles, names) if len(perturbation_parts(n)) != 2]
        if bad:
            raise ValueError(f"interactions are defined for doubles 'A+B' of two different genes; got {bad}.")
        design = {normalize_perturbation(f"{a}+{b}"): d for a, b, d in
                  zip(self.designed_doubles["a"], self.designed_doubles["b"], self.designed_doubles[kind])}
        parts = [perturbation_parts(n) for n in names]
        singles = sorted({p for ab in parts for p in ab})
        eff = self.true_effects(singles + names, kind=kind, knockdown=knockdown, activation=activation)
        rows = []
        for name, (a, b) in zip(names, parts):
            shared = sorted(self.shared_descendants(a, b))
            additive = eff.loc[a].to_numpy() + eff.loc[b].to_numpy()
            double = eff.loc[name].to_numpy()
            norm = float(np.linalg.norm(double - additive))
            cols = [self._index[g] for g in shared]
            sign = 1.0 if np.abs(double[cols]).sum() > np.abs(additive[cols]).sum() else -1.0
            label = "additive" if norm <= threshold else ("synergistic" if sign > 0 else "buffering")
            rows.append({"a": a, "b": b, "n_shared_descendants": len(shared), "residual_norm": norm,
                         "interaction_score": sign * norm if norm > 0 else 0.0, "label": label,
                         "design": design.get(name, "")})
        return pd.DataFrame(rows, index=pd.Index(names, name="perturbation"))

    def default_perturbations(self) -> list[str]:
        """Every regulator alone, then the designed doubles (the default screen).

        Example:
            >>> make_grn(n_genes=40, n_regulators=6).default_perturbations()[-1]
            'TF05+TF06'
        """
        doubles = [f"{a}+{b}" for a, b in zip(self.designed_doubles["a"], self.designed_doubles["b"])]
        return list(self.regulators) + doubles


# --------------------------------------------------------------------------- building a network


def _module_members(n_regulators: int) -> list[list[int]]:
    n_modules = max(2, n_regulators // 5)
    return [list(block) for block in np.array_split(np.arange(n_regulators), n_modules)]


def _branches(members: list[int]) -> list[list[int]]:
    """Branch 1: the root and odd members; branch 2: the root and even members (if any)."""
    root, rest = members[0], members[1:]
    b1 = [root] + rest[0::2]
    b2 = [root] + rest[1::2]
    return [b1, b2] if len(b2) > 1 else [b1]


def make_grn(*, n_genes: int = 200, n_regulators: int = 20, max_parents: int = 3, p_activation: float = 0.7,
             seed: int = 0) -> GRN:
    """A random sparse GRN with cascades, designed interactions and pairs that share nothing.

    The construction (modules, branches, gates) and the regulation function are stated
    in the docstring of :mod:`tutorial_kit.simulate.grn`. Taught in ``02_simulation_statistical``.

    Args:
        n_genes: all genes, regulators included.
        n_regulators: regulators (at least 6, so there are two modules with a designed pair).
        max_parents: most regulator parents of a target (at least 2, the gates need two).
        p_activation: probability that a random edge activates (else it represses).
        seed: seed of the random choices.

    Returns:
        A :class:`GRN`; ``designed_doubles`` holds, per module, a cross-module pair (additive by
        construction) and, for modules of three or more regulators, the gate pair ``r1+r2``
        (gates of :data:`GATES` in turn). With 4 or more modules (``n_regulators >= 20``) both
        knockout and activation screens of the designed doubles show all three labels.

    Example:
        >>> grn = make_grn(n_genes=40, n_regulators=6, seed=1)
        >>> grn.designed_doubles[["gate", "knockout"]].to_numpy().tolist()[2:]
        [['or', 'synergistic'], ['and', 'buffering']]
        >>> set(grn.edges["sign"]) <= {-1, 1}
        True
    """
    import pandas as pd

    n_regulators = check_int(n_regulators, "n_regulators", minimum=6)
    n_genes = check_int(n_genes, "n_genes", minimum=1)
    max_parents = check_int(max_parents, "max_parents", minimum=2)
    p_activation = _check_float(p_activation, "p_activation", low=0.0, high=1.0)
    seed = check_int(seed, "seed", minimum=0)
    modules = _module_members(n_regulators)
    gated = [m for m in modules if len(m) >= 3]
    need = 2 * n_regulators + GATE_TARGETS * len(gated)
    if n_genes < need:
        raise ValueError(
            f"n_genes={n_genes} is too small for {n_regulators} regulators: every regulator needs a target child "
            f"and each of the {len(gated)} designed pairs {GATE_TARGETS} gate targets; use n_genes >= {need}."
        )
    rng = np.random.default_rng(seed)
    rw, tw = max(2, len(str(n_regulators))), max(3, len(str(n_genes - n_regulators)))
    regs = [f"TF{i + 1:0{rw}d}" for i in range(n_regulators)]
    genes = regs + [f"G{j + 1:0{tw}d}" for j in range(n_genes - n_regulators)]
    module = np.zeros(n_genes, dtype=int)
    z_ctrl = rng.uniform(-1.5, 1.5, n_genes)  # where each gene sits on its response curve in control
    edges: list[tuple[int, int, float]] = []

    def signed(low: float, high: float) -> float:
        return float(rng.uniform(low, high) * (1 if rng.random() < p_activation else -1))

    # regulator cascades inside each module
    branch_of: dict[int, list[int]] = {}
    for m, members in enumerate(modules):
        branches = _branches(members)
        module[members] = m
        for i, r in enumerate(members):
            branch = branches[0] if i % 2 == 1 or len(branches) == 1 else branches[1]
            branch_of[r] = branch
            if i == 0:
                continue
            parent = members[0] if i <= 2 else members[i - 2]
            edges.append((parent, r, signed(2.0, 3.5)))
            higher = [g for g in branch[: branch.index(r)] if g != parent]
            if higher and rng.random() < 0.5:
                edges.append((int(rng.choice(higher)), r, signed(2.0, 3.5)))
            z_ctrl[r] = rng.uniform(-1.0, 1.0)

    # targets: first the gates, then one child per regulator, then random ones
    targets = list(rng.permutation(np.arange(n_regulators, n_genes)))
    designed: list[tuple[str, str, str]] = []
    for k, members in enumerate(gated):
        gate = list(GATES)[k % len(GATES)]
        for _ in range(GATE_TARGETS):
            t = int(targets.pop())
            module[t] = module[members[0]]
            w = rng.uniform(*GATES[gate]["w"], 2)
            edges += [(members[1], t, float(w[0])), (members[2], t, float(w[1]))]
            z_ctrl[t] = GATES[gate]["z_ctrl"]
        designed.append((regs[members[1]], regs[members[2]], gate))
    for r in range(n_regulators):
        _target_edges(rng, edges, int(targets.pop()), r, branch_of[r], max_parents, signed, module)
    all_branches = [b for members in modules for b in _branches(members)]
    for t in targets:
        branch = all_branches[int(rng.integers(len(all_branches)))]
        _target_edges(rng, edges, int(t), int(rng.choice(branch)), branch, max_parents, signed, module)

    src, dst, wgt = (np.array(v) for v in zip(*edges))
    table = pd.DataFrame({"source": [genes[i] for i in src], "target": [genes[i] for i in dst], "weight": wgt,
                          "sign": np.sign(wgt).astype(int)})
    offset = z_ctrl - np.bincount(dst, weights=wgt, minlength=n_genes)
    basal = np.exp(rng.normal(np.log(8.0), 0.8, n_genes))
    additive = [(regs[modules[m][0]], regs[modules[(m + 1) % len(modules)][1]], "none")
                for m in range(len(modules))]
    label = {"none": {"knockout": "additive", "activation": "additive"}, **GATES}
    pairs = [tuple(sorted(p[:2])) + (p[2], label[p[2]]["knockout"], label[p[2]]["activation"])
             for p in additive + designed]
    designed_df = pd.DataFrame(pairs, columns=["a", "b", "gate", "knockout", "activation"])
    return GRN(genes=genes, regulators=regs, edges=table, basal=pd.Series(basal, index=genes, name="basal"),
               offset=pd.Series(offset, index=genes, name="offset"),
               module=pd.Series(module, index=genes, name="module"), designed_doubles=designed_df, leak=LEAK, seed=seed)


def _target_edges(rng: np.random.Generator, edges: list, target: int, first: int, branch: list[int],
                  max_parents: int, signed: Any, module: np.ndarray) -> None:
    """Wire ``target`` to ``first`` and up to ``max_parents - 1`` more regulators of ``branch``."""
    others = [g for g in branch if g != first]
    k = min(int(rng.integers(1, max_parents + 1)), len(others) + 1)
    parents = [first] + [int(g) for g in rng.choice(others, k - 1, replace=False)] if k > 1 else [first]
    for p in parents:
        edges.append((p, target, signed(1.5, 3.5)))
    module[target] = module[first]


# --------------------------------------------------------------------------- the screen


def _resolve_perturbations(grn: GRN, perturbations: Sequence[str] | str | None) -> list[str]:
    from tutorial_kit.data.schema import CONTROL, normalize_perturbation

    if perturbations is None:
        return grn.default_perturbations()
    raw = [perturbations] if isinstance(perturbations, str) else list(perturbations)
    if not raw:
        raise ValueError("perturbations is empty; pass None for the default screen or names such as "
                         "['TF01', 'TF01+TF02'].")
    for p in raw:
        grn.positions(p)
    names = [normalize_perturbation(p) for p in raw]
    if CONTROL in names:
        raise ValueError("'control' is not a perturbation here: control cells are added by n_control.")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"perturbations {dup} are listed more than once (after sorting the parts of doubles).")
    return names


def simulate_perturbseq(grn: GRN, *, perturbations: Sequence[str] | str | None = None, kind: str = "knockout",
                        n_cells: int = 100, n_control: int = 300, dispersion: float = 0.2,
                        library_size: float | None = None, library_sdlog: float = 0.3, knockdown: float = 0.05,
                        activation: float = 4.0, interaction_threshold: float = INTERACTION_THRESHOLD, seed: int = 0,
                        progress: bool = False) -> "anndata.AnnData":
    """A Perturb-seq-like screen on a GRN, with the true effect of every perturbation.

    Taught in ``02_simulation_statistical``; the model and the stored truth are defined in the
    docstring of :mod:`tutorial_kit.simulate.grn`.

    Args:
        grn: the network (:func:`make_grn`).
        perturbations: names such as ``'TF01'`` or ``'TF01+TF02'`` (any order of parts); ``None``:
            every regulator plus the designed doubles (:meth:`GRN.default_perturbations`).
            A non-regulator target may be perturbed; it changes only itself.
        kind: ``'knockout'`` or ``'activation'`` (one kind per screen).
        n_cells: cells per perturbation.
        n_control: control cells.
        dispersion: NB dispersion (variance ``mean + dispersion * mean^2``; 0 gives Poisson).
        library_size: mean total count of a control cell; ``None`` keeps the GRN's basal means as
            the counts of an average cell (about 2,000 UMIs for 200 genes).
        library_sdlog: standard deviation of the log of the per-cell library-size factor.
        knockdown: residual fraction of a knocked-out gene's activity, in (0, 1).
        activation: activity multiplier of an activated gene, above 1.
        interaction_threshold: largest residual norm still labelled ``'additive'``.
        seed: seed of the sampling.
        progress: show a progress bar while sampling.

    Returns:
        AnnData in the course schema: ``layers['counts']`` (int32 CSR), ``X`` = log1p CP10k, obs
        ``perturbation`` (``'control'``, ``'A'``, ``'A+B'``), ``condition`` (``kind`` or
        ``'control'``), ``cell_type`` (``'simulated'``), ``dataset`` (``'simulated:grn'``),
        ``group`` and ``size_factor`` (the cell's true library factor); var ``is_regulator``,
        ``basal``, ``module``, ``depth``; uns ``grn_edges``, ``true_effect`` (perturbations x
        genes, natural-log fold change of the noise-free mean vs control), ``interactions`` (one row
        per double) and ``simulation`` (parameters and seeds).

    Example:
        >>> grn = make_grn(n_genes=40, n_regulators=6)
        >>> a = simulate_perturbseq(grn, perturbations=["TF02", "TF03+TF02"], n_cells=5, n_control=5)
        >>> a.obs["perturbation"].value_counts().sort_index().to_dict()
        {'TF02': 5, 'TF02+TF03': 5, 'control': 5}
        >>> a.uns["interactions"]["label"].tolist()
        ['synergistic']
    """
    from tutorial_kit.data.schema import CONTROL
    from tutorial_kit.simulate._base import sample_counts, simulated_adata

    if not isinstance(grn, GRN):
        raise ValueError(f"grn must be a GRN from tk.simulate.make_grn(...); got {type(grn).__name__}.")
    _check_kind(kind)
    n_cells = check_int(n_cells, "n_cells", minimum=1)
    n_control = check_int(n_control, "n_control", minimum=1)
    dispersion = _check_float(dispersion, "dispersion", low=0.0, hint="Use 0 for Poisson counts.")
    if library_size is not None:
        library_size = _check_float(library_size, "library_size", low=0.0, low_open=True,
                                    hint="It is the mean total count of a control cell, or None.")
    library_sdlog = _check_float(library_sdlog, "library_sdlog", low=0.0)
    knockdown, activation = _check_strength(knockdown, activation)
    seed = check_int(seed, "seed", minimum=0)
    names = _resolve_perturbations(grn, perturbations)

    strength = {"knockdown": knockdown, "activation": activation}
    means = np.vstack([grn.expected_expression(CONTROL)]
                      + [grn.expected_expression(p, kind=kind, **strength) for p in names])
    sizes = np.array([n_control] + [n_cells] * len(names))
    rows = np.repeat(np.arange(len(sizes)), sizes)
    rng = np.random.default_rng(seed)
    scale = 1.0 if library_size is None else library_size / float(grn.basal.sum())
    size = scale * rng.lognormal(-library_sdlog**2 / 2, library_sdlog, len(rows))
    counts = sample_counts(rng, means, rows, size, dispersion=dispersion, progress=progress, chunk=_CHUNK)

    labels = [f"{CONTROL} | {CONTROL}"] + [f"{p} | {kind}" for p in names]
    adata = simulated_adata(counts, np.asarray(labels, dtype=object)[rows], groupby=("perturbation", "condition"),
                            var_names=grn.genes, source="grn")
    adata.obs["size_factor"] = size
    adata.var["is_regulator"] = np.isin(grn.genes, grn.regulators)
    adata.var["basal"] = grn.basal.to_numpy()
    adata.var["module"] = grn.module.to_numpy()
    adata.var["depth"] = grn.depth.to_numpy()
    adata.uns["grn_edges"] = grn.edges.copy()
    adata.uns["true_effect"] = grn.true_effects(names, kind=kind, **strength)
    doubles = [p for p in names if p.count("+") == 1]
    adata.uns["interactions"] = grn.interactions(doubles, kind=kind, threshold=interaction_threshold, **strength)
    adata.uns["simulation"] = {
        "kind": kind, "n_cells": n_cells, "n_control": n_control, "dispersion": dispersion,
        "library_size": float(scale * grn.basal.sum()), "library_sdlog": library_sdlog, "knockdown": knockdown,
        "activation": activation, "interaction_threshold": interaction_threshold, "seed": seed,
        "grn_seed": grn.seed, "leak": grn.leak, "n_genes": len(grn.genes), "n_regulators": len(grn.regulators),
        "true_effect": "natural-log fold change of the noise-free mean count vs control",
    }
    return adata


def observed_effects(adata: "anndata.AnnData", *, layer: str = "counts", pseudocount: float = 0.1) -> "pd.DataFrame":
    """The estimate of ``uns['true_effect']`` from counts: log of mean counts vs control, per perturbation.

    ``log((mean_P + pseudocount) / (mean_control + pseudocount))`` per gene, on raw counts (free of
    the compositional shift of CP10k). Taught in ``02_simulation_statistical``.

    Example:
        >>> grn = make_grn(n_genes=40, n_regulators=6)
        >>> a = simulate_perturbseq(grn, perturbations=["TF01"], n_cells=50, n_control=50)
        >>> float(observed_effects(a).loc["TF01", "TF01"]) < -1
        True
    """
    import pandas as pd

    from tutorial_kit.data.schema import CONTROL
    from tutorial_kit.validate import check_counts, check_nonempty, check_obs_columns

    check_obs_columns(adata, ["perturbation"], where="observed_effects")
    check_counts(adata, layer=layer, where="observed_effects")
    _check_float(pseudocount, "pseudocount", low=0.0, low_open=True)
    labels = adata.obs["perturbation"].astype(str).to_numpy()
    check_nonempty(labels == CONTROL, what="control cells", where="observed_effects")
    x = adata.layers[layer]
    groups = list(dict.fromkeys(labels))
    means = {g: np.asarray(x[labels == g].mean(axis=0)).ravel() for g in groups}
    base = np.log(means[CONTROL] + pseudocount)
    rows = [g for g in groups if g != CONTROL]
    data = np.array([np.log(means[g] + pseudocount) - base for g in rows]).reshape(len(rows), adata.n_vars)
    return pd.DataFrame(data, index=pd.Index(rows, name="perturbation"),
                        columns=pd.Index(list(map(str, adata.var_names)), name="gene"))
