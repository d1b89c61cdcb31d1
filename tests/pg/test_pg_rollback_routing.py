"""Rollbacks and volume operations on a volume another host holds (docs/multi-host.md part 3):
two snapvold share one PostgreSQL catalog and one store directory. The root volume of an
instance is a registered file held by host B; it is snapshotted, changed, and rolled back with
boto3's create_replace_root_volume_task sent to host A. A answers `pending` as on one host; the
task and its safety snapshot are queued for B and run by B (the task's runner names B's
process), and the file is byte-identical to the snapshot. A claims nothing; while B is stopped
the task waits for it, and B runs it when it is back. Replacing a managed root volume of B
through A is refused with IncorrectState naming B and changes nothing. (DeleteVolume of B's
volumes sent to A is done by B: test_pg_volume_ops.py.)"""

from __future__ import annotations

import time
from pathlib import Path

import botocore.exceptions
import pytest

import daemon_helpers as dh
import pg_helpers as pg
from pg_hosts import host_id
from test_pg_routing import register_on, two_hosts  # noqa: F401 (two_hosts is a fixture)

ENDED = ("succeeded", "failed")


def wait_task(ec2, tid, attempts=600):
    """The task once it has ended (a bound of attempts x 0.2 s, not a timing)."""
    for _ in range(attempts):
        task = ec2.describe_replace_root_volume_tasks(ReplaceRootVolumeTaskIds=[tid])["ReplaceRootVolumeTasks"][0]
        if task["TaskState"] in ENDED:
            return task
        time.sleep(0.2)
    raise AssertionError(f"task {tid} did not end: {task}")


def events(svc, name) -> list[dict]:
    return [e for e in svc.daemon.log_events() if e.get("event") == name]


