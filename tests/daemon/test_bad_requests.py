"""Hand-made HTTP requests to snapvold, signed with botocore's SigV4Auth where they need to be:
every bad request gets a 4xx EC2 error document (Response/Errors/Error/Code, RequestID), never a
5xx, a hang or a crash, and none of them creates a snapshot. Most are CreateSnapshot requests
for a real volume, so a request that slipped through would show in the catalog."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest

import daemon_helpers as dh
from daemon_helpers import parse_ec2_error

VERSION = "2016-11-15"


def enc(pairs) -> str:
    """application/x-www-form-urlencoded as the AWS SDKs write it (%20, not '+')."""
    return "&".join(f"{quote(str(k), safe='-_.~')}={quote(str(v), safe='-_.~')}" for k, v in pairs)


@pytest.fixture(scope="module")
def env(service):
    """(service, signer for team-1, team-1's volume id, the catalog before any bad request)."""
    team1 = service.accounts["team-1"]
    vol = service.volumes["vol-team-1"].volume_id
    ec2 = service.client("team-1")
    sid = ec2.create_snapshot(VolumeId=vol, Description="baseline")["SnapshotId"]
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=[sid], WaiterConfig={"Delay": 0.1, "MaxAttempts": 300})
    signer = dh.Signer(service.endpoint, team1.access_key_id, team1.secret_access_key)
    return service, signer, vol, service.catalog_snapshots()


def create_body(vol: str, *extra) -> str:
    return enc([("Action", "CreateSnapshot"), ("Version", VERSION), ("VolumeId", vol), *extra])


def expect_error(res, codes=None, statuses=None) -> tuple[str, str]:
    """Asserts a 4xx (or one of `statuses`) EC2 error whose code is in `codes` (None: any)."""
    status, headers, body = res
    assert 400 <= status < 500, f"HTTP {status}: {body[:300]!r}"
    if statuses is not None:
        assert status in statuses, f"HTTP {status}, expected one of {statuses}: {body[:300]!r}"
    try:
        code, message = parse_ec2_error(body)
    except AssertionError as e:
        raise AssertionError(f"HTTP {status} {headers}, but the body is not an EC2 error: {e}")
    if codes is not None:
        codes = (codes,) if isinstance(codes, str) else tuple(codes)
        assert code in codes, f"HTTP {status} {code}: {message} (expected {' or '.join(codes)})"
    return code, message


# ---- authentication ----

def test_unsigned_request(env):
    service, _, vol, _ = env
    headers = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    res = dh.http_request(service.endpoint, "POST", "/", create_body(vol).encode(), headers)
    expect_error(res, "MissingAuthenticationToken", statuses=(401, 403))
    res = dh.http_request(service.endpoint, "GET", "/?" + enc([("Action", "DescribeSnapshots"), ("Version", VERSION)]))
    expect_error(res, "MissingAuthenticationToken", statuses=(401, 403))


def test_wrong_secret_and_unknown_key(env):
    service, signer, vol, _ = env
    secret = signer.secret_access_key
    wrong = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    expect_error(signer.send(create_body(vol), secret=wrong), "AuthFailure", statuses=(401, 403))
    expect_error(signer.send(create_body(vol), access_key_id="AKIA" + "Q" * 16), "AuthFailure", statuses=(401, 403))


def test_tampered_body(env):
    """The signature covers the body: changing it after signing is refused."""
    service, signer, vol, _ = env
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials
    req = AWSRequest(method="POST", url=service.endpoint + "/", data=create_body(vol).encode(),
                     headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    SigV4Auth(Credentials(signer.access_key_id, signer.secret_access_key), "ec2", dh.REGION).add_auth(req)
    body = create_body(vol, ("Description", "tampered")).encode()
    expect_error(dh.http_request(service.endpoint, "POST", "/", body, dict(req.headers.items())),
                 ("AuthFailure", "IncompleteSignature"))


def test_garbage_authorization_header(env):
    service, _, vol, _ = env
    for value in ("AWS4-HMAC-SHA256 garbage", "AWS4-HMAC-SHA256 Credential=x/y, SignedHeaders=host, Signature=zz",
                  "Basic dXNlcjpwYXNz", "AWS4-HMAC-SHA256 " + "A" * 5000):
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": value,
                   "X-Amz-Date": "20240101T000000Z"}
        res = dh.http_request(service.endpoint, "POST", "/", create_body(vol).encode(), headers)
        expect_error(res, ("AuthFailure", "IncompleteSignature", "MissingAuthenticationToken"))


