"""boto3 against snapvold: the describe_snapshots paginator over thousands of snapshots, the
snapshot_completed waiter, and the EC2 error codes as boto3 raises them (ClientError)."""

from __future__ import annotations

import os
import statistics
import threading
import time

import pytest
from botocore.exceptions import ClientError

import daemon_helpers as dh
from daemon_helpers import SNAP_ID, UNAUTHORIZED_MESSAGE, VOL_ID

# How many snapshots the paginator test creates. 2500 takes ~15 s here with 8 client threads;
# SNAPVOL_PAGER_SNAPSHOTS overrides it (e.g. smaller while debugging).
N_SNAPSHOTS = int(os.environ.get("SNAPVOL_PAGER_SNAPSHOTS", "2500"))
CREATE_THREADS = 8
GROUPS = 50  # each snapshot gets tag group=gK, K = i % GROUPS


def client_error(fn, *args, **kw) -> tuple[str, int, str]:
    """Calls fn, which must raise ClientError; returns (code, HTTP status, message)."""
    try:
        out = fn(*args, **kw)
    except ClientError as e:
        err = e.response["Error"]
        return err["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"], err.get("Message", "")
    raise AssertionError(f"expected a ClientError, got a result: {str(out)[:500]}")


def all_pending_settled(ec2) -> bool:
    out = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "status", "Values": ["pending"]}],
                                 MaxResults=1000)
    return not out["Snapshots"] and not out.get("NextToken")


