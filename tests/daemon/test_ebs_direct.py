"""The EBS direct APIs (REST-JSON, SigV4 service "ebs") with boto3's ebs client and the AWS CLI v2:
- a 64 MiB image with holes uploaded block by block (16 requests in flight), completed with
  its LINEAR checksum, listed and downloaded byte-identical; it is an ordinary snapshot
  (DescribeSnapshots, restorable, in the store);
- an incremental upload with a parent changes only the blocks written, and ListChangedBlocks
  names exactly them; a snapshot taken by CreateSnapshot is listed and read the same way;
- wrong checksum, wrong length, index out of range, a wrong ChangedBlocksCount or aggregated
  checksum, a foreign or expired BlockToken, another account's snapshot, a member reading
  blocks: AWS's error types and Reasons, and nothing stored;
- paging of ListSnapshotBlocks/ListChangedBlocks visits every block once at several MaxResults;
- snapvold killed between PutSnapshotBlock and CompleteSnapshot: the snapshot stays pending and
  completes after the restart (more of that in test_ebs_restart.py)."""
from __future__ import annotations

import hashlib
import json
import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import daemon_helpers as dh
from ebs_clients import ebs_client, service_with_env, linear, sha_b64

BLOCK = 512 * 1024
GIB = 1 << 30
TOKEN_SECONDS = 12  # the daemon's BlockToken life here (SNAPVOL_EBS_BLOCK_TOKEN_SECONDS)


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with service_with_env(tmp_path_factory, {"SNAPVOL_EBS_BLOCK_TOKEN_SECONDS": str(TOKEN_SECONDS)},
                          teams=2, daemon_args=["--disable-gc"]) as svc:
        yield svc


def ebs(svc, alias="team-1"):
    return ebs_client(svc, alias, retries={"max_attempts": 1, "mode": "standard"},
                      max_pool_connections=32, read_timeout=120)


