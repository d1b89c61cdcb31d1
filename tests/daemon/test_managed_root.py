"""Replacing an instance's MANAGED root volume from a snapshot (CreateReplaceRootVolumeTask), with
the AWS CLI v2 and boto3, against one snapvold, with real NBD clients (python3-libnbd).

- An instance's root device (/dev/xvda): attaching there while the instance runs is refused as
  EC2 refuses it; after `snapvol instance stop` it is accepted and the volume is the root (boot).
- NBD by device: `<instance-id>:<device>` serves whatever volume is attached there.
- The root holds known bytes, is snapshotted, then a writer connected by device name writes
  other bytes and stays connected. The replacement ends that connection (its next request
  fails), the task succeeds, a new connection to `<instance>:<device>` reads exactly the
  snapshot's bytes (sha256), the old volume (detached, kept) holds what the writer wrote, and
  DescribeInstances/DescribeVolumes show the new volume at the root device and the old one
  available, with the old root's tags on the new one.
- A snapshot of another lineage is refused; DeleteReplacedRootVolume=true deletes the replaced
  volume (here the first replacement, whose lineage reaches the snapshot through its restore)."""
from __future__ import annotations

import json
import os

import nbd
import pytest
from botocore.exceptions import ClientError

import daemon_helpers as dh
from task_helpers import aws, connect, sha_of, wait_ended
from signed_query import field

MiB = 1 << 20
GiB = 1 << 30


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "mroot", teams=1)
        yield svc
    finally:
        if svc is not None:
            dh.finish_service(svc)


def volume_list(service) -> dict[str, dict]:
    out = json.loads(service.cli("--output", "json", "volume", "list").stdout)
    return {v["VolumeId"]: v for v in out["Volumes"]}


@pytest.fixture(scope="module")
def world(service):
    """A running instance whose root is a 1 GiB managed volume with known bytes (attached while
    the instance was stopped) and a completed snapshot of it: (instance, root volume, snapshot,
    sha256 of the snapshot's bytes)."""
    team = service.accounts["team-1"]
    ec2 = service.client("team-1")
    inst = service.cli("instance", "create", "--account-id", team.account_id, "--name", "web").stdout.strip()
    desc = service.client("admin").describe_instances(InstanceIds=[inst])["Reservations"][0]["Instances"][0]
    assert desc["RootDeviceName"] == "/dev/xvda" and desc["BlockDeviceMappings"] == []
    vol = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a", TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "web-root"}, {"Key": "env", "Value": "prod"}]}])
    vid = vol["VolumeId"]
    # EC2 attaches at the root device only while the instance is stopped.
    with pytest.raises(ClientError) as e:
        ec2.attach_volume(VolumeId=vid, InstanceId=inst, Device="/dev/xvda")
    assert e.value.response["Error"]["Code"] == "IncorrectInstanceState", e.value.response
    assert inst in e.value.response["Error"]["Message"]
    assert volume_list(service)[vid]["InstanceId"] == ""
    assert service.cli("instance", "stop", inst).stdout.split() == [inst, "stopped"]
    ec2.attach_volume(VolumeId=vid, InstanceId=inst, Device="/dev/xvda")
    listed = volume_list(service)[vid]
    assert listed["Device"] == "/dev/xvda" and listed["Boot"] is True
    assert service.cli("instance", "start", inst).stdout.split() == [inst, "running"]
    # Elsewhere a volume is not the root, and a running instance takes it.
    data = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    ec2.attach_volume(VolumeId=data, InstanceId=inst, Device="/dev/sdf")
    assert volume_list(service)[data]["Boot"] is False
    # Known bytes, written through the device name.
    h = connect(service, f"{inst}:/dev/xvda")
    rng = __import__("random").Random(18)
    for off in (0, 300 * MiB, GiB - 4 * MiB):
        h.pwrite(rng.randbytes(4 * MiB), off)
    h.flush()
    sha = sha_of(h)
    assert sha == sha_of(connect(service, vid)), "the device name and the volume id serve one volume"
    h.shutdown()
    sid = ec2.create_snapshot(VolumeId=vid, Description="this morning")["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.2, "MaxAttempts": 600})
    return inst, vid, sid, sha


def test_replace_a_managed_root_while_a_writer_is_connected(service, world):
    inst, old, sid, sha = world
    writer = connect(service, f"{inst}:/dev/xvda")
    written = os.urandom(4 * MiB)
    writer.pwrite(written, 0)
    writer.flush()
    assert sha_of(writer) != sha
    out = aws().ok(service, "admin", "ec2", "create-replace-root-volume-task", "--instance-id", inst,
                   "--snapshot-id", sid, "--tag-specifications",
                   "ResourceType=replace-root-volume-task,Tags=[{Key=Ticket,Value=OPS-18}]")
    task = out["ReplaceRootVolumeTask"]
    tid = task["ReplaceRootVolumeTaskId"]
    assert task["InstanceId"] == inst and task["SnapshotId"] == sid and task["DeleteReplacedRootVolume"] is False
    assert task["TaskState"] in ("pending", "in-progress", "succeeded"), task
    done = wait_ended(service, tid)
    assert field(done, "taskState") == "succeeded", field(done, "stateReason")
    assert field(done, "volumeId") == old
    new = field(done, "replacementVolumeId")
    assert new and new != old
    listed = aws().ok(service, "admin", "ec2", "describe-replace-root-volume-tasks",
                      "--replace-root-volume-task-ids", tid)["ReplaceRootVolumeTasks"]
    assert len(listed) == 1 and listed[0]["TaskState"] == "succeeded" and dh.tags_of(listed[0]) == {"Ticket": "OPS-18"}
    # The writer's connection was ended: its next request fails.
    with pytest.raises(nbd.Error):
        writer.pwrite(b"late" * 1024, 8 * MiB)
        writer.flush()
    ended = [e for e in service.daemon.log_events()
             if e.get("event") == "nbd_disconnected" and e.get("volume_id") == old]
    assert ended and ended[-1]["connections"] >= 1, ended
    # The device name now serves the new volume: exactly the snapshot's bytes.
    again = connect(service, f"{inst}:/dev/xvda")
    assert sha_of(again) == sha
    again.shutdown()
    # The old volume is kept, detached, with what the writer wrote (and not the late write).
    with open(service.data_dir / "volumes" / f"{old}.img", "rb") as f:
        assert f.read(4 * MiB) == written
        f.seek(8 * MiB)
        assert f.read(4096) == bytes(4096)
    with pytest.raises(nbd.Error):
        connect(service, old)  # detached: not exported
    ec2 = service.client("admin")
    desc = ec2.describe_instances(InstanceIds=[inst])["Reservations"][0]["Instances"][0]
    assert desc["RootDeviceName"] == "/dev/xvda"
    devices = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in desc["BlockDeviceMappings"]}
    assert devices["/dev/xvda"] == new and old not in devices.values()
    vols = {v["VolumeId"]: v for v in ec2.describe_volumes(VolumeIds=[old, new])["Volumes"]}
    assert vols[old]["State"] == "available" and vols[old]["Attachments"] == []
    assert vols[new]["State"] == "in-use" and vols[new]["SnapshotId"] == sid
    assert [(a["InstanceId"], a["Device"]) for a in vols[new]["Attachments"]] == [(inst, "/dev/xvda")]
    assert dh.tags_of(vols[new]) == {"Name": "web-root", "env": "prod"}, "the old root's tags"
    assert vols[new]["Size"] == vols[old]["Size"] and vols[new]["VolumeType"] == vols[old]["VolumeType"]
    assert volume_list(service)[new]["Boot"] is True and volume_list(service)[old]["Boot"] is False


