// Catalog: instances, which group an account's volumes.
#include "catalog/catalog.h"

#include <sqlite3.h>

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog_sql.h"
#include "core/ids.h"

namespace snapvol {
using catalog_internal::ReadRows;
using catalog_internal::Statement;

namespace {
Result<std::vector<InstanceRecord>> ReadInstances(Statement& st) {
  return ReadRows<InstanceRecord>(st, [](Statement& r) { return InstanceRecord{r.Text(0), r.Text(1), r.Text(2), r.Int(3)}; });
}
}  // namespace

Status Catalog::InsertInstance(const InstanceRecord& i) {
  if (!IsInstanceId(i.instance_id)) return InvalidArgument("'" + i.instance_id + "' is not an instance id (i-…)");
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                    "INSERT INTO instances (instance_id, account_id,"
                                                    " name, created_ms) VALUES (?, ?, ?, ?)",
                                                    "insert instance " + i.instance_id));
  st.Bind(i.instance_id).Bind(i.account_id).Bind(i.name).Bind(i.created_ms);
  auto run = st.Run();
  if (!run && st.rc() == SQLITE_CONSTRAINT_FOREIGNKEY)
    return NotFound("account " + i.account_id + " not found");
  if (!run && st.rc() == SQLITE_CONSTRAINT_PRIMARYKEY)
    return MakeError(ErrorCode::kAlreadyExists, "instance " + i.instance_id + " already exists");
  return run;
}

Result<InstanceRecord> Catalog::GetInstance(const std::string& id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(),
                                                    "SELECT instance_id, account_id, name, created_ms"
                                                    " FROM instances WHERE instance_id = ?",
                                                    "get instance " + id));
  st.Bind(id);
  ASSIGN_OR_RETURN(auto rows, ReadInstances(st));
  if (rows.empty()) return NotFound("instance " + id + " not found");
  return std::move(rows.front());
}

Result<std::vector<InstanceRecord>> Catalog::ListInstances(std::optional<std::string> account_id) {
  std::lock_guard lock(mu_);
  std::string sql = "SELECT instance_id, account_id, name, created_ms FROM instances";
  if (account_id) sql += " WHERE account_id = ?";
  sql += " ORDER BY created_ms, instance_id";
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db_.get(), sql, "list instances"));
  if (account_id) st.Bind(*account_id);
  return ReadInstances(st);
}

}  // namespace snapvol
