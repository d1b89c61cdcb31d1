#include "api/query_params.h"

#include <algorithm>
#include <charconv>
#include <limits>

#include "api/utf8.h"

namespace snapvol::api {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Decodes %XX escapes (and '+' when plus_as_space). On a bad or truncated escape returns
// false and leaves a description in *why.
bool PercentDecode(std::string_view in, bool plus_as_space, std::string* out, std::string* why) {
  out->clear();
  out->reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (c == '+' && plus_as_space) {
      out->push_back(' ');
    } else if (c == '%') {
      if (in.size() - i < 3) {
        *why = "a '%' escape is truncated";
        return false;
      }
      const int hi = HexValue(in[i + 1]);
      const int lo = HexValue(in[i + 2]);
      if (hi < 0 || lo < 0) {
        *why = "'%" + std::string(in.substr(i + 1, 2)) + "' is not a valid escape";
        return false;
      }
      out->push_back(static_cast<char>(hi << 4 | lo));
      i += 2;
    } else {
      out->push_back(c);
    }
  }
  return true;
}

// A list index: decimal, >= 1, no sign, no leading zero, at most 9 digits.
std::optional<uint64_t> ParseIndex(std::string_view s) {
  if (s.empty() || s.size() > 9 || s[0] == '0') return std::nullopt;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint64_t>(c - '0');
  }
  return v;
}

ApiError BadIndex(const std::string& full_name, const std::string& expected) {
  return MakeApiError(ec2::kInvalidParameter,
                      "The parameter " + full_name + " is invalid: expected " + expected +
                          " with N a positive integer without leading zeros");
}

}  // namespace

ApiResult<QueryParams> QueryParams::ParseFormBody(std::string_view body,
                                                  const QueryLimits& limits) {
  return Parse(body, limits, /*plus_as_space=*/true);
}

ApiResult<QueryParams> QueryParams::ParseQueryString(std::string_view query,
                                                     const QueryLimits& limits,
                                                     bool plus_as_space) {
  return Parse(query, limits, plus_as_space);
}

ApiResult<QueryParams> QueryParams::Parse(std::string_view input, const QueryLimits& limits,
                                          bool plus_as_space) {
  if (input.size() > limits.max_input_bytes) {
    return ApiFail(ec2::kRequestEntityTooLarge,
                   "The request parameters are " + std::to_string(input.size()) +
                       " bytes; the limit is " + std::to_string(limits.max_input_bytes));
  }
  QueryParams out;
  std::string name, value, why;
  size_t pos = 0;
  while (pos <= input.size()) {
    size_t amp = input.find('&', pos);
    if (amp == std::string_view::npos) amp = input.size();
    const std::string_view segment = input.substr(pos, amp - pos);
    pos = amp + 1;
    if (segment.empty()) continue;  // "a=1&&b=2" or a trailing '&'

    const size_t eq = segment.find('=');
    const std::string_view raw_name = segment.substr(0, eq);
    const std::string_view raw_value =
        eq == std::string_view::npos ? std::string_view() : segment.substr(eq + 1);

    if (!PercentDecode(raw_name, plus_as_space, &name, &why)) {
      return ApiFail(ec2::kMalformedQueryString, "A parameter name is malformed: " + why);
    }
    if (name.empty()) {
      return ApiFail(ec2::kMalformedQueryString, "A parameter has an empty name");
    }
    if (name.size() > limits.max_name_bytes) {
      return ApiFail(ec2::kMalformedQueryString,
                     "The parameter name " + QuoteForMessage(name) + " is longer than " +
                         std::to_string(limits.max_name_bytes) + " bytes");
    }
    if (!IsValidUtf8(name)) {
      return ApiFail(ec2::kMalformedQueryString, "A parameter name is not valid UTF-8");
    }
    if (!PercentDecode(raw_value, plus_as_space, &value, &why)) {
      return ApiFail(ec2::kMalformedQueryString,
                     "The value of parameter " + name + " is malformed: " + why);
    }
    if (value.size() > limits.max_value_bytes) {
      return ApiFail(ec2::kInvalidParameterValue,
                     "The value of parameter " + name + " is " + std::to_string(value.size()) +
                         " bytes; the limit is " + std::to_string(limits.max_value_bytes));
    }
    if (!IsValidUtf8(value)) {
      return ApiFail(ec2::kInvalidParameterValue,
                     "The value of parameter " + name + " is not valid UTF-8");
    }
    if (out.size() >= limits.max_params) {
      return ApiFail(
          ec2::kRequestEntityTooLarge,
          "The request has more than " + std::to_string(limits.max_params) + " parameters");
    }
    if (limits.allow_repeats) {
      out.index_.emplace(name, out.entries_.size());  // keeps the first for Find
      out.entries_.emplace_back(std::move(name), std::move(value));
    } else {
      API_RETURN_IF_ERROR(out.Add(std::move(name), std::move(value)));
    }
    name.clear();
    value.clear();
  }
  return out;
}

