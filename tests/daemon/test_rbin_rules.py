"""Recycle Bin retention rules over the rbin REST-JSON API (SigV4 service "rbin"), with boto3's
rbin client, the AWS CLI v2 and hand-signed requests:
- create, get, list (paginated), update, delete; tags on rules by ARN; /tags/{arn} goes to DLM
  or the Recycle Bin by the signature's service;
- AWS's bounds and errors: ValidationException with its Reason, ResourceNotFoundException,
  ConflictException (INVALID_RULE_STATE), AccessDeniedException, each with x-amzn-ErrorType;
- a locked rule is neither modified, loosened nor deleted, by the team or an administrator,
  until its unlock delay has passed (LockEndTime); tag-level rules cannot be locked;
- rights: the built-in member policy reads its own rules only; an administrator sees every
  account's; other accounts never see a rule;
- the daemon's default rule (--recycle-bin-default-retention-days 7) bins every account's
  deleted snapshots for 7 days."""
from __future__ import annotations

import json
import subprocess

from datetime import datetime, timedelta, timezone

import pytest

import daemon_helpers as dh

RULE_POLICY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "rbin:*", "Resource": "arn:aws:rbin:*:${aws:PrincipalAccount}:rule/*"}],
}
DAYS = {"RetentionPeriodUnit": "DAYS"}


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    conf_dir = tmp_path_factory.mktemp("conf")
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "svc", teams=2,
                              daemon_args=["--recycle-bin-default-retention-days", "7", "--disable-gc"])
        doc = conf_dir / "rbin-manager.json"
        doc.write_text(json.dumps(RULE_POLICY))
        svc.cli("policy", "create", "--name", "rbin-manager", "--document", doc)
        svc.cli("policy", "attach", "--account-id", svc.accounts["team-1"].account_id, "--policy-name", "rbin-manager")
        yield svc
    finally:
        if svc is not None:
            dh.finish_service(svc)


def rbin(svc, alias="team-1", validate=True):
    import boto3
    from botocore.config import Config
    acct = svc.accounts[alias]
    session = boto3.session.Session(aws_access_key_id=acct.access_key_id,
                                    aws_secret_access_key=acct.secret_access_key, region_name=dh.REGION)
    return session.client("rbin", endpoint_url=svc.endpoint,
                          config=Config(retries={"max_attempts": 1, "mode": "standard"}, parameter_validation=validate))


def raw(svc, alias, method, path, body=None, service="rbin", query=""):
    data = b"" if body is None else json.dumps(body).encode()
    status, headers, out = svc.signer(alias).send(data, method=method, path=path, service=service, query=query,
                                                  content_type="application/json")
    return status, {k.lower(): v for k, v in headers.items()}, (json.loads(out) if out else None)


def fails(call, code, reason=None):
    from botocore.exceptions import ClientError
    with pytest.raises(ClientError) as e:
        call()
    resp = e.value.response
    assert resp["Error"]["Code"] == code, resp
    if reason:
        assert resp.get("Reason") == reason, resp
    return resp["Error"]["Message"]


