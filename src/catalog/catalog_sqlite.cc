// The SQLite backend of the database seam (catalog_sqlite.h): connections, statements, the
// mapping of SQLite result codes to Error, transactions as BEGIN/SAVEPOINT, and the
// SQLite-only parts of opening a catalog file.
#include "catalog/catalog_sqlite.h"

#include <sqlite3.h>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "catalog/catalog_sql.h"

namespace snapvol::catalog_internal {
namespace {

constexpr int kBusyTimeoutMs = 5000;

// Maps a SQLite result code to an Error (see catalog.h for the mapping). file names the
// database when what does not, so that a damaged file can be found.
Error SqliteError(int rc, std::string_view what, std::string_view detail, std::string_view file) {
  std::string msg = std::string(what) + ": " + std::string(detail);
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Error(ErrorCode::kIoError, msg + " (another connection holds the catalog; retry)",
                   /*retryable=*/true);
    case SQLITE_FULL:
      return Error(ErrorCode::kNoSpace, msg);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      if (!file.empty() && msg.find(file) == std::string::npos)
        msg += " (" + std::string(file) + ")";
      return Error(ErrorCode::kCorruption,
                   "catalog database is damaged: " + msg + "; " + kRebuildHint);
    case SQLITE_CONSTRAINT:
      if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
        return Error(ErrorCode::kAlreadyExists, msg);
      return Error(ErrorCode::kInvalidArgument, msg);
    case SQLITE_TOOBIG:
      return Error(ErrorCode::kInvalidArgument, msg);
    case SQLITE_ERROR:  // SQL the schema does not accept: a bug here
    case SQLITE_MISUSE:
    case SQLITE_RANGE:
    case SQLITE_NOMEM:
      return Error(ErrorCode::kInternal, msg);
    default:  // SQLITE_CANTOPEN, SQLITE_IOERR, SQLITE_READONLY, SQLITE_PERM, ...
      return Error(ErrorCode::kIoError, msg);
  }
}

// sqlite3_errmsg describes the latest failure on db, which is the one that returned rc.
Error DbError(sqlite3* db, int rc, std::string_view what) {
  if (db == nullptr) return SqliteError(rc, what, sqlite3_errstr(rc), "");
  const char* file = sqlite3_db_filename(db, "main");
  return SqliteError(rc, what, sqlite3_errmsg(db), file != nullptr ? file : "");
}

class SqliteStatement final : public StatementImpl {
 public:
  SqliteStatement(sqlite3* db, sqlite3_stmt* stmt, std::string what)
      : db_(db), stmt_(stmt), what_(std::move(what)) {}
  ~SqliteStatement() override { sqlite3_finalize(stmt_); }
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;

  // A cached statement names the use at hand, not the first one.
  void set_what(const std::string& what) { what_ = what; }

  void BindText(int index, std::string_view v) override {
    Check(sqlite3_bind_text64(stmt_, index, v.data(), v.size(), SQLITE_TRANSIENT, SQLITE_UTF8));
  }
  void BindInt(int index, int64_t v) override {
    Check(sqlite3_bind_int64(stmt_, index, static_cast<sqlite3_int64>(v)));
  }
  // A null data pointer binds SQL NULL, as sqlite3_bind_blob64 does.
  void BindBlob(int index, std::string_view v) override {
    Check(sqlite3_bind_blob64(stmt_, index, v.data(), v.size(), SQLITE_TRANSIENT));
  }

  Result<bool> Step() override {
    if (error_) return std::unexpected(*error_);
    rc_ = sqlite3_step(stmt_);
    if (rc_ == SQLITE_ROW) return true;
    if (rc_ == SQLITE_DONE) return false;
    return std::unexpected(DbError(db_, rc_, what_));
  }
  Violation violation() const override {
    switch (rc_) {
      case SQLITE_CONSTRAINT_PRIMARYKEY:
        return Violation::kPrimaryKey;
      case SQLITE_CONSTRAINT_UNIQUE:
        return Violation::kUnique;
      case SQLITE_CONSTRAINT_FOREIGNKEY:
        return Violation::kForeignKey;
      default:
        return (rc_ & 0xff) == SQLITE_CONSTRAINT ? Violation::kOther : Violation::kNone;
    }
  }
  void Reset() override {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    error_.reset();
  }

  std::string Text(int col) const override {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    if (p == nullptr) return {};
    return std::string(reinterpret_cast<const char*>(p),
                       static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }
  int64_t Int(int col) const override { return sqlite3_column_int64(stmt_, col); }
  std::string Blob(int col) const override {
    const void* p = sqlite3_column_blob(stmt_, col);
    if (p == nullptr) return {};
    return std::string(static_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }
  bool IsNull(int col) const override { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && !error_) error_ = DbError(db_, rc, what_);
  }

  sqlite3* const db_;
  sqlite3_stmt* const stmt_;
  std::string what_;
  int rc_ = SQLITE_OK;  // of the last Step
  std::optional<Error> error_;  // the first bind error since Reset
};

class SqliteConnection final : public Connection {
 public:
  SqliteConnection(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  ~SqliteConnection() override {
    cache_.clear();  // finalizes the cached statements before the handle closes
    sqlite3_close_v2(db_);
  }
  SqliteConnection(const SqliteConnection&) = delete;
  SqliteConnection& operator=(const SqliteConnection&) = delete;

  Backend backend() const override { return Backend::kSqlite; }
  std::string Describe() const override { return path_; }

  Result<std::unique_ptr<StatementImpl>> Prepare(std::string_view sql, const std::string& what) override {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &raw, nullptr);
    auto st = std::make_unique<SqliteStatement>(db_, raw, what);
    if (rc != SQLITE_OK) return std::unexpected(DbError(db_, rc, what));
    return st;
  }
  Result<StatementImpl*> PrepareCached(const std::string& sql, const std::string& what) override {
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
      sqlite3_stmt* raw = nullptr;
      int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &raw,
                                  nullptr);
      if (rc != SQLITE_OK) {
        sqlite3_finalize(raw);
        return std::unexpected(DbError(db_, rc, what));
      }
      it = cache_.emplace(sql, std::make_unique<SqliteStatement>(db_, raw, what)).first;
    }
    it->second->set_what(what);
    return it->second.get();
  }
  void Release(StatementImpl* cached) override { cached->Reset(); }

