// Catalog: snapshots, their state transitions, listing and deletion.
#include "catalog/catalog.h"

#include <algorithm>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

#include "catalog/catalog_sql.h"
#include "core/clock.h"
#include "core/ids.h"

namespace snapvol {
using catalog_internal::Changes;
using catalog_internal::ChunkIds;
using catalog_internal::Connection;
using catalog_internal::Exec;
using catalog_internal::kLockColumns;
using catalog_internal::kRebuildHint;
using catalog_internal::kSnapshotOrder;
using catalog_internal::kSnapshotSelect;
using catalog_internal::Placeholders;
using catalog_internal::ReadSnapshotLocks;
using catalog_internal::ReadSnapshots;
using catalog_internal::Statement;
using catalog_internal::Violation;

namespace {

// "0%".."100%", no sign, no leading zeros.
Status ValidateProgress(std::string_view progress, const std::string& snapshot_id) {
  std::string_view digits = progress;
  bool ok = !digits.empty() && digits.back() == '%';
  if (ok) digits.remove_suffix(1);
  ok = ok && !digits.empty() && digits.size() <= 3 &&
       std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }) &&
       (digits.size() == 1 || digits[0] != '0');
  if (ok) {
    int value = 0;
    for (char c : digits) value = value * 10 + (c - '0');
    ok = value <= 100;
  }
  if (!ok) {
    return InvalidArgument("snapshot " + snapshot_id + ": progress '" + std::string(progress) +
                           "' is not a percentage from 0% to 100%");
  }
  return OkStatus();
}

Status ValidateSnapshot(const SnapshotRecord& s) {
  if (!IsSnapshotId(s.snapshot_id)) {
    return InvalidArgument("'" + s.snapshot_id + "' is not a snapshot id");
  }
  if (!IsVolumeId(s.volume_id)) {
    return InvalidArgument("snapshot " + s.snapshot_id + ": '" + s.volume_id +
                           "' is not a volume id");
  }
  if (!IsAccountId(s.account_id)) {
    return InvalidArgument("snapshot " + s.snapshot_id + ": '" + s.account_id +
                           "' is not an account id");
  }
  if (!s.parent_snapshot_id.empty() && !IsSnapshotId(s.parent_snapshot_id)) {
    return InvalidArgument("snapshot " + s.snapshot_id + ": parent '" + s.parent_snapshot_id +
                           "' is not a snapshot id");
  }
  if (s.block_size == 0) return InvalidArgument("snapshot " + s.snapshot_id + ": block size is 0");
  RETURN_IF_ERROR(ValidateProgress(s.progress, s.snapshot_id));
  return ValidateTagList(s.tags, "tags of " + s.snapshot_id);
}


}  // namespace

namespace catalog_internal {

Status ReadSnapshotColumns(Statement& st, SnapshotRecord* out) {
  SnapshotRecord& s = *out;
  s.snapshot_id = st.Text(0);
  s.volume_id = st.Text(1);
  s.account_id = st.Text(2);
  std::string state = st.Text(3);
  auto parsed = ParseSnapshotState(state);
  if (!parsed) {
    return Corruption("catalog database is damaged: snapshot " + s.snapshot_id + " has unknown state '" + state +
                      "'; " + kRebuildHint);
  }
  s.state = *parsed;
  s.progress = st.Text(4);
  s.start_time_ms = st.Int(5);
  s.completed_time_ms = st.Int(6);
  s.volume_size_bytes = st.U64(7);
  s.block_size = static_cast<uint32_t>(st.Int(8));
  s.description = st.Text(9);
  s.state_message = st.Text(10);
  s.parent_snapshot_id = st.Text(11);
  s.encrypted = st.Int(12) != 0;
  s.stored_bytes = st.U64(13);
  s.changed_blocks = st.U64(14);
  s.total_blocks = st.U64(15);
  s.runner = st.Text(16);
  return OkStatus();
}

Result<std::vector<SnapshotRecord>> ReadSnapshots(Statement& st) {
  std::vector<SnapshotRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) break;
    std::string id = st.Text(0);
    if (out.empty() || out.back().snapshot_id != id) {
      SnapshotRecord s;
      RETURN_IF_ERROR(ReadSnapshotColumns(st, &s));
      out.push_back(std::move(s));
    }
    if (!st.IsNull(17)) out.back().tags.push_back(Tag{st.Text(17), st.Text(18)});
  }
  return out;
}

}  // namespace catalog_internal

