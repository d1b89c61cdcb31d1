"""`snapvol init --store s3://…` and `snapvol store check` against the test cluster: a data
dir on S3 works end to end with keys from the environment, a shared-credentials profile or
its own config; wrong credentials, a missing bucket and an unreachable endpoint each give
one clear error; bad input is refused before anything is written. Runs on both store formats
(s3_config, s3_config_format2): the round trip counts the chunks uploaded in either layout."""

from __future__ import annotations

import json
import os
import stat

import pytest

from s3_helpers import (STORE_FORMAT, S3Host, assert_error, assert_ok, assert_same_file, block_ids,
                        genvol_create)


def test_s3_data_dir_round_trip_with_env_keys(tmp_path, cluster):
    host = S3Host(tmp_path / "data", cluster, cluster.new_prefix("roundtrip"))
    out = host.init_s3().stdout
    assert f"s3://{cluster.bucket}/{host.prefix}" in out
    cfg = json.loads((host.dir / "store.json").read_text())
    assert cfg["endpoint"] == cluster.endpoint
    assert "secret_access_key" not in cfg  # keys were only in the environment
    assert not (host.dir / "store").exists()  # nothing local holds snapshot data

    vol = genvol_create(tmp_path / "vol.img", "24M", seed=3)
    vid = host.register(vol)
    sid = host.snapshot(vid)
    assert cluster.store_format(host.prefix) == STORE_FORMAT
    first = cluster.data_keys(host.prefix)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    assert cluster.chunks_in(first, scratch) == len({b for b in block_ids(vol) if b})
    assert f"{host.prefix}/manifests/{sid}" in cluster.keys(host.prefix)
    assert_ok(host.restore(sid, tmp_path / "back.img"))
    assert_same_file(tmp_path / "back.img", vol)
    assert host.damaged() == set()

    # Incremental: only the changed blocks go up.
    with open(vol, "r+b") as f:
        f.seek(5 << 20)
        f.write(b"changed!" * 512)
    sid2 = host.snapshot(vid)
    added = cluster.data_keys(host.prefix) - first
    assert first <= cluster.data_keys(host.prefix)
    assert cluster.chunks_in(added, scratch) == 1, sorted(added)
    assert_ok(host.restore(sid2, tmp_path / "back2.img"))
    assert_same_file(tmp_path / "back2.img", vol)

    check = host.ok("store", "check", "-o", "json")
    report = json.loads(check.stdout)
    assert report["Ok"] is True
    assert {s["Step"] for s in report["Steps"]} >= {"reach endpoint", "credentials accepted", "bucket",
                                                     "clock skew", "write", "read", "delete"}
    for res in (check,):
        assert cluster.secret_key not in res.stdout + res.stderr


