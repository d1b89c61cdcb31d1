"""Two hosts (two data dirs, two catalogs) on one bucket: chunks one host wrote deduplicate
the other's snapshot (both ways), either host rebuilds its catalog from the bucket and restores
the other's snapshots, and GC on one host never takes what a snapshot still running on the
other has written (its lease plus the age of the objects), while it does take the dead objects
written before that snapshot started.

ctest runs this module on both store formats (s3_two_hosts, s3_two_hosts_format2). In format 2
each host's snapshots write packs of their own and a packindex/ object named by their own
writer id; the other host finds those through the store-wide index."""

from __future__ import annotations

import os
import re
import signal

from s3_helpers import (STORE_FORMAT, S3Host, assert_ok, assert_same_file, describe, gc_json,
                        genvol_create, genvol_mutate, wait_for)


def _writers(keys: set[str]) -> set[str]:
    """The writer ids of packindex/ keys (packindex/<writer>-<seq>)."""
    return {k.rsplit("/", 1)[1].rsplit("-", 1)[0] for k in keys}


def _snapshot_dedups(host: S3Host, cluster, vid: str) -> str:
    """Takes a snapshot that must upload nothing: every block is in the bucket already."""
    before, writers = cluster.data_keys(host.prefix), cluster.writer_keys(host.prefix)
    res = host.ok("snapshot", "create", "--volume-id", vid)
    assert re.search(r"\b0 new chunks\b", res.stderr), describe(res)
    assert cluster.data_keys(host.prefix) == before, "uploaded chunks the other host had stored"
    assert cluster.writer_keys(host.prefix) == writers, "published an index for nothing new"
    return res.stdout.strip()


def test_second_host_dedups_rebuilds_and_restores(tmp_path, cluster):
    prefix = cluster.new_prefix("twohosts")
    a = S3Host(tmp_path / "a", cluster, prefix)
    b = S3Host(tmp_path / "b", cluster, prefix)
    a.init_s3()
    assert "joined" in b.init_s3().stdout
    assert cluster.store_format(prefix) == STORE_FORMAT

    vol_a = genvol_create(tmp_path / "a.img", "48M", seed=21)
    vol_b = tmp_path / "b.img"
    vol_b.write_bytes(vol_a.read_bytes())  # the same image on the other host
    original = tmp_path / "original.img"
    original.write_bytes(vol_a.read_bytes())
    vid_a, vid_b = a.register(vol_a), b.register(vol_b)
    snap_a = a.snapshot(vid_a)
    after_a = cluster.data_keys(prefix)
    assert len(after_a) > (20 if STORE_FORMAT == 1 else 1), after_a
    writers_a = _writers(cluster.writer_keys(prefix))
    assert len(writers_a) == (0 if STORE_FORMAT == 1 else 1)

    # B stores nothing A had: same blocks, same index pages.
    snap_b1 = _snapshot_dedups(b, cluster, vid_b)

    # B's changed blocks go into objects of its own (format 2: its own packs and index object)...
    genvol_mutate(vol_b, 10, seed=22)
    snap_b2 = b.snapshot(vid_b)
    added = cluster.data_keys(prefix) - after_a
    assert added, "B's changed blocks were not uploaded"
    assert after_a <= cluster.data_keys(prefix)
    if STORE_FORMAT == 2:
        writers_b = _writers(cluster.writer_keys(prefix)) - writers_a
        assert len(writers_b) == 1, cluster.writer_keys(prefix)
    # ...and A, snapshotting the same image, dedups against them.
    vol_a.write_bytes(vol_b.read_bytes())
    snap_a2 = _snapshot_dedups(a, cluster, vid_a)

    # Each catalog knows only its own snapshots until it is rebuilt from the bucket.
    assert set(b.snapshot_map()) == {snap_b1, snap_b2}
    for host in (a, b):
        assert_ok(host.run("catalog", "rebuild"))
        snaps = host.snapshot_map()
        assert {snap_a, snap_b1, snap_b2, snap_a2} <= set(snaps)
        assert all(snaps[s]["State"] == "completed" for s in (snap_a, snap_b1, snap_b2, snap_a2))
    assert_ok(b.restore(snap_a, tmp_path / "a-on-b.img"))
    assert_same_file(tmp_path / "a-on-b.img", original)
    assert_ok(a.restore(snap_b2, tmp_path / "b2-on-a.img"))
    assert_same_file(tmp_path / "b2-on-a.img", vol_b)
    assert_ok(b.restore(snap_a2, tmp_path / "a2-on-b.img"))
    assert_same_file(tmp_path / "a2-on-b.img", vol_b)
    assert a.damaged() == set() and b.damaged() == set()