def test_rules_crud_paging_and_tags(service):
    c = rbin(service)
    made = c.create_rule(ResourceType="EBS_SNAPSHOT", Description="tagged ones",
                         RetentionPeriod={"RetentionPeriodValue": 14, **DAYS},
                         ResourceTags=[{"ResourceTagKey": "env", "ResourceTagValue": "prod"}],
                         Tags=[{"Key": "team", "Value": "one"}])
    rid = made["Identifier"]
    assert made["ResponseMetadata"]["HTTPStatusCode"] == 201 and made["Status"] == "available", made
    assert made["Tags"] == [{"Key": "team", "Value": "one"}] and "LockState" not in made, made
    got = c.get_rule(Identifier=rid)
    assert got["RetentionPeriod"] == {"RetentionPeriodValue": 14, **DAYS}, got
    assert got["ResourceTags"] == [{"ResourceTagKey": "env", "ResourceTagValue": "prod"}], got
    arn = f"arn:aws:rbin:{dh.REGION}:{service.accounts['team-1'].account_id}:rule/{rid}"
    status, _, body = raw(service, "team-1", "GET", f"/rules/{rid}")
    assert status == 200 and body["RuleArn"] == arn, body

    upd = c.update_rule(Identifier=rid, RetentionPeriod={"RetentionPeriodValue": 3, **DAYS}, Description="shorter")
    assert upd["RetentionPeriod"]["RetentionPeriodValue"] == 3 and upd["Description"] == "shorter", upd
    assert c.get_rule(Identifier=rid)["RetentionPeriod"]["RetentionPeriodValue"] == 3

    # Tags on the rule, by its ARN (percent-encoded in the path by botocore).
    c.tag_resource(ResourceArn=arn, Tags=[{"Key": "owner", "Value": "ops"}, {"Key": "team", "Value": "uno"}])
    tags = {t["Key"]: t["Value"] for t in c.list_tags_for_resource(ResourceArn=arn)["Tags"]}
    assert tags == {"team": "uno", "owner": "ops"}, tags
    c.untag_resource(ResourceArn=arn, TagKeys=["team"])
    assert c.list_tags_for_resource(ResourceArn=arn)["Tags"] == [{"Key": "owner", "Value": "ops"}]
    # The same path signed for DLM goes to DLM, which has no such rule.
    status, headers, body = raw(service, "team-1", "GET", "/tags/" + arn.replace(":", "%3A").replace("/", "%2F"),
                                service="dlm")
    assert status == 400 and headers["x-amzn-errortype"] == "InvalidRequestException", (status, body)

    # Paging: three more rules, walked one at a time by the paginator, each once.
    more = [c.create_rule(ResourceType="EBS_SNAPSHOT", RetentionPeriod={"RetentionPeriodValue": 1 + i, **DAYS},
                          ResourceTags=[{"ResourceTagKey": f"k{i}"}])["Identifier"] for i in range(3)]
    seen = []
    for page in c.get_paginator("list_rules").paginate(ResourceType="EBS_SNAPSHOT", PaginationConfig={"PageSize": 1}):
        assert len(page["Rules"]) <= 1, page
        seen += [r["Identifier"] for r in page["Rules"]]
    assert sorted(seen) == sorted([rid, *more]) and len(seen) == 4, seen
    only = c.list_rules(ResourceType="EBS_SNAPSHOT", ResourceTags=[{"ResourceTagKey": "k1"}])["Rules"]
    assert [r["Identifier"] for r in only] == [more[1]], only
    fails(lambda: c.list_rules(ResourceType="EBS_SNAPSHOT", NextToken="bm90LWEtdG9rZW4="),
          "ValidationException", "INVALID_PAGE_TOKEN")

    for r in [rid, *more]:
        assert c.delete_rule(Identifier=r)["ResponseMetadata"]["HTTPStatusCode"] == 204
    fails(lambda: c.get_rule(Identifier=rid), "ResourceNotFoundException", "RULE_NOT_FOUND")
    assert c.list_rules(ResourceType="EBS_SNAPSHOT")["Rules"] == []


