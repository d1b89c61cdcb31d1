// Catalog: snapshot locks (EC2 LockSnapshot) and their state at a given time.
#include "catalog/catalog.h"

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog_sql.h"

namespace snapvol {
using catalog_internal::Changes;
using catalog_internal::kLockColumns;
using catalog_internal::ReadRows;
using catalog_internal::ReadSnapshotLocks;
using catalog_internal::Statement;

std::string LockStateAt(const SnapshotLockRecord& lock, int64_t now_ms) {
  if (now_ms >= lock.expires_ms) return "expired";
  if (lock.mode == "compliance" && now_ms < lock.cool_off_expires_ms) return "compliance-cooloff";
  return lock.mode;
}

namespace catalog_internal {

Result<std::vector<SnapshotLockRecord>> ReadSnapshotLocks(Statement& st) {
  return ReadRows<SnapshotLockRecord>(st, [](Statement& r) {
    return SnapshotLockRecord{r.Text(0), r.Text(1), r.Text(2), r.Int(3), r.Int(4),
                              r.Int(5),  r.Int(6),  r.Int(7),  r.Int(8)};
  });
}

}  // namespace catalog_internal

Status Catalog::PutSnapshotLock(const SnapshotLockRecord& l) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    const std::string what = "lock snapshot " + l.snapshot_id;
    ASSIGN_OR_RETURN(Statement exists,
                     Statement::Prepare(*db_, "SELECT 1 FROM snapshots WHERE snapshot_id = ?", what));
    exists.Bind(l.snapshot_id);
    ASSIGN_OR_RETURN(bool found, exists.Step());
    if (!found) return NotFound("snapshot " + l.snapshot_id + " not found");
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                      std::string("INSERT INTO snapshot_locks (") + kLockColumns +
                                                          ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                                                          " ON CONFLICT (snapshot_id) DO UPDATE SET"
                                                          " account_id = excluded.account_id, mode = excluded.mode,"
                                                          " created_ms = excluded.created_ms,"
                                                          " duration_start_ms = excluded.duration_start_ms,"
                                                          " expires_ms = excluded.expires_ms,"
                                                          " duration_days = excluded.duration_days,"
                                                          " cool_off_hours = excluded.cool_off_hours,"
                                                          " cool_off_expires_ms = excluded.cool_off_expires_ms",
                                                      what));
    st.Bind(l.snapshot_id).Bind(l.account_id).Bind(l.mode).Bind(l.created_ms).Bind(l.duration_start_ms);
    st.Bind(l.expires_ms).Bind(l.duration_days).Bind(l.cool_off_hours).Bind(l.cool_off_expires_ms);
    return st.Run();
  });
}

Result<SnapshotLockRecord> Catalog::GetSnapshotLock(const std::string& snapshot_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    std::string("SELECT ") + kLockColumns +
                                                        " FROM snapshot_locks WHERE snapshot_id = ?",
                                                    "read the lock of snapshot " + snapshot_id));
  st.Bind(snapshot_id);
  ASSIGN_OR_RETURN(auto rows, ReadSnapshotLocks(st));
  if (rows.empty()) return NotFound("snapshot " + snapshot_id + " is not locked");
  return rows.front();
}

Result<std::vector<SnapshotLockRecord>> Catalog::ListSnapshotLocks(std::optional<std::string> account_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      std::string("SELECT ") + kLockColumns + " FROM snapshot_locks" +
                                          (account_id ? " WHERE account_id = ?" : "") + " ORDER BY snapshot_id",
                                      "list snapshot locks"));
  if (account_id) st.Bind(*account_id);
  return ReadSnapshotLocks(st);
}

Status Catalog::DeleteSnapshotLock(const std::string& snapshot_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, "DELETE FROM snapshot_locks WHERE snapshot_id = ?",
                                                    "unlock snapshot " + snapshot_id));
  st.Bind(snapshot_id);
  RETURN_IF_ERROR(st.Run());
  if (Changes(*db_) == 0) return NotFound("snapshot " + snapshot_id + " is not locked");
  return OkStatus();
}

}  // namespace snapvol
