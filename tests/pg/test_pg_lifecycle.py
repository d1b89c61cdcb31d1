"""Lifecycle policies once per cluster (docs/multi-host.md part 4): three snapvold on one
PostgreSQL catalog and one shared store directory, three volumes registered on each host, one
policy targeting all nine by tag. Only the holder of the cluster lease `lifecycle` runs the
policy; each snapshot is taken by its volume's host (the holder's own volumes run there, the
others are claimed by their hosts, whose claims name them). Then a second run: the holder is
killed with kill -9 right after its run started (the run is still in progress when it dies:
checked and printed), another host takes the lease and carries the run on, the killed host comes
back (its own interrupted snapshots can only end, and be retried, once it does), and the run ends
with exactly one completed snapshot per volume: none missed, none duplicated. No timed
assertions: generous waits, figures printed."""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timezone

import daemon_helpers as dh
import pg_helpers as pg
from pg_hosts import host_id, start_host

ARGS = ["--lease-renew-seconds", "0.5", "--lease-ttl-seconds", "3", "--host-heartbeat-seconds", "0.5",
        "--snapshot-runners", "1"]
ROLE = "arn:aws:iam::123456789012:role/AWSDataLifecycleManagerDefaultRole"
PER_HOST = 3


def lease(url: str, name: str) -> dict | None:
    out = pg.psql(url, f"SELECT row_to_json(l) FROM cluster_leases l WHERE name = '{name}'")
    return json.loads(out) if out else None


def runs(url: str, pid: str) -> list[dict]:
    out = pg.psql(url, "SELECT json_agg(r) FROM (SELECT scheduled_ms, state, created, failed, message, host_id,"
                       f" lease_generation FROM lifecycle_runs WHERE policy_id = '{pid}') r")
    return json.loads(out) if out else []


def snapshots(url: str, pid: str) -> list[dict]:
    """The policy's snapshots: id, volume, state, message, runner."""
    out = pg.psql(url, "SELECT json_agg(s ORDER BY s.start_time_ms) FROM (SELECT snapshot_id, volume_id, state,"
                       " state_message, runner, start_time_ms FROM snapshots WHERE snapshot_id IN"
                       " (SELECT resource_id FROM tags WHERE key = 'aws:dlm:lifecycle-policy-id'"
                       f" AND value = '{pid}')) s")
    return json.loads(out) if out else []


def claimed(svc) -> dict[str, str]:
    """snapshot id → the runner of svc that claimed it (its log's snapshot_job_claimed events)."""
    out = {}
    for e in svc.daemon.log_events():
        if e.get("event") == "snapshot_job_claimed":
            for sid in e["snapshot_ids"]:
                out[sid] = e["runner"]
    return out


def next_minute(offset: int, margin: float = 8) -> datetime:
    """The first whole minute at least `margin` seconds ahead on the hosts' schedule clock (real
    time + offset: every host runs with the same --schedule-clock-offset-seconds)."""
    return datetime.fromtimestamp(math.ceil((time.time() + offset + margin) / 60) * 60, timezone.utc)


def seconds_until(at: datetime, offset: int) -> float:
    return at.timestamp() - offset - time.time()


def make_policy(svc, at: datetime, name: str) -> str:
    d = {"ResourceTypes": ["VOLUME"], "TargetTags": [{"Key": "backup", "Value": "lc"}],
         "Schedules": [{"Name": name, "CreateRule": {"Interval": 24, "IntervalUnit": "HOURS",
                                                     "Times": [at.strftime("%H:%M")]},
                        "RetainRule": {"Count": 3}}]}
    return dh.dlm_client(svc, "team-1").create_lifecycle_policy(
        ExecutionRoleArn=ROLE, Description=name, State="ENABLED", PolicyDetails=d)["PolicyId"]


