// Restore drills: proof that snapshots restore, not only that their objects check out. A drill
// restores a snapshot in full to scratch space, exactly as a real restore would (every block
// fetched, decoded and compared with its id, holes kept), optionally runs the operator's check
// command on the image (e.g. `e2fsck -n -f {image}`, `xfs_repair -n {image}`), records how long
// the full restore took, and removes the image. The maintenance scheduler runs drills as its
// "drill" job (lifecycle/maintenance.h): each run takes, of every account, the latest completed
// snapshot of its volumes that was drilled least recently.
// Thread-safety: pure functions of their arguments; DrillSnapshot uses the Repository and pool
// as a restore does, and owns the scratch file it names.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "catalog/catalog_records.h"
#include "core/clock.h"
#include "core/thread_pool.h"
#include "store/repository.h"

namespace snapvol::lifecycle {

struct DrillOptions {
  // Created 0700 if missing; an existing one must be this process's own and closed to others.
  // Images are named after the snapshot and removed after each drill.
  std::string scratch_dir;
  // argv of the check command, or empty for none. "{image}", "{snapshot}" and "{volume}" in an
  // argument are replaced by the image's path, the snapshot id and its volume id; without an
  // "{image}" anywhere the path is appended as the last argument.
  std::vector<std::string> check_command;
  int64_t check_timeout_ms = 60 * 60 * 1000;
  size_t per_account = 1;  // snapshots drilled per account and run
};

// "e2fsck -n -f {image}" → its arguments (split at spaces and tabs; no quoting).
std::vector<std::string> SplitCommand(const std::string& command);

// The snapshots a drill run takes: of each account, among the latest completed snapshot of each
// of its volumes, the per_account drilled least recently (never drilled first, then the newest).
// Snapshots already drilled by run_id (a run being resumed) are left out.
std::vector<SnapshotRecord> PickDrillSnapshots(const std::vector<SnapshotRecord>& completed,
                                               const std::vector<RestoreDrillRecord>& drills, size_t per_account,
                                               int64_t run_id);

struct DrillOutcome {
  RestoreDrillRecord record;  // run_id is the caller's to set
  uint64_t blocks = 0;        // blocks restored and checked
  bool stopped = false;       // cancelled part-way: nothing to record
  std::string summary;        // one line for the run's message
};

// Drills snapshot s (see above). A failure of any kind is an outcome (record.ok false, with the
// problem: a damaged chunk names the chunk, a check command its exit and the end of its output,
// a full scratch file system says so), never an error.
DrillOutcome DrillSnapshot(Repository* repo, ThreadPool* pool, const SnapshotRecord& s, const DrillOptions& o,
                           Clock* clock, const std::atomic<bool>* cancel);

}  // namespace snapvol::lifecycle
