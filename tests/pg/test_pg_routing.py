"""Any host answers, the owner works (docs/multi-host.md part 3): two snapvold, each with a data
dir and port of its own, share one PostgreSQL catalog and one store directory. A volume held by
host B is snapshotted through host A with boto3: A answers `pending` at once, the snapshot is
queued for B and taken by B (its runner names B), its data restores byte-identical, and
DescribeSnapshots from A and from B agree. A clean stop of B leaves a job queued for it."""

from __future__ import annotations

import pytest

import daemon_helpers as dh
import pg_helpers as pg
from pg_hosts import claims, host_id, start_host


def runner_of(url, sid) -> str:
    return pg.psql(url, f"SELECT runner FROM snapshots WHERE snapshot_id = '{sid}'")


def taken_by(svc, sid) -> str:
    """The runner that claimed sid's job on svc (pid:N@BOOT@HOST), or ''."""
    found = [c["runner"] for c in claims(svc) if sid in c["snapshot_ids"]]
    assert len(found) <= 1, found
    return found[0] if found else ""


@pytest.fixture
def two_hosts(tmp_path, databases):
    url = databases.new()
    a = b = None
    try:
        a = start_host(tmp_path / "a", url)
        a.load_admin()
        b = start_host(tmp_path / "b", url, template=a)
        b.load_admin()
        acct = a.add_account("team-1")
        b.accounts = dict(a.accounts)
        b.write_aws_files()
        yield {"a": a, "b": b, "url": url, "acct": acct}
    finally:
        for svc in (b, a):
            if svc is not None:
                dh.finish_service(svc)


def register_on(svc, other, tmp_path, name, seed):
    """A volume whose file host `other` holds, registered through svc's data dir with --host."""
    path = dh.genvol_create(tmp_path / f"{name}.img", "8M", seed)
    vol = svc.cli("volume", "register", "--path", path, "--account-id", svc.accounts["team-1"].account_id,
                  "--name", name, "--host", host_id(other)).stdout.strip()
    assert dh.VOL_ID.match(vol), vol
    return vol, path


def test_a_snapshot_sent_to_a_is_taken_by_the_volumes_host(two_hosts, tmp_path):
    a, b, url = two_hosts["a"], two_hosts["b"], two_hosts["url"]
    assert host_id(a) != host_id(b)
    vol, path = register_on(a, b, tmp_path, "on-b", 7)
    ec2_a, ec2_b = a.client("team-1"), b.client("team-1")

    snap = ec2_a.create_snapshot(VolumeId=vol, Description="asked of A",
                                 TagSpecifications=[{"ResourceType": "snapshot",
                                                     "Tags": [{"Key": "Name", "Value": "routed"}]}])
    assert snap["State"] == "pending", snap
    assert snap["VolumeId"] == vol and snap["Description"] == "asked of A"
    sid = snap["SnapshotId"]
    ec2_a.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})

    # B took it: its runner names B's process and host; A claimed nothing; the queue is empty.
    runner = taken_by(b, sid)
    assert runner == f"pid:{b.daemon.proc.pid}@" + runner.split("@")[1] + "@" + host_id(b), runner
    assert claims(a) == []
    assert pg.count(url, "snapshot_queue") == 0
    assert pg.psql(url, f"SELECT state_message FROM snapshots WHERE snapshot_id = '{sid}'") == ""
    assert "snapshot_claim_failed" not in b.daemon.log_text()

    # Its data is the volume's, restored through A's data dir from the shared store.
    out = tmp_path / "restored.img"
    res = a.cli("restore", "--snapshot-id", sid, "--to", out)
    assert res.returncode == 0, dh.describe(res)
    assert dh.sha256_file(out) == dh.sha256_file(path)

    # Both hosts describe the same snapshot (paging included).
    from_a = ec2_a.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    from_b = ec2_b.describe_snapshots(OwnerIds=["self"])["Snapshots"]
    assert from_a == from_b, (from_a, from_b)
    assert [s["SnapshotId"] for s in from_a] == [sid]
    assert from_a[0]["State"] == "completed" and from_a[0]["StartTime"] == snap["StartTime"]
    assert {"Key": "Name", "Value": "routed"} in from_a[0]["Tags"]


def test_a_job_queued_for_a_stopped_host_waits_for_it(two_hosts, tmp_path):
    a, b, url = two_hosts["a"], two_hosts["b"], two_hosts["url"]
    vol, path = register_on(a, b, tmp_path, "on-b", 8)
    assert b.daemon.stop() == 0
    ec2_a = a.client("team-1")
    snap = ec2_a.create_snapshot(VolumeId=vol)
    sid = snap["SnapshotId"]
    assert snap["State"] == "pending", snap
    # Nobody takes it while B is stopped: A does not run another host's volume.
    assert runner_of(url, sid) == "queued@" + host_id(b)
    assert pg.psql(url, "SELECT host_id, snapshot_ids, claimed_by FROM snapshot_queue") == \
        f"{host_id(b)}|{sid}|"
    # B comes back and takes it.
    b.daemon.start()
    ec2_a.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
    assert taken_by(b, sid).endswith("@" + host_id(b))
    assert claims(a) == []
    assert pg.count(url, "snapshot_queue") == 0