def test_gc_on_one_host_keeps_a_snapshot_running_on_the_other(tmp_path, cluster):
    prefix = cluster.new_prefix("gcrace")
    a = S3Host(tmp_path / "a", cluster, prefix)
    b = S3Host(tmp_path / "b", cluster, prefix)
    a.init_s3()
    b.init_s3()

    # B's history: one snapshot that stays, one deleted (its objects are dead, and older than
    # anything A writes below).
    keep_img = genvol_create(tmp_path / "keep.img", "24M", seed=31)
    dead_img = genvol_create(tmp_path / "dead.img", "24M", seed=32)
    keep = b.snapshot(b.register(keep_img))
    before_dead = cluster.data_keys(prefix)
    dead = b.snapshot(b.register(dead_img))
    dead_keys = cluster.data_keys(prefix) - before_dead
    assert dead_keys
    b.delete(dead)

    vol = genvol_create(tmp_path / "big.img", "160M", seed=33, holes=False)
    vid = a.register(vol)
    base = cluster.data_keys(prefix)
    # Enough objects that A is surely mid-way: format 1 uploads an object per chunk, format 2
    # one per ~32 MiB pack (the S3 default), of which this volume makes about three.
    enough = 10 if STORE_FORMAT == 1 else 1
    proc = a.popen("snapshot", "create", "--volume-id", vid)
    stopped = False
    try:
        # Freeze host A mid-snapshot, once its lease is up and objects are in the bucket but
        # no manifest or index object references them yet: a deterministic "GC while A is
        # running".
        wait_for(lambda: len(cluster.data_keys(prefix) - base) >= enough or proc.poll() is not None,
                 "host A to upload chunks")
        os.kill(proc.pid, signal.SIGSTOP)
        stopped = True
        assert proc.poll() is None, "host A finished before it could be paused; use a larger volume"
        assert cluster.count(prefix, "leases") == 1
        assert cluster.count(prefix, "manifests") == 1  # B's kept snapshot only
        uploaded = cluster.data_keys(prefix) - base
        writers = cluster.writer_keys(prefix)

        report = gc_json(b)
        # B's dead objects go; nothing A has written does, though none of it is referenced yet.
        after = cluster.data_keys(prefix)
        assert not (dead_keys & after), report
        assert uploaded <= after, report
        assert report["KeptYoung"] >= len(uploaded), report
        if STORE_FORMAT == 1:
            assert report["DeletedChunks"] > 0, report
        else:
            assert report["Packs"]["Deleted"] == len(dead_keys), report
            # GC replaced the index objects it read (B's two) with one union of what stays.
            assert len(cluster.writer_keys(prefix)) == 1 and cluster.writer_keys(prefix) != writers
    finally:
        if stopped:
            os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, f"host A's snapshot failed:\n{out}\n{err}"
    snap = out.strip()
    assert cluster.count(prefix, "leases") == 0
    if STORE_FORMAT == 2:
        assert len(cluster.writer_keys(prefix)) == 2  # GC's union and A's own

    assert a.damaged() == set()
    for host in (a, b):
        assert_ok(host.run("catalog", "rebuild"))
        assert host.damaged() == set()
    assert_ok(b.restore(snap, tmp_path / "back.img"))
    assert_same_file(tmp_path / "back.img", vol)
    assert_ok(a.restore(keep, tmp_path / "keep-on-a.img"))
    assert_same_file(tmp_path / "keep-on-a.img", keep_img)
    # With A done, nothing is unreferenced: another GC on B deletes nothing either.
    again = gc_json(b)
    assert again["DeletedChunks"] == 0 and again["DeletedPages"] == 0, again
    if STORE_FORMAT == 2:
        assert again["Packs"]["Deleted"] == 0 and again["Packs"]["Repacked"] == 0, again
