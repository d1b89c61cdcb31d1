"""Trust boundaries (issue 14), the data dir: no other user can read it or anything in it, a
loose one is tightened at start, and the walk that tightens it never follows a link, never
adopts another user's file, and is not repeated on a private dir.

Runs as root (setpriv switches to uid 65534 for the other-user checks)."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path

import pytest

import daemon_helpers as dh
from trust_helpers import (
    all_paths,
    as_nobody,
    loose_paths,
    take_snapshot,
    trust_service,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (setpriv to another user)")


@pytest.fixture(scope="module")
def svc():
    yield from trust_service()


def test_data_dir_and_everything_in_it_owner_only(svc):
    take_snapshot(svc)
    data = svc.data_dir
    chunks = [p for p in (data / "store").rglob("*") if p.is_file() and "chunks" in p.parts]
    assert chunks, "no store object after a snapshot"
    for path in (svc.catalog_file(), data / "admin-credentials", data / "volumes"):
        assert path.exists(), path
    before = len(all_paths(data))
    assert not loose_paths(data), "paths open to group/other:\n" + "\n".join(loose_paths(data))
    dh.note(f"trust: {before} paths under a fresh data dir, all owner-only (dir 0700)")

    for target in (svc.catalog_file(), chunks[0], data / "admin-credentials"):
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
    res = as_nobody("cat", svc.catalog_file())
    assert res.returncode == 0, "the loosened catalog should be readable: " + dh.describe(res)

    svc.daemon.start()
    lines = [e for e in svc.daemon.log_events() if e.get("event") == "data_dir_tightened"]
    assert len(lines) == 1, lines
    assert lines[0]["paths"] == loose, (lines, loose)
    assert re.search(rf"tightened {loose} paths under {re.escape(str(data))} to owner-only", lines[0]["message"])
    assert not loose_paths(data), loose_paths(data)
    assert as_nobody("cat", svc.catalog_file()).returncode != 0
    dh.note(f"trust: {loose} paths loosened to 0755/0644 were tightened at start: {lines[0]['message']}")

    # The offline CLI tightens too, with one line on stderr.
    os.chmod(data, 0o755)
    os.chmod(svc.catalog_file(), 0o644)
    res = svc.cli("snapshot", "list")
    assert re.search(rf"^snapvol: tightened \d+ paths under {re.escape(str(data))} to owner-only \(e\.g\. ",
                     res.stderr, re.M), dh.describe(res)
    assert not loose_paths(data), loose_paths(data)


def test_private_data_dir_is_not_walked_at_start(svc):
    """Under a 0700 data dir nothing is reachable by other users whatever its entries' modes, so
    a start does not walk it (a store with millions of objects would make every start slow): a
    file left 0644 under it stays 0644 and nothing is logged. Once the dir itself is open, the
    whole tree is tightened again."""
    data = svc.data_dir
    left = data / "volumes" / "left-0644"
    svc.daemon.stop()
    try:
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        left.write_text("x")
        os.chmod(left, 0o644)
        before = len([e for e in svc.daemon.log_events() if e.get("event") == "data_dir_tightened"])
        svc.daemon.start()
        svc.daemon.stop()
        svc.daemon.start()
        svc.cli("snapshot", "list")
        assert stat.S_IMODE(left.stat().st_mode) == 0o644
        lines = [e for e in svc.daemon.log_events() if e.get("event") == "data_dir_tightened"]
        assert len(lines) == before, lines[before:]
        res = as_nobody("cat", left)
        assert res.returncode != 0 and "Permission denied" in res.stderr, dh.describe(res)

        loosen_root(data)
        svc.daemon.stop()
        svc.daemon.start()
        assert stat.S_IMODE(left.stat().st_mode) == 0o600
        assert not loose_paths(data), loose_paths(data)
    finally:
        left.unlink(missing_ok=True)


def loosen_root(data: Path):
    os.chmod(data, 0o755)


def run_snapvold_once(data: Path, timeout: float = 20) -> subprocess.CompletedProcess:
    """snapvold on data expected to refuse to start: returns its exit and stderr."""
    return subprocess.run([dh.SNAPVOLD, "--data-dir", str(data), "--listen", "127.0.0.1:0"], capture_output=True,
                          text=True, timeout=timeout, env=dh.clean_env(), stdin=subprocess.DEVNULL)


def test_walk_leaves_links_fifos_and_hard_linked_files_alone(svc):
    """Symbolic links are not followed, fifos are not opened (start-up must not hang on one) and
    a regular file with another hard link (here: one outside the data dir) keeps its mode."""
    data = svc.data_dir
    outside = svc.root / "outside-by-symlink"
    outside.write_text("not snapvol's\n")
    linked_outside = svc.root / "outside-by-hardlink"
    linked_outside.write_text("not snapvol's either\n")
    for p in (outside, linked_outside):
        os.chmod(p, 0o644)
    planted = [data / "link-out", data / "fifo", data / "hardlink-out"]
    svc.daemon.stop()
    try:
        os.symlink(outside, data / "link-out")
        os.mkfifo(data / "fifo", 0o644)
        os.chmod(data / "fifo", 0o644)
        os.link(linked_outside, data / "hardlink-out")
        loosen_root(data)
        started = time.monotonic()
        svc.daemon.start()
        took = time.monotonic() - started
        assert stat.S_IMODE(outside.stat().st_mode) == 0o644, oct(outside.stat().st_mode)
        assert stat.S_IMODE(linked_outside.stat().st_mode) == 0o644, oct(linked_outside.stat().st_mode)
        assert stat.S_IMODE((data / "fifo").lstat().st_mode) == 0o644  # left alone, not opened
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        lines = [e for e in svc.daemon.log_events() if e.get("event") == "data_dir_tightened"]
        assert lines and lines[-1].get("linked_left") == 1, lines[-1:]
        assert f"left 1 file with other hard links as they were (e.g. {data}/hardlink-out)" in lines[-1]["message"]
        dh.note(f"trust: start on a loose data dir holding a symlink, a fifo and a hard link out: {took:.1f} s, "
                f"nothing outside changed")
    finally:
        for p in planted:
            p.unlink(missing_ok=True)


def test_entry_of_another_user_is_refused_by_name(svc):
    """Root could chmod (and then use) a file another user planted in the data dir: both the
    daemon and the CLI refuse to start, naming it, until it is removed or chowned."""
    data = svc.data_dir
    planted = data / "planted-by-nobody"
    svc.daemon.stop()
    try:
        planted.write_text("x")
        os.chmod(planted, 0o644)
        os.chown(planted, 65534, 65534)
        loosen_root(data)
        res = run_snapvold_once(data)
        assert res.returncode != 0, res.stderr
        assert f"{planted} belongs to uid 65534, not to the data dir's owner (uid 0)" in res.stderr, res.stderr
        assert stat.S_IMODE(planted.stat().st_mode) == 0o644
        loosen_root(data)
        res = svc.cli("snapshot", "list", check=False)
        assert res.returncode != 0 and f"{planted} belongs to uid 65534" in res.stderr, dh.describe(res)
    finally:
        planted.unlink(missing_ok=True)
        svc.daemon.start()


# Swaps each bait/bN (a regular file) with bait/lN (a symbolic link out) by renameat2
# RENAME_EXCHANGE, as fast as it can, until killed: in a process of its own, so the GIL does
# not slow it down.
SWAPPER = r"""
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
bait, n = sys.argv[1].encode(), int(sys.argv[2])
pairs = [(bait + b"/b%d" % k, bait + b"/l%d" % k) for k in range(n)]
swap = libc.renameat2
while True:
    for a, b in pairs:
        swap(-100, a, -100, b, 2)
