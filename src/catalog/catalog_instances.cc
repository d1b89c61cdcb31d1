// Catalog: instances, which group an account's volumes, with their tags.
#include "catalog/catalog.h"

#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog_sql.h"
#include "core/ids.h"

namespace snapvol {
using catalog_internal::Statement;
using catalog_internal::UnifyNameAndTags;
using catalog_internal::Violation;

namespace {

// Rows come one per (instance, tag), an instance's rows adjacent and its tags sorted by key;
// an instance without tags has one row with NULL key.
constexpr char kInstanceSelect[] =
    "SELECT i.instance_id, i.account_id, i.name, i.created_ms, t.key, t.value, i.state, i.root_device,"
    " coalesce(i.host_id, '')"
    " FROM instances i LEFT JOIN tags t ON t.resource_id = i.instance_id";
constexpr char kInstanceOrder[] = " ORDER BY i.created_ms, i.instance_id, t.key";

Result<std::vector<InstanceRecord>> ReadInstances(Statement& st) {
  std::vector<InstanceRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return out;
    std::string id = st.Text(0);
    if (out.empty() || out.back().instance_id != id) {
      out.push_back(InstanceRecord{std::move(id), st.Text(1), st.Text(2), st.Int(3), {}, st.Text(6), st.Text(7),
                                   st.Text(8)});
    }
    if (!st.IsNull(4)) out.back().tags.push_back(Tag{st.Text(4), st.Text(5)});
  }
}

}  // namespace

Status Catalog::InsertInstance(const InstanceRecord& i) {
  if (!IsInstanceId(i.instance_id)) return InvalidArgument("'" + i.instance_id + "' is not an instance id (i-…)");
  if (!IsDeviceName(i.root_device))
    return InvalidArgument("'" + i.root_device + "' is not a device name (like /dev/xvda)");
  std::string name = i.name;
  std::vector<Tag> tags = i.tags;
  UnifyNameAndTags(name, tags);
  RETURN_IF_ERROR(ValidateTagList(tags, "tags of " + i.instance_id));
  std::lock_guard lock(mu_);
  const std::string host = i.host_id.empty() ? local_host_ : i.host_id;
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                      "INSERT INTO instances (instance_id, account_id,"
                                                      " name, created_ms, state, root_device, host_id)"
                                                      " VALUES (?, ?, ?, ?, ?, ?, NULLIF(?, ''))",
                                                      "insert instance " + i.instance_id));
    st.Bind(i.instance_id).Bind(i.account_id).Bind(name).Bind(i.created_ms).Bind(i.state).Bind(i.root_device).Bind(host);
    auto run = st.Run();
    if (!run && st.violation() == Violation::kForeignKey)
      return NotFound("account " + i.account_id + " not found");
    if (!run && st.violation() == Violation::kPrimaryKey)
      return MakeError(ErrorCode::kAlreadyExists, "instance " + i.instance_id + " already exists");
    RETURN_IF_ERROR(run);
    return WriteTags(i.instance_id, tags);
  });
}

Result<InstanceRecord> Catalog::GetInstance(const std::string& id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    std::string(kInstanceSelect) +
                                                        " WHERE i.instance_id = ?" + kInstanceOrder,
                                                    "get instance " + id));
  st.Bind(id);
  ASSIGN_OR_RETURN(auto rows, ReadInstances(st));
  if (rows.empty()) return NotFound("instance " + id + " not found");
  return std::move(rows.front());
}

Result<std::vector<InstanceRecord>> Catalog::ListInstances(std::optional<std::string> account_id) {
  std::lock_guard lock(mu_);
  std::string sql = kInstanceSelect;
  if (account_id) sql += " WHERE i.account_id = ?";
  sql += kInstanceOrder;
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, sql, "list instances"));
  if (account_id) st.Bind(*account_id);
  return ReadInstances(st);
}

Status Catalog::SetInstanceState(const std::string& id, const std::string& state) {
  if (state != "running" && state != "stopped")
    return InvalidArgument("an instance's state is running or stopped, not '" + state + "'");
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, "UPDATE instances SET state = ? WHERE instance_id = ?",
                                                    "set state of instance " + id));
  st.Bind(state).Bind(id);
  RETURN_IF_ERROR(st.Run());
  if (catalog_internal::Changes(*db_) == 0) return NotFound("instance " + id + " not found");
  return OkStatus();
}

}  // namespace snapvol
