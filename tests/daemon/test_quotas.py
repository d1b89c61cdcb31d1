"""Quotas per account (issue #14 item 4), over real signed HTTP with boto3:
- `snapvol account set-quota` sets defaults and per-account overrides (numbers, unlimited,
  default), `show-quota` shows them with usage, and bad input changes nothing;
- CreateVolume (empty, and an administrator's restore into the team's account) over the volume
  count or GiB answers VolumeLimitExceeded (HTTP 400) and leaves no volume and no file;
- CreateSnapshot, CreateSnapshots and CopySnapshot over the snapshot count answer
  SnapshotLimitExceeded (HTTP 400) and leave no snapshot and no manifest; deleting frees quota;
- concurrent creates never pass a limit;
- CreateVolume Size=16384 answers a 4xx or works, never a 5xx."""
from __future__ import annotations

import json
import threading

import pytest
from botocore.exceptions import ClientError

import daemon_helpers as dh

ZONE = "us-east-1a"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "svc", teams=2)
        yield svc
    finally:
        if svc is not None:
            dh.finish_service(svc)


@pytest.fixture(autouse=True)
def no_quotas(service):
    """Every test starts and ends without quotas."""
    def clear():
        service.cli("account", "set-quota", "--default", "--volume-gib", "unlimited", "--volumes", "unlimited",
                    "--snapshots", "unlimited")
        for alias in ("team-1", "team-2", "admin"):
            service.cli("account", "set-quota", "--account-id", service.accounts[alias].account_id,
                        "--volume-gib", "default", "--volumes", "default", "--snapshots", "default")
    clear()
    yield
    clear()


def set_quota(service, alias, *args):
    service.cli("account", "set-quota", "--account-id", service.accounts[alias].account_id, *map(str, args))


def show(service, alias=None) -> dict:
    args = ["-o", "json", "account", "show-quota"]
    if alias:
        args += ["--account-id", service.accounts[alias].account_id]
    return json.loads(service.cli(*args).stdout)


def refused(call, code: str) -> str:
    with pytest.raises(ClientError) as e:
        call()
    err = e.value.response["Error"]
    assert err["Code"] == code, e.value.response
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400, e.value.response
    return err["Message"]


def volume_files(service) -> set[str]:
    return {p.name for p in (service.data_dir / "volumes").iterdir()}


def manifests(service) -> set[str]:
    """Every snapshot root in the store, live or taken back (deleted/)."""
    store = service.data_dir / "store"
    return {str(p.relative_to(store)) for p in store.rglob("snap-*") if p.parent.name in ("manifests", "deleted")}


def own_volumes(ec2) -> set[str]:
    return {v["VolumeId"] for v in ec2.describe_volumes()["Volumes"]}


def own_snapshots(ec2) -> dict[str, dict]:
    return {s["SnapshotId"]: s for s in ec2.describe_snapshots(OwnerIds=["self"])["Snapshots"]}


def wait_completed(ec2, ids):
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=list(ids), WaiterConfig={"Delay": 0.1, "MaxAttempts": 600})


def test_set_and_show_quota_with_the_cli(service):
    team1, team2 = service.accounts["team-1"].account_id, service.accounts["team-2"].account_id
    service.cli("account", "set-quota", "--default", "--volume-gib", 100, "--snapshots", 50)
    set_quota(service, "team-1", "--volume-gib", "unlimited", "--volumes", 0)
    out = show(service)
    assert out["Defaults"] == {"volume-gib": 100, "volumes": None, "snapshots": 50}
    acct = {a["AccountId"]: a for a in out["Accounts"]}
    assert acct[team1]["volume-gib"] == {"Used": 0, "Limit": None, "FromDefault": False}
    assert acct[team1]["volumes"] == {"Used": 0, "Limit": 0, "FromDefault": False}
    assert acct[team1]["snapshots"]["Limit"] == 50 and acct[team1]["snapshots"]["FromDefault"]
    assert acct[team2]["volume-gib"] == {"Used": 0, "Limit": 100, "FromDefault": True}
    table = service.cli("account", "show-quota", "--account-id", team1).stdout
    assert "(defaults)" in table and team1 in table and "0 of unlimited" in table, table
    # Bad input is refused by name and changes nothing.
    for args, words in [(["--account-id", team1, "--volumes", "-1"], "--volumes '-1'"),
                        (["--account-id", team1, "--snapshots", "lots"], "--snapshots 'lots'"),
                        (["--account-id", team1, "--volumes", "3", "--snapshots", "1e3"], "--snapshots '1e3'"),
                        (["--default", "--snapshots", "default"], "the defaults have no default"),
                        (["--account-id", "999999999999", "--volumes", "1"], "not found"),
                        (["--volumes", "1"], "--account-id ACCOUNT or --default"),
                        (["--account-id", team1], "at least one of"),
                        (["--account-id", team1, "--volume-gib", str(1 << 40)], "larger than")]:
        res = service.cli("account", "set-quota", *args, check=False)
        assert res.returncode != 0 and words in res.stderr, dh.describe(res)
    res = service.cli("account", "set-quota", "--default", "--account-id", team1, "--volumes", "1", check=False)
    assert res.returncode != 0, dh.describe(res)
    assert show(service) == out
    helptext = service.cli("account", "set-quota", "--help").stdout
    assert "unlimited" in helptext and "0 allows" in helptext and "VolumeLimitExceeded" in helptext, helptext


