"""The services the snapvold integration tests run (see README.md "Modes"): a data dir with a
running daemon (or, in the three-host mode, several behind a balancer), its accounts, keys and
volumes set up through the offline CLI, and the clients that reach it. daemon_helpers re-exports
every name here, so tests keep using `dh.Service`, `dh.make_service`, `dh.CATALOG`…
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from daemon_helpers import (ACCOUNT_ID, DEFAULT_TIMEOUT, REGION, SNAPVOL, VOL_ID, Daemon, _REPO, clean_env,
                            describe, genvol_create, note, sha256_file)

if TYPE_CHECKING:
    from signed_clients import Signer


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
        from signed_clients import Signer
        acct = self.accounts[alias]
        return Signer(self.endpoint, acct.access_key_id, acct.secret_access_key)


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
