"""Helpers shared by the snapvold integration tests (see README.md).

The tests run the real daemon (SNAPVOLD_BIN) on 127.0.0.1 with port 0, set accounts, keys and
volumes up through the offline CLI (SNAPVOL_BIN) on the same data dir, and then talk to the
daemon only over HTTP: the AWS CLI v2 and v1, boto3, and hand-made SigV4-signed requests.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import math
import os
import queue
import re
import signal
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
SNAPVOL = os.environ.get("SNAPVOL_BIN") or str(_REPO / "build/src/cli/snapvol")
SNAPVOLD = os.environ.get("SNAPVOLD_BIN") or str(_REPO / "build/src/daemon/snapvold")
GENVOL = os.environ.get("SNAPVOL_GENVOL") or str(_REPO / "build/bench/snapvol-genvol")
AWS_V2 = "/usr/bin/aws"

REGION = "us-east-1"
SNAP_ID = re.compile(r"^snap-[0-9a-f]{17}$")
VOL_ID = re.compile(r"^vol-[0-9a-f]{17}$")
ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
UNAUTHORIZED_MESSAGE = "You are not authorized to perform this operation."

DEFAULT_TIMEOUT = 120

# Lines the modules want shown in the terminal summary (timings, skips worth knowing about).
NOTES: list[str] = []


def note(line: str):
    NOTES.append(line)


def clean_env(extra: dict | None = None) -> dict:
    """The environment for a child: nothing from the caller's AWS or snapvol set-up leaks in."""
    drop = ("SNAPVOL_DATA_DIR", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_CA_BUNDLE",
            "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONFIG_FILE", "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_EC2", "AWS_REGION", "AWS_DEFAULT_REGION")
    # SNAPVOL_STORE_FORMAT=upgraded is the suites' own mode (a store made on format 1, then
    # upgraded by the module that asks for it), no format snapvol knows: snapvold makes format 1.
    env = {k: v for k, v in os.environ.items() if k not in drop
           and not (k == "SNAPVOL_STORE_FORMAT" and v == "upgraded")}
    if extra:
        env.update(extra)
    return env


def describe(res) -> str:
    args = res.args if isinstance(res.args, (list, tuple)) else [res.args]
    return (f"command: {' '.join(map(str, args))}\nexit: {res.returncode}\n"
            f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}")


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def genvol_create(out, size: str, seed: int, *, holes: bool = True) -> Path:
    args = [GENVOL, "create", "--size", size, "--seed", str(seed)]
    if not holes:
        args.append("--no-holes")
    subprocess.run([*args, str(out)], check=True, capture_output=True, timeout=120)
    return Path(out)


