"""tutorial_kit: the companion package of the course on generative AI for single-cell perturbation modelling.

One function per idea, AnnData in and AnnData / DataFrame out.
Submodules are imported lazily, so ``import tutorial_kit as tk`` is fast and pulls
in neither torch nor scanpy:

- ``tk.config``: data tier, epoch budgets, device, seeds.
- ``tk.data``: the data registry (cache, mirror, network) and one loader per dataset.
- ``tk.metrics``: the evaluation metrics of the course, and ``evaluate``.
- ``tk.validate``: the input checks every public function uses.
- ``tk.arrays``: dense copies, rows, columns and column means of dense or sparse matrices.
- ``tk.stats``: the mean over seeds and its Student t interval (one implementation for models and simulators).
- ``tk.qc``: guide calling, on-target checks, escaping cells, perturbation strength.
- ``tk.plotting``: the figures of the notebooks.
- ``tk.simulate``: count simulators (copula, GRN, GAN) and their realism checks.
- ``tk.models``: perturbation-response models (baselines, scGen, scPRAM) behind one interface.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = ("config", "data", "metrics", "validate", "arrays", "stats", "qc", "plotting", "simulate", "models")
__all__ = [*_SUBMODULES, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'tutorial_kit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
