// Catalog: accounts, IAM policies and their attachments, and API access keys.
#include "catalog/catalog.h"

#include <algorithm>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "catalog/catalog_sql.h"
#include "core/ids.h"

namespace snapvol {
using catalog_internal::Changes;
using catalog_internal::Connection;
using catalog_internal::ReadRows;
using catalog_internal::Statement;

namespace {

constexpr size_t kMaxAliasChars = 63;

Status ValidateAlias(const std::string& alias) {
  bool ok = !alias.empty() && alias.size() <= kMaxAliasChars &&
            std::all_of(alias.begin(), alias.end(), [](char c) {
              return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '_' || c == '.';
            });
  if (!ok) {
    return InvalidArgument("account alias '" + alias + "' must be 1 to " +
                           std::to_string(kMaxAliasChars) + " of A-Z a-z 0-9 . _ -");
  }
  return OkStatus();
}

Result<std::vector<AccountRecord>> ReadAccounts(Statement& st) {
  return ReadRows<AccountRecord>(st, [](Statement& r) { return AccountRecord{r.Text(0), r.Text(1), r.Int(2), r.Int(3) != 0}; });
}

}  // namespace

// Every account starts with the built-in 'member' policy (SetAccountAdmin swaps it).
Status Catalog::AttachDefaultPolicy(const std::string& account_id, const std::string& what) {
  ASSIGN_OR_RETURN(Statement st,
                   Statement::Prepare(*db_,
                                      "INSERT INTO account_policies (account_id, policy_name, attached_ms)"
                                      " VALUES (?, 'member', ?) ON CONFLICT DO NOTHING",
                                      what + ": attach the member policy"));
  st.Bind(account_id).Bind(clock_->NowMillis());
  return st.Run();
}

// --- accounts ---

Result<AccountRecord> Catalog::CreateAccount(const std::string& alias) {
  RETURN_IF_ERROR(ValidateAlias(alias));
  std::lock_guard lock(mu_);
  ++write_generation_;  // identities changed: cached readers must look again
  AccountRecord rec;
  auto create = [&]() -> Status {
    Connection& db = *db_;
    const std::string what = "create account " + alias;
    ASSIGN_OR_RETURN(Statement find,
                     Statement::Prepare(db, "SELECT 1 FROM accounts WHERE alias = ?", what));
    find.Bind(alias);
    ASSIGN_OR_RETURN(bool taken, find.Step());
    if (taken) {
      return MakeError(ErrorCode::kAlreadyExists, "account alias '" + alias + "' is taken");
    }
    ASSIGN_OR_RETURN(Statement insert,
                     Statement::Prepare(db,
                                        "INSERT INTO accounts (account_id, alias, created_ms)"
                                        " VALUES (?, ?, ?) ON CONFLICT (account_id) DO NOTHING",
                                        what));
    // 10^11 possible ids: a collision is rare, several in a row mean a broken generator.
    for (int attempt = 0; attempt < 8; ++attempt) {
      rec = AccountRecord{NewAccountId(), alias, clock_->NowMillis(), false};
      insert.Reset();
      insert.Bind(rec.account_id).Bind(rec.alias).Bind(rec.created_ms);
      RETURN_IF_ERROR(insert.Run());
      if (Changes(db) == 1) return AttachDefaultPolicy(rec.account_id, what);
    }
    return Internal(what + ": could not find an unused account id");
  };
  RETURN_IF_ERROR(InTransaction(create));
  return rec;
}

Result<AccountRecord> Catalog::GetAccount(const std::string& id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    "SELECT account_id, alias, created_ms, is_admin"
                                                    " FROM accounts WHERE account_id = ?",
                                                    "get account " + id));
  st.Bind(id);
  ASSIGN_OR_RETURN(std::vector<AccountRecord> rows, ReadAccounts(st));
  if (rows.empty()) return NotFound("account " + id + " not found");
  return std::move(rows.front());
}

Result<std::vector<AccountRecord>> Catalog::ListAccounts() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    "SELECT account_id, alias, created_ms, is_admin"
                                                    " FROM accounts"
                                                    " ORDER BY created_ms, account_id",
                                                    "list accounts"));
  return ReadAccounts(st);
}