@pytest.mark.parametrize("body, mentions", [
    ({"ResourceType": "EBS_SNAPSHOT", "RetentionPeriod": {"RetentionPeriodValue": 0, **DAYS}}, "1 to 3650"),
    ({"ResourceType": "EBS_SNAPSHOT", "RetentionPeriod": {"RetentionPeriodValue": 3651, **DAYS}}, "1 to 3650"),
    ({"ResourceType": "EBS_SNAPSHOT", "RetentionPeriod": {"RetentionPeriodValue": 5, "RetentionPeriodUnit": "WEEKS"}}, "DAYS"),
    ({"ResourceType": "EC2_IMAGE", "RetentionPeriod": {"RetentionPeriodValue": 5, **DAYS}}, "EC2_IMAGE"),
    ({"ResourceType": "EBS_VOLUME", "RetentionPeriod": {"RetentionPeriodValue": 5, **DAYS}}, "EBS_VOLUME"),
    ({"RetentionPeriod": {"RetentionPeriodValue": 5, **DAYS}}, "ResourceType"),
    ({"ResourceType": "EBS_SNAPSHOT", "RetentionPeriod": {"RetentionPeriodValue": 5, **DAYS}, "Colour": "red"}, "Colour"),
    ({"ResourceType": "EBS_SNAPSHOT", "RetentionPeriod": {"RetentionPeriodValue": 5, **DAYS},
      "LockConfiguration": {"UnlockDelay": {"UnlockDelayValue": 6, "UnlockDelayUnit": "DAYS"}}}, "7 to 30"),
    ({"ResourceType": "EBS_SNAPSHOT", "RetentionPeriod": {"RetentionPeriodValue": 5, **DAYS},
      "ResourceTags": [{"ResourceTagKey": "a"}],
      "LockConfiguration": {"UnlockDelay": {"UnlockDelayValue": 7, "UnlockDelayUnit": "DAYS"}}}, "account-level"),
    ({"ResourceType": "EBS_SNAPSHOT", "RetentionPeriod": {"RetentionPeriodValue": 5, **DAYS},
      "ResourceTags": [{"ResourceTagKey": "a"}], "ExcludeResourceTags": [{"ResourceTagKey": "b"}]}, "ExcludeResourceTags"),
    ({"ResourceType": "EBS_SNAPSHOT", "RetentionPeriod": {"RetentionPeriodValue": 5, **DAYS},
      "ExcludeResourceTags": [{"ResourceTagKey": f"x{i}"} for i in range(6)]}, "at most 5"),
    ({"ResourceType": "EBS_SNAPSHOT", "RetentionPeriod": {"RetentionPeriodValue": 5, **DAYS},
      "Description": "x" * 256}, "255"),
])
def test_bad_rules_get_validation_exceptions_and_change_nothing(service, body, mentions):
    status, headers, out = raw(service, "team-1", "POST", "/rules", body)
    assert status == 400 and headers["x-amzn-errortype"] == "ValidationException", (status, out)
    assert out["Reason"] == "INVALID_PARAMETER_VALUE" and mentions in out["Message"], out
    assert rbin(service).list_rules(ResourceType="EBS_SNAPSHOT")["Rules"] == []


