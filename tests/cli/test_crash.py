"""Crash safety: kill -9 a real snapvol process at a point of its progress (drawn from a seed)
and check that the store stays consistent and nothing is left half-done.

Kill points are found by watching the run's own progress, never by wall-clock fractions of a
measured run, so they land where meant on a fast machine and a slow one alike: right after the
start (before the catalog row), when its lease appears (the row exists, nothing written yet),
after the k-th new chunk is written (temporaries in the store, k drawn up to what the latest
uninterrupted run wrote), when the first chunk is published (the commit: renames, syncfs, index
pages, manifest root) and when the manifest root is published (before the catalog hears)."""

from __future__ import annotations

import collections
import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from snapvol_helpers import (Store, assert_error, assert_same_file, block_ids, files_equal,
                             genvol_create, genvol_mutate, random_bytes, sha256_file)

IMAGE_SIZE = "160M"
SNAPSHOT_SEEDS = range(22)
RESTORE_SEEDS = range(6)
GC_ROUNDS = 6


def _temporaries(root: Path) -> int:
    """Chunks written but not yet committed: temporaries beside their final names."""
    n = 0
    try:
        subdirs = list(os.scandir(root))
    except FileNotFoundError:
        return 0
    for d in subdirs:
        try:
            n += sum(1 for e in os.scandir(d.path) if ".tmp-" in e.name)
        except (FileNotFoundError, NotADirectoryError):
            pass
    return n


def _entries(root: Path) -> int:
    """Published objects directly under root (leases/, manifests/)."""
    try:
        return sum(1 for e in os.scandir(root) if ".tmp-" not in e.name)
    except FileNotFoundError:
        return 0


def _count_objects(root: Path) -> int:
    """Published objects (no temporaries) under store/chunks or store/index."""
    n = 0
    try:
        subdirs = list(os.scandir(root))
    except FileNotFoundError:
        return 0
    for d in subdirs:
        try:
            n += sum(1 for e in os.scandir(d.path) if ".tmp-" not in e.name)
        except FileNotFoundError:
            pass
    return n


def _kill_when(p: subprocess.Popen, cond, timeout: float = 60) -> tuple[bool, str]:
    """Polls cond() and sends SIGKILL as soon as it holds (unless the process ended first)."""
    deadline = time.monotonic() + timeout
    while p.poll() is None and time.monotonic() < deadline:
        if cond():
            p.send_signal(signal.SIGKILL)
            break
        time.sleep(0.001)
    out, _ = p.communicate(timeout=60)
    return p.returncode == -signal.SIGKILL, out


def _data_objects(s: Store) -> int:
    """Published data objects: chunks (format 1) or packs (format 2)."""
    return sum(_count_objects(d) for d in s.data_object_dirs())


def _data_temporaries(s: Store) -> int:
    return sum(_temporaries(d) for d in s.data_object_dirs())


def _pending(s: Store) -> list[str]:
    return [x["SnapshotId"] for x in s.snapshots() if x["State"] == "pending"]


