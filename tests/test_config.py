import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

import tutorial_kit as tk
from tutorial_kit import config


def test_tier_default_env_and_override(monkeypatch):
    monkeypatch.delenv("TUTORIAL_KIT_TIER", raising=False)
    assert config.get_tier() == "ci"
    monkeypatch.setenv("TUTORIAL_KIT_TIER", " Workshop ")
    assert config.get_tier() == "workshop"
    assert config.epochs("scgen") == config.EPOCHS["scgen"]["workshop"]
    with config.use_tier("ci"):
        assert config.get_tier() == "ci"
        assert config.epochs("scgen") == config.EPOCHS["scgen"]["ci"]
    assert config.get_tier() == "workshop"
    config.set_tier("ci")
    assert config.get_tier() == "ci"
    config.set_tier(None)
    assert config.get_tier() == "workshop"


def test_bad_tier_and_model(monkeypatch):
    monkeypatch.setenv("TUTORIAL_KIT_TIER", "huge")
    with pytest.raises(ValueError, match="Unknown data tier 'huge'"):
        config.get_tier()
    with pytest.raises(ValueError, match="use one of"):
        config.set_tier("huge")
    with pytest.raises(ValueError, match="No epoch budget for model 'nope'"):
        config.epochs("nope", tier="ci")


def test_ci_budgets_are_smaller():
    for model, budget in config.EPOCHS.items():
        assert 0 < budget["ci"] < budget["workshop"], model


def test_device_selection(monkeypatch):
    import torch

    monkeypatch.delenv("TUTORIAL_KIT_DEVICE", raising=False)
    expected = "cuda:0" if torch.cuda.is_available() else "cpu"
    assert config.get_device() == expected
    monkeypatch.setenv("TUTORIAL_KIT_DEVICE", "cpu")
    assert config.get_device() == "cpu"
    monkeypatch.setenv("TUTORIAL_KIT_DEVICE", "tpu")
    with pytest.raises(ValueError, match="Unknown device 'tpu'"):
        config.get_device()
    if not torch.cuda.is_available():
        monkeypatch.setenv("TUTORIAL_KIT_DEVICE", "cuda")
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            config.get_device()


def test_device_without_torch(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError
    monkeypatch.delenv("TUTORIAL_KIT_DEVICE", raising=False)
    assert config.get_device() == "cpu"
    with pytest.raises(RuntimeError, match="torch is not installed"):
        config.get_device("cuda")


def test_seed_everything_reproducible(monkeypatch):
    import random

    import torch

    draws = []
    for _ in range(2):
        assert config.seed_everything(7) == 7
        draws.append((random.random(), np.random.rand(), torch.rand(1).item()))
    assert draws[0] == draws[1]
    config.seed_everything(8)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) != draws[0]
    monkeypatch.setenv("TUTORIAL_KIT_SEED", "11")
    assert config.seed_everything() == 11
    assert os.environ["PYTHONHASHSEED"] == "11"
    assert config.rng().integers(1000) == np.random.default_rng(11).integers(1000)
    monkeypatch.setenv("TUTORIAL_KIT_SEED", "x")
    with pytest.raises(ValueError, match="TUTORIAL_KIT_SEED must be an integer"):
        config.default_seed()


def test_describe_lists_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("TUTORIAL_KIT_CACHE", str(tmp_path))
    info = config.describe()
    assert info["tier"] in config.TIERS
    assert info["cache"] == str(tmp_path)
    assert set(info) == {"tier", "device", "seed", "environment", "cache", "mirror"}


def test_lazy_submodules():
    assert tk.config is config
    assert "metrics" in dir(tk)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tk.nope  # noqa: B018