def genvol_mutate(path, percent: float, seed: int):
    subprocess.run([GENVOL, "mutate", "--percent", str(percent), "--seed", str(seed), str(path)],
                   check=True, capture_output=True, timeout=120)


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    """Polls predicate() until it returns a truthy value; returns that value. On timeout raises
    AssertionError naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}; last: {last!r}")
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# The daemon process

class Daemon:
    """One snapvold process on a data dir. stdout is drained by a thread (only the 'listening'
    line is expected there); stderr goes to a log file that survives restarts, so a failing test
    can show what the daemon said."""

    LISTENING = re.compile(r"snapvold listening on (http://127\.0\.0\.1:(\d+)) \(data dir (.*)\)")

    def __init__(self, data_dir: Path, log_path: Path, extra_args: list[str] | None = None):
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        self.extra_args = list(extra_args or [])
        self.proc: subprocess.Popen | None = None
        self.endpoint: str | None = None
        self.port: int | None = None
        self.starts = 0
        self.stdout_lines: list[str] = []

    # ---- lifecycle ----
    def start(self, timeout: float = 20, *, port: int = 0):
        """Starts snapvold on 127.0.0.1:port (0: any free port; a restart can keep its port, so
        that clients and AWS CLI profiles made before still reach it)."""
        assert self.proc is None or self.proc.poll() is not None, "daemon already running"
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"=== test harness: start #{self.starts} of snapvold ===\n".encode())
        log = open(self.log_path, "ab")
        try:
            self.proc = subprocess.Popen(
                [SNAPVOLD, "--data-dir", str(self.data_dir), "--listen", f"127.0.0.1:{port}", *self.extra_args],
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True,
                env=clean_env())
        finally:
            log.close()
        lines: queue.Queue = queue.Queue()
        out = self.proc.stdout

        def drain():
            for line in out:
                self.stdout_lines.append(line)
                lines.put(line)
            lines.put(None)

        threading.Thread(target=drain, daemon=True).start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill9()
                raise AssertionError(f"snapvold printed no 'listening' line within {timeout} s\n"
                                     + self.log_tail())
            if line is None:
                rc = self.proc.wait(timeout=10)
                raise AssertionError(f"snapvold exited ({rc}) before listening\n" + self.log_tail())
            m = self.LISTENING.search(line)
            if m:
                self.endpoint, self.port = m.group(1), int(m.group(2))
                assert self.port != 0, line
                assert Path(m.group(3)) == self.data_dir, line
                break
        wait_until(self.healthy, 10, what="GET /healthz to answer 200")
        return self

    def healthy(self) -> bool:
        try:
            status, _, body = http_request(self.endpoint, "GET", "/healthz", timeout=5)
        except OSError:
            return False
        return status == 200 and body.strip() == b"ok"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM, then waits up to `timeout` seconds; returns the exit code (or raises with the
        log if it did not exit, after killing it)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise AssertionError(f"snapvold did not exit within {timeout} s of SIGTERM (killed)\n"
                                     + self.log_tail())
        return self.proc.returncode

    def kill9(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    # ---- log ----
    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 120) -> str:
        tail = self.log_text().splitlines()[-lines:]
        return f"--- last {len(tail)} lines of snapvold stderr ({self.log_path}) ---\n" + "\n".join(tail)

    def log_events(self) -> list[dict]:
        out = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        return out


# ---------------------------------------------------------------------------------------------
# Raw HTTP

def http_request(endpoint: str, method: str, target: str, body: bytes = b"",
                 headers: dict | None = None, timeout: float = 30):
    """One request on a fresh connection; returns (status, headers dict (lower-case names),
    body bytes)."""
    host, port = endpoint.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        res = conn.getresponse()
        data = res.read()
        return res.status, {k.lower(): v for k, v in res.getheaders()}, data
    finally:
        conn.close()


def parse_ec2_error(body: bytes) -> tuple[str, str]:
    """(Code, Message) of an EC2 error document; raises AssertionError if `body` is not one
    (<Response><Errors><Error><Code/><Message/></Error></Errors><RequestID/></Response>)."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise AssertionError(f"not an EC2 error document ({e}): {body[:300]!r}")
    assert root.tag == "Response", body[:300]
    code = root.findtext("./Errors/Error/Code")
    message = root.findtext("./Errors/Error/Message")
    assert code, f"no Errors/Error/Code: {body[:300]!r}"
    assert message is not None, f"no Errors/Error/Message: {body[:300]!r}"
    assert root.findtext("./RequestID"), f"no RequestID: {body[:300]!r}"
    return code, message



def wait_loaded(client, volume_id: str, timeout: float = 300):
    """Waits until a volume restored from a snapshot is fully loaded (restored volumes are
    usable at once; DescribeVolumeStatus shows the background copy's progress)."""
    def loaded():
        vol = client.describe_volumes(VolumeIds=[volume_id])["Volumes"][0]
        assert vol["State"] in ("available", "in-use"), vol
        st = client.describe_volume_status(VolumeIds=[volume_id])["VolumeStatuses"][0]
        details = {d["Name"]: d["Status"] for d in st["VolumeStatus"]["Details"]}
        return details.get("initialization-state") == "completed"

    wait_until(loaded, timeout, 0.1, f"{volume_id} to finish loading from its snapshot")