ApiStatus QueryParams::Add(std::string name, std::string value) {
  if (index_.contains(name)) {
    return ApiFail(ec2::kInvalidParameter,
                   "The parameter " + FullName(name) + " was specified more than once");
  }
  index_.emplace(name, entries_.size());
  entries_.emplace_back(std::move(name), std::move(value));
  return {};
}

ApiStatus QueryParams::Merge(const QueryParams& other) {
  for (const auto& [name, value] : other.entries_) API_RETURN_IF_ERROR(Add(name, value));
  return {};
}

const std::string* QueryParams::Find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &entries_[it->second].second;
}

ApiResult<std::string> QueryParams::GetString(std::string_view name) const {
  const std::string* v = Find(name);
  if (v == nullptr) return std::unexpected(MissingParameter(FullName(name)));
  return *v;
}

std::optional<std::string> QueryParams::GetOptionalString(std::string_view name) const {
  const std::string* v = Find(name);
  if (v == nullptr) return std::nullopt;
  return *v;
}

ApiResult<std::optional<bool>> QueryParams::GetOptionalBool(std::string_view name) const {
  const std::string* v = Find(name);
  if (v == nullptr) return std::optional<bool>();
  if (*v == "true") return std::optional<bool>(true);
  if (*v == "false") return std::optional<bool>(false);
  return std::unexpected(InvalidParameterValue(FullName(name), *v, "Expecting 'true' or 'false'."));
}

ApiResult<bool> QueryParams::GetBool(std::string_view name) const {
  API_ASSIGN_OR_RETURN(std::optional<bool> v, GetOptionalBool(name));
  if (!v) return std::unexpected(MissingParameter(FullName(name)));
  return *v;
}

ApiResult<std::optional<int64_t>> QueryParams::GetOptionalInt(std::string_view name, int64_t min,
                                                              int64_t max) const {
  const std::string* v = Find(name);
  if (v == nullptr) return std::optional<int64_t>();
  int64_t n = 0;
  const char* end = v->data() + v->size();
  auto [ptr, ec] = std::from_chars(v->data(), end, n);
  if (v->empty() || ec != std::errc() || ptr != end) {
    return std::unexpected(InvalidParameterValue(FullName(name), *v, "Expecting an integer."));
  }
  if (n < min || n > max) {
    std::string expect;
    if (max == std::numeric_limits<int64_t>::max()) {
      expect = "Expecting a value greater than or equal to " + std::to_string(min) + ".";
    } else {
      expect =
          "Expecting a value between " + std::to_string(min) + " and " + std::to_string(max) + ".";
    }
    return std::unexpected(InvalidParameterValue(FullName(name), *v, expect));
  }
  return std::optional<int64_t>(n);
}

ApiResult<int64_t> QueryParams::GetInt(std::string_view name, int64_t min, int64_t max) const {
  API_ASSIGN_OR_RETURN(std::optional<int64_t> v, GetOptionalInt(name, min, max));
  if (!v) return std::unexpected(MissingParameter(FullName(name)));
  return *v;
}

ApiResult<std::vector<std::string>> QueryParams::GetList(std::string_view prefix) const {
  const std::string dotted = std::string(prefix) + ".";
  std::vector<std::pair<uint64_t, const std::string*>> items;
  for (const auto& [name, value] : entries_) {
    if (!name.starts_with(dotted)) continue;
    const std::optional<uint64_t> index = ParseIndex(std::string_view(name).substr(dotted.size()));
    if (!index) return std::unexpected(BadIndex(FullName(name), FullName(dotted) + "N"));
    items.emplace_back(*index, &value);
  }
  std::sort(items.begin(), items.end());
  std::vector<std::string> out;
  out.reserve(items.size());
  for (const auto& item : items) out.push_back(*item.second);
  return out;
}

ApiResult<std::vector<QueryStructItem>> QueryParams::GetStructList(std::string_view prefix) const {
  const std::string dotted = std::string(prefix) + ".";
  std::map<uint64_t, QueryParams> items;
  for (const auto& [name, value] : entries_) {
    if (!name.starts_with(dotted)) continue;
    const std::string_view rest = std::string_view(name).substr(dotted.size());
    const size_t dot = rest.find('.');
    const std::optional<uint64_t> index =
        dot == std::string_view::npos ? std::nullopt : ParseIndex(rest.substr(0, dot));
    if (!index || dot + 1 == rest.size()) {
      return std::unexpected(BadIndex(FullName(name), FullName(dotted) + "N.<field>"));
    }
    QueryParams& item = items[*index];
    if (item.name_prefix_.empty())
      item.name_prefix_ = FullName(name.substr(0, dotted.size() + dot + 1));
    API_RETURN_IF_ERROR(item.Add(std::string(rest.substr(dot + 1)), value));
  }
  std::vector<QueryStructItem> out;
  out.reserve(items.size());
  for (auto& [index, fields] : items) out.push_back(QueryStructItem{index, std::move(fields)});
  return out;
}

