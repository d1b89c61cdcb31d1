#include "store/gc.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <thread>

#include "core/hash.h"
#include "core/process_holder.h"

#include "store/block_map.h"

namespace snapvol {
namespace {

// The record of this run in the store (gc-runs/<id>) from before it lists anything until it
// ends: a snapshot that reused a chunk this run may have listed as dead waits for the run to
// end before it checks the chunk is still there. A thread renews its heartbeat every
// kGcRunHeartbeatMs of real time, so a killed run holds snapshots up for at most
// kGcRunExpiryMs. Removed on every way out.
class RunRecord {
 public:
  RunRecord(Repository* repo, Clock* clock) : repo_(repo), clock_(clock) {}
  ~RunRecord() {
    if (!heartbeat_.joinable()) return;
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    heartbeat_.join();
    (void)repo_->RemoveGcRun(run_.run_id);
  }
  const std::string& run_id() const { return run_.run_id; }
  Status Publish() {
    std::array<uint8_t, 16> id{};
    RETURN_IF_ERROR(RandomBytes(id));
    run_.run_id = ToHex(id);
    run_.holder = ThisProcessHolder();
    run_.holder_start = ThisProcessStartToken();
    run_.started_ms = run_.heartbeat_ms = clock_->NowMillis();
    RETURN_IF_ERROR(repo_->PutGcRun(run_));
    heartbeat_ = std::thread([this] {
      std::unique_lock lock(mu_);
      while (!cv_.wait_for(lock, std::chrono::milliseconds(kGcRunHeartbeatMs), [&] { return stop_; })) {
        GcRunInfo renewed = run_;
        renewed.heartbeat_ms = clock_->NowMillis();
        (void)repo_->PutGcRun(renewed);  // a failed renewal only lets snapshots stop waiting sooner
      }
    });
    return OkStatus();
  }

