// The JSON API under /api/v1/ (SigV4 service "snapvol"), what the console uses beyond the
// EC2 actions: who am I, restore requests, accounts and keys, the audit log. Paths and bodies
// are documented in docs/api.md.
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>

#include "api/ec2_context.h"
#include "api/restore_requests.h"
#include "engine/usage_accounting.h"
#include "core/clock.h"
#include "core/file_util.h"
#include "core/ids.h"

namespace snapvol::api {
namespace {


nlohmann::json ToJson(Ec2Context& x, const RestoreRequestRecord& r) {
  nlohmann::json j = {{"restoreRequestId", r.request_id}, {"snapshotId", r.snapshot_id},
                      {"accountId", r.account_id},        {"requestedBy", r.requested_by},
                      {"reason", r.reason},               {"state", r.state},
                      {"requestedAt", FormatIso8601(r.created_ms)}};
  if (r.state != "pending") {
    j["decidedBy"] = r.decided_by;
    j["decisionReason"] = r.decision_reason;
    j["decidedAt"] = FormatIso8601(r.decided_ms);
  }
  if (!r.volume_id.empty()) j["volumeId"] = r.volume_id;
  j["restoreType"] = r.restore_type;
  if (!r.task_id.empty()) j["replaceRootVolumeTaskId"] = r.task_id;
  if (auto t = RestoreRequestTask(x, r)) {
    j["taskState"] = t->state;
    j["taskProgress"] = t->progress;
    if (!t->safety_snapshot_id.empty()) j["safetySnapshotId"] = t->safety_snapshot_id;
  }
  return j;
}

// A JSON body's string member; absent → "" unless required.
ApiResult<std::string> JsonString(const nlohmann::json& body, const char* name, bool required) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) {
    if (required) return std::unexpected(MissingParameter(name));
    return std::string();
  }
  if (!it->is_string())
    return Fail(ec2::kInvalidParameterValue, std::string("Value for parameter ") + name + " must be a string.");
  return it->get<std::string>();
}

// An access key as the JSON API shows it (never its secret). status is IAM's word.
nlohmann::json KeyJson(const AccessKeyRecord& key) {
  nlohmann::json j = {{"accessKeyId", key.access_key_id},
                      {"userName", key.user_name},
                      {"createdAt", FormatIso8601(key.created_ms)},
                      {"status", key.active ? "Active" : "Inactive"}};
  if (key.status_ms != 0) j["statusChangedAt"] = FormatIso8601(key.status_ms);
  return j;
}

// A key operation's failure on the wire: an unknown key is InvalidAccessKeyId.NotFound, the
// last administrator key IncorrectState with the catalog's words (they name key and account).
ApiStatus KeyError(const Status& st, const std::string& id) {
  if (st) return {};
  if (st.error().code() == ErrorCode::kNotFound)
    return std::unexpected(MakeApiError("InvalidAccessKeyId.NotFound", "The access key '" + QuoteForMessage(id) + "' does not exist."));
  return std::unexpected(FromError(st.error()));
}

