"""Lifecycle policies through Amazon DLM's API: the AWS CLI (v2 and v1) and boto3 create, read,
update and delete them; malformed policies get DLM's error and change nothing; every account
has its daily default policy; and a policy whose time comes during the test really runs:
snapshots made, tagged, counted in the run history (`snapvol policy runs` and the API)."""
from __future__ import annotations

import json
import os
import time

import pytest
from botocore.exceptions import ClientError

import daemon_helpers as dh

_V1 = dh.find_aws_v1()
ROLE = "arn:aws:iam::123456789012:role/AWSDataLifecycleManagerDefaultRole"


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "svc", daemon_args=["--default-retention", "4"])
        yield svc
    finally:
        if svc is not None:
            dh.finish_service(svc)


@pytest.fixture(params=[2, 1], ids=["cli-v2", "cli-v1"], scope="module")
def aws(request):
    if request.param == 2:
        return dh.AwsCli(dh.AWS_V2, 2)
    if _V1 is None:
        pytest.skip("no AWS CLI v1 on PATH besides /usr/bin/aws")
    return dh.AwsCli(_V1, 1)


def details(tag_value: str, *, time_of_day: str = "03:00", count: int = 5) -> dict:
    return {"ResourceTypes": ["VOLUME"],
            "TargetTags": [{"Key": "Name", "Value": tag_value}],
            "Schedules": [{"Name": "daily", "CopyTags": True,
                           "TagsToAdd": [{"Key": "made-by", "Value": "dlm"}],
                           "CreateRule": {"Interval": 24, "IntervalUnit": "HOURS", "Times": [time_of_day]},
                           "RetainRule": {"Count": count}}]}


def policies_of(svc, alias) -> dict:
    out = dh.dlm_client(svc, alias).get_lifecycle_policies()["Policies"]
    return {p["PolicyId"]: p for p in out}


def test_every_account_has_its_daily_default_policy(service):
    def defaults():
        return [p for p in policies_of(service, "team-1").values()
                if p.get("Tags", {}).get("snapvol:default-policy") == "true"]
    dh.wait_until(lambda: len(defaults()) == 1, 10, 0.1, "the default policy of team-1")
    pid = defaults()[0]["PolicyId"]
    pol = dh.dlm_client(service, "team-1").get_lifecycle_policy(PolicyId=pid)["Policy"]
    assert pol["State"] == "ENABLED" and pol["Description"] == "daily-0200-utc"
    sched = pol["PolicyDetails"]["Schedules"][0]
    assert sched["CreateRule"] == {"Interval": 24, "IntervalUnit": "HOURS", "Times": ["02:00"]}
    assert sched["RetainRule"] == {"Count": 4}  # the daemon's --default-retention
    listed = json.loads(service.cli("-o", "json", "policy", "list").stdout)["Policies"]
    assert any(p.get("PolicyId") == pid and p["Default"] for p in listed)


