// The statement helpers that are not inline (catalog_sql.h).
#include "catalog/catalog_sql.h"

namespace snapvol::catalog_internal {

Result<int64_t> QueryInt(Connection& db, std::string_view sql, std::string what) {
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db, sql, what));
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return Internal(what + ": query returned no row");
  return st.Int(0);
}

}  // namespace snapvol::catalog_internal
