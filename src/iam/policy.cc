#include "iam/policy.h"

#include <algorithm>
#include <exception>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

namespace snapvol::iam {
namespace {

using json = nlohmann::json;

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (Lower(a[i]) != Lower(b[i])) return false;
  return true;
}

// ------------------------------------------------------------------------------------------
// Matching

// Glob over bytes; '?' consumes one UTF-8 character. With escapes, "\x" matches x literally.
bool Glob(std::string_view pat, std::string_view text, bool ignore_case, bool escapes) {
  auto eq = [ignore_case](char a, char b) { return ignore_case ? Lower(a) == Lower(b) : a == b; };
  size_t p = 0, t = 0;
  size_t star_p = std::string_view::npos, star_t = 0;
  while (t < text.size()) {
    if (p < pat.size()) {
      char pc = pat[p];
      if (escapes && pc == '\\' && p + 1 < pat.size()) {
        if (eq(pat[p + 1], text[t])) {
          p += 2;
          ++t;
          continue;
        }
      } else if (pc == '*') {
        star_p = p++;
        star_t = t;
        continue;
      } else if (pc == '?') {
        ++p;
        ++t;
        while (t < text.size() && (static_cast<unsigned char>(text[t]) & 0xC0) == 0x80) ++t;
        continue;
      } else if (eq(pc, text[t])) {
        ++p;
        ++t;
        continue;
      }
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p + 1;
    t = ++star_t;
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

// Splits an ARN (or ARN pattern) into its first five ':'-separated segments and the rest.
// Returns false if it has fewer than six parts. With escapes, an escaped ':' does not split.
bool SplitArn(std::string_view s, bool escapes, std::vector<std::string_view>* parts) {
  parts->clear();
  size_t start = 0;
  for (size_t i = 0; i < s.size() && parts->size() < 5; ++i) {
    if (escapes && s[i] == '\\') {
      ++i;
      continue;
    }
    if (s[i] == ':') {
      parts->push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  if (parts->size() < 5) return false;
  parts->push_back(s.substr(start));
  return true;
}

bool ArnMatchImpl(std::string_view pattern, std::string_view arn, bool escapes) {
  if (pattern == "*") return true;
  std::vector<std::string_view> pp, ap;
  bool pattern_is_arn = SplitArn(pattern, escapes, &pp);
  bool resource_is_arn = SplitArn(arn, false, &ap);
  // Something that is not ARN-shaped only ever matches something else that is not.
  if (!pattern_is_arn || !resource_is_arn)
    return !pattern_is_arn && !resource_is_arn && Glob(pattern, arn, false, escapes);
  for (size_t i = 0; i < 6; ++i)
    if (!Glob(pp[i], ap[i], false, escapes)) return false;
  return true;
}

// Condition values of the request, keys lower-cased.
using LowerContext = std::map<std::string, const std::vector<std::string>*>;

const std::vector<std::string>* Lookup(const LowerContext& ctx, std::string_view lower_key) {
  auto it = ctx.find(std::string(lower_key));
  return it == ctx.end() ? nullptr : it->second;
}

void AppendEscaped(std::string* out, std::string_view s, bool for_glob) {
  for (char c : s) {
    if (for_glob && (c == '*' || c == '?' || c == '\\')) *out += '\\';
    *out += c;
  }
}

// Substitutes ${...} policy variables. for_glob output is a pattern for Glob(escapes=true):
// variable values and ${*} ${?} ${$} become literals. nullopt if a variable cannot be resolved.
std::optional<std::string> Substitute(std::string_view text, bool variables, bool for_glob,
                                      const LowerContext& ctx) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (variables && text[i] == '$' && i + 1 < text.size() && text[i + 1] == '{') {
      size_t close = text.find('}', i + 2);
      if (close != std::string_view::npos) {
        std::string_view name = text.substr(i + 2, close - i - 2);
        if (name == "*" || name == "?" || name == "$") {
          AppendEscaped(&out, name, for_glob);
        } else {
          const std::vector<std::string>* v = Lookup(ctx, ToLower(name));
          if (v == nullptr || v->size() != 1) return std::nullopt;
          AppendEscaped(&out, v->front(), for_glob);
        }
        i = close;
        continue;
      }
    }
    if (for_glob && text[i] == '\\') out += '\\';
    out += text[i];
  }
  return out;
}

bool IsNegated(ConditionOperator op) {
  switch (op) {
    case ConditionOperator::kStringNotEquals:
    case ConditionOperator::kStringNotEqualsIgnoreCase:
    case ConditionOperator::kStringNotLike:
    case ConditionOperator::kArnNotEquals:
    case ConditionOperator::kArnNotLike:
      return true;
    default:
      return false;
  }
}

// Whether one request value matches one (substituted) policy value under op's positive form.
bool ValueMatches(ConditionOperator op, std::string_view request_value,
                  std::string_view policy_pattern, std::string_view policy_literal) {
  switch (op) {
    case ConditionOperator::kStringEquals:
    case ConditionOperator::kStringNotEquals:
      return request_value == policy_literal;
    case ConditionOperator::kStringEqualsIgnoreCase:
    case ConditionOperator::kStringNotEqualsIgnoreCase:
      return IEquals(request_value, policy_literal);
    case ConditionOperator::kStringLike:
    case ConditionOperator::kStringNotLike:
      return Glob(policy_pattern, request_value, false, true);
    case ConditionOperator::kArnEquals:
    case ConditionOperator::kArnLike:
    case ConditionOperator::kArnNotEquals:
    case ConditionOperator::kArnNotLike:
      return ArnMatchImpl(policy_pattern, request_value, true);
    case ConditionOperator::kBool:
      return IEquals(request_value, policy_literal);
    case ConditionOperator::kNull:
      return false;  // handled by the caller
  }
  return false;
}

bool ClauseHolds(const ConditionClause& c, bool variables, const LowerContext& ctx) {
  const std::vector<std::string>* vals = Lookup(ctx, c.key);
  bool present = vals != nullptr && !vals->empty();
  if (c.op == ConditionOperator::kNull) {
    for (const std::string& v : c.values)
      if ((v == "true") == !present) return true;
    return false;
  }
  bool negated = IsNegated(c.op);
  if (!present) {
    if (c.if_exists) return true;
    if (c.qualifier == SetQualifier::kForAllValues) return true;
    if (c.qualifier == SetQualifier::kForAnyValue) return false;
    return negated;
  }
  // Policy values with variables substituted, both as glob patterns and as literals.
  std::vector<std::pair<std::string, std::string>> policy;
  for (const std::string& v : c.values) {
    std::optional<std::string> pat = Substitute(v, variables, true, ctx);
    std::optional<std::string> lit = Substitute(v, variables, false, ctx);
    if (!pat || !lit) return false;  // as IAM: an unresolvable variable never matches
    policy.emplace_back(std::move(*pat), std::move(*lit));
  }
  auto matches_any = [&](const std::string& request_value) {
    return std::any_of(policy.begin(), policy.end(), [&](const auto& pv) {
      return ValueMatches(c.op, request_value, pv.first, pv.second);
    });
  };
  auto good = [&](const std::string& rv) { return negated ? !matches_any(rv) : matches_any(rv); };
  switch (c.qualifier) {
    case SetQualifier::kForAllValues:
      return std::all_of(vals->begin(), vals->end(), good);
    case SetQualifier::kForAnyValue:
      return std::any_of(vals->begin(), vals->end(), good);
    case SetQualifier::kNone:
      // A negated operator must hold for every value; a positive one for some value.
      return negated ? std::all_of(vals->begin(), vals->end(), good)
                     : std::any_of(vals->begin(), vals->end(), good);
  }
  return false;
}

// Whether statement s applies to action on resource.
bool Applies(const Statement& s, bool variables, std::string_view action, std::string_view resource,
             const LowerContext& ctx) {
  bool action_hit = std::any_of(s.actions.begin(), s.actions.end(), [&](const std::string& a) {
    return Glob(a, action, /*ignore_case=*/true, /*escapes=*/false);
  });
  if (action_hit == s.not_action) return false;
  bool resource_hit = false;
  for (const std::string& r : s.resources) {
    std::optional<std::string> pattern = Substitute(r, variables, true, ctx);
    if (!pattern) return false;  // an unresolvable variable: the statement does not apply
    if (ArnMatchImpl(*pattern, resource, true)) resource_hit = true;
  }
  if (resource_hit == s.not_resource) return false;
  return std::all_of(s.conditions.begin(), s.conditions.end(),
                     [&](const ConditionClause& c) { return ClauseHolds(c, variables, ctx); });
}

// ------------------------------------------------------------------------------------------
// Parsing

std::unexpected<Error> Invalid(const std::string& where, const std::string& what) {
  return InvalidArgument(where.empty() ? what : where + ": " + what);
}

Result<std::vector<std::string>> StringOrArray(const json& v, const std::string& where,
                                               const char* element) {
  std::vector<std::string> out;
  if (v.is_string()) {
    out.push_back(v.get_ref<const std::string&>());
  } else if (v.is_array()) {
    for (const json& e : v) {
      if (!e.is_string()) return Invalid(where, std::string(element) + " must hold only strings");
      out.push_back(e.get_ref<const std::string&>());
    }
  } else {
    return Invalid(where, std::string(element) + " must be a string or an array of strings");
  }
  if (out.empty()) return Invalid(where, std::string(element) + " must not be empty");
  return out;
}

Status ValidateAction(const std::string& a, const std::string& where) {
  if (a == "*") return OkStatus();
  size_t colon = a.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == a.size() ||
      a.find(':', colon + 1) != std::string::npos) {
    return Invalid(where, "action '" + a + "' must be '*' or '<service>:<action>'");
  }
  for (size_t i = 0; i < colon; ++i) {
    char c = a[i];
    bool ok =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok) return Invalid(where, "action '" + a + "' has a bad service prefix");
  }
  return OkStatus();
}

Status ValidateResource(const std::string& r, const std::string& where) {
  if (r == "*") return OkStatus();
  std::vector<std::string_view> parts;
  if (r.rfind("arn:", 0) != 0 || !SplitArn(r, false, &parts) || parts[2].empty())
    return Invalid(where, "resource '" + r + "' must be '*' or an ARN arn:partition:service:...");
  return OkStatus();
}

struct OperatorName {
  std::string_view name;
  ConditionOperator op;
};
constexpr OperatorName kOperators[] = {
    {"StringEquals", ConditionOperator::kStringEquals},
    {"StringNotEquals", ConditionOperator::kStringNotEquals},
    {"StringEqualsIgnoreCase", ConditionOperator::kStringEqualsIgnoreCase},
    {"StringNotEqualsIgnoreCase", ConditionOperator::kStringNotEqualsIgnoreCase},
    {"StringLike", ConditionOperator::kStringLike},
    {"StringNotLike", ConditionOperator::kStringNotLike},
    {"ArnEquals", ConditionOperator::kArnEquals},
    {"ArnLike", ConditionOperator::kArnLike},
    {"ArnNotEquals", ConditionOperator::kArnNotEquals},
    {"ArnNotLike", ConditionOperator::kArnNotLike},
    {"Bool", ConditionOperator::kBool},
    {"Null", ConditionOperator::kNull},
};

Result<ConditionClause> ParseOperator(const std::string& full, const std::string& where) {
  ConditionClause c;
  c.operator_name = full;
  std::string_view s = full;
  constexpr std::string_view kAny = "ForAnyValue:", kAll = "ForAllValues:", kIf = "IfExists";
  if (s.starts_with(kAny)) {
    c.qualifier = SetQualifier::kForAnyValue;
    s.remove_prefix(kAny.size());
  } else if (s.starts_with(kAll)) {
    c.qualifier = SetQualifier::kForAllValues;
    s.remove_prefix(kAll.size());
  }
  if (s.ends_with(kIf) && s.size() > kIf.size()) {
    c.if_exists = true;
    s.remove_suffix(kIf.size());
  }
  for (const OperatorName& o : kOperators) {
    if (o.name != s) continue;
    c.op = o.op;
    if (c.op == ConditionOperator::kNull && (c.if_exists || c.qualifier != SetQualifier::kNone))
      return Invalid(where, "condition operator '" + full +
                                "' is not valid: Null takes no "
                                "IfExists suffix or set qualifier");
    return c;
  }
  return Invalid(where, "condition operator '" + full +
                            "' is unknown or not supported (supported: String*, Arn*, Bool, Null)");
}

Result<std::vector<ConditionClause>> ParseCondition(const json& v, const std::string& where) {
  if (!v.is_object()) return Invalid(where, "Condition must be an object");
  std::vector<ConditionClause> out;
  for (const auto& [op_name, block] : v.items()) {
    ASSIGN_OR_RETURN(ConditionClause proto, ParseOperator(op_name, where));
    if (!block.is_object() || block.empty()) {
      return Invalid(where, "condition operator '" + op_name +
                                "' must map to a non-empty object of key: value(s)");
    }
    for (const auto& item : block.items()) {
      const std::string& key = item.key();
      const json& values = item.value();
      if (key.empty()) return Invalid(where, "a condition key is empty");
      ConditionClause c = proto;
      c.key = ToLower(key);
      auto add = [&](const json& e) -> Status {
        if (e.is_string()) {
          c.values.push_back(e.get_ref<const std::string&>());
        } else if (e.is_boolean()) {
          c.values.push_back(e.get<bool>() ? "true" : "false");
        } else if (e.is_number()) {
          c.values.push_back(e.dump());
        } else {
          return Invalid(where,
                         "condition values of '" + key + "' must be strings, numbers or booleans");
        }
        return OkStatus();
      };
      if (values.is_array()) {
        for (const json& e : values) RETURN_IF_ERROR(add(e));
      } else {
        RETURN_IF_ERROR(add(values));
      }
      if (c.values.empty()) return Invalid(where, "condition key '" + key + "' has no values");
      if (c.op == ConditionOperator::kNull || c.op == ConditionOperator::kBool) {
        for (const std::string& x : c.values) {
          if (x != "true" && x != "false")
            return Invalid(where, op_name + " on '" + key + "' takes only true or false");
        }
      }
      out.push_back(std::move(c));
    }
  }
  return out;
}

Result<Statement> ParseStatement(const json& v, size_t index) {
  std::string where = "Statement[" + std::to_string(index) + "]";
  if (!v.is_object()) return Invalid(where, "a statement must be an object");
  if (auto sid = v.find("Sid"); sid != v.end() && sid->is_string())
    where += " (" + sid->get_ref<const std::string&>() + ")";
  Statement s;
  bool has_effect = false, has_action = false, has_resource = false;
  for (const auto& [key, value] : v.items()) {
    if (key == "Sid") {
      if (!value.is_string()) return Invalid(where, "Sid must be a string");
      s.sid = value.get_ref<const std::string&>();
    } else if (key == "Effect") {
      if (!value.is_string()) return Invalid(where, "Effect must be a string");
      const std::string& e = value.get_ref<const std::string&>();
      if (e == "Allow") {
        s.effect = Effect::kAllow;
      } else if (e == "Deny") {
        s.effect = Effect::kDeny;
      } else {
        return Invalid(where, "Effect must be \"Allow\" or \"Deny\", not \"" + e + "\"");
      }
      has_effect = true;
    } else if (key == "Action" || key == "NotAction") {
      if (has_action) return Invalid(where, "a statement has either Action or NotAction, not both");
      has_action = true;
      s.not_action = key == "NotAction";
      ASSIGN_OR_RETURN(s.actions, StringOrArray(value, where, key.c_str()));
      for (const std::string& a : s.actions) RETURN_IF_ERROR(ValidateAction(a, where));
    } else if (key == "Resource" || key == "NotResource") {
      if (has_resource)
        return Invalid(where, "a statement has either Resource or NotResource, not both");
      has_resource = true;
      s.not_resource = key == "NotResource";
      ASSIGN_OR_RETURN(s.resources, StringOrArray(value, where, key.c_str()));
      for (const std::string& r : s.resources) RETURN_IF_ERROR(ValidateResource(r, where));
    } else if (key == "Condition") {
      ASSIGN_OR_RETURN(s.conditions, ParseCondition(value, where));
    } else if (key == "Principal" || key == "NotPrincipal") {
      return Invalid(where, key + " is not allowed in an identity-based policy");
    } else {
      return Invalid(where, "unknown element '" + key + "'");
    }
  }
  if (!has_effect) return Invalid(where, "Effect is missing");
  if (!has_action) return Invalid(where, "Action or NotAction is missing");
  if (!has_resource) return Invalid(where, "Resource or NotResource is missing");
  return s;
}

size_t CountPolicyChars(std::string_view text) {
  size_t n = 0;
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    if ((c & 0xC0) == 0x80) continue;  // UTF-8 continuation byte: same character
    ++n;
  }
  return n;
}

Result<json> ParseJsonStrict(std::string_view text) {
  // nlohmann keeps the last of duplicate keys silently; IAM must not ("Effect" twice would
  // make the outcome depend on the parser), so duplicates are detected and refused.
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  json::parser_callback_t cb = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        open_objects.emplace_back();
        break;
      case json::parse_event_t::object_end:
        if (!open_objects.empty()) open_objects.pop_back();
        break;
      case json::parse_event_t::key:
        if (!open_objects.empty() && parsed.is_string() &&
            !open_objects.back().insert(parsed.get<std::string>()).second && duplicate.empty()) {
          duplicate = parsed.get<std::string>();
        }
        break;
      default:
        break;
    }
    return true;
  };
  json doc;
  try {
    doc = json::parse(text.begin(), text.end(), cb, /*allow_exceptions=*/false);
  } catch (const std::exception& e) {
    return InvalidArgument(std::string("policy is not valid JSON: ") + e.what());
  }
  if (doc.is_discarded()) return InvalidArgument("policy is not valid JSON");
  if (!duplicate.empty())
    return InvalidArgument("policy repeats the key \"" + duplicate + "\" in one object");
  return doc;
}

}  // namespace

