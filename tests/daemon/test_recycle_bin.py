"""The Recycle Bin, live (issue #18 item 4): with the AWS CLI v2 (`aws rbin`, `aws ec2
list-snapshots-in-recycle-bin`, `restore-snapshot-from-recycle-bin`) and boto3:
- a snapshot deleted under a tag-level rule leaves DescribeSnapshots, is listed in the bin with
  its retention's end, and a GC keeps its data; restored, it is a snapshot again (tags kept)
  that restores byte-identical to the volume it was taken of (sha256);
- a snapshot no rule keeps is deleted as before (gone for good, GC frees what only it held);
- a catalog rebuild from the store neither resurrects a binned snapshot nor loses it;
- after its retention (the daemon's bin clock moved ahead by --recycle-bin-clock-offset-days,
  never a sleep) GC deletes it for good and frees its data, and it can no longer be restored."""
from __future__ import annotations

import json
import subprocess
import time
from datetime import timedelta

import pytest

import daemon_helpers as dh

GC_GRACE_S = 1  # the service's gc-grace, in seconds

RULE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "rbin:*", "Resource": "arn:aws:rbin:*:${aws:PrincipalAccount}:rule/*"}],
}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    conf_dir = tmp_path_factory.mktemp("conf")
    conf = conf_dir / "snapvold.toml"
    # GC only when asked (POST /api/v1/jobs/run), with a 1 s grace period.
    conf.write_text(f"disable-gc = true\ngc-grace = {GC_GRACE_S}\ndisable-verify = true\n")
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "svc", teams=1, daemon_args=["--config", str(conf)])
        doc = conf_dir / "rbin-manager.json"
        doc.write_text(json.dumps(RULE_POLICY))
        svc.cli("policy", "create", "--name", "rbin-manager", "--document", doc)
        svc.cli("policy", "attach", "--account-id", svc.accounts["team-1"].account_id, "--policy-name", "rbin-manager")
        yield svc
    finally:
        if svc is not None:
            dh.finish_service(svc)


def aws(svc, alias, *args) -> dict:
    res = subprocess.run(["/usr/bin/aws", "--endpoint-url", svc.endpoint, "--profile", f"snapvol-{alias}",
                          "--output", "json", *map(str, args)], capture_output=True, text=True,
                         env=svc.aws_env(), timeout=120)
    assert res.returncode == 0, dh.describe(res)
    return json.loads(res.stdout) if res.stdout.strip() else {}


def aws_error(svc, alias, *args) -> str:
    res = subprocess.run(["/usr/bin/aws", "--endpoint-url", svc.endpoint, "--profile", f"snapvol-{alias}",
                          "--output", "json", *map(str, args)], capture_output=True, text=True,
                         env=svc.aws_env(), timeout=120)
    assert res.returncode != 0, dh.describe(res)
    return res.stderr


def chunk_bytes(svc) -> int:
    return sum(p.stat().st_size for p in (svc.data_dir / "store" / "chunks").rglob("*") if p.is_file())