const char* SnapshotStateName(SnapshotState state) {
  switch (state) {
    case SnapshotState::kPending:
      return "pending";
    case SnapshotState::kCompleted:
      return "completed";
    case SnapshotState::kError:
      return "error";
  }
  return "unknown";
}

Result<SnapshotState> ParseSnapshotState(std::string_view name) {
  for (SnapshotState s :
       {SnapshotState::kPending, SnapshotState::kCompleted, SnapshotState::kError})
    if (name == SnapshotStateName(s)) return s;
  return InvalidArgument("unknown snapshot state '" + std::string(name) +
                         "' (expected pending, completed or error)");
}

Status Catalog::WriteSnapshot(const SnapshotRecord& s, bool replace) {
  Connection& db = *db_;
  const std::string what = (replace ? "upsert snapshot " : "insert snapshot ") + s.snapshot_id;
  if (replace) {
    ASSIGN_OR_RETURN(Statement del,
                     Statement::Prepare(db, "DELETE FROM tags WHERE resource_id = ?", what));
    del.Bind(s.snapshot_id);
    RETURN_IF_ERROR(del.Run());
    // The replaced row's direct-snapshot journal goes with it (as it did when this was an
    // INSERT OR REPLACE, whose delete cascaded); its locks and grants stay (no foreign key).
    RETURN_IF_ERROR(DeleteDirectJournal(s.snapshot_id));
  }
  std::string sql =
      "INSERT INTO snapshots (snapshot_id, volume_id, account_id, state, progress, start_time_ms,"
      " completed_time_ms, volume_size_bytes, block_size, description, state_message,"
      " parent_snapshot_id, encrypted, stored_bytes, changed_blocks, total_blocks, runner)"
      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
  if (replace) {
    sql +=
        " ON CONFLICT (snapshot_id) DO UPDATE SET volume_id = excluded.volume_id,"
        " account_id = excluded.account_id, state = excluded.state, progress = excluded.progress,"
        " start_time_ms = excluded.start_time_ms, completed_time_ms = excluded.completed_time_ms,"
        " volume_size_bytes = excluded.volume_size_bytes, block_size = excluded.block_size,"
        " description = excluded.description, state_message = excluded.state_message,"
        " parent_snapshot_id = excluded.parent_snapshot_id, encrypted = excluded.encrypted,"
        " stored_bytes = excluded.stored_bytes, changed_blocks = excluded.changed_blocks,"
        " total_blocks = excluded.total_blocks, runner = excluded.runner";
  }
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db, sql, what));
  st.Bind(s.snapshot_id).Bind(s.volume_id).Bind(s.account_id).Bind(SnapshotStateName(s.state));
  st.Bind(s.progress).Bind(s.start_time_ms).Bind(s.completed_time_ms).Bind(s.volume_size_bytes);
  st.Bind(s.block_size).Bind(s.description).Bind(s.state_message).Bind(s.parent_snapshot_id);
  st.Bind(s.encrypted).Bind(s.stored_bytes).Bind(s.changed_blocks).Bind(s.total_blocks);
  st.Bind(s.runner);
  auto run = st.Run();
  if (!run && (st.violation() == Violation::kPrimaryKey || st.violation() == Violation::kUnique)) {
    return MakeError(ErrorCode::kAlreadyExists, "snapshot " + s.snapshot_id + " already exists");
  }
  if (!run && st.violation() == Violation::kForeignKey) {
    return InvalidArgument(what + ": account " + s.account_id + " is not in the catalog");
  }
  RETURN_IF_ERROR(run);
  return WriteTags(s.snapshot_id, s.tags);
}