Status Catalog::SetAccountAdmin(const std::string& id, bool admin) {
  std::lock_guard lock(mu_);
  ++write_generation_;  // identities changed: cached readers must look again
  return InTransaction([&]() -> Status {
    const std::string what = "set admin flag of account " + id;
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                      "UPDATE accounts SET is_admin = ?"
                                                      " WHERE account_id = ?",
                                                      what));
    st.Bind(admin ? 1 : 0).Bind(id);
    RETURN_IF_ERROR(st.Run());
    if (Changes(*db_) == 0) return NotFound("account " + id + " not found");
    // The built-in policy follows the flag: administrator replaces member and back.
    ASSIGN_OR_RETURN(Statement drop, Statement::Prepare(*db_,
                                                        "DELETE FROM account_policies WHERE account_id = ?"
                                                        " AND policy_name = ?",
                                                        what));
    drop.Bind(id).Bind(admin ? "member" : "administrator");
    RETURN_IF_ERROR(drop.Run());
    ASSIGN_OR_RETURN(Statement add, Statement::Prepare(*db_,
                                                       "INSERT INTO account_policies (account_id, policy_name,"
                                                       " attached_ms) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                                                       what));
    add.Bind(id).Bind(admin ? "administrator" : "member").Bind(clock_->NowMillis());
    return add.Run();
  });
}

// --- IAM policies ---

Status Catalog::PutIamPolicy(const IamPolicyRecord& p) {
  std::lock_guard lock(mu_);
  ++write_generation_;  // identities changed: cached readers must look again
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    "INSERT INTO iam_policies (name, document, created_ms)"
                                                    " VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE"
                                                    " SET document = excluded.document",
                                                    "store IAM policy " + p.name));
  st.Bind(p.name).Bind(p.document).Bind(p.created_ms);
  return st.Run();
}

namespace {
Result<std::vector<IamPolicyRecord>> ReadIamPolicies(Statement& st) {
  return ReadRows<IamPolicyRecord>(st, [](Statement& r) { return IamPolicyRecord{r.Text(0), r.Text(1), r.Int(2)}; });
}
}  // namespace

Result<IamPolicyRecord> Catalog::GetIamPolicy(const std::string& name) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    "SELECT name, document, created_ms FROM iam_policies"
                                                    " WHERE name = ?",
                                                    "read IAM policy " + name));
  st.Bind(name);
  ASSIGN_OR_RETURN(auto rows, ReadIamPolicies(st));
  if (rows.empty()) return NotFound("policy " + name + " not found");
  return rows.front();
}

Result<std::vector<IamPolicyRecord>> Catalog::ListIamPolicies() {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    "SELECT name, document, created_ms FROM iam_policies"
                                                    " ORDER BY name",
                                                    "list IAM policies"));
  return ReadIamPolicies(st);
}

Status Catalog::DeleteIamPolicy(const std::string& name) {
  std::lock_guard lock(mu_);
  ++write_generation_;  // identities changed: cached readers must look again
  return InTransaction([&]() -> Status {
    const std::string what = "delete IAM policy " + name;
    ASSIGN_OR_RETURN(Statement used, Statement::Prepare(*db_,
                                                        "SELECT account_id FROM account_policies"
                                                        " WHERE policy_name = ? LIMIT 1",
                                                        what));
    used.Bind(name);
    ASSIGN_OR_RETURN(bool attached, used.Step());
    if (attached) return Conflict("policy " + name + " is attached to account " + used.Text(0) + "; detach it first");
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, "DELETE FROM iam_policies WHERE name = ?", what));
    st.Bind(name);
    RETURN_IF_ERROR(st.Run());
    if (Changes(*db_) == 0) return NotFound("policy " + name + " not found");
    return OkStatus();
  });
}

Status Catalog::AttachPolicy(const std::string& account_id, const std::string& policy_name) {
  std::lock_guard lock(mu_);
  ++write_generation_;  // identities changed: cached readers must look again
  return InTransaction([&]() -> Status {
    const std::string what = "attach policy " + policy_name + " to account " + account_id;
    ASSIGN_OR_RETURN(Statement acct, Statement::Prepare(*db_,
                                                        "SELECT 1 FROM accounts WHERE account_id = ?", what));
    acct.Bind(account_id);
    ASSIGN_OR_RETURN(bool known, acct.Step());
    if (!known) return NotFound("account " + account_id + " not found");
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                      "INSERT INTO account_policies (account_id, policy_name,"
                                                      " attached_ms) VALUES (?, ?, ?)",
                                                      what));
    st.Bind(account_id).Bind(policy_name).Bind(clock_->NowMillis());
    return st.Run();
  });
}

