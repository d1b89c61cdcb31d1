"""pytest hooks shared by every suite that runs snapvold (tests/daemon, tests/clients): the
programs must exist (a missing one fails the run, it is never skipped), a failing test's report
carries the tail of each running daemon's stderr, and the notes the tests took are printed at
the end. A conftest.py imports these names to install them."""

from __future__ import annotations

import os

import pytest

import daemon_helpers as dh


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
            for k, d in enumerate(svc.daemons, 1):
                host = f", host {k}" if len(svc.daemons) > 1 else ""
                rep.sections.append((f"snapvold stderr ({svc.root.name}{host})", d.log_tail(150)))


def pytest_terminal_summary(terminalreporter):
    if dh.NOTES:
        terminalreporter.section("snapvold test notes")
        for line in dh.NOTES:
            terminalreporter.write_line(line)
