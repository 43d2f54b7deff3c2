"""The Jupyter Book builds with every notebook's outputs from the CI tier, and a rendered page looks right.

When tests/test_notebooks.py ran in the same session (the test command does both), the book is
rendered from the notebooks that nbval executed (``python3 book/build.py --from-executed
test-output/executed``): no notebook is executed a second time, and the test checks that. Run alone,
the test builds the book the way a reader does (``python3 book/build.py --tier ci``), executing every
notebook in its own kernel. Either way warnings are errors; the test checks that the QC notebook's page
carries its figures and opens that page in headless Chromium (Debian's ``chromium`` package).
The build log and the screenshot are kept in test-output/ for inspection.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
PAGE = HTML / "notebooks" / "01_perturbseq_qc.html"
OUTPUT = ROOT / "test-output"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BUILD_TIMEOUT_S = 3600  # environments from scratch plus every notebook; a warm build takes minutes


EXECUTED = OUTPUT / "executed"  # written by the nbval run of tests/test_notebooks.py


@pytest.fixture(scope="module")
def book_build(notebooks_run) -> str:
    """Build the book once for this module; the log is kept in test-output/book-build.log."""
    OUTPUT.mkdir(exist_ok=True)
    notebooks = sorted(tomllib.loads((ROOT / "environments" / "sessions.toml").read_text())["notebooks"])
    if notebooks_run:
        # nbval executed the notebooks in this session: render those outputs, execute nothing.
        missing = sorted(set(notebooks) - set(notebooks_run))
        assert not missing, f"the book needs every notebook executed in this run; not run under nbval: {missing}"
        failed = [nb for nb in notebooks if not (EXECUTED / nb).is_file()]
        assert not failed, f"no executed copy of {failed}: they failed under nbval (see tests/test_notebooks.py)"
        command = ["python3", "book/build.py", "--from-executed", str(EXECUTED)]
    else:
        command = ["python3", "book/build.py", "--tier", "ci"]
    proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    log = proc.stdout + proc.stderr
    (OUTPUT / "book-build.log").write_text(log)
    timings = "\n".join(line for line in log.splitlines() if line.startswith("[book]"))
    print(timings)
    assert proc.returncode == 0, (
        f"{' '.join(command)} failed (exit {proc.returncode}); "
        f"full log in {OUTPUT / 'book-build.log'}:\n{log[-8000:]}"
    )
    return log


@pytest.fixture(scope="module")
def rendered_from_nbval(book_build) -> bool:
    return "rendered from the nbval run; 0 notebooks executed" in book_build


def _png_sources(page: Path) -> list[bytes]:
    """The bytes of every PNG image of a rendered page, inline (data URI) or as a file."""
    images = []
    for src in re.findall(r"<img\b[^>]*?\bsrc=\"([^\"]+)\"", page.read_text()):
        if src.startswith("data:image/png;base64,"):
            images.append(base64.b64decode(src.split(",", 1)[1]))
        elif src.lower().endswith(".png") and not src.startswith(("http:", "https:")):
            path = (page.parent / src).resolve()
            assert path.is_file(), f"{page.name} shows {src}, which is not in the build ({path})"
            images.append(path.read_bytes())
    return images


@pytest.mark.slow
def test_book_builds_with_every_notebook_executed_once(book_build, rendered_from_nbval, notebooks_run):
    notebooks = tomllib.loads((ROOT / "environments" / "sessions.toml").read_text())["notebooks"]
    executed = re.findall(r"Executed notebook in ([0-9.]+) seconds", book_build)
    if notebooks_run:
        # nbval executed each notebook once in this session; the book must not execute any again.
        assert rendered_from_nbval, "the book was not rendered from the notebooks nbval executed"
        assert executed == [], f"the book build executed {len(executed)} notebooks a second time"
        for notebook in notebooks:
            page = (HTML / "notebooks" / (Path(notebook).stem + ".html")).read_text()
            assert "output" in page and "cell_output" in page, f"{notebook}: the rendered page shows no cell output"
    else:
        assert len(executed) == len(notebooks), f"{len(executed)} of {len(notebooks)} notebooks were executed"
    for notebook in notebooks:
        page = HTML / "notebooks" / (Path(notebook).stem + ".html")
        assert page.is_file(), f"{notebook} was not rendered to {page}"
        # The build names the data tier on every page (book/_ext/tier_note.py).
        assert "TUTORIAL_KIT_TIER=ci" in page.read_text(), f"{page.name} does not say which data tier produced it"
    for lecture in ("intro", "setup", "perturbseq", "simulation", "response_prediction", "evaluation", "api",
                    "glossary", "bibliography"):
        assert (HTML / "book" / f"{lecture}.html").is_file(), f"book/{lecture}.md was not rendered"
    assert (HTML / "CONTRIBUTING.html").is_file(), "CONTRIBUTING.md is not a page of the book"


@pytest.mark.slow
def test_api_page_documents_the_package_from_its_docstrings(book_build):
    page = (HTML / "book" / "api.html").read_text()
    for name in ("tutorial_kit.models.ScPRAM", "tutorial_kit.metrics.edistance", "tutorial_kit.stats.summarize_seeds",
                 "tutorial_kit.simulate.simulate_screen", "tutorial_kit.plotting.benchmark_plot"):
        assert f'id="{name}"' in page, f"the API page has no entry for {name}"


@pytest.mark.slow
def test_qc_page_has_rendered_figures(book_build):
    assert PAGE.is_file(), f"{PAGE} is missing after the build"
    images = _png_sources(PAGE)
    assert images, f"{PAGE.name} has no PNG figure (<img> with PNG data or a PNG file)"
    for data in images:
        assert data.startswith(PNG_MAGIC) and len(data) > 1000, "a figure of the QC page is not a real PNG"


@pytest.mark.slow
def test_qc_page_renders_in_headless_chromium(book_build, tmp_path):
    import matplotlib.image
    import numpy as np

    chromium = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if chromium is None:
        pytest.fail(
            "Chromium is needed to check the rendered book but was not found. "
            "Install Debian's package: `apt-get install chromium` (CI installs it in .ci/run)."
        )
    assert PAGE.is_file(), f"{PAGE} is missing after the build"
    OUTPUT.mkdir(exist_ok=True)
    screenshot = OUTPUT / "01_perturbseq_qc.png"
    screenshot.unlink(missing_ok=True)
    proc = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'chromium-profile'}", f"--screenshot={screenshot}",
         "--window-size=1280,4000", PAGE.as_uri()],
        capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0 and screenshot.is_file(), (
        f"headless Chromium did not write {screenshot} (exit {proc.returncode}):\n{proc.stderr[-3000:]}"
    )
    pixels = matplotlib.image.imread(screenshot)
    height, width = pixels.shape[:2]
    assert width >= 1200 and height >= 3000, f"unexpected screenshot size {width} x {height}"
    rgb = (np.asarray(pixels)[..., :3] * 255).round().astype(np.uint8).reshape(-1, 3)
    distinct = len(np.unique(rgb, axis=0))
    not_white = float((rgb < 245).any(axis=1).mean())
    assert distinct >= 50, f"the screenshot has only {distinct} distinct colours: the page looks blank"
    assert not_white >= 0.02, f"only {not_white:.1%} of the screenshot is not white: the page looks blank"
