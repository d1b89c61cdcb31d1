"""Incremental snapshots cost what changed, and deleting + gc keeps what is still used."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from snapvol_helpers import (BLOCK, Store, assert_same_file, block_ids, genvol_create,
                             genvol_mutate, random_bytes)


@dataclass
class Lineage:
    store: Store
    volume: str
    image: Path        # the volume, mutated after the first snapshot
    original: Path     # a copy of the image as the first snapshot saw it
    first: str
    second: str
    chunks_after_first: int
    new_chunks: int
    new_pages: int
    changed: int       # blocks whose content differs between original and image


def _changed_blocks(a: Path, b: Path) -> int:
    ia, ib = block_ids(a), block_ids(b)
    assert len(ia) == len(ib)
    return sum(1 for x, y in zip(ia, ib) if x != y)


@pytest.fixture
def lineage(store, tmp_path) -> Lineage:
    image = genvol_create(tmp_path / "vol.img", "64M", 7)
    original = tmp_path / "original.img"
    shutil.copyfile(image, original)
    vol = store.register(image, name="root")

    first = store.snapshot(vol, "--description", "full")
    chunks1 = store.stored_ids("chunk")
    pages1 = store.stored_ids("page")
    assert chunks1 == {b for b in block_ids(original) if b}

    genvol_mutate(image, 1, seed=99)
    changed = _changed_blocks(original, image)
    assert changed >= 1, "mutate changed nothing; the test would prove nothing"

    second = store.snapshot(vol, "--description", "incremental")
    chunks2 = store.stored_ids("chunk")
    pages2 = store.stored_ids("page")
    assert chunks1 <= chunks2 and pages1 <= pages2
    return Lineage(store, vol, image, original, first, second, len(chunks1),
                   len(chunks2) - len(chunks1), len(pages2 - pages1), changed)


def test_incremental_writes_only_changed_blocks(lineage, tmp_path):
    L = lineage
    s = L.store
    total_blocks = (64 << 20) // BLOCK
    # ~1% of the blocks changed; the second snapshot stores about that many chunks.
    assert L.changed <= total_blocks * 0.02
    assert L.changed <= L.new_chunks <= L.changed + 1, (
        f"{L.new_chunks} new chunks for {L.changed} changed blocks")
    assert L.new_chunks * 10 < L.chunks_after_first
    # The block map writes new pages only where blocks changed.
    assert 1 <= L.new_pages <= 3, f"{L.new_pages} new index pages"

    info1, info2 = s.show(L.first), s.show(L.second)
    assert info2["ParentSnapshotId"] == L.first
    assert info1["ParentSnapshotId"] == ""
    assert info2["ChangedBlocks"] == L.changed
    assert info2["StoredBytes"] < info1["StoredBytes"] / 10
    assert info2["StoredBytes"] <= L.changed * (BLOCK + 4096) + 64 * 1024

    out2 = tmp_path / "second.out"
    assert s.restore(L.second, out2).returncode == 0
    assert_same_file(out2, L.image)
    out1 = tmp_path / "first.out"
    assert s.restore(L.first, out1).returncode == 0
    assert_same_file(out1, L.original)


def test_unchanged_volume_stores_nothing_new(lineage, tmp_path):
    L = lineage
    s = L.store
    chunks, pages = s.stored_ids("chunk"), s.stored_ids("page")
    third = s.snapshot(L.volume)
    assert s.stored_ids("chunk") == chunks
    assert s.stored_ids("page") == pages, "an unchanged volume should reuse its parent's block map"
    assert s.show(third)["ChangedBlocks"] == 0
    out = tmp_path / "third.out"
    assert s.restore(third, out).returncode == 0
    assert_same_file(out, L.image)


def test_full_flag_reads_everything_but_dedups(lineage, tmp_path):
    L = lineage
    s = L.store
    chunks = s.stored_ids("chunk")
    full = s.snapshot(L.volume, "--full")
    assert s.show(full)["ParentSnapshotId"] == ""
    assert s.stored_ids("chunk") == chunks, "a --full snapshot of unchanged data stores no new chunks"
    out = tmp_path / "full.out"
    assert s.restore(full, out).returncode == 0
    assert_same_file(out, L.image)


def test_delete_parent_then_gc_keeps_child(lineage, tmp_path):
    L = lineage
    s = L.store
    s.delete(L.first)
    assert L.first not in s.snapshot_map()
    s.gc()

    # Exactly the chunks of the surviving snapshot remain; the replaced blocks are gone.
    live = {b for b in block_ids(L.image) if b}
    assert s.stored_ids("chunk") == live
    assert {p.name for p in s.object_files("manifests")} == {L.second}
    assert s.object_files("deleted") == set()

    out = tmp_path / "second.out"
    assert s.restore(L.second, out).returncode == 0
    assert_same_file(out, L.image)
    assert s.damaged() == set()
    # The deleted snapshot does not come back.
    res = s.restore(L.first, tmp_path / "first.out")
    assert res.returncode == 1
    assert not (tmp_path / "first.out").exists()


def test_delete_child_keeps_parent(lineage, tmp_path):
    L = lineage
    s = L.store
    s.delete(L.second)
    s.gc()
    assert s.stored_ids("chunk") == {b for b in block_ids(L.original) if b}
    out = tmp_path / "first.out"
    assert s.restore(L.first, out).returncode == 0
    assert_same_file(out, L.original)
    assert s.damaged() == set()


def test_delete_all_then_gc_empties_the_store(lineage):
    L = lineage
    s = L.store
    # A dry run reports but deletes nothing.
    s.delete(L.first)
    s.delete(L.second)
    before = s.data_state()
    s.gc("--dry-run")
    assert s.data_state() == before
    s.gc()
    assert s.stored_ids("chunk") == set() and s.stored_ids("page") == set()
    assert s.data_files() == set()
    assert s.object_files("manifests") == set()
    assert s.snapshots() == []
    assert s.damaged() == set()


def test_gc_default_grace_keeps_young_garbage(lineage):
    L = lineage
    s = L.store
    s.delete(L.first)
    s.delete(L.second)
    before = s.data_state(with_index=False)
    s.ok("gc")  # default grace of 15 minutes: everything here is younger
    assert s.data_state(with_index=False) == before


def test_volume_grows_and_shrinks(store, tmp_path):
    s = store
    img = tmp_path / "vol.img"
    img.write_bytes(random_bytes(3 * BLOCK, 1))
    vol = s.register(img)
    gens = []
    for step, change in enumerate([
            lambda: img.write_bytes(img.read_bytes() + random_bytes(2 * BLOCK + 1234, 2)),
            lambda: os.truncate(img, BLOCK + 999),
            lambda: os.truncate(img, 4 * BLOCK),          # grows by a hole
            lambda: img.write_bytes(b""),
            lambda: img.write_bytes(random_bytes(BLOCK // 2, 3))]):
        snap = s.snapshot(vol)
        copy = tmp_path / f"gen{step}.img"
        shutil.copyfile(img, copy)
        gens.append((snap, copy))
        change()
    snap = s.snapshot(vol)
    gens.append((snap, img))
    for snap, copy in gens:
        info = s.show(snap)
        assert info["VolumeSizeBytes"] == copy.stat().st_size
        out = tmp_path / f"{snap}.out"
        assert s.restore(snap, out).returncode == 0
        assert_same_file(out, copy)
    assert s.damaged() == set()


def test_identical_volumes_share_chunks(store, tmp_path):
    s = store
    a = genvol_create(tmp_path / "a.img", "16M", 3)
    b = tmp_path / "b.img"
    shutil.copyfile(a, b)
    s.snapshot(s.register(a))
    chunks = s.stored_ids("chunk")
    snap_b = s.snapshot(s.register(b))
    assert s.stored_ids("chunk") == chunks, "a second copy of the same data stores no new chunks"
    out = tmp_path / "b.out"
    assert s.restore(snap_b, out).returncode == 0
    assert_same_file(out, b)


def test_encrypted_incremental_and_gc(tmp_path):
    s = Store(tmp_path / "enc")
    s.init("--encrypt")
    image = genvol_create(tmp_path / "vol.img", "32M", 8)
    original = tmp_path / "original.img"
    shutil.copyfile(image, original)
    vol = s.register(image)
    first = s.snapshot(vol)
    n1 = len(s.stored_ids("chunk"))
    assert n1 == len({b for b in block_ids(original) if b})
    genvol_mutate(image, 5, seed=5)
    changed = _changed_blocks(original, image)
    second = s.snapshot(vol)
    n2 = len(s.stored_ids("chunk"))
    assert changed <= n2 - n1 <= changed + 1
    s.delete(first)
    s.gc_every_dead_object()
    assert len(s.stored_ids("chunk")) == len({b for b in block_ids(image) if b})
    out = tmp_path / "second.out"
    assert s.restore(second, out).returncode == 0
    assert_same_file(out, image)
    assert s.damaged() == set()
    s.delete(second)
    s.gc()
    assert s.stored_ids("chunk") == set() and s.stored_ids("page") == set()
    assert s.data_files() == set()
