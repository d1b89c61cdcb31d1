// The one way a snapshot is deleted: EC2's DeleteSnapshot, a lifecycle policy's retention and
// `snapvol snapshot delete` all call DeleteSnapshot here, so every rule applies to each of
// them alike:
//  - a snapshot still being taken is refused (its writer would publish a root nobody lists);
//  - a snapshot that a restored volume is still loading from is refused, and a lock in force
//    (LockSnapshot) refuses it too: both are checked by the catalog inside the transaction
//    that removes the row, so a CreateVolume or LockSnapshot cannot slip in between;
//  - the store's manifest root is moved to deleted/ inside that transaction (kept there until
//    GC no longer needs it as the parent of a running snapshot), so a failure leaves the row;
//  - the Recycle Bin: when a retention rule of the snapshot's account in force now (or the
//    daemon's default rule) keeps a completed snapshot, its row moves to the bin and its root to
//    bin/ instead, in the same transaction and after the same checks (engine/recycle_bin.h).
// Every refusal is kConflict with a message naming the snapshot and the reason; an unknown id
// is kNotFound. Thread-safety: as the Catalog and Repository it is given.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "catalog/catalog.h"
#include "core/status.h"
#include "engine/recycle_bin.h"
#include "store/repository.h"

namespace snapvol {

struct SnapshotDeletion {
  Catalog* catalog = nullptr;
  Repository* repo = nullptr;
  // Whether a pending snapshot may still be written. Unset: every pending one is (snapvold,
  // whose own jobs write them and which settles the others when it starts). The CLI passes
  // "its runner's process is alive", so a pending row left by a killed process can go.
  std::function<bool(const SnapshotRecord&)> still_being_taken;
  // The daemon's default Recycle Bin rule (none by default; the accounts' rules always apply).
  RecycleBinSettings recycle_bin = {};
  // Called inside the transaction that removes the row, before the store's root is moved
  // (optional): an error from it is returned and nothing changes. A lifecycle policy's
  // retention passes its cluster lease check, so a host that lost the lease deletes nothing.
  std::function<Status()> fence;
};

// binned, when not null, says whether the snapshot went to the Recycle Bin.
Status DeleteSnapshot(const SnapshotDeletion& with, const std::string& snapshot_id, int64_t now_ms,
                      bool* binned = nullptr);

}  // namespace snapvol
