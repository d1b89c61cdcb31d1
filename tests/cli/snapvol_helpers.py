"""Helpers shared by the snapvol CLI integration tests.

The tests drive the real `snapvol` binary (SNAPVOL_BIN) and the deterministic volume
generator (SNAPVOL_GENVOL) as child processes, each against its own data dir under a
pytest tmp_path.  Nothing here talks to the store except through the CLI, apart from the
deliberate damage the corruption and crash tests do to object files.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import select
import signal
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
SNAPVOL = os.environ.get("SNAPVOL_BIN") or str(_REPO / "build/src/cli/snapvol")
GENVOL = os.environ.get("SNAPVOL_GENVOL") or str(_REPO / "build/bench/snapvol-genvol")

BLOCK = 512 * 1024  # the default block size
HEX64 = re.compile(r"^[0-9a-f]{64}$")
SNAP_ID = re.compile(r"^snap-[0-9a-f]{17}$")
VOL_ID = re.compile(r"^vol-[0-9a-f]{17}$")

DEFAULT_TIMEOUT = 120

# SNAPVOL_STORE_FORMAT: 1 or 2 is passed on to snapvol (the format `init` gives a store that
# does not name one). "upgraded" is the suites' own: stores start on format 1 and each is
# converted by `snapvol store upgrade` right after its first snapshot, so every later
# snapshot, restore, verify and gc of the test runs on an upgraded store (Store.run; conftest
# checks that each store that took a snapshot was upgraded). snapvol itself never sees it.
UPGRADED = os.environ.get("SNAPVOL_STORE_FORMAT") == "upgraded"


# SNAPVOL_CLI_CATALOG=postgresql (ctest's cli_*_pg runs, label pg): a data dir that `init` makes
# without --catalog gets a database of its own in the pg fixture's cluster (tests/pg/pg_helpers.py),
# dropped at the end of the session (conftest). Otherwise the catalog is the embedded SQLite default.
CATALOG = os.environ.get("SNAPVOL_CLI_CATALOG") or "sqlite"
if CATALOG not in ("sqlite", "postgresql"):
    raise RuntimeError(f"SNAPVOL_CLI_CATALOG={CATALOG!r}: expected sqlite or postgresql")
_databases = None  # pg_helpers.Databases, made at the first PostgreSQL init


def catalog_args() -> list[str]:
    """What `init` is given for CATALOG: nothing, or --catalog and a new database's URL."""
    global _databases
    if CATALOG == "sqlite":
        return []
    if _databases is None:
        import sys
        sys.path.insert(0, str(_REPO / "tests" / "pg"))
        import pg_helpers
        _databases = pg_helpers.Databases()
    return ["--catalog", _databases.new()]


def drop_databases():
    """Drops the databases the PostgreSQL mode made."""
    if _databases is not None:
        _databases.drop_all()


def clean_env(extra: dict | None = None) -> dict:
    """The environment for a child: no SNAPVOL_DATA_DIR leaking in from outside (nor the
    suites' SNAPVOL_STORE_FORMAT=upgraded, which is no format)."""
    env = {k: v for k, v in os.environ.items() if k != "SNAPVOL_DATA_DIR"
           and not (k == "SNAPVOL_STORE_FORMAT" and v == "upgraded")}
    if extra:
        env.update(extra)
    return env


def run(args, *, env: dict | None = None, timeout: float = DEFAULT_TIMEOUT, cwd=None):
    """Runs snapvol with args; returns the CompletedProcess (text mode)."""
    return subprocess.run([SNAPVOL, *map(str, args)], capture_output=True, text=True,
                          env=clean_env(env), timeout=timeout, cwd=cwd)


def describe(res) -> str:
    return (f"command: {' '.join(map(str, res.args))}\nexit: {res.returncode}\n"
            f"stdout:\n{res.stdout}\nstderr:\n{res.stderr}")


def assert_ok(res):
    assert res.returncode == 0, describe(res)
    return res


