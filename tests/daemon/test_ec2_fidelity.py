"""EC2 fidelity of the rebuilt Query API (action table, one filter engine, sharing, tags):
- every filter name of kVolumeFields / kInstanceFields / DescribeTags / kStatusFields /
  kSnapshotFields (read from src/api at test time) has a case asserting the exact set it
  selects; unknown filter names are refused by name;
- MaxResults/NextToken walks of every Describe* visit each item once; bounds and
  InvalidParameterCombination with ids;
- the action table (parsed from src/api/*.cc): every parameter of every action, sent with a
  value that changes the answer or is refused; an unknown parameter is refused everywhere;
- CreateTags/DeleteTags rules, snapshot sharing between teams, administrators acting on teams'
  resources (with the audit log's resource_account_id), CreateVolume's parameters."""

from __future__ import annotations

import json
import math
import os
import re
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

import daemon_helpers as dh

REPO = Path(__file__).resolve().parents[2]
API_DIR = REPO / "src" / "api"
AZ = "us-east-1a"
MISSING_VOL = "vol-0123456789abcdef0"
MISSING_SNAP = "snap-0123456789abcdef0"
MISSING_INST = "i-0123456789abcdef0"


# ---------------------------------------------------------------------------------------------
# Reading the action and filter tables from the sources

def parse_action_table() -> dict[str, list[str]]:
    """{action: [accepted parameter, ...]} from the {"Name", kArray, &Handler} rows of
    src/api/*.cc; a row's array is the last `static constexpr std::string_view kArray[]`
    defined before it in the same file."""
    arrays_re = re.compile(r"static\s+constexpr\s+std::string_view\s+(k\w+)\[\]\s*=\s*\{(.*?)\};", re.S)
    row_re = re.compile(r"\{\s*\"([A-Z]\w+)\"\s*,\s*(k\w+)\s*,\s*&\w+\s*\}")
    out: dict[str, list[str]] = {}
    for path in sorted(API_DIR.glob("*.cc")):
        if path.name.endswith("_test.cc"):
            continue
        text = path.read_text()
        arrays = [(m.start(), m.group(1), re.findall(r"\"([^\"]*)\"", m.group(2))) for m in arrays_re.finditer(text)]
        for row in row_re.finditer(text):
            action, arr = row.group(1), row.group(2)
            defs = [a for a in arrays if a[1] == arr and a[0] < row.start()]
            assert defs, f"{path.name}: action {action} names {arr}, which is not defined before it"
            assert action not in out, f"action {action} is listed twice"
            out[action] = defs[-1][2]
    return out


def parse_filter_names(file: str, table: str) -> list[str]:
    text = (API_DIR / file).read_text()
    m = re.search(r"FilterField<\w+>\s+" + table + r"\[\]\s*=\s*\{(.*?)\n\s*\};", text, re.S)
    assert m, f"no {table}[] in src/api/{file}"
    names = re.findall(r"\{\"([a-z][\w.:-]*)\",\s*\[\]", m.group(1))
    assert names, f"no names parsed from {table}"
    return names


ACTIONS = parse_action_table()
ACTION_PARAMS = [(a, p) for a in sorted(ACTIONS) for p in ACTIONS[a]]


# ---------------------------------------------------------------------------------------------
# Raw signed Query requests

def strip_ns(root):
    for el in root.iter():
        if "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    return root


@dataclass
class Answer:
    status: int
    body: bytes
    params: list

    @property
    def root(self):
        return strip_ns(ET.fromstring(self.body))

    @property
    def code(self):
        return None if self.status == 200 else dh.parse_ec2_error(self.body)[0]

    @property
    def message(self):
        return "" if self.status == 200 else dh.parse_ec2_error(self.body)[1]

    def __str__(self):
        return f"request {self.params}\n-> HTTP {self.status}: {self.body[:800]!r}"


def query(svc, alias: str, action: str, params=None) -> Answer:
    acct = svc.accounts[alias]
    items = list(params.items()) if isinstance(params, dict) else list(params or [])
    pairs = [("Action", action), ("Version", "2016-11-15"), *[(k, str(v)) for k, v in items]]
    body = urllib.parse.urlencode(pairs)
    status, _, data = dh.Signer(svc.endpoint, acct.access_key_id, acct.secret_access_key).send(body)
    return Answer(status, data, pairs)


def ok(svc, alias, action, params=None):
    a = query(svc, alias, action, params)
    assert a.status == 200, str(a)
    return a.root


def refused(svc, alias, action, params, code, *, contains: str | None = None) -> str:
    a = query(svc, alias, action, params)
    assert a.status != 200 and a.code == code, f"expected {code}\n{a}"
    if contains is not None:
        assert contains in a.message, f"expected {contains!r} in the message\n{a}"
    return a.message


def set_ids(root, set_tag: str, id_tag: str) -> list[str]:
    s = root.find(set_tag)
    assert s is not None, f"no <{set_tag}> in {ET.tostring(root)[:500]!r}"
    return [it.findtext(id_tag) for it in s.findall("item")]


