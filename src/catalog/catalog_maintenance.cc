// Catalog: runs of maintenance jobs (GC, verification) and what verification found per snapshot.
#include "catalog/catalog.h"

#include <algorithm>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog_sql.h"

namespace snapvol {
using catalog_internal::Changes;
using catalog_internal::ReadRows;
using catalog_internal::Statement;

namespace {
constexpr char kRunSelect[] =
    "SELECT run_id, job, trigger_kind, mode, scheduled_ms, started_ms, finished_ms, state, missed,"
    " bytes_freed, objects_deleted, snapshots_checked, objects_checked, damaged, message, host_id,"
    " lease_generation FROM maintenance_runs";

Result<std::vector<MaintenanceRunRecord>> ReadRuns(Statement& st) {
  return ReadRows<MaintenanceRunRecord>(st, [](Statement& r) {
    return MaintenanceRunRecord{r.Int(0),  r.Text(1),  r.Text(2),  r.Text(3),  r.Int(4),
                                r.Int(5),  r.Int(6),   r.Text(7),  r.Int(8),   r.Int(9),
                                r.Int(10), r.Int(11),  r.Int(12),  r.Text(13), r.Text(14),
                                r.Text(15), r.Int(16)};
  });
}
}  // namespace

Result<int64_t> Catalog::InsertMaintenanceRun(const MaintenanceRunRecord& r) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      "INSERT INTO maintenance_runs (job, trigger_kind, mode, scheduled_ms,"
                                      " started_ms, finished_ms, state, missed, bytes_freed, objects_deleted,"
                                      " snapshots_checked, objects_checked, damaged, message, host_id,"
                                      " lease_generation)"
                                      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING run_id",
                                      "insert " + r.job + " run"));
  st.Bind(r.job).Bind(r.trigger).Bind(r.mode).Bind(r.scheduled_ms).Bind(r.started_ms).Bind(r.finished_ms);
  st.Bind(r.state).Bind(r.missed).Bind(r.bytes_freed).Bind(r.objects_deleted).Bind(r.snapshots_checked);
  st.Bind(r.objects_checked).Bind(r.damaged).Bind(r.message).Bind(r.host_id).Bind(r.lease_generation);
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return Internal("insert " + r.job + " run: no run id came back");
  const int64_t run_id = st.Int(0);
  RETURN_IF_ERROR(st.Run());
  return run_id;
}

Status Catalog::UpdateMaintenanceRun(const MaintenanceRunRecord& r) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      "UPDATE maintenance_runs SET mode = ?, started_ms = ?, finished_ms = ?,"
                                      " state = ?, missed = ?, bytes_freed = ?, objects_deleted = ?,"
                                      " snapshots_checked = ?, objects_checked = ?, damaged = ?, message = ?,"
                                      " host_id = ?, lease_generation = ?"
                                      " WHERE run_id = ? AND lease_generation <= ?",
                                      "update maintenance run " + std::to_string(r.run_id)));
  st.Bind(r.mode).Bind(r.started_ms).Bind(r.finished_ms).Bind(r.state).Bind(r.missed).Bind(r.bytes_freed);
  st.Bind(r.objects_deleted).Bind(r.snapshots_checked).Bind(r.objects_checked).Bind(r.damaged).Bind(r.message);
  st.Bind(r.host_id).Bind(r.lease_generation).Bind(r.run_id).Bind(r.lease_generation);
  RETURN_IF_ERROR(st.Run());
  if (Changes(*db_) == 1) return OkStatus();
  // Fenced: a holder that lost the lease finds its run taken over by a newer generation.
  ASSIGN_OR_RETURN(Statement read, Statement::Prepare(*db_, std::string(kRunSelect) + " WHERE run_id = ?",
                                                      "update maintenance run " + std::to_string(r.run_id)));
  read.Bind(r.run_id);
  ASSIGN_OR_RETURN(auto rows, ReadRuns(read));
  if (rows.empty()) return NotFound("maintenance run " + std::to_string(r.run_id) + " not found");
  return Conflict("maintenance run " + std::to_string(r.run_id) + " was taken over by " +
                  (rows.front().host_id.empty() ? std::string("another host") : rows.front().host_id) +
                  " under lease generation " + std::to_string(rows.front().lease_generation) + " (this one: " +
                  std::to_string(r.lease_generation) + ")");
}

Result<MaintenanceRunRecord> Catalog::GetMaintenanceRun(int64_t run_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, std::string(kRunSelect) + " WHERE run_id = ?",
                                                    "read maintenance run " + std::to_string(run_id)));
  st.Bind(run_id);
  ASSIGN_OR_RETURN(auto rows, ReadRuns(st));
  if (rows.empty()) return NotFound("maintenance run " + std::to_string(run_id) + " not found");
  return rows.front();
}

