// Internal to src/catalog: the backend-neutral prepared-statement wrapper over the database
// seam (catalog_db.h) and the row helpers that every catalog_<table>.cc shares. Include only
// from src/catalog.
//
// Thread-safety: a Statement belongs to one connection and is used by one thread at a time
// (the caller holds the mutex guarding that connection).
#pragma once

#include <algorithm>
#include <concepts>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "catalog/catalog_db.h"
#include "catalog/catalog_records.h"
#include "core/status.h"

namespace snapvol::catalog_internal {

inline constexpr char kRebuildHint[] = "rebuild it with `snapvol catalog rebuild`";

// --- statements ---

// Deletes a statement, or hands one kept in its connection's cache back to it (which resets
// it for the next use).
struct StatementReleaser {
  Connection* cache_owner = nullptr;
  void operator()(StatementImpl* s) const {
    if (cache_owner != nullptr) {
      cache_owner->Release(s);
    } else {
      delete s;
    }
  }
};

// A prepared statement. Bind() takes parameters in order; a bind failure is reported by the
// next Step()/Run(). Every error names `what`.
class Statement {
 public:
  static Result<Statement> Prepare(Connection& db, std::string_view sql, std::string what) {
    ASSIGN_OR_RETURN(std::unique_ptr<StatementImpl> impl, db.Prepare(sql, what));
    return Statement(impl.release(), StatementReleaser{}, std::move(what));
  }
  // A statement prepared once per connection and kept in its cache; the returned Statement
  // hands it back (Connection::Release) when done.
  static Result<Statement> PrepareCached(Connection& db, const std::string& sql, std::string what) {
    ASSIGN_OR_RETURN(StatementImpl * impl, db.PrepareCached(sql, what));
    return Statement(impl, StatementReleaser{&db}, std::move(what));
  }
  // PrepareCached when cached (a reader connection, see Catalog::OnReader), else Prepare.
  static Result<Statement> PrepareOn(Connection& db, bool cached, const std::string& sql, std::string what) {
    return cached ? PrepareCached(db, sql, std::move(what)) : Prepare(db, sql, std::move(what));
  }

  Statement& Bind(std::string_view v) {
    if (v.data() == nullptr) v = "";  // a null pointer would bind SQL NULL
    impl_->BindText(next_param_++, v);
    return *this;
  }
  template <std::integral T>
  Statement& Bind(T v) {
    if constexpr (std::is_unsigned_v<T> && sizeof(T) >= sizeof(int64_t)) {
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) && !error_) {
        error_ = Error(ErrorCode::kInvalidArgument,
                       what_ + ": value " + std::to_string(v) + " is larger than 2^63-1");
      }
    }
    impl_->BindInt(next_param_++, static_cast<int64_t>(v));
    return *this;
  }

  Statement& BindBlob(std::string_view v) {
    impl_->BindBlob(next_param_++, v);
    return *this;
  }

  // Returns true when a row is ready, false when the statement has finished.
  Result<bool> Step() {
    if (error_) return std::unexpected(*error_);
    return impl_->Step();
  }
  // Steps to the end, ignoring any rows.
  Status Run() {
    for (;;) {
      ASSIGN_OR_RETURN(bool row, Step());
      if (!row) return OkStatus();
    }
  }
  // Makes the statement ready to bind and run again.
  void Reset() {
    impl_->Reset();
    next_param_ = 1;
    error_.reset();
  }

  // After a Step() failed: the constraint it broke, if any.
  Violation violation() const { return impl_->violation(); }

  std::string Text(int col) const { return impl_->Text(col); }
  int64_t Int(int col) const { return impl_->Int(col); }
  std::string Blob(int col) const { return impl_->Blob(col); }
  uint64_t U64(int col) const { return static_cast<uint64_t>(std::max<int64_t>(0, Int(col))); }
  bool IsNull(int col) const { return impl_->IsNull(col); }

 private:
  Statement(StatementImpl* impl, StatementReleaser releaser, std::string what)
      : impl_(impl, releaser), what_(std::move(what)) {}

  std::unique_ptr<StatementImpl, StatementReleaser> impl_;
  std::string what_;
  int next_param_ = 1;
  std::optional<Error> error_;  // a value no backend can store (see Bind)
};

