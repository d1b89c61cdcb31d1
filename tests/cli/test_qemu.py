"""QEMU disks (issue 19, item 3), through `snapvol volume register --qemu-qmp/--qemu-node` and
`snapvol snapshot create`: a qemu-storage-daemon serves a qcow2; snapvol cuts it by fleecing
(point in time while a writer keeps writing through the daemon's NBD export), reads only the
blocks its persistent dirty bitmap marks on the next snapshot, stays incremental across a
daemon restart and a failed snapshot, and falls back to a full read, saying so, when the bitmap
is lost or of another generation. Restores are compared with `qemu-img compare`."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import nbd

from snapvol_helpers import BLOCK, genvol_create

SLOT = 4096
SIZE = 64 << 20


class Qsd:
    """A qemu-storage-daemon serving image as node `disk`, with a QMP socket and, when
    nbd_server, its own NBD server exporting the disk writable as `disk`."""

    def __init__(self, image: Path, nbd_server: bool):
        self.image = image
        self.nbd_server = nbd_server
        self.dir = Path(tempfile.mkdtemp(prefix="svq", dir="/tmp"))  # unix socket paths are short
        self.qmp_sock, self.nbd_sock = self.dir / "q.sock", self.dir / "n.sock"
        self.pid = 0

    def start(self):
        args = ["qemu-storage-daemon",
                "--blockdev", f"driver=file,node-name=f,filename={self.image}",
                "--blockdev", "driver=qcow2,node-name=disk,file=f",
                "--chardev", f"socket,id=c,path={self.qmp_sock},server=on,wait=off", "--monitor", "chardev=c",
                "--daemonize", "--pidfile", str(self.dir / "pid")]
        if self.nbd_server:
            args += ["--nbd-server", f"addr.type=unix,addr.path={self.nbd_sock}",
                     "--export", "type=nbd,id=w,node-name=disk,name=disk,writable=on"]
        subprocess.run(args, check=True, capture_output=True, timeout=60)
        self.pid = int((self.dir / "pid").read_text())

    def stop(self):
        """SIGTERM: the daemon closes the qcow2 cleanly, writing its persistent bitmaps."""
        if not self.pid:
            return
        os.kill(self.pid, signal.SIGTERM)
        for _ in range(1000):
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.01)
        else:
            os.kill(self.pid, signal.SIGKILL)
        self.pid = 0

    def qmp(self, cmd: str, args: dict | None = None):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(30)
            s.connect(str(self.qmp_sock))
            f = s.makefile("rw")

            def answer():
                while True:
                    m = json.loads(f.readline())
                    if "event" not in m:
                        return m

            answer()  # greeting
            for c, a in (("qmp_capabilities", None), (cmd, args)):
                f.write(json.dumps({"execute": c, **({"arguments": a} if a else {})}) + "\n")
                f.flush()
                m = answer()
                assert "return" in m, m
            return m["return"]

    def bitmaps(self) -> dict[str, dict]:
        for n in self.qmp("query-named-block-nodes", {"flat": True}):
            if n["node-name"] == "disk":
                return {b["name"]: b for b in n.get("dirty-bitmaps", []) if "name" in b}
        raise AssertionError("no node disk")

    def uri(self) -> str:
        return f"nbd+unix:///disk?socket={self.nbd_sock}"


@contextlib.contextmanager
def qsd(tmp_path: Path, nbd_server: bool):
    raw = genvol_create(tmp_path / "base.raw", "64M", 7, holes=False)
    image = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(image)], check=True)
    d = Qsd(image, nbd_server)
    d.start()
    try:
        yield d
    finally:
        d.stop()
        shutil.rmtree(d.dir, ignore_errors=True)


def register(store, d: Qsd, with_nbd: bool) -> str:
    args = ["volume", "register", "--qemu-qmp", d.qmp_sock, "--qemu-node", "disk", "--name", "vm1-disk"]
    if with_nbd:
        args += ["--qemu-nbd", d.nbd_sock]
    return store.ok(*args).stdout.strip()


def snapshot(store, vol: str) -> tuple[str, int]:
    res = store.ok("snapshot", "create", "--volume-id", vol, timeout=300)
    m = re.search(r"(\d+) bytes read", res.stderr)
    assert m, res.stderr
    return res.stdout.strip(), int(m.group(1))


def tags(store, snap: str) -> dict[str, str]:
    return {t["Key"]: t["Value"] for t in store.show(snap)["Tags"]}


def compare(a: Path, b: str, fmt_b: str = "raw", force_share: bool = False):
    args = ["qemu-img", "compare", "-f", "raw", "-F", fmt_b, str(a), b]
    if force_share:
        args.insert(2, "-U")
    res = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr


def restored(store, snap: str, tmp_path: Path) -> Path:
    to = tmp_path / f"{snap}.raw"
    res = store.restore(snap, to)
    assert res.returncode == 0, res.stderr
    return to


def record(i: int) -> bytes:
    return (b"QEM%012d\n" % i) * (SLOT // 16)


def slot_of(i: int, slots: int) -> int:
    return (i * 40503) % slots


def nothing_left(store, d: Qsd, exports: list[str]):
    scratch = store.dir / "qemu-fleece"
    assert not scratch.exists() or not any(scratch.iterdir()), list(scratch.iterdir())
    assert sorted(e["id"] for e in d.qmp("query-block-exports")) == exports
    assert d.qmp("query-jobs") == []
    names = [n["node-name"] for n in d.qmp("query-named-block-nodes", {"flat": True})]
    assert sorted(names) == ["disk", "f"], names


def test_point_in_time_under_writes_then_only_dirty_blocks(store, tmp_path):
    with qsd(tmp_path, nbd_server=True) as d:
        vol = register(store, d, with_nbd=True)
        assert store.ok("volume", "list", "-o", "json").stdout.count(f"qemu:disk@{d.qmp_sock}") == 1
        slots = SIZE // SLOT
        done = [0]
        stop = threading.Event()

        def writer():
            h = nbd.NBD()
            h.set_export_name("disk")
            h.connect_unix(str(d.nbd_sock))
            try:
                for i in range(slots):
                    if stop.is_set():
                        return
                    h.pwrite(record(i), slot_of(i, slots) * SLOT)
                    done[0] = i + 1
                    if i % 8 == 0:
                        time.sleep(0.002)
            finally:
                h.shutdown()

        t = threading.Thread(target=writer)
        t.start()
        try:
            while done[0] < 500:
                time.sleep(0.01)
            before = done[0]
            first, read1 = snapshot(store, vol)
            after = done[0]
        finally:
            stop.set()
            t.join()
        total = done[0]
        assert after < slots, "the writer ran out of slots: make it slower"
        assert after - before > 20, "no writes during the snapshot: the test would prove nothing"
        t1 = tags(store, first)
        assert t1["aws:snapvol:consistency"] == "point-in-time (QEMU fleecing)", t1
        assert t1["aws:snapvol:changed-blocks"] == "full snapshot (no parent)", t1
        assert read1 == SIZE

        # The snapshot holds exactly the writes 0..k-1, and otherwise the disk as it was.
        r1 = restored(store, first, tmp_path)
        data = r1.read_bytes()
        found = {int(m.group(1)) for m in re.finditer(rb"QEM(\d{12})\n", data)}
        k = len(found)
        assert found == set(range(k)), f"gaps: {sorted(set(range(max(found) + 1)) - found)[:10]}"
        assert before <= k <= after, (before, k, after)
        expected = bytearray((tmp_path / "base.raw").read_bytes())
        for i in range(k):
            o = slot_of(i, slots) * SLOT
            expected[o:o + SLOT] = record(i)
        (tmp_path / "expected.raw").write_bytes(expected)
        compare(r1, str(tmp_path / "expected.raw"))
        nothing_left(store, d, ["w"])
        assert set(d.bitmaps()) == {f"snapvol.{vol}.{first}"}

        # The next snapshot reads exactly the blocks written since the cut: the writer's
        # writes after k, all over the disk.
        dirty = {slot_of(i, slots) * SLOT // BLOCK for i in range(k, total)}
        second, read2 = snapshot(store, vol)
        assert read2 == len(dirty) * BLOCK, (read2, sorted(dirty))
        t2 = tags(store, second)
        assert t2["aws:snapvol:changed-blocks"] == (
            f"dirty bitmap snapvol.{vol}.{first} of disk since {first}: {len(dirty)} of {SIZE // BLOCK} blocks changed"), t2
        compare(restored(store, second, tmp_path), d.uri())
        nothing_left(store, d, ["w"])
        assert set(d.bitmaps()) == {f"snapvol.{vol}.{second}"}

        # 2 of 128 blocks rewritten: only those are read.
        h = nbd.NBD()
        h.set_export_name("disk")
        h.connect_unix(str(d.nbd_sock))
        for b in (11, 90):
            h.pwrite(os.urandom(SLOT), b * BLOCK + 12345)
        h.shutdown()
        second, read2b = snapshot(store, vol)
        assert read2b == 2 * BLOCK
        compare(restored(store, second, tmp_path), d.uri())

        # A snapshot that fails after the cut (the NBD socket gone) undoes it; the next is
        # still incremental to the second.
        os.rename(d.nbd_sock, d.dir / "away.sock")
        res = store.run("snapshot", "create", "--volume-id", vol, timeout=300)
        os.rename(d.dir / "away.sock", d.nbd_sock)
        assert res.returncode != 0 and "QEMU disk disk" in res.stderr, res.stderr
        nothing_left(store, d, ["w"])
        h = nbd.NBD()
        h.set_export_name("disk")
        h.connect_unix(str(d.nbd_sock))
        h.pwrite(b"\x5a" * SLOT, 33 * BLOCK)
        h.shutdown()
        third, read3 = snapshot(store, vol)
        assert read3 == BLOCK
        assert tags(store, third)["aws:snapvol:changed-blocks"].startswith(f"dirty bitmap snapvol.{vol}.{second} ")
        compare(restored(store, third, tmp_path), d.uri())


def qemu_io_write(image: Path, offset: int, byte: int):
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {byte} {offset} {SLOT}", str(image)],
                   check=True, capture_output=True, timeout=60)


def test_restart_keeps_incremental_lost_or_other_bitmap_reads_all(store, tmp_path):
    with qsd(tmp_path, nbd_server=False) as d:
        vol = register(store, d, with_nbd=False)  # snapvol starts QEMU's NBD server itself
        first, read1 = snapshot(store, vol)
        assert read1 == SIZE
        nothing_left(store, d, [])

        # Stopped, written to while down (qemu-io keeps the persistent bitmap), restarted.
        d.stop()
        info = subprocess.run(["qemu-img", "info", "--output=json", str(d.image)], capture_output=True,
                              text=True, check=True).stdout
        assert f"snapvol.{vol}.{first}" in info
        qemu_io_write(d.image, 3 * BLOCK, 0x5A)
        qemu_io_write(d.image, 77 * BLOCK + 8192, 0x5B)
        d.start()
        second, read2 = snapshot(store, vol)
        assert read2 == 2 * BLOCK
        assert tags(store, second)["aws:snapvol:changed-blocks"] == (
            f"dirty bitmap snapvol.{vol}.{first} of disk since {first}: 2 of {SIZE // BLOCK} blocks changed")
        compare(restored(store, second, tmp_path), str(d.image), "qcow2", force_share=True)

        # Lost: removed while the daemon was down.
        d.stop()
        subprocess.run(["qemu-img", "bitmap", "--remove", str(d.image), f"snapvol.{vol}.{second}"], check=True)
        qemu_io_write(d.image, 9 * BLOCK, 0x5C)
        d.start()
        third, read3 = snapshot(store, vol)
        assert read3 == SIZE
        assert tags(store, third)["aws:snapvol:changed-blocks"] == (
            f"full read: no dirty bitmap snapvol.{vol}.{second} on disk (lost)")
        compare(restored(store, third, tmp_path), str(d.image), "qcow2", force_share=True)

        # Another generation: the snapshot the bitmap belongs to is deleted, so the parent of
        # the next is an older one than the bitmap's.
        fourth, read4 = snapshot(store, vol)
        assert read4 == 0
        store.delete(fourth)
        fifth, read5 = snapshot(store, vol)
        assert read5 == SIZE
        assert tags(store, fifth)["aws:snapvol:changed-blocks"] == (
            f"full read: no dirty bitmap snapvol.{vol}.{third} on disk "
            f"(there is snapvol.{vol}.{fourth}, another generation)")
        compare(restored(store, fifth, tmp_path), str(d.image), "qcow2", force_share=True)
        nothing_left(store, d, [])
        assert set(d.bitmaps()) == {f"snapvol.{vol}.{fifth}"}

        # Killed: a bitmap QEMU had loaded from the image is marked inconsistent on the next
        # start (so first a clean restart, which stores the fifth's bitmap in the image).
        d.stop()
        d.start()
        os.kill(d.pid, signal.SIGKILL)
        time.sleep(0.3)
        d.pid = 0
        qemu_io_write(d.image, 50 * BLOCK, 0x5D)
        d.start()
        sixth, read6 = snapshot(store, vol)
        assert read6 == SIZE
        assert tags(store, sixth)["aws:snapvol:changed-blocks"] == (
            f"full read: dirty bitmap snapvol.{vol}.{fifth} is inconsistent (QEMU did not stop cleanly)")
        compare(restored(store, sixth, tmp_path), str(d.image), "qcow2", force_share=True)
        assert set(d.bitmaps()) == {f"snapvol.{vol}.{sixth}"}
        seventh, read7 = snapshot(store, vol)
        assert read7 == 0


def test_register_refuses_what_it_cannot_reach(store, tmp_path):
    res = store.run("volume", "register", "--qemu-qmp", tmp_path / "none.sock", "--qemu-node", "disk")
    assert res.returncode == 1 and "cannot register the QEMU disk" in res.stderr, res.stderr
    res = store.run("volume", "register", "--qemu-qmp", tmp_path / "none.sock")
    assert res.returncode == 1 and "--qemu-node" in res.stderr, res.stderr
    with qsd(tmp_path, nbd_server=False) as d:
        res = store.run("volume", "register", "--qemu-qmp", d.qmp_sock, "--qemu-node", "nope")
        assert res.returncode == 1 and "no block node named nope" in res.stderr, res.stderr
