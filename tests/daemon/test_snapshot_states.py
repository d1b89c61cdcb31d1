"""Only a completed snapshot may be copied, restored, requested for restore, shared or locked,
and a pending one may not be deleted: each such request for a `pending` and for an `error`
snapshot is answered IncorrectState (EC2's code for a resource in the wrong state) and changes
nothing (no snapshot, volume, volume file, restore request, grant or lock appears). Also
detaching a volume that is not attached (IncorrectState) and attaching one in use (VolumeInUse). A volume file that cannot be created leaves no volume row behind.

The pending snapshot is real: the offline CLI takes it on the same data dir and is stopped
(SIGSTOP) as soon as its lease appears in the store, the sign that its catalog row exists and
the run has begun; it is continued at the end and must complete. The failed one is a daemon
snapshot of a registered volume whose file was removed."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

import daemon_helpers as dh
from signed_query import call, error, items, ok


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "states")
        out = svc.cli("instance", "create", "--account-id", svc.accounts["team-1"].account_id, "--name", "host")
        svc.instance_id = out.stdout.strip()
        yield svc
    finally:
        if svc is not None:
            dh.finish_service(svc)


@pytest.fixture(scope="module")
def pending(service):
    """(snapshot id, stopped CLI process) of a snapshot held `pending`."""
    big = service.add_volume("team-1", "big", size="128M", seed=4)
    leases = service.data_dir / "store" / "leases"
    proc = subprocess.Popen([dh.SNAPVOL, "--data-dir", str(service.data_dir), "snapshot", "create",
                             "--volume-id", big.volume_id, "--full"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dh.clean_env())
    try:
        while proc.poll() is None and not (leases.is_dir() and any(leases.iterdir())):
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGSTOP)
        # Stopped mid-update of its progress, it would hold the catalog (every daemon write would
        # wait on it): let it finish the statement.
        for _ in range(100):
            if service.catalog_unlocked():
                break
            os.kill(proc.pid, signal.SIGCONT)
            os.kill(proc.pid, signal.SIGSTOP)
        assert service.catalog_unlocked(), "the stopped CLI holds the catalog's write lock"
        sid = next((s["SnapshotId"] for s in service.client("team-1").describe_snapshots(
            Filters=[{"Name": "volume-id", "Values": [big.volume_id]}])["Snapshots"]), None)
        assert sid, f"no snapshot row while the CLI runs (exit {proc.poll()})"
        state = service.client("team-1").describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["State"]
        assert state == "pending", f"{sid} is {state}: the CLI finished before its lease was seen"
        yield sid, proc, big
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"the continued snapshot failed: {err}"
    ec2 = service.client("team-1")
    assert ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["State"] == "completed"


@pytest.fixture(scope="module")
def failed(service):
    gone = service.add_volume("team-1", "gone", size="1M", seed=5)
    gone.path.unlink()
    ec2 = service.client("team-1")
    sid = ec2.create_snapshot(VolumeId=gone.volume_id)["SnapshotId"]

    def ended():
        s = ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]
        return s if s["State"] != "pending" else None
    s = dh.wait_until(ended, 60, 0.1, f"{sid} to fail")
    assert s["State"] == "error", s
    return sid


def world(service) -> dict:
    """Everything a refused request must leave as it was."""
    admin = service.client("admin")
    return {
        "snapshots": sorted((s["SnapshotId"], s["State"]) for s in admin.describe_snapshots()["Snapshots"]),
        "volumes": sorted(v["VolumeId"] for v in admin.describe_volumes()["Volumes"]),
        "files": sorted(map(str, service.volume_files())),
        "requests": [x.findtext("./*") for x in items(ok(service, "admin", "DescribeRestoreRequests"),
                                                      "restoreRequestSet")],
        "locked": len(items(ok(service, "team-1", "DescribeLockedSnapshots"), "snapshotSet")),
    }


REFUSALS = [
    ("CopySnapshot", "team-1", lambda sid: {"SourceSnapshotId": sid, "SourceRegion": dh.REGION}),
    ("CreateVolume", "admin", lambda sid: {"SnapshotId": sid, "AvailabilityZone": "us-east-1a"}),
    ("CreateRestoreRequest", "team-1", lambda sid: {"SnapshotId": sid, "Reason": "need it"}),
    ("ModifySnapshotAttribute", "team-1", lambda sid: {"SnapshotId": sid, "Attribute": "createVolumePermission",
                                                       "OperationType": "add", "UserId.1": "999999999999"}),
    ("LockSnapshot", "team-1", lambda sid: {"SnapshotId": sid, "LockMode": "governance", "LockDuration": "1"}),
]


@pytest.mark.parametrize("action,alias,params", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_pending_snapshot_is_refused(service, pending, action, alias, params):
    sid, _, _ = pending
    before = world(service)
    code, msg = error(service, alias, action, **params(sid))
    assert code == "IncorrectState", (code, msg)
    assert sid in msg, msg
    assert world(service) == before


@pytest.mark.parametrize("action,alias,params", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_failed_snapshot_is_refused(service, failed, action, alias, params):
    before = world(service)
    code, msg = error(service, alias, action, **params(failed))
    assert code == "IncorrectState", (code, msg)
    assert failed in msg, msg
    assert world(service) == before


def test_a_pending_snapshot_is_not_deleted(service, pending):
    sid, _, _ = pending
    before = world(service)
    code, msg = error(service, "team-1", "DeleteSnapshot", SnapshotId=sid)
    assert code == "IncorrectState" and "pending" in msg, (code, msg)
    assert world(service) == before


def test_attach_an_attached_volume_and_detach_a_detached_one(service):
    ec2 = service.client("team-1")
    vid = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    code, msg = error(service, "team-1", "DetachVolume", VolumeId=vid)
    assert code == "IncorrectState" and vid in msg, (code, msg)
    ec2.attach_volume(VolumeId=vid, InstanceId=service.instance_id, Device="/dev/sdf")
    # EC2 answers VolumeInUse here (IncorrectState is for a volume `creating` or in `error`).
    code, msg = error(service, "team-1", "AttachVolume", VolumeId=vid, InstanceId=service.instance_id,
                      Device="/dev/sdg")
    assert code == "VolumeInUse" and vid in msg, (code, msg)
    v = ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    assert [(a["InstanceId"], a["Device"]) for a in v["Attachments"]] == [(service.instance_id, "/dev/sdf")], v
    ec2.detach_volume(VolumeId=vid)
    ec2.delete_volume(VolumeId=vid)


def test_a_volume_file_that_cannot_be_created_leaves_no_volume(service, tmp_path):
    """The volumes directory is replaced by a file for the call: neither CreateVolume (empty)
    nor a restore can make their file, and no catalog row may remain."""
    ec2 = service.client("team-1")
    src = service.volumes["vol-team-1"].volume_id
    sid = ec2.create_snapshot(VolumeId=src)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
    vols = service.data_dir / "volumes"
    aside = tmp_path / "volumes-aside"
    os.rename(vols, aside)
    vols.write_text("not a directory\n")
    try:
        before = sorted(v["VolumeId"] for v in ec2.describe_volumes()["Volumes"])
        for alias, params in (("team-1", {"Size": "1", "AvailabilityZone": "us-east-1a"}),
                              ("admin", {"SnapshotId": sid, "AvailabilityZone": "us-east-1a"})):
            status, body = call(service, alias, "CreateVolume", **params)
            assert status != 200, f"CreateVolume {params} succeeded without a volume file: {body[:300]!r}"
            code, _ = dh.parse_ec2_error(body)
            assert code in ("InternalError", "InsufficientVolumeCapacity", "InsufficientCapacity"), (code, body)
            after = sorted(v["VolumeId"] for v in ec2.describe_volumes()["Volumes"])
            assert after == before, f"CreateVolume {params} left a volume without its file"
    finally:
        vols.unlink()
        os.rename(aside, vols)
