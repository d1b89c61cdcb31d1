"""The JSON API the console uses (/api/v1/…, SigV4 service "snapvol") and IAM policies attached
with `snapvol policy attach|detach`, both against a running snapvold."""
from __future__ import annotations

import json

import pytest
from botocore.exceptions import ClientError

import daemon_helpers as dh


@pytest.fixture(scope="module")
def snapshot(service):
    ec2 = service.client("team-1")
    sid = ec2.create_snapshot(VolumeId=service.volumes["vol-team-1"].volume_id)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
    return sid


def test_whoami_names_the_caller(service):
    status, body = service.signer("team-1").json("GET", "/api/v1/whoami")
    assert status == 200, body
    assert body["accountId"] == service.accounts["team-1"].account_id
    assert body["alias"] == "team-1" and body["isAdmin"] is False
    status, body = service.signer("admin").json("GET", "/api/v1/whoami")
    assert status == 200 and body["isAdmin"] is True


def test_json_api_refuses_bad_signatures_and_ec2_signed_requests(service):
    s = service.signer("team-1")
    status, body = s.json("GET", "/api/v1/whoami", secret="x" * 40)
    assert status in (401, 403) and body["error"]["code"] == "AuthFailure", body
    # A request signed for the EC2 service does not pass as the JSON API's.
    status, _, raw = s.send(b"", method="GET", path="/api/v1/whoami", service="ec2")
    assert status in (401, 403) and json.loads(raw)["error"]["code"] == "AuthFailure"
    # Unsigned.
    status, _, raw = dh.http_request(service.endpoint, "GET", "/api/v1/whoami", b"", {})
    assert status == 403 and json.loads(raw)["error"]["code"] == "MissingAuthenticationToken"


def test_restore_request_flow_over_json(service, snapshot):
    member, admin = service.signer("team-1"), service.signer("admin")
    status, body = member.json("POST", "/api/v1/restore-requests", {"snapshotId": snapshot, "reason": "oops"})
    assert status == 200, body
    rr = body["restoreRequest"]
    assert rr["state"] == "pending" and rr["snapshotId"] == snapshot and rr["reason"] == "oops"
    rid = rr["restoreRequestId"]
    # The member cannot decide it; another team cannot see it.
    status, body = member.json("POST", f"/api/v1/restore-requests/{rid}/approve", {})
    assert status == 403 and body["error"]["code"] == "UnauthorizedOperation"
    assert body["error"]["message"] == "You are not authorized to perform this operation."
    status, body = service.signer("team-2").json("GET", "/api/v1/restore-requests")
    assert status == 200 and all(r["restoreRequestId"] != rid for r in body["restoreRequests"])
    status, body = service.signer("team-2").json("POST", f"/api/v1/restore-requests/{rid}/reject", {"reason": "no"})
    assert status == 400 and body["error"]["code"] == "InvalidRestoreRequest.NotFound"
    # The administrator sees it and approves it: a new volume of team-1 gets the bytes.
    status, body = admin.json("GET", "/api/v1/restore-requests", query="state=pending")
    assert status == 200 and [r["restoreRequestId"] for r in body["restoreRequests"]] == [rid]
    status, body = admin.json("POST", f"/api/v1/restore-requests/{rid}/approve", {"reason": "ok"})
    assert status == 200, body
    done = body["restoreRequest"]
    assert done["state"] == "approved" and done["decisionReason"] == "ok" and done["volumeId"].startswith("vol-")
    ec2 = service.client("team-1")
    dh.wait_loaded(ec2, done["volumeId"])
    restored = service.data_dir / "volumes" / f"{done['volumeId']}.img"
    assert dh.sha256_file(restored) == dh.sha256_file(service.volumes["vol-team-1"].path)
    # Deciding twice is refused.
    status, body = admin.json("POST", f"/api/v1/restore-requests/{rid}/reject", {"reason": "late"})
    assert status == 400 and body["error"]["code"] == "IncorrectState"


