"""Host failure (docs/multi-host.md part 5): two snapvold, each with a data dir and port of its
own, share one PostgreSQL catalog and one store directory, with short heartbeats and a 3 s host
timeout. Host A starts first and holds the `maintenance` lease, so it runs the sweep. A large
volume held by host B is snapshotted (through A, routed to B); B is killed (-9) mid-snapshot:
A's sweep ends that snapshot `error` with a reason naming B and since when, DescribeVolumeStatus
from A says insufficient-data for B's volume, a snapshot asked for while B is dead ends `error`
by the sweep (not only at a host's start), `snapvol verify` is clean before and after `gc --grace
0`, an older snapshot of B's volume restores byte-identical through A's API, and after B restarts
its volume is ok again and the next snapshot completes. Delays are printed, never asserted."""

from __future__ import annotations

import json
import time

import pytest

import daemon_helpers as dh
import pg_helpers as pg
from pg_hosts import host_id, start_host


# Every host: a heartbeat every 0.3 s, unreachable after 3 s; the lease holder sweeps every 0.3 s.
FAST = ["--host-heartbeat-seconds", "0.3", "--host-timeout-seconds", "3", "--host-sweep-seconds", "0.3",
        "--lease-renew-seconds", "0.5", "--lease-ttl-seconds", "3"]
GENEROUS = 120  # s: how long the test waits for what the sweep must do (the delay is printed)


@pytest.fixture
def two_hosts(tmp_path, databases):
    url = databases.new()
    a = b = None
    try:
        a = start_host(tmp_path / "a", url, args=FAST)
        a.load_admin()
        b = start_host(tmp_path / "b", url, template=a, args=FAST)
        b.load_admin()
        acct = a.add_account("team-1")
        b.accounts = dict(a.accounts)
        b.write_aws_files()
        yield {"a": a, "b": b, "url": url, "acct": acct}
    finally:
        for svc in (b, a):
            if svc is not None:
                if not svc.daemon.running():
                    svc.daemon.start()
                dh.finish_service(svc)


def snapshot(ec2, sid) -> dict:
    return ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]


def volume_status(ec2, vol) -> dict:
    return ec2.describe_volume_status(VolumeIds=[vol])["VolumeStatuses"][0]["VolumeStatus"]


def ended(ec2, sid):
    s = snapshot(ec2, sid)
    return s if s["State"] != "pending" else None


def evacuate(svc, host, *args):
    """`snapvol host evacuate HOST --endpoint svc` signed as the administrator, -o json."""
    return dh.subprocess.run([dh.SNAPVOL, "-o", "json", "host", "evacuate", host, "--endpoint", svc.daemon.endpoint,
                              "--profile", svc.accounts["admin"].profile, *args],
                             capture_output=True, text=True, timeout=120, env=svc.aws_env())


def verify_clean(svc, when):
    res = svc.cli("verify", "-o", "json", check=False, timeout=600)
    assert res.returncode == 0, f"{when}: {dh.describe(res)}"
    assert json.loads(res.stdout)["Damaged"] == [], f"{when}: {res.stdout}"