@pytest.mark.parametrize("minutes", [20, -20])
def test_clock_skew(env, minutes):
    service, signer, vol, _ = env
    expect_error(signer.send(create_body(vol), skew_seconds=minutes * 60), ("RequestExpired", "AuthFailure"))


@pytest.mark.parametrize("minutes", [10, -10])
def test_clock_skew_within_limit_is_accepted(env, minutes):
    service, signer, _, _ = env
    status, _, body = signer.send(enc([("Action", "DescribeSnapshots"), ("Version", VERSION)]),
                                  skew_seconds=minutes * 60)
    assert status == 200, body[:300]


# ---- the request itself ----

def test_unknown_action(env):
    _, signer, vol, _ = env
    code, msg = expect_error(signer.send(enc([("Action", "FrobnicateSnapshots"), ("Version", VERSION)])),
                             "InvalidAction", statuses=(400,))
    assert "FrobnicateSnapshots" in msg


def test_missing_action(env):
    _, signer, vol, _ = env
    expect_error(signer.send(enc([("Version", VERSION), ("VolumeId", vol)])), "MissingAction")
    expect_error(signer.send(b""), "MissingAction")


@pytest.mark.parametrize("raw", ["Description=%ZZ", "Description=abc%4", "Description=%", "Descr%G1ption=x",
                                 "TagSpecification.1.Tag.1.Key=%2"])
def test_malformed_percent_encoding(env, raw):
    _, signer, vol, _ = env
    expect_error(signer.send(create_body(vol) + "&" + raw))


@pytest.mark.parametrize("raw", [b"Description=%FF%FE", b"Description=ok\xff\xfe", b"Description=%C3%28",
                                 b"Description=%ED%A0%80",  # a UTF-16 surrogate
                                 b"TagSpecification.1.ResourceType=snapshot&TagSpecification.1.Tag.1.Key=k"
                                 b"&TagSpecification.1.Tag.1.Value=%C0%AF",  # overlong '/'
                                 b"Descri%FFption=x"])
def test_non_utf8(env, raw):
    _, signer, vol, _ = env
    expect_error(signer.send(create_body(vol).encode() + b"&" + raw),
                 ("InvalidParameterValue", "MalformedQueryString", "InvalidParameter"))


@pytest.mark.parametrize("pairs,codes", [
    ([("Action", "DescribeSnapshots"), ("SnapshotId.1", "snap-xyz")], "InvalidSnapshotID.Malformed"),
    ([("Action", "DescribeSnapshots"), ("SnapshotId.1", "snap-0123456789abcdef")], "InvalidSnapshotID.Malformed"),
    ([("Action", "DeleteSnapshot"), ("SnapshotId", "snap-xyz")], "InvalidSnapshotID.Malformed"),
    ([("Action", "DeleteSnapshot"), ("SnapshotId", "vol-0123456789abcdef0")], "InvalidSnapshotID.Malformed"),
    ([("Action", "CreateSnapshot"), ("VolumeId", "vol-xyz")], "InvalidVolumeID.Malformed"),
    ([("Action", "CreateSnapshot"), ("VolumeId", "snap-0123456789abcdef0")], "InvalidVolumeID.Malformed"),
    ([("Action", "CreateSnapshot"), ("VolumeId", "")], ("InvalidVolumeID.Malformed", "MissingParameter")),
    ([("Action", "CreateVolume"), ("SnapshotId", "snap-xyz"), ("AvailabilityZone", "us-east-1a")],
     "InvalidSnapshotID.Malformed"),
    ([("Action", "CreateTags"), ("ResourceId.1", "snap-xyz"), ("Tag.1.Key", "a"), ("Tag.1.Value", "b")], None),
    ([("Action", "DeleteTags"), ("ResourceId.1", "snap-xyz"), ("Tag.1.Key", "a")], None),
], ids=lambda x: x[-1][1] if isinstance(x, list) else None)
def test_malformed_ids(env, pairs, codes):
    _, signer, _, _ = env
    expect_error(signer.send(enc([*pairs, ("Version", VERSION)])), codes)


def test_describe_volumes_malformed_id(env):
    """Like CreateSnapshot, DescribeVolumes answers InvalidVolumeID.Malformed for 'vol-xyz'."""
    _, signer, _, _ = env
    expect_error(signer.send(enc([("Action", "DescribeVolumes"), ("Version", VERSION), ("VolumeId.1", "vol-xyz")])),
                 "InvalidVolumeID.Malformed")


