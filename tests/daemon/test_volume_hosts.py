"""Where a volume lives (docs/multi-host.md part 3), through a real snapvold with boto3 and
the AWS CLI: DescribeVolumes carries the read-only system tags aws:snapvol:host (the owning host's
name, or its id while it has no row) and, for managed volumes, aws:snapvol:nbd (the export's URI);
every tag filter (tag:aws:snapvol:host, tag-key; DescribeTags' key and value) sees them as it sees
real tags, paging with MaxResults returns the same set as one call; CreateTags/DeleteTags refuse them by name;
`snapvol volume list` prints the host. A CreateSnapshots cut of an instance whose volumes live
on two hosts is refused with InvalidParameterCombination naming both, and writes nothing."""

from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

import daemon_helpers as dh

AZ = "us-east-1a"
NAME = "rack9-b"
OTHER = "host-0123456789abcdef0"  # a host with no row: named by its id


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "volhosts", teams=1, daemon_args=["--host-name", NAME])
        yield svc
    finally:
        if svc is not None:
            dh.finish_service(svc)


@pytest.fixture(scope="module")
def world(service):
    """Six managed volumes made through the API, the team's registered volume, and one
    registered on behalf of another host."""
    ec2 = service.client("team-1")
    managed = [ec2.create_volume(Size=1, AvailabilityZone=AZ)["VolumeId"] for _ in range(6)]
    acct = service.accounts["team-1"].account_id
    path = dh.genvol_create(service.root / "elsewhere.img", "4M", 7)
    elsewhere = service.cli("volume", "register", "--path", path, "--account-id", acct, "--name", "far",
                            "--host", OTHER).stdout.strip()
    local = service.volumes["vol-team-1"].volume_id
    return {"ec2": ec2, "managed": managed, "local": local, "elsewhere": elsewhere,
            "here": set(managed) | {local}, "all": set(managed) | {local, elsewhere}}


def volume_ids(ec2, **kw) -> set[str]:
    return {v["VolumeId"] for v in ec2.describe_volumes(**kw)["Volumes"]}


def paged_ids(ec2, filters) -> list[str]:
    out, token = [], None
    while True:
        kw = {"Filters": filters, "MaxResults": 5}
        if token:
            kw["NextToken"] = token
        page = ec2.describe_volumes(**kw)
        assert len(page["Volumes"]) <= 5, page
        out += [v["VolumeId"] for v in page["Volumes"]]
        token = page.get("NextToken")
        if not token:
            return out


def test_describe_volumes_says_where_each_volume_lives(service, world):
    ec2 = world["ec2"]
    sock = service.data_dir / "nbd.sock"
    vols = {v["VolumeId"]: {t["Key"]: t["Value"] for t in v.get("Tags", [])}
            for v in ec2.describe_volumes()["Volumes"]}
    assert set(vols) == world["all"], vols
    for vid in world["managed"]:
        assert vols[vid]["aws:snapvol:host"] == NAME, vols[vid]
        assert vols[vid]["aws:snapvol:nbd"] == f"nbd+unix:///{vid}?socket={sock}", vols[vid]
    assert vols[world["local"]]["aws:snapvol:host"] == NAME
    assert "aws:snapvol:nbd" not in vols[world["local"]], "a registered volume has no NBD export"
    assert vols[world["elsewhere"]] == {"Name": "far", "aws:snapvol:host": OTHER}


def test_every_tag_filter_sees_them_and_paging_returns_the_same_set(service, world):
    ec2 = world["ec2"]
    cases = [
        ([{"Name": "tag:aws:snapvol:host", "Values": [NAME]}], world["here"]),
        ([{"Name": "tag:aws:snapvol:host", "Values": ["rack9-*"]}], world["here"]),
        ([{"Name": "tag:aws:snapvol:host", "Values": [OTHER]}], {world["elsewhere"]}),
        ([{"Name": "tag-key", "Values": ["aws:snapvol:nbd"]}], set(world["managed"])),
        ([{"Name": "tag-key", "Values": ["aws:snapvol:host"]}], world["all"]),
        ([{"Name": "tag-key", "Values": ["aws:snapvol:*"]}], world["all"]),
    ]
    for filters, want in cases:
        assert volume_ids(ec2, Filters=filters) == want, filters
        paged = paged_ids(ec2, filters)
        assert len(paged) == len(set(paged)) and set(paged) == want, (filters, paged)
    # DescribeTags lists them as the volume's tags, and filters them by key and by value (EC2's
    # DescribeVolumes has no tag-value filter today: it stays refused by name there).
    rows = ec2.describe_tags(Filters=[{"Name": "key", "Values": ["aws:snapvol:host"]}])["Tags"]
    assert {(r["ResourceId"], r["Value"]) for r in rows} == (
        {(v, NAME) for v in world["here"]} | {(world["elsewhere"], OTHER)})
    rows = ec2.describe_tags(Filters=[{"Name": "value", "Values": ["nbd+unix:*"]}])["Tags"]
    assert {(r["ResourceId"], r["Key"]) for r in rows} == {(v, "aws:snapvol:nbd") for v in world["managed"]}
    with pytest.raises(ClientError) as e:
        ec2.describe_volumes(Filters=[{"Name": "tag-value", "Values": [NAME]}])
    assert "tag-value" in e.value.response["Error"]["Message"]