def assert_error(res, pattern: str | None = None, *, code: int = 1) -> str:
    """Asserts the CLI failed the documented way: exit `code` and exactly one line
    `snapvol: error: ...` on stderr (matching `pattern`, case-insensitive, if given).
    Returns the message after the prefix."""
    assert res.returncode == code, describe(res)
    lines = [l for l in res.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, "expected exactly one error line on stderr\n" + describe(res)
    assert lines[0].startswith("snapvol: error: "), describe(res)
    msg = lines[0][len("snapvol: error: "):]
    if pattern is not None:
        assert re.search(pattern, msg, re.IGNORECASE), f"error does not match /{pattern}/\n" + describe(res)
    return msg


class Store:
    """One snapvol data dir, driven through the CLI."""

    # Every Store made by the current test (conftest resets it and checks the upgraded mode).
    made: list["Store"] = []

    def __init__(self, path: Path):
        self.dir = Path(path)
        self.pinned = False        # init named --store-format: the upgraded mode leaves it alone
        self.snapshotted = False   # a `snapshot create` succeeded
        self.upgraded = False      # the upgraded mode converted it
        Store.made.append(self)

    @property
    def store(self) -> Path:
        return self.dir / "store"

    def run(self, *args, timeout: float = DEFAULT_TIMEOUT):
        args = [str(a) for a in args]
        if args[:1] == ["init"] and "--store-format" in args:
            self.pinned = True
        if args[:1] == ["init"] and "--catalog" not in args:
            args += catalog_args()
        res = run(["--data-dir", self.dir, *args], timeout=timeout)
        if args[:2] == ["snapshot", "create"] and res.returncode == 0:
            self.snapshotted = True
            if UPGRADED and not self.pinned and not self.upgraded:
                self.upgraded = True
                assert self.store_format() == 1, "the upgraded mode's store should start on format 1"
                self.upgrade()
                assert self.store_format() == 2
        return res

    def ok(self, *args, timeout: float = DEFAULT_TIMEOUT):
        return assert_ok(self.run(*args, timeout=timeout))

    def popen(self, *args, **kw):
        return subprocess.Popen([SNAPVOL, "--data-dir", str(self.dir), *map(str, args)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=clean_env(), **kw)

    # ---- commands ----
    def init(self, *flags):
        return self.ok("init", *flags)

    def register(self, path, name: str | None = None) -> str:
        args = ["volume", "register", "--path", path]
        if name is not None:
            args += ["--name", name]
        out = self.ok(*args).stdout.strip()
        assert VOL_ID.match(out), out
        return out

    def snapshot(self, volume_id: str, *extra) -> str:
        out = self.ok("snapshot", "create", "--volume-id", volume_id, *extra).stdout.strip()
        assert SNAP_ID.match(out), out
        return out

    def snapshots(self, volume_id: str | None = None) -> list[dict]:
        args = ["snapshot", "list", "-o", "json"]
        if volume_id:
            args += ["--volume-id", volume_id]
        return json.loads(self.ok(*args).stdout)["Snapshots"]

    def snapshot_map(self) -> dict[str, dict]:
        return {s["SnapshotId"]: s for s in self.snapshots()}

    def volumes(self) -> list[dict]:
        return json.loads(self.ok("volume", "list", "-o", "json").stdout)["Volumes"]

    def show(self, snap_id: str) -> dict:
        return json.loads(self.ok("snapshot", "show", "--snapshot-id", snap_id, "-o", "json").stdout)

    def delete(self, snap_id: str):
        return self.ok("snapshot", "delete", "--snapshot-id", snap_id)

    def restore(self, snap_id: str, to, *, force: bool = False):
        args = ["restore", "--snapshot-id", snap_id, "--to", to]
        if force:
            args.append("--force")
        return self.run(*args)

    def verify(self, *snap_ids, quick: bool = False):
        """Runs verify -o json; returns (exit code, parsed report, CompletedProcess)."""
        args = ["verify", "-o", "json"]
        for s in snap_ids:
            args += ["--snapshot-id", s]
        if quick:
            args.append("--quick")
        res = self.run(*args)
        assert res.returncode in (0, 1), describe(res)
        try:
            report = json.loads(res.stdout)
        except json.JSONDecodeError as e:
            raise AssertionError(f"verify -o json did not print JSON: {e}\n" + describe(res))
        return res.returncode, report, res

    def damaged(self, *snap_ids, quick: bool = False) -> set[str]:
        rc, report, res = self.verify(*snap_ids, quick=quick)
        ids = {d["SnapshotId"] for d in report["Damaged"]}
        assert (rc == 1) == bool(ids), "verify's exit code disagrees with its report\n" + describe(res)
        return ids

    def gc(self, *extra, grace: str = "0"):
        return self.ok("gc", "--grace", grace, *extra)

    def gc_every_dead_object(self):
        """`gc --grace 0` that leaves no dead chunk or page: on format 2 it also rewrites every
        pack holding one (--repack-threshold just above 0), where the default threshold keeps
        packs at most 10% dead as they are."""
        return self.gc(*(["--repack-threshold", "0.000001"] if self.store_format() == 2 else []))

    # ---- store contents ----
    def object_files(self, kind: str) -> set[Path]:
        """Regular files under store/<kind> (chunks, index, manifests, deleted, leases),
        excluding in-flight temporaries."""
        root = self.store / kind
        if not root.exists():
            return set()
        return {p for p in root.rglob("*") if p.is_file() and ".tmp-" not in p.name}

    def all_files(self, kind: str) -> set[Path]:
        root = self.store / kind
        return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()

    def chunk_files(self) -> set[Path]:
        return self.object_files("chunks")

    def index_files(self) -> set[Path]:
        return self.object_files("index")

    def store_format(self) -> int:
        """The format (1: an object per chunk, 2: packs) in the config of an initialised store."""
        cfg = json.loads((self.store / "config").read_text())
        return int(cfg.get("version", 1))

    def data_object_dirs(self) -> list[Path]:
        """Where this store's chunk data lands: chunks/ (format 1) or packs/ (format 2)."""
        return [self.store / ("packs" if self.store_format() == 2 else "chunks")]

    def chunk_path(self, chunk_id: str) -> Path:
        """Format 1's object of a chunk (format-neutral code uses stored_at instead)."""
        return self.store / "chunks" / chunk_id[:2] / chunk_id

    # ---- stored objects, either format (docs/store-format.md) ----
    def stored(self, kind: str) -> dict[str, "StoredAt"]:
        """Id (64 hex) → where its stored bytes are, for every chunk (kind "chunk") or index page
        (kind "page") the store holds: format 1 lists chunks/ or index/, format 2 reads the
        trailing index of every pack under packs/. An id stored twice fails the test (every
        writer here dedups; a second copy would be wasted space)."""
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {sorted(_KINDS)}")
        out: dict[str, StoredAt] = {}
        if self.store_format() == 1:
            for p in self.object_files(_KINDS[kind][0]):
                out[p.name] = StoredAt(p, 0, p.stat().st_size)
            return out
        for pack in sorted(self.object_files("packs")):
            for entry_kind, ident, at in pack_entries(pack, self._data_key):
                if entry_kind != _KINDS[kind][1]:
                    continue
                assert ident not in out, f"{kind} {ident} is stored twice: {out[ident]} and {at}"
                out[ident] = at
        return out

    def data_files(self) -> set[Path]:
        """Every file that holds chunks or index pages, in either format (temporaries too)."""
        return self.all_files("chunks") | self.all_files("index") | self.all_files("packs")

    def data_state(self, with_index: bool = True) -> dict[str, tuple[int, int]]:
        """Path → (size, mtime_ns) of every object holding chunks or pages, and (with_index)
        of format 2's store-wide index objects: what "changed nothing" compares. (A format-2
        gc merges the index objects it read into one even when it frees nothing.)"""
        files = self.data_files() | (self.all_files("packindex") if with_index else set())
        return {str(p.relative_to(self.store)): (p.stat().st_size, p.stat().st_mtime_ns) for p in files}

    def stored_ids(self, kind: str) -> set[str]:
        return set(self.stored(kind))

    def stored_at(self, kind: str, ident: str) -> "StoredAt":
        at = self.stored(kind).get(ident)
        assert at is not None, f"the store holds no {kind} {ident}"
        return at

    def _data_key(self) -> bytes:
        """The data key of an encrypted store (HKDF-SHA256 of DATA_DIR/store.key, as
        src/store/crypto.cc derives it), for reading pack indexes."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF
        master = bytes.fromhex((self.dir / "store.key").read_text().strip())
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"snapvol-store-v1",
                    info=b"data key").derive(master)

    def flip_stored_byte(self, kind: str, ident: str, where: float = 0.5):
        """XORs one byte of the object's stored bytes (`where`: 0 the first, 0.5 the middle, 1
        the last), keeping the file's mtime: silent bit rot, in its object file (format 1) or
        at its entry inside its pack (format 2)."""
        at = self.stored_at(kind, ident)
        i = at.offset + min(int(at.length * where), at.length - 1)
        st = at.path.stat()
        with open(at.path, "r+b") as f:
            f.seek(i)
            b = f.read(1)
            f.seek(i)
            f.write(bytes([b[0] ^ 0x5A]))
        os.utime(at.path, ns=(st.st_atime_ns, st.st_mtime_ns))

    def cut_stored(self, kind: str, ident: str, keep: float):
        """Truncates the object's stored bytes to `keep` of them (0: none). Format 1 truncates
        its object file; format 2 cuts its pack there, so the entries after it in the pack and
        the pack's trailing index are lost too (a pack's tail lost on disk)."""
        at = self.stored_at(kind, ident)
        os.truncate(at.path, at.offset + int(at.length * keep))

    def lose_stored(self, kind: str, ident: str):
        """Removes the store object holding the object: format 1 its own file, format 2 its
        whole pack (with the other objects in it: a lost pack; one entry cannot be cut out of
        a pack without rewriting the store-wide index, which only GC does)."""
        self.stored_at(kind, ident).path.unlink()

    def upgrade(self, *extra):
        """`snapvol store upgrade` (format 1 → 2) with 1 MiB packs, so that later snapshots
        and upgrades of a test store write several packs."""
        return self.ok("store", "upgrade", "--pack-size", "1", *extra, timeout=300)


# kind → (format 1's directory, the kind byte of a format-2 pack index entry)
_KINDS = {"chunk": ("chunks", 1), "page": ("index", 2)}


@dataclass(frozen=True)
class StoredAt:
    """Where one object's stored bytes are: [offset, offset + length) of the file at path."""
    path: Path
    offset: int
    length: int


