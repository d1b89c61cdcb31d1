"""Helpers shared by the snapvold integration tests (see README.md).

The tests run the real daemon (SNAPVOLD_BIN) on 127.0.0.1 with port 0, set accounts, keys and
volumes up through the offline CLI (SNAPVOL_BIN) on the same data dir, and then talk to the
daemon only over HTTP: the AWS CLI v2 and v1, boto3, and hand-made SigV4-signed requests.
"""

from __future__ import annotations

import configparser
import hashlib
import http.client
import json
import math
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
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


# ---------------------------------------------------------------------------------------------
# A data dir with a running daemon, accounts, keys and volumes

@dataclass
class Account:
    alias: str
    account_id: str
    access_key_id: str
    secret_access_key: str
    admin: bool = False

    @property
    def profile(self) -> str:
        return f"snapvol-{self.alias}"


@dataclass
class Volume:
    volume_id: str
    path: Path
    account: Account
    sha256: str = ""
    size: int = 0


@dataclass
class Service:
    root: Path
    daemon: Daemon = field(init=False)
    accounts: dict = field(default_factory=dict)
    volumes: dict = field(default_factory=dict)
    databases: object = None  # pg_helpers.Databases of a service made on PostgreSQL (CATALOG)
    # HOSTS > 1: hosts 2..N (their Daemons; host 1 is `daemon`) and the balancer before them all.
    others: list = field(default_factory=list)
    balancer: object = None
    catalog_url: str = ""  # the PostgreSQL catalog's URL (CATALOG postgresql), for psql

    def __post_init__(self):
        self.root = Path(self.root)
        self.data_dir = self.root / "data"
        self.creds_file = self.root / "credentials"
        self.aws_config_file = self.root / "aws-config"
        self.daemon = Daemon(self.data_dir, self.root / "snapvold.log")

    @property
    def endpoint(self) -> str:
        """Where clients go: the balancer in front of every host when there are several (each
        request to the next host), else the one daemon. `daemon.endpoint` is always host 1."""
        return self.balancer.endpoint if self.balancer is not None else self.daemon.endpoint

    @property
    def daemons(self) -> list[Daemon]:
        """Every host's daemon, host 1 (`daemon`, whose data dir is `data_dir`) first."""
        return [self.daemon, *self.others]

    def volume_files(self) -> set[Path]:
        """The files under every host's volumes/ directory (a restore makes its volume on the
        host that ran it, which in the three-host mode is any of them)."""
        return {p for d in self.daemons if (d.data_dir / "volumes").is_dir()
                for p in (d.data_dir / "volumes").iterdir()}

    def volume_file(self, volume_id: str) -> Path:
        """The image of a volume snapvold made (a restore): under volumes/ of the host the
        catalog says holds it (`snapvol volume list`, HostId)."""
        listed = {v["VolumeId"]: v for v in json.loads(self.cli("volume", "list", "-o", "json").stdout)["Volumes"]}
        assert volume_id in listed, f"{volume_id} is not in the catalog"
        owner = listed[volume_id].get("HostId")
        homes = [d for d in self.daemons if owner and _host_id(d.data_dir) == owner]
        assert len(homes) == 1, f"{volume_id} is on host {owner!r}, not one of this service's hosts"
        return homes[0].data_dir / "volumes" / f"{volume_id}.img"

    @property
    def admin(self) -> Account:
        return self.accounts["admin"]

    # ---- offline CLI on the same data dir ----
    def cli(self, *args, timeout: float = DEFAULT_TIMEOUT, check: bool = True):
        res = subprocess.run([SNAPVOL, "--data-dir", str(self.data_dir), *map(str, args)],
                             capture_output=True, text=True, env=clean_env(), timeout=timeout)
        if check:
            assert res.returncode == 0, describe(res)
        return res

    def catalog_file(self) -> Path:
        """The file in the data dir that says where the catalog is and holds it on SQLite
        (catalog.db) or how to reach it on PostgreSQL (catalog.json): what the trust tests
        expect to be private."""
        return self.data_dir / ("catalog.db" if CATALOG == "sqlite" else "catalog.json")

    def catalog_unlocked(self) -> bool:
        """True when no process is stopped mid-write in the catalog: on SQLite nobody holds its
        write lock (BEGIN IMMEDIATE succeeds at once); on PostgreSQL no session of its database
        sits idle inside a transaction (whose row locks a daemon's write would wait on)."""
        if CATALOG == "postgresql":
            import pg_helpers
            return pg_helpers.psql(self.catalog_url, "SELECT count(*) FROM pg_stat_activity WHERE "
                                   "datname = current_database() AND state LIKE 'idle in transaction%'") == "0"
        import sqlite3
        db = sqlite3.connect(self.data_dir / "catalog.db", timeout=0)
        try:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            db.close()

    def catalog_snapshots(self) -> dict[str, dict]:
        out = json.loads(self.cli("snapshot", "list", "-o", "json").stdout)["Snapshots"]
        return {s["SnapshotId"]: s for s in out}

    # ---- set-up ----
    def load_admin(self):
        path = self.data_dir / "admin-credentials"
        mode = path.stat().st_mode & 0o777
        assert mode == 0o600, f"{path} has mode {oct(mode)}, expected 0o600"
        cp = configparser.ConfigParser()
        cp.read(path)
        assert cp.sections() == ["snapvol-admin"], cp.sections()
        sec = cp["snapvol-admin"]
        admins = [a for a in self.list_accounts() if a["Administrator"]]
        assert len(admins) == 1, admins
        assert admins[0]["Alias"] == "admin", admins
        self.accounts["admin"] = Account("admin", admins[0]["AccountId"], sec["aws_access_key_id"],
                                         sec["aws_secret_access_key"], admin=True)
        self.write_aws_files()

    def list_accounts(self) -> list[dict]:
        return json.loads(self.cli("account", "list", "-o", "json").stdout)["Accounts"]

    def add_account(self, alias: str) -> Account:
        account_id = self.cli("account", "create", "--alias", alias).stdout.strip()
        assert ACCOUNT_ID.match(account_id), account_id
        out = self.cli("key", "create", "--account-id", account_id).stdout
        cp = configparser.ConfigParser()
        cp.read_string(out)
        assert cp.sections() == [f"snapvol-{alias}"], out
        sec = cp[f"snapvol-{alias}"]
        acct = Account(alias, account_id, sec["aws_access_key_id"], sec["aws_secret_access_key"])
        self.accounts[alias] = acct
        self.write_aws_files()
        return acct

    def add_volume(self, alias: str, name: str, *, size: str = "16M", seed: int = 1,
                   holes: bool = True, path: Path | None = None) -> Volume:
        acct = self.accounts[alias]
        if path is None:
            path = self.root / "sources" / f"{name}.img"
            path.parent.mkdir(exist_ok=True)
            genvol_create(path, size, seed, holes=holes)
        vol_id = self.cli("volume", "register", "--path", path, "--account-id", acct.account_id,
                          "--name", name).stdout.strip()
        assert VOL_ID.match(vol_id), vol_id
        vol = Volume(vol_id, Path(path), acct, sha256_file(path), Path(path).stat().st_size)
        self.volumes[name] = vol
        return vol

    def write_aws_files(self):
        creds = configparser.ConfigParser()
        conf = configparser.ConfigParser()
        conf["default"] = {"region": REGION, "output": "json"}
        for a in self.accounts.values():
            creds[a.profile] = {"aws_access_key_id": a.access_key_id,
                                "aws_secret_access_key": a.secret_access_key}
            conf[f"profile {a.profile}"] = {"region": REGION, "output": "json"}
        with open(self.creds_file, "w") as f:
            creds.write(f)
        os.chmod(self.creds_file, 0o600)
        with open(self.aws_config_file, "w") as f:
            conf.write(f)

    # ---- clients ----
    def aws_env(self) -> dict:
        return clean_env({
            "AWS_SHARED_CREDENTIALS_FILE": str(self.creds_file),
            "AWS_CONFIG_FILE": str(self.aws_config_file),
            "AWS_DEFAULT_REGION": REGION,
            "AWS_PAGER": "",
            "AWS_EC2_METADATA_DISABLED": "true",
            # No retries: a 5xx or an unparsable answer must fail the test, not be papered over.
            "AWS_RETRY_MODE": "standard",
            "AWS_MAX_ATTEMPTS": "1",
        })

    def client(self, alias: str = "team-1", *, secret: str | None = None,
               access_key_id: str | None = None, validate: bool = True, retries: int = 1):
        import boto3
        from botocore.config import Config
        acct = self.accounts[alias]
        session = boto3.session.Session(
            aws_access_key_id=access_key_id or acct.access_key_id,
            aws_secret_access_key=secret or acct.secret_access_key,
            region_name=REGION)
        cfg = Config(retries={"max_attempts": retries, "mode": "standard"},
                     parameter_validation=validate, connect_timeout=10, read_timeout=120)
        return session.client("ec2", endpoint_url=self.endpoint, config=cfg)

    def signer(self, alias: str = "team-1") -> "Signer":
        """A Signer with `alias`'s key, for hand-made Query and JSON API requests."""
        acct = self.accounts[alias]
        return Signer(self.endpoint, acct.access_key_id, acct.secret_access_key)


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