def test_create_get_update_delete_with_the_aws_cli(service, aws, tmp_path):
    pd = tmp_path / "details.json"
    pd.write_text(json.dumps(details("vol-team-1")))
    made = aws.ok(service, "team-1", "dlm", "create-lifecycle-policy", "--execution-role-arn", ROLE,
                  "--description", "nightly backups", "--state", "ENABLED",
                  "--policy-details", f"file://{pd}", "--tags", "team=one")
    pid = made["PolicyId"]
    got = aws.ok(service, "team-1", "dlm", "get-lifecycle-policy", "--policy-id", pid)["Policy"]
    assert got["Description"] == "nightly backups" and got["State"] == "ENABLED"
    assert got["PolicyDetails"]["Schedules"][0]["RetainRule"] == {"Count": 5}
    assert got["Tags"] == {"team": "one"} and got["PolicyArn"].endswith(f":policy/{pid}")
    listed = aws.ok(service, "team-1", "dlm", "get-lifecycle-policies", "--state", "ENABLED")["Policies"]
    assert pid in [p["PolicyId"] for p in listed]
    by_tag = aws.ok(service, "team-1", "dlm", "get-lifecycle-policies", "--target-tags", "Name=vol-team-1")["Policies"]
    assert [p["PolicyId"] for p in by_tag] == [pid]
    # Update: disable, then change the retention.
    aws.ok(service, "team-1", "dlm", "update-lifecycle-policy", "--policy-id", pid, "--state", "DISABLED")
    pd.write_text(json.dumps(details("vol-team-1", count=9)))
    aws.ok(service, "team-1", "dlm", "update-lifecycle-policy", "--policy-id", pid, "--policy-details", f"file://{pd}")
    got = aws.ok(service, "team-1", "dlm", "get-lifecycle-policy", "--policy-id", pid)["Policy"]
    assert got["State"] == "DISABLED" and got["PolicyDetails"]["Schedules"][0]["RetainRule"] == {"Count": 9}
    # Another team does not see it.
    msg = aws.error(service, "team-2", "dlm", "get-lifecycle-policy", "--policy-id", pid, code="ResourceNotFoundException")
    assert pid in msg
    aws.error(service, "team-2", "dlm", "delete-lifecycle-policy", "--policy-id", pid, code="ResourceNotFoundException")
    # Delete, twice.
    aws.ok(service, "team-1", "dlm", "delete-lifecycle-policy", "--policy-id", pid)
    aws.error(service, "team-1", "dlm", "delete-lifecycle-policy", "--policy-id", pid, code="ResourceNotFoundException")


BAD_DETAILS = [
    ({"ResourceTypes": ["VOLUME"], "TargetTags": [{"Key": "a", "Value": "b"}],
      "Schedules": [{"Name": "x", "CreateRule": {"Interval": 5, "IntervalUnit": "HOURS"},
                     "RetainRule": {"Count": 1}}]}, "Interval"),
    ({"ResourceTypes": ["VOLUME"],
      "Schedules": [{"Name": "x", "CreateRule": {"Interval": 24, "IntervalUnit": "HOURS"},
                     "RetainRule": {"Count": 1}}]}, "TargetTags"),
    ({"ResourceTypes": ["VOLUME"], "TargetTags": [{"Key": "a", "Value": "b"}],
      "Schedules": [{"Name": "x", "CreateRule": {"CronExpression": "cron(0 2 * * * *)"},
                     "RetainRule": {"Count": 1}}]}, "'?'"),
    ({"ResourceTypes": ["VOLUME"], "TargetTags": [{"Key": "a", "Value": "b"}],
      "Schedules": [{"Name": "x", "CreateRule": {"Interval": 24, "IntervalUnit": "HOURS", "Times": ["24:00"]},
                     "RetainRule": {"Count": 1}}]}, "24:00"),
    ({"ResourceTypes": ["VOLUME"], "TargetTags": [{"Key": "a", "Value": "b"}],
      "Schedules": [{"Name": "x", "CreateRule": {"Interval": 24, "IntervalUnit": "HOURS"},
                     "RetainRule": {"Count": 2, "Interval": 3, "IntervalUnit": "DAYS"}}]}, "mutually exclusive"),
]


@pytest.mark.parametrize("bad,mentions", BAD_DETAILS)
def test_malformed_policy_gets_dlms_error_and_changes_nothing(service, bad, mentions):
    dlm = dh.dlm_client(service, "team-1")
    keep = dlm.create_lifecycle_policy(ExecutionRoleArn=ROLE, Description="keep", State="ENABLED",
                                       PolicyDetails=details("nothing-matches"))["PolicyId"]
    before = policies_of(service, "team-1")
    with pytest.raises(ClientError) as e:
        dlm.create_lifecycle_policy(ExecutionRoleArn=ROLE, Description="bad", State="ENABLED", PolicyDetails=bad)
    err = e.value.response["Error"]
    assert err["Code"] == "InvalidRequestException" and mentions in err["Message"], err
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as e:
        dlm.update_lifecycle_policy(PolicyId=keep, PolicyDetails=bad)
    assert e.value.response["Error"]["Code"] == "InvalidRequestException"
    assert policies_of(service, "team-1") == before
    after = dlm.get_lifecycle_policy(PolicyId=keep)["Policy"]["PolicyDetails"]
    assert after == details("nothing-matches")
    dlm.delete_lifecycle_policy(PolicyId=keep)