Status Catalog::InsertSnapshot(const SnapshotRecord& s) {
  RETURN_IF_ERROR(ValidateSnapshot(s));
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    RETURN_IF_ERROR(WriteSnapshot(s, /*replace=*/false));
    // Counted with the new row, in the transaction that wrote it: see catalog.h.
    return EnforceSnapshotQuota(s.account_id);
  });
}

Status Catalog::UpsertSnapshot(const SnapshotRecord& s) {
  RETURN_IF_ERROR(ValidateSnapshot(s));
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    RETURN_IF_ERROR(WriteSnapshot(s, /*replace=*/true));
    // Accounting an add twice is a no-op (UsageAccounting skips an accounted snapshot).
    if (s.state == SnapshotState::kCompleted) RETURN_IF_ERROR(JournalUsage(true, s.snapshot_id));
    return OkStatus();
  });
}

Result<SnapshotRecord> Catalog::GetSnapshot(const std::string& id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    std::string(kSnapshotSelect) +
                                                        " WHERE s.snapshot_id = ?" + kSnapshotOrder,
                                                    "get snapshot " + id));
  st.Bind(id);
  ASSIGN_OR_RETURN(std::vector<SnapshotRecord> rows, ReadSnapshots(st));
  if (rows.empty()) return NotFound("snapshot " + id + " not found");
  return std::move(rows.front());
}

Result<std::vector<SnapshotRecord>> Catalog::ListSnapshots(const SnapshotFilter& f) {
  std::string where;
  std::vector<std::string> params;
  auto add = [&](const char* cond, std::string value) {
    where += where.empty() ? " WHERE " : " AND ";
    where += cond;
    params.push_back(std::move(value));
  };
  if (f.volume_id) add("s.volume_id = ?", *f.volume_id);
  if (f.account_id) add("s.account_id = ?", *f.account_id);
  if (f.state) add("s.state = ?", SnapshotStateName(*f.state));
  if (f.tag) {
    add("EXISTS (SELECT 1 FROM tags t WHERE t.resource_id = s.snapshot_id AND t.key = ?", f.tag->key);
    where += " AND t.value = ?)";
    params.push_back(f.tag->value);
  }

  // Each query carries at most kMaxIdsPerQuery ids; an empty chunk list means "any id".
  const std::vector<std::vector<std::string>> chunks = ChunkIds(f.snapshot_ids);

  std::lock_guard lock(mu_);
  auto query = [&](const std::vector<std::string>* ids) -> Result<std::vector<SnapshotRecord>> {
    std::string sql = std::string(kSnapshotSelect) + where;
    if (ids != nullptr) {
      sql += where.empty() ? " WHERE " : " AND ";
      sql += "s.snapshot_id IN (" + Placeholders(ids->size()) + ")";
    }
    sql += kSnapshotOrder;
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, sql, "list snapshots"));
    for (const std::string& p : params) st.Bind(p);
    if (ids != nullptr)
      for (const std::string& id : *ids) st.Bind(id);
    return ReadSnapshots(st);
  };

  if (chunks.empty()) return query(nullptr);
  if (chunks.size() == 1) return query(&chunks.front());
  std::vector<SnapshotRecord> all;
  // One read transaction so that every chunk sees the same state of the catalog.
  auto query_all = [&]() -> Status {
    for (const auto& chunk : chunks) {
      ASSIGN_OR_RETURN(std::vector<SnapshotRecord> part, query(&chunk));
      std::move(part.begin(), part.end(), std::back_inserter(all));
    }
    return OkStatus();
  };
  RETURN_IF_ERROR(InTransaction(query_all, /*write=*/false));
  std::sort(all.begin(), all.end(), [](const SnapshotRecord& a, const SnapshotRecord& b) {
    return std::tie(a.start_time_ms, a.snapshot_id) < std::tie(b.start_time_ms, b.snapshot_id);
  });
  return all;
}

