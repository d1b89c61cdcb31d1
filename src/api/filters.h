// EC2 filters and MaxResults/NextToken paging for every Describe* action, from one engine:
// each resource type lists its filter names with how to read their values (FilterField),
// and ResourceMatcher applies them; Paginate pages any list by a key. The rules below were
// written for DescribeSnapshots and hold for every type.
//
// Filters: within one filter the values are OR-ed, separate filters are AND-ed (a filter
// name given twice must match both times). Supported names: tag:<key>, tag-key, status,
// volume-id, owner-id, owner-alias, description, snapshot-id, progress, start-time (matched
// against the ISO-8601 form we send, e.g. 2026-11-26T02:00:00.000Z, so "2026-11-*" works),
// volume-size, encrypted, storage-tier. Every value may use EC2 wildcards: '*' matches any run
// of characters, '?' exactly one character (a Unicode code point); a backslash makes the next
// character literal ("\*" is a literal star). Matching is case-sensitive. For tag:<key> the key
// is matched exactly and the values against that tag's value; tag-key values match tag keys.
// Any other name → InvalidParameterValue "The filter 'x' is invalid".
//
// Paging (EC2 DescribeSnapshots): no MaxResults → every match, no nextToken. MaxResults below
// 5 → InvalidParameterValue; above 1000 → 1000. Results are ordered by snapshot id and
// NextToken is a cursor "after snapshot id X", authenticated with HMAC-SHA256 under a server
// key and bound to a caller-chosen scope (e.g. account id + action), so a client can neither
// forge nor move a token to another account; a bad token → InvalidPaginationToken. Because the
// cursor is an id, not an offset, a walk over the pages returns every snapshot that existed
// for the whole walk exactly once, even when snapshots are added or deleted between pages.
// Thread-safety: ResourceMatcher and PageTokenCodec are immutable; const methods may be called
// from several threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "api/api_error.h"
#include "api/ec2_shapes.h"
#include "api/query_params.h"
#include "core/status.h"

namespace snapvol::api {

inline constexpr int64_t kMinMaxResults = 5;
inline constexpr int64_t kMaxMaxResults = 1000;

// Limits on filter input (snapvol's own; EC2 documents none for snapshots). They bound the
// cost of wildcard matching, which is O(pattern × text) per value in the worst case.
inline constexpr size_t kMaxFilters = 50;
inline constexpr size_t kMaxValuesPerFilter = 200;
inline constexpr size_t kMaxFilterValueBytes = 1024;

// An EC2 filter value pattern with '*', '?' and backslash escapes.
class WildcardPattern {
 public:
  // REQUIRES: pattern is valid UTF-8 (QueryParams guarantees it).
  explicit WildcardPattern(std::string_view pattern);
  // text must be UTF-8; a byte that is not is matched as a single character of its own.
  bool Matches(std::string_view text) const;

 private:
  enum class Kind : uint8_t { kLiteral, kAnyOne, kAnyRun };
  struct Token {
    Kind kind;
    char32_t cp;  // for kLiteral
  };
  std::vector<Token> tokens_;
};

// Filters compiled for one resource type: each names a field of the type's table or is
// tag:KEY (when the type has tags), with at least one value and within the limits above.
// Unknown names → InvalidParameterValue "The filter 'x' is invalid".
class CompiledFilters {
 public:
  static ApiResult<CompiledFilters> Compile(std::span<const QueryFilter> filters,
                                            std::span<const std::string_view> names, bool tag_filters);
  struct Filter {
    int field = -1;       // index into the names given to Compile; -1 for tag:KEY
    std::string tag_key;  // for tag:KEY
    std::vector<WildcardPattern> values;
    // True when any value matches any of texts.
    bool AnyMatches(std::span<const std::string> texts) const;
  };
  const std::vector<Filter>& filters() const { return filters_; }

 private:
  std::vector<Filter> filters_;
};

// One filter name a resource type supports: values() appends the resource's values for it
// (several for a multi-valued field such as an instance's attached volume ids; none means the
// filter cannot match).
template <typename T>
struct FilterField {
  std::string_view name;
  void (*values)(const T& resource, std::vector<std::string>& out);
};

// The filters of one Describe* request over resources of type T. Within one filter the
// values are OR-ed (and a resource's values too: any value matching any pattern), separate
// filters are AND-ed.
template <typename T>
class ResourceMatcher {
 public:
  using TagsOf = const std::vector<Ec2Tag>& (*)(const T&);
  // tags: the resource's tags for tag:KEY filters, or null when the type has none.
  static ApiResult<ResourceMatcher> Create(std::span<const QueryFilter> filters,
                                           std::span<const FilterField<T>> fields, TagsOf tags) {
    std::vector<std::string_view> names;
    for (const auto& f : fields) names.push_back(f.name);
    API_ASSIGN_OR_RETURN(CompiledFilters compiled, CompiledFilters::Compile(filters, names, tags != nullptr));
    return ResourceMatcher(std::move(compiled), fields, tags);
  }
  bool Matches(const T& resource) const {
    std::vector<std::string> texts;
    for (const auto& f : compiled_.filters()) {
      texts.clear();
      if (f.field < 0) {
        for (const auto& t : tags_(resource))
          if (t.key == f.tag_key) texts.push_back(t.value);
      } else {
        fields_[static_cast<size_t>(f.field)].values(resource, texts);
      }
      if (!f.AnyMatches(texts)) return false;
    }
    return true;
  }
  bool empty() const { return compiled_.filters().empty(); }

