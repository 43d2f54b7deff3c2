"""Summaries over seeds: the mean, its spread and a Student t confidence interval, in one long table.

A single run says little: the same model, simulator or split with another seed can score
quite differently. Every table of the course that repeats a run over seeds (models in
``04_scgen`` to ``10_benchmarking``, simulators in ``02_simulation_statistical`` and
``03_simulation_gan``) is summarized here, by ONE implementation of the interval:

- :func:`summarize_seeds`: per key (model, metric, ...), ``mean``, ``sd`` (``ddof=1``),
  ``n_seeds`` and the interval ``mean -+ t_{(1+confidence)/2, n-1} * sd / sqrt(n)``.
- :func:`interval_table`: a readable wide table of ``mean [ci_low, ci_high]`` strings.

:func:`tutorial_kit.models.summarize_seeds`, :func:`tutorial_kit.models.interval_table` and
:func:`tutorial_kit.simulate.summarize_realism` are these two functions with the column names
of their own tables. The interval is one for the mean over seeds, not a bound on the metric:
with three seeds it can leave the range of the metric (above 1 for a correlation).
See the book page *How the course evaluates models* (book/evaluation.md).

Example:
    >>> import pandas as pd
    >>> runs = pd.DataFrame({"simulator": ["copula"] * 3, "metric": "rf_auroc", "seed": [0, 1, 2],
    ...                      "value": [0.70, 0.74, 0.78]})
    >>> interval_table(summarize_seeds(runs), index="simulator", columns="metric").to_dict()
    {'rf_auroc': {'copula': '0.740 [0.641, 0.839]'}}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = ["BOOKKEEPING", "SUMMARY_COLUMNS", "interval_table", "summarize_seeds"]

BOOKKEEPING = ("n_genes", "n_cells", "n_perturbations", "fit_seconds", "seconds_per_epoch", "epochs")
"""Numeric columns of the course's tables that describe a run, not what it is a run of.

