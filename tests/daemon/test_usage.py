"""Usage accounting through the daemon: each snapshot's full size and unique bytes in the JSON
API, and each account's exclusive and shared bytes (GET /api/v1/usage, `snapvol account usage`),
as snapshots are taken and deleted. The exact rules are pinned by the C++ unit test
(src/engine/usage_accounting_test.cc); this drives the same numbers through the real service."""
from __future__ import annotations

import json
import time

import daemon_helpers as dh

WAIT_S = 30


def take(ec2, volume_id: str) -> str:
    sid = ec2.create_snapshot(VolumeId=volume_id)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.1, "MaxAttempts": 600})
    return sid


def usage_of(signer, sid: str) -> dict:
    """The snapshot's details once usage has counted it (it does so within seconds)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        status, body = signer.json("GET", f"/api/v1/snapshots/{sid}")
        assert status == 200, body
        snap = body["snapshot"]
        if snap["usageStatus"] != "pending" or time.monotonic() > deadline:
            assert snap["usageStatus"] == "counted", snap
            return snap
        time.sleep(0.1)


def settled_usage(signer, query: str = "") -> dict:
    """GET /api/v1/usage once no change is left to count."""
    deadline = time.monotonic() + WAIT_S
    while True:
        status, body = signer.json("GET", "/api/v1/usage", query=query)
        assert status == 200, body
        if body["pendingChanges"] == 0 or time.monotonic() > deadline:
            assert body["pendingChanges"] == 0, body
            return body


def test_unique_and_account_bytes_follow_snapshots_taken_and_deleted(service):
    team1, team2, admin = service.signer("team-1"), service.signer("team-2"), service.signer("admin")
    ec2 = service.client("team-1")
    vol = service.volumes["vol-team-1"]
    size = vol.path.stat().st_size

    s1 = take(ec2, vol.volume_id)
    u1 = usage_of(team1, s1)
    assert 0 < u1["fullSnapshotSizeBytes"] <= size and u1["uniqueBytes"] > 0, u1
    # The same data again: the twin holds nothing alone, and neither does the first any more.
    s2 = take(ec2, vol.volume_id)
    assert usage_of(team1, s2)["uniqueBytes"] == 0
    assert usage_of(team1, s1)["uniqueBytes"] == 0
    assert usage_of(team1, s2)["fullSnapshotSizeBytes"] == u1["fullSnapshotSizeBytes"]
    # A changed volume: its new snapshot holds the changed blocks alone.
    dh.genvol_mutate(vol.path, 5, seed=7)
    s3 = take(ec2, vol.volume_id)
    assert usage_of(team1, s3)["uniqueBytes"] > 0

    mine = settled_usage(team1)
    assert [a["accountId"] for a in mine["accounts"]] == [service.accounts["team-1"].account_id]
    acct = mine["accounts"][0]
    assert acct["snapshots"] == 3 and acct["sharedBytes"] == 0
    assert acct["exclusiveBytes"] >= u1["uniqueBytes"] + usage_of(team1, s3)["uniqueBytes"], (acct, u1)
    assert "storedBytes" not in mine  # the store's total is for administrators
    # A member sees only its own account; an administrator every account and the total.
    status, body = team1.json("GET", "/api/v1/usage", query=f"account={service.accounts['team-2'].account_id}")
    assert status == 403 and body["error"]["code"] == "UnauthorizedOperation", body
    status, body = team1.json("GET", "/api/v1/usage", query="account=12")
    assert status == 400 and body["error"]["code"] == "InvalidParameterValue", body
    everyone = settled_usage(admin)
    by_id = {a["accountId"]: a for a in everyone["accounts"]}
    assert by_id[service.accounts["team-1"].account_id] == acct
    assert by_id[service.accounts["team-2"].account_id]["snapshots"] == 0
    assert everyone["storedBytes"] == sum(a["exclusiveBytes"] for a in everyone["accounts"])
    # Another team cannot read the numbers of team-1's snapshot either.
    status, body = team2.json("GET", f"/api/v1/snapshots/{s1}")
    assert status == 400 and body["error"]["code"] == "InvalidSnapshot.NotFound", body

    # Deleting the first: the second now holds alone what the third changed.
    ec2.delete_snapshot(SnapshotId=s1)
    after = settled_usage(team1)["accounts"][0]
    assert after["snapshots"] == 2 and after["exclusiveBytes"] == acct["exclusiveBytes"]
    assert usage_of(team1, s2)["uniqueBytes"] > 0
    # The operator's view on the same data dir says the same.
    cli = json.loads(service.cli("account", "usage", "--account-id", service.accounts["team-1"].account_id,
                                 "-o", "json").stdout)
    assert cli["Accounts"][0]["ExclusiveBytes"] == after["exclusiveBytes"], cli
    assert cli["Accounts"][0]["Snapshots"] == 2
    # Deleting the rest: nothing is held any more, and a rebuild from the store agrees.
    ec2.delete_snapshot(SnapshotId=s2)
    ec2.delete_snapshot(SnapshotId=s3)
    gone = settled_usage(team1)["accounts"][0]
    assert gone["snapshots"] == 0 and gone["exclusiveBytes"] == 0, gone
    rebuilt = json.loads(service.cli("account", "usage", "--rebuild", "-o", "json").stdout)
    assert rebuilt["StoredBytes"] == 0, rebuilt
