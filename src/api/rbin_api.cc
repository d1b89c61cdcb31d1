// Amazon Recycle Bin's REST-JSON API (SigV4 service "rbin", model rbin-2021-06-15): retention
// rules under /rules and /list-rules, their tags under /tags/{arn}. Shapes, bounds and errors
// are AWS's; ResourceType EBS_SNAPSHOT only (EC2_IMAGE and EBS_VOLUME are refused by name).
// Errors carry their Reason: the code is "Type:REASON" here and HandleRbin splits it.
#include <algorithm>
#include <array>
#include <regex>
#include <set>

#include "api/ec2_context.h"
#include "core/clock.h"
#include "core/hash.h"
#include "engine/recycle_bin.h"

namespace snapvol::api {
namespace {

using json = nlohmann::json;

ApiError Invalid(std::string message) {
  return ApiError{"ValidationException:INVALID_PARAMETER_VALUE", std::move(message), 400};
}
ApiError RuleNotFound(const std::string& id) {
  return ApiError{"ResourceNotFoundException:RULE_NOT_FOUND", "Rule " + id + " does not exist.", 404};
}
ApiError InvalidState(std::string message) {
  return ApiError{"ConflictException:INVALID_RULE_STATE", std::move(message), 409};
}

// AWS's limits (rbin-2021-06-15 and the Recycle Bin quotas).
constexpr int64_t kMinRetentionDays = 1, kMaxRetentionDays = 3650;
constexpr int64_t kMinUnlockDelayDays = 7, kMaxUnlockDelayDays = 30;
constexpr size_t kMaxResourceTags = 50, kMaxExcludeTags = 5, kMaxRuleTags = 200;
constexpr size_t kMaxRulesPerAccount = 250;

bool IsRuleId(const std::string& id) {
  return id.size() == 11 && std::all_of(id.begin(), id.end(), [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)); });
}

std::string NewRuleId() {
  static constexpr char kChars[] = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  std::array<uint8_t, 11> r{};
  (void)RandomBytes(r);
  std::string id;
  for (uint8_t b : r) id += kChars[b % 62];
  return id;
}

std::string RuleArn(const Ec2Context& x, const std::string& account, const std::string& id) {
  return "arn:aws:rbin:" + x.options.region + ":" + account + ":rule/" + id;
}

double EpochSeconds(int64_t ms) { return static_cast<double>(ms) / 1000.0; }

// The lock state as of now: a pending unlock whose delay has passed reads as unlocked.
std::string LockStateNow(const RbinRuleRecord& r, int64_t now_ms) {
  if (r.lock_state == "pending_unlock" && r.lock_end_ms <= now_ms) return "unlocked";
  return r.lock_state;
}
bool Locked(const RbinRuleRecord& r, int64_t now_ms) {
  std::string s = LockStateNow(r, now_ms);
  return s == "locked" || s == "pending_unlock";
}

ApiStatus CheckResourceType(const json& v) {
  if (!v.is_string()) return std::unexpected(Invalid("ResourceType must be a string."));
  const std::string t = v.get<std::string>();
  if (t == "EBS_SNAPSHOT") return {};
  if (t == "EC2_IMAGE" || t == "EBS_VOLUME")
    return std::unexpected(Invalid("ResourceType " + t + " is not supported by snapvol: only EBS_SNAPSHOT."));
  return std::unexpected(Invalid("ResourceType must be one of EBS_SNAPSHOT, EC2_IMAGE, EBS_VOLUME."));
}

ApiResult<int64_t> RetentionDays(const json& v) {
  if (!v.is_object()) return std::unexpected(Invalid("RetentionPeriod must be an object."));
  for (const auto& [k, _] : v.items())
    if (k != "RetentionPeriodValue" && k != "RetentionPeriodUnit")
      return std::unexpected(Invalid("Unknown member RetentionPeriod." + k + "."));
  if (!v.contains("RetentionPeriodValue") || !v.contains("RetentionPeriodUnit"))
    return std::unexpected(Invalid("RetentionPeriod needs RetentionPeriodValue and RetentionPeriodUnit."));
  if (v["RetentionPeriodUnit"] != "DAYS") return std::unexpected(Invalid("RetentionPeriodUnit must be DAYS."));
  const auto& n = v["RetentionPeriodValue"];
  if (!n.is_number_integer() || n.get<int64_t>() < kMinRetentionDays || n.get<int64_t>() > kMaxRetentionDays)
    return std::unexpected(Invalid("RetentionPeriodValue must be an integer from 1 to 3650."));
  return n.get<int64_t>();
}