# SNAPVOL_DAEMON_CATALOG=postgresql (ctest's daemon_*_pg runs, label pg): the data dir of every
# service setup_service makes is made first by `snapvol init --catalog URL`, on a database of its
# own in the pg fixture's cluster (tests/pg/pg_helpers.py), so the same tests drive snapvold on
# the PostgreSQL catalog. Otherwise snapvold makes the data dir on SQLite, the embedded default.
CATALOG = os.environ.get("SNAPVOL_DAEMON_CATALOG") or "sqlite"
if CATALOG not in ("sqlite", "postgresql"):
    raise RuntimeError(f"SNAPVOL_DAEMON_CATALOG={CATALOG!r}: expected sqlite or postgresql")


def _init_on_postgres(svc: "Service"):
    """Makes svc's data dir on a new database of the test cluster; it is dropped by
    finish_service."""
    import sys
    sys.path.insert(0, str(_REPO / "tests" / "pg"))
    import pg_helpers
    svc.databases = pg_helpers.Databases()
    url = svc.catalog_url = svc.databases.new()
    res = subprocess.run([SNAPVOL, "--data-dir", str(svc.data_dir), "init", "--catalog", url],
                         capture_output=True, text=True, env=clean_env(), timeout=DEFAULT_TIMEOUT)
    assert res.returncode == 0, describe(res)
    assert json.loads((svc.data_dir / "catalog.json").read_text())["type"] == "postgresql"
    assert not (svc.data_dir / "catalog.db").exists()


