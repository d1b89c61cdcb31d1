"""GC of a format-2 store (packs) through the real CLI: #16's acceptance for GC.

One history, built once: 8 snapshots of a generated volume with 3% of its blocks changed
between them, in a format-2 store with 1 MiB packs, and the same history in a format-1 twin;
the alternate snapshots (2nd, 4th, 6th, 8th) deleted. Each test works on copies of it.

Dead bytes are the stored bytes of the chunks and index pages that no surviving snapshot
references, counted before GC. They are measured on the format-1 twin, independently of the
code under test: there every object is a file of its own and `gc --grace 0` deletes exactly the
unreferenced ones, so the bytes of chunks/ and index/ it removes are the dead bytes. A pack
holds each object in exactly the bytes of its format-1 file (same encoding, no encryption), so
the format-2 store holds the same dead bytes, spread over packs.

The GC killed mid-repack: kill -9 of `snapvol gc` at points found by watching its progress
in the store (never by wall-clock fractions): its run record, the k-th new pack, the new
index, the first old pack deleted. After each kill every survivor restores byte-identical and
verify is clean; then a second gc (which removes the killed run's record at once, its process
being gone from this host: format-2 GC is exclusive) finishes the work and the store ends with the pack count one uninterrupted gc
leaves, one index object and no temporaries."""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import signal
import time
from pathlib import Path

import pytest

from snapvol_helpers import (Store, assert_error, describe, dir_state, genvol_create, genvol_mutate,
                             sha256_file)

IMAGE_SIZE = "128M"
SNAPSHOTS = 8
CHANGE_PERCENT = 3
KILL_SEEDS = range(8)


def _files(root: Path, *, temporaries: bool = False) -> dict[str, int]:
    """Relative path → size of the files under root (temporaries: only those, else none)."""
    out = {}
    if not root.exists():
        return out
    for dirpath, _, names in os.walk(root):
        for n in names:
            if (".tmp-" in n) != temporaries:
                continue
            p = Path(dirpath) / n
            try:
                out[str(p.relative_to(root))] = p.stat().st_size
            except FileNotFoundError:
                pass
    return out


def _copy(src: Store, dst: Path) -> Store:
    shutil.copytree(src.dir, dst, symlinks=True)
    return Store(dst)


def _gc_json(s: Store, *args) -> dict:
    res = s.run("-o", "json", "gc", "--grace", "0", *args)
    assert res.returncode == 0, describe(res)
    return json.loads(res.stdout)


def _build(base: Path, *, size: str, snapshots: int, percent: float, deleted, twin: bool):
    """A format-2 store (1 MiB packs) of `snapshots` snapshots of a generated volume with
    `percent` of its blocks changed between them, the `deleted` ones deleted; with twin, the
    same history in a format-1 store, collected at once to measure the dead bytes."""
    img = genvol_create(base / "vol.img", size, 16)
    packed = Store(base / "packed")
    packed.init("--store-format", "2", "--pack-size", "1")
    vp = packed.register(img)
    plain = vf = None
    if twin:
        plain = Store(base / "plain")
        plain.init("--store-format", "1")
        vf = plain.register(img)
    snaps = []  # (id in packed, id in plain, sha256 of the image)
    for i in range(snapshots):
        if i:
            genvol_mutate(img, percent, seed=100 + i)
        snaps.append((packed.snapshot(vp), plain.snapshot(vf) if twin else None, sha256_file(img)))
    for i in deleted:
        packed.delete(snaps[i][0])
        if twin:
            plain.delete(snaps[i][1])
    survivors = {p: h for i, (p, _, h) in enumerate(snaps) if i not in deleted}
    dead = None
    if twin:
        objects = lambda: sum(_files(plain.store / "chunks").values()) + sum(_files(plain.store / "index").values())
        before = objects()
        report = _gc_json(plain)
        dead = before - objects()
        assert dead > 0 and report["DeadBytes"] == dead, (dead, report)
    return collections.namedtuple("History", "packed survivors dead")(packed, survivors, dead)


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """#16's acceptance history: 8 snapshots, 3% changes, the alternate ones deleted."""
    base = tmp_path_factory.mktemp("history")
    yield _build(base, size=IMAGE_SIZE, snapshots=SNAPSHOTS, percent=CHANGE_PERCENT,
                 deleted=range(1, SNAPSHOTS, 2), twin=True)
    if not os.environ.get("SNAPVOL_KEEP_TMP"):
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def churned(tmp_path_factory):
    """A history whose GC rewrites many packs: 40% of the blocks changed between 4 snapshots,
    the middle two deleted, so most of their packs are part dead."""
    base = tmp_path_factory.mktemp("churned")
    yield _build(base, size="48M", snapshots=4, percent=40, deleted=(1, 2), twin=False)
    if not os.environ.get("SNAPVOL_KEEP_TMP"):
        shutil.rmtree(base, ignore_errors=True)


