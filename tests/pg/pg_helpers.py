"""Helpers for the PostgreSQL data dir tests: a database of its own per test, made through the
throwaway cluster's admin URL (tests/pg/pg_cluster.sh writes url and admin-url), and psql."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE.parent / "daemon"))
sys.path.insert(0, str(_HERE.parent / "cli"))

PSQL = "/usr/bin/psql"


def cluster_urls() -> tuple[str, str]:
    """(the snapvol role's URL, the superuser's URL) of the running test cluster."""
    url_file = os.environ.get("SNAPVOL_PG_URL_FILE")
    assert url_file, "SNAPVOL_PG_URL_FILE is not set: run through ctest -L pg (the pg fixture)"
    url = Path(url_file).read_text().strip()
    admin = (Path(url_file).parent / "admin-url").read_text().strip()
    return url, admin


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def password_of(url: str) -> str:
    return urlsplit(url).password or ""


def psql(url: str, sql: str) -> str:
    res = subprocess.run([PSQL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                         capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin", "PGCONNECT_TIMEOUT": "10"})
    assert res.returncode == 0, f"psql {sql!r}: {res.stderr}"
    return res.stdout.strip()


class Databases:
    """Makes databases owned by the snapvol role and drops them at the end."""

    def __init__(self):
        self.url, self.admin = cluster_urls()
        self.made: list[str] = []

    def new(self) -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        user = urlsplit(self.url).username
        psql(self.admin, f'CREATE DATABASE {name} OWNER "{user}"')
        self.made.append(name)
        return with_database(self.url, name)

    def drop_all(self):
        for name in self.made:
            psql(self.admin, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        self.made = []


def tables_in(url: str) -> int:
    return int(psql(url, "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"))


def count(url: str, table: str) -> int:
    return int(psql(url, f"SELECT count(*) FROM {table}"))
