"""pytest fixtures for the snapvold integration tests (see README.md).

`service` (module scope): a daemon on port 0 in a fresh data dir, with accounts team-1 and
team-2 (a key and a 16 MiB volume each) and the administrator from admin-credentials; a
credentials file with every profile. Stopped with SIGTERM at the end of the module, which must
make it exit 0. When a test fails, the tail of the daemon's stderr is added to its report.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import daemon_helpers as dh  # noqa: E402
from daemon_pytest_hooks import (  # noqa: E402,F401  (installed as this suite's hooks)
    pytest_runtest_makereport, pytest_sessionstart, pytest_terminal_summary)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "svc")
        yield svc
    finally:
        if svc is not None:
            dh.finish_service(svc)
