#include "api/filters.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <limits>

#include "api/utf8.h"
#include "core/clock.h"
#include "core/hash.h"

namespace snapvol::api {
namespace {

constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string Base64UrlEncode(std::span<const uint8_t> in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = uint32_t{in[i]} << 16 | uint32_t{in[i + 1]} << 8 | in[i + 2];
    for (int s = 18; s >= 0; s -= 6) out.push_back(kBase64Url[(v >> s) & 63]);
  }
  if (in.size() - i == 1) {
    const uint32_t v = uint32_t{in[i]} << 16;
    out.push_back(kBase64Url[(v >> 18) & 63]);
    out.push_back(kBase64Url[(v >> 12) & 63]);
  } else if (in.size() - i == 2) {
    const uint32_t v = uint32_t{in[i]} << 16 | uint32_t{in[i + 1]} << 8;
    out.push_back(kBase64Url[(v >> 18) & 63]);
    out.push_back(kBase64Url[(v >> 12) & 63]);
    out.push_back(kBase64Url[(v >> 6) & 63]);
  }
  return out;
}

int Base64UrlValue(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

// Strict: only the URL-safe alphabet, no padding, and unused trailing bits must be zero, so
// every byte string has exactly one encoding.
std::optional<std::vector<uint8_t>> Base64UrlDecode(std::string_view in) {
  if (in.size() % 4 == 1) return std::nullopt;
  std::vector<uint8_t> out;
  out.reserve(in.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : in) {
    const int v = Base64UrlValue(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<uint8_t>(acc >> bits));
      acc &= (1u << bits) - 1;
    }
  }
  if (acc != 0) return std::nullopt;
  return out;
}

constexpr uint8_t kTokenVersion = 1;
constexpr size_t kTokenMacBytes = 16;
constexpr size_t kMaxTokenChars = 1024;
constexpr std::string_view kTokenLabel = "snapvol DescribeSnapshots NextToken v1";

// What the MAC covers: a label, the scope with its length, then the id (which runs to the
// end, so no two (scope, id) pairs share an encoding).
std::vector<uint8_t> MacInput(std::string_view scope, std::string_view last_id) {
  std::vector<uint8_t> in(kTokenLabel.begin(), kTokenLabel.end());
  const uint64_t n = scope.size();
  for (int i = 0; i < 8; ++i) in.push_back(static_cast<uint8_t>(n >> (8 * i)));
  in.insert(in.end(), scope.begin(), scope.end());
  in.insert(in.end(), last_id.begin(), last_id.end());
  return in;
}

ApiError BadToken() {
  return MakeApiError(ec2::kInvalidPaginationToken,
                      "The specified pagination token is not valid or is expired.");
}

// Text as code points; a byte that is not well-formed UTF-8 becomes a value no pattern
// literal can equal (above U+10FFFF), so it matches only '?' or '*'.
std::vector<char32_t> CodePoints(std::string_view text) {
  std::vector<char32_t> out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    char32_t cp;
    const size_t n = DecodeUtf8(text, i, &cp);
    if (n == 0) {
      out.push_back(0x110000 + static_cast<uint8_t>(text[i]));
      ++i;
    } else {
      out.push_back(cp);
      i += n;
    }
  }
  return out;
}

}  // namespace

// ---- WildcardPattern ----

WildcardPattern::WildcardPattern(std::string_view pattern) {
  const std::vector<char32_t> cps = CodePoints(pattern);
  for (size_t i = 0; i < cps.size(); ++i) {
    const char32_t c = cps[i];
    if (c == U'\\' && i + 1 < cps.size()) {
      tokens_.push_back({Kind::kLiteral, cps[++i]});
    } else if (c == U'*') {
      if (tokens_.empty() || tokens_.back().kind != Kind::kAnyRun) {
        tokens_.push_back({Kind::kAnyRun, 0});
      }
    } else if (c == U'?') {
      tokens_.push_back({Kind::kAnyOne, 0});
    } else {
      tokens_.push_back({Kind::kLiteral, c});  // includes a trailing lone backslash
    }
  }
}