def instance_ids(root) -> list[str]:
    return [i.findtext("instanceId") for i in root.findall("./reservationSet/item/instancesSet/item")]


def client_error(fn, *args, **kw) -> tuple[str, str]:
    try:
        out = fn(*args, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"].get("Message", "")
    raise AssertionError(f"expected a ClientError, got: {str(out)[:500]}")


def filters_params(filters) -> dict:
    out = {}
    for i, (name, values) in enumerate(filters, 1):
        out[f"Filter.{i}.Name"] = name
        for j, v in enumerate(values, 1):
            out[f"Filter.{i}.Value.{j}"] = v
    return out


def tiny_file(svc, name: str, size: int = 64 * 1024) -> Path:
    p = svc.root / "sources" / f"{name}.img"
    p.parent.mkdir(exist_ok=True)
    p.write_bytes(os.urandom(size))
    return p


def register(svc, alias, name, *, instance=None, device=None, boot=False) -> str:
    args = ["volume", "register", "--path", tiny_file(svc, name), "--account-id",
            svc.accounts[alias].account_id, "--name", name]
    if instance:
        args += ["--instance-id", instance, "--device", device]
    if boot:
        args.append("--boot")
    vid = svc.cli(*args).stdout.strip()
    assert dh.VOL_ID.match(vid), vid
    return vid


def new_instance(svc, alias, name) -> str:
    iid = svc.cli("instance", "create", "--account-id", svc.accounts[alias].account_id, "--name", name).stdout.strip()
    assert re.match(r"^i-[0-9a-f]{17}$", iid), iid
    return iid


def wait_snapshots(ec2, ids):
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=list(ids), WaiterConfig={"Delay": 0.1, "MaxAttempts": 600})


# ---------------------------------------------------------------------------------------------
# Fixtures: one daemon for the module

@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "fidelity", teams=3)
        yield svc
    finally:
        if svc is not None:
            dh.finish_service(svc)


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
    """Account `filt`: instances web (boot /dev/xvda + /dev/sdf), db (/dev/sdg), idle (none);
    v4 registered and unattached; v5 an empty 2 GiB standard managed volume tagged env=prod;
    v6 restored by the administrator from snapB (gp2, no tags); snapshots of v1 and v3."""
    svc = service
    svc.add_account("filt")
    iA, iB, iC = new_instance(svc, "filt", "web"), new_instance(svc, "filt", "db"), new_instance(svc, "filt", "idle")
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
        ("root-device-name", ["/dev/xvda"], {w.iA}),
        ("root-device-name", ["/dev/*"], {w.iA}),
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
    return {(it.findtext("resourceId"), it.findtext("resourceType"), it.findtext("key"), it.findtext("value") or "")
            for it in root.find("tagSet").findall("item")}


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
    add("DescribeRestoreRequests", "RestoreRequestId.", {"RestoreRequestId.1": "rr-00000000000000000"}, "InvalidRestoreRequest.NotFound")
    add("DescribeRestoreRequests", "State", {"State": "approved"},
        lambda r: x["rr"] not in set_ids(r, "restoreRequestSet", "restoreRequestId"))
    for action in ("ApproveRestoreRequest", "RejectRestoreRequest"):
        add(action, "RestoreRequestId", {"RestoreRequestId": "rr-00000000000000000"}, "InvalidRestoreRequest.NotFound")
        add(action, "Reason", {"Reason": "r" * 1025}, ("InvalidParameterValue", "Reason"))
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
    assert tags_of_resource(ec2, snap) == {}
    # A snapshot with snapvol: system tags (as a lifecycle policy makes) keeps them.
    res = service.cli("snapshot", "create", "--volume-id", t1["vol"], "--tag", "snapvol:policy-id=policy-0123456789abcdef0",
                      "--tag", "u=1", check=False)
    if res.returncode != 0:
        dh.note("test_ec2_fidelity: could not make a snapshot with a snapvol: tag offline "
                f"({res.stderr.strip()[:200]}); the system-tag part of DeleteTags-without-Tag.N was skipped")
        return
    sys_snap = res.stdout.strip().split()[-1]
    assert dh.SNAP_ID.match(sys_snap), res.stdout
    ok(service, "team-1", "DeleteTags", {"ResourceId.1": sys_snap})
    assert tags_of_resource(ec2, sys_snap) == {"snapvol:policy-id": "policy-0123456789abcdef0"}


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
    assert item.find("tagSet").findall("item") == []
    assert item.find("attachmentSet") is not None and item.findtext("snapshotId") is not None
    assert item.findtext("encrypted") == "false" and item.findtext("availabilityZone") == AZ
    # A 2 GiB standard volume: no iops.
    sid = ok(service, "team-3", "CreateVolume", {"Size": 2, "VolumeType": "standard"}).findtext("volumeId")
    item = ok(service, "team-3", "DescribeVolumes", {"VolumeId.1": sid}).find("volumeSet/item")
    assert item.findtext("volumeType") == "standard" and item.find("iops") is None and item.findtext("size") == "2"