def test_a_snapshot_of_another_lineage_is_refused(service, world):
    inst, _, _, _ = world
    team = service.client("team-1")
    other = service.volumes["vol-team-1"].volume_id
    sid = team.create_snapshot(VolumeId=other, Description="another disk")["SnapshotId"]
    team.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.2, "MaxAttempts": 600})
    before = len(service.client("admin").describe_volumes()["Volumes"])
    msg = aws().error(service, "admin", "ec2", "create-replace-root-volume-task", "--instance-id", inst,
                      "--snapshot-id", sid, code="InvalidParameterValue")
    assert sid in msg and "root volume" in msg
    assert len(service.client("admin").describe_volumes()["Volumes"]) == before, "no volume was made"
    # Members may not replace a root volume at all.
    with pytest.raises(ClientError) as e:
        team.create_replace_root_volume_task(InstanceId=inst, SnapshotId=sid)
    assert e.value.response["Error"]["Code"] == "UnauthorizedOperation"


def test_delete_replaced_root_volume(service, world):
    inst, _, sid, sha = world
    ec2 = service.client("admin")
    current = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in
               ec2.describe_instances(InstanceIds=[inst])["Reservations"][0]["Instances"][0]["BlockDeviceMappings"]}
    replaced = current["/dev/xvda"]
    # sid is a snapshot of the first root, from which `replaced` was restored: its lineage.
    task = ec2.create_replace_root_volume_task(InstanceId=inst, SnapshotId=sid, DeleteReplacedRootVolume=True,
                                               ClientToken="again-18")["ReplaceRootVolumeTask"]
    assert task["DeleteReplacedRootVolume"] is True
    done = wait_ended(service, task["ReplaceRootVolumeTaskId"])
    assert field(done, "taskState") == "succeeded", field(done, "stateReason")
    assert field(done, "volumeId") == replaced
    with pytest.raises(ClientError) as e:
        ec2.describe_volumes(VolumeIds=[replaced])
    assert e.value.response["Error"]["Code"] == "InvalidVolume.NotFound"
    assert not (service.data_dir / "volumes" / f"{replaced}.img").exists()
    h = connect(service, f"{inst}:/dev/xvda")
    assert sha_of(h) == sha
    h.shutdown()
    # The same ClientToken answers with the same task.
    same = ec2.create_replace_root_volume_task(InstanceId=inst, SnapshotId=sid, DeleteReplacedRootVolume=True,
                                               ClientToken="again-18")["ReplaceRootVolumeTask"]
    assert same["ReplaceRootVolumeTaskId"] == task["ReplaceRootVolumeTaskId"]
