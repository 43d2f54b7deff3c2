"""The environment files and the manifest that maps each notebook to one environment and kernel."""

import ast
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
    # notebooks/_template.ipynb (CONTRIBUTING.md) is the skeleton of a session, not a session
    on_disk = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb") if not p.name.startswith("_"))
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
    monkeypatch.delenv("TK_BUILD_LOG", raising=False)  # a fake build is not one of CI's environment builds
    build.build_venv(f, tmp_path / "env", False, ["scpram==0.0.3"])
    pip_calls = [c for c in calls if "pip" in c and "install" in c]
    assert pip_calls[0][-1] == "pip<24.1", "the pinned pip is installed first"
    assert pip_calls[-1][-2:] == ["--no-deps", "scpram==0.0.3"], "no_deps packages come last, with --no-deps"
    calls.clear()
    build.build_venv(f, tmp_path / "env", False, ["scpram==0.0.3"])
    assert calls == [], "an up-to-date environment is not rebuilt"
    build.build_venv(f, tmp_path / "env", False, ["scpram==0.0.4"])
    assert calls, "a changed no_deps list rebuilds the environment"


def _python_blocks(markdown: str) -> list[str]:
    """The ```python blocks of a markdown cell (solutions shown in dropdowns and not executed)."""
    return re.findall(r"^```python\n(.*?)^```", markdown, flags=re.S | re.M)


def _names(tree: ast.AST) -> tuple[set[str], set[str]]:
    """(names a piece of code defines, names it reads)."""
    defined, read = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (defined if isinstance(node.ctx, ast.Store) else read).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.arg):
            defined.add(node.arg)
    return defined, read


def _tk_attributes(tree: ast.AST) -> set[str]:
    """Dotted names such as ``tk.models.run_benchmark`` that a piece of code reads from the package."""
    found = set()
    for node in ast.walk(tree):
        parts = []
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if isinstance(node, ast.Name) and node.id == "tk" and parts:
            found.add(".".join(reversed(parts)))
    return found


def test_code_shown_in_markdown_uses_only_names_the_notebook_defines():
    """Solutions shown as code and not executed (too slow for CI, e.g. notebook 10's Exercise 4) must not rot.

    Each ```python block of a markdown cell must parse, read only names that the notebook's
    code cells (or the block itself) define, and call only package functions that exist.
    """
    import builtins

    import tutorial_kit as tk

    checked = 0
    for notebook in sorted(MANIFEST["notebooks"]):
        nb = json.loads((ROOT / "notebooks" / notebook).read_text())
        defined = set(dir(builtins)) | {"display"}
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                lines = "".join(cell["source"]).splitlines()
                defined |= _names(ast.parse("\n".join(l for l in lines if not l.lstrip().startswith(("%", "!")))))[0]
        for cell in nb["cells"]:
            if cell["cell_type"] != "markdown":
                continue
            for block in _python_blocks("".join(cell["source"])):
                tree = ast.parse(block)  # a SyntaxError fails the test with the line
                own, read = _names(tree)
                unknown = read - defined - own
                assert not unknown, f"{notebook}: code in a markdown cell reads {sorted(unknown)}, which no cell defines"
                for dotted in sorted(_tk_attributes(tree)):
                    obj = tk
                    for part in dotted.split("."):
                        assert hasattr(obj, part), f"{notebook}: code in a markdown cell calls tk.{dotted}, which does not exist"
                        obj = getattr(obj, part)
                checked += 1
    assert checked >= 1, "no ```python block found in any markdown cell: notebook 10's Exercise 4 solution is missing"


def test_markdown_code_check_catches_an_undefined_name_and_a_missing_function():
    block = _python_blocks("text\n```python\nx = tk.models.no_such_thing(kang_split, y)\n```\n")[0]
    own, read = _names(ast.parse(block))
    assert read - own == {"tk", "kang_split", "y"}
    assert _tk_attributes(ast.parse(block)) == {"models.no_such_thing", "models"}
    import tutorial_kit as tk

    assert not hasattr(tk.models, "no_such_thing")