// Stays far below SQLITE_MAX_VARIABLE_NUMBER however SQLite was built: a query by a list of
// ids runs once per chunk of at most this many.
inline constexpr size_t kMaxIdsPerQuery = 500;

// The distinct ids, sorted, in chunks of at most kMaxIdsPerQuery; none for no ids.
inline std::vector<std::vector<std::string>> ChunkIds(const std::vector<std::string>& ids) {
  std::vector<std::string> unique(ids);
  std::sort(unique.begin(), unique.end());
  unique.erase(std::unique(unique.begin(), unique.end()), unique.end());
  std::vector<std::vector<std::string>> chunks;
  for (std::string& id : unique) {
    if (chunks.empty() || chunks.back().size() == kMaxIdsPerQuery) chunks.emplace_back();
    chunks.back().push_back(std::move(id));
  }
  return chunks;
}

// "?, ?, …": n parameters for an IN list (n > 0).
inline std::string Placeholders(size_t n) {
  std::string out = "?";
  for (size_t i = 1; i < n; ++i) out += ", ?";
  return out;
}

// Runs sql (which may hold several statements) with no parameters.
inline Status Exec(Connection& db, std::string_view sql, std::string_view what) { return db.Exec(sql, what); }

// Runs a query that yields one integer (e.g. a count, or a PRAGMA on SQLite).
Result<int64_t> QueryInt(Connection& db, std::string_view sql, std::string what);

// Rows changed by the last statement that finished on db.
inline int64_t Changes(Connection& db) { return db.Changes(); }

// --- names ---

// For InsertInstance and InsertVolume, which keep a name equal to its Name tag: a Name tag
// among tags wins and becomes name; a non-empty name without one becomes a Name tag.
void UnifyNameAndTags(std::string& name, std::vector<Tag>& tags);

// --- row decoding ---

// Every row of st, each made into a T by row(st).
template <typename T, typename RowFn>
Result<std::vector<T>> ReadRows(Statement& st, RowFn row) {
  std::vector<T> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool more, st.Step());
    if (!more) return out;
    out.push_back(row(st));
  }
}

// Rows come one per (snapshot, tag), ordered so that a snapshot's rows are adjacent and its
// tags sorted by key; a snapshot without tags has one row with NULL key.
inline constexpr char kSnapshotSelect[] =
    "SELECT s.snapshot_id, s.volume_id, s.account_id, s.state, s.progress, s.start_time_ms,"
    " s.completed_time_ms, s.volume_size_bytes, s.block_size, s.description, s.state_message,"
    " s.parent_snapshot_id, s.encrypted, s.stored_bytes, s.changed_blocks, s.total_blocks,"
    " s.runner, t.key, t.value"
    " FROM snapshots s LEFT JOIN tags t ON t.resource_id = s.snapshot_id";
inline constexpr char kSnapshotOrder[] = " ORDER BY s.start_time_ms, s.snapshot_id, t.key";
// Migration N takes a database at schema version N-1 to version N (catalog_migrations.cc).
struct Migration {
  int version;
  const char* sql;
};
// Every migration, in order; the last one's version is the catalog's schema version.
std::span<const Migration> Migrations();

