"""Operator notifications, live: snapvold posts signed JSON to a webhook receiver in this test
(which answers 500 to the first attempt of each event, so every delivery needs a retry) and
pipes mail to a sendmail stand-in that records its command line and standard input.

A lifecycle run that fails (its volume's file is gone), a snapshot that ends in error, the store
past its space threshold and the administrator's test command each reach both channels; the
signature verifies with the shared secret; an event still being retried when the daemon stops
is spooled and delivered after the restart; bad settings are refused by name at start."""
from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import subprocess
import threading
from datetime import datetime, timezone
from email import message_from_bytes, policy as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import daemon_helpers as dh

SECRET = "webhook-secret-\u00e9t\u00e9-42"  # not ASCII on purpose: the key is the file's bytes
ROLE = "arn:aws:iam::123456789012:role/AWSDataLifecycleManagerDefaultRole"


class Receiver:
    """A webhook endpoint on 127.0.0.1:<ephemeral>. Records every request; answers 500 to the
    first attempt of each delivery id (X-Snapvol-Delivery) unless told otherwise."""

    def __init__(self):
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.seen: set[str] = set()
        self.fail_first = True
        self.always: int | None = None  # answer every request with this status
        recv = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                delivery = self.headers.get("X-Snapvol-Delivery", "")
                with recv.lock:
                    if recv.always is not None:
                        status = recv.always
                    elif recv.fail_first and delivery not in recv.seen:
                        status = 500
                    else:
                        status = 200
                    recv.seen.add(delivery)
                    recv.requests.append({"path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()},
                                          "body": body, "status": status})
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/snapvol"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, event: str, **details) -> list[dict]:
        """Requests whose payload is this event (and has these details)."""
        out = []
        with self.lock:
            reqs = list(self.requests)
        for r in reqs:
            p = json.loads(r["body"])
            if p["event"] == event and all(p["details"].get(k) == v for k, v in details.items()):
                out.append(r)
        return out

    def delivered(self, event: str, **details) -> dict | None:
        for r in self.of(event, **details):
            if r["status"] == 200:
                return r
        return None


