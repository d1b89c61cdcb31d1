"""NBD knows which team is connecting: TLS with pre-shared keys (the access key id is the PSK
identity, `snapvol nbd connect` writes the key file), required on TCP and for every Unix-socket
peer but root. Real clients (qemu-img, nbdcopy, nbdinfo, python3-libnbd) read and write their
own team's volume and are refused another team's; unauthenticated clients see nothing. The
limits hold under abuse: idle connections, WRITE headers announcing 32 MiB, a per-account cap."""
from __future__ import annotations

import hashlib
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import nbd
import pytest

import daemon_helpers as dh

MiB = 1 << 20
VOLUME = 1 << 30
OPT_MAGIC = 0x49484156454F5054
REP_ERR_TLS_REQD = 0x80000005
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
HANDSHAKE_MS = 5000
IDLE_MS = 8000
PER_ACCOUNT = 6


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    # The socket sits where every user can reach it, so only identities keep them out.
    sockdir = Path(tempfile.mkdtemp(prefix="snapvol-nbd-", dir="/tmp"))
    os.chmod(sockdir, 0o755)
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "nbdid", daemon_args=[
            "--nbd-listen", "127.0.0.1:0", "--nbd-socket", str(sockdir / "nbd.sock"),
            "--nbd-handshake-timeout", str(HANDSHAKE_MS), "--nbd-idle-timeout", str(IDLE_MS),
            "--nbd-max-connections-per-account", str(PER_ACCOUNT)])
        svc.sock = str(sockdir / "nbd.sock")
        svc.port = next(int(e["tcp_port"]) for e in svc.daemon.log_events() if e.get("event") == "nbd")
        svc.vols, svc.keydirs = {}, {}
        for alias in ("team-1", "team-2"):
            inst = svc.cli("instance", "create", "--account-id", svc.accounts[alias].account_id,
                           "--name", "host").stdout.strip()
            ec2 = svc.client(alias)
            vid = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
            ec2.attach_volume(VolumeId=vid, InstanceId=inst, Device="/dev/sdf")
            svc.vols[alias] = vid
            svc.keydirs[alias] = Path(tempfile.mkdtemp(prefix=f"nbdkey-{alias}-", dir=svc.root))
        yield svc
    finally:
        if svc is not None:
            dh.finish_service(svc)
        shutil.rmtree(sockdir, ignore_errors=True)


def nbd_connect(svc, alias: str, volume_id: str, *, unix: bool = False) -> dict:
    """Runs `snapvol nbd connect` with the team's keys in the environment; returns the key
    file, the URI and the qemu options it printed."""
    acct = svc.accounts[alias]
    where = ["--nbd-socket", svc.sock] if unix else ["--nbd", f"127.0.0.1:{svc.port}"]
    res = subprocess.run([dh.SNAPVOL, "nbd", "connect", volume_id, *where, "--key-dir", str(svc.keydirs[alias])],
                         capture_output=True, text=True, timeout=30,
                         env=dh.clean_env({"AWS_ACCESS_KEY_ID": acct.access_key_id,
                                           "AWS_SECRET_ACCESS_KEY": acct.secret_access_key}))
    assert res.returncode == 0, dh.describe(res)
    lines = res.stdout.splitlines()
    uri = lines[lines.index("nbdinfo, nbdcopy, nbdsh, libnbd:") + 1].strip().strip("'")
    qemu = lines[lines.index("qemu-img, qemu-nbd, qemu-storage-daemon:") + 1].strip()
    obj, opts = qemu.split(" --image-opts ")
    keyfile = svc.keydirs[alias] / "keys.psk"
    return {"uri": uri, "object": obj.removeprefix("--object "), "image_opts": opts.strip("'"), "keyfile": keyfile,
            "identity": acct.access_key_id}


def tls_handle(svc, alias: str, volume_id: str, *, keyfile=None, identity=None) -> nbd.NBD:
    h = nbd.NBD()
    h.set_tls(nbd.TLS_REQUIRE)
    h.set_tls_psk_file(str(keyfile or svc.keydirs[alias] / "keys.psk"))
    h.set_tls_username(identity or svc.accounts[alias].access_key_id)
    h.set_export_name(volume_id)
    h.connect_tcp("127.0.0.1", str(svc.port))
    return h


