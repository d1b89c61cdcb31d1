"""EBS direct snapshots across snapvold restarts and timeouts (engine/direct_snapshots.h):
- blocks put with the AWS CLI v2 and with 16 boto3 requests in flight, snapvold SIGKILLed in
  the middle of them: after a start on the same data dir the snapshot is still pending, every
  block acknowledged before the kill is kept (only the others are put again, with the CLI), it
  completes with the image's LINEAR checksum and every block downloads identical to the image;
- a snapshot whose Timeout passes while snapvold runs ends `error` through the API; one whose
  Timeout passes while snapvold is stopped ends `error` when it starts, saying so.
A Timeout minute lasts MINUTE_MS here (SNAPVOL_EBS_TIMEOUT_MINUTE_MS, a test-only setting):
EBS refuses a Timeout under 10 minutes."""
from __future__ import annotations

import hashlib
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import daemon_helpers as dh
from ebs_clients import ebs_client, service_with_env, linear, sha_b64

BLOCK = 512 * 1024
MINUTE_MS = 300  # Timeout=10 → 3 s; Timeout=4320 (the most) → 21.6 min
LONG = 4320


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    with service_with_env(tmp_path_factory, {"SNAPVOL_EBS_TIMEOUT_MINUTE_MS": str(MINUTE_MS)},
                          teams=1, daemon_args=["--disable-gc"]) as svc:
        yield svc


def ebs(svc, alias="team-1"):
    return ebs_client(svc, alias, retries={"max_attempts": 1, "mode": "standard"},
                      max_pool_connections=32, read_timeout=60, connect_timeout=5)


def state_of(svc, snap: str) -> dict:
    return svc.client("team-1").describe_snapshots(SnapshotIds=[snap])["Snapshots"][0]


def cli_put(cli, svc, tmp_path, snap: str, index: int, data: bytes):
    f = tmp_path / f"block-{index}"
    f.write_bytes(data)
    out = cli.ok(svc, "team-1", "ebs", "put-snapshot-block", "--snapshot-id", snap, "--block-index", index,
                 "--block-data", f, "--data-length", BLOCK, "--checksum", sha_b64(data),
                 "--checksum-algorithm", "SHA256", "--progress", 10)
    assert out["Checksum"] == sha_b64(data)


