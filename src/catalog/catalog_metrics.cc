// Catalog: the totals /metrics reads at scrape time (snapshots by account and state, lifecycle
// runs by state). Grouped in SQL so a scrape costs one pass over each table, not one row each.
#include "catalog/catalog.h"
#include "catalog/catalog_sql.h"

namespace snapvol {
using catalog_internal::Connection;
using catalog_internal::Statement;

Result<CatalogTotals> Catalog::MetricsTotals() {
  return OnReader([&](Connection& db, bool cached) -> Result<CatalogTotals> {
    CatalogTotals out;
    // One read transaction: both sums are of the same instant.
    RETURN_IF_ERROR(db.Begin(/*write=*/false));
    auto read = [&]() -> Status {
      ASSIGN_OR_RETURN(Statement snaps,
                       Statement::PrepareOn(db, cached,
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
                       Statement::PrepareOn(db, cached,
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
    // Nothing was written: a failed commit only has to end the transaction.
    if (!st || !db.Commit()) db.Rollback();
    if (!st) return std::unexpected(st.error());
    return out;
  });
}

}  // namespace snapvol
