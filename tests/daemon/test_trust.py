"""Trust boundaries (issue 14): a data dir no other user can read.

Runs as root (setpriv switches to uid 65534 for the other-user checks). The service lives under
a directory every user may traverse (not pytest's 0700 tmp dir), so only the data dir's own
modes keep other users out. Every client is on loopback; every loop is bounded.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

import daemon_helpers as dh

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (setpriv to another user)")


@pytest.fixture(scope="module")
def svc():
    root = Path(tempfile.mkdtemp(prefix="snapvol-trust-", dir="/tmp"))
    os.chmod(root, 0o755)  # traversable by everyone: only the data dir's modes protect it
    service = None
    try:
        service = dh.setup_service(root)
        dh.ACTIVE.append(service)
        yield service
    finally:
        if service is not None:
            try:
                dh.teardown_service(service)
            finally:
                service.daemon.kill9()
                dh.ACTIVE.remove(service)
        if not os.environ.get("SNAPVOL_KEEP_TMP"):
            shutil.rmtree(root, ignore_errors=True)


def loose_paths(top: Path) -> list[str]:
    """Every path under top (top included, symlinks not followed) with a group or other bit.
    The NBD server makes its socket 0660 on purpose (for --nbd-socket elsewhere); inside the
    0700 data dir nobody else reaches it, which the test checks by connecting."""
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        for p in [Path(dirpath)] + [Path(dirpath) / n for n in filenames + dirnames]:
            st = p.lstat()
            if stat.S_ISLNK(st.st_mode) or stat.S_ISSOCK(st.st_mode) or (
                    p != Path(dirpath) and stat.S_ISDIR(st.st_mode)):
                continue  # a directory is checked as its own dirpath
            if st.st_mode & 0o077:
                out.append(f"{p} {oct(st.st_mode & 0o7777)}")
    return out


def all_paths(top: Path) -> list[Path]:
    return [Path(d) / n for d, ds, fs in os.walk(top) for n in ds + fs] + [top]


def as_nobody(*args, timeout=60):
    return subprocess.run([*NOBODY, *map(str, args)], capture_output=True, text=True, errors="replace", timeout=timeout,
                          env=dh.clean_env())


def take_snapshot(svc) -> str:
    ec2 = svc.client("team-1")
    snap = ec2.create_snapshot(VolumeId=svc.volumes["vol-team-1"].volume_id, Description="trust")
    dh.wait_until(lambda: ec2.describe_snapshots(SnapshotIds=[snap["SnapshotId"]])["Snapshots"][0]["State"]
                  == "completed", 60, 0.1, "the snapshot to complete")
    return snap["SnapshotId"]


# ---------------------------------------------------------------------------------------------
# 1. The data dir is private

def test_data_dir_and_everything_in_it_owner_only(svc):
    take_snapshot(svc)
    data = svc.data_dir
    chunks = [p for p in (data / "store").rglob("*") if p.is_file() and "chunks" in p.parts]
    assert chunks, "no store object after a snapshot"
    for name in ("catalog.db", "admin-credentials", "volumes"):
        assert (data / name).exists(), name
    before = len(all_paths(data))
    assert not loose_paths(data), "paths open to group/other:\n" + "\n".join(loose_paths(data))
    dh.note(f"trust: {before} paths under a fresh data dir, all owner-only (dir 0700)")

    for target in (data / "catalog.db", chunks[0], data / "admin-credentials"):
        res = as_nobody("cat", target)
        assert res.returncode != 0 and "Permission denied" in res.stderr, dh.describe(res)
    res = as_nobody("/usr/bin/python3", "-c", "import socket,sys; socket.socket(socket.AF_UNIX).connect(sys.argv[1])",
                    data / "nbd.sock")
    assert res.returncode != 0 and "PermissionError" in res.stderr, dh.describe(res)
    res = as_nobody(dh.SNAPVOL, "--data-dir", data, "snapshot", "list")
    assert res.returncode != 0, dh.describe(res)
    assert "belongs to uid 0" in res.stderr and "private" in res.stderr, dh.describe(res)


def test_loose_data_dir_is_tightened_at_start(svc):
    data = svc.data_dir
    svc.daemon.stop()
    for p in all_paths(data):
        st = p.lstat()
        if stat.S_ISDIR(st.st_mode):
            os.chmod(p, 0o755)
        elif stat.S_ISREG(st.st_mode):
            os.chmod(p, 0o644)
    loose = len(loose_paths(data))
    assert loose >= 8  # at least the dirs and files every data dir has
    res = as_nobody("cat", data / "catalog.db")
    assert res.returncode == 0, "the loosened catalog should be readable: " + dh.describe(res)

    svc.daemon.start()
    lines = [e for e in svc.daemon.log_events() if e.get("event") == "data_dir_tightened"]
    assert len(lines) == 1, lines
    assert lines[0]["paths"] == loose, (lines, loose)
    assert re.search(rf"tightened {loose} paths under {re.escape(str(data))} to owner-only", lines[0]["message"])
    assert not loose_paths(data), loose_paths(data)
    assert as_nobody("cat", data / "catalog.db").returncode != 0
    dh.note(f"trust: {loose} paths loosened to 0755/0644 were tightened at start: {lines[0]['message']}")

    # The offline CLI tightens too, with one line on stderr.
    os.chmod(data, 0o755)
    os.chmod(data / "catalog.db", 0o644)
    res = svc.cli("snapshot", "list")
    assert re.search(rf"^snapvol: tightened \d+ paths under {re.escape(str(data))} to owner-only \(e\.g\. ",
                     res.stderr, re.M), dh.describe(res)
    assert not loose_paths(data), loose_paths(data)
