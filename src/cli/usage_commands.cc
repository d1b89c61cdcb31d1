#include "cli/usage_commands.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

namespace snapvol {

Status AccountUsageCommand(Catalog* catalog, UsageAccounting* usage, const std::optional<std::string>& account_id,
                           bool rebuild, bool json, std::ostream& out) {
  std::vector<AccountRecord> accounts;
  if (account_id) {
    ASSIGN_OR_RETURN(AccountRecord a, catalog->GetAccount(*account_id));
    accounts.push_back(std::move(a));
  } else {
    ASSIGN_OR_RETURN(accounts, catalog->ListAccounts());
  }
  if (rebuild) RETURN_IF_ERROR(catalog->ResetUsage());
  RETURN_IF_ERROR(usage->Drain());
  ASSIGN_OR_RETURN(UsageTotals totals, usage->Totals());
  nlohmann::json jaccounts = nlohmann::json::array();
  std::vector<std::vector<std::string>> rows;
  for (const AccountRecord& a : accounts) {
    AccountUsageRecord u{a.account_id};
    for (const auto& t : totals.accounts)
      if (t.account_id == a.account_id) u = t;
    jaccounts.push_back({{"AccountId", a.account_id}, {"Alias", a.alias}, {"Snapshots", u.snapshots},
                         {"ExclusiveBytes", u.exclusive_bytes}, {"SharedBytes", u.shared_bytes}});
    rows.push_back({a.account_id, a.alias, std::to_string(u.snapshots), std::to_string(u.exclusive_bytes),
                    std::to_string(u.shared_bytes)});
  }
  if (json) {
    out << nlohmann::json{{"Accounts", jaccounts}, {"StoredBytes", totals.stored_bytes}}.dump(2) << "\n";
    return OkStatus();
  }
  const std::vector<std::string> header = {"ACCOUNT", "ALIAS", "SNAPSHOTS", "EXCLUSIVE BYTES", "SHARED BYTES"};
  std::vector<size_t> w(header.size());
  for (size_t i = 0; i < header.size(); ++i) w[i] = header[i].size();
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); ++i) w[i] = std::max(w[i], r[i].size());
  auto line = [&](const std::vector<std::string>& r) {
    std::string s;
    for (size_t i = 0; i < r.size(); ++i) s += i + 1 < r.size() ? r[i] + std::string(w[i] - r[i].size() + 2, ' ') : r[i];
    out << s << "\n";
  };
  line(header);
  for (const auto& r : rows) line(r);
  out << "the store holds " << totals.stored_bytes << " bytes for every accounted snapshot\n";
  return OkStatus();
}

}  // namespace snapvol
