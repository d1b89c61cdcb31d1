// Catalog: the usage index (usage_* tables) and its journal. What the numbers mean and how
// they move is engine/usage_accounting.h's business; this file only stores them.
#include <mutex>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_sql.h"

namespace snapvol {
using catalog_internal::Changes;
using catalog_internal::Connection;
using catalog_internal::Exec;
using catalog_internal::Statement;

namespace {

constexpr size_t kIdBytes = 32;

Status CheckId(const std::string& id, const std::string& what) {
  if (id.size() != kIdBytes) return InvalidArgument(what + ": an object id is 32 bytes, not " + std::to_string(id.size()));
  return OkStatus();
}

Result<int64_t> ReadGeneration(Connection& db) {
  return catalog_internal::QueryInt(db, "SELECT generation FROM usage_state WHERE one = 1", "read the usage generation");
}

}  // namespace

Status Catalog::JournalUsage(bool add, const std::string& snapshot_id) {
  const std::string what = "journal the usage of snapshot " + snapshot_id;
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    "INSERT INTO usage_journal (op, snapshot_id, account_id)"
                                                    " SELECT ?, snapshot_id, account_id FROM snapshots"
                                                    " WHERE snapshot_id = ?",
                                                    what));
  st.Bind(add ? 1 : -1).Bind(snapshot_id);
  return st.Run();
}

Result<std::optional<UsageJournalEntry>> Catalog::NextUsageEntry() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    "SELECT seq, op, snapshot_id, account_id FROM usage_journal"
                                                    " ORDER BY seq LIMIT 1",
                                                    "read the usage journal"));
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<UsageJournalEntry>();
  return std::optional<UsageJournalEntry>(UsageJournalEntry{st.Int(0), st.Int(1) > 0, st.Text(2), st.Text(3)});
}

Result<uint64_t> Catalog::PendingUsageEntries() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(int64_t n, catalog_internal::QueryInt(*db_, "SELECT count(*) FROM usage_journal",
                                                         "count the usage journal"));
  return static_cast<uint64_t>(n);
}

Result<std::vector<std::string>> Catalog::PendingUsageRemovals() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    "SELECT DISTINCT snapshot_id FROM usage_journal WHERE op = -1"
                                                    " ORDER BY snapshot_id",
                                                    "read the usage journal's removals"));
  std::vector<std::string> ids;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return ids;
    ids.push_back(st.Text(0));
  }
}

Result<int64_t> Catalog::UsageGeneration() {
  std::lock_guard lock(mu_);
  return ReadGeneration(*db_);
}

Result<std::optional<UsageObject>> Catalog::GetUsageObject(const std::string& id) {
  RETURN_IF_ERROR(CheckId(id, "read usage"));
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    "SELECT kind, stored_bytes, refs, holders, data_blocks"
                                                    " FROM usage_objects WHERE object_id = ?",
                                                    "read the usage of an object"));
  st.BindBlob(id);
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<UsageObject>();
  return std::optional<UsageObject>(
      UsageObject{id, static_cast<int>(st.Int(0)), st.U64(1), st.Int(2), st.Int(3), st.U64(4)});
}

Result<int64_t> Catalog::GetUsageAccountRefs(const std::string& object_id, const std::string& account_id) {
  RETURN_IF_ERROR(CheckId(object_id, "read usage"));
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    "SELECT refs FROM usage_account_refs"
                                                    " WHERE object_id = ? AND account_id = ?",
                                                    "read an account's references to an object"));
  st.BindBlob(object_id).Bind(account_id);
  ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? st.Int(0) : int64_t{0};
}

Result<std::vector<std::string>> Catalog::UsageHolders(const std::string& object_id) {
  RETURN_IF_ERROR(CheckId(object_id, "read usage"));
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    "SELECT account_id FROM usage_account_refs"
                                                    " WHERE object_id = ? ORDER BY account_id",
                                                    "read the accounts that reference an object"));
  st.BindBlob(object_id);
  std::vector<std::string> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return out;
    out.push_back(st.Text(0));
  }
}