def _decode_object(obj: bytes, bind: bytes, data_key) -> bytes:
    """The plaintext of an SVOB object (docs/store-format.md, "Object encoding"): the payload,
    decrypted (AES-256-GCM, header + binding id as additional data) and decompressed (the
    zstd tool). The checksum is not checked here; snapvol checks it."""
    assert obj[:4] == b"SVOB", "not an SVOB object"
    flags = obj[6]
    plain_len, n = struct.unpack_from("<II", obj, 8)
    payload = obj[16:16 + n]
    if flags & 2:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        payload = AESGCM(data_key()).decrypt(payload[:12], payload[12:], obj[:16] + bind)
    if flags & 1:
        payload = subprocess.run(["zstd", "-d", "-q", "-c"], input=payload, capture_output=True,
                                 check=True, timeout=60).stdout
    assert len(payload) == plain_len, f"decoded {len(payload)} bytes, the header says {plain_len}"
    return payload


def pack_entries(pack: Path, data_key) -> list[tuple[int, str, StoredAt]]:
    """(kind, id hex, where) of every entry a format-2 pack's trailing index lists (pack
    layout: objects, the index object bound to the pack id, u32 its length, "SVPK").
    data_key: a callable giving the store's data key (called only for an encrypted index)."""
    data = pack.read_bytes()
    assert len(data) >= 8 and data[-4:] == b"SVPK", f"{pack} has no pack trailer"
    (m,) = struct.unpack_from("<I", data, len(data) - 8)
    index = data[len(data) - 8 - m:len(data) - 8]
    assert index[5] == 4, f"{pack}: the trailing object is not a pack index"
    plain = _decode_object(index, bytes.fromhex(pack.name), data_key)
    (count,) = struct.unpack_from("<I", plain, 0)
    assert len(plain) == 4 + 44 * count, f"{pack}: pack index of {len(plain)} bytes for {count} entries"
    out = []
    for i in range(count):
        e = 4 + 44 * i
        offset, length = struct.unpack_from("<II", plain, e + 36)
        out.append((plain[e + 32], plain[e:e + 32].hex(), StoredAt(pack, offset, length)))
    return out


