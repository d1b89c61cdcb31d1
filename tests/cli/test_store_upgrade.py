"""`snapvol store upgrade` through the real CLI: a format-1 store with three snapshots of a
generated volume is converted to format 2 while `kill -9` interrupts the upgrade at points of
its own progress (drawn from a seed), each interruption followed by a re-run; afterwards every
snapshot restores byte-identical (sha256) to the volume it was taken of, verify is clean and
no format-1 object is left.  Also: the dry run changes nothing, a second run is a no-op, and
the upgrade and snapshot writers refuse each other.

Kill points are read from the run's own progress lines on stderr (or from the store's config
for the moment after the flip), never from wall-clock time."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest

from snapvol_helpers import (SNAPVOL, Store, assert_error, assert_ok, clean_env, describe, dir_state,
                             genvol_create, genvol_mutate, kill_on_stderr, sha256_file)

IMAGE_SIZE = "48M"


def _count(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file() and ".tmp-" not in p.name) if root.exists() else 0


@pytest.fixture
def format1(tmp_path):
    """A format-1 data dir with three snapshots of one volume (5% changed between them);
    returns (store, {snapshot id: sha256 of the volume when it was taken})."""
    s = Store(tmp_path / "data")
    s.init("--store-format", "1")
    img = genvol_create(tmp_path / "vol.img", IMAGE_SIZE, seed=11)
    vol = s.register(img)
    expected = {}
    for i in range(3):
        if i:
            genvol_mutate(img, 5, seed=20 + i)
        expected[s.snapshot(vol)] = sha256_file(img)
    assert _count(s.store / "chunks") > 40
    assert not (s.store / "packs").exists()
    return s, expected


def _check_upgraded(s: Store, expected: dict, tmp_path: Path):
    config = json.loads((s.store / "config").read_text())
    assert config["version"] == 2 and config["pack_size"] == 1 << 20, config
    assert _count(s.store / "chunks") == 0 and _count(s.store / "index") == 0
    assert _count(s.store / "leases") == 0 and _count(s.store / "gc-runs") == 0
    for snap, digest in expected.items():
        out = tmp_path / f"restored-{snap}.img"
        assert_ok(s.restore(snap, out))
        assert sha256_file(out) == digest, f"{snap} does not restore byte-identical"
        out.unlink()
    assert s.damaged() == set()


def _upgrade(s: Store, *extra):
    return s.run("store", "upgrade", "--pack-size", "1", *extra, timeout=300)


def _run_and_kill(s: Store, want) -> tuple[bool, list[str]]:
    return kill_on_stderr([SNAPVOL, "--data-dir", str(s.dir), "store", "upgrade", "--pack-size", "1"],
                          clean_env(), want)


def progress_at(phase: str, pct: int):
    """A kill point: the progress line of phase at or past pct percent."""
    def want(line):
        if not line or not line.startswith(f"upgrade: {phase}: "):
            return False
        return int(line.split(": ")[2].split("%")[0]) >= pct
    return want


def _after_flip(s: Store):
    config = s.store / "config"

    def want(line):
        try:
            return json.loads(config.read_text()).get("version") == 2
        except (OSError, ValueError):
            return False
    return want


@pytest.mark.parametrize("seed", [1, 2])
def test_killed_at_random_points_then_rerun_restores_byte_identical(format1, tmp_path, seed):
    s, expected = format1
    rng = random.Random(seed)
    points = [("copy", progress_at("copy", rng.choice([10, 20, 30, 40]))),
              ("copy", progress_at("copy", rng.choice([60, 70, 80, 90]))),
              ("verify", progress_at("verify", rng.choice([10, 30, 50]))),
              ("flip", _after_flip(s))]
    landed = []
    for name, want in points:
        killed, lines = _run_and_kill(s, want)
        assert any(l.startswith("upgrade: copy: ") for l in lines) or name == "flip", lines
        if killed:
            landed.append(name)
            if name != "flip":
                # Killed before the flip: the store is format 1, whole, and readable as such.
                assert json.loads((s.store / "config").read_text())["version"] == 1
    # The first point leaves most of the copy to do: the run is still going when it says so.
    # (Later ones may find the run already ended; the re-run below covers both cases.)
    assert landed and landed[0] == "copy", landed
    print(f"seed {seed}: kill -9 landed at {landed}")

    # The last point is after the flip (or the run ended first): the store is format 2 now,
    # and this run deletes what format 1 left, if anything.
    res = assert_ok(_upgrade(s))
    assert "already format 2" in res.stdout, describe(res)
    _check_upgraded(s, expected, tmp_path)
    again = assert_ok(_upgrade(s))
    assert "already format 2; nothing to do" in again.stdout, describe(again)


def test_uninterrupted_upgrade_reports_progress_and_a_summary(format1, tmp_path):
    s, expected = format1
    before = dir_state(s.store)
    dry = assert_ok(_upgrade(s, "--dry-run"))
    assert "would convert" in dry.stdout and "nothing changed" in dry.stdout, describe(dry)
    assert dir_state(s.store) == before

    res = assert_ok(_upgrade(s))
    assert "snapvold must be stopped" in res.stderr, describe(res)
    copy = [l for l in res.stderr.splitlines() if l.startswith("upgrade: copy: ")]
    verify = [l for l in res.stderr.splitlines() if l.startswith("upgrade: verify: ")]
    assert len(copy) >= 5 and copy[-1].startswith("upgrade: copy: 100%"), res.stderr
    assert "objects" in copy[-1] and "MiB" in copy[-1], copy
    assert verify and verify[-1].startswith("upgrade: verify: 100%"), res.stderr
    assert "upgraded the store to format 2" in res.stdout, describe(res)
    assert "packs" in res.stdout and "before" in res.stdout and " s\n" in res.stdout, describe(res)
    _check_upgraded(s, expected, tmp_path)

    # Snapshots after the upgrade are format 2, and gc on the upgraded store keeps everything.
    img = tmp_path / "vol.img"
    genvol_mutate(img, 5, seed=40)
    vol = s.volumes()[0]["VolumeId"]
    expected[s.snapshot(vol)] = sha256_file(img)
    assert_ok(s.run("gc", "--grace", "0s"))
    _check_upgraded(s, expected, tmp_path)

    state = dir_state(s.store)
    again = assert_ok(_upgrade(s))
    assert "already format 2; nothing to do" in again.stdout, describe(again)
    assert dir_state(s.store) == state


def test_refused_while_a_snapshot_is_written_and_writers_refused_while_it_holds(format1, tmp_path):
    s, _ = format1
    now = int(time.time() * 1000)
    lease = s.store / "leases" / "snap-0123456789abcdef0"
    lease.parent.mkdir(exist_ok=True)
    lease.write_text(json.dumps({"snapshot_id": lease.name, "parent_id": "", "holder": "elsewhere:1",
                                 "started_ms": now, "heartbeat_ms": now}))
    before = dir_state(s.store)
    assert_error(_upgrade(s), r"snapshot snap-0123456789abcdef0 is being written.*stop snapvold")
    assert dir_state(s.store) == before
    lease.unlink()

    # An upgrade's lease (here one left by another host) keeps snapshot writers out.
    held = s.store / "leases" / "store-upgrade"
    held.write_text(json.dumps({"snapshot_id": "store-upgrade", "parent_id": "", "holder": "elsewhere:2",
                                "started_ms": now, "heartbeat_ms": now}))
    vol = s.volumes()[0]["VolumeId"]
    assert_error(s.run("snapshot", "create", "--volume-id", vol), r"being upgraded to format 2")
    assert_error(_upgrade(s), r"another snapvol store upgrade \(elsewhere:2")
    assert [p.name for p in (s.store / "leases").iterdir()] == ["store-upgrade"]
    held.unlink()


def test_format2_store_is_left_alone(tmp_path):
    s = Store(tmp_path / "data")
    s.init("--store-format", "2", "--pack-size", "1")
    before = dir_state(s.store)
    res = assert_ok(_upgrade(s))
    assert "already format 2; nothing to do" in res.stdout, describe(res)
    assert dir_state(s.store) == before


def test_format2_gc_deletes_format1_leftovers_after_its_grace(format1, tmp_path):
    """Format-1 objects left after the flip (as by an upgrade killed before its deletes) are
    garbage to a format-2 gc: kept while younger than its grace period, deleted once older; the
    snapshots do not need them (they read their packs) and restore byte-identical."""
    s, expected = format1
    saved = {p: p.read_bytes() for p in s.object_files("chunks") | s.object_files("index")}
    assert_ok(_upgrade(s))
    assert _count(s.store / "chunks") == 0
    for p, data in saved.items():
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    young = assert_ok(s.run("gc", "--grace", "30m"))
    assert (f"format-1 leftovers (chunks/, index/): deleted 0 (0 B), kept {len(saved)} younger than the "
            f"grace period") in young.stdout, describe(young)
    assert {p for p in saved if p.exists()} == set(saved)

    an_hour_ago = time.time() - 3600
    for p in saved:
        os.utime(p, (an_hour_ago, an_hour_ago))
    res = assert_ok(s.run("-o", "json", "gc", "--grace", "30m"))
    report = json.loads(res.stdout)
    assert report["Format1Leftovers"] == {"Deleted": len(saved), "DeletedBytes": sum(map(len, saved.values())),
                                          "KeptYoung": 0, "KeptNeeded": 0}, report
    assert report["DeletedChunks"] == 0 and report["DeadBytes"] == 0, report  # no snapshot lost anything
    _check_upgraded(s, expected, tmp_path)
