"""New volumes placed on a chosen host (docs/multi-host.md part 3): two snapvold share one
PostgreSQL catalog and one store directory. A file host B holds is snapshotted; CreateVolume from
that snapshot sent to host A with the tag aws:snapvol:host = B answers at once (`creating`, on B)
and B's claimer makes it: it ends `available` on B, B's NBD export reads byte-identical to the
snapshot, and nothing of it is under A's data dir. An unknown host and a stopped host are refused
with nothing made. Then B is killed (-9) with a routed creation queued for it and a rollback task
pending for it: A (the maintenance lease holder) sweeps both, `error` and `failed`, with a reason
naming B, once B's heartbeat is older than the host timeout (3 s here). Delays are printed, never
asserted."""

from __future__ import annotations

import hashlib
import time

import botocore.exceptions
import nbd
import pytest

import daemon_helpers as dh
import pg_helpers as pg
from pg_hosts import host_id, start_host
from test_pg_failover import FAST  # short heartbeats, a 3 s host timeout, a sweep every 0.3 s
from test_pg_rollback_routing import root_on
from test_pg_routing import register_on
from signed_query import field, ok

HOST_TAG = "aws:snapvol:host"
GENEROUS = 120  # s: a bound on waiting, not a timing


def hosts(tmp_path, databases, args):
    """Hosts A (started first: it holds the maintenance lease and sweeps) and B, named rack-a and
    rack-b, on one catalog and one store directory."""
    url = databases.new()
    a = b = None
    try:
        a = start_host(tmp_path / "a", url, args=args + ["--host-name", "rack-a"])
        a.load_admin()
        b = start_host(tmp_path / "b", url, template=a, args=args + ["--host-name", "rack-b"])
        b.load_admin()
        a.add_account("team-1")
        b.accounts = dict(a.accounts)
        b.write_aws_files()
        yield {"a": a, "b": b, "url": url}
    finally:
        for svc in (b, a):
            if svc is not None:
                if not svc.daemon.running():
                    svc.daemon.start()
                dh.finish_service(svc)


@pytest.fixture
def two_hosts(tmp_path, databases):
    yield from hosts(tmp_path, databases, FAST)


@pytest.fixture
def patient_hosts(tmp_path, databases):
    """As two_hosts, with a host timeout of 60 s: a killed host counts up long enough to restart."""
    patient = list(FAST)
    patient[patient.index("--host-timeout-seconds") + 1] = "60"
    yield from hosts(tmp_path, databases, patient)


def placed(host, **kwargs):
    """CreateVolume's arguments placing the volume on host (a name or an id)."""
    tags = [{"Key": HOST_TAG, "Value": host}, *kwargs.pop("tags", [])]
    return {"AvailabilityZone": "us-east-1a", **kwargs,
            "TagSpecifications": [{"ResourceType": "volume", "Tags": tags}]}


def volume(ec2, vid) -> dict:
    return ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]


