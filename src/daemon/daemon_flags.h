// snapvold's command line (every flag is also a TOML key through --config): the settings
// Main reads, their defaults and help texts. Maintenance, notification and metrics flags have
// their own files; this one gathers them in the order --help and --print-config show.
// Thread-safety: call from the main thread.
#pragma once

#include <CLI/CLI.hpp>
#include <cstddef>
#include <cstdint>
#include <string>

#include "api/ebs_limits.h"
#include "daemon/maintenance_flags.h"
#include "daemon/metrics_endpoint.h"
#include "daemon/notifications.h"
#include "nbd/nbd_server.h"

namespace snapvol {

struct DaemonFlags {
  std::string data_dir;  // default: $SNAPVOL_DATA_DIR
  std::string listen = "127.0.0.1:8787", region = "us-east-1";
  std::string restore_dir;  // empty: DIR/volumes
  std::string tls_cert, tls_key;
  std::string console_dir;  // empty: DefaultConsoleDir
  std::string nbd_socket;   // empty: DIR/nbd.sock
  std::string nbd_listen;
  nbd::ServerOptions nbd_options;
  bool insecure_http = false;
  bool allow_public_sharing = false;
  size_t runners = 2, http_threads = 256, http_concurrency = 0;
  size_t max_per_client = 0;  // 0: half of http_threads
  double header_timeout_s = 10;
  int default_retention = 7;
  std::string default_time = "02:00";
  // For tests: lifecycle schedules are judged this many seconds ahead of the clock, so a test
  // can make "the next minute" come in seconds instead of waiting for it (scheduler.h).
  int64_t schedule_clock_offset_s = 0;
  int64_t bin_default_days = 0;
  int64_t console_idle_seconds = 30 * 60;
  bool print_config = false;
  std::string host_name;            // empty: the machine's name
  std::string advertise_api;        // the API URL recorded for other hosts; empty: the bound one
  std::string advertise_nbd;        // the NBD HOST:PORT recorded for them; empty: the bound one
  double host_heartbeat_s = 5;      // the hosts row's heartbeat period
  double host_timeout_s = 30;       // a host without a heartbeat this long is unreachable
  double host_sweep_s = 5;          // the lease holder ends dead hosts' work this often
  double lease_renew_s = 5;         // cluster lease `maintenance`: renewed this often
  double lease_ttl_s = 30;          // ... for this long
  MaintenanceFlags maintenance_flags;
  NotifyFlags notify_flags;
  MetricsSettings metrics_settings;
  api::EbsLimits ebs_limits;
};

// Adds every flag to `app`, bound to *f (which must outlive the parse); reads
// $SNAPVOL_DATA_DIR as data_dir's default.
void AddDaemonFlags(CLI::App& app, DaemonFlags* f);

}  // namespace snapvol