def refused(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as err:
        call(**kwargs)
    return err.value.response["Error"]["Code"], err.value.response["Error"]["Message"]


def root_on(a, b, tmp_path, name, seed):
    """A stopped instance whose root volume is a file host b holds, with a completed snapshot of
    it, then changed: (instance, path, snapshot id, sha256 of the snapshot's bytes, sha256 now)."""
    team = a.accounts["team-1"]
    ec2_a = a.client("team-1")
    inst = a.cli("instance", "create", "--account-id", team.account_id, "--name", name).stdout.strip()
    path = dh.genvol_create(tmp_path / f"{name}.img", "8M", seed)
    vol = a.cli("volume", "register", "--path", path, "--account-id", team.account_id, "--name", name,
                "--instance-id", inst, "--device", "/dev/xvda", "--boot", "--host", host_id(b)).stdout.strip()
    assert dh.VOL_ID.match(vol), vol
    sid = ec2_a.create_snapshot(VolumeId=vol)["SnapshotId"]
    ec2_a.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
    sha = dh.sha256_file(path)
    dh.genvol_mutate(path, 5, seed + 1)
    changed = dh.sha256_file(path)
    assert changed != sha
    a.cli("instance", "stop", inst)
    return inst, path, sid, sha, changed


def test_a_rollback_sent_to_a_runs_on_the_volumes_host(two_hosts, tmp_path):
    a, b, url = two_hosts["a"], two_hosts["b"], two_hosts["url"]
    ec2_b = b.client("team-1")
    admin_a = a.client("admin")
    inst, path, sid, sha, changed = root_on(a, b, tmp_path, "web-b", 31)

    task = admin_a.create_replace_root_volume_task(InstanceId=inst, SnapshotId=sid)["ReplaceRootVolumeTask"]
    assert task["TaskState"] == "pending", task
    assert task["InstanceId"] == inst and task["SnapshotId"] == sid
    tid = task["ReplaceRootVolumeTaskId"]
    done = wait_task(admin_a, tid)
    assert done["TaskState"] == "succeeded", done
    assert dh.sha256_file(path) == sha, "B's file is not byte-identical to the snapshot"

    # B ran it: the task's runner is B's snapvold, which logged the claim; A claimed nothing.
    runner = pg.psql(url, f"SELECT runner FROM replace_root_volume_tasks WHERE task_id = '{tid}'")
    assert runner.startswith(f"pid:{b.daemon.proc.pid}@") and runner.endswith("@" + host_id(b)), runner
    assert [e["task_id"] for e in events(b, "rollback_task_claimed")] == [tid]
    assert events(a, "rollback_task_claimed") == []
    # Its safety snapshot was taken by B too, and holds the bytes from before the rollback.
    safety = pg.psql(url, f"SELECT safety_snapshot_id FROM replace_root_volume_tasks WHERE task_id = '{tid}'")
    assert safety in [s for e in events(b, "snapshot_job_claimed") for s in e["snapshot_ids"]]
    assert events(a, "snapshot_job_claimed") == []
    out = tmp_path / "safety.img"
    res = a.cli("restore", "--snapshot-id", safety, "--to", out)
    assert res.returncode == 0, dh.describe(res)
    assert dh.sha256_file(out) == changed
    # Both hosts describe the same task.
    from_b = ec2_b.describe_replace_root_volume_tasks(ReplaceRootVolumeTaskIds=[tid])["ReplaceRootVolumeTasks"]
    assert from_b == [done]


def test_a_rollback_queued_for_a_stopped_host_waits_for_it(two_hosts, tmp_path):
    a, b, url = two_hosts["a"], two_hosts["b"], two_hosts["url"]
    admin_a = a.client("admin")
    inst, path, sid, sha, changed = root_on(a, b, tmp_path, "web-b2", 51)
    assert b.daemon.stop() == 0
    task = admin_a.create_replace_root_volume_task(InstanceId=inst, SnapshotId=sid)["ReplaceRootVolumeTask"]
    tid = task["ReplaceRootVolumeTaskId"]
    assert task["TaskState"] == "pending", task
    # Nobody runs it while B is stopped: A does not write another host's disk.
    assert pg.psql(url, f"SELECT state, runner FROM replace_root_volume_tasks WHERE task_id = '{tid}'") == \
        f"pending|queued@{host_id(b)}"
    assert dh.sha256_file(path) == changed
    assert events(a, "rollback_task_claimed") == []
    # B comes back and runs it (and its safety snapshot).
    b.daemon.start()
    done = wait_task(admin_a, tid)
    assert done["TaskState"] == "succeeded", done
    assert dh.sha256_file(path) == sha
    runner = pg.psql(url, f"SELECT runner FROM replace_root_volume_tasks WHERE task_id = '{tid}'")
    assert runner.startswith(f"pid:{b.daemon.proc.pid}@") and runner.endswith("@" + host_id(b)), runner
    assert events(a, "rollback_task_claimed") == []


def test_replacing_another_hosts_managed_root_is_refused_naming_it(two_hosts, tmp_path):
    a, b, url = two_hosts["a"], two_hosts["b"], two_hosts["url"]
    admin_a = a.client("admin")
    registered, path = register_on(a, b, tmp_path, "data-b", 41)
    sha = dh.sha256_file(path)
    admin_b, team_b = b.client("admin"), b.client("team-1")
    mid = team_b.create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    image = pg.psql(url, f"SELECT path FROM volumes WHERE volume_id = '{mid}'")
    assert image.startswith(str(b.data_dir)), image

    # Replacing a managed root volume of B through A is refused (its replacement would be
    # made on A's disk); nothing is made.
    inst = a.cli("instance", "create", "--account-id", a.accounts["team-1"].account_id, "--name", "m-b").stdout.strip()
    a.cli("instance", "stop", inst)
    root_device = admin_a.describe_instances(InstanceIds=[inst])["Reservations"][0]["Instances"][0]["RootDeviceName"]
    team_b.attach_volume(VolumeId=mid, InstanceId=inst, Device=root_device)
    msid = team_b.create_snapshot(VolumeId=mid)["SnapshotId"]
    team_b.get_waiter("snapshot_completed").wait(SnapshotIds=[msid], WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
    volumes_before = pg.count(url, "volumes")
    code, msg = refused(admin_a.create_replace_root_volume_task, InstanceId=inst, SnapshotId=msid)
    assert code == "IncorrectState" and host_id(b) in msg and mid in msg, (code, msg)
    assert pg.count(url, "volumes") == volumes_before
    assert pg.count(url, "replace_root_volume_tasks") == 0
    team_b.detach_volume(VolumeId=mid)

    # On B both go: the managed volume's file with it, the registered file stays (the user's).
    admin_b.delete_volume(VolumeId=registered)
    admin_b.delete_volume(VolumeId=mid)
    assert dh.sha256_file(path) == sha
    assert not Path(image).exists()
    left = {v["VolumeId"] for v in admin_a.describe_volumes()["Volumes"]}
    assert registered not in left and mid not in left