bool WildcardPattern::Matches(std::string_view text_utf8) const {
  const std::vector<char32_t> text = CodePoints(text_utf8);
  const size_t m = tokens_.size();
  size_t p = 0, t = 0;
  size_t star = SIZE_MAX, resume = 0;  // last '*' seen and where its run would next end
  while (t < text.size()) {
    if (p < m && (tokens_[p].kind == Kind::kAnyOne ||
                  (tokens_[p].kind == Kind::kLiteral && tokens_[p].cp == text[t]))) {
      ++p;
      ++t;
    } else if (p < m && tokens_[p].kind == Kind::kAnyRun) {
      star = p++;
      resume = t;
    } else if (star != SIZE_MAX) {
      p = star + 1;  // let the last '*' swallow one more character and retry
      t = ++resume;
    } else {
      return false;
    }
  }
  while (p < m && tokens_[p].kind == Kind::kAnyRun) ++p;
  return p == m;
}

// ---- CompiledFilters ----

ApiResult<CompiledFilters> CompiledFilters::Compile(std::span<const QueryFilter> filters,
                                                    std::span<const std::string_view> names, bool tag_filters) {
  if (filters.size() > kMaxFilters) {
    return ApiFail(ec2::kInvalidParameterValue,
                   "Too many filters: " + std::to_string(filters.size()) + "; the limit is " +
                       std::to_string(kMaxFilters));
  }
  CompiledFilters out;
  for (const QueryFilter& f : filters) {
    Filter c;
    if (tag_filters && f.name.starts_with("tag:") && f.name.size() > 4) {
      c.tag_key = f.name.substr(4);
    } else {
      const auto it = std::find(names.begin(), names.end(), f.name);
      if (it == names.end())
        return ApiFail(ec2::kInvalidParameterValue, "The filter '" + QuoteForMessage(f.name) + "' is invalid");
      c.field = static_cast<int>(it - names.begin());
    }
    if (f.values.empty()) {
      return ApiFail(ec2::kInvalidParameterValue,
                     "The filter '" + QuoteForMessage(f.name) + "' requires at least one value");
    }
    if (f.values.size() > kMaxValuesPerFilter) {
      return ApiFail(ec2::kInvalidParameterValue, "The filter '" + QuoteForMessage(f.name) +
                                                      "' has " + std::to_string(f.values.size()) +
                                                      " values; the limit is " +
                                                      std::to_string(kMaxValuesPerFilter));
    }
    for (const std::string& v : f.values) {
      if (v.size() > kMaxFilterValueBytes) {
        return ApiFail(ec2::kInvalidParameterValue,
                       "A value of filter '" + QuoteForMessage(f.name) + "' is longer than " +
                           std::to_string(kMaxFilterValueBytes) + " bytes");
      }
      c.values.emplace_back(v);
    }
    out.filters_.push_back(std::move(c));
  }
  return out;
}

bool CompiledFilters::Filter::AnyMatches(std::span<const std::string> texts) const {
  for (const auto& text : texts)
    for (const auto& p : values)
      if (p.Matches(text)) return true;
  return false;
}

// ---- DescribeSnapshots' filters ----

namespace {
using Out = std::vector<std::string>;
constexpr FilterField<Ec2Snapshot> kSnapshotFields[] = {
    {"tag-key", [](const Ec2Snapshot& s, Out& o) { for (const auto& t : s.tags) o.push_back(t.key); }},
    {"status", [](const Ec2Snapshot& s, Out& o) { o.push_back(s.state); }},
    {"volume-id", [](const Ec2Snapshot& s, Out& o) { o.push_back(s.volume_id); }},
    {"owner-id", [](const Ec2Snapshot& s, Out& o) { o.push_back(s.owner_id); }},
    {"owner-alias", [](const Ec2Snapshot& s, Out& o) { o.push_back(s.owner_alias); }},
    {"description", [](const Ec2Snapshot& s, Out& o) { o.push_back(s.description); }},
    {"snapshot-id", [](const Ec2Snapshot& s, Out& o) { o.push_back(s.snapshot_id); }},
    {"progress", [](const Ec2Snapshot& s, Out& o) { o.push_back(s.progress); }},
    {"start-time", [](const Ec2Snapshot& s, Out& o) { o.push_back(FormatIso8601(s.start_time_ms)); }},
    {"volume-size", [](const Ec2Snapshot& s, Out& o) { o.push_back(std::to_string(s.volume_size_gib)); }},
    {"encrypted", [](const Ec2Snapshot& s, Out& o) { o.push_back(s.encrypted ? "true" : "false"); }},
    {"storage-tier", [](const Ec2Snapshot& s, Out& o) { o.push_back(s.storage_tier); }},
};
const std::vector<Ec2Tag>& SnapshotTags(const Ec2Snapshot& s) { return s.tags; }
}  // namespace

