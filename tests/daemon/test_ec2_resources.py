"""EC2 fidelity of resources: CreateTags/DeleteTags rules, snapshot sharing between teams,
administrators acting on teams' resources (with the audit log's resource_account_id), and
CreateVolume's parameters."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

import daemon_helpers as dh
from ec2_fidelity_helpers import (
    AZ,
    MISSING_VOL,
    client_error,
    new_instance,
    ok,
    refused,
    wait_snapshots,
    fidelity_service,
)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    yield from fidelity_service(tmp_path_factory, "resources")


# ---------------------------------------------------------------------------------------------
# 4. Tags

@pytest.fixture(scope="module")
def t1(service):
    """team-1's registered volume, an instance and a completed snapshot."""
    ec2 = service.client("team-1")
    vol = service.volumes["vol-team-1"].volume_id
    inst = new_instance(service, "team-1", "t1-host")
    snap = ec2.create_snapshot(VolumeId=vol, Description="t1")["SnapshotId"]
    wait_snapshots(ec2, [snap])
    return {"vol": vol, "inst": inst, "snap": snap, "ec2": ec2}


# Every snapshot says how it was cut (docs/api.md, "How a snapshot is cut").
CUT_TAGS = {"aws:snapvol:consistency", "aws:snapvol:changed-blocks"}


def tags_of_resource(ec2, rid) -> dict:
    out = ec2.describe_tags(Filters=[{"Name": "resource-id", "Values": [rid]}])["Tags"]
    return {t["Key"]: t["Value"] for t in out}


def test_create_tags_on_three_types_in_one_call(t1):
    ec2 = t1["ec2"]
    ec2.create_tags(Resources=[t1["snap"], t1["vol"], t1["inst"]], Tags=[{"Key": "three", "Value": "yes"}])
    out = ec2.describe_tags(Filters=[{"Name": "key", "Values": ["three"]}])["Tags"]
    assert {(t["ResourceId"], t["ResourceType"], t["Value"]) for t in out} == {
        (t1["snap"], "snapshot", "yes"), (t1["vol"], "volume", "yes"), (t1["inst"], "instance", "yes")}
    ec2.delete_tags(Resources=[t1["snap"], t1["vol"], t1["inst"]], Tags=[{"Key": "three"}])
    assert not ec2.describe_tags(Filters=[{"Name": "key", "Values": ["three"]}])["Tags"]


def test_delete_tags_value_rules(service, t1):
    ec2, vol = t1["ec2"], t1["vol"]
    ec2.create_tags(Resources=[vol], Tags=[{"Key": "any", "Value": "v1"}, {"Key": "e1", "Value": ""},
                                           {"Key": "e2", "Value": "x"}, {"Key": "m", "Value": "keep"}])
    # Value omitted: deleted whatever the value.
    ok(service, "team-1", "DeleteTags", {"ResourceId.1": vol, "Tag.1.Key": "any"})
    # Value="" deletes only an empty value.
    ok(service, "team-1", "DeleteTags", {"ResourceId.1": vol, "Tag.1.Key": "e1", "Tag.1.Value": "",
                                         "Tag.2.Key": "e2", "Tag.2.Value": ""})
    # A value that differs deletes nothing.
    ok(service, "team-1", "DeleteTags", {"ResourceId.1": vol, "Tag.1.Key": "m", "Tag.1.Value": "other"})
    have = tags_of_resource(ec2, vol)
    assert "any" not in have and "e1" not in have, have
    assert have.get("e2") == "x" and have.get("m") == "keep", have
    ec2.delete_tags(Resources=[vol], Tags=[{"Key": "e2"}, {"Key": "m"}])


