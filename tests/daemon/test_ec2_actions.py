"""EC2 fidelity, the action table (parsed from src/api/*.cc): every parameter of every action is
sent with a value that changes the answer or is refused, a parameter without a case fails the
suite, and an unknown parameter is refused by every action."""

from __future__ import annotations


import pytest

from ec2_fidelity_helpers import (
    ACTIONS,
    ACTION_PARAMS,
    API_DIR,
    AZ,
    MISSING_INST,
    MISSING_SNAP,
    MISSING_VOL,
    instance_ids,
    new_instance,
    ok,
    query,
    refused,
    register,
    set_ids,
    wait_snapshots,
    fidelity_service,
)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    yield from fidelity_service(tmp_path_factory, "actions")


# ---------------------------------------------------------------------------------------------
# 3. The action table: every parameter of every action

@pytest.fixture(scope="module")
def ww(service):
    """Account `walk`: instance W with tiny volumes wv1 (boot, /dev/xvda) and wv2 (/dev/sdf),
    instance W2, an empty managed volume wm, completed snapshot ws1 of wv1 and a pending
    restore request rr for it."""
    svc = service
    svc.add_account("walk")
    W, W2 = new_instance(svc, "walk", "w"), new_instance(svc, "walk", "w2")
    wv1 = register(svc, "walk", "wv1", instance=W, device="/dev/xvda", boot=True)
    wv2 = register(svc, "walk", "wv2", instance=W, device="/dev/sdf")
    ec2 = svc.client("walk")
    wm = ec2.create_volume(Size=1, AvailabilityZone=AZ)["VolumeId"]
    ws1 = ec2.create_snapshot(VolumeId=wv1, Description="walk snap")["SnapshotId"]
    wait_snapshots(ec2, [ws1])
    rr = ok(svc, "walk", "CreateRestoreRequest", {"SnapshotId": ws1, "Reason": "walk"}).findtext("restoreRequest/restoreRequestId")
    assert rr
    return {"W": W, "W2": W2, "wv1": wv1, "wv2": wv2, "wm": wm, "ws1": ws1, "rr": rr,
            "team3": svc.accounts["team-3"].account_id}


def base_requests(x) -> dict[str, tuple[str, dict]]:
    """A minimal valid request (alias, params) of every action, on the walk account."""
    cvp = {"SnapshotId": x["ws1"], "Attribute": "createVolumePermission"}
    return {
        "CreateSnapshot": ("walk", {"VolumeId": x["wv1"]}),
        "CreateSnapshots": ("walk", {"InstanceSpecification.InstanceId": x["W"]}),
        "CopySnapshot": ("walk", {"SourceSnapshotId": x["ws1"], "SourceRegion": "us-east-1"}),
        "DescribeSnapshots": ("walk", {}),
        "DeleteSnapshot": ("walk", {"SnapshotId": x["ws1"]}),
        "LockSnapshot": ("walk", {"SnapshotId": x["ws1"], "LockMode": "governance", "LockDuration": 1}),
        "UnlockSnapshot": ("walk", {"SnapshotId": x["ws1"]}),
        "DescribeLockedSnapshots": ("walk", {}),
        "ListSnapshotsInRecycleBin": ("walk", {}),
        "RestoreSnapshotFromRecycleBin": ("walk", {"SnapshotId": x["ws1"]}),
        "DescribeSnapshotAttribute": ("walk", dict(cvp)),
        "ModifySnapshotAttribute": ("walk", {**cvp, "CreateVolumePermission.Add.1.UserId": x["team3"]}),
        "ResetSnapshotAttribute": ("walk", dict(cvp)),
        "CreateTags": ("walk", {"ResourceId.1": x["wv1"], "Tag.1.Key": "k", "Tag.1.Value": "v"}),
        "DeleteTags": ("walk", {"ResourceId.1": x["wv1"], "Tag.1.Key": "k"}),
        "DescribeTags": ("walk", {}),
        "CreateVolume": ("walk", {"Size": 1}),
        "AttachVolume": ("walk", {"VolumeId": x["wm"], "InstanceId": x["W"], "Device": "/dev/sdk"}),
        "DetachVolume": ("walk", {"VolumeId": x["wv2"]}),
        "DeleteVolume": ("walk", {"VolumeId": x["wm"]}),
        "DescribeVolumes": ("walk", {}),
        "DescribeVolumeStatus": ("walk", {}),
        "DescribeInstances": ("walk", {}),
        "CreateRestoreRequest": ("walk", {"SnapshotId": x["ws1"], "Reason": "r"}),
        "DescribeRestoreRequests": ("walk", {}),
        "ApproveRestoreRequest": ("admin", {"RestoreRequestId": x["rr"]}),
        "RejectRestoreRequest": ("admin", {"RestoreRequestId": x["rr"]}),
        "CreateReplaceRootVolumeTask": ("admin", {"InstanceId": x["W"], "SnapshotId": x["ws1"]}),
        "RestoreVolumeFromSnapshot": ("admin", {"VolumeId": x["wv1"], "SnapshotId": x["ws1"]}),
        "DescribeReplaceRootVolumeTasks": ("walk", {}),
    }


