"""pytest hooks for the real-client acceptance tests (see README.md): the programs must exist
(a missing one fails the run, it is never skipped), and a failing test's report carries the
tail of the daemon's stderr."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import clients_helpers as ch  # noqa: E402

dh = ch.dh


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
            rep.sections.append((f"snapvold stderr ({svc.root.name})", svc.daemon.log_tail(80)))


def pytest_terminal_summary(terminalreporter):
    if dh.NOTES:
        terminalreporter.section("snapvold client test notes")
        for line in dh.NOTES:
            terminalreporter.write_line(line)
