"""Three hosts, one service (issue "Many hosts, one service", acceptance): three snapvold on
loopback, each with a data dir and port of its own, share one PostgreSQL catalog and one
bucket prefix of the Ceph RGW test cluster (store format 2). A team's CreateSnapshots sent to
host A for an instance on host B is cut and taken by B and is visible, completed and
restorable, from C; DescribeSnapshots pages are the same from every host, and a page's
NextToken from one host continues on another (what a load balancer does); the AWS CLI (v2 and
v1) and boto3 get the same answers whichever host they reach.

Needs both fixtures (ctest: FIXTURES_REQUIRED pg and ceph; tests/s3/CMakeLists.txt)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "s3"))

import daemon_helpers as dh  # noqa: E402
import pg_helpers as pg  # noqa: E402
from pg_hosts import claims, host_id, start_host  # noqa: E402
from s3_helpers import Cluster  # noqa: E402

_V1 = dh.find_aws_v1()
HOSTS = ("a", "b", "c")


@pytest.fixture(scope="module")
def cluster3(tmp_path_factory, module_databases):
    """Three started hosts: a made by `init --catalog URL --store s3://…`, b and c given a's
    catalog, store and key files (not its host id), each its own data dir and port."""
    s3 = Cluster()
    url = module_databases.new()
    root = tmp_path_factory.mktemp("three")
    prefix = s3.new_prefix("threehosts")
    hosts: dict[str, dh.Service] = {}
    try:
        for name in HOSTS:
            svc = start_host(root / name, url, hosts.get("a"),
                             init_args=["--store", f"s3://{s3.bucket}/{prefix}", "--s3-endpoint", s3.endpoint,
                                        "--s3-save-keys", "--store-format", "2"],
                             init_env=s3.key_env())
            svc.load_admin()
            hosts[name] = svc
        a = hosts["a"]
        acct = a.add_account("team-1")
        for svc in hosts.values():
            svc.accounts["team-1"] = acct
            svc.write_aws_files()
        assert len({host_id(s) for s in hosts.values()}) == 3
        yield {"hosts": hosts, "url": url, "s3": s3, "prefix": prefix}
    finally:
        for svc in reversed(list(hosts.values())):
            dh.finish_service(svc)


@pytest.fixture(scope="module")
def app_on_b(cluster3):
    """An instance of team-1 on host b with a root and a data volume (files b holds)."""
    b = cluster3["hosts"]["b"]
    acct = b.accounts["team-1"].account_id
    inst = b.cli("instance", "create", "--account-id", acct, "--name", "app").stdout.strip()
    vols = {}
    for i, (dev, boot) in enumerate((("/dev/xvda", True), ("/dev/xvdb", False))):
        path = dh.genvol_create(b.root / f"app-{i}.img", "24M", 40 + i)
        args = ["volume", "register", "--path", path, "--account-id", acct, "--name", f"app-{i}",
                "--instance-id", inst, "--device", dev] + (["--boot"] if boot else [])
        vid = b.cli(*args).stdout.strip()
        assert dh.VOL_ID.match(vid), vid
        vols[vid] = path
    return {"instance": inst, "volumes": vols}


def wait_completed(svc, ids):
    svc.client("team-1").get_waiter("snapshot_completed").wait(
        SnapshotIds=list(ids), WaiterConfig={"Delay": 0.2, "MaxAttempts": 600})


@pytest.mark.parametrize("cli", [2, 1], ids=["cli-v2", "cli-v1"])
def test_create_snapshots_sent_to_a_is_cut_on_b_and_seen_from_c(cluster3, app_on_b, cli, tmp_path):
    a, b, c = (cluster3["hosts"][h] for h in HOSTS)
    if cli == 1 and _V1 is None:
        pytest.fail("no AWS CLI v1 (`aws --version` = aws-cli/1.x) on PATH besides /usr/bin/aws")
    aws = dh.AwsCli(dh.AWS_V2, 2) if cli == 2 else dh.AwsCli(_V1, 1)
    out = aws.ok(a, "team-1", "ec2", "create-snapshots",
                 "--instance-specification", f"InstanceId={app_on_b['instance']}",
                 "--description", f"app via A, cli v{cli}",
                 "--tag-specifications", "ResourceType=snapshot,Tags=[{Key=Owner,Value=team-1}]")
    snaps = out["Snapshots"]
    assert {s["VolumeId"] for s in snaps} == set(app_on_b["volumes"]), snaps
    assert all(s["State"] == "pending" for s in snaps), snaps
    ids = [s["SnapshotId"] for s in snaps]
    wait_completed(c, ids)

    # B cut and took them, as one job; A and C claimed nothing.
    by_b = [e for e in claims(b) if set(e["snapshot_ids"]) == set(ids)]
    assert len(by_b) == 1 and by_b[0]["runner"].endswith("@" + host_id(b)), claims(b)
    assert not any(set(ids) & set(e["snapshot_ids"]) for e in claims(a) + claims(c))
    # One point in time: both carry the same cut.
    from_c = c.client("team-1").describe_snapshots(SnapshotIds=ids)["Snapshots"]
    assert len({s["StartTime"] for s in from_c}) == 1, from_c
    assert all(s["State"] == "completed" and dh.tags_of(s)["Owner"] == "team-1" for s in from_c), from_c
    # How they were cut, recorded by B at its cut, read through C's data dir.
    cut = [dh.cut_tags(c, s["SnapshotId"]).get("aws:snapvol:consistency", "") for s in from_c]
    assert all(cut) and len({t.split(";")[0] for t in cut}) == 1, cut

    # Restored through C's data dir from the bucket: B's files, byte for byte.
    for s in from_c:
        dest = tmp_path / f"{s['SnapshotId']}.img"
        c.cli("restore", "--snapshot-id", s["SnapshotId"], "--to", dest, timeout=300)
        assert dh.sha256_file(dest) == dh.sha256_file(app_on_b["volumes"][s["VolumeId"]])


def pages(svc_cycle, token_from=None) -> list[list[str]]:
    """DescribeSnapshots of team-1, 5 a page, each page asked of the next host in svc_cycle."""
    out, token, i = [], None, 0
    while True:
        ec2 = svc_cycle[i % len(svc_cycle)].client("team-1")
        kw = {"NextToken": token} if token else {}
        page = ec2.describe_snapshots(OwnerIds=["self"], MaxResults=5, **kw)
        out.append(page["Snapshots"])
        token = page.get("NextToken")
        i += 1
        if not token:
            return out
        assert i < 100, "paging does not end"


def test_describe_snapshots_pages_are_the_same_from_every_host(cluster3, app_on_b):
    hosts = [cluster3["hosts"][h] for h in HOSTS]
    vol = next(iter(app_on_b["volumes"]))
    # Snapshots asked of every host in turn (all taken by b), so there are several pages.
    ids = [hosts[i % 3].client("team-1").create_snapshot(VolumeId=vol, Description=f"page {i}")["SnapshotId"]
           for i in range(9)]
    wait_completed(hosts[0], ids)
    each = [pages([h]) for h in hosts]
    assert each[0] == each[1] == each[2], "a host pages differently"
    flat = [s["SnapshotId"] for page in each[0] for s in page]
    assert len(flat) == len(set(flat)) and set(ids) <= set(flat), flat
    assert len(each[0]) >= 3 and all(len(p) <= 5 for p in each[0])
    # A token from one host continues on another: a load balancer's round robin.
    assert pages(hosts) == each[0]
    assert pages(list(reversed(hosts))) == each[0]


@pytest.mark.parametrize("via", HOSTS)
def test_the_cli_and_boto3_get_the_same_answers_from_any_host(cluster3, app_on_b, via):
    """The team's everyday flow (#3's acceptance: snapshot with Name and Owner, find it by tag,
    retag it, delete it) through one host, with each client; every host then agrees."""
    svc = cluster3["hosts"][via]
    vol = next(iter(app_on_b["volumes"]))
    # boto3
    ec2 = svc.client("team-1")
    sid = ec2.create_snapshot(VolumeId=vol, Description=f"boto3 via {via}", TagSpecifications=[
        {"ResourceType": "snapshot", "Tags": [{"Key": "Name", "Value": f"nightly-{via}"},
                                              {"Key": "Owner", "Value": "team-1"}]}])["SnapshotId"]
    wait_completed(svc, [sid])
    found = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag:Name", "Values": [f"nightly-{via}"]}])
    assert [s["SnapshotId"] for s in found["Snapshots"]] == [sid], found
    # The AWS CLI v2, then v1, on the same snapshot through the same host.
    assert _V1 is not None, "no AWS CLI v1 (`aws --version` = aws-cli/1.x) on PATH besides /usr/bin/aws"
    clis = [dh.AwsCli(dh.AWS_V2, 2), dh.AwsCli(_V1, 1)]
    for aws in clis:
        aws.ok(svc, "team-1", "ec2", "create-tags", "--resources", sid, "--tags", f"Key=Reviewed,Value=v{aws.major}")
        got = aws.ok(svc, "team-1", "ec2", "describe-snapshots", "--owner-ids", "self",
                     "--filters", f"Name=tag:Reviewed,Values=v{aws.major}")["Snapshots"]
        assert [s["SnapshotId"] for s in got] == [sid], got
    # Every host sees the same snapshot, tags and all.
    seen = [cluster3["hosts"][h].client("team-1").describe_snapshots(SnapshotIds=[sid])["Snapshots"] for h in HOSTS]
    assert seen[0] == seen[1] == seen[2], seen
    assert dh.tags_of(seen[0][0])["Reviewed"] == "v1"  # the last CLI's
    # Deleted through this host: gone from every host.
    clis[0].ok(svc, "team-1", "ec2", "delete-snapshot", "--snapshot-id", sid)
    for h in HOSTS:
        with pytest.raises(Exception) as e:
            cluster3["hosts"][h].client("team-1").describe_snapshots(SnapshotIds=[sid])
        assert "InvalidSnapshot.NotFound" in str(e.value), e.value
    assert pg.psql(cluster3["url"], f"SELECT count(*) FROM snapshots WHERE snapshot_id = '{sid}'") == "0"
