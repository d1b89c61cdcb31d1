#include "managed/managed_rollback.h"

namespace snapvol {

ManagedRollbackHooks MakeManagedRollbackHooks(VolumeRegistry* volumes) {
  ManagedRollbackHooks h;
  h.open = [volumes](const VolumeRecord& v) -> Result<std::unique_ptr<RewritableVolume>> {
    ASSIGN_OR_RETURN(auto mv, volumes->Get(v.volume_id, v.path));
    return std::unique_ptr<RewritableVolume>(
        std::make_unique<ManagedRewritable>(std::move(mv), "managed volume " + v.volume_id));
  };
  h.tracking = [volumes](const VolumeRecord& v) -> std::optional<VolumeTracking> {
    auto mv = volumes->Get(v.volume_id, v.path);
    if (!mv) return std::nullopt;
    auto t = (*mv)->ChangedBlocks();
    if (!t) return std::nullopt;
    return VolumeTracking{std::move(t->base), std::move(t->changed)};
  };
  return h;
}

}  // namespace snapvol