Result<std::vector<MaintenanceRunRecord>> Catalog::ListMaintenanceRuns(std::optional<std::string> job,
                                                                       size_t limit) {
  std::lock_guard lock(mu_);
  std::string sql = kRunSelect;
  if (job) sql += " WHERE job = ?";
  sql += " ORDER BY run_id DESC LIMIT ?";
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, sql, "list maintenance runs"));
  if (job) st.Bind(*job);
  st.Bind(static_cast<int64_t>(std::min<size_t>(limit, 1u << 30)));
  return ReadRuns(st);
}

Result<std::vector<MaintenanceRunRecord>> Catalog::ListUnfinishedMaintenanceRuns() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      std::string(kRunSelect) +
                                          " WHERE state IN ('queued', 'running') ORDER BY run_id",
                                      "list unfinished maintenance runs"));
  return ReadRuns(st);
}

Result<std::optional<MaintenanceRunRecord>> Catalog::LatestScheduledMaintenanceRun(const std::string& job) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      std::string(kRunSelect) +
                                          " WHERE job = ? AND trigger_kind = 'scheduled'"
                                          " ORDER BY scheduled_ms DESC LIMIT 1",
                                      "read the latest scheduled " + job + " run"));
  st.Bind(job);
  ASSIGN_OR_RETURN(auto rows, ReadRuns(st));
  if (rows.empty()) return std::optional<MaintenanceRunRecord>();
  return std::optional<MaintenanceRunRecord>(rows.front());
}

Result<std::vector<SnapshotVerificationRecord>> Catalog::ListSnapshotVerifications() {
  std::lock_guard lock(mu_);
  std::vector<SnapshotVerificationRecord> out;
  RETURN_IF_ERROR(InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement gone,
                     Statement::Prepare(*db_,
                                        "DELETE FROM snapshot_verifications WHERE snapshot_id NOT IN"
                                        " (SELECT snapshot_id FROM snapshots)",
                                        "forget verifications of deleted snapshots"));
    RETURN_IF_ERROR(gone.Run());
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_,
                                        "SELECT snapshot_id, checked_ms, full_ms, damaged_ms, problem"
                                        " FROM snapshot_verifications ORDER BY snapshot_id",
                                        "list snapshot verifications"));
    ASSIGN_OR_RETURN(out, ReadRows<SnapshotVerificationRecord>(st, [](Statement& r) {
                       return SnapshotVerificationRecord{r.Text(0), r.Int(1), r.Int(2), r.Int(3), r.Text(4)};
                     }));
    return OkStatus();
  }));
  return out;
}

Status Catalog::RecordSnapshotChecked(const std::string& snapshot_id, int64_t checked_ms, bool full) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      "INSERT INTO snapshot_verifications (snapshot_id, checked_ms, full_ms,"
                                      " damaged_ms, problem) VALUES (?, ?, ?, 0, '')"
                                      " ON CONFLICT (snapshot_id) DO UPDATE SET checked_ms = excluded.checked_ms,"
                                      " full_ms = CASE WHEN ? <> 0 THEN excluded.full_ms"
                                      " ELSE snapshot_verifications.full_ms END",
                                      "record the check of " + snapshot_id));
  st.Bind(snapshot_id).Bind(checked_ms).Bind(full ? checked_ms : int64_t{0}).Bind(full ? 1 : 0);
  return st.Run();
}

Status Catalog::MarkSnapshotDamaged(const std::string& snapshot_id, int64_t damaged_ms, const std::string& problem,
                                    const std::string& message) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement msg, Statement::Prepare(*db_,
                                                       "UPDATE snapshots SET state_message = ? WHERE snapshot_id = ?",
                                                       "mark snapshot " + snapshot_id + " damaged"));
    msg.Bind(message).Bind(snapshot_id);
    RETURN_IF_ERROR(msg.Run());
    if (Changes(*db_) == 0) return NotFound("snapshot " + snapshot_id + " not found");
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_,
                                        "INSERT INTO snapshot_verifications (snapshot_id, checked_ms, full_ms,"
                                        " damaged_ms, problem) VALUES (?, ?, 0, ?, ?)"
                                        " ON CONFLICT (snapshot_id) DO UPDATE SET checked_ms = excluded.checked_ms,"
                                        " damaged_ms = CASE WHEN snapshot_verifications.damaged_ms > 0"
                                        " THEN snapshot_verifications.damaged_ms"
                                        " ELSE excluded.damaged_ms END,"
                                        " problem = CASE WHEN snapshot_verifications.damaged_ms > 0"
                                        " THEN snapshot_verifications.problem ELSE excluded.problem END",
                                        "record damage of " + snapshot_id));
    st.Bind(snapshot_id).Bind(damaged_ms).Bind(damaged_ms).Bind(problem);
    return st.Run();
  });
}

}  // namespace snapvol
