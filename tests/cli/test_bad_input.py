"""Bad input gets a clear one-line error and exit 1, never a hang, a crash or a change to
stored data."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import pytest

from snapvol_helpers import (BLOCK, Store, assert_error, assert_same_file, dir_state,
                             random_bytes, run, text_bytes, user_tags, CUT_TAGS)

MiB = 1024 * 1024
UNKNOWN_SNAP = "snap-0123456789abcdef0"
UNKNOWN_VOL = "vol-0123456789abcdef0"


@pytest.fixture
def populated(store, tmp_path):
    """A store with one volume and one snapshot of it."""
    img = tmp_path / "vol.img"
    img.write_bytes(random_bytes(2 * BLOCK + 17, 1))
    vol = store.register(img, name="v")
    snap = store.snapshot(vol, "--description", "base", "--tag", "Name=base")
    return store, vol, snap, img


# ---- the data dir ----

@pytest.mark.parametrize("cmd", [["init"], ["volume", "list"], ["snapshot", "list"], ["verify"],
                                 ["gc"], ["catalog", "rebuild"],
                                 ["snapshot", "show", "--snapshot-id", UNKNOWN_SNAP]])
def test_missing_data_dir(tmp_path, cmd):
    res = run(cmd, timeout=30, cwd=tmp_path)
    assert_error(res, r"--data-dir")
    assert "SNAPVOL_DATA_DIR" in res.stderr
    assert list(tmp_path.iterdir()) == [], "nothing may be created in the working directory"


def test_data_dir_from_environment(tmp_path):
    d = tmp_path / "envdir"
    assert run(["init"], env={"SNAPVOL_DATA_DIR": str(d)}).returncode == 0
    assert (d / "store" / "config").is_file()
    res = run(["volume", "list", "-o", "json"], env={"SNAPVOL_DATA_DIR": str(d)})
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == {"Volumes": []}


@pytest.mark.parametrize("kind", ["nonexistent", "empty_dir"])
@pytest.mark.parametrize("cmd", [["volume", "list"], ["snapshot", "list"], ["verify"], ["gc"],
                                 ["volume", "register", "--path", "/etc/hostname"],
                                 ["restore", "--snapshot-id", UNKNOWN_SNAP, "--to", "OUT"]])
def test_uninitialised_data_dir(tmp_path, kind, cmd):
    d = tmp_path / "dd"
    if kind == "empty_dir":
        d.mkdir()
    cmd = [str(tmp_path / "out.img") if a == "OUT" else a for a in cmd]
    res = run(["--data-dir", d, *cmd])
    assert_error(res, r"snapvol init")
    if kind == "nonexistent":
        assert not d.exists(), "opening must not create the data dir"
    else:
        assert list(d.iterdir()) == [], "opening must not create files in an uninitialised dir"
    assert not (tmp_path / "out.img").exists()


@pytest.mark.parametrize("flags", [[], ["--encrypt"]])
def test_init_twice(tmp_path, flags):
    s = Store(tmp_path / "data")
    s.init(*flags)
    img = tmp_path / "v.img"
    img.write_bytes(random_bytes(BLOCK, 2))
    s.snapshot(s.register(img))
    before = dir_state(s.dir)
    for again in ([], ["--encrypt"], ["--block-size", "4096"]):
        res = s.run("init", *again)
        assert_error(res, r"already")
        assert dir_state(s.dir) == before, f"init {again} on an initialised dir changed it"
        assert "WARNING" not in res.stderr and "key" not in res.stdout


@pytest.mark.parametrize("bs", ["1000", "3000", "2048", str(32 * MiB), "0"])
def test_init_bad_block_size(tmp_path, bs):
    s = Store(tmp_path / "data")
    assert_error(s.run("init", "--block-size", bs), r"block size")
    assert not (s.dir / "store" / "config").exists()
    s.init()  # a failed init does not get in the way of a good one
    assert s.volumes() == []


def test_failed_encrypted_init_leaves_no_key(tmp_path):
    # A failed init must not leave a key file behind: nobody was told to back it up, and
    # it does not belong to any store.
    s = Store(tmp_path / "data")
    assert_error(s.run("init", "--encrypt", "--block-size", "1000"), r"block size")
    assert not (s.dir / "store.key").exists(), "failed init left DIR/store.key behind"


def test_damaged_catalog_is_reported_and_rebuild_recovers(populated, tmp_path):
    s, vol, snap, img = populated
    (s.dir / "catalog.db").write_bytes(b"this is not a database\n" * 10)
    for f in ("catalog.db-wal", "catalog.db-shm"):
        (s.dir / f).unlink(missing_ok=True)
    assert_error(s.run("snapshot", "list"), r"catalog.*(damaged|corrupt)|rebuild")
    s.ok("catalog", "rebuild")
    assert set(s.snapshot_map()) == {snap}
    out = tmp_path / "out.img"
    assert s.restore(snap, out).returncode == 0
    assert_same_file(out, img)


def test_bad_store_config(populated, tmp_path):
    s, vol, snap, img = populated
    (s.store / "config").write_text("{ not json")
    out = tmp_path / "out.img"
    assert_error(s.restore(snap, out), r"config")
    assert not out.exists()


# ---- volumes ----

def _assert_no_volume_added(s: Store, before: list):
    assert s.volumes() == before


def test_register_nonexistent_path(populated):
    s, *_ = populated
    before = s.volumes()
    msg = assert_error(s.run("volume", "register", "--path", "/nonexistent/disk.img"))
    assert "/nonexistent/disk.img" in msg
    assert "No such file" in msg or "not found" in msg.lower() or "does not exist" in msg
    _assert_no_volume_added(s, before)


def test_register_directory(populated, tmp_path):
    s, *_ = populated
    before = s.volumes()
    assert_error(s.run("volume", "register", "--path", tmp_path), r"not a regular file|directory")
    _assert_no_volume_added(s, before)


def test_register_character_device(populated):
    # /dev/null opens fine but is neither a regular file nor a block device.
    s, *_ = populated
    before = s.volumes()
    assert_error(s.run("volume", "register", "--path", "/dev/null"),
                 r"not a regular file or a block device")
    _assert_no_volume_added(s, before)


def test_register_fifo_is_refused_without_hanging(populated, tmp_path):
    # A FIFO with no writer: open(O_RDONLY) blocks forever unless the tool checks the file
    # type first (or opens with O_NONBLOCK).  Root can open anything, so this (and the
    # socket below) is the "device root cannot read" case.
    s, *_ = populated
    before = s.volumes()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    try:
        res = s.run("volume", "register", "--path", fifo, timeout=10)
    except subprocess.TimeoutExpired:
        pytest.fail("`snapvol volume register --path FIFO` hung (> 10 s) instead of refusing it")
    assert_error(res, r"not a regular file or a block device")
    _assert_no_volume_added(s, before)


def test_register_socket(populated, tmp_path):
    s, *_ = populated
    before = s.volumes()
    path = tmp_path / "sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        res = s.run("volume", "register", "--path", path, timeout=15)
    finally:
        sock.close()
    assert_error(res, r"not a regular file|block device|no such device")
    _assert_no_volume_added(s, before)


def test_snapshot_of_vanished_volume(populated, tmp_path):
    s, vol, snap, img = populated
    img2 = tmp_path / "gone.img"
    img2.write_bytes(random_bytes(BLOCK, 3))
    vol2 = s.register(img2)
    img2.unlink()
    before = s.snapshot_map()
    msg = assert_error(s.run("snapshot", "create", "--volume-id", vol2), str(img2))
    assert vol2 in msg
    assert s.snapshot_map() == before


# ---- unknown and malformed ids ----

@pytest.mark.parametrize("snap_id", [UNKNOWN_SNAP, "snap-xyz", "bogus", "", "vol-0123456789abcdef0",
                                     "../../etc/passwd", "snap-0123456789ABCDEF0"])
@pytest.mark.parametrize("cmd", ["show", "delete", "restore"])
def test_unknown_or_malformed_snapshot_id(populated, tmp_path, cmd, snap_id):
    s, vol, snap, img = populated
    before = dir_state(s.store)
    snaps = s.snapshot_map()
    out = tmp_path / "out.img"
    if cmd == "restore":
        res = s.run("restore", "--snapshot-id", snap_id, "--to", out)
    else:
        res = s.run("snapshot", cmd, "--snapshot-id", snap_id)
    assert_error(res, r"not found|not a snapshot id|no such|unknown|does not exist|no manifest")
    assert not out.exists()
    assert dir_state(s.store) == before
    assert s.snapshot_map() == snaps


@pytest.mark.parametrize("vol_id", [UNKNOWN_VOL, "vol-", "bogus", UNKNOWN_SNAP])
def test_snapshot_unknown_volume(populated, vol_id):
    s, vol, snap, img = populated
    before = s.snapshot_map()
    chunks = s.chunk_files()
    assert_error(s.run("snapshot", "create", "--volume-id", vol_id), r"not found|not a volume id")
    assert s.snapshot_map() == before
    assert s.chunk_files() == chunks


@pytest.mark.parametrize("snap_id", [UNKNOWN_SNAP, "bogus"])
def test_verify_unknown_snapshot_is_not_found_not_damaged(populated, snap_id):
    # A mistyped id is a usage problem, not evidence of damage: verify must not report a
    # snapshot that does not exist as DAMAGED (monitoring alarms on "Damaged").
    s, vol, snap, img = populated
    res = s.run("verify", "--snapshot-id", snap_id)
    assert "DAMAGED" not in res.stdout, res.stdout
    assert_error(res, r"not found|not a snapshot id|no such|unknown|does not exist")


def test_restore_into_missing_directory(populated, tmp_path):
    s, vol, snap, img = populated
    out = tmp_path / "no" / "such" / "dir" / "out.img"
    assert_error(s.restore(snap, out), r"no such file|not exist|not found")
    assert not (tmp_path / "no").exists()


def test_restore_onto_a_directory(populated, tmp_path):
    s, vol, snap, img = populated
    d = tmp_path / "adir"
    d.mkdir()
    (d / "keep").write_text("x")
    assert_error(s.restore(snap, d), r"directory")
    assert_error(s.restore(snap, d, force=True), r"directory")
    assert [p.name for p in d.iterdir()] == ["keep"]


def test_deleted_snapshot_is_gone(populated, tmp_path):
    s, vol, snap, img = populated
    s.delete(snap)
    out = tmp_path / "out.img"
    assert_error(s.restore(snap, out), r"not found|no manifest|deleted")
    assert not out.exists()
    assert_error(s.run("snapshot", "show", "--snapshot-id", snap), r"not found")
    assert_error(s.run("snapshot", "delete", "--snapshot-id", snap), r"not found")


# ---- tags ----

@pytest.mark.parametrize("tags", [["novalue"], ["=value"], ["Name=ok", "broken"],
                                  ["aws:created=1"], ["AWS:Name=x"], ["Aws:x="],
                                  ["k" * 129 + "=v"], ["k=" + "v" * 257],
                                  ["Name=a", "Name=b"],
                                  [f"k{i}=v" for i in range(51)]])
def test_bad_tags_are_rejected(populated, tags):
    s, vol, snap, img = populated
    before = s.snapshot_map()
    chunks, pages = s.chunk_files(), s.index_files()
    args = []
    for t in tags:
        args += ["--tag", t]
    img.write_bytes(random_bytes(2 * BLOCK + 17, 99))  # there would be work to do
    assert_error(s.run("snapshot", "create", "--volume-id", vol, *args), r"tag")
    assert s.snapshot_map() == before, "a rejected snapshot must not be recorded"
    assert s.chunk_files() == chunks and s.index_files() == pages
    assert s.object_files("manifests") == {s.store / "manifests" / snap}


@pytest.mark.parametrize("tag,key,value", [("k=a=b", "k", "a=b"), ("Empty=", "Empty", ""),
                                           ("Name=ünïcødé ✓", "Name", "ünïcødé ✓"),
                                           ("k" * 128 + "=v", "k" * 128, "v"),
                                           ("xaws:k=v", "xaws:k", "v")])
def test_good_tags_are_kept(populated, tag, key, value):
    s, vol, snap, img = populated
    new = s.snapshot(vol, "--tag", tag)
    tags = s.show(new)["Tags"]
    assert user_tags(tags) == [{"Key": key, "Value": value}]
    assert {t["Key"] for t in tags} - {key} == set(CUT_TAGS)


# ---- store format version ----

OPENING_COMMANDS = [
    ["volume", "list"],
    ["volume", "register", "--path", "IMG"],
    ["snapshot", "list"],
    ["snapshot", "show", "--snapshot-id", "SNAP"],
    ["snapshot", "create", "--volume-id", "VOL"],
    ["snapshot", "delete", "--snapshot-id", "SNAP"],
    ["restore", "--snapshot-id", "SNAP", "--to", "OUT"],
    ["verify"],
    ["verify", "--quick"],
    ["gc", "--grace", "0"],
    ["catalog", "rebuild"],
]


@pytest.mark.parametrize("cmd", OPENING_COMMANDS, ids=lambda c: "_".join(c[:2]))
def test_newer_store_format_is_refused(populated, tmp_path, cmd):
    s, vol, snap, img = populated
    cfg_path = s.store / "config"
    cfg = json.loads(cfg_path.read_text())
    assert cfg["version"] == int(os.environ.get("SNAPVOL_STORE_FORMAT") or 1)  # the format asked for
    cfg["version"] = 99
    cfg_path.write_text(json.dumps(cfg))
    before = dir_state(s.dir)
    out = tmp_path / "out.img"
    subst = {"IMG": str(img), "SNAP": snap, "VOL": vol, "OUT": str(out)}
    res = s.run(*[subst.get(a, a) for a in cmd])
    msg = assert_error(res, r"upgrade snapvol")
    assert "99" in msg
    assert not out.exists()
    assert dir_state(s.dir) == before, "a store it cannot read must not be changed"


# ---- a full disk ----

@pytest.fixture
def small_fs(tmp_path):
    """A 40 MiB tmpfs (needs root / CAP_SYS_ADMIN)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m,mode=0700", "tmpfs", str(mnt)],
                         capture_output=True, text=True)
    if res.returncode != 0:
        pytest.fail(f"cannot mount a 40 MiB tmpfs for the full-disk test: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_full_disk_during_snapshot(small_fs, tmp_path):
    s = Store(small_fs / "data")
    s.init()
    small = tmp_path / "small.img"
    small.write_bytes(random_bytes(2 * MiB, 10) + text_bytes(MiB, 11))
    first = s.snapshot(s.register(small))

    filler = small_fs / "filler"
    with open(filler, "wb") as f:
        for i in range(24):
            f.write(random_bytes(MiB, 100 + i))
    big = tmp_path / "big.img"  # incompressible, more than is left
    big.write_bytes(random_bytes(20 * MiB, 12))
    vbig = s.register(big)
    free = os.statvfs(small_fs)
    assert free.f_bavail * free.f_frsize < 20 * MiB

    res = s.run("snapshot", "create", "--volume-id", vbig)
    assert_error(res, r"no space|space left|disk full|ENOSPC|not enough space")

    snaps = s.snapshot_map()
    failed = [x for x in snaps.values() if x["SnapshotId"] != first]
    assert len(failed) <= 1
    for x in failed:
        assert x["State"] == "error", x
    assert snaps[first]["State"] == "completed"
    assert s.damaged() == set()
    out = tmp_path / "first.out"
    assert s.restore(first, out).returncode == 0
    assert_same_file(out, small)

    filler.unlink()
    second = s.snapshot(vbig)
    out2 = tmp_path / "second.out"
    assert s.restore(second, out2).returncode == 0
    assert_same_file(out2, big)
    assert s.damaged() == set()


def test_full_disk_during_restore(small_fs, tmp_path):
    # The restore target's file system fills up: clean error, no target, no partial file.
    s = Store(tmp_path / "data")
    s.init()
    img = tmp_path / "v.img"
    img.write_bytes(random_bytes(48 * MiB, 13))
    snap = s.snapshot(s.register(img))
    out = small_fs / "out.img"
    res = s.restore(snap, out)
    assert_error(res, r"no space|space left|disk full|ENOSPC|not enough space")
    assert not out.exists()
    assert not Path(str(out) + ".snapvol-partial").exists()


# ---- catalog rebuild ----

def test_catalog_rebuild_after_losing_the_catalog(store, tmp_path):
    s = store
    a, b = tmp_path / "a.img", tmp_path / "b.img"
    a.write_bytes(text_bytes(3 * BLOCK + 5, 20))
    b.write_bytes(random_bytes(2 * BLOCK, 21))
    va, vb = s.register(a, name="a"), s.register(b, name="b")
    a1 = s.snapshot(va, "--description", "first of a", "--tag", "Name=alpha", "--tag", "Owner=team-1")
    a1_img = tmp_path / "a1.img"
    a1_img.write_bytes(a.read_bytes())
    with open(a, "r+b") as f:
        f.write(random_bytes(1000, 22))
    a2 = s.snapshot(va, "--description", "zweite Sicherung ✓", "--tag", "Name=beta")
    b1 = s.snapshot(vb)
    b2 = s.snapshot(vb, "--description", "to be deleted", "--tag", "Name=gone")
    s.delete(b2)
    before = s.snapshot_map()
    assert set(before) == {a1, a2, b1}

    for f in ("catalog.db", "catalog.db-wal", "catalog.db-shm"):
        (s.dir / f).unlink(missing_ok=True)
    res = s.ok("catalog", "rebuild")
    assert "3" in res.stdout

    after = s.snapshot_map()
    assert set(after) == set(before), "rebuild must restore exactly the live snapshots"
    for sid, old in before.items():
        new = after[sid]
        for k in ("VolumeId", "Description", "VolumeSizeBytes", "ParentSnapshotId", "StartTime",
                  "CompletionTime", "TotalBlocks", "ChangedBlocks", "StoredBytes", "BlockSize",
                  "Encrypted", "State", "OwnerId"):
            assert new[k] == old[k], f"{sid} {k}: {new[k]!r} after rebuild, {old[k]!r} before"
        assert sorted((t["Key"], t["Value"]) for t in new["Tags"]) == \
            sorted((t["Key"], t["Value"]) for t in old["Tags"])
    assert s.volumes() == [], "volumes live only in the catalog"
    assert {x["SnapshotId"] for x in s.snapshots(va)} == {a1, a2}

    for sid, img in ((a1, a1_img), (a2, a), (b1, b)):
        out = tmp_path / f"{sid}.out"
        assert s.restore(sid, out).returncode == 0
        assert_same_file(out, img)
    assert s.damaged() == set()

    # Rebuilding an intact catalog changes nothing.
    s.ok("catalog", "rebuild")
    assert s.snapshot_map() == after


def test_catalog_rebuild_then_new_snapshots(populated, tmp_path):
    s, vol, snap, img = populated
    (s.dir / "catalog.db").unlink()
    for f in ("catalog.db-wal", "catalog.db-shm"):
        (s.dir / f).unlink(missing_ok=True)
    s.ok("catalog", "rebuild")
    vol2 = s.register(img)
    new = s.snapshot(vol2)
    assert set(s.snapshot_map()) == {snap, new}
    out = tmp_path / "new.out"
    assert s.restore(new, out).returncode == 0
    assert_same_file(out, img)
    s.delete(snap)
    s.gc()
    assert s.damaged() == set()
    assert s.restore(new, out, force=True).returncode == 0
    assert_same_file(out, img)
