#!/usr/bin/python3
"""Writes botocore_requests.json: requests signed by real botocore, for iam_test.

Each case is the exact request a botocore client would put on the wire (method, raw path, raw
query, headers in order, body) for a fixed credential and a fixed signing time, so the C++
verifier can be checked against an independent SigV4 implementation without any network.

Regenerate (Debian's interpreter and package: apt-get install python3-botocore):
    /usr/bin/python3 src/iam/testdata/make_botocore_requests.py \
        > src/iam/testdata/botocore_requests.json
The output differs between runs only in the random amz-sdk-invocation-id header (which
botocore may sign, so it is recorded as sent).
"""

import datetime
import json
import sys
from unittest import mock
from urllib.parse import quote, urlsplit

import botocore
import botocore.auth
import botocore.session
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ACCESS_KEY = "AKIASNAPVOLTEST00001"
SECRET_KEY = "snapvol/Test+Secret/Key/0123456789abcdefghij"
REGION = "us-east-1"
ENDPOINT = "http://snapvol.test:8443"
WHEN = datetime.datetime(2026, 11, 26, 2, 0, 0)  # UTC
WHEN_MS = int(WHEN.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


class FrozenDateTime(datetime.datetime):
    @classmethod
    def utcnow(cls):
        return cls(WHEN.year, WHEN.month, WHEN.day, WHEN.hour, WHEN.minute, WHEN.second)

    @classmethod
    def now(cls, tz=None):
        now = cls.utcnow()
        return now.replace(tzinfo=tz) if tz is not None else now


class Captured(Exception):
    """Raised from before-send so nothing leaves the process."""


def frozen_clock():
    patches = [mock.patch("datetime.datetime", FrozenDateTime),
               mock.patch.object(botocore.auth.datetime, "datetime", FrozenDateTime)]
    if hasattr(botocore.auth, "get_current_datetime"):
        patches.append(mock.patch.object(botocore.auth, "get_current_datetime",
                                         lambda *a, **k: FrozenDateTime.utcnow()))
    return patches


def record(name, service, method, url, headers, body, presigned):
    parts = urlsplit(url)
    out_headers = []
    if not any(k.lower() == "host" for k, _ in headers):
        # botocore leaves Host to the HTTP client (urllib3), which sends the URL's netloc.
        out_headers.append(["Host", parts.netloc])
    for k, v in headers:
        if isinstance(v, bytes):
            v = v.decode("utf-8")
        out_headers.append([k, v])
    if isinstance(body, bytes):
        body = body.decode("utf-8")
    return {
        "name": name,
        "service": service,
        "region": REGION,
        "access_key": ACCESS_KEY,
        "secret_key": SECRET_KEY,
        "time_ms": WHEN_MS,
        "method": method,
        "path": parts.path or "/",
        "query": parts.query,
        "headers": out_headers,
        "body": body or "",
        "presigned": presigned,
    }


def client_cases():
    session = botocore.session.get_session()
    cases = []

    def make(service):
        return session.create_client(service, region_name=REGION, endpoint_url=ENDPOINT,
                                     aws_access_key_id=ACCESS_KEY,
                                     aws_secret_access_key=SECRET_KEY)

    def capture(client, service, name, call, **params):
        box = {}

        def before_send(request, **kwargs):
            box["req"] = request
            raise Captured()

        client.meta.events.register("before-send.*", before_send)
        try:
            getattr(client, call)(**params)
        except Captured:
            pass
        finally:
            client.meta.events.unregister("before-send.*", before_send)
        req = box["req"]
        cases.append(record(name, service, req.method, req.url, list(req.headers.items()),
                            req.body, False))

    ec2 = make("ec2")
    capture(ec2, "ec2", "ec2-describe-snapshots-tag-filter", "describe_snapshots",
            OwnerIds=["self"],
            Filters=[{"Name": "tag:Owner", "Values": ["alice", "bob smith"]},
                     {"Name": "status", "Values": ["completed"]}],
            MaxResults=5)
    capture(ec2, "ec2", "ec2-create-snapshot-unicode", "create_snapshot",
            VolumeId="vol-0123456789abcdef0",
            Description="nightly caf\u00e9 \u2014 cr\u00e8me br\u00fbl\u00e9e \u2713 100% \"q\" & <t>",
            TagSpecifications=[{"ResourceType": "snapshot",
                                "Tags": [{"Key": "Name", "Value": "db  two  spaces"},
                                         {"Key": "Owner", "Value": "Zo\u00eb"}]}])
    capture(ec2, "ec2", "ec2-create-tags-reserved-chars", "create_tags",
            Resources=["snap-0123456789abcdef0"],
            Tags=[{"Key": "Project", "Value": "a+b=c/d?e#f;g,h~i*j"}])
    capture(ec2, "ec2", "ec2-delete-snapshot", "delete_snapshot",
            SnapshotId="snap-0123456789abcdef0")

    url = ec2.generate_presigned_url(
        "describe_snapshots",
        Params={"SnapshotIds": ["snap-0123456789abcdef0"],
                "Filters": [{"Name": "description", "Values": ["a b\u00e9"]}]},
        ExpiresIn=900)
    cases.append(record("ec2-presigned-describe-snapshots", "ec2", "POST", url, [], "", True))

    dlm = make("dlm")
    capture(dlm, "dlm", "dlm-get-lifecycle-policies", "get_lifecycle_policies",
            State="ENABLED", ResourceTypes=["VOLUME"], TargetTags=["Owner=alice"])
    return cases


def raw_auth_cases():
    """GET with a query string, signed by SigV4Auth directly (the EC2 client always POSTs)."""
    creds = Credentials(ACCESS_KEY, SECRET_KEY)
    query = ("Action=DescribeSnapshots&Version=2016-11-15&SnapshotId.1=snap-1"
             "&Filter.1.Name=description&Filter.1.Value.1=" + quote("nightly backup \u00fcn\u00efcode", safe="")
             + "&Filter.1.Value.2=" + quote("a~b-c_d.e", safe=""))
    req = AWSRequest(method="GET", url=ENDPOINT + "/?" + query, headers={"X-Team": "  storage   team "})
    SigV4Auth(creds, "ec2", REGION).add_auth(req)
    prepared = req.prepare()
    return [record("ec2-get-query-string", "ec2", prepared.method, prepared.url,
                   list(prepared.headers.items()), prepared.body, False)]


def main():
    patches = frozen_clock()
    for p in patches:
        p.start()
    try:
        cases = client_cases() + raw_auth_cases()
    finally:
        for p in reversed(patches):
            p.stop()
    json.dump({"generator": "make_botocore_requests.py",
               "botocore_version": botocore.__version__,
               "cases": cases}, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