def _assert_survivors_intact(s: Store, survivors: dict[str, str], out: Path, ctx: str = ""):
    for sid, digest in survivors.items():
        res = s.restore(sid, out, force=True)
        assert res.returncode == 0, f"{ctx}: restore {sid}\n" + describe(res)
        assert sha256_file(out) == digest, f"{ctx}: {sid} restores other bytes"
    assert s.damaged() == set(), ctx
    out.unlink(missing_ok=True)


def test_gc_frees_the_dead_bytes_of_deleted_snapshots_and_survivors_restore(history, tmp_path):
    s = _copy(history.packed, tmp_path / "data")
    packs = s.store / "packs"
    before = _files(packs)
    assert len(before) > 20, "1 MiB packs: many packs"

    # The dry run reports what it would do and changes nothing.
    state = dir_state(s.store)
    dry = _gc_json(s, "--dry-run")
    assert dir_state(s.store) == state, "a dry run changed the store"
    assert dry["DryRun"] and dry["StoreFormat"] == 2
    assert dry["DeadBytes"] == history.dead, ("the dead bytes gc finds are not those of the format-1 twin", dry)
    p = dry["Packs"]
    assert p["Before"] == len(before) and p["Deleted"] + p["Repacked"] > 0, dry
    assert p["Kept"] == len(before) - p["Deleted"] - p["Repacked"], dry
    assert dry["DeletedBytes"] >= 0.9 * history.dead, dry
    text = s.ok("gc", "--grace", "0", "--dry-run").stdout
    assert f"packs: {len(before)} before; would delete {p['Deleted']} with nothing live, would repack " \
           f"{p['Repacked']}" in text, text
    assert "dead bytes: " in text and "would free about" in text, text
    assert dir_state(s.store) == state, "a dry run changed the store"

    r = _gc_json(s)
    after = _files(packs)
    freed = sum(before.values()) - sum(after.values())
    print(f"dead bytes {history.dead}, freed {freed} ({100 * freed / history.dead:.1f}%), packs "
          f"{len(before)} -> {len(after)}: {r['Packs']}")
    assert freed >= 0.9 * history.dead, f"freed {freed} of {history.dead} dead bytes: {r}"
    assert r["DeletedBytes"] == freed, r
    assert r["DeadBytes"] == history.dead, r
    assert r["Packs"]["Before"] == len(before) and r["Packs"]["After"] == len(after), r
    assert r["Packs"]["Deleted"] == dry["Packs"]["Deleted"] and r["Packs"]["Repacked"] == dry["Packs"]["Repacked"], \
        (dry, r)
    assert r["Packs"]["DamagedKept"] == 0 and r["Packs"]["Lost"] == 0, r
    assert len(_files(s.store / "packindex")) == 1
    _assert_survivors_intact(s, history.survivors, tmp_path / "restored.img")

    # A second run finds only what the threshold left in packs it kept, and does nothing.
    again = _gc_json(s)
    assert again["DeadBytes"] <= 0.1 * history.dead, again
    assert again["Packs"]["Deleted"] == 0 and again["Packs"]["Repacked"] == 0, again
    assert _files(packs) == after
    text = s.ok("gc", "--grace", "0").stdout
    assert f"packs: {len(after)} before; deleted 0 with nothing live, repacked 0 into 0 new" in text, text


def test_repack_threshold_is_applied_and_refused_by_name(history, tmp_path):
    s = _copy(history.packed, tmp_path / "data")
    state = dir_state(s.store)
    for bad in ("0", "1.5", "-0.1", "abc", "0.1x", "nan", ""):
        msg = assert_error(s.run("gc", "--grace", "0", "--repack-threshold", bad), r"--repack-threshold")
        assert "above 0 and at most 1" in msg, msg
    assert dir_state(s.store) == state
    # 1: no pack is rewritten, only those with nothing live deleted; a lower threshold rewrites
    # at least as many.
    only_dead = _gc_json(s, "--dry-run", "--repack-threshold", "1")
    assert only_dead["Packs"]["Repacked"] == 0 and only_dead["Packs"]["Deleted"] > 0, only_dead
    low = _gc_json(s, "--dry-run", "--repack-threshold", "0.01")
    default = _gc_json(s, "--dry-run")
    assert low["Packs"]["Repacked"] >= default["Packs"]["Repacked"] > 0, (low, default)
    assert dir_state(s.store) == state
    r = _gc_json(s, "--repack-threshold", "1")
    assert r["Packs"]["Repacked"] == 0 and r["Packs"]["Written"] == 0, r
    assert r["Packs"]["Deleted"] == only_dead["Packs"]["Deleted"], (only_dead, r)

    # A format-1 store has no packs: the setting is refused, not ignored.
    plain = Store(tmp_path / "plain")
    plain.init("--store-format", "1")
    state = dir_state(plain.store)
    assert_error(plain.run("gc", "--repack-threshold", "0.2"), r"--repack-threshold.*format-2.*format 1")
    assert dir_state(plain.store) == state
    # Its report has no pack figures.
    f1 = _gc_json(plain)
    assert "Packs" not in f1 and f1["StoreFormat"] == 1, f1
    assert "packs:" not in plain.ok("gc", "--grace", "0").stdout