Result<std::optional<SnapshotUsageRecord>> Catalog::GetSnapshotUsage(const std::string& snapshot_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      "SELECT account_id, root, depth, full_bytes, unique_bytes, unique_generation"
                                      " FROM usage_snapshots WHERE snapshot_id = ?",
                                      "read the usage of snapshot " + snapshot_id));
  st.Bind(snapshot_id);
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return std::optional<SnapshotUsageRecord>();
  SnapshotUsageRecord r;
  r.snapshot_id = snapshot_id;
  r.account_id = st.Text(0);
  r.root = st.Blob(1);
  r.depth = static_cast<uint32_t>(st.Int(2));
  r.full_bytes = st.U64(3);
  if (!st.IsNull(4)) r.unique_bytes = st.U64(4);
  r.unique_generation = st.Int(5);
  return std::optional<SnapshotUsageRecord>(std::move(r));
}

Status Catalog::ApplyUsageUpdate(const UsageUpdate& u) {
  for (const auto& o : u.objects) RETURN_IF_ERROR(CheckId(o.id, "apply usage"));
  for (const auto& r : u.account_refs) RETURN_IF_ERROR(CheckId(r.object_id, "apply usage"));
  if (u.add_snapshot) RETURN_IF_ERROR(CheckId(u.add_snapshot->root, "apply usage"));
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    const std::string what = "apply usage journal entry " + std::to_string(u.journal_seq);
    ASSIGN_OR_RETURN(int64_t generation, ReadGeneration(*db_));
    if (generation != u.expected_generation)
      return Conflict("the usage index changed while entry " + std::to_string(u.journal_seq) + " was worked out");
    ASSIGN_OR_RETURN(Statement del, Statement::Prepare(*db_, "DELETE FROM usage_journal WHERE seq = ?", what));
    del.Bind(u.journal_seq);
    RETURN_IF_ERROR(del.Run());
    if (Changes(*db_) != 1) return Conflict("usage journal entry " + std::to_string(u.journal_seq) + " is gone");

    ASSIGN_OR_RETURN(Statement put_obj,
                     Statement::Prepare(*db_,
                                        "INSERT INTO usage_objects"
                                        " (object_id, kind, stored_bytes, refs, holders, data_blocks)"
                                        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (object_id) DO UPDATE SET"
                                        " kind = excluded.kind, stored_bytes = excluded.stored_bytes,"
                                        " refs = excluded.refs, holders = excluded.holders,"
                                        " data_blocks = excluded.data_blocks",
                                        what));
    ASSIGN_OR_RETURN(Statement del_obj,
                     Statement::Prepare(*db_, "DELETE FROM usage_objects WHERE object_id = ?", what));
    for (const auto& o : u.objects) {
      Statement& st = o.refs > 0 ? put_obj : del_obj;
      st.Reset();
      st.BindBlob(o.id);
      if (o.refs > 0) st.Bind(o.kind).Bind(o.stored_bytes).Bind(o.refs).Bind(o.holders).Bind(o.data_blocks);
      RETURN_IF_ERROR(st.Run());
    }
    ASSIGN_OR_RETURN(Statement put_ref,
                     Statement::Prepare(*db_,
                                        "INSERT INTO usage_account_refs (object_id, account_id, refs) VALUES (?, ?, ?)"
                                        " ON CONFLICT (object_id, account_id) DO UPDATE SET refs = excluded.refs",
                                        what));
    ASSIGN_OR_RETURN(Statement del_ref,
                     Statement::Prepare(*db_,
                                        "DELETE FROM usage_account_refs WHERE object_id = ? AND account_id = ?", what));
    for (const auto& r : u.account_refs) {
      Statement& st = r.refs > 0 ? put_ref : del_ref;
      st.Reset();
      st.BindBlob(r.object_id).Bind(r.account_id);
      if (r.refs > 0) st.Bind(r.refs);
      RETURN_IF_ERROR(st.Run());
    }
    // UPDATE, then INSERT when there was no row (an upsert would check the CHECKs against
    // the delta itself). A negative total fails the CHECK: the index would be wrong.
    ASSIGN_OR_RETURN(Statement add_to,
                     Statement::Prepare(*db_,
                                        "UPDATE usage_accounts SET exclusive_bytes = exclusive_bytes + ?,"
                                        " shared_bytes = shared_bytes + ? WHERE account_id = ?",
                                        what));
    ASSIGN_OR_RETURN(Statement insert,
                     Statement::Prepare(*db_,
                                        "INSERT INTO usage_accounts (account_id, exclusive_bytes, shared_bytes)"
                                        " VALUES (?, ?, ?)",
                                        what));
    for (const auto& [account, delta] : u.account_deltas) {
      if (delta.first == 0 && delta.second == 0) continue;
      add_to.Reset();
      add_to.Bind(delta.first).Bind(delta.second).Bind(account);
      RETURN_IF_ERROR(add_to.Run());
      if (Changes(*db_) != 0) continue;
      insert.Reset();
      insert.Bind(account).Bind(delta.first).Bind(delta.second);
      RETURN_IF_ERROR(insert.Run());
    }
    if (u.add_snapshot) {
      const SnapshotUsageRecord& s = *u.add_snapshot;
      ASSIGN_OR_RETURN(Statement st,
                       Statement::Prepare(*db_,
                                          "INSERT INTO usage_snapshots (snapshot_id, account_id, root, depth, full_bytes)"
                                          " VALUES (?, ?, ?, ?, ?)",
                                          what));
      st.Bind(s.snapshot_id).Bind(s.account_id).BindBlob(s.root).Bind(s.depth).Bind(s.full_bytes);
      RETURN_IF_ERROR(st.Run());
    }
    if (u.remove_snapshot) {
      ASSIGN_OR_RETURN(Statement st,
                       Statement::Prepare(*db_, "DELETE FROM usage_snapshots WHERE snapshot_id = ?", what));
      st.Bind(*u.remove_snapshot);
      RETURN_IF_ERROR(st.Run());
    }
    return Exec(*db_,
                "DELETE FROM usage_accounts WHERE exclusive_bytes = 0 AND shared_bytes = 0 AND account_id NOT IN"
                " (SELECT account_id FROM usage_snapshots);"
                " UPDATE usage_state SET generation = generation + 1 WHERE one = 1;",
                what);
  });
}

