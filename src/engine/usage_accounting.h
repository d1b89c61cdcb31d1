// Usage accounting: how many stored bytes each snapshot holds on its own (EBS's incremental
// size) and each account holds exclusively or shares with other accounts, kept up to date from
// what changed instead of walking the whole store per question.
//
// The usage index (catalog tables usage_*) counts references the way the block map is built:
// a snapshot's root page is referenced once by the snapshot; a page that is referenced at all
// references each of its entries once (a page listing a chunk twice counts twice). Counted
// twice over: across every account (refs, which says what a deletion frees) and within each
// account (which says who holds an object: its holders). Adding a snapshot therefore reads
// only the pages that become referenced (an incremental snapshot: the pages it wrote), and
// removing one only those that stop being referenced.
//
// - A snapshot's unique bytes are what deleting it alone would free: its root, and every
//   object all of whose references come from objects so freed. Worked out on request by
//   reading only the pages that would be freed, and cached until the index next changes.
// - An account's exclusive bytes: objects only its snapshots reference; shared bytes: objects
//   its snapshots and another account's reference. Kept as running totals.
// - A snapshot's full size is the bytes of its volume's blocks that are not holes (EC2's
//   FullSnapshotSizeInBytes), from per-page counts of data blocks.
//
// Changes come through the catalog's usage journal (a completed snapshot: add; a deleted one:
// remove), written in the same transaction as the change itself and worked in order, one
// entry per catalog transaction, so a crash loses nothing and applies nothing twice. The
// pages a journalled removal must read stay in the store: GC keeps the roots of snapshots
// with a pending removal (see GcOptions::keep_snapshots and KeepForUsage).
//
// Thread-safety: safe from many threads; Drain runs one entry at a time across threads of
// this object, and an entry worked out by two processes at once commits only once (the
// catalog refuses an update made against an older generation; it is then worked out again).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "store/repository.h"

namespace snapvol {

struct SnapshotUsage {
  uint64_t full_bytes = 0;
  uint64_t unique_bytes = 0;
};

struct UsageTotals {
  std::vector<AccountUsageRecord> accounts;
  uint64_t stored_bytes = 0;  // every object an accounted snapshot references, counted once
  // Journal entries not applied when the totals were read (read before them: with 0, the
  // totals include every completion and deletion made before the call).
  uint64_t pending = 0;
};

class UsageAccounting {
 public:
  UsageAccounting(Catalog* catalog, Repository* repo);
  ~UsageAccounting();  // Stop()
  UsageAccounting(const UsageAccounting&) = delete;
  UsageAccounting& operator=(const UsageAccounting&) = delete;

  // Applies journal entries in order until the journal is empty or max_entries were applied;
  // returns how many were. An entry whose snapshot's root is gone from the store (deleted and
  // collected before it was accounted) is dropped with nothing counted. Stops at the first
  // error (a page unreadable, the catalog busy), leaving that entry for the next call.
  Result<size_t> Drain(size_t max_entries = SIZE_MAX);

  // NotFound when the snapshot is not accounted (not completed, or its add is still
  // journalled: Drain first).
  Result<SnapshotUsage> Snapshot(const std::string& snapshot_id);
  Result<UsageTotals> Totals();

  // Snapshot ids GC must keep readable: those whose removal is journalled and not applied.
  Result<std::vector<std::string>> KeepForUsage();

  // Drains in the background: at once after Wake(), else every interval_ms. Errors are
  // reported through on_error (if set) and retried at the next interval.
  void Start(int64_t interval_ms, std::function<void(const Error&)> on_error = {});
  void Wake();
  void Stop();

 private:
  class Update;
  Result<bool> ApplyNext();
  Result<uint64_t> TotalStoredBytes();

  Catalog* catalog_;
  Repository* repo_;
  std::mutex drain_mu_;  // one entry worked out at a time in this process
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false, woken_ = false;  // guarded by mu_
  std::atomic<bool> stopping_{false};   // read by the background thread between entries
  std::thread thread_;
};

}  // namespace snapvol