def test_raw_bad_requests(service):
    acct = service.accounts["team-1"]
    s = dh.Signer(service.endpoint, acct.access_key_id, acct.secret_access_key)
    status, _, raw = s.send(b"{nope", method="POST", path="/policies", service="dlm", content_type="application/json")
    assert status == 400 and json.loads(raw)["Code"] == "InvalidRequestException"
    status, headers, raw = s.send(json.dumps({"Description": "x"}).encode(), method="POST", path="/policies",
                                  service="dlm", content_type="application/json")
    assert status == 400 and headers["x-amzn-errortype"] == "InvalidRequestException"
    assert "ExecutionRoleArn" in json.loads(raw)["Message"]
    # Signed for the wrong service, or with a wrong secret.
    status, _, raw = s.send(b"", method="GET", path="/policies", service="ec2")
    assert status == 403 and json.loads(raw)["Code"] == "InvalidSignatureException"
    status, _, raw = s.send(b"", method="GET", path="/policies", service="dlm", secret="x" * 40)
    assert status == 403
    # GetLifecyclePolicies: lists as repeated names work; what it cannot apply is refused by name.
    for tag in ("raw-a", "raw-b"):
        body = {"ExecutionRoleArn": "arn:aws:iam::1:role/dlm", "Description": "raw " + tag[-1], "State": "ENABLED",
                "PolicyDetails": details(tag)}
        status, _, raw = s.send(json.dumps(body).encode(), method="POST", path="/policies", service="dlm",
                                content_type="application/json")
        assert status == 200, raw
    status, _, raw = s.send(b"", method="GET", path="/policies", service="dlm")
    ids = [p["PolicyId"] for p in json.loads(raw)["Policies"]]
    assert status == 200 and len(ids) >= 2
    query = "&".join(f"policyIds={i}" for i in ids + ["policy-00000000000000000"])
    status, _, raw = s.send(b"", method="GET", path="/policies", service="dlm", query=query)
    assert status == 200 and sorted(p["PolicyId"] for p in json.loads(raw)["Policies"]) == sorted(ids)
    for bad, word in (("defaultPolicyType=VOLUME", "defaultPolicyType"), ("resourceTypes=DISK", "resourceTypes"),
                      ("targetTags=novalue", "key=value"), ("policyId=x", "policyId"), ("state=ENABLED&state=X", "state")):
        status, _, raw = s.send(b"", method="GET", path="/policies", service="dlm", query=bad)
        assert status == 400 and json.loads(raw)["Code"] == "InvalidRequestException" and word in json.loads(raw)["Message"], \
            (bad, raw)