def _kill_when(p, cond, timeout: float = 120) -> bool:
    """Polls cond() and sends SIGKILL as soon as it holds; True when the kill ended the run."""
    deadline = time.monotonic() + timeout
    while p.poll() is None and time.monotonic() < deadline:
        if cond():
            p.send_signal(signal.SIGKILL)
            break
        time.sleep(0.001)
    p.communicate(timeout=60)
    return p.returncode == -signal.SIGKILL


def test_gc_killed_mid_repack_loses_nothing_and_a_second_gc_finishes(churned, tmp_path):
    history = churned
    # What one uninterrupted gc leaves, and how many packs it writes.
    ref = _copy(history.packed, tmp_path / "reference")
    ref_report = _gc_json(ref)
    ref_packs = len(_files(ref.store / "packs"))
    written = ref_report["Packs"]["Written"]
    assert written >= 3, f"the repack writes too few packs to be interrupted in between: {ref_report}"
    shutil.rmtree(ref.dir)

    runs = []  # (store, how, killed)
    log = []
    outcomes = collections.Counter()
    for seed in KILL_SEEDS:
        rng = random.Random(seed)
        s = _copy(history.packed, tmp_path / f"run{seed}")
        packs, index = s.store / "packs", s.store / "packindex"
        old_packs, old_index = set(_files(packs)), set(_files(index))

        def new_packs() -> int:  # written or being written (temporaries included)
            return (len(set(_files(packs)) - old_packs) + len(_files(packs, temporaries=True)))

        mode = seed % 4
        k = rng.randint(1, written)
        if mode == 0:
            how, cond = "at its run record", lambda: bool(_files(s.store / "gc-runs"))
        elif mode == 1:
            how, cond = f"after new pack {k} of {written}", lambda: new_packs() >= k
        elif mode == 2:
            how, cond = "at the new index", lambda: bool(set(_files(index)) - old_index)
        else:
            how, cond = "at the first old pack deleted", lambda: not old_packs <= set(_files(packs))
        p = s.popen("gc", "--grace", "0")
        killed = _kill_when(p, cond)
        ctx = f"seed {seed}, killed {how} (killed={killed})"
        if not killed:
            assert p.returncode == 0, ctx
        outcomes["killed " + how.split(" of ")[0] if killed else "finished first"] += 1
        now_packs = set(_files(packs))
        now_index = set(_files(index))
        log.append((seed, how, killed, f"index objects: {len(now_index - old_index)} new, "
                    f"{len(now_index & old_index)} of {len(old_index)} old left; packs: "
                    f"{len(now_packs - old_packs)} new, {len(_files(packs, temporaries=True))} temporaries, "
                    f"{len(old_packs - now_packs)} old deleted"))
        _assert_survivors_intact(s, history.survivors, tmp_path / "restored.img", ctx)
        runs.append((s, ctx, killed))
    print(f"reference: {ref_report['Packs']}")
    print("outcomes:", dict(outcomes))
    print("state after each kill:", *log, sep="\n  ")
    assert sum(1 for _, _, killed in runs if killed) >= len(KILL_SEEDS) // 2, outcomes

    # A second gc finishes the work. A killed run's record would hold other runs off until it
    # expires (a minute after its last heartbeat), but its process is gone from this host: the
    # next run removes it at once, says so, and goes through.
    for s, ctx, killed in runs:
        left = _files(s.store / "gc-runs")
        assert killed or not left, f"{ctx}: a run that ended left its record"
        res = s.run("-o", "json", "gc", "--grace", "0")
        assert res.returncode == 0, f"{ctx}: gc failed\n" + describe(res)
        gone = json.loads(res.stdout)["GoneRunsRemoved"]
        assert len(gone) == len(left), f"{ctx}: records left {sorted(left)}, removed {gone}"
        assert len(_files(s.store / "packs")) == ref_packs, f"{ctx}: {res.stdout}"
        assert len(_files(s.store / "packindex")) == 1, ctx
        assert _files(s.store / "packs", temporaries=True) == {}, f"{ctx}: temporaries left"
        assert not _files(s.store / "gc-runs"), f"{ctx}: a run record left"
        _assert_survivors_intact(s, history.survivors, tmp_path / "restored.img", ctx)
        shutil.rmtree(s.dir)