@pytest.fixture(scope="module")
def pager(service):
    """Account `pager` with a 64 KiB volume and N_SNAPSHOTS completed snapshots of it, created
    through the API; returns (client, {snapshot id: group tag})."""
    service.add_account("pager")
    src = service.root / "sources" / "tiny.img"
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(os.urandom(64 * 1024))
    vol = service.add_volume("pager", "tiny", path=src)

    local = threading.local()

    def create(i: int) -> tuple[str, str]:
        if not hasattr(local, "ec2"):
            local.ec2 = service.client("pager")
        group = f"g{i % GROUPS}"
        out = local.ec2.create_snapshot(
            VolumeId=vol.volume_id, Description=f"pager {i}",
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": [{"Key": "group", "Value": group}]}])
        return out["SnapshotId"], group

    t0 = time.monotonic()
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(CREATE_THREADS) as ex:
        made = list(ex.map(create, range(N_SNAPSHOTS)))
    created_s = time.monotonic() - t0
    ec2 = service.client("pager")
    dh.wait_until(lambda: all_pending_settled(ec2), 120, 0.2, "the pager snapshots to settle")
    settled_s = time.monotonic() - t0
    dh.note(f"test_boto3: {N_SNAPSHOTS} CreateSnapshot calls of a 64 KiB volume with {CREATE_THREADS} "
            f"boto3 threads took {created_s:.1f} s ({created_s / N_SNAPSHOTS * 1000:.1f} ms each, "
            f"{N_SNAPSHOTS / created_s:.0f}/s); all completed after {settled_s:.1f} s")
    ids = dict(made)
    assert len(ids) == N_SNAPSHOTS, "CreateSnapshot returned a snapshot id twice"
    return ec2, ids


def paginate(ec2, page_size: int | None, **kw) -> tuple[list[str], int]:
    cfg = {"PageSize": page_size} if page_size else {}
    seen, pages = [], 0
    for page in ec2.get_paginator("describe_snapshots").paginate(OwnerIds=["self"], PaginationConfig=cfg, **kw):
        pages += 1
        if page_size:
            assert len(page["Snapshots"]) <= min(page_size, 1000)
        seen += [s["SnapshotId"] for s in page["Snapshots"]]
    return seen, pages


@pytest.mark.parametrize("page_size", [None, 1000, 97])
def test_paginator_returns_each_snapshot_once(pager, page_size):
    ec2, ids = pager
    seen, pages = paginate(ec2, page_size)
    assert len(seen) == len(set(seen)), f"{len(seen) - len(set(seen))} snapshots came back twice"
    assert set(seen) == set(ids), (f"missing {len(set(ids) - set(seen))}, unexpected "
                                   f"{len(set(seen) - set(ids))}")
    if page_size:
        expect = -(-len(ids) // min(page_size, 1000))
        assert pages == expect, f"{pages} pages of at most {page_size} for {len(ids)} snapshots"


def test_paginator_with_filter_and_smallest_page(pager):
    ec2, ids = pager
    want = {i for i, g in ids.items() if g == "g7"}
    seen, pages = paginate(ec2, 5, Filters=[{"Name": "tag:group", "Values": ["g7"]},
                                            {"Name": "status", "Values": ["completed"]}])
    assert len(seen) == len(set(seen)) and set(seen) == want
    assert pages == -(-len(want) // 5)


def test_paging_survives_changes_between_pages(service, pager):
    """Snapshots deleted or created between two pages do not make the paginator repeat or skip
    any of the others (the token is the last id returned, not an offset)."""
    ec2, ids = pager
    want = sorted(i for i, g in ids.items() if g in ("g3", "g4"))
    flt = [{"Name": "tag:group", "Values": ["g3", "g4"]}]
    first = ec2.describe_snapshots(OwnerIds=["self"], Filters=flt, MaxResults=20)
    page1 = [s["SnapshotId"] for s in first["Snapshots"]]
    assert len(page1) == 20 and first.get("NextToken")
    # Delete the last snapshot of page 1 and one not yet returned; add a new one to the group.
    gone = [page1[-1], want[-1]]
    assert want[-1] not in page1
    for sid in gone:
        ec2.delete_snapshot(SnapshotId=sid)
    vol = service.volumes["tiny"]
    new = ec2.create_snapshot(VolumeId=vol.volume_id, TagSpecifications=[
        {"ResourceType": "snapshot", "Tags": [{"Key": "group", "Value": "g3"}]}])["SnapshotId"]
    rest, token = [], first["NextToken"]
    while token:
        out = ec2.describe_snapshots(OwnerIds=["self"], Filters=flt, MaxResults=20, NextToken=token)
        rest += [s["SnapshotId"] for s in out["Snapshots"]]
        token = out.get("NextToken")
    seen = page1 + rest
    assert len(seen) == len(set(seen)), "a snapshot came back twice"
    assert set(want) - set(gone) <= set(seen), "a snapshot that existed all along was skipped"
    assert want[-1] not in rest, "a snapshot deleted before its page was returned"
    assert set(seen) - set(want) <= {new}
    ids.pop(gone[0]), ids.pop(gone[1])  # keep the fixture's picture right for later tests
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[new], WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
    ec2.delete_snapshot(SnapshotId=new)


def test_page_tokens_are_bound_to_the_account(service, pager):
    ec2, ids = pager
    token = ec2.describe_snapshots(OwnerIds=["self"], MaxResults=5)["NextToken"]
    other = service.client("team-1")
    code, status, _ = client_error(other.describe_snapshots, OwnerIds=["self"], MaxResults=5, NextToken=token)
    assert (code, status) == ("InvalidPaginationToken", 400)
    code, status, _ = client_error(ec2.describe_snapshots, OwnerIds=["self"], MaxResults=5, NextToken="AAAA" + token[4:])
    assert (code, status) == ("InvalidPaginationToken", 400)
    code, _, msg = client_error(ec2.describe_snapshots, MaxResults=4)
    assert code == "InvalidParameterValue" and "MaxResults" in msg


def test_snapshot_completed_waiter(service):
    vol = service.add_volume("team-1", "waiter-src", size="96M", seed=21, holes=False)
    ec2 = service.client("team-1")
    snap = ec2.create_snapshot(VolumeId=vol.volume_id, Description="waiter")
    assert SNAP_ID.match(snap["SnapshotId"]) and snap["State"] == "pending", snap
    t0 = time.monotonic()
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[snap["SnapshotId"]],
                                              WaiterConfig={"Delay": 0.1, "MaxAttempts": 600})
    waited = time.monotonic() - t0
    s = ec2.describe_snapshots(SnapshotIds=[snap["SnapshotId"]])["Snapshots"][0]
    assert s["State"] == "completed" and s["Progress"] == "100%", s
    dh.note(f"test_boto3: the snapshot_completed waiter waited {waited:.2f} s for a 96 MiB snapshot")


# ---- error codes ----

def test_not_found(service):
    ec2 = service.client("team-1")
    missing = "snap-0123456789abcdef0"
    for call in (lambda: ec2.describe_snapshots(SnapshotIds=[missing]),
                 lambda: ec2.delete_snapshot(SnapshotId=missing),
                 lambda: ec2.create_tags(Resources=[missing], Tags=[{"Key": "a", "Value": "b"}])):
        code, status, msg = client_error(call)
        assert (code, status) == ("InvalidSnapshot.NotFound", 400) and missing in msg


def test_description_too_long_256_chars(service):
    ec2 = service.client("team-1")
    before = service.catalog_snapshots()
    code, status, msg = client_error(ec2.create_snapshot, VolumeId=service.volumes["vol-team-1"].volume_id,
                                     Description="d" * 256)
    assert (code, status) == ("InvalidParameterValue", 400), msg
    assert service.catalog_snapshots() == before


def test_description_of_1_mib(service):
    """A 1 MiB description must be refused with an EC2 error boto3 can parse."""
    ec2 = service.client("team-1")
    before = service.catalog_snapshots()
    try:
        code, status, msg = client_error(ec2.create_snapshot, VolumeId=service.volumes["vol-team-1"].volume_id,
                                         Description="d" * (1 << 20))
    except Exception as e:  # botocore.parsers.ResponseParserError when the answer is not EC2 XML
        raise AssertionError(f"boto3 could not parse the daemon's answer: {type(e).__name__}: {str(e)[:300]}")
    assert code == "InvalidParameterValue", (code, status, msg)
    assert service.catalog_snapshots() == before


def test_valid_request_larger_than_8_kib(service):
    """A valid CreateSnapshot with 50 tags of 256-character values (a ~20 KiB form body) is
    answered by the EC2 handler (here DryRunOperation), not refused by the HTTP layer."""
    ec2 = service.client("team-1")
    tags = [{"Key": f"key-{i:02d}", "Value": "v" * 256} for i in range(50)]
    try:
        code, status, msg = client_error(ec2.create_snapshot, VolumeId=service.volumes["vol-team-1"].volume_id,
                                         TagSpecifications=[{"ResourceType": "snapshot", "Tags": tags}], DryRun=True)
    except Exception as e:
        raise AssertionError(f"boto3 could not parse the daemon's answer: {type(e).__name__}: {str(e)[:300]}")
    assert code == "DryRunOperation", (code, status, msg)


def test_description_of_255_non_ascii_chars_is_allowed(service):
    """EC2 limits Description to 255 characters, not bytes (DryRun: nothing is created)."""
    ec2 = service.client("team-1")
    code, _, msg = client_error(ec2.create_snapshot, VolumeId=service.volumes["vol-team-1"].volume_id,
                                Description="é" * 255, DryRun=True)
    assert code == "DryRunOperation", f"255 two-byte characters refused: {code}: {msg}"


def test_bad_filter_name(service):
    ec2 = service.client("team-1")
    code, status, msg = client_error(ec2.describe_snapshots, Filters=[{"Name": "no-such-filter", "Values": ["x"]}])
    assert (code, status) == ("InvalidParameterValue", 400) and "no-such-filter" in msg


def test_missing_volume_id(service):
    ec2 = service.client("team-1", validate=False)
    before = service.catalog_snapshots()
    code, status, msg = client_error(ec2.create_snapshot, Description="no volume")
    assert (code, status) == ("MissingParameter", 400) and "VolumeId" in msg
    assert service.catalog_snapshots() == before


def test_invalid_action(service):
    ec2 = service.client("team-1")

    def rename(params, **_):
        params["body"]["Action"] = "FrobnicateVolumes"

    ec2.meta.events.register("before-call.ec2.DescribeVolumes", rename)
    code, status, msg = client_error(ec2.describe_volumes)
    assert (code, status) == ("InvalidAction", 400) and "FrobnicateVolumes" in msg


def test_auth_failure(service):
    team1 = service.accounts["team-1"]
    wrong = team1.secret_access_key[:-4] + ("AAAA" if not team1.secret_access_key.endswith("AAAA") else "BBBB")
    for ec2 in (service.client("team-1", secret=wrong),
                service.client("team-1", access_key_id="AKIA" + "Z" * 16)):
        code, status, msg = client_error(ec2.describe_snapshots, OwnerIds=["self"])
        assert (code, status) == ("AuthFailure", 401), (code, status, msg)
        assert team1.secret_access_key not in msg


def test_member_restore_is_unauthorized(service):
    ec2 = service.client("team-1")
    sid = ec2.create_snapshot(VolumeId=service.volumes["vol-team-1"].volume_id)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
    files = service.volume_files()  # every host's: a restore runs on the host asked
    code, status, msg = client_error(ec2.create_volume, SnapshotId=sid, AvailabilityZone="us-east-1a")
    assert (code, status, msg) == ("UnauthorizedOperation", 403, UNAUTHORIZED_MESSAGE)
    assert service.volume_files() == files


def test_restored_volume_names_its_snapshot(service):
    """DescribeVolumes of a volume restored with CreateVolume names the snapshot it came from,
    as CreateVolume's own answer does."""
    team1 = service.client("team-1")
    sid = team1.create_snapshot(VolumeId=service.volumes["vol-team-1"].volume_id)["SnapshotId"]
    team1.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
    made = service.client("admin").create_volume(SnapshotId=sid, AvailabilityZone="us-east-1a")
    assert VOL_ID.match(made["VolumeId"]) and made["SnapshotId"] == sid
    vols = team1.describe_volumes(VolumeIds=[made["VolumeId"]])["Volumes"]
    assert [v["VolumeId"] for v in vols] == [made["VolumeId"]]
    assert vols[0].get("SnapshotId") == sid, f"DescribeVolumes says SnapshotId={vols[0].get('SnapshotId')!r}"


def test_keep_alive_connection_serves_many_requests(service):
    """SDKs keep one connection open across calls: twenty signed requests on one connection all
    succeed on that same socket (no reconnect). The latency is noted, not asserted (a server
    without TCP_NODELAY shows ~40 ms per request here). A property of one daemon's socket, so
    host 1's, never the three-host mode's balancer."""
    import http.client

    acct = service.accounts["team-1"]
    signer = dh.Signer(service.daemon.endpoint, acct.access_key_id, acct.secret_access_key)
    conn = http.client.HTTPConnection("127.0.0.1", service.daemon.port, timeout=30)
    times = []
    try:
        conn.connect()
        sock = conn.sock
        local = sock.getsockname()
        for _ in range(20):
            body, headers = signer.signed(b"Action=DescribeVolumes&Version=2016-11-15")
            t0 = time.perf_counter()
            conn.request("POST", "/", body=body, headers=headers)
            res = conn.getresponse()
            data = res.read()
            times.append((time.perf_counter() - t0) * 1000)
            assert res.status == 200, data[:300]
            assert res.getheader("Connection", "").lower() != "close"
            assert conn.sock is sock and sock.getsockname() == local, "the client had to reconnect"
    finally:
        conn.close()
    dh.note(f"test_boto3: DescribeVolumes on one kept-alive connection: median {statistics.median(times):.1f} ms "
            f"(min {min(times):.1f}, max {max(times):.1f})")
