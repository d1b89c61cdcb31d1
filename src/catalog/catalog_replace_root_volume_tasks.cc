// Catalog: in-place rollbacks of volumes (replace-root-volume tasks), with their tags.
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_db.h"
#include "catalog/catalog_postgres_notify.h"
#include "catalog/catalog_sql.h"
#include "core/ids.h"

namespace snapvol {
using catalog_internal::Backend;
using catalog_internal::Changes;
using catalog_internal::Statement;
using catalog_internal::Violation;

namespace {

// One row per (task, tag), a task's rows adjacent, its tags sorted; NULL key without tags.
constexpr char kTaskSelect[] =
    "SELECT r.task_id, r.account_id, r.instance_id, r.volume_id, r.snapshot_id, r.state, r.progress,"
    " r.blocks_compared, r.bytes_read, r.bytes_written, r.safety_snapshot_id, r.reason, r.client_token,"
    " r.delete_replaced, r.force, r.requested_by, r.runner, r.start_ms, r.complete_ms, t.key, t.value,"
    " r.replacement_volume_id"
    " FROM replace_root_volume_tasks r LEFT JOIN tags t ON t.resource_id = r.task_id";
// The claim's host check, in the pick and again in the conditional update: only a task whose
// runner says it is queued for the claiming host.
constexpr char kQueuedForHost[] = "runner = ?";

Result<std::vector<ReplaceRootVolumeTaskRecord>> ReadTasks(Statement& st) {
  std::vector<ReplaceRootVolumeTaskRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return out;
    std::string id = st.Text(0);
    if (out.empty() || out.back().task_id != id) {
      ReplaceRootVolumeTaskRecord t;
      t.task_id = std::move(id);
      t.account_id = st.Text(1);
      t.instance_id = st.Text(2);
      t.volume_id = st.Text(3);
      t.snapshot_id = st.Text(4);
      t.state = st.Text(5);
      t.progress = static_cast<int>(st.Int(6));
      t.blocks_compared = static_cast<uint64_t>(st.Int(7));
      t.bytes_read = static_cast<uint64_t>(st.Int(8));
      t.bytes_written = static_cast<uint64_t>(st.Int(9));
      t.safety_snapshot_id = st.Text(10);
      t.reason = st.Text(11);
      t.client_token = st.Text(12);
      t.delete_replaced = st.Int(13) != 0;
      t.force = st.Int(14) != 0;
      t.requested_by = st.Text(15);
      t.runner = st.Text(16);
      t.start_ms = st.Int(17);
      t.complete_ms = st.Int(18);
      t.replacement_volume_id = st.Text(21);
      out.push_back(std::move(t));
    }
    if (!st.IsNull(19)) out.back().tags.push_back(Tag{st.Text(19), st.Text(20)});
  }
}

}  // namespace

Status Catalog::InsertReplaceRootVolumeTask(const ReplaceRootVolumeTaskRecord& t) {
  if (!IsReplaceRootVolumeTaskId(t.task_id))
    return InvalidArgument("'" + t.task_id + "' is not a replace-root-volume task id (replacevol-…)");
  RETURN_IF_ERROR(ValidateTagList(t.tags, "tags of " + t.task_id));
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(
        Statement st,
        Statement::Prepare(*db_,
                           "INSERT INTO replace_root_volume_tasks (task_id, account_id, instance_id, volume_id,"
                           " snapshot_id, state, progress, blocks_compared, bytes_read, bytes_written,"
                           " safety_snapshot_id, reason, client_token, delete_replaced, force, requested_by,"
                           " runner, start_ms, complete_ms, replacement_volume_id)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           "insert replace-root-volume task " + t.task_id));
    st.Bind(t.task_id).Bind(t.account_id).Bind(t.instance_id).Bind(t.volume_id).Bind(t.snapshot_id);
    st.Bind(t.state).Bind(int64_t{t.progress}).Bind(static_cast<int64_t>(t.blocks_compared));
    st.Bind(static_cast<int64_t>(t.bytes_read)).Bind(static_cast<int64_t>(t.bytes_written));
    st.Bind(t.safety_snapshot_id).Bind(t.reason).Bind(t.client_token).Bind(int64_t{t.delete_replaced});
    st.Bind(int64_t{t.force}).Bind(t.requested_by).Bind(t.runner).Bind(t.start_ms).Bind(t.complete_ms);
    st.Bind(t.replacement_volume_id);
    auto run = st.Run();
    if (!run && st.violation() == Violation::kForeignKey) return NotFound("account " + t.account_id + " not found");
    if (!run && st.violation() == Violation::kPrimaryKey)
      return MakeError(ErrorCode::kAlreadyExists, "task " + t.task_id + " already exists");
    if (!run && st.violation() == Violation::kUnique)
      return MakeError(ErrorCode::kAlreadyExists, "ClientToken '" + t.client_token + "' was already used");
    RETURN_IF_ERROR(run);
    RETURN_IF_ERROR(WriteTags(t.task_id, t.tags));
    // A task routed to its volume's host wakes that host's claimer when this commits.
    if (!QueuedRunnerHost(t.runner).empty() && db_->backend() == Backend::kPostgres)
      RETURN_IF_ERROR(db_->Exec(std::string("NOTIFY ") + catalog_internal::kJobQueueChannel,
                                "announce replace-root-volume task " + t.task_id));
    return OkStatus();
  });
}

