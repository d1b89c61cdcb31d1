// DescribeSnapshots semantics over snapshots the caller may see: EC2 filters and
// MaxResults/NextToken paging.
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
// Thread-safety: SnapshotMatcher and PageTokenCodec are immutable; const methods may be called
// from several threads.
#pragma once

#include <cstdint>
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

class SnapshotMatcher {
 public:
  // Validates and compiles filters. No filters → matches everything.
  static ApiResult<SnapshotMatcher> Create(std::span<const QueryFilter> filters);
  bool Matches(const Ec2Snapshot& snapshot) const;

 private:
  enum class Field : uint8_t {
    kTag,
    kTagKey,
    kStatus,
    kVolumeId,
    kOwnerId,
    kOwnerAlias,
    kDescription,
    kSnapshotId,
    kProgress,
    kStartTime,
    kVolumeSize,
    kEncrypted,
    kStorageTier
  };
  struct Compiled {
    Field field;
    std::string tag_key;  // for kTag
    std::vector<WildcardPattern> values;
  };
  bool MatchesOne(const Compiled& filter, const Ec2Snapshot& snapshot) const;

  std::vector<Compiled> filters_;
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

inline constexpr int64_t kMinMaxResults = 5;
inline constexpr int64_t kMaxMaxResults = 1000;

struct PageRequest {
  std::optional<int64_t> max_results;  // nullopt = everything after the token
  std::string next_token;              // empty = from the start
};

// Reads MaxResults (>= 5; values above 1000 are clamped later) and NextToken.
ApiResult<PageRequest> ParsePageRequest(const QueryParams& params);

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