def test_acknowledged_blocks_survive_sigkill(service, tmp_path):
    cli = dh.AwsCli(dh.AWS_V2, 2)
    rnd = random.Random(21)
    # A 1 GiB volume (2,048 blocks); 64 of them written, one of those all zero; the rest holes.
    image = {i: rnd.randbytes(BLOCK) for i in sorted(rnd.sample(range(2048), 64))}
    zero_index = sorted(image)[7]
    image[zero_index] = bytes(BLOCK)
    order = list(image)
    snap = cli.ok(service, "team-1", "ebs", "start-snapshot", "--volume-size", 1, "--timeout", LONG,
                  "--description", "restart")["SnapshotId"]
    # With the CLI: 6 blocks, the first written twice (the second write counts).
    cli_put(cli, service, tmp_path, snap, order[0], rnd.randbytes(BLOCK))
    for i in order[:6]:
        cli_put(cli, service, tmp_path, snap, i, image[i])
    acked = set(order[:6])
    # 16 in flight, and snapvold killed once some were acknowledged.
    lock = threading.Lock()
    client = ebs(service)

    def put(i):
        try:
            r = client.put_snapshot_block(SnapshotId=snap, BlockIndex=i, BlockData=image[i], DataLength=BLOCK,
                                          Checksum=sha_b64(image[i]), ChecksumAlgorithm="SHA256")
        except Exception:  # the kill: refused, reset or unanswered
            return
        assert r["Checksum"] == sha_b64(image[i])
        with lock:
            acked.add(i)

    with ThreadPoolExecutor(16) as pool:
        futures = [pool.submit(put, i) for i in order[6:50]]
        dh.wait_until(lambda: len(acked) >= 20, 60, what="20 blocks acknowledged")
        service.daemon.kill9()
        for f in futures:
            f.result()
    before = len(acked)
    assert 20 <= before < 50, before

    service.daemon.start()
    s = state_of(service, snap)
    assert s["State"] == "pending", s
    # Only what was not acknowledged is put again: the acknowledged blocks come from before.
    # The first few with the CLI, the rest with boto3 (one CLI process per block takes ~1 s).
    missing = [i for i in order if i not in acked]
    for i in missing[:4]:
        cli_put(cli, service, tmp_path, snap, i, image[i])
        acked.add(i)
    client = ebs(service)  # the restarted daemon's port
    with ThreadPoolExecutor(8) as pool:
        for f in [pool.submit(put, i) for i in missing[4:]]:
            f.result()
    assert acked == set(order), sorted(set(order) - acked)
    done = cli.ok(service, "team-1", "ebs", "complete-snapshot", "--snapshot-id", snap,
                  "--changed-blocks-count", len(image), "--checksum", linear(image), "--checksum-algorithm",
                  "SHA256", "--checksum-aggregation-method", "LINEAR")
    assert done["Status"] == "completed", done
    dh.wait_until(lambda: state_of(service, snap)["State"] == "completed", 30, what="completed")
    # Every block, downloaded (reading blocks is the administrator's), equals the image.
    admin = ebs(service, "admin")
    listed, token = [], None
    while True:
        kw = {"SnapshotId": snap, "MaxResults": 1000, **({"NextToken": token} if token else {})}
        r = admin.list_snapshot_blocks(**kw)
        listed += r["Blocks"]
        token = r.get("NextToken")
        if not token:
            break
    assert [b["BlockIndex"] for b in listed] == sorted(i for i in image if i != zero_index)
    for b in listed:
        got = admin.get_snapshot_block(SnapshotId=snap, BlockIndex=b["BlockIndex"], BlockToken=b["BlockToken"])
        data = got["BlockData"].read()
        assert hashlib.sha256(data).digest() == hashlib.sha256(image[b["BlockIndex"]]).digest(), b["BlockIndex"]
        assert got["Checksum"] == sha_b64(data)
    dh.note(f"ebs restart: {before - 6} of 44 boto3 puts acknowledged before SIGKILL, all kept")


def test_timeout_while_running_ends_error(service):
    c = ebs(service)
    snap = c.start_snapshot(VolumeSize=1, Timeout=10)["SnapshotId"]  # 3 s here
    data = random.Random(5).randbytes(BLOCK)
    c.put_snapshot_block(SnapshotId=snap, BlockIndex=3, BlockData=data, DataLength=BLOCK, Checksum=sha_b64(data),
                         ChecksumAlgorithm="SHA256")
    assert state_of(service, snap)["State"] == "pending"
    dh.wait_until(lambda: state_of(service, snap)["State"] == "error", 30, what="the snapshot to time out")
    s = state_of(service, snap)
    assert "timeout" in s.get("StateMessage", ""), s
    done = c.complete_snapshot(SnapshotId=snap, ChangedBlocksCount=1)
    assert done["Status"] == "error", done


def test_timeout_while_stopped_ends_error_on_start(service):
    c = ebs(service)
    started = time.monotonic()
    snap = c.start_snapshot(VolumeSize=1, Timeout=10)["SnapshotId"]
    data = random.Random(6).randbytes(BLOCK)
    c.put_snapshot_block(SnapshotId=snap, BlockIndex=0, BlockData=data, DataLength=BLOCK, Checksum=sha_b64(data),
                         ChecksumAlgorithm="SHA256")
    service.daemon.kill9()
    time.sleep(max(0.0, 10 * MINUTE_MS / 1000 + 0.5 - (time.monotonic() - started)))
    service.daemon.start()
    s = state_of(service, snap)
    assert s["State"] == "error", s
    assert "while snapvold was stopped" in s.get("StateMessage", ""), s
