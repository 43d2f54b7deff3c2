"""Course-wide configuration: data tier, epoch budgets, device and seeds.

Taught in the setup chapter (``notebooks/00_setup_check``).
Everything here reads environment variables at call time, so an instructor can
switch a whole workshop with one ``export`` and nothing is decided at import.

Environment variables:
    ``TUTORIAL_KIT_TIER``: ``ci`` (small real files, minutes on a laptop CPU;
        the default) or ``workshop`` (full public datasets, a GPU helps).
    ``TUTORIAL_KIT_DEVICE``: ``cpu``, ``cuda`` or ``cuda:N`` to override the
        automatic choice (CUDA when present, else CPU).
    ``TUTORIAL_KIT_SEED``: the default seed (``0``).
"""

from __future__ import annotations

import contextlib
import os
import random
from typing import Iterator

from tutorial_kit._tiers import TIERS

__all__ = [
    "COURSE_PACKAGES",
    "EPOCHS",
    "TIERS",
    "adam",
    "benchmark_matmul",
    "default_seed",
    "describe",
    "devices",
    "epochs",
    "get_device",
    "get_tier",
    "rng",
    "seed_everything",
    "set_tier",
    "use_tier",
    "versions",
]

EPOCHS: dict[str, dict[str, int]] = {
    "scgen": {"ci": 10, "workshop": 100},
    "scpram": {"ci": 10, "workshop": 100},
    "cpa": {"ci": 10, "workshop": 200},
    "cpa_dose": {"ci": 50, "workshop": 300},
    "contrastivevi": {"ci": 60, "workshop": 400},
    "gan": {"ci": 30, "workshop": 300},
    "vae": {"ci": 10, "workshop": 100},
    "jepa": {"ci": 20, "workshop": 200},
    "diffusion": {"ci": 20, "workshop": 300},
    "foundation": {"ci": 5, "workshop": 50},
}
"""Training epochs per model family and tier (CI budgets keep each notebook under 3 minutes)."""

_tier_override: str | None = None


def get_tier() -> str:
    """Return the active data tier, ``'ci'`` or ``'workshop'``.

    Order: :func:`set_tier` / :func:`use_tier` in this process, then the
    ``TUTORIAL_KIT_TIER`` environment variable, then ``'ci'``.

    Example:
        >>> import tutorial_kit as tk
        >>> tk.config.get_tier() in tk.config.TIERS
        True
    """
    tier = _tier_override or os.environ.get("TUTORIAL_KIT_TIER", "ci")
    tier = tier.strip().lower()
    if tier not in TIERS:
        raise ValueError(
            f"Unknown data tier {tier!r} (from TUTORIAL_KIT_TIER). "
            f"Use one of {TIERS}, e.g. `export TUTORIAL_KIT_TIER=ci`."
        )
    return tier


def set_tier(tier: str | None) -> None:
    """Set the data tier for this process (``None`` returns to the environment variable).

    Example:
        >>> import tutorial_kit as tk
        >>> tk.config.set_tier("workshop"); tk.config.get_tier()
        'workshop'
        >>> tk.config.set_tier(None)
    """
    global _tier_override
    if tier is not None and tier not in TIERS:
        raise ValueError(f"Unknown data tier {tier!r}; use one of {TIERS}.")
    _tier_override = tier


@contextlib.contextmanager
def use_tier(tier: str) -> Iterator[str]:
    """Context manager that switches the tier temporarily.

    Example:
        >>> import tutorial_kit as tk
        >>> with tk.config.use_tier("workshop"):
        ...     tk.config.epochs("scgen")
        100
    """
    global _tier_override
    previous = _tier_override
    set_tier(tier)
    try:
        yield tier
    finally:
        _tier_override = previous


MAX_EPOCHS_ENV = "TUTORIAL_KIT_MAX_EPOCHS"
"""Environment variable: a cap on the epochs of the active tier, for a dry run of the workshop notebooks."""


