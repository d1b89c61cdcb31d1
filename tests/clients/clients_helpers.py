"""Helpers for the real-client acceptance tests (tests/clients/, see README.md).

The daemon, the data dir, accounts and keys come from tests/daemon/daemon_helpers.py (imported,
not copied); this file adds what those tests do not need: instances with volumes attached at
given devices, and running Ansible playbooks against the daemon.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE.parent / "daemon"))

import daemon_helpers as dh  # noqa: E402

# Ansible's modules must run under Debian's interpreter: that is where Debian's boto3 is.
PYTHON = "/usr/bin/python3"
AWS_GROUP = "group/amazon.aws.aws"


def create_instance(svc: dh.Service, alias: str, name: str) -> str:
    """An instance of `alias` made with the offline CLI; returns its i- id."""
    instance_id = svc.cli("instance", "create", "--account-id", svc.accounts[alias].account_id,
                          "--name", name).stdout.strip()
    assert instance_id.startswith("i-"), instance_id
    return instance_id


def register_volume(svc: dh.Service, alias: str, name: str, *, seed: int, size: str = "16M",
                    instance_id: str | None = None, device: str | None = None,
                    boot: bool = False) -> dh.Volume:
    """A generated image registered for `alias` (optionally attached to an instance at `device`),
    like Service.add_volume but with the attachment options of `snapvol volume register`."""
    acct = svc.accounts[alias]
    path = svc.root / "sources" / f"{name}.img"
    path.parent.mkdir(exist_ok=True)
    dh.genvol_create(path, size, seed)
    args = ["volume", "register", "--path", path, "--account-id", acct.account_id, "--name", name]
    if instance_id:
        args += ["--instance-id", instance_id, "--device", device]
    if boot:
        args.append("--boot")
    vol_id = svc.cli(*args).stdout.strip()
    assert dh.VOL_ID.match(vol_id), vol_id
    vol = dh.Volume(vol_id, path, acct, dh.sha256_file(path), path.stat().st_size)
    svc.volumes[name] = vol
    return vol


def restored_sha256(svc: dh.Service, snapshot_id: str, out: Path) -> str:
    """Restores a snapshot with the offline CLI into `out` and returns the file's SHA-256."""
    svc.cli("restore", "--snapshot-id", snapshot_id, "--to", out, "--force")
    try:
        return dh.sha256_file(out)
    finally:
        out.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Ansible

def ansible_playbook_exe() -> str:
    exe = shutil.which("ansible-playbook")
    assert exe, ("ansible-playbook is not on PATH: install Debian's `ansible` package "
                 "(scripts/deps does) — it bundles the amazon.aws collection")
    return exe


def amazon_aws_version() -> str:
    """The version of the amazon.aws collection ansible-galaxy finds (fails if none)."""
    exe = shutil.which("ansible-galaxy")
    assert exe, "ansible-galaxy is not on PATH (Debian's ansible-core package)"
    res = subprocess.run([exe, "collection", "list", "amazon.aws", "--format", "json"],
                         capture_output=True, text=True, timeout=120, env=dh.clean_env())
    assert res.returncode == 0, dh.describe(res)
    found = {}
    for path, colls in json.loads(res.stdout).items():
        for name, info in colls.items():
            found[f"{path}:{name}"] = info.get("version")
    versions = [v for k, v in found.items() if k.endswith(":amazon.aws")]
    assert versions, f"the amazon.aws collection is not installed: {found}"
    return versions[0]


@dataclass
class PlayResult:
    """The parsed output of one ansible-playbook run with the json stdout callback."""
    rc: int
    output: dict
    stdout: str
    stderr: str
    playbook: list

    def tasks(self) -> dict:
        out = {}
        for play in self.output.get("plays", []):
            for t in play.get("tasks", []):
                out[t["task"]["name"]] = t["hosts"].get("localhost", {})
        return out

    def failures(self, only: str | None = None) -> str:
        lines = []
        for name, res in self.tasks().items():
            if res.get("failed") and only in (None, name):
                detail = {k: res[k] for k in ("msg", "error", "found") if k in res}
                if "exception" in res:  # a module crash: its last frames and the error say it
                    detail["exception"] = res["exception"].strip().splitlines()[-3:]
                lines.append(f"task {name!r} failed: {json.dumps(detail, indent=1, default=str)[:4000]}")
        return "\n".join(lines)

    def task(self, name: str) -> dict:
        """The localhost result of task `name`; fails with what went wrong if it did not run or failed."""
        tasks = self.tasks()
        if name not in tasks:
            raise AssertionError(f"task {name!r} did not run (ansible-playbook exited {self.rc})\n"
                                 + (self.failures() or self.stderr[-3000:] or self.stdout[-3000:]))
        res = tasks[name]
        if res.get("failed"):
            raise AssertionError(self.failures(name))
        return res


class Ansible:
    """Runs playbooks (localhost, connection local) against a Service as one of its accounts."""

    def __init__(self, svc: dh.Service, workdir: Path):
        self.svc = svc
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.exe = ansible_playbook_exe()
        self.runs = 0
        (self.workdir / "ansible.cfg").write_text("[defaults]\n")
        (self.workdir / "tmp").mkdir(exist_ok=True)
        self.timings: list[tuple[str, float]] = []

    def env(self) -> dict:
        env = self.svc.aws_env()
        env.update({
            "ANSIBLE_CONFIG": str(self.workdir / "ansible.cfg"),
            "ANSIBLE_HOME": str(self.workdir / "home"),
            "ANSIBLE_LOCAL_TEMP": str(self.workdir / "tmp"),
            "ANSIBLE_REMOTE_TEMP": str(self.workdir / "tmp"),
            "ANSIBLE_STDOUT_CALLBACK": "json",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOCALHOST_WARNING": "False",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
            "ANSIBLE_PYTHON_INTERPRETER": PYTHON,
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_PIPELINING": "True",
        })
        return env

    def run(self, tasks: list[dict], *, alias: str = "team-1", name: str = "play",
            timeout: float = 150) -> PlayResult:
        acct = self.svc.accounts[alias]
        playbook = [{
            "name": name,
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "vars": {"ansible_python_interpreter": PYTHON},
            "module_defaults": {AWS_GROUP: {
                "endpoint_url": self.svc.endpoint,
                "aws_access_key": acct.access_key_id,
                "aws_secret_key": acct.secret_access_key,
                "region": dh.REGION,
            }},
            "tasks": tasks,
        }]
        self.runs += 1
        path = self.workdir / f"{self.runs:02d}-{name}.yml"
        path.write_text(json.dumps(playbook, indent=2))  # JSON is YAML
        t0 = time.monotonic()
        res = subprocess.run([self.exe, "-i", "localhost,", str(path)], capture_output=True, text=True,
                             env=self.env(), cwd=self.workdir, timeout=timeout)
        self.timings.append((name, time.monotonic() - t0))
        try:
            output = json.loads(res.stdout)
        except json.JSONDecodeError as e:
            raise AssertionError(f"ansible-playbook printed no JSON ({e})\n" + dh.describe(res))
        return PlayResult(res.returncode, output, res.stdout, res.stderr, playbook)


def task(title: str, module: str, /, **args) -> dict:
    """One playbook task named `title`: amazon.aws.`module` with `args` (which may include `name`)."""
    return {"name": title, f"amazon.aws.{module}": args}
