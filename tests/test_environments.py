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


CORE_REQS = build.parse_env_file(ENVS / "core.yml")[2]
TORCH = build.torch_pin(CORE_REQS)


def test_cuda_install_lines_for_core():
    """--cuda installs the pinned torch from the PyTorch CUDA index, and the CUDA plugin of the installed jax."""
    assert TORCH == next(r.split("==")[1] for r in CORE_REQS if r.startswith("torch=="))
    index = "https://download.pytorch.org/whl/cu128"
    assert build.cuda_install_lines(CORE_REQS) == [["install", "-q", "--index-url", index, f"torch=={TORCH}+cu128"]]
    torch_line, jax_line = build.cuda_install_lines(CORE_REQS, "cu128", installed_jax="0.10.2")
    assert torch_line[-1] == f"torch=={TORCH}+cu128"
    assert jax_line == ["install", "-q", "jax[cuda12]==0.10.2", f"torch=={TORCH}+cu128", "--extra-index-url", index]
    # another CUDA: the tag is the index and the local label; CUDA 13 takes JAX's cuda13 plugin
    lines = build.cuda_install_lines(CORE_REQS, " CU130 ", installed_jax="0.10.2")
    assert lines[0][-2:] == ["https://download.pytorch.org/whl/cu130", f"torch=={TORCH}+cu130"]
    assert lines[1][2] == "jax[cuda13]==0.10.2"
    assert build.cuda_install_lines(["six==1.16.0"], "cu126", installed_jax="0.10.2") == [
        ["install", "-q", "jax[cuda12]==0.10.2"]]  # no torch pin: the plugin alone
    assert build.cuda_install_lines(["six==1.16.0"], "cu126") == []
    assert build.torch_pin(["torch == 2.13.0+cpu"]) == "2.13.0"


@pytest.mark.parametrize("tag", ["cu12", "12.8", "cuda", "cu1280", ""])
def test_a_bad_cuda_tag_is_refused(tag):
    with pytest.raises(SystemExit, match="not a CUDA tag of the PyTorch index"):
        build.cuda_install_lines(CORE_REQS, tag)


def test_jax_has_no_plugin_for_cuda_11():
    assert build.cuda_version("cu118") == (11, 8)
    assert len(build.cuda_install_lines(CORE_REQS, "cu118")) == 1  # torch is fine without jax
    with pytest.raises(SystemExit, match="CUDA 12 and 13 only, not for cu118"):
        build.cuda_install_lines(CORE_REQS, "cu118", installed_jax="0.10.2")


class _Done:
    """A stand-in for subprocess.CompletedProcess."""

    def __init__(self, stdout="", returncode=0):
        self.stdout, self.stderr, self.returncode = stdout, "", returncode


def test_cuda_build_installs_torch_first_and_the_jax_plugin_last(tmp_path, monkeypatch):
    f = tmp_path / "x.yml"
    f.write_text("name: tk-x\ndependencies:\n  - python=3.11\n  - pip:\n      - torch==2.13.0\n      - scvi-tools[jax]==1.4.2\n")
    calls = []

    def fake_run(cmd, **kwargs):
        cmd = [str(c) for c in cmd]
        calls.append(cmd)
        if "venv" in cmd:
            (tmp_path / "env" / "bin").mkdir(parents=True, exist_ok=True)
            (tmp_path / "env" / "bin" / "python").write_text("")
        if "-c" in cmd and "Provides-Extra" in cmd[-1]:  # installed_jax(): what scvi-tools[jax] brought in
            return _Done(json.dumps(["0.10.2", ["cpu", "cuda12", "cuda13"]]) + "\n")
        return _Done()

    monkeypatch.setattr(build.subprocess, "run", fake_run)
    monkeypatch.setattr(build, "find_python", lambda version: "python3")
    monkeypatch.delenv("TK_BUILD_LOG", raising=False)
    build.build_venv(f, tmp_path / "env", False, ["scpram==0.0.3"], cuda="cu128")
    installs = [c[c.index("install"):] for c in calls if "pip" in c and "install" in c]
    assert installs[0] == ["install", "-q", "--index-url", "https://download.pytorch.org/whl/cu128", "torch==2.13.0+cu128"]
    assert installs[1][:3] == ["install", "-q", "-r"], "the environment file comes after the CUDA torch"
    assert installs[2][-2:] == ["--no-deps", "scpram==0.0.3"]
    assert installs[3][2:4] == ["jax[cuda12]==0.10.2", "torch==2.13.0+cu128"], "the jax plugin comes last"
    assert not any(c[-1] == "torch==2.13.0" for c in installs), "the CPU torch line is not run"
    calls.clear()
    build.build_venv(f, tmp_path / "env", False, ["scpram==0.0.3"], cuda="cu128")
    assert calls == [], "an up-to-date CUDA environment is not rebuilt"
    build.build_venv(f, tmp_path / "env", False, ["scpram==0.0.3"])
    assert any(c[-1] == "torch==2.13.0" for c in calls), "the CPU build at the same prefix is a rebuild (another stamp)"


