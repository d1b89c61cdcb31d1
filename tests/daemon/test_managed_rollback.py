"""In-place rollback of a MANAGED volume (snapvol's RestoreVolumeFromSnapshot) with changed-block
tracking, against one snapvold, with boto3, the AWS CLI v2 and real NBD clients (python3-libnbd).

A 1 GiB managed data volume of a running instance holds three 4 MiB runs of random bytes (the
rest is holes) and has a completed snapshot. Then, through NBD, 18 blocks inside those runs and
4 blocks in the holes are overwritten, half before and half after a second snapshot (the safety
snapshot then becomes the map's base: the 22 are found by comparing index pages).
- While the instance runs the rollback is refused (IncorrectState, naming the instance); after
  `snapvol instance stop` it runs with a writer still connected: the writer's connection is
  ended, the task succeeds saying it used changed-block tracking since its safety snapshot, it
  compared exactly the 22 blocks written since the target, read 22 blocks and wrote 18 (the 4
  in the target's holes are zeroed), the daemon's own write count (wchar in /proc/PID/io) stays
  far below the volume's size, a new NBD connection reads exactly the snapshot's bytes
  (sha256), and the safety snapshot restores the bytes from before the rollback.
- kill -9 mid-rollback of 600 MiB written, then restart: the task is resumed (its map is not
  trusted after the kill, so it compares every block, and says so) and ends succeeded with the
  snapshot's bytes, or failed with the volume marked error; never in-progress, never
  half-restored while succeeded.
- A member's in-place restore request for the managed volume, once approved, rolls it back
  (with changed-block tracking: the safety snapshot is its base)."""
from __future__ import annotations

import json
import os
import random
import xml.etree.ElementTree as ET

import nbd
import pytest

import daemon_helpers as dh
from task_helpers import DONE, aws, connect, sha_of, task_xml, wait_ended, wchar
from signed_query import error, field, ok

MiB = 1 << 20
GiB = 1 << 30
BS = 512 * 1024  # the store's block size
RUNS = (0, 300 * MiB, GiB - 4 * MiB)  # where the target holds data (4 MiB each)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "mrollback", teams=1)
        yield svc
    finally:
        if svc is not None:
            dh.finish_service(svc)


def snapshot(ec2, vid, description) -> str:
    sid = ec2.create_snapshot(VolumeId=vid, Description=description)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.2, "MaxAttempts": 600})
    return sid


@pytest.fixture(scope="module")
def world(service):
    """(instance, volume id, target snapshot id, sha256 of the target's bytes)."""
    team = service.accounts["team-1"]
    ec2 = service.client("team-1")
    inst = service.cli("instance", "create", "--account-id", team.account_id, "--name", "db").stdout.strip()
    vid = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    ec2.attach_volume(VolumeId=vid, InstanceId=inst, Device="/dev/sdf")
    h = connect(service, vid)
    rng = random.Random(18)
    for off in RUNS:
        h.pwrite(rng.randbytes(4 * MiB), off)
    h.flush()
    sha = sha_of(h)
    h.shutdown()
    sid = snapshot(ec2, vid, "before the migration")
    return inst, vid, sid, sha


