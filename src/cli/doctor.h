// `snapvol doctor`: an operator's health check of a data dir (permissions, catalog, store
// reachability, clock skew against S3, free space, usage accounting backlog, the latest
// lifecycle and maintenance runs, leftovers of interrupted writers) and, with an endpoint, of
// the snapvold serving it. Each check yields findings {check, ok|warn|fail, what, how to fix};
// the command prints them and exits 1 when any failed. Nothing is changed in the data dir,
// apart from a probe object written to the store and removed again: permissions are reported,
// not tightened, and the catalog is inspected read-only before it is opened (it is not opened,
// so not migrated, unless its schema is this build's).
// Thread-safety: free functions; call from one thread.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "catalog/catalog.h"

namespace snapvol {

enum class DoctorStatus { kOk, kWarn, kFail };
const char* DoctorStatusName(DoctorStatus s);  // "ok", "warn", "fail"

struct DoctorFinding {
  std::string check;  // e.g. "permissions", "catalog", "store", "free space"
  DoctorStatus status = DoctorStatus::kOk;
  std::string what;        // what was found, naming paths, policies, snapshots
  std::string how_to_fix;  // empty for ok
};

// Thresholds (documented in README.md).
inline constexpr int64_t kDoctorSkewWarnMs = 60 * 1000;       // SigV4 refuses beyond 5 minutes
inline constexpr int64_t kDoctorSkewFailMs = 5 * 60 * 1000;
inline constexpr double kDoctorFreeWarnFraction = 0.10;
inline constexpr double kDoctorFreeFailFraction = 0.02;
inline constexpr uint64_t kDoctorUsageBacklogWarn = 1000;     // journal entries not yet counted
inline constexpr int64_t kDoctorMaintenanceQuietMs = 2 * 86400 * 1000;  // both jobs run daily

struct DoctorOptions {
  std::string data_dir;  // empty: only the daemon is checked
  std::string endpoint;  // empty: no daemon check
  int64_t now_ms = 0;
};

// Runs every check that applies and returns the findings in order.
std::vector<DoctorFinding> RunDoctor(const DoctorOptions& options);

// The pieces, for tests.
DoctorFinding ClockSkewFinding(int64_t skew_ms, const std::string& endpoint);
DoctorFinding FreeSpaceFinding(const std::string& path, uint64_t available_bytes, uint64_t total_bytes);
DoctorFinding UsageBacklogFinding(uint64_t pending_entries);
// The latest run of each lifecycle policy's schedules: failed/partial → warn.
std::vector<DoctorFinding> LifecycleRunFindings(Catalog* catalog);
// The latest GC and verification runs (failed → warn; none finished within
// kDoctorMaintenanceQuietMs of now, once the service is that old → warn) and the snapshots
// verification found damaged (fail, naming them).
std::vector<DoctorFinding> MaintenanceFindings(Catalog* catalog, int64_t now_ms);
// Cluster leases (docs/multi-host.md part 4): a lease held or expired whose holder is not an
// `up` host (stopped, unreachable, unregistered) → warn, naming the lease, its state, the host
// and its state (its duty runs nowhere until another snapvold takes the lease). Released
// leases and leases of up hosts are fine; no lease at all is fine (no snapvold started yet).
std::vector<DoctorFinding> ClusterLeaseFindings(Catalog* catalog, int64_t now_ms);
// Volumes: those in state `error` → warn, naming one and why (its state message); those
// `deleting` or `creating` on a host that is not `up` → warn, naming the host and its state
// (the work waits for that host, or the sweep ends it `error`). Otherwise fine, with the count.
std::vector<DoctorFinding> VolumeFindings(Catalog* catalog, int64_t now_ms);
// GET /healthz of a running snapvold (unauthenticated), with its response time.
DoctorFinding DaemonFinding(const std::string& endpoint);

// 1 when any finding failed, else 0.
int DoctorExitCode(const std::vector<DoctorFinding>& findings);
// One line per finding ("OK   check: what"), and for WARN/FAIL an indented "fix:" line; or a
// JSON document {"Findings": [...], "Ok": bool}.
void PrintDoctorReport(const std::vector<DoctorFinding>& findings, bool json, std::ostream& out);

// Adds `snapvol doctor [--endpoint URL]`. data_dir and output are the CLI's global options,
// read when the command runs; the callback sets *action and *exit_code.
void AddDoctorCommand(CLI::App& app, const std::string* data_dir, const std::string* output,
                      std::function<void()>* action, int* exit_code);

}  // namespace snapvol