# ---- files and volumes ----

def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def block_ids(path, block_size: int = BLOCK) -> list[str | None]:
    """SHA-256 of each block of the file as an unencrypted store names its chunk
    (the last block hashed at its real length), None for an all-zero block."""
    out = []
    with open(path, "rb") as f:
        while data := f.read(block_size):
            out.append(None if data.count(0) == len(data) else hashlib.sha256(data).hexdigest())
    return out


def files_equal(a, b) -> bool:
    a, b = Path(a), Path(b)
    if a.stat().st_size != b.stat().st_size:
        return False
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


def assert_same_file(restored, original):
    restored, original = Path(restored), Path(original)
    assert restored.exists(), f"{restored} was not created"
    rs, os_ = restored.stat().st_size, original.stat().st_size
    assert rs == os_, f"{restored} is {rs} bytes, {original} is {os_}"
    assert files_equal(restored, original), f"{restored} differs from {original}"


# Tags every snapshot carries to say how it was cut (docs/api.md, "How a snapshot is cut").
CUT_TAGS = ("aws:snapvol:consistency", "aws:snapvol:changed-blocks")


def user_tags(tags: list[dict]) -> list[dict]:
    """A snapshot's tags without the cut tags."""
    return [t for t in tags if t["Key"] not in CUT_TAGS]


