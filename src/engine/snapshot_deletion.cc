#include "engine/snapshot_deletion.h"

#include <optional>

namespace snapvol {

Status DeleteSnapshot(const SnapshotDeletion& with, const std::string& snapshot_id, int64_t now_ms, bool* binned) {
  if (binned) *binned = false;
  ASSIGN_OR_RETURN(SnapshotRecord s, with.catalog->GetSnapshot(snapshot_id));
  if (s.state == SnapshotState::kPending && (!with.still_being_taken || with.still_being_taken(s)))
    return Conflict("snapshot " + snapshot_id + " is still being taken (pending" +
                    (s.runner.empty() ? "" : ", by " + s.runner) + ")");
  // Only a completed snapshot can be restored from the bin: others are deleted as always.
  std::optional<BinMatch> keep;
  if (s.state == SnapshotState::kCompleted) {
    ASSIGN_OR_RETURN(keep, MatchRetentionRule(with.catalog, s, with.recycle_bin));
  }
  if (keep) {
    const int64_t exit_ms = now_ms + keep->retention_days * kDayMs;
    RETURN_IF_ERROR(with.catalog->BinSnapshot(snapshot_id, now_ms, exit_ms, keep->rule_id, [&]() -> Status {
      if (with.fence) RETURN_IF_ERROR(with.fence());
      return with.repo->MoveManifestToBin(snapshot_id, now_ms, exit_ms, keep->rule_id);
    }));
    if (binned) *binned = true;
    return OkStatus();
  }
  return with.catalog->DeleteSnapshot(snapshot_id, now_ms, [&]() -> Status {
    if (with.fence) RETURN_IF_ERROR(with.fence());
    auto moved = with.repo->DeleteManifest(snapshot_id);
    if (!moved && moved.error().code() != ErrorCode::kNotFound) return moved;  // a pending one has none
    return OkStatus();
  });
}

}  // namespace snapvol
