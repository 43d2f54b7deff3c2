#!/usr/bin/env python3
"""Build the course book: the environments, every notebook executed at one data tier, and the HTML.

Usage:
    python3 book/build.py                         # CI tier, builds what is missing
    python3 book/build.py --tier workshop         # the full datasets (a GPU helps)
    python3 book/build.py --skip-env-build        # reuse environments already built

Steps:
1. Read environments/sessions.toml: the environment (and kernel ``tk-<env>``) of each notebook.
2. Build each of those environments and the book environment with environments/build.py
   (virtual environments in .venvs/<env>; each registers its kernel inside itself).
   ``TK_PYTHON_<ENV>`` (e.g. ``TK_PYTHON_CORE``, ``TK_PYTHON_BOOK``) points at an interpreter you
   manage yourself, e.g. a conda environment, and skips building that environment.
3. Run ``jupyter-book build . -W -n --keep-going --all`` with the book environment: warnings are
   errors, and every notebook is executed (``execute_notebooks: force`` in _config.yml) in its own
   kernel, found through JUPYTER_PATH, with ``TUTORIAL_KIT_TIER`` set for the whole build.

The data mirror is ``TUTORIAL_KIT_MIRROR`` when set, else ../shared/data beside the clone when it
exists (as in tests/run.sh). Timings of each step are printed at the end; the exit status is non-zero
when any step fails. Standard library only, so it runs before anything is installed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = ROOT / "environments"
HTML = ROOT / "_build" / "html"
BOOK_ENV = "book"
TIERS = ("ci", "workshop")
EXECUTING = re.compile(r"Executing notebook using")
EXECUTED = re.compile(r"Executed notebook in ([0-9.]+) seconds")
FAILED = re.compile(r"Executing notebook failed")


def log(message: str) -> None:
    print(f"[book] {message}", flush=True)


def read_manifest() -> tuple[dict[str, str], dict[str, dict]]:
    """(notebook -> environment, environment -> spec) from environments/sessions.toml."""
    manifest = tomllib.loads((ENVIRONMENTS / "sessions.toml").read_text())
    notebooks = dict(manifest.get("notebooks", {}))
    envs = dict(manifest.get("environments", {}))
    if not notebooks:
        raise SystemExit("environments/sessions.toml lists no notebooks: nothing to build.")
    for notebook, env in notebooks.items():
        if env not in envs:
            raise SystemExit(f"sessions.toml: notebook {notebook} names environment {env!r}, which is not defined.")
        if not (ROOT / "notebooks" / notebook).exists():
            raise SystemExit(f"sessions.toml lists notebooks/{notebook}, which does not exist.")
    return notebooks, envs


def check_toc(notebooks: dict[str, str]) -> None:
    """Every notebook of the manifest must be a page of the book (only_build_toc_files is on)."""
    toc = (ROOT / "_toc.yml").read_text()
    missing = [nb for nb in notebooks if not re.search(rf"file:\s*notebooks/{re.escape(Path(nb).stem)}(\.ipynb)?\s*$", toc, re.M)]
    if missing:
        raise SystemExit(f"_toc.yml does not list {missing}; add each as `- file: notebooks/<name>` so the book executes it.")


def env_python(env: str, *, build: bool) -> Path:
    """The interpreter of an environment: TK_PYTHON_<ENV>, else .venvs/<env> (built when asked)."""
    override = os.environ.get(f"TK_PYTHON_{env.upper()}")
    if override:
        log(f"{env}: using TK_PYTHON_{env.upper()}={override}")
        return Path(override)
    if build:
        subprocess.run([sys.executable, str(ENVIRONMENTS / "build.py"), env], cwd=ROOT, check=True)
    python = ROOT / ".venvs" / env / "bin" / "python"
    if not python.exists():
        raise SystemExit(
            f"The environment {env!r} is not built ({python} is missing). "
            f"Build it with `python3 environments/build.py {env}`, drop --skip-env-build, "
            f"or set TK_PYTHON_{env.upper()} to its interpreter."
        )
    return python


def jupyter_data_dir(python: Path) -> Path:
    """``<prefix>/share/jupyter`` of an environment, where ``--sys-prefix`` kernels live."""
    out = subprocess.run([str(python), "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True, check=True)
    return Path(out.stdout.strip()) / "share" / "jupyter"


def default_mirror() -> str | None:
    if os.environ.get("TUTORIAL_KIT_MIRROR"):
        return os.environ["TUTORIAL_KIT_MIRROR"]
    shared = ROOT.parent / "shared" / "data"
    return str(shared.resolve()) if shared.is_dir() else None


def render(book_python: Path, environ: dict[str, str]) -> tuple[int, list[float], float]:
    """Run jupyter-book; stream its log and time the execution of each notebook.

    Returns the exit status, the seconds of each notebook that executed successfully, and the
    wall-clock seconds spent executing notebooks (kernel start-up and failed notebooks included).
    """
    jupyter_book = book_python.parent / "jupyter-book"
    command = [str(jupyter_book), "build", str(ROOT), "-W", "-n", "--keep-going", "--all"]
    log("running " + " ".join(command))
    executed: list[float] = []
    executing_s, started = 0.0, None
    with subprocess.Popen(command, cwd=ROOT, env=environ, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            if EXECUTING.search(line):
                started = time.perf_counter()
            elif (match := EXECUTED.search(line)) or FAILED.search(line):
                if match:
                    executed.append(float(match.group(1)))
                if started is not None:
                    executing_s += time.perf_counter() - started
                    started = None
    sys.stdout.flush()
    return proc.returncode, executed, executing_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tier", choices=TIERS, default=os.environ.get("TUTORIAL_KIT_TIER", "ci"),
                        help="data tier the notebooks run at (default: TUTORIAL_KIT_TIER, else ci)")
    parser.add_argument("--skip-env-build", action="store_true",
                        help="do not build environments; use .venvs/<env> (or TK_PYTHON_<ENV>) as they are")
    args = parser.parse_args(argv)
    timings: dict[str, float] = {}
    start = time.perf_counter()

    notebooks, envs = read_manifest()
    check_toc(notebooks)
    session_envs = list(dict.fromkeys(notebooks.values()))
    log(f"tier {args.tier}; {len(notebooks)} notebooks in environments {session_envs}")

    t = time.perf_counter()
    try:
        pythons = {env: env_python(env, build=not args.skip_env_build) for env in [*session_envs, BOOK_ENV]}
    except subprocess.CalledProcessError as err:
        log(f"building an environment failed: {err}")
        return 1
    timings["environments"] = time.perf_counter() - t

    kernel_paths = []
    for env in session_envs:
        data_dir = jupyter_data_dir(pythons[env])
        kernel = envs[env].get("kernel")
        if kernel and not (data_dir / "kernels" / kernel).is_dir():
            log(f"note: kernel {kernel!r} is not registered in {data_dir}; relying on the user's Jupyter kernels")
        kernel_paths.append(str(data_dir))
    environ = dict(os.environ)
    environ["TUTORIAL_KIT_TIER"] = args.tier
    environ.setdefault("PYTHONHASHSEED", "0")
    environ["JUPYTER_PATH"] = os.pathsep.join([*kernel_paths, *filter(None, [os.environ.get("JUPYTER_PATH")])])
    mirror = default_mirror()
    if mirror:
        environ["TUTORIAL_KIT_MIRROR"] = mirror
    log(f"data mirror: {mirror or '(none: files come from the cache or the network)'}")
    log(f"JUPYTER_PATH={environ['JUPYTER_PATH']}")

    t = time.perf_counter()
    rc, executed, executing_s = render(pythons[BOOK_ENV], environ)
    book_s = time.perf_counter() - t
    timings["execute notebooks"] = executing_s
    timings["render HTML"] = book_s - executing_s
    timings["total"] = time.perf_counter() - start

    print("\n[book] timings", flush=True)
    for step, seconds in timings.items():
        print(f"[book]   {step:<18} {seconds:7.1f} s", flush=True)
    if executed:
        print(f"[book]   ({len(executed)} notebooks executed, in-kernel time: " + ", ".join(f"{s:.1f} s" for s in executed) + ")")
    if rc != 0:
        log(f"jupyter-book build failed (exit {rc}); see the warnings and errors above.")
        return rc or 1
    if len(executed) < len(notebooks):
        log(f"only {len(executed)} of {len(notebooks)} notebooks were executed; the rest show stale outputs.")
        return 1
    log(f"done: {HTML / 'index.html'} (tier {args.tier})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
