// `snapvol account set-quota` / `show-quota` (see quota_commands.h).
#include "cli/cli_support.h"
#include "cli/quota_commands.h"

#include <charconv>
#include <nlohmann/json.hpp>
#include <vector>

namespace snapvol {
namespace {

using json = nlohmann::json;
constexpr uint64_t kGiBBytes = uint64_t{1} << 30;

uint64_t Used(const QuotaUsage& u, QuotaKind kind) {
  switch (kind) {
    case QuotaKind::kVolumeGib: return (u.volume_bytes + kGiBBytes - 1) / kGiBBytes;  // GiB, rounded up
    case QuotaKind::kVolumes: return u.volumes;
    case QuotaKind::kSnapshots: return u.snapshots;
  }
  return 0;
}

std::string LimitText(std::optional<uint64_t> limit) { return limit ? std::to_string(*limit) : "unlimited"; }

json LimitJson(std::optional<uint64_t> limit) { return limit ? json(*limit) : json(nullptr); }

}  // namespace

Result<QuotaSetting> ParseQuotaSetting(const std::string& option, const std::string& text, bool for_defaults) {
  if (text == "unlimited") return QuotaSetting{QuotaSetting::Mode::kUnlimited, 0};
  if (text == "default") {
    if (for_defaults) return InvalidArgument(option + " default: the defaults have no default (use a number or unlimited)");
    return QuotaSetting{QuotaSetting::Mode::kInherit, 0};
  }
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size())
    return InvalidArgument(option + " '" + text + "' is not a whole number, unlimited" + (for_defaults ? "" : " or default"));
  if (n > kMaxQuotaLimit) return InvalidArgument(option + " " + text + " is larger than " + std::to_string(kMaxQuotaLimit));
  return QuotaSetting{QuotaSetting::Mode::kLimit, n};
}

Status SetQuotaCommand(Catalog* catalog, const std::string& account_id, const std::map<QuotaKind, std::string>& given) {
  if (given.empty()) return InvalidArgument("give at least one of --volume-gib, --volumes, --snapshots");
  std::vector<std::pair<QuotaKind, QuotaSetting>> changes;
  for (const auto& [kind, text] : given) {
    ASSIGN_OR_RETURN(QuotaSetting setting,
                     ParseQuotaSetting(std::string("--") + QuotaKindName(kind), text, account_id == kQuotaDefaults));
    changes.emplace_back(kind, setting);
  }
  return catalog->SetQuotas(account_id, changes);
}

Status ShowQuotaCommand(Catalog* catalog, const std::optional<std::string>& account_id, bool as_json, std::ostream& out) {
  ASSIGN_OR_RETURN(QuotaSettings defaults, catalog->GetQuotaSettings(kQuotaDefaults));
  std::vector<AccountRecord> accounts;
  if (account_id) {
    ASSIGN_OR_RETURN(AccountRecord a, catalog->GetAccount(*account_id));
    accounts.push_back(std::move(a));
  } else {
    ASSIGN_OR_RETURN(accounts, catalog->ListAccounts());
  }
  auto default_limit = [&](QuotaKind k) -> std::optional<uint64_t> {
    const QuotaSetting& d = defaults.Get(k);
    if (d.mode == QuotaSetting::Mode::kLimit) return d.limit;
    return std::nullopt;
  };
  json jaccounts = json::array();
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> drow = {"(defaults)", "", "", "", ""};
  json jdefaults = json::object();
  for (size_t i = 0; i < std::size(kQuotaKinds); ++i) {
    drow[2 + i] = LimitText(default_limit(kQuotaKinds[i]));
    jdefaults[QuotaKindName(kQuotaKinds[i])] = LimitJson(default_limit(kQuotaKinds[i]));
  }
  rows.push_back(drow);
  for (const AccountRecord& a : accounts) {
    ASSIGN_OR_RETURN(QuotaSettings own, catalog->GetQuotaSettings(a.account_id));
    ASSIGN_OR_RETURN(QuotaLimits limits, catalog->EffectiveQuotaLimits(a.account_id));
    ASSIGN_OR_RETURN(QuotaUsage usage, catalog->GetQuotaUsage(a.account_id));
    std::vector<std::string> row = {a.account_id, a.alias, "", "", ""};
    json ja = {{"AccountId", a.account_id}, {"Alias", a.alias}};
    for (size_t i = 0; i < std::size(kQuotaKinds); ++i) {
      QuotaKind k = kQuotaKinds[i];
      const bool inherited = own.Get(k).mode == QuotaSetting::Mode::kInherit;
      row[2 + i] = std::to_string(Used(usage, k)) + " of " + LimitText(limits.Get(k)) + (inherited ? " (default)" : "");
      ja[QuotaKindName(k)] = {{"Used", Used(usage, k)}, {"Limit", LimitJson(limits.Get(k))}, {"FromDefault", inherited}};
    }
    rows.push_back(std::move(row));
    jaccounts.push_back(std::move(ja));
  }
  if (as_json) {
    out << json{{"Defaults", jdefaults}, {"Accounts", jaccounts}}.dump(2) << "\n";
    return OkStatus();
  }
  const std::vector<std::string> header = {"ACCOUNT", "ALIAS", "VOLUME GIB", "VOLUMES", "SNAPSHOTS"};
  cli::PrintTable(header, rows, out);
  return OkStatus();
}

}  // namespace snapvol
