// Catalog: cluster leases (cluster_leases), the right to run a once-per-cluster duty such as
// GC or lifecycle scheduling on one host at a time, with a generation that fences off a
// holder that lost its lease (docs/multi-host.md part 4).
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_sql.h"

namespace snapvol {
using catalog_internal::Changes;
using catalog_internal::ReadRows;
using catalog_internal::Statement;

namespace {

constexpr char kLeaseColumns[] = "name, holder, expires_ms, generation";

ClusterLeaseRecord ReadLease(Statement& st) { return ClusterLeaseRecord{st.Text(0), st.Text(1), st.Int(2), st.Int(3)}; }

// The lease called name as stored; nullopt when it was never taken.
Result<std::optional<ClusterLeaseRecord>> FindLease(catalog_internal::Connection& db, const std::string& name,
                                                    const std::string& what) {
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(db, std::string("SELECT ") + kLeaseColumns + " FROM cluster_leases WHERE name = ?",
                                      what));
  st.Bind(name);
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::nullopt;
  return ReadLease(st);
}

std::string Describe(const ClusterLeaseRecord& l) {
  return "lease " + l.name + " (generation " + std::to_string(l.generation) + ", holder " + l.holder + ")";
}

}  // namespace

std::string ClusterLeaseStateAt(const ClusterLeaseRecord& lease, int64_t now_ms) {
  if (lease.expires_ms == 0) return "released";
  return now_ms < lease.expires_ms ? "held" : "expired";
}

Result<ClusterLeaseRecord> Catalog::AcquireClusterLease(const std::string& name, const std::string& holder,
                                                        int64_t now_ms, int64_t ttl_ms) {
  if (name.empty()) return InvalidArgument("a cluster lease needs a name");
  if (holder.empty()) return InvalidArgument("lease " + name + ": a holder is needed");
  if (now_ms < 0) return InvalidArgument("lease " + name + ": the time cannot be negative");
  if (ttl_ms < 1 || ttl_ms > INT64_MAX - now_ms) {
    return InvalidArgument("lease " + name + ": the time to live must be at least 1 ms and end within 64-bit milliseconds (got " + std::to_string(ttl_ms) + ")");
  }
  const std::string what = "take lease " + name + " for " + holder;
  std::lock_guard lock(mu_);
  ClusterLeaseRecord out;
  Status done = InTransaction([&]() -> Status {
    // One conditional write. Racing hosts are safe on both backends because a write
    // transaction holds the catalog's database-wide write lock from Begin (SQLite's write lock;
    // on PostgreSQL a transaction-scoped advisory lock every snapvold takes, catalog_db.h): the
    // expiry and holder seen by the WHERE below are the ones committed last, and no other
    // holder can commit in between. (PostgreSQL's ON CONFLICT DO UPDATE also locks the row and
    // re-checks the WHERE on its newest version, so it would hold even without that lock.)
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_,
                                        std::string("INSERT INTO cluster_leases (") + kLeaseColumns +
                                            ") VALUES (?, ?, ?, 1) ON CONFLICT (name) DO UPDATE SET"
                                            " generation = CASE WHEN cluster_leases.holder = excluded.holder"
                                            " THEN cluster_leases.generation ELSE cluster_leases.generation + 1 END,"
                                            " holder = excluded.holder, expires_ms = excluded.expires_ms"
                                            " WHERE cluster_leases.holder = excluded.holder"
                                            " OR cluster_leases.expires_ms <= ?",
                                        what));
    st.Bind(name).Bind(holder).Bind(now_ms + ttl_ms).Bind(now_ms);
    RETURN_IF_ERROR(st.Run());
    ASSIGN_OR_RETURN(std::optional<ClusterLeaseRecord> now, FindLease(*db_, name, what));
    if (!now) return Internal(what + ": the lease is not there after writing it");
    out = *now;
    return OkStatus();
  });
  if (!done) return std::unexpected(done.error());
  return out;
}

Status Catalog::CheckClusterLease(const std::string& name, const std::string& holder, int64_t generation,
                                  int64_t now_ms) {
  std::lock_guard lock(mu_);
  return CheckClusterLeaseLocked(name, holder, generation, now_ms);
}

Status Catalog::CheckClusterLeaseLocked(const std::string& name, const std::string& holder, int64_t generation,
                                        int64_t now_ms) {
  const std::string mine = "lease " + name + " generation " + std::to_string(generation) + " of " + holder;
  ASSIGN_OR_RETURN(std::optional<ClusterLeaseRecord> found, FindLease(*db_, name, "check " + mine));
  if (!found) return NotFound("lease " + name + " was never taken");
  const ClusterLeaseRecord l = *found;
  if (l.holder != holder || l.generation != generation) {
    return Conflict(mine + " is stale: it is now " + Describe(l) + " until " + std::to_string(l.expires_ms));
  }
  if (l.expires_ms == 0) return Conflict(mine + " was released");
  if (now_ms >= l.expires_ms) {
    return Conflict(mine + " expired at " + std::to_string(l.expires_ms) + " (now " + std::to_string(now_ms) + ")");
  }
  return OkStatus();
}

Status Catalog::ReleaseClusterLease(const std::string& name, const std::string& holder) {
  const std::string what = "release lease " + name + " of " + holder;
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_, "UPDATE cluster_leases SET expires_ms = 0 WHERE name = ? AND holder = ?",
                                        what));
    st.Bind(name).Bind(holder);
    RETURN_IF_ERROR(st.Run());
    if (Changes(*db_) == 1) return OkStatus();
    ASSIGN_OR_RETURN(std::optional<ClusterLeaseRecord> now, FindLease(*db_, name, what));
    if (!now) return NotFound("lease " + name + " was never taken");
    return Conflict(what + ": it is " + Describe(*now));
  });
}

Result<std::vector<ClusterLeaseRecord>> Catalog::ListClusterLeases() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    std::string("SELECT ") + kLeaseColumns +
                                                        " FROM cluster_leases ORDER BY name",
                                                    "list cluster leases"));
  return ReadRows<ClusterLeaseRecord>(st, ReadLease);
}

}  // namespace snapvol
