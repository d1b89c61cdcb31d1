// Background restores of snapshots into new volumes (see volume_restores.h).
#include "managed/volume_restores.h"

#include <set>
#include <string>

#include "engine/snapshot_engine.h"

namespace snapvol {

void VolumeRestores::Start(const std::string& volume_id, const std::string& snapshot_id,
                           std::shared_ptr<BlockTarget> target) {
  std::lock_guard lock(mu_);
  threads_.emplace_back([this, volume_id, snapshot_id, target] {
    SnapshotEngine engine(repo_, pool_);
    auto done = engine.Restore(snapshot_id, target.get(), nullptr, &stopping_);
    if (done) {
      (void)catalog_->SetVolumeState(volume_id, "available");
    } else {
      std::string why = stopping_ ? "the service stopped during the restore" : done.error().message();
      (void)catalog_->SetVolumeState(volume_id, "error", "restore from " + snapshot_id + " failed: " + why);
    }
  });
}

void VolumeRestores::Stop() {
  stopping_ = true;
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
}

void VolumeRestores::SettleInterrupted() {
  auto vols = catalog_->ListVolumes(std::nullopt);
  if (!vols) return;
  // Not this host's to settle: a volume another host makes, and a creation still queued (its
  // host's claimer makes it, this one's included; docs/multi-host.md part 3).
  auto queued = catalog_->ListVolumeCreations();
  if (!queued) return;
  std::set<std::string> waiting;
  for (const auto& q : *queued) waiting.insert(q.volume_id);
  for (const auto& v : *vols)
    if (v.state == "creating" && catalog_->HostElsewhere(v.host_id).empty() && !waiting.contains(v.volume_id))
      (void)catalog_->SetVolumeState(v.volume_id, "error", "interrupted: the service stopped during the restore");
}

}  // namespace snapvol