"""


def test_entry_swapped_for_a_symlink_mid_walk_is_not_followed(svc):
    """Another process keeps swapping names in the data dir between a loose regular file and a
    symbolic link to a file outside, while snapvol walks the (loose) data dir again and again:
    the file outside must keep its mode (the walk changes modes through a descriptor opened
    without following links, never through the name)."""
    data = svc.data_dir
    outside = svc.root / "outside-swapped"
    outside.write_text("not snapvol's\n")
    os.chmod(outside, 0o644)
    bait = data / "bait"
    bait.mkdir()
    names = 64
    files = [bait / f"b{k}" for k in range(names)]
    for k, f in enumerate(files):
        f.write_text("bait\n")
        os.symlink(outside, bait / f"l{k}")
    swapper = subprocess.Popen(["/usr/bin/python3", "-c", SWAPPER, str(bait), str(names)])
    runs = 0
    try:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and stat.S_IMODE(outside.stat().st_mode) == 0o644:
            loosen_root(data)
            for k in range(names):  # whichever name each file has now
                for p in (bait / f"b{k}", bait / f"l{k}"):
                    if not p.is_symlink():
                        os.chmod(p, 0o644)
            svc.cli("snapshot", "list", check=False)
            runs += 1
    finally:
        swapper.kill()
        swapper.wait(5)
        shutil.rmtree(bait, ignore_errors=True)
        os.chmod(data, 0o700)
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644, \
        f"a walk followed a swapped-in symlink out of the data dir (after {runs} walks)"
    dh.note(f"trust: {runs} walks of a loose data dir while {names} names were swapped with symlinks out: "
            f"nothing outside changed")