def test_ten_thousand_tags(env):
    _, signer, vol, _ = env
    pairs = [("TagSpecification.1.ResourceType", "snapshot")]
    for i in range(1, 10_001):
        pairs += [(f"TagSpecification.1.Tag.{i}.Key", f"k{i}"), (f"TagSpecification.1.Tag.{i}.Value", "v")]
    expect_error(signer.send(create_body(vol, *pairs)))


def test_one_mib_description(env):
    _, signer, vol, _ = env
    expect_error(signer.send(create_body(vol, ("Description", "d" * (1 << 20)))),
                 ("InvalidParameterValue", "RequestEntityTooLarge"))


def test_64_kib_description(env):
    _, signer, vol, _ = env
    expect_error(signer.send(create_body(vol, ("Description", "d" * (64 << 10)))), "InvalidParameterValue")


@pytest.mark.parametrize("body,query", [
    ("VolumeId={vol}&Action=CreateSnapshot&Version=2016-11-15&VolumeId={vol}", ""),
    ("Action=CreateSnapshot&Version=2016-11-15&VolumeId={vol}&Action=CreateSnapshot", ""),
    ("Action=CreateSnapshot&Version=2016-11-15&VolumeId={vol}&Description=a&Description=b", ""),
    ("Action=CreateSnapshot&Version=2016-11-15&VolumeId={vol}&Description=a", "Description=b"),
    ("Action=CreateSnapshot&Version=2016-11-15&VolumeId={vol}", "Action=CreateSnapshot"),
    ("Action=CreateSnapshot&Version=2016-11-15&VolumeId={vol}&TagSpecification.1.ResourceType=snapshot"
     "&TagSpecification.1.Tag.1.Key=a&TagSpecification.1.Tag.1.Key=b", ""),
], ids=["VolumeId", "Action", "Description", "query+body", "Action-query+body", "tag-key"])
def test_duplicate_parameters(env, body, query):
    _, signer, vol, _ = env
    expect_error(signer.send(body.format(vol=vol), query=query), ("InvalidParameter", "InvalidParameterValue"))


@pytest.mark.parametrize("pairs", [
    [("Action", "DescribeSnapshots"), ("SnapshotId.0", "snap-0123456789abcdef0")],
    [("Action", "DescribeSnapshots"), ("SnapshotId.01", "snap-0123456789abcdef0")],
    [("Action", "DescribeSnapshots"), ("SnapshotId.x", "snap-0123456789abcdef0")],
    [("Action", "DescribeSnapshots"), ("Filter.1.Value.1", "x")],
    [("Action", "DescribeSnapshots"), ("MaxResults", "ten")],
    [("Action", "DescribeSnapshots"), ("MaxResults", "99999999999999999999999")],
    [("Action", "DescribeSnapshots"), ("DryRun", "yes")],
    [("Action", "CreateSnapshot"), ("Frobnicate", "1")],
    [("Action", "CreateSnapshot"), ("TagSpecification.1.ResourceType", "instance"),
     ("TagSpecification.1.Tag.1.Key", "a")],
    [("Action", "CreateSnapshot"), ("TagSpecification.1.ResourceType", "snapshot"),
     ("TagSpecification.1.Tag.1.Key", "aws:reserved")],
    [("Action", "CreateSnapshot"), ("TagSpecification.1.ResourceType", "snapshot"),
     ("TagSpecification.1.Tag.1.Key", "k" * 129)],
    [("Action", "CreateSnapshot"), ("TagSpecification.1.ResourceType", "snapshot"),
     ("TagSpecification.1.Tag.1.Key", "k"), ("TagSpecification.1.Tag.1.Value", "v" * 257)],
], ids=["index-0", "index-01", "index-x", "filter-no-name", "maxresults-word", "maxresults-huge",
        "dryrun-yes", "unknown-param", "tag-resource-type", "aws-prefix", "tag-key-129", "tag-value-257"])
def test_bad_parameters(env, pairs):
    _, signer, vol, _ = env
    if pairs[0][1] == "CreateSnapshot":
        pairs = [*pairs, ("VolumeId", vol)]
    expect_error(signer.send(enc([*pairs, ("Version", VERSION)])))


BAD_TAGS = {
    "51-tags": [(f"k{i}", "v") for i in range(51)],
    "aws-prefix": [("aws:reserved", "v")],
    "duplicate-key": [("a", "1"), ("a", "2")],
    "empty-key": [("", "v")],
    "key-129": [("k" * 129, "v")],
    "value-257": [("k", "v" * 257)],
}


