// SigV4's building blocks (iam/sigv4.h, namespace sigv4): URI encoding and decoding, the
// canonical URI, headers and request, the date formats, and the signature itself.
#include <algorithm>
#include <cstdio>
#include <string>

#include "iam/sigv4.h"
#include "iam/sigv4_text.h"

namespace snapvol::iam {

using sigv4_text::DaysFromCivil;
using sigv4_text::HexSha256;
using sigv4_text::HexValue;
using sigv4_text::IsDigits;
using sigv4_text::JoinSemicolon;
using sigv4_text::kWhitespace;
using sigv4_text::ParseInt;
using sigv4_text::ParseQuery;
using sigv4_text::QueryParam;
using sigv4_text::Split;
using sigv4_text::Trim;

namespace sigv4 {

std::string UriEncode(std::string_view s, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '_' || c == '.' || c == '~';
    if (unreserved || (keep_slash && c == '/')) {
      out += ch;
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

Result<std::string> PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    int hi = -1, lo = -1;
    if (i + 2 < s.size()) {
      hi = HexValue(s[i + 1]);
      lo = HexValue(s[i + 2]);
    }
    if (hi < 0 || lo < 0)
      return InvalidArgument("bad percent-encoding in '" + std::string(s) + "'");
    out += static_cast<char>(hi << 4 | lo);
    i += 2;
  }
  return out;
}

std::string NormalizePath(std::string_view path) {
  if (path.empty()) return "/";
  std::vector<std::string_view> kept;
  for (std::string_view seg : Split(path, '/')) {
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") {
      if (!kept.empty()) kept.pop_back();
      continue;
    }
    kept.push_back(seg);
  }
  std::string out = path.front() == '/' ? "/" : "";
  for (size_t i = 0; i < kept.size(); ++i) {
    if (i > 0) out += '/';
    out += kept[i];
  }
  if (path.back() == '/' && !kept.empty()) out += '/';
  if (out.empty()) out = "/";
  return out;
}

Result<std::string> CanonicalUri(std::string_view raw_path, bool s3_mode) {
  if (!s3_mode) return UriEncode(NormalizePath(raw_path), /*keep_slash=*/true);
  if (raw_path.empty()) return std::string("/");
  // Segment by segment, so an escaped "%2F" inside a key stays escaped.
  std::string out;
  std::vector<std::string_view> segments = Split(raw_path, '/');
  for (size_t i = 0; i < segments.size(); ++i) {
    if (i > 0) out += '/';
    ASSIGN_OR_RETURN(std::string decoded, PercentDecode(segments[i]));
    out += UriEncode(decoded, /*keep_slash=*/false);
  }
  return out;
}

Result<std::string> CanonicalQueryString(std::string_view raw_query,
                                         const std::vector<std::string_view>& exclude) {
  ASSIGN_OR_RETURN(std::vector<QueryParam> params, ParseQuery(raw_query));
  std::vector<std::pair<std::string, std::string>> encoded;
  encoded.reserve(params.size());
  for (const QueryParam& p : params) {
    if (std::find(exclude.begin(), exclude.end(), p.name) != exclude.end()) continue;
    encoded.emplace_back(UriEncode(p.name, false), UriEncode(p.value, false));
  }
  std::sort(encoded.begin(), encoded.end());
  std::string out;
  for (const auto& [name, value] : encoded) {
    if (!out.empty()) out += '&';
    out += name;
    out += '=';
    out += value;
  }
  return out;
}

std::string CanonicalHeaderValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  bool pending_space = false;
  for (char c : Trim(value)) {
    if (kWhitespace.find(c) != std::string_view::npos) {
      pending_space = true;
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += c;
  }
  return out;
}

Result<std::string> CanonicalHeaders(const HeaderMap& headers,
                                     const std::vector<std::string>& signed_headers) {
  std::string out;
  for (const std::string& name : signed_headers) {
    auto [first, last] = headers.equal_range(name);
    if (first == last) return NotFound("signed header '" + name + "' is not in the request");
    out += name;
    out += ':';
    for (auto it = first; it != last; ++it) {
      if (it != first) out += ',';
      out += CanonicalHeaderValue(it->second);
    }
    out += '\n';
  }
  return out;
}

Result<std::string> CanonicalRequest(const CanonicalRequestInput& in) {
  ASSIGN_OR_RETURN(std::string uri, CanonicalUri(in.raw_path, in.s3_mode));
  ASSIGN_OR_RETURN(std::string query, CanonicalQueryString(in.raw_query, in.exclude_query));
  ASSIGN_OR_RETURN(std::string headers, CanonicalHeaders(in.headers, in.signed_headers));
  std::string out;
  out.reserve(256 + uri.size() + query.size() + headers.size());
  out.append(in.method).append("\n");
  out.append(uri).append("\n");
  out.append(query).append("\n");
  out.append(headers).append("\n");
  out.append(JoinSemicolon(in.signed_headers)).append("\n");
  out.append(in.payload_hash);
  return out;
}

std::string FormatAmzDate(int64_t millis) {
  int64_t secs = millis >= 0 ? millis / 1000 : (millis - 999) / 1000;
  int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
  int64_t rem = secs - days * 86400;
  // civil_from_days
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const int64_t doe = days - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  const int64_t d = doy - (153 * mp + 2) / 5 + 1;
  const int64_t m = mp < 10 ? mp + 3 : mp - 9;
  const int64_t y = yoe + era * 400 + (m <= 2);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04lld%02lld%02lldT%02lld%02lld%02lldZ",
                static_cast<long long>(y), static_cast<long long>(m), static_cast<long long>(d),
                static_cast<long long>(rem / 3600), static_cast<long long>(rem / 60 % 60),
                static_cast<long long>(rem % 60));
  return buf;
}