def test_kill_snapshot_create(store, tmp_path):
    s = store
    img = genvol_create(tmp_path / "vol.img", IMAGE_SIZE, 5)
    vol = s.register(img)
    expected: dict[str, str] = {}  # snapshot id → sha256 of the image it was taken of
    checked: set[str] = set()      # completed snapshots restored and compared

    h = sha256_file(img)
    base = s.snapshot(vol)
    expected[base] = h
    genvol_mutate(img, 10, seed=500)
    h = sha256_file(img)
    chunks_before = _data_objects(s)
    second = s.snapshot(vol)
    expected[second] = h

    out = tmp_path / "restored.img"
    outcomes = collections.Counter()
    log = []
    # New chunks (format 2: packs) of the latest uninterrupted run: how far into a run "the
    # k-th chunk" may be.
    typical_chunks = max(1, _data_objects(s) - chunks_before)
    for seed in SNAPSHOT_SEEDS:
        rng = random.Random(seed)
        genvol_mutate(img, rng.choice([5, 10, 20, 30]), seed=1000 + seed)
        h = sha256_file(img)
        full = rng.random() < 0.25
        # One run in six goes uninterrupted: it moves the parent on and measures how many
        # chunks a run writes now (the work grows while kills keep the parent fixed).
        mode = rng.random()
        k = max(1, int(typical_chunks * rng.uniform(0, 1)))
        before = set(s.snapshot_map())
        chunks_before = _data_objects(s)
        manifests_before = _entries(s.store / "manifests")
        temps_before = _data_temporaries(s)  # left by earlier killed runs until gc

        def written() -> int:
            return _data_temporaries(s) - temps_before + _data_objects(s) - chunks_before

        t0 = time.monotonic()
        p = s.popen("snapshot", "create", "--volume-id", vol, *(["--full"] if full else []))
        if mode < 1 / 6:
            how = "uninterrupted"
            stdout, _ = p.communicate(timeout=120)
            killed = False
            typical_chunks = max(1, _data_objects(s) - chunks_before)
        elif mode < 0.25:
            how = "at start"
            killed, stdout = _kill_when(p, lambda: True)
        elif mode < 0.4:
            how = "at its lease"
            killed, stdout = _kill_when(p, lambda: _entries(s.store / "leases") > 0)
        elif mode < 0.55:
            how = "at commit"
            killed, stdout = _kill_when(p, lambda: _data_objects(s) > chunks_before)
        elif mode < 0.65:
            how = "at publish"
            killed, stdout = _kill_when(p, lambda: _entries(s.store / "manifests") > manifests_before)
        else:
            how = f"after chunk {k} of ~{typical_chunks}"
            killed, stdout = _kill_when(p, lambda: written() >= k)
        ctx = f"seed {seed} (killed {how}, full={full}, killed={killed})"
        log.append((seed, full, how, round(time.monotonic() - t0, 3), killed))
        if not killed:
            assert p.returncode == 0, f"{ctx}: snapshot failed without being killed"
            assert set(s.snapshot_map()) - before == {stdout.strip()}, ctx

        # The next command recovers; verify finds nothing damaged.
        rc, report, res = s.verify()
        assert rc == 0 and report["Damaged"] == [], f"{ctx}: verify after the kill\n{res.stdout}"

        snaps = s.snapshot_map()
        assert not [x for x in snaps.values() if x["State"] == "pending"], \
            f"{ctx}: a snapshot stayed pending: {snaps}"
        assert before <= set(snaps), f"{ctx}: a snapshot disappeared"
        new = set(snaps) - before
        assert len(new) <= 1, f"{ctx}: {new}"
        if not new:
            assert killed
            outcomes["killed before it was recorded"] += 1
        for sid in new:
            x = snaps[sid]
            if x["State"] == "completed":
                outcomes["completed" if not killed else "killed after publishing"] += 1
                expected[sid] = h
            else:
                assert killed, f"{ctx}: {x}"
                assert x["State"] == "error", f"{ctx}: {x}"
                assert "interrupt" in x["StateMessage"].lower(), f"{ctx}: {x}"
                outcomes["interrupted"] += 1

        # Every completed snapshot restores to exactly the image it was taken of.
        for sid, x in snaps.items():
            if x["State"] != "completed" or sid in checked:
                continue
            assert sid in expected, f"{ctx}: {sid} completed but was never asked for"
            res = s.restore(sid, out, force=True)
            assert res.returncode == 0, f"{ctx}: restore {sid}: {res.stderr}"
            assert sha256_file(out) == expected[sid], f"{ctx}: {sid} restores other data"
            checked.add(sid)
        assert {base, second} <= checked

    print("outcomes:", dict(outcomes))
    print("runs (seed, full, how, elapsed, killed):", log)
    assert outcomes["interrupted"] >= 3, f"the kills hardly ever interrupted a snapshot: {outcomes}"

    # gc after all that keeps every completed snapshot whole.
    s.gc()
    assert s.damaged() == set()
    # A normal snapshot still works, and restores identically, as does the first one.
    genvol_mutate(img, 5, seed=9999)
    final = s.snapshot(vol)
    assert s.restore(final, out, force=True).returncode == 0
    assert_same_file(out, img)
    assert s.restore(base, out, force=True).returncode == 0
    assert sha256_file(out) == expected[base]


def _start_and_wait_for_pending(s: Store, vol: str) -> tuple[subprocess.Popen, str]:
    p = s.popen("snapshot", "create", "--volume-id", vol)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pend = _pending(s)
        if pend:
            return p, pend[0]
        assert p.poll() is None, "the snapshot ended before it could be observed pending"
        time.sleep(0.01)
    p.kill()
    p.communicate()
    pytest.fail("no pending snapshot appeared")