def test_they_are_read_only(service, world):
    ec2, vid = world["ec2"], world["managed"][0]
    for key in ("aws:snapvol:host", "aws:snapvol:nbd"):
        with pytest.raises(ClientError) as e:
            ec2.delete_tags(Resources=[vid], Tags=[{"Key": key}])
        assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
        assert key in e.value.response["Error"]["Message"]
        with pytest.raises(ClientError) as e:
            ec2.create_tags(Resources=[vid], Tags=[{"Key": key, "Value": "x"}])
        assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    ec2.delete_tags(Resources=[vid])  # every user tag: the system tags stay
    tags = {t["Key"] for t in ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]["Tags"]}
    assert tags == {"aws:snapvol:host", "aws:snapvol:nbd"}


def test_the_aws_cli_shows_them(service, world):
    out = dh.AwsCli(dh.AWS_V2, 2).ok(service, "team-1", "ec2", "describe-volumes", "--max-items", "5",
                                     "--filters", f"Name=tag:aws:snapvol:host,Values={OTHER}")
    assert [v["VolumeId"] for v in out["Volumes"]] == [world["elsewhere"]]


def test_volume_list_prints_the_host(service, world):
    rows = service.cli("volume", "list").stdout.splitlines()
    assert rows[0].split()[:8] == ["VOLUME", "NAME", "SIZE", "STATE", "HOST", "HOST", "STATE", "PATH"], rows
    # The other host never registered (no snapvold runs there): its volume is out of reach.
    line = next(r for r in rows if r.startswith(world["elsewhere"]))
    assert OTHER in line and " unregistered " in line, line
    line = next(r for r in rows if r.startswith(world["local"]))
    assert NAME in line and " up " in line, line
    js = json.loads(service.cli("volume", "list", "-o", "json").stdout)["Volumes"]
    host_id = (service.data_dir / "host-id").read_text().strip()
    assert {v["VolumeId"]: v["HostId"] for v in js}[world["local"]] == host_id
    states = {v["VolumeId"]: v["HostState"] for v in js}
    assert {states[world["local"]], states[world["elsewhere"]]} == {"up", "unregistered"}, states
    # The volume's own state, as DescribeVolumes says it, in both forms.
    ec2 = {v["VolumeId"]: v["State"] for v in world["ec2"].describe_volumes()["Volumes"]}
    assert world["local"] in ec2 and {v["VolumeId"]: v["State"] for v in js if v["VolumeId"] in ec2} == ec2
    line = next(r for r in rows if r.startswith(world["local"]))
    assert f" {ec2[world['local']]} " in line, line
    assert states[world["elsewhere"]] == "unregistered" and states[world["local"]] == "up", states
    assert {states[v] for v in world["managed"]} == {"up"}, states
    bad = service.cli("volume", "register", "--path", service.root / "elsewhere.img", "--host", "rack9",
                      check=False)
    assert bad.returncode != 0 and "not a host id" in bad.stderr, bad.stderr


