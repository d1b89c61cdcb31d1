"""Helpers for the S3 integration tests: the test cluster's settings, data dirs whose
snapshot store is a prefix of the test bucket, and a boto3 view of the bucket for counting
objects (the tests never change objects through it).

The cluster is the one tests/s3/ceph_cluster.sh started (ctest's fixture); its settings
arrive as SNAPVOL_S3_* variables. Without them every test fails: an S3 test never skips.

Store format: a new store takes SNAPVOL_STORE_FORMAT (ctest runs the config, two-host and
outage modules on both); the tests look at chunk data only through data_keys() and writer_keys(),
which name format 1's per-object keys (chunks/, index/) or format 2's packs and packindex/.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cli"))

from snapvol_helpers import (GENVOL, SNAPVOL, Store, assert_error, assert_ok,  # noqa: E402,F401
                             assert_same_file, block_ids, clean_env, describe, genvol_create,
                             genvol_mutate, pack_entries, sha256_file)

REQUIRED = ("SNAPVOL_S3_ENDPOINT", "SNAPVOL_S3_BUCKET", "SNAPVOL_S3_ACCESS_KEY",
            "SNAPVOL_S3_SECRET_KEY", "SNAPVOL_CEPH_DIR")
CEPH_SCRIPT = os.environ.get("SNAPVOL_CEPH_SCRIPT") or str(Path(__file__).resolve().parent / "ceph_cluster.sh")


class Cluster:
    """The test cluster's S3 settings (from the fixture's environment)."""

    def __init__(self):
        missing = [k for k in REQUIRED if not os.environ.get(k)]
        if missing:
            raise RuntimeError(f"{', '.join(missing)} not set: run through ctest (the ceph fixture "
                               f"sets them) or tests/s3/with_cluster_env.sh ENV_FILE")
        self.endpoint = os.environ["SNAPVOL_S3_ENDPOINT"]
        self.bucket = os.environ["SNAPVOL_S3_BUCKET"]
        self.region = os.environ.get("SNAPVOL_S3_REGION", "us-east-1")
        self.access_key = os.environ["SNAPVOL_S3_ACCESS_KEY"]
        self.secret_key = os.environ["SNAPVOL_S3_SECRET_KEY"]
        self.ceph_dir = os.environ["SNAPVOL_CEPH_DIR"]
        self._formats: dict[str, int] = {}

    def key_env(self, access: str | None = None, secret: str | None = None) -> dict:
        """Environment for a child with these keys (default: the cluster's)."""
        return {"AWS_ACCESS_KEY_ID": access or self.access_key,
                "AWS_SECRET_ACCESS_KEY": secret or self.secret_key,
                "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_PROFILE": ""}

    def new_prefix(self, what: str) -> str:
        return f"pytest-{what}-{uuid.uuid4().hex[:12]}"

    def s3(self):
        import boto3
        from botocore.config import Config
        return boto3.client("s3", endpoint_url=self.endpoint, region_name=self.region,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key,
                            config=Config(s3={"addressing_style": "path"},
                                          retries={"max_attempts": 2}))

    def keys(self, prefix: str) -> list[str]:
        """Every key under prefix/ (paged)."""
        out = []
        for page in self.s3().get_paginator("list_objects_v2").paginate(Bucket=self.bucket,
                                                                          Prefix=prefix + "/"):
            out += [o["Key"] for o in page.get("Contents", [])]
        return out

    def count(self, prefix: str, kind: str) -> int:
        return sum(1 for k in self.keys(prefix) if k.startswith(f"{prefix}/{kind}/"))

    def store_format(self, prefix: str) -> int:
        """The format written in the store's config object (1: an object per chunk, 2: packs)."""
        if prefix not in self._formats:  # fixed once the store exists (an upgrade aside)
            body = self.s3().get_object(Bucket=self.bucket, Key=f"{prefix}/config")["Body"].read()
            self._formats[prefix] = int(json.loads(body).get("version", 1))
        return self._formats[prefix]

    def data_keys(self, prefix: str) -> set[str]:
        """The keys holding chunks and index pages: chunks/ and index/ objects (format 1) or
        packs (format 2). Each is written once and never changed, so comparing sets of them
        says what a command uploaded and what GC removed."""
        kinds = ("packs/",) if self.store_format(prefix) == 2 else ("chunks/", "index/")
        return {k for k in self.keys(prefix) if k[len(prefix) + 1:].startswith(kinds)}

    def chunks_in(self, keys: set[str], scratch: Path) -> int:
        """How many chunks these data keys hold: one per chunks/ object (format 1), the chunk
        entries of each pack's trailing index (format 2: the pack fetched into scratch)."""
        n = 0
        for key in keys:
            kind = key.split("/")[-3]
            if kind == "chunks":
                n += 1
            elif kind == "packs":
                path = Path(scratch) / key.rsplit("/", 1)[1]
                self.s3().download_file(self.bucket, key, str(path))
                n += sum(1 for k, _, _ in pack_entries(path, None) if k == 1)
                path.unlink()
        return n

    def writer_keys(self, prefix: str) -> set[str]:
        """Format 2: the packindex/ objects (one or more per writer, named by its writer id)."""
        return {k for k in self.keys(prefix) if k.startswith(f"{prefix}/packindex/")}

    def stop_rgw(self):
        subprocess.run([CEPH_SCRIPT, "stop-rgw", self.ceph_dir], check=True, timeout=60)

    def start_rgw(self):
        subprocess.run([CEPH_SCRIPT, "start-rgw", self.ceph_dir], check=True, timeout=180)


class S3Host(Store):
    """A data dir (one "host") whose store is s3://BUCKET/PREFIX of the test cluster; its
    commands run with the cluster's keys in the environment unless told otherwise."""

    def __init__(self, path: Path, cluster: Cluster, prefix: str, env: dict | None = None):
        super().__init__(path)
        self.cluster = cluster
        self.prefix = prefix
        self.env = cluster.key_env() if env is None else env

    def run(self, *args, timeout: float = 300, env: dict | None = None):
        return subprocess.run([SNAPVOL, "--data-dir", str(self.dir), *map(str, args)],
                              capture_output=True, text=True, timeout=timeout,
                              env=clean_env(self.env if env is None else env))

    def ok(self, *args, timeout: float = 300):
        return assert_ok(self.run(*args, timeout=timeout))

    def popen(self, *args, **kw):
        return subprocess.Popen([SNAPVOL, "--data-dir", str(self.dir), *map(str, args)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=clean_env(self.env), **kw)

    def init_s3(self, *flags):
        return self.ok("init", "--store", f"s3://{self.cluster.bucket}/{self.prefix}",
                       "--s3-endpoint", self.cluster.endpoint, *flags)


STORE_FORMAT = int(os.environ.get("SNAPVOL_STORE_FORMAT") or 1)


def gc_json(host: "S3Host", *args) -> dict:
    """`snapvol gc --grace 0` on host, its JSON report."""
    res = assert_ok(host.run("-o", "json", "gc", "--grace", "0", *args))
    return json.loads(res.stdout)


def wait_for(cond, what: str, timeout: float = 120):
    """Polls cond() until it is true (a bound on a hang, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"gave up waiting for {what}")
