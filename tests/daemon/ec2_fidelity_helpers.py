"""Shared by the EC2 fidelity modules (test_ec2_filters, test_ec2_actions,
test_ec2_resources): the action and filter tables read from src/api, raw signed Query
requests, and set-up helpers."""

from __future__ import annotations

import os
import re
import urllib.parse
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from botocore.exceptions import ClientError

import daemon_helpers as dh

REPO = Path(__file__).resolve().parents[2]
API_DIR = REPO / "src" / "api"
AZ = "us-east-1a"
MISSING_VOL = "vol-0123456789abcdef0"
MISSING_SNAP = "snap-0123456789abcdef0"
MISSING_INST = "i-0123456789abcdef0"


# ---------------------------------------------------------------------------------------------
# Reading the action and filter tables from the sources

def parse_action_table() -> dict[str, list[str]]:
    """{action: [accepted parameter, ...]} from the {"Name", kArray, &Handler} rows of
    src/api/*.cc; a row's array is the last `static constexpr std::string_view kArray[]`
    defined before it in the same file."""
    arrays_re = re.compile(r"static\s+constexpr\s+std::string_view\s+(k\w+)\[\]\s*=\s*\{(.*?)\};", re.S)
    row_re = re.compile(r"\{\s*\"([A-Z]\w+)\"\s*,\s*(k\w+)\s*,\s*&\w+\s*\}")
    out: dict[str, list[str]] = {}
    for path in sorted(API_DIR.glob("*.cc")):
        if path.name.endswith("_test.cc"):
            continue
        text = path.read_text()
        arrays = [(m.start(), m.group(1), re.findall(r"\"([^\"]*)\"", m.group(2))) for m in arrays_re.finditer(text)]
        for row in row_re.finditer(text):
            action, arr = row.group(1), row.group(2)
            defs = [a for a in arrays if a[1] == arr and a[0] < row.start()]
            assert defs, f"{path.name}: action {action} names {arr}, which is not defined before it"
            assert action not in out, f"action {action} is listed twice"
            out[action] = defs[-1][2]
    return out


def parse_filter_names(file: str, table: str) -> list[str]:
    text = (API_DIR / file).read_text()
    m = re.search(r"FilterField<\w+>\s+" + table + r"\[\]\s*=\s*\{(.*?)\n\s*\};", text, re.S)
    assert m, f"no {table}[] in src/api/{file}"
    names = re.findall(r"\{\"([a-z][\w.:-]*)\",\s*\[\]", m.group(1))
    assert names, f"no names parsed from {table}"
    return names


ACTIONS = parse_action_table()
ACTION_PARAMS = [(a, p) for a in sorted(ACTIONS) for p in ACTIONS[a]]


# ---------------------------------------------------------------------------------------------
# Raw signed Query requests

def strip_ns(root):
    for el in root.iter():
        if "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    return root


@dataclass
class Answer:
    status: int
    body: bytes
    params: list

    @property
    def root(self):
        return strip_ns(ET.fromstring(self.body))

    @property
    def code(self):
        return None if self.status == 200 else dh.parse_ec2_error(self.body)[0]

    @property
    def message(self):
        return "" if self.status == 200 else dh.parse_ec2_error(self.body)[1]

    def __str__(self):
        return f"request {self.params}\n-> HTTP {self.status}: {self.body[:800]!r}"


def query(svc, alias: str, action: str, params=None) -> Answer:
    acct = svc.accounts[alias]
    items = list(params.items()) if isinstance(params, dict) else list(params or [])
    pairs = [("Action", action), ("Version", "2016-11-15"), *[(k, str(v)) for k, v in items]]
    body = urllib.parse.urlencode(pairs)
    status, _, data = dh.Signer(svc.endpoint, acct.access_key_id, acct.secret_access_key).send(body)
    return Answer(status, data, pairs)


def ok(svc, alias, action, params=None):
    a = query(svc, alias, action, params)
    assert a.status == 200, str(a)
    return a.root


def refused(svc, alias, action, params, code, *, contains: str | None = None) -> str:
    a = query(svc, alias, action, params)
    assert a.status != 200 and a.code == code, f"expected {code}\n{a}"
    if contains is not None:
        assert contains in a.message, f"expected {contains!r} in the message\n{a}"
    return a.message


def set_ids(root, set_tag: str, id_tag: str) -> list[str]:
    s = root.find(set_tag)
    assert s is not None, f"no <{set_tag}> in {ET.tostring(root)[:500]!r}"
    return [it.findtext(id_tag) for it in s.findall("item")]


def instance_ids(root) -> list[str]:
    return [i.findtext("instanceId") for i in root.findall("./reservationSet/item/instancesSet/item")]


def client_error(fn, *args, **kw) -> tuple[str, str]:
    try:
        out = fn(*args, **kw)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"].get("Message", "")
    raise AssertionError(f"expected a ClientError, got: {str(out)[:500]}")


def filters_params(filters) -> dict:
    out = {}
    for i, (name, values) in enumerate(filters, 1):
        out[f"Filter.{i}.Name"] = name
        for j, v in enumerate(values, 1):
            out[f"Filter.{i}.Value.{j}"] = v
    return out


def tiny_file(svc, name: str, size: int = 64 * 1024) -> Path:
    p = svc.root / "sources" / f"{name}.img"
    p.parent.mkdir(exist_ok=True)
    p.write_bytes(os.urandom(size))
    return p


def register(svc, alias, name, *, instance=None, device=None, boot=False) -> str:
    args = ["volume", "register", "--path", tiny_file(svc, name), "--account-id",
            svc.accounts[alias].account_id, "--name", name]
    if instance:
        args += ["--instance-id", instance, "--device", device]
    if boot:
        args.append("--boot")
    vid = svc.cli(*args).stdout.strip()
    assert dh.VOL_ID.match(vid), vid
    return vid


def new_instance(svc, alias, name, root_device=None) -> str:
    extra = ["--root-device", root_device] if root_device else []
    iid = svc.cli("instance", "create", "--account-id", svc.accounts[alias].account_id, "--name", name,
                  *extra).stdout.strip()
    assert re.match(r"^i-[0-9a-f]{17}$", iid), iid
    return iid


def wait_snapshots(ec2, ids):
    ec2.get_waiter("snapshot_completed").wait(SnapshotIds=list(ids), WaiterConfig={"Delay": 0.1, "MaxAttempts": 600})



def fidelity_service(tmp_path_factory, name: str):
    """One daemon for a module (three teams), stopped when the module ends."""
    svc = None
    try:
        svc = dh.make_service(tmp_path_factory, name, teams=3)
        yield svc
    finally:
        if svc is not None:
            dh.finish_service(svc)
