#include "managed/volume_deletion.h"

#include "engine/qemu_cut_driver.h"
#include "engine/registered_sources.h"
#include "managed/volume_files.h"

namespace snapvol {
namespace {

// The refusal a volume's row shows now, with its message (the catalog checks the same in the
// transaction that removes the row).
VolumeDeletionRefusal RefusalOf(Catalog* catalog, const VolumeRecord& v, const std::string& by_task,
                                std::string* why) {
  if (!v.instance_id.empty()) {
    *why = "volume " + v.volume_id + " is attached to " + v.instance_id;
    return VolumeDeletionRefusal::kAttached;
  }
  if (v.state == "creating") {
    *why = "volume " + v.volume_id + " is being restored (creating)";
    return VolumeDeletionRefusal::kCreating;
  }
  // A catalog that cannot list them now still refuses in the transaction, with its own message.
  auto tasks = catalog->ListUnfinishedReplaceRootVolumeTasks();
  if (tasks)
    for (const auto& t : *tasks)
      if (t.volume_id == v.volume_id && t.task_id != by_task) {
        *why = "volume " + v.volume_id + " is being rolled back by task " + t.task_id;
        return VolumeDeletionRefusal::kRollingBack;
      }
  return VolumeDeletionRefusal::kNone;
}

}  // namespace

bool OwnsVolumeFiles(const VolumeRecord& v, const std::string& volume_dir) {
  if (!v.managed && v.snapshot_id.empty()) return false;  // registered: the user's disk
  const auto slash = v.path.rfind('/');
  if (slash == std::string::npos) return false;
  const std::string dir = v.path.substr(0, slash);
  if (!volume_dir.empty() && dir != volume_dir) return false;
  return v.path == VolumeImagePath(dir, v.volume_id);
}

Status DeleteVolume(const VolumeDeletion& with, const std::string& volume_id, VolumeDeletionResult* result,
                    VolumeDeletionRefusal* refusal) {
  if (refusal) *refusal = VolumeDeletionRefusal::kNone;
  ASSIGN_OR_RETURN(VolumeRecord v, with.catalog->GetVolume(volume_id));
  auto refuse = [&](VolumeDeletionRefusal why, const Error& e) -> Status {
    if (refusal) *refusal = why;
    return std::unexpected(e);
  };
  // Its files are on its host: deleted there, never from here.
  const std::string there = with.catalog->HostElsewhere(v.host_id);
  if (!there.empty() && !with.route)
    return refuse(VolumeDeletionRefusal::kOtherHost,
                  Conflict("volume " + volume_id + " lives on host " + with.catalog->DescribeHost(there) +
                           "; delete it on that host, which holds its files (DeleteVolume sent to any host of the service "
                           "is done by that host)")
                      .error());
  // Checked before the connections are ended (an attached volume keeps its writers), then
  // again by the catalog in the transaction that removes (or queues) the row.
  std::string why;
  if (auto r = RefusalOf(with.catalog, v, with.by_task, &why); r != VolumeDeletionRefusal::kNone)
    return refuse(r, Conflict(why).error());
  if (!there.empty()) {
    // That host ends the connections and removes the row and its files when it claims this.
    if (auto st = with.catalog->QueueVolumeDeletion(volume_id, with.clock->NowMillis(), with.host_timeout_ms); !st) {
      if (st.error().code() != ErrorCode::kConflict) return st;
      // One of the rules above changed meanwhile, or else the host is not up.
      auto now = with.catalog->GetVolume(volume_id);
      VolumeDeletionRefusal r = now ? RefusalOf(with.catalog, *now, with.by_task, &why) : VolumeDeletionRefusal::kNone;
      return refuse(r == VolumeDeletionRefusal::kNone ? VolumeDeletionRefusal::kHostNotUp : r, st.error());
    }
    if (result) *result = VolumeDeletionResult{std::move(v), false, "", there};
    return OkStatus();
  }
  // A connection that outlived its DetachVolume would write into a deleted file.
  if (with.end_connections) {
    if (auto ended = with.end_connections(volume_id); !ended)
      return refuse(VolumeDeletionRefusal::kConnections,
                    Conflict("volume " + volume_id + " still has NBD connections: " + ended.error().message()).error());
  }
  if (auto st = with.catalog->DeleteVolume(volume_id, with.by_task); !st) {
    if (st.error().code() == ErrorCode::kConflict) {
      // Something changed since the check above (an AttachVolume, a rollback): say which.
      auto now = with.catalog->GetVolume(volume_id);
      return refuse(now ? RefusalOf(with.catalog, *now, with.by_task, &why) : VolumeDeletionRefusal::kNone, st.error());
    }
    return st;
  }
  if (with.on_deleted) with.on_deleted(volume_id);
  const bool own = OwnsVolumeFiles(v, with.volume_dir);
  if (own) RemoveVolumeFiles(v.path);
  // What snapvol keeps beside a registered disk is snapvol's, not the user's, and goes too: an
  // image's base clones (engine/registered_sources.h), a QEMU disk's dirty bitmaps (QEMU would
  // record into them for ever). The disk itself stays.
  std::string left_behind;
  if (!v.managed) {
    if (auto qemu = QemuDisk::Parse(v.path)) {
      if (auto st = RemoveQemuBitmaps(*qemu, v.volume_id); !st) left_behind = st.error().message();
    } else if (auto st = RemoveVolumeClones(v.path, v.volume_id); !st) {
      left_behind = "the base clones of " + v.volume_id + " next to " + v.path +
                    " were not all removed: " + st.error().message();
    }
  }
  if (result) *result = VolumeDeletionResult{std::move(v), own, std::move(left_behind), ""};
  return OkStatus();
}

Status RunClaimedVolumeDeletion(const VolumeDeletion& with, const VolumeRecord& volume, VolumeDeletionResult* result) {
  VolumeDeletion here = with;
  here.route = false;  // this host's volume; if it moved meanwhile, refused and marked below
  Status st = DeleteVolume(here, volume.volume_id, result);
  if (st || st.error().code() == ErrorCode::kNotFound) return st;  // not found: deleted meanwhile
  if (auto marked = with.catalog->SetVolumeState(volume.volume_id, "error",
                                                 "its host could not delete it: " + st.error().message());
      !marked && marked.error().code() != ErrorCode::kNotFound)
    return std::unexpected(Error(st.error().code(), st.error().message() + "; and marking it error failed: " +
                                                        marked.error().message()));
  return st;
}

}  // namespace snapvol