Result<std::vector<SnapshotRecord>> Catalog::ListSnapshotsPage(const std::string& account_id,
                                                               const std::string& after_id,
                                                               size_t limit) {
  static const std::string sql = std::string(kSnapshotSelect) +
                                 " WHERE s.snapshot_id IN (SELECT snapshot_id FROM snapshots"
                                 " WHERE account_id = ? AND snapshot_id > ? ORDER BY snapshot_id LIMIT ?)"
                                 " ORDER BY s.snapshot_id, t.key";
  return OnReader([&](Connection& db, bool cached) -> Result<std::vector<SnapshotRecord>> {
    ASSIGN_OR_RETURN(Statement st, Statement::PrepareOn(db, cached, sql, "list a page of snapshots"));
    st.Bind(account_id).Bind(after_id).Bind(static_cast<int64_t>(std::min<size_t>(limit, 1u << 30)));
    return ReadSnapshots(st);
  });
}

Result<std::string> Catalog::SnapshotStateOf(const std::string& id) {
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(
                                     *db_, "SELECT state FROM snapshots WHERE snapshot_id = ?",
                                     "get state of snapshot " + id));
  st.Bind(id);
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return NotFound("snapshot " + id + " not found");
  return st.Text(0);
}

// Explains why an update guarded by "state = 'pending'" changed nothing.
Status Catalog::CheckPendingTransition(const std::string& id, const char* action) {
  ASSIGN_OR_RETURN(std::string state, SnapshotStateOf(id));
  return Conflict(std::string("cannot ") + action + " snapshot " + id + ": it is " + state +
                  ", not pending");
}

Status Catalog::UpdateProgress(const std::string& id, const std::string& progress) {
  RETURN_IF_ERROR(ValidateProgress(progress, id));
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    // Progress lost in a crash of the database server is written again by the next step, or
    // settled by the completion, which is durable.
    RETURN_IF_ERROR(db_->RelaxCommitDurability());
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_,
                                        "UPDATE snapshots SET progress = ?"
                                        " WHERE snapshot_id = ? AND state = 'pending'",
                                        "update progress of snapshot " + id));
    st.Bind(progress).Bind(id);
    RETURN_IF_ERROR(st.Run());
    if (Changes(*db_) == 0) return CheckPendingTransition(id, "update progress of");
    return OkStatus();
  });
}

Status Catalog::MarkCompleted(const std::string& id, int64_t completed_ms, uint64_t stored_bytes,
                              uint64_t changed_blocks, uint64_t total_blocks) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_,
                                        "UPDATE snapshots SET state = 'completed',"
                                        " progress = '100%', completed_time_ms = ?,"
                                        " stored_bytes = ?, changed_blocks = ?,"
                                        " total_blocks = ?, runner = ''"
                                        " WHERE snapshot_id = ? AND state = 'pending'",
                                        "mark snapshot " + id + " completed"));
    st.Bind(completed_ms).Bind(stored_bytes).Bind(changed_blocks).Bind(total_blocks).Bind(id);
    RETURN_IF_ERROR(st.Run());
    if (Changes(*db_) == 0) return CheckPendingTransition(id, "complete");
    RETURN_IF_ERROR(DeleteDirectJournal(id));
    return JournalUsage(true, id);
  });
}

Status Catalog::MarkError(const std::string& id, const std::string& message) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_,
                                        "UPDATE snapshots SET state = 'error',"
                                        " state_message = ?, runner = ''"
                                        " WHERE snapshot_id = ? AND state = 'pending'",
                                        "mark snapshot " + id + " failed"));
    st.Bind(message).Bind(id);
    RETURN_IF_ERROR(st.Run());
    if (Changes(*db_) == 0) return CheckPendingTransition(id, "fail");
    return DeleteDirectJournal(id);
  });
}

