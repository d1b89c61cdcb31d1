// The sources a registered volume (a file or block device snapvol does not own) is read
// through, and what each guarantees, said plainly: the label goes into the snapshot's
// aws:snapvol:consistency tag (core/system_tags.h) so nobody mistakes a copy read while the
// volume ran for a point-in-time one.
//   - ClonedSource: a reflink clone of an image file (volume/extent_map.h), taken at the cut
//     and never written: point in time.
//   - a QEMU disk's fleecing export (engine/qemu_cut_driver.h): point in time.
//   - a block device opened exclusively (O_EXCL): nothing mounts it or holds it exclusively
//     while the snapshot reads it: point in time as long as no process writes through a plain
//     open (say so in the docs); a device in use is read shared: not point in time.
//   - anything else is read while it runs: crash-unsafe.
// Thread-safety: as BlockSource.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "volume/block_source.h"

namespace snapvol {

inline constexpr char kConsistencyReflink[] = "point-in-time (reflink)";
inline constexpr char kConsistencyExclusiveDevice[] = "point-in-time (block device held exclusively)";
inline constexpr char kConsistencyQemuFleecing[] = "point-in-time (QEMU fleecing)";
inline constexpr char kConsistencyManaged[] = "point-in-time (managed volume, copy on write)";
inline constexpr char kConsistencyReadWhileRunning[] = "crash-unsafe (read while running)";

// Forwards to another source and states its own guarantee: a clone read in place of the volume.
class ClonedSource : public BlockSource {
 public:
  ClonedSource(std::unique_ptr<BlockSource> clone, std::string volume_path)
      : clone_(std::move(clone)), volume_path_(std::move(volume_path)) {}
  uint64_t size() const override { return clone_->size(); }
  Status ReadAt(uint64_t offset, std::span<uint8_t> out) override { return clone_->ReadAt(offset, out); }
  Result<uint64_t> NextData(uint64_t offset) override { return clone_->NextData(offset); }
  Result<uint64_t> NextHole(uint64_t offset) override { return clone_->NextHole(offset); }
  bool point_in_time() const override { return true; }
  std::string Describe() const override { return volume_path_ + " (clone " + clone_->Describe() + ")"; }

 private:
  std::unique_ptr<BlockSource> clone_;
  std::string volume_path_;
};

// A block device held for as long as the source lives.
struct DeviceSource {
  std::unique_ptr<BlockSource> source;
  bool exclusive = false;  // opened O_EXCL: point in time (see above)
  std::string note;        // why not exclusive, when not
};

// Opens the block device at path read-only, exclusively when it can (EBUSY: mounted or held
// exclusively by another → opened shared, with a note). NotFound for a missing path,
// InvalidArgument when path is not a block device.
Result<DeviceSource> OpenDeviceSource(const std::string& path);

}  // namespace snapvol
