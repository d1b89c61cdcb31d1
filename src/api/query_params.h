// Parameters of an EC2 Query API request: parsing an application/x-www-form-urlencoded body
// or a URL query string into ordered name/value pairs, and typed access following EC2's
// conventions (Name.N lists, Name.N.Field structure lists, dotted sub-structures).
//
// Parsing is strict: '%' must be followed by two hex digits, every decoded name and value must
// be well-formed UTF-8, a name may appear only once, and the limits in QueryLimits apply. Every
// failure is an ApiError carrying the EC2 code a client expects (MalformedQueryString,
// MissingParameter, InvalidParameterValue, InvalidParameter, UnknownParameter, ...).
//
// List indexes are decimal integers >= 1 without leading zeros; gaps are allowed and items
// come back in numeric index order (SnapshotId.10 after SnapshotId.2).
// Thread-safety: a QueryParams is immutable after parsing except for Add/Merge; const methods
// may be called from several threads.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/api_error.h"
#include "api/ec2_shapes.h"

namespace snapvol::api {

struct QueryLimits {
  size_t max_input_bytes = 1 << 20;  // whole body or query string, still encoded
  size_t max_params = 10'000;
  size_t max_name_bytes = 256;         // decoded
  size_t max_value_bytes = 64 * 1024;  // decoded; per value
  // REST-JSON APIs (DLM) send a list as the same name repeated (policyIds=a&policyIds=b):
  // keep every pair in entries() instead of refusing the repeat.
  bool allow_repeats = false;
};

// Filter.N.Name / Filter.N.Value.M
struct QueryFilter {
  std::string name;
  std::vector<std::string> values;
  bool operator==(const QueryFilter&) const = default;
};

// TagSpecification.N.ResourceType / TagSpecification.N.Tag.M.Key / .Value
struct QueryTagSpecification {
  std::string resource_type;
  std::vector<Ec2Tag> tags;
  bool operator==(const QueryTagSpecification&) const = default;
};

// InstanceSpecification.InstanceId / .ExcludeBootVolume / .ExcludeDataVolumeId.N
struct QueryInstanceSpecification {
  std::string instance_id;
  bool exclude_boot_volume = false;
  std::vector<std::string> exclude_data_volume_ids;
  bool operator==(const QueryInstanceSpecification&) const = default;
};

// One item of a structure list: Filter.3.Name=x → {index 3, fields {"Name": "x"}}.
struct QueryStructItem;

class QueryParams {
 public:
  QueryParams() = default;

  // Parses an application/x-www-form-urlencoded body ('+' means space).
  static ApiResult<QueryParams> ParseFormBody(std::string_view body,
                                              const QueryLimits& limits = {});
  // Parses the part of a URL after '?'. plus_as_space: treat '+' as space as HTML forms do
  // (AWS SDKs always send %20 and %2B, so either choice accepts what they sign).
  static ApiResult<QueryParams> ParseQueryString(std::string_view query,
                                                 const QueryLimits& limits = {},
                                                 bool plus_as_space = true);

  // Adds one pair, as decoded. A name already present → InvalidParameter.
  ApiStatus Add(std::string name, std::string value);
  // Adds every pair of other (e.g. the URL query string to the body). Duplicates → error.
  ApiStatus Merge(const QueryParams& other);

  // Pairs in the order they appeared.
  const std::vector<std::pair<std::string, std::string>>& entries() const { return entries_; }
  size_t size() const { return entries_.size(); }
  bool empty() const { return entries_.empty(); }
  bool Has(std::string_view name) const { return Find(name) != nullptr; }
  // The value, or nullptr when absent.
  const std::string* Find(std::string_view name) const;

  // Required parameters: absent → MissingParameter ("The request must contain the parameter
  // X"), with X the full dotted name.
  ApiResult<std::string> GetString(std::string_view name) const;
  ApiResult<bool> GetBool(std::string_view name) const;  // exactly "true" or "false"
  // A decimal integer in [min, max]; anything else → InvalidParameterValue.
  ApiResult<int64_t> GetInt(std::string_view name, int64_t min, int64_t max) const;

  // Optional parameters: absent → nullopt; present but malformed → error.
  std::optional<std::string> GetOptionalString(std::string_view name) const;
  ApiResult<std::optional<bool>> GetOptionalBool(std::string_view name) const;
  ApiResult<std::optional<int64_t>> GetOptionalInt(std::string_view name, int64_t min,
                                                   int64_t max) const;

  // Values of prefix.1, prefix.2, ... in index order; empty when none. prefix may itself be
  // dotted ("InstanceSpecification.ExcludeDataVolumeId"). A bad index (prefix.x, prefix.0,
  // prefix.01) or anything after the index (prefix.1.Foo) → InvalidParameter.
  ApiResult<std::vector<std::string>> GetList(std::string_view prefix) const;
  // Items of prefix.N.<field...> in index order, each with its fields as a QueryParams whose
  // names are relative ("Name", "Value.1") and whose errors name the full parameter.
  ApiResult<std::vector<QueryStructItem>> GetStructList(std::string_view prefix) const;
  // The fields of a dotted sub-structure: prefix.<field...>, e.g. "InstanceSpecification".
  QueryParams GetStruct(std::string_view prefix) const;

  // Typed helpers for EC2's common structures. Unknown fields inside an item →
  // UnknownParameter.
  ApiResult<std::vector<QueryFilter>> GetFilters(std::string_view prefix = "Filter") const;
  // prefix.N.Key (required) / prefix.N.Value (optional, default ""), as CreateTags/DeleteTags.
  ApiResult<std::vector<Ec2Tag>> GetTags(std::string_view prefix = "Tag") const;
  ApiResult<std::vector<QueryTagSpecification>> GetTagSpecifications(
      std::string_view prefix = "TagSpecification") const;
  // Required: InstanceSpecification.InstanceId.
  ApiResult<QueryInstanceSpecification> GetInstanceSpecification(
      std::string_view prefix = "InstanceSpecification") const;

  // Rejects any parameter the action does not define: each known entry matches a name equal
  // to it, or, when it ends with '.', every name starting with it ("SnapshotId." covers
  // SnapshotId.1). Otherwise → UnknownParameter "The parameter X is not recognized".
  ApiStatus RejectUnknown(std::span<const std::string_view> known) const;

  // The full name of a relative one, for messages ("Filter.2." + "Name").
  std::string FullName(std::string_view name) const { return name_prefix_ + std::string(name); }

 private:
  static ApiResult<QueryParams> Parse(std::string_view input, const QueryLimits& limits,
                                      bool plus_as_space);

  std::string name_prefix_;  // for error messages of a sub-structure, e.g. "Filter.2."
  std::vector<std::pair<std::string, std::string>> entries_;
  std::map<std::string, size_t, std::less<>> index_;  // name → position in entries_
};

struct QueryStructItem {
  uint64_t index = 0;
  QueryParams fields;
};

}  // namespace snapvol::api
