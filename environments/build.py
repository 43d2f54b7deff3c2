#!/usr/bin/env python3
"""Build a session environment from its conda file, with conda or as a virtual environment.

Usage:
    python3 environments/build.py core            # -> .venvs/core (virtual environment)
    python3 environments/build.py core --conda    # -> conda env create -f environments/core.yml
    python3 environments/build.py --all           # every environment of environments/sessions.toml
    python3 environments/build.py --for-notebooks # the environments the notebooks need
    python3 environments/build.py core --cuda     # -> .venvs/core-cuda, CUDA builds of torch and jaxlib
    python3 environments/build.py core --cuda cu126 --require-gpu   # another CUDA, and fail without a GPU

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

On a GPU server, ``--cuda [TAG]`` (default ``cu128``) builds the same environment with the CUDA
builds of its compiled frameworks, into ``.venvs/<env>-cuda`` (the CPU environment stays as it is):
- the pinned torch (``torch==2.13.0``) comes from the PyTorch index of that CUDA,
  ``pip install --index-url https://download.pytorch.org/whl/TAG torch==2.13.0+TAG``, before
  everything else, so the rest of the file keeps it;
- when the environment has JAX (core: ``scvi-tools[jax]``, for pertpy's scGen), JAX's CUDA plugin of
  the installed jax version goes in last, ``pip install "jax[cuda12]==<jax version>"`` (``cuda13``
  for a cu13x TAG), together with the torch pin so that pip keeps torch's CUDA libraries.
The tag is pick-your-driver: ``nvidia-smi`` prints the newest CUDA the driver supports
("CUDA Version: 12.8" -> ``cu128`` or older). After the build (and on every later run), the
environment's own Python reports what torch and jax see. A CPU build where a CUDA build was asked
for is an error; no visible GPU is a loud warning (an environment can be prepared on a machine
without one), and an error with ``--require-gpu``, which also checks the driver before installing.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
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


DEFAULT_CUDA = "cu128"
TORCH_CUDA_INDEX = "https://download.pytorch.org/whl/{tag}"
JAX_CUDA_MAJORS = (12, 13)  # jax publishes CUDA plugins (jax[cuda12], jax[cuda13]) for these only


def cuda_version(tag: str) -> tuple[int, int]:
    """The CUDA version of a PyTorch wheel tag: ``cu128`` -> (12, 8), ``cu130`` -> (13, 0)."""
    match = re.fullmatch(r"cu(\d{3})", tag.strip().lower())
    if not match:
        raise SystemExit(
            f"--cuda {tag!r} is not a CUDA tag of the PyTorch index; use e.g. cu126, cu128 or cu130 "
            "(the newest one not above the 'CUDA Version' that nvidia-smi prints)."
        )
    digits = match.group(1)
    return int(digits[:-1]), int(digits[-1])


def run_cuda_pip(cmd: list[str], cuda: str, name: str) -> None:
    """Run one pip line of :func:`cuda_install_lines`; a failure says what to check instead of a traceback."""
    print(f"[build] {name}: {' '.join(cmd[cmd.index('pip'):])}", flush=True)
    try:
        subprocess.run(cmd, check=True, cwd=HERE)
    except subprocess.CalledProcessError:
        raise SystemExit(
            f"[build] {name}: pip could not install the CUDA build ({cuda}): see pip's message above. "
            f"Check that {TORCH_CUDA_INDEX.format(tag=cuda)} has this torch version (each torch release is built for a "
            "few CUDA tags only, e.g. cu126, cu128, cu130) and that this machine reaches download.pytorch.org and PyPI."
        ) from None


def torch_pin(reqs: list[str]) -> str | None:
    """The pinned torch version of a requirement list (``torch==2.13.0`` -> ``2.13.0``), or None."""
    for req in reqs:
        text = req.replace(" ", "")
        if text.startswith("torch=="):
            return text.split("==", 1)[1].split("+", 1)[0]  # drop a local label such as +cpu
    return None


def cuda_install_lines(reqs: list[str], cuda: str = DEFAULT_CUDA, installed_jax: str | None = None) -> list[list[str]]:
    """The pip arguments that put the CUDA builds into an environment, in the order to run them.

    The first line (when ``reqs`` pins torch) installs that torch version, with the CUDA tag as its
    local label, from the PyTorch index of that CUDA; it runs before the environment file, whose
    ``torch==X`` the CUDA build then satisfies. The second (when ``installed_jax`` is the jax
    version the environment ended up with) installs JAX's CUDA plugin of that exact version, with
    the torch pin and the PyTorch index as well, so that pip keeps torch's CUDA libraries.
    """
    major, _ = cuda_version(cuda)
    tag = cuda.strip().lower()
    index = TORCH_CUDA_INDEX.format(tag=tag)
    torch = torch_pin(reqs)
    lines = []
    if torch:
        lines.append(["install", "-q", "--index-url", index, f"torch=={torch}+{tag}"])
    if installed_jax:
        if major not in JAX_CUDA_MAJORS:
            raise SystemExit(
                f"JAX publishes CUDA plugins for CUDA {' and '.join(map(str, JAX_CUDA_MAJORS))} only, not for {tag}; "
                "pick a tag such as cu126, cu128 or cu130."
            )
        line = ["install", "-q", f"jax[cuda{major}]=={installed_jax}"]
        if torch:
            line += [f"torch=={torch}+{tag}", "--extra-index-url", index]
        lines.append(line)
    return lines


def driver_cuda_version() -> tuple[int, int] | None:
    """The newest CUDA version the NVIDIA driver supports, from ``nvidia-smi``; None without a working driver."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"CUDA Version:\s*(\d+)\.(\d+)", out.stdout or "")
    if out.returncode != 0 or not match:
        return None
    return int(match.group(1)), int(match.group(2))