# SNAPVOL_DAEMON_HOSTS=N (ctest's daemon_*_3hosts runs, with the PostgreSQL catalog): every
# service setup_service makes is N snapvold on one catalog and one store, each with a data dir and
# port of its own, behind a round-robin balancer (multi_host.py) that every client the harness
# hands out goes through. The rule for tests that reach past the API: `svc.daemon`, `data_dir`
# and `cli` are host 1, where the harness registers the volumes (so they are host 1's); what a
# request made ends up on whichever host answered it (`volume_files`, `volume_file`).
HOSTS = int(os.environ.get("SNAPVOL_DAEMON_HOSTS") or "1")
if HOSTS < 1 or (HOSTS > 1 and CATALOG != "postgresql"):
    raise RuntimeError(f"SNAPVOL_DAEMON_HOSTS={HOSTS}: expected 1, or more with "
                       "SNAPVOL_DAEMON_CATALOG=postgresql (hosts share a catalog only there)")


def _host_id(data_dir: Path) -> str:
    try:
        return (Path(data_dir) / "host-id").read_text().strip()
    except FileNotFoundError:
        return ""


def _start_other_hosts(svc: "Service"):
    """Hosts 2..HOSTS of svc: data dirs joined to host 1's (multi_host.join_data_dir) under
    root/host-K, started with host 1's arguments; then the balancer in front of all of them."""
    import multi_host
    for k in range(2, HOSTS + 1):
        d = Daemon(svc.root / f"host-{k}" / "data", svc.root / f"snapvold-host-{k}.log", svc.daemon.extra_args)
        multi_host.join_data_dir(svc.data_dir, d.data_dir)
        svc.others.append(d)
        d.start()
    ids = [_host_id(d.data_dir) for d in svc.daemons]
    assert all(ids) and len(set(ids)) == HOSTS, f"the hosts do not have {HOSTS} distinct host ids: {ids}"
    svc.balancer = multi_host.Balancer(svc.daemons)


