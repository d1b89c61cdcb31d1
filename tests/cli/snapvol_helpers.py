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
import subprocess
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]
SNAPVOL = os.environ.get("SNAPVOL_BIN") or str(_REPO / "build/src/cli/snapvol")
GENVOL = os.environ.get("SNAPVOL_GENVOL") or str(_REPO / "build/bench/snapvol-genvol")

BLOCK = 512 * 1024  # the default block size
HEX64 = re.compile(r"^[0-9a-f]{64}$")
SNAP_ID = re.compile(r"^snap-[0-9a-f]{17}$")
VOL_ID = re.compile(r"^vol-[0-9a-f]{17}$")

DEFAULT_TIMEOUT = 120


def clean_env(extra: dict | None = None) -> dict:
    """The environment for a child: no SNAPVOL_DATA_DIR leaking in from outside."""
    env = {k: v for k, v in os.environ.items() if k != "SNAPVOL_DATA_DIR"}
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

    def __init__(self, path: Path):
        self.dir = Path(path)

    @property
    def store(self) -> Path:
        return self.dir / "store"

    def run(self, *args, timeout: float = DEFAULT_TIMEOUT):
        return run(["--data-dir", self.dir, *args], timeout=timeout)

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
        return self.store / "chunks" / chunk_id[:2] / chunk_id


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
