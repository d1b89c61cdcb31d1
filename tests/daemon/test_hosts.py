"""snapvold's row in the catalog's hosts table (docs/multi-host.md part 2), seen through
`snapvol host list`: the daemon registers at start with its name, API address and NBD endpoint
under the data dir's host id (DIR/host-id, 0600), its heartbeat advances every
--host-heartbeat-seconds, after a SIGKILL the row shows `unreachable` once --host-timeout has
passed without a heartbeat (and `up` before), a restart makes it `up` again, and a clean stop
shows `stopped`."""

from __future__ import annotations

import json
import os
import stat

import pytest

import daemon_helpers as dh

BEAT_S = 0.2


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, "hosts", teams=0,
                              daemon_args=["--host-name", "rack7-a", "--host-heartbeat-seconds", str(BEAT_S)])
        yield svc
    finally:
        if svc is not None:
            dh.finish_service(svc)


def hosts(service, *extra) -> list[dict]:
    return json.loads(service.cli("host", "list", "-o", "json", *extra).stdout)["Hosts"]


def only_host(service, *extra) -> dict:
    rows = hosts(service, *extra)
    assert len(rows) == 1, rows
    return rows[0]


def test_registers_under_the_data_dirs_host_id_and_heartbeats(service):
    id_file = service.data_dir / "host-id"
    assert stat.S_IMODE(os.stat(id_file).st_mode) == 0o600
    host_id = id_file.read_text().strip()
    row = only_host(service)
    assert row["HostId"] == host_id
    assert row["Name"] == "rack7-a"
    assert row["ApiUrl"] == service.endpoint
    assert row["NbdEndpoint"] == f"unix:{service.data_dir / 'nbd.sock'}", row
    assert row["Version"], row
    assert row["State"] == "up", row
    first = row["HeartbeatMillis"]
    dh.wait_until(lambda: only_host(service)["HeartbeatMillis"] > first, 10, 0.1, "the heartbeat to advance")
    table = service.cli("host", "list").stdout.splitlines()
    assert table[0].split()[:3] == ["HOST", "NAME", "API"], table
    assert host_id in table[1] and "rack7-a" in table[1] and table[1].rstrip().endswith("up"), table
    # How many volumes each host holds, before its state.
    assert table[0].split()[-2:] == ["VOLUMES", "STATE"], table
    assert row["Volumes"] == sum(1 for v in json.loads(service.cli("volume", "list", "-o", "json").stdout)["Volumes"]
                                 if v["HostId"] == host_id), row


def test_killed_host_becomes_unreachable_and_a_restart_brings_it_back(service):
    started = only_host(service)["StartTime"]
    service.daemon.kill9()
    # Its last heartbeat is fresh: within the default 30 s it still counts as up.
    assert only_host(service)["State"] == "up"
    row = dh.wait_until(lambda: (r := only_host(service, "--host-timeout", "1"))["State"] == "unreachable" and r,
                        15, 0.2, "the killed host to show unreachable")
    assert row["HeartbeatMillis"] > 0, row
    service.daemon.start()
    row = dh.wait_until(lambda: (r := only_host(service, "--host-timeout", "1"))["State"] == "up" and r,
                        10, 0.2, "the restarted host to show up")
    assert row["StartTime"] > started, row


def test_clean_stop_shows_stopped(service):
    assert service.daemon.stop() == 0, service.daemon.log_tail()
    row = only_host(service)
    assert row["State"] == "stopped", row
    assert row["HeartbeatMillis"] == 0 and row["LastHeartbeat"] is None, row
    events = [e.get("event") for e in service.daemon.log_events()]
    assert "host_heartbeat_failed" not in events, service.daemon.log_tail()