def walk_cases(x) -> dict:
    """(action, parameter) -> (overrides, drop, expectation). The overrides go on top of the
    action's base request (keys in drop removed); the expectation is an error code, (code,
    text in the message), or a check of the answer's XML root."""
    long = "x" * 256
    only = lambda set_tag, id_tag, want: (lambda r: set(set_ids(r, set_tag, id_tag)) == want)  # noqa: E731
    c = {}

    def add(action, param, overrides, expect, drop=()):
        c[(action, param)] = (overrides, tuple(drop), expect)

    # DryRun everywhere: DryRunOperation instead of acting.
    for action in base_requests(x):
        add(action, "DryRun", {"DryRun": "true"}, "DryRunOperation")
    bad_tagspec = {"TagSpecification.1.ResourceType": "volume", "TagSpecification.1.Tag.1.Key": "a",
                   "TagSpecification.1.Tag.1.Value": "b"}
    add("CreateSnapshot", "VolumeId", {"VolumeId": MISSING_VOL}, "InvalidVolume.NotFound")
    add("CreateSnapshot", "Description", {"Description": long}, "InvalidParameterValue")
    add("CreateSnapshot", "TagSpecification.", bad_tagspec, "InvalidParameterValue")
    add("CreateSnapshot", "OutpostArn", {"OutpostArn": "arn:aws:outposts:us-east-1:123456789012:outpost/op-1"}, "UnsupportedOperation")
    add("CreateSnapshots", "InstanceSpecification.", {"InstanceSpecification.InstanceId": MISSING_INST}, "InvalidInstanceID.NotFound")
    add("CreateSnapshots", "Description", {"Description": long}, "InvalidParameterValue")
    add("CreateSnapshots", "TagSpecification.", bad_tagspec, "InvalidParameterValue")
    add("CreateSnapshots", "CopyTagsFromSource", {"CopyTagsFromSource": "instance"}, "InvalidParameterValue")
    add("CreateSnapshots", "OutpostArn", {"OutpostArn": "arn:aws:outposts:us-east-1:123456789012:outpost/op-1"}, "UnsupportedOperation")
    add("CopySnapshot", "SourceSnapshotId", {"SourceSnapshotId": MISSING_SNAP}, "InvalidSnapshot.NotFound")
    add("CopySnapshot", "SourceRegion", {"SourceRegion": "eu-west-1"}, "InvalidParameterValue")
    add("CopySnapshot", "Description", {"Description": long}, "InvalidParameterValue")
    add("CopySnapshot", "TagSpecification.", bad_tagspec, "InvalidParameterValue")
    add("CopySnapshot", "Encrypted", {"Encrypted": "true"}, "InvalidParameterValue")
    add("CopySnapshot", "PresignedUrl", {"PresignedUrl": f"https://ec2.us-east-1.amazonaws.com/?Action=CopySnapshot&SourceSnapshotId={MISSING_SNAP}"},
        "InvalidParameterValue")
    add("CopySnapshot", "DestinationRegion", {"DestinationRegion": "eu-west-1"}, "InvalidParameterValue")
    add("DescribeSnapshots", "SnapshotId.", {"SnapshotId.1": MISSING_SNAP}, "InvalidSnapshot.NotFound")
    add("DescribeSnapshots", "Owner.", {"Owner.1": "amazon"}, only("snapshotSet", "snapshotId", set()))
    add("DescribeSnapshots", "RestorableBy.", {"RestorableBy.1": "all"}, only("snapshotSet", "snapshotId", set()))
    add("DescribeSnapshots", "Filter.", {"Filter.1.Name": "description", "Filter.1.Value.1": "walk snap"},
        only("snapshotSet", "snapshotId", {x["ws1"]}))
    add("DescribeSnapshots", "MaxResults", {"MaxResults": 4}, "InvalidParameterValue")
    add("DescribeSnapshots", "NextToken", {"NextToken": "garbage"}, "InvalidPaginationToken")
    add("DeleteSnapshot", "SnapshotId", {"SnapshotId": MISSING_SNAP}, "InvalidSnapshot.NotFound")
    add("LockSnapshot", "SnapshotId", {"SnapshotId": MISSING_SNAP}, "InvalidSnapshot.NotFound")
    add("LockSnapshot", "LockMode", {"LockMode": "forever"}, ("InvalidParameterValue", "LockMode"))
    add("LockSnapshot", "CoolOffPeriod", {"LockMode": "compliance", "CoolOffPeriod": 73}, ("InvalidParameterValue", "CoolOffPeriod"))
    add("LockSnapshot", "LockDuration", {"LockDuration": 0}, ("InvalidParameterValue", "LockDuration"))
    add("LockSnapshot", "ExpirationDate", {"ExpirationDate": "not-a-date"}, ("InvalidParameterValue", "ExpirationDate"),
        drop=["LockDuration"])
    add("UnlockSnapshot", "SnapshotId", {"SnapshotId": MISSING_SNAP}, "InvalidSnapshot.NotFound")
    add("DescribeLockedSnapshots", "SnapshotId.", {"SnapshotId.1": "snap-nothex"}, "InvalidSnapshotID.Malformed")
    add("DescribeLockedSnapshots", "Filter.", {"Filter.1.Name": "volume-id", "Filter.1.Value.1": "x"},
        ("InvalidParameterValue", "volume-id"))
    add("DescribeLockedSnapshots", "MaxResults", {"MaxResults": 4}, "InvalidParameterValue")
    add("DescribeLockedSnapshots", "NextToken", {"NextToken": "garbage"}, "InvalidPaginationToken")
    add("ListSnapshotsInRecycleBin", "SnapshotId.", {"SnapshotId.1": "snap-nothex"}, "InvalidSnapshotID.Malformed")
    add("ListSnapshotsInRecycleBin", "MaxResults", {"MaxResults": 4}, "InvalidParameterValue")
    add("ListSnapshotsInRecycleBin", "NextToken", {"NextToken": "garbage"}, "InvalidPaginationToken")
    add("RestoreSnapshotFromRecycleBin", "SnapshotId", {"SnapshotId": MISSING_SNAP}, "InvalidSnapshot.NotFound")
    # ws1 is live, not in the Recycle Bin: found missing before DryRun is answered (a binned
    # snapshot's DryRun is tested in test_recycle_bin.py).
    add("RestoreSnapshotFromRecycleBin", "DryRun", {"DryRun": "true"}, "InvalidSnapshot.NotFound")
    add("DescribeSnapshotAttribute", "SnapshotId", {"SnapshotId": MISSING_SNAP}, "InvalidSnapshot.NotFound")
    add("DescribeSnapshotAttribute", "Attribute", {"Attribute": "productCodes"},
        lambda r: r.find("productCodes") is not None and r.find("createVolumePermission") is None)
    add("ModifySnapshotAttribute", "SnapshotId", {"SnapshotId": MISSING_SNAP}, "InvalidSnapshot.NotFound")
    add("ModifySnapshotAttribute", "Attribute", {"Attribute": "productCodes"}, ("InvalidParameterValue", "Attribute"))
    add("ModifySnapshotAttribute", "CreateVolumePermission.Add.", {"CreateVolumePermission.Add.1.UserId": "12345"},
        "InvalidUserID.Malformed")
    add("ModifySnapshotAttribute", "CreateVolumePermission.Remove.", {"CreateVolumePermission.Remove.1.Group": "everyone"},
        "InvalidParameterValue", drop=["CreateVolumePermission.Add.1.UserId"])
    add("ModifySnapshotAttribute", "OperationType", {"OperationType": "replace", "UserId.1": x["team3"]},
        ("InvalidParameterValue", "OperationType"), drop=["CreateVolumePermission.Add.1.UserId"])
    add("ModifySnapshotAttribute", "UserId.", {"UserId.1": x["team3"]}, ("MissingParameter", "OperationType"),
        drop=["CreateVolumePermission.Add.1.UserId"])
    add("ModifySnapshotAttribute", "UserGroup.", {"OperationType": "add", "UserGroup.1": "all"}, "InvalidParameterValue",
        drop=["CreateVolumePermission.Add.1.UserId"])
    add("ResetSnapshotAttribute", "SnapshotId", {"SnapshotId": MISSING_SNAP}, "InvalidSnapshot.NotFound")
    add("ResetSnapshotAttribute", "Attribute", {"Attribute": "productCodes"}, ("InvalidParameterValue", "Attribute"))
    for action in ("CreateTags", "DeleteTags"):
        add(action, "ResourceId.", {"ResourceId.1": "volume-1"}, "InvalidID")
        add(action, "Tag.", {"Tag.1.Key": "aws:owner"}, "InvalidParameterValue")
    add("DescribeTags", "Filter.", {"Filter.1.Name": "resource-id", "Filter.1.Value.1": x["wv2"]},
        lambda r: {it.findtext("resourceId") for it in r.find("tagSet").findall("item")} == {x["wv2"]})
    add("DescribeTags", "MaxResults", {"MaxResults": 4}, "InvalidParameterValue")
    add("DescribeTags", "NextToken", {"NextToken": "garbage"}, "InvalidPaginationToken")
    add("CreateVolume", "AvailabilityZone", {"AvailabilityZone": "us-east-1b"}, "InvalidParameterValue")
    add("CreateVolume", "AvailabilityZoneId", {"AvailabilityZoneId": "use1-az1"}, "InvalidParameterValue")
    add("CreateVolume", "Size", {"Size": 0}, "InvalidParameterValue")
    add("CreateVolume", "SnapshotId", {"SnapshotId": x["ws1"]}, "UnauthorizedOperation", drop=["Size"])
    add("CreateVolume", "VolumeType", {"VolumeType": "gp3"}, "InvalidParameterValue")
    add("CreateVolume", "Iops", {"Iops": 3000}, "InvalidParameterCombination")
    add("CreateVolume", "Throughput", {"Throughput": 125}, "InvalidParameterCombination")
    add("CreateVolume", "Encrypted", {"Encrypted": "true"}, "InvalidParameterValue")
    add("CreateVolume", "KmsKeyId", {"KmsKeyId": "alias/aws/ebs"}, "UnsupportedOperation")
    add("CreateVolume", "MultiAttachEnabled", {"MultiAttachEnabled": "true"}, "UnsupportedOperation")
    add("CreateVolume", "OutpostArn", {"OutpostArn": "arn:aws:outposts:us-east-1:123456789012:outpost/op-1"}, "UnsupportedOperation")
    add("CreateVolume", "TagSpecification.", {"TagSpecification.1.ResourceType": "snapshot", "TagSpecification.1.Tag.1.Key": "a",
                                              "TagSpecification.1.Tag.1.Value": "b"}, "InvalidParameterValue")
    add("CreateVolume", "ClientToken", {"ClientToken": "t" * 65}, "InvalidParameterValue")
    add("AttachVolume", "VolumeId", {"VolumeId": MISSING_VOL}, "InvalidVolume.NotFound")
    add("AttachVolume", "InstanceId", {"InstanceId": MISSING_INST}, "InvalidInstanceID.NotFound")
    add("AttachVolume", "Device", {"Device": "sdk"}, ("InvalidParameterValue", "Device"))
    add("DetachVolume", "VolumeId", {"VolumeId": MISSING_VOL}, "InvalidVolume.NotFound")
    add("DetachVolume", "InstanceId", {"InstanceId": x["W2"]}, "InvalidAttachment.NotFound")
    add("DetachVolume", "Device", {"Device": "/dev/sdz"}, "InvalidAttachment.NotFound")
    add("DetachVolume", "Force", {"Force": "maybe"}, "InvalidParameterValue")
    add("DeleteVolume", "VolumeId", {"VolumeId": MISSING_VOL}, "InvalidVolume.NotFound")
    for action, set_tag in (("DescribeVolumes", "volumeSet"), ("DescribeVolumeStatus", "volumeStatusSet")):
        add(action, "VolumeId.", {"VolumeId.1": x["wv1"]}, only(set_tag, "volumeId", {x["wv1"]}))
        add(action, "Filter.", {"Filter.1.Name": "availability-zone", "Filter.1.Value.1": "us-east-1b"}, only(set_tag, "volumeId", set()))
        add(action, "MaxResults", {"MaxResults": 4}, "InvalidParameterValue")
        add(action, "NextToken", {"NextToken": "garbage"}, "InvalidPaginationToken")
    add("DescribeInstances", "InstanceId.", {"InstanceId.1": x["W2"]}, lambda r: instance_ids(r) == [x["W2"]])
    add("DescribeInstances", "Filter.", {"Filter.1.Name": "instance-id", "Filter.1.Value.1": x["W"]}, lambda r: instance_ids(r) == [x["W"]])
    add("DescribeInstances", "MaxResults", {"MaxResults": 4}, "InvalidParameterValue")
    add("DescribeInstances", "NextToken", {"NextToken": "garbage"}, "InvalidPaginationToken")
    add("CreateRestoreRequest", "SnapshotId", {"SnapshotId": MISSING_SNAP}, "InvalidSnapshot.NotFound")
    add("CreateRestoreRequest", "Reason", {"Reason": "r" * 1025}, ("InvalidParameterValue", "Reason"))
    add("CreateRestoreRequest", "RestoreType", {"RestoreType": "in-place"}, ("MissingParameter", "VolumeId"))
    add("CreateRestoreRequest", "VolumeId", {"VolumeId": MISSING_VOL}, "InvalidParameterCombination")
    add("DescribeRestoreRequests", "RestoreRequestId.", {"RestoreRequestId.1": "rr-00000000000000000"}, "InvalidRestoreRequest.NotFound")
    add("DescribeRestoreRequests", "State", {"State": "approved"},
        lambda r: x["rr"] not in set_ids(r, "restoreRequestSet", "restoreRequestId"))
    for action in ("ApproveRestoreRequest", "RejectRestoreRequest"):
        add(action, "RestoreRequestId", {"RestoreRequestId": "rr-00000000000000000"}, "InvalidRestoreRequest.NotFound")
        add(action, "Reason", {"Reason": "r" * 1025}, ("InvalidParameterValue", "Reason"))
    # In-place rollbacks (only refusals here: tests/daemon/test_rollback.py runs them).
    add("CreateReplaceRootVolumeTask", "InstanceId", {"InstanceId": MISSING_INST}, "InvalidInstanceID.NotFound")
    add("CreateReplaceRootVolumeTask", "SnapshotId", {"SnapshotId": MISSING_SNAP}, "InvalidSnapshot.NotFound")
    add("CreateReplaceRootVolumeTask", "ImageId", {"ImageId": "ami-12345678"}, ("UnsupportedOperation", "ImageId"))
    add("CreateReplaceRootVolumeTask", "DeleteReplacedRootVolume", {"DeleteReplacedRootVolume": "maybe"},
        "InvalidParameterValue")
    add("RestoreVolumeFromSnapshot", "VolumeId", {"VolumeId": MISSING_VOL}, "InvalidVolume.NotFound")
    add("RestoreVolumeFromSnapshot", "SnapshotId", {"SnapshotId": MISSING_SNAP}, "InvalidSnapshot.NotFound")
    add("RestoreVolumeFromSnapshot", "Force", {"Force": "maybe"}, "InvalidParameterValue")
    add("RestoreVolumeFromSnapshot", "Reason", {"Reason": "r" * 1025}, ("InvalidParameterValue", "Reason"))
    add("RestoreVolumeFromSnapshot", "SafetySnapshot", {"SafetySnapshot": "maybe"}, "InvalidParameterValue")
    for action in ("CreateReplaceRootVolumeTask", "RestoreVolumeFromSnapshot"):
        add(action, "TagSpecification.", bad_tagspec, "InvalidParameterValue")
        add(action, "ClientToken", {"ClientToken": "t" * 65}, "InvalidParameterValue")
    add("DescribeReplaceRootVolumeTasks", "ReplaceRootVolumeTaskId.",
        {"ReplaceRootVolumeTaskId.1": "replacevol-00000000000000000"}, "InvalidReplaceRootVolumeTask.NotFound")
    add("DescribeReplaceRootVolumeTasks", "Filter.", {"Filter.1.Name": "volume-id", "Filter.1.Value.1": "x"},
        ("InvalidParameterValue", "volume-id"))
    add("DescribeReplaceRootVolumeTasks", "MaxResults", {"MaxResults": 0}, "InvalidParameterValue")
    add("DescribeReplaceRootVolumeTasks", "NextToken", {"NextToken": "garbage"}, "InvalidPaginationToken")
    return c


