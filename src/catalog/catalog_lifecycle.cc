// Catalog: lifecycle (DLM) policies and the runs of their schedules.
#include "catalog/catalog.h"

#include <algorithm>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog_sql.h"

namespace snapvol {
using catalog_internal::Changes;
using catalog_internal::ReadRows;
using catalog_internal::Statement;

namespace {
constexpr char kLifecycleSelect[] =
    "SELECT policy_id, account_id, description, state, role_arn, details, tags, created_ms, modified_ms"
    " FROM lifecycle_policies";

Result<std::vector<LifecyclePolicyRecord>> ReadLifecyclePolicies(Statement& st) {
  return ReadRows<LifecyclePolicyRecord>(st, [](Statement& r) { return LifecyclePolicyRecord{r.Text(0), r.Text(1), r.Text(2), r.Text(3), r.Text(4), r.Text(5),
                                                      r.Text(6), r.Int(7), r.Int(8)}; });
}

constexpr char kRunSelect[] =
    "SELECT policy_id, schedule_name, scheduled_ms, started_ms, finished_ms, state, created, failed,"
    " deleted, missed, message, host_id, lease_generation FROM lifecycle_runs";

Result<std::vector<LifecycleRunRecord>> ReadRuns(Statement& st) {
  return ReadRows<LifecycleRunRecord>(st, [](Statement& r) { return LifecycleRunRecord{r.Text(0), r.Text(1), r.Int(2), r.Int(3), r.Int(4), r.Text(5), r.Int(6),
                                                   r.Int(7), r.Int(8), r.Int(9), r.Text(10), r.Text(11), r.Int(12)}; });
}
}  // namespace

Status Catalog::InsertLifecyclePolicy(const LifecyclePolicyRecord& p) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      "INSERT INTO lifecycle_policies (policy_id, account_id, description, state,"
                                      " role_arn, details, tags, created_ms, modified_ms)"
                                      " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                      "insert lifecycle policy " + p.policy_id));
  st.Bind(p.policy_id).Bind(p.account_id).Bind(p.description).Bind(p.state).Bind(p.role_arn);
  st.Bind(p.details).Bind(p.tags).Bind(p.created_ms).Bind(p.modified_ms);
  return st.Run();
}

Status Catalog::InsertDefaultLifecyclePolicy(const LifecyclePolicyRecord& p) {
  std::lock_guard lock(mu_);
  return InTransaction([&]() -> Status {
    const std::string what = "default lifecycle policy of " + p.account_id;
    ASSIGN_OR_RETURN(Statement mark, Statement::Prepare(*db_,
                                                        "UPDATE accounts SET lifecycle_default_made = 1"
                                                        " WHERE account_id = ? AND lifecycle_default_made = 0",
                                                        what));
    mark.Bind(p.account_id);
    RETURN_IF_ERROR(mark.Run());
    if (Changes(*db_) == 0) return MakeError(ErrorCode::kAlreadyExists, what + " was already made");
    return InsertLifecyclePolicy(p);
  });
}

Result<std::vector<std::string>> Catalog::AccountsWithoutDefaultLifecyclePolicy() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    "SELECT account_id FROM accounts WHERE lifecycle_default_made = 0"
                                                    " ORDER BY account_id",
                                                    "list accounts without a default lifecycle policy"));
  return ReadRows<std::string>(st, [](Statement& r) { return r.Text(0); });
}

Result<LifecyclePolicyRecord> Catalog::GetLifecyclePolicy(const std::string& id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, std::string(kLifecycleSelect) + " WHERE policy_id = ?",
                                                    "read lifecycle policy " + id));
  st.Bind(id);
  ASSIGN_OR_RETURN(auto rows, ReadLifecyclePolicies(st));
  if (rows.empty()) return NotFound("lifecycle policy " + id + " not found");
  return rows.front();
}

Result<std::vector<LifecyclePolicyRecord>> Catalog::ListLifecyclePolicies(std::optional<std::string> account_id) {
  std::lock_guard lock(mu_);
  std::string sql = kLifecycleSelect;
  if (account_id) sql += " WHERE account_id = ?";
  sql += " ORDER BY created_ms, policy_id";
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, sql, "list lifecycle policies"));
  if (account_id) st.Bind(*account_id);
  return ReadLifecyclePolicies(st);
}

Status Catalog::UpdateLifecyclePolicy(const LifecyclePolicyRecord& p) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      "UPDATE lifecycle_policies SET description = ?, state = ?, role_arn = ?,"
                                      " details = ?, tags = ?, modified_ms = ? WHERE policy_id = ?",
                                      "update lifecycle policy " + p.policy_id));
  st.Bind(p.description).Bind(p.state).Bind(p.role_arn).Bind(p.details).Bind(p.tags).Bind(p.modified_ms);
  st.Bind(p.policy_id);
  RETURN_IF_ERROR(st.Run());
  if (Changes(*db_) == 0) return NotFound("lifecycle policy " + p.policy_id + " not found");
  return OkStatus();
}

