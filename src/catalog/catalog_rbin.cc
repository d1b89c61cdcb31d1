// Catalog: the Recycle Bin's retention rules (rbin_rules) and the snapshots it holds
// (recycle_bin, recycle_bin_tags). A binned snapshot's row moves out of snapshots in the same
// transaction as DeleteSnapshot's checks, so nothing that lists snapshots sees it.
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_sql.h"

namespace snapvol {
using catalog_internal::Changes;
using catalog_internal::Connection;
using catalog_internal::Exec;
using catalog_internal::ReadRows;
using catalog_internal::Statement;
using catalog_internal::Violation;

namespace {

constexpr char kRuleColumns[] =
    "rule_id, account_id, resource_type, description, retention_days, resource_tags, exclude_tags, tags,"
    " lock_state, unlock_delay_days, lock_end_ms, created_ms";

Result<std::vector<RbinRuleRecord>> ReadRules(Statement& st) {
  return ReadRows<RbinRuleRecord>(st, [](Statement& r) {
    return RbinRuleRecord{r.Text(0), r.Text(1), r.Text(2), r.Text(3),  r.Int(4),  r.Text(5),
                          r.Text(6), r.Text(7), r.Text(8), r.Int(9), r.Int(10), r.Int(11)};
  });
}

// The snapshot columns in kSnapshotSelect's order, then the bin's own.
constexpr char kBinSelect[] =
    "SELECT s.snapshot_id, s.volume_id, s.account_id, s.state, s.progress, s.start_time_ms,"
    " s.completed_time_ms, s.volume_size_bytes, s.block_size, s.description, s.state_message,"
    " s.parent_snapshot_id, s.encrypted, s.stored_bytes, s.changed_blocks, s.total_blocks,"
    " s.runner, t.key, t.value, s.rule_id, s.entered_ms, s.exit_ms"
    " FROM recycle_bin s LEFT JOIN recycle_bin_tags t ON t.snapshot_id = s.snapshot_id";
constexpr char kBinOrder[] = " ORDER BY s.entered_ms, s.snapshot_id, t.key";

Result<std::vector<BinnedSnapshotRecord>> ReadBinned(Statement& st) {
  std::vector<BinnedSnapshotRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    std::string id = st.Text(0);
    if (out.empty() || out.back().snapshot.snapshot_id != id) {
      BinnedSnapshotRecord b;
      RETURN_IF_ERROR(ReadSnapshotColumns(st, &b.snapshot));
      b.rule_id = st.Text(19);
      b.entered_ms = st.Int(20);
      b.exit_ms = st.Int(21);
      out.push_back(std::move(b));
    }
    if (!st.IsNull(17)) out.back().snapshot.tags.push_back(Tag{st.Text(17), st.Text(18)});
  }
  return out;
}

// The grantees of snapshot id in table (snapshot_permissions or recycle_bin_permissions).
Result<std::vector<std::string>> ReadGrantees(Connection& db, const char* table, const std::string& id) {
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db, std::string("SELECT grantee FROM ") + table +
                                                            " WHERE snapshot_id = ? ORDER BY grantee",
                                                    "read the grants of snapshot " + id));
  st.Bind(id);
  return ReadRows<std::string>(st, [](Statement& r) { return r.Text(0); });
}

Status WriteGrantees(Connection& db, const char* table, const std::string& id, const std::vector<std::string>& grantees) {
  for (const auto& g : grantees) {
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db, std::string("INSERT INTO ") + table +
                                                              " (snapshot_id, grantee) VALUES (?, ?)"
                                                              " ON CONFLICT DO NOTHING",
                                                      "keep the grants of snapshot " + id));
    st.Bind(id).Bind(g);
    RETURN_IF_ERROR(st.Run());
  }
  return OkStatus();
}

}  // namespace

Status Catalog::SetRecycleBinDefaultRetentionDays(int64_t days) {
  if (days < 0 || days > 3650)
    return InvalidArgument("a default Recycle Bin retention of " + std::to_string(days) + " days is not 0..3650");
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    "UPDATE recycle_bin_settings SET default_retention_days = ?"
                                                    " WHERE one = 1",
                                                    "record the default Recycle Bin rule"));
  st.Bind(days);
  return st.Run();
}

Result<int64_t> Catalog::GetRecycleBinDefaultRetentionDays() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    "SELECT default_retention_days FROM recycle_bin_settings"
                                                    " WHERE one = 1",
                                                    "read the default Recycle Bin rule"));
  ASSIGN_OR_RETURN(bool row, st.Step());
  return row ? st.Int(0) : int64_t{0};
}