// --------------------------------------------------------------------------------------------

Result<Policy> Policy::Parse(std::string_view text, std::string name) {
  const std::string context = name.empty() ? "" : "policy " + name;
  auto fail = [&context](const Error& e) {
    return std::unexpected<Error>(context.empty() ? e : e.WithContext(context));
  };
  if (text.size() > kMaxPolicyDocumentBytes) {
    return fail(Error(ErrorCode::kInvalidArgument,
                      "policy document is " + std::to_string(text.size()) +
                          " bytes; the limit is " + std::to_string(kMaxPolicyDocumentBytes)));
  }
  if (size_t chars = CountPolicyChars(text); chars > kMaxPolicyChars) {
    return fail(Error(ErrorCode::kInvalidArgument,
                      "policy has " + std::to_string(chars) +
                          " characters not counting white space; the limit is " +
                          std::to_string(kMaxPolicyChars)));
  }
  Result<json> doc = ParseJsonStrict(text);
  if (!doc) return fail(doc.error());
  Policy policy;
  policy.name_ = std::move(name);
  policy.version_ = "2008-10-17";  // IAM's default when Version is absent: no variables
  Status st = [&]() -> Status {
    if (!doc->is_object()) return InvalidArgument("policy must be a JSON object");
    if (auto v = doc->find("Version"); v != doc->end()) {
      if (!v->is_string() || (*v != "2012-10-17" && *v != "2008-10-17"))
        return InvalidArgument("Version must be \"2012-10-17\" or \"2008-10-17\"");
      policy.version_ = v->get<std::string>();
    }
    bool has_statement = false;
    for (const auto& [key, value] : doc->items()) {
      if (key == "Version") {
        continue;
      } else if (key == "Id") {
        if (!value.is_string()) return InvalidArgument("Id must be a string");
      } else if (key == "Statement") {
        has_statement = true;
        if (value.is_object()) {
          ASSIGN_OR_RETURN(Statement s, ParseStatement(value, 0));
          policy.statements_.push_back(std::move(s));
        } else if (value.is_array() && !value.empty()) {
          for (size_t i = 0; i < value.size(); ++i) {
            ASSIGN_OR_RETURN(Statement s, ParseStatement(value[i], i));
            policy.statements_.push_back(std::move(s));
          }
        } else {
          return InvalidArgument("Statement must be an object or a non-empty array");
        }
      } else {
        return InvalidArgument("unknown top-level element '" + key + "'");
      }
    }
    if (!has_statement) return InvalidArgument("Statement is missing");
    return OkStatus();
  }();
  if (!st) return fail(st.error());
  return policy;
}

