// `snapvol account|key|policy|restore-request|audit`: an operator's commands for who may do
// what — accounts and their quotas and usage, API access keys, IAM and lifecycle policies, the
// restore requests teams file, and the daemon's audit log.
#include "cli/admin_commands.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>

#include "api/accounts.h"
#include "cli/api_client.h"
#include "cli/key_commands.h"
#include "cli/quota_commands.h"
#include "cli/usage_commands.h"
#include "core/file_util.h"
#include "iam/policy.h"
#include "lifecycle/scheduler.h"

namespace snapvol::cli {
namespace {

using json = nlohmann::json;

void CmdAccountCreate(const Globals& g, const std::string& alias, bool admin) {
  auto dir = OpenDir(g);
  Accounts accounts(dir->catalog(), Must(dir->SecretsKey()));
  auto rec = Must(accounts.CreateAccount(alias, admin));
  std::cout << rec.account_id << "\n";
}

void CmdAccountList(const Globals& g) {
  auto dir = OpenDir(g);
  auto rows = Must(dir->catalog()->ListAccounts());
  if (g.output == "json") {
    json a = json::array();
    for (const auto& r : rows)
      a.push_back({{"AccountId", r.account_id}, {"Alias", r.alias}, {"Administrator", r.is_admin},
                   {"CreateTime", FormatIso8601(r.created_ms)}});
    std::cout << json{{"Accounts", a}}.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> table;
  for (const auto& r : rows)
    table.push_back({r.account_id, r.alias, r.is_admin ? "administrator" : "member", FormatIso8601(r.created_ms)});
  PrintTable({"ACCOUNT", "ALIAS", "ROLE", "CREATED"}, table);
}

void CmdKeyCreate(const Globals& g, const std::string& account_id, const std::string& user) {
  auto dir = OpenDir(g);
  Accounts accounts(dir->catalog(), Must(dir->SecretsKey()));
  auto acct = Must(dir->catalog()->GetAccount(account_id));
  auto key = Must(accounts.CreateKey(account_id, user));
  std::cout << Accounts::CredentialsProfile("snapvol-" + acct.alias, key);
  std::cerr << "append this profile to ~/.aws/credentials; the secret is not shown again\n";
}

void CmdKeyList(const Globals& g, const std::string& account_id) {
  auto dir = OpenDir(g);
  std::optional<std::string> filter;
  if (!account_id.empty()) filter = account_id;
  auto rows = Must(dir->catalog()->ListAccessKeys(filter));
  if (g.output == "json") {
    json a = json::array();
    for (const auto& r : rows)
      a.push_back({{"AccessKeyId", r.access_key_id}, {"AccountId", r.account_id},
                   {"UserName", r.user_name}, {"Status", r.active ? "Active" : "Inactive"},
                   {"CreateDate", FormatIso8601(r.created_ms)}});
    std::cout << json{{"AccessKeys", a}}.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> table;
  for (const auto& r : rows)
    table.push_back({r.access_key_id, r.account_id, r.user_name, r.active ? "active" : "disabled", FormatIso8601(r.created_ms)});
  PrintTable({"ACCESS KEY", "ACCOUNT", "USER", "STATUS", "CREATED"}, table);
}

// The key a `key disable|enable|delete` names: the positional ID or --access-key-id, once.
// Called while parsing: a usage error (exit 2).
std::string KeyIdArgument(const std::string& positional, const std::string& option) {
  if (positional.empty() == option.empty())
    throw CLI::ValidationError("ID", "give the access key once: snapvol key COMMAND ID (or --access-key-id ID)");
  return positional.empty() ? option : positional;
}

void CmdKeyStatus(const Globals& g, const std::string& id, bool active) {
  auto dir = OpenDir(g);
  Accounts accounts(dir->catalog(), Must(dir->SecretsKey()));
  Must(KeyStatusCommand(&accounts, dir->catalog(), id, active, std::cout));
}

void CmdKeyDelete(const Globals& g, const std::string& id) {
  auto dir = OpenDir(g);
  Accounts accounts(dir->catalog(), Must(dir->SecretsKey()));
  Must(KeyDeleteCommand(&accounts, id, std::cout));
}

// --- IAM policies (`snapvol policy …`) ---

void CmdPolicyList(const Globals& g, const std::string& account_id) {
  auto dir = OpenDir(g);
  std::optional<std::string> filter;
  if (!account_id.empty()) filter = account_id;
  auto attached = Must(dir->catalog()->ListPolicyAttachments(filter));
  auto custom = Must(dir->catalog()->ListIamPolicies());
  std::vector<std::string> names = {"administrator", "member"};
  for (const auto& p : custom) names.push_back(p.name);
  auto accounts_of = [&](const std::string& name) {
    std::vector<std::string> ids;
    for (const auto& a : attached)
      if (a.policy_name == name) ids.push_back(a.account_id);
    return ids;
  };
  auto lifecycle_policies = Must(dir->catalog()->ListLifecyclePolicies(filter));
  // A lifecycle policy's schedules in a few words: "daily-0200-utc: every 24 h at 02:00, keep 7".
  auto summary = [](const LifecyclePolicyRecord& p) {
    auto d = lifecycle::ParsePolicyDetails(json::parse(p.details, nullptr, false), lifecycle::IsDefaultPolicy(p));
    if (!d) return std::string("(does not parse: ") + d.error().message() + ")";
    std::string out;
    for (const auto& s : d->schedules) {
      char when[64];
      if (s.create.cron.empty())
        std::snprintf(when, sizeof when, "every %d h at %02d:%02d UTC", s.create.interval_hours,
                      s.create.time_of_day_min / 60, s.create.time_of_day_min % 60);
      else
        std::snprintf(when, sizeof when, "%s", s.create.cron.c_str());
      std::string keep = s.retain.count > 0 ? "keep " + std::to_string(s.retain.count)
                                            : "keep " + std::to_string(s.retain.interval) + " " + s.retain.interval_unit;
      out += (out.empty() ? "" : "; ") + s.name + ": " + when + ", " + keep;
    }
    return d->resource_type + " " + out;
  };
  if (g.output == "json") {
    json a = json::array();
    for (const auto& n : names) {
      auto ids = accounts_of(n);
      if (filter && ids.empty()) continue;
      a.push_back({{"PolicyName", n}, {"Kind", "iam"}, {"BuiltIn", Accounts::IsBuiltinPolicy(n)},
                   {"AttachedTo", ids}});
    }
    for (const auto& p : lifecycle_policies)
      a.push_back({{"PolicyId", p.policy_id}, {"Kind", "lifecycle"}, {"AccountId", p.account_id},
                   {"Description", p.description}, {"State", p.state},
                   {"Default", lifecycle::IsDefaultPolicy(p)}, {"Schedules", summary(p)}});
    std::cout << json{{"Policies", a}}.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> table;
  for (const auto& n : names) {
    auto ids = accounts_of(n);
    if (filter && ids.empty()) continue;
    std::string joined;
    for (const auto& id : ids) joined += (joined.empty() ? "" : ",") + id;
    table.push_back({n, "iam", Accounts::IsBuiltinPolicy(n) ? "built-in" : "custom", joined.empty() ? "-" : joined});
  }
  PrintTable({"POLICY", "KIND", "SOURCE", "ATTACHED TO"}, table);
  if (lifecycle_policies.empty()) return;
  std::cout << "\n";
  table.clear();
  for (const auto& p : lifecycle_policies)
    table.push_back({p.policy_id, "lifecycle", p.account_id, p.state, p.description, summary(p)});
  PrintTable({"POLICY", "KIND", "ACCOUNT", "STATE", "DESCRIPTION", "SCHEDULES"}, table);
}

void CmdPolicyRuns(const Globals& g, const std::string& policy_id, size_t limit) {
  auto dir = OpenDir(g);
  std::optional<std::string> filter;
  if (!policy_id.empty()) {
    Must(dir->catalog()->GetLifecyclePolicy(policy_id));
    filter = policy_id;
  }
  auto runs = Must(dir->catalog()->ListLifecycleRuns(filter, limit));
  if (g.output == "json") {
    json a = json::array();
    for (const auto& r : runs)
      a.push_back({{"PolicyId", r.policy_id}, {"ScheduleName", r.schedule_name},
                   {"ScheduledTime", FormatIso8601(r.scheduled_ms)}, {"StartTime", FormatIso8601(r.started_ms)},
                   {"EndTime", r.finished_ms ? FormatIso8601(r.finished_ms) : ""}, {"State", r.state},
                   {"SnapshotsCreated", r.created}, {"SnapshotsFailed", r.failed},
                   {"SnapshotsDeleted", r.deleted}, {"MissedRuns", r.missed}, {"Message", r.message}});
    std::cout << json{{"Runs", a}}.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> table;
  for (const auto& r : runs)
    table.push_back({r.policy_id, r.schedule_name, FormatIso8601(r.scheduled_ms), r.state, std::to_string(r.created),
                     std::to_string(r.failed), std::to_string(r.deleted), std::to_string(r.missed), r.message});
  PrintTable({"POLICY", "SCHEDULE", "SCHEDULED", "STATE", "CREATED", "FAILED", "DELETED", "MISSED", "MESSAGE"}, table);
}

void CmdPolicyShow(const Globals& g, const std::string& name) {
  if (name.rfind("policy-", 0) == 0) {  // a lifecycle policy, shown as DLM's GetLifecyclePolicy does
    auto dir = OpenDir(g);
    auto p = Must(dir->catalog()->GetLifecyclePolicy(name));
    json out = {{"PolicyId", p.policy_id}, {"AccountId", p.account_id}, {"Description", p.description},
                {"State", p.state}, {"ExecutionRoleArn", p.role_arn},
                {"DateCreated", FormatIso8601(p.created_ms)}, {"DateModified", FormatIso8601(p.modified_ms)},
                {"PolicyDetails", json::parse(p.details, nullptr, false)}, {"Tags", json::parse(p.tags, nullptr, false)}};
    std::cout << out.dump(2) << "\n";
    return;
  }
  if (name == "administrator" || name == "member") {
    std::cout << (name == "administrator" ? iam::AdministratorPolicyJson() : iam::MemberPolicyJson()) << "\n";
    return;
  }
  auto dir = OpenDir(g);
  std::cout << Must(dir->catalog()->GetIamPolicy(name)).document << "\n";
}

void CmdPolicyCreate(const Globals& g, const std::string& name, const std::string& file) {
  auto dir = OpenDir(g);
  Accounts accounts(dir->catalog(), Must(dir->SecretsKey()));
  std::vector<uint8_t> raw;
  if (file == "-") {
    std::string all((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    raw.assign(all.begin(), all.end());
  } else {
    raw = Must(ReadWholeFile(file), "cannot read the policy document");
  }
  Must(accounts.PutPolicy(name, std::string(raw.begin(), raw.end())));
  std::cout << "stored policy " << name << "\n";
}

void CmdPolicyDelete(const Globals& g, const std::string& name) {
  if (Accounts::IsBuiltinPolicy(name)) Must(InvalidArgument("policy " + name + " is built in"));
  auto dir = OpenDir(g);
  Must(dir->catalog()->DeleteIamPolicy(name));
  std::cout << "deleted policy " << name << "\n";
}

void CmdPolicyAttach(const Globals& g, const std::string& account_id, const std::string& name, bool attach) {
  auto dir = OpenDir(g);
  Accounts accounts(dir->catalog(), Must(dir->SecretsKey()));
  Must(dir->catalog()->GetAccount(account_id));
  if (attach) {
    Must(accounts.AttachPolicy(account_id, name));
    std::cout << "attached " << name << " to " << account_id << "\n";
  } else {
    Must(accounts.DetachPolicy(account_id, name));
    std::cout << "detached " << name << " from " << account_id << "\n";
  }
}

void CmdAuditList(const Globals& g, const std::string& account_id, size_t limit) {
  auto dir = OpenDir(g);
  auto raw = ReadWholeFile(dir->path() + "/audit.log");
  if (!raw && raw.error().code() != ErrorCode::kNotFound) Must(Status(std::unexpected(raw.error())));
  std::vector<json> lines;
  if (raw) {
    std::string text(raw->begin(), raw->end());
    size_t pos = 0;
    while (pos < text.size()) {
      size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) nl = text.size();
      json j = json::parse(text.substr(pos, nl - pos), nullptr, false);
      pos = nl + 1;
      if (j.is_discarded() || !j.is_object()) continue;  // a torn last line after a crash
      if (!account_id.empty() && j.value("account_id", "") != account_id) continue;
      lines.push_back(std::move(j));
    }
  }
  if (lines.size() > limit) lines.erase(lines.begin(), lines.end() - static_cast<long>(limit));
  if (g.output == "json") {
    std::cout << json{{"AuditEvents", lines}}.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> table;
  for (const auto& j : lines)
    table.push_back({j.value("ts", ""), j.value("account_id", "-"), j.value("action", "-"),
                     j.value("error", "").empty() ? "ok" : j.value("error", ""), j.value("decision", "")});
  PrintTable({"TIME", "ACCOUNT", "ACTION", "RESULT", "DECISION"}, table);
}

void CmdRestoreRequestList(const Globals& g, const std::string& account_id) {
  auto dir = OpenDir(g);
  std::optional<std::string> scope;
  if (!account_id.empty()) scope = account_id;
  auto rows = Must(dir->catalog()->ListRestoreRequests(scope));
  if (g.output == "json") {
    json a = json::array();
    for (const auto& r : rows)
      a.push_back({{"RestoreRequestId", r.request_id}, {"OwnerId", r.account_id},
                   {"SnapshotId", r.snapshot_id}, {"RequestedBy", r.requested_by},
                   {"Reason", r.reason}, {"State", r.state}, {"DecidedBy", r.decided_by},
                   {"DecisionReason", r.decision_reason}, {"VolumeId", r.volume_id},
                   {"RestoreType", r.restore_type}, {"ReplaceRootVolumeTaskId", r.task_id},
                   {"CreateTime", FormatIso8601(r.created_ms)}});
    std::cout << json{{"RestoreRequests", a}}.dump(2) << "\n";
    return;
  }
  std::vector<std::vector<std::string>> table;
  for (const auto& r : rows)
    table.push_back({r.request_id, r.account_id, r.snapshot_id, r.state, r.restore_type, r.requested_by, r.reason,
                     r.volume_id, r.task_id});
  PrintTable({"REQUEST", "ACCOUNT", "SNAPSHOT", "STATE", "TYPE", "BY", "REASON", "VOLUME", "TASK"}, table);
}

// Restore requests through the daemon's API, signed with the caller's own keys.
void CmdRestoreRequestCall(const ApiClientOptions& api, const std::string& action,
                           const std::vector<std::pair<std::string, std::string>>& params) {
  if (api.endpoint.empty()) throw Failure{"--endpoint is required (e.g. http://127.0.0.1:8787)"};
  std::string xml = Must(CallApi(api, action, params));
  std::string id = XmlField(xml, "restoreRequestId"), state = XmlField(xml, "state");
  std::string volume = XmlField(xml, "volumeId"), task = XmlField(xml, "replaceRootVolumeTaskId");
  std::cout << id << "\n";
  std::cerr << "restore request " << id << " is " << state;
  if (!task.empty()) std::cerr << "; " << volume << " is being rolled back in place by task " << task;
  else if (XmlField(xml, "restoreType") == "in-place") std::cerr << "; it asks to roll " << volume << " back in place";
  else if (!volume.empty()) std::cerr << "; the snapshot is being restored into " << volume;
  std::cerr << "\n";
}

// What the options parse into; it lives as long as the commands' callbacks hold it.
struct AdminOptions {
  std::string alias;
  bool admin = false;
  std::string quota_account;
  bool quota_default = false;
  std::map<QuotaKind, std::string> quota_given;
  std::string quota_text[std::size(kQuotaKinds)];
  bool usage_rebuild = false;
  std::string key_account;
  std::string key_user;
  std::string key_id;
  std::string key_pos;
  std::string pol_name;
  std::string pol_account;
  std::string pol_file;
  size_t runs_limit = 50;
  std::string rr_account;
  ApiClientOptions api;
  std::string rr_snapshot;
  std::string rr_reason;
  std::string rr_id;
  std::string rr_in_place;
  std::string audit_account;
  size_t audit_limit = 100;
};

}  // namespace

void AddAdminCommands(CLI::App& app, const Globals& g, std::function<void()>* action) {
  auto o = std::make_shared<AdminOptions>();
  auto* account = app.add_subcommand("account", "Accounts (teams)");
  account->require_subcommand(1);
  auto* acreate = account->add_subcommand("create", "Create an account; prints its 12-digit id");
  acreate->add_option("--alias", o->alias, "The account's alias (OwnerAlias)")->required();
  acreate->add_flag("--admin", o->admin, "An administrator account (may restore)");
  acreate->callback([o, &g, action] { *action = [o, &g] { CmdAccountCreate(g, o->alias, o->admin); }; });
  auto* alist = account->add_subcommand("list", "List accounts");
  alist->callback([o, &g, action] { *action = [o, &g] { CmdAccountList(g); }; });
  auto* aquota = account->add_subcommand(
      "set-quota",
      "Limit what an account (--account-id) or, by default, every account (--default) may hold. Each limit is\n"
      "a whole number, 'unlimited', or for an account 'default' (drop its own, take the default's); 0 allows\n"
      "none. Unset limits keep their value; with no default set there is no limit. Volumes count when\n"
      "snapvol keeps their data (created or restored through the API), not those registered by path;\n"
      "snapshots count in every state. Over a limit, CreateVolume answers VolumeLimitExceeded and\n"
      "CreateSnapshot(s)/CopySnapshot/lifecycle policies SnapshotLimitExceeded; nothing existing is removed.");
  auto* quota_account_opt = aquota->add_option("--account-id", o->quota_account, "The account (12 digits)");
  aquota->add_flag("--default", o->quota_default, "Set the defaults, which hold for every account without its own")
      ->excludes(quota_account_opt);
  const char* quota_help[] = {"Total size of the account's volumes, in GiB", "Number of volumes",
                              "Number of snapshots"};
  std::vector<CLI::Option*> quota_opts;
  for (size_t i = 0; i < std::size(kQuotaKinds); ++i)
    quota_opts.push_back(aquota->add_option(std::string("--") + QuotaKindName(kQuotaKinds[i]), o->quota_text[i],
                                            std::string(quota_help[i]) + ": N, unlimited or default"));
  aquota->callback([o, &g, action, quota_opts] { *action = [o, &g, quota_opts] {
    if (o->quota_account.empty() && !o->quota_default) throw Failure{"set-quota needs --account-id ACCOUNT or --default"};
    for (size_t i = 0; i < quota_opts.size(); ++i)
      if (quota_opts[i]->count() > 0) o->quota_given[kQuotaKinds[i]] = o->quota_text[i];
    auto dir = OpenDir(g);
    Must(SetQuotaCommand(dir->catalog(), o->quota_default ? std::string(kQuotaDefaults) : o->quota_account, o->quota_given));
    Must(ShowQuotaCommand(dir->catalog(), o->quota_default ? std::nullopt : std::optional(o->quota_account),
                          g.output == "json", std::cout));
  }; });
  auto* ashow = account->add_subcommand("show-quota", "Show the default limits and each account's usage and limits "
                                                      "('(default)': the account takes the default)");
  ashow->add_option("--account-id", o->quota_account, "Only this account");
  ashow->callback([o, &g, action] { *action = [o, &g] {
    auto dir = OpenDir(g);
    Must(ShowQuotaCommand(dir->catalog(), o->quota_account.empty() ? std::nullopt : std::optional(o->quota_account),
                          g.output == "json", std::cout));
  }; });
  auto* ausage = account->add_subcommand(
      "usage",
      "Show the stored bytes each account's snapshots hold exclusively (deleting all of them would free\n"
      "them) and share with other accounts' snapshots, after applying the changes not yet counted");
  ausage->add_option("--account-id", o->quota_account, "Only this account");
  ausage->add_flag("--rebuild", o->usage_rebuild,
                   "Count every completed snapshot again from the store (reads each snapshot's index pages)");
  ausage->callback([o, &g, action] { *action = [o, &g] {
    auto dir = OpenDir(g);
    UsageAccounting usage(dir->catalog(), dir->repo());
    Must(AccountUsageCommand(dir->catalog(), &usage, o->quota_account.empty() ? std::nullopt : std::optional(o->quota_account),
                             o->usage_rebuild, g.output == "json", std::cout));
  }; });


  auto* key = app.add_subcommand("key", "API access keys");
  key->require_subcommand(1);
  auto* kcreate = key->add_subcommand("create", "Create an access key; prints an AWS credentials profile");
  kcreate->add_option("--account-id", o->key_account, "The account")->required();
  kcreate->add_option("--user", o->key_user, "User name (default: the account alias)");
  kcreate->callback([o, &g, action] { *action = [o, &g] { CmdKeyCreate(g, o->key_account, o->key_user); }; });
  auto* klist = key->add_subcommand("list", "List access keys (never their secrets)");
  klist->add_option("--account-id", o->key_account, "Only this account's");
  klist->callback([o, &g, action] { *action = [o, &g] { CmdKeyList(g, o->key_account); }; });
  auto* kdel = key->add_subcommand("delete", "Delete an access key (refused for the last active administrator key)");
  kdel->add_option("ID", o->key_pos, "The key");
  kdel->add_option("--access-key-id", o->key_id, "The key (instead of ID)");
  kdel->callback([o, &g, action] {
    std::string id = KeyIdArgument(o->key_pos, o->key_id);
    *action = [&g, id] { CmdKeyDelete(g, id); };
  });
  for (bool enable : {false, true}) {
    auto* kst = key->add_subcommand(enable ? "enable" : "disable",
                                    enable ? "Enable a disabled access key"
                                           : "Disable an access key: refused everywhere until enabled again "
                                             "(refused for the last active administrator key)");
    kst->add_option("ID", o->key_pos, "The key");
    kst->add_option("--access-key-id", o->key_id, "The key (instead of ID)");
    kst->callback([o, &g, action, enable] {
      std::string id = KeyIdArgument(o->key_pos, o->key_id);
      *action = [&g, id, enable] { CmdKeyStatus(g, id, enable); };
    });
  }

  auto* policy = app.add_subcommand("policy", "IAM policies (what each account may call) and lifecycle policies (automatic snapshots)");
  policy->require_subcommand(1);
  auto* plist = policy->add_subcommand("list", "List policies and the accounts they are attached to");
  plist->add_option("--account-id", o->pol_account, "Only the policies attached to this account");
  plist->callback([o, &g, action] { *action = [o, &g] { CmdPolicyList(g, o->pol_account); }; });
  auto* pshow = policy->add_subcommand("show", "Print an IAM policy's document or a lifecycle policy (policy-…)");
  pshow->add_option("name", o->pol_name, "IAM policy name (administrator, member, a custom one) or lifecycle policy id")
      ->required();
  auto* pruns = policy->add_subcommand("runs", "Lifecycle policy runs, newest first: snapshots made, failed, deleted");
  pruns->add_option("--policy-id", o->pol_name, "Only this policy's runs");
  pruns->add_option("--limit", o->runs_limit, "At most this many (default 50)");
  pruns->callback([o, &g, action] { *action = [o, &g] { CmdPolicyRuns(g, o->pol_name, o->runs_limit); }; });
  pshow->callback([o, &g, action] { *action = [o, &g] { CmdPolicyShow(g, o->pol_name); }; });
  auto* pcreate = policy->add_subcommand("create", "Store a custom IAM policy (replaces one of the same name)");
  pcreate->add_option("--name", o->pol_name, "1-128 of A-Z a-z 0-9 + = , . @ _ -")->required();
  pcreate->add_option("--document", o->pol_file, "File with the IAM JSON document, or - for stdin")->required();
  pcreate->callback([o, &g, action] { *action = [o, &g] { CmdPolicyCreate(g, o->pol_name, o->pol_file); }; });
  auto* pdelete = policy->add_subcommand("delete", "Delete a custom policy (detach it everywhere first)");
  pdelete->add_option("--name", o->pol_name, "The policy")->required();
  pdelete->callback([o, &g, action] { *action = [o, &g] { CmdPolicyDelete(g, o->pol_name); }; });
  auto* pattach = policy->add_subcommand("attach", "Attach a policy to an account (takes effect on its next request)");
  pattach->add_option("--account-id", o->pol_account, "The account")->required();
  pattach->add_option("--policy-name", o->pol_name, "administrator, member, or a custom policy")->required();
  pattach->callback([o, &g, action] { *action = [o, &g] { CmdPolicyAttach(g, o->pol_account, o->pol_name, true); }; });
  auto* pdetach = policy->add_subcommand("detach", "Detach a policy from an account");
  pdetach->add_option("--account-id", o->pol_account, "The account")->required();
  pdetach->add_option("--policy-name", o->pol_name, "The policy")->required();
  pdetach->callback([o, &g, action] { *action = [o, &g] { CmdPolicyAttach(g, o->pol_account, o->pol_name, false); }; });

  auto* rreq = app.add_subcommand("restore-request", "Restore requests filed through the API");
  rreq->require_subcommand(1);
  auto* rrlist = rreq->add_subcommand("list", "List restore requests (approve or reject them through the API)");
  rrlist->add_option("--account-id", o->rr_account, "Only this account's");
  rrlist->callback([o, &g, action] { *action = [o, &g] { CmdRestoreRequestList(g, o->rr_account); }; });
  auto api_flags = [o](CLI::App* cmd) {
    cmd->add_option("--endpoint", o->api.endpoint, "snapvold's URL, e.g. http://127.0.0.1:8787")->required();
    cmd->add_option("--profile", o->api.profile, "AWS credentials profile (default: $AWS_PROFILE or the env keys)");
    cmd->add_option("--region", o->api.region, "Region to sign for (default: $AWS_DEFAULT_REGION or us-east-1)");
  };
  auto* rrcreate = rreq->add_subcommand("create", "Ask an administrator to restore one of your snapshots (signed with your keys)");
  api_flags(rrcreate);
  rrcreate->add_option("--snapshot-id", o->rr_snapshot, "The snapshot to restore")->required();
  rrcreate->add_option("--reason", o->rr_reason, "Why, for the administrator");
  rrcreate->add_option("--in-place", o->rr_in_place,
                       "Roll this registered volume (vol-…) back in place instead of restoring into a new volume");
  rrcreate->callback([o, &g, action] { *action = [o, &g] {
    std::vector<std::pair<std::string, std::string>> params = {{"SnapshotId", o->rr_snapshot}, {"Reason", o->rr_reason}};
    if (!o->rr_in_place.empty()) {
      params.push_back({"RestoreType", "in-place"});
      params.push_back({"VolumeId", o->rr_in_place});
    }
    CmdRestoreRequestCall(o->api, "CreateRestoreRequest", params);
  }; });
  auto* rrapprove = rreq->add_subcommand("approve", "Approve a request: restores the snapshot into a new volume, or "
                                                    "starts the in-place rollback it asks for (administrators)");
  api_flags(rrapprove);
  rrapprove->add_option("--restore-request-id", o->rr_id, "The request (rr-…)")->required();
  rrapprove->add_option("--reason", o->rr_reason, "A note for the requester");
  rrapprove->callback([o, &g, action] { *action = [o, &g] {
    CmdRestoreRequestCall(o->api, "ApproveRestoreRequest", {{"RestoreRequestId", o->rr_id}, {"Reason", o->rr_reason}});
  }; });
  auto* rrreject = rreq->add_subcommand("reject", "Reject a request with a reason (administrators)");
  api_flags(rrreject);
  rrreject->add_option("--restore-request-id", o->rr_id, "The request (rr-…)")->required();
  rrreject->add_option("--reason", o->rr_reason, "Why")->required();
  rrreject->callback([o, &g, action] { *action = [o, &g] {
    CmdRestoreRequestCall(o->api, "RejectRestoreRequest", {{"RestoreRequestId", o->rr_id}, {"Reason", o->rr_reason}});
  }; });

  auto* audit = app.add_subcommand("audit", "The daemon's audit log of API decisions");
  audit->require_subcommand(1);
  auto* alog = audit->add_subcommand("list", "Show the latest audit events");
  alog->add_option("--account-id", o->audit_account, "Only this account's requests");
  alog->add_option("--limit", o->audit_limit, "At most this many, newest last (default 100)");
  alog->callback([o, &g, action] { *action = [o, &g] { CmdAuditList(g, o->audit_account, o->audit_limit); }; });}

}  // namespace snapvol::cli
