// The one way a volume is deleted: EC2's DeleteVolume, `snapvol volume delete` and a replaced
// root volume (CreateReplaceRootVolumeTask with DeleteReplacedRootVolume) all call
// DeleteVolume here (the last with by_task), so every rule applies to each of them alike:
//  - an attached volume is refused (EC2 answers VolumeInUse), and so are a volume still being
//    restored (`creating`) and one that a replace-root/rollback task is pending or running on;
//  - its NBD connections are ended first (end_connections), so no writer outlives the row;
//  - the row and its tags are removed by the catalog, which checks the three rules above again
//    inside that transaction, so an AttachVolume (or a new rollback) cannot slip in between;
//  - snapvol's own files go with it: those of a managed volume or of one restored from a
//    snapshot, and only when its path is the image file snapvol named for it (VolumeImagePath)
//    inside volume_dir. A registered volume (a file or block device the user owns) is never
//    touched, whatever its path: only its catalog entry goes;
//  - what snapvol keeps beside a registered disk is removed: an image's base clones
//    (engine/registered_sources.h, snapvol's own copies next to it), a QEMU disk's dirty bitmaps
//    (engine/qemu_cut_driver.h); the disk is not touched;
//  - the volume's snapshots stay (a snapshot outlives its volume, as in EC2);
//  - a volume another host holds (Catalog::HostElsewhere; docs/multi-host.md part 3), managed
//    or registered, is never deleted here: its files, and what snapvol keeps beside a
//    registered disk, are on that host, and removing the row here would leave them there for
//    ever (or touch a file of this host with the same path). With route set (snapvold), the
//    rules above are checked and the deletion is queued for that host
//    (Catalog::QueueVolumeDeletion: the row shows `deleting`), refused (kHostNotUp) while that
//    host is not up, so a dead host's volume is never left half-deleted; that host's claimer
//    runs RunClaimedVolumeDeletion. Without route (the CLI) it is refused (kOtherHost).
// Every refusal is kConflict with a message naming the volume and the reason, and sets
// *refusal when given; an unknown id is kNotFound. A failure to end connections is kConflict
// (kConnections) and changes nothing.
// Thread-safety: as the Catalog and callbacks it is given.
#pragma once

#include <functional>
#include <string>

#include "catalog/catalog.h"
#include "core/clock.h"
#include "core/status.h"

namespace snapvol {

struct VolumeDeletion {
  Catalog* catalog = nullptr;
  // Where snapvol creates volume images (snapvold --restore-dir). Empty: any directory, so
  // long as the file name is the one snapvol gave the volume (the CLI, which does not know
  // the daemon's setting).
  std::string volume_dir;
  // Ends the volume's open NBD connections (snapvold's NBD server); unset where no server runs
  // in this process (the CLI). A failure refuses the deletion.
  std::function<Status(const std::string& volume_id)> end_connections;
  // Called after the row is gone, before the files are removed (snapvold forgets the volume's
  // in-memory state). Optional.
  std::function<void(const std::string& volume_id)> on_deleted;
  // The replace-root task deleting the volume it replaced (DeleteReplacedRootVolume): its own
  // unfinished row does not refuse. Empty otherwise.
  std::string by_task;
  // A volume another host holds is queued for that host (true: snapvold, whose claimer on
  // that host deletes it) instead of refused (false: the CLI). That host must be up at
  // clock's now, judged with host_timeout_ms (snapvold's --host-timeout-seconds).
  bool route = false;
  int64_t host_timeout_ms = kDefaultHostTimeoutMs;
  Clock* clock = Clock::Real();
};

// Why DeleteVolume refused (kConflict).
enum class VolumeDeletionRefusal { kNone, kAttached, kCreating, kRollingBack, kConnections, kOtherHost, kHostNotUp };

// What DeleteVolume did, for the caller's message.
struct VolumeDeletionResult {
  VolumeRecord volume;         // as it was
  bool files_removed = false;  // snapvol's own image (and .cbt/.load/.cow-*) were removed
  // What snapvol kept beside a registered disk (an image's base clones, a QEMU disk's dirty
  // bitmaps) and could not all remove, and why; empty when all went (or there was none). The
  // deletion itself has happened either way.
  std::string left_behind;
  // The host the deletion was queued for (route): the row shows `deleting` until that host
  // has deleted it. Empty when it was deleted here.
  std::string queued_for;
};

// Deletes volume_id by the rules above. result and refusal, when not null, say what happened.
// For DeleteReplacedRootVolume: with by_task set to the replace-root task doing it (its own
// in-progress row does not refuse; any other unfinished task of the volume does), once the
// old volume is detached.
Status DeleteVolume(const VolumeDeletion& with, const std::string& volume_id, VolumeDeletionResult* result = nullptr,
                    VolumeDeletionRefusal* refusal = nullptr);

// Runs a deletion this host's claimer took (Catalog::ClaimVolumeDeletion) by DeleteVolume
// above, with `with` (route is ignored: the volume is this host's). On failure the volume is
// marked `error` with the reason (its state_message), so nothing stays `deleting` for ever,
// and the error is returned.
Status RunClaimedVolumeDeletion(const VolumeDeletion& with, const VolumeRecord& volume,
                                VolumeDeletionResult* result = nullptr);

// True when path is the image snapvol made for v (managed or restored, path ==
// VolumeImagePath(dir, id) with dir == volume_dir when that is given): the files DeleteVolume
// removes. False for every registered volume.
bool OwnsVolumeFiles(const VolumeRecord& v, const std::string& volume_dir);

}  // namespace snapvol
