"""Freeze hooks: an instance's pre and post commands, set by an administrator on the host
(`snapvol instance set-hooks`), run around the cut of all its volumes by EC2 CreateSnapshots
(boto3) and by lifecycle policies targeting instances: pre before the cut, post after it (also
after a failed snapshot), a pre-command that times out is killed and the failure policy applies
(fail or crash-consistent); a team cannot set or see them through the API."""
from __future__ import annotations

import json
import time

import pytest
from botocore.exceptions import ClientError

import daemon_helpers as dh

ROLE = "arn:aws:iam::123456789012:role/AWSDataLifecycleManagerDefaultRole"
MARK = 3 * 1024 * 1024  # where hooks write their markers in a volume (inside a data block)

# The hook: logs its stage with a timestamp and its environment, then does what the instance's
# test asks for through files beside it (a shell script, so the hook itself runs without a shell).
HOOK = r"""#!/bin/sh
dir=$(dirname "$0")
echo "$(date +%s.%N)|$SNAPVOL_HOOK_STAGE|${SNAPVOL_PRE_RESULT:-}|$SNAPVOL_INSTANCE_ID|$SNAPVOL_VOLUME_IDS|$SNAPVOL_SNAPSHOT_IDS|${HOME:-unset}" >> "$dir/log"
if [ -f "$dir/$SNAPVOL_HOOK_STAGE.sh" ]; then . "$dir/$SNAPVOL_HOOK_STAGE.sh"; fi
echo "$SNAPVOL_HOOK_STAGE done"
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "svc", teams=1)
        yield svc
    finally:
        if svc is not None:
            dh.finish_service(svc)


class Instance:
    """An instance of team-1 with two registered 8 MiB image files and a hook directory."""

    def __init__(self, svc, name: str):
        self.svc = svc
        acct = svc.accounts["team-1"].account_id
        self.id = svc.cli("instance", "create", "--account-id", acct, "--name", name).stdout.strip()
        self.dir = svc.root / name
        self.dir.mkdir()
        self.paths, self.volume_ids = [], []
        for n, dev in enumerate(["/dev/sdf", "/dev/sdg"]):
            path = dh.genvol_create(self.dir / f"disk{n}.img", "8M", 40 + n, holes=False)
            vid = svc.cli("volume", "register", "--path", path, "--account-id", acct, "--name", f"{name}-{n}",
                          "--instance-id", self.id, "--device", dev).stdout.strip()
            self.paths.append(path)
            self.volume_ids.append(vid)
        self.hook = self.dir / "hook.sh"
        self.hook.write_text(HOOK)
        self.hook.chmod(0o755)

    def stage(self, name: str, script: str):
        (self.dir / f"{name}.sh").write_text(script)

    def log(self) -> list[list[str]]:
        """[time, stage, pre result, instance, volume ids, snapshot ids, HOME] per run."""
        path = self.dir / "log"
        return [line.split("|") for line in path.read_text().splitlines()] if path.exists() else []

    def set_hooks(self, *args):
        return self.svc.cli("instance", "set-hooks", self.id, "--pre", str(self.hook), "--post", str(self.hook), *args)


def mark(path, text: str) -> str:
    """A shell line that writes text into the image at MARK, in place."""
    return f"printf '{text}' | dd of={path} bs=1 seek={MARK} conv=notrunc status=none\n"


def restored(svc, sid: str) -> bytes:
    admin = svc.client("admin")
    vid = admin.create_volume(SnapshotId=sid, AvailabilityZone="us-east-1a")["VolumeId"]
    dh.wait_loaded(admin, vid)
    return (svc.data_dir / "volumes" / f"{vid}.img").read_bytes()


def settle(svc, ids, timeout=120) -> dict:
    ec2 = svc.client("team-1")

    def states():
        return {s["SnapshotId"]: s for s in ec2.describe_snapshots(SnapshotIds=list(ids))["Snapshots"]}

    dh.wait_until(lambda: all(s["State"] != "pending" for s in states().values()), timeout, 0.1, "snapshots to settle")
    return states()


def hook_events(svc, instance_id) -> list[dict]:
    return [e for e in svc.daemon.log_events() if e.get("event") == "instance_hook" and e.get("instance_id") == instance_id]


def wait_thawed(svc, inst):
    """Until the post-command has finished (its run is reported once it has)."""
    dh.wait_until(lambda: any(e["stage"] == "post" for e in hook_events(svc, inst.id)), 60, 0.1, "the post-command")


def test_pre_runs_before_the_cut_and_post_after_it_through_create_snapshots(service):
    inst = Instance(service, "db")
    inst.set_hooks("--timeout", "20", "--on-pre-failure", "fail")
    # The pre-command "flushes" (writes FROZEN into disk0); the post-command scribbles THAWED
    # over it: a snapshot made between the two holds FROZEN.
    inst.stage("pre", mark(inst.paths[0], "FROZEN"))
    inst.stage("post", mark(inst.paths[0], "THAWED"))
    ec2 = service.client("team-1")
    out = ec2.create_snapshots(InstanceSpecification={"InstanceId": inst.id}, Description="app")
    ids = {s["VolumeId"]: s["SnapshotId"] for s in out["Snapshots"]}
    assert set(ids) == set(inst.volume_ids)
    snaps = settle(service, ids.values())
    for s in snaps.values():
        assert s["State"] == "completed", s
        # Registered images here are read live (no reflink on this file system), frozen until read.
        assert dh.cut_tags(service, s["SnapshotId"])["aws:snapvol:consistency"] == "application-consistent (frozen until it was read)", s
    wait_thawed(service, inst)
    (pre, post) = inst.log()
    assert pre[1] == "pre" and post[1] == "post" and float(pre[0]) < float(post[0]), inst.log()
    assert pre[2] == "" and post[2] == "ok"
    assert pre[3] == inst.id and pre[6] == "unset"  # a clean environment: the daemon's HOME is not passed
    assert pre[4].split() == inst.volume_ids and pre[5].split() == [ids[v] for v in inst.volume_ids], pre
    assert post[3:6] == pre[3:6]
    data = restored(service, ids[inst.volume_ids[0]])
    assert data[MARK:MARK + 6] == b"FROZEN"
    assert inst.paths[0].read_bytes()[MARK:MARK + 6] == b"THAWED"
    # Both runs are in the daemon's log and its audit log, with what the commands printed.
    events = hook_events(service, inst.id)
    assert [(e["stage"], e["ok"], e["output"]) for e in events] == [("pre", True, "pre done\n"),
                                                                   ("post", True, "post done\n")]
    audit = [json.loads(line) for line in (service.data_dir / "audit.log").read_text().splitlines()]
    assert [e["stage"] for e in audit if e.get("event") == "instance_hook" and e["instance_id"] == inst.id] == \
        ["pre", "post"]
    # A plain CreateSnapshot of one of its volumes runs no hook (as DLM runs scripts only for
    # instance targets): nothing is frozen and nothing is claimed.
    one = ec2.create_snapshot(VolumeId=inst.volume_ids[1])["SnapshotId"]
    single = settle(service, [one])[one]
    assert single["State"] == "completed", single
    # No hooks ran for it: its tag says only how it was cut, and claims no consistency.
    assert dh.cut_tags(service, single["SnapshotId"])["aws:snapvol:consistency"].startswith("crash-unsafe (read while running)"), single
    assert len(inst.log()) == 2


def test_the_post_command_runs_after_a_failed_snapshot(service):
    inst = Instance(service, "broken")
    inst.set_hooks("--on-pre-failure", "fail")
    # The pre-command takes disk1 away (its snapshot cannot read it); the post-command puts it back.
    hidden = str(inst.paths[1]) + ".away"
    inst.stage("pre", f"mv {inst.paths[1]} {hidden}\n")
    inst.stage("post", f"mv {hidden} {inst.paths[1]}\n")
    out = service.client("team-1").create_snapshots(InstanceSpecification={"InstanceId": inst.id})
    ids = {s["VolumeId"]: s["SnapshotId"] for s in out["Snapshots"]}
    snaps = settle(service, ids.values())
    assert snaps[ids[inst.volume_ids[0]]]["State"] == "completed"
    failed = snaps[ids[inst.volume_ids[1]]]
    assert failed["State"] == "error" and "cannot read the volume" in failed.get("StateMessage", ""), failed
    wait_thawed(service, inst)
    assert [e[1] for e in inst.log()] == ["pre", "post"]
    assert inst.paths[1].exists()


@pytest.mark.parametrize("policy", ["fail", "crash-consistent"])
def test_a_pre_command_that_times_out_is_killed_and_the_failure_policy_applies(service, policy):
    inst = Instance(service, f"slow-{policy}")
    inst.set_hooks("--timeout", "1", "--on-pre-failure", policy)
    # The pre-command hangs (and leaves a child behind); the timeout kills them both.
    late = inst.dir / "late"
    inst.stage("pre", f"(sleep 3; touch {late}) &\nsleep 30\n")
    began = time.monotonic()
    out = service.client("team-1").create_snapshots(InstanceSpecification={"InstanceId": inst.id})
    took = time.monotonic() - began
    assert took < 10, took
    ids = [s["SnapshotId"] for s in out["Snapshots"]]
    snaps = settle(service, ids)
    for s in snaps.values():
        if policy == "fail":
            assert s["State"] == "error", s
            assert s["StateMessage"] == "pre-command did not finish within 1 s (killed); no data was taken", s
        else:
            assert s["State"] == "completed", s
            assert dh.cut_tags(service, s["SnapshotId"])["aws:snapvol:consistency"].startswith(
                    "crash-consistent (pre-command did not finish within 1 s (killed)); crash-unsafe (read while running)"), s
    wait_thawed(service, inst)
    assert [(e[1], e[2]) for e in inst.log()] == [("pre", ""), ("post", "failed")]
    time.sleep(3.5)
    assert not late.exists(), "the timed-out pre-command's child lived on"
    if policy == "fail":  # no data taken: nothing to restore, nothing stored
        for sid in ids:
            with pytest.raises(ClientError):
                service.client("admin").create_volume(SnapshotId=sid, AvailabilityZone="us-east-1a")


def test_a_team_can_neither_set_nor_see_hooks(service):
    inst = Instance(service, "secret")
    inst.set_hooks("--timeout", "5")
    signer = service.signer("team-1")
    for action in ["SetInstanceHooks", "ModifyInstanceHooks"]:
        status, _, raw = signer.send(f"Action={action}&Version=2016-11-15&InstanceId={inst.id}&PreCommand=id")
        assert status == 400 and dh.parse_ec2_error(raw)[0] == "InvalidAction", raw
    # The team's view of its instance never shows the commands.
    status, _, raw = signer.send(f"Action=DescribeInstances&Version=2016-11-15&InstanceId.1={inst.id}")
    assert status == 200 and str(inst.hook).encode() not in raw, raw
    # The administrator's, on the host: the command line.
    shown = json.loads(service.cli("-o", "json", "instance", "show", inst.id).stdout)
    assert shown["Hooks"]["PreCommand"] == str(inst.hook) and shown["Hooks"]["TimeoutSeconds"] == 5
    assert shown["Hooks"]["OnPreFailure"] == "crash-consistent"
    listed = {i["InstanceId"]: i for i in json.loads(service.cli("-o", "json", "instance", "list").stdout)["Instances"]}
    assert listed[inst.id]["Hooks"]["PostCommand"] == str(inst.hook)
    assert "pre+post 5s crash-consistent" in service.cli("instance", "list").stdout
    # What could never run is refused; --clear removes them.
    bad = service.cli("instance", "set-hooks", inst.id, "--pre", "sh -c 'unterminated", check=False)
    assert bad.returncode != 0 and "unterminated" in bad.stderr, dh.describe(bad)
    bad = service.cli("instance", "set-hooks", inst.id, "--on-pre-failure", "ignore", check=False)
    assert bad.returncode != 0, dh.describe(bad)
    service.cli("instance", "set-hooks", inst.id, "--clear")
    assert json.loads(service.cli("-o", "json", "instance", "show", inst.id).stdout)["Hooks"] is None


def test_a_lifecycle_policy_on_instances_runs_the_hooks(service):
    """A schedule for a minute ~10 s away on the schedules' clock (dh.schedule_soon) on instances
    named `nightly`."""
    inst = Instance(service, "nightly")
    inst.set_hooks("--on-pre-failure", "fail")
    inst.stage("pre", mark(inst.paths[0], "FROZEN"))
    inst.stage("post", mark(inst.paths[0], "THAWED"))
    at = dh.schedule_soon(service)
    details = {"ResourceTypes": ["INSTANCE"], "TargetTags": [{"Key": "Name", "Value": "nightly"}],
               "Schedules": [{"Name": "frozen", "CreateRule": {"Interval": 24, "IntervalUnit": "HOURS",
                                                                "Times": [at.strftime("%H:%M")]},
                              "RetainRule": {"Count": 2}}]}
    dlm = dh.dlm_client(service, "team-1")
    pid = dlm.create_lifecycle_policy(ExecutionRoleArn=ROLE, Description="hooks", State="ENABLED",
                                      PolicyDetails=details)["PolicyId"]
    ec2 = service.client("team-1")

    def made():
        return ec2.describe_snapshots(OwnerIds=["self"],
                                      Filters=[{"Name": "tag:aws:dlm:lifecycle-policy-id", "Values": [pid]}])["Snapshots"]

    dh.wait_until(lambda: len(made()) == 2 and all(s["State"] == "completed" for s in made()), 90, 0.5,
                  "the policy's snapshots")
    dlm.update_lifecycle_policy(PolicyId=pid, State="DISABLED")
    snaps = {s["VolumeId"]: s for s in made()}
    assert set(snaps) == set(inst.volume_ids)
    for s in snaps.values():
        # Registered images here are read live (no reflink on this file system), frozen until read.
        assert dh.cut_tags(service, s["SnapshotId"])["aws:snapvol:consistency"] == "application-consistent (frozen until it was read)", s
    wait_thawed(service, inst)
    assert [e[1] for e in inst.log()] == ["pre", "post"]
    assert inst.log()[0][5].split() == [snaps[v]["SnapshotId"] for v in inst.volume_ids]
    assert restored(service, snaps[inst.volume_ids[0]]["SnapshotId"])[MARK:MARK + 6] == b"FROZEN"
