// Catalog: the freeze hooks of instances (pre and post commands run around their cut).
#include <mutex>
#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_sql.h"
#include "core/subprocess.h"

namespace snapvol {
using catalog_internal::Statement;

namespace {

constexpr size_t kMaxCommandBytes = 4096;

constexpr char kHooksSelect[] =
    "SELECT instance_id, pre_command, post_command, timeout_s, on_pre_failure, updated_ms FROM instance_hooks";

Result<std::vector<InstanceHooksRecord>> ReadHooks(Statement& st) {
  std::vector<InstanceHooksRecord> out;
  for (;;) {
    ASSIGN_OR_RETURN(bool row, st.Step());
    if (!row) return out;
    out.push_back({st.Text(0), st.Text(1), st.Text(2), st.Int(3), st.Text(4), st.Int(5)});
  }
}

Status ValidateCommand(const std::string& line, const std::string& which) {
  if (line.empty()) return OkStatus();
  if (line.size() > kMaxCommandBytes)
    return InvalidArgument("the " + which + "-command is longer than " + std::to_string(kMaxCommandBytes) + " bytes");
  auto argv = SplitCommandLine(line);
  if (!argv) return InvalidArgument("the " + which + "-command: " + argv.error().message());
  return OkStatus();
}

}  // namespace

Status Catalog::SetInstanceHooks(const InstanceHooksRecord& h) {
  if (h.pre_command.empty() && h.post_command.empty())
    return InvalidArgument("hooks need a pre-command, a post-command or both");
  RETURN_IF_ERROR(ValidateCommand(h.pre_command, "pre"));
  RETURN_IF_ERROR(ValidateCommand(h.post_command, "post"));
  if (h.timeout_s < 1 || h.timeout_s > 3600)
    return InvalidArgument("a hook's timeout is 1 to 3600 seconds, not " + std::to_string(h.timeout_s));
  if (h.on_pre_failure != "fail" && h.on_pre_failure != "crash-consistent")
    return InvalidArgument("on a pre-command failure the snapshots either fail or are crash-consistent, not '" +
                           h.on_pre_failure + "'");
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    ASSIGN_OR_RETURN(Statement exists, Statement::Prepare(*db_, "SELECT 1 FROM instances WHERE instance_id = ?",
                                                          "find instance " + h.instance_id));
    exists.Bind(h.instance_id);
    ASSIGN_OR_RETURN(bool found, exists.Step());
    if (!found) return NotFound("instance " + h.instance_id + " not found");
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_,
                                        "INSERT INTO instance_hooks (instance_id, pre_command, post_command, timeout_s,"
                                        " on_pre_failure, updated_ms) VALUES (?, ?, ?, ?, ?, ?)"
                                        " ON CONFLICT (instance_id) DO UPDATE SET pre_command = excluded.pre_command,"
                                        " post_command = excluded.post_command, timeout_s = excluded.timeout_s,"
                                        " on_pre_failure = excluded.on_pre_failure, updated_ms = excluded.updated_ms",
                                        "set hooks of instance " + h.instance_id));
    st.Bind(h.instance_id).Bind(h.pre_command).Bind(h.post_command).Bind(h.timeout_s).Bind(h.on_pre_failure);
    st.Bind(h.updated_ms ? h.updated_ms : clock_->NowMillis());
    return st.Run();
  });
}

Result<InstanceHooksRecord> Catalog::GetInstanceHooks(const std::string& instance_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, std::string(kHooksSelect) + " WHERE instance_id = ?",
                                                    "get hooks of instance " + instance_id));
  st.Bind(instance_id);
  ASSIGN_OR_RETURN(auto rows, ReadHooks(st));
  if (rows.empty()) return NotFound("instance " + instance_id + " has no hooks");
  return std::move(rows.front());
}

Result<std::vector<InstanceHooksRecord>> Catalog::ListInstanceHooks() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, std::string(kHooksSelect) + " ORDER BY instance_id",
                                                    "list instance hooks"));
  return ReadHooks(st);
}

Status Catalog::ClearInstanceHooks(const std::string& instance_id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, "DELETE FROM instance_hooks WHERE instance_id = ?",
                                                    "clear hooks of instance " + instance_id));
  st.Bind(instance_id);
  RETURN_IF_ERROR(st.Run());
  if (catalog_internal::Changes(*db_) == 0) return NotFound("instance " + instance_id + " has no hooks");
  return OkStatus();
}

}  // namespace snapvol