def test_create_volume_over_the_quota_creates_nothing(service):
    ec2 = service.client("team-1")
    set_quota(service, "team-1", "--volume-gib", 10, "--volumes", 2)
    files, vols = volume_files(service), own_volumes(ec2)
    msg = refused(lambda: ec2.create_volume(Size=11, AvailabilityZone=ZONE), "VolumeLimitExceeded")
    assert "volume-gib quota of account " + service.accounts["team-1"].account_id in msg, msg
    assert "11 GiB; the limit is 10 GiB" in msg, msg
    assert volume_files(service) == files and own_volumes(ec2) == vols
    # Up to the limit works; the registered volume (16 MiB, the operator's file) does not count.
    a = ec2.create_volume(Size=6, AvailabilityZone=ZONE)["VolumeId"]
    refused(lambda: ec2.create_volume(Size=5, AvailabilityZone=ZONE), "VolumeLimitExceeded")
    b = ec2.create_volume(Size=4, AvailabilityZone=ZONE)["VolumeId"]
    files, vols = volume_files(service), own_volumes(ec2)
    msg = refused(lambda: ec2.create_volume(Size=1, AvailabilityZone=ZONE), "VolumeLimitExceeded")
    assert "it would have 3 volumes; the limit is 2" in msg, msg
    assert volume_files(service) == files and own_volumes(ec2) == vols
    # Another team is not limited by team-1's quota; deleting frees quota.
    c = service.client("team-2").create_volume(Size=11, AvailabilityZone=ZONE)["VolumeId"]
    ec2.delete_volume(VolumeId=a)
    a2 = ec2.create_volume(Size=6, AvailabilityZone=ZONE)["VolumeId"]
    for vid in (b, a2):
        ec2.delete_volume(VolumeId=vid)
    service.client("team-2").delete_volume(VolumeId=c)


def test_restore_into_a_team_over_its_quota_creates_nothing(service):
    ec2 = service.client("team-1")
    sid = ec2.create_snapshot(VolumeId=service.volumes["vol-team-1"].volume_id)["SnapshotId"]
    wait_completed(ec2, [sid])
    set_quota(service, "team-1", "--volumes", 0)
    admin = service.client("admin")
    files, vols = volume_files(service), own_volumes(ec2)
    msg = refused(lambda: admin.create_volume(SnapshotId=sid, AvailabilityZone=ZONE), "VolumeLimitExceeded")
    assert service.accounts["team-1"].account_id in msg, msg
    assert volume_files(service) == files and own_volumes(ec2) == vols
    set_quota(service, "team-1", "--volumes", 1)
    vid = admin.create_volume(SnapshotId=sid, AvailabilityZone=ZONE)["VolumeId"]
    dh.wait_loaded(admin, vid)
    assert vid in own_volumes(ec2)
    admin.delete_volume(VolumeId=vid)
    ec2.delete_snapshot(SnapshotId=sid)


