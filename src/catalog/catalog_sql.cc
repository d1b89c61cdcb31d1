// SQLite error mapping and the statement helpers that are not inline (catalog_sql.h).
#include "catalog/catalog_sql.h"

namespace snapvol::catalog_internal {

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

Error DbError(sqlite3* db, int rc, std::string_view what) {
  if (db == nullptr) return SqliteError(rc, what, sqlite3_errstr(rc), "");
  const char* file = sqlite3_db_filename(db, "main");
  return SqliteError(rc, what, sqlite3_errmsg(db), file != nullptr ? file : "");
}

// Runs sql (which may hold several statements) with no parameters.
Status Exec(sqlite3* db, const char* sql, std::string_view what) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return std::unexpected(DbError(db, rc, what));
  return OkStatus();
}

// Runs a query that yields one integer (e.g. a PRAGMA).
Result<int64_t> QueryInt(sqlite3* db, std::string_view sql, std::string what) {
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db, sql, what));
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return Internal(what + ": query returned no row");
  return st.Int(0);
}

}  // namespace snapvol::catalog_internal
