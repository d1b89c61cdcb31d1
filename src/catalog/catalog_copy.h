// Moving a catalog between backends: CopyCatalogToPostgres copies a SQLite catalog into an
// empty PostgreSQL one (`snapvol catalog migrate-to`), and InspectPostgresCatalog reads what a
// PostgreSQL catalog is without changing it (`snapvol doctor`). The SQL stays here, in the
// catalog layer; the callers never see a table name.
// Thread-safety: free functions; each opens connections of its own for the call.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"

namespace snapvol {

struct CatalogTableCount {
  std::string table;
  int64_t rows = 0;
};

struct CatalogCopyOptions {
  // Count the source's rows and check the target (reachable, credentials, schema version,
  // empty) without writing anything anywhere.
  bool dry_run = false;
  // Called after each table: its name, rows copied (or counted), and tables done / total.
  std::function<void(const std::string& table, int64_t rows, size_t done, size_t total)> progress;
};

// Copies every table of the SQLite catalog at sqlite_path (which must be at this build's
// schema version) into the PostgreSQL database at url, in one PostgreSQL transaction: the
// schema is created first at the same version (MigratePostgres), tables are copied parents
// before children, identity sequences are moved past the copied ids, and the row count of
// every table is compared with the source's before committing. The SQLite file is read in
// one read transaction and never changed.
// Returns the rows per table (in copy order). Errors: kConflict when the target already holds
// snapvol rows (nothing is changed); kUnsupported when either schema is newer than this
// build; kUnauthorized / retryable kIoError as Catalog::Open; kCorruption when a count
// differs after the copy (rolled back). Messages never carry the URL's password.
Result<std::vector<CatalogTableCount>> CopyCatalogToPostgres(const std::string& sqlite_path,
                                                             const std::string& url,
                                                             const CatalogCopyOptions& options);

// url without its password, for messages.
std::string RedactCatalogUrl(const std::string& url);

struct PostgresCatalogInfo {
  std::string where;                      // the database, without its password
  int64_t schema_version = 0;             // 0: no snapvol schema yet
  int64_t latest_version = 0;             // this build's
  std::vector<CatalogTableCount> tables;  // by name; empty unless schema_version == latest
};

// Connects to url and reads its schema version and, when it is this build's, the rows of
// every catalog table. Changes nothing (no migration, no default account).
Result<PostgresCatalogInfo> InspectPostgresCatalog(const std::string& url);

}  // namespace snapvol
