// QEMU disks (issue 19, item 3): a disk of a running VM or qemu-storage-daemon, reached through
// its QMP socket and named by its block node, registered as a volume whose path is
// "qemu:NODE@QMP-SOCKET" (QemuDisk below is the one place that spells it).
//
// The cut is QEMU's image fleecing. Over QMP, per snapshot: a temporary qcow2 overlay in
// <scratch>/ (0700 dir, 0600 file) backed by NODE; one transaction (one for all the disks of
// one QEMU cut together, e.g. an instance's: one instant for all of them) that starts a
// `blockdev-backup sync=none` NODE → overlay (QEMU copies a block into the overlay before the
// guest overwrites it, so the overlay reads as NODE stood at the cut) and turns the dirty
// bitmaps over (below); the overlay exported read-only over NBD (on the NBD server QEMU already
// runs, when the volume names its socket, else on one started on <scratch>/<snap>.nbd and
// stopped afterwards; a path too long for a unix socket is reached through a symlink in a 0700
// dir /tmp/snapvol-nbd-*), read with libnbd. Whatever was set up is torn down when the snapshot
// ends, also when it fails, and also what a snapvol that died mid-snapshot left behind.
//
// Changed blocks: a persistent dirty bitmap on NODE named "snapvol.<volume>.<snapshot>": it
// records the writes since that snapshot's cut. It is the volume's changed-block generation,
// as managed volumes' CBT generation is: the next snapshot trusts it only when its snapshot is
// the parent, it is persistent and it has recorded all along; then the transaction disables it
// (frozen for the export, read through the NBD meta context qemu:dirty-bitmap:NAME) and adds
// the next one. Anything else (lost, another generation, disabled by a cut that never ended)
// → a full read, said in the aws:snapvol:changed-blocks tag. A completed snapshot removes the
// older bitmaps; a failed one merges its new bitmap back into the parent's and re-enables it,
// so the next snapshot stays incremental. QEMU keeps persistent bitmaps in the qcow2 across a
// clean stop, so a restarted VM stays incremental.
// Thread-safety: Cut and the on_done callbacks may be called from many threads.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "engine/registered_sources.h"

namespace snapvol {

struct QemuDisk {
  std::string node, qmp_socket;
  std::string nbd_socket;  // the NBD server QEMU already runs (empty: snapvol starts one)
  // "qemu:NODE@QMP[|nbd=NBD]". InvalidArgument for a node name QEMU would refuse or a relative
  // socket path.
  static Result<QemuDisk> Make(std::string node, std::string qmp_socket, std::string nbd_socket);
  std::string Path() const;
  // nullopt when path is not a QEMU disk's.
  static std::optional<QemuDisk> Parse(const std::string& path);
};

// Where the overlays and NBD sockets of QEMU disks' snapshots go: <data_dir>/qemu-fleece.
inline std::string QemuScratchDir(const std::string& data_dir) { return data_dir + "/qemu-fleece"; }

// The bitmap that records volume_id's writes since snapshot_id's cut.
std::string QemuBitmapName(const std::string& volume_id, const std::string& snapshot_id);

// Removes every dirty bitmap snapvol keeps for volume_id on the disk's node (its volume is
// deleted: nothing reads them again, and QEMU would go on recording writes into them). Other
// bitmaps are not touched. IoError naming what was left: QEMU unreachable, a bitmap in use.
Status RemoveQemuBitmaps(const QemuDisk& disk, const std::string& volume_id,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));

// The size of the disk's node, asked over QMP (for registration). NotFound: no such node.
Result<uint64_t> QemuDiskSize(const QemuDisk& disk, std::chrono::milliseconds timeout = std::chrono::seconds(30));

class QemuCutDriver : public CutDriver {
 public:
  // scratch_dir: where overlays and NBD sockets go (in the data dir; QEMU must be able to
  // reach it). timeout bounds every QMP answer.
  QemuCutDriver(uint32_t block_size, std::string scratch_dir,
                std::chrono::milliseconds timeout = std::chrono::seconds(30))
      : block_size_(block_size), scratch_dir_(std::move(scratch_dir)), timeout_(timeout) {}
  Result<std::optional<PreparedSource>> Cut(const VolumeRecord& volume, const std::string& snapshot_id,
                                            const std::string& parent_id) override;
  // The disks of one QEMU (one QMP socket) are cut in one transaction: one instant for all of
  // them, as a crash would leave them; disks of different QEMUs one QEMU after the other.
  Result<std::vector<std::optional<PreparedSource>>> CutAll(const std::vector<CutRequest>& cuts) override;

 private:
  // Cuts the disks of one QEMU (all with the same QMP socket) at one instant; all or nothing.
  Result<std::vector<PreparedSource>> CutTogether(const std::vector<std::pair<QemuDisk, const CutRequest*>>& group);

  uint32_t block_size_;
  std::string scratch_dir_;
  std::chrono::milliseconds timeout_;
};

}  // namespace snapvol
