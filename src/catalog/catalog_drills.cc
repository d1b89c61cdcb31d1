// Catalog: the latest restore drill of each snapshot (lifecycle/restore_drill.h).
#include <mutex>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_sql.h"

namespace snapvol {
using catalog_internal::ReadRows;
using catalog_internal::Statement;

Status Catalog::RecordRestoreDrill(const RestoreDrillRecord& r) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      "INSERT INTO restore_drills (snapshot_id, run_id, drilled_ms, restore_ms,"
                                      " volume_bytes, ok, problem) VALUES (?, ?, ?, ?, ?, ?, ?)"
                                      " ON CONFLICT (snapshot_id) DO UPDATE SET run_id = excluded.run_id,"
                                      " drilled_ms = excluded.drilled_ms, restore_ms = excluded.restore_ms,"
                                      " volume_bytes = excluded.volume_bytes, ok = excluded.ok,"
                                      " problem = excluded.problem",
                                      "record the restore drill of " + r.snapshot_id));
  st.Bind(r.snapshot_id).Bind(r.run_id).Bind(r.drilled_ms).Bind(r.restore_ms).Bind(r.volume_bytes);
  st.Bind(r.ok ? 1 : 0).Bind(r.problem);
  return st.Run();
}

Result<std::vector<RestoreDrillRecord>> Catalog::ListRestoreDrills() {
  std::lock_guard lock(mu_);
  std::vector<RestoreDrillRecord> out;
  RETURN_IF_ERROR(InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement gone,
                     Statement::Prepare(*db_,
                                        "DELETE FROM restore_drills WHERE snapshot_id NOT IN"
                                        " (SELECT snapshot_id FROM snapshots)",
                                        "forget drills of deleted snapshots"));
    RETURN_IF_ERROR(gone.Run());
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_,
                                        "SELECT snapshot_id, run_id, drilled_ms, restore_ms, volume_bytes, ok, problem"
                                        " FROM restore_drills ORDER BY snapshot_id",
                                        "list restore drills"));
    ASSIGN_OR_RETURN(out, ReadRows<RestoreDrillRecord>(st, [](Statement& r) {
                       return RestoreDrillRecord{r.Text(0), r.Int(1), r.Int(2), r.Int(3),
                                                 static_cast<uint64_t>(r.Int(4)), r.Int(5) != 0, r.Text(6)};
                     }));
    return OkStatus();
  }));
  return out;
}

}  // namespace snapvol