def test_a_policy_runs_when_its_time_comes(service):
    """A schedule for a minute that comes in ~10 s on the schedules' clock (the daemon restarted
    with --schedule-clock-offset-seconds): the daemon's own scheduler runs it."""
    vol = service.volumes["vol-team-2"]
    at = dh.schedule_soon(service)
    d = details("vol-team-2", time_of_day=at.strftime("%H:%M"), count=1)
    d["Schedules"][0]["CreateRule"]["Interval"] = 1  # hourly from that minute on
    dlm = dh.dlm_client(service, "team-2")
    pid = dlm.create_lifecycle_policy(ExecutionRoleArn=ROLE, Description="soon", State="ENABLED",
                                      PolicyDetails=d)["PolicyId"]
    acct = service.accounts["team-2"]
    signer = dh.Signer(service.endpoint, acct.access_key_id, acct.secret_access_key)

    def runs():
        status, _, raw = signer.send(b"", method="GET", path=f"/policies/{pid}/runs", service="dlm")
        assert status == 200, raw
        return json.loads(raw)["Runs"]

    dh.wait_until(lambda: runs() and runs()[0]["State"] != "running", 90, 0.5, "the policy's run")
    run = runs()[0]
    assert run["State"] == "succeeded", run
    assert run["SnapshotsCreated"] == 1 and run["SnapshotsFailed"] == 0 and run["MissedRuns"] == 0
    assert run["ScheduledTime"].startswith(at.strftime("%Y-%m-%dT%H:%M:00"))
    ec2 = service.client("team-2")
    snaps = ec2.describe_snapshots(OwnerIds=["self"], Filters=[{"Name": "tag:aws:dlm:lifecycle-policy-id", "Values": [pid]}])["Snapshots"]
    assert len(snaps) == 1 and snaps[0]["State"] == "completed" and snaps[0]["VolumeId"] == vol.volume_id
    tags = dh.tags_of(snaps[0])
    assert tags["Name"] == "vol-team-2" and tags["made-by"] == "dlm" and tags["aws:dlm:lifecycle-schedule-name"] == "daily"
    assert "automatic" in snaps[0]["Description"]
    # A manual snapshot of the same volume is not the policy's.
    manual = ec2.create_snapshot(VolumeId=vol.volume_id, Description="by hand")["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[manual], WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
    assert "aws:dlm:lifecycle-policy-id" not in dh.tags_of(ec2.describe_snapshots(SnapshotIds=[manual])["Snapshots"][0])
    # The run history from the command line too.
    out = json.loads(service.cli("-o", "json", "policy", "runs", "--policy-id", pid).stdout)["Runs"]
    assert out[0]["SnapshotsCreated"] == 1 and out[0]["State"] == "succeeded"
    # The policy's tags are the system's, as AWS DLM's are: DeleteTags without Tag.N (what a
    # purge does) keeps them, and the run's time is one of them.
    ec2.delete_tags(Resources=[snaps[0]["SnapshotId"]])
    left = dh.tags_of(ec2.describe_snapshots(SnapshotIds=[snaps[0]["SnapshotId"]])["Snapshots"][0])
    assert set(left) == {"aws:dlm:lifecycle-policy-id", "aws:dlm:lifecycle-schedule-name", "aws:snapvol:lifecycle-run"}, left
    assert left["aws:dlm:lifecycle-policy-id"] == pid and left["aws:dlm:lifecycle-schedule-name"] == "daily", left
    dlm.update_lifecycle_policy(PolicyId=pid, State="DISABLED")


def test_users_cannot_forge_the_policy_tags_retention_trusts(service):
    ec2 = service.client("team-1")
    vol = service.volumes["vol-team-1"].volume_id
    with pytest.raises(ClientError) as e:
        ec2.create_snapshot(VolumeId=vol, TagSpecifications=[
            {"ResourceType": "snapshot", "Tags": [{"Key": "aws:dlm:lifecycle-policy-id", "Value": "policy-00000000000000000"}]}])
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    sid = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    with pytest.raises(ClientError) as e:
        ec2.create_tags(Resources=[sid], Tags=[{"Key": "aws:dlm:lifecycle-schedule-name", "Value": "daily"}])
    assert e.value.response["Error"]["Code"] == "InvalidParameterValue"
    assert "reserved for internal use" in e.value.response["Error"]["Message"]
    snap = ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]
    # No system tag on a manual snapshot through EC2 (how it was cut is kept in the catalog and
    # shown as members of the snapshot, not as tags).
    assert {t["Key"] for t in snap.get("Tags") or [] if t["Key"].startswith("aws:")} == set()
    assert set(dh.cut_tags(service, sid)) == set(dh.CUT_TAGS)
