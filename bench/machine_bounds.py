"""This machine's bounds (`snapvol benchmark --json`) and snapvol's figures as a share of them.

Shared by bench/snapshot-bench and bench/s3-bench; standard library only.

A bound is the time one path of the machine needs for the bytes a step must process,
expressed as GB/s of the image (image bytes / that time) so it reads like the step's own
throughput; share = the step's GB/s / the bound's GB/s = bound time / wall time. Zero blocks
cost snapvol a zero check only (holes not even a read), so the CPU, read and restore-write
bounds count the bytes of the 512 KiB blocks that hold data; the store write of a full
snapshot counts the bytes it stored.
"""

import json
import os
import subprocess

BLOCK_SIZE = 524288
# Keys of `snapvol benchmark --json` these scripts read (tests/cli/test_benchmark.py checks
# that the command prints every one of them).
REQUIRED = {
    "threads": (),
    "all_cores": ("hash_gbps", "hash_compress_checksum_gbps", "decode_verify_gbps"),
    "io": ("write_sync_gbps", "page_cache_read_gbps"),
}


def benchmark_argv(snapvol, directory, size_mib=256):
    return [str(snapvol), "benchmark", "--json", "--dir", str(directory), "--size", str(size_mib)]


def parse(stdout):
    """The JSON document `snapvol benchmark --json` printed; ValueError if a key is missing."""
    doc = json.loads(stdout)
    for section, keys in REQUIRED.items():
        if section not in doc:
            raise ValueError(f"snapvol benchmark --json has no {section!r}")
        for k in keys:
            if not isinstance(doc[section].get(k), (int, float)) or doc[section][k] <= 0:
                raise ValueError(f"snapvol benchmark --json has no positive {section}.{k}")
    return doc


def run(snapvol, directory, size_mib=256):
    """Runs the benchmark with its temporary file in directory and returns the document."""
    p = subprocess.run(benchmark_argv(snapvol, directory, size_mib), capture_output=True,
                       text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"snapvol benchmark failed ({p.returncode}): {p.stderr.strip()}")
    return parse(p.stdout)


def data_bytes(path, block=BLOCK_SIZE):
    """Bytes of the blocks of path that hold any data (SEEK_DATA/SEEK_HOLE extents); a file
    system without them counts everything."""
    size = os.path.getsize(path)
    blocks = set()
    with open(path, "rb") as f:
        fd = f.fileno()
        off = 0
        try:
            while off < size:
                try:
                    start = os.lseek(fd, off, os.SEEK_DATA)
                except OSError:  # ENXIO: only a hole follows
                    break
                end = os.lseek(fd, start, os.SEEK_HOLE)
                blocks.update(range(start // block, (end - 1) // block + 1))
                off = end
        except OSError:
            return size
    total = len(blocks) * block
    last = (size - 1) // block
    if last in blocks:
        total -= (last + 1) * block - size
    return total


def bound(gbps, work_bytes, image_bytes):
    """GB/s of the image that a path running at gbps allows when the step makes it process
    work_bytes."""
    if not gbps or not work_bytes:
        return None
    return image_bytes / (work_bytes / (gbps * 1e9)) / 1e9


def step_bounds(doc, step, image_bytes, data, stored=None):
    """[(path label, bound GB/s)] for a step: "full", "incremental" or "restore". The last
    entry, "machine", is the slowest of them: even with every path overlapped, the step
    cannot be faster."""
    n = doc["threads"]
    cores, io = doc["all_cores"], doc["io"]
    if step == "full":
        rows = [(f"hash+compress+checksum, {n} threads", bound(cores["hash_compress_checksum_gbps"], data, image_bytes)),
                ("page-cache read", bound(io["page_cache_read_gbps"], data, image_bytes))]
        if stored:
            rows.append(("write+fsync of the stored bytes", bound(io["write_sync_gbps"], stored, image_bytes)))
    elif step == "incremental":
        rows = [("page-cache read", bound(io["page_cache_read_gbps"], data, image_bytes)),
                (f"SHA-256, {n} threads", bound(cores["hash_gbps"], data, image_bytes))]
    elif step == "restore":
        rows = [("write+fsync", bound(io["write_sync_gbps"], data, image_bytes)),
                (f"decode+verify, {n} threads", bound(cores["decode_verify_gbps"], data, image_bytes))]
    else:
        raise ValueError(step)
    known = [b for _, b in rows if b]
    rows.append(("machine (slowest path)", min(known) if known else None))
    return rows


def share(gbps, bound_gbps):
    if not gbps or not bound_gbps:
        return None
    return gbps / bound_gbps


def fmt_share(value):
    if value is None:
        return "-"
    return f"{value * 100:.1f}%" if value < 0.1 else f"{value * 100:.0f}%"


def describe(doc):
    """One line naming where the bounds come from."""
    io, c = doc["io"], doc["all_cores"]
    return (f"snapvol benchmark, same run: {doc['threads']} threads; hash+compress+checksum "
            f"{c['hash_compress_checksum_gbps']:.2f}, SHA-256 {c['hash_gbps']:.2f}, decode+verify "
            f"{c['decode_verify_gbps']:.2f} GB/s; in {io['dir']}: write+fsync "
            f"{io['write_sync_gbps']:.2f}, page-cache read {io['page_cache_read_gbps']:.2f} GB/s")
