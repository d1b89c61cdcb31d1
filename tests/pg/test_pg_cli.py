"""A data dir whose catalog is PostgreSQL, driven by the snapvol CLI: `init --catalog`, then
register, snapshot, list, restore, rebuild and doctor all on PostgreSQL; and the errors an
operator gets for a wrong password, an unreachable server and a missing database."""

from __future__ import annotations

import hashlib
import json
import socket
import stat

import pg_helpers as pg
from snapvol_helpers import Store, assert_error, describe, genvol_create, run


def sha256(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def test_init_snapshot_restore_rebuild_doctor_on_postgres(tmp_path, databases):
    url = databases.new()
    secret = pg.password_of(url)
    s = Store(tmp_path / "data")
    out = s.ok("init", "--catalog", url)
    assert secret not in out.stdout + out.stderr, describe(out)
    cfg = s.dir / "catalog.json"
    assert stat.S_IMODE(cfg.stat().st_mode) == 0o600
    assert json.loads(cfg.read_text()) == {"type": "postgresql", "url": url}
    assert not (s.dir / "catalog.db").exists(), "the SQLite catalog must not be made"
    assert pg.count(url, "accounts") == 1  # the default account, in PostgreSQL

    src = genvol_create(tmp_path / "vol.img", "6M", 5)
    vol = s.register(src, "pgvol")
    sid = s.snapshot(vol, "--description", "on postgres", "--tag", "Name=pg")
    listed = s.snapshots()
    assert [x["SnapshotId"] for x in listed] == [sid], listed
    assert listed[0]["State"] == "completed" and listed[0]["Description"] == "on postgres", listed
    assert pg.count(url, "snapshots") == 1 and pg.count(url, "volumes") == 1
    assert pg.psql(url, f"SELECT state FROM snapshots WHERE snapshot_id = '{sid}'") == "completed"

    res = s.restore(sid, tmp_path / "back.img")
    assert res.returncode == 0, describe(res)
    assert sha256(tmp_path / "back.img") == sha256(src)

    # Rebuild from the store: the PostgreSQL catalog's snapshot rows are replaced.
    pg.psql(url, f"UPDATE snapshots SET description = 'tampered' WHERE snapshot_id = '{sid}'")
    out = s.ok("catalog", "rebuild")
    assert "1 snapshots" in out.stdout, describe(out)
    again = s.snapshot_map()
    assert again[sid]["Description"] == "on postgres", again
    assert not (s.dir / "catalog.db").exists()

    doc = run(["--data-dir", s.dir, "doctor", "-o", "json"])
    findings = {f["Check"]: f for f in json.loads(doc.stdout)["Findings"]}
    cat = findings["catalog"]
    assert cat["Status"] == "ok", findings
    assert "PostgreSQL" in cat["What"] and "schema version" in cat["What"] and "snapshots 1" in cat["What"], cat
    assert secret not in doc.stdout + doc.stderr


def test_errors_name_the_problem_and_never_the_password(tmp_path, databases):
    url = databases.new()
    wrong = pg.with_password(url, "not-the-password-9f2c")
    d = tmp_path / "wrong-pw"
    res = run(["--data-dir", d, "init", "--catalog", wrong])
    msg = assert_error(res, "refused the credentials")
    assert "not-the-password-9f2c" not in res.stdout + res.stderr
    assert not Store(d).dir.joinpath("store").exists(), "a failed init must leave no store behind"
    assert pg.tables_in(url) == 0, "nothing may be written with wrong credentials"

    port = free_port()
    unreachable = url.replace(f":{pg.urlsplit(url).port}/", f":{port}/")
    res = run(["--data-dir", tmp_path / "unreachable", "init", "--catalog", unreachable])
    msg = assert_error(res, "unreachable")
    assert "127.0.0.1" in msg and str(port) in msg, msg
    assert pg.password_of(url) not in res.stderr

    missing = pg.with_database(url, "no_such_db_x1")
    res = run(["--data-dir", tmp_path / "missing", "init", "--catalog", missing])
    msg = assert_error(res, "does not exist")
    assert "no_such_db_x1" in msg and pg.password_of(url) not in res.stderr

    res = run(["--data-dir", tmp_path / "bad-scheme", "init", "--catalog", "mysql://x@y/z"])
    assert_error(res, "postgresql://")

    # A data dir that worked, whose catalog.json later holds a wrong password.
    s = Store(tmp_path / "data")
    s.ok("init", "--catalog", url)
    cfg = s.dir / "catalog.json"
    cfg.write_text(json.dumps({"type": "postgresql", "url": wrong}))
    res = s.run("snapshot", "list")
    assert_error(res, "refused the credentials")
    assert "not-the-password-9f2c" not in res.stderr
    doc = run(["--data-dir", s.dir, "doctor", "-o", "json"])
    cat = {f["Check"]: f for f in json.loads(doc.stdout)["Findings"]}["catalog"]
    assert cat["Status"] == "fail" and "refused the credentials" in cat["What"], cat
    assert "not-the-password-9f2c" not in doc.stdout

    # A schema newer than this build is refused by name.
    cfg.write_text(json.dumps({"type": "postgresql", "url": url}))
    pg.psql(url, "UPDATE snapvol_schema SET version = 999")
    assert_error(s.run("volume", "list"), "schema version 999 is newer")