def refused(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as err:
        call(**kwargs)
    return err.value.response["Error"]["Code"], err.value.response["Error"]["Message"]


def host_name(svc, url) -> str:
    return pg.psql(url, f"SELECT name FROM hosts WHERE host_id = '{host_id(svc)}'")


def files_of(svc, vid) -> list:
    return [p for p in svc.data_dir.rglob(f"*{vid}*")]


def nbd_sha(svc, vid) -> str:
    h = nbd.NBD()
    h.connect_uri(f"nbd+unix:///{vid}?socket={svc.data_dir / 'nbd.sock'}")
    digest, size = hashlib.sha256(), h.get_size()
    for off in range(0, size, 4 << 20):
        digest.update(h.pread(min(4 << 20, size - off), off))
    h.shutdown()
    return digest.hexdigest()


def test_a_volume_asked_of_a_is_made_on_the_host_named(two_hosts, tmp_path):
    a, b, url = two_hosts["a"], two_hosts["b"], two_hosts["url"]
    admin_a, team_a = a.client("admin"), a.client("team-1")
    vol, path = register_on(a, b, tmp_path, "data-b", 61)
    sha = dh.sha256_file(path)
    sid = team_a.create_snapshot(VolumeId=vol)["SnapshotId"]
    team_a.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
    b_name = host_name(b, url)
    assert b_name == "rack-b"

    made = admin_a.create_volume(**placed(b_name, SnapshotId=sid, tags=[{"Key": "Name", "Value": "restored"}]))
    vid = made["VolumeId"]
    assert made["State"] == "creating", made
    tags = {t["Key"]: t["Value"] for t in made["Tags"]}
    assert tags[HOST_TAG] == b_name and tags["Name"] == "restored", tags
    final = dh.wait_until(lambda: (lambda v: v if v["State"] != "creating" else None)(volume(admin_a, vid)),
                          GENEROUS, 0.1, f"{vid} to be made on B")
    assert final["State"] == "available", final
    assert {t["Key"]: t["Value"] for t in final["Tags"]}[HOST_TAG] == b_name
    assert pg.psql(url, f"SELECT host_id FROM volumes WHERE volume_id = '{vid}'") == host_id(b)
    image = pg.psql(url, f"SELECT path FROM volumes WHERE volume_id = '{vid}'")
    assert image.startswith(str(b.data_dir)), image
    assert files_of(a, vid) == [], files_of(a, vid)
    assert pg.count(url, "volume_queue") == 0
    # B claimed it (its log says so); A claimed nothing.
    claims_b = [e["volume_id"] for e in b.daemon.log_events() if e.get("event") == "volume_creation_claimed"]
    assert claims_b == [vid]
    assert [e for e in a.daemon.log_events() if e.get("event") == "volume_creation_claimed"] == []

    # Served by B's NBD server, byte-identical to the snapshot (read through the lazy load).
    inst = a.cli("instance", "create", "--account-id", a.accounts["team-1"].account_id, "--name", "srv").stdout.strip()
    team_a.attach_volume(VolumeId=vid, InstanceId=inst, Device="/dev/sdf")
    assert nbd_sha(b, vid) == sha

    # An approved restore request into a new volume goes to the host of the snapshot's volume (B),
    # and its decision says so.
    rr = field(ok(a, "team-1", "CreateRestoreRequest", SnapshotId=sid), "restoreRequestId")
    approved = ok(a, "admin", "ApproveRestoreRequest", RestoreRequestId=rr, Reason="ok")
    restored = field(approved, "volumeId")
    assert "rack-b" in field(approved, "decisionReason") and field(approved, "decisionReason").startswith("ok; ")
    dh.wait_until(lambda: volume(team_a, restored)["State"] == "available", GENEROUS, 0.1, f"{restored} on B")
    assert pg.psql(url, f"SELECT host_id FROM volumes WHERE volume_id = '{restored}'") == host_id(b)
    assert files_of(a, restored) == []

    # An empty volume placed by B's id is made there too.
    empty = team_a.create_volume(**placed(host_id(b), Size=1))["VolumeId"]
    dh.wait_until(lambda: volume(team_a, empty)["State"] == "available", GENEROUS, 0.1, f"{empty} on B")
    assert pg.psql(url, f"SELECT path FROM volumes WHERE volume_id = '{empty}'").startswith(str(b.data_dir))
    assert files_of(a, empty) == []
    # Placed on the host asked: as without the tag.
    here = team_a.create_volume(**placed(host_name(a, url), Size=1))
    assert here["State"] == "available" and pg.psql(
        url, f"SELECT host_id FROM volumes WHERE volume_id = '{here['VolumeId']}'") == host_id(a)


def test_an_unknown_or_stopped_host_is_refused_and_nothing_is_made(two_hosts, tmp_path):
    a, b, url = two_hosts["a"], two_hosts["b"], two_hosts["url"]
    team_a = a.client("team-1")
    before = pg.count(url, "volumes")
    code, msg = refused(team_a.create_volume, **placed("no-such-host", Size=1))
    assert code == "InvalidParameterValue" and "no-such-host" in msg, (code, msg)
    code, msg = refused(team_a.create_volume, **placed(host_id(b), Size=1, tags=[{"Key": HOST_TAG, "Value": "x"}]))
    assert code == "InvalidParameterValue", (code, msg)
    # Every other aws: key is refused as before.
    code, msg = refused(team_a.create_volume, AvailabilityZone="us-east-1a", Size=1,
                        TagSpecifications=[{"ResourceType": "volume", "Tags": [{"Key": "aws:snapvol:nbd", "Value": "x"}]}])
    assert code == "InvalidParameterValue" and "reserved" in msg, (code, msg)
    b_name = host_name(b, url)
    assert b.daemon.stop() == 0
    code, msg = refused(team_a.create_volume, **placed(b_name, Size=1))
    assert code == "IncorrectState" and b_name in msg and host_id(b) in msg and "stopped" in msg, (code, msg)
    assert pg.count(url, "volumes") == before
    assert pg.count(url, "volume_queue") == 0


def test_a_dead_hosts_queued_creation_and_pending_rollback_are_swept(two_hosts, tmp_path):
    a, b, url = two_hosts["a"], two_hosts["b"], two_hosts["url"]
    admin_a, team_a = a.client("admin"), a.client("team-1")
    inst, path, sid, sha, changed = root_on(a, b, tmp_path, "root-b", 71)
    b.daemon.kill9()
    killed_at = time.monotonic()
    # Within the host timeout B still counts up: both are accepted and queued for it.
    made = team_a.create_volume(**placed(host_id(b), Size=1))
    vid = made["VolumeId"]
    task = admin_a.create_replace_root_volume_task(InstanceId=inst, SnapshotId=sid)["ReplaceRootVolumeTask"]
    tid = task["ReplaceRootVolumeTaskId"]
    assert made["State"] == "creating" and task["TaskState"] == "pending", (made, task)
    if time.monotonic() - killed_at >= 3:
        pytest.fail("the requests took longer than the host timeout; B already counted dead")

    def swept():
        t = admin_a.describe_replace_root_volume_tasks(ReplaceRootVolumeTaskIds=[tid])["ReplaceRootVolumeTasks"][0]
        v = volume(team_a, vid)
        return (t, v) if t["TaskState"] != "pending" and v["State"] != "creating" else None

    t, v = dh.wait_until(swept, GENEROUS, 0.1, "B's queued work to be swept")
    delay = time.monotonic() - killed_at
    reason_v = pg.psql(url, f"SELECT state_message FROM volumes WHERE volume_id = '{vid}'")
    reason_t = pg.psql(url, f"SELECT reason FROM replace_root_volume_tasks WHERE task_id = '{tid}'")
    dh.note(f"test_pg_volume_routing: B's queued creation and rollback ended {delay:.1f} s after kill -9 "
            f"(host timeout 3 s): {reason_v!r}")
    assert v["State"] == "error" and t["TaskState"] == "failed", (v, t)
    for reason in (reason_v, reason_t):
        assert host_id(b) in reason and "unreachable since" in reason, reason
    assert pg.count(url, "volume_queue") == 0
    assert dh.sha256_file(path) == changed  # nobody rolled B's disk back


def test_a_creation_queued_for_a_crashed_host_is_made_when_it_is_back(patient_hosts, tmp_path):
    """B is killed (-9) and a volume is placed on it while it still counts up: it waits, queued.
    A restarting leaves it alone (a host's start settles only its own interrupted restores); B,
    back, claims it and makes it, once."""
    a, b, url = patient_hosts["a"], patient_hosts["b"], patient_hosts["url"]
    team_a = a.client("team-1")
    b.daemon.kill9()
    vid = team_a.create_volume(**placed("rack-b", Size=1))["VolumeId"]
    assert pg.psql(url, f"SELECT host_id, claimed_by FROM volume_queue WHERE volume_id = '{vid}'") == f"{host_id(b)}|"
    assert a.daemon.stop() == 0
    a.daemon.start()
    team_a = a.client("team-1")  # A listens on a new port
    assert volume(team_a, vid)["State"] == "creating", (
        pg.psql(url, f"SELECT host_id, path, state, state_message FROM volumes WHERE volume_id = '{vid}'"),
        [e for e in a.daemon.log_events() + b.daemon.log_events() if vid in str(e)])
    b.daemon.start()
    dh.wait_until(lambda: volume(team_a, vid)["State"] != "creating", GENEROUS, 0.1, f"{vid} made by B")
    assert volume(team_a, vid)["State"] == "available"
    assert pg.psql(url, f"SELECT path FROM volumes WHERE volume_id = '{vid}'").startswith(str(b.data_dir))
    assert files_of(a, vid) == []
    claimed = [e["volume_id"] for e in b.daemon.log_events() if e.get("event") == "volume_creation_claimed"]
    assert claimed == [vid]