def test_delete_tags_without_tag_n_deletes_all_user_tags(service, t1):
    ec2 = t1["ec2"]
    snap = t1["snap"]
    ec2.create_tags(Resources=[snap], Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": ""}])
    ok(service, "team-1", "DeleteTags", {"ResourceId.1": snap})
    # How the snapshot was cut is not one of its EC2 tags (tools that purge tags would trip over
    # it); it stays in the catalog, and naming it in DeleteTags or CreateTags is refused.
    assert tags_of_resource(ec2, snap) == {}
    assert set(dh.cut_tags(service, snap)) == CUT_TAGS
    # EC2's answer carries them as snapvol's members instead, the same values as the catalog.
    item = ok(service, "team-1", "DescribeSnapshots", {"SnapshotId.1": snap}).find("./snapshotSet/item")
    assert item.findtext("consistency") == dh.cut_tags(service, snap)["aws:snapvol:consistency"], ET.tostring(item)
    assert item.findtext("changedBlocks") == dh.cut_tags(service, snap)["aws:snapvol:changed-blocks"], ET.tostring(item)
    assert [it.findtext("key") for it in item.find("tagSet").findall("item")] == []
    for key in sorted(CUT_TAGS):
        code, msg = client_error(ec2.delete_tags, Resources=[snap], Tags=[{"Key": key}])
        assert code == "InvalidParameterValue" and key in msg, (code, msg)
        code, msg = client_error(ec2.create_tags, Resources=[snap], Tags=[{"Key": key, "Value": "point-in-time"}])
        assert code == "InvalidParameterValue", (code, msg)
    assert set(dh.cut_tags(service, snap)) == CUT_TAGS
    # Nor can the command line set one (a policy's snapshot keeping its aws:dlm: tags through
    # DeleteTags without Tag.N: test_lifecycle).
    res = service.cli("snapshot", "create", "--volume-id", t1["vol"], "--tag", "aws:dlm:lifecycle-policy-id=policy-0123456789abcdef0",
                      "--tag", "u=1", check=False)
    assert res.returncode != 0 and "aws:" in res.stderr, (res.returncode, res.stderr)


def test_tag_limit(service, t1):
    ec2, inst, snap = t1["ec2"], t1["inst"], t1["snap"]
    have = tags_of_resource(ec2, inst)  # Name
    fill = [{"Key": f"k{i:02d}", "Value": str(i)} for i in range(50 - len(have))]
    ec2.create_tags(Resources=[inst], Tags=fill)
    before_inst, before_snap = tags_of_resource(ec2, inst), tags_of_resource(ec2, snap)
    assert len(before_inst) == 50
    code, msg = client_error(ec2.create_tags, Resources=[snap, inst], Tags=[{"Key": "one-more", "Value": "x"}])
    assert code == "TagLimitExceeded", (code, msg)
    assert tags_of_resource(ec2, inst) == before_inst and tags_of_resource(ec2, snap) == before_snap, \
        "a refused CreateTags changed tags"
    # Overwriting an existing key on a full resource is allowed.
    ec2.create_tags(Resources=[inst], Tags=[{"Key": "k00", "Value": "new"}])
    assert tags_of_resource(ec2, inst)["k00"] == "new"
    ec2.delete_tags(Resources=[inst], Tags=[{"Key": t["Key"]} for t in fill])


def test_tag_errors(service, t1):
    ec2 = t1["ec2"]
    code, msg = client_error(ec2.create_tags, Resources=[t1["vol"]], Tags=[{"Key": "aws:x", "Value": "1"}])
    assert code == "InvalidParameterValue", (code, msg)
    for bad in ("volume-1", "vol-xyz", "i-"):
        code, msg = client_error(ec2.create_tags, Resources=[bad], Tags=[{"Key": "a", "Value": "1"}])
        assert code == "InvalidID", (bad, code, msg)
    code, msg = client_error(ec2.create_tags, Resources=[MISSING_VOL], Tags=[{"Key": "a", "Value": "1"}])
    assert code == "InvalidVolume.NotFound" and MISSING_VOL in msg, (code, msg)
    code, msg = client_error(ec2.delete_tags, Resources=[MISSING_VOL])
    assert code == "InvalidVolume.NotFound", (code, msg)
    # Another team's volume is NotFound too, and a call naming it changes nothing.
    other = service.volumes["vol-team-2"].volume_id
    code, _ = client_error(ec2.create_tags, Resources=[t1["vol"], other], Tags=[{"Key": "cross", "Value": "1"}])
    assert code == "InvalidVolume.NotFound"
    assert "cross" not in tags_of_resource(ec2, t1["vol"])
    # A legacy 8-hex id (EC2 resource ids before 2016) is well formed: NotFound, not InvalidID.
    legacy = "vol-1234abcd"
    code, msg = client_error(ec2.create_tags, Resources=[legacy], Tags=[{"Key": "a", "Value": "1"}])
    assert code == "InvalidVolume.NotFound" and legacy in msg, (legacy, code, msg)
    code, msg = client_error(ec2.delete_tags, Resources=[legacy])
    assert code == "InvalidVolume.NotFound", (legacy, code, msg)


@pytest.mark.parametrize("action,param,legacy,code", [
    ("DescribeVolumes", "VolumeId.1", "vol-1234abcd", "InvalidVolume.NotFound"),
    ("DeleteVolume", "VolumeId", "vol-1234abcd", "InvalidVolume.NotFound"),
    ("DescribeSnapshots", "SnapshotId.1", "snap-1234abcd", "InvalidSnapshot.NotFound"),
    ("DescribeInstances", "InstanceId.1", "i-1234abcd", "InvalidInstanceID.NotFound"),
])
def test_legacy_8_hex_ids_are_not_found_not_malformed(service, action, param, legacy, code):
    """EC2 ids of 8 hex digits (before 2016) are valid ids (DESIGN.md: "legacy 8-hex ids
    accepted on input"): an unknown one is NotFound, not *.Malformed."""
    refused(service, "team-1", action, {param: legacy}, code, contains=legacy)


def test_name_tag_on_volume(t1):
    ec2, vol = t1["ec2"], t1["vol"]
    name = lambda: dh.tags_of(ec2.describe_volumes(VolumeIds=[vol])["Volumes"][0]).get("Name")  # noqa: E731
    assert name() == "vol-team-1"
    ec2.create_tags(Resources=[vol], Tags=[{"Key": "Name", "Value": "renamed"}])
    assert name() == "renamed"
    assert [v["VolumeId"] for v in ec2.describe_volumes(Filters=[{"Name": "tag:Name", "Values": ["renamed"]}])["Volumes"]] == [vol]
    ec2.delete_tags(Resources=[vol], Tags=[{"Key": "Name"}])
    assert name() is None, "the Name tag came back after DeleteTags"
    assert not ec2.describe_volumes(Filters=[{"Name": "tag-key", "Values": ["Name"]}, {"Name": "volume-id", "Values": [vol]}])["Volumes"]
    ec2.create_tags(Resources=[vol], Tags=[{"Key": "Name", "Value": "vol-team-1"}])


# ---------------------------------------------------------------------------------------------
# 5. Sharing

def test_snapshot_sharing(service):
    svc = service
    e1, e2, e3 = svc.client("team-1"), svc.client("team-2"), svc.client("team-3")
    id1, id2 = svc.accounts["team-1"].account_id, svc.accounts["team-2"].account_id
    src = svc.volumes["vol-team-1"]
    snap = e1.create_snapshot(VolumeId=src.volume_id, Description="to share")["SnapshotId"]
    wait_snapshots(e1, [snap])
    ids = lambda ec2, **kw: {s["SnapshotId"] for s in ec2.describe_snapshots(**kw)["Snapshots"]}  # noqa: E731
    assert snap not in ids(e2)

    e1.modify_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission",
                                 CreateVolumePermission={"Add": [{"UserId": id2}]})
    perms = e1.describe_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission")["CreateVolumePermissions"]
    assert perms == [{"UserId": id2}], perms

    assert snap in ids(e2), "the shared snapshot is not listed for team-2 (no Owner)"
    paged = {s["SnapshotId"] for page in e2.get_paginator("describe_snapshots").paginate(PaginationConfig={"PageSize": 5})
             for s in page["Snapshots"]}
    assert snap in paged, "the shared snapshot is missing from the paged listing (no Owner, MaxResults)"
    own_paged = {s["SnapshotId"] for page in e2.get_paginator("describe_snapshots").paginate(
        OwnerIds=["self"], PaginationConfig={"PageSize": 5}) for s in page["Snapshots"]}
    assert snap not in own_paged and own_paged == paged - {snap}, "Owner=self paged lists another account's snapshot"
    assert snap in ids(e2, OwnerIds=[id1]), "Owner=team-1's id does not list the shared snapshot"
    assert snap in ids(e2, RestorableByUserIds=["self"]), "RestorableBy=self does not list the shared snapshot"
    assert snap not in ids(e2, OwnerIds=["self"]), "Owner=self lists another account's snapshot"
    assert snap not in ids(e3), "team-3 sees a snapshot shared only with team-2"
    assert snap not in ids(e3, OwnerIds=[id1])
    shared = e2.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]
    assert shared["OwnerId"] == id1, shared

    # team-2 may not change or delete it, nor restore it (restoring is an administrator's act).
    code, _ = client_error(e2.modify_snapshot_attribute, SnapshotId=snap, Attribute="createVolumePermission",
                           CreateVolumePermission={"Add": [{"UserId": svc.accounts["team-3"].account_id}]})
    assert code == "InvalidSnapshot.NotFound", code
    code, _ = client_error(e2.delete_snapshot, SnapshotId=snap)
    assert code == "InvalidSnapshot.NotFound", code
    code, msg = client_error(e2.create_volume, SnapshotId=snap, AvailabilityZone=AZ)
    vol_create = (code, msg)

    # team-2 copies it: the copy is team-2's and holds the same data.
    copy = e2.copy_snapshot(SourceSnapshotId=snap, SourceRegion="us-east-1", Description="copy of shared")["SnapshotId"]
    wait_snapshots(e2, [copy])
    c = e2.describe_snapshots(SnapshotIds=[copy])["Snapshots"][0]
    assert c["OwnerId"] == id2 and c["State"] == "completed", c
    assert copy in ids(e2, OwnerIds=["self"])
    assert copy not in ids(e1), "team-2's copy is visible to team-1"
    admin = svc.client("admin")
    vid = admin.create_volume(SnapshotId=copy, AvailabilityZone=AZ)["VolumeId"]
    dh.wait_loaded(admin, vid)
    restored = svc.data_dir / "volumes" / f"{vid}.img"
    assert dh.sha256_file(restored) == src.sha256, "a restore of team-2's copy differs from team-1's volume"
    assert admin.describe_volumes(VolumeIds=[vid])["Volumes"][0]["SnapshotId"] == copy

    # Public sharing is off by default.
    code, msg = client_error(e1.modify_snapshot_attribute, SnapshotId=snap, Attribute="createVolumePermission",
                             CreateVolumePermission={"Add": [{"Group": "all"}]})
    assert code == "InvalidParameterValue", (code, msg)
    assert snap not in ids(e3)

    e1.reset_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission")
    assert e1.describe_snapshot_attribute(SnapshotId=snap, Attribute="createVolumePermission")["CreateVolumePermissions"] == []
    assert snap not in ids(e2), "still listed for team-2 after ResetSnapshotAttribute"
    code, _ = client_error(e2.copy_snapshot, SourceSnapshotId=snap, SourceRegion="us-east-1")
    assert code == "InvalidSnapshot.NotFound", code
    # Last, so the rest of the sharing rules are checked even if this one fails.
    assert vol_create[0] == "UnauthorizedOperation", \
        f"team-2 CreateVolume(SnapshotId={snap}) of a snapshot shared with it answered {vol_create}"


