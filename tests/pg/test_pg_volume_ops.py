"""Volume operations on a volume another host holds, done by that host (docs/multi-host.md part
3), and the addresses a host advertises (part 2). Two snapvold share one PostgreSQL catalog and
one store directory; host B advertises an API URL and an NBD address other than the ones it
bound. DeleteVolume of B's volumes (managed and registered) sent to A answers as on one host,
and B deletes them: the managed volume's file goes, the registered disk stays, A claims and
touches nothing. While B is stopped the same request is refused with IncorrectState naming B
and its state, and nothing changes. DetachVolume sent to A ends the NBD client connected to B; so does a detach and attach again
through A that B did not see in between, and the client of the new attachment is served.
`snapvol host list` and the volume's aws:snapvol:nbd tag carry B's advertised addresses."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import botocore.exceptions
import nbd
import pytest

import daemon_helpers as dh
import pg_helpers as pg
from pg_hosts import host_id, start_host
from test_pg_routing import register_on

B_API = "http://hv-b.example:8787"
B_NBD = "hv-b.example:10809"


@pytest.fixture
def hosts(tmp_path, databases):
    url = databases.new()
    a = b = None
    try:
        a = start_host(tmp_path / "a", url)
        a.load_admin()
        b = start_host(tmp_path / "b", url, template=a,
                       args=["--host-name", "hv-b", "--nbd-listen", "127.0.0.1:0", "--advertise-api", B_API,
                             "--advertise-nbd", B_NBD])
        b.load_admin()
        a.add_account("team-1")
        b.accounts = dict(a.accounts)
        b.write_aws_files()
        yield {"a": a, "b": b, "url": url}
    finally:
        for svc in (b, a):
            if svc is not None:
                dh.finish_service(svc)


def events(svc, name) -> list[dict]:
    return [e for e in svc.daemon.log_events() if e.get("event") == name]


def refused(call, **kwargs) -> tuple[str, str]:
    with pytest.raises(botocore.exceptions.ClientError) as err:
        call(**kwargs)
    return err.value.response["Error"]["Code"], err.value.response["Error"]["Message"]


def managed_on(b) -> tuple[str, Path]:
    """A managed volume made by B's CreateVolume, and its image file (on B's disk)."""
    vid = b.client("team-1").create_volume(Size=1, AvailabilityZone="us-east-1a")["VolumeId"]
    image = b.data_dir / "volumes" / f"{vid}.img"
    assert image.exists()
    return vid, image


def wait_gone(ec2, vid, attempts=300):
    """Until DescribeVolumes no longer finds vid (a bound of attempts x 0.1 s, not a timing);
    the states it went through."""
    seen = []
    for _ in range(attempts):
        try:
            state = ec2.describe_volumes(VolumeIds=[vid])["Volumes"][0]["State"]
        except botocore.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] == "InvalidVolume.NotFound", e
            return seen
        seen.append(state)
        time.sleep(0.1)
    raise AssertionError(f"{vid} was not deleted: states {seen}")


def ends(h) -> bool:
    """Whether the NBD client h is ended within a bound of 100 x 0.1 s (not a timing: PostgreSQL's
    NOTIFY wakes the volume's host at once, and its pass ends the connection)."""
    for _ in range(100):
        try:
            h.pread(4096, 0)
        except nbd.Error:
            return True
        time.sleep(0.1)
    return False


def test_delete_sent_to_a_is_done_by_the_volumes_host(hosts, tmp_path):
    a, b, url = hosts["a"], hosts["b"], hosts["url"]
    admin_a = a.client("admin")
    mid, image = managed_on(b)
    registered, path = register_on(a, b, tmp_path, "data-b", 41)
    sha = dh.sha256_file(path)
    a_volumes = sorted((a.data_dir / "volumes").iterdir())

    for vid in (mid, registered):
        answer = admin_a.delete_volume(VolumeId=vid)  # EC2 answers `true`: botocore returns no fields
        assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
        states = wait_gone(admin_a, vid)
        assert set(states) <= {"deleting"}, states
    assert not image.exists(), "the managed volume's file is still on B"
    assert not [p.name for p in (b.data_dir / "volumes").iterdir() if mid in p.name], "B kept files of it"
    assert dh.sha256_file(path) == sha, "the registered disk was touched"
    assert pg.psql(url, f"SELECT count(*) FROM volumes WHERE volume_id IN ('{mid}', '{registered}')") == "0"
    # B did it (its claimer, its runner); A claimed nothing and has no new file.
    done = events(b, "volume_deletion_claimed")
    assert sorted(e["volume_id"] for e in done) == sorted([mid, registered]), done
    assert all(e["ok"] and e["runner"].endswith("@" + host_id(b)) for e in done), done
    assert events(a, "volume_deletion_claimed") == []
    assert sorted((a.data_dir / "volumes").iterdir()) == a_volumes
    # The audit line of A's request says where it went.
    audit = [json.loads(line) for line in (a.data_dir / "audit.log").read_text().splitlines() if line.startswith("{")]
    queued = [r for r in audit if r.get("action") == "DeleteVolume"]
    assert queued and all(f"queued for host {host_id(b)}" in r.get("detail", "") for r in queued), queued


def test_delete_while_the_volumes_host_is_stopped_is_refused_and_changes_nothing(hosts):
    a, b, url = hosts["a"], hosts["b"], hosts["url"]
    admin_a = a.client("admin")
    mid, image = managed_on(b)
    assert b.daemon.stop() == 0
    code, msg = refused(admin_a.delete_volume, VolumeId=mid)
    assert code == "IncorrectState", (code, msg)
    # It names the host (its advertised API address) and its state.
    assert host_id(b) in msg and "hv-b" in msg and B_API in msg and "stopped" in msg, msg
    assert pg.psql(url, f"SELECT state, state_message FROM volumes WHERE volume_id = '{mid}'") == "available|"
    assert image.exists()
    assert admin_a.describe_volumes(VolumeIds=[mid])["Volumes"][0]["State"] == "available"


def test_detach_sent_to_a_ends_the_nbd_client_connected_to_b(hosts):
    a, b = hosts["a"], hosts["b"]
    team_a = a.client("team-1")
    inst = a.cli("instance", "create", "--account-id", a.accounts["team-1"].account_id, "--name", "web").stdout.strip()
    mid, image = managed_on(b)
    team_a.attach_volume(VolumeId=mid, InstanceId=inst, Device="/dev/sdf")
    h = nbd.NBD()
    h.connect_uri(f"nbd+unix:///{mid}?socket={b.data_dir / 'nbd.sock'}")  # B's export (root on its socket)
    data = b"w" * 4096
    h.pwrite(data, 0)
    h.flush()

    team_a.detach_volume(VolumeId=mid)
    assert ends(h), "the NBD client connected to B still reads after the detach through A"
    seen = [e for e in events(b, "nbd_disconnected") if e.get("volume_id") == mid]
    assert seen and seen[-1]["connections"] == 1 and "detached" in seen[-1]["reason"], seen
    with pytest.raises(nbd.Error):  # and B no longer serves it
        nbd.NBD().connect_uri(f"nbd+unix:///{mid}?socket={b.data_dir / 'nbd.sock'}")
    with open(image, "rb") as f:
        assert f.read(4096) == data  # what was written before is kept


def test_detach_and_attach_again_through_a_ends_only_the_old_attachments_connection(hosts):
    """Detached and attached again through A while B does not look (B stopped with SIGSTOP, so
    no pass of B's sees the volume detached): the volume is attached as before, but the client
    of the old attachment is ended; one that connects under the new attachment is served, and
    so is the client of another volume that stayed attached."""
    a, b = hosts["a"], hosts["b"]
    team_a = a.client("team-1")
    inst = a.cli("instance", "create", "--account-id", a.accounts["team-1"].account_id, "--name", "db").stdout.strip()
    mid, image = managed_on(b)
    other, _ = managed_on(b)
    team_a.attach_volume(VolumeId=mid, InstanceId=inst, Device="/dev/sdf")
    team_a.attach_volume(VolumeId=other, InstanceId=inst, Device="/dev/sdh")
    sock = b.data_dir / "nbd.sock"
    old, bystander = nbd.NBD(), nbd.NBD()
    old.connect_uri(f"nbd+unix:///{mid}?socket={sock}")
    bystander.connect_uri(f"nbd+unix:///{other}?socket={sock}")
    old.pwrite(b"o" * 4096, 0)
    old.flush()

    os.kill(b.daemon.proc.pid, signal.SIGSTOP)
    try:
        team_a.detach_volume(VolumeId=mid)
        team_a.attach_volume(VolumeId=mid, InstanceId=inst, Device="/dev/sdg")
    finally:
        os.kill(b.daemon.proc.pid, signal.SIGCONT)
    assert ends(old), "the client of the old attachment still reads after detach and attach again through A"
    seen = [e for e in events(b, "nbd_disconnected") if e.get("volume_id") == mid]
    assert seen and seen[-1]["connections"] == 1 and "attached again" in seen[-1]["reason"], seen

    new = nbd.NBD()
    new.connect_uri(f"nbd+unix:///{mid}?socket={sock}")
    assert new.pread(4096, 0) == b"o" * 4096
    new.pwrite(b"n" * 4096, 4096)
    new.flush()
    assert bystander.pread(4096, 0) == bytes(4096)  # its volume stayed attached: served
    # A pass of B's that sees the new client: the detach of the other volume wakes B, and the
    # pass that ends the bystander looks at every open export, mid's new client included.
    team_a.detach_volume(VolumeId=other)
    assert ends(bystander), "the other volume's client still reads after its detach through A"
    assert new.pread(4096, 4096) == b"n" * 4096
    assert [e for e in events(b, "nbd_disconnected") if e.get("volume_id") == mid] == seen
    new.shutdown()
    with open(image, "rb") as f:
        assert f.read(8192) == b"o" * 4096 + b"n" * 4096


def test_advertised_addresses_are_what_other_hosts_see(hosts):
    a, b = hosts["a"], hosts["b"]
    listed = {h["HostId"]: h for h in json.loads(a.cli("host", "list", "-o", "json").stdout)["Hosts"]}
    assert listed[host_id(b)]["ApiUrl"] == B_API
    assert listed[host_id(b)]["NbdEndpoint"] == f"unix:{b.data_dir / 'nbd.sock'} tcp:{B_NBD}"
    # A advertises nothing: its bound address, which is loopback, so no warning.
    assert listed[host_id(a)]["ApiUrl"] == a.endpoint
    assert events(a, "advertise_warning") == [] and events(b, "advertise_warning") == []
    mid, _ = managed_on(b)
    tags = {t["Key"]: t["Value"] for t in a.client("team-1").describe_volumes(VolumeIds=[mid])["Volumes"][0]["Tags"]}
    assert tags["aws:snapvol:nbd"] == f"nbds://{B_NBD}/{mid}", tags
    assert tags["aws:snapvol:host"] == "hv-b"
