"""Shared test setup: the data mirror beside the clone, and an isolated cache."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_configure(config):
    # Tests read the small real files from the mirror (CI: ../shared/data), never the network.
    if not os.environ.get("TUTORIAL_KIT_MIRROR") and SHARED_DATA.is_dir():
        os.environ["TUTORIAL_KIT_MIRROR"] = str(SHARED_DATA)


@pytest.fixture(scope="session")
def mirror() -> Path:
    path = os.environ.get("TUTORIAL_KIT_MIRROR")
    if not path or not Path(path).is_dir():
        pytest.fail(
            "The data mirror is missing: set TUTORIAL_KIT_MIRROR to a folder with the CI files "
            "(../shared/data beside the clone in CI). Data tests cannot run without it."
        )
    return Path(path)