def test_keys_from_a_profile_and_saved_in_the_data_dir(tmp_path, cluster):
    creds = tmp_path / "credentials"
    creds.write_text(f"[other]\naws_access_key_id = NOPE\naws_secret_access_key = nope\n\n"
                     f"[snaptest]\naws_access_key_id = {cluster.access_key}\n"
                     f"aws_secret_access_key = {cluster.secret_key}\n")
    profile_env = {"AWS_SHARED_CREDENTIALS_FILE": str(creds), "AWS_PROFILE": "",
                   "AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": ""}
    host = S3Host(tmp_path / "a", cluster, cluster.new_prefix("profile"), env=profile_env)
    host.init_s3("--s3-profile", "snaptest")
    assert json.loads((host.dir / "store.json").read_text())["profile"] == "snaptest"
    check = host.ok("store", "check")
    assert "profile 'snaptest'" in check.stdout

    # --s3-save-keys records the keys (mode 0600), and the dir then needs no environment.
    saved = S3Host(tmp_path / "b", cluster, cluster.new_prefix("saved"))
    saved.init_s3("--s3-save-keys")
    path = saved.dir / "store.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert json.loads(path.read_text())["access_key_id"] == cluster.access_key
    no_env = {"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "",
              "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    out = assert_ok(saved.run("store", "check", env=no_env)).stdout
    assert str(path) in out  # says where the keys came from
    assert cluster.secret_key not in out


def test_wrong_credentials_one_clear_error(tmp_path, cluster):
    prefix = cluster.new_prefix("wrongkeys")
    wrong_secret = S3Host(tmp_path / "a", cluster, prefix, env=cluster.key_env(secret="0" * 40))
    res = wrong_secret.run("init", "--store", f"s3://{cluster.bucket}/{prefix}", "--s3-endpoint", cluster.endpoint)
    msg = assert_error(res, r"wrong secret key")
    assert cluster.access_key in msg and "0" * 40 not in res.stderr
    assert not wrong_secret.dir.exists()  # nothing written locally

    unknown = S3Host(tmp_path / "b", cluster, prefix, env=cluster.key_env(access="UNKNOWNKEY1234567"))
    res = unknown.run("init", "--store", f"s3://{cluster.bucket}/{prefix}", "--s3-endpoint", cluster.endpoint)
    assert_error(res, r"does not know access key UNKNOWNKEY1234567.*wrong credentials")

    no_keys = S3Host(tmp_path / "c", cluster, prefix,
                     env={"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_PROFILE": ""})
    res = no_keys.run("init", "--store", f"s3://{cluster.bucket}/{prefix}", "--s3-endpoint", cluster.endpoint)
    assert_error(res, r"no S3 credentials")

    # A working data dir whose keys go bad: store check names the step, commands fail clearly.
    host = S3Host(tmp_path / "d", cluster, prefix)
    host.init_s3()
    bad_env = cluster.key_env(secret="1" * 40)
    res = host.run("store", "check", env=bad_env)
    assert_error(res, r"store check failed at credentials accepted: .*wrong secret key")
    assert "reach endpoint        ok" in res.stdout
    assert_error(host.run("snapshot", "list", env=bad_env), r"wrong secret key")


def test_missing_bucket_one_clear_error(tmp_path, cluster):
    host = S3Host(tmp_path / "data", cluster, "p")
    res = host.run("init", "--store", "s3://no-such-bucket-snapvol/p", "--s3-endpoint", cluster.endpoint)
    assert_error(res, r"bucket 'no-such-bucket-snapvol' does not exist at " + cluster.endpoint)
    assert not host.dir.exists()


def test_unreachable_endpoint_one_clear_error(tmp_path, cluster):
    host = S3Host(tmp_path / "data", cluster, "p")
    res = host.run("init", "--store", f"s3://{cluster.bucket}/p", "--s3-endpoint", "http://127.0.0.1:1")
    assert_error(res, r"cannot reach the S3 endpoint http://127.0.0.1:1")
    assert not host.dir.exists()

    # A configured data dir whose endpoint goes away: store check says it is the endpoint.
    ok = S3Host(tmp_path / "b", cluster, cluster.new_prefix("unreach"))
    ok.init_s3()
    cfg_path = ok.dir / "store.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["endpoint"] = "http://127.0.0.1:1"
    cfg_path.write_text(json.dumps(cfg))
    res = ok.run("store", "check")
    assert_error(res, r"store check failed at reach endpoint: .*cannot reach")


@pytest.mark.parametrize("args,pattern", [
    (["--store", "s3://Bad_Bucket/p"], r"not a valid bucket name"),
    (["--store", "s3://ok-bucket/UPPER"], r"prefix 'UPPER'"),
    (["--store", "s3://ok-bucket/p", "--s3-endpoint", "http://s3.example.com"], r"plain HTTP to a non-loopback host"),
    (["--store", "s3://ok-bucket/p", "--s3-endpoint", "ftp://127.0.0.1"], r"must start with https://"),
    (["--store", "s3://ok-bucket/p", "--s3-endpoint", "http://127.0.0.1:9/path"], r"without a path"),
    (["--store", "s3://ok-bucket/p", "--s3-endpoint", "http://127.0.0.1:9", "--s3-url-style", "odd"], r"'path' or 'virtual'"),
    (["--store", "gs://bucket"], r"unknown store 'gs://bucket'"),
    (["--s3-endpoint", "http://127.0.0.1:9"], r"need --store s3://"),
])
def test_bad_input_is_refused_before_anything_is_written(tmp_path, cluster, args, pattern):
    host = S3Host(tmp_path / "data", cluster, "p")
    assert_error(host.run("init", *args), pattern)
    assert not host.dir.exists()


def test_second_host_joins_and_cannot_reinit(tmp_path, cluster):
    prefix = cluster.new_prefix("join")
    a = S3Host(tmp_path / "a", cluster, prefix)
    a.init_s3("--block-size", "65536")
    b = S3Host(tmp_path / "b", cluster, prefix)
    out = b.init_s3().stdout
    assert "joined" in out and "64.0 KiB" in out
    assert_error(a.run("init", "--store", f"s3://{cluster.bucket}/{prefix}", "--s3-endpoint", cluster.endpoint),
                 r"already initialised")
    c = S3Host(tmp_path / "c", cluster, prefix)
    assert_error(c.run("init", "--store", f"s3://{cluster.bucket}/{prefix}", "--s3-endpoint", cluster.endpoint,
                       "--block-size", "131072"), r"block size 65536; --block-size cannot change it")
    assert_error(c.run("init", "--store", f"s3://{cluster.bucket}/{prefix}", "--s3-endpoint", cluster.endpoint,
                       "--encrypt"), r"--encrypt applies only when creating")
    assert not (c.dir / "store.json").exists()


def test_damaged_store_config_is_a_clear_error(tmp_path, cluster):
    host = S3Host(tmp_path / "data", cluster, cluster.new_prefix("damaged"))
    host.init_s3()
    cfg = host.dir / "store.json"
    good = cfg.read_text()
    cfg.write_text("{not json")
    assert_error(host.run("snapshot", "list"), r"store.json is not a store config")
    assert_error(host.run("store", "check"), r"store check failed at config: .*store.json")
    cfg.write_text(json.dumps({"type": "s3", "url": "s3://x/p"}))  # no endpoint
    assert_error(host.run("snapshot", "list"), r"store.json is missing a field")
    cfg.write_text(good)
    assert_ok(host.run("store", "check"))
