"""In-place rollback of a registered volume to a snapshot (CreateReplaceRootVolumeTask,
DescribeReplaceRootVolumeTasks, snapvol's RestoreVolumeFromSnapshot), against one snapvold.

A 1 GiB image is the root volume of an instance (registered with --boot) and has a snapshot.
- 1% of its blocks changed, rolled back with the AWS CLI v2: byte-identical to the snapshot
  (sha256), and the daemon wrote about 1% of the size (its wchar in /proc/PID/io, counted
  independently of the task's own figure; the incremental safety snapshot writes its share too).
- The rules: a running instance is refused, a stopped one (snapvol instance stop) is not;
  members are refused; ImageId, another volume's snapshot and bad filters are refused by name;
  paging by MaxResults/NextToken.
- A mounted XFS loop device is refused (O_EXCL), naming the device; unmounted, it rolls back.
- kill -9 mid-rollback, restart: the task ends succeeded (resumed) or failed, never
  in-progress, and the safety snapshot restores the bytes from before the rollback.
The module's AWS CLI calls and boto3 calls use the admin key unless a test says otherwise."""
from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET

import pytest

import daemon_helpers as dh
from task_helpers import DONE, aws, task_xml, wait_ended, wchar
from signed_query import error, field, ok

GIB = 1 << 30


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "rollback", teams=1)
        yield svc
    finally:
        if svc is not None:
            dh.finish_service(svc)