// The last `limit` lines of the audit log (read from its end, not the whole file).
ApiResult<nlohmann::json> AuditTail(const Ec2Context& x, size_t limit) {
  nlohmann::json events = nlohmann::json::array();
  if (x.options.audit_log_path.empty()) return events;
  auto fd = OpenFile(x.options.audit_log_path, O_RDONLY);
  if (!fd) return events;  // nothing logged yet
  struct stat st {};
  if (fstat(fd->get(), &st) != 0) return Fail(ec2::kInternalError, "cannot read the audit log");
  uint64_t size = static_cast<uint64_t>(st.st_size);
  uint64_t window = std::min<uint64_t>(size, 8ull << 20);
  std::vector<uint8_t> buf(window);
  auto got = PreadFull(fd->get(), buf, size - window);
  if (!got) return Fail(ec2::kInternalError, "cannot read the audit log");
  std::string_view text(reinterpret_cast<const char*>(buf.data()), *got);
  if (window < size) text.remove_prefix(std::min(text.size(), text.find('\n') + 1));  // partial first line
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    if (!line.empty()) lines.push_back(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  size_t first = lines.size() > limit ? lines.size() - limit : 0;
  for (size_t i = first; i < lines.size(); ++i) {
    auto j = nlohmann::json::parse(lines[i], nullptr, false);
    if (!j.is_discarded()) events.push_back(std::move(j));
  }
  return events;
}

// A volume as the console's administrator list shows it: EC2's shape (Ec2Context::ToEc2, the
// one place that turns a record into what DescribeVolumes says), plus the owning account and
// the exact size in bytes (EC2's size is whole GiB, rounded up).
nlohmann::json VolumeJson(const Ec2Context& x, const VolumeRecord& v) {
  const Ec2Volume e = x.ToEc2(v);
  nlohmann::json attachments = nlohmann::json::array(), tags = nlohmann::json::array();
  for (const auto& a : e.attachments)
    attachments.push_back({{"instanceId", a.instance_id}, {"device", a.device}, {"state", a.state},
                           {"attachTime", FormatIso8601(a.attach_time_ms)}});
  for (const auto& t : e.tags) tags.push_back({{"key", t.key}, {"value", t.value}});
  return {{"volumeId", e.volume_id},     {"accountId", v.account_id},      {"sizeGiB", e.size_gib},
          {"sizeBytes", v.size_bytes},   {"snapshotId", e.snapshot_id},    {"state", e.state},
          {"createTime", FormatIso8601(e.create_time_ms)},                  {"volumeType", e.volume_type},
          {"encrypted", e.encrypted},    {"attachments", attachments},     {"tags", tags}};
}

// GET /api/v1/volumes?account=<id>|all: every account's volumes (or one account's) for an
// administrator. EC2's DescribeVolumes stays as EC2 defines it (the caller's own volumes).
ApiResult<nlohmann::json> ListVolumesJson(Ec2Context& x, const Caller& c, const RestCall& r) {
  API_RETURN_IF_ERROR(CheckRestParams(r, {.query = {"account"}}));
  API_RETURN_IF_ERROR(x.Authorize(c, "snapvol:ListVolumes", {}));
  // Seeing other accounts' volumes is what being an administrator means (Caller::admin); a
  // custom policy that allows the action does not make a member one.
  if (!c.admin) return Fail(ec2::kUnauthorizedOperation, kUnauthorizedMessage);
  std::optional<std::string> scope;
  if (auto it = r.query.find("account"); it != r.query.end() && it->second != "all") {
    if (!IsAccountId(it->second))
      return std::unexpected(InvalidParameterValue("account", it->second, "Expecting a 12-digit account id or 'all'."));
    if (auto acct = x.catalog->GetAccount(it->second); !acct) {
      if (acct.error().code() != ErrorCode::kNotFound) return std::unexpected(FromError(acct.error()));
      return Fail("InvalidAccount.NotFound", "The account '" + it->second + "' does not exist.");
    }
    scope = it->second;
  }
  auto rows = x.catalog->ListVolumes(scope);
  if (!rows) return std::unexpected(FromError(rows.error()));
  nlohmann::json a = nlohmann::json::array();
  for (const auto& v : *rows) a.push_back(VolumeJson(x, v));
  return nlohmann::json{{"volumes", a}};
}

// What EC2's DescribeSnapshots does not carry: exact sizes, bytes stored, the parent and the
// completion time. The caller reads the snapshot as DescribeSnapshots would let it (its own,
// an administrator's any, or one shared with it); the parent is named only when the caller
// may read that one too, so sharing one snapshot does not reveal the ids of others.
ApiResult<nlohmann::json> SnapshotDetailsJson(Ec2Context& x, const Caller& c, const RestCall& r,
                                              const std::string& id) {
  API_RETURN_IF_ERROR(CheckRestParams(r, {}));
  API_RETURN_IF_ERROR(x.Authorize(c, "DescribeSnapshots", {}));
  API_ASSIGN_OR_RETURN(SnapshotRecord s, x.ReadableSnapshot(c, id));
  Ec2Snapshot e = x.ToEc2(s);
  nlohmann::json j = {{"snapshotId", s.snapshot_id},         {"accountId", s.account_id},
                      {"volumeId", s.volume_id},             {"state", e.state},
                      {"progress", e.progress},              {"volumeSizeBytes", s.volume_size_bytes},
                      {"volumeSizeGiB", e.volume_size_gib},  {"blockSize", s.block_size},
                      {"totalBlocks", s.total_blocks},       {"changedBlocks", s.changed_blocks},
                      {"storedBytes", s.stored_bytes},       {"startTime", FormatIso8601(s.start_time_ms)},
                      {"encrypted", s.encrypted}};
  if (s.completed_time_ms != 0) j["completionTime"] = FormatIso8601(s.completed_time_ms);
  if (!e.state_message.empty()) j["stateMessage"] = e.state_message;
  // incremental without parentSnapshotId: the parent is gone or the caller may not read it.
  j["incremental"] = !s.parent_snapshot_id.empty();
  if (!s.parent_snapshot_id.empty() && x.ReadableSnapshot(c, s.parent_snapshot_id))
    j["parentSnapshotId"] = s.parent_snapshot_id;
  // Usage: the bytes of its blocks that are not holes, and the stored bytes only it holds.
  // usageStatus says why they are absent: not completed, not counted yet, or not readable.
  if (s.state != SnapshotState::kCompleted) {
    j["usageStatus"] = "not-completed";
  } else if (x.options.usage == nullptr) {
    j["usageStatus"] = "not-kept";
  } else if (auto u = x.options.usage->Snapshot(s.snapshot_id)) {
    j["fullSnapshotSizeBytes"] = u->full_bytes;
    j["uniqueBytes"] = u->unique_bytes;
    j["usageStatus"] = "counted";
  } else {
    j["usageStatus"] = u.error().code() == ErrorCode::kNotFound ? "pending" : "unavailable";
    if (u.error().code() != ErrorCode::kNotFound) j["usageError"] = u.error().message();
  }
  return nlohmann::json{{"snapshot", j}};
}

// GET /api/v1/usage?account=<id>|all: stored bytes the account's snapshots hold exclusively
// and share with other accounts. A member sees its own account; an administrator any or all
// (the default), with the store's total.
ApiResult<nlohmann::json> UsageJson(Ec2Context& x, const Caller& c, const RestCall& r) {
  API_RETURN_IF_ERROR(CheckRestParams(r, {.query = {"account"}}));
  std::optional<std::string> scope;
  if (auto it = r.query.find("account"); it != r.query.end()) {
    if (it->second != "all" && !IsAccountId(it->second))
      return std::unexpected(InvalidParameterValue("account", it->second, "Expecting a 12-digit account id or 'all'."));
    if (it->second != "all") scope = it->second;
  } else if (!c.admin) {
    scope = c.account_id;
  }
  if (!c.admin && scope != c.account_id) return Fail(ec2::kUnauthorizedOperation, kUnauthorizedMessage);
  if (x.options.usage == nullptr) return Fail("UnsupportedOperation", "This service does not keep usage accounts.");
  auto totals = x.options.usage->Totals();
  if (!totals) return std::unexpected(FromError(totals.error()));
  auto accounts = x.catalog->ListAccounts();
  if (!accounts) return std::unexpected(FromError(accounts.error()));
  if (scope && std::none_of(accounts->begin(), accounts->end(), [&](const auto& a) { return a.account_id == *scope; }))
    return Fail("InvalidAccount.NotFound", "The account '" + *scope + "' does not exist.");
  nlohmann::json a = nlohmann::json::array();
  for (const auto& acct : *accounts) {
    if (scope && acct.account_id != *scope) continue;
    AccountUsageRecord u{acct.account_id};
    for (const auto& t : totals->accounts)
      if (t.account_id == acct.account_id) u = t;
    a.push_back({{"accountId", acct.account_id}, {"alias", acct.alias}, {"exclusiveBytes", u.exclusive_bytes},
                 {"sharedBytes", u.shared_bytes}, {"snapshots", u.snapshots}});
  }
  nlohmann::json out = {{"accounts", a}, {"pendingChanges", totals->pending}};
  if (c.admin && !scope) out["storedBytes"] = totals->stored_bytes;
  return out;
}

}  // namespace

