// A BlockSource read over NBD with libnbd: QEMU's fleecing export of a disk (engine/
// qemu_cut_driver.h), which reads as the disk stood at the cut. It can also read a dirty bitmap
// QEMU exports beside the data (the NBD meta context "qemu:dirty-bitmap:NAME") as the blocks
// that may have changed.
// Every request has a deadline: a watchdog thread ends the connection when requests are in
// flight and none has been answered for answer_timeout (a QEMU that hangs after the cut), so
// the read fails with a clear error instead of holding the snapshot forever.
// Thread-safety: ReadAt may be called from many threads (libnbd serialises the handle's
// commands), and Close while they run (it waits for them); DirtyBlocks from one.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "volume/block_source.h"

struct nbd_handle;

namespace snapvol {

class NbdExportSource : public BlockSource {
 public:
  // Connects to export_name on the unix socket. dirty_bitmap (empty: none) asks the server for
  // the meta context qemu:dirty-bitmap:<dirty_bitmap>; NotFound when it does not offer it.
  static Result<std::unique_ptr<NbdExportSource>> Open(const std::string& socket_path, const std::string& export_name,
                                                       const std::string& dirty_bitmap, std::string describe,
                                                       std::chrono::milliseconds answer_timeout = std::chrono::seconds(60));
  ~NbdExportSource() override;
  NbdExportSource(const NbdExportSource&) = delete;
  NbdExportSource& operator=(const NbdExportSource&) = delete;

  uint64_t size() const override { return size_; }
  Status ReadAt(uint64_t offset, std::span<uint8_t> out) override;
  bool point_in_time() const override { return true; }
  std::string Describe() const override { return describe_; }

  // One byte per block_size block of the export: 1 where the bitmap marks any byte of the
  // block dirty. REQUIRES Open with a dirty_bitmap.
  Result<std::vector<uint8_t>> DirtyBlocks(uint32_t block_size);
  // Disconnects (reads fail afterwards). Called before QEMU deletes the export.
  void Close();

 private:
  NbdExportSource(nbd_handle* h, uint64_t size, std::string context, std::string describe,
                  std::chrono::milliseconds answer_timeout)
      : h_(h), size_(size), context_(std::move(context)), describe_(std::move(describe)),
        answer_timeout_(answer_timeout) {}
  // Requests in flight (Begin/End around each) and the watchdog that ends a connection whose
  // requests go unanswered.
  void Begin();
  void End();
  void Watch(int fd);
  std::unexpected<Error> Failed(const std::string& what) const;

  std::shared_mutex mu_;  // reads hold it shared, Close exclusively
  nbd_handle* h_;         // guarded by mu_ (null once closed)
  uint64_t size_;
  std::string context_;  // the meta context of the bitmap; empty: none
  std::string describe_;
  const std::chrono::milliseconds answer_timeout_;
  std::mutex watch_mu_;
  std::condition_variable watch_cv_;
  int in_flight_ = 0;                                   // guarded by watch_mu_
  std::chrono::steady_clock::time_point last_answer_;  // guarded by watch_mu_
  bool stop_watch_ = false;                             // guarded by watch_mu_
  std::atomic<bool> timed_out_{false};
  std::thread watchdog_;
};

}  // namespace snapvol
