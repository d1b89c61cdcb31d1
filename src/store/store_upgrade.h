// UpgradeStore: converts a format-1 store to format 2 in place, resumably (docs/store-format.md,
// "Upgrading a format-1 store"): an exclusive hold (a lease and a gc-run record), every
// format-1 chunk and index page copied into packs, every copy read back through a freshly
// read store-wide index, then one atomic rewrite of config, then the format-1 objects
// deleted. A run killed at any point leaves a store that reads as before (format 1) or as
// format 2 with leftovers; running it again finishes the work.
// Thread-safety: one call at a time per store (the hold refuses a second one); the progress
// callback is called from the calling thread, between groups of objects.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "core/clock.h"
#include "core/thread_pool.h"
#include "store/repository.h"

namespace snapvol {

struct UpgradeProgress {
  const char* phase = "";  // "copy" or "verify"
  uint64_t objects_done = 0, objects_total = 0;
  uint64_t bytes_done = 0, bytes_total = 0;  // stored bytes of the format-1 objects
};

struct UpgradeOptions {
  uint64_t pack_size = kDefaultPackSize;  // the new format's target bytes per pack
  bool dry_run = false;                   // count and report; write nothing
  // Packs written between two publications of the store-wide index: what an interrupted run
  // copies again, against one packindex/ object per this many packs.
  uint64_t packs_per_commit = 8;
  Clock* clock = Clock::Real();
  // A snapshot lease whose heartbeat is older than this is dead (as GcOptions::lease_expiry_ms).
  int64_t lease_expiry_ms = 30 * 60 * 1000;
  // How often the hold's lease and gc-run record are renewed (real time).
  int64_t heartbeat_ms = kGcRunHeartbeatMs;
  // Whether a holder ("host:pid", with the start token its record carries, if any) names a
  // process that is gone: its leftover hold is taken over. Default: HolderIsGone
  // (core/process_holder.h: on this host, a pid that no longer exists or was reused).
  std::function<bool(const std::string& holder, const std::string& start_token)> holder_dead;
  std::function<void(const UpgradeProgress&)> progress;
  // Reads, checks and writes objects on these threads (several in flight, which an S3 store
  // needs); none: on the calling thread. The pool must not be running other work: the
  // upgrade waits for it to be idle between groups of objects.
  ThreadPool* pool = nullptr;
};

struct UpgradeReport {
  uint32_t format_before = 1;
  bool changed = false;                // false: a dry run, or nothing to do
  uint64_t chunks = 0, pages = 0;      // format-1 objects found
  uint64_t bytes_before = 0;           // their stored bytes
  uint64_t copied = 0;                 // written into packs by this run
  uint64_t already_packed = 0;         // packed by an earlier, interrupted run
  uint64_t vanished = 0;               // deleted (by a format-1 gc) between listing and reading
  uint64_t packs = 0;                  // packs holding the converted objects
  uint64_t packs_estimate = 0;         // dry run: packs the copy would write
  uint64_t bytes_after = 0;            // stored bytes of their packed copies
  uint64_t leftovers_deleted = 0;      // format-1 objects deleted after the flip
};

// On a format-1 store: the whole upgrade (or, dry run, what it would convert). On a format-2
// store: deletes the format-1 objects an interrupted upgrade left (dry run: counts them);
// with none, changes nothing. Conflict (retryable, nothing changed) while a snapshot lease,
// gc or verification run, or another host's upgrade is live. Corruption, before the flip and
// naming the object, when a format-1 object is damaged or a copy does not read back.
Result<UpgradeReport> UpgradeStore(Repository* repo, const UpgradeOptions& options);

}  // namespace snapvol