def test_a_locked_rule_cannot_be_loosened_or_deleted(service):
    c, admin = rbin(service), rbin(service, "admin")
    lock = {"UnlockDelay": {"UnlockDelayValue": 7, "UnlockDelayUnit": "DAYS"}}
    made = c.create_rule(ResourceType="EBS_SNAPSHOT", RetentionPeriod={"RetentionPeriodValue": 30, **DAYS},
                         LockConfiguration=lock)
    rid = made["Identifier"]
    assert made["LockState"] == "locked" and made["LockConfiguration"] == lock, made
    for who in (c, admin):
        fails(lambda: who.update_rule(Identifier=rid, RetentionPeriod={"RetentionPeriodValue": 1, **DAYS}),
              "ConflictException", "INVALID_RULE_STATE")
        fails(lambda: who.update_rule(Identifier=rid, ResourceTags=[{"ResourceTagKey": "only-these"}]),
              "ConflictException", "INVALID_RULE_STATE")
        fails(lambda: who.delete_rule(Identifier=rid), "ConflictException", "INVALID_RULE_STATE")
    status, headers, out = raw(service, "team-1", "DELETE", f"/rules/{rid}")
    assert status == 409 and headers["x-amzn-errortype"] == "ConflictException", (status, out)
    assert c.get_rule(Identifier=rid)["RetentionPeriod"]["RetentionPeriodValue"] == 30

    # Unlocking starts the delay; the rule stays untouchable until it ends.
    before = datetime.now(timezone.utc)
    un = c.unlock_rule(Identifier=rid)
    assert un["LockState"] == "pending_unlock", un
    end = un["LockEndTime"]
    assert timedelta(days=7) - timedelta(seconds=5) <= end - before <= timedelta(days=7, seconds=5), (end, before)
    fails(lambda: c.update_rule(Identifier=rid, RetentionPeriod={"RetentionPeriodValue": 1, **DAYS}),
          "ConflictException", "INVALID_RULE_STATE")
    fails(lambda: c.delete_rule(Identifier=rid), "ConflictException", "INVALID_RULE_STATE")
    fails(lambda: c.unlock_rule(Identifier=rid), "ConflictException", "INVALID_RULE_STATE")
    assert c.list_rules(ResourceType="EBS_SNAPSHOT", LockState="pending_unlock")["Rules"][0]["Identifier"] == rid
    assert c.list_rules(ResourceType="EBS_SNAPSHOT", LockState="locked")["Rules"] == []
    # Re-locked during the delay: locked again, the delay unchanged.
    again = c.lock_rule(Identifier=rid, LockConfiguration=lock)
    assert again["LockState"] == "locked", again
    fails(lambda: c.lock_rule(Identifier=rid, LockConfiguration=lock), "ConflictException", "INVALID_RULE_STATE")

    # Tag-level rules cannot be locked.
    tagged = c.create_rule(ResourceType="EBS_SNAPSHOT", RetentionPeriod={"RetentionPeriodValue": 2, **DAYS},
                           ResourceTags=[{"ResourceTagKey": "a"}])["Identifier"]
    fails(lambda: c.lock_rule(Identifier=tagged, LockConfiguration=lock), "ConflictException", "INVALID_RULE_STATE")
    # A never-locked rule is freely changed and deleted.
    c.update_rule(Identifier=tagged, RetentionPeriod={"RetentionPeriodValue": 1, **DAYS})
    c.delete_rule(Identifier=tagged)


def test_member_and_administrator_rights(service):
    team1, team2, admin = rbin(service), rbin(service, "team-2"), rbin(service, "admin")
    rid = team1.create_rule(ResourceType="EBS_SNAPSHOT", RetentionPeriod={"RetentionPeriodValue": 9, **DAYS},
                            ResourceTags=[{"ResourceTagKey": "rights"}])["Identifier"]
    # The built-in member policy reads its own account's rules and changes none.
    fails(lambda: team2.create_rule(ResourceType="EBS_SNAPSHOT", RetentionPeriod={"RetentionPeriodValue": 1, **DAYS}),
          "AccessDeniedException")
    assert team2.list_rules(ResourceType="EBS_SNAPSHOT")["Rules"] == []
    # Another account's rule does not exist for it, whatever the call.
    fails(lambda: team2.get_rule(Identifier=rid), "ResourceNotFoundException", "RULE_NOT_FOUND")
    fails(lambda: team2.delete_rule(Identifier=rid), "ResourceNotFoundException", "RULE_NOT_FOUND")
    arn = f"arn:aws:rbin:{dh.REGION}:{service.accounts['team-1'].account_id}:rule/{rid}"
    fails(lambda: team2.list_tags_for_resource(ResourceArn=arn), "ResourceNotFoundException")
    # An administrator sees and manages every account's rules.
    assert admin.get_rule(Identifier=rid)["RetentionPeriod"]["RetentionPeriodValue"] == 9
    admin.update_rule(Identifier=rid, RetentionPeriod={"RetentionPeriodValue": 10, **DAYS})
    assert team1.get_rule(Identifier=rid)["RetentionPeriod"]["RetentionPeriodValue"] == 10
    # Unsigned for the wrong service: refused.
    status, headers, out = raw(service, "team-1", "GET", f"/rules/{rid}", service="dlm")
    assert status == 403 and headers["x-amzn-errortype"] == "UnrecognizedClientException", (status, out)
    team1.delete_rule(Identifier=rid)


