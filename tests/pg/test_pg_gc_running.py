"""GC from the elected host never removes what another host's running snapshot needs (the issue
"Many hosts, one service", acceptance): two snapvold on one PostgreSQL catalog and one store
directory. Host A started first and holds the `maintenance` lease, so it runs GC, here every
second with no grace (`--gc-grace 0`: nothing is kept for being young, only the writer lease
protects what a snapshot has written and not yet referenced). Host B takes a snapshot of a
volume it holds (asked through A); once B has written part of it, B is paused (SIGSTOP, well
inside the 30 s host timeout) and a snapshot deleted meanwhile leaves garbage; A's GC runs and
frees that garbage while B is paused; B resumes and its snapshot completes; `snapvol verify` is
clean, it restores byte-identical, and the next GC on A frees nothing of it. On store formats 1
and 2."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

import daemon_helpers as dh
import pg_helpers as pg
from pg_hosts import host_id, start_host

ARGS = ["--gc-every", "1", "--gc-grace", "0", "--lease-renew-seconds", "0.5", "--lease-ttl-seconds", "3",
        "--host-heartbeat-seconds", "0.5"]


def gc_runs(url: str) -> list[dict]:
    out = pg.psql(url, "SELECT json_agg(r ORDER BY run_id) FROM (SELECT run_id, started_ms, finished_ms, state, host_id,"
                       " bytes_freed, objects_deleted, message FROM maintenance_runs WHERE job = 'gc') r")
    return json.loads(out) if out else []


@pytest.mark.parametrize("store_format", ["1", "2"])
def test_gc_on_the_elected_host_keeps_what_a_paused_snapshot_on_another_host_wrote(tmp_path, databases, store_format):
    url = databases.new()
    a = b = None
    try:
        a = start_host(tmp_path / "a", url, args=ARGS, init_env={"SNAPVOL_STORE_FORMAT": store_format})
        a.load_admin()
        b = start_host(tmp_path / "b", url, template=a, args=ARGS)
        b.load_admin()
        acct = a.add_account("team-1").account_id
        b.accounts = dict(a.accounts)
        b.write_aws_files()
        leases = {l["Name"]: l for l in json.loads(a.cli("host", "leases", "-o", "json").stdout)["Leases"]}
        assert leases["maintenance"]["Holder"] == host_id(a), leases  # A runs GC; B only snapshots

        ec2 = a.client("team-1")
        dead_img = dh.genvol_create(tmp_path / "dead.img", "16M", 41, holes=False)
        dead_vol = a.cli("volume", "register", "--path", dead_img, "--account-id", acct, "--name", "dead",
                         "--host", host_id(b)).stdout.strip()
        dead = ec2.create_snapshot(VolumeId=dead_vol)["SnapshotId"]
        ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[dead], WaiterConfig={"Delay": 0.2, "MaxAttempts": 600})

        path = dh.genvol_create(tmp_path / "big.img", "512M", 42, holes=False)
        want = dh.sha256_file(path)
        vol = a.cli("volume", "register", "--path", path, "--account-id", acct, "--name", "big",
                    "--host", host_id(b)).stdout.strip()
        running = ec2.create_snapshot(VolumeId=vol, Description="written while GC runs")["SnapshotId"]

        def under_way():
            s = ec2.describe_snapshots(SnapshotIds=[running])["Snapshots"][0]
            if s["State"] != "pending":
                return s
            return s if 0 < int(s["Progress"].rstrip("%") or 0) < 90 else None
        at_pause = dh.wait_until(under_way, 120, 0.01, f"{running} to be under way on B")
        assert at_pause["State"] == "pending", f"the snapshot ended before B could be paused ({at_pause}); use a larger volume"
        os.kill(b.daemon.proc.pid, signal.SIGSTOP)
        try:
            paused_ms = int(time.time() * 1000)
            ec2.delete_snapshot(SnapshotId=dead)  # garbage for the GC runs below
            deleted_ms = int(time.time() * 1000)
            # A GC run that started after the deletion and finished while B is paused: it freed the
            # dead snapshot's data, and had B's unreferenced writes in front of it.
            freeing = dh.wait_until(
                lambda: next((r for r in gc_runs(url) if r["started_ms"] > deleted_ms and r["state"] == "succeeded"
                              and r["bytes_freed"] > 0), None),
                20, 0.2, "a GC run on A that frees the deleted snapshot's data while B is paused")
            assert freeing["host_id"] == host_id(a), freeing
            assert b.daemon.running(), "B is gone"
            assert pg.psql(url, f"SELECT state FROM snapshots WHERE snapshot_id = '{running}'") == "pending"
        finally:
            os.kill(b.daemon.proc.pid, signal.SIGCONT)
        dh.note(f"test_pg_gc_running (format {store_format}): B paused at {at_pause['Progress']}; GC run "
                f"{freeing['run_id']} on A freed {freeing['bytes_freed']} bytes {freeing['finished_ms'] - paused_ms} ms "
                f"after the pause")

        ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[running], WaiterConfig={"Delay": 0.2, "MaxAttempts": 1500})
        res = a.cli("verify", "-o", "json", check=False, timeout=600)
        assert res.returncode == 0 and json.loads(res.stdout)["Damaged"] == [], dh.describe(res)
        out = tmp_path / "back.img"
        a.cli("restore", "--snapshot-id", running, "--to", out, timeout=600)
        assert dh.sha256_file(out) == want, "the snapshot written while GC ran does not restore byte-identical"
        # What B wrote is referenced now: the next GC on A frees nothing of it, and verify stays clean.
        done_ms = int(time.time() * 1000)
        later = dh.wait_until(lambda: next((r for r in gc_runs(url) if r["started_ms"] > done_ms
                                            and r["state"] == "succeeded"), None), 20, 0.2, "another GC run on A")
        assert later["bytes_freed"] == 0, later
        res = a.cli("verify", "-o", "json", check=False, timeout=600)
        assert res.returncode == 0 and json.loads(res.stdout)["Damaged"] == [], dh.describe(res)
    finally:
        for svc in (b, a):
            if svc is not None:
                dh.finish_service(svc)