 private:
  Repository* repo_;
  Clock* clock_;
  GcRunInfo run_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread heartbeat_;
};

// Format 2: the format-1 objects still in the store (docs/store-format.md, "Upgrading a
// format-1 store"). None is read any more, so one older than the cutoff goes, unless a snapshot
// needs its id and the index (as the pack sweep left it) names no copy: then it is the only
// copy there is, and deleting it would turn a repairable loss into a permanent one. Young ones
// stay: a process that opened the store as format 1 may be writing them under a lease.
Status SweepFormat1Leftovers(Repository* repo, PackedObjects* packed, const DigestSet& live_chunks,
                             const DigestSet& live_pages, int64_t cutoff, bool dry_run, GcReport* report) {
  constexpr size_t kDeleteGroup = 1000;
  bool fresh = false;  // the index read since the pack sweep (this process may never have read it)
  for (ObjectKind kind : {ObjectKind::kChunk, ObjectKind::kIndexPage}) {
    const DigestSet& live = kind == ObjectKind::kChunk ? live_chunks : live_pages;
    ASSIGN_OR_RETURN(auto objs, repo->ListFormat1Objects(kind));
    std::vector<Digest> group;
    auto flush = [&]() -> Status {
      if (!dry_run && !group.empty()) RETURN_IF_ERROR(repo->DeleteFormat1Objects(kind, group));
      report->leftovers_deleted += group.size();
      group.clear();
      return OkStatus();
    };
    for (const auto& o : objs) {
      if (o.mtime_ms >= cutoff) {
        ++report->leftovers_young;
        continue;
      }
      if (live.count(o.id) && !fresh) {
        RETURN_IF_ERROR(packed->Refresh());
        fresh = true;
      }
      if (live.count(o.id) && !packed->Find(kind, o.id)) {
        ++report->leftovers_needed;
        continue;
      }
      group.push_back(o.id);
      report->leftover_bytes_deleted += o.size;
      if (group.size() == kDeleteGroup) RETURN_IF_ERROR(flush());
    }
    RETURN_IF_ERROR(flush());
  }
  return OkStatus();
}

}  // namespace

Result<GcReport> CollectGarbage(Repository* repo, const GcOptions& opt) {
  if (!(opt.repack_threshold > 0 && opt.repack_threshold <= 1))
    return InvalidArgument("the repack threshold must be above 0 and at most 1");
  GcReport report;
  ObjectStore* store = repo->store();
  RunRecord record(repo, opt.clock);
  if (!opt.dry_run) RETURN_IF_ERROR(record.Publish());
  const int64_t now = opt.clock->NowMillis();
  if (!opt.dry_run) {
    // A run killed on this host leaves its record; once its process is gone it holds no one
    // up: removed now rather than a minute after its last heartbeat.
    ASSIGN_OR_RETURN(auto gone, repo->RemoveGoneGcRuns(record.run_id()));
    for (const auto& r : gone)
      report.gone_runs_removed.push_back(r.holder + ", run " + r.run_id + " started " + FormatIso8601(r.started_ms));
    RETURN_IF_ERROR(repo->RequireSoleGcRun(record.run_id(), now));
  }

  // Leases first: a snapshot that starts after this point writes only objects younger than
  // the cutoff, and touches the old ones it reuses.
  ASSIGN_OR_RETURN(auto leases, repo->ListLeases());
  int64_t cutoff = now - opt.grace_ms;
  std::set<std::string> protected_parents(opt.keep_snapshots.begin(), opt.keep_snapshots.end());
  std::vector<std::string> stale_leases;
  for (const auto& l : leases) {
    if (l.heartbeat_ms < now - opt.lease_expiry_ms) {
      stale_leases.push_back(l.snapshot_id);
      continue;
    }
    ++report.live_leases;
    cutoff = std::min(cutoff, l.started_ms - opt.grace_ms);
    if (!l.parent_id.empty()) protected_parents.insert(l.parent_id);
  }

  // Mark.
  DigestSet live_chunks, live_pages;
  auto mark = [&](const ManifestMeta& meta) -> Status {
    BlockMapReader reader(repo, meta);
    return reader.Walk(
        [&](uint32_t, const Digest& page) -> Result<bool> {
          return live_pages.insert(page).second;  // a marked page's subtree is marked already
        },
        [&](uint64_t, const Digest& chunk) -> Status {
          live_chunks.insert(chunk);
          return OkStatus();
        });
  };
  ASSIGN_OR_RETURN(auto ids, repo->ListManifestIds(false));
  for (const auto& id : ids) {
    auto meta = repo->GetManifest(id);
    if (!meta) {
      if (meta.error().code() == ErrorCode::kNotFound) continue;  // deleted meanwhile
      return std::unexpected(meta.error().WithContext("gc aborted, nothing deleted"));
    }
    Status st = mark(*meta);
    if (!st) return std::unexpected(st.error().WithContext("gc aborted while reading snapshot " + id + ", nothing deleted"));
    ++report.manifests;
  }
  // Snapshots held by the Recycle Bin stay restorable until their retention ends: their data
  // is live.
  ASSIGN_OR_RETURN(auto binned, repo->ListBinnedManifests());
  for (const auto& meta : binned) {
    Status st = mark(meta);
    if (!st)
      return std::unexpected(st.error().WithContext("gc aborted while reading binned snapshot " + meta.snapshot_id +
                                                    ", nothing deleted"));
    ++report.binned_roots;
  }
  ASSIGN_OR_RETURN(auto deleted_ids, repo->ListManifestIds(true));
  std::vector<std::string> removable_roots;
  for (const auto& id : deleted_ids) {
    if (!protected_parents.count(id)) {
      removable_roots.push_back(id);
      continue;
    }
    auto meta = repo->GetManifest(id, /*include_deleted=*/true);
    if (!meta) return std::unexpected(meta.error().WithContext("gc aborted, nothing deleted"));
    Status st = mark(*meta);
    if (!st) return std::unexpected(st.error().WithContext("gc aborted, nothing deleted"));
  }
  report.live_chunks = live_chunks.size();
  report.live_pages = live_pages.size();
  auto fence = [&]() -> Status {
    if (opt.dry_run || !opt.before_deletes) return OkStatus();
    Status st = opt.before_deletes();
    if (!st) return std::unexpected(st.error().WithContext("gc stopped before deleting"));
    return OkStatus();
  };
  RETURN_IF_ERROR(fence());

  // Sweep. Deletions go to the store in groups (an S3 store sends a group's DELETEs in
  // parallel); the counts are of what was deleted.
  constexpr size_t kDeleteGroup = 1000;
  auto sweep = [&](ObjectKind kind, const DigestSet& live, uint64_t& counter) -> Status {
    ASSIGN_OR_RETURN(auto objs, repo->ListObjects(kind));
    std::vector<Digest> group;
    uint64_t group_bytes = 0;
    auto flush = [&]() -> Status {
      if (!group.empty()) RETURN_IF_ERROR(fence());  // a lease lost while deleting stops here
      if (!opt.dry_run) RETURN_IF_ERROR(repo->DeleteObjects(kind, group));
      counter += group.size();
      report.deleted_bytes += group_bytes;
      group.clear();
      group_bytes = 0;
      return OkStatus();
    };
    for (const auto& o : objs) {
      if (live.count(o.id)) continue;
      report.dead_bytes += o.size;
      if (o.mtime_ms >= cutoff) {
        ++report.kept_young;
        continue;
      }
      group.push_back(o.id);
      group_bytes += o.size;
      if (group.size() == kDeleteGroup) RETURN_IF_ERROR(flush());
    }
    return flush();
  };
  if (PackedObjects* packed = repo->packed()) {
    // The sweep counts the dead bytes from the index as it read it, before it rewrites it: one
    // listing of the store serves both (a second one, taken earlier, could see a pack as old
    // that a snapshot refreshed in between).
    ASSIGN_OR_RETURN(PackSweep s, packed->Sweep(live_chunks, live_pages, cutoff, opt.repack_threshold, opt.dry_run));
    report.dead_bytes = s.dead_bytes;
    report.deleted_chunks = s.dead_chunks;
    report.deleted_pages = s.dead_pages;
    report.deleted_bytes = s.bytes_freed;
    report.kept_young = s.packs_young + s.packs_unindexed_young;
    report.packs_unindexed = s.packs_unindexed_young;
    report.packs = s.packs;
    // A dry run's sweep counts the packs it would rewrite apart from those it would delete; a
    // real one deletes the rewritten ones too and counts them in both.
    report.packs_deleted = opt.dry_run ? s.packs_deleted + s.packs_repacked : s.packs_deleted;
    report.packs_repacked = s.packs_repacked;
    report.packs_written = s.packs_written;
    report.packs_lost = s.packs_lost;
    report.packs_damaged_kept = s.packs_damaged_kept;
    // After the pack sweep: a copy it dropped (a lost pack) no longer stands in for a leftover.
    RETURN_IF_ERROR(SweepFormat1Leftovers(repo, packed, live_chunks, live_pages, cutoff, opt.dry_run, &report));
  } else {
    RETURN_IF_ERROR(sweep(ObjectKind::kChunk, live_chunks, report.deleted_chunks));
    RETURN_IF_ERROR(sweep(ObjectKind::kIndexPage, live_pages, report.deleted_pages));
  }
  for (const auto& id : removable_roots) {
    if (!opt.dry_run) RETURN_IF_ERROR(store->Delete(Repository::DeletedKey(id)));
    ++report.deleted_roots;
  }
  if (!opt.dry_run) {
    // Records of runs that died without removing them.
    ASSIGN_OR_RETURN(auto runs, repo->ListGcRuns());
    for (const auto& r : runs)
      if (r.heartbeat_ms < now - kGcRunExpiryMs) RETURN_IF_ERROR(repo->RemoveGcRun(r.run_id));
  }
  for (const auto& id : stale_leases) {
    if (!opt.dry_run) RETURN_IF_ERROR(repo->RemoveLease(id));
    ++report.stale_leases_removed;
  }
  if (!opt.dry_run) {
    ASSIGN_OR_RETURN(report.temporaries_removed,
                     store->RemoveStaleTemporaries(std::min(cutoff, now - opt.grace_ms)));
  }
  return report;
}

}  // namespace snapvol
