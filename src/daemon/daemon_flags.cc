#include "daemon/daemon_flags.h"

#include <cstdlib>

namespace snapvol {
namespace {

// The EBS direct APIs' limits (api/ebs_limits.h); defaults are EBS's default quotas where it
// documents one.
void AddEbsLimitFlags(CLI::App& app, api::EbsLimits* l) {
  app.add_option("--ebs-max-pending-snapshots", l->max_pending_snapshots,
                 "Snapshots started by the EBS direct APIs' StartSnapshot and not yet completed that one "
                 "account may have; one more is refused with ConcurrentLimitExceededException; 0: no cap "
                 "(default 100)")
      ->check(CLI::Range(int64_t{0}, int64_t{1'000'000}));
  app.add_option("--ebs-account-block-requests-per-second", l->account_block_rps,
                 "PutSnapshotBlock and GetSnapshotBlock requests (each) one account may make per second; "
                 "more are refused with RequestThrottledException, Reason ACCOUNT_THROTTLED; 0: no limit "
                 "(default 1000, about 500 MiB/s of blocks)")
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--ebs-snapshot-block-requests-per-second", l->snapshot_block_rps,
                 "PutSnapshotBlock and GetSnapshotBlock requests (each) per second on one snapshot; more "
                 "are refused with RequestThrottledException, Reason RESOURCE_LEVEL_THROTTLE; 0: no limit "
                 "(default 1000)")
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--ebs-account-list-requests-per-second", l->account_list_rps,
                 "ListSnapshotBlocks and ListChangedBlocks requests (each) one account may make per second; "
                 "more are refused with RequestThrottledException, Reason ACCOUNT_THROTTLED; 0: no limit "
                 "(default 50)")
      ->check(CLI::Range(0.0, 1e9));
  app.add_option("--ebs-burst-seconds", l->burst_seconds,
                 "Seconds of its rate each EBS request limit lets an idle client send at once, at least "
                 "one request (default 1)")
      ->check(CLI::Range(0.001, 3600.0));
}

}  // namespace