def test_an_old_jax_without_a_cuda_plugin_is_left_alone(monkeypatch, capsys):
    """The scgen environment's jax 0.4.13 has no jax[cuda12] extra: no jax line, and not a build error."""
    runs = []

    def fake_run(cmd, **kwargs):
        runs.append(cmd)
        return _Done(json.dumps(["0.4.13", ["cpu", "cuda12-pip", "cuda12-local"]]))

    monkeypatch.setattr(build.subprocess, "run", fake_run)
    build.install_jax_cuda(["python"], CORE_REQS, "cu128", "scgen")
    assert len(runs) == 1 and "no cuda12 plugin release" in capsys.readouterr().out
    probe = {"torch": "2.13.0+cu128", "torch_cuda": "12.8", "torch_gpus": ["NVIDIA H200"],
             "jax": "0.4.13", "jax_extras": ["cuda12-pip"], "jax_plugin": [], "jax_gpus": []}
    assert build.cuda_problems(probe, "cu128", (12, 8)) == ([], [])


def test_nvidia_smi_gives_the_driver_cuda(monkeypatch):
    banner = "| NVIDIA-SMI 570.86.15    Driver Version: 570.86.15    CUDA Version: 12.8     |\n"
    monkeypatch.setattr(build.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(build.subprocess, "run", lambda cmd, **kw: _Done(banner))
    assert build.driver_cuda_version() == (12, 8)
    failed = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n"
    monkeypatch.setattr(build.subprocess, "run", lambda cmd, **kw: _Done(failed, returncode=9))
    assert build.driver_cuda_version() is None
    monkeypatch.setattr(build.shutil, "which", lambda name: None)
    assert build.driver_cuda_version() is None
    assert build.driver_problems("cu128", (12, 8)) == []
    assert build.driver_problems("cu128", (13, 0)) == []
    (old,) = build.driver_problems("cu130", (12, 4))
    assert "supports CUDA up to 12.4" in old and "cu124" in old and "upgrade the driver" in old
    (none,) = build.driver_problems("cu128", None)
    assert "No NVIDIA driver found" in none and "nvidia-smi" in none


def test_cuda_problems_from_the_probe():
    cpu = {"torch": "2.13.0+cpu", "torch_cuda": None, "torch_gpus": [],
           "jax": "0.10.2", "jax_extras": ["cuda12"], "jax_plugin": [], "jax_gpus": []}
    errors, gpu = build.cuda_problems(cpu, "cu128", None)
    assert len(errors) == 2 and "CPU build" in errors[0] and "no CUDA plugin" in errors[1] and gpu == []
    built = {**cpu, "torch": "2.13.0+cu128", "torch_cuda": "12.8", "jax_plugin": ["jax-cuda12-plugin==0.10.2"]}
    errors, gpu = build.cuda_problems(built, "cu128", None)
    assert errors == [] and len(gpu) == 1 and "No NVIDIA driver found" in gpu[0]
    errors, gpu = build.cuda_problems(built, "cu128", (12, 8))
    assert errors == [] and "sees no GPU although nvidia-smi reports a driver" in gpu[0] and "CUDA_VISIBLE_DEVICES" in gpu[0]
    seen = {**built, "torch_gpus": ["NVIDIA H200"], "jax_gpus": ["cuda:0"]}
    assert build.cuda_problems(seen, "cu128", (12, 8)) == ([], [])
    errors, gpu = build.cuda_problems({**seen, "jax_gpus": [], "jax_error": "Unknown backend: 'gpu'"}, "cu128", (12, 8))
    assert errors == [] and gpu == ["jax 0.10.2 sees no GPU: Unknown backend: 'gpu'."]


def test_a_cuda_build_without_a_gpu_warns_and_require_gpu_makes_it_an_error(monkeypatch, capsys):
    probe = {"torch": "2.13.0+cu128", "torch_cuda": "12.8", "torch_gpus": []}
    monkeypatch.setattr(build, "probe_environment", lambda python: probe)
    monkeypatch.setattr(build, "driver_cuda_version", lambda: None)
    assert build.report_cuda(["python"], "core", "cu128", require_gpu=False) is probe
    err = capsys.readouterr().err
    assert "WARNING: the CUDA build (cu128) is installed, but no GPU can be used here" in err and "nvidia-smi" in err
    with pytest.raises(SystemExit, match=r"--require-gpu, but no GPU can be used:\n- No NVIDIA driver found"):
        build.report_cuda(["python"], "core", "cu128", require_gpu=True)
    monkeypatch.setattr(build, "probe_environment", lambda python: {**probe, "torch_cuda": None})
    with pytest.raises(SystemExit, match=r"the CUDA build \(cu128\) is not installed"):
        build.report_cuda(["python"], "core", "cu128", require_gpu=False)
    monkeypatch.setattr(build, "probe_environment", lambda python: {**probe, "torch_gpus": ["NVIDIA H200"]})
    build.report_cuda(["python"], "core", "cu128", require_gpu=True)
    assert "torch 2.13.0+cu128 sees NVIDIA H200" in capsys.readouterr().out


def test_cuda_cli_builds_core_cuda_beside_the_cpu_environment(monkeypatch):
    seen = {}

    def fake_build(env_file, prefix, force, no_deps=None, cuda=None):
        seen.update(prefix=prefix, cuda=cuda, no_deps=no_deps)
        return prefix / "bin" / "python"

    monkeypatch.setattr(build, "build_venv", fake_build)
    monkeypatch.setattr(build, "register_kernel", lambda python, kernel, display: seen.update(kernel=(kernel, display)))
    monkeypatch.setattr(build, "report_cuda", lambda python, name, cuda, require_gpu: seen.update(report=(name, cuda, require_gpu)))
    assert build.main(["core", "--cuda"]) == 0
    assert seen["prefix"] == (ROOT / ".venvs" / "core-cuda").resolve() and seen["cuda"] == "cu128"
    assert seen["no_deps"] == MANIFEST["environments"]["core"]["no_deps"]
    assert seen["kernel"] == ("tk-core", "Python (tk-core) [CUDA cu128]"), "the notebooks' kernel name, in the CUDA environment"
    assert seen["report"] == ("core", "cu128", False)
    monkeypatch.setattr(build, "driver_cuda_version", lambda: (12, 8))
    assert build.main(["core", "--cuda", "cu126", "--require-gpu"]) == 0
    assert seen["cuda"] == "cu126" and seen["report"] == ("core", "cu126", True)


def test_cuda_cli_errors(monkeypatch):
    monkeypatch.setattr(build, "build_venv", lambda *a, **k: pytest.fail("nothing may be built"))
    with pytest.raises(SystemExit, match="not a CUDA tag"):
        build.main(["core", "--cuda", "cu12"])
    with pytest.raises(SystemExit, match="pins no torch"):
        build.main(["book", "--cuda"])
    with pytest.raises(SystemExit) as usage:
        build.main(["core", "--require-gpu"])
    assert usage.value.code == 2, "--require-gpu without --cuda is a usage error"
    monkeypatch.setattr(build, "driver_cuda_version", lambda: None)  # no driver: fail before downloading anything
    with pytest.raises(SystemExit, match=r"--require-gpu, but this machine cannot run a CUDA build:\n- No NVIDIA driver found"):
        build.main(["core", "--cuda", "--require-gpu"])


def test_a_failed_cuda_install_says_what_to_check(monkeypatch):
    def failing(cmd, **kwargs):
        raise build.subprocess.CalledProcessError(1, cmd)

    monkeypatch.setattr(build.subprocess, "run", failing)
    with pytest.raises(SystemExit, match=r"could not install the CUDA build \(cu128\).*whl/cu128 has this torch version"):
        build.run_cuda_pip(["python", "-m", "pip", "install", "torch==2.13.0+cu128"], "cu128", "core")
