#include "engine/snapshot_deletion.h"

namespace snapvol {

Status DeleteSnapshot(const SnapshotDeletion& with, const std::string& snapshot_id, int64_t now_ms) {
  ASSIGN_OR_RETURN(SnapshotRecord s, with.catalog->GetSnapshot(snapshot_id));
  if (s.state == SnapshotState::kPending && (!with.still_being_taken || with.still_being_taken(s)))
    return Conflict("snapshot " + snapshot_id + " is still being taken (pending" +
                    (s.runner.empty() ? "" : ", by " + s.runner) + ")");
  return with.catalog->DeleteSnapshot(snapshot_id, now_ms, [&]() -> Status {
    auto moved = with.repo->DeleteManifest(snapshot_id);
    if (!moved && moved.error().code() != ErrorCode::kNotFound) return moved;  // a pending one has none
    return OkStatus();
  });
}

}  // namespace snapvol