def make_image(seed: int, nblocks: int) -> dict[int, bytes]:
    """Blocks of a 64 MiB image: random, text-like and all-zero blocks; the zero ones are holes
    and never uploaded."""
    rnd = random.Random(seed)
    out = {}
    for i in range(nblocks):
        kind = rnd.random()
        if kind < 0.35:
            continue  # a hole
        if kind < 0.7:
            out[i] = rnd.randbytes(BLOCK)
        else:
            out[i] = (f"block {i} seed {seed} ".encode() * (BLOCK // 16 + 1))[:BLOCK]
    return out


def put_all(client, snap_id: str, blocks: dict[int, bytes], workers: int = 16):
    def put(item):
        i, data = item
        r = client.put_snapshot_block(SnapshotId=snap_id, BlockIndex=i, BlockData=data, DataLength=len(data),
                                      Checksum=sha_b64(data), ChecksumAlgorithm="SHA256", Progress=50)
        assert r["Checksum"] == sha_b64(data)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(put, blocks.items()))


def list_all(client, snap_id: str, max_results: int | None = None, start: int | None = None) -> list[dict]:
    out, token, pages = [], None, 0
    while True:
        kw = {"SnapshotId": snap_id}
        if max_results:
            kw["MaxResults"] = max_results
        if start is not None:
            kw["StartingBlockIndex"] = start
        if token:
            kw["NextToken"] = token
        r = client.list_snapshot_blocks(**kw)
        assert r["BlockSize"] == BLOCK
        if max_results:
            assert len(r["Blocks"]) <= max_results
        out += r["Blocks"]
        pages += 1
        token = r.get("NextToken")
        if not token:
            return out


def download(client, snap_id: str, workers: int = 16) -> dict[int, bytes]:
    blocks = list_all(client, snap_id, 1000)

    def get(b):
        r = client.get_snapshot_block(SnapshotId=snap_id, BlockIndex=b["BlockIndex"], BlockToken=b["BlockToken"])
        data = r["BlockData"].read()
        assert r["DataLength"] == len(data) == BLOCK
        assert r["Checksum"] == sha_b64(data) and r["ChecksumAlgorithm"] == "SHA256"
        return b["BlockIndex"], data
    with ThreadPoolExecutor(workers) as pool:
        return dict(pool.map(get, blocks))


def error_of(excinfo) -> tuple[str, str, int]:
    e = excinfo.value.response
    return e["Error"]["Code"], e.get("Reason", ""), e["ResponseMetadata"]["HTTPStatusCode"]


def upload(svc, alias, blocks, *, parent=None, size_gib=1, description="") -> str:
    c = ebs(svc, alias)
    kw = {"VolumeSize": size_gib, "Description": description, "Timeout": 60,
          "Tags": [{"Key": "Name", "Value": "direct"}]}
    if parent:
        kw["ParentSnapshotId"] = parent
    r = c.start_snapshot(**kw)
    assert r["Status"] == "pending" and r["BlockSize"] == BLOCK and r["VolumeSize"] == size_gib
    snap = r["SnapshotId"]
    assert dh.SNAP_ID.match(snap), r
    put_all(c, snap, blocks)
    done = c.complete_snapshot(SnapshotId=snap, ChangedBlocksCount=len(blocks), Checksum=linear(blocks),
                               ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR")
    assert done["Status"] == "completed", done
    return snap


IMAGE = make_image(7, 128)  # 64 MiB, of a 1 GiB volume


@pytest.fixture(scope="module")
def first(service):
    t0 = time.monotonic()
    snap = upload(service, "team-1", IMAGE, description="image upload")
    dh.note(f"ebs: uploaded {len(IMAGE)} blocks of 512 KiB in {time.monotonic() - t0:.2f}s (16 in flight)")
    return snap


def test_upload_then_download_is_byte_identical(service, first):
    admin = ebs(service, "admin")
    t0 = time.monotonic()
    got = download(admin, first)
    dh.note(f"ebs: downloaded {len(got)} blocks in {time.monotonic() - t0:.2f}s (16 in flight)")
    assert sorted(got) == sorted(IMAGE), "the listed blocks are not the non-hole blocks written"
    image = b"".join(IMAGE.get(i, bytes(BLOCK)) for i in range(128))
    rebuilt = b"".join(got.get(i, bytes(BLOCK)) for i in range(128))
    assert hashlib.sha256(rebuilt).hexdigest() == hashlib.sha256(image).hexdigest()
    # An ordinary snapshot: completed in EC2's view, with its description, tags and size.
    ec2 = service.client("team-1")
    s = ec2.describe_snapshots(SnapshotIds=[first])["Snapshots"][0]
    assert s["State"] == "completed" and s["Progress"] == "100%" and s["VolumeSize"] == 1, s
    assert s["Description"] == "image upload"
    assert {t["Key"]: t["Value"] for t in s["Tags"]}["Name"] == "direct"
    assert service.catalog_snapshots()[first]["State"] == "completed"
    # Restorable like any snapshot (the offline CLI reads the same store).
    out = service.root / "restored.raw"
    service.cli("restore", "--snapshot-id", first, "--to", out)
    with open(out, "rb") as f:
        assert hashlib.sha256(f.read(len(image))).hexdigest() == hashlib.sha256(image).hexdigest()
        rest = f.read()
    assert len(rest) == GIB - len(image) and not rest.strip(b"\0")
    out.unlink()


def test_incremental_upload_changes_only_written_blocks(service, first):
    rnd = random.Random(99)
    data_idx = sorted(IMAGE)
    kept = data_idx[1]  # not written: must come from the parent
    written = {i: rnd.randbytes(BLOCK) for i in (data_idx[5], data_idx[10], 127, 500)}
    hole_before = next(i for i in range(128) if i not in IMAGE)
    written[hole_before] = rnd.randbytes(BLOCK)
    data_before = data_idx[0]
    written[data_before] = bytes(BLOCK)  # written as zeros: becomes a hole
    second = upload(service, "team-1", written, parent=first)
    admin = ebs(service, "admin")
    changed, token = [], None
    while True:
        kw = {"FirstSnapshotId": first, "SecondSnapshotId": second, "MaxResults": 100}
        if token:
            kw["NextToken"] = token
        r = admin.list_changed_blocks(**kw)
        changed += r["ChangedBlocks"]
        token = r.get("NextToken")
        if not token:
            break
    assert sorted(b["BlockIndex"] for b in changed) == sorted(written)
    by_index = {b["BlockIndex"]: b for b in changed}
    assert "SecondBlockToken" not in by_index[data_before] and "FirstBlockToken" in by_index[data_before]
    assert "FirstBlockToken" not in by_index[hole_before] and "SecondBlockToken" in by_index[hole_before]
    got = download(admin, second)
    want = dict(IMAGE)
    want.update({i: d for i, d in written.items() if any(d)})
    want.pop(data_before)
    assert sorted(got) == sorted(want)
    assert got[kept] == IMAGE[kept]
    assert all(got[i] == want[i] for i in want), "a block differs from parent + written blocks"
    # Read through the changed-block tokens too: the parent's old block, the child's new one.
    i = data_idx[5]
    r = admin.get_snapshot_block(SnapshotId=first, BlockIndex=i, BlockToken=by_index[i]["FirstBlockToken"])
    assert r["BlockData"].read() == IMAGE[i]
    r = admin.get_snapshot_block(SnapshotId=second, BlockIndex=i, BlockToken=by_index[i]["SecondBlockToken"])
    assert r["BlockData"].read() == written[i]


def test_create_snapshot_listed_and_read_the_same_way(service):
    vol = service.volumes["vol-team-1"]
    ec2 = service.client("team-1")
    snap = ec2.create_snapshot(VolumeId=vol.volume_id, Description="taken by CreateSnapshot")["SnapshotId"]
    dh.wait_until(lambda: ec2.describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]["State"] == "completed",
                  120, 0.2, f"{snap} to complete")
    got = download(ebs(service, "admin"), snap)
    data = vol.path.read_bytes()
    nblocks = (len(data) + BLOCK - 1) // BLOCK
    rebuilt = b"".join(got.get(i, bytes(BLOCK)) for i in range(nblocks))[:len(data)]
    assert hashlib.sha256(rebuilt).hexdigest() == vol.sha256
    assert all(any(got[i]) for i in got), "a hole was listed as a block"


def test_bad_puts_are_refused_and_store_nothing(service):
    import botocore.exceptions
    c = ebs(service, "team-1")
    snap = c.start_snapshot(VolumeSize=1)["SnapshotId"]
    data = random.Random(5).randbytes(BLOCK)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.put_snapshot_block(SnapshotId=snap, BlockIndex=0, BlockData=data, DataLength=BLOCK,
                             Checksum=sha_b64(data[:-1] + b"x"), ChecksumAlgorithm="SHA256")
    assert error_of(e) == ("ValidationException", "INVALID_PARAMETER_VALUE", 400)
    assert "checksum" in e.value.response["Error"]["Message"]
    short = data[:1000]
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.put_snapshot_block(SnapshotId=snap, BlockIndex=1, BlockData=short, DataLength=len(short),
                             Checksum=sha_b64(short), ChecksumAlgorithm="SHA256")
    assert error_of(e) == ("ValidationException", "INVALID_PARAMETER_VALUE", 400)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.put_snapshot_block(SnapshotId=snap, BlockIndex=GIB // BLOCK, BlockData=data, DataLength=BLOCK,
                             Checksum=sha_b64(data), ChecksumAlgorithm="SHA256")
    assert error_of(e) == ("ValidationException", "INVALID_BLOCK", 400)
    # Another team cannot write into it, nor see it.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ebs(service, "team-2").put_snapshot_block(SnapshotId=snap, BlockIndex=2, BlockData=data, DataLength=BLOCK,
                                                  Checksum=sha_b64(data), ChecksumAlgorithm="SHA256")
    assert error_of(e) == ("ResourceNotFoundException", "SNAPSHOT_NOT_FOUND", 404)
    # One good block; a wrong count or aggregate is refused and the snapshot stays pending.
    good = {5: data}
    put_all(c, snap, good, workers=1)  # with x-amz-Progress: 50
    pending = service.client("team-1").describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]
    assert pending["State"] == "pending" and pending["Progress"] == "50%", pending
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.complete_snapshot(SnapshotId=snap, ChangedBlocksCount=2)
    assert error_of(e) == ("ValidationException", "INVALID_PARAMETER_VALUE", 400)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.complete_snapshot(SnapshotId=snap, ChangedBlocksCount=1, Checksum=sha_b64(b"other"),
                            ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR")
    assert error_of(e) == ("ValidationException", "INVALID_PARAMETER_VALUE", 400)
    assert c.complete_snapshot(SnapshotId=snap, ChangedBlocksCount=1, Checksum=linear(good),
                               ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR")["Status"] == "completed"
    # Nothing the refused requests carried was stored: one block, the good one.
    blocks = list_all(ebs(service, "admin"), snap)
    assert [b["BlockIndex"] for b in blocks] == [5]
    # Completed: no more writes.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.put_snapshot_block(SnapshotId=snap, BlockIndex=6, BlockData=data, DataLength=BLOCK,
                             Checksum=sha_b64(data), ChecksumAlgorithm="SHA256")
    assert error_of(e)[0] == "ValidationException"


def test_member_reading_blocks_is_denied(service, first):
    import botocore.exceptions
    c = ebs(service, "team-1")
    for call in (lambda: c.list_snapshot_blocks(SnapshotId=first),
                 lambda: c.list_changed_blocks(SecondSnapshotId=first),
                 lambda: c.get_snapshot_block(SnapshotId=first, BlockIndex=0, BlockToken="AAAA")):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            call()
        assert error_of(e) == ("AccessDeniedException", "UNAUTHORIZED_ACCOUNT", 403)
    # Another account does not even see it.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ebs(service, "team-2").list_snapshot_blocks(SnapshotId=first)
    assert error_of(e) == ("ResourceNotFoundException", "SNAPSHOT_NOT_FOUND", 404)


def test_foreign_and_expired_block_tokens(service, first):
    import botocore.exceptions
    admin = ebs(service, "admin")
    blocks = list_all(admin, first, 100)
    a, b = blocks[0], blocks[1]
    other = upload(service, "team-2", {a["BlockIndex"]: IMAGE[a["BlockIndex"]]})
    cases = [(first, b["BlockIndex"], a["BlockToken"]),   # another block's token
             (other, a["BlockIndex"], a["BlockToken"]),   # another snapshot's token
             (first, a["BlockIndex"], a["BlockToken"][:-4] + "AAA=")]  # altered
    for snap, index, token in cases:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            admin.get_snapshot_block(SnapshotId=snap, BlockIndex=index, BlockToken=token)
        assert error_of(e) == ("ValidationException", "INVALID_BLOCK_TOKEN", 400), (snap, index)
    r = admin.get_snapshot_block(SnapshotId=first, BlockIndex=a["BlockIndex"], BlockToken=a["BlockToken"])
    assert r["BlockData"].read() == IMAGE[a["BlockIndex"]]
    listed = admin.list_snapshot_blocks(SnapshotId=first, MaxResults=100)
    assert listed["ExpiryTime"].timestamp() == pytest.approx(time.time() + TOKEN_SECONDS, abs=10)
    time.sleep(max(0.0, listed["ExpiryTime"].timestamp() - time.time()) + 1.5)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        admin.get_snapshot_block(SnapshotId=first, BlockIndex=a["BlockIndex"], BlockToken=a["BlockToken"])
    assert error_of(e) == ("ValidationException", "INVALID_BLOCK_TOKEN", 400)


def test_paging_visits_every_block_once(service, first):
    rnd = random.Random(3)
    # 4 GiB volume on top of the first upload, 260 scattered blocks of one content (stored once).
    indices = sorted(rnd.sample(range(4 * GIB // BLOCK), 260))
    data = rnd.randbytes(BLOCK)
    snap = upload(service, "team-1", {i: data for i in indices}, parent=first, size_gib=4)
    admin = ebs(service, "admin")
    every = sorted(set(indices) | set(IMAGE))
    for max_results in (100, 101, len(every) - 1, len(every), 1000, 10000):
        seen = [b["BlockIndex"] for b in list_all(admin, snap, max_results)]
        assert seen == every, max_results
    from_mid = [b["BlockIndex"] for b in list_all(admin, snap, 100, start=every[130])]
    assert from_mid == every[130:]
    # Changed blocks against the parent: exactly the written ones, each once.
    for max_results in (100, 259, 260, 10000):
        seen, token = [], None
        while True:
            kw = {"FirstSnapshotId": first, "SecondSnapshotId": snap, "MaxResults": max_results}
            if token:
                kw["NextToken"] = token
            r = admin.list_changed_blocks(**kw)
            assert len(r["ChangedBlocks"]) <= max_results
            seen += [b["BlockIndex"] for b in r["ChangedBlocks"]]
            token = r.get("NextToken")
            if not token:
                break
        assert seen == indices, max_results
    import botocore.exceptions
    with pytest.raises(botocore.exceptions.ParamValidationError):  # botocore checks the minimum itself
        admin.list_snapshot_blocks(SnapshotId=snap, MaxResults=99)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        admin.list_snapshot_blocks(SnapshotId=snap, MaxResults=10001)
    assert error_of(e) == ("ValidationException", "INVALID_PARAMETER_VALUE", 400)
    status, _, body = service.signer("admin").send(b"", method="GET", path=f"/snapshots/{snap}/blocks",
                                                   query="maxResults=99", service="ebs")
    assert status == 400 and json.loads(body)["Reason"] == "INVALID_PARAMETER_VALUE"
    r = admin.list_snapshot_blocks(SnapshotId=snap, MaxResults=100)
    with pytest.raises(botocore.exceptions.ClientError) as e:
        admin.list_snapshot_blocks(SnapshotId=first, MaxResults=100, NextToken=r["NextToken"])
    assert error_of(e) == ("ValidationException", "INVALID_PAGE_TOKEN", 400)


def test_aws_cli_round_trip(service, tmp_path):
    cli = dh.AwsCli(dh.AWS_V2, 2)
    start = cli.ok(service, "team-1", "ebs", "start-snapshot", "--volume-size", "1", "--description", "cli")
    snap = start["SnapshotId"]
    rnd = random.Random(11)
    blocks = {0: rnd.randbytes(BLOCK), 9: rnd.randbytes(BLOCK)}
    for i, data in blocks.items():
        f = tmp_path / f"b{i}"
        f.write_bytes(data)
        out = cli.ok(service, "team-1", "ebs", "put-snapshot-block", "--snapshot-id", snap, "--block-index", i,
                     "--block-data", f, "--data-length", BLOCK, "--checksum", sha_b64(data),
                     "--checksum-algorithm", "SHA256")
        assert out["Checksum"] == sha_b64(data)
    bad = tmp_path / "bad"
    bad.write_bytes(blocks[0])
    msg = cli.error(service, "team-1", "ebs", "put-snapshot-block", "--snapshot-id", snap, "--block-index", 1,
                    "--block-data", bad, "--data-length", BLOCK, "--checksum", sha_b64(b"x"),
                    "--checksum-algorithm", "SHA256", code="ValidationException")
    assert "checksum" in msg
    done = cli.ok(service, "team-1", "ebs", "complete-snapshot", "--snapshot-id", snap, "--changed-blocks-count", 2,
                  "--checksum", linear(blocks), "--checksum-algorithm", "SHA256",
                  "--checksum-aggregation-method", "LINEAR")
    assert done["Status"] == "completed"
    cli.error(service, "team-1", "ebs", "list-snapshot-blocks", "--snapshot-id", snap, code="AccessDeniedException")
    listed = cli.ok(service, "admin", "ebs", "list-snapshot-blocks", "--snapshot-id", snap)
    assert [b["BlockIndex"] for b in listed["Blocks"]] == [0, 9]
    changed = cli.ok(service, "admin", "ebs", "list-changed-blocks", "--second-snapshot-id", snap)
    assert [b["BlockIndex"] for b in changed["ChangedBlocks"]] == [0, 9]
    out = tmp_path / "out"
    meta = cli.ok(service, "admin", "ebs", "get-snapshot-block", "--snapshot-id", snap, "--block-index", 9,
                  "--block-token", listed["Blocks"][1]["BlockToken"], out)
    assert out.read_bytes() == blocks[9] and meta["Checksum"] == sha_b64(blocks[9])


def test_kill_between_put_and_complete_resumes(service):
    c = ebs(service, "team-1")
    snap = c.start_snapshot(VolumeSize=1)["SnapshotId"]
    blocks = {0: random.Random(1).randbytes(BLOCK)}
    put_all(c, snap, blocks, workers=1)
    service.daemon.kill9()
    service.daemon.start()
    s = service.client("team-1").describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]
    assert s["State"] == "pending", s
    # The acknowledged block was kept: the count and the aggregate match without putting it again.
    done = ebs(service, "team-1").complete_snapshot(SnapshotId=snap, ChangedBlocksCount=1, Checksum=linear(blocks),
                                                   ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR")
    assert done["Status"] == "completed", done


def test_start_snapshot_parameters(service, first):
    import botocore.exceptions
    c = ebs(service, "team-1")

    def refused(code, reason, **kw):
        with pytest.raises(botocore.exceptions.ClientError) as e:
            c.start_snapshot(**kw)
        assert error_of(e)[:2] == (code, reason), (kw, e.value.response)
    refused("ValidationException", "INVALID_CUSTOMER_KEY", VolumeSize=1, KmsKeyArn="arn:aws:kms:us-east-1:1:key/x")
    refused("ValidationException", "INVALID_PARAMETER_VALUE", VolumeSize=1, Encrypted=True)  # the store is not
    refused("ValidationException", "INVALID_VOLUME_SIZE", VolumeSize=65537)
    refused("ValidationException", "INVALID_TAG", VolumeSize=1, Tags=[{"Key": "aws:snapvol:x", "Value": "y"}])
    # The parent must be the caller's, and no larger than the new volume.
    other = ebs(service, "team-2").start_snapshot(VolumeSize=1)["SnapshotId"]
    refused("ResourceNotFoundException", "SNAPSHOT_NOT_FOUND", VolumeSize=1, ParentSnapshotId=other)
    status, _, body = service.signer("team-1").send(json.dumps({"VolumeSize": 1, "Timeout": 5}), method="POST",
                                                    path="/snapshots", service="ebs",
                                                    content_type="application/json")
    assert status == 400 and json.loads(body)["Reason"] == "INVALID_PARAMETER_VALUE", body
    status, headers, body = service.signer("team-1").send(json.dumps({"VolumeSize": 1, "Colour": "red"}),
                                                          method="POST", path="/snapshots", service="ebs",
                                                          content_type="application/json")
    assert status == 400 and "Colour" in json.loads(body)["Message"], body
    # ClientToken: a retry answers the same snapshot; other parameters with it conflict.
    a = c.start_snapshot(VolumeSize=2, ClientToken="retry-1", Description="d")
    b = c.start_snapshot(VolumeSize=2, ClientToken="retry-1", Description="d")
    assert a["SnapshotId"] == b["SnapshotId"]
    refused("ConflictException", "", VolumeSize=3, ClientToken="retry-1", Description="d")
    # Snapshots not of one lineage are not compared.
    with pytest.raises(botocore.exceptions.ClientError) as e:
        ebs(service, "admin").list_changed_blocks(FirstSnapshotId=first, SecondSnapshotId=upload(service, "team-2", {}))
    assert error_of(e) == ("ValidationException", "UNRELATED_SNAPSHOTS", 400)


def test_catalog_rebuild_keeps_direct_snapshots(service, first):
    """The store describes a snapshot written block by block like any other: a catalog rebuilt
    from it lists it completed with its size, description and tags, and it reads the same."""
    before = service.client("team-1").describe_snapshots(SnapshotIds=[first])["Snapshots"][0]
    service.daemon.stop()
    service.cli("catalog", "rebuild")
    service.daemon.start()
    after = service.client("team-1").describe_snapshots(SnapshotIds=[first])["Snapshots"][0]
    for key in ("State", "VolumeSize", "Description", "OwnerId", "VolumeId", "StartTime"):
        assert after[key] == before[key], key
    assert {t["Key"]: t["Value"] for t in after["Tags"]} == {t["Key"]: t["Value"] for t in before["Tags"]}
    got = download(ebs(service, "admin"), first)
    assert sorted(got) == sorted(IMAGE) and all(got[i] == IMAGE[i] for i in IMAGE)


def test_block_reads_are_grantable_by_policy(service, tmp_path):
    """Reading blocks is an administrator's act by default; an account whose policies allow it
    (here: a custom policy in place of the member policy) reads its own snapshots' blocks, and
    still not another account's."""
    import botocore.exceptions
    acct = service.add_account("reader")
    doc = tmp_path / "ebs-reader.json"
    doc.write_text(json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["ebs:*", "ec2:Describe*"],
        "Resource": "arn:aws:ec2:*:${aws:PrincipalAccount}:snapshot/*"}]}))
    service.cli("policy", "create", "--name", "ebs-reader", "--document", doc)
    service.cli("policy", "detach", "--account-id", acct.account_id, "--policy-name", "member")
    service.cli("policy", "attach", "--account-id", acct.account_id, "--policy-name", "ebs-reader")
    block = random.Random(8).randbytes(BLOCK)
    snap = upload(service, "reader", {3: block})
    c = ebs(service, "reader")
    listed = c.list_snapshot_blocks(SnapshotId=snap)["Blocks"]
    assert [b["BlockIndex"] for b in listed] == [3]
    got = c.get_snapshot_block(SnapshotId=snap, BlockIndex=3, BlockToken=listed[0]["BlockToken"])
    assert got["BlockData"].read() == block
    other = upload(service, "team-2", {3: block})
    with pytest.raises(botocore.exceptions.ClientError) as e:
        c.list_snapshot_blocks(SnapshotId=other)
    assert error_of(e) == ("ResourceNotFoundException", "SNAPSHOT_NOT_FOUND", 404)


def test_start_snapshot_counts_toward_the_snapshots_quota(service):
    import botocore.exceptions
    acct = service.accounts["team-2"].account_id
    held = len(service.client("team-2").describe_snapshots(OwnerIds=["self"])["Snapshots"])
    service.cli("account", "set-quota", "--account-id", acct, "--snapshots", held)
    try:
        with pytest.raises(botocore.exceptions.ClientError) as e:
            ebs(service, "team-2").start_snapshot(VolumeSize=1)
        assert error_of(e) == ("ServiceQuotaExceededException", "DEPENDENCY_SERVICE_QUOTA_EXCEEDED", 402)
        assert "snapshots quota" in e.value.response["Error"]["Message"]
    finally:
        service.cli("account", "set-quota", "--account-id", acct, "--snapshots", "default")
    assert len(service.client("team-2").describe_snapshots(OwnerIds=["self"])["Snapshots"]) == held