ApiResult<int64_t> UnlockDelayDays(const json& v) {
  if (!v.is_object() || v.size() != 1 || !v.contains("UnlockDelay") || !v["UnlockDelay"].is_object())
    return std::unexpected(Invalid("LockConfiguration must be {\"UnlockDelay\": {...}}."));
  const auto& d = v["UnlockDelay"];
  for (const auto& [k, _] : d.items())
    if (k != "UnlockDelayValue" && k != "UnlockDelayUnit")
      return std::unexpected(Invalid("Unknown member UnlockDelay." + k + "."));
  if (d.value("UnlockDelayUnit", json()) != "DAYS") return std::unexpected(Invalid("UnlockDelayUnit must be DAYS."));
  const json n = d.value("UnlockDelayValue", json());
  if (!n.is_number_integer() || n.get<int64_t>() < kMinUnlockDelayDays || n.get<int64_t>() > kMaxUnlockDelayDays)
    return std::unexpected(Invalid("UnlockDelayValue must be an integer from 7 to 30."));
  return n.get<int64_t>();
}

// A list of {ResourceTagKey (1-128), ResourceTagValue (0-256)}: normalised JSON text.
ApiResult<std::string> ResourceTagList(const json& v, const char* name, size_t max) {
  if (!v.is_array() || v.size() > max)
    return std::unexpected(Invalid(std::string(name) + " must be a list of at most " + std::to_string(max) + " tags."));
  json out = json::array();
  for (const auto& t : v) {
    if (!t.is_object() || !t.contains("ResourceTagKey") || !t["ResourceTagKey"].is_string())
      return std::unexpected(Invalid(std::string(name) + ": every tag needs a ResourceTagKey."));
    for (const auto& [k, _] : t.items())
      if (k != "ResourceTagKey" && k != "ResourceTagValue")
        return std::unexpected(Invalid(std::string(name) + ": unknown member " + k + "."));
    const std::string key = t["ResourceTagKey"].get<std::string>();
    if (Chars(key) < 1 || Chars(key) > 128)
      return std::unexpected(Invalid(std::string(name) + ": ResourceTagKey must be 1 to 128 characters."));
    json tag = {{"ResourceTagKey", key}};
    if (t.contains("ResourceTagValue")) {
      if (!t["ResourceTagValue"].is_string() || Chars(t["ResourceTagValue"].get<std::string>()) > 256)
        return std::unexpected(Invalid(std::string(name) + ": ResourceTagValue must be at most 256 characters."));
      tag["ResourceTagValue"] = t["ResourceTagValue"];
    }
    out.push_back(tag);
  }
  return out.dump();
}

// Tags of the rule itself ({Key, Value}); keys 1-128, values 0-256, no aws: prefix.
ApiResult<json> RuleTagList(const json& v) {
  if (!v.is_array() || v.size() > kMaxRuleTags) return std::unexpected(Invalid("Tags must be a list of at most 200 tags."));
  for (const auto& t : v) {
    if (!t.is_object() || t.size() != 2 || !t.contains("Key") || !t.contains("Value") || !t["Key"].is_string() ||
        !t["Value"].is_string())
      return std::unexpected(Invalid("Each tag is {\"Key\": ..., \"Value\": ...}."));
    const std::string k = t["Key"].get<std::string>(), val = t["Value"].get<std::string>();
    if (Chars(k) < 1 || Chars(k) > 128 || Chars(val) > 256 || k.starts_with("aws:"))
      return std::unexpected(Invalid("Tag " + k + " is not valid (keys 1-128 characters, values 0-256, no aws: prefix)."));
  }
  return v;
}

// Merges tags into the rule's (same key: the new value wins).
json MergeTags(const std::string& current, const json& add) {
  json cur = json::parse(current, nullptr, false);
  if (!cur.is_array()) cur = json::array();
  for (const auto& t : add) {
    auto it = std::find_if(cur.begin(), cur.end(), [&](const json& c) { return c["Key"] == t["Key"]; });
    if (it != cur.end()) (*it)["Value"] = t["Value"];
    else cur.push_back(t);
  }
  return cur;
}