def test_json_api_bad_input(service, snapshot):
    member = service.signer("team-1")
    status, _, raw = member.send(b"{not json", method="POST", path="/api/v1/restore-requests", service="snapvol",
                                 content_type="application/json")
    assert status == 400 and json.loads(raw)["error"]["code"] == "InvalidParameterValue"
    status, body = member.json("POST", "/api/v1/restore-requests", {"reason": "no id"})
    assert status == 400 and body["error"]["code"] == "MissingParameter"
    status, body = member.json("POST", "/api/v1/restore-requests", {"snapshotId": 12})
    assert status == 400 and body["error"]["code"] == "InvalidParameterValue"
    status, body = member.json("POST", "/api/v1/restore-requests", {"snapshotId": "snap-zz"})
    assert status == 400 and body["error"]["code"] == "InvalidSnapshotID.Malformed"
    status, body = member.json("POST", "/api/v1/restore-requests", {"snapshotId": snapshot, "reason": "x" * 1025})
    assert status == 400 and body["error"]["code"] == "InvalidParameterValue"
    status, body = member.json("GET", "/api/v1/no-such-thing")
    assert status == 400 and body["error"]["code"] == "InvalidAction"
    status, body = service.signer("admin").json("GET", "/api/v1/audit", query="limit=0")
    assert status == 400 and body["error"]["code"] == "InvalidParameterValue"
    # Nothing is ignored: an unknown query name or body member, a repeated single name and an
    # unknown state are refused by name, and no restore request is filed.
    status, body = member.json("GET", "/api/v1/restore-requests", query="stat=pending")
    assert status == 400 and body["error"]["code"] == "UnknownParameter" and "stat" in body["error"]["message"]
    status, body = member.json("GET", "/api/v1/restore-requests", query="state=pending&state=approved")
    assert status == 400 and body["error"]["code"] == "InvalidParameter"
    status, body = member.json("GET", "/api/v1/restore-requests", query="state=pendng")
    assert status == 400 and body["error"]["code"] == "InvalidParameterValue"
    _, before = member.json("GET", "/api/v1/restore-requests")
    status, body = member.json("POST", "/api/v1/restore-requests", {"snapshotId": snapshot, "reasn": "typo"})
    assert status == 400 and body["error"]["code"] == "UnknownParameter" and "reasn" in body["error"]["message"]
    _, after = member.json("GET", "/api/v1/restore-requests")
    assert after == before


def test_admin_only_endpoints(service):
    member, admin = service.signer("team-1"), service.signer("admin")
    for method, path, payload in [("GET", "/api/v1/accounts", None), ("GET", "/api/v1/audit", None),
                                  ("POST", "/api/v1/accounts", {"alias": "sneaky"})]:
        status, body = member.json(method, path, payload)
        assert status == 403 and body["error"]["code"] == "UnauthorizedOperation", (path, body)
    status, body = admin.json("GET", "/api/v1/accounts")
    assert status == 200
    by_alias = {a["alias"]: a for a in body["accounts"]}
    assert by_alias["team-1"]["policies"] == ["member"] and by_alias["admin"]["policies"] == ["administrator"]
    assert by_alias["team-1"]["accessKeys"][0]["accessKeyId"] == service.accounts["team-1"].access_key_id
    assert "sneaky" not in by_alias
    assert all("secret" not in json.dumps(a).lower() for a in body["accounts"])
    # Create an account and a key through the API; the key works at once.
    status, body = admin.json("POST", "/api/v1/accounts", {"alias": "team-json"})
    assert status == 200, body
    acct = body["account"]["accountId"]
    status, body = admin.json("POST", "/api/v1/accounts", {"alias": "team-json"})
    assert status == 400, body
    status, body = admin.json("POST", f"/api/v1/accounts/{acct}/keys", {})
    assert status == 200, body
    key = body["accessKey"]
    status, body = dh.Signer(service.endpoint, key["accessKeyId"], key["secretAccessKey"]).json("GET", "/api/v1/whoami")
    assert status == 200 and body["accountId"] == acct
    # The audit log shows the decisions, newest last.
    status, body = admin.json("GET", "/api/v1/audit", query="limit=5")
    assert status == 200 and 1 <= len(body["events"]) <= 5
    # Whose log it is: each host keeps its own (the requests it answered).
    answered_by = (service.daemon.data_dir / "host-id").read_text().strip()
    assert body["host"]["hostId"] == answered_by or dh.HOSTS > 1, body["host"]
    assert body["host"]["hostId"].startswith("host-") and body["host"]["name"], body["host"]
    assert any(e.get("action") == "snapvol:CreateAccessKey" for e in body["events"]), body["events"]


