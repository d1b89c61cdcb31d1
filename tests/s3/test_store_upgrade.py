"""`snapvol store upgrade` on an S3 store (the test cluster's RGW): a format-1 store with three
snapshots of a generated volume, the upgrade killed (-9) in the middle of its copy and run
again; then every snapshot restores byte-identical (sha256) on this host and on a second host
that joins the bucket afterwards, verify is clean and no format-1 object is left in the bucket."""

from __future__ import annotations

from s3_helpers import S3Host, assert_ok, clean_env, describe, genvol_create, sha256_file

from snapvol_helpers import SNAPVOL, genvol_mutate, kill_on_stderr


def _copy_at(pct: int):
    def want(line):
        return bool(line) and line.startswith("upgrade: copy: ") and int(line.split(": ")[2].split("%")[0]) >= pct
    return want


def test_upgrade_killed_and_rerun_on_s3(tmp_path, cluster):
    prefix = cluster.new_prefix("upgrade")
    a = S3Host(tmp_path / "a", cluster, prefix)
    a.init_s3("--store-format", "1")
    img = genvol_create(tmp_path / "vol.img", "32M", seed=5)
    vol = a.register(img)
    expected = {}
    for i in range(3):
        if i:
            genvol_mutate(img, 5, seed=50 + i)
        expected[a.snapshot(vol)] = sha256_file(img)
    chunks = cluster.count(prefix, "chunks")
    assert chunks > 20 and cluster.count(prefix, "packs") == 0

    killed, lines = kill_on_stderr([SNAPVOL, "--data-dir", a.dir, "store", "upgrade", "--pack-size", "1"],
                                   clean_env(a.env), _copy_at(40))
    assert killed, lines
    assert cluster.count(prefix, "chunks") == chunks, "a killed upgrade deleted format-1 objects before the flip"

    res = assert_ok(a.run("store", "upgrade", "--pack-size", "1"))
    assert "upgraded the store to format 2" in res.stdout, describe(res)
    assert any(l.startswith("upgrade: verify: 100%") for l in res.stderr.splitlines()), describe(res)
    assert cluster.count(prefix, "chunks") == 0 and cluster.count(prefix, "index") == 0
    assert cluster.count(prefix, "packs") > 0 and cluster.count(prefix, "leases") == 0

    b = S3Host(tmp_path / "b", cluster, prefix)
    assert "joined" in b.init_s3().stdout
    assert_ok(b.run("catalog", "rebuild"))
    for host in (a, b):
        for snap, digest in expected.items():
            out = tmp_path / "restored.img"
            assert_ok(host.restore(snap, out))
            assert sha256_file(out) == digest, f"{snap} does not restore byte-identical"
            out.unlink()
        assert host.damaged() == set()
    again = assert_ok(a.run("store", "upgrade"))
    assert "already format 2; nothing to do" in again.stdout, describe(again)