Status Catalog::DeleteLifecyclePolicy(const std::string& id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, "DELETE FROM lifecycle_policies WHERE policy_id = ?",
                                                    "delete lifecycle policy " + id));
  st.Bind(id);
  RETURN_IF_ERROR(st.Run());
  if (Changes(*db_) == 0) return NotFound("lifecycle policy " + id + " not found");
  return OkStatus();
}

Status Catalog::InsertLifecycleRun(const LifecycleRunRecord& r) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      "INSERT INTO lifecycle_runs (policy_id, schedule_name, scheduled_ms, started_ms,"
                                      " finished_ms, state, created, failed, deleted, missed, message, host_id,"
                                      " lease_generation) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                      "insert lifecycle run of " + r.policy_id));
  st.Bind(r.policy_id).Bind(r.schedule_name).Bind(r.scheduled_ms).Bind(r.started_ms).Bind(r.finished_ms);
  st.Bind(r.state).Bind(r.created).Bind(r.failed).Bind(r.deleted).Bind(r.missed).Bind(r.message);
  st.Bind(r.host_id).Bind(r.lease_generation);
  return st.Run();
}

Status Catalog::UpdateLifecycleRun(const LifecycleRunRecord& r) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      "UPDATE lifecycle_runs SET finished_ms = ?, state = ?, created = ?, failed = ?,"
                                      " deleted = ?, missed = ?, message = ?, host_id = ?, lease_generation = ?"
                                      " WHERE policy_id = ? AND schedule_name = ? AND scheduled_ms = ?"
                                      " AND lease_generation <= ?",
                                      "update lifecycle run of " + r.policy_id));
  st.Bind(r.finished_ms).Bind(r.state).Bind(r.created).Bind(r.failed).Bind(r.deleted).Bind(r.missed);
  st.Bind(r.message).Bind(r.host_id).Bind(r.lease_generation);
  st.Bind(r.policy_id).Bind(r.schedule_name).Bind(r.scheduled_ms).Bind(r.lease_generation);
  RETURN_IF_ERROR(st.Run());
  if (Changes(*db_) == 1) return OkStatus();
  // Fenced: a holder that lost the lease finds the run taken over under a newer generation.
  ASSIGN_OR_RETURN(Statement read,
                   Statement::Prepare(*db_,
                                      std::string(kRunSelect) +
                                          " WHERE policy_id = ? AND schedule_name = ? AND scheduled_ms = ?",
                                      "update lifecycle run of " + r.policy_id));
  read.Bind(r.policy_id).Bind(r.schedule_name).Bind(r.scheduled_ms);
  ASSIGN_OR_RETURN(auto rows, ReadRuns(read));
  if (rows.empty()) return NotFound("lifecycle run of " + r.policy_id + " not found");
  return Conflict("lifecycle run of " + r.policy_id + " schedule " + r.schedule_name + " was taken over by " +
                  (rows.front().host_id.empty() ? std::string("another host") : rows.front().host_id) +
                  " under lease generation " + std::to_string(rows.front().lease_generation) + " (this one: " +
                  std::to_string(r.lease_generation) + ")");
}

Result<std::vector<LifecycleRunRecord>> Catalog::ListLifecycleRuns(std::optional<std::string> policy_id,
                                                                   size_t limit) {
  std::lock_guard lock(mu_);
  std::string sql = kRunSelect;
  if (policy_id) sql += " WHERE policy_id = ?";
  sql += " ORDER BY scheduled_ms DESC, policy_id, schedule_name LIMIT ?";
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, sql, "list lifecycle runs"));
  if (policy_id) st.Bind(*policy_id);
  st.Bind(static_cast<int64_t>(std::min<size_t>(limit, 1u << 30)));
  return ReadRuns(st);
}

Result<std::vector<LifecycleRunRecord>> Catalog::ListRunningLifecycleRuns() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    std::string(kRunSelect) +
                                                        " WHERE state = 'running' ORDER BY scheduled_ms",
                                                    "list running lifecycle runs"));
  return ReadRuns(st);
}

Result<std::optional<LifecycleRunRecord>> Catalog::LatestLifecycleRun(const std::string& policy_id,
                                                                      const std::string& schedule_name) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    std::string(kRunSelect) +
                                                        " WHERE policy_id = ? AND schedule_name = ?"
                                                        " ORDER BY scheduled_ms DESC LIMIT 1",
                                                    "read the latest lifecycle run of " + policy_id));
  st.Bind(policy_id).Bind(schedule_name);
  ASSIGN_OR_RETURN(auto rows, ReadRuns(st));
  if (rows.empty()) return std::optional<LifecycleRunRecord>();
  return std::optional<LifecycleRunRecord>(rows.front());
}

}  // namespace snapvol
