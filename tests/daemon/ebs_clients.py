"""What the EBS direct API tests share: boto3's ebs client of an account, a service started with
test-only environment settings, and the checksums the API wants (base64 SHA-256 of a block,
the LINEAR aggregate of the blocks' digests in index order)."""
from __future__ import annotations

import base64
import contextlib
import hashlib
import os

import daemon_helpers as dh


def ebs_client(svc, alias: str = "team-1", *, retries: dict, **config):
    """boto3's ebs client of alias's keys at svc; retries and config go to botocore's Config
    (botocore's max_attempts counts retries; total_max_attempts counts every attempt)."""
    import boto3
    from botocore.config import Config
    acct = svc.accounts[alias]
    session = boto3.session.Session(aws_access_key_id=acct.access_key_id,
                                    aws_secret_access_key=acct.secret_access_key, region_name=dh.REGION)
    return session.client("ebs", endpoint_url=svc.endpoint, config=Config(retries=retries, **config))


@contextlib.contextmanager
def service_with_env(tmp_path_factory, env: dict[str, str], **make_service_args):
    """A service whose daemon starts with env set (test-only settings); the caller's environment
    is put back afterwards."""
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "svc", **make_service_args)
        yield svc
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if svc is not None:
            dh.finish_service(svc)


def sha_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def linear(blocks: dict[int, bytes]) -> str:
    """The LINEAR aggregate: SHA-256 over the blocks' SHA-256 digests in index order, base64."""
    h = hashlib.sha256()
    for i in sorted(blocks):
        h.update(hashlib.sha256(blocks[i]).digest())
    return base64.b64encode(h.digest()).decode()
