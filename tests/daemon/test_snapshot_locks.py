"""Snapshot locks over signed HTTP: LockSnapshot, UnlockSnapshot and DescribeLockedSnapshots as
raw SigV4-signed Query requests (Debian's botocore and AWS CLI v2 predate these actions, so this
needs neither a newer SDK nor the AWS CLI v1). A locked snapshot cannot be deleted; governance
locks lift, compliance locks past their cooling-off period neither lift nor shrink; other teams
see none of it; refused requests change nothing; locks survive a restart."""
from __future__ import annotations

import daemon_helpers as dh
from signed_query import error, field, items, ok


def completed_snapshots(service, n: int) -> list[str]:
    ec2 = service.client("team-1")
    vol = service.volumes["vol-team-1"].volume_id
    sids = [ec2.create_snapshot(VolumeId=vol, Description=f"lock {i}")["SnapshotId"] for i in range(n)]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=sids, WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
    return sids


def locked(service, alias, **params) -> dict[str, str]:
    out = ok(service, alias, "DescribeLockedSnapshots", **params)
    return {field(i, "snapshotId"): field(i, "lockState") for i in items(out, "snapshotSet")}


def snapshot_ids(service, alias="team-1") -> set[str]:
    return {s["SnapshotId"] for s in service.client(alias).describe_snapshots(OwnerIds=["self"])["Snapshots"]}


def test_locks_refuse_deletion_and_follow_their_mode(service):
    gov, comp, free = completed_snapshots(service, 3)

    out = ok(service, "team-1", "LockSnapshot", SnapshotId=gov, LockMode="governance", LockDuration=7)
    assert (field(out, "snapshotId"), field(out, "lockState"), field(out, "lockDuration")) == (gov, "governance", "7")
    out = ok(service, "team-1", "LockSnapshot", SnapshotId=comp, LockMode="compliance",
             ExpirationDate="2099-01-01T00:00:00Z")
    assert field(out, "lockState") == "compliance", ET_text(out)
    assert field(out, "lockExpiresOn").startswith("2099-01-01"), ET_text(out)

    assert locked(service, "team-1") == {gov: "governance", comp: "compliance"}
    assert locked(service, "team-1", **{"Filter.1.Name": "lock-state", "Filter.1.Value.1": "compliance"}) == {comp: "compliance"}
    assert locked(service, "team-1", **{"SnapshotId.1": gov}) == {gov: "governance"}
    # Another team sees no lock and cannot touch one.
    assert locked(service, "team-2") == {}
    assert error(service, "team-2", "UnlockSnapshot", SnapshotId=gov)[0] == "InvalidSnapshot.NotFound"
    assert error(service, "team-2", "LockSnapshot", SnapshotId=free, LockMode="governance",
                 LockDuration=1)[0] == "InvalidSnapshot.NotFound"

    # Locked snapshots are not deleted, through the API or the operator's CLI.
    for sid in (gov, comp):
        code, msg = error(service, "team-1", "DeleteSnapshot", SnapshotId=sid)
        assert code == "IncorrectState" and "locked" in msg, (code, msg)
    refused = service.cli("snapshot", "delete", "--snapshot-id", gov, check=False)
    assert refused.returncode == 1 and "locked (governance)" in refused.stderr, dh.describe(refused)
    assert {gov, comp, free} <= snapshot_ids(service)

    # A compliance lock past its cooling-off period can be neither weakened, shortened nor lifted.
    before = locked(service, "team-1")
    assert error(service, "team-1", "LockSnapshot", SnapshotId=comp, LockMode="governance",
                 LockDuration=1)[0] == "IncorrectState"
    assert error(service, "team-1", "LockSnapshot", SnapshotId=comp, LockMode="compliance",
                 ExpirationDate="2098-01-01T00:00:00Z")[0] == "IncorrectState"
    assert error(service, "team-1", "UnlockSnapshot", SnapshotId=comp)[0] == "IncorrectState"
    # Unlocking a snapshot that is not locked is IncorrectState too (ec2_snapshot_locks.cc).
    code, msg = error(service, "team-1", "UnlockSnapshot", SnapshotId=free)
    assert code == "IncorrectState" and "not locked" in msg, (code, msg)
    # Bad requests are refused by name and change nothing.
    assert error(service, "team-1", "LockSnapshot", SnapshotId=gov, LockMode="governance", LockDuration=7,
                 CoolOffPeriod=2)[0] == "InvalidParameterCombination"
    assert error(service, "team-1", "LockSnapshot", SnapshotId=gov, LockMode="governance")[0] == "MissingParameter"
    assert error(service, "team-1", "LockSnapshot", SnapshotId=gov, LockMode="forever",
                 LockDuration=1)[0] == "InvalidParameterValue"
    assert error(service, "team-1", "DescribeLockedSnapshots",
                 **{"Filter.1.Name": "lock-state", "Filter.1.Value.1": "locked"})[0] == "InvalidParameterValue"
    assert locked(service, "team-1") == before
    out = ok(service, "team-1", "DescribeLockedSnapshots", **{"SnapshotId.1": comp})
    assert field(out, "lockExpiresOn").startswith("2099-01-01"), ET_text(out)

    # A governance lock lifts; then the snapshot may be deleted.
    assert field(ok(service, "team-1", "UnlockSnapshot", SnapshotId=gov), "snapshotId") == gov
    ok(service, "team-1", "DeleteSnapshot", SnapshotId=gov)
    assert gov not in snapshot_ids(service)
    assert locked(service, "team-1") == {comp: "compliance"}

    # The daemon keeps the lock across a restart.
    service.daemon.stop()
    service.daemon.start()
    assert locked(service, "team-1") == {comp: "compliance"}
    code, _ = error(service, "team-1", "DeleteSnapshot", SnapshotId=comp)
    assert code == "IncorrectState"
    assert comp in snapshot_ids(service)


def test_dry_run_locks_nothing(service):
    (sid,) = completed_snapshots(service, 1)
    code, _ = error(service, "team-1", "LockSnapshot", SnapshotId=sid, LockMode="governance", LockDuration=1,
                    DryRun="true")
    assert code == "DryRunOperation"
    assert sid not in locked(service, "team-1")
    ok(service, "team-1", "DeleteSnapshot", SnapshotId=sid)


def ET_text(elem) -> str:
    import xml.etree.ElementTree as ET
    return ET.tostring(elem, encoding="unicode")[:600]

