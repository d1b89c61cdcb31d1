"""`snapvol volume delete VOL` (the one volume deletion path, managed/volume_deletion.h) and
the Recycle Bin's default rule in `snapvol snapshot delete`:
- a registered volume's entry goes and its disk is untouched (same bytes), its snapshots stay
  listed and restorable;
- a restored volume's image in the volume directory goes with it;
- an attached volume, one still being restored (`creating`) and one a rollback task is running
  on are refused with the reason, and nothing changes;
- with snapvold's default rule recorded in the catalog (recycle_bin_settings, written by
  snapvold at start), the offline `snapshot delete` moves the snapshot into the bin."""
from __future__ import annotations

import sqlite3

from snapvol_helpers import assert_error, genvol_create, sha256_file


def sql(store, statement: str, *args):
    con = sqlite3.connect(store.dir / "catalog.db")
    try:
        rows = con.execute(statement, args).fetchall()
        con.commit()
        return rows
    finally:
        con.close()


def volume_ids(store) -> set[str]:
    return {v["VolumeId"] for v in store.volumes()}


def test_a_registered_volume_goes_and_its_disk_and_snapshots_stay(store, tmp_path):
    disk = tmp_path / "disk.img"
    genvol_create(disk, "4M", seed=7)
    before = sha256_file(disk)
    vid = store.register(disk, name="web1")
    sid = store.snapshot(vid)
    out = store.ok("volume", "delete", vid).stdout
    assert vid in out and "untouched" in out, out
    assert vid not in volume_ids(store)
    assert disk.exists(), "a registered volume's disk was removed"
    assert sha256_file(disk) == before, "a registered volume's disk was changed"
    assert sid in store.snapshot_map(), "the volume's snapshot went with it"
    restored = tmp_path / "restored.img"
    store.ok("restore", "--snapshot-id", sid, "--to", restored)
    assert sha256_file(restored) == before
    # Gone is gone, and a malformed id is refused by name.
    assert vid in assert_error(store.run("volume", "delete", vid), r"not found")
    assert_error(store.run("volume", "delete", "vol-nope"), r"vol-nope")


def test_a_restored_volumes_image_goes_with_it_and_nothing_else(store, tmp_path):
    disk = tmp_path / "disk.img"
    genvol_create(disk, "1M", seed=3)
    vid = store.register(disk)
    sid = store.snapshot(vid)
    # A volume restored from the snapshot by snapvold (CreateVolume), as it records one.
    restored_id = "vol-0123456789abcdef0"
    vdir = store.dir / "volumes"
    vdir.mkdir(exist_ok=True)
    image = vdir / f"{restored_id}.img"
    image.write_bytes(b"r" * 4096)
    (vdir / f"{restored_id}.img.cbt").write_bytes(b"c")
    neighbour = vdir / "vol-0123456789abcdef1.img"
    neighbour.write_bytes(b"n" * 4096)
    account = sql(store, "SELECT account_id FROM volumes WHERE volume_id = ?", vid)[0][0]
    sql(store, "INSERT INTO volumes (volume_id, account_id, name, path, size_bytes, block_size, created_ms,"
               " snapshot_id) VALUES (?, ?, '', ?, 4096, 524288, 1, ?)", restored_id, account, str(image), sid)
    out = store.ok("volume", "delete", restored_id).stdout
    assert "restored" in out and str(image) in out, out
    assert not image.exists() and not (vdir / f"{restored_id}.img.cbt").exists()
    assert neighbour.exists(), "another file in the volume directory was removed"
    assert disk.exists() and vid in volume_ids(store)
    assert sid in store.snapshot_map()


def test_attached_creating_and_rolling_back_volumes_are_refused(store, tmp_path):
    disk = tmp_path / "disk.img"
    genvol_create(disk, "1M", seed=5)
    vid = store.register(disk)
    account = sql(store, "SELECT account_id FROM volumes WHERE volume_id = ?", vid)[0][0]
    inst = store.ok("instance", "create", "--account-id", account, "--name", "web").stdout.strip()
    attached_disk = tmp_path / "root.img"
    genvol_create(attached_disk, "1M", seed=6)
    attached = store.ok("volume", "register", "--path", attached_disk, "--instance-id", inst,
                        "--device", "/dev/xvda").stdout.strip()
    msg = assert_error(store.run("volume", "delete", attached), r"attached")
    assert inst in msg, msg

    sql(store, "UPDATE volumes SET state = 'creating' WHERE volume_id = ?", vid)
    assert_error(store.run("volume", "delete", vid), r"being restored \(creating\)")
    sql(store, "UPDATE volumes SET state = 'available' WHERE volume_id = ?", vid)

    task = "replacevol-0123456789abcdef0"
    sql(store, "INSERT INTO replace_root_volume_tasks (task_id, account_id, instance_id, volume_id, snapshot_id,"
               " state, progress, blocks_compared, bytes_read, bytes_written, safety_snapshot_id, reason,"
               " client_token, delete_replaced, force, requested_by, runner, start_ms, complete_ms)"
               " VALUES (?, ?, '', ?, 'snap-0123456789abcdef0', 'in-progress', 40, 0, 0, 0, '', '', '', 0, 0,"
               " '', '', 1, 0)", task, account, vid)
    msg = assert_error(store.run("volume", "delete", vid), r"rolled back")
    assert task in msg, msg
    assert {vid, attached} <= volume_ids(store), "a refused deletion removed a volume"
    assert disk.exists() and attached_disk.exists()
    sql(store, "UPDATE replace_root_volume_tasks SET state = 'succeeded' WHERE task_id = ?", task)
    store.ok("volume", "delete", vid)
    assert vid not in volume_ids(store) and disk.exists()


def test_the_daemons_default_recycle_bin_rule_applies_to_the_cli(store, tmp_path):
    disk = tmp_path / "disk.img"
    genvol_create(disk, "1M", seed=9)
    vid = store.register(disk)
    gone = store.snapshot(vid)
    kept = store.snapshot(vid)
    # No default rule recorded: deleted as before.
    out = store.delete(gone).stdout
    assert "Recycle Bin" not in out, out
    assert sql(store, "SELECT count(*) FROM recycle_bin")[0][0] == 0
    # What snapvold --recycle-bin-default-retention-days 7 records when it starts.
    sql(store, "UPDATE recycle_bin_settings SET default_retention_days = 7")
    out = store.delete(kept).stdout
    assert "into the Recycle Bin" in out, out
    rows = sql(store, "SELECT rule_id, exit_ms - entered_ms FROM recycle_bin WHERE snapshot_id = ?", kept)
    assert rows == [("default", 7 * 86400 * 1000)], rows
    assert kept not in store.snapshot_map()
    assert (store.store / "bin" / kept).exists()
