"""The object store going away mid-snapshot (radosgw stopped, then started again): the
snapshot resumes when S3 is back within the retry window, or ends `error` with a reason
after it; either way no published manifest misses a chunk, earlier snapshots stay intact and
verify is clean, the next snapshot completes and restores byte-identical, and gc removes what
the failed one left (format 1: chunks no snapshot reuses; format 2: its packs, which no index
object names).

ctest runs this module on both store formats (s3_outage, s3_outage_format2)."""

from __future__ import annotations

import json
import os
import signal
import time

from s3_helpers import (STORE_FORMAT, S3Host, assert_ok, assert_same_file, gc_json, genvol_create,
                        wait_for)


def set_retry_window(host: S3Host, seconds: int):
    path = host.dir / "store.json"
    cfg = json.loads(path.read_text())
    cfg["retry_window_s"] = seconds
    path.write_text(json.dumps(cfg))


def start_snapshot_and_pause_mid_way(host: S3Host, cluster, vid: str):
    """Starts a snapshot and SIGSTOPs it once chunks are going up (no manifest yet): format 1
    uploads an object per chunk, format 2 one per ~32 MiB pack (the S3 default; the tests'
    160 MiB volumes make about three)."""
    base = cluster.data_keys(host.prefix)
    enough = 10 if STORE_FORMAT == 1 else 1
    proc = host.popen("snapshot", "create", "--volume-id", vid)
    wait_for(lambda: len(cluster.data_keys(host.prefix) - base) >= enough or proc.poll() is not None,
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
    assert cluster.store_format(host.prefix) == STORE_FORMAT
    before = cluster.data_keys(host.prefix)

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
    failed_left = cluster.data_keys(host.prefix) - before
    assert failed_left, "the snapshot failed before it uploaded anything"
    # Its lease is left when the store was still down as it ended; it would hold gc off the
    # failed run's objects until it expired. The catalog says the snapshot ended, so the
    # rebuild below (like gc) removes it first.
    leases = {k.rsplit("/", 1)[1] for k in cluster.keys(host.prefix) if k.startswith(f"{host.prefix}/leases/")}
    assert leases <= {bad_id}, leases

    # Nothing already stored was harmed, and the store takes the next snapshot.
    check_store_whole(host, cluster)
    assert cluster.count(host.prefix, "leases") == 0
    assert_ok(host.restore(first, tmp_path / "first.img"))
    assert_same_file(tmp_path / "first.img", small)
    set_retry_window(host, 60)
    snap = host.snapshot(vid)
    assert_ok(host.restore(snap, tmp_path / "back.img"))
    assert_same_file(tmp_path / "back.img", vol)
    assert host.damaged() == set()

    # GC removes what the failed snapshot left and nothing a snapshot needs. Format 1: its
    # chunks are the next snapshot's too (same ids), so at most stray pages go. Format 2: its
    # packs were never named by an index object, so the next snapshot wrote its own and every
    # one of the failed run's packs is garbage.
    stored = cluster.data_keys(host.prefix)
    next_wrote = stored - before - failed_left
    report = gc_json(host)
    assert cluster.count(host.prefix, "leases") == 0, report
    after = cluster.data_keys(host.prefix)
    assert before | next_wrote <= after, report
    if STORE_FORMAT == 2:
        assert next_wrote, "the next snapshot wrote no packs of its own"
        assert after == before | next_wrote, report
        assert report["Packs"]["Deleted"] == len(failed_left), report
    assert gc_json(host, "--dry-run")["DeadBytes"] == 0
    for name, img in ((first, small), (snap, vol)):
        again = tmp_path / f"{name}-after-gc.img"
        assert_ok(host.restore(name, again))
        assert_same_file(again, img)
        again.unlink()
    assert host.damaged() == set()