  Status Exec(std::string_view sql, std::string_view what) override {
    const std::string text(sql);  // sqlite3_exec wants it NUL-terminated
    int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return std::unexpected(DbError(db_, rc, what));
    return OkStatus();
  }
  int64_t Changes() const override { return sqlite3_changes64(db_); }

  // A writer takes the write lock up front (IMMEDIATE): in WAL mode a deferred transaction
  // that later upgrades to a writer fails with SQLITE_BUSY instead of waiting.
  Status Begin(bool write) override {
    const bool outer = sqlite3_get_autocommit(db_) != 0;
    const char* sql = !outer ? "SAVEPOINT nested" : write ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED";
    RETURN_IF_ERROR(Exec(sql, "begin transaction"));
    depth_ = outer ? 1 : depth_ + 1;
    return OkStatus();
  }
  bool InTransaction() const override { return sqlite3_get_autocommit(db_) == 0; }
  Status Commit() override {
    RETURN_IF_ERROR(Exec(depth_ > 1 ? "RELEASE nested" : "COMMIT", "commit transaction"));
    depth_ = std::max(0, depth_ - 1);
    return OkStatus();
  }
  // SQLite may already have rolled the transaction back itself after some errors (disk full,
  // I/O); then there is nothing to do.
  void Rollback() noexcept override {
    const bool nested = depth_ > 1;
    depth_ = std::max(0, depth_ - 1);
    if (sqlite3_get_autocommit(db_) != 0) {
      depth_ = 0;
      return;
    }
    sqlite3_exec(db_, nested ? "ROLLBACK TO nested; RELEASE nested" : "ROLLBACK", nullptr, nullptr, nullptr);
  }

  // One host: its commits keep synchronous = FULL (catalog_db.h).
  Status RelaxCommitDurability() override { return OkStatus(); }

  // data_version does not count this connection's own commits (see catalog_db.h).
  Result<int64_t> DataVersion() override {
    ASSIGN_OR_RETURN(StatementImpl * st, PrepareCached("PRAGMA data_version", "read the data version"));
    Result<bool> row = st->Step();
    int64_t version = row && *row ? st->Int(0) : 0;
    Release(st);
    if (!row) return std::unexpected(row.error());
    if (!*row) return Internal("PRAGMA data_version returned nothing");
    return version;
  }

 private:
  sqlite3* const db_;
  const std::string path_;
  std::map<std::string, std::unique_ptr<SqliteStatement>> cache_;  // by SQL text
  int depth_ = 0;  // open transaction (1) and savepoints inside it
};

}  // namespace

Result<std::unique_ptr<Connection>> OpenSqlite(const std::string& path, bool read_only, const std::string& what) {
  sqlite3* raw = nullptr;
  // NOMUTEX: the Catalog's mutexes serialise every use of a connection.
  const int flags = read_only ? SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX
                              : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  // sqlite3_open_v2 allocates a handle even when it fails; the connection closes it.
  auto db = std::make_unique<SqliteConnection>(raw, path);
  if (rc != SQLITE_OK) return std::unexpected(DbError(raw, rc, what));
  sqlite3_extended_result_codes(raw, 1);
  rc = sqlite3_busy_timeout(raw, kBusyTimeoutMs);
  if (rc != SQLITE_OK) return std::unexpected(DbError(raw, rc, what + ": set busy timeout"));
  return db;
}

Result<int64_t> CheckSqliteCatalogFile(Connection& db, const std::string& what) {
  ASSIGN_OR_RETURN(int64_t app_id, QueryInt(db, "PRAGMA application_id", what));
  ASSIGN_OR_RETURN(int64_t version, QueryInt(db, "PRAGMA user_version", what));
  if (app_id != kSqliteApplicationId) {
    ASSIGN_OR_RETURN(int64_t objects, QueryInt(db, "SELECT count(*) FROM sqlite_schema", what));
    if (app_id != 0 || version != 0 || objects != 0) {
      return InvalidArgument(what + ": the file is a SQLite database but not a snapvol catalog");
    }
  }
  return version;
}

Status ConfigureSqliteCatalog(Connection& db, const std::string& path, const std::string& what) {
  // journal_mode cannot change inside a transaction, and WAL persists in the file.
  {
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db, "PRAGMA journal_mode = WAL", what));
    ASSIGN_OR_RETURN(bool row, st.Step());
    std::string mode = row ? st.Text(0) : "";
    if (mode != "wal" && !(mode == "memory" && path == ":memory:")) {
      return MakeError(ErrorCode::kIoError,
                       what + ": could not switch to WAL journal mode (mode is '" + mode + "')");
    }
  }
  RETURN_IF_ERROR(db.Exec("PRAGMA foreign_keys = ON", what));
  return db.Exec("PRAGMA synchronous = FULL", what);
}

Result<int64_t> SqliteSchemaVersion(Connection& db, const std::string& what) {
  return QueryInt(db, "PRAGMA user_version", what);
}

Status SetSqliteSchemaVersion(Connection& db, int version, const std::string& what) {
  return db.Exec("PRAGMA user_version = " + std::to_string(version), what);
}

}  // namespace snapvol::catalog_internal