// Migration 27, the same in both dialects (SQLite's list and PostgreSQL's schema steps):
// snapvol's system tags move under aws: (core/system_tags.h, kLegacySystemTags), the prefix EC2
// reserves for the tags its own services write, which users can neither set nor delete and
// tools leave alone; the lifecycle's take AWS DLM's keys. Users could never set a snapvol: key,
// so every one is snapvol's.
inline constexpr char kMoveSystemTagsUnderAwsSql[] = R"sql(
UPDATE tags SET key = 'aws:snapvol:consistency' WHERE key = 'snapvol:consistency';
UPDATE tags SET key = 'aws:snapvol:changed-blocks' WHERE key = 'snapvol:changed-blocks';
UPDATE tags SET key = 'aws:snapvol:host' WHERE key = 'snapvol:host';
UPDATE tags SET key = 'aws:snapvol:nbd' WHERE key = 'snapvol:nbd';
UPDATE tags SET key = 'aws:snapvol:damaged' WHERE key = 'snapvol:damaged';
UPDATE tags SET key = 'aws:snapvol:replace-root-volume-task' WHERE key = 'snapvol:replace-root-volume-task';
UPDATE tags SET key = 'aws:dlm:lifecycle-policy-id' WHERE key = 'snapvol:policy-id';
UPDATE tags SET key = 'aws:dlm:lifecycle-schedule-name' WHERE key = 'snapvol:schedule';
UPDATE tags SET key = 'aws:snapvol:lifecycle-run' WHERE key = 'snapvol:run';
UPDATE recycle_bin_tags SET key = 'aws:snapvol:consistency' WHERE key = 'snapvol:consistency';
UPDATE recycle_bin_tags SET key = 'aws:snapvol:changed-blocks' WHERE key = 'snapvol:changed-blocks';
UPDATE recycle_bin_tags SET key = 'aws:snapvol:host' WHERE key = 'snapvol:host';
UPDATE recycle_bin_tags SET key = 'aws:snapvol:nbd' WHERE key = 'snapvol:nbd';
UPDATE recycle_bin_tags SET key = 'aws:snapvol:damaged' WHERE key = 'snapvol:damaged';
UPDATE recycle_bin_tags SET key = 'aws:snapvol:replace-root-volume-task' WHERE key = 'snapvol:replace-root-volume-task';
UPDATE recycle_bin_tags SET key = 'aws:dlm:lifecycle-policy-id' WHERE key = 'snapvol:policy-id';
UPDATE recycle_bin_tags SET key = 'aws:dlm:lifecycle-schedule-name' WHERE key = 'snapvol:schedule';
UPDATE recycle_bin_tags SET key = 'aws:snapvol:lifecycle-run' WHERE key = 'snapvol:run';
-- Recycle Bin rules that pick snapshots by one of those keys follow it (their tag lists are
-- JSON written by rbin_api.cc's ResourceTagList: {"ResourceTagKey":"KEY",…}, no spaces).
UPDATE rbin_rules SET resource_tags = replace(resource_tags, '"ResourceTagKey":"snapvol:consistency"', '"ResourceTagKey":"aws:snapvol:consistency"');
UPDATE rbin_rules SET resource_tags = replace(resource_tags, '"ResourceTagKey":"snapvol:changed-blocks"', '"ResourceTagKey":"aws:snapvol:changed-blocks"');
UPDATE rbin_rules SET resource_tags = replace(resource_tags, '"ResourceTagKey":"snapvol:host"', '"ResourceTagKey":"aws:snapvol:host"');
UPDATE rbin_rules SET resource_tags = replace(resource_tags, '"ResourceTagKey":"snapvol:nbd"', '"ResourceTagKey":"aws:snapvol:nbd"');
UPDATE rbin_rules SET resource_tags = replace(resource_tags, '"ResourceTagKey":"snapvol:damaged"', '"ResourceTagKey":"aws:snapvol:damaged"');
UPDATE rbin_rules SET resource_tags = replace(resource_tags, '"ResourceTagKey":"snapvol:replace-root-volume-task"', '"ResourceTagKey":"aws:snapvol:replace-root-volume-task"');
UPDATE rbin_rules SET resource_tags = replace(resource_tags, '"ResourceTagKey":"snapvol:policy-id"', '"ResourceTagKey":"aws:dlm:lifecycle-policy-id"');
UPDATE rbin_rules SET resource_tags = replace(resource_tags, '"ResourceTagKey":"snapvol:schedule"', '"ResourceTagKey":"aws:dlm:lifecycle-schedule-name"');
UPDATE rbin_rules SET resource_tags = replace(resource_tags, '"ResourceTagKey":"snapvol:run"', '"ResourceTagKey":"aws:snapvol:lifecycle-run"');
UPDATE rbin_rules SET exclude_tags = replace(exclude_tags, '"ResourceTagKey":"snapvol:consistency"', '"ResourceTagKey":"aws:snapvol:consistency"');
UPDATE rbin_rules SET exclude_tags = replace(exclude_tags, '"ResourceTagKey":"snapvol:changed-blocks"', '"ResourceTagKey":"aws:snapvol:changed-blocks"');
UPDATE rbin_rules SET exclude_tags = replace(exclude_tags, '"ResourceTagKey":"snapvol:host"', '"ResourceTagKey":"aws:snapvol:host"');
UPDATE rbin_rules SET exclude_tags = replace(exclude_tags, '"ResourceTagKey":"snapvol:nbd"', '"ResourceTagKey":"aws:snapvol:nbd"');
UPDATE rbin_rules SET exclude_tags = replace(exclude_tags, '"ResourceTagKey":"snapvol:damaged"', '"ResourceTagKey":"aws:snapvol:damaged"');
UPDATE rbin_rules SET exclude_tags = replace(exclude_tags, '"ResourceTagKey":"snapvol:replace-root-volume-task"', '"ResourceTagKey":"aws:snapvol:replace-root-volume-task"');
UPDATE rbin_rules SET exclude_tags = replace(exclude_tags, '"ResourceTagKey":"snapvol:policy-id"', '"ResourceTagKey":"aws:dlm:lifecycle-policy-id"');
UPDATE rbin_rules SET exclude_tags = replace(exclude_tags, '"ResourceTagKey":"snapvol:schedule"', '"ResourceTagKey":"aws:dlm:lifecycle-schedule-name"');
UPDATE rbin_rules SET exclude_tags = replace(exclude_tags, '"ResourceTagKey":"snapvol:run"', '"ResourceTagKey":"aws:snapvol:lifecycle-run"');
)sql";