Status Catalog::CacheSnapshotUnique(const std::string& snapshot_id, uint64_t unique_bytes, int64_t generation) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      "UPDATE usage_snapshots SET unique_bytes = ?, unique_generation = ?"
                                      " WHERE snapshot_id = ?"
                                      " AND ? = (SELECT generation FROM usage_state WHERE one = 1)",
                                      "remember the unique bytes of snapshot " + snapshot_id));
  st.Bind(unique_bytes).Bind(generation).Bind(snapshot_id).Bind(generation);
  return st.Run();
}

Result<std::vector<AccountUsageRecord>> Catalog::ListAccountUsage() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      "SELECT a.account_id, coalesce(u.exclusive_bytes, 0), coalesce(u.shared_bytes, 0),"
                                      " (SELECT count(*) FROM usage_snapshots s WHERE s.account_id = a.account_id)"
                                      " FROM (SELECT account_id FROM usage_accounts UNION"
                                      "       SELECT account_id FROM usage_snapshots) a"
                                      " LEFT JOIN usage_accounts u ON u.account_id = a.account_id"
                                      " ORDER BY a.account_id",
                                      "read the usage of accounts"));
  std::vector<AccountUsageRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return out;
    out.push_back(AccountUsageRecord{st.Text(0), st.U64(1), st.U64(2), st.U64(3)});
  }
}

Result<uint64_t> Catalog::UsageStoredBytes() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(int64_t n, catalog_internal::QueryInt(*db_, "SELECT coalesce(sum(stored_bytes), 0) FROM usage_objects",
                                                         "sum the stored bytes of the usage index"));
  return static_cast<uint64_t>(n);
}

Status Catalog::ResetUsage() {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    return Exec(*db_,
                "DELETE FROM usage_journal; DELETE FROM usage_objects; DELETE FROM usage_account_refs;"
                " DELETE FROM usage_snapshots; DELETE FROM usage_accounts;"
                " UPDATE usage_state SET generation = generation + 1 WHERE one = 1;"
                " INSERT INTO usage_journal (op, snapshot_id, account_id)"
                "   SELECT 1, snapshot_id, account_id FROM snapshots WHERE state = 'completed'"
                "   ORDER BY start_time_ms, snapshot_id;",
                "reset the usage index");
  });
}

}  // namespace snapvol
