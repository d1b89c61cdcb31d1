// ServiceMetrics: every metric family the layers record into, declared in one place (names,
// help, labels, buckets), registered in metrics::Registry::Global() on first use. The families
// read from the catalog at scrape time are written by the daemon's collector
// (daemon/metrics_endpoint.cc); docs/metrics.md lists both.
//
// Thread-safety: ServiceMetrics() is safe from any thread; the families are (see metrics.h).
#pragma once

#include <cstdint>
#include <string>

#include "core/metrics.h"
#include "core/status.h"

namespace snapvol {

struct ServiceMetricFamilies {
  // Snapshot jobs run by snapvold, as they end.
  metrics::CounterFamily& snapshot_jobs;          // snapvol_snapshot_jobs_total{account,outcome}
  metrics::HistogramFamily& snapshot_duration;    // snapvol_snapshot_duration_seconds{outcome}
  metrics::CounterFamily& snapshot_volume_bytes;  // snapvol_snapshot_volume_bytes_total
  metrics::CounterFamily& snapshot_read_bytes;    // snapvol_snapshot_read_bytes_total
  metrics::CounterFamily& snapshot_new_plain_bytes;   // snapvol_snapshot_new_chunk_plain_bytes_total
  metrics::CounterFamily& snapshot_new_stored_bytes;  // snapvol_snapshot_new_chunk_stored_bytes_total
  metrics::CounterFamily& snapshot_blocks;        // snapvol_snapshot_blocks_total{kind}
  // Restores (engine), whoever asked for them.
  metrics::HistogramFamily& restore_duration;     // snapvol_restore_duration_seconds{outcome}
  metrics::CounterFamily& restore_written_bytes;  // snapvol_restore_written_bytes_total
  // The HTTP APIs (EC2 Query, JSON, DLM).
  metrics::CounterFamily& api_requests;           // snapvol_api_requests_total{action,code}
  metrics::HistogramFamily& api_duration;         // snapvol_api_request_duration_seconds{action,code}
  // NBD, by the account the connection authenticated as ("root": the Unix socket's operator).
  metrics::GaugeFamily& nbd_open;                 // snapvol_nbd_connections{account}
  metrics::CounterFamily& nbd_connections;        // snapvol_nbd_connections_total{account}
  metrics::CounterFamily& nbd_read_bytes;         // snapvol_nbd_read_bytes_total{account}
  metrics::CounterFamily& nbd_written_bytes;      // snapvol_nbd_written_bytes_total{account}
  // The snapshot store.
  metrics::CounterFamily& store_errors;           // snapvol_store_errors_total{op,kind}
  // Maintenance jobs (GC, verify, ...): see RecordMaintenanceRun.
  metrics::CounterFamily& maintenance_runs;       // snapvol_maintenance_runs_total{job,outcome}
  metrics::GaugeFamily& maintenance_last_run;     // snapvol_maintenance_last_run_timestamp_seconds{job,outcome}
  // This host's heartbeats in the catalog's hosts table that failed (daemon/host_heartbeat.h).
  metrics::CounterFamily& host_heartbeat_failures;  // snapvol_host_heartbeat_failures_total
  // Takes or renewals of a cluster lease that failed in the catalog (daemon/lease_keeper.h).
  metrics::CounterFamily& cluster_lease_failures;  // snapvol_cluster_lease_failures_total{lease}
  metrics::CounterFamily& snapshot_claim_failures;  // snapvol_snapshot_claim_failures_total
  // Snapshots of hosts that were not up, ended by this host's sweep (cli/host_sweep.h), by host.
  metrics::CounterFamily& host_sweep_snapshots;  // snapvol_host_sweep_snapshots_total{host}
};

ServiceMetricFamilies& ServiceMetrics();

// Records one finished maintenance run: job is e.g. "gc" or "verify", outcome e.g.
// "succeeded", "failed" or "damaged"; finished_unix_ms when it ended.
void RecordMaintenanceRun(const std::string& job, const std::string& outcome, int64_t finished_unix_ms);

// The `kind` label of snapvol_store_errors_total for an error code ("io", "corruption",
// "no_space", "unauthorized", "other").
const char* StoreErrorKind(ErrorCode code);

}  // namespace snapvol
