"""`snapvol catalog migrate-to`: a data dir made and used by snapvold on SQLite (accounts, keys,
volumes, tagged snapshots, a lock, a lifecycle policy, a restore request) is moved to an empty
PostgreSQL database; every CLI listing is identical afterwards, a restore is byte-identical, and
snapvold started on the migrated data dir serves the AWS CLI v2 and boto3 from PostgreSQL.
Refusals change nothing: while snapvold runs, into a non-empty target, with a wrong password,
to an unreachable server."""

from __future__ import annotations

import json
import re
import stat

import pytest

import daemon_helpers as dh
import pg_helpers as pg
from signed_query import field, ok
from snapvol_helpers import Store, assert_error, describe

ROLE = "arn:aws:iam::123456789012:role/AWSDataLifecycleManagerDefaultRole"
PER_TEAM1 = 12  # snapshots of team-1: three pages of 5 (EC2's smallest MaxResults)

# The listings compared before and after (CLI -o json); snapshot show and policy show are added
# for the locked snapshot and the lifecycle policy.
LISTINGS = [("account", "list"), ("key", "list"), ("volume", "list"), ("snapshot", "list"),
            ("instance", "list"), ("policy", "list"), ("restore-request", "list"),
            ("account", "show-quota")]


def listings(svc, extra) -> dict:
    out = {}
    for args in [*LISTINGS, *extra]:
        out[" ".join(args)] = json.loads(svc.cli(*args, "-o", "json").stdout)
    return out


def sqlite_untouched(data_dir) -> bool:
    return (data_dir / "catalog.db").exists() and not (data_dir / "catalog.json").exists()


@pytest.fixture(scope="module")
def migrated(tmp_path_factory, module_databases):
    svc = dh.make_service(tmp_path_factory, "svc")
    try:
        ec2 = svc.client("team-1")
        vol = svc.volumes["vol-team-1"]
        sids = []
        for i in range(PER_TEAM1):
            sids.append(ec2.create_snapshot(
                VolumeId=vol.volume_id, Description=f"before the move {i}",
                TagSpecifications=[{"ResourceType": "snapshot", "Tags": [
                    {"Key": "Name", "Value": f"s{i}"}, {"Key": "Owner", "Value": "team-1"},
                    {"Key": "Parity", "Value": "even" if i % 2 == 0 else "odd"}]}])["SnapshotId"])
        other = svc.client("team-2").create_snapshot(
            VolumeId=svc.volumes["vol-team-2"].volume_id,
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "Owner", "Value": "team-2"}]}])["SnapshotId"]
        ec2.get_waiter("snapshot_completed").wait(SnapshotIds=sids, WaiterConfig={"Delay": 0.1, "MaxAttempts": 600})
        svc.client("team-2").get_waiter("snapshot_completed").wait(
            SnapshotIds=[other], WaiterConfig={"Delay": 0.1, "MaxAttempts": 600})
        ok(svc, "team-1", "LockSnapshot", SnapshotId=sids[0], LockMode="governance", LockDuration=7)
        policy_id = dh.dlm_client(svc, "team-1").create_lifecycle_policy(
            ExecutionRoleArn=ROLE, Description="nightly", State="ENABLED",
            PolicyDetails={"ResourceTypes": ["VOLUME"], "TargetTags": [{"Key": "Name", "Value": "nothing"}],
                           "Schedules": [{"Name": "daily", "CopyTags": True,
                                          "CreateRule": {"Interval": 24, "IntervalUnit": "HOURS", "Times": ["03:00"]},
                                          "RetainRule": {"Count": 3}}]})["PolicyId"]
        rr = field(ok(svc, "team-1", "CreateRestoreRequest", SnapshotId=sids[1], Reason="lost /etc"), "restoreRequestId")
        assert rr, "no restore request id"

        url = module_databases.new()
        # Refused while snapvold holds the data dir: nothing changes anywhere.
        res = svc.cli("catalog", "migrate-to", url, check=False)
        assert_error(res, "in use .*snapvold")
        assert sqlite_untouched(svc.data_dir) and pg.tables_in(url) == 0

        assert svc.daemon.stop() == 0
        extra = [("snapshot", "show", "--snapshot-id", sids[0]), ("policy", "show", policy_id)]
        before = listings(svc, extra)
        assert rr in json.dumps(before["restore-request list"]), before["restore-request list"]
        assert sids[0] in json.dumps(before[" ".join(extra[0])]), "the lock's snapshot"

        dry = svc.cli("catalog", "migrate-to", "--dry-run", url)
        assert "dry run" in dry.stdout and "nothing was changed" in dry.stdout, describe(dry)
        assert re.search(r"counted snapshots: 13 rows", dry.stderr), describe(dry)
        assert sqlite_untouched(svc.data_dir) and pg.tables_in(url) == 0, "a dry run must change nothing"

        res = svc.cli("catalog", "migrate-to", url)
        yield {"svc": svc, "url": url, "sids": sids, "other": other, "before": before, "extra": extra,
               "res": res, "policy": policy_id}
    finally:
        dh.finish_service(svc)