def test_the_configured_default_rule_bins_every_accounts_deletions(service):
    # The AWS CLI v2 sees no rule (the default is the daemon's, not the account's) ...
    res = subprocess.run(["/usr/bin/aws", "--endpoint-url", service.endpoint, "--profile", "snapvol-team-2",
                          "rbin", "list-rules", "--resource-type", "EBS_SNAPSHOT"],
                         capture_output=True, text=True, env=service.aws_env(), timeout=120)
    assert res.returncode == 0 and json.loads(res.stdout)["Rules"] == [], dh.describe(res)
    # ... yet a deleted snapshot of team-2 is kept for 7 days.
    ec2 = service.client("team-2")
    sid = ec2.create_snapshot(VolumeId=service.volumes["vol-team-2"].volume_id)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.1, "MaxAttempts": 600})
    ec2.delete_snapshot(SnapshotId=sid)
    listed = ec2.list_snapshots_in_recycle_bin()["Snapshots"]
    assert [s["SnapshotId"] for s in listed] == [sid], listed
    assert listed[0]["RecycleBinExitTime"] - listed[0]["RecycleBinEnterTime"] == timedelta(days=7), listed
    # The longest rule of the account (45 days; the locked test leaves one of 30) wins over the default.
    c = rbin(service)
    rid = c.create_rule(ResourceType="EBS_SNAPSHOT", RetentionPeriod={"RetentionPeriodValue": 45, **DAYS})["Identifier"]
    ec1 = service.client("team-1")
    sid1 = ec1.create_snapshot(VolumeId=service.volumes["vol-team-1"].volume_id)["SnapshotId"]
    ec1.get_waiter("snapshot_completed").wait(SnapshotIds=[sid1], WaiterConfig={"Delay": 0.1, "MaxAttempts": 600})
    ec1.delete_snapshot(SnapshotId=sid1)
    one = ec1.list_snapshots_in_recycle_bin()["Snapshots"]
    assert [s["SnapshotId"] for s in one] == [sid1], one
    assert one[0]["RecycleBinExitTime"] - one[0]["RecycleBinEnterTime"] == timedelta(days=45), one
    assert ec2.restore_snapshot_from_recycle_bin(SnapshotId=sid)["State"] == "completed"
    assert ec2.describe_snapshots(SnapshotIds=[sid])["Snapshots"][0]["State"] == "completed"
    c.delete_rule(Identifier=rid)



def test_the_cli_applies_the_daemons_default_rule_and_restored_grants_come_back(service):
    # snapvold recorded its default rule in the catalog at start: the offline CLI's delete bins
    # the snapshot for the same 7 days, and the snapshot's sharing grant survives the bin.
    ec2 = service.client("team-2")
    other = service.accounts["team-1"].account_id
    sid = ec2.create_snapshot(VolumeId=service.volumes["vol-team-2"].volume_id)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.1, "MaxAttempts": 600})
    ec2.modify_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission", OperationType="add",
                                  UserIds=[other])
    out = service.cli("snapshot", "delete", "--snapshot-id", sid).stdout
    assert "into the Recycle Bin" in out, out
    listed = {s["SnapshotId"]: s for s in ec2.list_snapshots_in_recycle_bin()["Snapshots"]}
    assert sid in listed, listed
    assert listed[sid]["RecycleBinExitTime"] - listed[sid]["RecycleBinEnterTime"] == timedelta(days=7), listed
    # Binned: not shared with anyone.
    shared = service.client("team-1").describe_snapshots(RestorableByUserIds=["self"])["Snapshots"]
    assert sid not in {s["SnapshotId"] for s in shared}, shared
    assert ec2.restore_snapshot_from_recycle_bin(SnapshotId=sid)["State"] == "completed"
    perms = ec2.describe_snapshot_attribute(SnapshotId=sid, Attribute="createVolumePermission")
    assert perms["CreateVolumePermissions"] == [{"UserId": other}], perms
    shared = service.client("team-1").describe_snapshots(RestorableByUserIds=["self"])["Snapshots"]
    assert sid in {s["SnapshotId"] for s in shared}, shared
