// Which blocks an in-place rollback of a MANAGED volume must compare. A managed volume's
// changed-block tracking (CBT) says which blocks were written since its latest snapshot cut
// (the map's base), not since the rollback's target. So, with a trusted map whose base is a
// completed snapshot of this volume:
//   blocks to compare = (blocks whose ids differ between the target's and the base's block
//                        maps, found on their index pages) ∪ (blocks written since the base)
// and every other block equals the target's already (the base's content is the volume at its
// cut; nothing else changed since). Without a usable map (untrusted after an unclean stop, no
// base, a base that is not a completed snapshot of this volume, maps of other block sizes),
// the plan says why and every block is compared, as for a registered volume.
// Thread-safety: a free function; Repository and Catalog are safe from many threads.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "store/repository.h"

namespace snapvol {

// A managed volume's CBT map as it is now (managed/managed_volume.h ManagedVolume::Tracking).
struct VolumeTracking {
  std::string base;               // the snapshot the map is relative to
  std::vector<uint8_t> changed;   // one byte per block of the volume: written since base
};

struct RollbackPlan {
  // Empty: compare every block. Else a block for which it is false equals the target's.
  std::function<bool(uint64_t block)> maybe_changed;
  uint64_t blocks_to_compare = 0;  // with maybe_changed: how many it lets through
  std::string note;                // said in the task: what was used, or why not
};

RollbackPlan PlanManagedRollback(Repository* repo, Catalog* catalog, const VolumeRecord& volume,
                                 const std::string& target_snapshot_id, const std::optional<VolumeTracking>& tracking);

}  // namespace snapvol