Status Catalog::DeleteSnapshot(const std::string& id, int64_t now_ms, const std::function<Status()>& before_delete) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    const std::string what = "delete snapshot " + id;
    ASSIGN_OR_RETURN(Statement locked,
                     Statement::Prepare(*db_, std::string("SELECT ") + kLockColumns +
                                                       " FROM snapshot_locks WHERE snapshot_id = ?",
                                        what));
    locked.Bind(id);
    ASSIGN_OR_RETURN(auto locks, ReadSnapshotLocks(locked));
    if (!locks.empty() && LockStateAt(locks.front(), now_ms) != "expired")
      return Conflict("snapshot " + id + " is locked (" + LockStateAt(locks.front(), now_ms) + ") until " +
                      FormatIso8601(locks.front().expires_ms) + "; it cannot be deleted before then");
    ASSIGN_OR_RETURN(Statement exists,
                     Statement::Prepare(*db_, "SELECT 1 FROM snapshots WHERE snapshot_id = ?", what));
    exists.Bind(id);
    ASSIGN_OR_RETURN(bool found, exists.Step());
    if (!found) return NotFound("snapshot " + id + " not found");
    // A volume restored lazily from it still reads its blocks from the store.
    ASSIGN_OR_RETURN(Statement restored,
                     Statement::Prepare(*db_, "SELECT volume_id, path, state FROM volumes WHERE snapshot_id = ?"
                                                   " ORDER BY volume_id",
                                        what));
    restored.Bind(id);
    for (;;) {
      ASSIGN_OR_RETURN(bool row, restored.Step());
      if (!row) break;
      VolumeRecord v{.volume_id = restored.Text(0), .path = restored.Text(1), .snapshot_id = id,
                     .state = restored.Text(2)};
      if (ReadsFromItsSnapshot(v))
        return Conflict("snapshot " + id + " is in use: volume " + v.volume_id + " is still loading from it");
    }
    if (before_delete) RETURN_IF_ERROR(before_delete());
    RETURN_IF_ERROR(JournalUsage(false, id));  // before the row goes: the entry names its account
    for (const char* sql : {"DELETE FROM snapshots WHERE snapshot_id = ?", "DELETE FROM tags WHERE resource_id = ?",
                            "DELETE FROM snapshot_locks WHERE snapshot_id = ?",
                            "DELETE FROM snapshot_permissions WHERE snapshot_id = ?"}) {
      ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, sql, what));
      st.Bind(id);
      RETURN_IF_ERROR(st.Run());
    }
    return OkStatus();
  });
}

Result<SnapshotRecord> Catalog::LatestCompletedSnapshot(const std::string& volume_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      std::string(kSnapshotSelect) +
                                          " WHERE s.snapshot_id = (SELECT snapshot_id"
                                          " FROM snapshots WHERE volume_id = ?"
                                          " AND state = 'completed'"
                                          " AND snapshot_id NOT IN (SELECT snapshot_id"
                                          " FROM snapshot_verifications WHERE damaged_ms > 0)"
                                          " ORDER BY start_time_ms DESC, snapshot_id DESC"
                                          " LIMIT 1)" +
                                          kSnapshotOrder,
                                      "find latest completed snapshot of volume " + volume_id));
  st.Bind(volume_id);
  ASSIGN_OR_RETURN(std::vector<SnapshotRecord> rows, ReadSnapshots(st));
  if (rows.empty()) return NotFound("volume " + volume_id + " has no completed snapshot");
  return std::move(rows.front());
}

Status Catalog::DeleteAllSnapshots() {
  std::lock_guard lock(mu_);
  // Grants and locks stay: the store's manifests do not hold them, so a rebuild that upserts
  // the same snapshots must find them again. DeleteOrphanedGrantsAndLocks removes the rest.
  return InTransaction([&]() -> Status {
    return Exec(*db_,
                "DELETE FROM tags WHERE resource_id IN (SELECT snapshot_id FROM snapshots);"
                " DELETE FROM snapshots;"
                // The usage index goes with them; the upserts that follow journal it anew.
                " DELETE FROM usage_journal; DELETE FROM usage_objects; DELETE FROM usage_account_refs;"
                " DELETE FROM usage_snapshots; DELETE FROM usage_accounts;"
                " UPDATE usage_state SET generation = generation + 1 WHERE one = 1;",
                "delete all snapshots");
  });
}

Status Catalog::DeleteOrphanedGrantsAndLocks() {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    return Exec(*db_,
                "DELETE FROM snapshot_permissions WHERE snapshot_id NOT IN (SELECT snapshot_id FROM snapshots);"
                " DELETE FROM snapshot_locks WHERE snapshot_id NOT IN (SELECT snapshot_id FROM snapshots);",
                "delete the grants and locks of snapshots no longer in the catalog");
  });
}

}  // namespace snapvol
