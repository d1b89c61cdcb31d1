"""`snapvol doctor`: a healthy data dir passes; each thing broken on purpose is named with its
fix and the exit code says whether anything failed; the data dir is reported on, not changed;
--endpoint checks a running snapvold's /healthz (and fails on a closed port)."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from snapvol_helpers import Store, clean_env, describe, run

SNAPVOLD = os.environ.get("SNAPVOLD_BIN") or str(Path(__file__).resolve().parents[2] / "build/src/daemon/snapvold")


def doctor(store: Store, *extra, json_out: bool = True):
    args = ["--data-dir", store.dir, "doctor", *extra]
    if json_out:
        args = ["-o", "json", *args]
    return run(args)


def findings(res) -> list[dict]:
    doc = json.loads(res.stdout)
    assert doc["Ok"] == (res.returncode == 0), describe(res)
    for f in doc["Findings"]:
        assert set(f) == {"Check", "Status", "What", "HowToFix"}, f
        assert f["Status"] in ("ok", "warn", "fail"), f
        assert (f["HowToFix"] == "") == (f["Status"] == "ok"), f
    return doc["Findings"]


def by_status(fs, status):
    return [f for f in fs if f["Status"] == status]


def assert_healthy(store: Store):
    res = doctor(store)
    fs = findings(res)
    assert res.returncode == 0, describe(res)
    checks = {f["Check"] for f in fs}
    for want in ("permissions", "catalog", "store", "free space", "usage journal", "lifecycle runs",
                 "gc runs", "verify runs", "damaged snapshots", "leases"):
        assert want in checks, describe(res)
    # Free space depends on the machine; everything else of a fresh data dir is fine.
    for f in fs:
        if f["Check"] == "free space":
            assert f["Status"] in ("ok", "warn") and re.search(r"\d+ bytes .* free of \d+", f["What"]), f
        else:
            assert f["Status"] == "ok", describe(res)
    return fs


def the_failure(res, check: str) -> dict:
    assert res.returncode == 1, describe(res)
    failed = [f for f in findings(res) if f["Status"] == "fail"]
    assert [f["Check"] for f in failed] == [check], describe(res)
    return failed[0]


def no_probe_left(store: Store):
    assert not (store.store / "doctor").exists(), list((store.store / "doctor").rglob("*"))


def test_healthy_data_dir_json_and_text(store):
    fs = assert_healthy(store)
    store_finding = next(f for f in fs if f["Check"] == "store")
    assert "probe object was written, read, listed and deleted" in store_finding["What"]
    no_probe_left(store)
    text = doctor(store, json_out=False)
    assert text.returncode == 0, describe(text)
    lines = text.stdout.splitlines()
    assert re.match(r"^\d+ checks: 0 failed, \d+ warnings$", lines[-1]), text.stdout
    for line in lines[:-1]:
        assert re.match(r"^(OK  |WARN|FAIL) [a-z ]+: ", line) or line.startswith("       fix: "), line
    assert any(l.startswith("OK   catalog: ") for l in lines), text.stdout


def test_open_data_dir_is_named_and_left_as_it_is(store):
    store.dir.chmod(0o755)
    res = doctor(store)
    f = the_failure(res, "permissions")
    assert f["What"].startswith(f"{store.dir} is 0755"), f
    assert f["HowToFix"].startswith(f"chmod 700 {store.dir}"), f
    assert store.dir.stat().st_mode & 0o777 == 0o755, "doctor must not change modes"
    text = doctor(store, json_out=False)
    assert text.returncode == 1
    assert f"FAIL permissions: {store.dir} is 0755" in text.stdout
    assert f"       fix: chmod 700 {store.dir}" in text.stdout
    store.dir.chmod(0o700)
    assert_healthy(store)


def test_secret_file_too_open(tmp_path):
    s = Store(tmp_path / "enc")
    s.init("--encrypt")
    for name in ("store.key", "catalog.db"):
        path = s.dir / name
        path.chmod(0o644)
        f = the_failure(doctor(s), "permissions")
        assert f["What"] == f"{path} is 0644 (readable beyond its owner)", f
        assert f["HowToFix"] == f"chmod 600 {path}", f
        assert path.stat().st_mode & 0o777 == 0o644
        path.chmod(0o600)
    assert_healthy(s)


def test_damaged_catalog(store, tmp_path):
    db = store.dir / "catalog.db"
    aside = tmp_path / "catalog.db.good"
    shutil.copy2(db, aside)
    db.write_bytes(b"this is not a SQLite database " * 200)
    f = the_failure(doctor(store), "catalog")
    assert str(db) in f["What"], f
    assert "catalog rebuild" in f["HowToFix"], f
    shutil.copy2(aside, db)
    assert_healthy(store)
    db.unlink()
    f = the_failure(doctor(store), "catalog")
    assert "does not exist" in f["What"], f
    assert not db.exists(), "doctor must not create a catalog"
    shutil.copy2(aside, db)
    assert_healthy(store)


def user_version(db: Path, value: int | None = None) -> int:
    con = sqlite3.connect(db)
    try:
        if value is not None:
            con.execute(f"PRAGMA user_version = {value}")
            con.commit()
        return con.execute("PRAGMA user_version").fetchone()[0]
    finally:
        con.close()


def test_catalog_schema_of_another_release(store):
    db = store.dir / "catalog.db"
    current = user_version(db)
    user_version(db, current + 1)
    f = the_failure(doctor(store), "catalog")
    assert f"schema version {current + 1} was written by a newer snapvol" in f["What"], f
    assert "release that runs snapvold" in f["HowToFix"], f
    # An older schema is reported, not migrated: the daemon of that release may still use it.
    user_version(db, current - 1)
    res = doctor(store)
    assert res.returncode == 0, describe(res)
    warn = [f for f in findings(res) if f["Check"] == "catalog"]
    assert warn[0]["Status"] == "warn" and f"schema version {current - 1} is older" in warn[0]["What"], warn
    assert user_version(db) == current - 1
    user_version(db, current)
    assert_healthy(store)


def test_unreachable_local_store(store):
    away = store.dir / "store.away"
    store.store.rename(away)
    # Without store/config the directory no longer looks initialised at all.
    res = doctor(store)
    assert res.returncode == 1, describe(res)
    assert [f["Check"] for f in by_status(findings(res), "fail")] == ["data dir"], describe(res)
    assert not store.store.exists(), "doctor must not create the store"
    # A store directory that exists but cannot be written to: a file where its objects go.
    away.rename(store.store)
    shutil.rmtree(store.store / "doctor", ignore_errors=True)
    (store.store / "doctor").write_bytes(b"in the way")
    f = the_failure(doctor(store), "store")
    assert "writing a probe object failed" in f["What"], f
    assert "store check" in f["HowToFix"], f
    (store.store / "doctor").unlink()
    assert_healthy(store)


def test_leftover_temporary_warns_without_failing(store):
    tmp = store.dir / "store.json.tmp-0123456789abcdef"
    tmp.write_bytes(b"{")
    tmp.chmod(0o600)
    res = doctor(store)
    assert res.returncode == 0, describe(res)
    warn = [f for f in findings(res) if f["Check"] == "leftovers"]
    assert len(warn) == 1 and warn[0]["Status"] == "warn" and str(tmp) in warn[0]["What"], describe(res)
    assert tmp.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give a file to another user")
def test_entry_of_another_user(store):
    planted = store.dir / "planted"
    planted.write_bytes(b"x")
    planted.chmod(0o600)
    os.chown(planted, 65534, 65534)
    f = the_failure(doctor(store), "permissions")
    assert str(planted) in f["What"] and f["HowToFix"].startswith("chown "), f


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_endpoint_of_running_daemon_and_closed_port(store, tmp_path):
    log = open(tmp_path / "snapvold.log", "wb")
    proc = subprocess.Popen([SNAPVOLD, "--data-dir", str(store.dir), "--listen", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, text=True,
                            env=clean_env())
    try:
        line = proc.stdout.readline()
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        assert m, line + (tmp_path / "snapvold.log").read_text()
        endpoint = m.group(1)
        res = doctor(store, "--endpoint", endpoint)
        fs = findings(res)
        assert res.returncode == 0, describe(res)
        daemon = [f for f in fs if f["Check"] == "daemon"]
        assert len(daemon) == 1 and daemon[0]["Status"] in ("ok", "warn"), describe(res)
        assert re.search(r"/healthz answered 200 ok.* \(\d+ ms\)", daemon[0]["What"]), daemon
        # The daemon wrote its admin credentials (0600): a looser mode is named.
        creds = store.dir / "admin-credentials"
        assert creds.exists()
        creds.chmod(0o640)
        f = the_failure(doctor(store, "--endpoint", endpoint), "permissions")
        assert f["HowToFix"] == f"chmod 600 {creds}", f
        creds.chmod(0o600)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    closed = f"http://127.0.0.1:{free_port()}"
    res = run(["-o", "json", "doctor", "--endpoint", closed])
    fs = findings(res)
    assert res.returncode == 1, describe(res)
    assert [f["Check"] for f in fs] == ["daemon"] and fs[0]["Status"] == "fail", describe(res)
    assert closed in fs[0]["What"] and "snapvold running" in fs[0]["HowToFix"], fs


def test_nothing_to_check_and_missing_dir(tmp_path):
    res = run(["doctor"])
    assert res.returncode == 1 and "nothing to check" in res.stderr, describe(res)
    res = run(["-o", "json", "--data-dir", tmp_path / "nope", "doctor"])
    fs = findings(res)
    assert res.returncode == 1 and fs[0]["Check"] == "data dir" and "does not exist" in fs[0]["What"], describe(res)
    assert not (tmp_path / "nope").exists()