def genvol_create(out, size: str, seed: int, *, holes: bool = True):
    args = [GENVOL, "create", "--size", size, "--seed", str(seed)]
    if not holes:
        args.append("--no-holes")
    subprocess.run([*args, str(out)], check=True, capture_output=True, timeout=120)
    return Path(out)


def genvol_mutate(path, percent: float, seed: int, block_size: int = BLOCK):
    subprocess.run([GENVOL, "mutate", "--percent", str(percent), "--block-size", str(block_size),
                    "--seed", str(seed), str(path)], check=True, capture_output=True, timeout=120)


def random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def text_bytes(n: int, seed: int) -> bytes:
    """Log-like, well compressible text, different for each seed."""
    rng = random.Random(seed)
    words = [f"w{seed}x{i}" for i in range(50)] + ["GET", "POST", "/api/v1/items", "200", "404", "ms"]
    parts, total = [], 0
    i = 0
    while total < n:
        line = (f"2024-05-{1 + i % 28:02d}T12:{i % 60:02d}:{(i * 7) % 60:02d}Z host{seed} "
                + " ".join(rng.choice(words) for _ in range(8)) + f" id={i}\n")
        parts.append(line)
        total += len(line)
        i += 1
    return "".join(parts).encode()[:n]


def write_sparse(path, size: int, extents: list[tuple[int, bytes]]):
    """Creates a file of `size` bytes that is a hole except for the given (offset, data)."""
    with open(path, "wb") as f:
        f.truncate(size)
        for off, data in extents:
            f.seek(off)
            f.write(data)
    return Path(path)


def dir_state(root) -> dict:
    """Path → (mode, size, mtime_ns, sha256) of every file under root, for 'nothing changed'
    checks."""
    state = {}
    root = Path(root)
    for p in sorted(root.rglob("*")):
        st = p.lstat()
        rel = str(p.relative_to(root))
        if p.is_file():
            state[rel] = (st.st_mode, st.st_size, st.st_mtime_ns, sha256_file(p))
        else:
            state[rel] = (st.st_mode,)
    return state


def kill_on_stderr(argv, env: dict, want) -> tuple[bool, list[str]]:
    """Runs argv; sends SIGKILL as soon as want(line) holds for a line it wrote to stderr, or
    want(None) holds (polled between lines, e.g. a look at the store). Returns (killed, every
    stderr line). Kill points come from the process's own output, never from the clock."""
    p = subprocess.Popen([str(a) for a in argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env)
    lines: list[str] = []
    pending = b""
    killed = False
    fd = p.stderr.fileno()
    while True:
        ready, _, _ = select.select([fd], [], [], 0.001)
        chunk = os.read(fd, 65536) if ready else b""
        if ready and not chunk:
            break  # stderr closed: the process ended
        pending += chunk
        *complete, pending = pending.split(b"\n")
        new = [l.decode() for l in complete]
        lines += new
        if any(want(l) for l in new) or want(None):
            p.send_signal(signal.SIGKILL)
            killed = True
            break
    p.wait(timeout=300)
    lines += (pending + p.stderr.read()).decode().splitlines()
    p.stdout.read()
    p.stdout.close()
    p.stderr.close()
    return killed and p.returncode == -signal.SIGKILL, lines