// Snapshots with their tags, from rows selected with kSnapshotSelect in snapshot order.
Result<std::vector<SnapshotRecord>> ReadSnapshots(Statement& st);
// Columns 0-16 of kSnapshotSelect's row (the recycle bin's rows share them) into *out; tags
// are the caller's. Corruption for a state the catalog never writes.
Status ReadSnapshotColumns(Statement& st, SnapshotRecord* out);

// Shared by catalog_locks.cc and DeleteSnapshot (catalog_snapshots.cc).
inline constexpr char kLockColumns[] =
    "snapshot_id, account_id, mode, created_ms, duration_start_ms, expires_ms, duration_days,"
    " cool_off_hours, cool_off_expires_ms";
// Rows selected with kLockColumns.
Result<std::vector<SnapshotLockRecord>> ReadSnapshotLocks(Statement& st);

// host_id's row in hosts, or nullopt when it is not registered (catalog_hosts.cc). Takes no lock:
// usable inside another method's transaction.
Result<std::optional<HostRecord>> FindHost(Connection& db, const std::string& host_id);

// How a message names a host: "NAME (ID, API URL)", or its id alone when it has neither.
std::string DescribeHostRecord(const HostRecord& host);

// The rules a volume's deletion checks inside the transaction that removes (or, for another
// host's volume, queues) it: kNotFound; kConflict while it is attached, `creating`, or a
// replace-root/rollback task other than except_task is unfinished on it. Returns its host_id
// ('' when none). Takes no lock (catalog_volumes.cc).
Result<std::string> CheckVolumeDeletable(Connection& db, const std::string& id, const std::string& except_task);

}  // namespace snapvol::catalog_internal
