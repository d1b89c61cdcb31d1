// VolumeRollback: rolls a volume back in place to a snapshot, writing only what differs.
// Each block of the volume is read and its id (SHA-256, or HMAC under an encrypted store's
// id key, from Repository::IdOf) compared with the snapshot's block map; only blocks whose
// id differs are fetched (checked against their id) and written, and blocks that are holes in
// the snapshot but not zero on the volume are zeroed (punched or BLKZEROOUT where offered).
// The old chunk is never fetched to compare: the volume's own bytes give its id.
//
// Idempotent: running it again after a crash or a failure compares again and writes only
// what is still different, so an interrupted rollback is resumed by running it again.
// Size: a volume smaller than the snapshot's volume is refused (InvalidArgument) before
// anything is read; on a larger one the bytes past the snapshot's volume size are left as
// they are (RollbackStats::tail_bytes says how many) — the snapshot says nothing about them.
// Thread-safety: one Run at a time per object; several may share a Repository and a ThreadPool.
#pragma once

#include <atomic>
#include <functional>
#include <string>

#include "core/thread_pool.h"
#include "store/repository.h"
#include "volume/rewritable_volume.h"

namespace snapvol {

struct RollbackStats {
  uint64_t volume_bytes = 0;      // the snapshot's volume size: what is rolled back
  uint64_t blocks = 0;            // blocks of the snapshot's volume
  uint64_t blocks_compared = 0;   // blocks whose id was compared (read, or a hole on the volume)
  uint64_t blocks_unchanged = 0;  // not compared: changed-block tracking vouches for them
  uint64_t blocks_written = 0;    // rewritten with the snapshot's data
  uint64_t blocks_zeroed = 0;     // made zero (a hole in the snapshot)
  uint64_t bytes_read = 0;        // read from the volume
  uint64_t bytes_written = 0;     // written to the volume (data; zeroed ranges not counted)
  uint64_t tail_bytes = 0;        // past the snapshot's volume size, left untouched
};
using RollbackProgressFn = std::function<void(const RollbackStats&)>;

struct RollbackOptions {
  size_t blocks_per_batch = 16;
  // Changed-block tracking relative to the snapshot: a block for which it returns false is
  // vouched identical to the snapshot's and is neither read nor written. Empty: every block.
  std::function<bool(uint64_t block)> maybe_changed;
};

class VolumeRollback {
 public:
  VolumeRollback(Repository* repo, ThreadPool* pool, RollbackOptions options = {})
      : repo_(repo), pool_(pool), opt_(std::move(options)) {}

  // Rolls volume back to snapshot_id and syncs it. On failure (a damaged or missing chunk, an
  // I/O error, cancel) the error names the snapshot and the block; blocks before it may
  // already be rolled back, so the caller must record the failure (running again resumes).
  // progress is called from this thread with the counters so far, and once more after a
  // failure or cancel with what was done before it.
  Result<RollbackStats> Run(const std::string& snapshot_id, RewritableVolume* volume,
                            const RollbackProgressFn& progress = nullptr,
                            const std::atomic<bool>* cancel = nullptr);

 private:
  Repository* repo_;
  ThreadPool* pool_;
  RollbackOptions opt_;
};

}  // namespace snapvol
