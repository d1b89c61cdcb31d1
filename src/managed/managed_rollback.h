// In-place rollback of a managed volume (engine/rollback_tasks.h ManagedRollbackHooks): the
// volume is rewritten through its one ManagedVolume, so its changed-block tracking counts
// the rollback's writes (the next snapshot is incremental from the last cut as before) and a
// snapshot still reading it keeps its point-in-time view; its CBT map, handed to the plan
// (engine/rollback_plan.h), says which blocks need comparing. Ending and fencing NBD
// connections is the daemon's (daemon/managed_roots.h).
// Thread-safety: the functions returned may be called from many threads; VolumeRegistry is safe.
#pragma once

#include <memory>

#include "engine/rollback_tasks.h"
#include "managed/managed_volume.h"

namespace snapvol {

// A ManagedVolume as a RewritableVolume.
class ManagedRewritable : public RewritableVolume {
 public:
  explicit ManagedRewritable(std::shared_ptr<ManagedVolume> volume, std::string name)
      : volume_(std::move(volume)), name_(std::move(name)) {}
  uint64_t size() const override { return volume_->size(); }
  Status ReadAt(uint64_t offset, std::span<uint8_t> out) override { return volume_->Read(offset, out); }
  Result<uint64_t> NextData(uint64_t offset) override { return volume_->NextData(offset); }
  Result<uint64_t> NextHole(uint64_t offset) override { return volume_->NextHole(offset); }
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override { return volume_->Write(offset, data, false); }
  Status Zero(uint64_t offset, uint64_t len) override { return volume_->WriteZeroes(offset, len, true); }
  Status Sync() override { return volume_->Flush(); }
  std::string Describe() const override { return name_; }

 private:
  std::shared_ptr<ManagedVolume> volume_;
  std::string name_;
};

// open and tracking over the registry's volumes; end_connections and admit are left empty.
ManagedRollbackHooks MakeManagedRollbackHooks(VolumeRegistry* volumes);

}  // namespace snapvol
