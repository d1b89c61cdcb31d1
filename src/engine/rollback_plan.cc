#include "engine/rollback_plan.h"

#include <memory>

#include "store/block_map_diff.h"

namespace snapvol {

RollbackPlan PlanManagedRollback(Repository* repo, Catalog* catalog, const VolumeRecord& volume,
                                 const std::string& target, const std::optional<VolumeTracking>& tracking) {
  RollbackPlan plan;
  auto fallback = [&](const std::string& why) {
    plan.maybe_changed = nullptr;
    plan.note = "changed-block tracking not usable (" + why + "): every block compared";
    return plan;
  };
  if (!tracking) return fallback("the volume's map is not trusted: an unclean stop, or no snapshot since it was opened");
  if (tracking->base.empty()) return fallback("the volume's map is relative to no snapshot");
  auto base = catalog->GetSnapshot(tracking->base);
  if (!base) return fallback("its base snapshot " + tracking->base + ": " + base.error().message());
  if (base->volume_id != volume.volume_id)
    return fallback("its base snapshot " + tracking->base + " is not a snapshot of " + volume.volume_id);
  if (base->state != SnapshotState::kCompleted)
    return fallback("its base snapshot " + tracking->base + " is not completed");
  auto target_meta = repo->GetManifest(target);
  if (!target_meta) return fallback("snapshot " + target + ": " + target_meta.error().message());
  auto base_meta = repo->GetManifest(tracking->base);
  if (!base_meta) return fallback("its base snapshot " + tracking->base + ": " + base_meta.error().message());
  if (target_meta->block_size != base_meta->block_size || tracking->changed.size() < target_meta->block_count ||
      base_meta->block_count != tracking->changed.size())
    return fallback("its map (" + std::to_string(tracking->changed.size()) + " blocks) does not match the blocks of " +
                    target + " and " + tracking->base);
  auto diff = DiffBlockMaps(repo, *target_meta, *base_meta);
  if (!diff) return fallback("comparing the block maps of " + target + " and " + tracking->base + ": " +
                             diff.error().message());
  // The union: blocks that differ between target and base, and blocks written since the base.
  auto blocks = std::make_shared<std::vector<uint8_t>>(std::move(diff->changed));
  blocks->resize(target_meta->block_count);
  for (uint64_t b = 0; b < blocks->size(); ++b) {
    (*blocks)[b] = (*blocks)[b] | tracking->changed[b];
    plan.blocks_to_compare += (*blocks)[b];
  }
  plan.maybe_changed = [blocks](uint64_t b) { return b >= blocks->size() || (*blocks)[b] != 0; };
  plan.note = "changed-block tracking since " + tracking->base + ": " + std::to_string(plan.blocks_to_compare) +
              " of " + std::to_string(blocks->size()) + " blocks compared";
  return plan;
}

}  // namespace snapvol