def driver_problems(cuda: str, driver: tuple[int, int] | None) -> list[str]:
    """Why this machine's driver cannot run a ``cuda`` build (empty: it can, as far as nvidia-smi says)."""
    wanted = cuda_version(cuda)
    if driver is None:
        return [
            "No NVIDIA driver found: `nvidia-smi` is missing or fails on this machine. "
            "Run the build on the GPU server, or install the NVIDIA driver and check that `nvidia-smi` lists the GPU."
        ]
    if driver[0] < wanted[0]:
        return [
            f"The NVIDIA driver supports CUDA up to {driver[0]}.{driver[1]} (nvidia-smi), too old for {cuda} "
            f"(CUDA {wanted[0]}.{wanted[1]}). Pick a tag not above the driver's, cu{driver[0]}{driver[1]} "
            "(one that the PyTorch index has for this torch), or upgrade the driver."
        ]
    return []


PROBE = r"""
import json
from importlib import metadata
out = {}
try:
    import torch
    out["torch"] = torch.__version__
    out["torch_cuda"] = torch.version.cuda
    out["torch_gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
except ImportError:
    pass
try:
    import jax
    out["jax"] = jax.__version__
    out["jax_extras"] = metadata.metadata("jax").get_all("Provides-Extra") or []
    out["jax_plugin"] = []
    for dist in ("jax-cuda12-plugin", "jax-cuda13-plugin"):
        try:
            out["jax_plugin"].append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            pass
    try:
        out["jax_gpus"] = [str(d) for d in jax.devices("gpu")]
    except Exception as err:  # RuntimeError: no gpu backend
        out["jax_gpus"], out["jax_error"] = [], (str(err).splitlines() or [""])[0]
except ImportError:
    pass
print(json.dumps(out))
"""
"""Run by the environment's Python: what torch and jax are, and which GPUs they see (one JSON line)."""


def probe_environment(python: list[str]) -> dict:
    """Run :data:`PROBE` with ``python`` (a command: the environment's interpreter, or ``conda run``)."""
    env = {**os.environ, "XLA_PYTHON_CLIENT_PREALLOCATE": "false"}  # looking must not reserve GPU memory
    out = subprocess.run([*python, "-c", PROBE], capture_output=True, text=True, env=env)
    lines = (out.stdout or "").strip().splitlines()
    if out.returncode != 0 or not lines:
        raise SystemExit(f"Could not ask the environment which devices it sees ({' '.join(python)}):\n{out.stderr}")
    return json.loads(lines[-1])


