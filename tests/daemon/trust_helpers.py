"""Shared by the trust-boundary modules (test_private_data_dir, test_http_limits): a snapvold
for root-run checks, raw socket helpers and the limits snapvold applies by default."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
from pathlib import Path


import daemon_helpers as dh

NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
MAX_BODY = 2 << 20
HEADER_TIMEOUT = 10  # snapvold's default --http-header-timeout
PER_CLIENT = 128  # snapvold's default --http-max-connections-per-client: half of its 256 threads
CSP_NEEDS = ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "base-uri 'none'",
             "object-src 'none'"]


def trust_service():
    """A snapvold whose data dir sits under a directory every user may traverse (not pytest's
    0700 tmp dir), so only the data dir's own modes keep other users out."""
    root = Path(tempfile.mkdtemp(prefix="snapvol-trust-", dir="/tmp"))
    os.chmod(root, 0o755)  # traversable by everyone: only the data dir's modes protect it
    console = root / "console"
    console.mkdir()
    (console / "index.html").write_text('<!doctype html><script type="module" src="app.js"></script>\n')
    (console / "app.js").write_text("document.title = 'console';\n")
    os.chmod(console, 0o755)
    service = None
    try:
        service = dh.setup_service(root, daemon_args=["--console-dir", str(console)])
        dh.ACTIVE.append(service)
        yield service
    finally:
        if service is not None:
            dh.finish_service(service)  # also drops its database on PostgreSQL
        if not os.environ.get("SNAPVOL_KEEP_TMP"):
            shutil.rmtree(root, ignore_errors=True)



def loose_paths(top: Path) -> list[str]:
    """Every path under top (top included, symlinks not followed) with a group or other bit.
    The NBD server makes its socket 0666 on purpose (each peer is identified by SO_PEERCRED or
    TLS-PSK, for --nbd-socket elsewhere); inside the 0700 data dir nobody else reaches it, which
    the test checks by connecting."""
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


def request_events(svc) -> int:
    return sum(1 for e in svc.daemon.log_events() if e.get("event") == "request")


def recv_all(sock: socket.socket, limit_s: float) -> tuple[bytes, bool]:
    """What the server sends until it closes (True) or limit_s passes (False)."""
    sock.settimeout(0.2)
    data = b""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def send_while_reading(sock: socket.socket, chunks: list[bytes], limit_s: float = 8) -> tuple[bytes, bool]:
    """Sends chunks from a thread (the server may answer and stop reading before they are all
    sent) while reading its answer; closes sock and returns recv_all's (data, closed)."""
    sent = threading.Event()

    def send():
        try:
            for c in chunks:
                sock.sendall(c)
        except OSError:
            pass
        sent.set()

    threading.Thread(target=send, daemon=True).start()
    try:
        return recv_all(sock, limit_s)
    finally:
        sent.wait(5)
        sock.close()