void AddDaemonFlags(CLI::App& app, DaemonFlags* f) {
  AddMaintenanceFlags(app, &f->maintenance_flags);
  if (const char* env = std::getenv("SNAPVOL_DATA_DIR")) f->data_dir = env;
  app.add_option("--data-dir", f->data_dir, "Data directory (created and initialised if empty)");
  app.add_option("--listen", f->listen, "HOST:PORT to serve on (default 127.0.0.1:8787; port 0 picks one)");
  app.add_option("--region", f->region, "Region clients sign for (default us-east-1)");
  app.add_option("--restore-dir", f->restore_dir, "Where CreateVolume puts managed and restored volumes (default DIR/volumes)");
  app.add_option("--snapshot-runners", f->runners, "Snapshots taken at once (default 2)");
  app.add_option("--http-threads", f->http_threads,
                 "HTTP worker threads (default 256). Each open keep-alive connection holds one while it "
                 "is busy: more busy connections than this wait for one to close");
  app.add_option("--http-concurrency", f->http_concurrency,
                 "API requests handled at once; the rest wait their turn in arrival order "
                 "(default 0: twice the cores, at least 4)");
  app.add_option("--http-max-connections-per-client", f->max_per_client,
                 "Open HTTP connections one client address may hold; more are answered 503 and closed, "
                 "so one client cannot take every worker thread (default 0: half of --http-threads, 128)");
  app.add_option("--http-header-timeout", f->header_timeout_s,
                 "Seconds a client has to send a request's line and headers (default 10); a slower "
                 "connection is closed")
      ->check(CLI::Range(0.1, 3600.0));
  app.add_option("--tls-cert", f->tls_cert, "Serve HTTPS with this PEM certificate (chain)");
  app.add_option("--tls-key", f->tls_key, "The certificate's PEM private key");
  app.add_flag("--insecure-http", f->insecure_http, "Allow plain HTTP on a non-loopback address");
  app.add_flag("--allow-public-sharing", f->allow_public_sharing,
               "Let teams share snapshots with every account (ModifySnapshotAttribute group all; default off)");
  app.add_option("--default-retention", f->default_retention,
                 "Snapshots the daily default lifecycle policy of a new account keeps (default 7)")
      ->check(CLI::Range(1, 1000));
  app.add_option("--recycle-bin-default-retention-days", f->bin_default_days,
                 "An account-wide Recycle Bin rule for every account: deleted snapshots stay restorable this "
                 "many days; 0: only the accounts' own rules (default 0)")
      ->check(CLI::Range(int64_t{0}, int64_t{3650}));
  app.add_option("--default-time", f->default_time, "UTC time of day (hh:mm) of that policy's snapshot (default 02:00)");
  app.add_option("--schedule-clock-offset-seconds", f->schedule_clock_offset_s,
                 "For tests: lifecycle schedules fall due this many seconds early (only which scheduled time is due "
                 "moves; snapshots, runs and every other clock keep the real time; default 0)")
      ->check(CLI::Range(int64_t{0}, int64_t{86400}));
  app.add_option("--nbd-socket", f->nbd_socket, "Unix socket of the NBD server for attached managed volumes (default DIR/nbd.sock)");
  app.add_option("--nbd-listen", f->nbd_listen,
                 "Also serve NBD on this IPv4 HOST:PORT, TLS-PSK only (port 0 picks one; default off)");
  app.add_option("--nbd-handshake-timeout", f->nbd_options.handshake_timeout_ms,
                 "Milliseconds an NBD client has from connecting to opening an export, TLS included (default 10000)")
      ->check(CLI::Range(100, 600'000));
  app.add_option("--nbd-idle-timeout", f->nbd_options.idle_timeout_ms,
                 "Milliseconds an NBD connection may wait between requests before it is closed; 0: never (default 1800000)")
      ->check(CLI::Range(0, 86'400'000));
  app.add_option("--nbd-max-connections-per-account", f->nbd_options.max_exports_per_peer,
                 "Open NBD exports per access key (root on the Unix socket: no cap; default 32)")
      ->check(CLI::Range(1, 256));
  app.add_option("--console-idle-timeout", f->console_idle_seconds,
                 "Seconds without a click or key press after which the web console signs out (default 1800)")
      ->check(CLI::Range(int64_t{10}, int64_t{7 * 24 * 3600}));
  app.add_option("--console-dir", f->console_dir,
                 "Static files of the web console, served at /console/ (default: share/snapvol/console "
                 "beside the installed binary's directory, e.g. /usr/share/snapvol/console; else the build's console/dist)");
  app.add_option("--host-name", f->host_name,
                 "This host's name in the catalog's hosts table (snapvol host list); the data dir's host-id "
                 "identifies it (default: the machine's hostname)");
  app.add_option("--advertise-api", f->advertise_api,
                 "The API URL other hosts and clients use to reach this one, recorded in the hosts table "
                 "(snapvol host list, messages naming this host) instead of the bound address, e.g. behind "
                 "NAT or when --listen is 0.0.0.0 (default: the bound address)");
  app.add_option("--advertise-nbd", f->advertise_nbd,
                 "The NBD HOST:PORT clients use to reach --nbd-listen, recorded in the hosts table and the "
                 "volumes' aws:snapvol:nbd tags instead of the bound address (default: the bound address)");
  app.add_option("--host-heartbeat-seconds", f->host_heartbeat_s,
                 "Seconds between this host's heartbeats in the catalog; other hosts count it unreachable "
                 "after --host-timeout-seconds without one (default 5; below 1 for tests only)")
      ->check(CLI::Range(0.05, 10.0));
  app.add_option("--host-timeout-seconds", f->host_timeout_s,
                 "Seconds without a heartbeat after which a host is unreachable: its runners count as dead, "
                 "the holder of the maintenance lease ends its pending snapshots `error`, and its volumes' "
                 "DescribeVolumeStatus says insufficient-data; more than --host-heartbeat-seconds, the same on "
                 "every host (default 30)")
      ->check(CLI::Range(0.1, 86400.0));
  app.add_option("--host-sweep-seconds", f->host_sweep_s,
                 "Seconds between sweeps, on the holder of the maintenance lease, that end the pending "
                 "snapshots of hosts that are not up (default 5; below 1 for tests only)")
      ->check(CLI::Range(0.05, 600.0));
  app.add_option("--lease-renew-seconds", f->lease_renew_s,
                 "Seconds between takes or renewals of the cluster lease under which one host runs GC, "
                 "verification and restore drills (default 5; below 1 for tests only)")
      ->check(CLI::Range(0.05, 60.0));
  app.add_option("--lease-ttl-seconds", f->lease_ttl_s,
                 "Seconds a take or renewal of that lease lasts: another host takes over this long after "
                 "this one stopped renewing (killed, hung, cut off); more than --lease-renew-seconds "
                 "(default 30)")
      ->check(CLI::Range(0.1, 3600.0));
  AddEbsLimitFlags(app, &f->ebs_limits);
  app.add_flag("--print-config", f->print_config,
               "Print every setting with its help and value (default, or as set) as a commented TOML "
               "file for --config, and exit")
      ->configurable(false);
  AddNotifyFlags(app, &f->notify_flags);
  AddMetricsOptions(app, &f->metrics_settings);
}

}  // namespace snapvol
