"""Damaged store objects are found by verify, named by snapshot, and make restore fail
cleanly (no target file left behind)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from snapvol_helpers import (BLOCK, Store, assert_error, assert_same_file, block_ids,
                             random_bytes, text_bytes)

# A clear restore error names the snapshot and says what is wrong with the data.
DAMAGE_WORDS = r"corrupt|checksum|damaged|missing|truncat|mismatch|invalid|bad|short"


@dataclass
class TwoVolumes:
    store: Store
    a_img: Path
    a1_img: Path       # copy of volume A as a1 saw it
    b_img: Path
    a1: str            # volume A, first snapshot
    a2: str            # volume A after one block changed (shares the other chunks with a1)
    b1: str            # volume B, disjoint content
    shared: str        # a chunk id referenced by a1 and a2
    only_a2: str       # a chunk id referenced only by a2
    only_b: str        # a chunk id referenced only by b1
    pages_a1: set      # ids of the index pages written by a1's snapshot
    pages_b1: set


@pytest.fixture
def vols(store, tmp_path) -> TwoVolumes:
    s = store
    a = tmp_path / "a.img"
    a.write_bytes(random_bytes(3 * BLOCK, 1) + text_bytes(2 * BLOCK + 999, 2))
    b = tmp_path / "b.img"
    b.write_bytes(text_bytes(2 * BLOCK, 3) + random_bytes(2 * BLOCK + 5, 4))
    ia, ib = block_ids(a), block_ids(b)
    assert not set(ia) & set(ib), "volumes must not share blocks"

    va, vb = s.register(a, name="a"), s.register(b, name="b")
    pages0 = s.stored_ids("page")
    a1 = s.snapshot(va)
    pages_a1 = s.stored_ids("page") - pages0
    a1_img = tmp_path / "a1.img"
    a1_img.write_bytes(a.read_bytes())

    with open(a, "r+b") as f:  # change block 1 of A
        f.seek(BLOCK)
        f.write(random_bytes(BLOCK, 5))
    ia2 = block_ids(a)
    a2 = s.snapshot(va)

    pages1 = s.stored_ids("page")
    b1 = s.snapshot(vb)
    pages_b1 = s.stored_ids("page") - pages1
    assert pages_a1 and pages_b1
    assert s.damaged() == set()
    return TwoVolumes(s, a, a1_img, b, a1, a2, b1, shared=ia[0], only_a2=ia2[1], only_b=ib[0],
                      pages_a1=pages_a1, pages_b1=pages_b1)


def _flip_byte(path: Path, where: float = 0.5):
    """A byte of a whole file (manifest roots; chunks and pages go through Store's
    flip_stored_byte, which finds them in either format)."""
    data = bytearray(path.read_bytes())
    i = int(len(data) * where)
    data[i] ^= 0x5A
    # Keep the mtime and mode: silent bit rot, not a rewrite.
    st = path.stat()
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _assert_restore_fails(v: TwoVolumes, snap: str, tmp_path: Path, what=DAMAGE_WORDS):
    out = tmp_path / f"{snap}.out"
    msg = assert_error(v.store.restore(snap, out), what)
    assert snap in msg, f"the error should name the snapshot: {msg}"
    assert not out.exists(), "a failed restore must not leave a target file"
    partial = Path(str(out) + ".snapvol-partial")
    assert not partial.exists(), f"a failed restore left {partial}"


def _assert_restores(v: TwoVolumes, snap: str, expect: Path, tmp_path: Path):
    out = tmp_path / f"{snap}.ok"
    res = v.store.restore(snap, out)
    assert res.returncode == 0, res.stderr
    assert_same_file(out, expect)


@pytest.mark.parametrize("damage", ["flip_middle", "flip_header", "flip_last_byte", "truncate",
                                    "truncate_to_zero"])
def test_damaged_shared_chunk(vols, tmp_path, damage):
    # Format 2: the bytes of the chunk's entry in its pack; truncating cuts the pack there,
    # which loses the entries after it as well (all of them a1's, so the same snapshots).
    v = vols
    s = v.store
    if damage == "flip_middle":
        s.flip_stored_byte("chunk", v.shared, 0.5)
    elif damage == "flip_header":
        s.flip_stored_byte("chunk", v.shared, 0.0)
    elif damage == "flip_last_byte":
        s.flip_stored_byte("chunk", v.shared, 1.0)
    elif damage == "truncate":
        s.cut_stored("chunk", v.shared, 0.5)
    else:
        s.cut_stored("chunk", v.shared, 0.0)

    assert v.store.damaged() == {v.a1, v.a2}
    assert v.store.damaged(quick=True) == {v.a1, v.a2}

    res = v.store.run("verify")
    assert res.returncode == 1
    damaged_lines = [l for l in res.stdout.splitlines() if l.startswith("DAMAGED")]
    assert any(v.a1 in l for l in damaged_lines), res.stdout
    assert any(v.a2 in l for l in damaged_lines), res.stdout
    assert v.b1 not in res.stdout, res.stdout

    # Only the asked-for snapshots are checked.
    assert v.store.damaged(v.b1) == set()
    assert v.store.damaged(v.a1) == {v.a1}

    _assert_restore_fails(v, v.a1, tmp_path)
    _assert_restore_fails(v, v.a2, tmp_path)
    _assert_restores(v, v.b1, v.b_img, tmp_path)


def test_damaged_chunk_of_one_snapshot(vols, tmp_path):
    v = vols
    v.store.flip_stored_byte("chunk", v.only_a2)
    assert v.store.damaged() == {v.a2}
    assert v.store.damaged(quick=True) == {v.a2}
    _assert_restore_fails(v, v.a2, tmp_path)
    _assert_restores(v, v.a1, v.a1_img, tmp_path)


def test_damaged_chunk_of_other_volume(vols, tmp_path):
    v = vols
    v.store.flip_stored_byte("chunk", v.only_b)
    assert v.store.damaged() == {v.b1}
    _assert_restore_fails(v, v.b1, tmp_path)
    _assert_restores(v, v.a2, v.a_img, tmp_path)


def test_deleted_chunk(vols, tmp_path):
    v = vols
    # Format 2: the pack holding it is lost (with a1's other chunks: the same snapshots).
    v.store.lose_stored("chunk", v.shared)
    assert v.store.damaged() == {v.a1, v.a2}
    assert v.store.damaged(quick=True) == {v.a1, v.a2}
    _assert_restore_fails(v, v.a1, tmp_path, r"missing|not found|no such")
    _assert_restores(v, v.b1, v.b_img, tmp_path)


@pytest.mark.parametrize("damage", ["delete", "flip"])
def test_damaged_index_page(vols, tmp_path, damage):
    v = vols
    page = sorted(v.pages_a1)[0]
    if damage == "delete":
        v.store.lose_stored("page", page)  # format 2: a1's tree pack
    else:
        v.store.flip_stored_byte("page", page)
    damaged = v.store.damaged()
    assert v.a1 in damaged
    assert v.b1 not in damaged
    _assert_restore_fails(v, v.a1, tmp_path, DAMAGE_WORDS + r"|not found")
    _assert_restores(v, v.b1, v.b_img, tmp_path)


def test_damaged_manifest_root(vols, tmp_path):
    v = vols
    _flip_byte(v.store.store / "manifests" / v.a1)
    assert v.store.damaged() == {v.a1}
    _assert_restore_fails(v, v.a1, tmp_path, DAMAGE_WORDS + r"|manifest")
    _assert_restores(v, v.a2, v.a_img, tmp_path)


def test_gc_does_not_make_damage_worse(vols, tmp_path):
    # A damaged object is still referenced: gc must neither delete live objects nor crash.
    v = vols
    v.store.flip_stored_byte("chunk", v.only_b)
    chunks = v.store.stored("chunk")
    v.store.gc()
    assert v.store.stored("chunk") == chunks
    assert v.store.damaged() == {v.b1}


def test_verify_says_how_many_problems_it_left_out(vols):
    """verify prints at most 5 problems of a snapshot, then how many more it found."""
    v = vols
    chunks = sorted({i for i in block_ids(v.a1_img) if i})
    assert len(chunks) >= 6, "the volume needs more distinct blocks than verify prints"
    for c in chunks:
        v.store.flip_stored_byte("chunk", c)
    res = v.store.run("verify", "--snapshot-id", v.a1)
    assert res.returncode == 1, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"DAMAGED {v.a1}:"))
    assert f"{len(chunks)} bad objects" in lines[start]
    problems = lines[start + 1:start + 6]
    assert len(problems) == 5 and all(p.startswith("  chunk ") for p in problems), lines
    assert lines[start + 6] == f"  and {len(chunks) - 5} more", lines
    # JSON keeps the count and the first 5.
    rc, report, _ = v.store.verify(v.a1)
    assert rc == 1
    (d,) = report["Damaged"]
    assert d["BadObjects"] == len(chunks) and len(d["Problems"]) == 5
