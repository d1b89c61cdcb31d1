"""The Debian package, end to end on this machine (issue #17 item 5): scripts/package builds
snapvol_<version>_<arch>.deb from the build dir, `dpkg -i` installs it, and the installed
service is checked as an operator would meet it: files, modes and owners, the conffile (every
setting of `snapvold --help`, commented, and read back when uncommented), `systemd-analyze
verify` and the sandbox's exposure, logrotate's rules, the unit's ExecStart started by hand as
the `snapvol` user (there is no systemd as PID 1 here) serving /healthz and the console, the
audit log rotated with logrotate and reopened on SIGHUP, then `dpkg -r` and `dpkg --purge`,
which must keep /var/lib/snapvol.

It needs root and changes the machine (a package, a system user, /var/lib/snapvol): the
module fixture purges the package and removes what it created, also after a failure, and a
leftover from an earlier failed run is cleaned up first. A /var/lib/snapvol this test did not
create is never touched: the test refuses to run instead.

The steps share one installation and run in file order.
"""

from __future__ import annotations

import fcntl
import grp
import http.client
import os
import pwd
import queue
import re
import shlex
import shutil
import signal
import stat
import subprocess
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("SNAPVOL_BUILD_DIR", REPO / "build"))
STATE = Path(os.environ.get("SNAPVOL_PACKAGE_STATE_DIR", BUILD / "tests/package"))
# /var/lib/snapvol is this test's to delete while this file exists. It is machine-wide, not in the
# build dir, so a run from another clone cleans up after a run that was killed half-way.
MARKER = Path("/var/lib/snapvol.created-by-package-test")
LOCK = Path("/run/lock/snapvol-package-test.lock")  # one package test per machine at a time
DATA = Path("/var/lib/snapvol")
CONF = Path("/etc/snapvol/snapvold.toml")
UNIT = Path("/lib/systemd/system/snapvold.service")
LOGROTATE = Path("/etc/logrotate.d/snapvol")
WANTS = Path("/etc/systemd/system/multi-user.target.wants/snapvold.service")
TIMEOUT = 120


def run(*args, check=True, **kw):
    res = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=TIMEOUT, **kw)
    if check and res.returncode != 0:
        pytest.fail(f"{shlex.join(map(str, args))} exited {res.returncode}\n"
                    f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}")
    return res


def package_status() -> str:
    res = run("dpkg-query", "-W", "-f=${Status}", "snapvol", check=False)
    return res.stdout.strip() if res.returncode == 0 else ""


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


def purge_and_clean():
    """Leaves the machine as it was before the test: no package, no user, no data dir of ours."""
    if package_status():
        run("dpkg", "--purge", "snapvol", check=False)
    if MARKER.exists():
        shutil.rmtree(DATA, ignore_errors=True)
        MARKER.unlink()


def owner(path: Path) -> tuple[str, str, int]:
    st = path.stat()
    return pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name, stat.S_IMODE(st.st_mode)


class Daemon:
    """The unit's ExecStart, started by hand as User=/Group= with an ephemeral port."""

    def __init__(self, argv: list[str]):
        self.lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(DATA), "LANG": "C.UTF-8"}
        self.proc = subprocess.Popen(
            ["setpriv", "--reuid=snapvol", "--regid=snapvol", "--init-groups", "--no-new-privs",
             "--inh-caps=-all", "--bounding-set=-all", "--", *argv],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd="/")
        threading.Thread(target=self._pump, args=(self.proc.stderr, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stdout, False), daemon=True).start()

    def wait_started(self):
        endpoint = self.wait_for(r"^snapvold listening on (http://\S+) ").group(1)
        host, port = endpoint.removeprefix("http://").rsplit(":", 1)
        self.host, self.port = host, int(port)

    def _pump(self, stream, is_stderr):
        for line in stream:
            if is_stderr:
                self.stderr.append(line)
            self.lines.put(line)
        self.lines.put("")  # the stream ended

    def wait_for(self, pattern: str) -> re.Match:
        """The first line (stdout or stderr) matching `pattern`; the timeout only ends a hang."""
        while True:
            try:
                line = self.lines.get(timeout=TIMEOUT)
            except queue.Empty:
                pytest.fail(f"snapvold printed no line matching {pattern!r}:\n{''.join(self.stderr)}")
            if line == "" and self.proc.poll() is not None:
                pytest.fail(f"snapvold exited {self.proc.returncode} before {pattern!r}:\n{''.join(self.stderr)}")
            if m := re.search(pattern, line):
                return m

    def get(self, path: str) -> tuple[int, bytes, dict]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
        try:
            conn.request("GET", path)
            res = conn.getresponse()
            return res.status, res.read(), dict(res.getheaders())
        finally:
            conn.close()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=TIMEOUT)