std::optional<int64_t> ParseAmzDate(std::string_view s) {
  if (s.size() != 16 || s[8] != 'T' || s[15] != 'Z' || !IsDigits(s.substr(0, 8)) ||
      !IsDigits(s.substr(9, 6))) {
    return std::nullopt;
  }
  int y = ParseInt(s.substr(0, 4)), mo = ParseInt(s.substr(4, 2)), d = ParseInt(s.substr(6, 2));
  int h = ParseInt(s.substr(9, 2)), mi = ParseInt(s.substr(11, 2)), se = ParseInt(s.substr(13, 2));
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 59) return std::nullopt;
  int64_t ms = ((DaysFromCivil(y, mo, d) * 24 + h) * 60 + mi) * 60 * 1000 + se * 1000LL;
  if (FormatAmzDate(ms) != s) return std::nullopt;  // e.g. 30 February
  return ms;
}

std::optional<int64_t> ParseHttpDate(std::string_view s) {
  // "Sun, 30 Aug 2015 12:36:00 GMT"
  static constexpr std::array<std::string_view, 12> kMonths = {
      "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  if (s.size() != 29 || s.substr(3, 2) != ", " || s[7] != ' ' || s[11] != ' ' || s[16] != ' ' ||
      s[19] != ':' || s[22] != ':' || s.substr(25) != " GMT") {
    return std::nullopt;
  }
  auto month = std::find(kMonths.begin(), kMonths.end(), s.substr(8, 3));
  if (month == kMonths.end()) return std::nullopt;
  std::string iso = std::string(s.substr(12, 4));
  char mm[16];
  std::snprintf(mm, sizeof mm, "%02d", static_cast<int>(month - kMonths.begin()) + 1);
  iso += mm;
  iso += s.substr(5, 2);
  iso += 'T';
  iso += s.substr(17, 2);
  iso += s.substr(20, 2);
  iso += s.substr(23, 2);
  iso += 'Z';
  return ParseAmzDate(iso);
}

std::string CredentialScope(std::string_view date, std::string_view region,
                            std::string_view service) {
  std::string out(date);
  out.append("/").append(region).append("/").append(service).append("/aws4_request");
  return out;
}

std::string StringToSign(std::string_view amz_date, std::string_view scope,
                         std::string_view canonical_request) {
  std::string out(kAlgorithm);
  out.append("\n").append(amz_date).append("\n").append(scope).append("\n");
  out.append(HexSha256(canonical_request));
  return out;
}

Digest SigningKey(std::string_view secret, std::string_view date, std::string_view region,
                  std::string_view service) {
  std::string k0 = "AWS4" + std::string(secret);
  Digest k = HmacSha256(AsBytes(k0), AsBytes(date));
  k = HmacSha256(k, AsBytes(region));
  k = HmacSha256(k, AsBytes(service));
  return HmacSha256(k, AsBytes("aws4_request"));
}

std::string Signature(const Digest& signing_key, std::string_view string_to_sign) {
  return ToHex(HmacSha256(signing_key, AsBytes(string_to_sign)));
}

}  // namespace sigv4
}  // namespace snapvol::iam