def test_migrate_reports_and_switches(migrated):
    svc, url, res = migrated["svc"], migrated["url"], migrated["res"]
    assert "catalog migrated to" in res.stdout and "rows/s" in res.stdout, describe(res)
    assert pg.password_of(url) not in res.stdout + res.stderr
    kept = [p for p in svc.data_dir.glob("catalog.db.migrated-*") if not p.name.endswith(("-wal", "-shm"))]
    assert len(kept) == 1 and str(kept[0]) in res.stdout, describe(res)
    assert not (svc.data_dir / "catalog.db").exists()
    cfg = svc.data_dir / "catalog.json"
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    assert json.loads(cfg.read_text())["url"] == url
    # Progress per table on stderr, and the rows really in PostgreSQL.
    assert re.search(r"^copied snapshots: 13 rows \(\d+/\d+ tables\)$", res.stderr, re.M), describe(res)
    assert re.search(r"^copied snapshot_locks: 1 rows", res.stderr, re.M), describe(res)
    assert pg.count(url, "snapshots") == PER_TEAM1 + 1 and pg.count(url, "snapshot_locks") == 1
    assert pg.count(url, "restore_requests") == 1
    assert pg.count(url, "accounts") == len(migrated["before"]["account list"]["Accounts"])
    assert pg.psql(url, f"SELECT description FROM lifecycle_policies WHERE policy_id = '{migrated['policy']}'") == "nightly"


def test_listings_identical_and_restore_byte_identical(migrated, tmp_path):
    svc = migrated["svc"]
    after = listings(svc, migrated["extra"])
    for k, v in migrated["before"].items():
        assert after[k] == v, f"`snapvol {k} -o json` differs after the move"
    vol = svc.volumes["vol-team-1"]
    out = tmp_path / "restored.img"
    svc.cli("restore", "--snapshot-id", migrated["sids"][-1], "--to", out)
    assert dh.sha256_file(out) == vol.sha256


def test_refusals_change_nothing(migrated, tmp_path, module_databases):
    url = migrated["url"]
    counts = {t: pg.count(url, t) for t in ("accounts", "snapshots", "volumes")}
    # A fresh SQLite data dir with something in it.
    other = Store(tmp_path / "other")
    other.init()
    other.ok("account", "create", "--alias", "zeta")

    res = other.run("catalog", "migrate-to", url)
    assert_error(res, "not empty")
    assert sqlite_untouched(other.dir) and {t: pg.count(url, t) for t in counts} == counts

    fresh = module_databases.new()
    wrong = pg.with_password(fresh, "wrong-pw-71ab")
    res = other.run("catalog", "migrate-to", wrong)
    assert_error(res, "authentication failed|refused")
    assert "wrong-pw-71ab" not in res.stderr and sqlite_untouched(other.dir) and pg.tables_in(fresh) == 0

    closed = fresh.replace(f":{pg.urlsplit(fresh).port}/", ":1/")
    res = other.run("catalog", "migrate-to", closed)
    msg = assert_error(res, "port 1")
    assert pg.password_of(fresh) not in msg and sqlite_untouched(other.dir)

    # Already on PostgreSQL: refused by name.
    res = migrated["svc"].cli("catalog", "migrate-to", fresh, check=False)
    assert_error(res, "already PostgreSQL")


def test_snapvold_serves_the_migrated_catalog(migrated):
    svc = migrated["svc"]
    svc.daemon.start()
    cli_team1 = sorted(s["SnapshotId"] for s in svc.catalog_snapshots().values()
                       if {"Key": "Owner", "Value": "team-1"} in s["Tags"])
    assert len(cli_team1) == PER_TEAM1
    aws = dh.AwsCli(dh.AWS_V2, 2)
    # The CLI pages with MaxResults 5 (--page-size) and follows NextToken itself.
    out = aws.ok(svc, "team-1", "ec2", "describe-snapshots", "--owner-ids", "self", "--page-size", "5",
                 "--filters", "Name=tag:Owner,Values=team-1")["Snapshots"]
    assert sorted(s["SnapshotId"] for s in out) == cli_team1
    odd = aws.ok(svc, "team-1", "ec2", "describe-snapshots", "--owner-ids", "self",
                 "--filters", "Name=tag:Parity,Values=odd")["Snapshots"]
    assert sorted(s["SnapshotId"] for s in odd) == sorted(migrated["sids"][1::2])

    ec2 = svc.client("team-1")
    pages = list(ec2.get_paginator("describe_snapshots").paginate(
        OwnerIds=["self"], Filters=[{"Name": "tag:Owner", "Values": ["team-1"]}], PaginationConfig={"PageSize": 5}))
    assert len(pages) >= 3, "12 snapshots in pages of 5"
    assert sorted(s["SnapshotId"] for p in pages for s in p["Snapshots"]) == cli_team1
    assert all(s["Description"].startswith("before the move") for p in pages for s in p["Snapshots"])

    made = aws.ok(svc, "team-1", "ec2", "create-snapshot", "--volume-id", svc.volumes["vol-team-1"].volume_id,
                  "--description", "after the move", "--tag-specifications",
                  "ResourceType=snapshot,Tags=[{Key=Owner,Value=team-1}]")
    sid = made["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.1, "MaxAttempts": 600})
    assert pg.psql(migrated["url"], f"SELECT state FROM snapshots WHERE snapshot_id = '{sid}'") == "completed"
    assert svc.catalog_snapshots()[sid]["Description"] == "after the move"
    assert not (svc.data_dir / "catalog.db").exists(), "snapvold must not have made a SQLite catalog"
