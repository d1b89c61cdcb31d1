// Catalog: volumes (registered and managed), their state and attachment.
#include "catalog/catalog.h"

#include <algorithm>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog_db.h"
#include "catalog/catalog_postgres_notify.h"
#include "catalog/catalog_sql.h"
#include "core/file_util.h"
#include "core/ids.h"

namespace snapvol {
using catalog_internal::Backend;
using catalog_internal::Changes;
using catalog_internal::Statement;
using catalog_internal::UnifyNameAndTags;
using catalog_internal::Violation;

namespace {

// routed: a volume queued for another host (InsertRoutedVolume), whose path that host names
// when it makes the data; every other volume has its path from the start.
Status ValidateVolume(const VolumeRecord& v, bool routed = false) {
  if (!IsVolumeId(v.volume_id)) return InvalidArgument("'" + v.volume_id + "' is not a volume id");
  if (!IsAccountId(v.account_id)) {
    return InvalidArgument("volume " + v.volume_id + ": '" + v.account_id +
                           "' is not an account id");
  }
  if (v.path.empty() && !routed) return InvalidArgument("volume " + v.volume_id + ": path is empty");
  if (v.block_size == 0) return InvalidArgument("volume " + v.volume_id + ": block size is 0");
  if (v.volume_type != "gp2" && v.volume_type != "standard") {
    return InvalidArgument("volume " + v.volume_id + ": volume type '" + v.volume_type +
                           "' is not gp2 or standard");
  }
  return ValidateTagList(v.tags, "tags of " + v.volume_id);
}

constexpr char kVolumeSelect[] =
    "SELECT v.volume_id, v.account_id, v.name, v.path, v.size_bytes, v.block_size,"
    " v.created_ms, t.key, t.value, v.instance_id, v.device, v.boot, v.snapshot_id, v.state,"
    " v.state_message, v.managed, v.attach_ms, v.volume_type, coalesce(v.host_id, '')"
    " FROM volumes v LEFT JOIN tags t ON t.resource_id = v.volume_id";
constexpr char kVolumeOrder[] = " ORDER BY v.created_ms, v.volume_id, t.key";

Result<std::vector<VolumeRecord>> ReadVolumes(Statement& st) {
  std::vector<VolumeRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    std::string id = st.Text(0);
    if (out.empty() || out.back().volume_id != id) {
      VolumeRecord v;
      v.volume_id = std::move(id);
      v.account_id = st.Text(1);
      v.name = st.Text(2);
      v.path = st.Text(3);
      v.size_bytes = st.U64(4);
      v.block_size = static_cast<uint32_t>(st.Int(5));
      v.created_ms = st.Int(6);
      v.instance_id = st.Text(9);
      v.device = st.Text(10);
      v.boot = st.Int(11) != 0;
      v.snapshot_id = st.Text(12);
      v.state = st.Text(13);
      v.state_message = st.Text(14);
      v.managed = st.Int(15) != 0;
      v.volume_type = st.Text(17);
      v.attach_ms = st.Int(16);
      v.host_id = st.Text(18);
      out.push_back(std::move(v));
    }
    if (!st.IsNull(7)) out.back().tags.push_back(Tag{st.Text(7), st.Text(8)});
  }
  return out;
}

// A new volume as the catalog keeps it: its name and Name tag agree, and where it lives is the
// catalog's to say (SyncHostTags), never a copy of another volume's tags. One home for both
// InsertVolume and InsertRoutedVolume.
void NormalizeNewVolume(VolumeRecord& v) {
  UnifyNameAndTags(v.name, v.tags);
  std::erase_if(v.tags, [](const Tag& t) { return t.key == kHostTag || t.key == kNbdTag; });
}

}  // namespace

bool ReadsFromItsSnapshot(const VolumeRecord& v) {
  return !v.snapshot_id.empty() && (v.state == "creating" || PathExists(LoadMapPath(v.path)));
}

Status Catalog::InsertVolume(const VolumeRecord& given) {
  VolumeRecord v = given;
  NormalizeNewVolume(v);
  RETURN_IF_ERROR(ValidateVolume(v));
  std::lock_guard lock(mu_);
  if (v.host_id.empty()) v.host_id = local_host_;
  return InTransaction([&]() -> Status { return InsertVolumeLocked(v); });
}

Status Catalog::InsertRoutedVolume(const VolumeRecord& given) {
  VolumeRecord v = given;
  NormalizeNewVolume(v);
  if (v.host_id.empty()) return InvalidArgument("routed volume " + v.volume_id + " names no host to make it");
  if (v.state != "creating") return InvalidArgument("routed volume " + v.volume_id + " must be creating, not " + v.state);
  if (!v.path.empty()) return InvalidArgument("routed volume " + v.volume_id + ": its host names the path");
  RETURN_IF_ERROR(ValidateVolume(v, true));
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    RETURN_IF_ERROR(InsertVolumeLocked(v));
    return EnqueueVolumeCreationLocked(v.volume_id, v.host_id, v.created_ms);
  });
}

