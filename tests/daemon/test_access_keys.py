"""Access keys disabled, enabled and deleted (issue 15): with `snapvol key disable|enable|delete`
on the data dir and with the JSON API (POST /api/v1/keys/ID/disable|enable, DELETE
/api/v1/keys/ID). A disabled key is refused like an unknown one wherever a key is accepted —
EC2 Query (boto3, the AWS CLI: AuthFailure, HTTP 401), the JSON API, DLM — and works again
once enabled; the last active key of an administrator account is never disabled or deleted."""
from __future__ import annotations

import json
import os

import pytest
from botocore.exceptions import ClientError

import daemon_helpers as dh


def key_status(service, key_id: str) -> str:
    keys = json.loads(service.cli("key", "list", "-o", "json").stdout)["AccessKeys"]
    return next(k["Status"] for k in keys if k["AccessKeyId"] == key_id)


def boto3_refused(service, alias: str):
    with pytest.raises(ClientError) as e:
        service.client(alias).describe_snapshots(OwnerIds=["self"])
    err = e.value.response["Error"]
    assert err["Code"] == "AuthFailure", e.value.response
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 401
    return err["Message"]


def test_cli_disable_is_refused_by_boto3_the_aws_cli_json_and_dlm_until_enabled(service):
    key = service.accounts["team-1"].access_key_id
    assert service.client("team-1").describe_snapshots(OwnerIds=["self"])["Snapshots"] == []
    out = service.cli("key", "disable", key).stdout
    assert out.strip() == f"disabled {key}"
    assert key_status(service, key) == "Inactive"
    # The message is the one for an unknown key: a disabled key's existence is not revealed.
    unknown = service.client("team-1", access_key_id="AKIAUNKNOWNKEY000000")
    with pytest.raises(ClientError) as e:
        unknown.describe_snapshots(OwnerIds=["self"])
    assert boto3_refused(service, "team-1") == e.value.response["Error"]["Message"]
    # The AWS CLI v2.
    if os.access(dh.AWS_V2, os.X_OK):
        dh.AwsCli(dh.AWS_V2, 2).error(service, "team-1", "ec2", "describe-snapshots", "--owner-ids", "self",
                                      code="AuthFailure")
    # The JSON API and DLM.
    status, body = service.signer("team-1").json("GET", "/api/v1/whoami")
    assert status == 401 and body["error"]["code"] == "AuthFailure", body
    with pytest.raises(ClientError) as e:
        dh.dlm_client(service, "team-1").get_lifecycle_policies()
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403, e.value.response
    # Disabling again says so and changes nothing; another team is not affected.
    assert service.cli("key", "disable", key).stdout.strip() == f"{key} was already disabled"
    assert service.client("team-2").describe_snapshots(OwnerIds=["self"])["Snapshots"] == []
    # Enabled: everything works again at once.
    assert service.cli("key", "enable", key).stdout.strip() == f"enabled {key}"
    assert key_status(service, key) == "Active"
    assert service.client("team-1").describe_snapshots(OwnerIds=["self"])["Snapshots"] == []
    status, body = service.signer("team-1").json("GET", "/api/v1/whoami")
    assert status == 200 and body["accessKeyId"] == key
    if os.access(dh.AWS_V2, os.X_OK):
        dh.AwsCli(dh.AWS_V2, 2).ok(service, "team-1", "ec2", "describe-snapshots", "--owner-ids", "self")