With ``by=None``, :func:`summarize_seeds` groups by every column except the seed, the value
and these.
"""

SUMMARY_COLUMNS = ("mean", "sd", "n_seeds", "ci_low", "ci_high")
"""The columns :func:`summarize_seeds` adds after the key columns, in order."""


def _names(columns: str | Sequence[str], what: str, where: str) -> list[str]:
    names = [columns] if isinstance(columns, str) else list(columns)
    if not all(isinstance(c, str) for c in names):
        raise ValueError(f"{where}: {what} must be a column name or a list of column names; got {columns!r}.")
    return names


def _missing(table: Any, columns: Sequence[str], where: str, hint: str) -> None:
    missing = [c for c in columns if c not in getattr(table, "columns", [])]
    if missing:
        have = list(getattr(table, "columns", []))[:12]
        raise ValueError(f"{where}: the table is missing column(s) {missing} (it has {have}); {hint}")


def summarize_seeds(
    table: "pd.DataFrame",
    *,
    by: str | Sequence[str] | None = None,
    value: str = "value",
    seed: str = "seed",
    confidence: float = 0.95,
) -> "pd.DataFrame":
    """Mean, standard deviation and Student t confidence interval over seeds, per key.

    One row per combination of the ``by`` columns, in the order in which the combinations first
    appear in ``table`` (not alphabetical). Non-finite values (NaN, e.g. ``pearson_delta`` of a
    no-change model, which is undefined) are left out, and ``n_seeds`` counts only the values used.
    ``sd`` uses ``ddof=1``; the interval is ``mean -+ t_{(1+confidence)/2, n-1} * sd / sqrt(n)``.
    With a single seed the spread is unknown: ``sd``, ``ci_low`` and ``ci_high`` are NaN.
    With zero spread the interval collapses to the mean.
    Taught in ``04_scgen`` (seeds) and ``02_simulation_statistical`` (simulators over seeds).

    Args:
        table: a long table with one row per key and seed.
        by: the key columns. ``None``: every column except ``seed``, ``value`` and the numeric
            bookkeeping columns of :data:`BOOKKEEPING` (``fit_seconds``, ``n_genes``, ...), in the
            order of the table; a remaining float column is refused (name ``by`` then).
        value: the column of values.
        seed: the column of seeds (each key may appear once per seed).
        confidence: confidence level of the interval, in (0, 1).

    Returns:
        DataFrame with the ``by`` columns, then ``mean, sd, n_seeds, ci_low, ci_high``;
        ``attrs['confidence']`` holds the level and ``attrs['interval']`` says how it was computed.

    Raises:
        ValueError: for a missing column, an empty table, a confidence outside (0, 1), or a key
            that appears twice for one seed (a table concatenated twice, or a key column forgotten).

    Example:
        >>> import pandas as pd
        >>> t = pd.DataFrame({"model": ["m"] * 3, "seed": [0, 1, 2], "value": [1.0, 2.0, 3.0]})
        >>> summarize_seeds(t).round(3).to_dict("records")  # mean 2, sd 1, t(0.975, 2) = 4.303
        [{'model': 'm', 'mean': 2.0, 'sd': 1.0, 'n_seeds': 3, 'ci_low': -0.484, 'ci_high': 4.484}]
    """
    import pandas as pd
    from scipy import stats

    where = "summarize_seeds"
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"{where}: table must be a pandas DataFrame with one row per key and seed; "
                         f"got {type(table).__name__}.")
    if isinstance(confidence, (bool, np.bool_)) or not isinstance(confidence, (int, float, np.number)) \
            or not 0 < float(confidence) < 1:
        raise ValueError(f"{where}: confidence must be between 0 and 1 (e.g. 0.95); got {confidence!r}.")
    _missing(table, [seed, value], where, "name them with seed=... and value=... .")
    if by is None:
        skip = {seed, value, *BOOKKEEPING}
        keys = [c for c in table.columns if c not in skip]
        floats = [c for c in keys if pd.api.types.is_float_dtype(table[c])]
        if floats:
            raise ValueError(f"{where}: column(s) {floats} hold floating-point numbers, which are rarely keys; "
                             f"name the key columns with by=[...] (e.g. by={keys[:2] if len(keys) > 1 else keys}).")
    else:
        keys = _names(by, "by", where)
        _missing(table, keys, where, "pass by= the key columns of the table.")
    if seed in keys or value in keys:
        raise ValueError(f"{where}: by must not contain the seed ({seed!r}) or value ({value!r}) column; got {keys}.")
    if len(table) == 0:
        raise ValueError(f"{where}: the table is empty; nothing to summarize.")
    dup = table.duplicated(subset=keys + [seed])
    if dup.any():
        first = table.loc[dup, keys + [seed]].iloc[0].to_dict()
        raise ValueError(
            f"{where}: {int(dup.sum())} duplicated row(s) for one key and seed (e.g. {first}); each combination "
            f"of {keys} must appear once per seed. Did you concatenate a table twice, or leave out a key column?"
        )
    try:
        values = table[value].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: the value column {value!r} must hold numbers.") from None
    level = float(confidence)
    t_factor: dict[int, float] = {}  # t_{(1+c)/2, n-1}, once per number of seeds
    groups = table.groupby(keys, sort=False, dropna=False, observed=True).indices.values() if keys \
        else [np.arange(len(table))]
    firsts, rows = [], []
    for idx in groups:
        idx = np.sort(np.asarray(idx))
        finite = values[idx][np.isfinite(values[idx])]
        n = int(finite.size)
        mean = float(finite.mean()) if n else float("nan")
        sd = float(finite.std(ddof=1)) if n >= 2 else float("nan")
        if n >= 2:
            if n not in t_factor:
                t_factor[n] = float(stats.t.ppf((1 + level) / 2, n - 1))
            half = t_factor[n] * sd / np.sqrt(n)
        else:
            half = float("nan")
        firsts.append(idx[0])
        rows.append((mean, sd, n, mean - half, mean + half))
    order = np.argsort(firsts, kind="stable")
    out = table.iloc[[firsts[i] for i in order]][keys].reset_index(drop=True)
    out = pd.concat([out, pd.DataFrame([rows[i] for i in order], columns=list(SUMMARY_COLUMNS))], axis=1)
    out["n_seeds"] = out["n_seeds"].astype(np.int64)
    out.attrs["confidence"] = level
    out.attrs["interval"] = "Student t: mean -+ t_{(1+c)/2, n-1} sd / sqrt(n); NaN with one seed"
    return out


def interval_table(
    summary: "pd.DataFrame", *, index: str | Sequence[str], columns: str | Sequence[str], digits: int = 3
) -> "pd.DataFrame":
    """A readable wide table of a summary: ``mean [ci_low, ci_high]`` per row key and column key.

    Reads the output of :func:`summarize_seeds`. Rows and columns keep the order in which
    their values first appear in ``summary``. A NaN mean (an undefined metric) reads ``n/a``;
    a mean without an interval (one seed) reads as the mean alone; a combination absent from
    the summary reads ``-``.
    Taught in ``02_simulation_statistical``; :func:`tutorial_kit.models.interval_table` is this
    table for models (``09_linear_baselines``, ``10_benchmarking``).

    Args:
        summary: columns ``index``, ``columns``, ``mean``, ``ci_low``, ``ci_high``.
        index: the column(s) whose values become the rows (e.g. ``'simulator'``).
        columns: the column(s) whose values become the columns (e.g. ``'metric'``).
        digits: decimals shown.

    Returns:
        DataFrame of strings; its index and columns are named after ``index`` and ``columns``.

    Raises:
        ValueError: for a missing column or a row x column combination that appears twice.

    Example:
        >>> import pandas as pd
        >>> s = pd.DataFrame({"simulator": ["floor", "floor", "copula"], "metric": ["auroc", "mmd", "auroc"],
        ...                   "mean": [0.5, 0.01, 0.8], "ci_low": [0.45, 0.0, 0.7], "ci_high": [0.55, 0.02, 0.9]})
        >>> interval_table(s, index="simulator", columns="metric", digits=2).to_dict("index")
        {'floor': {'auroc': '0.50 [0.45, 0.55]', 'mmd': '0.01 [0.00, 0.02]'}, 'copula': {'auroc': '0.80 [0.70, 0.90]', 'mmd': '-'}}
    """
    import pandas as pd

    where = "interval_table"
    rows_by, cols_by = _names(index, "index", where), _names(columns, "columns", where)
    _missing(summary, [*rows_by, *cols_by, "mean", "ci_low", "ci_high"], where,
             "pass the output of tk.stats.summarize_seeds (or of tk.models.summarize_seeds).")
    if isinstance(digits, (bool, np.bool_)) or not isinstance(digits, (int, np.integer)) or digits < 0:
        raise ValueError(f"{where}: digits must be a non-negative integer; got {digits!r}.")
    dup = summary.duplicated(subset=rows_by + cols_by)
    if dup.any():
        first = summary.loc[dup, rows_by + cols_by].iloc[0].to_dict()
        raise ValueError(f"{where}: {int(dup.sum())} row(s) of the summary share one cell of the table (e.g. {first}); "
                         "select one value of the other key columns first, or add them to index=[...].")

    def cell(mean: float, low: float, high: float) -> str:
        if not np.isfinite(mean):
            return "n/a"
        if not (np.isfinite(low) and np.isfinite(high)):
            return f"{mean:.{digits}f}"
        return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"

    numbers = summary[["mean", "ci_low", "ci_high"]].to_numpy(dtype=np.float64)
    text = pd.Series([cell(*row) for row in numbers], index=summary.index, dtype=object)
    one = (lambda names: names[0] if len(names) == 1 else names)  # noqa: E731
    wide = summary.assign(_text=text).pivot(index=one(rows_by), columns=one(cols_by), values="_text")

    def first_seen(names: list[str]) -> Any:
        if len(names) == 1:
            return pd.Index(pd.unique(summary[names[0]]), name=names[0])
        return pd.MultiIndex.from_tuples(list(dict.fromkeys(zip(*(summary[c] for c in names)))), names=names)

    return wide.reindex(index=first_seen(rows_by), columns=first_seen(cols_by)).fillna("-")