def cuda_problems(probe: dict, cuda: str, driver: tuple[int, int] | None) -> tuple[list[str], list[str]]:
    """(build errors, missing-GPU problems) of an environment built with ``--cuda``, from its probe.

    A build error means the CUDA build is not what got installed; a missing-GPU problem means the
    build is right but this machine shows it no GPU (with the fix: driver, tag, visible devices).
    """
    errors, gpu = [], []
    # jax gets the CUDA plugin only where its version has one (jax[cuda12]); an older jax stays on the CPU
    jax_cuda = "jax" in probe and f"cuda{cuda_version(cuda)[0]}" in probe.get("jax_extras", [])
    if "torch" in probe and not probe.get("torch_cuda"):
        errors.append(
            f"torch {probe['torch']} is a CPU build, although {cuda} was asked for. "
            "Rebuild with --force, and check that https://download.pytorch.org/whl/" + cuda + " can be reached."
        )
    if jax_cuda and not probe.get("jax_plugin"):
        errors.append(f"jax {probe['jax']} has no CUDA plugin (jax-cuda12-plugin or jax-cuda13-plugin). Rebuild with --force.")
    if errors:
        return errors, gpu
    torch_sees = bool(probe.get("torch_gpus"))
    if "torch" in probe and not torch_sees:
        gpu += driver_problems(cuda, driver) or [
            f"torch {probe['torch']} (CUDA {probe.get('torch_cuda')}) sees no GPU although nvidia-smi reports a driver "
            f"for CUDA {driver[0]}.{driver[1]}. Check that `nvidia-smi` lists a GPU, that CUDA_VISIBLE_DEVICES does not hide it, "
            "and that the tag matches the driver (--cuda cuXXX, not above the driver's CUDA version)."
        ]
    if jax_cuda and not probe.get("jax_gpus") and ("torch" not in probe or torch_sees):
        gpu.append(f"jax {probe['jax']} sees no GPU: {probe.get('jax_error') or 'no gpu backend'}.")
    return errors, gpu


def report_cuda(python: list[str], name: str, cuda: str, require_gpu: bool) -> dict:
    """Probe a ``--cuda`` environment, print what it sees, and fail (or warn) as :func:`cuda_problems` says."""
    probe = probe_environment(python)
    errors, gpu = cuda_problems(probe, cuda, driver_cuda_version() if not probe.get("torch_gpus") else None)
    for framework, gpus in (("torch", probe.get("torch_gpus")), ("jax", probe.get("jax_gpus"))):
        if framework in probe:
            print(f"[build] {name}: {framework} {probe[framework]} sees {', '.join(gpus) if gpus else 'no GPU'}", flush=True)
    if errors:
        raise SystemExit(f"[build] {name}: the CUDA build ({cuda}) is not installed:\n- " + "\n- ".join(errors))
    if gpu and require_gpu:
        raise SystemExit(f"[build] {name}: --require-gpu, but no GPU can be used:\n- " + "\n- ".join(gpu))
    if gpu:
        bar = "!" * 78
        print(f"{bar}\n[build] {name}: WARNING: the CUDA build ({cuda}) is installed, but no GPU can be used here:\n- "
              + "\n- ".join(gpu) + f"\nThe notebooks will run on the CPU. On the GPU server, check with --require-gpu.\n{bar}",
              file=sys.stderr, flush=True)
    return probe


def installed_jax(python: list[str]) -> tuple[str | None, list[str]]:
    """(version, extras) of the jax installed in the environment of ``python``; (None, []) without jax."""
    code = (
        "import json\nfrom importlib import metadata\n"
        "try: print(json.dumps([metadata.version('jax'), metadata.metadata('jax').get_all('Provides-Extra') or []]))\n"
        "except metadata.PackageNotFoundError: print(json.dumps([None, []]))"
    )
    out = subprocess.run([*python, "-c", code], capture_output=True, text=True, check=True)
    version, extras = json.loads(out.stdout.strip().splitlines()[-1])
    return version, extras


def install_jax_cuda(python: list[str], reqs: list[str], cuda: str, name: str) -> None:
    """Install JAX's CUDA plugin for the jax version the environment of ``python`` has (nothing without jax).

    A jax older than its CUDA plugins (no ``cuda12`` extra, e.g. 0.4.13 in the scgen environment,
    whose models are torch ones) is left as it is, on the CPU.
    """
    jax, extras = installed_jax(python)
    if not jax:
        return
    extra = f"cuda{cuda_version(cuda)[0]}"
    if extra not in extras:
        print(f"[build] {name}: jax {jax} has no {extra} plugin release; jax stays on the CPU here", flush=True)
        return
    line = cuda_install_lines(reqs, cuda, installed_jax=jax)[-1]
    run_cuda_pip([*python, "-m", "pip", "--disable-pip-version-check", *line], cuda, name)


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