def test_policy_attach_detach_takes_effect_on_the_next_request(service, tmp_path):
    acct = service.accounts["team-2"]
    ec2 = service.client("team-2")
    vol = service.volumes["vol-team-2"].volume_id
    ec2.describe_snapshots(OwnerIds=["self"])  # member: allowed
    # Detach member: every action is implicitly denied.
    service.cli("policy", "detach", "--account-id", acct.account_id, "--policy-name", "member")
    with pytest.raises(ClientError) as e:
        ec2.describe_snapshots(OwnerIds=["self"])
    assert e.value.response["Error"]["Code"] == "UnauthorizedOperation"
    # A custom read-only policy: describe allowed, create denied.
    doc = tmp_path / "readonly.json"
    doc.write_text(json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["ec2:Describe*"], "Resource": "*"}]}))
    service.cli("policy", "create", "--name", "read-only", "--document", doc)
    service.cli("policy", "attach", "--account-id", acct.account_id, "--policy-name", "read-only")
    ec2.describe_snapshots(OwnerIds=["self"])
    with pytest.raises(ClientError) as e:
        ec2.create_snapshot(VolumeId=vol)
    assert e.value.response["Error"]["Code"] == "UnauthorizedOperation"
    listed = json.loads(service.cli("-o", "json", "policy", "list").stdout)["Policies"]
    by_name = {p["PolicyName"]: p for p in listed if p["Kind"] == "iam"}
    assert by_name["read-only"]["AttachedTo"] == [acct.account_id]
    assert acct.account_id not in by_name["member"]["AttachedTo"]
    # An attached policy cannot be deleted; a malformed one is refused and changes nothing.
    res = service.cli("policy", "delete", "--name", "read-only", check=False)
    assert res.returncode == 1 and "attached" in res.stderr
    doc.write_text('{"Version": "2012-10-17", "Statement": [{"Effect": "Perhaps", "Action": "*", "Resource": "*"}]}')
    res = service.cli("policy", "create", "--name", "read-only", "--document", doc, check=False)
    assert res.returncode == 1 and "Effect" in res.stderr, res.stderr
    ec2.describe_snapshots(OwnerIds=["self"])  # the stored document is unchanged
    res = service.cli("policy", "attach", "--account-id", acct.account_id, "--policy-name", "nope", check=False)
    assert res.returncode == 1 and "not found" in res.stderr
    # Back to member.
    service.cli("policy", "attach", "--account-id", acct.account_id, "--policy-name", "member")
    service.cli("policy", "detach", "--account-id", acct.account_id, "--policy-name", "read-only")
    ec2.create_snapshot(VolumeId=vol)
    shown = service.cli("policy", "show", "member").stdout
    assert json.loads(shown)["Statement"]


def test_admin_volume_list_over_json(service):
    """GET /api/v1/volumes: every account's volumes for an administrator, with the owner and
    the exact size; refused for members as the other admin-only paths are; EC2's own
    DescribeVolumes still lists only the caller's volumes."""
    member, admin = service.signer("team-1"), service.signer("admin")
    team1, team2 = service.accounts["team-1"].account_id, service.accounts["team-2"].account_id
    v1, v2 = service.volumes["vol-team-1"].volume_id, service.volumes["vol-team-2"].volume_id
    for query in ["", "account=all", f"account={team1}"]:
        status, body = member.json("GET", "/api/v1/volumes", query=query)
        assert status == 403 and body["error"]["code"] == "UnauthorizedOperation", (query, body)

    status, body = admin.json("GET", "/api/v1/volumes", query="account=all")
    assert status == 200, body
    by_id = {v["volumeId"]: v for v in body["volumes"]}
    assert by_id[v1]["accountId"] == team1 and by_id[v2]["accountId"] == team2
    assert by_id[v1]["sizeBytes"] == 16 << 20 and by_id[v1]["sizeGiB"] == 1
    assert {"key": "Name", "value": "vol-team-1"} in by_id[v1]["tags"]
    assert by_id[v1]["state"] == "available" and by_id[v1]["attachments"] == []
    # Each volume is in the list once, and the list is the union of each team's own view (EC2).
    assert len(by_id) == len(body["volumes"])
    status, default = admin.json("GET", "/api/v1/volumes")
    assert status == 200 and default == body, "no account parameter means all accounts"
    for alias, acct in [("team-1", team1), ("team-2", team2)]:
        own = {v["VolumeId"] for v in service.client(alias).describe_volumes()["Volumes"]}
        status, one = admin.json("GET", "/api/v1/volumes", query=f"account={acct}")
        assert status == 200, one
        assert {v["volumeId"] for v in one["volumes"]} == own
        assert {v["accountId"] for v in one["volumes"]} == {acct}
        assert own <= set(by_id)
    # EC2 semantics unchanged: the administrator's DescribeVolumes without ids is its own.
    admin_own = service.client("admin").describe_volumes()["Volumes"]
    assert v1 not in {v["VolumeId"] for v in admin_own} and v2 not in {v["VolumeId"] for v in admin_own}

    # Nothing is ignored: an unknown name, a repeated one, a malformed or unknown account.
    status, body = admin.json("GET", "/api/v1/volumes", query="acount=all")
    assert status == 400 and body["error"]["code"] == "UnknownParameter" and "acount" in body["error"]["message"]
    status, body = admin.json("GET", "/api/v1/volumes", query=f"account={team1}&account={team2}")
    assert status == 400 and body["error"]["code"] == "InvalidParameter"
    for bad in ["12", "ALL", "", "team-1"]:
        status, body = admin.json("GET", "/api/v1/volumes", query=f"account={bad}")
        assert status == 400 and body["error"]["code"] == "InvalidParameterValue", (bad, body)
    status, body = admin.json("GET", "/api/v1/volumes", query="account=999999999999")
    assert status == 400 and body["error"]["code"] == "InvalidAccount.NotFound", body