Status Catalog::DetachPolicy(const std::string& account_id, const std::string& policy_name) {
  std::lock_guard lock(mu_);
  ++write_generation_;  // identities changed: cached readers must look again
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                    "DELETE FROM account_policies WHERE account_id = ?"
                                                    " AND policy_name = ?",
                                                    "detach policy " + policy_name));
  st.Bind(account_id).Bind(policy_name);
  RETURN_IF_ERROR(st.Run());
  if (Changes(*db_) == 0)
    return NotFound("policy " + policy_name + " is not attached to account " + account_id);
  return OkStatus();
}

Result<std::vector<PolicyAttachment>> Catalog::ListPolicyAttachments(std::optional<std::string> account_id) {
  std::lock_guard lock(mu_);
  std::string sql = "SELECT account_id, policy_name, attached_ms FROM account_policies";
  if (account_id) sql += " WHERE account_id = ?";
  sql += " ORDER BY account_id, policy_name";
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, sql, "list policy attachments"));
  if (account_id) st.Bind(*account_id);
  return ReadRows<PolicyAttachment>(st, [](Statement& r) { return PolicyAttachment{r.Text(0), r.Text(1), r.Int(2)}; });
}

// --- access keys ---

namespace {
Result<std::vector<AccessKeyRecord>> ReadKeys(Statement& st) {
  return ReadRows<AccessKeyRecord>(st, [](Statement& r) {
    return AccessKeyRecord{r.Text(0), r.Text(1), r.Text(2), r.Text(3), r.Int(4), r.Int(5) != 0, r.Int(6)};
  });
}

constexpr char kKeyColumns[] =
    "SELECT access_key_id, account_id, user_name, secret_sealed, created_ms, active, status_ms"
    " FROM access_keys";

// kConflict when key `id` (which exists) is active, held by an administrator account, and the
// only such key: disabling or deleting it would leave no administrator able to sign a request.
// REQUIRES: inside the transaction that then changes the key.
Status RefuseLastAdministratorKey(Connection& db, const std::string& id, const std::string& what) {
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(db,
                                                    "SELECT a.alias,"
                                                    " (SELECT count(*) FROM access_keys k2 JOIN accounts a2"
                                                    "  ON a2.account_id = k2.account_id"
                                                    "  WHERE k2.active = 1 AND a2.is_admin = 1)"
                                                    " FROM access_keys k JOIN accounts a ON a.account_id = k.account_id"
                                                    " WHERE k.access_key_id = ? AND k.active = 1 AND a.is_admin = 1",
                                                    what));
  st.Bind(id);
  ASSIGN_OR_RETURN(bool row, st.Step());
  if (!row) return OkStatus();  // disabled already, or not an administrator's
  if (st.Int(1) > 1) return OkStatus();
  return Conflict("access key " + id + " is the last active key of an administrator (account " + st.Text(0) +
                  "): create or enable another administrator key first");
}
}  // namespace

Status Catalog::InsertAccessKey(const AccessKeyRecord& k) {
  if (k.access_key_id.size() < 16 || k.access_key_id.size() > 128)
    return InvalidArgument("access key id must be 16 to 128 characters");
  if (k.secret_sealed.empty()) return InvalidArgument("access key has no sealed secret");
  std::lock_guard lock(mu_);
  ++write_generation_;  // identities changed: cached readers must look again
  return InTransaction([&]() -> Status {
    const std::string what = "insert access key " + k.access_key_id;
    ASSIGN_OR_RETURN(Statement acct, Statement::Prepare(*db_,
                                                        "SELECT 1 FROM accounts WHERE account_id = ?", what));
    acct.Bind(k.account_id);
    ASSIGN_OR_RETURN(bool known, acct.Step());
    if (!known) return NotFound("account " + k.account_id + " not found");
    ASSIGN_OR_RETURN(Statement st,
                     Statement::Prepare(*db_,
                                        "INSERT INTO access_keys (access_key_id, account_id,"
                                        " user_name, secret_sealed, created_ms)"
                                        " VALUES (?, ?, ?, ?, ?)",
                                        what));
    st.Bind(k.access_key_id).Bind(k.account_id).Bind(k.user_name).Bind(k.secret_sealed).Bind(k.created_ms);
    return st.Run();
  });
}

