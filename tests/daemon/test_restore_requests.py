"""Restore requests: a member asks for a restore of its snapshot, an administrator approves
(which restores it into a new volume of the member's account, or rolls one of its registered
volumes back in place when the request asks for that) or rejects it. Driven with raw
SigV4-signed Query requests (the actions are snapvol's own, so the SDKs have no model)."""
from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET

import pytest

import daemon_helpers as dh
from signed_query import NS, call, error, field, ok

@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "svc")
        yield svc
    finally:
        if svc is not None:
            dh.finish_service(svc)


@pytest.fixture(scope="module")
def snapshot(service):
    vol = service.volumes["vol-team-1"]
    ec2 = service.client("team-1")
    sid = ec2.create_snapshot(VolumeId=vol.volume_id)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
    return sid, vol


def test_member_requests_admin_approves_and_volume_is_restored(service, snapshot):
    sid, vol = snapshot
    made = ok(service, "team-1", "CreateRestoreRequest", SnapshotId=sid, Reason="lost /etc after an upgrade")
    rr = field(made, "restoreRequestId")
    assert rr and re.fullmatch(r"rr-[0-9a-f]{17}", rr), ET.tostring(made)
    assert field(made, "state") == "pending"
    # The member cannot approve its own request.
    code, _ = error(service, "team-1", "ApproveRestoreRequest", RestoreRequestId=rr)
    assert code == "UnauthorizedOperation"
    # Another team does not see it.
    code, _ = error(service, "team-2", "DescribeRestoreRequests", **{"RestoreRequestId.1": rr})
    assert code == "InvalidRestoreRequest.NotFound"
    listed = ok(service, "admin", "DescribeRestoreRequests", State="pending")
    assert rr in [e.text for e in listed.iter(f"{NS}restoreRequestId")]

    approved = ok(service, "admin", "ApproveRestoreRequest", RestoreRequestId=rr, Reason="ok")
    assert field(approved, "state") == "approved"
    new_vol = field(approved, "volumeId")
    assert new_vol and new_vol.startswith("vol-")
    # The new volume is the member's and holds the snapshot's bytes once available.
    team1 = service.client("team-1")
    dh.wait_loaded(team1, new_vol)
    path = service.data_dir / "volumes" / f"{new_vol}.img"
    assert dh.sha256_file(path) == vol.sha256
    # Decided once: a second approval or a rejection is refused and restores nothing more.
    code, _ = error(service, "admin", "ApproveRestoreRequest", RestoreRequestId=rr)
    assert code == "IncorrectState"
    code, _ = error(service, "admin", "RejectRestoreRequest", RestoreRequestId=rr)
    assert code == "IncorrectState"
    mine = ok(service, "team-1", "DescribeRestoreRequests", **{"RestoreRequestId.1": rr})
    assert field(mine, "state") == "approved" and field(mine, "volumeId") == new_vol


def test_admin_rejects_with_a_reason(service, snapshot):
    sid, _ = snapshot
    rr = field(ok(service, "team-1", "CreateRestoreRequest", SnapshotId=sid), "restoreRequestId")
    before = {v["VolumeId"] for v in service.client("team-1").describe_volumes()["Volumes"]}
    rejected = ok(service, "admin", "RejectRestoreRequest", RestoreRequestId=rr, Reason="use last night's")
    assert field(rejected, "state") == "rejected"
    assert field(rejected, "decisionReason") == "use last night's"
    assert field(rejected, "volumeId") is None
    after = {v["VolumeId"] for v in service.client("team-1").describe_volumes()["Volumes"]}
    assert after == before


def test_bad_requests(service, snapshot):
    sid, _ = snapshot
    assert error(service, "team-1", "CreateRestoreRequest")[0] == "MissingParameter"
    assert error(service, "team-1", "CreateRestoreRequest", SnapshotId="snap-0123456789abcdef0")[0] == \
        "InvalidSnapshot.NotFound"
    # Team-2 cannot ask for team-1's snapshot.
    assert error(service, "team-2", "CreateRestoreRequest", SnapshotId=sid)[0] == "InvalidSnapshot.NotFound"
    assert error(service, "team-1", "CreateRestoreRequest", SnapshotId=sid, Reason="x" * 1025)[0] == \
        "InvalidParameterValue"
    assert error(service, "admin", "ApproveRestoreRequest", RestoreRequestId="rr-0123456789abcdef0")[0] == \
        "InvalidRestoreRequest.NotFound"
    assert error(service, "team-1", "CreateRestoreRequest", SnapshotId=sid, DryRun="true")[0] == "DryRunOperation"
    # The audit log has the decisions.
    out = service.cli("audit", "list", "--limit", "1000", "-o", "json")
    events = __import__("json").loads(out.stdout)["AuditEvents"]
    actions = {e.get("action") for e in events}
    assert {"CreateRestoreRequest", "ApproveRestoreRequest", "RejectRestoreRequest"} <= actions


