"""Two hosts (two data dirs, two catalogs) on one bucket: chunks one host wrote deduplicate
the other's snapshot, either host rebuilds its catalog from the bucket and restores the
other's snapshots, and GC on one host never takes what a snapshot still running on the
other has written (its lease plus the age of the objects)."""

from __future__ import annotations

import os
import re
import signal

from s3_helpers import S3Host, assert_ok, assert_same_file, describe, genvol_create, wait_for


def test_second_host_dedups_rebuilds_and_restores(tmp_path, cluster):
    prefix = cluster.new_prefix("twohosts")
    a = S3Host(tmp_path / "a", cluster, prefix)
    b = S3Host(tmp_path / "b", cluster, prefix)
    a.init_s3()
    assert "joined" in b.init_s3().stdout

    vol_a = genvol_create(tmp_path / "a.img", "48M", seed=21)
    vol_b = tmp_path / "b.img"
    vol_b.write_bytes(vol_a.read_bytes())  # the same image on the other host
    snap_a = a.snapshot(a.register(vol_a))
    chunks_after_a = cluster.count(prefix, "chunks")
    pages_after_a = cluster.count(prefix, "index")
    assert chunks_after_a > 20

    res = b.ok("snapshot", "create", "--volume-id", b.register(vol_b))
    assert cluster.count(prefix, "chunks") == chunks_after_a, "host B uploaded chunks host A had"
    assert cluster.count(prefix, "index") == pages_after_a
    assert re.search(r"\b0 new chunks\b", res.stderr), describe(res)
    snap_b = res.stdout.strip()

    # B's catalog knows only its own snapshot until it is rebuilt from the bucket.
    assert set(b.snapshot_map()) == {snap_b}
    assert_ok(b.run("catalog", "rebuild"))
    snaps = b.snapshot_map()
    assert {snap_a, snap_b} <= set(snaps)
    assert snaps[snap_a]["State"] == "completed"
    assert_ok(b.restore(snap_a, tmp_path / "a-on-b.img"))
    assert_same_file(tmp_path / "a-on-b.img", vol_a)
    assert b.damaged() == set()


def test_gc_on_one_host_keeps_a_snapshot_running_on_the_other(tmp_path, cluster):
    prefix = cluster.new_prefix("gcrace")
    a = S3Host(tmp_path / "a", cluster, prefix)
    b = S3Host(tmp_path / "b", cluster, prefix)
    a.init_s3()
    b.init_s3()
    vol = genvol_create(tmp_path / "big.img", "160M", seed=33, holes=False)
    vid = a.register(vol)

    proc = a.popen("snapshot", "create", "--volume-id", vid)
    stopped = False
    try:
        # Freeze host A mid-snapshot, once its lease is up and chunks are in the bucket but
        # no manifest references them yet: a deterministic "GC while A is running".
        wait_for(lambda: cluster.count(prefix, "chunks") >= 10 or proc.poll() is not None,
                 "host A to upload chunks")
        os.kill(proc.pid, signal.SIGSTOP)
        stopped = True
        assert proc.poll() is None, "host A finished before it could be paused; use a larger volume"
        assert cluster.count(prefix, "leases") == 1
        assert cluster.count(prefix, "manifests") == 0
        uploaded = cluster.count(prefix, "chunks")

        gc = b.ok("gc", "--grace", "0").stdout
        m = re.search(r"deleted (\d+) chunks", gc)
        assert m and m.group(1) == "0", gc
        assert re.search(r"and (\d+) objects younger than the grace period", gc), gc
        assert cluster.count(prefix, "chunks") >= uploaded
    finally:
        if stopped:
            os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"host A's snapshot failed:\n{out}\n{err}"
    snap = out.strip()
    assert cluster.count(prefix, "leases") == 0

    assert a.damaged() == set()
    assert_ok(b.run("catalog", "rebuild"))
    assert b.damaged() == set()
    assert_ok(b.restore(snap, tmp_path / "back.img"))
    assert_same_file(tmp_path / "back.img", vol)
    # With A done, nothing is unreferenced: another GC on B deletes nothing either.
    assert re.search(r"deleted 0 chunks", b.ok("gc", "--grace", "0").stdout)
