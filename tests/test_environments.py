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


def test_pip_pin_of_a_conda_file_is_read(tmp_path):
    f = tmp_path / "x.yml"
    f.write_text("name: tk-x\ndependencies:\n  - python=3.11\n  - pip<24.1\n  - pip:\n      - six==1.16.0\n")
    assert build.pip_spec(f) == "pip<24.1"
    f.write_text("name: tk-x\ndependencies:\n  - python=3.11\n  - pip=24.0\n  - pip:\n      - six==1.16.0\n")
    assert build.pip_spec(f) == "pip==24.0"
    assert build.pip_spec(ENVS / "core.yml") is None


def test_no_deps_packages_are_installed_last_and_stamped(tmp_path, monkeypatch):
    """An environment's no_deps packages go in with --no-deps after the rest, and a change rebuilds it."""
    f = tmp_path / "x.yml"
    f.write_text("name: tk-x\ndependencies:\n  - python=3.11\n  - pip<24.1\n  - pip:\n      - six==1.16.0\n")
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append([str(c) for c in cmd])
        if "venv" in cmd:
            (tmp_path / "env" / "bin").mkdir(parents=True, exist_ok=True)
            (tmp_path / "env" / "bin" / "python").write_text("")
        class Done:  # noqa: D401 - a stand-in for CompletedProcess
            returncode = 0
        return Done()

    monkeypatch.setattr(build.subprocess, "run", fake_run)
    monkeypatch.setattr(build, "find_python", lambda version: "python3")
    build.build_venv(f, tmp_path / "env", False, ["scpram==0.0.3"])
    pip_calls = [c for c in calls if "pip" in c and "install" in c]
    assert pip_calls[0][-1] == "pip<24.1", "the pinned pip is installed first"
    assert pip_calls[-1][-2:] == ["--no-deps", "scpram==0.0.3"], "no_deps packages come last, with --no-deps"
    calls.clear()
    build.build_venv(f, tmp_path / "env", False, ["scpram==0.0.3"])
    assert calls == [], "an up-to-date environment is not rebuilt"
    build.build_venv(f, tmp_path / "env", False, ["scpram==0.0.4"])
    assert calls, "a changed no_deps list rebuilds the environment"