Result<std::optional<ReplaceRootVolumeTaskRecord>> Catalog::ClaimReplaceRootVolumeTask(const std::string& host_id,
                                                                                       const std::string& runner) {
  if (host_id.empty()) return InvalidArgument("claim a replace-root-volume task: no host");
  if (runner.empty()) return InvalidArgument("claim a replace-root-volume task of " + host_id + ": no runner");
  const std::string queued = QueuedRunner(host_id);
  const std::string what = "claim a replace-root-volume task of " + host_id + " for " + runner;
  std::lock_guard lock(mu_);
  std::optional<ReplaceRootVolumeTaskRecord> out;
  Status done = InTransaction([&]() -> Status {
    // The catalog's write lock (catalog_db.h) already keeps the pick and the update together;
    // the row lock keeps the claim right under any other writer of the table on PostgreSQL.
    std::string sql = std::string("SELECT task_id FROM replace_root_volume_tasks WHERE ") + kQueuedForHost +
                      " AND state = 'pending' ORDER BY start_ms, task_id LIMIT 1";
    if (db_->backend() == Backend::kPostgres) sql += " FOR UPDATE SKIP LOCKED";
    ASSIGN_OR_RETURN(Statement pick, Statement::Prepare(*db_, sql, what));
    pick.Bind(queued);
    ASSIGN_OR_RETURN(bool row, pick.Step());
    if (!row) return OkStatus();
    const std::string id = pick.Text(0);
    ASSIGN_OR_RETURN(Statement take,
                     Statement::Prepare(*db_,
                                        std::string("UPDATE replace_root_volume_tasks SET runner = ? WHERE ") +
                                            kQueuedForHost + " AND task_id = ? AND state = 'pending'",
                                        what));
    take.Bind(runner).Bind(queued).Bind(id);
    RETURN_IF_ERROR(take.Run());
    if (Changes(*db_) != 1) return OkStatus();  // taken meanwhile: nothing for this caller now
    ASSIGN_OR_RETURN(Statement read, Statement::Prepare(*db_,
                                                        std::string(kTaskSelect) + " WHERE r.task_id = ? ORDER BY t.key",
                                                        what));
    read.Bind(id);
    ASSIGN_OR_RETURN(auto rows, ReadTasks(read));
    if (rows.empty()) return NotFound("replace-root-volume task " + id + " vanished while claimed");
    out = std::move(rows.front());
    return OkStatus();
  });
  if (!done) return std::unexpected(done.error());
  return out;
}

Result<ReplaceRootVolumeTaskRecord> Catalog::GetReplaceRootVolumeTask(const std::string& id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    std::string(kTaskSelect) + " WHERE r.task_id = ? ORDER BY t.key",
                                                    "get replace-root-volume task " + id));
  st.Bind(id);
  ASSIGN_OR_RETURN(auto rows, ReadTasks(st));
  if (rows.empty()) return NotFound("replace-root-volume task " + id + " not found");
  return std::move(rows.front());
}

Result<std::optional<ReplaceRootVolumeTaskRecord>> Catalog::FindReplaceRootVolumeTaskByToken(
    const std::string& account_id, const std::string& token) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      std::string(kTaskSelect) +
                                          " WHERE r.account_id = ? AND r.client_token = ? ORDER BY t.key",
                                      "find replace-root-volume task by token"));
  st.Bind(account_id).Bind(token);
  ASSIGN_OR_RETURN(auto rows, ReadTasks(st));
  if (rows.empty()) return std::nullopt;
  return std::optional(std::move(rows.front()));
}

Result<std::vector<ReplaceRootVolumeTaskRecord>> Catalog::ListReplaceRootVolumeTasks(
    std::optional<std::string> account_id) {
  std::lock_guard lock(mu_);
  std::string sql = kTaskSelect;
  if (account_id) sql += " WHERE r.account_id = ?";
  sql += " ORDER BY r.task_id, t.key";
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, sql, "list replace-root-volume tasks"));
  if (account_id) st.Bind(*account_id);
  return ReadTasks(st);
}

Result<std::vector<ReplaceRootVolumeTaskRecord>> Catalog::ListUnfinishedReplaceRootVolumeTasks() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      std::string(kTaskSelect) +
                                          " WHERE r.state IN ('pending', 'in-progress')"
                                          " ORDER BY r.start_ms, r.task_id, t.key",
                                      "list unfinished replace-root-volume tasks"));
  return ReadTasks(st);
}

Status Catalog::UpdateReplaceRootVolumeTask(const ReplaceRootVolumeTaskRecord& t) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      "UPDATE replace_root_volume_tasks SET state = ?, progress = ?,"
                                      " blocks_compared = ?, bytes_read = ?, bytes_written = ?,"
                                      " safety_snapshot_id = ?, reason = ?, runner = ?, complete_ms = ?"
                                      " WHERE task_id = ? AND state IN ('pending', 'in-progress')",
                                      "update replace-root-volume task " + t.task_id));
  st.Bind(t.state).Bind(int64_t{t.progress}).Bind(static_cast<int64_t>(t.blocks_compared));
  st.Bind(static_cast<int64_t>(t.bytes_read)).Bind(static_cast<int64_t>(t.bytes_written));
  st.Bind(t.safety_snapshot_id).Bind(t.reason).Bind(t.runner).Bind(t.complete_ms).Bind(t.task_id);
  RETURN_IF_ERROR(st.Run());
  if (Changes(*db_) == 1) return OkStatus();
  ASSIGN_OR_RETURN(Statement find,
                   Statement::Prepare(*db_, "SELECT state FROM replace_root_volume_tasks WHERE task_id = ?",
                                      "update replace-root-volume task " + t.task_id));
  find.Bind(t.task_id);
  ASSIGN_OR_RETURN(bool exists, find.Step());
  if (!exists) return NotFound("replace-root-volume task " + t.task_id + " not found");
  return Conflict("replace-root-volume task " + t.task_id + " has already ended: " + find.Text(0));
}

}  // namespace snapvol