std::span<const FilterField<Ec2Snapshot>> SnapshotFilterFields() { return kSnapshotFields; }

ApiResult<ResourceMatcher<Ec2Snapshot>> SnapshotMatcher::Create(std::span<const QueryFilter> filters) {
  return ResourceMatcher<Ec2Snapshot>::Create(filters, kSnapshotFields, &SnapshotTags);
}

ApiResult<std::vector<Ec2Snapshot>> FilterSnapshots(std::vector<Ec2Snapshot> snapshots,
                                                    std::span<const QueryFilter> filters) {
  API_ASSIGN_OR_RETURN(auto matcher, SnapshotMatcher::Create(filters));
  KeepMatching(snapshots, matcher);
  return snapshots;
}

// ---- Paging ----

Result<PageTokenCodec> PageTokenCodec::Create(std::span<const uint8_t> key) {
  if (key.size() < 16) {
    return InvalidArgument("page token key must be at least 16 bytes, got " +
                           std::to_string(key.size()));
  }
  return PageTokenCodec(std::vector<uint8_t>(key.begin(), key.end()));
}

std::string PageTokenCodec::Encode(std::string_view scope, std::string_view last_id) const {
  const Digest mac = HmacSha256(key_, MacInput(scope, last_id));
  std::vector<uint8_t> raw;
  raw.reserve(1 + kTokenMacBytes + last_id.size());
  raw.push_back(kTokenVersion);
  raw.insert(raw.end(), mac.begin(), mac.begin() + kTokenMacBytes);
  raw.insert(raw.end(), last_id.begin(), last_id.end());
  return Base64UrlEncode(raw);
}

ApiResult<std::string> PageTokenCodec::Decode(std::string_view scope,
                                              std::string_view token) const {
  if (token.size() > kMaxTokenChars) return std::unexpected(BadToken());
  const std::optional<std::vector<uint8_t>> raw = Base64UrlDecode(token);
  if (!raw || raw->size() < 1 + kTokenMacBytes + 1 || (*raw)[0] != kTokenVersion) {
    return std::unexpected(BadToken());
  }
  const std::string last_id(raw->begin() + 1 + kTokenMacBytes, raw->end());
  const Digest mac = HmacSha256(key_, MacInput(scope, last_id));
  const std::span<const uint8_t> got(raw->data() + 1, kTokenMacBytes);
  if (!ConstantTimeEqual(got, std::span<const uint8_t>(mac.data(), kTokenMacBytes))) {
    return std::unexpected(BadToken());
  }
  return last_id;
}

ApiResult<PageRequest> ParsePageRequest(const QueryParams& params, PageBounds bounds) {
  PageRequest req;
  API_ASSIGN_OR_RETURN(req.max_results, params.GetOptionalInt("MaxResults", bounds.min,
                                                              std::numeric_limits<int64_t>::max()));
  req.next_token = params.GetOptionalString("NextToken").value_or("");
  return req;
}

ApiResult<DescribeSnapshotsRequest> ParseDescribeSnapshotsRequest(const QueryParams& params) {
  DescribeSnapshotsRequest req;
  API_ASSIGN_OR_RETURN(req.snapshot_ids, params.GetList("SnapshotId"));
  API_ASSIGN_OR_RETURN(req.owner_ids, params.GetList("Owner"));
  API_ASSIGN_OR_RETURN(req.restorable_by, params.GetList("RestorableBy"));
  API_ASSIGN_OR_RETURN(req.filters, params.GetFilters("Filter"));
  API_RETURN_IF_ERROR(SnapshotMatcher::Create(req.filters));
  API_ASSIGN_OR_RETURN(req.page, ParsePageRequest(params));
  API_ASSIGN_OR_RETURN(std::optional<bool> dry_run, params.GetOptionalBool("DryRun"));
  req.dry_run = dry_run.value_or(false);
  return req;
}

ApiResult<SnapshotPage> PaginateSnapshots(std::vector<Ec2Snapshot> snapshots,
                                          const PageRequest& request, const PageTokenCodec& codec,
                                          std::string_view scope) {
  API_ASSIGN_OR_RETURN(auto page, Paginate(std::move(snapshots), [](const Ec2Snapshot& s) -> const std::string& {
    return s.snapshot_id;
  }, request, codec, scope));
  return SnapshotPage{std::move(page.items), std::move(page.next_token)};
}

}  // namespace snapvol::api