Status Catalog::InsertVolumeLocked(const VolumeRecord& v) {
  {
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_,
                                        "INSERT INTO volumes (volume_id, account_id, name, path,"
                                        " size_bytes, block_size, created_ms, instance_id,"
                                        " device, boot, snapshot_id, state, state_message, managed,"
                                        " attach_ms, volume_type, host_id)"
                                        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULLIF(?, ''))",
                                        "insert volume " + v.volume_id));
    st.Bind(v.volume_id).Bind(v.account_id).Bind(v.name).Bind(v.path).Bind(v.size_bytes);
    st.Bind(v.block_size).Bind(v.created_ms).Bind(v.instance_id).Bind(v.device).Bind(v.boot ? 1 : 0);
    st.Bind(v.snapshot_id).Bind(v.state.empty() ? std::string("available") : v.state).Bind(v.state_message);
    st.Bind(v.managed ? 1 : 0).Bind(v.attach_ms).Bind(v.volume_type).Bind(v.host_id);
    auto run = st.Run();
    if (!run && (st.violation() == Violation::kPrimaryKey || st.violation() == Violation::kUnique)) {
      return MakeError(ErrorCode::kAlreadyExists, "volume " + v.volume_id + " already exists");
    }
    if (!run && st.violation() == Violation::kForeignKey) {
      return InvalidArgument("insert volume " + v.volume_id + ": account " + v.account_id +
                             " is not in the catalog");
    }
    RETURN_IF_ERROR(run);
    RETURN_IF_ERROR(WriteTags(v.volume_id, v.tags));
    RETURN_IF_ERROR(SyncHostTags("v.volume_id = ?", v.volume_id));
    // Counted with the new row, in the transaction that wrote it: see catalog.h.
    if (QuotaCountsVolume(v)) return EnforceVolumeQuota(v.account_id);
    return OkStatus();
  }
}

Result<VolumeRecord> Catalog::GetVolume(const std::string& id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    std::string(kVolumeSelect) +
                                                        " WHERE v.volume_id = ?" + kVolumeOrder,
                                                    "get volume " + id));
  st.Bind(id);
  ASSIGN_OR_RETURN(std::vector<VolumeRecord> rows, ReadVolumes(st));
  if (rows.empty()) return NotFound("volume " + id + " not found");
  return std::move(rows.front());
}

Result<std::vector<VolumeRecord>> Catalog::ListVolumes(std::optional<std::string> account_id) {
  std::lock_guard lock(mu_);
  std::string sql = kVolumeSelect;
  if (account_id) sql += " WHERE v.account_id = ?";
  sql += kVolumeOrder;
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, sql, "list volumes"));
  if (account_id) st.Bind(*account_id);
  return ReadVolumes(st);
}

Status Catalog::SetVolumeState(const std::string& id, const std::string& state,
                               const std::string& message) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    "UPDATE volumes SET state = ?, state_message = ?"
                                                    " WHERE volume_id = ?",
                                                    "set state of volume " + id));
  st.Bind(state).Bind(message).Bind(id);
  RETURN_IF_ERROR(st.Run());
  if (Changes(*db_) == 0) return NotFound("volume " + id + " not found");
  return OkStatus();
}

Status Catalog::SetVolumeAttachment(const std::string& id, const std::string& instance_id,
                                    const std::string& device, int64_t attach_ms) {
  std::lock_guard lock(mu_);
  // Attaching needs a detached volume and detaching an attached one, checked in the UPDATE so
  // that two callers cannot both succeed.
  // A volume attached at the instance's root device is its root (boot) volume; anywhere else,
  // or detached, it is not.
  const bool attach = !instance_id.empty();
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      attach ? "UPDATE volumes SET instance_id = ?, device = ?, attach_ms = ?,"
                                               " boot = CASE WHEN EXISTS (SELECT 1 FROM instances"
                                               " WHERE root_device = ? AND instance_id = ?) THEN 1 ELSE 0 END"
                                               " WHERE volume_id = ? AND instance_id = ''"
                                             : "UPDATE volumes SET instance_id = ?, device = ?, attach_ms = ?,"
                                               " boot = 0 WHERE volume_id = ? AND instance_id <> ''",
                                      (attach ? "attach volume " : "detach volume ") + id));
  st.Bind(instance_id).Bind(device).Bind(attach_ms);
  if (attach) st.Bind(device).Bind(instance_id);
  st.Bind(id);
  RETURN_IF_ERROR(st.Run());
  if (Changes(*db_) == 1) {
    // A detach wakes the hosts' claimers (WaitForSnapshotJobs): the volume's host ends its NBD
    // connections at once instead of at its next poll. Only a wake-up: its failure loses nothing.
    if (!attach && db_->backend() == Backend::kPostgres)
      (void)db_->Exec(std::string("NOTIFY ") + catalog_internal::kJobQueueChannel, "announce the detach of " + id);
    return OkStatus();
  }
  ASSIGN_OR_RETURN(Statement find, Statement::Prepare(*db_, "SELECT instance_id FROM volumes WHERE volume_id = ?",
                                                      "find volume " + id));
  find.Bind(id);
  ASSIGN_OR_RETURN(bool exists, find.Step());
  if (!exists) return NotFound("volume " + id + " not found");
  return Conflict(attach ? "volume " + id + " is already attached to " + find.Text(0)
                         : "volume " + id + " is not attached");
}