def verify(req: dict) -> dict:
    """Checks the request's signature the way docs/notifications.md tells a receiver to; returns
    the payload."""
    ts = req["headers"]["x-snapvol-timestamp"]
    sig = req["headers"]["x-snapvol-signature"]
    expected = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + req["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(sig, expected), (sig, expected)
    # A wrong secret does not verify (the check above is not vacuous).
    wrong = "sha256=" + hmac.new(b"other", ts.encode() + b"." + req["body"], hashlib.sha256).hexdigest()
    assert sig != wrong
    assert abs(int(ts) - datetime.now(timezone.utc).timestamp()) < 600, ts
    assert req["headers"]["content-type"] == "application/json"
    payload = json.loads(req["body"])
    assert list(payload) == ["event", "severity", "summary", "time", "details", "host", "id"], payload
    assert req["headers"]["x-snapvol-event"] == payload["event"]
    assert req["headers"]["x-snapvol-delivery"] == payload["id"]
    assert payload["id"].startswith("evt-") and len(payload["id"]) == 21
    assert payload["host"] == os.uname().nodename
    datetime.strptime(payload["time"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return payload


class Mailbox:
    """A sendmail stand-in: each run writes its arguments and standard input to files."""

    def __init__(self, root: Path):
        self.dir = root / "mail"
        self.dir.mkdir()
        self.program = root / "fake-sendmail"
        self.program.write_text("#!/bin/sh\n"
                                f"n=$(mktemp {self.dir}/msg.XXXXXX)\n"
                                'echo "$@" > "$n.args"\n'
                                'cat > "$n.tmp" && mv "$n.tmp" "$n.eml"\n')
        self.program.chmod(0o700)

    def messages(self) -> list[tuple[str, object]]:
        out = []
        for eml in sorted(self.dir.glob("*.eml")):
            args = Path(str(eml)[:-4] + ".args").read_text().strip()
            out.append((args, message_from_bytes(eml.read_bytes(), policy=email_policy.default)))
        return out

    def about(self, event: str) -> list:
        return [(a, m) for a, m in self.messages() if m["X-Snapvol-Event"] == event]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("notify")
    receiver = Receiver()
    mailbox = Mailbox(root)
    secret = root / "webhook.secret"
    secret.write_bytes(SECRET.encode() + b"\n")
    secret.chmod(0o600)
    st = os.statvfs(root)
    used = 100.0 * (st.f_blocks - st.f_bfree) / ((st.f_blocks - st.f_bfree) + st.f_bavail)
    threshold = max(1, math.floor(used))  # already past it: one store-filling event at start
    args = ["--notify-webhook-url", receiver.url, "--notify-webhook-secret-file", str(secret),
            "--notify-email-to", "ops@example.com,oncall@example.com", "--notify-email-to", "lead@example.com",
            "--notify-email-from", "snapvold@example.com", "--notify-sendmail", str(mailbox.program),
            "--store-full-threshold", str(threshold)]
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "svc", daemon_args=args)
        yield svc, receiver, mailbox, threshold
    finally:
        receiver.server.shutdown()
        if svc is not None:
            dh.finish_service(svc)


def test_the_store_past_its_threshold_is_reported_once(setup):
    svc, receiver, mailbox, threshold = setup
    got = dh.wait_until(lambda: receiver.delivered("store-filling"), 30, 0.1, "the store-filling notification")
    p = verify(got)
    assert p["severity"] in ("warning", "error")
    assert p["details"]["path"] == str(svc.data_dir / "store")
    assert p["details"]["threshold_percent"] == str(threshold)
    assert float(p["details"]["used_percent"]) >= threshold
    assert len({json.loads(r["body"])["id"] for r in receiver.of("store-filling")}) == 1  # edge-triggered


def test_the_administrator_sends_a_test_notification_and_sees_the_result(setup):
    svc, receiver, mailbox, _ = setup
    status, out = svc.signer("admin").json("POST", "/api/v1/notifications/test")
    assert status == 200, out
    n = out["notification"]
    # One attempt per channel: the receiver answers a first attempt 500, and the report says so.
    assert n["webhook"] == {"delivered": False, "attempts": 1, "status": 500, "error": "HTTP 500"}, n
    assert n["email"] == {"delivered": True, "attempts": 1}, n
    first = [r for r in receiver.of("test") if json.loads(r["body"])["id"] == n["id"]]
    assert len(first) == 1 and verify(first[0])["details"]["requested_by"].startswith("admin")
    receiver.fail_first = False
    try:
        status, out = svc.signer("admin").json("POST", "/api/v1/notifications/test")
    finally:
        receiver.fail_first = True
    assert status == 200 and out["notification"]["webhook"] == {"delivered": True, "attempts": 1, "status": 200}, out
    assert any(m["Message-ID"].startswith(f"<{out['notification']['id']}@") for _, m in mailbox.about("test"))
    # The same from the command line (`snapvol notify test`), signed with the admin profile.
    def cli(profile):
        return subprocess.run([dh.SNAPVOL, "notify", "test", "--endpoint", svc.endpoint, "--profile", profile],
                              capture_output=True, text=True, timeout=60, env=svc.aws_env())
    res = cli("snapvol-admin")  # a first attempt again: answered 500
    assert res.returncode == 1, dh.describe(res)
    assert "webhook: NOT delivered (HTTP 500): HTTP 500" in res.stdout and "email: delivered" in res.stdout, res.stdout
    receiver.fail_first = False
    try:
        res = cli("snapvol-admin")
    finally:
        receiver.fail_first = True
    assert res.returncode == 0, dh.describe(res)
    assert "webhook: delivered (HTTP 200)" in res.stdout and "email: delivered" in res.stdout, res.stdout
    res = cli("snapvol-team-1")
    assert res.returncode == 1 and "UnauthorizedOperation" in res.stderr, dh.describe(res)
    # Members may not.
    status, out = svc.signer("team-1").json("POST", "/api/v1/notifications/test")
    assert status in (400, 403) and out["error"]["code"] == "UnauthorizedOperation", out
    # Nothing else is accepted.
    status, out = svc.signer("admin").json("POST", "/api/v1/notifications/test", {"to": "x@example.com"})
    assert status == 400, out


def test_an_event_still_being_retried_at_a_stop_is_spooled_and_sent_after_the_restart(setup):
    svc, receiver, mailbox, _ = setup
    receiver.always = 503
    gone = svc.add_volume("team-2", "gone", size="1M", seed=9)
    gone.path.unlink()
    ec2 = svc.client("team-2")
    sid = ec2.create_snapshot(VolumeId=gone.volume_id)["SnapshotId"]
    dh.wait_until(lambda: receiver.of("snapshot-failed", snapshot_id=sid), 30, 0.05, "a first attempt")
    dh.teardown_service(svc)  # SIGTERM during the backoff wait: exits 0
    spool = svc.data_dir / "notify-spool.jsonl"
    assert spool.stat().st_mode & 0o777 == 0o600
    spooled = [json.loads(line) for line in spool.read_text().splitlines()]
    ids = {json.loads(r["body"])["id"] for r in receiver.of("snapshot-failed", snapshot_id=sid)}
    assert len(ids) == 1
    assert any(s["envelope"]["id"] in ids for s in spooled), spooled
    receiver.always = None
    svc.daemon.start()
    got = dh.wait_until(lambda: receiver.delivered("snapshot-failed", snapshot_id=sid), 30, 0.1,
                        "the spooled event after the restart")
    assert verify(got)["id"] in ids  # the same event, not a new one
    assert not spool.exists()


# Last of the tests on the module's service: it restarts snapvold (dh.schedule_soon), and a
# restart reports the store filling again (the edge is remembered per process).
def test_a_failed_lifecycle_run_is_posted_signed_after_a_retry_and_mailed(setup):
    svc, receiver, mailbox, _ = setup
    doomed = svc.add_volume("team-1", "doomed", size="1M", seed=7)
    doomed.path.unlink()  # the run's only snapshot cannot read its volume: the run fails
    at = dh.schedule_soon(svc)  # a minute ~10 s away on the schedules' clock
    details = {"ResourceTypes": ["VOLUME"], "TargetTags": [{"Key": "Name", "Value": "doomed"}],
               "Schedules": [{"Name": "nightly", "CreateRule": {"Interval": 1, "IntervalUnit": "HOURS",
                                                                "Times": [at.strftime("%H:%M")]},
                              "RetainRule": {"Count": 2}}]}
    dlm = dh.dlm_client(svc, "team-1")
    pid = dlm.create_lifecycle_policy(ExecutionRoleArn=ROLE, Description="doomed", State="ENABLED",
                                      PolicyDetails=details)["PolicyId"]
    got = dh.wait_until(lambda: receiver.delivered("lifecycle-run-failed", policy_id=pid), 120, 0.2,
                        "the failed run's notification to be delivered")
    dlm.update_lifecycle_policy(PolicyId=pid, State="DISABLED")
    payload = verify(got)
    assert payload["severity"] == "error"
    d = payload["details"]
    assert d["account_id"] == svc.accounts["team-1"].account_id and d["schedule"] == "nightly"
    assert d["state"] == "failed" and d["snapshots_created"] == "0" and d["snapshots_failed"] == "1", d
    assert d["scheduled_time"].startswith(at.strftime("%Y-%m-%dT%H:%M:00")), d
    assert pid in payload["summary"] and "failed" in payload["summary"]
    # The first attempt was answered 500: the same event (same id, same body) came again.
    attempts = [r for r in receiver.of("lifecycle-run-failed", policy_id=pid)]
    assert [r["status"] for r in attempts] == [500, 200], [r["status"] for r in attempts]
    assert attempts[0]["body"] == attempts[1]["body"]
    assert attempts[0]["path"] == "/hooks/snapvol"
    verify(attempts[0])
    # The run history agrees.
    runs = json.loads(svc.cli("-o", "json", "policy", "runs", "--policy-id", pid).stdout)["Runs"]
    assert runs[0]["State"] == "failed" and runs[0]["SnapshotsFailed"] == 1, runs
    # The snapshot that failed in it was reported on its own.
    snap = dh.wait_until(lambda: receiver.delivered("snapshot-failed", volume_id=doomed.volume_id), 30, 0.1,
                         "the snapshot-failed notification")
    sp = verify(snap)
    assert sp["details"]["snapshot_id"].startswith("snap-") and "cannot read the volume" in sp["details"]["message"]
    # And by mail, through the sendmail interface: -t -oi, recipients in To:.
    mails = dh.wait_until(lambda: [m for m in mailbox.about("lifecycle-run-failed") if pid in m[1]["Subject"]],
                          30, 0.1, "the failed run's mail")
    args, msg = mails[0]
    assert args == "-t -oi"
    assert msg["To"] == "ops@example.com, oncall@example.com, lead@example.com"
    assert msg["From"] == "snapvold@example.com"
    assert msg["Subject"].startswith("[snapvol] error lifecycle-run-failed: lifecycle run failed")
    assert msg["Message-ID"] == f"<{payload['id']}@{os.uname().nodename}>"
    body = msg.get_content()
    assert f"policy_id: {pid}" in body and "snapshots_failed: 1" in body


@pytest.mark.parametrize("args,mentions", [
    (["--notify-webhook-url", "ftp://example.com/x", "--notify-webhook-secret-file", "SECRET"],
     "--notify-webhook-url 'ftp://example.com/x' must be http:// or https://"),
    (["--notify-webhook-url", "http://127.0.0.1:9/x"], "needs --notify-webhook-secret-file"),
    (["--notify-webhook-url", "http://127.0.0.1:9/x", "--notify-webhook-secret-file", "OPEN"],
     "mode 0644 lets other users read or change it"),
    (["--notify-email-to", "ops@example.com,not an address"], "--notify-email-to 'not an address'"),
    (["--notify-email-to", "ops@example.com", "--notify-sendmail", "/nonexistent/sendmail"], "--notify-sendmail"),
    (["--notify-events", "snapshot-failed,gc-faild"], "unknown event kind 'gc-faild'"),
    (["--store-full-threshold", "101"], "--store-full-threshold"),
])
def test_bad_settings_are_refused_by_name_and_change_nothing(tmp_path, args, mentions):
    (tmp_path / "secret").write_text("s")
    (tmp_path / "secret").chmod(0o600)
    (tmp_path / "open").write_text("s")
    (tmp_path / "open").chmod(0o644)
    args = [str(tmp_path / "secret") if a == "SECRET" else str(tmp_path / "open") if a == "OPEN" else a for a in args]
    data = tmp_path / "data"
    res = subprocess.run([dh.SNAPVOLD, "--data-dir", str(data), "--listen", "127.0.0.1:0", *args],
                         capture_output=True, text=True, timeout=30, env=dh.clean_env())
    assert res.returncode != 0, res.stderr
    assert mentions in res.stderr, res.stderr
    assert not data.exists()


def test_settings_come_from_the_toml_config_too(tmp_path):
    (tmp_path / "open").write_text("s")
    (tmp_path / "open").chmod(0o640)
    conf = tmp_path / "snapvold.toml"
    conf.write_text(f'notify-webhook-url = "https://hooks.example.com/x"\n'
                    f'notify-webhook-secret-file = "{tmp_path / "open"}"\n'
                    'notify-email-to = ["ops@example.com", "oncall@example.com"]\n')
    data = tmp_path / "data"
    res = subprocess.run([dh.SNAPVOLD, "--data-dir", str(data), "--listen", "127.0.0.1:0", "--config", str(conf)],
                         capture_output=True, text=True, timeout=30, env=dh.clean_env())
    assert res.returncode != 0 and "mode 0640" in res.stderr, res.stderr
