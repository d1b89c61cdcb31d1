"""The stock AWS CLI against snapvold: the acceptance commands, with the CLI v2 (/usr/bin/aws)
and the CLI v1 (the first other `aws` on PATH; skipped, with a note, when there is none).

Every test runs once per CLI. Only --endpoint-url, --profile and --output json are added to
the documented commands."""

from __future__ import annotations

import json
import os
from datetime import datetime

import pytest

import daemon_helpers as dh
from daemon_helpers import SNAP_ID, UNAUTHORIZED_MESSAGE, VOL_ID, tags_of

_V1 = dh.find_aws_v1()
if _V1 is None:
    dh.note("test_awscli: no AWS CLI v1 on PATH: the v1 cases were skipped")


@pytest.fixture(params=[2, 1], ids=["cli-v2", "cli-v1"], scope="module")
def aws(request):
    if request.param == 2:
        if not os.access(dh.AWS_V2, os.X_OK):
            pytest.fail(f"the AWS CLI v2 is expected at {dh.AWS_V2}")
        return dh.AwsCli(dh.AWS_V2, 2)
    if _V1 is None:
        pytest.skip("no AWS CLI v1 (`aws --version` = aws-cli/1.x) on PATH besides /usr/bin/aws")
    return dh.AwsCli(_V1, 1)