# ---------------------------------------------------------------------------------------------
# 6. Administrators act on what they see

def audit_lines(svc) -> list[dict]:
    out = []
    for line in (svc.data_dir / "audit.log").read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def test_admin_acts_on_team_resources(service):
    svc = service
    admin, e2 = svc.client("admin"), svc.client("team-2")
    id2 = svc.accounts["team-2"].account_id
    vid = e2.create_volume(Size=1, AvailabilityZone=AZ)["VolumeId"]
    admin.delete_volume(VolumeId=vid)
    for who in (admin, e2):
        code, msg = client_error(who.describe_volumes, VolumeIds=[vid])
        assert code == "InvalidVolume.NotFound" and vid in msg, (code, msg)
    assert not (svc.data_dir / "volumes" / f"{vid}.img").exists(), "the deleted managed volume's file remains"

    team_vol = svc.volumes["vol-team-2"].volume_id
    admin.create_tags(Resources=[team_vol], Tags=[{"Key": "checked-by", "Value": "admin"}])
    assert dh.tags_of(e2.describe_volumes(VolumeIds=[team_vol])["Volumes"][0]).get("checked-by") == "admin"

    lines = audit_lines(svc)
    admin_id = svc.admin.account_id
    for action in ("DeleteVolume", "CreateTags"):
        mine = [l for l in lines if l.get("action") == action and l.get("account_id") == admin_id and l.get("status") == 200]
        assert mine, f"no audit line for the administrator's {action}: {lines[-5:]}"
        assert mine[-1].get("resource_account_id") == id2, f"audit line of {action}: {mine[-1]}"
    e2.delete_tags(Resources=[team_vol], Tags=[{"Key": "checked-by"}])


