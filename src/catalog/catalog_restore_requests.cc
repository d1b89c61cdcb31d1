// Catalog: restore requests filed by members and decided by administrators.
#include "catalog/catalog.h"

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog_sql.h"

namespace snapvol {
using catalog_internal::Changes;
using catalog_internal::ReadRows;
using catalog_internal::Statement;
using catalog_internal::Violation;

namespace {
constexpr char kRestoreRequestSelect[] =
    "SELECT request_id, account_id, snapshot_id, requested_by, reason, state, decided_by,"
    " decision_reason, volume_id, created_ms, decided_ms, restore_type, task_id FROM restore_requests";

Result<std::vector<RestoreRequestRecord>> ReadRestoreRequests(Statement& st) {
  return ReadRows<RestoreRequestRecord>(st, [](Statement& r) {
    return RestoreRequestRecord{r.Text(0), r.Text(1), r.Text(2), r.Text(3), r.Text(4),  r.Text(5), r.Text(6),
                                r.Text(7), r.Text(8), r.Int(9),  r.Int(10), r.Text(11), r.Text(12)};
  });
}
}  // namespace

Status Catalog::InsertRestoreRequest(const RestoreRequestRecord& r) {
  if (r.reason.size() > 1024) return InvalidArgument("a restore request's reason is at most 1024 bytes");
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      "INSERT INTO restore_requests (request_id, account_id,"
                                      " snapshot_id, requested_by, reason, state, decided_by,"
                                      " decision_reason, volume_id, created_ms, decided_ms, restore_type, task_id)"
                                      " VALUES (?, ?, ?, ?, ?, 'pending', '', '', ?, ?, 0, ?, '')",
                                      "insert restore request " + r.request_id));
  st.Bind(r.request_id).Bind(r.account_id).Bind(r.snapshot_id).Bind(r.requested_by).Bind(r.reason);
  st.Bind(r.restore_type == "in-place" ? r.volume_id : std::string()).Bind(r.created_ms).Bind(r.restore_type);
  auto run = st.Run();
  if (!run && st.violation() == Violation::kForeignKey)
    return NotFound("account " + r.account_id + " not found");
  return run;
}

Result<RestoreRequestRecord> Catalog::GetRestoreRequest(const std::string& id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    std::string(kRestoreRequestSelect) + " WHERE request_id = ?",
                                                    "get restore request " + id));
  st.Bind(id);
  ASSIGN_OR_RETURN(auto rows, ReadRestoreRequests(st));
  if (rows.empty()) return NotFound("restore request " + id + " not found");
  return std::move(rows.front());
}

Result<std::vector<RestoreRequestRecord>> Catalog::ListRestoreRequests(
    std::optional<std::string> account_id) {
  std::lock_guard lock(mu_);
  std::string sql = kRestoreRequestSelect;
  if (account_id) sql += " WHERE account_id = ?";
  sql += " ORDER BY created_ms, request_id";
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, sql, "list restore requests"));
  if (account_id) st.Bind(*account_id);
  return ReadRestoreRequests(st);
}

Status Catalog::DecideRestoreRequest(const std::string& id, bool approved, const std::string& decided_by,
                                     const std::string& reason, const std::string& volume_id,
                                     int64_t decided_ms) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      "UPDATE restore_requests SET state = ?, decided_by = ?,"
                                      " decision_reason = ?, volume_id = ?, decided_ms = ?"
                                      " WHERE request_id = ? AND state = 'pending'",
                                      "decide restore request " + id));
  st.Bind(approved ? "approved" : "rejected").Bind(decided_by).Bind(reason).Bind(volume_id);
  st.Bind(decided_ms).Bind(id);
  RETURN_IF_ERROR(st.Run());
  if (Changes(*db_) == 1) return OkStatus();
  ASSIGN_OR_RETURN(Statement find, Statement::Prepare(*db_,
                                                      "SELECT state FROM restore_requests WHERE request_id = ?",
                                                      "decide restore request " + id));
  find.Bind(id);
  ASSIGN_OR_RETURN(bool exists, find.Step());
  if (!exists) return NotFound("restore request " + id + " not found");
  return Conflict("restore request " + id + " is already " + find.Text(0));
}

Status Catalog::SetRestoreRequestTask(const std::string& id, const std::string& task_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      "UPDATE restore_requests SET task_id = ? WHERE request_id = ?"
                                      " AND state = 'approved' AND restore_type = 'in-place' AND task_id = ''",
                                      "record the task of restore request " + id));
  st.Bind(task_id).Bind(id);
  RETURN_IF_ERROR(st.Run());
  if (Changes(*db_) == 0) return Conflict("restore request " + id + " is not an approved in-place request without a task");
  return OkStatus();
}

Status Catalog::ReopenRestoreRequest(const std::string& id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      "UPDATE restore_requests SET state = 'pending', decided_by = '',"
                                      " decision_reason = '', decided_ms = 0 WHERE request_id = ?"
                                      " AND state = 'approved' AND restore_type = 'in-place' AND task_id = ''",
                                      "reopen restore request " + id));
  st.Bind(id);
  RETURN_IF_ERROR(st.Run());
  if (Changes(*db_) == 0) return Conflict("restore request " + id + " is not an approved in-place request without a task");
  return OkStatus();
}

}  // namespace snapvol
