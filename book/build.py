#!/usr/bin/env python3
"""Build the course book: the environments, every notebook executed at one data tier, and the HTML.

Usage:
    python3 book/build.py                         # CI tier, builds what is missing
    python3 book/build.py --tier workshop         # the full datasets (a GPU helps)
    python3 book/build.py --skip-env-build        # reuse environments already built
    python3 book/build.py --from-executed test-output/executed   # render notebooks nbval executed

Steps:
1. Read environments/sessions.toml: the environment (and kernel ``tk-<env>``) of each notebook.
2. Build each of those environments and the book environment with environments/build.py
   (virtual environments in .venvs/<env>; each registers its kernel inside itself).
   ``TK_PYTHON_<ENV>`` (e.g. ``TK_PYTHON_CORE``, ``TK_PYTHON_BOOK``) points at an interpreter you
   manage yourself, e.g. a conda environment, and skips building that environment.
3. Run ``jupyter-book build . -W -n --keep-going --all`` with the book environment: warnings are
   errors, and every notebook is executed (``execute_notebooks: force`` in _config.yml) in its own
   kernel, found through JUPYTER_PATH, with ``TUTORIAL_KIT_TIER`` set for the whole build.

With ``--from-executed DIR`` nothing is executed: DIR holds the notebooks that the test command ran
under nbval, with that run's outputs (tests/plugins/nbval_outputs.py). Each must come from the
notebook as it is now (the SHA-256 of its source is recorded in it) and all from one tier; the book
is rendered from a staging copy (``_build/staging``) with ``execute_notebooks: off``, and the banner
names the tier those outputs were computed at. This is how CI executes every notebook only once.

The data mirror is ``TUTORIAL_KIT_MIRROR`` when set, else ../shared/data beside the clone when it
exists (as in tests/run.sh). Timings of each step are printed at the end; the exit status is non-zero
when any step fails. Standard library only, so it runs before anything is installed.
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

ROOT = Path(__file__).resolve().parents[1]
ENVIRONMENTS = ROOT / "environments"
HTML = ROOT / "_build" / "html"
STAGING = ROOT / "_build" / "staging"
STAGED = ("book", "_config.yml", "_toc.yml", "LICENSE", "CONTRIBUTING.md", "README.md")  # what the book reads besides notebooks/
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


def executed_tier(folder: Path, notebooks: dict[str, str]) -> str:
    """Check the executed copies in ``folder`` against the notebooks; return the tier they ran at.

    Refuses (SystemExit, naming every problem) a missing copy, a copy not executed by nbval, a copy
    whose source notebook has changed since it ran, and copies from different tiers.
    """
    problems, tiers = [], set()
    for notebook in notebooks:
        copy = folder / notebook
        if not copy.is_file():
            problems.append(f"{notebook}: no executed copy in {folder} (did it fail under nbval?)")
            continue
        meta = json.loads(copy.read_text()).get("metadata", {}).get("tutorial_kit", {})
        source = hashlib.sha256((ROOT / "notebooks" / notebook).read_bytes()).hexdigest()
        if meta.get("executed_by") != "nbval":
            problems.append(f"{notebook}: {copy} was not written by the nbval run of the test command")
        elif meta.get("source_sha256") != source:
            problems.append(f"{notebook}: notebooks/{notebook} changed after it was executed; its outputs are stale")
        else:
            tiers.add(meta.get("tier", "?"))
    if len(tiers) > 1:
        problems.append(f"the executed notebooks come from different tiers: {sorted(tiers)}")
    if problems:
        raise SystemExit(
            "book/build.py --from-executed: cannot render from " + str(folder) + ":\n  - " + "\n  - ".join(problems)
            + "\nRun the notebooks under nbval first (bash tests/run.sh tests/test_notebooks.py), "
            "or build without --from-executed to execute every notebook."
        )
    return tiers.pop()


def stage(folder: Path, notebooks: dict[str, str]) -> Path:
    """A copy of the book's sources with the executed notebooks and ``execute_notebooks: off``."""
    shutil.rmtree(STAGING, ignore_errors=True)
    STAGING.mkdir(parents=True)
    for name in STAGED:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, STAGING / name, ignore=shutil.ignore_patterns("_build", "__pycache__"))
        elif src.is_file():
            shutil.copy2(src, STAGING / name)
    (STAGING / "notebooks").mkdir()
    for notebook in notebooks:
        shutil.copy2(folder / notebook, STAGING / "notebooks" / notebook)
    config = (STAGING / "_config.yml").read_text()
    config, n = re.subn(r"(?m)^(\s*execute_notebooks:\s*)force\b", r"\1off", config)
    if n != 1:
        raise SystemExit("book/build.py: _config.yml has no `execute_notebooks: force` line to switch off in staging.")
    (STAGING / "_config.yml").write_text(config)
    return STAGING


def render(book_python: Path, environ: dict[str, str], source: Path = ROOT) -> tuple[int, list[float], float]:
    """Run jupyter-book; stream its log and time the execution of each notebook.

    Returns the exit status, the seconds of each notebook that executed successfully, and the
    wall-clock seconds spent executing notebooks (kernel start-up and failed notebooks included).
    """
    jupyter_book = book_python.parent / "jupyter-book"
    command = [str(jupyter_book), "build", str(source), "-W", "-n", "--keep-going", "--all"]
    if source != ROOT:
        command += ["--path-output", str(ROOT)]  # the HTML lands in _build/html either way
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
    parser.add_argument("--from-executed", type=Path, default=None, metavar="DIR",
                        help="render the notebooks in DIR, executed by the test command's nbval run, without executing them")
    args = parser.parse_args(argv)
    timings: dict[str, float] = {}
    start = time.perf_counter()

    notebooks, envs = read_manifest()
    check_toc(notebooks)
    session_envs = list(dict.fromkeys(notebooks.values()))
    source = ROOT
    if args.from_executed is not None:
        folder = args.from_executed if args.from_executed.is_absolute() else Path.cwd() / args.from_executed
        args.tier = executed_tier(folder, notebooks)
        source = stage(folder, notebooks)
        session_envs = []  # nothing executes: only the book environment is needed
        log(f"rendering {len(notebooks)} notebooks executed by nbval at tier {args.tier}, from {folder}; nothing is executed")
    else:
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
    environ["TUTORIAL_KIT_OUTPUTS_TIER"] = args.tier  # the banner of book/_ext/tier_note.py
    environ.setdefault("PYTHONHASHSEED", "0")
    environ["JUPYTER_PATH"] = os.pathsep.join([*kernel_paths, *filter(None, [os.environ.get("JUPYTER_PATH")])])
    mirror = default_mirror()
    if mirror:
        environ["TUTORIAL_KIT_MIRROR"] = mirror
    log(f"data mirror: {mirror or '(none: files come from the cache or the network)'}")
    log(f"JUPYTER_PATH={environ['JUPYTER_PATH']}")

    t = time.perf_counter()
    rc, executed, executing_s = render(pythons[BOOK_ENV], environ, source)
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
    if source != ROOT:
        if executed:
            log(f"{len(executed)} notebooks were executed again although they came from nbval; that must not happen.")
            return 1
        log(f"done: {HTML / 'index.html'} (tier {args.tier}, rendered from the nbval run; 0 notebooks executed)")
        return 0
    if len(executed) < len(notebooks):
        log(f"only {len(executed)} of {len(notebooks)} notebooks were executed; the rest show stale outputs.")
        return 1
    log(f"done: {HTML / 'index.html'} (tier {args.tier})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
