"""pytest fixtures for the snapvold integration tests (see README.md).

`service` (module scope): a daemon on port 0 in a fresh data dir, with accounts team-1 and
team-2 (a key and a 16 MiB volume each) and the administrator from admin-credentials; a
credentials file with every profile. Stopped with SIGTERM at the end of the module, which must
make it exit 0. When a test fails, the tail of the daemon's stderr is added to its report.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import daemon_helpers as dh  # noqa: E402


def pytest_sessionstart(session):
    for what, path in (("SNAPVOL_BIN", dh.SNAPVOL), ("SNAPVOLD_BIN", dh.SNAPVOLD),
                       ("SNAPVOL_GENVOL", dh.GENVOL)):
        if not os.access(path, os.X_OK):
            raise pytest.UsageError(f"{what}: {path} is not an executable; build it first "
                                    f"or point {what} at it")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for svc in dh.ACTIVE:
            rep.sections.append((f"snapvold stderr ({svc.root.name})", svc.daemon.log_tail(150)))


def pytest_terminal_summary(terminalreporter):
    if dh.NOTES:
        terminalreporter.section("snapvold test notes")
        for line in dh.NOTES:
            terminalreporter.write_line(line)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "svc")
        yield svc
    finally:
        if svc is not None:
            dh.finish_service(svc)
