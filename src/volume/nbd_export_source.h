// A BlockSource read over NBD with libnbd: QEMU's fleecing export of a disk (engine/
// qemu_cut_driver.h), which reads as the disk stood at the cut. It can also read a dirty bitmap
// QEMU exports beside the data (the NBD meta context "qemu:dirty-bitmap:NAME") as the blocks
// that may have changed.
// Thread-safety: ReadAt may be called from many threads (libnbd serialises the handle's
// commands), and Close while they run (it waits for them); DirtyBlocks from one.
#pragma once

#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "volume/block_source.h"

struct nbd_handle;

namespace snapvol {

class NbdExportSource : public BlockSource {
 public:
  // Connects to export_name on the unix socket. dirty_bitmap (empty: none) asks the server for
  // the meta context qemu:dirty-bitmap:<dirty_bitmap>; NotFound when it does not offer it.
  static Result<std::unique_ptr<NbdExportSource>> Open(const std::string& socket_path, const std::string& export_name,
                                                       const std::string& dirty_bitmap, std::string describe);
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
  NbdExportSource(nbd_handle* h, uint64_t size, std::string context, std::string describe)
      : h_(h), size_(size), context_(std::move(context)), describe_(std::move(describe)) {}
  std::shared_mutex mu_;  // reads hold it shared, Close exclusively
  nbd_handle* h_;         // guarded by mu_ (null once closed)
  uint64_t size_;
  std::string context_;  // the meta context of the bitmap; empty: none
  std::string describe_;
};

}  // namespace snapvol