def _bad_tags_request(signer, vol, tags, dry_run: bool):
    pairs = [("TagSpecification.1.ResourceType", "snapshot")]
    for i, (k, v) in enumerate(tags, 1):
        pairs += [(f"TagSpecification.1.Tag.{i}.Key", k), (f"TagSpecification.1.Tag.{i}.Value", v)]
    if dry_run:
        pairs.append(("DryRun", "true"))
    return signer.send(create_body(vol, *pairs))


@pytest.mark.parametrize("tags", BAD_TAGS.values(), ids=BAD_TAGS.keys())
def test_invalid_tags(env, tags):
    _, signer, vol, _ = env
    expect_error(_bad_tags_request(signer, vol, tags, False), ("InvalidParameterValue", "InvalidParameter"))


def test_invalid_tags_under_dry_run(env):
    """DryRun must not answer 'Request would have succeeded' for tags the real request refuses."""
    _, signer, vol, _ = env
    wrong = {}
    for name, tags in BAD_TAGS.items():
        status, _, body = _bad_tags_request(signer, vol, tags, True)
        code, _ = parse_ec2_error(body)
        if code == "DryRunOperation":
            wrong[name] = f"HTTP {status} {code}"
    assert not wrong, f"DryRun claims success for invalid tags: {wrong}"


def test_invalid_tag_errors_name_no_snapshot(env):
    """Nothing is created for a refused CreateSnapshot, so its error names no snapshot id."""
    _, signer, vol, _ = env
    named = {}
    for name, tags in BAD_TAGS.items():
        _, msg = expect_error(_bad_tags_request(signer, vol, tags, False))
        if re.search(r"snap-[0-9a-f]{17}", msg):
            named[name] = msg[:120]
    assert not named, f"errors name snapshots that do not exist: {named}"


def test_daemon_still_serves_and_nothing_was_created(env):
    service, signer, _, baseline = env
    assert service.daemon.running(), "snapvold died\n" + service.daemon.log_tail()
    assert service.daemon.healthy()
    status, _, body = signer.send(enc([("Action", "DescribeSnapshots"), ("Version", VERSION), ("Owner.1", "self")]))
    assert status == 200, body[:300]
    for sid in baseline:
        assert sid.encode() in body
    after = service.catalog_snapshots()
    assert after.keys() == baseline.keys(), f"bad requests created {sorted(after.keys() - baseline.keys())}"
    assert after == baseline, "bad requests changed a snapshot"
    fives = [e for e in service.daemon.log_events() if e.get("event") == "request" and e.get("status", 0) >= 500]
    assert not fives, f"answered with 5xx: {fives}"


def test_listen_backlog_is_raised_above_the_librarys_five(env):
    """cpp-httplib listens with a backlog of 5: many clients connecting at once would have
    their handshakes dropped and wait for retransmits (seconds). ss shows a listening
    socket's backlog in Send-Q."""
    service, _, _, _ = env
    out = subprocess.run(["ss", "-ltnH", f"sport = :{service.daemon.port}"], capture_output=True,
                         text=True, check=True).stdout
    lines = [ln.split() for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1, out
    backlog = int(lines[0][2])
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    assert backlog == somaxconn, f"listen backlog {backlog}, expected {somaxconn}: {out}"


def test_many_keep_alive_clients_are_all_served(env):
    """A worker thread serves one keep-alive connection for as long as it stays busy: with
    too few threads (the default was 32), the clients beyond them starved while the others
    went on. 48 clients keep their connections busy until every one of them has had 10
    answers; with starvation that never happens and the 60 s bound ends the test."""
    import http.client
    import threading
    import time
    service, _, _, _ = env
    counts = [0] * 48
    errors = []
    deadline = time.monotonic() + 60
    ready = threading.Barrier(len(counts))

    def client(i):
        try:
            c = http.client.HTTPConnection("127.0.0.1", service.daemon.port, timeout=70)
            c.connect()
            ready.wait()
            while min(counts) < 10 and time.monotonic() < deadline:
                c.request("GET", "/healthz")
                r = c.getresponse()
                r.read()
                assert r.status == 200, r.status
                counts[i] += 1
            c.close()
        except Exception as e:  # noqa: BLE001 - reported below with the client's number
            errors.append(f"client {i}: {e!r}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(counts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not errors, errors
    starved = [i for i, n in enumerate(counts) if n < 10]
    assert not starved, f"clients {starved} were not served while the others were: {counts}"