def snapshot(svc, description, tags=None) -> str:
    ec2 = svc.client("team-1")
    spec = [{"ResourceType": "snapshot", "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()]}]
    sid = ec2.create_snapshot(VolumeId=svc.volumes["vol-team-1"].volume_id, Description=description,
                              **({"TagSpecifications": spec} if tags else {}))["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.1, "MaxAttempts": 600})
    return sid


def run_gc(svc) -> dict:
    # GC keeps whatever is younger than its grace (gc-grace = 1 above): first wait until the
    # newest object in the store is older than that, so what a run may free does not depend
    # on how fast the steps before it ran (on a quiet machine they take under a second).
    newest = max(p.stat().st_mtime for p in (svc.data_dir / "store").rglob("*") if p.is_file())
    time.sleep(max(0.0, newest + GC_GRACE_S + 0.2 - time.time()))
    status, body = svc.signer("admin").json("POST", "/api/v1/jobs/run", {"job": "gc"})
    assert status == 200, body
    run_id = body["run"]["runId"]

    def done():
        st, b = svc.signer("admin").json("GET", f"/api/v1/jobs/{run_id}")
        assert st == 200, b
        assert b["run"]["state"] != "failed", b
        return b["run"] if b["run"]["state"] == "succeeded" else None
    dh.wait_until(done, 120, 0.2, f"gc run {run_id}")
    return done()


def own_snapshots(svc) -> set[str]:
    return {s["SnapshotId"] for s in svc.client("team-1").describe_snapshots(OwnerIds=["self"])["Snapshots"]}


def binned(svc, alias="team-1") -> dict[str, dict]:
    out = aws(svc, alias, "ec2", "list-snapshots-in-recycle-bin")
    return {s["SnapshotId"]: s for s in out.get("Snapshots", [])}


def restore_sha(svc, sid, tmp_path) -> str:
    target = tmp_path / f"{sid}.img"
    svc.cli("restore", "--snapshot-id", sid, "--to", target)
    digest = dh.sha256_file(target)
    target.unlink()
    return digest


def test_bin_keeps_restores_and_finally_deletes(service, tmp_path):
    from botocore.exceptions import ClientError

    vol = service.volumes["vol-team-1"]
    rule = aws(service, "team-1", "rbin", "create-rule", "--resource-type", "EBS_SNAPSHOT", "--description",
               "keep tagged snapshots", "--retention-period", "RetentionPeriodValue=2,RetentionPeriodUnit=DAYS",
               "--resource-tags", "ResourceTagKey=keep,ResourceTagValue=yes")
    assert len(rule["Identifier"]) == 11 and rule["Status"] == "available", rule
    assert rule["RetentionPeriod"] == {"RetentionPeriodValue": 2, "RetentionPeriodUnit": "DAYS"}, rule

    kept_sha = vol.sha256
    kept = snapshot(service, "kept by the bin", {"keep": "yes", "Name": "precious"})
    dh.genvol_mutate(vol.path, 40, seed=7)  # the second snapshot holds data the first does not
    other_sha = dh.sha256_file(vol.path)
    assert other_sha != kept_sha
    plain = snapshot(service, "no rule keeps this", {"keep": "no"})
    held = chunk_bytes(service)

    ec2 = service.client("team-1")
    ec2.delete_snapshot(SnapshotId=kept)
    ec2.delete_snapshot(SnapshotId=plain)
    # Both are gone from DescribeSnapshots; only the one the rule keeps is in the bin.
    assert not {kept, plain} & own_snapshots(service)
    for sid in (kept, plain):
        with pytest.raises(ClientError) as e:
            ec2.describe_snapshots(SnapshotIds=[sid])
        assert e.value.response["Error"]["Code"] == "InvalidSnapshot.NotFound"
    in_bin = binned(service)
    assert set(in_bin) == {kept}, in_bin
    entry = in_bin[kept]
    assert entry["VolumeId"] == vol.volume_id and entry["Description"] == "kept by the bin", entry
    from datetime import datetime
    enter = datetime.fromisoformat(entry["RecycleBinEnterTime"].replace("Z", "+00:00"))
    exit_ = datetime.fromisoformat(entry["RecycleBinExitTime"].replace("Z", "+00:00"))
    assert exit_ - enter == timedelta(days=2), entry
    # boto3 sees the same, also by id; another id is not listed.
    listed = ec2.list_snapshots_in_recycle_bin(SnapshotIds=[kept])["Snapshots"]
    assert [s["SnapshotId"] for s in listed] == [kept]
    assert ec2.list_snapshots_in_recycle_bin(SnapshotIds=[plain])["Snapshots"] == []
    with pytest.raises(ClientError) as e:
        service.client("team-1", validate=False).list_snapshots_in_recycle_bin(MaxResults=4)
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    # The store: the binned root is under bin/, the other under deleted/.
    store = service.data_dir / "store"
    assert (store / "bin" / kept).exists() and not (store / "manifests" / kept).exists()
    assert (store / "deleted" / plain).exists()

    # GC frees what only the deleted snapshot held and keeps the binned one's data.
    gc = run_gc(service)
    assert gc["bytesFreed"] > 0, gc
    after_gc = chunk_bytes(service)
    assert 0 < after_gc < held, (after_gc, held)
    assert not (store / "deleted" / plain).exists()

    # A catalog rebuild from the store keeps the bin as it is.
    service.daemon.stop()
    rebuilt = service.cli("catalog", "rebuild").stdout
    assert "1 in the Recycle Bin" in rebuilt, rebuilt
    service.daemon.start()
    ec2 = service.client("team-1")  # the restarted daemon listens on another port
    assert kept not in own_snapshots(service)
    assert set(binned(service)) == {kept}

    # Restored: a snapshot again, with its tags, byte-identical to the volume it was taken of.
    out = aws(service, "team-1", "ec2", "restore-snapshot-from-recycle-bin", "--snapshot-id", kept)
    assert out["SnapshotId"] == kept and out["State"] == "completed" and out["VolumeId"] == vol.volume_id, out
    assert binned(service) == {}
    snap = ec2.describe_snapshots(SnapshotIds=[kept])["Snapshots"][0]
    assert dh.tags_of(snap) == {"keep": "yes", "Name": "precious"}, snap
    assert restore_sha(service, kept, tmp_path) == kept_sha
    err = aws_error(service, "team-1", "ec2", "restore-snapshot-from-recycle-bin", "--snapshot-id", kept)
    assert "InvalidSnapshot.NotFound" in err, err
    with pytest.raises(ClientError) as e:
        ec2.restore_snapshot_from_recycle_bin(SnapshotId=plain)
    assert e.value.response["Error"]["Code"] == "InvalidSnapshot.NotFound"

    # Binned again; once its retention has ended, GC deletes it for good and frees its data.
    ec2.delete_snapshot(SnapshotId=kept)
    assert set(binned(service)) == {kept}
    service.daemon.stop()
    service.daemon.extra_args += ["--recycle-bin-clock-offset-days", "3"]
    service.daemon.start()
    ec2 = service.client("team-1")
    assert set(binned(service)) == {kept}  # the API's clock is the real one: still listed
    gc = run_gc(service)
    assert kept in gc["message"] and "Recycle Bin retention ended" in gc["message"], gc
    assert binned(service) == {}
    assert chunk_bytes(service) < after_gc // 10, (chunk_bytes(service), after_gc)
    assert not (store / "bin" / kept).exists() and not (store / "deleted" / kept).exists()
    with pytest.raises(ClientError) as e:
        ec2.restore_snapshot_from_recycle_bin(SnapshotId=kept)
    assert e.value.response["Error"]["Code"] == "InvalidSnapshot.NotFound"
    assert kept not in own_snapshots(service)


def test_without_a_rule_deletion_is_as_before_and_members_restore_only_their_own(service):
    from botocore.exceptions import ClientError

    ec2 = service.client("team-1")
    for r in aws(service, "team-1", "rbin", "list-rules", "--resource-type", "EBS_SNAPSHOT")["Rules"]:
        aws(service, "team-1", "rbin", "delete-rule", "--identifier", r["Identifier"])
    sid = snapshot(service, "no rule at all", {"keep": "yes"})
    ec2.delete_snapshot(SnapshotId=sid)
    assert binned(service) == {}
    assert (service.data_dir / "store" / "deleted" / sid).exists()
    with pytest.raises(ClientError) as e:
        ec2.restore_snapshot_from_recycle_bin(SnapshotId=sid)
    assert e.value.response["Error"]["Code"] == "InvalidSnapshot.NotFound"

    # An account-level rule with an exclusion tag: kept unless excluded.
    rule = aws(service, "team-1", "rbin", "create-rule", "--resource-type", "EBS_SNAPSHOT",
               "--retention-period", "RetentionPeriodValue=5,RetentionPeriodUnit=DAYS")
    keep, skip = snapshot(service, "account-level"), snapshot(service, "excluded", {"scratch": "1"})
    status, _, raw = service.signer("team-1").send(
        json.dumps({"ExcludeResourceTags": [{"ResourceTagKey": "scratch"}]}), method="PATCH",
        path=f"/rules/{rule['Identifier']}", service="rbin", content_type="application/json")
    assert status == 200 and json.loads(raw)["ExcludeResourceTags"] == [{"ResourceTagKey": "scratch"}], raw
    ec2.delete_snapshot(SnapshotId=keep)
    ec2.delete_snapshot(SnapshotId=skip)
    assert set(binned(service)) == {keep}

    # Another account sees none of it and cannot restore it; the administrator can.
    service.add_account("team-3")
    other = service.client("team-3")
    assert other.list_snapshots_in_recycle_bin()["Snapshots"] == []
    with pytest.raises(ClientError) as e:
        other.restore_snapshot_from_recycle_bin(SnapshotId=keep)
    assert e.value.response["Error"]["Code"] == "InvalidSnapshot.NotFound"
    admin = service.client("admin")
    assert keep in {s["SnapshotId"] for s in admin.list_snapshots_in_recycle_bin()["Snapshots"]}
    with pytest.raises(ClientError) as e:
        ec2.restore_snapshot_from_recycle_bin(SnapshotId=keep, DryRun=True)
    assert e.value.response["Error"]["Code"] == "DryRunOperation"
    assert admin.restore_snapshot_from_recycle_bin(SnapshotId=keep)["SnapshotId"] == keep
    assert keep in own_snapshots(service)