@pytest.fixture(scope="module")
def deb():
    if os.geteuid() != 0:
        pytest.fail("this test installs a package: it must run as root")
    STATE.mkdir(parents=True, exist_ok=True)
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    lock = open(LOCK, "w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # released when the module's tests end and `lock` closes
    if DATA.exists() and not MARKER.exists():
        pytest.fail(f"{DATA} exists and was not made by this test: it may hold real data, so the "
                    "test will not install over it; move it away to run the test")
    state = {}
    try:
        purge_and_clean()  # a previous run that failed half-way
        MARKER.touch()     # before dpkg -i: postinst creates DATA
        res = run(REPO / "scripts/package", "--build-dir", BUILD, "--out", STATE / "deb", "--no-build")
        path = Path(res.stdout.strip().splitlines()[-1])
        state["deb"] = path
        yield state
    finally:
        if "daemon" in state:
            state["daemon"].stop()
        purge_and_clean()
        lock.close()


def test_package_is_named_and_described(deb):
    path = deb["deb"]
    version = re.search(r"^CMAKE_PROJECT_VERSION:STATIC=(.*)$",
                        (BUILD / "CMakeCache.txt").read_text(), re.M).group(1)
    arch = run("dpkg", "--print-architecture").stdout.strip()
    assert path.name == f"snapvol_{version}_{arch}.deb" and path.is_file()
    info = run("dpkg-deb", "--info", path).stdout
    assert re.search(rf"^ Version: {re.escape(version)}$", info, re.M), info
    depends = re.search(r"^ Depends: (.*)$", info, re.M).group(1)
    for lib in ("libc6", "libssl3", "libsqlite3-0", "libzstd1", "libgnutls30", "adduser"):
        assert re.search(rf"\b{lib}\b", depends), f"{lib} missing from Depends: {depends}"
    listing = run("dpkg-deb", "--contents", path).stdout
    for f in ("./usr/bin/snapvold", "./usr/bin/snapvol", "./usr/share/snapvol/console/index.html",
              "./etc/snapvol/snapvold.toml", "./etc/logrotate.d/snapvol",
              "./lib/systemd/system/snapvold.service"):
        assert re.search(rf"^\S+ root/root .* {re.escape(f)}$", listing, re.M), f"{f} not in the package"
    conffiles = run("dpkg-deb", "--info", path, "conffiles").stdout.split()
    assert sorted(conffiles) == ["/etc/logrotate.d/snapvol", "/etc/snapvol/snapvold.toml"]


def test_install(deb):
    res = run("dpkg", "-i", deb["deb"])
    assert package_status() == "install ok installed", res.stdout + res.stderr
    user = pwd.getpwnam("snapvol")
    assert user.pw_uid < 1000 and user.pw_shell == "/usr/sbin/nologin" and user.pw_dir == str(DATA)
    assert grp.getgrgid(user.pw_gid).gr_name == "snapvol"
    for path, want in {"/usr/bin/snapvold": ("root", "root", 0o755),
                       "/usr/bin/snapvol": ("root", "root", 0o755),
                       "/usr/share/snapvol/console/index.html": ("root", "root", 0o644),
                       str(CONF): ("root", "root", 0o644),
                       str(LOGROTATE): ("root", "root", 0o644),
                       str(UNIT): ("root", "root", 0o644),
                       str(DATA): ("snapvol", "snapvol", 0o700)}.items():
        assert owner(Path(path)) == want, path
    # Enabled for the next boot, as Debian does on a first install.
    assert WANTS.is_symlink() and os.readlink(WANTS) == str(UNIT)
    assert run("/usr/bin/snapvol", "--help").returncode == 0


def help_options() -> set[str]:
    out = run("/usr/bin/snapvold", "--help").stdout
    return set(re.findall(r"^\s+(?:-\w,\s*)?--([a-z0-9][a-z0-9-]*)", out, re.M))


def test_conffile_lists_every_setting_and_reads_back(deb, tmp_path):
    text = CONF.read_text()
    settings = re.findall(r"^#?([a-z0-9][a-z0-9-]*) = ", text, re.M)
    assert len(settings) == len(set(settings)), "a setting is listed twice"
    missing = help_options() - {"help", "config", "print-config"} - set(settings)
    assert not missing, f"settings of snapvold --help missing from {CONF}: {sorted(missing)}"
    # Only the data dir is set; everything else is commented out, under its help text.
    assert [s for s in settings if re.search(rf"^{s} = ", text, re.M)] == ["data-dir"]
    assert re.search(r'^data-dir = "/var/lib/snapvol"$', text, re.M)
    for s in settings:
        assert re.search(rf"^# .+\n#?{s} = ", text, re.M), f"{s} has no help text above it"
    # Every line uncommented is a valid file, and says what the commented file says.
    uncommented = tmp_path / "all.toml"
    uncommented.write_text(re.sub(r"^#([a-z0-9-]+ = )", r"\1", text, flags=re.M))
    res = run("/usr/bin/snapvold", "--config", uncommented, "--print-config")
    assert res.stdout.replace('#data-dir = "/var/lib/snapvol"', 'data-dir = "/var/lib/snapvol"') == text
    # A misspelt setting is still refused by name.
    bad = tmp_path / "bad.toml"
    bad.write_text(text + "\nlisten-adress = \"0.0.0.0:1\"\n")
    res = run("/usr/bin/snapvold", "--config", bad, "--print-config", check=False)
    assert res.returncode != 0 and "listen-adress" in res.stderr + res.stdout


def test_unit_verifies_and_is_sandboxed(deb):
    res = run("systemd-analyze", "verify", UNIT, check=False)
    assert res.returncode == 0 and "snapvold" not in res.stderr, res.stderr
    unit = UNIT.read_text()
    for directive in ("User=snapvol", "Group=snapvol", "ProtectSystem=strict",
                      "ReadWritePaths=/var/lib/snapvol", "NoNewPrivileges=yes", "PrivateTmp=yes",
                      "ProtectHome=yes", "CapabilityBoundingSet=\n", "UMask=0077",
                      "Restart=on-failure"):
        assert re.search(rf"^{re.escape(directive)}", unit, re.M), directive
    res = run("systemd-analyze", "security", "--offline=yes", "--no-pager", UNIT)
    exposure = float(re.search(r"Overall exposure level for snapvold.service: ([0-9.]+)", res.stdout).group(1))
    print(f"systemd-analyze security: exposure {exposure}")
    assert exposure <= 2.0, res.stdout


def test_logrotate_accepts_its_rules(deb):
    res = run("logrotate", "--debug", LOGROTATE, check=False)
    assert res.returncode == 0 and "error" not in res.stderr.lower(), res.stderr
    assert "/var/lib/snapvol/audit.log" in res.stderr


def exec_start() -> list[str]:
    lines = re.findall(r"^ExecStart=(.*)$", UNIT.read_text(), re.M)
    assert len(lines) == 1
    return shlex.split(lines[0])


def test_exec_start_serves_as_snapvol(deb):
    argv = exec_start()
    assert argv == ["/usr/bin/snapvold", "--config", str(CONF)]
    daemon = deb["daemon"] = Daemon([*argv, "--listen", "127.0.0.1:0"])
    daemon.wait_started()
    status, body, _ = daemon.get("/healthz")
    assert (status, body) == (200, b"ok\n")
    uid = pwd.getpwnam("snapvol").pw_uid
    proc_status = Path(f"/proc/{daemon.proc.pid}/status").read_text()
    # setpriv execs snapvold in place: the process is the daemon, running as snapvol.
    assert Path(f"/proc/{daemon.proc.pid}/exe").resolve() == Path("/usr/bin/snapvold")
    assert re.search(rf"^Uid:\s+{uid}\s+{uid}\s+{uid}\s+{uid}$", proc_status, re.M), proc_status
    assert re.search(r"^CapEff:\s+0+$", proc_status, re.M)
    # Its data dir, from the conffile, private to it.
    assert owner(DATA) == ("snapvol", "snapvol", 0o700)
    assert owner(DATA / "admin-credentials") == ("snapvol", "snapvol", 0o600)
    assert owner(DATA / "catalog.db") == ("snapvol", "snapvol", 0o600)
    # The operator's CLI, as the data dir's owner, beside the running service.
    res = run("runuser", "-u", "snapvol", "--", "/usr/bin/snapvol", "--data-dir", DATA, "account", "list")
    assert "admin" in res.stdout
    # The installed console, found beside the binary without --console-dir.
    status, body, headers = daemon.get("/console/")
    assert status == 200 and body == Path("/usr/share/snapvol/console/index.html").read_bytes()
    assert headers.get("X-Frame-Options") == "DENY"


def audit_request_ids(path: Path) -> list[str]:
    return re.findall(r'"request_id":"([^"]*)"', path.read_text()) if path.exists() else []


def test_audit_log_rotates_without_losing_lines(deb, tmp_path):
    daemon = deb["daemon"]
    audit = DATA / "audit.log"
    # An unsigned API request is refused, and the refusal is audited.
    status, _, _ = daemon.get("/?Action=DescribeSnapshots&Version=2016-11-15")
    assert status in (400, 401, 403)
    before = audit_request_ids(audit)
    assert before, "the refused request is not in the audit log"
    # logrotate moves it away and creates a new, private, empty one (its postrotate's reload
    # needs systemd; here the test sends the SIGHUP that `systemctl reload` would).
    run("logrotate", "--force", "--state", tmp_path / "logrotate.state", LOGROTATE)
    rotated = DATA / "audit.log.1"
    assert audit_request_ids(rotated) == before
    assert audit.exists() and audit.stat().st_size == 0
    assert owner(audit) == ("snapvol", "snapvol", 0o600)
    daemon.proc.send_signal(signal.SIGHUP)
    assert daemon.wait_for(r'"event":"audit_log_reopened"').group(0)
    assert daemon.proc.poll() is None, "SIGHUP stopped snapvold"
    daemon.get("/?Action=DescribeVolumes&Version=2016-11-15")
    after = audit_request_ids(audit)
    assert len(after) == 1 and after[0] not in before
    assert audit_request_ids(rotated) == before  # nothing more went to the old file
    status, body, _ = daemon.get("/healthz")
    assert (status, body) == (200, b"ok\n")
    assert daemon.stop() == 0
    del deb["daemon"]


def test_remove_keeps_settings_and_data(deb):
    run("dpkg", "-r", "snapvol")
    assert package_status() == "deinstall ok config-files"
    for gone in ("/usr/bin/snapvold", "/usr/bin/snapvol", "/usr/share/snapvol", str(UNIT)):
        assert not Path(gone).exists(), gone
    assert CONF.exists() and LOGROTATE.exists()
    assert user_exists("snapvol")
    assert (DATA / "admin-credentials").exists()


def test_purge_removes_settings_and_user_but_keeps_data(deb):
    res = run("dpkg", "--purge", "snapvol")
    assert package_status() == ""
    assert not Path("/etc/snapvol").exists() and not LOGROTATE.exists()
    assert not WANTS.is_symlink()
    assert not user_exists("snapvol") and not group_exists("snapvol")
    # A backup service's uninstall never deletes the backups, and says so.
    assert (DATA / "admin-credentials").exists() and (DATA / "catalog.db").exists()
    assert "/var/lib/snapvol" in res.stderr and "kept" in res.stderr
