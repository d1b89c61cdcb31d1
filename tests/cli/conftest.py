"""pytest fixtures for the snapvol CLI integration tests (see README)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from snapvol_helpers import GENVOL, SNAPVOL, UPGRADED, Store, drop_databases  # noqa: E402


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


@pytest.fixture(autouse=True, scope="session")
def _catalog_databases():
    """Drops the databases the PostgreSQL mode (SNAPVOL_CLI_CATALOG) made, at the end of the
    session: module-scoped fixtures share a data dir, and its database, between tests."""
    yield
    drop_databases()


@pytest.fixture(autouse=True)
def _upgraded_mode_check():
    """With SNAPVOL_STORE_FORMAT=upgraded, every store a test took a snapshot of (and did not
    pin to a format) must have been upgraded, so that no test passes on format 1 alone."""
    Store.made = []
    yield
    if UPGRADED:
        missed = [str(s.dir) for s in Store.made if s.snapshotted and not s.pinned and not s.upgraded]
        assert not missed, f"stores never upgraded: {missed}"


@pytest.fixture
def store(tmp_path) -> Store:
    """An initialised, unencrypted data dir with the default block size, on the format
    SNAPVOL_STORE_FORMAT names (1 by default; "upgraded": format 1 until its first snapshot,
    then upgraded to format 2)."""
    s = Store(tmp_path / "data")
    s.init()
    return s