# ---------------------------------------------------------------------------------------------
# 7. CreateVolume

def test_create_volume_client_token(service):
    ec2 = service.client("team-3")
    count = lambda: len(ec2.describe_volumes()["Volumes"])  # noqa: E731
    before = count()
    a = ec2.create_volume(Size=1, AvailabilityZone=AZ, ClientToken="fidelity-token-1")["VolumeId"]
    b = ec2.create_volume(Size=1, AvailabilityZone=AZ, ClientToken="fidelity-token-1")["VolumeId"]
    assert a == b, "the same ClientToken made two volumes"
    assert count() == before + 1
    code, msg = client_error(ec2.create_volume, Size=2, AvailabilityZone=AZ, ClientToken="fidelity-token-1")
    assert code == "IdempotentParameterMismatch", (code, msg)
    assert count() == before + 1
    # The token is the account's: another team using it gets its own volume.
    other = service.client("team-2").create_volume(Size=1, AvailabilityZone=AZ, ClientToken="fidelity-token-1")["VolumeId"]
    assert other != a
    service.client("team-2").delete_volume(VolumeId=other)


@pytest.mark.parametrize("params,code", [
    ({"Size": 1, "AvailabilityZone": "us-east-1b"}, "InvalidParameterValue"),
    ({"Size": 1, "AvailabilityZone": "us-west-2a"}, "InvalidParameterValue"),
    ({"Size": 1, "VolumeType": "gp3"}, "InvalidParameterValue"),
    ({"Size": 1, "VolumeType": "io1", "Iops": 100}, "InvalidParameterValue"),
    ({"Size": 1, "Iops": 300}, "InvalidParameterCombination"),
    ({"Size": 1, "Encrypted": "true"}, "InvalidParameterValue"),
])
def test_create_volume_refusals(service, params, code):
    ec2 = service.client("team-3")
    before = {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}
    refused(service, "team-3", "CreateVolume", params, code)
    assert {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]} == before


