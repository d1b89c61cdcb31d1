"""The EBS direct APIs' limits (snapvold --ebs-…, src/api/ebs_limits.*) as EBS sends them, on a
daemon with small limits (boto3 with retries off unless a test says otherwise):
- StartSnapshot past --ebs-max-pending-snapshots: ConcurrentLimitExceededException, HTTP 400,
  no Reason; nothing is started; another account is not held back; completing one makes room;
- PutSnapshotBlock past the snapshot's rate: RequestThrottledException RESOURCE_LEVEL_THROTTLE;
  past the account's: ACCOUNT_THROTTLED; a refused block is not stored; another account writes on;
- GetSnapshotBlock and ListSnapshotBlocks the same way (REST-JSON: x-amzn-ErrorType, Message,
  Reason); ListChangedBlocks has a budget of its own;
- the AWS CLI v2 with its own retries (standard mode) hitting an empty bucket still succeeds."""
from __future__ import annotations

import json
import random
import re
import subprocess
import time

import pytest

import daemon_helpers as dh
from ebs_clients import ebs_client, sha_b64

BLOCK = 512 * 1024
# Per second: PutSnapshotBlock/GetSnapshotBlock per account 0.5 and per snapshot 0.25, listings
# per account 0.25; a bucket holds BURST seconds of its rate: 2, 1 and 1 requests. Slow rates
# with a long burst: the tests spend a bucket in a few requests, and a bucket gains a request
# back only after 2-4 s, so a request slowed by a busy machine (a PostgreSQL commit under load
# took 1.7 s) does not refill it before the refusal the test expects.
ACCOUNT_BLOCK_RPS, SNAPSHOT_BLOCK_RPS, LIST_RPS, BURST, MAX_PENDING = 0.5, 0.25, 0.25, 4, 3
FULL_AFTER = BURST + 0.2  # seconds until every bucket is full again


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = dh.make_service(tmp_path_factory, "svc", teams=2, daemon_args=[
        "--disable-gc",
        "--ebs-max-pending-snapshots", str(MAX_PENDING),
        "--ebs-account-block-requests-per-second", str(ACCOUNT_BLOCK_RPS),
        "--ebs-snapshot-block-requests-per-second", str(SNAPSHOT_BLOCK_RPS),
        "--ebs-account-list-requests-per-second", str(LIST_RPS),
        "--ebs-burst-seconds", str(BURST)])
    try:
        yield svc
    finally:
        dh.finish_service(svc)


def ebs(svc, alias="team-1", attempts=1):
    """boto3's ebs client making `attempts` attempts in all (total_max_attempts: botocore's
    max_attempts counts retries only, so max_attempts 1 would retry once); attempts > 1:
    standard-mode retries, for set-up that must not fail on the small limits."""
    return ebs_client(svc, alias, retries={"total_max_attempts": attempts, "mode": "standard"}, read_timeout=60)


def put(client, snap, index, data):
    return client.put_snapshot_block(SnapshotId=snap, BlockIndex=index, BlockData=data, DataLength=len(data),
                                     Checksum=sha_b64(data), ChecksumAlgorithm="SHA256")


def refusal(call) -> tuple[str, str, int]:
    import botocore.exceptions
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call()
    r = e.value.response
    return r["Error"]["Code"], r.get("Reason", ""), r["ResponseMetadata"]["HTTPStatusCode"]


def pending_direct(svc, alias) -> set[str]:
    snaps = svc.client(alias).describe_snapshots(
        OwnerIds=["self"], Filters=[{"Name": "status", "Values": ["pending"]}])["Snapshots"]
    return {s["SnapshotId"] for s in snaps if s["VolumeId"] == "vol-ffffffff"}


def settle():
    time.sleep(FULL_AFTER)


