"""pytest fixtures for the PostgreSQL data dir tests (see pg_helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pg_helpers import Databases  # noqa: E402
# A failing test's report carries each running daemon's stderr, and the notes the tests took
# (e.g. how long a failover took) are printed at the end, as in tests/daemon.
from daemon_pytest_hooks import pytest_runtest_makereport, pytest_terminal_summary  # noqa: E402,F401


@pytest.fixture
def databases():
    dbs = Databases()
    try:
        yield dbs
    finally:
        dbs.drop_all()


@pytest.fixture(scope="module")
def module_databases():
    dbs = Databases()
    try:
        yield dbs
    finally:
        dbs.drop_all()
