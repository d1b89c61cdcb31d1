"""Several snapvold on one PostgreSQL catalog (the multi-host tests: routing, failover,
lifecycle, rollback routing, three hosts on one bucket): each host a data dir and port of its
own, the first made by `snapvol init --catalog URL`, the others given its catalog, keys and
store settings (not its host id)."""

from __future__ import annotations

import shutil

import daemon_helpers as dh

# What a second host copies from the first's data dir: never host-id, which names the host.
SHARED_FILES = ("catalog.json", "secrets.key", "store.key", "store.json", "admin-credentials")


def start_host(root, url, template=None, *, args=(), init_args=(), init_env=None) -> dh.Service:
    """A started snapvold (with snapvold's args) whose data dir uses the catalog at url. Without
    template: made by `init --catalog url` plus init_args (init_env added to its environment).
    With template: a copy of template's SHARED_FILES, and its local store directory (a symlink)
    when it has one; an S3 store is shared through store.json."""
    svc = dh.Service(root)
    svc.daemon.extra_args = list(args)
    if template is None:
        res = dh.subprocess.run([dh.SNAPVOL, "--data-dir", str(svc.data_dir), "init", "--catalog", url, *init_args],
                                capture_output=True, text=True, env=dh.clean_env(init_env), timeout=120)
        assert res.returncode == 0, dh.describe(res)
    else:
        svc.data_dir.mkdir(parents=True)
        for name in SHARED_FILES:
            if (template.data_dir / name).exists():
                shutil.copy2(template.data_dir / name, svc.data_dir / name)
        if (template.data_dir / "store").is_dir():
            (svc.data_dir / "store").symlink_to(template.data_dir / "store")
    svc.daemon.start()
    dh.ACTIVE.append(svc)
    return svc


def host_id(svc) -> str:
    return (svc.data_dir / "host-id").read_text().strip()


def claims(svc) -> list[dict]:
    """The snapshot jobs svc's snapvold claimed (its log's snapshot_job_claimed events)."""
    return [e for e in svc.daemon.log_events() if e.get("event") == "snapshot_job_claimed"]