def test_killed_unreaped_runner_is_not_left_pending(store, tmp_path):
    # A killed runner that its parent has not reaped yet is a zombie: dead, and its pending
    # snapshot must be recovered by the next command, not reported as still running.
    s = store
    img = genvol_create(tmp_path / "vol.img", IMAGE_SIZE, 6)
    vol = s.register(img)
    p, sid = _start_and_wait_for_pending(s, vol)
    try:
        p.send_signal(signal.SIGKILL)
        # Wait until it is a zombie (dead, not reaped).
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(f"/proc/{p.pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.01)
        x = s.snapshot_map()[sid]
        assert x["State"] == "error", f"killed (zombie) runner's snapshot is {x['State']}: {x}"
        assert "interrupt" in x["StateMessage"].lower()
    finally:
        p.communicate(timeout=60)
    assert s.snapshot_map()[sid]["State"] == "error"


def test_gc_reclaims_garbage_of_a_killed_snapshot(store, tmp_path):
    # After a killed snapshot has been recovered (marked error), its unpublished chunks and
    # temporaries are garbage; `gc --grace 0` reclaims them (no 30-minute lease wait).
    s = store
    img = genvol_create(tmp_path / "vol.img", IMAGE_SIZE, 7)
    vol = s.register(img)
    base = s.snapshot(vol)
    live = {b for b in block_ids(img) if b}
    packed = s.store_format() == 2
    packs_before = s.all_files("packs")  # format 2: the base snapshot's packs
    genvol_mutate(img, 40, seed=77)
    p, sid = _start_and_wait_for_pending(s, vol)
    # Let it write some chunk data (format 2: a pack), then kill it.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and p.poll() is None:
        if packed and s.all_files("packs") - packs_before:
            break
        if sum(".tmp-" in q.name for q in s.all_files("chunks")) >= 8:
            break
        time.sleep(0.001 if packed else 0.01)
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=60)
    if s.snapshot_map()[sid]["State"] == "completed":
        pytest.fail("the snapshot finished before it could be killed; the test proved nothing")
    assert s.snapshot_map()[sid]["State"] == "error"
    if packed:
        assert s.all_files("packs") != packs_before, "the killed run left nothing behind to collect"
    else:
        assert s.all_files("chunks") != s.chunk_files() or s.chunk_files() != \
            {s.chunk_path(c) for c in live}, "the killed run left nothing behind to collect"
    out = tmp_path / "out.img"
    assert_error(s.restore(sid, out), sid)
    assert not out.exists()

    # The operator even deletes the failed snapshot; gc --grace 0 then leaves only what the
    # remaining snapshot needs.
    s.delete(sid)
    s.gc()
    leftovers = sorted(str(q.relative_to(s.store)) for q in s.all_files("chunks") | s.all_files("packs")
                       if ".tmp-" in q.name)
    assert leftovers == [], f"{len(leftovers)} temporaries of the killed run survive gc --grace 0"
    if packed:
        # The base snapshot's packs are wholly live: gc keeps them as they are, and drops
        # every pack of the killed run (unpublished, or published with no root reaching it).
        assert s.all_files("packs") == packs_before, "packs of the killed run survive gc --grace 0"
    else:
        assert {q.name for q in s.chunk_files()} == live, "unreferenced chunks survive gc --grace 0"
    assert s.object_files("leases") == set(), "the dead run's lease survives recovery and gc"
    assert s.damaged() == set()
    assert s.restore(base, out).returncode == 0


def _allocated(path: Path) -> int:
    try:
        return path.stat().st_blocks * 512
    except FileNotFoundError:
        return 0


def test_kill_restore(store, tmp_path):
    # Even seeds kill as soon as the partial file exists (before any data); odd seeds once it
    # holds a seeded fraction of the data (so some kills surely land mid-write).
    s = store
    img = genvol_create(tmp_path / "vol.img", IMAGE_SIZE, 8)
    snap = s.snapshot(s.register(img))
    target = tmp_path / "target.img"
    partial = Path(str(target) + ".snapvol-partial")

    assert s.restore(snap, target).returncode == 0
    assert_same_file(target, img)
    full_alloc = _allocated(target)
    target.unlink()

    def start_and_kill(rng, seed, *extra):
        p = s.popen("restore", "--snapshot-id", snap, "--to", target, *extra)
        if seed % 2 == 0:
            killed, _ = _kill_when(p, lambda: partial.exists())
            return p, killed, "when the partial file appeared"
        frac = rng.uniform(0.05, 0.9)
        killed, _ = _kill_when(p, lambda: _allocated(partial) >= frac * full_alloc)
        return p, killed, f"at {frac:.0%} written"

    seen = collections.Counter()
    for seed in RESTORE_SEEDS:
        rng = random.Random(seed)
        p, killed, how = start_and_kill(rng, seed)
        ctx = f"seed {seed} (killed {how}, killed={killed})"
        if not killed:
            assert p.returncode == 0, f"{ctx}: restore failed without being killed"
        if target.exists():
            # Only ever the whole, final file at the target path.
            assert_same_file(target, img)
            seen["killed, target complete" if killed else "finished"] += 1
            target.unlink()
        else:
            assert killed, f"{ctx}: restore ended without a target"
            seen["killed, no target"] += 1
        if partial.exists():
            seen["killed, partial left"] += 1
        # A retry without --force succeeds and cleans up.
        res = s.restore(snap, target)
        assert res.returncode == 0, f"{ctx}: retry failed: {res.stderr}"
        assert_same_file(target, img)
        assert not partial.exists(), f"{ctx}: the retry left {partial}"
        target.unlink()

    # Overwriting with --force: a kill leaves either the old file or the whole new one.
    old = tmp_path / "old.img"
    old.write_bytes(random_bytes(3 << 20, 7))
    for seed in RESTORE_SEEDS:
        rng = random.Random(100 + seed)
        shutil.copyfile(old, target)
        p, killed, how = start_and_kill(rng, seed, "--force")
        if files_equal(target, old):
            assert killed, f"--force seed {seed}: restore ended, old file still there"
            seen["--force killed, old target intact"] += 1
        else:
            assert_same_file(target, img)
            seen["--force, new target complete"] += 1
        partial.unlink(missing_ok=True)
    print("restore kills:", dict(seen))
    assert seen["killed, no target"] >= 1
    assert seen["--force killed, old target intact"] >= 1