def test_an_instance_cut_across_hosts_is_refused_and_writes_nothing(service):
    ec2 = service.client("team-1")
    acct = service.accounts["team-1"].account_id
    inst = service.cli("instance", "create", "--account-id", acct, "--name", "split").stdout.strip()
    vids = []
    for n, (dev, host) in enumerate([("/dev/sdf", []), ("/dev/sdg", ["--host", OTHER])]):
        path = dh.genvol_create(service.root / f"split{n}.img", "4M", 50 + n)
        vids.append(service.cli("volume", "register", "--path", path, "--account-id", acct, "--name", f"split-{n}",
                                "--instance-id", inst, "--device", dev, *host).stdout.strip())
    before = set(service.catalog_snapshots())
    with pytest.raises(ClientError) as e:
        ec2.create_snapshots(InstanceSpecification={"InstanceId": inst}, Description="cut")
    err = e.value.response["Error"]
    assert err["Code"] == "InvalidParameterCombination", err
    host_id = (service.data_dir / "host-id").read_text().strip()
    assert f"{NAME} ({host_id}): {vids[0]}" in err["Message"], err
    assert f"{OTHER}: {vids[1]}" in err["Message"], err
    assert set(service.catalog_snapshots()) == before, "a refused cut wrote snapshots"
    # Without the other host's volume the cut is on one host and is taken.
    out = ec2.create_snapshots(InstanceSpecification={"InstanceId": inst, "ExcludeDataVolumeIds": [vids[1]]})
    assert [s["VolumeId"] for s in out["Snapshots"]] == [vids[0]], out


def test_a_volume_whose_host_is_not_up_has_insufficient_data(service, world):
    """DescribeVolumeStatus of a volume whose host runs no snapvold (docs/multi-host.md part 5):
    no check of its I/O can be made, which EC2 calls insufficient-data; the filters agree."""
    ec2 = world["ec2"]
    by_id = {s["VolumeId"]: s for s in ec2.describe_volume_status(
        VolumeIds=[world["elsewhere"], world["local"]])["VolumeStatuses"]}
    far = by_id[world["elsewhere"]]["VolumeStatus"]
    assert far["Status"] == "insufficient-data", far
    assert {d["Name"]: d["Status"] for d in far["Details"]}["io-enabled"] == "insufficient-data", far
    near = by_id[world["local"]]["VolumeStatus"]
    assert near["Status"] == "ok", near
    assert {d["Name"]: d["Status"] for d in near["Details"]}["io-enabled"] == "passed", near

    def status_ids(name, value):
        out = ec2.describe_volume_status(Filters=[{"Name": name, "Values": [value]}])["VolumeStatuses"]
        return {s["VolumeId"] for s in out}

    assert world["elsewhere"] in status_ids("volume-status.status", "insufficient-data")
    assert world["elsewhere"] not in status_ids("volume-status.status", "ok")
    assert world["local"] in status_ids("volume-status.status", "ok")
    assert world["local"] not in status_ids("volume-status.status", "insufficient-data")
    assert world["elsewhere"] in status_ids("volume-status.details-status", "insufficient-data")
    assert world["local"] not in status_ids("volume-status.details-status", "insufficient-data")


def test_evacuate_answers_only_an_administrator_and_never_for_a_host_that_is_up(service, world):
    """POST /api/v1/hosts/HOST/evacuate (docs/multi-host.md part 5) on one host: a member is
    refused; the host answering cannot be evacuated (it is up, and its volumes are here); a
    malformed id and an unknown body field are refused by name; a host that never registered
    and holds only a registered volume has no managed volume to restore, and nothing is made."""
    here = (service.data_dir / "host-id").read_text().strip()
    before = {v["VolumeId"] for v in world["ec2"].describe_volumes()["Volumes"]}
    status, body = service.signer("team-1").json("POST", f"/api/v1/hosts/{OTHER}/evacuate", {})
    assert status == 403 and body["error"]["code"] == "UnauthorizedOperation", body
    admin = service.signer("admin")
    status, body = admin.json("POST", f"/api/v1/hosts/{here}/evacuate", {})
    assert status == 400 and body["error"]["code"] == "IncorrectState", body
    status, body = admin.json("POST", "/api/v1/hosts/rack9/evacuate", {})
    assert status == 400 and body["error"]["code"] == "InvalidParameterValue", body
    status, body = admin.json("POST", f"/api/v1/hosts/{OTHER}/evacuate", {"dryRun": "yes"})
    assert status == 400 and body["error"]["code"] == "InvalidParameterValue", body
    status, body = admin.json("POST", f"/api/v1/hosts/{OTHER}/evacuate", {"to": here})
    assert status == 400 and "to" in body["error"]["message"], body
    status, body = admin.json("POST", f"/api/v1/hosts/{OTHER}/evacuate", {})
    assert status == 200, body
    assert body == {"hostId": OTHER, "hostState": "unregistered", "toHostId": here, "dryRun": False,
                    "volumes": []}, body
    assert {v["VolumeId"] for v in world["ec2"].describe_volumes()["Volumes"]} == before