def test_cli_files_and_admin_approves_through_the_api(service, snapshot):
    """`snapvol restore-request create|approve` are signed clients of the daemon."""
    import subprocess
    sid, vol = snapshot
    env = dh.clean_env({"AWS_SHARED_CREDENTIALS_FILE": str(service.creds_file)})

    def snapvol(*args):
        return subprocess.run([dh.SNAPVOL, "restore-request", *args, "--endpoint", service.endpoint],
                              capture_output=True, text=True, env=env, timeout=60)

    made = snapvol("create", "--snapshot-id", sid, "--reason", "need yesterday's data", "--profile", "snapvol-team-1")
    assert made.returncode == 0, made.stderr
    rr = made.stdout.strip()
    assert re.fullmatch(r"rr-[0-9a-f]{17}", rr), made.stdout
    denied = snapvol("approve", "--restore-request-id", rr, "--profile", "snapvol-team-1")
    assert denied.returncode == 1 and "UnauthorizedOperation" in denied.stderr, denied.stderr
    approved = snapvol("approve", "--restore-request-id", rr, "--profile", "snapvol-admin")
    assert approved.returncode == 0, approved.stderr
    listed = __import__("json").loads(service.cli("restore-request", "list", "-o", "json").stdout)
    mine = [r for r in listed["RestoreRequests"] if r["RestoreRequestId"] == rr]
    assert mine and mine[0]["State"] == "approved" and mine[0]["VolumeId"].startswith("vol-")
    dh.wait_loaded(service.client("team-1"), mine[0]["VolumeId"])
    assert dh.sha256_file(service.data_dir / "volumes" / f"{mine[0]['VolumeId']}.img") == vol.sha256
    unreachable = subprocess.run([dh.SNAPVOL, "restore-request", "create", "--snapshot-id", sid,
                                  "--endpoint", "http://127.0.0.1:1", "--profile", "snapvol-team-1"],
                                 capture_output=True, text=True, env=env, timeout=60)
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr
    # In place: the CLI files RestoreType in-place with the volume, and the listing says so.
    inplace = snapvol("create", "--snapshot-id", sid, "--in-place", vol.volume_id, "--profile", "snapvol-team-1")
    assert inplace.returncode == 0 and f"roll {vol.volume_id} back in place" in inplace.stderr, inplace.stderr
    rr2 = inplace.stdout.strip()
    listed = __import__("json").loads(service.cli("restore-request", "list", "-o", "json").stdout)
    mine = [r for r in listed["RestoreRequests"] if r["RestoreRequestId"] == rr2]
    assert mine and mine[0]["RestoreType"] == "in-place" and mine[0]["VolumeId"] == vol.volume_id, mine
    assert snapvol("reject", "--restore-request-id", rr2, "--reason", "not now", "--profile", "snapvol-admin").returncode == 0