def test_import_is_light_and_fast():
    """`import tutorial_kit` must not import torch or scanpy, and must take under 1.5 s."""
    code = (
        "import sys, time; t = time.perf_counter(); import tutorial_kit as tk; "
        "dt = time.perf_counter() - t; "
        "print(dt, 'torch' in sys.modules, 'scanpy' in sys.modules, 'anndata' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    seconds, has_torch, has_scanpy = float(out[0]), out[1], out[2]
    assert has_torch == "False" and has_scanpy == "False"
    assert seconds < 1.5, f"import tutorial_kit took {seconds:.2f} s"
    # Using the data and metrics namespaces still does not pull in torch or scanpy.
    code2 = (
        "import sys, tutorial_kit as tk; tk.data.REGISTRY; tk.metrics; tk.validate; "
        "print('torch' in sys.modules, 'scanpy' in sys.modules)"
    )
    out2 = subprocess.run([sys.executable, "-c", code2], capture_output=True, text=True, check=True).stdout.split()
    assert out2 == ["False", "False"]


def test_versions_and_benchmark():
    import torch

    v = config.versions()
    assert v["tutorial_kit"] == tk.__version__
    assert v["torch"].startswith(torch.__version__.split("+")[0])
    df = config.benchmark_matmul(size=128, repeats=3)
    assert df.loc[0, "device"] == "cpu" and df.loc[0, "speedup_vs_cpu"] == 1.0
    assert (df["seconds"] > 0).all() and (df["gflops"] > 0).all()
    assert len(df) == (2 if torch.cuda.is_available() else 1)
    with pytest.raises(ValueError, match="must be positive"):
        config.benchmark_matmul(size=0)


def test_adam_is_fused_on_cpu_and_takes_the_default_adam_step():
    import torch

    torch.manual_seed(0)
    start = torch.randn(50, 7)
    weights = {}
    for kind in ("fused", "default"):
        w = torch.nn.Parameter(start.clone())
        opt = config.adam([w], lr=0.05, weight_decay=1e-3) if kind == "fused" else torch.optim.Adam([w], lr=0.05, weight_decay=1e-3)
        assert bool(opt.defaults.get("fused")) is (kind == "fused")
        for _ in range(20):
            opt.zero_grad()
            ((w - 1) ** 2).sum().backward()
            opt.step()
        weights[kind] = w.detach()
    torch.testing.assert_close(weights["fused"], weights["default"], rtol=1e-5, atol=1e-6)


def test_adam_keeps_the_default_where_there_is_no_fused_kernel():
    import torch

    w = torch.nn.Parameter(torch.ones(3))
    assert config.adam([w], lr=0.1, fused=False).defaults["fused"] is False  # an explicit choice is kept
    meta = torch.nn.Parameter(torch.ones(3, device="meta"))
    assert not config.adam([meta], lr=0.1).defaults.get("fused")  # no fused kernel for this device: plain Adam


def test_cuda_requested_without_cuda_is_a_clear_error(monkeypatch):
    """TUTORIAL_KIT_DEVICE=cuda on a machine without CUDA fails and says what to do, for either torch build."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("TUTORIAL_KIT_DEVICE", "cuda")
    monkeypatch.setattr(torch.version, "cuda", None)  # the CPU build of the environment files
    with pytest.raises(RuntimeError, match=r"CUDA is not available.*CPU build.*build\.py core --cuda"):
        config.get_device()
    monkeypatch.setattr(torch.version, "cuda", "12.8")  # a CUDA build on a machine whose GPU is not visible
    with pytest.raises(RuntimeError, match=r"CUDA is not available.*CUDA 12\.8 but sees no GPU.*nvidia-smi"):
        config.get_device()
    monkeypatch.setenv("TUTORIAL_KIT_DEVICE", "cpu")
    assert config.get_device() == "cpu"


def test_cuda_device_index_must_exist(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert config.get_device("cuda") == "cuda:0"
    assert config.get_device("cuda:1") == "cuda:1"
    with pytest.raises(RuntimeError, match=r"'cuda:2' was requested but this machine has 2 GPU\(s\), cuda:0 to cuda:1"):
        config.get_device("cuda:2")


def test_devices_reports_what_each_framework_sees_here():
    import torch

    table = config.devices()
    assert list(table["framework"]) == ["torch", "jax"]
    row = table.set_index("framework").loc["torch"]
    assert row["version"] == torch.__version__
    assert row["cuda_build"] == (torch.version.cuda is not None)
    assert row["devices"].split(", ")[0] == "cpu"
    assert (row["devices"] != "cpu") == torch.cuda.is_available()
    if not torch.cuda.is_available() and torch.version.cuda is None:
        assert "build.py core --cuda" in row["note"]


def test_devices_lists_gpus_and_names_the_fix_when_jax_is_missing(monkeypatch):
    import importlib.util

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: f"NVIDIA H200 #{i}")
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "jax" else real_find_spec(name, *a))
    table = config.devices().set_index("framework")
    assert table.loc["torch", "devices"] == "cpu, cuda:0 (NVIDIA H200 #0), cuda:1 (NVIDIA H200 #1)"
    assert bool(table.loc["torch", "cuda_build"]) and table.loc["torch", "note"] == ""
    assert table.loc["jax", "version"] == "not installed" and not table.loc["jax", "cuda_build"]
    assert "scvi-tools[jax]" in table.loc["jax", "note"]


def test_devices_asks_jax_for_gpus_without_reserving_their_memory(monkeypatch):
    import importlib.machinery
    import types
    from importlib import metadata

    gpu = types.SimpleNamespace(id=0, platform="gpu", device_kind="NVIDIA H200")

    def fake_devices(backend=None):
        return [types.SimpleNamespace(id=0, platform="cpu", device_kind="cpu")] if backend == "cpu" else [gpu]

    def fake_jax(devices):
        module = types.ModuleType("jax")
        module.__spec__ = importlib.machinery.ModuleSpec("jax", None)
        module.__version__, module.devices = "0.10.2", devices
        return module

    monkeypatch.setitem(sys.modules, "jax", fake_jax(fake_devices))
    real_version = metadata.version
    monkeypatch.setattr(metadata, "version", lambda d: "0.10.2" if d == "jax-cuda12-plugin" else real_version(d))
    monkeypatch.delenv("XLA_PYTHON_CLIENT_PREALLOCATE", raising=False)
    row = config.devices().set_index("framework").loc["jax"]
    assert row["version"] == "0.10.2" and bool(row["cuda_build"])
    assert row["devices"] == "cpu, gpu:0 (NVIDIA H200)" and row["note"] == ""
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"
    monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "true")  # an instructor's own choice is kept
    config.devices()
    assert os.environ["XLA_PYTHON_CLIENT_PREALLOCATE"] == "true"

    def no_gpu(backend=None):
        if backend == "gpu":
            raise RuntimeError("Unknown backend: 'gpu' requested")
        return fake_devices("cpu")

    monkeypatch.setitem(sys.modules, "jax", fake_jax(no_gpu))
    row = config.devices().set_index("framework").loc["jax"]
    assert row["devices"] == "cpu" and "no GPU visible" in row["note"]


def test_max_epochs_caps_the_active_budget_but_not_the_table(monkeypatch):
    monkeypatch.setenv("TUTORIAL_KIT_TIER", "workshop")
    monkeypatch.setenv("TUTORIAL_KIT_MAX_EPOCHS", "7")
    assert tk.config.epochs("scgen") == 7
    assert tk.config.epochs("scgen", tier="workshop") == 100
    monkeypatch.setenv("TUTORIAL_KIT_MAX_EPOCHS", "500")
    assert tk.config.epochs("scgen") == 100
    for bad in ("0", "ten"):
        monkeypatch.setenv("TUTORIAL_KIT_MAX_EPOCHS", bad)
        with pytest.raises(ValueError, match="TUTORIAL_KIT_MAX_EPOCHS must be a positive integer"):
            tk.config.epochs("scgen")
