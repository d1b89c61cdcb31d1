"""QEMU disks through snapvold: a disk of a qemu-storage-daemon registered with
`snapvol volume register --qemu-qmp/--qemu-node`, snapshotted by EC2 CreateSnapshot (boto3):
cut by fleecing while the daemon runs, the next snapshot reads only what its dirty bitmap
marks, nothing of a snapshot stays in QEMU or in the data dir, and deleting the volume removes
its dirty bitmap (issue 19, item 3)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import nbd
import pytest

import daemon_helpers as dh

BLOCK = 512 * 1024


class Qsd:
    def __init__(self, image: Path):
        self.dir = Path(tempfile.mkdtemp(prefix="svq", dir="/tmp"))
        self.qmp_sock, self.nbd_sock = self.dir / "q.sock", self.dir / "n.sock"
        subprocess.run(["qemu-storage-daemon",
                        "--blockdev", f"driver=file,node-name=f,filename={image}",
                        "--blockdev", "driver=qcow2,node-name=disk,file=f",
                        "--nbd-server", f"addr.type=unix,addr.path={self.nbd_sock}",
                        "--export", "type=nbd,id=w,node-name=disk,name=disk,writable=on",
                        "--chardev", f"socket,id=c,path={self.qmp_sock},server=on,wait=off",
                        "--monitor", "chardev=c", "--daemonize", "--pidfile", str(self.dir / "pid")],
                       check=True, capture_output=True, timeout=60)
        self.pid = int((self.dir / "pid").read_text())

    def stop(self):
        os.kill(self.pid, signal.SIGTERM)
        dh.wait_until(lambda: not Path(f"/proc/{self.pid}").exists(), 10, 0.02, "qemu-storage-daemon to stop")
        shutil.rmtree(self.dir, ignore_errors=True)

    def qmp(self, cmd: str, args: dict | None = None):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(30)
            s.connect(str(self.qmp_sock))
            f = s.makefile("rw")
            f.readline()
            for c, a in (("qmp_capabilities", None), (cmd, args)):
                f.write(json.dumps({"execute": c, **({"arguments": a} if a else {})}) + "\n")
                f.flush()
                while "event" in (m := json.loads(f.readline())):
                    pass
            return m["return"]

    def write(self, offset: int, data: bytes):
        h = nbd.NBD()
        h.set_export_name("disk")
        h.connect_unix(str(self.nbd_sock))
        h.pwrite(data, offset)
        h.shutdown()


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "svc", teams=1)
        yield svc
    finally:
        if svc is not None:
            dh.finish_service(svc)


def settle(svc, sid: str) -> dict:
    ec2 = svc.client("team-1")
    snap = {}

    def done():
        snap.update(ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0])
        return snap["State"] != "pending"

    dh.wait_until(done, 120, 0.1, "the snapshot to settle")
    return snap


def test_create_snapshot_fleeces_and_then_reads_only_dirty_blocks(service, tmp_path):
    raw = dh.genvol_create(tmp_path / "base.raw", "16M", 21, holes=False)
    image = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(image)], check=True)
    q = Qsd(image)
    try:
        acct = service.accounts["team-1"].account_id
        vid = service.cli("volume", "register", "--qemu-qmp", q.qmp_sock, "--qemu-node", "disk",
                          "--qemu-nbd", q.nbd_sock, "--account-id", acct, "--name", "vm-disk").stdout.strip()
        ec2 = service.client("team-1")
        first = ec2.create_snapshot(VolumeId=vid)["SnapshotId"]
        s1 = settle(service, first)
        assert s1["State"] == "completed", s1
        assert s1["VolumeSize"] == 1  # GiB, rounded up
        t1 = dh.cut_tags(service, first)
        assert t1["snapvol:consistency"] == "point-in-time (QEMU fleecing)", t1
        assert t1["snapvol:changed-blocks"] == "full snapshot (no parent)", t1

        q.write(5 * BLOCK + 100, b"\xab" * 4096)
        second = ec2.create_snapshot(VolumeId=vid)["SnapshotId"]
        s2 = settle(service, second)
        assert s2["State"] == "completed", s2
        assert dh.cut_tags(service, second)["snapvol:changed-blocks"] == (
            f"dirty bitmap snapvol.{vid}.{first} of disk since {first}: 1 of 32 blocks changed")

        to = tmp_path / "second.raw"
        service.cli("restore", "--snapshot-id", second, "--to", to)
        res = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw", str(to),
                              f"nbd+unix:///disk?socket={q.nbd_sock}"], capture_output=True, text=True)
        assert res.returncode == 0, res.stdout + res.stderr

        scratch = service.data_dir / "qemu-fleece"
        assert not scratch.exists() or not any(scratch.iterdir())
        assert [e["id"] for e in q.qmp("query-block-exports")] == ["w"]
        assert q.qmp("query-jobs") == []
        disk = [n for n in q.qmp("query-named-block-nodes", {"flat": True}) if n["node-name"] == "disk"][0]
        assert [b["name"] for b in disk["dirty-bitmaps"] if "name" in b] == [f"snapvol.{vid}.{second}"]

        # Deleting the volume removes snapvol's bitmap (QEMU would record into it for ever) and
        # only that: a bitmap of the user's own stays, and so does the disk.
        q.qmp("block-dirty-bitmap-add", {"node": "disk", "name": "user-backup", "persistent": True})
        ec2.delete_volume(VolumeId=vid)
        disk = [n for n in q.qmp("query-named-block-nodes", {"flat": True}) if n["node-name"] == "disk"][0]
        assert [b["name"] for b in disk["dirty-bitmaps"] if "name" in b] == ["user-backup"]
        assert image.exists()
    finally:
        q.stop()