def test_in_place_request_rolls_the_teams_volume_back_once_approved(service):
    """A member asks for an in-place rollback of its server's disk (issue #18 item 3): approval
    starts exactly that as a rollback task, refused (the request stays pending) while the
    instance runs; the member follows the task's state and progress on its own request."""
    team = service.accounts["team-1"]
    inst = service.cli("instance", "create", "--account-id", team.account_id, "--name", "web9").stdout.strip()
    path = service.root / "sources" / "web9-root.img"
    path.parent.mkdir(exist_ok=True)
    dh.genvol_create(path, "64M", 31)
    vol = service.cli("volume", "register", "--path", path, "--account-id", team.account_id, "--name", "web9-root",
                      "--instance-id", inst, "--device", "/dev/xvda", "--boot").stdout.strip()
    before = dh.sha256_file(path)
    ec2 = service.client("team-1")
    sid = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
    with open(path, "r+b") as f:  # the bad upgrade
        f.seek(8 << 20)
        f.write(os.urandom(2 << 20))
    assert dh.sha256_file(path) != before

    # Asked wrongly: refused by name, nothing filed.
    assert error(service, "team-1", "CreateRestoreRequest", SnapshotId=sid, RestoreType="in-place")[0] == \
        "MissingParameter"
    assert error(service, "team-1", "CreateRestoreRequest", SnapshotId=sid, VolumeId=vol)[0] == \
        "InvalidParameterCombination"
    assert error(service, "team-1", "CreateRestoreRequest", SnapshotId=sid, RestoreType="sideways",
                 VolumeId=vol)[0] == "InvalidParameterValue"
    other = service.volumes["vol-team-2"].volume_id
    assert error(service, "team-1", "CreateRestoreRequest", SnapshotId=sid, RestoreType="in-place",
                 VolumeId=other)[0] == "InvalidVolume.NotFound"

    made = ok(service, "team-1", "CreateRestoreRequest", SnapshotId=sid, RestoreType="in-place", VolumeId=vol,
              Reason="the upgrade broke boot")
    rr = field(made, "restoreRequestId")
    assert field(made, "restoreType") == "in-place" and field(made, "volumeId") == vol, ET.tostring(made)
    assert field(made, "state") == "pending"
    # The instance runs: approval is refused and the request stays pending, the disk untouched.
    code, msg = error(service, "admin", "ApproveRestoreRequest", RestoreRequestId=rr)
    assert code == "IncorrectState" and "stays pending" in msg, (code, msg)
    listed = ok(service, "team-1", "DescribeRestoreRequests", **{"RestoreRequestId.1": rr})
    assert field(listed, "state") == "pending" and field(listed, "replaceRootVolumeTaskId") is None

    service.cli("instance", "stop", inst)
    approved = ok(service, "admin", "ApproveRestoreRequest", RestoreRequestId=rr, Reason="go")
    task = field(approved, "replaceRootVolumeTaskId")
    assert field(approved, "state") == "approved" and task and task.startswith("replacevol-"), ET.tostring(approved)

    def finished():
        d = ok(service, "team-1", "DescribeRestoreRequests", **{"RestoreRequestId.1": rr})
        return d if field(d, "taskState") in ("succeeded", "failed") else None
    done = dh.wait_until(finished, 120, 0.2, f"the rollback task of {rr}")
    assert field(done, "taskState") == "succeeded", ET.tostring(done)
    assert field(done, "taskProgress") == "100%"
    assert (field(done, "safetySnapshotId") or "").startswith("snap-"), ET.tostring(done)
    assert dh.sha256_file(path) == before
    # The JSON API (the console's) says the same.
    status, body = service.signer("team-1").json("GET", "/api/v1/restore-requests")
    assert status == 200, body
    mine = [r for r in body["restoreRequests"] if r["restoreRequestId"] == rr]
    assert mine and mine[0]["restoreType"] == "in-place" and mine[0]["taskState"] == "succeeded", mine
    service.cli("instance", "start", inst)


def test_a_restore_that_cannot_start_leaves_its_volume_in_error_with_the_reason(service):
    """The approved request names its new volume: when the restore cannot start (here its image
    cannot be made: the volumes directory is a file for the moment), that volume is recorded
    `error`, so the id the request shows never points at nothing."""
    vol = service.volumes["vol-team-2"]
    ec2 = service.client("team-2")
    sid = ec2.create_snapshot(VolumeId=vol.volume_id)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
    rr = field(ok(service, "team-2", "CreateRestoreRequest", SnapshotId=sid, Reason="gone"), "restoreRequestId")
    volumes = service.data_dir / "volumes"
    aside = service.data_dir / "volumes.aside"
    volumes.rename(aside)
    volumes.write_text("not a directory\n")
    try:
        status, body = call(service, "admin", "ApproveRestoreRequest", RestoreRequestId=rr)
    finally:
        volumes.unlink()
        aside.rename(volumes)
    # A file that cannot be made is the service's failure, not the caller's.
    assert status == 500 and dh.parse_ec2_error(body)[0] == "InternalError", (status, body)
    decided = ok(service, "team-2", "DescribeRestoreRequests", **{"RestoreRequestId.1": rr})
    new_vol = field(decided, "volumeId")
    assert new_vol and new_vol.startswith("vol-"), ET.tostring(decided)
    [v] = ec2.describe_volumes(VolumeIds=[new_vol])["Volumes"]
    assert v["State"] == "error", v