def test_rollback_with_changed_block_tracking_rewrites_only_what_was_written(service, world, tmp_path):
    inst, vid, sid, sha = world
    admin = service.client("admin")
    writer = connect(service, vid)
    rng = random.Random(5)
    data_blocks = [run // BS + k for run in RUNS for k in (0, 2, 3, 5, 6, 7)]  # 18 blocks with data in the target
    hole_blocks = [100, 900, 1500, 2000]  # holes in the target
    written = data_blocks + hole_blocks
    for b in written[:11]:
        writer.pwrite(rng.randbytes(BS), b * BS)
    writer.flush()
    snapshot(service.client("team-1"), vid, "in between")
    for b in written[11:]:
        writer.pwrite(rng.randbytes(BS), b * BS)
    writer.flush()
    before = sha_of(writer)
    assert before != sha

    code, msg = error(service, "admin", "RestoreVolumeFromSnapshot", VolumeId=vid, SnapshotId=sid)
    assert code == "IncorrectState" and inst in msg, msg
    assert service.cli("instance", "stop", inst).stdout.split() == [inst, "stopped"]
    written_before = wchar(service)
    made = ok(service, "admin", "RestoreVolumeFromSnapshot", VolumeId=vid, SnapshotId=sid,
              **{"TagSpecification.1.ResourceType": "replace-root-volume-task",
                 "TagSpecification.1.Tag.1.Key": "Ticket", "TagSpecification.1.Tag.1.Value": "OPS-18"})
    tid = field(made, "replaceRootVolumeTaskId")
    assert field(made, "volumeId") == vid and field(made, "safetySnapshotId")
    done = wait_ended(service, tid)
    daemon_wrote = wchar(service) - written_before
    assert field(done, "taskState") == "succeeded", ET.tostring(done)
    safety = field(done, "safetySnapshotId")
    reason = field(done, "stateReason") or ""
    assert f"changed-block tracking since {safety}: 22 of 2048 blocks compared" in reason, reason
    again = connect(service, vid)
    assert sha_of(again) == sha, ET.tostring(done)
    again.shutdown()
    assert field(done, "blocksCompared") == "22"
    assert int(field(done, "bytesRead")) == 22 * BS
    assert int(field(done, "bytesWritten")) == 18 * BS
    assert field(done, "progress") == "100%"
    dh.note(f"managed rollback of 1 GiB, 22 blocks written since the snapshot: task bytesWritten "
            f"{field(done, 'bytesWritten')}, daemon wchar {daemon_wrote} (with the safety snapshot's share)")
    assert daemon_wrote < 0.03 * GiB, daemon_wrote
    listed = aws().ok(service, "admin", "ec2", "describe-replace-root-volume-tasks",
                      "--replace-root-volume-task-ids", tid)["ReplaceRootVolumeTasks"]
    assert len(listed) == 1 and listed[0]["TaskState"] == "succeeded" and dh.tags_of(listed[0]) == {"Ticket": "OPS-18"}
    # The writer's connection was ended; a new one reads exactly the snapshot's bytes.
    with pytest.raises(nbd.Error):
        writer.pwrite(b"late" * 1024, 8 * MiB)
        writer.flush()
    ended = [e for e in service.daemon.log_events()
             if e.get("event") == "nbd_disconnected" and e.get("volume_id") == vid]
    assert ended and ended[-1]["connections"] >= 1 and ended[-1]["reason"] == "rolled back in place", ended
    again = connect(service, vid)
    assert sha_of(again) == sha
    again.shutdown()
    vol = admin.describe_volumes(VolumeIds=[vid])["Volumes"][0]
    assert vol["State"] == "in-use", vol
    # The safety snapshot holds the bytes from before the rollback.
    out = tmp_path / "safety.img"
    service.cli("restore", "--snapshot-id", safety, "--to", out, timeout=300)
    assert dh.sha256_file(out) == before
    out.unlink()
    audit = [json.loads(line) for line in (service.data_dir / "audit.log").read_text().splitlines()]
    assert any(a.get("action") == "RestoreVolumeFromSnapshot" for a in audit), audit[-3:]


def test_kill9_mid_rollback_resumes_or_fails_never_half_restored(service, world):
    inst, vid, sid, sha = world
    assert service.cli("instance", "stop", inst).stdout.split() == [inst, "stopped"]
    h = connect(service, vid)
    rng = random.Random(9)
    for off in range(0, 600 * MiB, 8 * MiB):
        h.pwrite(rng.randbytes(8 * MiB), off)
    h.flush()
    h.shutdown()
    made = ok(service, "admin", "RestoreVolumeFromSnapshot", VolumeId=vid, SnapshotId=sid, SafetySnapshot="false")
    tid = field(made, "replaceRootVolumeTaskId")

    seen = {}

    def writing():
        t = task_xml(service, tid)
        assert field(t, "taskState") not in DONE, f"the rollback ended before the kill: {ET.tostring(t)!r}"
        seen["written"] = int(field(t, "bytesWritten"))
        return field(t, "taskState") == "in-progress" and seen["written"] > 0
    dh.wait_until(writing, 120, 0.01, f"task {tid} to be writing")
    service.daemon.kill9()
    service.daemon.start()
    t = wait_ended(service, tid, timeout=240)
    resumed = [e for e in service.daemon.log_events() if e.get("event") == "rollbacks_resumed"]
    assert resumed and resumed[-1]["tasks"] == 1, resumed
    state = field(t, "taskState")
    if state == "succeeded":
        reason = field(t, "stateReason") or ""
        assert "changed-block tracking not usable" in reason, reason  # the kill left the map untrusted
        again = connect(service, vid)
        assert sha_of(again) == sha, "succeeded but not the snapshot's bytes"
        again.shutdown()
        # The whole task's bytes: at least what the run before the kill had counted, at most the
        # 16 blocks of the target's data in the 600 MiB (the rest are holes there: zeroed).
        assert seen["written"] <= int(field(t, "bytesWritten")) <= 16 * BS, (seen, ET.tostring(t))
    else:
        assert state == "failed" and field(t, "stateReason"), ET.tostring(t)
        v = service.client("admin").describe_volumes(VolumeIds=[vid])["Volumes"][0]
        assert v["State"] == "error", v
    dh.note(f"kill -9 mid-rollback of a managed volume: the task ended {state}, "
            f"bytesWritten {field(t, 'bytesWritten')}")


def test_an_in_place_restore_request_rolls_a_managed_volume_back(service, world):
    """A member's in-place restore request for its managed volume: approval runs the rollback."""
    inst, vid, sid, sha = world
    assert service.cli("instance", "stop", inst).stdout.split() == [inst, "stopped"]
    h = connect(service, vid)
    h.pwrite(os.urandom(BS), 700 * BS)
    h.flush()
    assert sha_of(h) != sha
    h.shutdown()
    made = ok(service, "team-1", "CreateRestoreRequest", SnapshotId=sid, RestoreType="in-place", VolumeId=vid,
              Reason="the migration broke the database")
    rr = field(made, "restoreRequestId")
    assert field(made, "restoreType") == "in-place" and field(made, "volumeId") == vid, ET.tostring(made)
    approved = ok(service, "admin", "ApproveRestoreRequest", RestoreRequestId=rr, Reason="go")
    task = field(approved, "replaceRootVolumeTaskId")
    assert field(approved, "state") == "approved" and task, ET.tostring(approved)
    done = wait_ended(service, task)
    assert field(done, "taskState") == "succeeded", ET.tostring(done)
    assert "changed-block tracking since" in (field(done, "stateReason") or ""), ET.tostring(done)
    again = connect(service, vid)
    assert sha_of(again) == sha
    again.shutdown()
