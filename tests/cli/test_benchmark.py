"""`snapvol benchmark`: every figure the bench scripts read is there, positive and finite; the
I/O test's temporary file goes where it is told and leaves nothing behind; a directory it
cannot use is refused with one clear error line. No assertion depends on how fast anything is.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from snapvol_helpers import assert_error, assert_ok, run

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import machine_bounds  # noqa: E402  (bench/machine_bounds.py, what the bench scripts use)

CPU_FIGURES = ("hash_gbps", "compress_gbps", "hash_compress_checksum_gbps", "decode_verify_gbps")


def positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One run as the bench scripts start it (default --seconds), in a directory of its own."""
    io_dir = tmp_path_factory.mktemp("io")
    cwd = tmp_path_factory.mktemp("cwd")
    res = assert_ok(run(["benchmark", "--json", "--size", "8", "--dir", io_dir], cwd=cwd, timeout=120))
    return io_dir, cwd, res


def test_json_has_every_figure_positive_and_finite(report):
    io_dir, _, res = report
    doc = json.loads(res.stdout)
    assert doc["threads"] == os.cpu_count(), "all cores: one thread per CPU"
    assert doc["block_bytes"] == 512 * 1024
    for section, names in (("per_core", CPU_FIGURES + ("hash_compress_checksum_encrypted_gbps",)),
                           ("all_cores", CPU_FIGURES),
                           ("io", ("write_gbps", "write_fsync_gbps", "write_writeback_fsync_gbps",
                                   "write_direct_fsync_gbps", "write_sync_gbps", "page_cache_read_gbps")),
                           ("bounds", ("full_snapshot_gbps", "incremental_gbps", "restore_gbps"))):
        for name in names:
            assert positive(doc[section].get(name)), f"{section}.{name} = {doc[section].get(name)!r}"
    assert doc["io"]["dir"] == str(io_dir.resolve())
    assert doc["io"]["size_bytes"] == 8 << 20
    sample = doc["sample"]
    assert sample["text_blocks"] > 0 and sample["random_blocks"] > 0
    # Text-like blocks must compress the way log text does (bench/genvol's: ~3.5x), and the
    # random ones not at all, or the compress figures would not mean what they say.
    assert 2 < sample["text_compression_ratio"] < 8, sample
    assert 1 < sample["stored_ratio"] < sample["text_compression_ratio"], sample
    # The disk-write bound is the faster way of writing; each step's bound the slower of its paths.
    b, c, io = doc["bounds"], doc["all_cores"], doc["io"]
    assert io["write_sync_gbps"] == max(io["write_fsync_gbps"], io["write_writeback_fsync_gbps"],
                                        io["write_direct_fsync_gbps"])
    assert b["full_snapshot_gbps"] == min(c["hash_compress_checksum_gbps"], io["page_cache_read_gbps"])
    assert b["incremental_gbps"] == min(c["hash_gbps"], io["page_cache_read_gbps"])
    assert b["restore_gbps"] == min(c["decode_verify_gbps"], io["write_sync_gbps"])


def test_bench_scripts_accept_the_json(report):
    _, _, res = report
    doc = machine_bounds.parse(res.stdout)
    rows = machine_bounds.step_bounds(doc, "full", 100 << 20, 60 << 20, 30 << 20)
    assert [p for p, _ in rows][-1].startswith("machine")
    assert all(positive(b) for _, b in rows), rows
    assert rows[-1][1] == min(b for _, b in rows[:-1])


def test_nothing_left_behind(report):
    io_dir, cwd, _ = report
    assert list(io_dir.iterdir()) == []
    assert list(cwd.iterdir()) == []


def test_table_output(tmp_path):
    res = assert_ok(run(["benchmark", "--seconds", "0.05", "--size", "4", "--dir", tmp_path],
                        cwd=tmp_path, timeout=60))
    for name in ("SHA-256", "zstd", "hash + compress + checksum", "AES-256-GCM", "decode + verify",
                 "write + fsync at the end", "writeback started per call", "O_DIRECT write", "page-cache read", "full snapshot", "incremental", "restore"):
        line = next((l for l in res.stdout.splitlines() if name in l and "GB/s" in l), None)
        assert line, f"no figure for {name}:\n{res.stdout}"
        assert all(float(f) > 0 for f in re.findall(r"(\d+(?:\.\d+)?) GB/s", line)), line
    assert str(tmp_path.resolve()) in res.stdout
    assert list(tmp_path.iterdir()) == []


def test_default_dir_is_the_data_dirs_store_else_the_current_dir(tmp_path):
    data = tmp_path / "data"
    assert_ok(run(["--data-dir", data, "init"]))
    before = sorted(p.name for p in (data / "store").iterdir())
    res = assert_ok(run(["--data-dir", data, "benchmark", "-o", "json", "--seconds", "0.02", "--size", "2"],
                        cwd=tmp_path, timeout=60))
    assert json.loads(res.stdout)["io"]["dir"] == str((data / "store").resolve())
    assert sorted(p.name for p in (data / "store").iterdir()) == before
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    res = assert_ok(run(["benchmark", "--json", "--seconds", "0.02", "--size", "2"], cwd=cwd, timeout=60))
    assert json.loads(res.stdout)["io"]["dir"] == str(cwd.resolve())
    assert list(cwd.iterdir()) == []


def test_missing_dir(tmp_path):
    missing = tmp_path / "nope"
    msg = assert_error(run(["benchmark", "--dir", missing, "--seconds", "0.02"], timeout=30), "does not exist")
    assert str(missing) in msg
    assert not missing.exists()


def test_dir_that_is_a_file(tmp_path):
    f = tmp_path / "file"
    f.write_bytes(b"x")
    assert_error(run(["benchmark", "--dir", f, "--seconds", "0.02"], timeout=30), "not a directory")
    assert f.read_bytes() == b"x"


def test_dir_not_writable(tmp_path):
    """sysfs refuses new files even to root; a 0500 directory refuses everyone else."""
    dirs = [Path("/sys")] if Path("/sys/kernel").is_dir() else []
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        dirs.append(ro)
    assert dirs, "no directory this user cannot write to"
    for d in dirs:
        msg = assert_error(run(["benchmark", "--dir", d, "--seconds", "0.02", "--json"], timeout=30),
                           "cannot create a file")
        assert str(d) in msg and "writable" in msg, msg


def test_not_enough_space(tmp_path):
    # The largest --size there is, so that space freed by other processes meanwhile cannot
    # turn this into a real run.
    if shutil.disk_usage(tmp_path).free >= (1 << 40) - (64 << 30):
        pytest.skip("a terabyte free: --size cannot ask for more")
    msg = assert_error(run(["benchmark", "--dir", tmp_path, "--size", 1 << 20, "--seconds", "0.02"], timeout=30),
                       "MiB free")
    assert "--size" in msg
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["--size", "0"], ["--size", "x"], ["--seconds", "-1"], ["--seconds", "0"]])
def test_bad_options_are_usage_errors(args, tmp_path):
    res = run(["benchmark", "--dir", tmp_path, *args], timeout=30)
    assert res.returncode == 2, res
    assert args[0] in res.stderr
    assert list(tmp_path.iterdir()) == []
