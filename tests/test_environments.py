"""The environment files and the manifest that maps each notebook to one environment and kernel."""

import importlib.util
import json
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENVS = ROOT / "environments"
MANIFEST = tomllib.loads((ENVS / "sessions.toml").read_text())

spec = importlib.util.spec_from_file_location("env_build", ENVS / "build.py")
build = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build)


def test_every_notebook_has_exactly_one_environment_and_its_kernel():
    on_disk = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))
    listed = sorted(MANIFEST["notebooks"])
    assert on_disk, "no notebooks found"
    assert on_disk == listed, f"notebooks on disk {on_disk} != manifest {listed}"
    for name, env in MANIFEST["notebooks"].items():
        kernel = MANIFEST["environments"][env]["kernel"]
        meta = json.loads((ROOT / "notebooks" / name).read_text())["metadata"]
        assert meta["kernelspec"]["name"] == kernel, f"{name}: kernelspec {meta['kernelspec']['name']} != {kernel}"


def test_notebooks_are_committed_without_outputs():
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert cell["outputs"] == [] and cell["execution_count"] is None, f"{path.name} has outputs"


@pytest.mark.parametrize("env", sorted(MANIFEST["environments"]))
def test_environment_files_are_conda_files_with_exact_pins(env):
    path = ENVS / MANIFEST["environments"][env]["file"]
    name, python, reqs = build.parse_env_file(path)
    assert name == f"tk-{env}"
    assert python == "3.11"
    text = path.read_text()
    assert "dependencies:" in text and "- pip:" in text
    for req in reqs:
        if req.startswith("-e "):
            assert req == "-e ..", "tutorial_kit is installed from the repository"
            continue
        assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][\w.+]*", req), f"{path.name}: {req!r} is not an exact pin"
    if env == "core":
        assert any(r.startswith("torch==") for r in reqs)


def test_parse_env_file_rejects_a_file_without_pip_section(tmp_path):
    bad = tmp_path / "x.yml"
    bad.write_text("name: x\ndependencies:\n  - python=3.11\n")
    with pytest.raises(SystemExit, match="no packages in a 'pip:' section"):
        build.parse_env_file(bad)


def test_build_cli_errors():
    with pytest.raises(SystemExit, match="No environment file"):
        build.main(["does-not-exist"])
    with pytest.raises(SystemExit):
        build.main([])
