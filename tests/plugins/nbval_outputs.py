"""A pytest plugin for nbval runs: keep the outputs nbval produced, so the book renders them.

nbval executes every code cell of a notebook in a kernel and checks it, but throws the outputs
away. With ``-p nbval_outputs --nbval-keep-outputs DIR`` (``tests/plugins`` on ``PYTHONPATH``),
this plugin writes each notebook that passed, with the outputs of that very run, to
``DIR/<notebook>.ipynb``, and the wall time of every code cell (with its first line, to find it) to ``DIR/<notebook>.cells.tsv``.
``book/build.py --from-executed DIR`` then renders those notebooks without executing them again,
so CI executes every notebook exactly once (tests/test_notebooks.py, tests/test_book.py).

Each kept notebook records in ``metadata.tutorial_kit`` the SHA-256 of the source file it was
executed from, the data tier, the seconds, and that nbval executed it: the book build refuses a
copy whose source has changed since. A notebook with a failing cell is not kept (an older copy is
removed), so the book never shows outputs of a run that failed. Files are written atomically.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

_STASH: dict[str, dict] = {}


def pytest_addoption(parser):
    parser.addoption("--nbval-keep-outputs", default=None, metavar="DIR",
                     help="write each notebook that passed, with the outputs of this run, to DIR")


def _is_cell(item) -> bool:
    return hasattr(item, "test_outputs") and hasattr(item, "cell") and hasattr(item.parent, "nb")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    start = time.perf_counter()
    yield
    if _is_cell(item):
        record = _STASH.setdefault(str(item.parent.path), {"nb": None, "failed": False, "cells": [], "count": 0})
        first = next((line.strip() for line in item.cell.source.splitlines() if line.strip()), "")
        record["cells"].append((item.name, time.perf_counter() - start, first[:100].replace("\t", " ")))


def _ends_quiet(source: str) -> bool:
    """Whether a cell's last line of code ends with ';' (IPython's sign to show no value)."""
    lines = [line.split("#", 1)[0].rstrip() for line in source.splitlines()]
    code = [line for line in lines if line]
    return bool(code) and code[-1].endswith(";")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if not _is_cell(item) or call.when != "call":
        return
    report = outcome.get_result()
    record = _STASH.setdefault(str(item.parent.path), {"nb": None, "failed": False, "cells": [], "count": 0})
    record["nb"] = item.parent.nb
    if report.failed:
        record["failed"] = True
    record["count"] += 1
    cell = item.cell
    cell.outputs = list(item.test_outputs or [])
    if _ends_quiet(cell.source):
        # nbval executes with store_history=False, and IPython then misses the trailing ';' that
        # suppresses the cell's value; drop it here as JupyterLab would (else each figure shows twice)
        cell.outputs = [out for out in cell.outputs if out.get("output_type") != "execute_result"]
    cell.execution_count = record["count"]
    for out in cell.outputs:
        if out.get("output_type") == "execute_result":
            out["execution_count"] = record["count"]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def pytest_sessionfinish(session, exitstatus):
    target = session.config.getoption("--nbval-keep-outputs")
    if not target:
        return
    import nbformat

    folder = Path(target)
    folder.mkdir(parents=True, exist_ok=True)
    for source, record in _STASH.items():
        source = Path(source)
        kept = folder / source.name
        cells = sum(1 for c in (record["nb"].cells if record["nb"] else []) if c.cell_type == "code")
        complete = record["nb"] is not None and record["count"] == cells
        if record["failed"] or not complete or session.shouldfail or session.shouldstop:
            kept.unlink(missing_ok=True)  # never leave outputs of an earlier, different run
            continue
        nb = record["nb"]
        nb.metadata["tutorial_kit"] = {
            "executed_by": "nbval",
            "source_sha256": hashlib.sha256(source.read_bytes()).hexdigest(),
            "tier": os.environ.get("TUTORIAL_KIT_TIER", "ci"),
            "seconds": round(sum(c[1] for c in record["cells"]), 1),
        }
        _write_atomic(kept, nbformat.writes(nb))
        lines = ["cell\tseconds\tfirst line"] + [f"{name}\t{seconds:.2f}\t{first}" for name, seconds, first in record["cells"]]
        _write_atomic(folder / f"{source.stem}.cells.tsv", "\n".join(lines) + "\n")