def epochs(model: str, *, tier: str | None = None) -> int:
    """Epoch budget of ``model`` for the active (or given) tier.

    Without ``tier``, the budget actually used is returned: the active tier's, capped by
    ``TUTORIAL_KIT_MAX_EPOCHS`` when that is set. The cap is for a dry run, e.g. an instructor
    checking on a laptop that every workshop notebook reads the full data before the day, or the
    test that runs notebooks at the workshop tier on stand-ins; the table itself
    (``tier='ci'`` / ``'workshop'``) is never capped.

    Example:
        >>> import tutorial_kit as tk
        >>> tk.config.epochs("scgen", tier="ci")
        10
    """
    key = model.lower()
    if key not in EPOCHS:
        raise ValueError(f"No epoch budget for model {model!r}; known models: {sorted(EPOCHS)}.")
    if tier is not None:
        return EPOCHS[key][tier]
    budget = EPOCHS[key][get_tier()]
    cap = os.environ.get(MAX_EPOCHS_ENV, "").strip()
    if not cap:
        return budget
    try:
        value = int(cap)
    except ValueError:
        raise ValueError(f"{MAX_EPOCHS_ENV} must be a positive integer, got {cap!r}.") from None
    if value < 1:
        raise ValueError(f"{MAX_EPOCHS_ENV} must be a positive integer, got {cap!r}.")
    return min(budget, value)


def default_seed() -> int:
    """The course-wide default seed (``TUTORIAL_KIT_SEED``, else 0)."""
    raw = os.environ.get("TUTORIAL_KIT_SEED", "0")
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"TUTORIAL_KIT_SEED must be an integer, got {raw!r}.") from None


def get_device(prefer: str | None = None) -> str:
    """Choose the compute device: CUDA when present, else CPU.

    ``prefer`` (or ``TUTORIAL_KIT_DEVICE``) overrides the automatic choice.
    Asking for CUDA on a machine without it is an error, not a silent CPU run.
    Returns a string such as ``'cpu'`` or ``'cuda:0'`` that torch accepts.
    torch is imported only here, lazily; without torch the answer is ``'cpu'``.

    Example:
        >>> import tutorial_kit as tk
        >>> tk.config.get_device("cpu")
        'cpu'
    """
    wanted = (prefer or os.environ.get("TUTORIAL_KIT_DEVICE", "")).strip().lower()
    if wanted and wanted != "cpu" and not wanted.startswith("cuda"):
        raise ValueError(
            f"Unknown device {wanted!r} (from TUTORIAL_KIT_DEVICE or prefer=). "
            "Use 'cpu', 'cuda' or 'cuda:N'."
        )
    if wanted == "cpu":
        return "cpu"
    try:
        import torch
    except ImportError:
        if wanted:
            raise RuntimeError(
                f"Device {wanted!r} was requested but torch is not installed in this environment. "
                "Build the session environment (see README) or unset TUTORIAL_KIT_DEVICE."
            ) from None
        return "cpu"
    has_cuda = torch.cuda.is_available()
    if wanted:
        if not has_cuda:
            why = (
                f"this torch ({torch.__version__}) is a CPU build: on a GPU server, build the CUDA environment "
                "with `python3 environments/build.py core --cuda` (book/setup.md, 'GPU server')"
                if torch.version.cuda is None
                else f"this torch is built for CUDA {torch.version.cuda} but sees no GPU: check `nvidia-smi` "
                "(driver and GPU) and CUDA_VISIBLE_DEVICES"
            )
            raise RuntimeError(
                f"Device {wanted!r} was requested but CUDA is not available on this machine: {why}. "
                "Or unset TUTORIAL_KIT_DEVICE (or set it to 'cpu')."
            )
        if wanted.startswith("cuda:") and wanted[5:].isdigit() and int(wanted[5:]) >= torch.cuda.device_count():
            raise RuntimeError(
                f"Device {wanted!r} was requested but this machine has {torch.cuda.device_count()} GPU(s), "
                f"cuda:0 to cuda:{torch.cuda.device_count() - 1}."
            )
        return "cuda:0" if wanted == "cuda" else wanted
    return "cuda:0" if has_cuda else "cpu"