Result<AccessKeyRecord> Catalog::GetAccessKey(const std::string& id) {
  std::lock_guard lock(mu_);
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, std::string(kKeyColumns) + " WHERE access_key_id = ?",
                                                    "get access key"));
  st.Bind(id);
  ASSIGN_OR_RETURN(std::vector<AccessKeyRecord> rows, ReadKeys(st));
  if (rows.empty()) return NotFound("access key " + id + " not found");
  return std::move(rows.front());
}

Result<std::vector<AccessKeyRecord>> Catalog::ListAccessKeys(std::optional<std::string> account_id) {
  std::lock_guard lock(mu_);
  std::string sql = kKeyColumns;
  if (account_id) sql += " WHERE account_id = ?";
  sql += " ORDER BY created_ms, access_key_id";
  ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, sql, "list access keys"));
  if (account_id) st.Bind(*account_id);
  return ReadKeys(st);
}

Status Catalog::DeleteAccessKey(const std::string& id) {
  std::lock_guard lock(mu_);
  ++write_generation_;  // identities changed: cached readers must look again
  return InTransaction([&]() -> Status {
    const std::string what = "delete access key " + id;
    RETURN_IF_ERROR(RefuseLastAdministratorKey(*db_, id, what));
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_, "DELETE FROM access_keys WHERE access_key_id = ?", what));
    st.Bind(id);
    RETURN_IF_ERROR(st.Run());
    if (Changes(*db_) == 0) return NotFound("access key " + id + " not found");
    return OkStatus();
  });
}

Status Catalog::SetAccessKeyActive(const std::string& id, bool active, int64_t now_ms) {
  std::lock_guard lock(mu_);
  ++write_generation_;  // identities changed: cached readers must look again
  return InTransaction([&]() -> Status {
    const std::string what = std::string(active ? "enable" : "disable") + " access key " + id;
    ASSIGN_OR_RETURN(Statement find, Statement::Prepare(*db_, "SELECT active FROM access_keys WHERE access_key_id = ?", what));
    find.Bind(id);
    ASSIGN_OR_RETURN(bool exists, find.Step());
    if (!exists) return NotFound("access key " + id + " not found");
    if ((find.Int(0) != 0) == active) return OkStatus();
    if (!active) RETURN_IF_ERROR(RefuseLastAdministratorKey(*db_, id, what));
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                      "UPDATE access_keys SET active = ?, status_ms = ?"
                                                      " WHERE access_key_id = ?",
                                                      what));
    st.Bind(int64_t{active ? 1 : 0}).Bind(now_ms).Bind(id);
    return st.Run();
  });
}

Status Catalog::ReplaceAccessKeySecret(const std::string& id, const std::string& expected,
                                       const std::string& sealed) {
  if (sealed.empty()) return InvalidArgument("access key has no sealed secret");
  std::lock_guard lock(mu_);
  ++write_generation_;  // identities changed: cached readers must look again
  return InTransaction([&]() -> Status {
    const std::string what = "re-seal the secret of access key " + id;
    ASSIGN_OR_RETURN(Statement st, Statement::Prepare(*db_,
                                                      "UPDATE access_keys SET secret_sealed = ?"
                                                      " WHERE access_key_id = ? AND secret_sealed = ?",
                                                      what));
    st.Bind(sealed).Bind(id).Bind(expected);
    RETURN_IF_ERROR(st.Run());
    if (Changes(*db_) == 1) return OkStatus();
    ASSIGN_OR_RETURN(Statement find, Statement::Prepare(*db_, "SELECT 1 FROM access_keys WHERE access_key_id = ?", what));
    find.Bind(id);
    ASSIGN_OR_RETURN(bool exists, find.Step());
    if (!exists) return NotFound("access key " + id + " not found");
    return Conflict(what + ": it was changed meanwhile");
  });
}

}  // namespace snapvol
