// Opening the catalog: its connections, applying the numbered schema migrations
// (catalog_migrations.cc), and transactions.
#include "catalog/catalog.h"

#include <sqlite3.h>

#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "catalog/catalog_sql.h"
#include "core/clock.h"

namespace snapvol {
using catalog_internal::DbError;
using catalog_internal::Exec;
using catalog_internal::QueryInt;
using catalog_internal::Statement;

namespace {

constexpr int kBusyTimeoutMs = 5000;
// Stamped into the file header so Open can tell a snapvol catalog from another SQLite file.
constexpr int64_t kApplicationId = 0x536e5631;  // "SnV1"; migration 1 writes it in decimal

int LatestVersion() { return catalog_internal::Migrations().back().version; }
static_assert(kApplicationId == 1399739953, "keep migration 1's application_id in sync");

}  // namespace

void Catalog::DbCloser::operator()(sqlite3* db) const {
  // Finalizes nothing itself: every Statement is finalized by its owner before this runs.
  sqlite3_close_v2(db);
}

Catalog::Catalog(DbHandle db, Clock* clock)
    : db_(std::move(db)), clock_(clock != nullptr ? clock : Clock::Real()) {}
Catalog::~Catalog() = default;

int Catalog::LatestSchemaVersion() { return LatestVersion(); }

int Catalog::SchemaVersion() const {
  std::lock_guard lock(mu_);
  return schema_version_;
}

Result<int64_t> Catalog::DataVersion() {
  auto read = [&](sqlite3* db, std::map<std::string, sqlite3_stmt*>* cache) -> Result<int64_t> {
    ASSIGN_OR_RETURN(Statement st, cache ? Statement::PrepareCached(db, *cache, "PRAGMA data_version", "read the data version")
                                         : Statement::Prepare(db, "PRAGMA data_version", "read the data version"));
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return Internal("PRAGMA data_version returned nothing");
    // data_version does not count the asking connection's own commits; on the main
    // connection the identity changes made through it are counted by write_generation_.
    return st.Int(0) + write_generation_.load();
  };
  if (version_reader_) {
    std::lock_guard lock(version_reader_->mu);
    return read(version_reader_->db.get(), &version_reader_->statements);
  }
  std::lock_guard lock(mu_);
  return read(db_.get(), nullptr);
}

Catalog::Reader::~Reader() {
  for (auto& [sql, stmt] : statements) sqlite3_finalize(stmt);
}

Result<std::unique_ptr<Catalog>> Catalog::Open(const std::string& path, Clock* clock) {
  const std::string what = "open catalog " + path;
  sqlite3* raw = nullptr;
  // NOMUTEX: mu_ serialises every use of the connection.
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  DbHandle db(raw);  // sqlite3_open_v2 allocates a handle even when it fails
  if (rc != SQLITE_OK) return std::unexpected(DbError(raw, rc, what));
  sqlite3_extended_result_codes(raw, 1);
  rc = sqlite3_busy_timeout(raw, kBusyTimeoutMs);
  if (rc != SQLITE_OK) return std::unexpected(DbError(raw, rc, what + ": set busy timeout"));

  std::unique_ptr<Catalog> catalog(new Catalog(std::move(db), clock));
  {
    std::lock_guard lock(catalog->mu_);
    RETURN_IF_ERROR(catalog->Migrate(path));
    RETURN_IF_ERROR(catalog->EnsureDefaultAccount(what));
  }
  // Read-only connections for the hottest reads (a page of snapshots): in WAL mode they read
  // the last committed state while the main connection writes, and in parallel with each
  // other. Without them (e.g. a read-only file system) the main connection serves all.
  if (path != ":memory:" && !path.empty()) {
    for (int i = 0; i <= kReaderConnections; ++i) {
      sqlite3* r = nullptr;
      int rrc = sqlite3_open_v2(path.c_str(), &r, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
      DbHandle handle(r);
      if (rrc != SQLITE_OK) break;
      sqlite3_extended_result_codes(r, 1);
      sqlite3_busy_timeout(r, kBusyTimeoutMs);
      auto reader = std::make_unique<Reader>();
      reader->db = std::move(handle);
      if (i == kReaderConnections) {
        catalog->version_reader_ = std::move(reader);
      } else {
        catalog->readers_.push_back(std::move(reader));
      }
    }
  }
  return catalog;
}

Status Catalog::Migrate(const std::string& path) {
  sqlite3* db = db_.get();
  const std::string what = "open catalog " + path;

  // Identify the file before changing anything in it. This is also the first read of the
  // file, so a damaged or non-SQLite file fails here with SQLITE_NOTADB/CORRUPT.
  ASSIGN_OR_RETURN(int64_t app_id, QueryInt(db, "PRAGMA application_id", what));
  ASSIGN_OR_RETURN(int64_t version, QueryInt(db, "PRAGMA user_version", what));
  if (app_id != kApplicationId) {
    ASSIGN_OR_RETURN(int64_t objects, QueryInt(db, "SELECT count(*) FROM sqlite_schema", what));
    if (app_id != 0 || version != 0 || objects != 0) {
      return InvalidArgument(what + ": the file is a SQLite database but not a snapvol catalog");
    }
  }
  if (version > LatestVersion()) {
    return MakeError(ErrorCode::kUnsupported,
                     what + ": catalog schema version " + std::to_string(version) +
                         " is newer than this snapvol supports (up to " +
                         std::to_string(LatestVersion()) + "); upgrade snapvol");
  }

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
  RETURN_IF_ERROR(Exec(db, "PRAGMA foreign_keys = ON", what));
  RETURN_IF_ERROR(Exec(db, "PRAGMA synchronous = FULL", what));

  if (version < LatestVersion()) {
    auto migrate = [&]() -> Status {
      // Another process may have migrated while this one waited for the write lock.
      ASSIGN_OR_RETURN(version, QueryInt(db, "PRAGMA user_version", what));
      if (version > LatestVersion()) {
        return MakeError(ErrorCode::kUnsupported,
                         what + ": catalog schema version " + std::to_string(version) +
                             " is newer than this snapvol supports (up to " +
                             std::to_string(LatestVersion()) + "); upgrade snapvol");
      }
      for (const catalog_internal::Migration& m : catalog_internal::Migrations()) {
        if (m.version <= version) continue;
        const std::string step = what + ": migrate schema to version " + std::to_string(m.version);
        RETURN_IF_ERROR(Exec(db, m.sql, step));
        const std::string set_version = "PRAGMA user_version = " + std::to_string(m.version);
        RETURN_IF_ERROR(Exec(db, set_version.c_str(), step));
        version = m.version;
      }
      return OkStatus();
    };
    RETURN_IF_ERROR(InTransaction(migrate));
  }
  schema_version_ = static_cast<int>(version);
  return OkStatus();
}

Status Catalog::EnsureDefaultAccount(const std::string& what) {
  sqlite3* db = db_.get();
  // Read first so that opening an existing catalog does not need the write lock.
  ASSIGN_OR_RETURN(Statement find,
                   Statement::Prepare(db, "SELECT 1 FROM accounts WHERE account_id = ?",
                                      what + ": read default account"));
  find.Bind(kDefaultAccountId);
  ASSIGN_OR_RETURN(bool exists, find.Step());
  if (exists) return OkStatus();
  ASSIGN_OR_RETURN(Statement insert,
                   Statement::Prepare(db,
                                      "INSERT INTO accounts (account_id, alias, created_ms)"
                                      " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                                      what + ": create default account"));
  insert.Bind(kDefaultAccountId).Bind(kDefaultAccountAlias).Bind(clock_->NowMillis());
  RETURN_IF_ERROR(insert.Run());
  return AttachDefaultPolicy(kDefaultAccountId, what);
}

// --- transactions ---

Status Catalog::Transaction(const std::function<Status()>& fn) {
  std::lock_guard lock(mu_);
  return InTransaction(fn);
}

Status Catalog::InTransaction(const std::function<Status()>& fn, bool write) {
  sqlite3* db = db_.get();
  // A writer takes the write lock up front (IMMEDIATE): in WAL mode a deferred transaction
  // that later upgrades to a writer fails with SQLITE_BUSY instead of waiting.
  const bool outer = sqlite3_get_autocommit(db) != 0;
  const char* begin = !outer ? "SAVEPOINT nested" : write ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED";
  RETURN_IF_ERROR(Exec(db, begin, "begin transaction"));

  // Rolls back unless committed, also if fn throws. SQLite may already have rolled the
  // transaction back itself after some errors (disk full, I/O); then there is nothing to do.
  struct Guard {
    sqlite3* db;
    bool outer;
    bool done = false;
    ~Guard() {
      if (done || sqlite3_get_autocommit(db) != 0) return;
      sqlite3_exec(db, outer ? "ROLLBACK" : "ROLLBACK TO nested; RELEASE nested", nullptr, nullptr,
                   nullptr);
    }
  } guard{db, outer};

  RETURN_IF_ERROR(fn());
  if (outer && sqlite3_get_autocommit(db) != 0) {
    // fn's work was rolled back by SQLite (it swallowed an error that aborted the
    // transaction); committing now would silently lose it.
    return MakeError(ErrorCode::kIoError, "commit transaction: it was rolled back by an error",
                     /*retryable=*/true);
  }
  RETURN_IF_ERROR(Exec(db, outer ? "COMMIT" : "RELEASE nested", "commit transaction"));
  guard.done = true;
  return OkStatus();
}

}  // namespace snapvol
