"""pytest hooks for the real-client acceptance tests (see README.md): the programs must exist
(a missing one fails the run, it is never skipped), and a failing test's report carries the
tail of the daemon's stderr."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import clients_helpers  # noqa: E402,F401  (puts tests/daemon on sys.path)
from daemon_pytest_hooks import (  # noqa: E402,F401  (installed as this suite's hooks)
    pytest_runtest_makereport, pytest_sessionstart, pytest_terminal_summary)
