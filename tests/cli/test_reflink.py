"""Registered image files on reflink file systems (issue 19, item 2), through `snapvol snapshot
create`: the cut is a FICLONE of the image, so a snapshot taken while a writer runs holds exactly
the writes done before the cut; the next snapshot reads only the blocks whose extents are no
longer shared with the base clone (FIEMAP). On ext4 the same falls back to reading the image
while it runs, and the snapshot says so. Needs root: the file systems are loop mounts, always
unmounted and removed afterwards."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
import time
from pathlib import Path

from snapvol_helpers import BLOCK, genvol_create, genvol_mutate, sha256_file

SLOT = 4096


@contextlib.contextmanager
def loop_fs(tmp_path: Path, kind: str, size: str = "6G"):
    image, mnt = tmp_path / f"{kind}.fs", tmp_path / f"{kind}-mnt"
    mnt.mkdir()
    subprocess.run(["truncate", "-s", size, str(image)], check=True)
    mkfs = ["mkfs.xfs", "-q", "-f"] if kind == "xfs" else ["mkfs.ext4", "-q", "-F"]
    subprocess.run([*mkfs, str(image)], check=True, capture_output=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mnt)], check=True)
    try:
        yield mnt
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(mnt)], capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        else:
            subprocess.run(["umount", "-l", str(mnt)], check=False)
        image.unlink(missing_ok=True)


def tags(store, snap: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in store.show(snap)["Tags"]}


def snapshot(store, vol: str) -> tuple[str, int]:
    """Takes a snapshot; its id and the bytes the CLI says it read."""
    res = store.ok("snapshot", "create", "--volume-id", vol, timeout=900)
    m = re.search(r"(\d+) bytes read", res.stderr)
    assert m, res.stderr
    return res.stdout.strip(), int(m.group(1))


def restore_sha(store, snap: str, to: Path) -> str:
    res = store.restore(snap, to)
    assert res.returncode == 0, res.stderr
    digest = sha256_file(to)
    to.unlink()
    return digest


def record(i: int) -> bytes:
    return (b"REC%012d\n" % i) * (SLOT // 16)


def test_writer_sees_a_prefix_of_its_writes(store, tmp_path):
    """Numbered writes land all over the image (a permutation of its 4 KiB slots), so a copy
    read while running would hold a set with gaps; the clone holds exactly 0..k-1."""
    with loop_fs(tmp_path, "xfs") as mnt:
        image = genvol_create(mnt / "busy.img", "256M", 3, holes=False)
        slots = image.stat().st_size // SLOT  # a power of two: an odd stride visits each slot once
        vol = store.register(image, name="busy")
        done = [0]
        stop = threading.Event()

        def writer():
            fd = os.open(image, os.O_WRONLY)
            try:
                for i in range(slots):
                    if stop.is_set():
                        return
                    os.pwrite(fd, record(i), ((i * 40503) % slots) * SLOT)
                    done[0] = i + 1
                    if i % 8 == 0:
                        time.sleep(0.002)
            finally:
                os.close(fd)

        t = threading.Thread(target=writer)
        t.start()
        try:
            while done[0] < 500:
                time.sleep(0.01)
            before = done[0]
            snap, _ = snapshot(store, vol)
            after = done[0]
        finally:
            stop.set()
            t.join()
        assert after < slots, "the writer ran out of slots: make it slower"
        assert after - before > 20, "no writes during the snapshot: the test would prove nothing"
        assert tags(store, snap)["aws:snapvol:consistency"] == "point-in-time (reflink)"

        restored = tmp_path / "restored.img"
        assert store.restore(snap, restored).returncode == 0
        found = set()
        with open(restored, "rb") as f:
            data = f.read()
        for m in re.finditer(rb"REC(\d{12})\n", data):
            found.add(int(m.group(1)))
        k = len(found)
        assert found == set(range(k)), f"gaps: {sorted(set(range(max(found) + 1)) - found)[:10]}"
        assert before <= k <= after, (before, k, after)


def test_incremental_reads_only_changed_extents(store, tmp_path):
    with loop_fs(tmp_path, "xfs") as mnt:
        image = genvol_create(mnt / "big.img", "1G", 5, holes=False)
        size = image.stat().st_size
        vol = store.register(image, name="big")
        first, read1 = snapshot(store, vol)
        assert read1 == size
        assert tags(store, first)["aws:snapvol:changed-blocks"] == "full snapshot (no parent)"

        genvol_mutate(image, 1, seed=11)
        second, read2 = snapshot(store, vol)
        share = read2 / size
        assert 0.005 <= share <= 0.015, f"read {read2} bytes, {share:.2%} of the image"
        t = tags(store, second)
        assert t["aws:snapvol:consistency"] == "point-in-time (reflink)"
        assert t["aws:snapvol:changed-blocks"].startswith(f"extent maps against the base clone of {first}: "), t
        # Only the newest base is kept, named after its snapshot, and what it costs is shown.
        clones = sorted(os.listdir(mnt / ".snapvol-clones"))
        assert clones == [f"{vol}.{second}"], clones
        assert (os.stat(mnt / ".snapvol-clones").st_mode & 0o777) == 0o700
        assert "held by the clone alone" in store.show(second)["BaseClone"]
        assert "BaseClone" not in store.show(first)

        assert restore_sha(store, second, tmp_path / "second.img") == sha256_file(image)


def test_ext4_falls_back_to_a_full_read_and_says_so(store, tmp_path):
    with loop_fs(tmp_path, "ext4", "1G") as mnt:
        image = genvol_create(mnt / "plain.img", "256M", 8, holes=False)
        size = image.stat().st_size
        vol = store.register(image, name="plain")
        snapshot(store, vol)
        genvol_mutate(image, 1, seed=12)
        second, read2 = snapshot(store, vol)
        assert read2 == size
        t = tags(store, second)
        assert t["aws:snapvol:consistency"].startswith("crash-unsafe (read while running); the file system of "), t
        assert "cannot clone" in t["aws:snapvol:consistency"], t
        assert t["aws:snapvol:changed-blocks"].startswith("full read"), t
        assert sorted(p.name for p in mnt.iterdir()) == ["lost+found", "plain.img"], "nothing left beside it"
        assert restore_sha(store, second, tmp_path / "plain.img") == sha256_file(image)
