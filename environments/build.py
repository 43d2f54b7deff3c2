#!/usr/bin/env python3
"""Build a session environment from its conda file, with conda or as a virtual environment.

Usage:
    python3 environments/build.py core            # -> .venvs/core (virtual environment)
    python3 environments/build.py core --conda    # -> conda env create -f environments/core.yml
    python3 environments/build.py --all           # every environment of environments/sessions.toml
    python3 environments/build.py --for-notebooks # the environments the notebooks need

Without conda, the same file drives a virtual environment: the Python version comes from
``python=X.Y`` (found on PATH or under pyenv), the packages from the ``pip:`` section,
installed from the environments/ folder so relative paths mean what they mean to conda.
A stamp file records the hash of the environment file (and of the manifest's extra steps);
an up-to-date environment is not rebuilt. Standard library only, so it runs before anything
is installed.

Two extra steps cover packages whose declared dependencies are obsolete (see the comments in the environment files):
- a pip pin in the conda dependencies (``- pip<24.1``) is honoured in a virtual environment too:
  that pip is installed first (pytorch-lightning 1.7.7 cannot be installed by newer pip);
- ``no_deps = ["scpram==0.0.3"]`` for an environment in sessions.toml installs those packages
  with ``pip install --no-deps`` after everything else (their pins, e.g. torch 1.13.1, would
  otherwise replace the session's stack), with conda as well as without.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def load_manifest() -> dict:
    """environments/sessions.toml: environments (file, kernel) and the environment of each notebook."""
    manifest = tomllib.loads((HERE / "sessions.toml").read_text())
    envs = manifest.get("environments", {})
    for notebook, env in manifest.get("notebooks", {}).items():
        if env not in envs:
            raise SystemExit(f"sessions.toml: notebook {notebook} names environment {env!r}, which is not defined.")
    return manifest


def register_kernel(python: Path, kernel: str, display_name: str) -> None:
    """Register the environment's Jupyter kernel inside the environment (``--sys-prefix``).

    JupyterLab started from that environment sees it; other Jupyter installations see it when
    ``<prefix>/share/jupyter`` is on ``JUPYTER_PATH`` (book/build.py does that), or after
    ``python -m ipykernel install --user --name KERNEL`` run with the environment's Python.
    """
    subprocess.run(
        [str(python), "-m", "ipykernel", "install", "--sys-prefix", "--name", kernel, "--display-name", display_name],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def pip_spec(path: Path) -> str | None:
    """The pip version a conda file pins among its dependencies (``- pip<24.1`` -> ``pip<24.1``), or None."""
    for raw in path.read_text().splitlines():
        text = raw.split(" #", 1)[0].strip()
        if text.startswith("- pip") and text not in ("- pip", "- pip:"):
            spec = text[2:].replace(" ", "")
            # conda spells an exact pin with one '=', pip with '=='
            return spec.replace("pip=", "pip==", 1) if "pip=" in spec and "==" not in spec else spec
    return None


def parse_env_file(path: Path) -> tuple[str, str | None, list[str]]:
    """Return (name, python version, pip requirements) of a conda environment file.

    Reads the small subset of YAML that environment files use: ``name:``, the
    ``dependencies:`` list with ``python=X.Y`` and a nested ``pip:`` list.
    """
    name, python, pip_reqs = path.stem, None, []
    in_pip, pip_indent = False, -1
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        text = line.strip()
        if in_pip and indent <= pip_indent:
            in_pip = False
        if text.startswith("name:") and indent == 0:
            name = text.split(":", 1)[1].strip()
        elif text.startswith("- python="):
            python = text.split("=", 1)[1].strip()
        elif text == "- pip:":
            in_pip, pip_indent = True, indent
        elif in_pip and text.startswith("- "):
            pip_reqs.append(text[2:].strip().strip("'\""))
    if not pip_reqs:
        raise SystemExit(f"{path}: no packages in a 'pip:' section; nothing to install.")
    return name, python, pip_reqs


def find_python(version: str | None) -> str:
    """A Python interpreter of the requested X.Y version (PATH, then pyenv), else this one."""
    if not version:
        return sys.executable
    candidates = [shutil.which(f"python{version}")]
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if pyenv_root.is_dir():
        candidates += sorted(str(p / "bin" / "python") for p in pyenv_root.glob(f"{version}.*"))
    candidates.append(sys.executable)
    for exe in candidates:
        if not exe or not Path(exe).exists():
            continue
        out = subprocess.run([exe, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], capture_output=True, text=True)
        if out.stdout.strip() == version:
            return exe
    raise SystemExit(
        f"Python {version} is needed for this environment but was not found "
        "(looked on PATH and under pyenv). Install it, or use conda: python3 environments/build.py NAME --conda"
    )


def build_venv(env_file: Path, prefix: Path, force: bool, no_deps: list[str] | None = None) -> Path:
    """Build (or check) one virtual environment; one build at a time per prefix (a lock file)."""
    import fcntl

    prefix.parent.mkdir(parents=True, exist_ok=True)
    with open(prefix.parent / f".{prefix.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"[build] {prefix.name}: another build of {prefix} is running; waiting for it", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_venv(env_file, prefix, force, no_deps)


def _build_venv(env_file: Path, prefix: Path, force: bool, no_deps: list[str] | None) -> Path:
    name, version, reqs = parse_env_file(env_file)
    no_deps = list(no_deps or [])
    digest = hashlib.sha256(env_file.read_bytes() + "\n".join(no_deps).encode()).hexdigest()
    stamp = prefix / ".tk-env-stamp"
    python = prefix / "bin" / "python"
    if not force and stamp.exists() and stamp.read_text().strip() == digest and python.exists():
        print(f"[build] {name}: up to date at {prefix}")
        return python
    start = time.time()
    stamp.unlink(missing_ok=True)  # a build that stops half-way leaves no stamp, so the next one starts over
    if prefix.exists():
        shutil.rmtree(prefix)
    base = find_python(version)
    print(f"[build] {name}: creating virtual environment {prefix} with {base}", flush=True)
    subprocess.run([base, "-m", "venv", str(prefix)], check=True)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
    wanted_pip = pip_spec(env_file)
    if wanted_pip:
        subprocess.run([*pip, "install", "-q", wanted_pip], check=True, cwd=HERE)
    req_file = prefix / "requirements-from-env-file.txt"
    req_file.write_text("\n".join(reqs) + "\n")
    # Install torch first when pinned, so no other package pulls a different (CUDA) build.
    torch = [r for r in reqs if r.replace(" ", "").startswith("torch==")]
    if torch:
        subprocess.run([*pip, "install", "-q", *torch], check=True, cwd=HERE)
    subprocess.run([*pip, "install", "-q", "-r", str(req_file)], check=True, cwd=HERE)
    if no_deps:
        print(f"[build] {name}: installing without their declared dependencies: {no_deps}", flush=True)
        subprocess.run([*pip, "install", "-q", "--no-deps", *no_deps], check=True, cwd=HERE)
    stamp.write_text(digest + "\n")
    print(f"[build] {name}: done in {time.time() - start:.0f} s", flush=True)
    if os.environ.get("TK_BUILD_LOG"):  # .ci/run's breakdown of where the time goes
        with open(os.environ["TK_BUILD_LOG"], "a") as fh:
            fh.write(f"{name}\t{time.time() - start:.0f}\n")
    return python


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("env", nargs="?", help="environment name: a file environments/<env>.yml")
    parser.add_argument("--all", action="store_true", help="build every environment of sessions.toml")
    parser.add_argument("--for-notebooks", action="store_true", help="build the environments the notebooks use")
    parser.add_argument("--prefix", type=Path, help="where to create the virtual environment (default .venvs/<env>)")
    parser.add_argument("--conda", action="store_true", help="create it with conda instead (conda must be on PATH)")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    manifest = load_manifest()
    if args.all:
        names = list(manifest["environments"])
    elif args.for_notebooks:
        names = list(dict.fromkeys(manifest.get("notebooks", {}).values()))
    elif args.env:
        names = [args.env]
    else:
        parser.error("name an environment, or use --all / --for-notebooks")
    if args.prefix and len(names) > 1:
        parser.error("--prefix works with one environment only")
    for name in names:
        env_file = HERE / f"{name}.yml"
        if not env_file.exists():
            known = sorted(p.stem for p in HERE.glob("*.yml"))
            raise SystemExit(f"No environment file {env_file}; known environments: {known}")
        spec = manifest["environments"].get(name, {})
        kernel = spec.get("kernel")
        if args.conda:
            conda = shutil.which("conda") or shutil.which("mamba")
            if not conda:
                raise SystemExit("conda was not found on PATH; drop --conda to build a virtual environment.")
            env_name, _, _ = parse_env_file(env_file)
            subprocess.run([conda, "env", "create", "--yes", "-f", str(env_file)], check=True)
            if spec.get("no_deps"):
                subprocess.run(
                    [conda, "run", "-n", env_name, "python", "-m", "pip", "install", "--no-deps", *spec["no_deps"]],
                    check=True,
                )
            if kernel:
                subprocess.run(
                    [conda, "run", "-n", env_name, "python", "-m", "ipykernel", "install", "--user",
                     "--name", kernel, "--display-name", spec.get("display_name", kernel)],
                    check=True,
                )
            continue
        python = build_venv(env_file, (args.prefix or ROOT / ".venvs" / name).resolve(), args.force, spec.get("no_deps"))
        if kernel:
            register_kernel(python, kernel, spec.get("display_name", kernel))
            print(f"[build] {name}: Jupyter kernel {kernel!r} registered in the environment")
    return 0


if __name__ == "__main__":
    sys.exit(main())
