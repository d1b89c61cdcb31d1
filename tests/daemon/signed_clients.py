"""Clients of snapvold for the integration tests: hand-made SigV4-signed requests (botocore's
signer) and the AWS CLI v1 and v2. daemon_helpers re-exports them (dh.Signer, dh.AwsCli,
dh.find_aws_v1), so tests import them from there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

from daemon_helpers import AWS_V2, REGION, Service, clean_env, describe, http_request


# ---------------------------------------------------------------------------------------------
# SigV4-signed raw requests (botocore's signer)

class Signer:
    """Signs hand-made EC2 Query requests with botocore's SigV4Auth, optionally at a fake time,
    and sends them on a fresh connection. Returns (status, headers, body)."""

    def __init__(self, endpoint: str, access_key_id: str, secret_access_key: str):
        self.endpoint = endpoint
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key

    def json(self, method: str, path: str, payload: dict | None = None, *, query: str = "", **kw):
        """A call to the JSON API (service "snapvol"): returns (status, parsed body)."""
        import json as _json

        body = b"" if payload is None else _json.dumps(payload).encode()
        status, _, raw = self.send(body, method=method, query=query, path=path, service="snapvol",
                                   content_type="application/json", **kw)
        return status, _json.loads(raw) if raw else None

    def signed(self, body: bytes) -> tuple[bytes, dict]:
        """Signs a POST / Query body now; returns (body, headers) to send on any connection."""
        import botocore.auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        req = AWSRequest(method="POST", url=self.endpoint + "/", data=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        botocore.auth.SigV4Auth(Credentials(self.access_key_id, self.secret_access_key), "ec2", REGION).add_auth(req)
        return body, dict(req.headers.items())

    def send(self, body: bytes | str, *, method: str = "POST", query: str = "",
             skew_seconds: float = 0, secret: str | None = None, access_key_id: str | None = None,
             extra_headers: dict | None = None, path: str = "/", service: str = "ec2",
             content_type: str = "application/x-www-form-urlencoded; charset=utf-8"):
        import datetime
        import types
        from unittest import mock

        import botocore.auth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        if isinstance(body, str):
            body = body.encode()
        url = self.endpoint + path + (f"?{query}" if query else "")
        headers = {"Content-Type": content_type}
        if extra_headers:
            headers.update(extra_headers)
        req = AWSRequest(method=method, url=url, data=body, headers=headers)
        creds = Credentials(access_key_id or self.access_key_id, secret or self.secret_access_key)
        signer = botocore.auth.SigV4Auth(creds, service, REGION)
        if skew_seconds:
            real = datetime.datetime

            class Skewed(real):
                @classmethod
                def utcnow(cls):
                    return real.utcnow() + datetime.timedelta(seconds=skew_seconds)

            fake = types.SimpleNamespace(datetime=Skewed, timedelta=datetime.timedelta)
            with mock.patch.object(botocore.auth, "datetime", fake):
                signer.add_auth(req)
        else:
            signer.add_auth(req)
        send_headers = {k: v for k, v in req.headers.items()}
        target = path + (f"?{query}" if query else "")
        return http_request(self.endpoint, method, target, body, send_headers)


# ---------------------------------------------------------------------------------------------
# The AWS CLI

def find_aws_v1() -> str | None:
    """The first `aws` on PATH that is the AWS CLI v1 (v2 is /usr/bin/aws); None if none is."""
    v2 = os.path.realpath(AWS_V2)
    seen = set()
    for d in os.environ.get("PATH", "").split(os.pathsep):
        p = os.path.join(d or ".", "aws")
        if not os.access(p, os.X_OK) or os.path.isdir(p):
            continue
        real = os.path.realpath(p)
        if real == v2 or real in seen:
            continue
        seen.add(real)
        try:
            res = subprocess.run([p, "--version"], capture_output=True, text=True, timeout=60,
                                 env=clean_env())
        except (OSError, subprocess.TimeoutExpired):
            continue
        if (res.stdout + res.stderr).startswith("aws-cli/1."):
            return p
    return None


class AwsCli:
    """Runs one installation of the AWS CLI against a Service with a given profile, JSON output."""

    def __init__(self, exe: str, major: int):
        self.exe = exe
        self.major = major
        # What the CLI exits with when the service answered with an error.
        self.error_rc = 254 if major == 2 else 255

    def __repr__(self):
        return f"AwsCli(v{self.major}, {self.exe})"

    def run(self, svc: Service, alias: str, *args, timeout: float = 120):
        cmd = [self.exe, "--endpoint-url", svc.endpoint, "--profile", svc.accounts[alias].profile,
               "--output", "json", *map(str, args)]
        return subprocess.run(cmd, capture_output=True, text=True, env=svc.aws_env(), timeout=timeout)

    def ok(self, svc: Service, alias: str, *args, timeout: float = 120) -> dict:
        res = self.run(svc, alias, *args, timeout=timeout)
        assert res.returncode == 0, describe(res)
        return json.loads(res.stdout) if res.stdout.strip() else {}

    def error(self, svc: Service, alias: str, *args, code: str) -> str:
        """Runs a command that must fail with the EC2 error `code`; returns the message."""
        res = self.run(svc, alias, *args)
        assert res.returncode == self.error_rc, f"expected exit {self.error_rc} and {code}\n" + describe(res)
        m = re.search(r"An error occurred \(([^)]+)\) when calling the (\w+) operation(?: \([^)]*\))?: (.*)", res.stderr)
        assert m, "no 'An error occurred (...)' line\n" + describe(res)
        assert m.group(1) == code, f"expected {code}, got {m.group(1)}\n" + describe(res)
        return m.group(3).strip()