@pytest.fixture(scope="module")
def team1_snapshot(service):
    """A completed team-1 snapshot with tags Name and Owner, made with boto3."""
    ec2 = service.client("team-1")
    vol = service.volumes["vol-team-1"]
    sid = ec2.create_snapshot(
        VolumeId=vol.volume_id, Description="isolation probe",
        TagSpecifications=[{"ResourceType": "snapshot",
                            "Tags": [{"Key": "Name", "Value": "probe"}, {"Key": "Owner", "Value": "team-1"}]}],
    )["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
    return sid


def create_snapshot(aws, service, name: str, volume) -> dict:
    """The acceptance command, verbatim apart from the Name value."""
    return aws.ok(service, "team-1", "ec2", "create-snapshot", "--volume-id", volume.volume_id,
                  "--description", "This is a test", "--tag-specifications",
                  f"ResourceType=snapshot,Tags=[{{Key=Name,Value={name}}},{{Key=Owner,Value=team-1}}]")


def describe_one(aws, service, alias: str, sid: str) -> dict:
    out = aws.ok(service, alias, "ec2", "describe-snapshots", "--snapshot-ids", sid)["Snapshots"]
    assert [s["SnapshotId"] for s in out] == [sid], out
    return out[0]


def test_create_wait_describe_tag_delete(service, aws):
    team1 = service.accounts["team-1"]
    vol = service.volumes["vol-team-1"]
    name = f"awscli-v{aws.major}-lifecycle"

    snap = create_snapshot(aws, service, name, vol)
    sid = snap["SnapshotId"]
    assert SNAP_ID.match(sid), snap
    assert snap["State"] in ("pending", "completed"), snap
    assert snap["VolumeId"] == vol.volume_id
    assert snap["Description"] == "This is a test"
    assert snap["OwnerId"] == team1.account_id
    assert snap["VolumeSize"] == 1, "16 MiB rounds up to 1 GiB"
    assert tags_of(snap) == {"Name": name, "Owner": "team-1"}
    assert isinstance(snap["StartTime"], str) and datetime.fromisoformat(snap["StartTime"].replace("Z", "+00:00"))

    res = aws.run(service, "team-1", "ec2", "wait", "snapshot-completed", "--snapshot-ids", sid)
    assert res.returncode == 0, dh.describe(res)

    found = aws.ok(service, "team-1", "ec2", "describe-snapshots", "--owner-ids", "self",
                   "--filters", "Name=tag:Owner,Values=team-1")["Snapshots"]
    mine = [s for s in found if s["SnapshotId"] == sid]
    assert len(mine) == 1, found
    s = mine[0]
    assert s["State"] == "completed" and s["Progress"] == "100%", s
    assert s["Description"] == "This is a test"
    assert s["OwnerId"] == team1.account_id and s.get("OwnerAlias") == "team-1", s
    assert s["VolumeId"] == vol.volume_id
    assert tags_of(s) == {"Name": name, "Owner": "team-1"}, "tags must survive the snapshot run"
    # How it was cut is no EC2 tag (the CLI sees none), but the catalog says it plainly: the
    # test volumes are files on a file system without reflink.
    assert not any(k.startswith("aws:snapvol:") for k in tags_of(s, cut=True)), s
    cut = dh.cut_tags(service, sid)
    assert cut["aws:snapvol:consistency"].startswith("crash-unsafe (read while running); "), cut
    assert cut["aws:snapvol:changed-blocks"].startswith("full "), cut
    for other in found:
        assert other["OwnerId"] == team1.account_id, other
        assert tags_of(other).get("Owner") == "team-1", other

    # create-tags adds and overwrites; delete-tags removes by key, or by key and matching value.
    aws.ok(service, "team-1", "ec2", "create-tags", "--resources", sid,
           "--tags", "Key=Env,Value=test", "Key=Name,Value=renamed")
    one, by_tag = dh.concurrently(
        lambda: describe_one(aws, service, "team-1", sid),
        lambda: aws.ok(service, "team-1", "ec2", "describe-snapshots", "--owner-ids", "self",
                       "--filters", "Name=tag:Env,Values=test", "Name=tag-key,Values=Owner")["Snapshots"])
    assert tags_of(one) == {"Name": "renamed", "Owner": "team-1", "Env": "test"}
    assert [x["SnapshotId"] for x in by_tag] == [sid], by_tag
    aws.ok(service, "team-1", "ec2", "delete-tags", "--resources", sid, "--tags", "Key=Env",
           "Key=Owner,Value=not-the-value")
    assert tags_of(describe_one(aws, service, "team-1", sid)) == {"Name": "renamed", "Owner": "team-1"}

    aws.ok(service, "team-1", "ec2", "delete-snapshot", "--snapshot-id", sid)
    msg, left = dh.concurrently(
        lambda: aws.error(service, "team-1", "ec2", "describe-snapshots", "--snapshot-ids", sid,
                          code="InvalidSnapshot.NotFound"),
        lambda: aws.ok(service, "team-1", "ec2", "describe-snapshots", "--owner-ids", "self",
                       "--filters", "Name=tag:Owner,Values=team-1")["Snapshots"])
    assert sid in msg
    assert sid not in {x["SnapshotId"] for x in left}
    assert sid not in service.catalog_snapshots()


def test_restore_refused_for_member_done_for_admin(service, aws):
    team1 = service.accounts["team-1"]
    vol = service.add_volume("team-1", f"restore-src-v{aws.major}", size="24M", seed=40 + aws.major)
    sha_at_snapshot = vol.sha256
    sid = create_snapshot(aws, service, f"awscli-v{aws.major}-restore", vol)["SnapshotId"]
    res = aws.run(service, "team-1", "ec2", "wait", "snapshot-completed", "--snapshot-ids", sid)
    assert res.returncode == 0, dh.describe(res)

    # A restore makes its volume on the host that runs it: with several hosts, any of them.
    files_before = service.volume_files()
    vols_before = {v["VolumeId"] for v in aws.ok(service, "team-1", "ec2", "describe-volumes")["Volumes"]}
    assert vol.volume_id in vols_before

    msg = aws.error(service, "team-1", "ec2", "create-volume", "--snapshot-id", sid,
                    "--availability-zone", "us-east-1a", code="UnauthorizedOperation")
    assert msg == UNAUTHORIZED_MESSAGE
    assert service.volume_files() == files_before, "a refused restore must not write anything"
    assert {v["VolumeId"] for v in aws.ok(service, "team-1", "ec2", "describe-volumes")["Volumes"]} == vols_before

    # Change the source after the snapshot: the restore must give the data as it was then.
    dh.genvol_mutate(vol.path, 10, seed=aws.major)
    assert dh.sha256_file(vol.path) != sha_at_snapshot

    out = aws.ok(service, "admin", "ec2", "create-volume", "--snapshot-id", sid,
                 "--availability-zone", "us-east-1a")
    new_id = out["VolumeId"]
    assert VOL_ID.match(new_id), out
    assert new_id not in vols_before
    assert out.get("SnapshotId") == sid, out
    assert out["Size"] == 1 and out["AvailabilityZone"] == "us-east-1a", out
    # Usable at once: the data loads in the background (DescribeVolumeStatus shows how far).
    assert out["State"] == "available", out
    aws.ok(service, "admin", "ec2", "wait", "volume-available", "--volume-ids", new_id)
    status = aws.ok(service, "admin", "ec2", "describe-volume-status", "--volume-ids", new_id)["VolumeStatuses"][0]
    assert status["VolumeStatus"]["Status"] == "ok", status
    dh.wait_loaded(service.client("admin"), new_id)
    path = service.volume_file(new_id)
    assert path.is_file(), f"{path} missing; {sorted(p.name for p in path.parent.iterdir())}"
    assert path.stat().st_size == vol.size
    assert dh.sha256_file(path) == sha_at_snapshot, "restored bytes differ from the volume at snapshot time"

    # The new volume is team-1's: it shows in team-1's DescribeVolumes, not the admin's or team-2's.
    team1_vols, admin_vols, team2_vols = (
        {v["VolumeId"] for v in out["Volumes"]}
        for out in dh.concurrently(*(lambda a=a: aws.ok(service, a, "ec2", "describe-volumes")
                                     for a in ("team-1", "admin", "team-2"))))
    assert team1_vols == vols_before | {new_id}
    assert new_id not in admin_vols
    assert new_id not in team2_vols
    listed = {v["VolumeId"]: v for v in json.loads(service.cli("volume", "list", "-o", "json").stdout)["Volumes"]}
    assert listed[new_id]["OwnerId"] == team1.account_id, listed[new_id]


DRY = "DryRunOperation"


def test_dry_run(service, aws, team1_snapshot):
    vol = service.volumes["vol-team-1"]
    before = service.catalog_snapshots()
    files_before = service.volume_files()

    calls = [
        ("team-1", DRY, ["create-snapshot", "--volume-id", vol.volume_id, "--description", "This is a test"]),
        ("team-1", DRY, ["describe-snapshots", "--owner-ids", "self"]),
        ("team-1", DRY, ["create-tags", "--resources", team1_snapshot, "--tags", "Key=Name,Value=dry"]),
        ("team-1", DRY, ["delete-snapshot", "--snapshot-id", team1_snapshot]),
        # DryRun answers only after the permission check: a member is still refused the restore.
        ("team-1", "UnauthorizedOperation", ["create-volume", "--snapshot-id", team1_snapshot,
                                             "--availability-zone", "us-east-1a"]),
        ("admin", DRY, ["create-volume", "--snapshot-id", team1_snapshot, "--availability-zone", "us-east-1a"]),
    ]
    dh.concurrently(*(lambda a=a, c=c, args=args: aws.error(service, a, "ec2", *args, "--dry-run", code=c)
                      for a, c, args in calls))

    assert service.catalog_snapshots() == before, "a dry run changed the catalog"
    assert service.volume_files() == files_before, "a dry run wrote a volume"


def test_accounts_are_isolated(service, aws, team1_snapshot):
    team1 = service.accounts["team-1"]
    sid = team1_snapshot
    before = service.catalog_snapshots()
    team1_ids = {i for i, s in before.items() if s["OwnerId"] == team1.account_id}
    assert sid in team1_ids

    listings = ([], ["--owner-ids", "self"], ["--owner-ids", team1.account_id],
                ["--filters", "Name=tag:Owner,Values=team-1"])
    seen_all = dh.concurrently(*(lambda args=args: aws.ok(service, "team-2", "ec2", "describe-snapshots", *args)
                                 for args in listings))
    for args, seen in zip(listings, seen_all):
        leaked = [s for s in seen["Snapshots"] if s["SnapshotId"] in team1_ids or s["OwnerId"] == team1.account_id]
        assert not leaked, f"team-2 sees team-1's snapshots with {args}: {leaked}"

    nf = "InvalidSnapshot.NotFound"
    calls = [
        (nf, ["describe-snapshots", "--snapshot-ids", sid]),
        (nf, ["delete-snapshot", "--snapshot-id", sid]),
        (nf, ["create-tags", "--resources", sid, "--tags", "Key=Owner,Value=team-2"]),
        (nf, ["delete-tags", "--resources", sid, "--tags", "Key=Owner"]),
        (nf, ["create-volume", "--snapshot-id", sid, "--availability-zone", "us-east-1a"]),
        ("InvalidVolume.NotFound", ["create-snapshot", "--volume-id", service.volumes["vol-team-1"].volume_id]),
    ]
    dh.concurrently(*(lambda c=c, args=args: aws.error(service, "team-2", "ec2", *args, code=c) for c, args in calls))

    assert service.catalog_snapshots() == before, "team-2's requests changed the catalog"
    s = describe_one(aws, service, "team-1", sid)
    assert s["State"] == "completed" and tags_of(s) == {"Name": "probe", "Owner": "team-1"}, s


def test_admin_reaches_other_accounts(service, aws, team1_snapshot):
    team1 = service.accounts["team-1"]
    by_owner, own, by_id = dh.concurrently(
        lambda: aws.ok(service, "admin", "ec2", "describe-snapshots", "--owner-ids", team1.account_id)["Snapshots"],
        lambda: aws.ok(service, "admin", "ec2", "describe-snapshots", "--owner-ids", "self")["Snapshots"],
        lambda: describe_one(aws, service, "admin", team1_snapshot))
    assert team1_snapshot in {s["SnapshotId"] for s in by_owner}
    assert all(s["OwnerId"] == team1.account_id for s in by_owner), by_owner
    assert team1_snapshot not in {s["SnapshotId"] for s in own}
    assert by_id["OwnerId"] == team1.account_id and by_id.get("OwnerAlias") == "team-1", by_id


def test_snapshot_locks_with_the_cli_v1(service):
    """LockSnapshot, DescribeLockedSnapshots and UnlockSnapshot with the CLI v1 (Debian's v2,
    2.9, predates snapshot locks): a locked snapshot cannot be deleted; governance locks lift,
    compliance locks past their cooling-off period do not; other teams see none of it."""
    if _V1 is None:
        pytest.skip("no AWS CLI v1 on PATH: the lock commands need a CLI newer than Debian's v2 "
                    "(test_snapshot_locks covers the lock API over signed HTTP without it)")
    aws = dh.AwsCli(_V1, 1)
    ec2 = service.client("team-1")
    vol = service.volumes["vol-team-1"].volume_id
    sids = [ec2.create_snapshot(VolumeId=vol, Description=f"lock {i}")["SnapshotId"] for i in range(2)]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=sids, WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
    gov, comp = sids

    out = aws.ok(service, "team-1", "ec2", "lock-snapshot", "--snapshot-id", gov, "--lock-mode", "governance",
                 "--lock-duration", "7")
    assert out["SnapshotId"] == gov and out["LockState"] == "governance" and out["LockDuration"] == 7, out
    out = aws.ok(service, "team-1", "ec2", "lock-snapshot", "--snapshot-id", comp, "--lock-mode", "compliance",
                 "--expiration-date", "2099-01-01T00:00:00Z")
    assert out["LockState"] == "compliance" and out["LockExpiresOn"].startswith("2099-01-01"), out

    locked = aws.ok(service, "team-1", "ec2", "describe-locked-snapshots")["Snapshots"]
    assert {s["SnapshotId"]: s["LockState"] for s in locked} == {gov: "governance", comp: "compliance"}, locked
    only = aws.ok(service, "team-1", "ec2", "describe-locked-snapshots", "--filters",
                  "Name=lock-state,Values=compliance")["Snapshots"]
    assert [s["SnapshotId"] for s in only] == [comp], only
    assert aws.ok(service, "team-2", "ec2", "describe-locked-snapshots").get("Snapshots", []) == []
    aws.error(service, "team-2", "ec2", "unlock-snapshot", "--snapshot-id", gov, code="InvalidSnapshot.NotFound")

    for sid in (gov, comp):
        msg = aws.error(service, "team-1", "ec2", "delete-snapshot", "--snapshot-id", sid, code="IncorrectState")
        assert "locked" in msg, msg
    # The operator's CLI on the same data dir shows the lock and refuses too.
    shown = service.cli("snapshot", "show", "--snapshot-id", comp, "-o", "json")
    assert json.loads(shown.stdout)["Lock"] == "compliance until 2099-01-01T00:00:00.000Z", shown.stdout
    refused = service.cli("snapshot", "delete", "--snapshot-id", gov, check=False)
    assert refused.returncode == 1 and "locked (governance)" in refused.stderr, dh.describe(refused)
    # A compliance lock may only grow, and cannot be lifted.
    aws.error(service, "team-1", "ec2", "lock-snapshot", "--snapshot-id", comp, "--lock-mode", "governance",
              "--lock-duration", "1", code="IncorrectState")
    aws.error(service, "team-1", "ec2", "unlock-snapshot", "--snapshot-id", comp, code="IncorrectState")
    # Bad requests change nothing.
    aws.error(service, "team-1", "ec2", "lock-snapshot", "--snapshot-id", gov, "--lock-mode", "governance",
              "--lock-duration", "7", "--cool-off-period", "2", code="InvalidParameterCombination")
    aws.error(service, "team-1", "ec2", "lock-snapshot", "--snapshot-id", gov, "--lock-mode", "governance",
              code="MissingParameter")
    assert describe_one(aws, service, "team-1", gov)["State"] == "completed"

    out = aws.ok(service, "team-1", "ec2", "unlock-snapshot", "--snapshot-id", gov)
    assert out["SnapshotId"] == gov
    aws.ok(service, "team-1", "ec2", "delete-snapshot", "--snapshot-id", gov)
    locked = aws.ok(service, "team-1", "ec2", "describe-locked-snapshots")["Snapshots"]
    assert [s["SnapshotId"] for s in locked] == [comp], locked
    # The daemon keeps the lock across a restart (of every host, when there are several).
    for d in service.daemons:
        d.stop()
        d.start()
    aws.error(service, "team-1", "ec2", "delete-snapshot", "--snapshot-id", comp, code="IncorrectState")