const char* DecisionKindName(Decision::Kind kind) {
  switch (kind) {
    case Decision::kAllow:
      return "Allow";
    case Decision::kExplicitDeny:
      return "ExplicitDeny";
    case Decision::kImplicitDeny:
      return "ImplicitDeny";
  }
  return "ImplicitDeny";
}

std::string Decision::ToString() const {
  std::string out = DecisionKindName(kind);
  if (statement) {
    out +=
        " by " + (statement->policy_name.empty() ? std::string("policy") : statement->policy_name);
    out += "[" + std::to_string(statement->statement_index) + "]";
    if (!statement->sid.empty()) out += " (" + statement->sid + ")";
  }
  if (!resource.empty()) out += " on " + resource;
  return out;
}

Decision Decide(const std::vector<Policy>& policies, const RequestContext& request) {
  LowerContext ctx;
  for (const auto& [key, values] : request.condition_values) ctx[ToLower(key)] = &values;
  static const std::vector<std::string> kNoResource = {"*"};
  const std::vector<std::string>& resources =
      request.resources.empty() ? kNoResource : request.resources;

  auto ref = [&](size_t pi, size_t si) {
    return StatementRef{pi, policies[pi].name(), si, policies[pi].statements()[si].sid};
  };
  for (size_t pi = 0; pi < policies.size(); ++pi) {
    const Policy& p = policies[pi];
    for (size_t si = 0; si < p.statements().size(); ++si) {
      const Statement& s = p.statements()[si];
      if (s.effect != Effect::kDeny) continue;
      for (const std::string& r : resources) {
        if (Applies(s, p.variables_enabled(), request.action, r, ctx))
          return Decision{Decision::kExplicitDeny, ref(pi, si), r};
      }
    }
  }
  std::optional<StatementRef> first_allow;
  for (const std::string& r : resources) {
    bool allowed = false;
    for (size_t pi = 0; pi < policies.size() && !allowed; ++pi) {
      const Policy& p = policies[pi];
      for (size_t si = 0; si < p.statements().size() && !allowed; ++si) {
        const Statement& s = p.statements()[si];
        if (s.effect != Effect::kAllow) continue;
        if (!Applies(s, p.variables_enabled(), request.action, r, ctx)) continue;
        allowed = true;
        if (!first_allow) first_allow = ref(pi, si);
      }
    }
    if (!allowed) return Decision{Decision::kImplicitDeny, std::nullopt, r};
  }
  return Decision{Decision::kAllow, first_allow, ""};
}

bool WildcardMatch(std::string_view pattern, std::string_view text, bool ignore_case) {
  return Glob(pattern, text, ignore_case, /*escapes=*/false);
}

bool ArnMatch(std::string_view pattern, std::string_view arn) {
  return ArnMatchImpl(pattern, arn, /*escapes=*/false);
}

std::string Ec2Arn(std::string_view region, std::string_view account_id, std::string_view type,
                   std::string_view id) {
  std::string out = "arn:aws:ec2:";
  out.append(region).append(":").append(account_id).append(":").append(type).append("/");
  out.append(id);
  return out;
}

}  // namespace snapvol::iam