def test_one_host_runs_the_policy_and_another_carries_the_run_on_after_a_kill(tmp_path, databases):
    url = databases.new()
    hosts = []
    try:
        # Schedules fall due early on every host (the same offset), so that a whole minute comes
        # about when the set-up below is done instead of up to two minutes later.
        clock_args, _ = dh.schedule_clock_args(lead=25)
        offset = int(clock_args[0].split("=")[1])
        a = start_host(tmp_path / "a", url, args=clock_args)
        hosts.append(a)
        a.load_admin()
        a.add_account("team-1")
        for name in ("b", "c"):
            h = start_host(tmp_path / name, url, template=a, args=clock_args)
            h.accounts = dict(a.accounts)
            h.write_aws_files()
            hosts.append(h)
        ids = [host_id(h) for h in hosts]
        assert len(set(ids)) == 3, ids
        # a started first: it holds both leases; `snapvol host leases` shows both.
        shown = json.loads(a.cli("host", "leases", "-o", "json").stdout)["Leases"]
        assert sorted((l["Name"], l["Holder"]) for l in shown) == [("lifecycle", ids[0]), ("maintenance", ids[0])], shown

        # Three volumes on each host (random data: each snapshot takes a moment), tagged for the policy.
        owner = {}
        for n, h in enumerate(hosts):
            for i in range(PER_HOST):
                path = dh.genvol_create(tmp_path / f"v{n}{i}.img", "24M", 100 + 10 * n + i, holes=False)
                vol = a.cli("volume", "register", "--path", path, "--account-id", a.accounts["team-1"].account_id,
                            "--name", f"v{n}{i}", "--host", ids[n]).stdout.strip()
                assert dh.VOL_ID.match(vol), vol
                owner[vol] = n
        b = hosts[1]
        ec2 = b.client("team-1")
        ec2.create_tags(Resources=list(owner), Tags=[{"Key": "backup", "Value": "lc"}])

        # ---- run 1: the holder runs it, each volume's host takes its snapshot ----
        at1 = next_minute(offset)
        p1 = make_policy(b, at1, "first")  # asked of b: any host answers, the holder runs it
        wait = seconds_until(at1, offset) + 180
        dh.wait_until(lambda: (r := runs(url, p1)) and r[0]["state"] != "running", wait, 0.5, "run 1 to end")
        r1 = runs(url, p1)
        assert len(r1) == 1 and r1[0]["state"] == "succeeded", r1
        assert r1[0]["created"] == 3 * PER_HOST and r1[0]["failed"] == 0, r1
        assert (r1[0]["host_id"], r1[0]["lease_generation"]) == (ids[0], 1), r1
        s1 = snapshots(url, p1)
        assert sorted(s["volume_id"] for s in s1) == sorted(owner), s1  # exactly one per volume
        assert all(s["state"] == "completed" for s in s1), s1
        claims = [claimed(h) for h in hosts]
        for s in s1:
            n = owner[s["volume_id"]]
            takers = [k for k in range(3) if s["snapshot_id"] in claims[k]]
            if n == 0:
                assert takers == [], (s, takers)  # the holder's own volume: run where it was started
            else:
                assert takers == [n], (s, takers)
                assert claims[n][s["snapshot_id"]].endswith("@" + ids[n]), claims[n][s["snapshot_id"]]
        print(f"pg_lifecycle: run 1 on {ids[0]}: {len(s1)} snapshots, "
              f"{sum(len(c) for c in claims)} claimed by their hosts")

        # ---- run 2: kill -9 the holder as soon as its run has started ----
        at2 = next_minute(offset)
        p2 = make_policy(b, at2, "second")
        wait = seconds_until(at2, offset) + 180
        dh.wait_until(lambda: runs(url, p2), wait, 0.05, "run 2 to start")
        hosts[0].daemon.kill9()
        kill_ms = time.time() * 1000
        at_kill = runs(url, p2)[0]
        done_at_kill = [s for s in snapshots(url, p2) if s["state"] == "completed"]
        print(f"pg_lifecycle: killed the holder with run 2 {at_kill['state']}, "
              f"{len(snapshots(url, p2))} snapshot row(s), {len(done_at_kill)} completed")
        assert at_kill["state"] == "running", at_kill
        expiry = lease(url, "lifecycle")["expires_ms"]
        dh.wait_until(lambda: (l := lease(url, "lifecycle")) and l["holder"] != ids[0], 120, 0.1,
                      "another host to take lease lifecycle")
        new = lease(url, "lifecycle")
        assert new["generation"] == 2 and new["holder"] in ids[1:], new
        # The killed host comes back: its own snapshots it was taking end `interrupted` (that
        # needs it, or part 5's sweeper), and the new holder retries them on it.
        hosts[0].daemon.start()
        dh.wait_until(lambda: (r := runs(url, p2)) and r[0]["state"] != "running", 240, 0.5, "run 2 to end")
        r2 = runs(url, p2)[0]
        print(f"pg_lifecycle: {new['holder']} took the lease (lifecycle generation 2) after the old one expired at "
              f"{expiry}; run 2: {r2['message']}")
        assert r2["state"] == "succeeded", r2
        assert (r2["host_id"], r2["lease_generation"]) == (new["holder"], 2), r2
        assert f"carried on by {new['holder']}" in r2["message"], r2
        assert r2["created"] == 3 * PER_HOST and r2["failed"] == 0, r2
        s2 = snapshots(url, p2)
        completed = [s for s in s2 if s["state"] == "completed"]
        assert sorted(s["volume_id"] for s in completed) == sorted(owner), s2  # one each: none missed or twice
        others = [s for s in s2 if s["state"] != "completed"]
        for s in others:  # only what the kill cut short, on the killed host's volumes
            assert s["state"] == "error" and owner[s["volume_id"]] == 0, s
            assert s["state_message"].startswith("interrupted"), s
        claims = [claimed(h) for h in hosts]
        for s in completed:
            n = owner[s["volume_id"]]
            takers = [k for k in range(3) if s["snapshot_id"] in claims[k]]
            # Claimed by its own host, or started by its own host as the lifecycle holder (then it
            # ran there, unclaimed): the old holder before the kill (finished then, or found
            # finished in the store when it started again), or the new one after.
            if n == 0:
                assert takers == [0] or (takers == [] and s["start_time_ms"] <= kill_ms), (s, takers)
            else:
                assert takers == [n] or (takers == [] and ids[n] == new["holder"]), (s, takers)
        print(f"pg_lifecycle: run 2 ended with {len(completed)} completed snapshot(s), "
              f"{len(others)} interrupted by the kill and retried")
        # Nothing queued is left, and `host leases` names the new holder.
        assert pg.count(url, "snapshot_queue") == 0
        assert not any("snapshot_claim_failed" in h.daemon.log_text() for h in hosts)
        shown = json.loads(hosts[1].cli("host", "leases", "-o", "json").stdout)["Leases"]
        assert ("lifecycle", new["holder"], 2) in [(l["Name"], l["Holder"], l["Generation"]) for l in shown], shown
    finally:
        for h in reversed(hosts):
            dh.finish_service(h)
