"""Managed volumes served over NBD, with real NBD clients: python3-libnbd, nbdinfo, nbdcopy and
qemu-img. A team creates a volume with CreateVolume (Size), attaches it to an instance and
uses it over the daemon's Unix socket (as root, the operator); hostile clients end only
their own connection; snapshots of a managed volume restore byte-identical."""
from __future__ import annotations

import os
import socket
import struct
import subprocess

import nbd
import pytest
from botocore.exceptions import ClientError

import daemon_helpers as dh

MiB = 1 << 20


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "svc")
        svc.instances = {}
        for alias in ("team-1", "team-2"):
            out = svc.cli("instance", "create", "--account-id", svc.accounts[alias].account_id, "--name", "host")
            svc.instances[alias] = out.stdout.strip()
        yield svc
    finally:
        if svc is not None:
            dh.finish_service(svc)


def sock(service) -> str:
    return str(service.data_dir / "nbd.sock")


def uri(service, volume_id: str) -> str:
    return f"nbd+unix:///{volume_id}?socket={sock(service)}"


def connect(service, volume_id: str, *, meta: bool = False) -> nbd.NBD:
    h = nbd.NBD()
    if meta:
        h.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h.connect_uri(uri(service, volume_id))
    return h


def new_volume(service, alias="team-1", size_gib=1, device="/dev/sdf", name="data") -> str:
    ec2 = service.client(alias)
    vol = ec2.create_volume(Size=size_gib, AvailabilityZone="us-east-1a",
                            TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": name}]}])
    vid = vol["VolumeId"]
    assert vol["Size"] == size_gib
    ec2.attach_volume(VolumeId=vid, InstanceId=service.instances[alias], Device=device)
    return vid


def test_create_attach_and_use_a_volume(service):
    ec2 = service.client("team-1")
    vid = new_volume(service, device="/dev/sdf")
    described = ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    assert described["State"] == "in-use" and described["Attachments"][0]["Device"] == "/dev/sdf"
    listed = subprocess.run(["nbdinfo", "--list", "--json", f"nbd+unix:///?socket={sock(service)}"],
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and vid in listed.stdout, listed.stderr
    h = connect(service, vid)
    assert h.get_size() == 1 << 30 and h.can_multi_conn() and h.can_flush() and h.can_fua() and h.can_trim()
    data = os.urandom(MiB)
    h.pwrite(data, 5 * MiB, nbd.CMD_FLAG_FUA)
    assert h.pread(MiB, 5 * MiB) == data
    assert h.pread(4096, 0) == bytes(4096)  # never written: zeroes
    # A second connection sees the first's flushed writes, and the other way round.
    h2 = connect(service, vid)
    assert h2.pread(MiB, 5 * MiB) == data
    h2.pwrite(b"B" * 4096, 0)
    h2.flush()
    assert h.pread(4096, 0) == b"B" * 4096
    h.shutdown()
    h2.shutdown()
    # Over TCP (TLS with a team's key) and as a non-root peer: test_nbd_identity.


def test_only_attached_volumes_are_exported_and_teams_keep_to_their_own(service):
    ec2 = service.client("team-1")
    vid = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    with pytest.raises(nbd.Error):
        connect(service, vid)
    with pytest.raises(nbd.Error):
        connect(service, "vol-00000000000000000")
    # team-2 can neither attach nor see team-1's volume.
    with pytest.raises(ClientError) as e:
        service.client("team-2").attach_volume(VolumeId=vid, InstanceId=service.instances["team-2"], Device="/dev/sdg")
    assert e.value.response["Error"]["Code"] == "InvalidVolume.NotFound"
    with pytest.raises(ClientError) as e:
        ec2.attach_volume(VolumeId=vid, InstanceId=service.instances["team-2"], Device="/dev/sdg")
    assert e.value.response["Error"]["Code"] == "InvalidInstanceID.NotFound"
    # Attached, it is served; detached again, it is not; deleted, its file is gone.
    ec2.attach_volume(VolumeId=vid, InstanceId=service.instances["team-1"], Device="/dev/sdh")
    with pytest.raises(ClientError) as e:
        ec2.attach_volume(VolumeId=vid, InstanceId=service.instances["team-1"], Device="/dev/sdi")
    assert e.value.response["Error"]["Code"] == "VolumeInUse"
    connect(service, vid).shutdown()
    with pytest.raises(ClientError) as e:
        ec2.delete_volume(VolumeId=vid)
    assert e.value.response["Error"]["Code"] == "VolumeInUse"
    ec2.detach_volume(VolumeId=vid)
    with pytest.raises(nbd.Error):
        connect(service, vid)
    path = service.data_dir / "volumes" / f"{vid}.img"
    assert path.exists()
    ec2.delete_volume(VolumeId=vid)
    assert not path.exists()
    assert ec2.describe_volumes(Filters=[]).get("Volumes") is not None
    with pytest.raises(ClientError) as e:
        ec2.describe_volumes(VolumeIds=[vid])
    assert e.value.response["Error"]["Code"] == "InvalidVolume.NotFound"


def test_detach_ends_open_connections_and_keeps_what_they_wrote(service):
    """DetachVolume takes the device away: connections already open end (their next command
    fails), nothing written before is lost, and DeleteVolume right after cannot race a writer."""
    ec2 = service.client("team-1")
    vid = new_volume(service, device="/dev/sdr", name="detach")
    writer, reader = connect(service, vid), connect(service, vid)
    data = os.urandom(MiB)
    writer.pwrite(data, 3 * MiB)
    writer.flush()
    assert reader.pread(MiB, 3 * MiB) == data
    # A raw client that is connected but sends nothing is ended too.
    idle = handshake(service, vid)
    ec2.detach_volume(VolumeId=vid)
    for h in (writer, reader):
        with pytest.raises(nbd.Error):
            h.pwrite(b"x" * 4096, 0)
            h.flush()
    assert closed(idle)
    ended = [e for e in service.daemon.log_events()
             if e.get("event") == "nbd_disconnected" and e.get("volume_id") == vid]
    assert ended and ended[-1]["connections"] >= 2, ended
    with pytest.raises(nbd.Error):
        connect(service, vid)
    path = service.data_dir / "volumes" / f"{vid}.img"
    with open(path, "rb") as f:
        f.seek(3 * MiB)
        assert f.read(MiB) == data
    with open(path, "rb") as f:
        assert f.read(4096) == bytes(4096), "a write after the detach landed"
    ec2.attach_volume(VolumeId=vid, InstanceId=service.instances["team-1"], Device="/dev/sdr")
    again = connect(service, vid)
    assert again.pread(MiB, 3 * MiB) == data
    again.shutdown()
    ec2.detach_volume(VolumeId=vid)
    ec2.delete_volume(VolumeId=vid)
    assert not path.exists()


def test_bad_create_volume_parameters(service):
    ec2 = service.client("team-1")
    for size in (0, 16385):
        with pytest.raises(ClientError) as e:
            ec2.create_volume(Size=size, AvailabilityZone="us-east-1a")
        assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    with pytest.raises(ClientError) as e:
        ec2.attach_volume(VolumeId="vol-zz", InstanceId=service.instances["team-1"], Device="/dev/sdf")
    assert e.value.response["Error"]["Code"] == "InvalidVolumeID.Malformed"


def test_qemu_img_and_nbdcopy(service, tmp_path):
    vid = new_volume(service, device="/dev/sdj", name="copy")
    src = tmp_path / "src.raw"
    with open(src, "wb") as f:
        f.write(os.urandom(24 * MiB))
        f.seek(600 * MiB)
        f.write(os.urandom(8 * MiB))
        f.truncate(1 << 30)
    subprocess.run(["nbdcopy", str(src), uri(service, vid)], check=True, timeout=300)
    cmp = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw", str(src), uri(service, vid)],
                         capture_output=True, text=True, timeout=300)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr
    # Block status shows the holes nbdcopy left (it skips zeroes) as holes.
    h = connect(service, vid, meta=True)
    seen = []

    def extent(metacontext, offset, entries, err):
        seen.extend(zip(entries[0::2], entries[1::2]))
        return 0

    h.block_status(64 * MiB, 100 * MiB, extent)
    assert seen and all(flags & nbd.STATE_HOLE for _, flags in seen), seen
    # TRIM then read: zeroes, and the range is a hole.
    h.trim(4 * MiB, 0)
    assert h.pread(4 * MiB, 0) == bytes(4 * MiB)
    h.zero(MiB, 20 * MiB, nbd.CMD_FLAG_NO_HOLE)
    assert h.pread(MiB, 20 * MiB) == bytes(MiB)
    # Beyond the end: libnbd's own bounds checks off, so the server is the one that refuses.
    h.set_strict_mode(0)
    with pytest.raises(nbd.Error) as e:
        h.pread(8192, (1 << 30) - 4096)
    assert e.value.errnum == 22 and "request out of bounds" not in e.value.string  # EINVAL, from the server
    with pytest.raises(nbd.Error) as e:
        h.pwrite(b"x" * 8192, (1 << 30) - 4096)
    assert e.value.errnum == 28  # ENOSPC, as the protocol asks for writes
    assert h.pread(4096, (1 << 30) - 4096) == bytes(4096)  # nothing was written
    h.shutdown()


def handshake(service, volume_id: str) -> socket.socket:
    """A raw fixed-newstyle handshake up to transmission (NBD_OPT_EXPORT_NAME)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock(service))
    hello = s.recv(18, socket.MSG_WAITALL)
    assert hello[:16] == b"NBDMAGICIHAVEOPT"
    s.sendall(struct.pack(">I", 3))  # fixed newstyle, no zeroes
    name = volume_id.encode()
    s.sendall(struct.pack(">QII", 0x49484156454F5054, 1, len(name)) + name)
    size, flags = struct.unpack(">QH", s.recv(10, socket.MSG_WAITALL))
    assert size == 1 << 30
    return s


def closed(s: socket.socket) -> bool:
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def test_hostile_clients_end_only_their_connection(service):
    vid = new_volume(service, device="/dev/sdk", name="hostile")
    h = connect(service, vid)
    h.pwrite(b"K" * 4096, 0, nbd.CMD_FLAG_FUA)
    # Bad request magic.
    s = handshake(service, vid)
    s.sendall(b"\x00" * 28)
    assert closed(s)
    # A write larger than the server takes: the connection ends, nothing is written.
    s = handshake(service, vid)
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 1, 7, 0, 64 * MiB) + b"Z" * 4096)
    assert closed(s)
    # A client that disconnects in the middle of a write payload: nothing is written.
    s = handshake(service, vid)
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 1, 8, 0, 8192) + b"Z" * 4000)
    s.close()
    # An unknown command and an out-of-range read get errors and the connection goes on.
    s = handshake(service, vid)
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 99, 9, 0, 512))
    magic, err, handle = struct.unpack(">IIQ", s.recv(16, socket.MSG_WAITALL))
    assert (magic, err, handle) == (0x67446698, 22, 9)
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 10, (1 << 30) - 10, 512))
    magic, err, handle = struct.unpack(">IIQ", s.recv(16, socket.MSG_WAITALL))
    assert (err, handle) == (22, 10)
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 11, 0, 4096))
    magic, err, handle = struct.unpack(">IIQ", s.recv(16, socket.MSG_WAITALL))
    assert (err, handle) == (0, 11) and s.recv(4096, socket.MSG_WAITALL) == b"K" * 4096
    # Flags a command may not carry: EINVAL, nothing done, the stream stays in step (the
    # write's payload is read and dropped).
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 1 << 2, 1, 12, 0, 4096) + b"Q" * 4096)  # DF on a write
    magic, err, handle = struct.unpack(">IIQ", s.recv(16, socket.MSG_WAITALL))
    assert (err, handle) == (22, 12)
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 1 << 9, 0, 13, 0, 4096))  # an unknown flag on a read
    magic, err, handle = struct.unpack(">IIQ", s.recv(16, socket.MSG_WAITALL))
    assert (err, handle) == (22, 13)
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 1 << 1, 4, 14, 0, 4096))  # NO_HOLE on a trim
    magic, err, handle = struct.unpack(">IIQ", s.recv(16, socket.MSG_WAITALL))
    assert (err, handle) == (22, 14)
    s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 0, 15, 0, 4096))
    magic, err, handle = struct.unpack(">IIQ", s.recv(16, socket.MSG_WAITALL))
    assert (err, handle) == (0, 15) and s.recv(4096, socket.MSG_WAITALL) == b"K" * 4096
    s.close()
    # Garbage instead of a handshake.
    g = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    g.settimeout(10)
    g.connect(sock(service))
    g.recv(18, socket.MSG_WAITALL)
    g.sendall(b"\xff" * 64)
    assert closed(g)
    # The volume is intact and the daemon still serves everyone.
    assert h.pread(4096, 0) == b"K" * 4096
    h.shutdown()
    assert service.daemon.healthy()


def test_connections_beyond_the_cap_are_refused_and_the_server_recovers(service):
    """The server takes at most 256 connections (a thread each); the ones beyond are closed at
    once, the ones inside still work, and once they go new clients are served again."""
    vid = new_volume(service, device="/dev/sdq", name="cap")
    socks, served, refused = [], [], 0
    try:
        for _ in range(300):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(sock(service))
            socks.append(s)
            hello = s.recv(18, socket.MSG_WAITALL)
            if hello[:8] == b"NBDMAGIC":
                served.append(s)
            else:
                assert hello == b"", hello
                refused += 1
        assert 200 <= len(served) <= 256 and refused >= 300 - 256, (len(served), refused)
        # A connection inside the cap still completes its handshake.
        s = served[-1]
        s.sendall(struct.pack(">I", 3))
        name = vid.encode()
        s.sendall(struct.pack(">QII", 0x49484156454F5054, 1, len(name)) + name)
        size, _ = struct.unpack(">QH", s.recv(10, socket.MSG_WAITALL))
        assert size == 1 << 30
    finally:
        for s in socks:
            s.close()

    def serves():
        try:
            h = connect(service, vid)
        except nbd.Error:
            return False
        h.shutdown()
        return True

    dh.wait_until(serves, 30, what="an NBD connection to be served after the others closed")
    assert service.daemon.healthy()


def test_data_survives_a_restart_and_snapshots_restore_it(service):
    vid = new_volume(service, device="/dev/sdl", name="persist")
    h = connect(service, vid)
    blob = os.urandom(3 * MiB)
    h.pwrite(blob, 100 * MiB)
    h.flush()
    h.shutdown()
    rc = service.daemon.stop()
    assert rc == 0, service.daemon.log_tail()
    service.daemon.start()
    h = connect(service, vid)
    assert h.pread(3 * MiB, 100 * MiB) == blob
    h.shutdown()
    # Snapshot it (it stays attached) and restore as the administrator: the same bytes.
    ec2 = service.client("team-1")
    sid = ec2.create_snapshot(VolumeId=vid, Description="managed")["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.2, "MaxAttempts": 600})
    admin = service.client("admin")
    restored = admin.create_volume(SnapshotId=sid, AvailabilityZone="us-east-1a")["VolumeId"]
    dh.wait_loaded(admin, restored)
    a = service.data_dir / "volumes" / f"{vid}.img"
    b = service.data_dir / "volumes" / f"{restored}.img"
    assert dh.sha256_file(a) == dh.sha256_file(b)
    # And as NBD clients see them: qemu-img compares the restored export with the original.
    ec2.attach_volume(VolumeId=restored, InstanceId=service.instances["team-1"], Device="/dev/sdp")
    cmp = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", "raw", uri(service, vid), uri(service, restored)],
                         capture_output=True, text=True, timeout=300)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr


def test_a_restored_volume_is_attached_and_written_without_waiting_for_its_load(service):
    """Nothing waits for the background load before attaching, reading and writing. Whether the
    load is still running then depends on the machine's speed, so it is noted, not asserted;
    ManagedVolumeTest.ARestoredVolumeIsUsableAtOnce… reads and writes a volume whose load has
    not started, deterministically."""
    src = new_volume(service, device="/dev/sdm", name="lazy-src")
    h = connect(service, src)
    data = {off: os.urandom(2 * MiB) for off in (0, 100 * MiB, 700 * MiB)}
    for off, blob in data.items():
        h.pwrite(blob, off)
    h.flush()
    h.shutdown()
    ec2 = service.client("team-1")
    sid = ec2.create_snapshot(VolumeId=src)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.2, "MaxAttempts": 600})
    restored = service.client("admin").create_volume(SnapshotId=sid, AvailabilityZone="us-east-1a")
    vid = restored["VolumeId"]
    assert restored["State"] == "available"
    # The team attaches and uses it straight away: reads are the snapshot's, writes stick.
    ec2.attach_volume(VolumeId=vid, InstanceId=service.instances["team-1"], Device="/dev/sdn")
    h = connect(service, vid)
    status = ec2.describe_volume_status(VolumeIds=[vid])["VolumeStatuses"][0]
    state = {d["Name"]: d["Status"] for d in status["VolumeStatus"]["Details"]}["initialization-state"]
    assert state in ("initializing", "completed"), state
    dh.note(f"test_nbd: restored volume attached while its initialization-state was {state}")
    assert h.pread(2 * MiB, 100 * MiB) == data[100 * MiB]
    mine = os.urandom(4096)
    h.pwrite(mine, 700 * MiB + 12345, nbd.CMD_FLAG_FUA)  # part of a block
    whole = os.urandom(512 * 1024)
    h.pwrite(whole, 512 * 1024 * 3, nbd.CMD_FLAG_FUA)  # a whole block
    dh.wait_loaded(ec2, vid)
    expect = bytearray(data[700 * MiB])
    expect[12345:12345 + 4096] = mine
    assert h.pread(2 * MiB, 700 * MiB) == bytes(expect)
    first = bytearray(data[0])
    first[3 * 512 * 1024:4 * 512 * 1024] = whole
    assert h.pread(2 * MiB, 0) == bytes(first)
    assert h.pread(MiB, 300 * MiB) == bytes(MiB)
    h.shutdown()
    assert not (service.data_dir / "volumes" / f"{vid}.img.load").exists()


def test_a_restore_from_a_damaged_store_ends_in_error_with_the_reason(service):
    src = new_volume(service, device="/dev/sdo", name="doomed")
    h = connect(service, src)
    before = {p for p in (service.data_dir / "store" / "chunks").rglob("*") if p.is_file()}
    h.pwrite(os.urandom(8 * MiB), 0)
    h.flush()
    h.shutdown()
    ec2 = service.client("team-1")
    sid = ec2.create_snapshot(VolumeId=src)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.2, "MaxAttempts": 600})
    mine = [p for p in (service.data_dir / "store" / "chunks").rglob("*") if p.is_file() and p not in before]
    assert mine, "the snapshot wrote no chunks"
    for p in mine:  # only this snapshot's chunks: random data shares none
        p.write_bytes(b"\xee" * 64)
    vid = service.client("admin").create_volume(SnapshotId=sid, AvailabilityZone="us-east-1a")["VolumeId"]

    def failed():
        v = ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
        return v["State"] == "error"

    dh.wait_until(failed, 60, 0.1, "the restored volume to fail")
    status = ec2.describe_volume_status(VolumeIds=[vid])["VolumeStatuses"][0]
    assert status["VolumeStatus"]["Status"] == "impaired"
    log = service.daemon.log_text()
    assert "volume_load_failed" in log and vid in log
    # The volume still needs its snapshot (it has blocks left to load): deleting it is refused.
    with pytest.raises(ClientError) as e:
        ec2.delete_snapshot(SnapshotId=sid)
    assert e.value.response["Error"]["Code"] == "IncorrectState" and vid in e.value.response["Error"]["Message"]
    # So is deleting it offline with the CLI: one deletion path (engine/snapshot_deletion.h).
    res = service.cli("snapshot", "delete", "--snapshot-id", sid, check=False)
    assert res.returncode != 0 and vid in res.stderr and "loading" in res.stderr, (res.returncode, res.stderr)
    assert ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["State"] == "completed"


def test_an_nbd_socket_path_too_long_is_refused_at_start_with_the_reason(tmp_path):
    """A Unix socket path holds at most 107 bytes: a longer --nbd-socket is refused by name and
    snapvold exits 1 (it used to end in std::terminate, its signal thread still running)."""
    path = tmp_path / ("d" * 120) / "nbd.sock"
    res = subprocess.run([dh.SNAPVOLD, "--data-dir", str(tmp_path / "data"), "--listen", "127.0.0.1:0",
                          "--nbd-socket", str(path)],
                         capture_output=True, text=True, env=dh.clean_env(), timeout=60)
    assert res.returncode == 1, (res.returncode, res.stderr[-2000:])
    assert f"NBD socket path is too long: {path}" in res.stderr, res.stderr[-2000:]
    assert "terminate called" not in res.stderr