Status Catalog::SwapRootVolume(const std::string& instance_id, const std::string& old_id,
                               const std::string& new_id, int64_t attach_ms) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement root, Statement::Prepare(*db_,
                                                        "SELECT root_device FROM instances WHERE instance_id = ?",
                                                        "swap root volume of " + instance_id));
    root.Bind(instance_id);
    ASSIGN_OR_RETURN(bool found, root.Step());
    if (!found) return NotFound("instance " + instance_id + " not found");
    const std::string device = root.Text(0);
    ASSIGN_OR_RETURN(Statement detach,
                     Statement::Prepare(*db_,
                                        "UPDATE volumes SET instance_id = '', device = '', attach_ms = 0, boot = 0"
                                        " WHERE volume_id = ? AND instance_id = ? AND device = ?",
                                        "detach root volume " + old_id));
    detach.Bind(old_id).Bind(instance_id).Bind(device);
    RETURN_IF_ERROR(detach.Run());
    if (Changes(*db_) != 1)
      return Conflict("volume " + old_id + " is not attached to " + instance_id + " at its root device " + device);
    ASSIGN_OR_RETURN(Statement attach,
                     Statement::Prepare(*db_,
                                        "UPDATE volumes SET instance_id = ?, device = ?, attach_ms = ?, boot = 1"
                                        " WHERE volume_id = ? AND instance_id = '' AND account_id ="
                                        " (SELECT account_id FROM instances WHERE instance_id = ?)",
                                        "attach root volume " + new_id));
    attach.Bind(instance_id).Bind(device).Bind(attach_ms).Bind(new_id).Bind(instance_id);
    RETURN_IF_ERROR(attach.Run());
    if (Changes(*db_) != 1)
      return Conflict("volume " + new_id + " is missing, attached elsewhere or another account's");
    return OkStatus();
  });
}

namespace catalog_internal {

Result<std::string> CheckVolumeDeletable(Connection& db, const std::string& id, const std::string& except_task) {
  const std::string what = "delete volume " + id;
  ASSIGN_OR_RETURN(Statement find, Statement::Prepare(db, "SELECT instance_id, state, coalesce(host_id, '')"
                                                          " FROM volumes WHERE volume_id = ?",
                                                      what));
  find.Bind(id);
  ASSIGN_OR_RETURN(bool exists, find.Step());
  if (!exists) return NotFound("volume " + id + " not found");
  if (!find.Text(0).empty()) return Conflict("volume " + id + " is attached to " + find.Text(0));
  if (find.Text(1) == "creating") return Conflict("volume " + id + " is being restored (creating)");
  std::string host = find.Text(2);
  ASSIGN_OR_RETURN(Statement task, Statement::Prepare(db, "SELECT task_id FROM replace_root_volume_tasks"
                                                          " WHERE volume_id = ? AND state IN"
                                                          " ('pending', 'in-progress') AND task_id <> ?"
                                                          " ORDER BY task_id",
                                                      what));
  task.Bind(id).Bind(except_task);
  ASSIGN_OR_RETURN(bool rolling_back, task.Step());
  if (rolling_back) return Conflict("volume " + id + " is being rolled back by task " + task.Text(0));
  return host;
}

}  // namespace catalog_internal

Status Catalog::DeleteVolume(const std::string& id, const std::string& except_task) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    // The rules that a concurrent AttachVolume, restore or rollback could otherwise slip
    // past, checked in the transaction that removes the row.
    RETURN_IF_ERROR(catalog_internal::CheckVolumeDeletable(*db_, id, except_task));
    ASSIGN_OR_RETURN(Statement tags, Statement::Prepare(*db_, "DELETE FROM tags WHERE resource_id = ?",
                                                        "delete volume " + id));
    tags.Bind(id);
    RETURN_IF_ERROR(tags.Run());
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, "DELETE FROM volumes WHERE volume_id = ?",
                                                      "delete volume " + id));
    st.Bind(id);
    RETURN_IF_ERROR(st.Run());
    if (Changes(*db_) == 0) return NotFound("volume " + id + " not found");
    return OkStatus();
  });
}

Status Catalog::UpdateVolumeSize(const std::string& id, uint64_t size) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(
      Statement st,
      Statement::Prepare(*db_, "UPDATE volumes SET size_bytes = ? WHERE volume_id = ?",
                         "update size of volume " + id));
  st.Bind(size).Bind(id);
  RETURN_IF_ERROR(st.Run());
  if (Changes(*db_) == 0) return NotFound("volume " + id + " not found");
  return OkStatus();
}

}  // namespace snapvol
