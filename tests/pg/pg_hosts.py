"""Several snapvold on one PostgreSQL catalog (the multi-host tests: routing, failover,
lifecycle, rollback routing, three hosts on one bucket): each host a data dir and port of its
own, the first made by `snapvol init --catalog URL`, the others given its catalog, keys and
store settings (not its host id)."""

from __future__ import annotations

import daemon_helpers as dh
from multi_host import join_data_dir


def start_host(root, url, template=None, *, args=(), init_args=(), init_env=None) -> dh.Service:
    """A started snapvold (with snapvold's args) whose data dir uses the catalog at url. Without
    template: made by `init --catalog url` plus init_args (init_env added to its environment).
    With template: joined to template's cluster (multi_host.join_data_dir: its catalog, keys and
    store settings, not its host id)."""
    svc = dh.Service(root)
    svc.daemon.extra_args = list(args)
    if template is None:
        res = dh.subprocess.run([dh.SNAPVOL, "--data-dir", str(svc.data_dir), "init", "--catalog", url, *init_args],
                                capture_output=True, text=True, env=dh.clean_env(init_env), timeout=120)
        assert res.returncode == 0, dh.describe(res)
    else:
        join_data_dir(template.data_dir, svc.data_dir)
    svc.daemon.start()
    dh.ACTIVE.append(svc)
    return svc


def host_id(svc) -> str:
    return (svc.data_dir / "host-id").read_text().strip()


def claims(svc) -> list[dict]:
    """The snapshot jobs svc's snapvold claimed (its log's snapshot_job_claimed events)."""
    return [e for e in svc.daemon.log_events() if e.get("event") == "snapshot_job_claimed"]
