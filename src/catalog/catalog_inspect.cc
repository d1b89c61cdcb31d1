// InspectCatalogFile (see catalog_inspect.h): SQLite-file inspection, on a read-only
// connection of the SQLite backend (catalog_sqlite.h).
#include "catalog/catalog_inspect.h"

#include <sys/stat.h>

#include <cerrno>
#include <memory>

#include "catalog/catalog.h"
#include "catalog/catalog_sql.h"
#include "catalog/catalog_sqlite.h"
#include "core/file_util.h"

namespace snapvol {

using catalog_internal::Connection;
using catalog_internal::QueryInt;
using catalog_internal::Statement;

Result<CatalogFileInfo> InspectCatalogFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return NotFound("catalog " + path + " does not exist");
    return std::unexpected(PosixError("stat " + path, errno));
  }
  const std::string what = "inspect catalog " + path;
  ASSIGN_OR_RETURN(std::unique_ptr<Connection> db, catalog_internal::OpenSqlite(path, /*read_only=*/true, what));
  ASSIGN_OR_RETURN(int64_t app_id, QueryInt(*db, "PRAGMA application_id", what));
  CatalogFileInfo info;
  info.latest_version = Catalog::LatestSchemaVersion();
  ASSIGN_OR_RETURN(info.schema_version, QueryInt(*db, "PRAGMA user_version", what));
  if (app_id != catalog_internal::kSqliteApplicationId)
    return InvalidArgument(path + " is a SQLite database but not a snapvol catalog (application id " +
                           std::to_string(app_id) + ")");
  // quick_check reads every page (O(size), without the index cross-checks of integrity_check):
  // a catalog is small next to the store, and damage found here is damage a query would hit.
  ASSIGN_OR_RETURN(Statement check, Statement::Prepare(*db, "PRAGMA quick_check(1)", what));
  ASSIGN_OR_RETURN(bool row, check.Step());
  if (!row) return Internal(what + ": quick_check returned no row");
  std::string verdict = check.Text(0);
  if (verdict != "ok")
    return Corruption(path + " is damaged (SQLite quick_check: " + verdict + "); " +
                      catalog_internal::kRebuildHint);
  return info;
}

}  // namespace snapvol
