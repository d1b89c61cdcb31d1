// Internal to src/catalog: the prepared-statement wrapper, the SQLite error mapping and the
// row helpers that every catalog_<table>.cc shares. Include only from src/catalog.
//
// Thread-safety: a Statement belongs to one connection and is used by one thread at a time
// (the caller holds the mutex guarding that connection).
#pragma once

#include <sqlite3.h>

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

#include "catalog/catalog_records.h"
#include "core/status.h"

namespace snapvol::catalog_internal {

inline constexpr char kRebuildHint[] = "rebuild it with `snapvol catalog rebuild`";

// --- errors ---

// Maps a SQLite result code to an Error (see catalog.h for the mapping). file names the
// database when what does not, so that a damaged file can be found.
Error SqliteError(int rc, std::string_view what, std::string_view detail, std::string_view file);
// sqlite3_errmsg describes the latest failure on db, which is the one that returned rc.
Error DbError(sqlite3* db, int rc, std::string_view what);

// --- statements ---

// Finalizes a statement, or for one kept in a connection's cache, resets it for the next use.
struct StmtFinalizer {
  bool cached = false;
  void operator()(sqlite3_stmt* s) const {
    if (cached) {
      sqlite3_reset(s);
      sqlite3_clear_bindings(s);
    } else {
      sqlite3_finalize(s);
    }
  }
};

// A prepared statement. Bind() takes parameters in order; a bind failure is reported by the
// next Step()/Run(). Every error names `what`.
class Statement {
 public:
  static Result<Statement> Prepare(sqlite3* db, std::string_view sql, std::string what) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
    Statement st(db, raw, std::move(what));
    if (rc != SQLITE_OK) return std::unexpected(DbError(db, rc, st.what_));
    return st;
  }

  Statement& Bind(std::string_view v) {
    if (v.data() == nullptr) v = "";  // a null pointer would bind SQL NULL
    Check(sqlite3_bind_text64(stmt_.get(), next_param_++, v.data(), v.size(), SQLITE_TRANSIENT,
                              SQLITE_UTF8));
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
    Check(sqlite3_bind_int64(stmt_.get(), next_param_++, static_cast<sqlite3_int64>(v)));
    return *this;
  }

  Statement& BindBlob(std::string_view v) {
    Check(sqlite3_bind_blob64(stmt_.get(), next_param_++, v.data(), v.size(), SQLITE_TRANSIENT));
    return *this;
  }

  // Returns true when a row is ready, false when the statement has finished.
  Result<bool> Step() {
    if (error_) return std::unexpected(*error_);
    rc_ = sqlite3_step(stmt_.get());
    if (rc_ == SQLITE_ROW) return true;
    if (rc_ == SQLITE_DONE) return false;
    return std::unexpected(DbError(db_, rc_, what_));
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
    sqlite3_reset(stmt_.get());
    sqlite3_clear_bindings(stmt_.get());
    next_param_ = 1;
    error_.reset();
  }

  // The extended result code of the last Step().
  int rc() const { return rc_; }

  std::string Text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_.get(), col);
    if (p == nullptr) return {};
    return std::string(reinterpret_cast<const char*>(p),
                       static_cast<size_t>(sqlite3_column_bytes(stmt_.get(), col)));
  }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_.get(), col); }
  std::string Blob(int col) const {
    const void* p = sqlite3_column_blob(stmt_.get(), col);
    if (p == nullptr) return {};
    return std::string(static_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_.get(), col)));
  }
  uint64_t U64(int col) const { return static_cast<uint64_t>(std::max<int64_t>(0, Int(col))); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_.get(), col) == SQLITE_NULL; }

 private:
  Statement(sqlite3* db, sqlite3_stmt* stmt, std::string what, bool cached = false)
      : db_(db), stmt_(stmt, StmtFinalizer{cached}), what_(std::move(what)) {}

 public:
  // A statement prepared once per connection and kept in cache (finalized by its owner); the
  // returned Statement resets it when done.
  // PrepareCached with *cache when cache is set (a reader connection), else Prepare.
  static Result<Statement> PrepareOn(sqlite3* db, std::map<std::string, sqlite3_stmt*>* cache,
                                     const std::string& sql, std::string what) {
    return cache != nullptr ? PrepareCached(db, *cache, sql, std::move(what)) : Prepare(db, sql, std::move(what));
  }
  static Result<Statement> PrepareCached(sqlite3* db, std::map<std::string, sqlite3_stmt*>& cache,
                                         const std::string& sql, std::string what) {
    auto it = cache.find(sql);
    if (it == cache.end()) {
      sqlite3_stmt* raw = nullptr;
      int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &raw,
                                  nullptr);
      if (rc != SQLITE_OK) {
        sqlite3_finalize(raw);
        return std::unexpected(DbError(db, rc, what));
      }
      it = cache.emplace(sql, raw).first;
    }
    return Statement(db, it->second, std::move(what), /*cached=*/true);
  }

 private:

  void Check(int rc) {
    if (rc != SQLITE_OK && !error_) error_ = DbError(db_, rc, what_);
  }

  sqlite3* db_;
  std::unique_ptr<sqlite3_stmt, StmtFinalizer> stmt_;
  std::string what_;
  int next_param_ = 1;
  int rc_ = SQLITE_OK;
  std::optional<Error> error_;
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
Status Exec(sqlite3* db, const char* sql, std::string_view what);

// Runs a query that yields one integer (e.g. a PRAGMA).
Result<int64_t> QueryInt(sqlite3* db, std::string_view sql, std::string what);

inline int64_t Changes(sqlite3* db) { return sqlite3_changes64(db); }

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

}  // namespace snapvol::catalog_internal
