// VolumeRestores: restores of snapshots into new volume files that run after the API request
// that started them is answered. A volume is `creating` until its data is in, then
// `available`, or `error` with the reason (a service that stops cancels the restores it runs;
// one that crashed finds its volumes still `creating` and settles them as `error`).
// Thread-safety: Start may be called from many threads; Stop once, from the owner.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "core/thread_pool.h"
#include "store/repository.h"
#include "volume/block_source.h"

namespace snapvol {

class VolumeRestores {
 public:
  VolumeRestores(Catalog* catalog, Repository* repo, ThreadPool* pool)
      : catalog_(catalog), repo_(repo), pool_(pool) {}
  // Cancels and joins the restores still running (their volumes end `error`).
  ~VolumeRestores() { Stop(); }
  VolumeRestores(const VolumeRestores&) = delete;
  VolumeRestores& operator=(const VolumeRestores&) = delete;

  // Writes snapshot_id into target on a thread of its own, then sets volume_id's state.
  void Start(const std::string& volume_id, const std::string& snapshot_id, std::shared_ptr<BlockTarget> target);
  void Stop();
  // This host's volumes left `creating` by a service that stopped or crashed never got their
  // data: they become `error` with a message that says so. Another host's, and creations still
  // queued (Catalog::ListVolumeCreations), are left to their host.
  void SettleInterrupted();

 private:
  Catalog* catalog_;
  Repository* repo_;
  ThreadPool* pool_;
  std::mutex mu_;
  std::vector<std::thread> threads_;  // guarded by mu_
  std::atomic<bool> stopping_{false};
};

}  // namespace snapvol