def test_kill_gc(tmp_path):
    # Small blocks make many objects, so gc's sweep takes long enough to be killed midway:
    # half the rounds kill it after a seeded number of deletions, half at its first deletion.
    # Format 1: it counts chunk objects (format 2's gc killed while it writes is
    # PackedStoreTest.AGcThatFailsWhileWritingLosesNothing).
    s = Store(tmp_path / "data")
    s.init("--block-size", "4096", "--store-format", "1")
    img = tmp_path / "vol.img"
    img.write_bytes(random_bytes(8 << 20, 1))
    vol = s.register(img)
    prev = s.snapshot(vol)
    chunks = s.store / "chunks"
    seen = collections.Counter()
    for rnd in range(GC_ROUNDS):
        rng = random.Random(rnd)
        genvol_mutate(img, 50, seed=200 + rnd, block_size=4096)
        cur = s.snapshot(vol)
        s.delete(prev)
        n_before = _count_objects(chunks)
        n_live = len({b for b in block_ids(img, 4096) if b})
        garbage = n_before - n_live
        assert garbage > 100
        p = s.popen("gc", "--grace", "0")
        if rnd % 2 == 0:
            stop_at = n_before - rng.randint(1, garbage - 1)
            killed, _ = _kill_when(p, lambda: _count_objects(chunks) <= stop_at)
        else:
            killed, _ = _kill_when(p, lambda: _count_objects(chunks) < n_before)
        if not killed:
            assert p.returncode == 0
        n_after = _count_objects(chunks)
        if killed and n_live < n_after < n_before:
            seen["killed mid-sweep"] += 1
        else:
            seen["killed before the sweep" if killed else "finished"] += 1

        rc, report, res = s.verify()
        assert rc == 0, f"round {rnd} (killed={killed}): {res.stdout}"
        out = tmp_path / "out.img"
        res = s.restore(cur, out, force=True)
        assert res.returncode == 0, res.stderr
        assert_same_file(out, img)
        prev = cur

    s.gc()
    assert s.damaged() == set()
    assert {q.name for q in s.chunk_files()} == {b for b in block_ids(img, 4096) if b}
    assert [q for q in s.all_files("chunks") if ".tmp-" in q.name] == []
    print("gc kills:", dict(seen))
    assert seen["killed mid-sweep"] >= 1, seen


def test_gc_during_snapshot(store, tmp_path):
    # gc takes no store lock: run `gc --grace 0` over and over while an incremental snapshot
    # is being taken, with its parent deleted meanwhile.  The snapshot must come out whole.
    s = store
    img = genvol_create(tmp_path / "vol.img", IMAGE_SIZE, 9)
    vol = s.register(img)
    parent = s.snapshot(vol)
    genvol_mutate(img, 30, seed=31)
    h = sha256_file(img)
    p, sid = _start_and_wait_for_pending(s, vol)
    s.delete(parent)
    runs = 0
    while p.poll() is None:
        s.gc()
        runs += 1
    out_, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert out_.strip() == sid
    assert runs >= 1
    s.gc()
    assert s.damaged() == set()
    out = tmp_path / "out.img"
    assert s.restore(sid, out).returncode == 0
    assert sha256_file(out) == h