ApiResult<nlohmann::json> DispatchJson(Ec2Context& x, Caller& c, const RestCall& r) {
  const auto& seg = r.parts;
  auto is = [&](const char* method, std::initializer_list<const char*> path) {
    if (r.method != method || seg.size() != path.size()) return false;
    size_t i = 0;
    for (const char* want : path) {
      if (std::string_view(want) != "*" && seg[i] != want) return false;
      ++i;
    }
    return true;
  };
  if (is("GET", {"whoami"})) {
    c.record->action = "snapvol:GetCallerIdentity";
    API_RETURN_IF_ERROR(CheckRestParams(r, {}));
    return nlohmann::json{{"accountId", c.account_id}, {"alias", c.alias}, {"isAdmin", c.admin},
                          {"accessKeyId", c.access_key_id}, {"user", c.user}, {"region", x.options.region},
                          {"consoleIdleSeconds", x.options.console_idle_seconds}};
  }
  if (!seg.empty() && seg[0] == "jobs") return DispatchJobs(x, c, r);
  if (!seg.empty() && seg[0] == "hosts") return DispatchHosts(x, c, r);
  if (is("GET", {"restore-requests"})) {
    c.record->action = "DescribeRestoreRequests";
    API_RETURN_IF_ERROR(CheckRestParams(r, {.query = {"state"}}));
    std::optional<std::string> state;
    if (auto it = r.query.find("state"); it != r.query.end()) state = it->second;
    API_RETURN_IF_ERROR(CheckRestoreRequestState(state));
    API_ASSIGN_OR_RETURN(auto rows, ListRestoreRequests(x, c, {}, state, false));
    nlohmann::json a = nlohmann::json::array();
    for (const auto& rr : rows) a.push_back(ToJson(x, rr));
    return nlohmann::json{{"restoreRequests", a}};
  }
  if (is("POST", {"restore-requests"})) {
    c.record->action = "CreateRestoreRequest";
    API_RETURN_IF_ERROR(CheckRestParams(r, {.body = {"snapshotId", "reason", "restoreType", "volumeId"}}));
    RestoreAsk ask;
    API_ASSIGN_OR_RETURN(ask.snapshot_id, JsonString(r.body, "snapshotId", true));
    API_ASSIGN_OR_RETURN(ask.reason, JsonString(r.body, "reason", false));
    API_ASSIGN_OR_RETURN(ask.restore_type, JsonString(r.body, "restoreType", false));
    API_ASSIGN_OR_RETURN(ask.volume_id, JsonString(r.body, "volumeId", false));
    API_ASSIGN_OR_RETURN(auto rr, FileRestoreRequest(x, c, ask, false));
    return nlohmann::json{{"restoreRequest", ToJson(x, rr)}};
  }
  if (is("POST", {"restore-requests", "*", "approve"}) || is("POST", {"restore-requests", "*", "reject"})) {
    bool approve = seg[2] == "approve";
    c.record->action = approve ? "ApproveRestoreRequest" : "RejectRestoreRequest";
    API_RETURN_IF_ERROR(CheckRestParams(r, {.body = {"reason"}}));
    API_ASSIGN_OR_RETURN(std::string reason, JsonString(r.body, "reason", false));
    API_ASSIGN_OR_RETURN(auto rr, DecideRestoreRequest(x, c, seg[1], approve, reason, false));
    return nlohmann::json{{"restoreRequest", ToJson(x, rr)}};
  }
  if (is("GET", {"accounts"})) {
    c.record->action = "snapvol:ListAccounts";
    API_RETURN_IF_ERROR(CheckRestParams(r, {}));
    API_RETURN_IF_ERROR(x.Authorize(c, "snapvol:ListAccounts", {}));
    auto accts = x.catalog->ListAccounts();
    if (!accts) return std::unexpected(FromError(accts.error()));
    auto keys = x.catalog->ListAccessKeys(std::nullopt);
    if (!keys) return std::unexpected(FromError(keys.error()));
    auto attached = x.catalog->ListPolicyAttachments(std::nullopt);
    if (!attached) return std::unexpected(FromError(attached.error()));
    nlohmann::json a = nlohmann::json::array();
    for (const auto& acct : *accts) {
      nlohmann::json k = nlohmann::json::array(), pol = nlohmann::json::array();
      for (const auto& key : *keys)
        if (key.account_id == acct.account_id)
          k.push_back(KeyJson(key));
      for (const auto& at : *attached)
        if (at.account_id == acct.account_id) pol.push_back(at.policy_name);
      a.push_back({{"accountId", acct.account_id}, {"alias", acct.alias}, {"isAdmin", acct.is_admin},
                   {"createdAt", FormatIso8601(acct.created_ms)}, {"accessKeys", k}, {"policies", pol}});
    }
    return nlohmann::json{{"accounts", a}};
  }
  if (is("POST", {"accounts"})) {
    c.record->action = "snapvol:CreateAccount";
    API_RETURN_IF_ERROR(CheckRestParams(r, {.body = {"alias"}}));
    API_RETURN_IF_ERROR(x.Authorize(c, "snapvol:CreateAccount", {}));
    API_ASSIGN_OR_RETURN(std::string alias, JsonString(r.body, "alias", true));
    auto acct = x.accounts->CreateAccount(alias, false);
    if (!acct) return std::unexpected(FromError(acct.error()));
    return nlohmann::json{{"account", {{"accountId", acct->account_id}, {"alias", acct->alias},
                                       {"isAdmin", acct->is_admin},
                                       {"createdAt", FormatIso8601(acct->created_ms)}}}};
  }
  if (is("POST", {"accounts", "*", "keys"})) {
    c.record->action = "snapvol:CreateAccessKey";
    API_RETURN_IF_ERROR(CheckRestParams(r, {.body = {"userName"}}));
    API_RETURN_IF_ERROR(x.Authorize(c, "snapvol:CreateAccessKey", {}));
    auto acct = x.catalog->GetAccount(seg[1]);
    if (!acct) return Fail("InvalidAccount.NotFound", "The account '" + seg[1] + "' does not exist.");
    API_ASSIGN_OR_RETURN(std::string user, JsonString(r.body, "userName", false));
    auto key = x.accounts->CreateKey(acct->account_id, user);
    if (!key) return std::unexpected(FromError(key.error()));
    return nlohmann::json{{"accessKey", {{"accessKeyId", key->access_key_id},
                                         {"secretAccessKey", key->secret_access_key},
                                         {"accountId", key->account_id},
                                         {"userName", key->user_name}}}};
  }
  if (is("GET", {"snapshots", "*"})) {
    c.record->action = "DescribeSnapshots";
    c.record->detail = "snapshot " + seg[1];
    return SnapshotDetailsJson(x, c, r, seg[1]);
  }
  if (is("GET", {"usage"})) {
    c.record->action = "snapvol:GetUsage";
    return UsageJson(x, c, r);
  }
  if (is("GET", {"volumes", "*"})) {
    // One volume as DescribeVolumes would show it to the caller, plus its exact size.
    c.record->action = "DescribeVolumes";
    c.record->detail = "volume " + seg[1];
    API_RETURN_IF_ERROR(CheckRestParams(r, {}));
    API_RETURN_IF_ERROR(x.Authorize(c, "DescribeVolumes", {}));
    API_ASSIGN_OR_RETURN(VolumeRecord v, x.VisibleVolume(c, seg[1]));
    return nlohmann::json{{"volume", VolumeJson(x, v)}};
  }
  if (is("GET", {"volumes"})) {
    c.record->action = "snapvol:ListVolumes";
    return ListVolumesJson(x, c, r);
  }
  if (is("POST", {"keys", "*", "disable"}) || is("POST", {"keys", "*", "enable"})) {
    const bool enable = seg[2] == "enable";
    c.record->action = "snapvol:UpdateAccessKey";
    c.record->detail = "access key " + seg[1];
    API_RETURN_IF_ERROR(CheckRestParams(r, {}));
    API_RETURN_IF_ERROR(x.Authorize(c, "snapvol:UpdateAccessKey", {}));
    API_RETURN_IF_ERROR(KeyError(x.accounts->SetKeyActive(seg[1], enable), seg[1]));
    auto key = x.catalog->GetAccessKey(seg[1]);
    if (!key) return std::unexpected(FromError(key.error()));
    return nlohmann::json{{"accessKey", KeyJson(*key)}};
  }
  if (is("DELETE", {"keys", "*"})) {
    c.record->action = "snapvol:DeleteAccessKey";
    c.record->detail = "access key " + seg[1];
    API_RETURN_IF_ERROR(CheckRestParams(r, {}));
    API_RETURN_IF_ERROR(x.Authorize(c, "snapvol:DeleteAccessKey", {}));
    API_RETURN_IF_ERROR(KeyError(x.accounts->DeleteKey(seg[1]), seg[1]));
    return nlohmann::json{{"deleted", seg[1]}};
  }
  if (is("GET", {"audit"})) {
    c.record->action = "snapvol:ReadAuditLog";
    API_RETURN_IF_ERROR(CheckRestParams(r, {.query = {"limit"}}));
    API_RETURN_IF_ERROR(x.Authorize(c, "snapvol:ReadAuditLog", {}));
    size_t limit = 100;
    if (auto it = r.query.find("limit"); it != r.query.end()) {
      char* end = nullptr;
      unsigned long v = std::strtoul(it->second.c_str(), &end, 10);
      if (it->second.empty() || *end != '\0' || v < 1 || v > 10000)
        return std::unexpected(InvalidParameterValue("limit", it->second, "Expecting 1 to 10000."));
      limit = v;
    }
    API_ASSIGN_OR_RETURN(nlohmann::json events, AuditTail(x, limit));
    // Each host keeps its own audit log (the requests it answered): the answer says whose it is,
    // so that behind a load balancer nobody takes one host's log for the cluster's.
    nlohmann::json host = nullptr;
    if (const std::string id = x.catalog->LocalHost(); !id.empty()) {
      auto h = x.catalog->GetHost(id);
      host = {{"hostId", id}, {"name", h ? h->name : ""}};
    }
    return nlohmann::json{{"events", events}, {"host", host}};
  }
  if (is("POST", {"notifications", "test"})) {
    c.record->action = "snapvol:TestNotifications";
    API_RETURN_IF_ERROR(CheckRestParams(r, {}));
    API_RETURN_IF_ERROR(x.Authorize(c, "snapvol:TestNotifications", {}));
    // What the daemon's channels say goes to the operators: only an administrator may send it.
    if (!c.admin) return Fail(ec2::kUnauthorizedOperation, kUnauthorizedMessage);
    std::string report = x.options.notify_test ? x.options.notify_test(c.alias + (c.user.empty() ? "" : " (user " + c.user + ")")) : "";
    if (report.empty())
      return Fail(ec2::kIncorrectState,
                  "No notification channel is configured (snapvold --notify-webhook-url, --notify-email-to).");
    auto j = nlohmann::json::parse(report, nullptr, false);
    if (j.is_discarded()) return Fail(ec2::kInternalError, "the notifier's report is not JSON");
    return nlohmann::json{{"notification", j}};
  }
  return Fail(ec2::kInvalidAction, "No such API path: " + r.method + " /api/v1/" +
                                            [&] {
                                              std::string joined;
                                              for (const auto& p : seg) joined += (joined.empty() ? "" : "/") + p;
                                              return joined;
                                            }());
}


}  // namespace snapvol::api
