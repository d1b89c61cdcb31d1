"""Byte-identical round trips through the CLI: snapshot create → restore."""

from __future__ import annotations

import re
import stat

import pytest

from snapvol_helpers import (BLOCK, HEX64, Store, assert_error, assert_same_file, block_ids,
                             genvol_create, random_bytes, text_bytes,
                             write_sparse)

MiB = 1024 * 1024


def _sparse_with_partial_blocks(path):
    # Holes everywhere except: a few bytes inside block 3, a run straddling the boundary of
    # blocks 6/7, a whole block of random data, and data in the last (partial) block.
    size = 12 * BLOCK + 77_777
    return write_sparse(path, size, [
        (3 * BLOCK + 1000, random_bytes(5000, 1)),
        (7 * BLOCK - 4096, text_bytes(8192, 2)),
        (9 * BLOCK, random_bytes(BLOCK, 3)),
        (size - 100, b"tail" * 25),
    ])


def _real_zero_runs(path):
    # Zero runs written as real (allocated) zeros between random and text data, including a
    # whole zero block, a zero run that straddles blocks and a zero tail in the last block.
    data = (random_bytes(BLOCK + 300, 4) + bytes(3 * BLOCK) + text_bytes(BLOCK // 2, 5)
            + bytes(BLOCK + 12_345) + random_bytes(1000, 6) + bytes(40_000))
    path.write_bytes(data)
    return path


def _compressible(path):
    path.write_bytes(text_bytes(6 * MiB + 777, 7))
    return path


def _random(path):
    path.write_bytes(random_bytes(5 * MiB + 12_345, 8))
    return path


def _empty(path):
    path.write_bytes(b"")
    return path


def _one_block(path):
    path.write_bytes(random_bytes(BLOCK, 9))
    return path


def _one_block_plus_one(path):
    path.write_bytes(random_bytes(BLOCK + 1, 10))
    return path


def _smaller_than_a_block(path):
    path.write_bytes(text_bytes(1000, 11))
    return path


def _all_zero_real(path):
    path.write_bytes(bytes(3 * BLOCK + 5))
    return path


def _all_hole(path):
    return write_sparse(path, 5 * BLOCK + 3, [])


def _genvol(path):
    return genvol_create(path, "16M", 21)


def _genvol_odd(path):
    # genvol rounds nothing: an image that is not a multiple of the block size.
    return genvol_create(path, str(48 * BLOCK + 4097), 22)


SHAPES = {
    "sparse_partial_blocks": _sparse_with_partial_blocks,
    "real_zero_runs": _real_zero_runs,
    "compressible": _compressible,
    "random": _random,
    "empty": _empty,
    "one_block": _one_block,
    "one_block_plus_one": _one_block_plus_one,
    "smaller_than_a_block": _smaller_than_a_block,
    "all_zero_real": _all_zero_real,
    "all_hole": _all_hole,
    "genvol_16M": _genvol,
    "genvol_odd_size": _genvol_odd,
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_roundtrip(store, tmp_path, shape):
    src = SHAPES[shape](tmp_path / "vol.img")
    size = src.stat().st_size
    vol = store.register(src)
    snap = store.snapshot(vol, "--description", f"shape {shape}")
    info = store.show(snap)
    assert info["State"] == "completed"
    assert info["VolumeSizeBytes"] == size
    assert info["TotalBlocks"] == (size + BLOCK - 1) // BLOCK

    out = tmp_path / "restored.img"
    res = store.restore(snap, out)
    assert res.returncode == 0, res.stderr
    assert_same_file(out, src)
    assert not (tmp_path / "restored.img.snapvol-partial").exists()

    # Only the blocks with data are stored: one chunk per distinct non-zero block.
    expect = {b for b in block_ids(src) if b is not None}
    assert store.stored_ids("chunk") == expect
    assert store.damaged() == set()


def test_real_zero_source_is_really_allocated(tmp_path):
    # Guard for the test above: the "real zeros" volume must not be sparse itself.
    src = _real_zero_runs(tmp_path / "z.img")
    st = src.stat()
    assert st.st_blocks * 512 >= st.st_size - 4096


def test_restore_keeps_holes(store, tmp_path):
    size = 256 * MiB
    extents = [(0, random_bytes(64 * 1024, 30)), (100 * MiB + 123, text_bytes(300_000, 31)),
               (size - BLOCK, random_bytes(BLOCK, 32))]
    src = write_sparse(tmp_path / "sparse.img", size, extents)
    data_blocks = sum(1 for b in block_ids(src) if b is not None)
    assert data_blocks == 3
    vol = store.register(src)
    snap = store.snapshot(vol)
    out = tmp_path / "out.img"
    res = store.restore(snap, out)
    assert res.returncode == 0, res.stderr
    assert_same_file(out, src)
    allocated = out.stat().st_blocks * 512
    # At most the blocks that hold data (plus filesystem slack), not the 256 MiB.
    assert allocated <= data_blocks * BLOCK + 1 * MiB, (
        f"restored file allocates {allocated} bytes for {data_blocks} data blocks of a {size}-byte volume")


def test_zero_blocks_written_as_data_restore_as_holes(store, tmp_path):
    # A volume full of allocated zeros restores as a sparse file with the same content.
    src = tmp_path / "zeros.img"
    src.write_bytes(bytes(16 * MiB))
    vol = store.register(src)
    snap = store.snapshot(vol)
    assert store.stored_ids("chunk") == set()
    out = tmp_path / "out.img"
    assert store.restore(snap, out).returncode == 0
    assert_same_file(out, src)
    assert out.stat().st_blocks * 512 <= 1 * MiB


def test_restore_refuses_existing_target_without_force(store, tmp_path):
    src = tmp_path / "vol.img"
    src.write_bytes(random_bytes(BLOCK + 3, 40))
    snap = store.snapshot(store.register(src))

    target = tmp_path / "target.img"
    target.write_bytes(b"keep me" * 1000 + random_bytes(3 * BLOCK, 41))  # larger than the volume
    before = (target.read_bytes(), target.stat().st_mtime_ns)
    res = store.restore(snap, target)
    assert_error(res, r"exists|--force")
    assert "--force" in res.stderr, "the error should say how to overwrite"
    assert (target.read_bytes(), target.stat().st_mtime_ns) == before
    assert not (tmp_path / "target.img.snapvol-partial").exists()

    res = store.restore(snap, target, force=True)
    assert res.returncode == 0, res.stderr
    # Replaced entirely: same size as the volume, no tail of the old content.
    assert_same_file(target, src)


def test_restore_force_onto_nonexisting_target(store, tmp_path):
    src = tmp_path / "vol.img"
    src.write_bytes(text_bytes(2 * BLOCK + 9, 42))
    snap = store.snapshot(store.register(src))
    out = tmp_path / "new.img"
    assert store.restore(snap, out, force=True).returncode == 0
    assert_same_file(out, src)


def _init_encrypted(tmp_path) -> tuple[Store, str]:
    s = Store(tmp_path / "enc")
    res = s.init("--encrypt")
    keys = re.findall(r"\b[0-9a-f]{64}\b", res.stderr)
    assert len(keys) == 1, "the key is printed once on stderr\n" + res.stderr
    assert re.search(r"back.*up|backup", res.stderr, re.IGNORECASE), res.stderr
    assert keys[0] not in res.stdout, "the key belongs on stderr only"
    return s, keys[0]


def test_encrypted_roundtrip(tmp_path):
    s, key = _init_encrypted(tmp_path)
    key_file = s.dir / "store.key"
    st = key_file.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert key_file.read_text().strip() == key

    secret = random_bytes(BLOCK, 50)
    src = tmp_path / "vol.img"
    with open(src, "wb") as f:
        f.write(genvol_create(tmp_path / "g.img", "8M", 51).read_bytes())
        f.write(secret)
        f.write(text_bytes(BLOCK + 4321, 52))
    vol = s.register(src)
    res = s.ok("snapshot", "create", "--volume-id", vol)
    snap = res.stdout.strip()
    assert key not in res.stdout + res.stderr, "the key is printed only by init"
    assert s.show(snap)["Encrypted"] is True

    out = tmp_path / "out.img"
    res = s.restore(snap, out)
    assert res.returncode == 0, res.stderr
    assert_same_file(out, src)
    assert s.damaged() == set()

    # Chunk ids are keyed (HMAC), not the plain SHA-256 of the block, and no stored object
    # contains a run of the plaintext.
    names = s.stored_ids("chunk")
    assert names and all(HEX64.match(n) for n in names)
    assert not names & {b for b in block_ids(src) if b}
    probe = secret[1000:1064]
    for p in s.store.rglob("*"):
        if p.is_file():
            assert probe not in p.read_bytes(), f"{p} holds plaintext"


def _encrypted_with_snapshot(tmp_path):
    s, key = _init_encrypted(tmp_path)
    src = tmp_path / "vol.img"
    src.write_bytes(random_bytes(2 * BLOCK + 100, 60))
    snap = s.snapshot(s.register(src))
    return s, key, src, snap


def test_wrong_key_is_refused(tmp_path):
    s, key, src, snap = _encrypted_with_snapshot(tmp_path)
    other = "ab" * 32 if key != "ab" * 32 else "cd" * 32
    (s.dir / "store.key").write_text(other + "\n")
    out = tmp_path / "out.img"
    assert_error(s.restore(snap, out), r"key")
    assert not out.exists()
    assert not (tmp_path / "out.img.snapvol-partial").exists()
    assert_error(s.run("snapshot", "list"), r"key")
    assert_error(s.run("verify"), r"key")

    # Nothing was damaged by the failed attempts.
    (s.dir / "store.key").write_text(key + "\n")
    assert s.restore(snap, out).returncode == 0
    assert_same_file(out, src)


def test_missing_key_is_refused(tmp_path):
    s, key, src, snap = _encrypted_with_snapshot(tmp_path)
    (s.dir / "store.key").unlink()
    out = tmp_path / "out.img"
    assert_error(s.restore(snap, out), r"key")
    assert not out.exists()
    assert_error(s.run("snapshot", "list"), r"key")
    assert_error(s.run("volume", "list"), r"key")


def test_malformed_key_file_is_refused(tmp_path):
    s, key, src, snap = _encrypted_with_snapshot(tmp_path)
    (s.dir / "store.key").write_text("not a key\n")
    out = tmp_path / "out.img"
    assert_error(s.restore(snap, out), r"key")
    assert not out.exists()


@pytest.mark.parametrize("block_size", [4096, 1 << 20])
def test_roundtrip_other_block_sizes(tmp_path, block_size):
    s = Store(tmp_path / "data")
    s.init("--block-size", str(block_size))
    src = write_sparse(tmp_path / "vol.img", 3 * MiB + 4097, [
        (0, random_bytes(10_000, 70)), (MiB + 5, text_bytes(MiB, 71)),
        (3 * MiB, random_bytes(4097, 72))])
    snap = s.snapshot(s.register(src))
    info = s.show(snap)
    assert info["BlockSize"] == block_size
    assert info["TotalBlocks"] == (src.stat().st_size + block_size - 1) // block_size
    assert s.stored_ids("chunk") == {b for b in block_ids(src, block_size) if b}
    out = tmp_path / "out.img"
    assert s.restore(snap, out).returncode == 0
    assert_same_file(out, src)


def test_store_format_2_packs_roundtrip_incremental_gc_and_verify(tmp_path):
    """A format-2 store through the CLI: chunks live in packs (no chunk files), an incremental
    stores only what changed, gc after a deletion frees space, and every survivor restores."""
    s = Store(tmp_path / "packed")
    s.init("--store-format", "2", "--pack-size", "4")
    src = genvol_create(tmp_path / "vol.img", "48M", 61)
    vol = s.register(src)
    first = s.snapshot(vol)
    assert s.chunk_files() == set() and s.index_files() == set()
    packs = s.object_files("packs")
    distinct = {b for b in block_ids(src) if b is not None}
    assert 1 <= len(packs) <= len(distinct) // 4, (len(packs), len(distinct))
    assert s.object_files("packindex")

    # Change 8 blocks: the incremental adds at most a pack or two.
    with open(src, "r+b") as f:
        for i in range(8):
            f.seek(i * 11 * BLOCK + 100)
            f.write(random_bytes(4096, 70 + i))
    second = s.snapshot(vol)
    assert len(s.object_files("packs")) <= len(packs) + 2
    out = tmp_path / "second.img"
    assert s.restore(second, out).returncode == 0
    assert_same_file(out, src)

    # Delete the first: gc rewrites or deletes packs holding its dead blocks; the second still
    # restores byte-identical and verifies.
    before = sum(p.stat().st_size for p in s.object_files("packs"))
    s.delete(first)
    res = s.gc()
    after = sum(p.stat().st_size for p in s.object_files("packs"))
    assert after < before, res.stdout
    out2 = tmp_path / "second-again.img"
    assert s.restore(second, out2).returncode == 0
    assert_same_file(out2, src)
    assert s.damaged() == set()


def test_store_format_is_refused_when_unknown(tmp_path):
    s = Store(tmp_path / "bad")
    res = s.run("init", "--store-format", "3")
    assert res.returncode != 0
    assert "store-format" in res.stderr
    assert not (tmp_path / "bad" / "store").exists()
    # A pack size means nothing to a format-1 store: refused, not ignored.
    for flags in (["--pack-size", "8"], ["--store-format", "1", "--pack-size", "8"]):
        res = s.run("init", *flags)
        assert res.returncode != 0, flags
        assert "--pack-size applies to --store-format 2 only" in res.stderr, res.stderr
        assert not (tmp_path / "bad" / "store").exists()
