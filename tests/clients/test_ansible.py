"""Ansible's amazon.aws modules (Debian's `ansible`, amazon.aws 5.x) against a live snapvold.

Every playbook runs on localhost with connection local, Debian's /usr/bin/python3 (and its
boto3) for the modules, and module_defaults for the whole amazon.aws group: endpoint_url,
aws_access_key, aws_secret_key, region. The results come back through the json stdout callback
and are checked field by field, then cross-checked with boto3 against the daemon.

Set-up (module scope): team-1 and team-2 (a key and a 16 MiB volume each, from
daemon_helpers), and for team-1 an instance `web-1` with two registered volumes of different
content: `web-1-root` at /dev/xvda (boot) and `web-1-data` at /dev/xvdf; plus two unattached
volumes (`minage`, `tagme`) that only one test each touches.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import clients_helpers as ch  # noqa: E402
from clients_helpers import task  # noqa: E402

dh = ch.dh

T0 = time.monotonic()


class Env:
    def __init__(self, svc, ansible, instance_id, boot, data, minage, tagme):
        self.svc = svc
        self.ansible = ansible
        self.instance_id = instance_id
        self.boot = boot
        self.data = data
        self.minage = minage
        self.tagme = tagme
        self.ec2 = svc.client("team-1")
        self.account_id = svc.accounts["team-1"].account_id


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    exe = ch.ansible_playbook_exe()
    version = ch.amazon_aws_version()
    dh.note(f"ansible: {exe}, amazon.aws {version}")
    assert int(version.split(".")[0]) >= 5, f"amazon.aws {version}: these tests are written for 5.x"
    svc = dh.make_service(tmp_path_factory, "ansible")
    try:
        instance_id = ch.create_instance(svc, "team-1", "web-1")
        boot = ch.register_volume(svc, "team-1", "web-1-root", seed=2, instance_id=instance_id,
                                  device="/dev/xvda", boot=True)
        data = ch.register_volume(svc, "team-1", "web-1-data", seed=7, instance_id=instance_id,
                                  device="/dev/xvdf")
        assert boot.sha256 != data.sha256, "the boot and data images must differ"
        minage = ch.register_volume(svc, "team-1", "minage", seed=5)
        tagme = ch.register_volume(svc, "team-1", "tagme", seed=6)
        ansible = ch.Ansible(svc, svc.root / "ansible")
        yield Env(svc, ansible, instance_id, boot, data, minage, tagme)
        for name, secs in ansible.timings:
            dh.note(f"  playbook {name}: {secs:.1f} s")
    finally:
        dh.finish_service(svc)
        dh.note(f"test_ansible: {time.monotonic() - T0:.1f} s in all")


def boto_snapshot(e: Env, snapshot_id: str) -> dict:
    snaps = e.ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert [s["SnapshotId"] for s in snaps] == [snapshot_id], snaps
    return snaps[0]


def user_tags(tags: dict) -> dict:
    """A volume's tags as Ansible returns them, without where it lives (aws:snapvol:host,
    aws:snapvol:nbd: docs/api.md, "Where a volume lives"), which every volume carries."""
    return {k: v for k, v in tags.items() if k not in dh.WHERE_TAGS}


def snapshot_ids(e: Env) -> list[str]:
    pages = e.ec2.get_paginator("describe_snapshots").paginate(OwnerIds=["self"])
    return [s["SnapshotId"] for p in pages for s in p["Snapshots"]]


def boto_volume(e: Env, volume_id: str) -> dict:
    vols = e.ec2.describe_volumes(VolumeIds=[volume_id])["Volumes"]
    assert [v["VolumeId"] for v in vols] == [volume_id], vols
    return vols[0]


def boto_create_snapshot(e: Env, volume_id: str, tags: dict, description: str = "") -> str:
    kw = {"VolumeId": volume_id, "Description": description}
    if tags:
        kw["TagSpecifications"] = [{"ResourceType": "snapshot",
                                    "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]
    sid = e.ec2.create_snapshot(**kw)["SnapshotId"]
    e.ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    return sid


def assert_snapshot_result(r: dict, *, volume_id: str, account_id: str):
    """The fields ec2_snapshot returns for a snapshot it created or found."""
    assert dh.SNAP_ID.match(r["snapshot_id"]), r
    assert r["volume_id"] == volume_id, r
    assert r["volume_size"] == 1, r
    assert len(r["snapshots"]) == 1, r
    s = r["snapshots"][0]
    assert s["snapshot_id"] == r["snapshot_id"], s
    assert s["volume_id"] == volume_id, s
    assert s["owner_id"] == account_id, s
    assert s["encrypted"] is False, s
    assert s["state"] in ("pending", "completed"), s
    assert s["tags"] == r["tags"], s
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", s["start_time"]), s


# ---------------------------------------------------------------------------------------------
# ec2_snapshot

DEVICES = ["/dev/xvdf", "/dev/xvda"]


@pytest.fixture(scope="module")
def by_device(env):
    """One playbook, one ec2_snapshot task per device (ignore_errors, so each runs whatever the
    other did); returns (the play, {snapshot id: volume id} of the snapshots it created)."""
    before = set(snapshot_ids(env))
    play = env.ansible.run([
        {**task(f"snapshot {device}", "ec2_snapshot", instance_id=env.instance_id, device_name=device,
                description=f"by device {device}", wait=True, wait_timeout=60), "ignore_errors": True}
        for device in DEVICES
    ], name="snapshot-by-device")
    made = {sid: boto_snapshot(env, sid) for sid in set(snapshot_ids(env)) - before}
    return play, made


@pytest.mark.parametrize("device", DEVICES)
def test_snapshot_by_instance_and_device(env, by_device, device, tmp_path):
    """ec2_snapshot with instance_id + device_name snapshots the volume at that device (the
    module finds it with DescribeVolumes filters attachment.instance-id and attachment.device)."""
    want = env.data if device == "/dev/xvdf" else env.boot
    other = env.boot if want is env.data else env.data
    play, all_made = by_device
    # First what was snapshotted (whatever the module then made of the answers).
    made = {sid: s["VolumeId"] for sid, s in all_made.items() if s.get("Description") == f"by device {device}"}
    assert list(made.values()) == [want.volume_id], (
        f"ec2_snapshot instance_id={env.instance_id} device_name={device} created {made} "
        f"(snapshot → volume); expected one snapshot of {want.volume_id} ({device}); "
        f"the other disk is {other.volume_id}")
    r = play.task(f"snapshot {device}")
    assert r["changed"] is True, r
    assert r["volume_id"] == want.volume_id, (
        f"ec2_snapshot instance_id={env.instance_id} device_name={device} snapshotted "
        f"{r['volume_id']}, expected {want.volume_id} (the other disk is {other.volume_id})")
    assert_snapshot_result(r, volume_id=want.volume_id, account_id=env.account_id)
    # The module copies the volume's Name tag to the snapshot.
    assert r["tags"] == {"Name": want.path.stem}, r
    assert r["snapshots"][0]["description"] == f"by device {device}", r

    s = boto_snapshot(env, r["snapshot_id"])
    assert s["VolumeId"] == want.volume_id, s
    assert s["State"] == "completed", s  # wait: true
    assert s["Progress"] == "100%", s
    assert s["Description"] == f"by device {device}", s
    assert dh.tags_of(s) == {"Name": want.path.stem}, s
    # The data is the device's disk, not the other one.
    got = ch.restored_sha256(env.svc, r["snapshot_id"], tmp_path / "restored.img")
    assert got == want.sha256, f"snapshot of {device} restores to another disk's content"


def test_snapshot_volume_description_tags_wait(env):
    """ec2_snapshot with volume_id, description, snapshot_tags (Name, Owner) and wait: true."""
    play = env.ansible.run([
        task("tagged snapshot", "ec2_snapshot", volume_id=env.data.volume_id,
             description="nightly data", snapshot_tags={"Name": "nightly-data", "Owner": "team-1"},
             wait=True, wait_timeout=60),
    ], name="snapshot-tags")
    r = play.task("tagged snapshot")
    assert r["changed"] is True, r
    assert_snapshot_result(r, volume_id=env.data.volume_id, account_id=env.account_id)
    # snapshot_tags win over the volume's Name
    assert r["tags"] == {"Name": "nightly-data", "Owner": "team-1"}, r
    assert r["snapshots"][0]["description"] == "nightly data", r

    s = boto_snapshot(env, r["snapshot_id"])
    assert s["State"] == "completed", s
    assert s["Progress"] == "100%", s
    assert s["Description"] == "nightly data", s
    assert s["VolumeId"] == env.data.volume_id, s
    assert s["OwnerId"] == env.account_id, s
    assert dh.tags_of(s) == {"Name": "nightly-data", "Owner": "team-1"}, s


def test_snapshot_last_snapshot_min_age(env):
    """last_snapshot_min_age: the first run snapshots the volume (it has none: other volumes'
    recent snapshots do not count), the second finds that snapshot and changes nothing."""
    args = dict(volume_id=env.minage.volume_id, description="at most one per 10 min",
                last_snapshot_min_age=10, wait=True, wait_timeout=60)
    play = env.ansible.run([task("first", "ec2_snapshot", **args),
                            task("second", "ec2_snapshot", **args)], name="min-age")
    first = play.task("first")
    assert first["changed"] is True, (
        "the first run must create a snapshot: minage has none yet, yet the module found "
        f"{first.get('snapshot_id')} of {first.get('volume_id')}")
    assert_snapshot_result(first, volume_id=env.minage.volume_id, account_id=env.account_id)
    second = play.task("second")
    assert second["changed"] is False, second
    assert second["snapshot_id"] == first["snapshot_id"], second
    assert second["volume_id"] == env.minage.volume_id, second

    snaps = env.ec2.describe_snapshots(Filters=[{"Name": "volume-id", "Values": [env.minage.volume_id]}])["Snapshots"]
    assert [s["SnapshotId"] for s in snaps] == [first["snapshot_id"]], snaps


def test_snapshot_info_by_ids_and_tag_filter(env):
    """ec2_snapshot_info by snapshot_ids, and by filters tag:Owner."""
    alice = boto_create_snapshot(env, env.boot.volume_id, {"Name": "alice-root", "Owner": "alice"}, "alice's")
    bob = boto_create_snapshot(env, env.data.volume_id, {"Name": "bob-data", "Owner": "bob"}, "bob's")
    alice2 = boto_create_snapshot(env, env.data.volume_id, {"Owner": "alice"}, "alice's second")
    play = env.ansible.run([
        task("by id", "ec2_snapshot_info", snapshot_ids=[alice]),
        task("by owner tag", "ec2_snapshot_info", filters={"tag:Owner": "alice"}),
        task("by owner tag bob", "ec2_snapshot_info", filters={"tag:Owner": "bob"}),
        task("by missing tag value", "ec2_snapshot_info", filters={"tag:Owner": "nobody"}),
    ], name="snapshot-info")

    by_id = play.task("by id")
    assert by_id["changed"] is False, by_id
    assert [s["snapshot_id"] for s in by_id["snapshots"]] == [alice], by_id
    s = by_id["snapshots"][0]
    assert s["volume_id"] == env.boot.volume_id, s
    assert s["description"] == "alice's", s
    assert s["state"] == "completed", s
    assert s["progress"] == "100%", s
    assert s["owner_id"] == env.account_id, s
    assert s["volume_size"] == 1, s
    assert s["encrypted"] is False, s
    assert s["tags"] == {"Name": "alice-root", "Owner": "alice"}, s

    got = sorted(s["snapshot_id"] for s in play.task("by owner tag")["snapshots"])
    assert got == sorted([alice, alice2]), f"filters tag:Owner=alice gave {got}, expected {sorted([alice, alice2])}"
    got = [s["snapshot_id"] for s in play.task("by owner tag bob")["snapshots"]]
    assert got == [bob], f"filters tag:Owner=bob gave {got}, expected [{bob}]"
    assert play.task("by missing tag value")["snapshots"] == [], play.task("by missing tag value")

    # boto3 agrees
    resp = env.ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag:Owner", "Values": ["alice"]}])
    assert sorted(x["SnapshotId"] for x in resp["Snapshots"]) == sorted([alice, alice2]), resp


def test_snapshot_absent(env):
    """ec2_snapshot state: absent deletes (changed), and a second time changes nothing."""
    sid = boto_create_snapshot(env, env.boot.volume_id, {"Name": "doomed"})
    play = env.ansible.run([
        task("delete", "ec2_snapshot", snapshot_id=sid, state="absent"),
        task("delete again", "ec2_snapshot", snapshot_id=sid, state="absent"),
    ], name="snapshot-absent")
    assert play.task("delete")["changed"] is True, play.task("delete")
    assert play.task("delete again")["changed"] is False, play.task("delete again")
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError) as ei:
        env.ec2.describe_snapshots(SnapshotIds=[sid])
    assert ei.value.response["Error"]["Code"] == "InvalidSnapshot.NotFound", ei.value.response


# ---------------------------------------------------------------------------------------------
# ec2_vol_info

def test_vol_info_filters(env):
    """ec2_vol_info with filters attachment.instance-id, attachment.device and tag:Name."""
    play = env.ansible.run([
        task("by instance", "ec2_vol_info", filters={"attachment.instance-id": env.instance_id}),
        task("by device", "ec2_vol_info", filters={"attachment.instance-id": env.instance_id,
                                                   "attachment.device": "/dev/xvdf"}),
        task("by device only", "ec2_vol_info", filters={"attachment.device": "/dev/xvda"}),
        task("by name", "ec2_vol_info", filters={"tag:Name": "web-1-data"}),
        task("by unknown name", "ec2_vol_info", filters={"tag:Name": "no-such-volume"}),
    ], name="vol-info")

    got = sorted(v["id"] for v in play.task("by instance")["volumes"])
    want = sorted([env.boot.volume_id, env.data.volume_id])
    assert got == want, f"attachment.instance-id={env.instance_id}: got {got}, expected {want}"

    vols = play.task("by device")["volumes"]
    assert [v["id"] for v in vols] == [env.data.volume_id], (
        f"attachment.device=/dev/xvdf: got {[v['id'] for v in vols]}, expected [{env.data.volume_id}]")
    v = vols[0]
    assert v["status"] == "in-use", v
    assert v["size"] == 1, v
    assert v["encrypted"] is False, v
    assert v["zone"], v
    assert v["region"] == dh.REGION, v
    assert v["snapshot_id"] == "", v
    assert user_tags(v["tags"]) == {"Name": "web-1-data"}, v
    assert v["tags"]["aws:snapvol:host"], v
    assert len(v["attachment_set"]) == 1, v
    a = v["attachment_set"][0]
    assert a["device"] == "/dev/xvdf", a
    assert a["instance_id"] == env.instance_id, a
    assert a["status"] == "attached", a
    assert isinstance(a["delete_on_termination"], bool), a

    got = [v["id"] for v in play.task("by device only")["volumes"]]
    assert got == [env.boot.volume_id], f"attachment.device=/dev/xvda: got {got}, expected [{env.boot.volume_id}]"
    got = [v["id"] for v in play.task("by name")["volumes"]]
    assert got == [env.data.volume_id], f"tag:Name=web-1-data: got {got}, expected [{env.data.volume_id}]"
    got = [v["id"] for v in play.task("by unknown name")["volumes"]]
    assert got == [], f"tag:Name=no-such-volume: got {got}, expected []"


# ---------------------------------------------------------------------------------------------
# ec2_vol: an empty managed volume, created, attached, detached and deleted

def test_vol_create_attach_delete(env):
    name = "clients-scratch"
    create = env.ansible.run([
        task("create", "ec2_vol", volume_size=1, zone="us-east-1a", name=name,
             tags={"Purpose": "scratch", "Owner": "team-1"}),
    ], name="vol-create").task("create")
    assert create["changed"] is True, create
    vol_id = create["volume_id"]
    assert dh.VOL_ID.match(vol_id), create
    v = create["volume"]
    assert v["id"] == vol_id, v
    assert v["size"] == 1, v
    assert v["zone"] == "us-east-1a", v
    assert v["status"] == "available", v
    assert v["encrypted"] is False, v
    assert v["attachment_set"] == [], v
    assert user_tags(v["tags"]) == {"Name": name, "Purpose": "scratch", "Owner": "team-1"}, v
    # The NBD export of the host that made it (with several hosts, whichever answered).
    home = env.svc.volume_file(vol_id).parent.parent
    assert v["tags"]["aws:snapvol:nbd"] == f"nbd+unix:///{vol_id}?socket={home / 'nbd.sock'}", v

    b = boto_volume(env, vol_id)
    assert b["Size"] == 1 and b["State"] == "available" and b["AvailabilityZone"] == "us-east-1a", b
    assert b.get("SnapshotId", "") == "", b
    assert dh.tags_of(b) == {"Name": name, "Purpose": "scratch", "Owner": "team-1"}, b

    # New tags on the existing volume: purge_tags (ec2_vol's default) removes the user tags not
    # given and leaves where the volume lives, which is the system's (aws:snapvol:…).
    retag = env.ansible.run([
        task("retag", "ec2_vol", id=vol_id, zone="us-east-1a", name=name, tags={"Purpose": "kept"}),
    ], name="vol-retag").task("retag")
    assert retag["changed"] is True, retag
    b = boto_volume(env, vol_id)
    assert dh.tags_of(b) == {"Name": name, "Purpose": "kept"}, b
    assert {t["Key"] for t in b["Tags"]} >= {"aws:snapvol:host", "aws:snapvol:nbd"}, b

    attach_args = dict(id=vol_id, instance=env.instance_id, device_name="/dev/xvdg")
    play = env.ansible.run([task("attach", "ec2_vol", **attach_args),
                            task("attach again", "ec2_vol", **attach_args)], name="vol-attach")
    attach = play.task("attach")
    assert attach["changed"] is True, attach
    assert attach["volume_id"] == vol_id, attach
    assert attach["device"] == "/dev/xvdg", attach
    att = attach["volume"]["attachment_set"]
    assert [(a["instance_id"], a["device"], a["status"]) for a in att] == [(env.instance_id, "/dev/xvdg", "attached")], att
    assert attach["volume"]["status"] == "in-use", attach
    again = play.task("attach again")
    assert again["changed"] is False, again

    b = boto_volume(env, vol_id)
    assert b["State"] == "in-use", b
    assert [(a["InstanceId"], a["Device"], a["State"]) for a in b["Attachments"]] == [(env.instance_id, "/dev/xvdg", "attached")], b
    inst = env.ec2.describe_instances(InstanceIds=[env.instance_id])["Reservations"][0]["Instances"][0]
    assert inst["Placement"]["AvailabilityZone"], inst
    devs = {m["DeviceName"]: m["Ebs"]["VolumeId"] for m in inst["BlockDeviceMappings"]}
    assert devs == {"/dev/xvda": env.boot.volume_id, "/dev/xvdf": env.data.volume_id, "/dev/xvdg": vol_id}, inst

    play = env.ansible.run([task("delete", "ec2_vol", id=vol_id, state="absent"),
                            task("delete again", "ec2_vol", id=vol_id, state="absent")], name="vol-delete")
    assert play.task("delete")["changed"] is True, play.task("delete")
    assert play.task("delete again")["changed"] is False, play.task("delete again")
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError) as ei:
        env.ec2.describe_volumes(VolumeIds=[vol_id])
    assert ei.value.response["Error"]["Code"] == "InvalidVolume.NotFound", ei.value.response
    inst = env.ec2.describe_instances(InstanceIds=[env.instance_id])["Reservations"][0]["Instances"][0]
    assert {m["DeviceName"] for m in inst["BlockDeviceMappings"]} == {"/dev/xvda", "/dev/xvdf"}, inst


# ---------------------------------------------------------------------------------------------
# ec2_tag

def tag_steps(e: Env, resource: str, initial: dict, describe_tags, system: dict | None = None):
    """present (added, idempotent), purge_tags, absent with a non-matching value, absent; each
    step cross-checked with boto3 (`describe_tags()` → the resource's tags). system: the tags
    snapvol keeps on the resource (a volume's where tags), which Ansible sees too."""
    system = system or {}
    play = e.ansible.run([
        task("add", "ec2_tag", resource=resource, tags={"env": "test", "team": "a"}),
        task("add again", "ec2_tag", resource=resource, tags={"env": "test", "team": "a"}),
    ], name="tag-add")
    add = play.task("add")
    assert add["changed"] is True, add
    assert add["added_tags"] == {"env": "test", "team": "a"}, add
    assert add["tags"] == {**initial, **system, "env": "test", "team": "a"}, add
    again = play.task("add again")
    assert again["changed"] is False, again
    assert again["tags"] == {**initial, **system, "env": "test", "team": "a"}, again
    assert describe_tags() == {**initial, "env": "test", "team": "a"}

    # Purging removes every user tag and leaves the system's (aws:, as Ansible skips them).
    purge = e.ansible.run([
        task("purge", "ec2_tag", resource=resource, tags={"env": "prod"}, purge_tags=True),
    ], name="tag-purge").task("purge")
    assert purge["changed"] is True, purge
    assert purge["removed_tags"] == {**initial, "team": "a"}, purge
    assert purge["added_tags"] == {"env": "prod"}, purge
    assert purge["tags"] == {**system, "env": "prod"}, purge
    assert describe_tags() == {"env": "prod"}

    play = e.ansible.run([
        task("absent other value", "ec2_tag", resource=resource, tags={"env": "test"}, state="absent"),
        task("absent", "ec2_tag", resource=resource, tags={"env": "prod"}, state="absent"),
    ], name="tag-absent")
    other = play.task("absent other value")
    assert other["changed"] is False, other
    assert other["tags"] == {**system, "env": "prod"}, other
    gone = play.task("absent")
    assert gone["changed"] is True, gone
    assert gone["removed_tags"] == {"env": "prod"}, gone
    assert gone["tags"] == system, gone
    assert describe_tags() == {}


def test_tag_snapshot(env):
    sid = boto_create_snapshot(env, env.boot.volume_id, {"Name": "tag-me", "Owner": "team-1"})

    def tags_now():
        s = boto_snapshot(env, sid)
        by_describe_tags = env.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [sid]}])["Tags"]
        assert all(t["ResourceType"] == "snapshot" and t["ResourceId"] == sid for t in by_describe_tags), by_describe_tags
        assert {t["Key"]: t["Value"] for t in by_describe_tags} == dh.tags_of(s), (by_describe_tags, s)
        return dh.tags_of(s)

    tag_steps(env, sid, {"Name": "tag-me", "Owner": "team-1"}, tags_now)


def test_tag_volume(env):
    vid = env.tagme.volume_id

    def tags_now():
        v = boto_volume(env, vid)
        by_describe_tags = env.ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [vid]}])["Tags"]
        assert all(t["ResourceType"] == "volume" and t["ResourceId"] == vid for t in by_describe_tags), by_describe_tags
        assert {t["Key"]: t["Value"] for t in by_describe_tags
                if t["Key"] not in dh.WHERE_TAGS} == dh.tags_of(v), (by_describe_tags, v)
        return dh.tags_of(v)

    where = {t["Key"]: t["Value"] for t in boto_volume(env, vid)["Tags"] if t["Key"] in dh.WHERE_TAGS}
    assert set(where) == {"aws:snapvol:host"}, where  # a registered volume: no NBD export
    tag_steps(env, vid, {"Name": "tagme"}, tags_now, system=where)

