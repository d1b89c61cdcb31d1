#include "iam/sigv4.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <utility>
#include <variant>

#include "iam/sigv4_text.h"

namespace snapvol::iam {
namespace {

using sigv4_text::HexSha256;
using sigv4_text::IsDigits;
using sigv4_text::JoinSemicolon;
using sigv4_text::kWhitespace;
using sigv4_text::Split;
using sigv4_text::Trim;
using sigv4_text::ParseQuery;
using sigv4_text::QueryParam;

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = Lower(c);
  return out;
}

bool IsLowerHex64(std::string_view s) {
  return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

bool IsExcludedFromSigning(std::string_view lower_name) {
  return lower_name == "authorization" || lower_name == "user-agent" || lower_name == "expect" ||
         lower_name == "x-amzn-trace-id";
}

void SetHeader(HeaderMap* headers, std::string_view name, std::string value) {
  auto range = headers->equal_range(name);
  headers->erase(range.first, range.second);
  headers->emplace(std::string(name), std::move(value));
}

// ------------------------------------------------------------------------------------------
// Verification helpers

// RETURN_IF_ERROR for AuthResult (whose error is an AuthError, not an Error).
#define AUTH_RETURN_IF_ERROR(expr)                                      \
  do {                                                                  \
    auto _auth_st = (expr);                                             \
    if (!_auth_st) return std::unexpected<AuthError>(_auth_st.error()); \
  } while (0)

std::unexpected<AuthError> Fail(AuthCode code, std::string message, std::string detail = "") {
  if (detail.empty()) detail = message;
  return std::unexpected<AuthError>(AuthError{code, std::move(message), std::move(detail)});
}

constexpr char kBadCredentials[] = "AWS was not able to validate the provided access credentials";
constexpr char kSignatureMismatch[] =
    "The request signature we calculated does not match the signature you provided. Check your "
    "AWS Secret Access Key and signing method.";

// Everything taken from the request's signature, in either form.
struct ParsedAuth {
  bool presigned = false;
  std::string access_key_id;
  std::string scope_date, scope_region, scope_service, scope_terminator;
  std::vector<std::string> signed_headers;
  std::string signature;
  std::string amz_date;  // ISO basic, as used in the string to sign
  int64_t time_ms = 0;
  int64_t expires_s = 0;  // presigned only
};

AuthResult<std::monostate> ParseCredential(std::string_view credential, ParsedAuth* out) {
  std::vector<std::string_view> parts = Split(credential, '/');
  if (parts.size() != 5 ||
      std::any_of(parts.begin(), parts.end(), [](std::string_view p) { return p.empty(); })) {
    return Fail(AuthCode::kIncompleteSignature,
                "Credential must have the form <key>/<date>/<region>/<service>/aws4_request",
                "malformed credential '" + std::string(credential) + "'");
  }
  out->access_key_id = parts[0];
  out->scope_date = parts[1];
  out->scope_region = parts[2];
  out->scope_service = parts[3];
  out->scope_terminator = parts[4];
  return std::monostate{};
}

AuthResult<std::monostate> ParseSignedHeaders(std::string_view list, ParsedAuth* out) {
  std::vector<std::string_view> names = Split(list, ';');
  if (names.size() > kMaxSignedHeaders)
    return Fail(AuthCode::kIncompleteSignature, "SignedHeaders lists too many headers");
  for (size_t i = 0; i < names.size(); ++i) {
    std::string_view n = names[i];
    bool lower = std::none_of(n.begin(), n.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
    if (n.empty() || !lower || (i > 0 && !(names[i - 1] < n))) {
      return Fail(AuthCode::kIncompleteSignature,
                  "SignedHeaders must be lower-case header names, sorted, each once",
                  "bad SignedHeaders '" + std::string(list) + "'");
    }
    out->signed_headers.emplace_back(n);
  }
  if (!std::binary_search(out->signed_headers.begin(), out->signed_headers.end(), "host")) {
    return Fail(AuthCode::kAuthFailure, "'Host' must be a signed header",
                "host missing from SignedHeaders '" + std::string(list) + "'");
  }
  return std::monostate{};
}

bool IsSigned(const ParsedAuth& auth, std::string_view name) {
  return std::binary_search(auth.signed_headers.begin(), auth.signed_headers.end(), name);
}

// Returns the only value of a header, nullopt if absent; an error if it repeats.
AuthResult<std::optional<std::string_view>> SingleHeader(const HeaderMap& headers,
                                                         std::string_view name) {
  auto [first, last] = headers.equal_range(name);
  if (first == last) return std::optional<std::string_view>();
  if (std::next(first) != last)
    return Fail(AuthCode::kIncompleteSignature, "the " + std::string(name) + " header repeats");
  return std::optional<std::string_view>(first->second);
}

AuthResult<ParsedAuth> ParseAuthorizationHeader(std::string_view value, const HeaderMap& headers) {
  if (value.size() > kMaxAuthorizationHeaderBytes) {
    return Fail(AuthCode::kIncompleteSignature, "the Authorization header is too long",
                "Authorization header of " + std::to_string(value.size()) + " bytes");
  }
  value = Trim(value);
  if (value.substr(0, sigv4::kAlgorithm.size()) != sigv4::kAlgorithm ||
      value.size() == sigv4::kAlgorithm.size() ||
      kWhitespace.find(value[sigv4::kAlgorithm.size()]) == std::string_view::npos) {
    return Fail(AuthCode::kIncompleteSignature,
                "the Authorization header must use the AWS4-HMAC-SHA256 algorithm");
  }
  std::optional<std::string_view> credential, signed_headers, signature;
  for (std::string_view part : Split(value.substr(sigv4::kAlgorithm.size()), ',')) {
    part = Trim(part);
    size_t eq = part.find('=');
    std::string_view key = part.substr(0, eq);
    std::optional<std::string_view>* slot = key == "Credential"      ? &credential
                                            : key == "SignedHeaders" ? &signed_headers
                                            : key == "Signature"     ? &signature
                                                                     : nullptr;
    if (eq == std::string_view::npos || slot == nullptr || slot->has_value()) {
      return Fail(AuthCode::kIncompleteSignature,
                  "the Authorization header has an unknown, repeated or malformed part",
                  "bad Authorization part '" + std::string(part) + "'");
    }
    *slot = part.substr(eq + 1);
  }
  for (auto [slot, name] :
       {std::pair{&credential, "Credential"}, std::pair{&signed_headers, "SignedHeaders"},
        std::pair{&signature, "Signature"}}) {
    if (!slot->has_value()) {
      return Fail(AuthCode::kIncompleteSignature,
                  std::string("Authorization header requires '") + name + "' parameter");
    }
  }
  ParsedAuth auth;
  AUTH_RETURN_IF_ERROR(ParseCredential(*credential, &auth));
  AUTH_RETURN_IF_ERROR(ParseSignedHeaders(*signed_headers, &auth));
  auth.signature = *signature;

  auto amz_date_header = SingleHeader(headers, "x-amz-date");
  if (!amz_date_header) return std::unexpected(amz_date_header.error());
  std::optional<std::string_view> amz_date = *amz_date_header;
  if (amz_date) {
    std::optional<int64_t> t = sigv4::ParseAmzDate(Trim(*amz_date));
    if (!t) return Fail(AuthCode::kIncompleteSignature, "X-Amz-Date is not yyyyMMddTHHmmssZ");
    if (!IsSigned(auth, "x-amz-date"))
      return Fail(AuthCode::kAuthFailure, "X-Amz-Date must be a signed header");
    auth.time_ms = *t;
  } else {
    auto date_header = SingleHeader(headers, "date");
    if (!date_header) return std::unexpected(date_header.error());
    std::optional<std::string_view> date = *date_header;
    if (!date) {
      return Fail(AuthCode::kIncompleteSignature,
                  "a signed request needs an X-Amz-Date or Date header");
    }
    std::optional<int64_t> t = sigv4::ParseHttpDate(Trim(*date));
    if (!t) return Fail(AuthCode::kIncompleteSignature, "the Date header is not an RFC 1123 date");
    if (!IsSigned(auth, "date"))
      return Fail(AuthCode::kAuthFailure, "the Date header must be signed");
    auth.time_ms = *t;
  }
  auth.amz_date = sigv4::FormatAmzDate(auth.time_ms);
  return auth;
}

AuthResult<ParsedAuth> ParsePresigned(const std::vector<QueryParam>& params) {
  constexpr std::array<std::string_view, 6> kNames = {"X-Amz-Algorithm",     "X-Amz-Credential",
                                                      "X-Amz-Date",          "X-Amz-Expires",
                                                      "X-Amz-SignedHeaders", "X-Amz-Signature"};
  std::array<const std::string*, 6> found{};
  for (const QueryParam& p : params) {
    for (size_t i = 0; i < kNames.size(); ++i) {
      if (p.name != kNames[i]) continue;
      if (found[i] != nullptr) {
        return Fail(AuthCode::kIncompleteSignature,
                    "the query parameter " + std::string(kNames[i]) + " repeats");
      }
      found[i] = &p.value;
    }
  }
  for (size_t i = 0; i < kNames.size(); ++i) {
    if (found[i] == nullptr) {
      return Fail(AuthCode::kIncompleteSignature,
                  "a presigned request requires the " + std::string(kNames[i]) + " parameter");
    }
  }
  if (*found[0] != sigv4::kAlgorithm)
    return Fail(AuthCode::kIncompleteSignature, "X-Amz-Algorithm must be AWS4-HMAC-SHA256");
  ParsedAuth auth;
  auth.presigned = true;
  AUTH_RETURN_IF_ERROR(ParseCredential(*found[1], &auth));
  std::optional<int64_t> t = sigv4::ParseAmzDate(*found[2]);
  if (!t) return Fail(AuthCode::kIncompleteSignature, "X-Amz-Date is not yyyyMMddTHHmmssZ");
  auth.time_ms = *t;
  auth.amz_date = *found[2];
  const std::string& expires = *found[3];
  if (!IsDigits(expires) || expires.size() > 7 || std::stoll(expires) < 1 ||
      std::stoll(expires) > kMaxPresignExpiresSeconds) {
    return Fail(AuthCode::kIncompleteSignature,
                "X-Amz-Expires must be a number of seconds from 1 to 604800 (7 days)");
  }
  auth.expires_s = std::stoll(expires);
  AUTH_RETURN_IF_ERROR(ParseSignedHeaders(*found[4], &auth));
  auth.signature = *found[5];
  return auth;
}

}  // namespace

// --------------------------------------------------------------------------------------------

bool CaseInsensitiveLess::operator()(std::string_view a, std::string_view b) const {
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    char x = Lower(a[i]), y = Lower(b[i]);
    if (x != y) return static_cast<unsigned char>(x) < static_cast<unsigned char>(y);
  }
  return a.size() < b.size();
}

const char* AuthCodeName(AuthCode code) {
  switch (code) {
    case AuthCode::kAuthFailure:
      return "AuthFailure";
    case AuthCode::kRequestExpired:
      return "RequestExpired";
    case AuthCode::kIncompleteSignature:
      return "IncompleteSignature";
    case AuthCode::kMissingAuthenticationToken:
      return "MissingAuthenticationToken";
    case AuthCode::kInternalError:
      return "InternalError";
  }
  return "InternalError";
}

Error AuthError::ToError() const {
  return Error(error_code, std::string(AuthCodeName(code)) + ": " + message, retryable);
}

SigV4Verifier::SigV4Verifier(VerifierOptions options, SecretLookup lookup, const Clock* clock)
    : options_(std::move(options)), lookup_(std::move(lookup)), clock_(clock) {}

AuthResult<VerifiedIdentity> SigV4Verifier::Verify(const HttpRequestView& request) const {
  return Verify(request, lookup_);
}

AuthResult<VerifiedIdentity> SigV4Verifier::Verify(const HttpRequestView& request, const SecretLookup& lookup) const {
  const HeaderMap& headers = request.headers;
  auto [auth_first, auth_last] = headers.equal_range("authorization");
  size_t auth_headers = static_cast<size_t>(std::distance(auth_first, auth_last));

  // A raw '+' means a literal '+' to SigV4 but a space to HTML-form decoders, so the handler
  // could act on a different value than the one signed. SDKs always send %2B or %20.
  if (request.query.find('+') != std::string_view::npos) {
    return Fail(AuthCode::kAuthFailure,
                "the query string contains a raw '+'; encode it as %2B (plus) or %20 (space)");
  }
  Result<std::vector<QueryParam>> query = ParseQuery(request.query);
  if (!query) {
    return Fail(AuthCode::kAuthFailure, "the query string has malformed percent-encoding",
                query.error().message());
  }
  bool presigned = std::any_of(query->begin(), query->end(), [](const QueryParam& p) {
    return p.name == "X-Amz-Algorithm" || p.name == "X-Amz-Credential" ||
           p.name == "X-Amz-Signature";
  });
  if (auth_headers == 0 && !presigned) {
    return Fail(AuthCode::kMissingAuthenticationToken, "Request is missing Authentication Token");
  }
  if (auth_headers > 0 && presigned) {
    return Fail(AuthCode::kIncompleteSignature,
                "Only one authentication mechanism allowed: Authorization header or X-Amz-* "
                "query parameters");
  }
  if (auth_headers > 1)
    return Fail(AuthCode::kIncompleteSignature, "the Authorization header repeats");

  AuthResult<ParsedAuth> parsed =
      presigned ? ParsePresigned(*query) : ParseAuthorizationHeader(auth_first->second, headers);
  if (!parsed) return std::unexpected(parsed.error());
  const ParsedAuth& auth = *parsed;

  // The scope: cheap checks that need no secret.
  if (auth.scope_terminator != "aws4_request")
    return Fail(AuthCode::kIncompleteSignature, "Credential must end with aws4_request");
  if (auth.scope_date != auth.amz_date.substr(0, 8)) {
    return Fail(AuthCode::kAuthFailure,
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
                "from HTTP: '" +
                    auth.scope_date + "' != '" + auth.amz_date.substr(0, 8) + "'");
  }
  if (auth.scope_region != options_.region) {
    return Fail(AuthCode::kAuthFailure, "Credential should be scoped to a valid region, not '" +
                                            auth.scope_region + "'; expecting '" + options_.region +
                                            "'");
  }
  if (auth.scope_service != options_.service) {
    return Fail(AuthCode::kAuthFailure, "Credential should be scoped to correct service: '" +
                                            options_.service + "', not '" + auth.scope_service +
                                            "'");
  }

  // Time, before any secret is touched.
  const int64_t now = clock_->NowMillis();
  if (auth.presigned) {
    if (auth.time_ms - now > options_.max_skew_ms)
      return Fail(AuthCode::kRequestExpired, "Request is not yet valid (signed in the future)");
    if (now - auth.time_ms > auth.expires_s * 1000)
      return Fail(AuthCode::kRequestExpired, "Request has expired");
  } else if (std::abs(now - auth.time_ms) > options_.max_skew_ms) {
    return Fail(AuthCode::kRequestExpired, "Request has expired: its timestamp " + auth.amz_date +
                                               " is more than 15 minutes from the server time " +
                                               sigv4::FormatAmzDate(now));
  }

  // The payload hash that went into the signature.
  std::string payload_hash;
  AuthResult<std::optional<std::string_view>> content_sha =
      SingleHeader(headers, "x-amz-content-sha256");
  if (!content_sha) return std::unexpected(content_sha.error());
  if (content_sha->has_value()) {
    std::string_view v = Trim(**content_sha);
    if (v == sigv4::kUnsignedPayload) {
      if (!options_.allow_unsigned_payload) {
        return Fail(AuthCode::kAuthFailure, "this service requires a signed payload",
                    "UNSIGNED-PAYLOAD refused");
      }
    } else if (!IsLowerHex64(v)) {
      return Fail(AuthCode::kAuthFailure, "X-Amz-Content-Sha256 is not a supported value");
    } else if (v != HexSha256(request.body)) {
      return Fail(AuthCode::kAuthFailure,
                  "The provided X-Amz-Content-Sha256 header does not match what was computed");
    }
    payload_hash = v;
  } else if (auth.presigned && options_.s3_mode) {
    payload_hash = sigv4::kUnsignedPayload;
  } else {
    payload_hash = HexSha256(request.body);
  }

  // The secret.
  Result<SecretInfo> secret = lookup(auth.access_key_id);
  if (!secret) {
    ErrorCode ec = secret.error().code();
    if (ec == ErrorCode::kNotFound || ec == ErrorCode::kUnauthorized) {
      return Fail(AuthCode::kAuthFailure, kBadCredentials,
                  "access key " + auth.access_key_id + ": " + secret.error().message());
    }
    AuthError e{AuthCode::kInternalError, "An internal error occurred while authenticating",
                "secret lookup failed: " + secret.error().ToString(), secret.error().retryable(),
                secret.error().code()};
    return std::unexpected(std::move(e));
  }

  std::vector<std::string_view> exclude;
  if (auth.presigned) exclude.push_back("X-Amz-Signature");
  Result<std::string> canonical = sigv4::CanonicalRequest({
      .method = request.method,
      .raw_path = request.path,
      .raw_query = request.query,
      .headers = headers,
      .signed_headers = auth.signed_headers,
      .payload_hash = payload_hash,
      .s3_mode = options_.s3_mode,
      .exclude_query = exclude,
  });
  if (!canonical) {
    return Fail(AuthCode::kAuthFailure, kSignatureMismatch,
                "canonical request: " + canonical.error().message());
  }
  std::string scope =
      sigv4::CredentialScope(auth.scope_date, auth.scope_region, auth.scope_service);
  std::string sts = sigv4::StringToSign(auth.amz_date, scope, *canonical);
  std::string expected =
      sigv4::Signature(sigv4::SigningKey(secret->secret_access_key, auth.scope_date,
                                         auth.scope_region, auth.scope_service),
                       sts);
  if (!ConstantTimeEqual(AsBytes(expected), AsBytes(auth.signature))) {
    return Fail(AuthCode::kAuthFailure, kSignatureMismatch,
                "signature mismatch for access key " + auth.access_key_id);
  }
  return VerifiedIdentity{auth.access_key_id, secret->account_id, secret->user, auth.time_ms,
                          auth.presigned};
}

// --------------------------------------------------------------------------------------------
// Signing

namespace {

Result<std::vector<std::string>> HeadersToSign(const HeaderMap& headers) {
  if (headers.find("host") == headers.end())
    return InvalidArgument("a request to sign needs a Host header");
  std::vector<std::string> names;
  for (const auto& [name, value] : headers) {
    std::string lower = ToLower(name);
    if (!IsExcludedFromSigning(lower)) names.push_back(std::move(lower));
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

}  // namespace

Status SignRequest(HttpRequest* request, const SigningCredentials& credentials,
                   const SigningOptions& options) {
  if (options.time_ms < 0) return InvalidArgument("signing time must not be negative");
  std::string amz_date = sigv4::FormatAmzDate(options.time_ms);
  std::string date = amz_date.substr(0, 8);
  SetHeader(&request->headers, "X-Amz-Date", amz_date);
  auto auth = request->headers.equal_range("authorization");
  request->headers.erase(auth.first, auth.second);

  std::string payload_hash =
      options.unsigned_payload ? std::string(sigv4::kUnsignedPayload) : HexSha256(request->body);
  if (options.add_content_sha256 || options.unsigned_payload)
    SetHeader(&request->headers, "X-Amz-Content-Sha256", payload_hash);

  ASSIGN_OR_RETURN(std::vector<std::string> signed_headers, HeadersToSign(request->headers));
  ASSIGN_OR_RETURN(std::string canonical, sigv4::CanonicalRequest({
                                              .method = request->method,
                                              .raw_path = request->path,
                                              .raw_query = request->query,
                                              .headers = request->headers,
                                              .signed_headers = signed_headers,
                                              .payload_hash = payload_hash,
                                              .s3_mode = options.s3_mode,
                                          }));
  std::string scope = sigv4::CredentialScope(date, options.region, options.service);
  std::string signature = sigv4::Signature(
      sigv4::SigningKey(credentials.secret_access_key, date, options.region, options.service),
      sigv4::StringToSign(amz_date, scope, canonical));
  request->headers.emplace(
      "Authorization", std::string(sigv4::kAlgorithm) + " Credential=" + credentials.access_key_id +
                           "/" + scope + ", SignedHeaders=" + JoinSemicolon(signed_headers) +
                           ", Signature=" + signature);
  return OkStatus();
}

Status PresignRequest(HttpRequest* request, const SigningCredentials& credentials,
                      const SigningOptions& options, int64_t expires_seconds) {
  if (expires_seconds < 1 || expires_seconds > kMaxPresignExpiresSeconds)
    return InvalidArgument("a presigned URL expires after 1 second to 7 days");
  if (options.time_ms < 0) return InvalidArgument("signing time must not be negative");
  if (request->headers.find("host") == request->headers.end())
    return InvalidArgument("a request to sign needs a Host header");
  std::string amz_date = sigv4::FormatAmzDate(options.time_ms);
  std::string date = amz_date.substr(0, 8);
  std::string scope = sigv4::CredentialScope(date, options.region, options.service);
  std::string& q = request->query;
  if (!q.empty()) q += '&';
  q += "X-Amz-Algorithm=" + std::string(sigv4::kAlgorithm);
  q += "&X-Amz-Credential=" + sigv4::UriEncode(credentials.access_key_id + "/" + scope, false);
  q += "&X-Amz-Date=" + amz_date;
  q += "&X-Amz-Expires=" + std::to_string(expires_seconds);
  q += "&X-Amz-SignedHeaders=host";
  std::vector<std::string> signed_headers = {"host"};
  std::string payload_hash =
      options.s3_mode ? std::string(sigv4::kUnsignedPayload) : HexSha256(request->body);
  ASSIGN_OR_RETURN(std::string canonical, sigv4::CanonicalRequest({
                                              .method = request->method,
                                              .raw_path = request->path,
                                              .raw_query = request->query,
                                              .headers = request->headers,
                                              .signed_headers = signed_headers,
                                              .payload_hash = payload_hash,
                                              .s3_mode = options.s3_mode,
                                          }));
  std::string signature = sigv4::Signature(
      sigv4::SigningKey(credentials.secret_access_key, date, options.region, options.service),
      sigv4::StringToSign(amz_date, scope, canonical));
  q += "&X-Amz-Signature=" + signature;
  return OkStatus();
}

}  // namespace snapvol::iam
