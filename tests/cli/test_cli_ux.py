"""The command line itself: help, JSON output, usage errors (benchmark: test_benchmark.py)."""

from __future__ import annotations

import json
import re

import pytest

from snapvol_helpers import BLOCK, SNAP_ID, VOL_ID, assert_error, random_bytes, run, user_tags

COMMANDS = [
    [],
    ["init"],
    ["volume"],
    ["volume", "register"],
    ["volume", "list"],
    ["snapshot"],
    ["snapshot", "create"],
    ["snapshot", "list"],
    ["snapshot", "show"],
    ["snapshot", "delete"],
    ["restore"],
    ["verify"],
    ["gc"],
    ["catalog"],
    ["catalog", "rebuild"],
    ["benchmark"],
]


@pytest.mark.parametrize("cmd", COMMANDS, ids=lambda c: "_".join(c) or "top")
@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help(cmd, flag, tmp_path):
    res = run([*cmd, flag], cwd=tmp_path, timeout=30)
    assert res.returncode == 0, res.stderr
    assert "Usage:" in res.stdout
    assert res.stderr == ""
    assert list(tmp_path.iterdir()) == [], "--help must not create anything"


def test_top_level_help_lists_every_command(tmp_path):
    out = run(["--help"]).stdout
    for c in ("init", "volume", "snapshot", "restore", "verify", "gc", "catalog", "benchmark"):
        assert re.search(rf"^\s+{c}\s", out, re.MULTILINE), f"{c} missing from --help"
    for opt in ("--data-dir", "--output"):
        assert opt in out


@pytest.mark.parametrize("cmd,opt", [(["snapshot", "create"], "--volume-id"),
                                     (["snapshot", "create"], "--tag"),
                                     (["restore"], "--force"), (["verify"], "--quick"),
                                     (["gc"], "--dry-run"), (["gc"], "--grace"), (["gc"], "--repack-threshold"),
                                     (["init"], "--encrypt"), (["init"], "--block-size"),
                                     (["volume", "register"], "--path"),
                                     (["benchmark"], "--seconds"), (["benchmark"], "--dir"),
                                     (["benchmark"], "--size"), (["benchmark"], "--json")])
def test_help_documents_options(cmd, opt):
    assert opt in run([*cmd, "--help"]).stdout


def test_version():
    res = run(["--version"])
    assert res.returncode == 0
    assert re.search(r"\d+\.\d+\.\d+", res.stdout)


@pytest.mark.parametrize("args", [[], ["frobnicate"], ["snapshot"], ["volume"], ["catalog"],
                                  ["snapshot", "create"], ["restore", "--snapshot-id", "snap-x"],
                                  ["snapshot", "list", "--bogus-flag"], ["-o", "xml", "volume", "list"],
                                  ["volume", "list", "-o", "yaml"],
                                  ["init", "--block-size", "lots"]])
def test_usage_errors_exit_2(args, tmp_path):
    res = run(["--data-dir", tmp_path / "d", *args])
    assert res.returncode == 2, f"{args}: exit {res.returncode}\n{res.stderr}"
    assert res.stderr.strip(), "a usage error says what is wrong"
    assert not (tmp_path / "d").exists(), "a usage error must not create the data dir"


@pytest.fixture
def populated(store, tmp_path):
    img = tmp_path / "vol.img"
    img.write_bytes(random_bytes(3 * BLOCK + 11, 1))
    vol = store.register(img, name="disk one")
    s1 = store.snapshot(vol, "--description", "first \"quoted\" ✓", "--tag", "Name=a b",
                        "--tag", "Owner=team")
    s2 = store.snapshot(vol)
    return store, vol, s1, s2, img


def _json(res):
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.mark.parametrize("where", ["before", "after"])
def test_json_outputs(populated, where):
    s, vol, s1, s2, img = populated

    def j(*args):
        if where == "before":
            return _json(s.run("-o", "json", *args))
        return _json(s.run(*args, "-o", "json"))

    vols = j("volume", "list")["Volumes"]
    assert [v["VolumeId"] for v in vols] == [vol]
    assert vols[0]["Name"] == "disk one"
    assert vols[0]["SizeBytes"] == 3 * BLOCK + 11
    assert vols[0]["Path"] == str(img.resolve())

    snaps = j("snapshot", "list")["Snapshots"]
    assert [x["SnapshotId"] for x in snaps] == [s1, s2]
    for x in snaps:
        for k in ("SnapshotId", "VolumeId", "State", "Progress", "StartTime", "VolumeSizeBytes",
                  "Description", "Tags", "StoredBytes", "ChangedBlocks", "TotalBlocks",
                  "ParentSnapshotId"):
            assert k in x, f"{k} missing from snapshot list JSON"
        assert x["State"] == "completed" and x["Progress"] == "100%"
        assert x["VolumeId"] == vol and x["VolumeSizeBytes"] == 3 * BLOCK + 11
        assert x["TotalBlocks"] == 4
        assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", x["StartTime"]), x["StartTime"]
    assert snaps[0]["Description"] == "first \"quoted\" ✓"
    assert user_tags(snaps[0]["Tags"]) == [{"Key": "Name", "Value": "a b"}, {"Key": "Owner", "Value": "team"}]
    assert snaps[1]["ParentSnapshotId"] == s1
    assert j("snapshot", "list", "--volume-id", vol)["Snapshots"] == snaps
    assert j("snapshot", "list", "--volume-id", "vol-0123456789abcdef0")["Snapshots"] == []

    shown = j("snapshot", "show", "--snapshot-id", s1)
    assert shown == snaps[0]

    v = j("verify")
    assert v["Damaged"] == [] and v["SnapshotsChecked"] == 2
    assert j("verify", "--quick")["Damaged"] == []
    assert j("verify", "--snapshot-id", s2)["SnapshotsChecked"] == 1


def test_json_output_on_empty_store(store):
    assert _json(store.run("-o", "json", "volume", "list")) == {"Volumes": []}
    assert _json(store.run("-o", "json", "snapshot", "list")) == {"Snapshots": []}
    v = _json(store.run("-o", "json", "verify"))
    assert v["Damaged"] == [] and v["SnapshotsChecked"] == 0


def test_table_outputs(populated):
    s, vol, s1, s2, img = populated
    out = s.ok("snapshot", "list").stdout
    assert s1 in out and s2 in out and "completed" in out and "Name=a b" in out
    out = s.ok("volume", "list").stdout
    assert vol in out and "disk one" in out
    out = s.ok("snapshot", "show", "--snapshot-id", s1).stdout
    assert s1 in out and "first" in out
    res = s.ok("verify")
    assert "intact" in res.stdout


def test_ids_on_stdout_and_stats_on_stderr(store, tmp_path):
    img = tmp_path / "v.img"
    img.write_bytes(random_bytes(BLOCK, 2))
    res = store.ok("volume", "register", "--path", img)
    assert VOL_ID.match(res.stdout.strip()) and res.stdout.count("\n") == 1
    res = store.ok("snapshot", "create", "--volume-id", res.stdout.strip())
    assert SNAP_ID.match(res.stdout.strip()) and res.stdout.count("\n") == 1
    assert "snapshot" in res.stderr and "\r" not in res.stderr, "no progress bar when not a tty"


def test_errors_are_one_line(store):
    assert_error(store.run("snapshot", "show", "--snapshot-id", "snap-0123456789abcdef0"), r"not found")
