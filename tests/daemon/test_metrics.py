"""/metrics, scraped by a real Prometheus (Debian's `prometheus` package).

One daemon with --metrics-token-file and a --metrics-listen listener of its own. The test:
  - checks the access rules: on the API listener no token, a wrong token or another scheme get
    401 (and those refusals are not counted as API requests), the right token gets the text
    format; the metrics listener serves /metrics only, behind the same token;
  - runs `promtool check metrics` on what /metrics answers, before and after snapshots;
  - starts `prometheus` (storage in a temp dir, an ephemeral port, scraping snapvold every
    second with the token from its credentials_file), takes snapshots with boto3, and polls the
    Prometheus HTTP API until a PromQL query over the scraped series sees the completed-snapshot
    counter reach the number taken (deadlines only, no timed assertions);
  - checks the values that can be known exactly: snapshots by account and state, API requests
    by action and code, the duration histograms' counts, the snapshot byte counters.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

import daemon_helpers as dh

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


@pytest.fixture(scope="module")
def token_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("metrics-token") / "token"
    path.write_text(secrets.token_hex(24) + "\n")
    os.chmod(path, 0o600)
    return path


@pytest.fixture(scope="module")
def service(tmp_path_factory, token_file):
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "metrics",
                              daemon_args=["--metrics-token-file", str(token_file),
                                           "--metrics-listen", "127.0.0.1:0"])
        yield svc
    finally:
        if svc is not None:
            dh.finish_service(svc)


def scrape(endpoint: str, token: str | None, scheme: str = "Bearer"):
    headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
    return dh.http_request(endpoint, "GET", "/metrics", headers=headers)


def parse_samples(body: str) -> dict[str, float]:
    """'name{labels}' → value, for every sample line (label order as written)."""
    out = {}
    for line in body.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        out[key] = float(value)
    return out


def promtool_check(body: bytes):
    res = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, timeout=60)
    assert res.returncode == 0, (f"promtool check metrics refused /metrics:\n{res.stdout.decode()}"
                                 f"{res.stderr.decode()}\n--- body ---\n{body.decode()[:4000]}")
    # promtool prints lint findings (e.g. a counter without _total) and still exits 0: none allowed.
    assert not res.stdout.strip() and not res.stderr.strip(), (res.stdout + res.stderr).decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prom_query(base: str, query: str) -> list:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=10) as r:
        doc = json.load(r)
    assert doc["status"] == "success", doc
    return doc["data"]["result"]


def prom_value(base: str, query: str) -> float | None:
    result = prom_query(base, query)
    return float(result[0]["value"][1]) if result else None


class Prometheus:
    def __init__(self, root: Path, target: str, token_file: Path):
        self.root = root
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        config = root / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  scrape_timeout: 1s\n"
            "scrape_configs:\n"
            "  - job_name: snapvold\n"
            "    metrics_path: /metrics\n"
            "    authorization:\n"
            "      type: Bearer\n"
            f"      credentials_file: {token_file}\n"
            "    static_configs:\n"
            f"      - targets: ['{target}']\n")
        self.log_path = root / "prometheus.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={root / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=dh.clean_env())

    def ready(self) -> bool:
        assert self.proc.poll() is None, "prometheus exited:\n" + self.log_tail()
        try:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    def log_tail(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


def metrics_listener(service) -> str:
    events = [e for e in service.daemon.log_events() if e.get("event") == "metrics_listening"]
    assert len(events) == 1, events
    url = events[0]["endpoint"]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics"), url
    return url.removesuffix("/metrics")


def test_metrics_scraped_by_prometheus(service, token_file, tmp_path):
    token = token_file.read_text().strip()
    ep = service.endpoint

    # --- access on the API listener ---
    first = scrape(ep, token)
    assert first[0] == 200, first
    before = parse_samples(first[2].decode())
    api_total = lambda samples: sum(v for k, v in samples.items() if k.startswith("snapvol_api_requests_total{"))
    for tok, scheme in [(None, "Bearer"), ("wrong-" + token, "Bearer"), (token[:-1], "Bearer"), (token, "Basic")]:
        status, headers, body = scrape(ep, tok, scheme)
        assert status == 401, (tok, scheme, status, body)
        assert headers.get("www-authenticate", "").startswith("Bearer"), headers
        assert b"--metrics-token-file" in body, body
        assert b"snapvol_" not in body
    status, headers, body = scrape(ep, token)
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain; version=0.0.4"), headers
    # Every family is declared from the first scrape, before anything happened.
    for family in ["snapvol_snapshot_jobs_total counter", "snapvol_snapshot_duration_seconds histogram",
                   "snapvol_restore_duration_seconds histogram", "snapvol_nbd_connections gauge",
                   "snapvol_store_errors_total counter", "snapvol_maintenance_runs_total counter",
                   "snapvol_snapshots gauge"]:
        assert f"# TYPE {family}\n".encode() in first[2], (family, first[2].decode())
    after = parse_samples(body.decode())
    # Scrapes, refused or not, are not API requests.
    assert api_total(after) == api_total(before), (api_total(before), api_total(after))
    promtool_check(body)

    # --- the listener of its own: /metrics only, behind the same token ---
    own = metrics_listener(service)
    assert scrape(own, None)[0] == 401
    status, _, body = scrape(own, token)
    assert status == 200 and b"# TYPE snapvol_snapshot_jobs_total counter" in body, body[:500]
    status, _, body = dh.http_request(own, "GET", "/")
    assert status == 404 and b"/metrics only" in body, (status, body)
    status, _, body = dh.http_request(own, "POST", "/", body=b"Action=DescribeSnapshots")
    assert status == 404, (status, body)

    # --- a real Prometheus scraping the API listener with the token ---
    prom = Prometheus(tmp_path, ep.removeprefix("http://"), token_file)
    try:
        dh.wait_until(prom.ready, 60, 0.2, "prometheus to be ready")
        dh.wait_until(lambda: prom_value(prom.base, 'up{job="snapvold"}') == 1.0, 60, 0.5,
                      "prometheus to scrape snapvold successfully (up == 1)")
        completed_q = 'sum(snapvol_snapshot_jobs_total{outcome="completed"}) or vector(0)'
        start_value = prom_value(prom.base, completed_q)
        assert start_value == 0.0, start_value  # nothing taken yet

        ec2 = service.client("team-1")
        vol = service.volumes["vol-team-1"]
        taken = []
        for i in range(3):
            snap = ec2.create_snapshot(VolumeId=vol.volume_id, Description=f"metrics {i}")
            taken.append(snap["SnapshotId"])
            ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snap["SnapshotId"]],
                                                      WaiterConfig={"Delay": 1, "MaxAttempts": 120})

        # Prometheus sees the counter move once it has scraped after the snapshots completed.
        dh.wait_until(lambda: prom_value(prom.base, completed_q) == 3.0, 60, 0.5,
                      "a PromQL query to see snapvol_snapshot_jobs_total reach 3")
        team1 = service.accounts["team-1"].account_id
        by_account = prom_query(prom.base, 'snapvol_snapshot_jobs_total{outcome="completed"}')
        assert [(r["metric"]["account"], r["value"][1]) for r in by_account] == [(team1, "3")], by_account
        dh.wait_until(
            lambda: prom_value(prom.base, f'snapvol_snapshots{{account="{team1}",state="completed"}}') == 3.0,
            60, 0.5, "the catalog gauge of completed snapshots to reach 3")
        hist = prom_value(prom.base, 'sum(snapvol_snapshot_duration_seconds_count{outcome="completed"})')
        assert hist == 3.0, hist
        created = prom_value(prom.base, 'sum(snapvol_api_requests_total{action="CreateSnapshot",code="ok"})')
        assert created == 3.0, created
        assert prom_value(prom.base, "snapvol_dedup_ratio") > 0
    except BaseException:
        print(prom.log_tail())
        raise
    finally:
        prom.stop()

    # --- what /metrics says now, exactly ---
    status, _, body = scrape(ep, token)
    assert status == 200
    promtool_check(body)
    s = parse_samples(body.decode())
    team2 = service.accounts["team-2"].account_id
    assert s[f'snapvol_snapshots{{account="{team1}",state="completed"}}'] == 3
    assert f'snapvol_snapshots{{account="{team2}",state="completed"}}' not in s
    assert s['snapvol_snapshot_jobs_total{account="%s",outcome="completed"}' % team1] == 3
    assert s['snapvol_snapshot_duration_seconds_bucket{outcome="completed",le="+Inf"}'] == 3
    assert s['snapvol_snapshot_duration_seconds_count{outcome="completed"}'] == 3
    assert s['snapvol_api_requests_total{action="CreateSnapshot",code="ok"}'] == 3
    assert s['snapvol_api_request_duration_seconds_count{action="CreateSnapshot",code="ok"}'] == 3
    # The three snapshots cover the 16 MiB volume each; the first stored its data, the others
    # found every block unchanged.
    assert s["snapvol_snapshot_volume_bytes_total"] == 3 * vol.size
    assert s["snapvol_logical_bytes"] == 3 * vol.size
    stored = s[f'snapvol_account_stored_bytes{{account="{team1}"}}']
    assert 0 < stored < vol.size, stored
    assert s["snapvol_stored_bytes"] == stored
    assert s["snapvol_dedup_ratio"] == pytest.approx(3 * vol.size / stored)
    assert s["snapvol_snapshot_new_chunk_plain_bytes_total"] > 0
    assert s["snapvol_compression_ratio"] == pytest.approx(
        s["snapvol_snapshot_new_chunk_plain_bytes_total"] / s["snapvol_snapshot_new_chunk_stored_bytes_total"])
    assert s['snapvol_snapshot_blocks_total{kind="unchanged"}'] >= 2 * s['snapvol_snapshot_blocks_total{kind="new"}']
    assert s["snapvol_catalog_read_ok"] == 1
    # Usage accounting counts the same stored objects in the background: once it has caught up,
    # team-1 holds all of them alone (no other account has snapshots).
    exclusive = f'snapvol_account_exclusive_bytes{{account="{team1}"}}'
    deadline = time.monotonic() + 30
    while exclusive not in s and time.monotonic() < deadline:
        time.sleep(0.2)
        s = parse_samples(scrape(ep, token)[2].decode())
    assert s[exclusive] == stored, (s.get(exclusive), stored)
    assert s[f'snapvol_account_shared_bytes{{account="{team1}"}}'] == 0
    # An unknown action is counted, but not under the name the client made up.
    status, _, body = service.signer("team-1").send("Action=NoSuchAction&Version=2016-11-15")
    assert status == 400 and dh.parse_ec2_error(body)[0] == "InvalidAction", body
    s = parse_samples(scrape(ep, token)[2].decode())
    assert s['snapvol_api_requests_total{action="none",code="InvalidAction"}'] == 1
    assert not any("NoSuchAction" in k for k in s)


def test_every_metric_is_documented(service, token_file):
    """Each family /metrics declares, and each name the Grafana dashboard queries, is in
    docs/metrics.md."""
    import re
    docs = Path(__file__).resolve().parents[2] / "docs"
    reference = (docs / "metrics.md").read_text()
    documented = set(re.findall(r"`(snapvol_[a-z_]+)`", reference))
    status, _, body = scrape(service.endpoint, token_file.read_text().strip())
    assert status == 200
    declared = set(re.findall(r"^# TYPE (snapvol_[a-z_]+) ", body.decode(), re.M))
    assert declared - documented == set(), declared - documented
    dashboard = json.loads((docs / "grafana-dashboard.json").read_text())
    queried = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            queried |= set(re.findall(r"snapvol_[a-z_]+", target["expr"]))
    queried = {re.sub(r"_(bucket|sum|count)$", "", q) for q in queried}
    assert queried and queried - documented == set(), queried - documented