def adam(params, **kwargs):
    """``torch.optim.Adam`` with PyTorch's fused kernel on CPU and CUDA: the same update, computed faster.

    The default Adam updates each weight tensor in its own loop of small operations; the fused
    kernel does all of them in one pass. For networks whose time goes into the update rather than
    the forward pass (scGen's 2,000-gene VAE with minibatches of 32 cells: the update was 10 of
    17 ms per step on two CPU cores, 2 ms fused), training is two to three times faster and the
    losses agree to rounding. Every model of the course that trains with Adam builds it here.
    On other devices (or a torch without the fused kernel) it returns the default Adam.

    Args:
        params: the parameters to optimize (tensors, all on one device).
        **kwargs: passed to ``torch.optim.Adam`` (``lr``, ``betas``, ``eps``, ``weight_decay``).

    Example:
        >>> import torch, tutorial_kit as tk
        >>> w = torch.nn.Parameter(torch.ones(3))
        >>> opt = tk.config.adam([w], lr=0.1)
        >>> (w ** 2).sum().backward(); opt.step()
        >>> bool(opt.defaults["fused"]), [round(v, 4) for v in w.tolist()]
        (True, [0.9, 0.9, 0.9])
    """
    import torch

    params = list(params)
    devices = {p.device.type for p in params}
    if "fused" not in kwargs and devices and devices <= {"cpu", "cuda"}:
        try:
            return torch.optim.Adam(params, fused=True, **kwargs)
        except (RuntimeError, TypeError, ValueError):  # a torch or dtype without the fused kernel
            pass
    return torch.optim.Adam(params, **kwargs)


def seed_everything(seed: int | None = None) -> int:
    """Seed Python's ``random``, NumPy and (if installed) torch, on CPU and CUDA.

    Also sets ``PYTHONHASHSEED`` for child processes.
    Returns the seed used, so notebooks can print it.

    Example:
        >>> import numpy as np, tutorial_kit as tk
        >>> _ = tk.config.seed_everything(3); a = np.random.rand()
        >>> _ = tk.config.seed_everything(3); a == np.random.rand()
        True
    """
    import numpy as np

    seed = default_seed() if seed is None else int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    os.environ["PYTHONHASHSEED"] = str(seed)
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        import torch

        torch.manual_seed(seed)
        if torch.cuda.is_available():  # pragma: no cover - no GPU in CI
            torch.cuda.manual_seed_all(seed)
    return seed


def rng(seed: int | None = None):
    """A NumPy ``Generator`` from ``seed`` (the course default when ``None``)."""
    import numpy as np

    return np.random.default_rng(default_seed() if seed is None else seed)


def describe() -> dict[str, str]:
    """A dictionary of the active settings, for the setup notebook and bug reports.

    Every notebook prints it near the top, so a rendered page says which data tier,
    device and environment produced its outputs.

    Example:
        >>> import tutorial_kit as tk
        >>> sorted(tk.config.describe())
        ['cache', 'device', 'environment', 'mirror', 'seed', 'tier']
    """
    import sys

    from tutorial_kit.data.registry import cache_dir, mirror_dir

    mirror = mirror_dir()
    return {
        "tier": get_tier(),
        "device": get_device(),
        "seed": str(default_seed()),
        "environment": sys.prefix,
        "cache": str(cache_dir()),
        "mirror": str(mirror) if mirror else "(none: set TUTORIAL_KIT_MIRROR)",
    }


