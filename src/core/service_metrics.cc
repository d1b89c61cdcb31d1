// The metric families snapvol records into (see service_metrics.h and docs/metrics.md).
#include "core/service_metrics.h"

namespace snapvol {
namespace {

// Seconds: snapshots and restores take from a fraction of a second (a small incremental) to
// hours (a first full snapshot of a large volume).
const std::vector<double> kJobBuckets = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 10800};
// API calls: most answer in milliseconds; a slow catalog or store shows as seconds.
const std::vector<double> kApiBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

ServiceMetricFamilies Make() {
  auto& r = metrics::Registry::Global();
  return ServiceMetricFamilies{
      r.AddCounter("snapvol_snapshot_jobs_total", "Snapshot jobs that ended, by account and outcome (completed or error).",
                   {"account", "outcome"}),
      r.AddHistogram("snapvol_snapshot_duration_seconds",
                     "Time a snapshot job ran, from a runner taking it to its end, by outcome.", kJobBuckets,
                     {"outcome"}),
      r.AddCounter("snapvol_snapshot_volume_bytes_total", "Volume bytes covered by completed snapshots (logical size)."),
      r.AddCounter("snapvol_snapshot_read_bytes_total",
                   "Bytes completed snapshots read from volumes (blocks skipped by changed-block tracking are not read)."),
      r.AddCounter("snapvol_snapshot_new_chunk_plain_bytes_total",
                   "Plaintext bytes of the chunks completed snapshots added to the store."),
      r.AddCounter("snapvol_snapshot_new_chunk_stored_bytes_total",
                   "Stored (compressed, encrypted) bytes of the chunks completed snapshots added to the store."),
      r.AddCounter("snapvol_snapshot_blocks_total",
                   "Blocks of completed snapshots by what became of them: new (stored), dedup (already stored), "
                   "unchanged (same as the parent), hole, zero.",
                   {"kind"}),
      r.AddHistogram("snapvol_restore_duration_seconds", "Time a restore of a snapshot took, by outcome.", kJobBuckets,
                     {"outcome"}),
      r.AddCounter("snapvol_restore_written_bytes_total", "Bytes restores wrote to their targets."),
      r.AddCounter("snapvol_api_requests_total",
                   "API requests answered, by action and error code (\"ok\" on success).", {"action", "code"}, 2000),
      r.AddHistogram("snapvol_api_request_duration_seconds",
                     "Time an API request took to handle (after waiting its turn), by action and error code.",
                     kApiBuckets, {"action", "code"}, 2000),
      r.AddGauge("snapvol_nbd_connections", "NBD connections open with an export, by account.", {"account"}),
      r.AddCounter("snapvol_nbd_connections_total", "NBD connections that opened an export, by account.", {"account"}),
      r.AddCounter("snapvol_nbd_read_bytes_total", "Bytes NBD clients read, by account.", {"account"}),
      r.AddCounter("snapvol_nbd_written_bytes_total", "Bytes NBD clients wrote, by account.", {"account"}),
      r.AddCounter("snapvol_store_errors_total",
                   "Failed snapshot-store operations, by operation and kind (io, corruption, no_space, unauthorized, other).",
                   {"op", "kind"}),
      r.AddCounter("snapvol_maintenance_runs_total", "Maintenance runs (gc, verify, ...) that ended, by job and outcome.",
                   {"job", "outcome"}),
      r.AddGauge("snapvol_maintenance_last_run_timestamp_seconds",
                 "When the latest maintenance run of this job with this outcome ended (Unix time).", {"job", "outcome"}),
      r.AddCounter("snapvol_host_heartbeat_failures_total",
                   "Heartbeats of this host that could not be written to the catalog's hosts table."),
      r.AddCounter("snapvol_cluster_lease_failures_total",
                   "Takes or renewals of a cluster lease (e.g. maintenance) that failed in the catalog.", {"lease"}),
      r.AddCounter("snapvol_snapshot_claim_failures_total",
                   "Snapshot jobs queued for this host that it could not claim or start."),
      r.AddCounter("snapvol_host_sweep_snapshots_total",
                   "Pending snapshots of a host that was not up (unreachable or stopped) that this host's sweep ended.",
                   {"host"}),
  };
}

}  // namespace

ServiceMetricFamilies& ServiceMetrics() {
  static ServiceMetricFamilies* f = new ServiceMetricFamilies(Make());  // never destroyed, as the registry
  return *f;
}

void RecordMaintenanceRun(const std::string& job, const std::string& outcome, int64_t finished_unix_ms) {
  auto& m = ServiceMetrics();
  m.maintenance_runs.With({job, outcome})->Add();
  m.maintenance_last_run.With({job, outcome})->Set(static_cast<double>(finished_unix_ms) / 1000.0);
}

const char* StoreErrorKind(ErrorCode code) {
  switch (code) {
    case ErrorCode::kIoError:
      return "io";
    case ErrorCode::kCorruption:
      return "corruption";
    case ErrorCode::kNoSpace:
      return "no_space";
    case ErrorCode::kUnauthorized:
      return "unauthorized";
    default:
      return "other";
  }
}

}  // namespace snapvol