Status Catalog::InsertRbinRule(const RbinRuleRecord& r) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    std::string("INSERT INTO rbin_rules (") + kRuleColumns +
                                                        ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                                    "insert retention rule " + r.rule_id));
  st.Bind(r.rule_id).Bind(r.account_id).Bind(r.resource_type).Bind(r.description).Bind(r.retention_days);
  st.Bind(r.resource_tags).Bind(r.exclude_tags).Bind(r.tags).Bind(r.lock_state).Bind(r.unlock_delay_days);
  st.Bind(r.lock_end_ms).Bind(r.created_ms);
  auto run = st.Run();
  if (!run && (st.violation() == Violation::kPrimaryKey || st.violation() == Violation::kUnique))
    return MakeError(ErrorCode::kAlreadyExists, "retention rule " + r.rule_id + " already exists");
  return run;
}

Result<RbinRuleRecord> Catalog::GetRbinRule(const std::string& rule_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_, std::string("SELECT ") + kRuleColumns + " FROM rbin_rules WHERE rule_id = ?",
                                      "read retention rule " + rule_id));
  st.Bind(rule_id);
  ASSIGN_OR_RETURN(auto rows, ReadRules(st));
  if (rows.empty()) return NotFound("retention rule " + rule_id + " not found");
  return std::move(rows.front());
}

Result<std::vector<RbinRuleRecord>> Catalog::ListRbinRules(std::optional<std::string> account_id) {
  std::lock_guard lock(mu_);
  std::string sql = std::string("SELECT ") + kRuleColumns + " FROM rbin_rules";
  if (account_id) sql += " WHERE account_id = ?";
  sql += " ORDER BY created_ms, rule_id";
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, sql, "list retention rules"));
  if (account_id) st.Bind(*account_id);
  return ReadRules(st);
}

Status Catalog::UpdateRbinRule(const RbinRuleRecord& r) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      "UPDATE rbin_rules SET resource_type = ?, description = ?, retention_days = ?,"
                                      " resource_tags = ?, exclude_tags = ?, tags = ?, lock_state = ?,"
                                      " unlock_delay_days = ?, lock_end_ms = ? WHERE rule_id = ?",
                                      "update retention rule " + r.rule_id));
  st.Bind(r.resource_type).Bind(r.description).Bind(r.retention_days).Bind(r.resource_tags).Bind(r.exclude_tags);
  st.Bind(r.tags).Bind(r.lock_state).Bind(r.unlock_delay_days).Bind(r.lock_end_ms).Bind(r.rule_id);
  RETURN_IF_ERROR(st.Run());
  if (Changes(*db_) == 0) return NotFound("retention rule " + r.rule_id + " not found");
  return OkStatus();
}

Status Catalog::DeleteRbinRule(const std::string& rule_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, "DELETE FROM rbin_rules WHERE rule_id = ?",
                                                    "delete retention rule " + rule_id));
  st.Bind(rule_id);
  RETURN_IF_ERROR(st.Run());
  if (Changes(*db_) == 0) return NotFound("retention rule " + rule_id + " not found");
  return OkStatus();
}

Status Catalog::WriteBinned(const BinnedSnapshotRecord& b) {
  const SnapshotRecord& s = b.snapshot;
  const std::string what = "put snapshot " + s.snapshot_id + " in the recycle bin";
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      "INSERT INTO recycle_bin (snapshot_id, volume_id, account_id, state, progress,"
                                      " start_time_ms, completed_time_ms, volume_size_bytes, block_size, description,"
                                      " state_message, parent_snapshot_id, encrypted, stored_bytes, changed_blocks,"
                                      " total_blocks, runner, rule_id, entered_ms, exit_ms)"
                                      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                      what));
  st.Bind(s.snapshot_id).Bind(s.volume_id).Bind(s.account_id).Bind(SnapshotStateName(s.state));
  st.Bind(s.progress).Bind(s.start_time_ms).Bind(s.completed_time_ms).Bind(s.volume_size_bytes);
  st.Bind(s.block_size).Bind(s.description).Bind(s.state_message).Bind(s.parent_snapshot_id);
  st.Bind(s.encrypted).Bind(s.stored_bytes).Bind(s.changed_blocks).Bind(s.total_blocks).Bind(s.runner);
  st.Bind(b.rule_id).Bind(b.entered_ms).Bind(b.exit_ms);
  auto run = st.Run();
  if (!run && (st.violation() == Violation::kPrimaryKey || st.violation() == Violation::kUnique))
    return MakeError(ErrorCode::kAlreadyExists, "snapshot " + s.snapshot_id + " is already in the recycle bin");
  RETURN_IF_ERROR(run);
  for (const auto& t : s.tags) {
    ASSIGN_OR_RETURN(Statement tag, Statement::Prepare(*db_,
                                                       "INSERT INTO recycle_bin_tags (snapshot_id, key, value)"
                                                       " VALUES (?, ?, ?)",
                                                       what));
    tag.Bind(s.snapshot_id).Bind(t.key).Bind(t.value);
    RETURN_IF_ERROR(tag.Run());
  }
  return OkStatus();
}

