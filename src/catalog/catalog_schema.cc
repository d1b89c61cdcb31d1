// Opening the catalog: its connections, applying the numbered schema migrations
// (catalog_migrations.cc), and transactions.
#include "catalog/catalog.h"

#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "catalog/catalog_postgres.h"
#include "catalog/catalog_postgres_notify.h"
#include "catalog/catalog_sql.h"
#include "catalog/catalog_sqlite.h"
#include "core/clock.h"

namespace snapvol {
using catalog_internal::Backend;
using catalog_internal::Exec;
using catalog_internal::Statement;

namespace {

int LatestVersion() { return catalog_internal::Migrations().back().version; }

Error NewerSchema(const std::string& what, int64_t version) {
  return Error(ErrorCode::kUnsupported, what + ": catalog schema version " + std::to_string(version) +
                                            " is newer than this snapvol supports (up to " +
                                            std::to_string(LatestVersion()) + "); upgrade snapvol");
}

}  // namespace

Catalog::Catalog(std::unique_ptr<Connection> db, Clock* clock)
    : db_(std::move(db)), clock_(clock != nullptr ? clock : Clock::Real()) {}
Catalog::~Catalog() = default;

int Catalog::LatestSchemaVersion() { return LatestVersion(); }

int Catalog::SchemaVersion() const {
  std::lock_guard lock(mu_);
  return schema_version_;
}

Result<int64_t> Catalog::DataVersion() {
  // The connection's version does not count its own commits; on the main connection the
  // identity changes made through it are counted by write_generation_.
  if (version_reader_) {
    std::lock_guard lock(version_reader_->mu);
    ASSIGN_OR_RETURN(int64_t version, version_reader_->db->DataVersion());
    return version + write_generation_.load();
  }
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(int64_t version, db_->DataVersion());
  return version + write_generation_.load();
}

bool Catalog::IsPostgresUrl(const std::string& path) {
  return path.starts_with("postgresql://") || path.starts_with("postgres://");
}

Result<std::unique_ptr<Catalog>> Catalog::Open(const std::string& path, Clock* clock) {
  const bool postgres = IsPostgresUrl(path);
  // A URL may carry a password: messages name the database as the connection describes it.
  auto open = [&](bool read_only, const std::string& what) -> Result<std::unique_ptr<Connection>> {
    if (postgres) return catalog_internal::OpenPostgres(path);
    return catalog_internal::OpenSqlite(path, read_only, what);
  };
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> db, open(/*read_only=*/false, "open catalog " + path));
  const std::string where = db->Describe();
  const std::string what = "open catalog " + where;
  std::unique_ptr<Catalog> catalog(new Catalog(std::move(db), clock));
  if (postgres) catalog->postgres_url_ = path;
  {
    std::lock_guard lock(catalog->mu_);
    RETURN_IF_ERROR(catalog->Migrate(where));
    RETURN_IF_ERROR(catalog->EnsureDefaultAccount(what));
  }
  // Connections of their own for the hottest reads (a page of snapshots) and DataVersion: in
  // SQLite's WAL mode they read the last committed state while the main connection writes,
  // and in parallel with each other; on PostgreSQL they are sessions of their own. Without
  // them (a read-only file system, a server refusing more sessions) the main connection
  // serves all.
  if (path != ":memory:" && !path.empty()) {
    for (int i = 0; i <= kReaderConnections; ++i) {
      auto connection = open(/*read_only=*/true, what);
      if (!connection) break;
      auto reader = std::make_unique<Reader>();
      reader->db = std::move(*connection);
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
  Connection& db = *db_;
  const std::string what = "open catalog " + path;
  // The schema of a SQLite file is its numbered migrations; PostgreSQL's is kept whole at the
  // same version number (catalog_postgres_schema.cc), brought there in one step.
  if (db.backend() == Backend::kPostgres) {
    if (catalog_internal::kPostgresSchemaVersion != LatestVersion())
      return Internal(what + ": this build's PostgreSQL schema is version " +
                      std::to_string(catalog_internal::kPostgresSchemaVersion) + ", its SQLite schema " +
                      std::to_string(LatestVersion()));
    if (auto st = catalog_internal::MigratePostgres(db); !st) return std::unexpected(st.error().WithContext(what));
    ASSIGN_OR_RETURN(int64_t version, catalog_internal::PostgresSchemaVersion(db));
    schema_version_ = static_cast<int>(version);
    return OkStatus();
  }
  if (db.backend() != Backend::kSqlite)
    return MakeError(ErrorCode::kUnsupported, what + ": no migrations for this backend");

  // Identify the file before changing anything in it.
  ASSIGN_OR_RETURN(int64_t version, catalog_internal::CheckSqliteCatalogFile(db, what));
  if (version > LatestVersion()) return std::unexpected(NewerSchema(what, version));
  RETURN_IF_ERROR(catalog_internal::ConfigureSqliteCatalog(db, path, what));

  if (version < LatestVersion()) {
    auto migrate = [&]() -> Status {
      // Another process may have migrated while this one waited for the write lock.
      ASSIGN_OR_RETURN(version, catalog_internal::SqliteSchemaVersion(db, what));
      if (version > LatestVersion()) return std::unexpected(NewerSchema(what, version));
      for (const catalog_internal::Migration& m : catalog_internal::Migrations()) {
        if (m.version <= version) continue;
        const std::string step = what + ": migrate schema to version " + std::to_string(m.version);
        RETURN_IF_ERROR(Exec(db, m.sql, step));
        RETURN_IF_ERROR(catalog_internal::SetSqliteSchemaVersion(db, m.version, step));
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
  Connection& db = *db_;
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
  Connection& db = *db_;
  const bool outer = !db.InTransaction();  // else Begin makes a savepoint
  RETURN_IF_ERROR(db.Begin(write));

  // Rolls back unless committed, also if fn throws.
  struct Guard {
    Connection& db;
    bool done = false;
    ~Guard() {
      if (!done) db.Rollback();
    }
  } guard{db};

  RETURN_IF_ERROR(fn());
  if (outer && !db.InTransaction()) {
    // fn's work was rolled back by the database (it swallowed an error that aborted the
    // transaction); committing now would silently lose it.
    return MakeError(ErrorCode::kIoError, "commit transaction: it was rolled back by an error",
                     /*retryable=*/true);
  }
  RETURN_IF_ERROR(db.Commit());
  guard.done = true;
  return OkStatus();
}

}  // namespace snapvol