def setup_service(root: Path, *, daemon_args: list[str] | None = None, teams: int = 2) -> Service:
    """Starts a daemon on an empty data dir under root (on CATALOG; HOSTS of them, see above)
    and sets up team-1..team-N, each with a key and a 16 MiB volume (`vol-team-N`, zero runs as
    holes plus text and random data)."""
    svc = Service(root)
    svc.daemon.extra_args = list(daemon_args or [])
    try:
        if CATALOG == "postgresql":
            _init_on_postgres(svc)
        svc.daemon.start()
        if HOSTS > 1:
            _start_other_hosts(svc)
        svc.load_admin()
        seeds = {1: 2, 2: 3}  # seeds whose 16 MiB images have zero, text and random runs
        for n in range(1, teams + 1):
            svc.add_account(f"team-{n}")
            svc.add_volume(f"team-{n}", f"vol-team-{n}", size="16M", seed=seeds.get(n, 10 + n))
    except BaseException as e:
        for d in svc.daemons:
            d.kill9()
        if svc.balancer is not None:
            svc.balancer.close()
        raise AssertionError(f"setting the service up failed: {e}\n"
                             + "\n".join(d.log_tail() for d in svc.daemons)) from e
    return svc


# Services started by this session that are still around, for the failure reports.
ACTIVE: list[Service] = []


def make_service(tmp_path_factory, name: str, **kw) -> Service:
    svc = setup_service(tmp_path_factory.mktemp(name), **kw)
    ACTIVE.append(svc)
    return svc


def finish_service(svc: Service):
    """Stops the daemon (SIGTERM, must exit 0) and removes its directory unless SNAPVOL_KEEP_TMP."""
    try:
        teardown_service(svc)
    finally:
        for d in svc.daemons:
            d.kill9()
        if svc.balancer is not None:
            svc.balancer.close()
        if svc.databases is not None:
            svc.databases.drop_all()
        if svc in ACTIVE:
            ACTIVE.remove(svc)
        if not os.environ.get("SNAPVOL_KEEP_TMP"):
            shutil.rmtree(svc.root, ignore_errors=True)


def teardown_service(svc: Service):
    """Stops every host's daemon with SIGTERM and checks each exited 0; with several hosts, also
    that the balancer sent requests to every one of them (else the mode tested one host)."""
    for d in svc.daemons:
        if d.proc is None or not d.running():
            continue
        rc = d.stop(timeout=10)
        assert rc == 0, f"snapvold exited {rc} after SIGTERM\n" + d.log_tail()
        events = [e.get("event") for e in d.log_events()]
        assert "stopped" in events, "no 'stopped' event in the log\n" + d.log_tail()
    if svc.balancer is not None:
        served = svc.balancer.served
        note(f"{svc.root.name}: the balancer sent {sum(served)} requests to the {len(served)} hosts: "
             f"{', '.join(map(str, served))} ({svc.balancer.failed} to a host that was down)")
        assert all(served), f"a host answered no request through the balancer: {served}"
        # Each request to the next host: the counts differ by one at most, plus one for each
        # request sent to a host that was down (it had its turn without answering).
        assert max(served) - min(served) <= 1 + svc.balancer.failed, f"not round robin: {served}"


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


# Re-exported for the tests (the module imports the names defined above).
from signed_clients import AwsCli, Signer, find_aws_v1  # noqa: E402,F401