def devices():
    """Which devices each framework of the course sees: PyTorch (most models) and JAX (pertpy's scGen).

    Each framework finds its GPUs on its own, and each needs its CUDA build to find any: the
    environment files install the CPU builds, ``python3 environments/build.py core --cuda``
    the CUDA ones. torch and jax are imported here, lazily; jax is optional. Before jax starts,
    ``XLA_PYTHON_CLIENT_PREALLOCATE`` is set to ``false`` unless it is set already, so that
    looking at the devices does not reserve three quarters of the GPU's memory for this process.

    Returns:
        A DataFrame with one row per framework (``torch``, ``jax``): ``framework``, ``version``
        (``'not installed'`` when missing), ``cuda_build`` (whether it is a CUDA build),
        ``devices`` (the devices it sees, e.g. ``'cpu'`` or ``'cpu, cuda:0 (NVIDIA H200)'``)
        and ``note`` (what to do when it is missing or sees no GPU; empty otherwise).

    Example:
        >>> import tutorial_kit as tk
        >>> table = tk.config.devices()
        >>> list(table.columns), list(table["framework"])
        (['framework', 'version', 'cuda_build', 'devices', 'note'], ['torch', 'jax'])
    """
    import importlib.util

    import pandas as pd

    build_hint = "on a GPU server: python3 environments/build.py core --cuda"
    rows = []
    if importlib.util.find_spec("torch") is None:
        rows.append({"framework": "torch", "version": "not installed", "cuda_build": False, "devices": "",
                     "note": "build the session environment: python3 environments/build.py core"})
    else:
        import torch

        cuda_build = torch.version.cuda is not None
        seen = ["cpu"]
        if torch.cuda.is_available():
            seen += [f"cuda:{i} ({torch.cuda.get_device_name(i)})" for i in range(torch.cuda.device_count())]
        note = "" if len(seen) > 1 else (
            f"CUDA {torch.version.cuda} build, but no GPU visible: check nvidia-smi" if cuda_build else f"CPU build; {build_hint}"
        )
        rows.append({"framework": "torch", "version": torch.__version__, "cuda_build": cuda_build,
                     "devices": ", ".join(seen), "note": note})
    if importlib.util.find_spec("jax") is None:
        rows.append({"framework": "jax", "version": "not installed", "cuda_build": False, "devices": "",
                     "note": "optional, for pertpy's scGen: pip install 'scvi-tools[jax]' (in the core environment)"})
    else:
        from importlib import metadata

        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        import jax

        plugins = []
        for dist in ("jax-cuda12-plugin", "jax-cuda13-plugin"):
            try:
                plugins.append(metadata.version(dist))
            except metadata.PackageNotFoundError:
                pass
        seen = ["cpu"]
        try:
            seen += [f"gpu:{d.id} ({d.device_kind})" for d in jax.devices("gpu")]
        except RuntimeError:  # no gpu backend: a CPU jaxlib, or no GPU visible
            pass
        note = "" if len(seen) > 1 else ("CUDA plugin installed, but no GPU visible: check nvidia-smi" if plugins else f"CPU build; {build_hint}")
        rows.append({"framework": "jax", "version": jax.__version__, "cuda_build": bool(plugins),
                     "devices": ", ".join(seen), "note": note})
    return pd.DataFrame(rows, columns=["framework", "version", "cuda_build", "devices", "note"])


COURSE_PACKAGES = ("tutorial_kit", "numpy", "scipy", "pandas", "anndata", "scanpy", "scikit-learn", "torch", "pertpy", "matplotlib")
"""The packages whose versions the setup check reports."""


def versions(packages: tuple[str, ...] = COURSE_PACKAGES) -> dict[str, str]:
    """Installed versions of the course packages (``'not installed'`` when missing), without importing them.

    Example:
        >>> import tutorial_kit as tk
        >>> tk.config.versions(("tutorial_kit", "no-such-package"))["no-such-package"]
        'not installed'
    """
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in packages:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def benchmark_matmul(*, size: int = 1024, repeats: int = 5, devices: tuple[str, ...] | None = None, seed: int = 0):
    """Time a ``size x size`` float32 matrix product on each device (CPU, and CUDA when present).

    The first product on each device is a warm-up and is not timed; CUDA is synchronized
    around each timed product. Taught in notebook 00 (setup check).

    Returns:
        A DataFrame with one row per device: ``device``, ``seconds`` (median of ``repeats``),
        ``gflops`` (2 size^3 / seconds) and ``speedup_vs_cpu``.

    Example:
        >>> import tutorial_kit as tk
        >>> df = tk.config.benchmark_matmul(size=64, repeats=2, devices=("cpu",))
        >>> list(df.columns), float(df.loc[0, "speedup_vs_cpu"])
        (['device', 'seconds', 'gflops', 'speedup_vs_cpu'], 1.0)
    """
    import time

    import pandas as pd
    import torch

    if size < 1 or repeats < 1:
        raise ValueError(f"size and repeats must be positive; got size={size}, repeats={repeats}.")
    if devices is None:
        devices = ("cpu", get_device()) if get_device() != "cpu" else ("cpu",)
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(size, size, generator=gen)
    b = torch.randn(size, size, generator=gen)
    rows = []
    for device in devices:
        x, y = a.to(device), b.to(device)
        sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
        x @ y  # warm-up
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            x @ y
            sync()
            times.append(time.perf_counter() - start)
        seconds = sorted(times)[len(times) // 2]
        rows.append({"device": str(device), "seconds": seconds, "gflops": 2 * size**3 / seconds / 1e9})
    df = pd.DataFrame(rows)
    df["speedup_vs_cpu"] = df.loc[0, "seconds"] / df["seconds"] if rows[0]["device"] == "cpu" else float("nan")
    return df
