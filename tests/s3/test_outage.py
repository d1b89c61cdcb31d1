"""The object store going away mid-snapshot (radosgw stopped, then started again): the
snapshot resumes when S3 is back within the retry window, or ends `error` with a reason
after it; either way no published manifest misses a chunk, earlier snapshots stay intact and
verify is clean."""

from __future__ import annotations

import json
import os
import signal
import time

from s3_helpers import S3Host, assert_error, assert_ok, assert_same_file, describe, genvol_create, wait_for


def set_retry_window(host: S3Host, seconds: int):
    path = host.dir / "store.json"
    cfg = json.loads(path.read_text())
    cfg["retry_window_s"] = seconds
    path.write_text(json.dumps(cfg))


def start_snapshot_and_pause_mid_way(host: S3Host, cluster, vid: str):
    """Starts a snapshot and SIGSTOPs it once chunks are going up (no manifest yet)."""
    base = cluster.count(host.prefix, "chunks")
    proc = host.popen("snapshot", "create", "--volume-id", vid)
    wait_for(lambda: cluster.count(host.prefix, "chunks") >= base + 10 or proc.poll() is not None,
             "the snapshot to upload chunks")
    os.kill(proc.pid, signal.SIGSTOP)
    assert proc.poll() is None, "the snapshot finished before the outage; use a larger volume"
    return proc


def check_store_whole(host: S3Host, cluster):
    """Every published manifest verifies (no missing chunk), and no lease is left behind by a
    snapshot that ended."""
    assert_ok(host.run("catalog", "rebuild"))
    assert host.damaged() == set()


def test_outage_within_the_retry_window_resumes(tmp_path, cluster):
    host = S3Host(tmp_path / "data", cluster, cluster.new_prefix("outage-resume"))
    host.init_s3()
    set_retry_window(host, 120)
    vol = genvol_create(tmp_path / "vol.img", "160M", seed=41, holes=False)
    vid = host.register(vol)

    proc = start_snapshot_and_pause_mid_way(host, cluster, vid)
    cluster.stop_rgw()
    try:
        os.kill(proc.pid, signal.SIGCONT)  # requests now fail and are retried
        time.sleep(3)  # the outage lasts a while (not an assertion)
    finally:
        cluster.start_rgw()
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"the snapshot did not ride out the outage:\n{out}\n{err}"
    snap = out.strip()
    assert host.snapshot_map()[snap]["State"] == "completed"
    check_store_whole(host, cluster)
    assert_ok(host.restore(snap, tmp_path / "back.img"))
    assert_same_file(tmp_path / "back.img", vol)


def test_outage_beyond_the_retry_window_ends_in_error_and_harms_nothing(tmp_path, cluster):
    host = S3Host(tmp_path / "data", cluster, cluster.new_prefix("outage-error"))
    host.init_s3()
    small = genvol_create(tmp_path / "small.img", "16M", seed=42)
    first = host.snapshot(host.register(small))

    set_retry_window(host, 4)
    vol = genvol_create(tmp_path / "vol.img", "160M", seed=43, holes=False)
    vid = host.register(vol)
    proc = start_snapshot_and_pause_mid_way(host, cluster, vid)
    cluster.stop_rgw()
    try:
        os.kill(proc.pid, signal.SIGCONT)
        out, err = proc.communicate(timeout=300)
    finally:
        cluster.start_rgw()
    assert proc.returncode == 1, f"expected the snapshot to fail:\n{out}\n{err}"
    lines = [l for l in err.splitlines() if l.startswith("snapvol: error: ")]
    assert len(lines) == 1 and "failed" in lines[0] and "S3" in lines[0], err
    failed = [s for s in host.snapshots(vid) if s["State"] == "error"]
    assert len(failed) == 1 and failed[0]["StateMessage"], host.snapshots(vid)
    bad_id = failed[0]["SnapshotId"]
    assert f"{host.prefix}/manifests/{bad_id}" not in cluster.keys(host.prefix)

    # Nothing already stored was harmed, and the store takes the next snapshot.
    check_store_whole(host, cluster)
    assert_ok(host.restore(first, tmp_path / "first.img"))
    assert_same_file(tmp_path / "first.img", small)
    set_retry_window(host, 60)
    snap = host.snapshot(vid)
    assert_ok(host.restore(snap, tmp_path / "back.img"))
    assert_same_file(tmp_path / "back.img", vol)
    assert host.damaged() == set()
