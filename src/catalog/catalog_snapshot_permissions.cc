// Catalog: snapshot sharing (EC2 createVolumePermission), the snapshot_permissions table.
#include "catalog/catalog.h"

#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "catalog/catalog_sql.h"
#include "core/ids.h"

namespace snapvol {
using catalog_internal::ChunkIds;
using catalog_internal::Connection;
using catalog_internal::kSnapshotSelect;
using catalog_internal::Placeholders;
using catalog_internal::ReadRows;
using catalog_internal::ReadSnapshots;
using catalog_internal::Statement;

namespace {

constexpr char kPublicGrantee[] = "all";

Status ValidateGrantees(const std::vector<std::string>& grantees, const std::string& snapshot_id) {
  for (const std::string& g : grantees) {
    if (g != kPublicGrantee && !IsAccountId(g)) {
      return InvalidArgument("createVolumePermission of " + snapshot_id + ": '" + g +
                             "' is neither a 12-digit account id nor 'all'");
    }
  }
  return OkStatus();
}

}  // namespace

Status Catalog::AddSnapshotPermissions(const std::string& snapshot_id, const std::vector<std::string>& grantees) {
  RETURN_IF_ERROR(ValidateGrantees(grantees, snapshot_id));
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    RETURN_IF_ERROR(SnapshotStateOf(snapshot_id));
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_,
                                        "INSERT INTO snapshot_permissions (snapshot_id, grantee) VALUES (?, ?)"
                                        " ON CONFLICT DO NOTHING",
                                        "share snapshot " + snapshot_id));
    for (const std::string& g : grantees) {
      st.Reset();
      st.Bind(snapshot_id).Bind(g);
      RETURN_IF_ERROR(st.Run());
    }
    return OkStatus();
  });
}

Status Catalog::RemoveSnapshotPermissions(const std::string& snapshot_id,
                                          const std::vector<std::string>& grantees) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    RETURN_IF_ERROR(SnapshotStateOf(snapshot_id));
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_,
                                        "DELETE FROM snapshot_permissions WHERE snapshot_id = ? AND grantee = ?",
                                        "unshare snapshot " + snapshot_id));
    for (const std::string& g : grantees) {
      st.Reset();
      st.Bind(snapshot_id).Bind(g);
      RETURN_IF_ERROR(st.Run());
    }
    return OkStatus();
  });
}

Status Catalog::ResetSnapshotPermissions(const std::string& snapshot_id) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    RETURN_IF_ERROR(SnapshotStateOf(snapshot_id));
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_, "DELETE FROM snapshot_permissions WHERE snapshot_id = ?",
                                        "reset the permissions of snapshot " + snapshot_id));
    st.Bind(snapshot_id);
    return st.Run();
  });
}

Result<std::vector<std::string>> Catalog::ListSnapshotPermissions(const std::string& snapshot_id) {
  std::lock_guard lock(mu_);
  std::vector<std::string> out;
  // One read transaction: the existence check and the list see the same state.
  RETURN_IF_ERROR(InTransaction(
      [&]() -> Status {
        RETURN_IF_ERROR(SnapshotStateOf(snapshot_id));
        ASSIGN_OR_RETURN(Statement st,
                         Statement::Prepare(*db_,
                                            "SELECT grantee FROM snapshot_permissions WHERE snapshot_id = ?"
                                            " ORDER BY grantee",
                                            "list the permissions of snapshot " + snapshot_id));
        st.Bind(snapshot_id);
        ASSIGN_OR_RETURN(out, ReadRows<std::string>(st, [](Statement& r) { return r.Text(0); }));
        return OkStatus();
      },
      /*write=*/false));
  return out;
}

Result<std::map<std::string, std::vector<std::string>>> Catalog::ListSnapshotPermissions(
    const std::vector<std::string>& snapshot_ids) {
  std::map<std::string, std::vector<std::string>> out;
  const std::vector<std::vector<std::string>> chunks = ChunkIds(snapshot_ids);
  if (chunks.empty()) return out;
  std::lock_guard lock(mu_);
  // One read transaction: every chunk sees the same state.
  RETURN_IF_ERROR(InTransaction(
      [&]() -> Status {
        for (const auto& chunk : chunks) {
          // The join leaves out grants of a snapshot that is gone (a rebuild in progress).
          ASSIGN_OR_RETURN(Statement st,
                           Statement::Prepare(*db_,
                                              "SELECT p.snapshot_id, p.grantee FROM snapshot_permissions p"
                                              " JOIN snapshots s ON s.snapshot_id = p.snapshot_id"
                                              " WHERE p.snapshot_id IN (" +
                                                  Placeholders(chunk.size()) + ") ORDER BY p.snapshot_id, p.grantee",
                                              "list the permissions of snapshots"));
          for (const std::string& id : chunk) st.Bind(id);
          for (;;) {
            ASSIGN_OR_RETURN(bool row, st.Step());
            if (!row) break;
            out[st.Text(0)].push_back(st.Text(1));
          }
        }
        return OkStatus();
      },
      /*write=*/false));
  return out;
}

Result<std::vector<SnapshotRecord>> Catalog::ListSnapshotsSharedWith(const std::string& account_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      std::string(kSnapshotSelect) +
                                          " WHERE s.snapshot_id IN (SELECT snapshot_id FROM snapshot_permissions"
                                          " WHERE grantee IN (?, 'all')) AND s.account_id <> ?"
                                          " ORDER BY s.snapshot_id, t.key",
                                      "list snapshots shared with " + account_id));
  st.Bind(account_id).Bind(account_id);
  return ReadSnapshots(st);
}

Result<bool> Catalog::AnySnapshotsSharedWith(const std::string& account_id) {
  static const std::string sql =
      "SELECT EXISTS (SELECT 1 FROM snapshot_permissions p JOIN snapshots s ON s.snapshot_id = p.snapshot_id"
      " WHERE p.grantee IN (?, 'all') AND s.account_id <> ?)";
  return OnReader([&](Connection& db, bool cached) -> Result<bool> {
    ASSIGN_OR_RETURN(Statement st, Statement::PrepareOn(db, cached, sql, "find snapshots shared with " + account_id));
    st.Bind(account_id).Bind(account_id);
    ASSIGN_OR_RETURN(bool row, st.Step());
    return row && st.Int(0) != 0;
  });
}

}  // namespace snapvol