ApiStatus CheckDescriptionText(const json& v) {
  if (!v.is_string() || Chars(v.get<std::string>()) > 255)
    return std::unexpected(Invalid("Description must be at most 255 characters."));
  for (char ch : v.get<std::string>())
    if (ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v')
      return std::unexpected(Invalid("Description may not hold tabs or line breaks."));
  return {};
}

// The fields CreateRule and UpdateRule both take from body b into rule (each when present):
// Description, ResourceTags, ExcludeResourceTags; then the rule that exclusion tags are for
// account-level rules only.
ApiStatus ApplyRuleFields(const json& b, RbinRuleRecord* rule) {
  if (b.contains("Description")) {
    API_RETURN_IF_ERROR(CheckDescriptionText(b["Description"]));
    rule->description = b["Description"].get<std::string>();
  }
  if (b.contains("ResourceTags")) {
    API_ASSIGN_OR_RETURN(rule->resource_tags, ResourceTagList(b["ResourceTags"], "ResourceTags", kMaxResourceTags));
  }
  if (b.contains("ExcludeResourceTags")) {
    API_ASSIGN_OR_RETURN(rule->exclude_tags,
                         ResourceTagList(b["ExcludeResourceTags"], "ExcludeResourceTags", kMaxExcludeTags));
  }
  if (rule->resource_tags != "[]" && rule->exclude_tags != "[]")
    return std::unexpected(Invalid("ExcludeResourceTags apply to account-level rules only, not with ResourceTags."));
  return {};
}

json RuleJson(const Ec2Context& x, const RbinRuleRecord& r, int64_t now_ms) {
  json j = {{"Identifier", r.rule_id},
            {"Description", r.description},
            {"ResourceType", r.resource_type},
            {"RetentionPeriod", {{"RetentionPeriodValue", r.retention_days}, {"RetentionPeriodUnit", "DAYS"}}},
            {"ResourceTags", json::parse(r.resource_tags, nullptr, false)},
            {"ExcludeResourceTags", json::parse(r.exclude_tags, nullptr, false)},
            {"Status", "available"},
            {"RuleArn", RuleArn(x, r.account_id, r.rule_id)}};
  const std::string state = LockStateNow(r, now_ms);
  if (!state.empty()) j["LockState"] = state;
  if (state == "locked" || state == "pending_unlock")
    j["LockConfiguration"] = {{"UnlockDelay", {{"UnlockDelayValue", r.unlock_delay_days}, {"UnlockDelayUnit", "DAYS"}}}};
  if (state == "pending_unlock") j["LockEndTime"] = EpochSeconds(r.lock_end_ms);
  return j;
}

// The rule by id if the caller may act on it: its own account's, or any for an administrator.
ApiResult<RbinRuleRecord> VisibleRule(const Ec2Context& x, const Caller& c, const std::string& id) {
  if (!IsRuleId(id)) return std::unexpected(Invalid("Identifier must be 11 letters and digits."));
  auto r = x.catalog->GetRbinRule(id);
  if (!r) {
    if (r.error().code() == ErrorCode::kNotFound) return std::unexpected(RuleNotFound(id));
    return std::unexpected(FromError(r.error()));
  }
  if (r->account_id != c.account_id && !c.admin) return std::unexpected(RuleNotFound(id));
  if (c.record && r->account_id != c.account_id) c.record->resource_account_id = r->account_id;
  return *r;
}

// /tags/{arn}: the rule the ARN names.
ApiResult<RbinRuleRecord> RuleFromArn(const Ec2Context& x, const Caller& c, const std::string& arn) {
  static const std::regex kArn(R"(^arn:aws(-[a-z]{1,3}){0,2}:rbin:[a-z\-0-9]{0,63}:([0-9]{12}):rule/([0-9a-zA-Z]{11})$)");
  std::smatch m;
  if (!std::regex_match(arn, m, kArn)) return std::unexpected(Invalid("ResourceArn must be a rule ARN (arn:aws:rbin:REGION:ACCOUNT:rule/ID)."));
  API_ASSIGN_OR_RETURN(RbinRuleRecord r, VisibleRule(x, c, m[3].str()));
  if (arn != RuleArn(x, r.account_id, r.rule_id)) return std::unexpected(RuleNotFound(m[3].str()));
  return r;
}

std::string PercentDecode(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

ApiResult<RestReply> CreateRule(Ec2Context& x, Caller& c, const RestCall& r) {
  c.record->action = "rbin:CreateRule";
  API_RETURN_IF_ERROR(CheckRestParams(r, {.body = {"RetentionPeriod", "Description", "Tags", "ResourceType",
                                                   "ResourceTags", "LockConfiguration", "ExcludeResourceTags"}}));
  API_RETURN_IF_ERROR(x.Authorize(c, "rbin:CreateRule", {RuleArn(x, c.account_id, "*")}));
  const json& b = r.body;
  std::vector<std::string> missing;
  for (const char* k : {"RetentionPeriod", "ResourceType"})
    if (!b.contains(k)) missing.push_back(k);
  if (!missing.empty()) return std::unexpected(Invalid("Missing required parameter " + missing.front() + "."));
  RbinRuleRecord rule;
  rule.rule_id = NewRuleId();
  rule.account_id = c.account_id;
  API_RETURN_IF_ERROR(CheckResourceType(b["ResourceType"]));
  API_ASSIGN_OR_RETURN(rule.retention_days, RetentionDays(b["RetentionPeriod"]));
  API_RETURN_IF_ERROR(ApplyRuleFields(b, &rule));
  const bool tag_level = rule.resource_tags != "[]";
  if (b.contains("Tags")) {
    API_ASSIGN_OR_RETURN(json tags, RuleTagList(b["Tags"]));
    rule.tags = tags.dump();
  }
  const int64_t now = x.clock->NowMillis();
  if (b.contains("LockConfiguration")) {
    if (tag_level || rule.exclude_tags != "[]")
      return std::unexpected(Invalid("Only account-level rules without exclusion tags can be locked."));
    API_ASSIGN_OR_RETURN(rule.unlock_delay_days, UnlockDelayDays(b["LockConfiguration"]));
    rule.lock_state = "locked";
  }
  rule.created_ms = now;
  auto existing = x.catalog->ListRbinRules(c.account_id);
  if (!existing) return std::unexpected(FromError(existing.error()));
  if (existing->size() >= kMaxRulesPerAccount)
    return std::unexpected(ApiError{"ServiceQuotaExceededException:SERVICE_QUOTA_EXCEEDED",
                                    "An account has at most 250 retention rules.", 402});
  if (auto st = x.catalog->InsertRbinRule(rule); !st) return std::unexpected(FromError(st.error()));
  json j = RuleJson(x, rule, now);
  j["Tags"] = json::parse(rule.tags, nullptr, false);
  return RestReply{201, j};
}

ApiResult<RestReply> ListRules(Ec2Context& x, Caller& c, const RestCall& r) {
  c.record->action = "rbin:ListRules";
  API_RETURN_IF_ERROR(CheckRestParams(r, {.body = {"MaxResults", "NextToken", "ResourceType", "ResourceTags",
                                                   "LockState", "ExcludeResourceTags"}}));
  API_RETURN_IF_ERROR(x.Authorize(c, "rbin:ListRules", {RuleArn(x, c.account_id, "*")}));
  const json& b = r.body;
  if (!b.contains("ResourceType")) return std::unexpected(Invalid("Missing required parameter ResourceType."));
  API_RETURN_IF_ERROR(CheckResourceType(b["ResourceType"]));
  size_t max = 1000;
  if (b.contains("MaxResults")) {
    const auto& m = b["MaxResults"];
    if (!m.is_number_integer() || m.get<int64_t>() < 1 || m.get<int64_t>() > 1000)
      return std::unexpected(Invalid("MaxResults must be an integer from 1 to 1000."));
    max = m.get<size_t>();
  }
  std::optional<std::string> want_tags, want_exclude, want_lock;
  if (b.contains("ResourceTags")) {
    API_ASSIGN_OR_RETURN(want_tags, ResourceTagList(b["ResourceTags"], "ResourceTags", kMaxResourceTags));
  }
  if (b.contains("ExcludeResourceTags")) {
    API_ASSIGN_OR_RETURN(want_exclude, ResourceTagList(b["ExcludeResourceTags"], "ExcludeResourceTags", kMaxExcludeTags));
  }
  if (b.contains("LockState")) {
    if (b["LockState"] != "locked" && b["LockState"] != "pending_unlock" && b["LockState"] != "unlocked")
      return std::unexpected(Invalid("LockState must be locked, pending_unlock or unlocked."));
    want_lock = b["LockState"].get<std::string>();
  }
  std::string after;
  const std::string scope = "rbin-rules/" + c.account_id;
  if (b.contains("NextToken")) {
    if (!b["NextToken"].is_string() || !x.tokens)
      return std::unexpected(ApiError{"ValidationException:INVALID_PAGE_TOKEN", "NextToken is not valid.", 400});
    auto decoded = x.tokens->Decode(scope, b["NextToken"].get<std::string>());
    if (!decoded) return std::unexpected(ApiError{"ValidationException:INVALID_PAGE_TOKEN", "NextToken is not valid.", 400});
    after = *decoded;
  }
  auto rows = x.catalog->ListRbinRules(c.account_id);
  if (!rows) return std::unexpected(FromError(rows.error()));
  const int64_t now = x.clock->NowMillis();
  // Same-set comparison: the filters name the rule's tags exactly (in any order).
  auto same = [](const std::string& a, const std::string& want) {
    json ja = json::parse(a, nullptr, false), jw = json::parse(want, nullptr, false);
    if (!ja.is_array() || !jw.is_array() || ja.size() != jw.size()) return false;
    std::set<std::string> sa, sw;
    for (const auto& t : ja) sa.insert(t.dump());
    for (const auto& t : jw) sw.insert(t.dump());
    return sa == sw;
  };
  json out = json::array();
  std::string next;
  bool started = after.empty();
  for (const auto& rule : *rows) {
    if (!started) {
      started = rule.rule_id == after;
      continue;
    }
    if (want_tags && !same(rule.resource_tags, *want_tags)) continue;
    if (want_exclude && !same(rule.exclude_tags, *want_exclude)) continue;
    const std::string state = LockStateNow(rule, now);
    if (want_lock && state != *want_lock) continue;
    if (out.size() == max) {
      next = x.tokens ? x.tokens->Encode(scope, out.back()["Identifier"].get<std::string>()) : "";
      break;
    }
    json s = {{"Identifier", rule.rule_id},
              {"Description", rule.description},
              {"RetentionPeriod", {{"RetentionPeriodValue", rule.retention_days}, {"RetentionPeriodUnit", "DAYS"}}},
              {"RuleArn", RuleArn(x, rule.account_id, rule.rule_id)}};
    if (!state.empty()) s["LockState"] = state;
    out.push_back(s);
  }
  json j = {{"Rules", out}};
  if (!next.empty()) j["NextToken"] = next;
  return RestReply{200, j};
}

ApiResult<RestReply> RuleCall(Ec2Context& x, Caller& c, const RestCall& r, const std::string& id,
                              const std::string& verb) {
  const int64_t now = x.clock->NowMillis();
  if (verb.empty() && r.method == "GET") {
    c.record->action = "rbin:GetRule";
    API_RETURN_IF_ERROR(CheckRestParams(r, {}));
    API_ASSIGN_OR_RETURN(RbinRuleRecord rule, VisibleRule(x, c, id));
    API_RETURN_IF_ERROR(x.Authorize(c, "rbin:GetRule", {RuleArn(x, rule.account_id, id)}));
    return RestReply{200, RuleJson(x, rule, now)};
  }
  if (verb.empty() && r.method == "DELETE") {
    c.record->action = "rbin:DeleteRule";
    API_RETURN_IF_ERROR(CheckRestParams(r, {}));
    API_ASSIGN_OR_RETURN(RbinRuleRecord rule, VisibleRule(x, c, id));
    API_RETURN_IF_ERROR(x.Authorize(c, "rbin:DeleteRule", {RuleArn(x, rule.account_id, id)}));
    if (Locked(rule, now))
      return std::unexpected(InvalidState("Rule " + id + " is " + LockStateNow(rule, now) +
                                          ": a locked rule cannot be deleted until its unlock delay has passed."));
    if (auto st = x.catalog->DeleteRbinRule(id); !st) return std::unexpected(FromError(st.error()));
    return RestReply{204, json()};
  }
  if (verb.empty() && r.method == "PATCH") {
    c.record->action = "rbin:UpdateRule";
    API_RETURN_IF_ERROR(CheckRestParams(r, {.body = {"RetentionPeriod", "Description", "ResourceType", "ResourceTags",
                                                     "ExcludeResourceTags"}}));
    API_ASSIGN_OR_RETURN(RbinRuleRecord rule, VisibleRule(x, c, id));
    API_RETURN_IF_ERROR(x.Authorize(c, "rbin:UpdateRule", {RuleArn(x, rule.account_id, id)}));
    if (Locked(rule, now))
      return std::unexpected(InvalidState("Rule " + id + " is " + LockStateNow(rule, now) +
                                          ": a locked rule cannot be modified until its unlock delay has passed."));
    const json& b = r.body;
    if (b.contains("ResourceType")) {
      API_RETURN_IF_ERROR(CheckResourceType(b["ResourceType"]));
      if (b["ResourceType"] != rule.resource_type)
        return std::unexpected(Invalid("A retention rule's ResourceType cannot change after creation."));
    }
    if (b.contains("RetentionPeriod")) {
      API_ASSIGN_OR_RETURN(rule.retention_days, RetentionDays(b["RetentionPeriod"]));
    }
    API_RETURN_IF_ERROR(ApplyRuleFields(b, &rule));
    if (LockStateNow(rule, now) == "unlocked") {  // an ended unlock delay: the rule is plainly unlocked
      rule.lock_state = "unlocked";
      rule.lock_end_ms = 0;
    }
    if (auto st = x.catalog->UpdateRbinRule(rule); !st) return std::unexpected(FromError(st.error()));
    return RestReply{200, RuleJson(x, rule, now)};
  }
  if (verb == "lock" && r.method == "PATCH") {
    c.record->action = "rbin:LockRule";
    API_RETURN_IF_ERROR(CheckRestParams(r, {.body = {"LockConfiguration"}}));
    API_ASSIGN_OR_RETURN(RbinRuleRecord rule, VisibleRule(x, c, id));
    API_RETURN_IF_ERROR(x.Authorize(c, "rbin:LockRule", {RuleArn(x, rule.account_id, id)}));
    if (!r.body.contains("LockConfiguration")) return std::unexpected(Invalid("Missing required parameter LockConfiguration."));
    API_ASSIGN_OR_RETURN(int64_t delay, UnlockDelayDays(r.body["LockConfiguration"]));
    if (rule.resource_tags != "[]" || rule.exclude_tags != "[]")
      return std::unexpected(InvalidState("Only account-level rules without exclusion tags can be locked."));
    const std::string state = LockStateNow(rule, now);
    if (state == "locked") return std::unexpected(InvalidState("Rule " + id + " is already locked."));
    // The unlock delay cannot change after the first lock (AWS): a re-lock keeps it.
    if (state == "pending_unlock" && delay != rule.unlock_delay_days)
      return std::unexpected(InvalidState("Rule " + id + "'s unlock delay is " + std::to_string(rule.unlock_delay_days) +
                                          " days; it cannot change while its unlock is pending."));
    rule.lock_state = "locked";
    rule.unlock_delay_days = delay;
    rule.lock_end_ms = 0;
    if (auto st = x.catalog->UpdateRbinRule(rule); !st) return std::unexpected(FromError(st.error()));
    json j = RuleJson(x, rule, now);
    j.erase("RuleArn");
    j.erase("LockEndTime");
    return RestReply{200, j};
  }
  if (verb == "unlock" && r.method == "PATCH") {
    c.record->action = "rbin:UnlockRule";
    API_RETURN_IF_ERROR(CheckRestParams(r, {}));
    API_ASSIGN_OR_RETURN(RbinRuleRecord rule, VisibleRule(x, c, id));
    API_RETURN_IF_ERROR(x.Authorize(c, "rbin:UnlockRule", {RuleArn(x, rule.account_id, id)}));
    if (LockStateNow(rule, now) != "locked")
      return std::unexpected(InvalidState("Rule " + id + " is not locked (" +
                                          (rule.lock_state.empty() ? std::string("never locked") : LockStateNow(rule, now)) + ")."));
    rule.lock_state = "pending_unlock";
    rule.lock_end_ms = now + rule.unlock_delay_days * kDayMs;
    if (auto st = x.catalog->UpdateRbinRule(rule); !st) return std::unexpected(FromError(st.error()));
    return RestReply{200, RuleJson(x, rule, now)};
  }
  return std::unexpected(Invalid("No such Recycle Bin operation: " + r.method + " /rules/" + id + (verb.empty() ? "" : "/" + verb)));
}

ApiResult<RestReply> TagsCall(Ec2Context& x, Caller& c, const RestCall& r, const std::string& arn) {
  if (r.method == "GET") {
    c.record->action = "rbin:ListTagsForResource";
    API_RETURN_IF_ERROR(CheckRestParams(r, {}));
    API_ASSIGN_OR_RETURN(RbinRuleRecord rule, RuleFromArn(x, c, arn));
    API_RETURN_IF_ERROR(x.Authorize(c, "rbin:ListTagsForResource", {arn}));
    return RestReply{200, json{{"Tags", json::parse(rule.tags, nullptr, false)}}};
  }
  if (r.method == "POST") {
    c.record->action = "rbin:TagResource";
    API_RETURN_IF_ERROR(CheckRestParams(r, {.body = {"Tags"}}));
    API_ASSIGN_OR_RETURN(RbinRuleRecord rule, RuleFromArn(x, c, arn));
    API_RETURN_IF_ERROR(x.Authorize(c, "rbin:TagResource", {arn}));
    if (!r.body.contains("Tags")) return std::unexpected(Invalid("Missing required parameter Tags."));
    API_ASSIGN_OR_RETURN(json add, RuleTagList(r.body["Tags"]));
    json merged = MergeTags(rule.tags, add);
    if (merged.size() > kMaxRuleTags)
      return std::unexpected(ApiError{"ServiceQuotaExceededException:SERVICE_QUOTA_EXCEEDED",
                                      "A retention rule has at most 200 tags.", 402});
    rule.tags = merged.dump();
    if (auto st = x.catalog->UpdateRbinRule(rule); !st) return std::unexpected(FromError(st.error()));
    return RestReply{201, json::object()};
  }
  if (r.method == "DELETE") {
    c.record->action = "rbin:UntagResource";
    API_RETURN_IF_ERROR(CheckRestParams(r, {.lists = {"tagKeys"}}));
    API_ASSIGN_OR_RETURN(RbinRuleRecord rule, RuleFromArn(x, c, arn));
    API_RETURN_IF_ERROR(x.Authorize(c, "rbin:UntagResource", {arn}));
    auto [a, e] = r.query.equal_range("tagKeys");
    if (a == e) return std::unexpected(Invalid("Missing required parameter tagKeys."));
    std::set<std::string> drop;
    for (auto it = a; it != e; ++it) drop.insert(it->second);
    json cur = json::parse(rule.tags, nullptr, false), kept = json::array();
    if (cur.is_array())
      for (const auto& t : cur)
        if (!drop.count(t.value("Key", ""))) kept.push_back(t);
    rule.tags = kept.dump();
    if (auto st = x.catalog->UpdateRbinRule(rule); !st) return std::unexpected(FromError(st.error()));
    return RestReply{204, json()};
  }
  return std::unexpected(Invalid("No such Recycle Bin operation: " + r.method + " /tags/" + arn));
}

}  // namespace

ApiResult<RestReply> DispatchRbin(Ec2Context& x, Caller& c, const RestCall& r) {
  const auto& seg = r.parts;
  if (seg.size() == 1 && seg[0] == "rules" && r.method == "POST") return CreateRule(x, c, r);
  if (seg.size() == 1 && seg[0] == "list-rules" && r.method == "POST") return ListRules(x, c, r);
  if (seg.size() == 2 && seg[0] == "rules") return RuleCall(x, c, r, seg[1], "");
  if (seg.size() == 3 && seg[0] == "rules" && (seg[2] == "lock" || seg[2] == "unlock")) return RuleCall(x, c, r, seg[1], seg[2]);
  if (seg.size() >= 2 && seg[0] == "tags") {
    // The ARN holds a '/' (rule/ID), percent-encoded or not.
    std::string arn;
    for (size_t i = 1; i < seg.size(); ++i) arn += (i > 1 ? "/" : "") + seg[i];
    return TagsCall(x, c, r, PercentDecode(arn));
  }
  std::string joined;
  for (const auto& p : seg) joined += "/" + p;
  return std::unexpected(Invalid("No such Recycle Bin operation: " + r.method + " " + joined));
}

}  // namespace snapvol::api
