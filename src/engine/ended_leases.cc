#include "engine/ended_leases.h"

namespace snapvol {

Result<std::vector<ReleasedLease>> ReleaseLeasesOfEndedSnapshots(Catalog* catalog, Repository* repo) {
  ASSIGN_OR_RETURN(auto leases, repo->ListLeases());
  std::vector<ReleasedLease> released;
  for (const auto& l : leases) {
    auto snap = catalog->GetSnapshot(l.snapshot_id);
    if (!snap) {
      if (snap.error().code() == ErrorCode::kNotFound) continue;  // another host's, or not a snapshot's
      return std::unexpected(snap.error());
    }
    if (snap->state == SnapshotState::kPending) continue;
    RETURN_IF_ERROR(repo->RemoveLease(l.snapshot_id));
    released.push_back({l.snapshot_id, snap->state});
  }
  return released;
}

}  // namespace snapvol
