"""EC2 fidelity, filters and paging: every filter name of kVolumeFields / kInstanceFields /
DescribeTags / kStatusFields / kSnapshotFields (read from src/api at test time) has a case
asserting the exact set it selects, and unknown names are refused by name; MaxResults/NextToken
walks of every Describe* visit each item once, with EC2's bounds and InvalidParameterCombination
with ids."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

import daemon_helpers as dh
from ec2_fidelity_helpers import (
    AZ,
    filters_params,
    instance_ids,
    new_instance,
    ok,
    parse_filter_names,
    refused,
    register,
    set_ids,
    wait_snapshots,
    fidelity_service,
)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    yield from fidelity_service(tmp_path_factory, "filters")


@dataclass
class FilterWorld:
    acct: str
    iA: str
    iB: str
    iC: str
    v: dict          # v1..v6 -> volume id
    snapA: str
    snapB: str
    tags: list       # (resource id, type, key, value) of every tag of the account


@pytest.fixture(scope="module")
def fw(service) -> FilterWorld:
    """Account `filt`: instances web (boot /dev/xvda + /dev/sdf), db (/dev/sdg), idle (none, its root
    device /dev/sda1);
    v4 registered and unattached; v5 an empty 2 GiB standard managed volume tagged env=prod;
    v6 restored by the administrator from snapB (gp2, no tags); snapshots of v1 and v3."""
    svc = service
    svc.add_account("filt")
    iA, iB, iC = new_instance(svc, "filt", "web"), new_instance(svc, "filt", "db"), new_instance(svc, "filt", "idle", "/dev/sda1")
    v = {
        "v1": register(svc, "filt", "web-root", instance=iA, device="/dev/xvda", boot=True),
        "v2": register(svc, "filt", "web-data", instance=iA, device="/dev/sdf"),
        "v3": register(svc, "filt", "db-data", instance=iB, device="/dev/sdg"),
        "v4": register(svc, "filt", "spare"),
    }
    ec2 = svc.client("filt")
    v["v5"] = ec2.create_volume(Size=2, AvailabilityZone=AZ, VolumeType="standard", TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": "Name", "Value": "scratch"}, {"Key": "env", "Value": "prod"}]}])["VolumeId"]
    snapA = ec2.create_snapshot(VolumeId=v["v1"], Description="root backup", TagSpecifications=[
        {"ResourceType": "snapshot", "Tags": [{"Key": "kind", "Value": "root"}]}])["SnapshotId"]
    snapB = ec2.create_snapshot(VolumeId=v["v3"], Description="db backup", TagSpecifications=[
        {"ResourceType": "snapshot", "Tags": [{"Key": "kind", "Value": "db"}]}])["SnapshotId"]
    wait_snapshots(ec2, [snapA, snapB])
    admin = svc.client("admin")
    v["v6"] = admin.create_volume(SnapshotId=snapB, AvailabilityZone=AZ)["VolumeId"]
    dh.wait_loaded(admin, v["v6"])
    ec2.create_tags(Resources=[iA], Tags=[{"Key": "role", "Value": "frontend"}])
    ec2.create_tags(Resources=[v["v2"]], Tags=[{"Key": "env", "Value": "dev"}])
    tags = [
        (snapA, "snapshot", "kind", "root"), (snapB, "snapshot", "kind", "db"),
        (v["v1"], "volume", "Name", "web-root"), (v["v2"], "volume", "Name", "web-data"),
        (v["v2"], "volume", "env", "dev"), (v["v3"], "volume", "Name", "db-data"),
        (v["v4"], "volume", "Name", "spare"), (v["v5"], "volume", "Name", "scratch"),
        (v["v5"], "volume", "env", "prod"),
        (iA, "instance", "Name", "web"), (iA, "instance", "role", "frontend"),
        (iB, "instance", "Name", "db"), (iC, "instance", "Name", "idle"),
    ]
    return FilterWorld("filt", iA, iB, iC, v, snapA, snapB, tags)


# ---------------------------------------------------------------------------------------------
# 1. Table-driven filters

def describe_volume_ids(svc, alias, filters) -> set[str]:
    return set(set_ids(ok(svc, alias, "DescribeVolumes", filters_params(filters)), "volumeSet", "volumeId"))


def volume_cases(w: FilterWorld, raw_volumes: dict) -> list:
    v = w.v
    allv = set(v.values())
    attached = {v["v1"], v["v2"], v["v3"]}
    at3 = raw_volumes[v["v3"]]["attachTime"]
    ct5 = raw_volumes[v["v5"]]["createTime"]
    return [
        ("attachment.attach-time", ["2*"], attached),
        ("attachment.attach-time", [at3], {i for i, r in raw_volumes.items() if r["attachTime"] == at3}),
        ("attachment.delete-on-termination", ["false"], attached),
        ("attachment.delete-on-termination", ["true"], set()),
        ("attachment.device", ["/dev/xvda"], {v["v1"]}),
        ("attachment.device", ["/dev/sd?"], {v["v2"], v["v3"]}),
        ("attachment.instance-id", [w.iA], {v["v1"], v["v2"]}),
        ("attachment.instance-id", [w.iB, w.iC], {v["v3"]}),
        ("attachment.status", ["attached"], attached),
        ("attachment.status", ["detaching"], set()),
        ("availability-zone", [AZ], allv),
        ("availability-zone", ["us-east-1b"], set()),
        ("create-time", [ct5], {i for i, r in raw_volumes.items() if r["createTime"] == ct5}),
        ("create-time", ["1999-*"], set()),
        ("encrypted", ["false"], allv),
        ("encrypted", ["true"], set()),
        ("fast-restored", ["false"], allv),
        ("fast-restored", ["true"], set()),
        ("multi-attach-enabled", ["false"], allv),
        ("multi-attach-enabled", ["true"], set()),
        ("operator.managed", ["false"], allv),
        ("operator.managed", ["true"], set()),
        ("size", ["2"], {v["v5"]}),
        ("size", ["1"], allv - {v["v5"]}),
        ("snapshot-id", [w.snapB], {v["v6"]}),
        ("snapshot-id", [w.snapA], set()),
        ("status", ["in-use"], attached),
        ("status", ["available"], {v["v4"], v["v5"], v["v6"]}),
        ("tag-key", ["env"], {v["v2"], v["v5"]}),
        ("tag-key", ["Name"], allv - {v["v6"]}),
        ("volume-id", [v["v4"]], {v["v4"]}),
        ("volume-id", [v["v4"][:-1] + "?"], {v["v4"]}),
        ("volume-id", ["vol-*"], allv),
        ("volume-type", ["standard"], {v["v5"]}),
        ("volume-type", ["gp2"], allv - {v["v5"]}),
        ("tag:Name", ["web-*"], {v["v1"], v["v2"]}),
        ("tag:env", ["prod", "dev"], {v["v2"], v["v5"]}),
    ]


def test_describe_volumes_filters(service, fw):
    root = ok(service, "filt", "DescribeVolumes")
    raw = {}
    for it in root.find("volumeSet").findall("item"):
        raw[it.findtext("volumeId")] = {"createTime": it.findtext("createTime"),
                                        "attachTime": it.findtext("attachmentSet/item/attachTime")}
    assert set(raw) == set(fw.v.values()), raw
    cases = volume_cases(fw, raw)
    names = parse_filter_names("ec2_volumes_describe.cc", "kVolumeFields")
    missing = set(names) - {c[0] for c in cases}
    assert not missing, f"kVolumeFields names without a test case: {sorted(missing)}"
    failures = []
    for name, values, want in cases:
        got = describe_volume_ids(service, "filt", [(name, values)])
        if got != want:
            failures.append(f"Filter {name}={values}: got {sorted(got)}, expected {sorted(want)}")
    # Filters AND, values OR.
    got = describe_volume_ids(service, "filt", [("status", ["in-use"]), ("tag:Name", ["*data"])])
    if got != {fw.v["v2"], fw.v["v3"]}:
        failures.append(f"status=in-use AND tag:Name=*data: got {sorted(got)}")
    assert not failures, "\n".join(failures)


def test_describe_instances_filters(service, fw):
    w = fw
    allv = {w.iA, w.iB, w.iC}
    with_vols = {w.iA, w.iB}
    cases = [
        ("instance-id", [w.iA], {w.iA}),
        ("availability-zone", [AZ], allv),
        ("availability-zone", ["us-east-1b"], set()),
        ("owner-id", [service.accounts["filt"].account_id], allv),
        ("owner-id", [service.accounts["team-1"].account_id], set()),
        ("reservation-id", ["r-" + w.iA[2:]], {w.iA}),
        ("instance-state-name", ["running"], allv),
        ("instance-state-name", ["stopped"], set()),
        ("instance-state-code", ["16"], allv),
        ("instance-state-code", ["80"], set()),
        ("tenancy", ["default"], allv),
        ("tenancy", ["dedicated"], set()),
        # Every instance has a root device name, with or without a volume there (as in EC2).
        ("root-device-name", ["/dev/xvda"], {w.iA, w.iB}),
        ("root-device-name", ["/dev/sda1"], {w.iC}),
        ("root-device-name", ["/dev/*"], allv),
        ("root-device-type", ["ebs"], allv),
        ("root-device-type", ["instance-store"], set()),
        ("block-device-mapping.device-name", ["/dev/sdg"], {w.iB}),
        ("block-device-mapping.device-name", ["/dev/sd*"], with_vols),
        ("block-device-mapping.volume-id", [w.v["v3"]], {w.iB}),
        ("block-device-mapping.volume-id", [w.v["v1"], w.v["v3"]], with_vols),
        ("block-device-mapping.status", ["attached"], with_vols),
        ("block-device-mapping.status", ["detached"], set()),
        ("block-device-mapping.attach-time", ["2*"], with_vols),
        ("block-device-mapping.attach-time", ["1999*"], set()),
        ("block-device-mapping.delete-on-termination", ["false"], with_vols),
        ("block-device-mapping.delete-on-termination", ["true"], set()),
        ("tag-key", ["role"], {w.iA}),
        ("tag-key", ["Name"], allv),
        ("tag:Name", ["db"], {w.iB}),
        ("tag:Name", ["?dle"], {w.iC}),
        ("tag:role", ["front*"], {w.iA}),
    ]
    names = parse_filter_names("ec2_instances.cc", "kInstanceFields")
    missing = set(names) - {c[0] for c in cases}
    assert not missing, f"kInstanceFields names without a test case: {sorted(missing)}"
    failures = []
    for name, values, want in cases:
        got = set(instance_ids(ok(service, "filt", "DescribeInstances", filters_params([(name, values)]))))
        if got != want:
            failures.append(f"Filter {name}={values}: got {sorted(got)}, expected {sorted(want)}")
    assert not failures, "\n".join(failures)


def tag_rows(root) -> set[tuple]:
    """The rows of a DescribeTags answer, without the tags every snapshot gets to say how it was
    cut and every volume to say where it lives (dh.CUT_TAGS, dh.WHERE_TAGS: the fixture's
    expectations list the tags it set)."""
    return {(it.findtext("resourceId"), it.findtext("resourceType"), it.findtext("key"), it.findtext("value") or "")
            for it in root.find("tagSet").findall("item") if it.findtext("key") not in dh.CUT_TAGS + dh.WHERE_TAGS}


def test_describe_tags_filters(service, fw):
    rows = set(fw.tags)
    got_all = tag_rows(ok(service, "filt", "DescribeTags"))
    assert got_all == rows, f"unfiltered DescribeTags: extra {got_all - rows}, missing {rows - got_all}"
    v2, v5, iA = fw.v["v2"], fw.v["v5"], fw.iA
    cases = [
        ("key", ["env"], lambda r: r[2] == "env"),
        ("key", ["kin?"], lambda r: r[2] == "kind"),
        ("value", ["prod", "dev"], lambda r: r[3] in ("prod", "dev")),
        ("value", ["web*"], lambda r: r[3] in ("web-root", "web-data", "web")),
        ("resource-id", [v2], lambda r: r[0] == v2),
        ("resource-type", ["snapshot"], lambda r: r[1] == "snapshot"),
        ("resource-type", ["instance"], lambda r: r[1] == "instance"),
        ("tag:env", ["prod"], lambda r: r[0] == v5),
        ("tag:role", ["*"], lambda r: r[0] == iA),
    ]
    names = parse_filter_names("ec2_tags.cc", "kRowFields")
    missing = set(names) - {c[0] for c in cases}
    assert not missing, f"DescribeTags filter names without a test case: {sorted(missing)}"
    failures = []
    for name, values, pred in cases:
        want = {r for r in rows if pred(r)}
        assert want, f"case {name}={values} selects nothing: not discriminating"
        got = tag_rows(ok(service, "filt", "DescribeTags", filters_params([(name, values)])))
        if got != want:
            failures.append(f"Filter {name}={values}: extra {sorted(got - want)}, missing {sorted(want - got)}")
    assert not failures, "\n".join(failures)


def test_describe_volume_status_filters(service, fw):
    allv = set(fw.v.values())
    names = parse_filter_names("ec2_volumes_describe.cc", "kStatusFields")
    cases = [
        ("availability-zone", [AZ], allv),
        ("availability-zone", ["us-east-1b"], set()),
        ("volume-status.status", ["ok"], allv),
        ("volume-status.status", ["impaired"], set()),
        ("volume-status.details-name", ["io-enabled"], allv),
        ("volume-status.details-name", ["io-performance"], set()),
        ("volume-status.details-status", ["passed"], allv),
        ("volume-status.details-status", ["failed"], set()),
    ]
    # snapvol raises no events and suggests no actions: every action.*/event.* filter matches
    # nothing, whatever the value.
    cases += [(n, ["*"], set()) for n in names if n.startswith(("action.", "event."))]
    missing = set(names) - {c[0] for c in cases}
    assert not missing, f"kStatusFields names without a test case: {sorted(missing)}"
    failures = []
    for name, values, want in cases:
        got = set(set_ids(ok(service, "filt", "DescribeVolumeStatus", filters_params([(name, values)])),
                          "volumeStatusSet", "volumeId"))
        if got != want:
            failures.append(f"Filter {name}={values}: got {sorted(got)}, expected {sorted(want)}")
    assert not failures, "\n".join(failures)


def test_describe_snapshots_filters(service, fw):
    both = {fw.snapA, fw.snapB}
    filt_id = service.accounts["filt"].account_id
    cases = [
        ("tag-key", ["kind"], both),
        ("tag-key", ["nope"], set()),
        ("status", ["completed"], both),
        ("status", ["pending"], set()),
        ("volume-id", [fw.v["v1"]], {fw.snapA}),
        ("owner-id", [filt_id], both),
        ("owner-id", [service.accounts["team-1"].account_id], set()),
        ("owner-alias", ["fil?"], both),
        ("owner-alias", ["team-1"], set()),
        ("description", ["db *"], {fw.snapB}),
        ("snapshot-id", [fw.snapA], {fw.snapA}),
        ("progress", ["100%"], both),
        ("start-time", ["2*"], both),
        ("start-time", ["1999*"], set()),
        ("volume-size", ["1"], both),
        ("volume-size", ["2"], set()),
        ("encrypted", ["false"], both),
        ("encrypted", ["true"], set()),
        ("storage-tier", ["standard"], both),
        ("storage-tier", ["archive"], set()),
        ("tag:kind", ["db"], {fw.snapB}),
    ]
    names = parse_filter_names("filters.cc", "kSnapshotFields")
    missing = set(names) - {c[0] for c in cases}
    assert not missing, f"kSnapshotFields names without a test case: {sorted(missing)}"
    failures = []
    for name, values, want in cases:
        got = set(set_ids(ok(service, "filt", "DescribeSnapshots", {"Owner.1": "self", **filters_params([(name, values)])}),
                          "snapshotSet", "snapshotId"))
        if got != want:
            failures.append(f"Filter {name}={values}: got {sorted(got)}, expected {sorted(want)}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("action", ["DescribeVolumes", "DescribeInstances", "DescribeTags",
                                    "DescribeVolumeStatus", "DescribeSnapshots", "DescribeLockedSnapshots"])
def test_unknown_filter_is_refused_by_name(service, action):
    refused(service, "team-1", action, filters_params([("no-such-filter", ["x"])]),
            "InvalidParameterValue", contains="no-such-filter")


# ---------------------------------------------------------------------------------------------
# 2. Paging

@pytest.fixture(scope="module")
def pw(service):
    """Account `pager`: 13 empty 1 GiB volumes (tag n=i), a 64 KiB registered volume with 7
    snapshots (tag s=i), 6 instances."""
    svc = service
    svc.add_account("pager")
    ec2 = svc.client("pager")
    vols = [ec2.create_volume(Size=1, AvailabilityZone=AZ, TagSpecifications=[
        {"ResourceType": "volume", "Tags": [{"Key": "n", "Value": str(i)}]}])["VolumeId"] for i in range(13)]
    tiny = register(svc, "pager", "pager-tiny")
    vols.append(tiny)
    snaps = [ec2.create_snapshot(VolumeId=tiny, Description=f"p{i}", TagSpecifications=[
        {"ResourceType": "snapshot", "Tags": [{"Key": "s", "Value": str(i)}]}])["SnapshotId"] for i in range(7)]
    wait_snapshots(ec2, snaps)
    insts = [new_instance(svc, "pager", f"p{i}") for i in range(6)]
    tags = {(v, "n") for v in vols[:13]} | {(tiny, "Name")} | {(s, "s") for s in snaps} | {(i, "Name") for i in insts}
    # Where each volume lives (docs/api.md, "Where a volume lives"): real tags, paged like the rest.
    tags |= {(v, "aws:snapvol:host") for v in vols} | {(v, "aws:snapvol:nbd") for v in vols[:13]}
    return {"volumes": set(vols), "snapshots": set(snaps), "instances": set(insts), "tags": tags}


def walk(svc, action, extra, extract, page_size=5) -> tuple[list, int]:
    seen, pages, token = [], 0, None
    while True:
        params = {"MaxResults": page_size, **extra}
        if token:
            params["NextToken"] = token
        root = ok(svc, "pager", action, params)
        items = extract(root)
        pages += 1
        assert len(items) <= page_size, f"{action}: page {pages} has {len(items)} items (MaxResults {page_size})"
        seen += items
        token = root.findtext("nextToken")
        if not token:
            return seen, pages
        assert pages < 100, f"{action}: no end to the pages"


WALKS = {
    "DescribeVolumes": ({}, lambda r: set_ids(r, "volumeSet", "volumeId"), "volumes"),
    "DescribeVolumeStatus": ({}, lambda r: set_ids(r, "volumeStatusSet", "volumeId"), "volumes"),
    "DescribeInstances": ({}, instance_ids, "instances"),
    "DescribeTags": ({}, lambda r: [(it.findtext("resourceId"), it.findtext("key"))
                                    for it in r.find("tagSet").findall("item")], "tags"),
    "DescribeSnapshots": ({"Owner.1": "self"}, lambda r: set_ids(r, "snapshotSet", "snapshotId"), "snapshots"),
    # The general (filtered) path of DescribeSnapshots pages too.
    "DescribeSnapshots/filtered": ({"Filter.1.Name": "tag-key", "Filter.1.Value.1": "s"},
                                   lambda r: set_ids(r, "snapshotSet", "snapshotId"), "snapshots"),
}


@pytest.mark.parametrize("name", sorted(WALKS))
def test_paging_visits_every_item_once(service, pw, name):
    extra, extract, kind = WALKS[name]
    action = name.split("/")[0]
    seen, pages = walk(service, action, extra, extract)
    want = pw[kind]
    assert len(seen) == len(set(seen)), f"{action}: items returned twice: {[s for s in seen if seen.count(s) > 1]}"
    assert set(seen) == want, f"{action}: missing {want - set(seen)}, unexpected {set(seen) - want}"
    assert pages == math.ceil(len(want) / 5), f"{action}: {pages} pages for {len(want)} items"


@pytest.mark.parametrize("action", ["DescribeVolumes", "DescribeInstances", "DescribeTags",
                                    "DescribeSnapshots", "DescribeVolumeStatus"])
def test_max_results_below_5_refused(service, pw, action):
    refused(service, "pager", action, {"MaxResults": 4}, "InvalidParameterValue", contains="MaxResults")


def test_describe_volumes_max_results_over_500(service, pw):
    root = ok(service, "pager", "DescribeVolumes", {"MaxResults": 501})
    ids = set_ids(root, "volumeSet", "volumeId")
    assert set(ids) == pw["volumes"] and len(ids) <= 500 and not root.findtext("nextToken")


@pytest.mark.parametrize("action,id_param", [("DescribeVolumes", "VolumeId.1"), ("DescribeVolumeStatus", "VolumeId.1"),
                                             ("DescribeInstances", "InstanceId.1"), ("DescribeSnapshots", "SnapshotId.1")])
def test_ids_with_max_results_refused(service, pw, action, id_param):
    some = {"VolumeId.1": sorted(pw["volumes"])[0], "InstanceId.1": sorted(pw["instances"])[0],
            "SnapshotId.1": sorted(pw["snapshots"])[0]}[id_param]
    refused(service, "pager", action, {id_param: some, "MaxResults": 5}, "InvalidParameterCombination")


def test_page_token_of_one_action_is_refused_by_another(service, pw):
    token = ok(service, "pager", "DescribeVolumes", {"MaxResults": 5}).findtext("nextToken")
    assert token
    refused(service, "pager", "DescribeVolumeStatus", {"MaxResults": 5, "NextToken": token}, "InvalidPaginationToken")