def test_create_volume_defaults_in_raw_xml(service):
    root = ok(service, "team-3", "CreateVolume", {"Size": 1, "AvailabilityZone": AZ})
    vid = root.findtext("volumeId")
    assert dh.VOL_ID.match(vid or ""), ET.tostring(root)
    item = ok(service, "team-3", "DescribeVolumes", {"VolumeId.1": vid}).find("volumeSet/item")
    assert item.findtext("volumeType") == "gp2"
    assert item.findtext("iops") == "100"
    assert item.find("tagSet") is not None, f"no <tagSet/> on an untagged volume: {ET.tostring(item)!r}"
    # Only where it lives (aws:snapvol:host, aws:snapvol:nbd: docs/api.md, "Where a volume lives").
    assert {it.findtext("key") for it in item.find("tagSet").findall("item")} == set(dh.WHERE_TAGS)
    assert item.find("attachmentSet") is not None and item.findtext("snapshotId") is not None
    assert item.findtext("encrypted") == "false" and item.findtext("availabilityZone") == AZ
    # A 2 GiB standard volume: no iops.
    sid = ok(service, "team-3", "CreateVolume", {"Size": 2, "VolumeType": "standard"}).findtext("volumeId")
    item = ok(service, "team-3", "DescribeVolumes", {"VolumeId.1": sid}).find("volumeSet/item")
    assert item.findtext("volumeType") == "standard" and item.find("iops") is None and item.findtext("size") == "2"
