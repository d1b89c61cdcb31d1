#include "engine/manifest_record.h"

#include <algorithm>

namespace snapvol {

SnapshotRecord SnapshotRecordOfManifest(Catalog* catalog, const Repository& repo, const ManifestMeta& m) {
  SnapshotRecord r;
  r.snapshot_id = m.snapshot_id;
  r.volume_id = m.volume_id;
  r.account_id = m.owner_id.empty() ? kDefaultAccountId : m.owner_id;
  if (!catalog->GetAccount(r.account_id)) r.account_id = kDefaultAccountId;
  r.state = SnapshotState::kCompleted;
  r.progress = "100%";
  r.start_time_ms = m.start_time_ms;
  r.completed_time_ms = m.completed_time_ms;
  r.volume_size_bytes = m.volume_size;
  r.block_size = m.block_size;
  r.description = m.description;
  r.parent_snapshot_id = m.parent_id;
  r.encrypted = repo.encrypted();
  r.stored_bytes = m.stored_bytes;
  r.changed_blocks = m.changed_blocks;
  r.total_blocks = m.block_count;
  for (const auto& [k, v] : m.tags) r.tags.push_back({k, v});
  std::sort(r.tags.begin(), r.tags.end(), [](const Tag& a, const Tag& b) { return a.key < b.key; });
  return r;
}

}  // namespace snapvol
