"""pytest fixtures for the S3 integration tests (see s3_helpers.py)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from s3_helpers import GENVOL, SNAPVOL, Cluster  # noqa: E402


def pytest_sessionstart(session):
    for what, path in (("SNAPVOL_BIN", SNAPVOL), ("SNAPVOL_GENVOL", GENVOL)):
        if not os.access(path, os.X_OK):
            raise pytest.UsageError(f"{what}: {path} is not an executable; build it first")


@pytest.fixture(scope="session")
def cluster() -> Cluster:
    return Cluster()  # raises (fails every test) when the fixture's variables are missing


@pytest.fixture(autouse=True)
def _clean_tmp(tmp_path):
    yield
    if not os.environ.get("SNAPVOL_KEEP_TMP"):
        shutil.rmtree(tmp_path, ignore_errors=True)