def test_kill9_of_a_volumes_host_mid_snapshot(two_hosts, tmp_path):
    a, b, url = two_hosts["a"], two_hosts["b"], two_hosts["url"]
    leases = {l["Name"]: l for l in json.loads(a.cli("host", "leases", "-o", "json").stdout)["Leases"]}
    assert leases["maintenance"]["Holder"] == host_id(a), leases  # A sweeps; B is the one killed

    acct = a.accounts["team-1"].account_id
    path = dh.genvol_create(tmp_path / "big.img", "512M", 11)
    vol = a.cli("volume", "register", "--path", path, "--account-id", acct, "--name", "big",
                "--host", host_id(b)).stdout.strip()
    assert dh.VOL_ID.match(vol), vol
    ec2_a = a.client("team-1")
    assert volume_status(ec2_a, vol)["Status"] == "ok"

    # A managed volume B holds (made through B), with a snapshot B took of it (asked of A).
    managed = b.client("team-1").create_volume(Size=1, AvailabilityZone="us-east-1a",
                                               TagSpecifications=[{"ResourceType": "volume",
                                                                   "Tags": [{"Key": "Name", "Value": "m-on-b"}]}])
    managed_id = managed["VolumeId"]
    msnap = ec2_a.create_snapshot(VolumeId=managed_id, Description="managed, on B")["SnapshotId"]
    ec2_a.get_waiter("snapshot_completed").wait(SnapshotIds=[msnap], WaiterConfig={"Delay": 0.2, "MaxAttempts": 600})
    # B is up: evacuating it is refused and restores nothing.
    before = pg.count(url, "volumes")
    refused = evacuate(a, host_id(b))
    assert refused.returncode != 0 and "IncorrectState" in refused.stderr and "is up" in refused.stderr, \
        dh.describe(refused)
    assert pg.count(url, "volumes") == before

    # An older snapshot of B's volume, taken by B; then the volume changes entirely, so that the
    # next snapshot writes all of it again and takes a while.
    older = ec2_a.create_snapshot(VolumeId=vol, Description="older")["SnapshotId"]
    ec2_a.get_waiter("snapshot_completed").wait(SnapshotIds=[older], WaiterConfig={"Delay": 0.2, "MaxAttempts": 1500})
    older_sha = dh.sha256_file(path)
    dh.genvol_create(path, "512M", 12)

    running = ec2_a.create_snapshot(VolumeId=vol, Description="interrupted")["SnapshotId"]

    def under_way():
        s = snapshot(ec2_a, running)
        if s["State"] != "pending":
            return s
        return s if pg.psql(url, f"SELECT runner FROM snapshots WHERE snapshot_id = '{running}'").startswith("pid:") \
            and 0 < int(s["Progress"].rstrip("%") or 0) < 100 else None
    at_kill = dh.wait_until(under_way, 120, 0.01, f"{running} to be under way on B")
    assert at_kill["State"] == "pending", f"the snapshot completed before B could be killed ({at_kill}); use a larger volume"
    b.daemon.kill9()
    killed_at = time.monotonic()

    final = dh.wait_until(lambda: ended(ec2_a, running), GENEROUS, 0.1, f"{running} to end after B was killed")
    delay = time.monotonic() - killed_at
    dh.note(f"test_pg_failover: the snapshot B was taking at {at_kill['Progress']} ended {delay:.1f} s after kill -9 "
            f"(host timeout 3 s, sweep every 0.3 s): {final.get('StateMessage', '')!r}")
    print(f"ended {delay:.1f} s after kill -9: {final}")
    assert final["State"] == "error", final
    msg = final.get("StateMessage", "")
    assert msg.startswith(f"host ") and f"({host_id(b)}) unreachable since " in msg, msg
    swept = [e for e in a.daemon.log_events() if e.get("event") == "host_swept"]
    assert swept and swept[0]["host_id"] == host_id(b) and running in swept[0]["ended"], swept
    assert "host_swept" not in b.daemon.log_text()

    # A says B's volume cannot be checked; the filter agrees.
    st = volume_status(ec2_a, vol)
    assert st["Status"] == "insufficient-data", st
    assert {d["Name"]: d["Status"] for d in st["Details"]}["io-enabled"] == "insufficient-data", st
    unknown = ec2_a.describe_volume_status(Filters=[{"Name": "volume-status.status",
                                                     "Values": ["insufficient-data"]}])["VolumeStatuses"]
    assert {s["VolumeId"] for s in unknown} == {vol, managed_id}, unknown
    hosts = {h["HostId"]: h for h in json.loads(a.cli("host", "list", "--host-timeout", "3", "-o", "json").stdout)["Hosts"]}
    assert hosts[host_id(b)]["State"] == "unreachable" and hosts[host_id(b)]["Volumes"] == 2, hosts
    listed = {v["VolumeId"]: v for v in json.loads(a.cli("volume", "list", "--host-timeout", "3", "-o", "json").stdout)["Volumes"]}
    assert listed[vol]["HostState"] == "unreachable", listed[vol]

    # A snapshot asked for while B is dead is queued for B, and the sweep ends it.
    queued_at = time.monotonic()
    queued = ec2_a.create_snapshot(VolumeId=vol, Description="asked while B is dead")
    assert queued["State"] == "pending", queued
    late = dh.wait_until(lambda: ended(ec2_a, queued["SnapshotId"]), GENEROUS, 0.1, "the queued snapshot to end")
    print(f"the job queued for dead B ended {time.monotonic() - queued_at:.1f} s after it was asked for: {late}")
    assert late["State"] == "error" and f"({host_id(b)}) unreachable since " in late.get("StateMessage", ""), late
    assert pg.count(url, "snapshot_queue") == 0

    # B's managed volume is restored on A from its latest snapshot: once, however often asked.
    dry = evacuate(a, host_id(b), "--dry-run")
    assert dry.returncode == 0, dh.describe(dry)
    planned = json.loads(dry.stdout)
    assert planned["hostState"] == "unreachable" and planned["toHostId"] == host_id(a), planned
    assert [(v["volumeId"], v["snapshotId"], v["outcome"]) for v in planned["volumes"]] == \
        [(managed_id, msnap, "would-restore")], planned  # the registered volume is not managed: not moved
    done = evacuate(a, host_id(b))
    assert done.returncode == 0, dh.describe(done)
    moved = json.loads(done.stdout)["volumes"]
    assert [(v["volumeId"], v["outcome"]) for v in moved] == [(managed_id, "restored")], moved
    new_id = moved[0]["newVolumeId"]
    again = json.loads(evacuate(a, host_id(b)).stdout)["volumes"]
    assert again == [{"volumeId": managed_id, "ownerId": acct, "outcome": "already-restored", "newVolumeId": new_id}], again
    admin = a.client("admin")
    dh.wait_loaded(admin, new_id)
    copy = ec2_a.describe_volumes(VolumeIds=[new_id])["Volumes"][0]
    tags = {t["Key"]: t["Value"] for t in copy["Tags"]}
    assert tags["aws:snapvol:evacuated-from"] == managed_id and tags["Name"] == "m-on-b", tags
    assert tags["aws:snapvol:host"] == hosts[host_id(a)]["Name"], tags
    assert copy["SnapshotId"] == msnap, copy
    assert volume_status(ec2_a, new_id)["Status"] == "ok"
    want = tmp_path / "msnap.img"
    res = a.cli("restore", "--snapshot-id", msnap, "--to", want, check=False, timeout=600)
    assert res.returncode == 0, dh.describe(res)
    assert dh.sha256_file(a.data_dir / "volumes" / f"{new_id}.img") == dh.sha256_file(want)

    # The store verifies, before and after GC removed what the killed run wrote.
    verify_clean(a, "before gc")
    gc = a.cli("gc", "--grace", "0", check=False, timeout=600)
    assert gc.returncode == 0, dh.describe(gc)
    verify_clean(a, "after gc")

    # The older snapshot of B's volume restores through A, byte-identical.
    made = admin.create_volume(SnapshotId=older, AvailabilityZone="us-east-1a")
    dh.wait_loaded(admin, made["VolumeId"])
    restored = a.data_dir / "volumes" / f"{made['VolumeId']}.img"
    assert dh.sha256_file(restored) == older_sha
    restored.unlink()

    # B comes back: its volume is ok again and its next snapshot completes.
    b.daemon.start()
    dh.wait_until(lambda: volume_status(ec2_a, vol)["Status"] == "ok", GENEROUS, 0.1, "B's volume to be ok again")
    again = ec2_a.create_snapshot(VolumeId=vol, Description="after B restarted")["SnapshotId"]
    ec2_a.get_waiter("snapshot_completed").wait(SnapshotIds=[again], WaiterConfig={"Delay": 0.2, "MaxAttempts": 1500})
    out = tmp_path / "again.img"
    res = a.cli("restore", "--snapshot-id", again, "--to", out, check=False, timeout=600)
    assert res.returncode == 0, dh.describe(res)
    assert dh.sha256_file(out) == dh.sha256_file(path)
    out.unlink()
    assert pg.psql(url, f"SELECT state FROM snapshots WHERE snapshot_id = '{running}'") == "error"