def test_snapshot_and_volume_details_over_json(service, snapshot):
    """GET /api/v1/snapshots/ID and /api/v1/volumes/ID: what EC2's shapes lack (exact bytes,
    bytes stored, parent, completion), to whoever may describe the resource, and no one else."""
    ec2 = service.client("team-1")
    vol = service.volumes["vol-team-1"].volume_id
    second = ec2.create_snapshot(VolumeId=vol)["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[second], WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
    member, other, admin = service.signer("team-1"), service.signer("team-2"), service.signer("admin")

    status, body = member.json("GET", f"/api/v1/snapshots/{second}")
    assert status == 200, body
    d = body["snapshot"]
    ec2_view = ec2.describe_snapshots(SnapshotIds=[second])["Snapshots"][0]
    assert d["snapshotId"] == second and d["volumeId"] == vol and d["state"] == "completed"
    assert d["volumeSizeBytes"] == 16 << 20 and d["volumeSizeGiB"] == ec2_view["VolumeSize"] == 1
    assert d["accountId"] == service.accounts["team-1"].account_id
    assert d["incremental"] is True and d["parentSnapshotId"] == snapshot
    # Nothing changed on the volume between the two: the second stored no block data.
    assert d["changedBlocks"] == 0 and d["totalBlocks"] == (16 << 20) // d["blockSize"]
    assert d["storedBytes"] < 16 << 10, d
    assert d["completionTime"] >= d["startTime"]
    status, first = member.json("GET", f"/api/v1/snapshots/{snapshot}")
    assert status == 200 and first["snapshot"]["incremental"] is False
    assert "parentSnapshotId" not in first["snapshot"] and first["snapshot"]["storedBytes"] > 0

    # Another account sees neither until it is shared, and then not the (unshared) parent's id.
    status, body = other.json("GET", f"/api/v1/snapshots/{second}")
    assert status == 400 and body["error"]["code"] == "InvalidSnapshot.NotFound", body
    ec2.modify_snapshot_attribute(SnapshotId=second, Attribute="createVolumePermission", OperationType="add",
                                  UserIds=[service.accounts["team-2"].account_id])
    status, body = other.json("GET", f"/api/v1/snapshots/{second}")
    assert status == 200 and body["snapshot"]["incremental"] is True, body
    assert "parentSnapshotId" not in body["snapshot"], "the parent was not shared"
    status, body = admin.json("GET", f"/api/v1/snapshots/{second}")
    assert status == 200 and body["snapshot"]["parentSnapshotId"] == snapshot

    status, body = member.json("GET", f"/api/v1/volumes/{vol}")
    assert status == 200 and body["volume"]["sizeBytes"] == 16 << 20 and body["volume"]["volumeId"] == vol, body
    status, body = other.json("GET", f"/api/v1/volumes/{vol}")
    assert status == 400 and body["error"]["code"] == "InvalidVolume.NotFound", body
    status, body = admin.json("GET", f"/api/v1/volumes/{vol}")
    assert status == 200 and body["volume"]["accountId"] == service.accounts["team-1"].account_id

    # Malformed ids and parameters are refused by name; nothing is ignored.
    status, body = member.json("GET", "/api/v1/snapshots/snap-xyz")
    assert status == 400 and body["error"]["code"] == "InvalidSnapshotID.Malformed", body
    status, body = member.json("GET", "/api/v1/volumes/vol-xyz")
    assert status == 400 and body["error"]["code"] == "InvalidVolumeID.Malformed", body
    status, body = member.json("GET", f"/api/v1/snapshots/{second}", query="verbose=1")
    assert status == 400 and body["error"]["code"] == "UnknownParameter" and "verbose" in body["error"]["message"]