QueryParams QueryParams::GetStruct(std::string_view prefix) const {
  const std::string dotted = std::string(prefix) + ".";
  QueryParams out;
  out.name_prefix_ = FullName(dotted);
  for (const auto& [name, value] : entries_) {
    if (name.starts_with(dotted) && name.size() > dotted.size()) {
      (void)out.Add(name.substr(dotted.size()), value);  // names are unique here already
    }
  }
  return out;
}

ApiStatus QueryParams::RejectUnknown(std::span<const std::string_view> known) const {
  for (const auto& [name, value] : entries_) {
    const bool ok = std::any_of(known.begin(), known.end(), [&](std::string_view k) {
      return k.ends_with('.') ? name.starts_with(k) : name == k;
    });
    if (!ok) {
      return ApiFail(ec2::kUnknownParameter,
                     "The parameter " + FullName(name) + " is not recognized");
    }
  }
  return {};
}

ApiResult<std::vector<QueryFilter>> QueryParams::GetFilters(std::string_view prefix) const {
  static constexpr std::string_view kFields[] = {"Name", "Value."};
  API_ASSIGN_OR_RETURN(std::vector<QueryStructItem> items, GetStructList(prefix));
  std::vector<QueryFilter> out;
  out.reserve(items.size());
  for (const QueryStructItem& item : items) {
    API_RETURN_IF_ERROR(item.fields.RejectUnknown(kFields));
    QueryFilter f;
    API_ASSIGN_OR_RETURN(f.name, item.fields.GetString("Name"));
    API_ASSIGN_OR_RETURN(f.values, item.fields.GetList("Value"));
    out.push_back(std::move(f));
  }
  return out;
}

ApiResult<std::vector<Ec2Tag>> QueryParams::GetTags(std::string_view prefix) const {
  static constexpr std::string_view kFields[] = {"Key", "Value"};
  API_ASSIGN_OR_RETURN(std::vector<QueryStructItem> items, GetStructList(prefix));
  std::vector<Ec2Tag> out;
  out.reserve(items.size());
  for (const QueryStructItem& item : items) {
    API_RETURN_IF_ERROR(item.fields.RejectUnknown(kFields));
    Ec2Tag t;
    API_ASSIGN_OR_RETURN(t.key, item.fields.GetString("Key"));
    t.value = item.fields.GetOptionalString("Value").value_or("");
    out.push_back(std::move(t));
  }
  return out;
}

ApiResult<std::vector<QueryTagSpecification>> QueryParams::GetTagSpecifications(
    std::string_view prefix) const {
  static constexpr std::string_view kFields[] = {"ResourceType", "Tag."};
  API_ASSIGN_OR_RETURN(std::vector<QueryStructItem> items, GetStructList(prefix));
  std::vector<QueryTagSpecification> out;
  out.reserve(items.size());
  for (const QueryStructItem& item : items) {
    API_RETURN_IF_ERROR(item.fields.RejectUnknown(kFields));
    QueryTagSpecification spec;
    API_ASSIGN_OR_RETURN(spec.resource_type, item.fields.GetString("ResourceType"));
    API_ASSIGN_OR_RETURN(spec.tags, item.fields.GetTags("Tag"));
    out.push_back(std::move(spec));
  }
  return out;
}

ApiResult<QueryInstanceSpecification> QueryParams::GetInstanceSpecification(
    std::string_view prefix) const {
  static constexpr std::string_view kFields[] = {"InstanceId", "ExcludeBootVolume",
                                                 "ExcludeDataVolumeId."};
  const QueryParams fields = GetStruct(prefix);
  API_RETURN_IF_ERROR(fields.RejectUnknown(kFields));
  QueryInstanceSpecification spec;
  API_ASSIGN_OR_RETURN(spec.instance_id, fields.GetString("InstanceId"));
  API_ASSIGN_OR_RETURN(std::optional<bool> exclude_boot,
                       fields.GetOptionalBool("ExcludeBootVolume"));
  spec.exclude_boot_volume = exclude_boot.value_or(false);
  API_ASSIGN_OR_RETURN(spec.exclude_data_volume_ids, fields.GetList("ExcludeDataVolumeId"));
  return spec;
}

}  // namespace snapvol::api
