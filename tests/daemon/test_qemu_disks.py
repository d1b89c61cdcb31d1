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
import threading
import time
from pathlib import Path

import nbd
import pytest

import daemon_helpers as dh

BLOCK = 512 * 1024


class Qsd:
    """A qemu-storage-daemon serving image as node and export "disk" (and second, if given, as
    "disk2"), with a QMP socket and an NBD server."""

    def __init__(self, image: Path, second: Path | None = None):
        self.dir = Path(tempfile.mkdtemp(prefix="svq", dir="/tmp"))
        self.qmp_sock, self.nbd_sock = self.dir / "q.sock", self.dir / "n.sock"
        disks = [("f", "disk", "w", image)] + ([("f2", "disk2", "w2", second)] if second else [])
        argv = ["qemu-storage-daemon", "--nbd-server", f"addr.type=unix,addr.path={self.nbd_sock}",
                "--chardev", f"socket,id=c,path={self.qmp_sock},server=on,wait=off",
                "--monitor", "chardev=c", "--daemonize", "--pidfile", str(self.dir / "pid")]
        for file_node, node, export, path in disks:
            argv += ["--blockdev", f"driver=file,node-name={file_node},filename={path}",
                     "--blockdev", f"driver=qcow2,node-name={node},file={file_node}",
                     "--export", f"type=nbd,id={export},node-name={node},name={node},writable=on"]
        subprocess.run(argv, check=True, capture_output=True, timeout=60)
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

    def write(self, offset: int, data: bytes, export: str = "disk"):
        h = nbd.NBD()
        h.set_export_name(export)
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
        assert t1["aws:snapvol:consistency"] == "point-in-time (QEMU fleecing)", t1
        assert t1["aws:snapvol:changed-blocks"] == "full snapshot (no parent)", t1

        q.write(5 * BLOCK + 100, b"\xab" * 4096)
        second = ec2.create_snapshot(VolumeId=vid)["SnapshotId"]
        s2 = settle(service, second)
        assert s2["State"] == "completed", s2
        assert dh.cut_tags(service, second)["aws:snapvol:changed-blocks"] == (
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


def test_an_instances_qemu_disks_are_cut_at_one_instant(service, tmp_path):
    """CreateSnapshots of an instance whose two disks are in one QEMU: while a guest-like writer
    bumps a counter on disk A and then on disk B, the two snapshots show A == B or A == B + 1,
    never B ahead (the disks were cut in one QMP transaction)."""
    images = []
    for n in ("a", "b"):
        images.append(tmp_path / f"{n}.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(images[-1]), "16M"], check=True)
    q = Qsd(images[0], images[1])
    stop = threading.Event()
    try:
        acct = service.accounts["team-1"].account_id
        inst = service.cli("instance", "create", "--account-id", acct, "--name", "vm2").stdout.strip()
        vids = [service.cli("volume", "register", "--qemu-qmp", q.qmp_sock, "--qemu-node", node,
                            "--qemu-nbd", q.nbd_sock, "--account-id", acct, "--name", f"vm2-{node}",
                            "--instance-id", inst, "--device", dev).stdout.strip()
                for node, dev in (("disk", "/dev/sdf"), ("disk2", "/dev/sdg"))]
        written = [0]

        def writer():
            hs = []
            for export in ("disk", "disk2"):
                h = nbd.NBD()
                h.set_export_name(export)
                h.connect_unix(str(q.nbd_sock))
                hs.append(h)
            n = 0
            while not stop.is_set():
                n += 1
                for h in hs:
                    h.pwrite(n.to_bytes(8, "little"), 0)
                written[0] = n
            for h in hs:
                h.shutdown()

        t = threading.Thread(target=writer)
        t.start()
        dh.wait_until(lambda: written[0] > 100, 30, 0.01, "the writer to start")
        ec2 = service.client("team-1")
        snaps = ec2.create_snapshots(InstanceSpecification={"InstanceId": inst})["Snapshots"]
        stop.set()
        t.join()
        by_volume = {s["VolumeId"]: s["SnapshotId"] for s in snaps}
        counters = []
        for vid in vids:
            s = settle(service, by_volume[vid])
            assert s["State"] == "completed", s
            assert dh.cut_tags(service, s["SnapshotId"])["aws:snapvol:consistency"] == "point-in-time (QEMU fleecing)"
            to = tmp_path / f"{vid}.raw"
            service.cli("restore", "--snapshot-id", s["SnapshotId"], "--to", to)
            counters.append(int.from_bytes(to.read_bytes()[:8], "little"))
        a, b = counters
        assert a > 100 and b in (a, a - 1), f"disk A at {a}, disk B at {b}: not one instant"
    finally:
        stop.set()
        q.stop()