 private:
  ResourceMatcher(CompiledFilters compiled, std::span<const FilterField<T>> fields, TagsOf tags)
      : compiled_(std::move(compiled)), fields_(fields), tags_(tags) {}
  CompiledFilters compiled_;
  std::span<const FilterField<T>> fields_;  // static tables
  TagsOf tags_;
};

// Keeps the resources that match, in their original order.
template <typename T>
void KeepMatching(std::vector<T>& items, const ResourceMatcher<T>& matcher) {
  if (matcher.empty()) return;
  std::erase_if(items, [&](const T& r) { return !matcher.Matches(r); });
}

// DescribeSnapshots' filters (see the top of this file).
std::span<const FilterField<Ec2Snapshot>> SnapshotFilterFields();
struct SnapshotMatcher {
  static ApiResult<ResourceMatcher<Ec2Snapshot>> Create(std::span<const QueryFilter> filters);
};

// Keeps the snapshots that match every filter, in their original order.
ApiResult<std::vector<Ec2Snapshot>> FilterSnapshots(std::vector<Ec2Snapshot> snapshots,
                                                    std::span<const QueryFilter> filters);

// Issues and checks NextToken values.
class PageTokenCodec {
 public:
  // key: the server's secret, at least 16 bytes (else InvalidArgument); keep it stable across
  // restarts if tokens should survive them.
  static Result<PageTokenCodec> Create(std::span<const uint8_t> key);

  // An opaque URL-safe token meaning "continue after last_id" within scope.
  std::string Encode(std::string_view scope, std::string_view last_id) const;
  // The last_id inside token, if the token is well formed, authentic and issued for scope;
  // otherwise InvalidPaginationToken.
  ApiResult<std::string> Decode(std::string_view scope, std::string_view token) const;

 private:
  explicit PageTokenCodec(std::vector<uint8_t> key) : key_(std::move(key)) {}
  std::vector<uint8_t> key_;
};

struct PageRequest {
  std::optional<int64_t> max_results;  // nullopt = everything after the token
  std::string next_token;              // empty = from the start
};

// EC2's bounds for MaxResults, per action: below min → InvalidParameterValue, above max → max.
struct PageBounds {
  int64_t min = kMinMaxResults;
  int64_t max = kMaxMaxResults;
};

// Reads MaxResults (>= bounds.min; values above bounds.max are clamped later) and NextToken.
ApiResult<PageRequest> ParsePageRequest(const QueryParams& params, PageBounds bounds = {});

// Everything DescribeSnapshots takes, parsed and validated (filters are checked here so a bad
// filter fails before any catalog work). Ownership scoping (Owner.N with "self"), the
// NotFound check for explicit SnapshotId.N and RestorableBy are the handler's job.
struct DescribeSnapshotsRequest {
  std::vector<std::string> snapshot_ids;   // SnapshotId.N
  std::vector<std::string> owner_ids;      // Owner.N: account ids, "self", "amazon"
  std::vector<std::string> restorable_by;  // RestorableBy.N
  std::vector<QueryFilter> filters;        // Filter.N.Name / Filter.N.Value.M
  PageRequest page;                        // MaxResults / NextToken
  bool dry_run = false;                    // DryRun
};
ApiResult<DescribeSnapshotsRequest> ParseDescribeSnapshotsRequest(const QueryParams& params);

template <typename T>
struct Page {
  std::vector<T> items;    // ordered by key
  std::string next_token;  // empty on the last page
};

// Orders items by key() and returns the page the request asks for. The token is a cursor
// "after key X" (see PageTokenCodec), so a walk visits every item that exists for the whole
// walk exactly once.
template <typename T, typename KeyFn>
ApiResult<Page<T>> Paginate(std::vector<T> items, KeyFn key, const PageRequest& request,
                            const PageTokenCodec& codec, std::string_view scope, PageBounds bounds = {}) {
  if (request.max_results && *request.max_results < bounds.min) {
    return std::unexpected(InvalidParameterValue(
        "MaxResults", std::to_string(*request.max_results),
        "Expecting a value greater than or equal to " + std::to_string(bounds.min) + "."));
  }
  std::sort(items.begin(), items.end(), [&](const T& a, const T& b) { return key(a) < key(b); });
  auto begin = items.begin();
  if (!request.next_token.empty()) {
    API_ASSIGN_OR_RETURN(std::string last, codec.Decode(scope, request.next_token));
    begin = std::upper_bound(items.begin(), items.end(), last,
                             [&](const std::string& k, const T& item) { return k < key(item); });
  }
  const size_t remaining = static_cast<size_t>(items.end() - begin);
  size_t take = remaining;
  if (request.max_results) take = std::min(remaining, static_cast<size_t>(std::min(*request.max_results, bounds.max)));
  Page<T> page;
  page.items.assign(std::make_move_iterator(begin), std::make_move_iterator(begin + take));
  if (take < remaining) page.next_token = codec.Encode(scope, key(page.items.back()));
  return page;
}

struct SnapshotPage {
  std::vector<Ec2Snapshot> snapshots;  // ordered by snapshot id
  std::string next_token;              // empty on the last page
};

// Orders snapshots by id and returns the page the request asks for. snapshots are the ones
// matching the request (after FilterSnapshots); the order they come in does not matter.
ApiResult<SnapshotPage> PaginateSnapshots(std::vector<Ec2Snapshot> snapshots,
                                          const PageRequest& request, const PageTokenCodec& codec,
                                          std::string_view scope);

}  // namespace snapvol::api
