#include "store/gc.h"

#include <algorithm>
#include <set>

#include "store/block_map.h"

namespace snapvol {
namespace {

// "chunks/ab/<64 hex>" → the id, or nullopt for a foreign key.
std::optional<Digest> IdFromKey(const std::string& key) {
  auto slash = key.rfind('/');
  if (slash == std::string::npos) return std::nullopt;
  auto id = DigestFromHex(std::string_view(key).substr(slash + 1));
  if (!id) return std::nullopt;
  return *id;
}

}  // namespace

Result<GcReport> CollectGarbage(Repository* repo, const GcOptions& opt) {
  GcReport report;
  ObjectStore* store = repo->store();
  const int64_t now = opt.clock->NowMillis();

  // Leases first: a snapshot that starts after this point writes only objects younger than
  // the cutoff, and touches the old ones it reuses.
  ASSIGN_OR_RETURN(auto leases, repo->ListLeases());
  int64_t cutoff = now - opt.grace_ms;
  std::set<std::string> protected_parents;
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

  // Sweep. Deletions go to the store in groups (an S3 store sends a group's DELETEs in
  // parallel); the counts are of what was deleted.
  constexpr size_t kDeleteGroup = 1000;
  auto sweep = [&](const std::string& prefix, const DigestSet& live, uint64_t& counter) -> Status {
    ASSIGN_OR_RETURN(auto objs, store->List(prefix));
    std::vector<std::string> group;
    uint64_t group_bytes = 0;
    auto flush = [&]() -> Status {
      if (!opt.dry_run) RETURN_IF_ERROR(store->DeleteMany(group));
      counter += group.size();
      report.deleted_bytes += group_bytes;
      group.clear();
      group_bytes = 0;
      return OkStatus();
    };
    for (const auto& o : objs) {
      auto id = IdFromKey(o.key);
      if (!id || live.count(*id)) continue;
      if (o.mtime_ms >= cutoff) {
        ++report.kept_young;
        continue;
      }
      group.push_back(o.key);
      group_bytes += o.size;
      if (group.size() == kDeleteGroup) RETURN_IF_ERROR(flush());
    }
    return flush();
  };
  RETURN_IF_ERROR(sweep("chunks/", live_chunks, report.deleted_chunks));
  RETURN_IF_ERROR(sweep("index/", live_pages, report.deleted_pages));
  for (const auto& id : removable_roots) {
    if (!opt.dry_run) RETURN_IF_ERROR(store->Delete(Repository::DeletedKey(id)));
    ++report.deleted_roots;
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
