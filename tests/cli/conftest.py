"""pytest fixtures for the snapvol CLI integration tests (see README)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from snapvol_helpers import GENVOL, SNAPVOL, Store  # noqa: E402


def pytest_sessionstart(session):
    for what, path in (("SNAPVOL_BIN", SNAPVOL), ("SNAPVOL_GENVOL", GENVOL)):
        if not os.access(path, os.X_OK):
            raise pytest.UsageError(f"{what}: {path} is not an executable; build it first "
                                    f"or point {what} at it")


@pytest.fixture(autouse=True)
def _clean_tmp(tmp_path):
    """Removes the test's tmp_path afterwards (the images are large), unless
    SNAPVOL_KEEP_TMP is set for debugging.  Autouse, so it is set up before and torn down
    after every other fixture of the test (tmpfs mounts are gone by then)."""
    yield
    if not os.environ.get("SNAPVOL_KEEP_TMP"):
        shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture
def store(tmp_path) -> Store:
    """An initialised, unencrypted data dir with the default block size."""
    s = Store(tmp_path / "data")
    s.init()
    return s
