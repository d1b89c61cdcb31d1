// Point-in-time cuts and changed blocks for registered volumes (files and block devices
// snapvol does not own), chosen by what the path is and what the host offers. A CutDriver
// knows one kind of volume; RegisteredSourceProvider asks its drivers in order and reads the
// volume while it runs when none can cut it.
//
// Image files on reflink file systems (ReflinkCutDriver): the cut is a FICLONE of the image
// into <image dir>/.snapvol-clones/ (0700: the clones are whole copies of the disk), which
// must be on the image's file system because clones do not cross file systems. The clone of
// the last completed snapshot stays as the base: the next cut compares its extent map with
// the base's (volume/extent_map.h) and reads only the blocks that no longer share extents.
// A clone is named after its volume and snapshot (<volume-id>.<snapshot-id>), so a base is
// trusted only for the parent snapshot it was read for; any other → a full read, said in the
// snapshot's aws:snapvol:changed-blocks tag. When a snapshot completes, the other clones of its
// volume are removed (except those of snapshots still running); when it fails, its own clone
// is, and the old base stays.
//
// Block devices (DeviceCutDriver): an exclusive read-only open, else a shared one, "not point
// in time". An LVM-thin driver would be one more CutDriver, asked before DeviceCutDriver: a
// thin snapshot as the cut, `thin_delta` against the parent's thin snapshot (kept as the base
// the way clones are) as changed blocks.
// Thread-safety: Prepare and the on_done callbacks may be called from many threads.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "engine/snapshot_jobs.h"

namespace snapvol {

// Where a registered image's clones live, one place for their names.
std::string CloneDir(const std::string& image_path);
std::string ClonePath(const std::string& image_path, const std::string& volume_id, const std::string& snapshot_id);
// The snapshot ids of volume_id's clones next to image_path (sorted; none when the dir is absent).
std::vector<std::string> ListClones(const std::string& image_path, const std::string& volume_id);
// Removes every clone of the volume: call when it is deleted or deregistered.
Status RemoveVolumeClones(const std::string& image_path, const std::string& volume_id);

// What a volume's base clone costs: the bytes its extents hold that the image no longer shares.
// (Right after older clones are removed, XFS may still count their extents as sharing until it
// has freed them in the background: the figure can lag by a few seconds, never overstate.)
struct BaseCloneSpace {
  std::string snapshot_id, path;
  uint64_t size = 0, exclusive_bytes = 0;
};
// nullopt when the volume has no clone (not a reflink volume, or no snapshot completed yet).
Result<std::optional<BaseCloneSpace>> BaseCloneOf(const std::string& image_path, const std::string& volume_id);

class CutDriver {
 public:
  virtual ~CutDriver() = default;
  // The cut of volume for snapshot_id (parent_id: the snapshot it will be incremental to), or
  // nullopt when this driver is not for this kind of volume. Errors fail the snapshot.
  virtual Result<std::optional<PreparedSource>> Cut(const VolumeRecord& volume, const std::string& snapshot_id,
                                                    const std::string& parent_id) = 0;
  // The cuts of several volumes (one call's, e.g. an instance's disks), in their order; nullopt
  // for a volume not of this driver's kind. All or nothing: on error the cuts made are released.
  // The default cuts them one after the other; a driver that can cut several at one instant
  // does it here.
  virtual Result<std::vector<std::optional<PreparedSource>>> CutAll(const std::vector<CutRequest>& cuts);
};

class ReflinkCutDriver : public CutDriver {
 public:
  explicit ReflinkCutDriver(uint32_t block_size) : block_size_(block_size) {}
  Result<std::optional<PreparedSource>> Cut(const VolumeRecord& volume, const std::string& snapshot_id,
                                            const std::string& parent_id) override;

 private:
  void Done(const VolumeRecord& volume, const std::string& snapshot_id, bool completed);
  uint32_t block_size_;
  std::mutex mu_;
  std::set<std::string> running_;  // clone paths of snapshots not yet ended; guarded by mu_
};

class DeviceCutDriver : public CutDriver {
 public:
  Result<std::optional<PreparedSource>> Cut(const VolumeRecord& volume, const std::string& snapshot_id,
                                            const std::string& parent_id) override;
};

class RegisteredSourceProvider : public SourceProvider {
 public:
  // The default drivers: QEMU fleecing for QEMU disks (overlays and NBD sockets in
  // scratch_dir, e.g. <data dir>/qemu-fleece; empty: QEMU disks fail to snapshot), reflink
  // clones for files, exclusive opens for block devices.
  explicit RegisteredSourceProvider(uint32_t block_size, std::string scratch_dir = "");
  explicit RegisteredSourceProvider(std::vector<std::unique_ptr<CutDriver>> drivers) : drivers_(std::move(drivers)) {}
  // Clones are instant: there is nothing to hold. (Freeze hooks, issue 19 item 4, go here.)
  Result<std::shared_ptr<void>> HoldWrites(const std::vector<VolumeRecord>& volumes) override;
  // Never nullopt for a registered volume: the volume read while it runs, labelled so, when
  // no driver cuts it. Managed volumes are not its business (nullopt).
  Result<std::optional<PreparedSource>> Prepare(const VolumeRecord& volume, const std::string& snapshot_id,
                                                const std::string& parent_id) override;
  // Each driver in turn gets the volumes no earlier one took, all at once (CutAll): disks of one
  // QEMU are cut in one transaction. Volumes of different kinds are cut one after the other.
  Result<std::vector<std::optional<PreparedSource>>> PrepareAll(const std::vector<CutRequest>& cuts) override;

 private:
  std::vector<std::unique_ptr<CutDriver>> drivers_;
};

// Managed volumes to one provider, registered ones to the other (neither owned).
class SplitSourceProvider : public SourceProvider {
 public:
  SplitSourceProvider(SourceProvider* managed, SourceProvider* registered) : managed_(managed), registered_(registered) {}
  Result<std::shared_ptr<void>> HoldWrites(const std::vector<VolumeRecord>& volumes) override;
  Result<std::optional<PreparedSource>> Prepare(const VolumeRecord& volume, const std::string& snapshot_id,
                                                const std::string& parent_id) override;
  // The registered volumes' PrepareAll while the managed ones' writes are held, then the managed
  // ones' cuts under that hold.
  Result<std::vector<std::optional<PreparedSource>>> PrepareAll(const std::vector<CutRequest>& cuts) override;

 private:
  SourceProvider* managed_;
  SourceProvider* registered_;
};

}  // namespace snapvol