def test_start_snapshot_past_the_pending_cap(service):
    c = ebs(service, "team-2")
    started = [c.start_snapshot(VolumeSize=1)["SnapshotId"] for _ in range(MAX_PENDING)]
    assert pending_direct(service, "team-2") == set(started)
    assert refusal(lambda: c.start_snapshot(VolumeSize=1)) == ("ConcurrentLimitExceededException", "", 400)
    # On the wire: REST-JSON with the type in x-amzn-ErrorType and a Message, no Reason.
    status, headers, body = service.signer("team-2").send(json.dumps({"VolumeSize": 1}), method="POST",
                                                          path="/snapshots", service="ebs",
                                                          content_type="application/json")
    doc = json.loads(body)
    assert (status, headers.get("x-amzn-errortype")) == (400, "ConcurrentLimitExceededException"), (status, headers)
    assert set(doc) == {"Message"} and f"({MAX_PENDING})" in doc["Message"], doc
    # Nothing was started by the refusals; another account starts as usual.
    assert pending_direct(service, "team-2") == set(started)
    other = ebs(service, "team-1").start_snapshot(VolumeSize=1)["SnapshotId"]
    assert ebs(service, "team-1").complete_snapshot(SnapshotId=other, ChangedBlocksCount=0)["Status"] == "completed"
    # Completing one makes room for one.
    assert c.complete_snapshot(SnapshotId=started[0], ChangedBlocksCount=0)["Status"] == "completed"
    again = c.start_snapshot(VolumeSize=1)["SnapshotId"]
    assert refusal(lambda: c.start_snapshot(VolumeSize=1))[0] == "ConcurrentLimitExceededException"
    for snap in started[1:] + [again]:
        assert c.complete_snapshot(SnapshotId=snap, ChangedBlocksCount=0)["Status"] == "completed"
    assert pending_direct(service, "team-2") == set()


def test_puts_past_the_snapshot_and_account_rates(service):
    patient = ebs(service, "team-1", attempts=10)
    a, b, c3 = (patient.start_snapshot(VolumeSize=1)["SnapshotId"] for _ in range(3))
    rnd = random.Random(3)
    x, y, z, w = (rnd.randbytes(BLOCK) for _ in range(4))
    settle()
    t = ebs(service, "team-1")
    put(t, a, 0, x)  # the account's bucket 2 → 1, a's 1 → 0
    assert refusal(lambda: put(t, a, 1, y)) == ("RequestThrottledException", "RESOURCE_LEVEL_THROTTLE", 400)
    put(t, b, 0, y)  # the refusal took nothing from the account: 1 → 0
    assert refusal(lambda: put(t, c3, 0, z)) == ("RequestThrottledException", "ACCOUNT_THROTTLED", 400)
    # Another account has budgets of its own.
    other = ebs(service, "team-2", attempts=10).start_snapshot(VolumeSize=1)["SnapshotId"]
    put(ebs(service, "team-2"), other, 0, w)
    # The refused blocks were not stored: a holds block 0 only, c3 nothing.
    for snap, count in ((a, 1), (b, 1), (c3, 0)):
        assert patient.complete_snapshot(SnapshotId=snap, ChangedBlocksCount=count)["Status"] == "completed"
    assert ebs(service, "team-2", attempts=10).complete_snapshot(SnapshotId=other, ChangedBlocksCount=1)["Status"] == "completed"
    admin = ebs(service, "admin", attempts=10)
    assert [blk["BlockIndex"] for blk in admin.list_snapshot_blocks(SnapshotId=a)["Blocks"]] == [0]
    assert admin.list_snapshot_blocks(SnapshotId=c3)["Blocks"] == []
    # Once the buckets refill, the same puts go through (a is completed now: a new snapshot).
    d = patient.start_snapshot(VolumeSize=1)["SnapshotId"]
    settle()
    put(t, d, 1, y)
    assert patient.complete_snapshot(SnapshotId=d, ChangedBlocksCount=1)["Status"] == "completed"


