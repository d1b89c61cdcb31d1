"""Helpers of the rollback and root-replacement tests (test_rollback, test_managed_rollback,
test_managed_root): the AWS CLI v2, NBD connections to snapvold's exports, replace-root-volume
tasks as snapvol describes them, and the bytes the daemon wrote.
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
import xml.etree.ElementTree as ET

import nbd
import pytest

import daemon_helpers as dh
from signed_query import field, items, ok

MiB = 1 << 20
DONE = ("succeeded", "failed", "failed-detached")  # a task's ended states


def aws() -> dh.AwsCli:
    if not os.access(dh.AWS_V2, os.X_OK):
        pytest.fail(f"the AWS CLI v2 is expected at {dh.AWS_V2}")
    return dh.AwsCli(dh.AWS_V2, 2)


def connect(service, name: str) -> nbd.NBD:
    """An NBD connection (root on the Unix socket) to the export `name`."""
    h = nbd.NBD()
    sock = service.data_dir / "nbd.sock"
    h.connect_uri(f"nbd+unix:///{urllib.parse.quote(name, safe='')}?socket={sock}")
    return h


def sha_of(h: nbd.NBD) -> str:
    """SHA-256 of everything the connection's export holds."""
    digest = hashlib.sha256()
    size = h.get_size()
    for off in range(0, size, 32 * MiB):
        digest.update(h.pread(min(32 * MiB, size - off), off))
    return digest.hexdigest()


def task_xml(service, task_id) -> ET.Element:
    """The task as snapvol describes it (with its own members: progress, bytesWritten, …)."""
    found = items(ok(service, "admin", "DescribeReplaceRootVolumeTasks", **{"ReplaceRootVolumeTaskId.1": task_id}),
                  "replaceRootVolumeTaskSet")
    assert len(found) == 1, task_id
    return found[0]


def wait_ended(service, task_id, timeout=180) -> ET.Element:
    return dh.wait_until(lambda: (t := task_xml(service, task_id)) is not None and field(t, "taskState") in DONE and t,
                         timeout, 0.1, f"task {task_id} to end")


def wchar(service) -> int:
    """Bytes the daemon has written so far (/proc/PID/io)."""
    with open(f"/proc/{service.daemon.proc.pid}/io") as f:
        for line in f:
            if line.startswith("wchar:"):
                return int(line.split()[1])
    raise AssertionError("no wchar in /proc/PID/io")
