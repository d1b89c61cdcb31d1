// Catalog: the totals /metrics reads at scrape time (snapshots by account and state, lifecycle
// runs by state). Grouped in SQL so a scrape costs one pass over each table, not one row each.
#include "catalog/catalog.h"
#include "catalog/catalog_sql.h"

namespace snapvol {
using catalog_internal::Statement;

Result<CatalogTotals> Catalog::MetricsTotals() {
  return OnReader([&](sqlite3* db, std::map<std::string, sqlite3_stmt*>* cache) -> Result<CatalogTotals> {
    CatalogTotals out;
    // One read transaction: both sums are of the same instant.
    ASSIGN_OR_RETURN(Statement begin, Statement::Prepare(db, "BEGIN", "read the metrics totals"));
    RETURN_IF_ERROR(begin.Run());
    auto read = [&]() -> Status {
      ASSIGN_OR_RETURN(Statement snaps,
                       Statement::PrepareOn(db, cache,
                                            "SELECT account_id, state, count(*), coalesce(sum(stored_bytes), 0),"
                                            " coalesce(sum(volume_size_bytes), 0) FROM snapshots"
                                            " GROUP BY account_id, state ORDER BY account_id, state",
                                            "count snapshots by account and state"));
      for (;;) {
        ASSIGN_OR_RETURN(bool row, snaps.Step());
        if (!row) break;
        out.snapshots.push_back({snaps.Text(0), snaps.Text(1), snaps.U64(2), snaps.U64(3), snaps.U64(4)});
      }
      ASSIGN_OR_RETURN(Statement runs,
                       Statement::PrepareOn(db, cache,
                                            "SELECT state, count(*), max(CASE WHEN state = 'running' THEN started_ms"
                                            " ELSE finished_ms END) FROM lifecycle_runs GROUP BY state ORDER BY state",
                                            "count lifecycle runs by state"));
      for (;;) {
        ASSIGN_OR_RETURN(bool row, runs.Step());
        if (!row) break;
        out.lifecycle_runs.push_back({runs.Text(0), runs.U64(1), runs.Int(2)});
      }
      return OkStatus();
    };
    Status st = read();
    if (auto end = Statement::Prepare(db, st ? "COMMIT" : "ROLLBACK", "end the metrics read")) (void)end->Run();
    if (!st) return std::unexpected(st.error());
    return out;
  });
}

}  // namespace snapvol