def test_reads_and_listings_past_their_rates(service):
    patient = ebs(service, "team-1", attempts=10)
    snap = patient.start_snapshot(VolumeSize=1)["SnapshotId"]
    blocks = {0: random.Random(4).randbytes(BLOCK), 1: random.Random(5).randbytes(BLOCK)}
    for i, data in blocks.items():
        put(patient, snap, i, data)
    assert patient.complete_snapshot(SnapshotId=snap, ChangedBlocksCount=2)["Status"] == "completed"
    settle()
    admin = ebs(service, "admin")
    listed = admin.list_snapshot_blocks(SnapshotId=snap)["Blocks"]
    assert [blk["BlockIndex"] for blk in listed] == [0, 1]
    assert refusal(lambda: admin.list_snapshot_blocks(SnapshotId=snap)) == \
        ("RequestThrottledException", "ACCOUNT_THROTTLED", 400)
    # On the wire: REST-JSON with x-amzn-ErrorType, Message and Reason.
    status, headers, body = service.signer("admin").send(b"", method="GET", path=f"/snapshots/{snap}/blocks",
                                                         service="ebs", content_type="application/json")
    doc = json.loads(body)
    assert (status, headers.get("x-amzn-errortype")) == (400, "RequestThrottledException"), (status, headers, body)
    assert doc["Reason"] == "ACCOUNT_THROTTLED" and "ListSnapshotBlocks" in doc["Message"], doc
    # ListChangedBlocks has its own budget.
    assert [blk["BlockIndex"] for blk in admin.list_changed_blocks(SecondSnapshotId=snap)["ChangedBlocks"]] == [0, 1]
    # GetSnapshotBlock: the snapshot's budget (1) runs out before the account's (2).
    tokens = {blk["BlockIndex"]: blk["BlockToken"] for blk in listed}
    got = admin.get_snapshot_block(SnapshotId=snap, BlockIndex=0, BlockToken=tokens[0])["BlockData"].read()
    assert got == blocks[0]
    assert refusal(lambda: admin.get_snapshot_block(SnapshotId=snap, BlockIndex=1, BlockToken=tokens[1])) == \
        ("RequestThrottledException", "RESOURCE_LEVEL_THROTTLE", 400)
    settle()
    got = admin.get_snapshot_block(SnapshotId=snap, BlockIndex=1, BlockToken=tokens[1])["BlockData"].read()
    assert got == blocks[1]


def test_aws_cli_retries_a_throttled_request_to_success(service):
    """The listing budget (one request per 4 s) is spent by boto3 just before the CLI asks: its
    first attempt is refused, and its own standard-mode retries get the answer."""
    patient = ebs(service, "team-1", attempts=10)
    snap = patient.start_snapshot(VolumeSize=1)["SnapshotId"]
    data = random.Random(6).randbytes(BLOCK)
    put(patient, snap, 7, data)
    assert patient.complete_snapshot(SnapshotId=snap, ChangedBlocksCount=1)["Status"] == "completed"
    settle()
    ebs(service, "admin").list_snapshot_blocks(SnapshotId=snap)  # the bucket is empty now
    t0 = time.monotonic()
    env = service.aws_env()
    # Standard mode as the CLI's default; enough attempts that the random backoff (up to 1, 2,
    # 4, 8… s) outlasts a 4 s refill.
    env.update({"AWS_RETRY_MODE": "standard", "AWS_MAX_ATTEMPTS": "8"})
    res = subprocess.run([dh.AWS_V2, "--endpoint-url", service.endpoint, "--profile", service.admin.profile,
                          "--output", "json", "--debug", "ebs", "list-snapshot-blocks", "--snapshot-id", snap],
                         capture_output=True, text=True, env=env, timeout=120)
    took = time.monotonic() - t0
    assert res.returncode == 0, dh.describe(res)
    assert [blk["BlockIndex"] for blk in json.loads(res.stdout)["Blocks"]] == [7]
    # It was refused first, and retried.
    assert "RequestThrottledException" in res.stderr, res.stderr[-3000:]
    assert re.search(r"Retry needed", res.stderr), res.stderr[-3000:]
    dh.note(f"ebs limits: the AWS CLI got its listing after a throttled first attempt in {took:.1f}s")
