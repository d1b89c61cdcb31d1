// InspectCatalogFile (see catalog_inspect.h).
#include "catalog/catalog_inspect.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <cerrno>
#include <memory>

#include "catalog/catalog.h"
#include "catalog/catalog_sql.h"
#include "core/file_util.h"

namespace snapvol {
namespace {

using catalog_internal::DbError;
using catalog_internal::QueryInt;

constexpr int64_t kSnapvolApplicationId = 0x536e5631;  // "SnV1", as migration 1 (catalog_migrations.cc) writes it

}  // namespace

Result<CatalogFileInfo> InspectCatalogFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return NotFound("catalog " + path + " does not exist");
    return std::unexpected(PosixError("stat " + path, errno));
  }
  const std::string what = "inspect catalog " + path;
  sqlite3* raw = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &raw, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<sqlite3, int (*)(sqlite3*)> db(raw, sqlite3_close_v2);
  if (rc != SQLITE_OK) return std::unexpected(DbError(raw, rc, what));
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, 5000);
  ASSIGN_OR_RETURN(int64_t app_id, QueryInt(raw, "PRAGMA application_id", what));
  CatalogFileInfo info;
  info.latest_version = Catalog::LatestSchemaVersion();
  ASSIGN_OR_RETURN(info.schema_version, QueryInt(raw, "PRAGMA user_version", what));
  if (app_id != kSnapvolApplicationId)
    return InvalidArgument(path + " is a SQLite database but not a snapvol catalog (application id " +
                           std::to_string(app_id) + ")");
  // quick_check reads every page (O(size), without the index cross-checks of integrity_check):
  // a catalog is small next to the store, and damage found here is damage a query would hit.
  sqlite3_stmt* stmt = nullptr;
  rc = sqlite3_prepare_v2(raw, "PRAGMA quick_check(1)", -1, &stmt, nullptr);
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> owned(stmt, sqlite3_finalize);
  if (rc != SQLITE_OK) return std::unexpected(DbError(raw, rc, what));
  rc = sqlite3_step(stmt);
  if (rc != SQLITE_ROW) return std::unexpected(DbError(raw, rc, what));
  const unsigned char* text = sqlite3_column_text(stmt, 0);
  std::string verdict = text ? reinterpret_cast<const char*>(text) : "";
  if (verdict != "ok")
    return Corruption(path + " is damaged (SQLite quick_check: " + verdict + "); " +
                      catalog_internal::kRebuildHint);
  return info;
}

}  // namespace snapvol
