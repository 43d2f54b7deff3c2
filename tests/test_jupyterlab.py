"""Notebooks read in JupyterLab as participants see them: MyST boxes rendered, not raw markup.

JupyterLab is started from the core environment on the loopback interface, on a copy of notebook
00, and the notebook is opened in headless Chromium (Debian's ``chromium`` package). The rendered DOM
must show the learning-objectives box as a MyST admonition (the ``jupyterlab-myst`` extension of the
session environments) and must not show the directive's raw text. A control run with that extension
disabled must show the raw text, so the check is shown to catch the problem it is for.
Screenshots of both are kept in test-output/ (``jupyterlab_00_setup_check.png`` and
``jupyterlab_00_setup_check_without_myst.png``) to be looked at.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "test-output"
NOTEBOOK = "00_setup_check.ipynb"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1000", "--virtual-time-budget=30000"]


def _chromium() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if found is None:
        pytest.fail("Chromium is needed to look at JupyterLab but was not found. "
                    "Install Debian's package: `apt-get install chromium` (CI installs it in .ci/run).")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _raw_outside_editor(dom: str, text: str) -> int:
    """How often ``text`` appears in the DOM outside the (hidden) CodeMirror source of a cell."""
    editor_lines = len(re.findall(r'<div class="cm-line">[^<]*' + re.escape(text), dom))
    editor_lines += len(re.findall(r'<span[^>]*>' + re.escape(text), dom))
    return dom.count(text) - editor_lines


def _open_in_jupyterlab(python: Path, work: Path, *, myst: bool, screenshot: Path) -> str:
    """Start JupyterLab on ``work``, open notebook 00 in headless Chromium; return the rendered DOM."""
    home = work / ("home-myst" if myst else "home-plain")
    settings = home / "settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false"}))
    config = home / "config"
    (config / "labconfig").mkdir(parents=True)
    if not myst:
        (config / "labconfig" / "page_config.json").write_text(
            json.dumps({"disabledExtensions": {"jupyterlab-myst": True}}))
    port = _free_port()
    env = {**os.environ, "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "JUPYTER_CONFIG_DIR": str(config),
           "HOME": str(home)}
    server = subprocess.Popen(
        [str(python), "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
         "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={work / 'root'}"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/lab/tree/{NOTEBOOK}"
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab", timeout=5) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log = server.stdout.read() if server.poll() is not None else "(still running)"
                pytest.fail(f"JupyterLab did not start on 127.0.0.1:{port}:\n{log[-3000:]}")
            time.sleep(1)
        chromium = _chromium()
        profile = home / "chromium"
        shot = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}-shot",
                               f"--screenshot={screenshot}", url], capture_output=True, text=True, timeout=180)
        assert shot.returncode == 0 and screenshot.is_file(), f"no screenshot of JupyterLab:\n{shot.stderr[-2000:]}"
        dom = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}-dom", "--dump-dom", url],
                             capture_output=True, text=True, timeout=180)
        assert dom.returncode == 0, f"Chromium could not read JupyterLab's page:\n{dom.stderr[-2000:]}"
        return dom.stdout
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def lab_work(tmp_path_factory, env_python):
    work = tmp_path_factory.mktemp("jupyterlab")
    (work / "root").mkdir()
    shutil.copy2(ROOT / "notebooks" / NOTEBOOK, work / "root" / NOTEBOOK)  # never the repository's file
    OUTPUT.mkdir(exist_ok=True)
    return env_python("core"), work


@pytest.mark.slow
def test_jupyterlab_renders_the_myst_boxes_of_a_notebook(lab_work):
    python, work = lab_work
    dom = _open_in_jupyterlab(python, work, myst=True, screenshot=OUTPUT / "jupyterlab_00_setup_check.png")
    assert "00 · Setup check" in dom, "JupyterLab did not show notebook 00 (is the page blank?)"
    boxes = re.findall(r'class="myst-admonition myst-admonition-tip', dom)
    assert boxes, "the learning-objectives box of notebook 00 is not rendered as a MyST admonition in JupyterLab"
    assert "Learning objectives" in dom
    for raw in (":class: tip", "{admonition}"):
        assert _raw_outside_editor(dom, raw) == 0, f"JupyterLab shows the raw MyST text {raw!r} to participants"


@pytest.mark.slow
def test_without_jupyterlab_myst_the_raw_markup_shows(lab_work):
    """The control: with the extension disabled, the same check sees the raw directive."""
    python, work = lab_work
    dom = _open_in_jupyterlab(python, work, myst=False,
                              screenshot=OUTPUT / "jupyterlab_00_setup_check_without_myst.png")
    assert "00 · Setup check" in dom
    assert not re.findall(r'class="myst-admonition', dom)
    assert _raw_outside_editor(dom, ":class: tip") > 0