def test_json_api_disables_enables_and_deletes_keys_for_administrators_only(service):
    admin, member = service.signer("admin"), service.signer("team-2")
    key = service.accounts["team-2"].access_key_id
    # A member may not.
    status, body = member.json("POST", f"/api/v1/keys/{key}/disable")
    assert status == 403 and body["error"]["code"] == "UnauthorizedOperation", body
    assert key_status(service, key) == "Active"
    status, body = admin.json("POST", f"/api/v1/keys/{key}/disable")
    assert status == 200, body
    assert body["accessKey"]["accessKeyId"] == key and body["accessKey"]["status"] == "Inactive"
    assert "statusChangedAt" in body["accessKey"]
    boto3_refused(service, "team-2")
    # The accounts list shows it.
    status, body = admin.json("GET", "/api/v1/accounts")
    keys = {k["accessKeyId"]: k for a in body["accounts"] for k in a["accessKeys"]}
    assert keys[key]["status"] == "Inactive" and keys[service.admin.access_key_id]["status"] == "Active"
    status, body = admin.json("POST", f"/api/v1/keys/{key}/enable")
    assert status == 200 and body["accessKey"]["status"] == "Active", body
    assert service.client("team-2").describe_snapshots(OwnerIds=["self"])["Snapshots"] == []
    # Unknown keys and unknown verbs are refused by name; nothing else is taken.
    status, body = admin.json("POST", "/api/v1/keys/AKIANOSUCHKEY0000000/disable")
    assert status == 400 and body["error"]["code"] == "InvalidAccessKeyId.NotFound", body
    assert "AKIANOSUCHKEY0000000" in body["error"]["message"]
    status, body = admin.json("POST", f"/api/v1/keys/{key}/disable", {"force": True})
    assert status == 400 and body["error"]["code"] == "UnknownParameter", body
    assert key_status(service, key) == "Active"
    # Deleted: gone for good (a second delete is NotFound), and refused like an unknown key.
    status, body = admin.json("DELETE", f"/api/v1/keys/{key}")
    assert status == 200 and body == {"deleted": key}, body
    boto3_refused(service, "team-2")
    status, body = admin.json("DELETE", f"/api/v1/keys/{key}")
    assert status == 400 and body["error"]["code"] == "InvalidAccessKeyId.NotFound", body


def test_last_active_administrator_key_is_refused_by_name(service):
    admin = service.signer("admin")
    key = service.admin.access_key_id
    for method, path in (("POST", f"/api/v1/keys/{key}/disable"), ("DELETE", f"/api/v1/keys/{key}")):
        status, body = admin.json(method, path)
        assert status == 400 and body["error"]["code"] == "IncorrectState", body
        assert key in body["error"]["message"] and "admin" in body["error"]["message"], body
    for verb in ("disable", "delete"):
        res = service.cli("key", verb, key, check=False)
        assert res.returncode == 1, dh.describe(res)
        assert "last active key of an administrator" in res.stderr and key in res.stderr, dh.describe(res)
    assert key_status(service, key) == "Active"
    # With a second administrator key, the first may be disabled (and it is then refused).
    out = service.cli("key", "create", "--account-id", service.admin.account_id).stdout
    second = next(line.split("=", 1)[1].strip() for line in out.splitlines() if line.startswith("aws_access_key_id"))
    assert service.cli("key", "disable", key).stdout.strip() == f"disabled {key}"
    status, body = admin.json("GET", "/api/v1/whoami")
    assert status == 401 and body["error"]["code"] == "AuthFailure"
    res = service.cli("key", "disable", second, check=False)
    assert res.returncode == 1 and second in res.stderr, dh.describe(res)
    assert service.cli("key", "enable", "--access-key-id", key).stdout.strip() == f"enabled {key}"
    assert service.cli("key", "delete", second).stdout.strip() == f"deleted {second}"
    status, body = admin.json("GET", "/api/v1/whoami")
    assert status == 200 and body["isAdmin"] is True


def test_cli_refuses_an_unknown_key_and_a_missing_or_doubled_id(service):
    res = service.cli("key", "disable", "AKIANOSUCHKEY0000000", check=False)
    assert res.returncode == 1 and "AKIANOSUCHKEY0000000" in res.stderr, dh.describe(res)
    res = service.cli("key", "enable", check=False)
    assert res.returncode == 2, dh.describe(res)
    res = service.cli("key", "delete", "A" * 20, "--access-key-id", "B" * 20, check=False)
    assert res.returncode == 2, dh.describe(res)


def test_whoami_tells_the_console_its_idle_timeout(service):
    status, body = service.signer("team-1").json("GET", "/api/v1/whoami")
    assert status == 200 and body["consoleIdleSeconds"] == 1800, body