def test_action_table_is_covered(ww):
    """Every (action, parameter) of the table in src/api has a case below, and no case names
    a parameter the table does not have (so the table and this file move together)."""
    assert len(ACTIONS) >= 20, f"parsed only {len(ACTIONS)} actions from {API_DIR}: {sorted(ACTIONS)}"
    cases = walk_cases(ww)
    bases = base_requests(ww)
    have = set(ACTION_PARAMS)
    assert not (have - set(cases)), f"parameters without a test case: {sorted(have - set(cases))}"
    assert not (set(ACTIONS) - set(bases)), f"actions without a base request: {sorted(set(ACTIONS) - set(bases))}"
    assert not (set(cases) - have), f"cases for parameters the action table does not have: {sorted(set(cases) - have)}"


@pytest.mark.parametrize("action,param", ACTION_PARAMS, ids=[f"{a}-{p}" for a, p in ACTION_PARAMS])
def test_every_parameter_changes_the_answer(service, ww, action, param):
    cases = walk_cases(ww)
    assert (action, param) in cases, f"no test case for {action} parameter {param}: add one to walk_cases"
    overrides, drop, expect = cases[(action, param)]
    alias, base = base_requests(ww)[action]
    params = {k: v for k, v in base.items() if k not in drop}
    params.update(overrides)
    assert any(k == param or (param.endswith(".") and k.startswith(param)) for k in params), \
        f"the case for {action}/{param} does not send {param}: {params}"
    a = query(service, alias, action, params)
    if callable(expect):
        assert a.status == 200, str(a)
        assert expect(a.root), f"the answer does not show the effect of {param}\n{a}"
    else:
        code, text = expect if isinstance(expect, tuple) else (expect, None)
        assert a.status != 200 and a.code == code, f"expected {code}\n{a}"
        if text:
            assert text in a.message, f"expected {text!r} in the message\n{a}"
    # Dry runs and refusals change nothing the later cases rely on.
    if action in ("DeleteSnapshot", "DeleteVolume", "CreateTags", "DeleteTags", "DetachVolume", "AttachVolume"):
        vols = {i.findtext("volumeId"): i for i in ok(service, "walk", "DescribeVolumes").find("volumeSet").findall("item")}
        assert ww["wm"] in vols and ww["wv2"] in vols
        assert vols[ww["wv2"]].findtext("status") == "in-use" and vols[ww["wm"]].findtext("status") == "available"
        assert not any(t.findtext("key") == "k" for t in vols[ww["wv1"]].find("tagSet").findall("item"))
        assert set_ids(ok(service, "walk", "DescribeSnapshots", {"SnapshotId.1": ww["ws1"]}), "snapshotSet", "snapshotId") == [ww["ws1"]]


@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_unknown_parameter_refused(service, ww, action):
    alias, base = base_requests(ww)[action]
    refused(service, alias, action, {**base, "BogusParam": "1"}, "UnknownParameter", contains="BogusParam")
