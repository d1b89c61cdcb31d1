// Internal to src/catalog: the SQLite backend of the database seam (catalog_db.h), and the
// parts of a catalog that only a SQLite file has (its header fields, journal mode). The rest
// of the catalog reaches SQLite only through the Connection made here.
//
// Thread-safety: a Connection is used by one thread at a time (see catalog_db.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "catalog/catalog_db.h"
#include "core/status.h"

namespace snapvol::catalog_internal {

// Stamped into the file header (PRAGMA application_id) so a snapvol catalog can be told from
// another SQLite file; migration 1 writes it in decimal.
inline constexpr int64_t kSqliteApplicationId = 0x536e5631;  // "SnV1"
static_assert(kSqliteApplicationId == 1399739953, "keep migration 1's application_id in sync");

// Opens the SQLite database at path: read-write (and created if missing), or read-only (never
// created). Extended result codes, a 5 s busy timeout, no SQLite mutex (the caller serialises).
// PrepareCached keeps statements prepared once (SQLITE_PREPARE_PERSISTENT) for the life of the
// connection. Errors are mapped as catalog.h says and name what (and the file when damaged).
Result<std::unique_ptr<Connection>> OpenSqlite(const std::string& path, bool read_only,
                                               const std::string& what);

// --- SQLite-only: REQUIRE db.backend() == Backend::kSqlite ---

// Identifies the file before anything changes in it and returns its schema version (PRAGMA
// user_version). This is the first read of the file, so a damaged or non-SQLite file fails
// here (kCorruption); kInvalidArgument for a SQLite database that is not a snapvol catalog.
Result<int64_t> CheckSqliteCatalogFile(Connection& db, const std::string& what);
// Switches the file to WAL (persistent; not inside a transaction), and this connection to
// foreign keys on and synchronous=FULL. path ":memory:" keeps its memory journal.
Status ConfigureSqliteCatalog(Connection& db, const std::string& path, const std::string& what);
// The schema version the file records (PRAGMA user_version), and setting it (inside the
// migration's transaction).
Result<int64_t> SqliteSchemaVersion(Connection& db, const std::string& what);
Status SetSqliteSchemaVersion(Connection& db, int version, const std::string& what);

}  // namespace snapvol::catalog_internal
