"""Perturbation-level splits, seeded, with a validation part for tuning.

Asking whether a model generalizes to perturbations it has not seen means splitting by
perturbation, not by cell: a cell of a perturbation seen in training tells the model its answer
(see the book page *How the course evaluates models*, book/evaluation.md).
:func:`perturbation_split` holds out whole perturbations of one kind:

- ``"unseen_single"``: single perturbations whose gene appears nowhere in training.
- ``"double_seen2"``, ``"double_seen1"``, ``"double_seen0"``: doubles ``'A+B'`` with 2, 1 or 0
  of their singles in training (the GEARS categories); a gene that is not seen appears in no
  training perturbation at all, neither as a single nor inside another double.

Every split has four parts of cells: ``train`` (training perturbations and a seeded share of
the control cells), ``val`` (for tuning, e.g. with Optuna), ``test`` (reported once), and
``ctrl`` (the other control cells: the input of ``model.predict``). :func:`assert_disjoint`
checks every promise; :func:`tuning_data` hands a tuner only ``train``, ``val`` and ``ctrl``.
Taught in ``09_linear_baselines`` (the splits) and ``10_benchmarking`` (tuning on ``val``).

Example:
    >>> import numpy as np, anndata as ad, pandas as pd
    >>> labels = ["control"] * 8 + [p for p in ["A", "B", "C", "D", "A+B", "C+D", "B+C", "A+D"] for _ in range(2)]
    >>> obs = pd.DataFrame({"perturbation": labels}, index=[f"c{i}" for i in range(len(labels))])
    >>> adata = ad.AnnData(np.zeros((len(labels), 3), dtype=np.float32), obs=obs)
    >>> split = perturbation_split(adata, kind="double_seen2", seed=0)
    >>> split.test_perturbations, split.val_perturbations, len(split.train_perturbations)
    (['C+D'], ['A+B'], 6)
    >>> split.train.n_obs, split.ctrl.n_obs, split.test.n_obs
    (16, 4, 2)
    >>> assert_disjoint(split)
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from tutorial_kit.data.schema import CONTROL, normalize_perturbations, perturbation_parts
from tutorial_kit.validate import check_obs_columns

if TYPE_CHECKING:  # pragma: no cover
    import anndata
    import pandas as pd

__all__ = ["SPLIT_KINDS", "PerturbationSplit", "TuningData", "assert_disjoint", "perturbation_split", "subsample_perturbed",
           "tuning_data", "validation_holdout"]

SPLIT_KINDS = ("unseen_single", "double_seen2", "double_seen1", "double_seen0")
"""The kinds of :func:`perturbation_split`."""

_PARTS = ("train", "val", "test", "ctrl", "excluded")


class PerturbationSplit(NamedTuple):
    """A perturbation-level split (see :func:`perturbation_split`).

    Attributes:
        train: cells of the training perturbations plus the training share of the control cells.
        val: cells of the validation perturbations (tune on these, never on ``test``).
        test: cells of the test perturbations (report once).
        ctrl: control cells, none of them in ``train``: the input of ``model.predict`` for
            both ``val`` and ``test`` (they are never a target, so sharing them leaks nothing).
        train_perturbations: perturbation labels in ``train`` (control not included), sorted.
        val_perturbations: perturbation labels in ``val``, sorted.
        test_perturbations: perturbation labels in ``test``, sorted.
        kind: one of :data:`SPLIT_KINDS`.
        seed: the seed that drew the split.
        excluded_perturbations: label -> number of cells of perturbations in no part, because
            training on them would leak an unseen gene (e.g. ``'A+B'`` when ``A`` is held out).
        perturbation_key: the ``obs`` column of (canonical) perturbation labels in every part.

    All labels are canonical (:func:`tutorial_kit.data.normalize_perturbation`): control is
    ``'control'`` and doubles are ``'A+B'`` in alphabetical order.
    """

    train: "anndata.AnnData"
    val: "anndata.AnnData"
    test: "anndata.AnnData"
    ctrl: "anndata.AnnData"
    train_perturbations: list[str]
    val_perturbations: list[str]
    test_perturbations: list[str]
    kind: str
    seed: int
    excluded_perturbations: dict[str, int] = {}
    perturbation_key: str = "perturbation"

    @property
    def n_seen(self) -> int | None:
        """Singles of each held-out double that are in training (2, 1, 0), or None for ``unseen_single``."""
        return int(self.kind[-1]) if self.kind.startswith("double_seen") else None

    def summary(self) -> "pd.DataFrame":
        """One row per perturbation and part: where every condition went and how many cells it has.

        Columns: ``perturbation``, ``part`` (train, val, test, ctrl, excluded), ``n_cells``,
        ``n_perturbations`` (0 for control, 1 for singles, 2 for doubles) and ``n_singles_seen``
        (for combinations: how many of their singles are training perturbations; missing otherwise).

        Example:
            >>> import numpy as np, anndata as ad, pandas as pd
            >>> labels = ["control"] * 4 + ["A", "A", "B", "B", "C", "C", "A+B", "A+B"]
            >>> obs = pd.DataFrame({"perturbation": labels}, index=[f"c{i}" for i in range(12)])
            >>> a = ad.AnnData(np.zeros((12, 2), dtype=np.float32), obs=obs)
            >>> s = perturbation_split(a, kind="unseen_single", test_fraction=0.3, val_fraction=0.3, seed=1)
            >>> print(s.summary().to_string(index=False))
            perturbation     part  n_cells  n_perturbations  n_singles_seen
                 control    train        2                0            <NA>
                       B    train        2                1            <NA>
                       A      val        2                1            <NA>
                       C     test        2                1            <NA>
                 control     ctrl        2                0            <NA>
                     A+B excluded        2                2               1
        """
        import pandas as pd

        train_singles = {p for p in self.train_perturbations if len(perturbation_parts(p)) == 1}
        rows = []
        for part in _PARTS:
            if part == "excluded":
                counts = dict(sorted(self.excluded_perturbations.items()))
            else:
                labels = getattr(self, part).obs[self.perturbation_key].astype(str)
                counts = labels.value_counts().to_dict()
                counts = {p: counts[p] for p in sorted(counts, key=lambda p: (p != CONTROL, p))}
            for name, n in counts.items():
                genes = perturbation_parts(name)
                seen = sum(g in train_singles for g in genes) if len(genes) > 1 else pd.NA
                rows.append((name, part, int(n), len(genes), seen))
        table = pd.DataFrame(rows, columns=["perturbation", "part", "n_cells", "n_perturbations", "n_singles_seen"])
        table["n_singles_seen"] = table["n_singles_seen"].astype("Int64")
        return table

    def assert_disjoint(self) -> None:
        """Same as :func:`assert_disjoint` (raises AssertionError when a promise is broken)."""
        assert_disjoint(self)


class TuningData(NamedTuple):
    """What a hyperparameter search may read (see :func:`tuning_data`): no test cell.

    Attributes:
        train: fit on these cells.
        val: score on these cells.
        ctrl: control cells to predict from.
        val_perturbations: the labels to predict and score.
        perturbation_key: the ``obs`` column of perturbation labels.
    """

    train: "anndata.AnnData"
    val: "anndata.AnnData"
    ctrl: "anndata.AnnData"
    val_perturbations: list[str]
    perturbation_key: str = "perturbation"


def tuning_data(split: PerturbationSplit) -> TuningData:
    """The parts of ``split`` a hyperparameter search may read: ``train``, ``val`` and ``ctrl``, never ``test``.

    Build the tuning objective (e.g. an Optuna objective) from this object only: it fits on
    ``train``, predicts ``val_perturbations`` from ``ctrl`` and scores against ``val``, so the
    test cells cannot influence the chosen hyperparameters. Taught in ``10_benchmarking``.

    Example:
        >>> import numpy as np, anndata as ad, pandas as pd
        >>> labels = ["control"] * 4 + ["A", "A", "B", "B", "C", "C", "D", "D"]
        >>> obs = pd.DataFrame({"perturbation": labels}, index=[f"c{i}" for i in range(12)])
        >>> split = perturbation_split(ad.AnnData(np.zeros((12, 2)), obs=obs), kind="unseen_single", seed=0)
        >>> tune = tuning_data(split)
        >>> set(tune.val.obs_names) & set(split.test.obs_names)
        set()
    """
    assert_disjoint(split)
    return TuningData(train=split.train, val=split.val, ctrl=split.ctrl,
                      val_perturbations=list(split.val_perturbations), perturbation_key=split.perturbation_key)


# --------------------------------------------------------------------------- the split


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def _sizes(n: int, test_fraction: float, val_fraction: float, *, what: str, keep_one: bool,
           where: str) -> tuple[int, int]:
    """Numbers of held-out test and validation conditions (each at least one)."""
    n_test = max(1, _round_half_up(test_fraction * n))
    n_val = max(1, _round_half_up(val_fraction * n))
    room = n - 1 if keep_one else n
    if n_test + n_val > room:
        extra = " and at least one for training" if keep_one else ""
        raise ValueError(
            f"{where}: the data has {n} {what}, too few for non-empty validation and test parts{extra} "
            f"(test_fraction={test_fraction} and val_fraction={val_fraction} ask for {n_test} + {n_val}). "
            "Use data with more such perturbations, smaller fractions, or another kind."
        )
    return n_test, n_val


def _hold_out_singles(perturbations: list[str], n_test_val: Any, rng: np.random.Generator
                      ) -> tuple[list[str], list[str], set[str]]:
    singles = [p for p in perturbations if len(perturbation_parts(p)) == 1]
    n_test, n_val = n_test_val(len(singles), what="single perturbations", keep_one=True)
    order = [singles[i] for i in rng.permutation(len(singles))]
    test, val = order[:n_test], order[n_test:n_test + n_val]
    return test, val, set(test) | set(val)


def _hold_out_doubles(perturbations: list[str], k: int, n_test_val: Any, rng: np.random.Generator, where: str
                      ) -> tuple[list[str], list[str], set[str]]:
    """Pick test and validation doubles with ``k`` singles in training; returns them and the unseen genes."""
    singles = {p for p in perturbations if len(perturbation_parts(p)) == 1}
    doubles = [p for p in perturbations if len(perturbation_parts(p)) == 2]
    measured = {d: sum(g in singles for g in perturbation_parts(d)) for d in doubles}
    # doubles that already have k measured singles come first: they need no single removed from training
    natural = [d for d in doubles if measured[d] == k]
    reducible = [d for d in doubles if measured[d] > k]
    n_test, n_val = n_test_val(len(natural) + len(reducible), what=f"doubles with at least {k} of their singles "
                               "measured", keep_one=False)
    order = ([natural[i] for i in rng.permutation(len(natural))]
             + [reducible[i] for i in rng.permutation(len(reducible))])
    unseen: set[str] = set()  # genes that must appear in no training perturbation
    needed: set[str] = set()  # singles that must stay in training
    test: list[str] = []
    val: list[str] = []
    for double in order:
        if len(test) == n_test and len(val) == n_val:
            break
        a, b = perturbation_parts(double)
        if k == 2:
            options = [set()]
        elif k == 0:
            options = [{a, b}] if not {a, b} & needed else []
        else:
            options = [{hidden} for seen, hidden in ((a, b), (b, a))
                       if seen in singles and seen not in unseen and hidden not in needed]
            # prefer hiding a gene already hidden or not measured as a single (no training data lost)
            cost = [sum(g in singles and g not in unseen for g in o) for o in options]
            options = [o for o, c in zip(options, cost) if c == min(cost, default=0)]
        if not options:
            continue
        hidden = options[int(rng.integers(len(options)))] if len(options) > 1 else options[0]
        unseen |= hidden
        needed |= set(perturbation_parts(double)) - hidden
        (test if len(test) < n_test else val).append(double)
    if len(test) < n_test or len(val) < n_val:
        raise ValueError(
            f"{where}: could place only {len(test)} test and {len(val)} validation doubles with {k} seen singles "
            f"(asked for {n_test} and {n_val}): the doubles share genes in ways that make the others impossible. "
            "Use smaller fractions or another seed."
        )
    return test, val, unseen


def perturbation_split(
    adata: "anndata.AnnData",
    *,
    kind: str,
    test_fraction: float = 0.25,
    val_fraction: float = 0.25,
    ctrl_fraction: float = 0.5,
    seed: int = 0,
    perturbation_key: str = "perturbation",
    control: str = CONTROL,
) -> PerturbationSplit:
    """Hold out whole perturbations of one kind, seeded, with a validation part for tuning.

    Labels are first normalized (``'B+A'`` is ``'A+B'``, control spellings such as ``'ctrl'``
    become ``'control'``), so one condition never has two names. Then:

    - ``"unseen_single"``: a seeded share of the single perturbations goes to ``test`` and
      another to ``val``; the rest train. A double containing a held-out single is in no part
      (``excluded_perturbations``): training on it would leak the held-out gene, and testing
      on it would mix another question into the test.
    - ``"double_seen2"``: test and validation doubles have both singles in training;
      every single and every other double trains.
    - ``"double_seen1"`` / ``"double_seen0"``: one / none of their singles in training. Doubles
      that already have that many measured singles are drawn first; beyond those, a double
      with more is made eligible by removing the surplus single(s) from training. A gene that is
      not seen appears in no training perturbation: its single and every other double containing
      it are excluded.

    ``test_fraction`` and ``val_fraction`` are shares of the eligible conditions (singles for
    ``unseen_single``; doubles with at least as many measured singles as promised, otherwise),
    rounded half up, at least one each. Control cells are split at random, ``ctrl_fraction``
    to ``ctrl`` (the input of ``predict``) and the rest to ``train``: a model never predicts
    from cells it was trained on, so memorizing training cells earns nothing. The control
    draw depends only on ``seed`` (not on ``kind``), so all kinds of one seed share ``ctrl``.
    Taught in ``09_linear_baselines`` and ``10_benchmarking``.

    Args:
        adata: cells x genes with ``obs[perturbation_key]`` (unique ``obs_names``).
        kind: one of :data:`SPLIT_KINDS`.
        test_fraction: share of eligible conditions held out for testing, in (0, 1).
        val_fraction: share held out for validation, in (0, 1); with ``test_fraction`` below 1.
        ctrl_fraction: share of control cells in ``ctrl`` rather than ``train``, in (0, 1).
        seed: seed of the draw (conditions and control cells).
        perturbation_key: the ``obs`` column of perturbation labels.
        control: the control label of ``adata`` if it is not one of the usual spellings.

    Returns:
        A :class:`PerturbationSplit` of new AnnData objects whose ``obs[perturbation_key]``
        holds the canonical labels; ``adata`` is not changed.

    Raises:
        ValueError: unknown kind, fraction out of range, missing column, duplicated cell names,
            fewer than two control cells, or too few conditions of the kind for non-empty
            validation and test parts (the message says how many there are).

    Example:
        >>> import numpy as np, anndata as ad, pandas as pd
        >>> labels = ["ctrl"] * 4 + ["A", "B", "C", "D", "B+A", "A+B"]
        >>> obs = pd.DataFrame({"perturbation": labels}, index=[f"c{i}" for i in range(10)])
        >>> s = perturbation_split(ad.AnnData(np.zeros((10, 2)), obs=obs), kind="unseen_single", seed=0)
        >>> s.test_perturbations, s.val_perturbations, s.train_perturbations, s.excluded_perturbations
        (['D'], ['A'], ['B', 'C'], {'A+B': 2})
    """
    import pandas as pd

    where = "perturbation_split"
    if kind not in SPLIT_KINDS:
        raise ValueError(f"{where}: unknown kind {kind!r}; use one of {list(SPLIT_KINDS)}.")
    for name, value in (("test_fraction", test_fraction), ("val_fraction", val_fraction),
                        ("ctrl_fraction", ctrl_fraction)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise ValueError(f"{where}: {name} must be a number strictly between 0 and 1, got {value!r}.")
    if test_fraction + val_fraction >= 1:
        raise ValueError(
            f"{where}: test_fraction + val_fraction must be below 1 (something must be left to train on); "
            f"got {test_fraction} + {val_fraction}."
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"{where}: seed must be a non-negative integer, got {seed!r}.")
    check_obs_columns(adata, [perturbation_key], where=where)
    if not adata.obs_names.is_unique:
        raise ValueError(f"{where}: obs_names are not unique, so cells cannot be told apart; "
                         "call adata.obs_names_make_unique() first.")
    raw = adata.obs[perturbation_key].astype(str).to_numpy()
    labels = np.asarray(normalize_perturbations(raw), dtype=object)
    labels[raw == str(control)] = CONTROL
    is_control = labels == CONTROL
    n_control = int(is_control.sum())
    if n_control < 2:
        raise ValueError(
            f"{where}: {n_control} control cell(s) in obs[{perturbation_key!r}] "
            f"(labels such as {sorted(set(raw))[:8]}); "
            "at least two are needed, one for training and one to predict from. Pass control='your label'."
        )
    perturbations = sorted(set(labels[~is_control]))

    seed = int(seed)
    rng = np.random.default_rng([seed, 1])

    def n_test_val(n: int, *, what: str, keep_one: bool) -> tuple[int, int]:
        return _sizes(n, test_fraction, val_fraction, what=what, keep_one=keep_one, where=f"{where}({kind!r})")

    if kind == "unseen_single":
        test, val, unseen = _hold_out_singles(perturbations, n_test_val, rng)
    else:
        test, val, unseen = _hold_out_doubles(perturbations, int(kind[-1]), n_test_val, rng, f"{where}({kind!r})")
    held = set(test) | set(val)
    train = [p for p in perturbations if p not in held and not set(perturbation_parts(p)) & unseen]
    excluded = sorted(set(perturbations) - held - set(train))

    # control cells: a seeded share to ctrl, independent of kind (own random stream)
    control_idx = np.flatnonzero(is_control)
    n_ctrl = min(max(1, _round_half_up(ctrl_fraction * n_control)), n_control - 1)
    ctrl_mask = np.zeros(adata.n_obs, dtype=bool)
    ctrl_mask[np.random.default_rng([seed, 0]).choice(control_idx, size=n_ctrl, replace=False)] = True
    train_mask = (is_control & ~ctrl_mask) | np.isin(labels, train)

    def part(mask: np.ndarray) -> "anndata.AnnData":
        out = adata[mask].copy()
        out.obs[perturbation_key] = pd.Categorical(labels[mask].astype(str))
        return out

    counts = pd.Series(labels).value_counts()
    return PerturbationSplit(
        train=part(train_mask), val=part(np.isin(labels, val)), test=part(np.isin(labels, test)), ctrl=part(ctrl_mask),
        train_perturbations=train, val_perturbations=sorted(val), test_perturbations=sorted(test),
        kind=kind, seed=seed, excluded_perturbations={p: int(counts[p]) for p in excluded},
        perturbation_key=perturbation_key,
    )


# --------------------------------------------------------------------------- the checks


def _fail(message: str) -> None:
    raise AssertionError(f"assert_disjoint: {message}")


def assert_disjoint(split: PerturbationSplit) -> None:
    """Check every promise of a :class:`PerturbationSplit`; raise AssertionError on the first broken one.

    - The perturbations of train, val, test (and the excluded ones) are pairwise disjoint, and
      each part holds exactly its listed perturbations (``ctrl`` only control cells); val and
      test are not empty.
    - No cell is in two parts (by ``obs_names``), control cells included.
    - ``unseen_single``: every val and test perturbation is a single whose gene appears in no
      training perturbation. ``double_seenK``: every val and test perturbation is a double with
      exactly K singles among the training perturbations, and its other gene(s) appear in no
      training perturbation.

    Used by the tests and by the benchmark of ``10_benchmarking`` before any model is fitted.

    Example:
        >>> import numpy as np, anndata as ad, pandas as pd
        >>> labels = ["control"] * 4 + ["A", "B", "C", "D"]
        >>> obs = pd.DataFrame({"perturbation": labels}, index=[f"c{i}" for i in range(8)])
        >>> split = perturbation_split(ad.AnnData(np.zeros((8, 2)), obs=obs), kind="unseen_single", seed=0)
        >>> assert_disjoint(split)
        >>> assert_disjoint(split._replace(val_perturbations=split.test_perturbations))
        Traceback (most recent call last):
        ...
        AssertionError: assert_disjoint: perturbations ['D'] are in both val and test.
    """
    key = split.perturbation_key
    named = {"train": split.train_perturbations, "val": split.val_perturbations, "test": split.test_perturbations,
             "excluded": list(split.excluded_perturbations)}
    names = list(named)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            shared = sorted(set(named[a]) & set(named[b]))
            if shared:
                _fail(f"perturbations {shared[:5]} are in both {a} and {b}.")
    for name in ("val", "test"):
        if not named[name]:
            _fail(f"the {name} part has no perturbations.")
    for name in ("train", "val", "test", "ctrl"):
        labels = set(getattr(split, name).obs[key].astype(str))
        expected = {CONTROL} | set(named["train"]) if name == "train" else set(named.get(name, [CONTROL]))
        if labels != expected:
            _fail(f"the {name} cells have labels {sorted(labels ^ expected)[:5]} that differ from its list.")
    cells = {name: set(getattr(split, name).obs_names) for name in ("train", "val", "test", "ctrl")}
    cell_names = list(cells)
    for i, a in enumerate(cell_names):
        for b in cell_names[i + 1:]:
            shared = sorted(cells[a] & cells[b])
            if shared:
                _fail(f"{len(shared)} cell(s) are in both {a} and {b}, e.g. {shared[:3]}.")
    train_singles = {p for p in named["train"] if len(perturbation_parts(p)) == 1}
    train_genes = {g for p in named["train"] for g in perturbation_parts(p)}
    want_parts, want_seen = (1, 0) if split.kind == "unseen_single" else (2, split.n_seen)
    for name in ("val", "test"):
        for p in named[name]:
            genes = perturbation_parts(p)
            seen = [g for g in genes if g in train_singles]
            leaked = sorted((set(genes) - set(seen)) & train_genes)
            if len(genes) != want_parts or len(seen) != want_seen or leaked:
                leak = f" and its unseen gene(s) {leaked} appear in training" if leaked else ""
                _fail(f"{name} perturbation {p!r} of a {split.kind!r} split has {len(seen)} single(s) in training "
                      f"(promised {want_seen}){leak}.")


# --------------------------------------------------------------------------- held-out cell types: variants


def subsample_perturbed(
    adata: "anndata.AnnData",
    *,
    fraction: float,
    seed: int = 0,
    cell_type_key: str = "cell_type",
    perturbation_key: str = "perturbation",
    control: str = CONTROL,
) -> "anndata.AnnData":
    """Keep a seeded ``fraction`` of the perturbed cells of every cell type, and every control cell.

    This makes an unbalanced data set (few perturbed cells beside many controls, as in most
    screens). To ask whether a model degrades on such data, apply it to the TRAINING part of a
    split only: ``split._replace(train=subsample_perturbed(split.train, fraction=0.2))``. The
    reference the predictions are judged against (``split.true``) then keeps its size; if the
    reference shrank too, its own noise would grow and every model, even no-change, would
    seem to get worse. Taught in ``10_benchmarking``.

    Args:
        adata: cells with ``obs[cell_type_key]`` and ``obs[perturbation_key]``.
        fraction: share of each cell type's perturbed cells to keep, in (0, 1]; at least one
            cell of each (cell type, perturbation) group is kept (``round`` half up otherwise).
        seed: seed of the choice.
        cell_type_key: the ``obs`` column of cell types.
        perturbation_key: the ``obs`` column of perturbation labels.
        control: the control label (control cells are all kept).

    Returns:
        A new AnnData with the kept cells in their original order.

    Example:
        >>> import numpy as np, anndata as ad, pandas as pd
        >>> obs = pd.DataFrame({"cell_type": np.repeat(["A", "B"], 20),
        ...                     "perturbation": np.tile(np.repeat(["control", "IFN"], 10), 2)})
        >>> obs.index = [f"c{i}" for i in range(40)]
        >>> small = subsample_perturbed(ad.AnnData(np.zeros((40, 2)), obs=obs), fraction=0.2, seed=0)
        >>> int((small.obs["perturbation"] == "IFN").sum()), int((small.obs["perturbation"] == "control").sum())
        (4, 20)
    """
    where = "subsample_perturbed"
    check_obs_columns(adata, [cell_type_key, perturbation_key], where=where)
    if isinstance(fraction, (bool, np.bool_)) or not isinstance(fraction, (int, float, np.integer, np.floating)) \
            or not 0 < float(fraction) <= 1:
        raise ValueError(f"{where}: fraction must be in (0, 1], e.g. 0.2 to keep 20% of the perturbed cells; "
                         f"got {fraction!r}.")
    labels = adata.obs[perturbation_key].astype(str).to_numpy()
    types = adata.obs[cell_type_key].astype(str).to_numpy()
    if not (labels != control).any():
        raise ValueError(f"{where}: no perturbed cells (every obs[{perturbation_key!r}] is {control!r}).")
    rng = np.random.default_rng(seed)
    keep = labels == control
    groups = sorted({(t, p) for t, p in zip(types, labels) if p != control})
    for cell_type, label in groups:
        idx = np.flatnonzero((types == cell_type) & (labels == label))
        n_keep = max(1, _round_half_up(float(fraction) * idx.size))
        keep[rng.choice(idx, size=n_keep, replace=False)] = True
    return adata[keep].copy()


def validation_holdout(split: Any, *, cell_type: str) -> Any:
    """A held-out-cell-type split for tuning, built from the TRAINING cells of ``split`` only.

    The test cell type's perturbed cells (``split.true``) are not in ``split.train``, so a
    tuner that fits on ``val.train`` and scores ``val.ctrl -> val.true`` can never read them.
    The test cell type's control cells (in ``split.train`` and ``split.ctrl``) are left out of
    the validation split too, so that nothing of the test cell type takes part in tuning.
    Taught in ``10_benchmarking``.

    Args:
        split: a :class:`tutorial_kit.models.Holdout` (the test split).
        cell_type: a training cell type (not ``split.cell_type``) to hold out for validation.

    Returns:
        A :class:`~tutorial_kit.models.ValidationHoldout` (a ``Holdout``) of copies, whose cells are
        all training cells of ``split``: the data :func:`~tutorial_kit.models.tune` accepts.

    Raises:
        ValueError: ``cell_type`` is the test cell type or has no perturbed cells in training.

    Example:
        >>> import numpy as np, anndata as ad, pandas as pd
        >>> from tutorial_kit.models import holdout
        >>> obs = pd.DataFrame({"cell_type": np.repeat(["A", "B", "C"], 20),
        ...                     "perturbation": np.tile(np.repeat(["control", "IFN"], 10), 3)})
        >>> obs.index = [f"c{i}" for i in range(60)]
        >>> test = holdout(ad.AnnData(np.zeros((60, 2)), obs=obs), cell_type="C", perturbation="IFN")
        >>> val = validation_holdout(test, cell_type="B")
        >>> val.cell_type, sorted(set(val.train.obs["cell_type"])), val.true.n_obs
        ('B', ['A', 'B'], 10)
    """
    from tutorial_kit.models.base import Holdout, ValidationHoldout, holdout

    where = "validation_holdout"
    if not isinstance(split, Holdout):
        raise ValueError(f"{where}: split must be a tk.models.Holdout (from tk.models.holdout); "
                         f"got {type(split).__name__}.")
    if cell_type == split.cell_type:
        raise ValueError(f"{where}: {cell_type!r} is the test cell type; choose another cell type for validation "
                         f"(training cell types: {sorted(set(split.train.obs[split.cell_type_key].astype(str)) - {split.cell_type})}).")
    control = sorted(set(split.ctrl.obs[split.perturbation_key].astype(str)))[0]
    train = split.train[split.train.obs[split.cell_type_key].astype(str) != split.cell_type]
    val = holdout(train, cell_type=cell_type, perturbation=split.perturbation, cell_type_key=split.cell_type_key,
                  perturbation_key=split.perturbation_key, control=control)
    test_cells = set(split.true.obs_names) | set(split.ctrl.obs_names)
    for part in (val.train, val.ctrl, val.true):
        if test_cells & set(part.obs_names):  # pragma: no cover - guaranteed by construction
            raise AssertionError(f"{where}: a test cell reached the validation split.")
    return ValidationHoldout(*val)
