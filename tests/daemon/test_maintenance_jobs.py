"""Maintenance jobs in the daemon (issue #17 item 1), live:
- with a short GC schedule set in the --config file, the space a deleted snapshot held comes
  back without any operator command, and the run is recorded (JSON API, `snapvol job`);
- an operator's `snapvol job run verify` is picked up by the daemon and checks every snapshot;
- POST /api/v1/jobs/run queues a run for an administrator; members are refused as on every
  administrator path; bad input is refused by name;
- a restore drill asked for with `snapvol job run drill` restores the team's latest snapshot in
  full, runs the configured check command on the image and leaves a private, empty scratch
  directory; after a chunk of that snapshot is damaged, the next drill fails and names it;
- a bad maintenance setting stops snapvold with an error naming it;
- the GC repack threshold (format 2): listed by --print-config, applied by the scheduled GC,
  refused (flag or --config) on a format-1 data dir."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import daemon_helpers as dh


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    conf_dir = tmp_path_factory.mktemp("conf")
    conf = conf_dir / "snapvold.toml"
    # GC every 2 s with a 1 s grace period: for tests only (production keeps 04:00 and 15 min).
    conf.write_text('gc-every = 2\ngc-grace = 1\ndisable-verify = true\n'
                    'drill-check-command = "test -s {image}"\n')
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "svc", teams=1, daemon_args=["--config", str(conf)])
        yield svc
    finally:
        if svc is not None:
            dh.finish_service(svc)


def store_bytes(svc) -> int:
    return sum(p.stat().st_size for p in (svc.data_dir / "store" / "chunks").rglob("*") if p.is_file())


def admin_json(svc, method, path, payload=None, query=""):
    return svc.signer("admin").json(method, path, payload, query=query)


def wait_snapshot(client, snap_id):
    def done():
        s = client.describe_snapshots(SnapshotIds=[snap_id])["Snapshots"][0]
        assert s["State"] != "error", s
        return s["State"] == "completed"
    dh.wait_until(done, 120, 0.1, f"{snap_id} to complete")


def test_deleted_snapshot_space_comes_back_without_an_operator(service):
    ec2 = service.client("team-1")
    vol = service.volumes["vol-team-1"]
    snap = ec2.create_snapshot(VolumeId=vol.volume_id, Description="to be deleted")["SnapshotId"]
    wait_snapshot(ec2, snap)
    held = store_bytes(service)
    assert held > 1 << 20, held  # 16 MiB of text and random data, compressed
    ec2.delete_snapshot(SnapshotId=snap)
    # No command: the daemon's own GC (every 2 s) frees the chunks.
    dh.wait_until(lambda: store_bytes(service) < held // 10, 60, 0.2, "the store to shrink after the delete")

    status, body = admin_json(service, "GET", "/api/v1/jobs", query="job=gc")
    assert status == 200, body
    assert body["schedule"]["gc"] == {"enabled": True, "graceSeconds": 1, "everySeconds": 2}, body["schedule"]
    assert body["schedule"]["verify"]["enabled"] is False
    freed = [r for r in body["runs"] if r["bytesFreed"] > 0]
    assert freed, body["runs"]
    run = freed[0]
    assert run["job"] == "gc" and run["trigger"] == "scheduled" and run["state"] == "succeeded", run
    assert run["objectsDeleted"] > 0 and "freed" in run["message"], run
    assert run["startedAt"] <= run["finishedAt"], run
    # Run by this host, the one holder of the lease `maintenance` (docs/multi-host.md part 4).
    host_id = (service.data_dir / "host-id").read_text().strip()
    assert run["hostId"] == host_id and run["leaseGeneration"] == 1, run
    status, one = admin_json(service, "GET", f"/api/v1/jobs/{run['runId']}")
    assert status == 200 and one["run"] == run, one
    # The CLI reads the same records.
    listed = json.loads(service.cli("-o", "json", "job", "list", "--job", "gc").stdout)
    assert any(r["runId"] == run["runId"] and r["bytesFreed"] == run["bytesFreed"] and r["hostId"] == host_id
               for r in listed), listed
    shown = service.cli("job", "show", str(run["runId"])).stdout
    assert f"freed:      {run['bytesFreed']} bytes" in shown, shown
    assert f"host:       {host_id} (lease generation 1)" in shown, shown


def test_operator_runs_verification_through_the_cli(service):
    ec2 = service.client("team-1")
    vol = service.volumes["vol-team-1"]
    snaps = [ec2.create_snapshot(VolumeId=vol.volume_id)["SnapshotId"] for _ in range(2)]
    for s in snaps:
        wait_snapshot(ec2, s)
    out = service.cli("job", "run", "verify").stdout
    assert out.startswith("queued verify run "), out
    run_id = out.split()[3].rstrip(":")

    def finished():
        r = json.loads(service.cli("-o", "json", "job", "show", run_id).stdout)
        return r if r["state"] in ("succeeded", "failed") else None
    dh.wait_until(finished, 120, 0.2, f"verify run {run_id} to finish")
    r = finished()
    assert r["state"] == "succeeded", r
    assert r["trigger"] == "manual" and r["mode"] == "full", r
    assert r["snapshotsChecked"] == 2 and r["objectsChecked"] > 0 and r["damagedSnapshots"] == "", r
    # Refused by name: an unknown job.
    bad = service.cli("job", "run", "defrag", check=False)
    assert bad.returncode != 0 and "defrag" in bad.stderr, dh.describe(bad)
    bad = service.cli("job", "show", "nope", check=False)
    assert bad.returncode == 1 and "number" in bad.stderr, dh.describe(bad)


def test_json_api_runs_jobs_for_administrators_only(service):
    status, body = service.signer("team-1").json("GET", "/api/v1/jobs")
    assert status == 403 and body["error"]["code"] == "UnauthorizedOperation", body
    status, body = service.signer("team-1").json("POST", "/api/v1/jobs/run", {"job": "gc"})
    assert status == 403 and body["error"]["code"] == "UnauthorizedOperation", body
    status, body = admin_json(service, "POST", "/api/v1/jobs/run", {"job": "verify", "mode": "deep"})
    assert status == 400 and body["error"]["code"] == "InvalidParameterValue" and "mode" in body["error"]["message"], body
    status, body = admin_json(service, "POST", "/api/v1/jobs/run", {"job": "gc", "extra": 1})
    assert status == 400 and "extra" in body["error"]["message"], body
    status, body = admin_json(service, "GET", "/api/v1/jobs/999999")
    assert status == 400 and body["error"]["code"] == "InvalidJobRun.NotFound", body
    status, body = admin_json(service, "POST", "/api/v1/jobs/run", {"job": "verify", "mode": "quick"})
    assert status == 200 and body["run"]["state"] in ("queued", "running", "succeeded"), body
    run_id = body["run"]["runId"]

    def done():
        st, b = admin_json(service, "GET", f"/api/v1/jobs/{run_id}")
        assert st == 200, b
        return b["run"] if b["run"]["state"] == "succeeded" else None
    dh.wait_until(done, 120, 0.2, f"verify run {run_id}")
    assert done()["mode"] == "quick"


def run_job_and_wait(svc, job: str) -> dict:
    out = svc.cli("job", "run", job).stdout
    assert out.startswith(f"queued {job} run "), out
    run_id = out.split()[3].rstrip(":")

    def finished():
        r = json.loads(svc.cli("-o", "json", "job", "show", run_id).stdout)
        return r if r["state"] in ("succeeded", "failed") else None
    dh.wait_until(finished, 120, 0.2, f"{job} run {run_id} to finish")
    return finished()


def test_restore_drill_restores_checks_and_names_a_damaged_snapshot(service):
    ec2 = service.client("team-1")
    vol = service.volumes["vol-team-1"]
    chunks = service.data_dir / "store" / "chunks"
    assert chunks.is_dir(), "this test damages a format-1 store's chunk files"
    before = {p for p in chunks.rglob("*") if p.is_file()}
    with open(vol.path, "r+b") as f:  # data no other snapshot has
        f.write(os.urandom(1 << 20))
    snap = ec2.create_snapshot(VolumeId=vol.volume_id, Description="drilled")["SnapshotId"]
    wait_snapshot(ec2, snap)
    mine = [p for p in chunks.rglob("*") if p.is_file() and p not in before]
    assert mine, "the snapshot wrote no chunk"

    r = run_job_and_wait(service, "drill")
    assert r["state"] == "succeeded", r
    assert r["job"] == "drill" and r["trigger"] == "manual" and r["snapshotsChecked"] >= 1, r
    assert f"{snap} ({vol.volume_id}, " in r["message"], r["message"]
    assert "every block matched its id; `test` passed" in r["message"], r["message"]
    scratch = service.data_dir / "drills"
    assert scratch.stat().st_mode & 0o777 == 0o700 and not any(scratch.iterdir())
    status, body = admin_json(service, "GET", "/api/v1/jobs", query="job=drill")
    assert status == 200, body
    assert body["schedule"]["drill"] == {"enabled": False, "perAccount": 1,
                                         "checkCommand": ["test", "-s", "{image}"]}, body["schedule"]
    assert [x["runId"] for x in body["runs"]] == [int(r["runId"])], body["runs"]
    listed = service.cli("job", "list", "--job", "drill").stdout
    assert "snapshots restored" in listed, listed

    for p in mine:
        p.write_bytes(b"\xee" * 64)
    r = run_job_and_wait(service, "drill")
    assert r["state"] == "failed", r
    assert snap in r["damagedSnapshots"].split(), r
    assert f"{snap} ({vol.volume_id}, " in r["message"] and "FAILED: the restore found damage" in r["message"], r
    assert not any(scratch.iterdir())
    shown = service.cli("job", "show", str(r["runId"])).stdout
    assert f"failed:     {r['damagedSnapshots']}" in shown, shown


def test_bad_maintenance_settings_are_refused_by_name(tmp_path):
    for args, named in ((["--gc-time", "25:00"], "--gc-time"), (["--verify-period-days", "0"], "--verify-period-days"),
                        (["--gc-every", "-5"], "--gc-every"), (["--gc-repack-threshold", "0"], "--gc-repack-threshold"),
                        (["--gc-repack-threshold", "1.5"], "--gc-repack-threshold"),
                        (["--drill-time", "24:00"], "--drill-time"), (["--drill-every", "-1"], "--drill-every"),
                        (["--drill-per-account", "0"], "--drill-per-account"),
                        (["--drill-check-timeout", "0"], "--drill-check-timeout")):
        res = subprocess.run([dh.SNAPVOLD, "--data-dir", str(tmp_path / "d"), "--listen", "127.0.0.1:0", *args],
                             capture_output=True, text=True, env=dh.clean_env(), timeout=30)
        assert res.returncode == 1 and named in res.stderr, dh.describe(res)


def snapvol(*args, timeout=120):
    return subprocess.run([dh.SNAPVOL, *map(str, args)], capture_output=True, text=True, env=dh.clean_env(),
                          timeout=timeout)


def test_gc_repack_threshold_is_listed_applied_and_refused_on_format_1(tmp_path):
    res = subprocess.run([dh.SNAPVOLD, "--print-config"], capture_output=True, text=True, env=dh.clean_env(), timeout=30)
    assert res.returncode == 0 and "\n#gc-repack-threshold = 0.1\n" in res.stdout, dh.describe(res)

    # Format 1: nothing to repack, so the setting is refused, as a flag and in the file.
    plain = tmp_path / "plain"
    assert snapvol("--data-dir", plain, "init", "--store-format", "1").returncode == 0
    conf = tmp_path / "repack.toml"
    conf.write_text("gc-repack-threshold = 0.3\n")
    for args in (["--gc-repack-threshold", "0.3"], ["--config", str(conf)]):
        res = subprocess.run([dh.SNAPVOLD, "--data-dir", str(plain), "--listen", "127.0.0.1:0", *args],
                             capture_output=True, text=True, env=dh.clean_env(), timeout=30)
        assert res.returncode == 1 and "--gc-repack-threshold applies to format-2 stores" in res.stderr, \
            dh.describe(res)

    # Format 2: a deleted snapshot leaves packs part dead; with threshold 1 the daemon's GC
    # deletes the packs with nothing live and rewrites none, where the default would rewrite some.
    packed = tmp_path / "packed"
    assert snapvol("--data-dir", packed, "init", "--store-format", "2", "--pack-size", "1").returncode == 0
    img = dh.genvol_create(tmp_path / "vol.img", "24M", 3)
    vol = snapvol("--data-dir", packed, "volume", "register", "--path", img).stdout.strip()
    first = snapvol("--data-dir", packed, "snapshot", "create", "--volume-id", vol).stdout.strip()
    dh.genvol_mutate(img, 40, seed=4)
    assert dh.SNAP_ID.match(snapvol("--data-dir", packed, "snapshot", "create", "--volume-id", vol).stdout.strip())
    assert snapvol("--data-dir", packed, "snapshot", "delete", "--snapshot-id", first).returncode == 0
    res = snapvol("--data-dir", packed, "-o", "json", "gc", "--grace", "0", "--dry-run")
    default = json.loads(res.stdout)["Packs"]
    assert default["Repacked"] > 0 and default["Deleted"] > 0, default
    # A Unix socket path has at most 107 bytes: the NBD socket goes to a short private dir.
    sock_dir = Path(tempfile.mkdtemp(prefix="svgc-"))
    daemon = dh.Daemon(packed, tmp_path / "snapvold.log",
                       ["--gc-every", "1", "--gc-grace", "0", "--gc-repack-threshold", "1", "--disable-verify",
                        "--nbd-socket", sock_dir / "nbd.sock"])
    try:
        daemon.start()
        try:
            def gc_run():
                res = snapvol("--data-dir", packed, "job", "list", "--job", "gc", "-o", "json")
                assert res.returncode == 0, dh.describe(res)
                runs = [r for r in json.loads(res.stdout) if r["state"] == "succeeded" and r["bytesFreed"] > 0]
                return runs[0] if runs else None
            dh.wait_until(gc_run, 60, 0.2, "a scheduled gc run that freed space")
            run = gc_run()
        finally:
            assert daemon.stop() == 0
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)
    assert f"{default['Deleted']} deleted with nothing live, 0 repacked into 0 new" in run["message"], run
