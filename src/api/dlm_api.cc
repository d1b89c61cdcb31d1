// Amazon DLM's REST API under /policies (SigV4 service "dlm"): lifecycle policies
// (create, get, list with filters, update, delete) and snapvol's GET /policies/{id}/runs.
#include <algorithm>
#include <set>

#include "api/ec2_context.h"
#include "core/clock.h"
#include "lifecycle/policy_details.h"
#include "lifecycle/scheduler.h"

namespace snapvol::api {
namespace {


std::string PolicyArn(const Ec2Context& x, const std::string& account, const std::string& id) {
  return "arn:aws:dlm:" + x.options.region + ":" + account + ":policy/" + id;
}

ApiError DlmInvalid(std::string message, std::vector<std::string> required = {}) {
  ApiError e{"InvalidRequestException", std::move(message), 400};
  if (!required.empty()) {
    e.message += " (required: ";
    for (size_t i = 0; i < required.size(); ++i) e.message += (i ? ", " : "") + required[i];
    e.message += ")";
  }
  return e;
}
ApiError DlmNotFound(const std::string& id) {
  return ApiError{"ResourceNotFoundException", "Lifecycle policy " + id + " does not exist.", 404};
}

ApiResult<LifecyclePolicyRecord> OwnLifecyclePolicy(const Ec2Context& x, const Caller& c, const std::string& id) {
  if (!lifecycle::IsPolicyId(id)) return std::unexpected(DlmNotFound(id));
  auto p = x.catalog->GetLifecyclePolicy(id);
  if (!p || p->account_id != c.account_id) return std::unexpected(DlmNotFound(id));
  return *p;
}

nlohmann::json PolicyJson(const Ec2Context& x, const LifecyclePolicyRecord& p, bool full) {
  nlohmann::json tags = nlohmann::json::parse(p.tags, nullptr, false);
  if (!tags.is_object()) tags = nlohmann::json::object();
  nlohmann::json j = {{"PolicyId", p.policy_id}, {"Description", p.description}, {"State", p.state},
                      {"Tags", tags}, {"PolicyType", "EBS_SNAPSHOT_MANAGEMENT"}};
  if (full) {
    j.erase("PolicyType");
    j["StatusMessage"] = p.state;
    j["ExecutionRoleArn"] = p.role_arn;
    j["DateCreated"] = FormatIso8601(p.created_ms);
    j["DateModified"] = FormatIso8601(p.modified_ms);
    j["PolicyDetails"] = nlohmann::json::parse(p.details, nullptr, false);
    j["PolicyArn"] = PolicyArn(x, p.account_id, p.policy_id);
  }
  return j;
}

// Checks the members of a Create/Update body shared by both; fills p.
ApiStatus ApplyPolicyFields(const nlohmann::json& body, bool create, LifecyclePolicyRecord* p) {
  static const std::set<std::string> kKnown = {"ExecutionRoleArn", "Description", "State", "PolicyDetails", "Tags"};
  for (const auto& [k, v] : body.items())
    if (!kKnown.count(k) || (!create && k == "Tags"))
      return std::unexpected(DlmInvalid("Unknown parameter " + k + "."));
  if (create) {
    std::vector<std::string> missing;
    for (const char* k : {"ExecutionRoleArn", "Description", "State", "PolicyDetails"})
      if (!body.contains(k)) missing.push_back(k);
    if (!missing.empty()) return std::unexpected(DlmInvalid("Missing required parameters.", missing));
  }
  if (body.contains("ExecutionRoleArn")) {
    const auto& v = body["ExecutionRoleArn"];
    if (!v.is_string() || v.get<std::string>().rfind("arn:", 0) != 0 || v.get<std::string>().size() > 2048)
      return std::unexpected(DlmInvalid("ExecutionRoleArn must be an IAM role ARN (arn:…:role/…)."));
    p->role_arn = v.get<std::string>();
  }
  if (body.contains("Description")) {
    const auto& v = body["Description"];
    static constexpr std::string_view kChars =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz _-";
    if (!v.is_string() || v.get<std::string>().empty() || v.get<std::string>().size() > 500 ||
        v.get<std::string>().find_first_not_of(kChars) != std::string::npos)
      return std::unexpected(DlmInvalid("Description must be 1-500 of 0-9 A-Z a-z space _ -."));
    p->description = v.get<std::string>();
  }
  if (body.contains("State")) {
    if (body["State"] != "ENABLED" && body["State"] != "DISABLED")
      return std::unexpected(DlmInvalid("State must be ENABLED or DISABLED."));
    p->state = body["State"].get<std::string>();
  }
  if (body.contains("Tags")) {
    const auto& t = body["Tags"];
    if (!t.is_object() || t.size() > 45) return std::unexpected(DlmInvalid("Tags must be a map of at most 45 tags."));
    for (const auto& [k, v] : t.items()) {
      if (!v.is_string() || k.empty() || k.size() > 128 || v.get<std::string>().size() > 256 ||
          // snapvol:default-policy marks the policy snapvol made itself (lifecycle/scheduler.h).
          HasReservedTagPrefix(k) || k.starts_with("snapvol:"))
        return std::unexpected(DlmInvalid("Tag " + k + " is not valid (keys 1-128, values 0-256, no aws: or snapvol: prefix)."));
    }
    p->tags = t.dump();
  }
  if (body.contains("PolicyDetails")) {
    auto parsed = lifecycle::ParsePolicyDetails(body["PolicyDetails"], lifecycle::IsDefaultPolicy(*p));
    if (!parsed) return std::unexpected(DlmInvalid(parsed.error().message()));
    p->details = body["PolicyDetails"].dump();
  }
  return {};
}

nlohmann::json RunJson(const LifecycleRunRecord& r) {
  nlohmann::json j = {{"PolicyId", r.policy_id}, {"ScheduleName", r.schedule_name},
                      {"ScheduledTime", FormatIso8601(r.scheduled_ms)}, {"StartTime", FormatIso8601(r.started_ms)},
                      {"State", r.state}, {"SnapshotsCreated", r.created}, {"SnapshotsFailed", r.failed},
                      {"SnapshotsDeleted", r.deleted}, {"MissedRuns", r.missed}, {"Message", r.message}};
  if (r.finished_ms) j["EndTime"] = FormatIso8601(r.finished_ms);
  return j;
}


}  // namespace

ApiResult<nlohmann::json> DispatchDlm(Ec2Context& x, Caller& c, const RestCall& r) {
  const auto& seg = r.parts;
  if (seg.empty() || seg[0] != "policies")
    return std::unexpected(ApiError{"InvalidRequestException", "No such DLM operation.", 400});
  const std::string all_arn = PolicyArn(x, c.account_id, "*");
  if (seg.size() == 1 && r.method == "POST") {
    c.record->action = "dlm:CreateLifecyclePolicy";
    API_RETURN_IF_ERROR(CheckRestParams(r, {.check_body = false}));  // ApplyPolicyFields checks the body
    API_RETURN_IF_ERROR(x.Authorize(c, "dlm:CreateLifecyclePolicy", {all_arn}));
    LifecyclePolicyRecord p;
    p.policy_id = lifecycle::NewPolicyId();
    p.account_id = c.account_id;
    API_RETURN_IF_ERROR(ApplyPolicyFields(r.body, true, &p));
    p.created_ms = p.modified_ms = x.clock->NowMillis();
    auto st = x.catalog->InsertLifecyclePolicy(p);
    if (!st) return std::unexpected(FromError(st.error()));
    return nlohmann::json{{"PolicyId", p.policy_id}};
  }
  if (seg.size() == 1 && r.method == "GET") {
    c.record->action = "dlm:GetLifecyclePolicies";
    // defaultPolicyType asks for AWS's default policies, which snapvol does not have: refused
    // by name rather than ignored.
    if (r.query.count("defaultPolicyType"))
      return std::unexpected(DlmInvalid("defaultPolicyType is not supported: snapvol's default policy is an ordinary policy (daily-0200-utc)."));
    API_RETURN_IF_ERROR(CheckRestParams(r, {.lists = {"policyIds", "state", "resourceTypes", "targetTags", "tagsToAdd"}}));
    API_RETURN_IF_ERROR(x.Authorize(c, "dlm:GetLifecyclePolicies", {all_arn}));
    auto rows = x.catalog->ListLifecyclePolicies(c.account_id);
    if (!rows) return std::unexpected(FromError(rows.error()));
    auto values = [&](const char* key) {
      std::vector<std::string> out;
      auto [a, b] = r.query.equal_range(key);
      for (auto it = a; it != b; ++it) out.push_back(it->second);
      return out;
    };
    auto ids = values("policyIds"), states = values("state"), types = values("resourceTypes");
    auto target_tags = values("targetTags"), add_tags = values("tagsToAdd");
    for (const auto& st : states)
      if (st != "ENABLED" && st != "DISABLED" && st != "ERROR")
        return std::unexpected(DlmInvalid("state must be ENABLED, DISABLED or ERROR."));
    for (const auto& t : types)
      if (t != "VOLUME" && t != "INSTANCE") return std::unexpected(DlmInvalid("resourceTypes must be VOLUME or INSTANCE."));
    for (const auto& list : {target_tags, add_tags})
      for (const auto& kv : list)
        if (kv.find('=') == std::string::npos)
          return std::unexpected(DlmInvalid("targetTags and tagsToAdd are key=value, not '" + kv + "'."));
    nlohmann::json out = nlohmann::json::array();
    for (const auto& p : *rows) {
      if (!ids.empty() && std::find(ids.begin(), ids.end(), p.policy_id) == ids.end()) continue;
      if (!states.empty() && std::find(states.begin(), states.end(), p.state) == states.end()) continue;
      auto details = nlohmann::json::parse(p.details, nullptr, false);
      auto parsed = lifecycle::ParsePolicyDetails(details, lifecycle::IsDefaultPolicy(p));
      if (!types.empty() && (!parsed || std::find(types.begin(), types.end(), parsed->resource_type) == types.end()))
        continue;
      auto has = [&](const std::vector<Tag>& tags, const std::string& kv) {
        return std::any_of(tags.begin(), tags.end(), [&](const Tag& t) { return t.key + "=" + t.value == kv; });
      };
      if (!target_tags.empty() &&
          (!parsed || std::none_of(target_tags.begin(), target_tags.end(),
                                   [&](const std::string& kv) { return has(parsed->target_tags, kv); })))
        continue;
      if (!add_tags.empty() &&
          (!parsed || std::none_of(add_tags.begin(), add_tags.end(), [&](const std::string& kv) {
             return std::any_of(parsed->schedules.begin(), parsed->schedules.end(),
                                [&](const lifecycle::Schedule& s) { return has(s.tags_to_add, kv); });
           })))
        continue;
      out.push_back(PolicyJson(x, p, false));
    }
    return nlohmann::json{{"Policies", out}};
  }
  if (seg.size() == 2 || (seg.size() == 3 && seg[2].empty())) {
    const std::string& id = seg[1];
    if (r.method == "GET") {
      c.record->action = "dlm:GetLifecyclePolicy";
      API_RETURN_IF_ERROR(CheckRestParams(r, {}));
      API_ASSIGN_OR_RETURN(auto p, OwnLifecyclePolicy(x, c, id));
      API_RETURN_IF_ERROR(x.Authorize(c, "dlm:GetLifecyclePolicy", {PolicyArn(x, c.account_id, id)}));
      return nlohmann::json{{"Policy", PolicyJson(x, p, true)}};
    }
    if (r.method == "PATCH") {
      c.record->action = "dlm:UpdateLifecyclePolicy";
      API_RETURN_IF_ERROR(CheckRestParams(r, {.check_body = false}));  // ApplyPolicyFields checks the body
      API_ASSIGN_OR_RETURN(auto p, OwnLifecyclePolicy(x, c, id));
      API_RETURN_IF_ERROR(x.Authorize(c, "dlm:UpdateLifecyclePolicy", {PolicyArn(x, c.account_id, id)}));
      API_RETURN_IF_ERROR(ApplyPolicyFields(r.body, false, &p));
      p.modified_ms = x.clock->NowMillis();
      auto st = x.catalog->UpdateLifecyclePolicy(p);
      if (!st) return std::unexpected(FromError(st.error()));
      return nlohmann::json::object();
    }
    if (r.method == "DELETE") {
      c.record->action = "dlm:DeleteLifecyclePolicy";
      API_RETURN_IF_ERROR(CheckRestParams(r, {}));
      API_ASSIGN_OR_RETURN(auto p, OwnLifecyclePolicy(x, c, id));
      API_RETURN_IF_ERROR(x.Authorize(c, "dlm:DeleteLifecyclePolicy", {PolicyArn(x, c.account_id, id)}));
      auto st = x.catalog->DeleteLifecyclePolicy(p.policy_id);
      if (!st) return std::unexpected(FromError(st.error()));
      return nlohmann::json::object();
    }
  }
  // snapvol's own: the runs of a policy (GET /policies/{id}/runs?limit=N).
  if (seg.size() == 3 && seg[2] == "runs" && r.method == "GET") {
    c.record->action = "dlm:GetLifecyclePolicyRuns";
    API_RETURN_IF_ERROR(CheckRestParams(r, {.query = {"limit"}}));
    API_ASSIGN_OR_RETURN(auto p, OwnLifecyclePolicy(x, c, seg[1]));
    API_RETURN_IF_ERROR(x.Authorize(c, "dlm:GetLifecyclePolicyRuns", {PolicyArn(x, c.account_id, p.policy_id)}));
    size_t limit = 50;
    if (auto it = r.query.find("limit"); it != r.query.end()) {
      char* end = nullptr;
      unsigned long v = std::strtoul(it->second.c_str(), &end, 10);
      if (it->second.empty() || *end != '\0' || v < 1 || v > 1000)
        return std::unexpected(DlmInvalid("limit must be 1 to 1000."));
      limit = v;
    }
    auto runs = x.catalog->ListLifecycleRuns(p.policy_id, limit);
    if (!runs) return std::unexpected(FromError(runs.error()));
    nlohmann::json out = nlohmann::json::array();
    for (const auto& run : *runs) out.push_back(RunJson(run));
    return nlohmann::json{{"Runs", out}};
  }
  return std::unexpected(ApiError{"InvalidRequestException", "No such DLM operation: " + r.method + " /" +
                                  [&] {
                                    std::string joined;
                                    for (const auto& p : seg) joined += (joined.empty() ? "" : "/") + p;
                                    return joined;
                                  }(), 400});
}


}  // namespace snapvol::api