@pytest.fixture(scope="module")
def root(service):
    """The instance, its 1 GiB root volume and a completed snapshot of it: (instance, volume,
    snapshot id, sha256 of the snapshot's bytes)."""
    team = service.accounts["team-1"]
    inst = service.cli("instance", "create", "--account-id", team.account_id, "--name", "web1").stdout.strip()
    path = service.root / "sources" / "web1-root.img"
    path.parent.mkdir(exist_ok=True)
    dh.genvol_create(path, "1G", 21)
    vol_id = service.cli("volume", "register", "--path", path, "--account-id", team.account_id, "--name",
                         "web1-root", "--instance-id", inst, "--device", "/dev/xvda", "--boot").stdout.strip()
    sha = dh.sha256_file(path)
    ec2 = service.client("team-1")
    sid = ec2.create_snapshot(VolumeId=vol_id, Description="this morning")["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.2, "MaxAttempts": 600})
    return inst, dh.Volume(vol_id, path, team, sha, path.stat().st_size), sid, sha


def set_instance(service, inst, verb):
    assert service.cli("instance", verb, inst).stdout.split() == [inst, "stopped" if verb == "stop" else "running"]


def test_rollback_of_a_root_volume_writes_only_what_differs(service, root):
    inst, vol, sid, sha = root
    dh.genvol_mutate(vol.path, 1, 5)
    before = dh.sha256_file(vol.path)
    assert before != sha
    set_instance(service, inst, "stop")
    ec2 = service.client("admin")
    state = ec2.describe_instances(InstanceIds=[inst])["Reservations"][0]["Instances"][0]["State"]["Name"]
    assert state == "stopped"
    written_before = wchar(service)
    out = aws().ok(service, "admin", "ec2", "create-replace-root-volume-task", "--instance-id", inst,
                   "--snapshot-id", sid, "--client-token", "undo-web1-1",
                   "--tag-specifications", "ResourceType=replace-root-volume-task,Tags=[{Key=Ticket,Value=OPS-7}]")
    task = out["ReplaceRootVolumeTask"]
    assert task["ReplaceRootVolumeTaskId"].startswith("replacevol-") and len(task["ReplaceRootVolumeTaskId"]) == 28
    assert task["InstanceId"] == inst and task["SnapshotId"] == sid
    assert task["TaskState"] in ("pending", "in-progress", "succeeded"), task
    assert dh.tags_of(task) == {"Ticket": "OPS-7"}
    tid = task["ReplaceRootVolumeTaskId"]
    # The same ClientToken answers with the same task.
    again = ec2.create_replace_root_volume_task(InstanceId=inst, SnapshotId=sid, ClientToken="undo-web1-1")
    assert again["ReplaceRootVolumeTask"]["ReplaceRootVolumeTaskId"] == tid
    done = wait_ended(service, tid)
    written = wchar(service) - written_before
    assert field(done, "taskState") == "succeeded", ET.tostring(done)
    assert dh.sha256_file(vol.path) == sha, "the image is not byte-identical to the snapshot"
    # About 1%: the rollback's 1% plus the incremental safety snapshot's new chunks (~1%).
    dh.note(f"rollback of 1 GiB, 1% changed: daemon wchar {written} bytes ({written / vol.size:.2%}), "
            f"task bytesWritten {field(done, 'bytesWritten')}")
    assert written < 0.03 * vol.size, f"the daemon wrote {written} bytes for a 1% rollback"
    task_written = int(field(done, "bytesWritten"))
    assert 0.005 * vol.size <= task_written <= 0.015 * vol.size, task_written
    assert task_written <= written
    assert field(done, "progress") == "100%"
    assert int(field(done, "bytesRead")) <= vol.size
    listed = ec2.describe_replace_root_volume_tasks(ReplaceRootVolumeTaskIds=[tid])["ReplaceRootVolumeTasks"][0]
    assert listed["TaskState"] == "succeeded" and listed["CompleteTime"] >= listed["StartTime"]
    # The safety snapshot holds the pre-rollback bytes' lineage: completed, naming the task.
    safety = field(done, "safetySnapshotId")
    snap = ec2.describe_snapshots(SnapshotIds=[safety])["Snapshots"][0]
    assert snap["State"] == "completed" and tid in snap["Description"] and snap["VolumeId"] == vol.volume_id


def test_rules_and_describe(service, root):
    inst, vol, sid, _ = root
    cli = aws()
    set_instance(service, inst, "start")
    assert service.client("admin").describe_instances(InstanceIds=[inst])["Reservations"][0]["Instances"][0][
        "State"]["Name"] == "running"
    msg = cli.error(service, "admin", "ec2", "create-replace-root-volume-task", "--instance-id", inst,
                    "--snapshot-id", sid, code="IncorrectInstanceState")
    assert inst in msg and "running" in msg
    code, msg = error(service, "admin", "RestoreVolumeFromSnapshot", VolumeId=vol.volume_id, SnapshotId=sid)
    assert code == "IncorrectState" and inst in msg
    # Force rolls back anyway; the reason is in the task and in the audit log.
    made = ok(service, "admin", "RestoreVolumeFromSnapshot", VolumeId=vol.volume_id, SnapshotId=sid, Force="true",
              Reason="OPS-9 the team confirmed the disk is idle", SafetySnapshot="false")
    assert field(made, "forced") == "true" and "OPS-9" in field(made, "stateReason")
    t = wait_ended(service, field(made, "replaceRootVolumeTaskId"))
    assert field(t, "taskState") == "succeeded" and field(t, "bytesWritten") == "0"  # nothing differed
    audit = [json.loads(line) for line in (service.data_dir / "audit.log").read_text().splitlines()]
    forced = [a for a in audit if a.get("action") == "RestoreVolumeFromSnapshot" and "OPS-9" in a.get("detail", "")]
    assert len(forced) == 1 and field(made, "replaceRootVolumeTaskId") in forced[0]["detail"], audit[-3:]
    # Restores are the administrator's: members are refused, whatever the instance's state.
    cli.error(service, "team-1", "ec2", "create-replace-root-volume-task", "--instance-id", inst,
              "--snapshot-id", sid, code="UnauthorizedOperation")
    code, _ = error(service, "team-1", "RestoreVolumeFromSnapshot", VolumeId=vol.volume_id, SnapshotId=sid)
    assert code == "UnauthorizedOperation"
    ec2 = service.client("admin")
    from botocore.exceptions import ClientError

    def refused(code, **kw):
        with pytest.raises(ClientError) as e:
            ec2.create_replace_root_volume_task(**kw)
        assert e.value.response["Error"]["Code"] == code, e.value.response
        return e.value.response["Error"]["Message"]

    assert "ImageId" in refused("UnsupportedOperation", InstanceId=inst, ImageId="ami-12345678")
    refused("MissingParameter", InstanceId=inst)
    refused("DryRunOperation", InstanceId=inst, SnapshotId=sid, DryRun=True)
    other = service.volumes["vol-team-1"].volume_id
    t1 = service.client("team-1")
    osid = t1.create_snapshot(VolumeId=other)["SnapshotId"]
    t1.get_waiter("snapshot_completed").wait(SnapshotIds=[osid], WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
    set_instance(service, inst, "stop")
    assert "not a snapshot of the root volume" in refused("InvalidParameterValue", InstanceId=inst, SnapshotId=osid)
    code, _ = error(service, "admin", "CreateReplaceRootVolumeTask", InstanceId=inst, SnapshotId=sid, Force="true")
    assert code == "UnknownParameter"
    # A data volume by id, without a safety snapshot: nothing differs, nothing is written.
    made = ok(service, "admin", "RestoreVolumeFromSnapshot", VolumeId=other, SnapshotId=osid, SafetySnapshot="false")
    t = wait_ended(service, field(made, "replaceRootVolumeTaskId"))
    assert field(t, "taskState") == "succeeded" and field(t, "bytesWritten") == "0"
    assert field(t, "safetySnapshotId") is None and field(t, "instanceId") in (None, "")

    # Describe: filter instance-id, paging one at a time, unknown filters refused by name.
    mine = ec2.describe_replace_root_volume_tasks(Filters=[{"Name": "instance-id", "Values": [inst]}])
    ids = [t["ReplaceRootVolumeTaskId"] for t in mine["ReplaceRootVolumeTasks"]]
    assert ids and all(t["InstanceId"] == inst for t in mine["ReplaceRootVolumeTasks"])
    paged, token = [], None
    while True:
        kw = {"MaxResults": 1, **({"NextToken": token} if token else {})}
        page = ec2.describe_replace_root_volume_tasks(**kw)
        assert len(page["ReplaceRootVolumeTasks"]) <= 1
        paged += [t["ReplaceRootVolumeTaskId"] for t in page["ReplaceRootVolumeTasks"]]
        token = page.get("NextToken")
        if not token:
            break
    assert len(paged) >= 2 and set(ids) <= set(paged) and len(set(paged)) == len(paged)
    code, msg = error(service, "admin", "DescribeReplaceRootVolumeTasks", **{"Filter.1.Name": "volume-id",
                                                                            "Filter.1.Value.1": "x"})
    assert code == "InvalidParameterValue" and "volume-id" in msg
    code, _ = error(service, "admin", "DescribeReplaceRootVolumeTasks",
                    **{"ReplaceRootVolumeTaskId.1": "replacevol-0123456789abcdef0"})
    assert code == "InvalidReplaceRootVolumeTask.NotFound"
    # The CLI pages by itself (MaxResults/NextToken) and finds them all.
    listed = cli.ok(service, "admin", "ec2", "describe-replace-root-volume-tasks", "--page-size", "1")
    assert set(paged) == {t["ReplaceRootVolumeTaskId"] for t in listed["ReplaceRootVolumeTasks"]}


def test_a_mounted_block_device_is_refused(service, tmp_path):
    team = service.accounts["team-1"]
    img = tmp_path / "xfs.img"
    with open(img, "wb") as f:
        f.truncate(320 << 20)
    subprocess.run(["mkfs.xfs", "-q", str(img)], check=True, capture_output=True, timeout=60)
    dev = subprocess.run(["losetup", "--find", "--show", str(img)], check=True, capture_output=True, text=True,
                         timeout=30).stdout.strip()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mounted = False
    try:
        vol_id = service.cli("volume", "register", "--path", dev, "--account-id", team.account_id,
                             "--name", "xfs-disk").stdout.strip()
        t1 = service.client("team-1")
        sid = t1.create_snapshot(VolumeId=vol_id)["SnapshotId"]
        t1.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
        subprocess.run(["mount", "-t", "xfs", dev, str(mnt)], check=True, capture_output=True, timeout=30)
        mounted = True
        (mnt / "note.txt").write_text("written after the snapshot\n")
        code, msg = error(service, "admin", "RestoreVolumeFromSnapshot", VolumeId=vol_id, SnapshotId=sid)
        assert code == "IncorrectState" and dev in msg and "in use" in msg, msg
        subprocess.run(["umount", str(mnt)], check=True, capture_output=True, timeout=30)
        mounted = False
        made = ok(service, "admin", "RestoreVolumeFromSnapshot", VolumeId=vol_id, SnapshotId=sid,
                  SafetySnapshot="false")
        t = wait_ended(service, field(made, "replaceRootVolumeTaskId"))
        assert field(t, "taskState") == "succeeded", ET.tostring(t)
        assert int(field(t, "bytesWritten")) > 0  # the note and the log the mount wrote are undone
        subprocess.run(["mount", "-t", "xfs", "-o", "ro", dev, str(mnt)], check=True, capture_output=True, timeout=30)
        mounted = True
        assert not (mnt / "note.txt").exists()
    finally:
        if mounted:
            subprocess.run(["umount", str(mnt)], capture_output=True, timeout=30)
        subprocess.run(["losetup", "-d", dev], capture_output=True, timeout=30)


def test_kill9_mid_rollback_resumes_or_fails_and_the_safety_snapshot_keeps_the_old_bytes(service, root, tmp_path):
    inst, vol, sid, sha = root
    set_instance(service, inst, "stop")
    dh.genvol_mutate(vol.path, 60, 9)
    before = dh.sha256_file(vol.path)
    made = service.client("admin").create_replace_root_volume_task(InstanceId=inst, SnapshotId=sid)
    tid = made["ReplaceRootVolumeTask"]["ReplaceRootVolumeTaskId"]

    def writing():
        t = task_xml(service, tid)
        assert field(t, "taskState") not in DONE, f"the rollback ended before the kill: {ET.tostring(t)!r}"
        return field(t, "taskState") == "in-progress" and int(field(t, "bytesWritten")) > 0
    dh.wait_until(writing, 120, 0.02, f"task {tid} to be writing")
    service.daemon.kill9()
    mid = dh.sha256_file(vol.path)
    assert mid not in (before, sha), "the kill did not land mid-rollback"
    service.daemon.start()
    t = wait_ended(service, tid, timeout=120)
    resumed = [e for e in service.daemon.log_events() if e.get("event") == "rollbacks_resumed"]
    assert resumed and resumed[-1]["tasks"] == 1, resumed
    state = field(t, "taskState")
    if state == "succeeded":
        assert dh.sha256_file(vol.path) == sha
    else:
        assert state == "failed" and field(t, "stateReason"), ET.tostring(t)
        v = service.client("admin").describe_volumes(VolumeIds=[vol.volume_id])["Volumes"][0]
        assert v["State"] == "error", v
    dh.note(f"kill -9 mid-rollback: the task ended {state}")
    # The safety snapshot restores the bytes from before the rollback.
    safety = field(t, "safetySnapshotId")
    out = tmp_path / "safety.img"
    service.cli("restore", "--snapshot-id", safety, "--to", out, timeout=300)
    assert dh.sha256_file(out) == before
    out.unlink()
    listed = json.loads(service.cli("instance", "list", "-o", "json").stdout)["Instances"]
    assert {i["InstanceId"]: i["State"] for i in listed}[inst] == "stopped"
