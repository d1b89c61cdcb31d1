"""EC2 Query requests signed with botocore's SigV4Auth and sent on a fresh connection, for the
actions Debian's botocore has no model for (snapshot locks, restore requests) and for exact
error codes. Answers are parsed with ElementTree; errors must be EC2 error documents."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from urllib.parse import quote

import daemon_helpers as dh

VERSION = "2016-11-15"
NS = "{http://ec2.amazonaws.com/doc/2016-11-15/}"


def enc(pairs) -> str:
    return "&".join(f"{quote(str(k), safe='-_.~')}={quote(str(v), safe='-_.~')}" for k, v in pairs)


def call(service, alias, action, **params):
    acct = service.accounts[alias]
    signer = dh.Signer(service.endpoint, acct.access_key_id, acct.secret_access_key)
    status, _, body = signer.send(enc([("Action", action), ("Version", VERSION), *params.items()]))
    return status, body


def ok(service, alias, action, **params) -> ET.Element:
    status, body = call(service, alias, action, **params)
    assert status == 200, f"{action} as {alias}: HTTP {status}: {body[:400]!r}"
    return ET.fromstring(body)


def error(service, alias, action, **params) -> tuple[str, str]:
    """(Code, Message) of an action that must fail with a 4xx EC2 error document."""
    status, body = call(service, alias, action, **params)
    assert 400 <= status < 500, f"{action} as {alias}: HTTP {status}: {body[:400]!r}"
    return dh.parse_ec2_error(body)


def field(elem: ET.Element, name: str) -> str | None:
    found = elem.find(f".//{NS}{name}")
    return None if found is None else found.text


def items(elem: ET.Element, set_name: str) -> list[ET.Element]:
    found = elem.find(f".//{NS}{set_name}")
    return [] if found is None else found.findall(f"{NS}item")