Status Catalog::BinSnapshot(const std::string& id, int64_t now_ms, int64_t exit_ms, const std::string& rule_id,
                            const std::function<Status()>& before_move) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(SnapshotRecord s, GetSnapshot(id));
    // Its grants go with it (DeleteSnapshot removes them from snapshot_permissions).
    ASSIGN_OR_RETURN(std::vector<std::string> grantees, ReadGrantees(*db_, "snapshot_permissions", id));
    RETURN_IF_ERROR(DeleteSnapshot(id, now_ms, before_move));
    RETURN_IF_ERROR(WriteBinned(BinnedSnapshotRecord{std::move(s), rule_id, now_ms, exit_ms}));
    return WriteGrantees(*db_, "recycle_bin_permissions", id, grantees);
  });
}

Result<BinnedSnapshotRecord> Catalog::GetBinnedSnapshot(const std::string& id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    std::string(kBinSelect) + " WHERE s.snapshot_id = ?" + kBinOrder,
                                                    "read binned snapshot " + id));
  st.Bind(id);
  ASSIGN_OR_RETURN(auto rows, ReadBinned(st));
  if (rows.empty()) return NotFound("snapshot " + id + " is not in the recycle bin");
  return std::move(rows.front());
}

Result<std::vector<BinnedSnapshotRecord>> Catalog::ListBinnedSnapshots(std::optional<std::string> account_id) {
  std::lock_guard lock(mu_);
  std::string sql = kBinSelect;
  if (account_id) sql += " WHERE s.account_id = ?";
  sql += kBinOrder;
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, sql, "list the recycle bin"));
  if (account_id) st.Bind(*account_id);
  return ReadBinned(st);
}

Status Catalog::RestoreBinnedSnapshot(const std::string& id, const std::function<Status()>& before_restore) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(BinnedSnapshotRecord b, GetBinnedSnapshot(id));
    ASSIGN_OR_RETURN(std::vector<std::string> grantees, ReadGrantees(*db_, "recycle_bin_permissions", id));
    RETURN_IF_ERROR(RemoveBinnedSnapshot(id));  // and its kept grants (ON DELETE CASCADE)
    if (before_restore) RETURN_IF_ERROR(before_restore());
    RETURN_IF_ERROR(UpsertSnapshot(b.snapshot));
    return WriteGrantees(*db_, "snapshot_permissions", id, grantees);
  });
}

Status Catalog::RemoveBinnedSnapshot(const std::string& id, const std::function<Status()>& before_remove) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, "DELETE FROM recycle_bin WHERE snapshot_id = ?",
                                                      "remove snapshot " + id + " from the recycle bin"));
    st.Bind(id);
    RETURN_IF_ERROR(st.Run());
    if (Changes(*db_) == 0) return NotFound("snapshot " + id + " is not in the recycle bin");
    if (before_remove) RETURN_IF_ERROR(before_remove());
    return OkStatus();
  });
}

Status Catalog::ReplaceRecycleBin(const std::vector<BinnedSnapshotRecord>& binned) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    // The kept grants are not in the store: those of snapshots still binned stay, as a rebuild
    // keeps the grants of the live snapshots it finds again.
    const char* what = "rebuild the recycle bin";
    RETURN_IF_ERROR(Exec(*db_, "CREATE TEMP TABLE kept_grants AS SELECT snapshot_id, grantee"
                                    " FROM recycle_bin_permissions", what));
    RETURN_IF_ERROR(Exec(*db_, "DELETE FROM recycle_bin", "empty the recycle bin"));
    for (const auto& b : binned) RETURN_IF_ERROR(WriteBinned(b));
    RETURN_IF_ERROR(Exec(*db_, "INSERT INTO recycle_bin_permissions (snapshot_id, grantee)"
                                    " SELECT snapshot_id, grantee FROM kept_grants"
                                    " WHERE snapshot_id IN (SELECT snapshot_id FROM recycle_bin)", what));
    return Exec(*db_, "DROP TABLE kept_grants", what);
  });
}

}  // namespace snapvol