def build_venv(env_file: Path, prefix: Path, force: bool, no_deps: list[str] | None = None, cuda: str | None = None) -> Path:
    """Build (or check) one virtual environment; one build at a time per prefix (a lock file).

    With ``cuda`` (a tag such as ``cu128``), torch and jax are the CUDA builds (:func:`cuda_install_lines`).
    """
    import fcntl

    prefix.parent.mkdir(parents=True, exist_ok=True)
    with open(prefix.parent / f".{prefix.name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"[build] {prefix.name}: another build of {prefix} is running; waiting for it", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        return _build_venv(env_file, prefix, force, no_deps, cuda)


def _build_venv(env_file: Path, prefix: Path, force: bool, no_deps: list[str] | None, cuda: str | None = None) -> Path:
    name, version, reqs = parse_env_file(env_file)
    no_deps = list(no_deps or [])
    if cuda:
        cuda_install_lines(reqs, cuda)  # a bad tag fails here, before anything is removed
    extra = "\n".join(no_deps) + (f"\ncuda={cuda}" if cuda else "")  # a CUDA build is not the CPU build
    digest = hashlib.sha256(env_file.read_bytes() + extra.encode()).hexdigest()
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
    # Install torch first when pinned, so no other package pulls a different build (CPU, or the CUDA one asked for).
    torch = [r for r in reqs if r.replace(" ", "").startswith("torch==")]
    if cuda:
        for line in cuda_install_lines(reqs, cuda):  # torch only: jax's version is known after the file
            run_cuda_pip([*pip, *line], cuda, name)
    elif torch:
        subprocess.run([*pip, "install", "-q", *torch], check=True, cwd=HERE)
    subprocess.run([*pip, "install", "-q", "-r", str(req_file)], check=True, cwd=HERE)
    if no_deps:
        print(f"[build] {name}: installing without their declared dependencies: {no_deps}", flush=True)
        subprocess.run([*pip, "install", "-q", "--no-deps", *no_deps], check=True, cwd=HERE)
    if cuda:
        install_jax_cuda([str(python)], reqs, cuda, name)
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
    parser.add_argument("--prefix", type=Path, help="where to create the virtual environment (default .venvs/<env>; .venvs/<env>-cuda with --cuda)")
    parser.add_argument("--conda", action="store_true", help="create it with conda instead (conda must be on PATH)")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument(
        "--cuda", nargs="?", const=DEFAULT_CUDA, metavar="TAG",
        help=f"CUDA builds of torch (and jaxlib) for this CUDA tag (default {DEFAULT_CUDA}), into .venvs/<env>-cuda",
    )
    parser.add_argument("--require-gpu", action="store_true", help="with --cuda: fail unless torch and jax see a GPU")
    args = parser.parse_args(argv)
    if args.require_gpu and not args.cuda:
        parser.error("--require-gpu goes with --cuda")
    if args.cuda:
        cuda_version(args.cuda)  # a bad tag is an error before anything is built
        args.cuda = args.cuda.strip().lower()
        if args.require_gpu:
            problems = driver_problems(args.cuda, driver_cuda_version())
            if problems:  # before gigabytes of CUDA wheels are downloaded
                raise SystemExit("--require-gpu, but this machine cannot run a CUDA build:\n- " + "\n- ".join(problems))
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
        display_name = spec.get("display_name", kernel)
        cuda = args.cuda
        if cuda and torch_pin(parse_env_file(env_file)[2]) is None:
            if len(names) == 1:
                raise SystemExit(f"Environment {name} pins no torch (torch==X), so --cuda has nothing to install in it.")
            print(f"[build] {name}: pins no torch; built without --cuda", flush=True)
            cuda = None
        if cuda:
            display_name = f"{display_name} [CUDA {cuda}]"
        if args.conda:
            conda = shutil.which("conda") or shutil.which("mamba")
            if not conda:
                raise SystemExit("conda was not found on PATH; drop --conda to build a virtual environment.")
            env_name, _, reqs = parse_env_file(env_file)
            subprocess.run([conda, "env", "create", "--yes", "-f", str(env_file)], check=True)
            in_env = [conda, "run", "-n", env_name, "python"]
            if spec.get("no_deps"):
                subprocess.run([*in_env, "-m", "pip", "install", "--no-deps", *spec["no_deps"]], check=True)
            if cuda:  # the conda environment itself gets the CUDA builds (conda names it, not a prefix)
                for line in cuda_install_lines(reqs, cuda):
                    run_cuda_pip([*in_env, "-m", "pip", *line], cuda, name)
                install_jax_cuda(in_env, reqs, cuda, name)
            if kernel:
                subprocess.run(
                    [*in_env, "-m", "ipykernel", "install", "--user", "--name", kernel, "--display-name", display_name],
                    check=True,
                )
            if cuda:
                report_cuda(in_env, name, cuda, args.require_gpu)
            continue
        prefix = args.prefix or ROOT / ".venvs" / (f"{name}-cuda" if cuda else name)
        python = build_venv(env_file, prefix.resolve(), args.force, spec.get("no_deps"), cuda=cuda)
        if kernel:
            register_kernel(python, kernel, display_name)
            print(f"[build] {name}: Jupyter kernel {kernel!r} registered in the environment")
        if cuda:
            report_cuda([str(python)], name, cuda, args.require_gpu)
    return 0


if __name__ == "__main__":
    sys.exit(main())