def raw_hello(family, address) -> socket.socket:
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(20)
    s.connect(address)
    assert s.recv(18, socket.MSG_WAITALL)[:16] == b"NBDMAGICIHAVEOPT"
    s.sendall(struct.pack(">I", 3))  # fixed newstyle, no zeroes
    return s


def option(s: socket.socket, opt: int, data: bytes = b"") -> tuple[int, bytes]:
    s.sendall(struct.pack(">QII", OPT_MAGIC, opt, len(data)) + data)
    magic, got_opt, rep, length = struct.unpack(">QIII", s.recv(20, socket.MSG_WAITALL))
    assert got_opt == opt
    return rep, s.recv(length, socket.MSG_WAITALL) if length else b""


def ended(s: socket.socket) -> bool:
    """The server closed the connection (EOF, or a reset because our last bytes went unread)."""
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def try_tls_handle(svc, alias: str, volume_id: str):
    try:
        return tls_handle(svc, alias, volume_id)
    except nbd.Error:
        return None


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_team_key_reads_and_writes_its_volume_with_qemu_img_nbdcopy_and_libnbd(service, tmp_path):
    vid = service.vols["team-1"]
    how = nbd_connect(service, "team-1", vid)
    assert how["keyfile"].stat().st_mode & 0o777 == 0o600
    assert how["keyfile"].parent.stat().st_mode & 0o777 == 0o700
    line = how["keyfile"].read_text()
    assert line.startswith(how["identity"] + ":") and len(line.strip().split(":")[1]) == 64
    assert service.accounts["team-1"].secret_access_key not in line  # the PSK is derived, not the secret
    # nbdcopy writes a sparse image into the volume over TLS.
    parts = {100 * MiB: os.urandom(8 * MiB), 700 * MiB: os.urandom(MiB)}

    def image(path, extra: dict):
        with open(path, "wb") as f:
            f.truncate(VOLUME)
            for offset, data in {**parts, **extra}.items():
                f.seek(offset)
                f.write(data)

    src = tmp_path / "src.raw"
    image(src, {})
    subprocess.run(["nbdcopy", str(src), how["uri"]], check=True, timeout=300)
    # qemu-img, with the options printed, finds the volume identical to the image.
    qemu = ["--object", how["object"]]
    res = subprocess.run(["qemu-img", "compare", *qemu, "--image-opts", how["image_opts"],
                          f"driver=raw,file.filename={src}"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "identical" in res.stdout, dh.describe(res)
    # qemu-img writes: the image with new first 2 MiB, converted onto the volume in place.
    blob = os.urandom(2 * MiB)
    patched = tmp_path / "patched.raw"
    image(patched, {0: blob})
    res = subprocess.run(["qemu-img", "convert", "-n", "-f", "raw", *qemu, "--target-image-opts", str(patched),
                          how["image_opts"]], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, dh.describe(res)
    # libnbd reads what qemu-img wrote and writes more; nbdcopy reads the volume back.
    h = tls_handle(service, "team-1", vid)
    assert h.pread(2 * MiB, 0) == blob
    more = os.urandom(MiB)
    h.pwrite(more, 300 * MiB, nbd.CMD_FLAG_FUA)
    h.shutdown()
    out = tmp_path / "out.raw"
    subprocess.run(["nbdcopy", how["uri"], str(out)], check=True, timeout=300)
    with open(out, "rb") as f:
        for offset, data in {**parts, 0: blob, 300 * MiB: more}.items():
            f.seek(offset)
            assert f.read(len(data)) == data, offset
    # nbdinfo lists exactly the team's own volume.
    res = subprocess.run(["nbdinfo", "--list", "--json", how["uri"].replace(f"/{vid}?", "/?")],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, dh.describe(res)
    assert vid in res.stdout and service.vols["team-2"] not in res.stdout, res.stdout


def test_without_credentials_nothing_is_seen_or_read(service):
    vid = service.vols["team-1"]
    # libnbd without TLS over TCP: refused.
    h = nbd.NBD()
    with pytest.raises(nbd.Error):
        h.connect_uri(f"nbd://127.0.0.1:{service.port}/{vid}")
    res = subprocess.run(["nbdinfo", "--list", f"nbd://127.0.0.1:{service.port}"], capture_output=True, text=True,
                         timeout=60)
    assert vid not in res.stdout
    # The raw protocol: LIST and GO answer TLS_REQD, EXPORT_NAME ends the connection.
    s = raw_hello(socket.AF_INET, ("127.0.0.1", service.port))
    assert option(s, 3)[0] == REP_ERR_TLS_REQD
    name = vid.encode()
    assert option(s, 7, struct.pack(">I", len(name)) + name + struct.pack(">H", 0))[0] == REP_ERR_TLS_REQD
    s.sendall(struct.pack(">QII", OPT_MAGIC, 1, len(name)) + name)
    assert ended(s)
    s.close()
    # A wrong key for a real identity, and an unknown identity: the TLS handshake fails.
    bad = service.keydirs["team-1"].parent / "bad.psk"
    bad.write_text(f"{service.accounts['team-1'].access_key_id}:{os.urandom(32).hex()}\n")
    with pytest.raises(nbd.Error):
        tls_handle(service, "team-1", vid, keyfile=bad)
    bad.write_text(f"AKIANOTAKEY000000000:{os.urandom(32).hex()}\n")
    with pytest.raises(nbd.Error):
        tls_handle(service, "team-1", vid, keyfile=bad, identity="AKIANOTAKEY000000000")


def test_another_teams_key_cannot_open_or_list_the_volume(service):
    mine, theirs = service.vols["team-1"], service.vols["team-2"]
    nbd_connect(service, "team-2", theirs)
    with pytest.raises(nbd.Error) as e:
        tls_handle(service, "team-2", mine)
    assert "no export named" in str(e.value), e.value  # what libnbd says of NBD_REP_ERR_UNKNOWN
    h = tls_handle(service, "team-2", theirs)  # its own still opens
    assert h.get_size() == VOLUME
    h.shutdown()
    h = nbd.NBD()
    h.set_tls(nbd.TLS_REQUIRE)
    h.set_tls_psk_file(str(service.keydirs["team-2"] / "keys.psk"))
    h.set_tls_username(service.accounts["team-2"].access_key_id)
    h.set_opt_mode(True)
    h.connect_tcp("127.0.0.1", str(service.port))
    names = []
    h.opt_list(lambda name, desc: names.append(name))
    h.opt_abort()
    assert names == [theirs], names


def test_a_disabled_key_cannot_log_in_until_enabled(service):
    """`snapvol key disable` refuses the key's PSK login (the TLS handshake fails, as for an
    unknown identity); `snapvol key enable` lets it in again."""
    theirs = service.vols["team-2"]
    nbd_connect(service, "team-2", theirs)
    key = service.accounts["team-2"].access_key_id
    service.cli("key", "disable", key)
    try:
        with pytest.raises(nbd.Error):
            tls_handle(service, "team-2", theirs)
    finally:
        service.cli("key", "enable", key)
    h = tls_handle(service, "team-2", theirs)
    assert h.get_size() == VOLUME
    h.shutdown()


def test_unix_peer_other_than_root_needs_a_key(service, tmp_path):
    vid = service.vols["team-1"]
    res = subprocess.run([*NOBODY, "nbdinfo", "--list", f"nbd+unix:///?socket={service.sock}"],
                         capture_output=True, text=True, timeout=60)
    assert vid not in res.stdout, dh.describe(res)
    script = ("import nbd,sys,hashlib\n"
              "h=nbd.NBD()\n"
              "if len(sys.argv)>4:\n"
              " h.set_tls(nbd.TLS_REQUIRE); h.set_tls_psk_file(sys.argv[3]); h.set_tls_username(sys.argv[4])\n"
              "h.set_export_name(sys.argv[2]); h.connect_unix(sys.argv[1])\n"
              "print(hashlib.sha256(h.pread(1<<20, 300<<20)).hexdigest())\n")
    res = subprocess.run([*NOBODY, "/usr/bin/python3", "-c", script, service.sock, vid],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "TLS" in res.stderr, dh.describe(res)
    key = Path(tempfile.mkdtemp(dir="/tmp")) / "keys.psk"
    try:
        key.parent.chmod(0o755)
        shutil.copy(service.keydirs["team-1"] / "keys.psk", key)
        os.chown(key, 65534, 65534)
        res = subprocess.run([*NOBODY, "/usr/bin/python3", "-c", script, service.sock, vid, str(key),
                              service.accounts["team-1"].access_key_id], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, dh.describe(res)
        h = tls_handle(service, "team-1", vid)
        assert res.stdout.strip() == hashlib.sha256(h.pread(MiB, 300 * MiB)).hexdigest()
        h.shutdown()
    finally:
        shutil.rmtree(key.parent, ignore_errors=True)
    # Root on the socket is the operator: no key, every team's volume.
    root = nbd.NBD()
    root.set_opt_mode(True)
    root.connect_unix(service.sock)
    names = []
    root.opt_list(lambda name, desc: names.append(name))
    root.opt_abort()
    assert set(service.vols.values()) <= set(names), names


def test_open_exports_per_account_are_capped(service):
    vid = service.vols["team-1"]
    nbd_connect(service, "team-1", vid)
    held = [tls_handle(service, "team-1", vid) for _ in range(PER_ACCOUNT)]
    try:
        with pytest.raises(nbd.Error) as e:
            tls_handle(service, "team-1", vid)
        assert "policy prevents NBD_OPT_GO" in str(e.value), e.value  # NBD_REP_ERR_POLICY
        # Another team is not affected.
        nbd_connect(service, "team-2", service.vols["team-2"])
        tls_handle(service, "team-2", service.vols["team-2"]).shutdown()
    finally:
        held.pop().shutdown()
    again = dh.wait_until(lambda: try_tls_handle(service, "team-1", vid), 10, what="a slot freed by a closed connection")
    again.shutdown()
    for h in held:
        h.shutdown()


def test_idle_and_stalled_connections_do_not_lock_others_out(service):
    """300 TCP connections that never finish the handshake: beyond 16 per client address they
    are closed at once, the rest when the handshake deadline passes; meanwhile the daemon
    answers /healthz within a second and root on the socket reads; afterwards teams connect."""
    vid = service.vols["team-1"]
    nbd_connect(service, "team-1", vid)
    socks, greeted = [], 0
    try:
        for _ in range(300):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(20)
            s.connect(("127.0.0.1", service.port))
            socks.append(s)
        for s in socks:
            if s.recv(18, socket.MSG_WAITALL)[:8] == b"NBDMAGIC":
                greeted += 1
        assert greeted <= 16, greeted
        t0 = time.monotonic()
        assert service.daemon.healthy() and time.monotonic() - t0 < 1.0
        root = nbd.NBD()
        root.set_export_name(vid)
        root.connect_unix(service.sock)
        root.pread(4096, 0)
        root.shutdown()
        # The deadline ends the ones that were let in.
        t0 = time.monotonic()
        for s in socks:
            assert s.recv(1) == b""
        waited = time.monotonic() - t0
        assert waited < HANDSHAKE_MS / 1000 + 10, waited
    finally:
        for s in socks:
            s.close()
    tls_handle(service, "team-1", vid).shutdown()
    # An authenticated connection left idle past --nbd-idle-timeout is closed too.
    s = raw_hello(socket.AF_UNIX, service.sock)
    name = vid.encode()
    s.sendall(struct.pack(">QII", OPT_MAGIC, 1, len(name)) + name)
    assert struct.unpack(">QH", s.recv(10, socket.MSG_WAITALL))[0] == VOLUME
    t0 = time.monotonic()
    assert s.recv(1) == b""
    assert time.monotonic() - t0 >= IDLE_MS / 1000 - 1
    s.close()


def test_write_headers_announcing_32_mib_do_not_take_memory(service):
    """64 connections each announce a 32 MiB WRITE and send 1 byte: the server takes payloads
    as they arrive, so its memory grows by far less than the 2 GiB announced."""
    vid = service.vols["team-1"]
    h = nbd.NBD()
    h.set_export_name(vid)
    h.connect_unix(service.sock)
    before_bytes = h.pread(4096, 512 * MiB)
    pid = service.daemon.proc.pid
    base = rss_kib(pid)
    socks = []
    try:
        for i in range(64):
            s = raw_hello(socket.AF_UNIX, service.sock)
            name = vid.encode()
            s.sendall(struct.pack(">QII", OPT_MAGIC, 1, len(name)) + name)
            s.recv(10, socket.MSG_WAITALL)
            s.sendall(struct.pack(">IHHQQI", 0x25609513, 0, 1, i, 512 * MiB, 32 * MiB) + b"W")
            socks.append(s)
        time.sleep(1)
        grown = rss_kib(pid) - base
        dh.note(f"nbd: RSS grew {grown} KiB with 64 WRITEs announcing 32 MiB each (2 GiB) and 1 byte sent")
        assert grown < 32 * 1024, grown
        assert service.daemon.healthy()
    finally:
        for s in socks:
            s.close()
    assert h.pread(4096, 512 * MiB) == before_bytes  # no partial payload was written
    h.shutdown()
