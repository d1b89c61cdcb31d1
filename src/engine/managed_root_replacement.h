// ManagedRootReplacement: replacing an instance's MANAGED root volume from a snapshot, EC2's
// way (CreateReplaceRootVolumeTask): a new volume restored lazily from the snapshot (made by
// the caller before the task is queued, task.replacement_volume_id) takes the old one's place
// at the instance's root device at one instant; the old volume is kept (detached, as it was)
// or deleted when the task says DeleteReplacedRootVolume.
//
// Order (the crash rules follow from it):
//   1. in-progress recorded; 2. the old volume's NBD connections are ended (by volume id and by
//   `<instance>:<device>`) and new ones kept out; 3. ONE catalog transaction detaches the old
//   volume and attaches the new one as the root (Catalog::SwapRootVolume); 4. the old volume
//   is deleted if asked; 5. succeeded. A failure before 3: `failed`, the new volume removed,
//   the old one untouched. The instance never has two roots.
// At start (Settle), a task a crash left in-progress is decided from the catalog alone: the
// new volume at the root device → succeeded (deleting the old one if asked); the old one
// still there → failed (the new one removed); neither → failed-detached with the reason.
// Thread-safety: Run and Settle are called from RollbackTasks' one runner thread; the
// functions given are called from it.
#pragma once

#include <functional>
#include <string>

#include "catalog/catalog.h"
#include "core/clock.h"

namespace snapvol {

struct ManagedRootHooks {
  // Ends every NBD connection to the volume (opened by its id or by its instance's device)
  // and refuses new ones until Admit(volume_id). An error: some did not end.
  std::function<Status(const std::string& volume_id)> end_connections;
  std::function<void(const std::string& volume_id)> admit;
  // Deletes a detached volume through the one deletion path (managed/volume_deletion.h): its
  // connections, its row, its files. by_task: the task deleting the volume it replaced (its
  // own unfinished row does not refuse); empty for the task's own replacement after a failure.
  std::function<Status(const std::string& volume_id, const std::string& by_task)> delete_volume;
};

class ManagedRootReplacement {
 public:
  ManagedRootReplacement(Catalog* catalog, ManagedRootHooks hooks, Clock* clock = Clock::Real());

  // Whether `snap` belongs to the lineage of `root`: a snapshot of root itself, or of a volume
  // root (or one of its ancestors) was restored from (volume.snapshot_id → snapshot.volume_id).
  static Result<bool> InLineage(Catalog* catalog, const VolumeRecord& root, const SnapshotRecord& snap);

  // Runs a pending task to its end; an in-progress one (left by a crash) is settled instead.
  void Run(ReplaceRootVolumeTaskRecord task);
  // Decides an in-progress task from the catalog (see above).
  void Settle(ReplaceRootVolumeTaskRecord task);

 private:
  // Ends the task in failure; the new volume is removed when remove_new.
  void Fail(ReplaceRootVolumeTaskRecord& t, const std::string& why, bool remove_new);
  // The new volume is the root: deletes the old one if asked, then succeeded.
  void Succeed(ReplaceRootVolumeTaskRecord& t);

  Catalog* catalog_;
  ManagedRootHooks hooks_;
  Clock* clock_;
};

}  // namespace snapvol