def test_snapshot_actions_over_the_quota_create_nothing(service):
    ec2 = service.client("team-1")
    acct = service.accounts["team-1"].account_id
    held = len(own_snapshots(ec2))
    set_quota(service, "team-1", "--snapshots", held + 2)
    vol = service.volumes["vol-team-1"].volume_id
    first = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    wait_completed(ec2, [first])
    # An instance with two volumes: CreateSnapshots needs two and there is room for one.
    inst = service.cli("instance", "create", "--account-id", acct, "--name", "quota-db").stdout.strip()
    disks = [ec2.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"] for _ in range(2)]
    for n, d in enumerate(disks):
        ec2.attach_volume(VolumeId=d, InstanceId=inst, Device=f"/dev/xvd{'fg'[n]}")
    snaps, stored = own_snapshots(ec2), manifests(service)
    msg = refused(lambda: ec2.create_snapshots(InstanceSpecification={"InstanceId": inst}), "SnapshotLimitExceeded")
    assert f"snapshots quota of account {acct}" in msg and f"would have {held + 3} snapshots" in msg, msg
    assert own_snapshots(ec2).keys() == snaps.keys() and manifests(service) == stored
    second = ec2.create_snapshot(VolumeId=vol, Description="the last one")["SnapshotId"]
    wait_completed(ec2, [second])
    snaps, stored = own_snapshots(ec2), manifests(service)
    refused(lambda: ec2.create_snapshot(VolumeId=vol), "SnapshotLimitExceeded")
    refused(lambda: ec2.copy_snapshot(SourceSnapshotId=first, SourceRegion=dh.REGION), "SnapshotLimitExceeded")
    assert own_snapshots(ec2).keys() == snaps.keys() and manifests(service) == stored
    # A failed request does not use up quota; deleting a snapshot frees it.
    ec2.delete_snapshot(SnapshotId=first)
    copy = ec2.copy_snapshot(SourceSnapshotId=second, SourceRegion=dh.REGION)["SnapshotId"]
    assert copy in own_snapshots(ec2)
    for sid in (second, copy):
        ec2.delete_snapshot(SnapshotId=sid)
    for d in disks:
        ec2.detach_volume(VolumeId=d)
        ec2.delete_volume(VolumeId=d)


def test_concurrent_creates_cannot_pass_the_quota(service):
    ec2 = service.client("team-2")
    vol = service.volumes["vol-team-2"].volume_id
    held = len(own_snapshots(ec2))
    set_quota(service, "team-2", "--snapshots", held + 3, "--volumes", 2)
    results: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(16)

    def attempt(kind):
        client = service.client("team-2")  # a client (and connection) of its own
        start.wait()
        try:
            if kind == "snap":
                out = client.create_snapshot(VolumeId=vol)["SnapshotId"]
            else:
                out = client.create_volume(Size=1, AvailabilityZone=ZONE)["VolumeId"]
        except ClientError as e:
            out = e.response["Error"]["Code"]
        with lock:
            results.append(out)

    threads = [threading.Thread(target=attempt, args=("snap" if i % 2 == 0 else "vol",)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snaps = [r for r in results if r.startswith("snap-")]
    vols = [r for r in results if r.startswith("vol-")]
    assert len(snaps) == 3 and len(vols) == 2, results
    assert sorted(r for r in results if not r.startswith(("snap-", "vol-"))) == \
        ["SnapshotLimitExceeded"] * 5 + ["VolumeLimitExceeded"] * 6, results
    assert len(own_snapshots(ec2)) == held + 3
    assert {f for f in volume_files(service) if f.endswith(".img")} >= {v + ".img" for v in vols}
    assert own_volumes(ec2) >= set(vols) and len(own_volumes(ec2)) == 3  # and the registered one
    wait_completed(ec2, snaps)
    for sid in snaps:
        ec2.delete_snapshot(SnapshotId=sid)
    for vid in vols:
        ec2.delete_volume(VolumeId=vid)


def test_the_largest_size_is_never_a_server_error(service):
    """Size=16384 (16 TiB, EC2's gp2 maximum) on this disk: a 4xx with the reason when the file
    system cannot hold such a file (ext4: EFBIG), or a working volume, never a 5xx."""
    ec2 = service.client("team-1")
    files, vols = volume_files(service), own_volumes(ec2)
    try:
        vid = ec2.create_volume(Size=16384, AvailabilityZone=ZONE)["VolumeId"]
    except ClientError as e:
        status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        assert 400 <= status < 500, e.response
        assert e.response["Error"]["Code"] == "InvalidParameterValue", e.response
        assert "cannot hold a volume" in e.response["Error"]["Message"], e.response
        assert volume_files(service) == files and own_volumes(ec2) == vols
        dh.note("CreateVolume Size=16384 here: 400 InvalidParameterValue (" + e.response["Error"]["Message"] + ")")
    else:
        assert ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]["Size"] == 16384
        ec2.delete_volume(VolumeId=vid)
        dh.note("CreateVolume Size=16384 here: created (the file system holds a 16 TiB sparse file)")
    # With a quota, the quota answers first, before any file is tried.
    set_quota(service, "team-1", "--volume-gib", 1000)
    refused(lambda: ec2.create_volume(Size=16384, AvailabilityZone=ZONE), "VolumeLimitExceeded")
    assert volume_files(service) == files