def dlm_client(svc: "Service", alias: str = "team-1"):
    """A boto3 Data Lifecycle Manager client for an account of svc."""
    import boto3
    from botocore.config import Config
    acct = svc.accounts[alias]
    session = boto3.session.Session(aws_access_key_id=acct.access_key_id,
                                    aws_secret_access_key=acct.secret_access_key, region_name=REGION)
    return session.client("dlm", endpoint_url=svc.endpoint,
                          config=Config(retries={"max_attempts": 1, "mode": "standard"}))



# The tags every snapshot carries to say how it was cut (docs/api.md, "How a snapshot is cut").
CUT_TAGS = ("aws:snapvol:consistency", "aws:snapvol:changed-blocks")
# The tags every volume carries to say where it lives (docs/multi-host.md part 3): its host's
# name, and a managed volume's NBD export.
WHERE_TAGS = ("aws:snapvol:host", "aws:snapvol:nbd")


def schedule_clock_args(lead: float = 10.0) -> tuple[list[str], datetime]:
    """snapvold's arguments that make its lifecycle schedules fall due early (the test flag
    --schedule-clock-offset-seconds), so that a whole minute comes `lead` seconds from now on
    the schedules' clock instead of up to two minutes away; and that minute (UTC, for a
    schedule's Times). Nothing else in the daemon moves: runs and snapshots keep the real time."""
    now = time.time()
    offset = math.ceil(-(now + lead) % 60)
    minute = datetime.fromtimestamp(now + offset + lead, timezone.utc).replace(second=0, microsecond=0)
    if minute.timestamp() < now + offset:  # rounding put it behind: the next one
        minute += timedelta(minutes=1)
    return [f"--schedule-clock-offset-seconds={offset}"], minute


def schedule_soon(svc: "Service", lead: float = 10.0) -> datetime:
    """Restarts svc's snapvold (same port) with schedule_clock_args; returns the minute that is
    due about `lead` seconds from now."""
    args, minute = schedule_clock_args(lead)
    port = svc.daemon.port
    rc = svc.daemon.stop()
    assert rc == 0, f"snapvold exited {rc} after SIGTERM\n" + svc.daemon.log_tail()
    svc.daemon.extra_args = [a for a in svc.daemon.extra_args
                             if not a.startswith("--schedule-clock-offset-seconds")] + args
    svc.daemon.start(port=port)
    return minute


def cut_tags(svc, snapshot_id: str) -> dict:
    """How a snapshot was cut, from the catalog (`snapvol snapshot show`): EC2's answers do not
    carry these tags (they are snapvol's members consistency and changedBlocks there)."""
    out = json.loads(svc.cli("-o", "json", "snapshot", "show", "--snapshot-id", snapshot_id).stdout)
    return {t["Key"]: t["Value"] for t in out.get("Tags") or [] if t["Key"] in CUT_TAGS}


def tags_of(item: dict, *, cut: bool = False) -> dict:
    """The item's tags; a snapshot's cut tags and a volume's where tags only with cut=True (most
    tests check the others)."""
    return {t["Key"]: t["Value"] for t in item.get("Tags") or []
            if cut or t["Key"] not in CUT_TAGS + WHERE_TAGS}


def concurrently(*thunks, workers: int = 3) -> list:
    """Runs independent zero-argument callables on a few threads (the AWS CLI spends most of a
    call starting Python); returns their results in order, re-raising the first failure."""
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=workers) as ex:
        futures = [ex.submit(t) for t in thunks]
        return [f.result() for f in futures]


# Re-exported for the tests: the services (set-up, modes, teardown) and the signed clients. Both
# modules import names defined above, so they are imported last, daemon_service first.
from daemon_service import (ACTIVE, CATALOG, HOSTS, Account, Service, Volume,  # noqa: E402,F401
                            finish_service, make_service, setup_service, teardown_service)
from signed_clients import AwsCli, Signer, find_aws_v1  # noqa: E402,F401
