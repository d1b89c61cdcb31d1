// AWS Signature Version 4: server-side verification of signed HTTP requests, and a client-side
// signer for tests and for snapvol's own outgoing requests (the S3 client).
//
// Both the Authorization-header form and the presigned query-string form are verified. The
// canonical request follows AWS's published rules; for services other than S3 the path is
// normalised (dot segments and repeated slashes removed) and then URI-encoded once more, which
// is what the AWS SDKs do, so a '%' already in the raw path becomes "%25". In S3 mode the path
// is neither normalised nor double-encoded.
//
// Failures carry the EC2 wire code a client expects (AuthFailure, RequestExpired, ...) in an
// AuthError; the message is safe to send to the client, the detail is for the server log only.
//
// Thread-safety: free functions and immutable option structs; SigV4Verifier is immutable after
// construction and safe to share between threads as long as the Clock and the SecretLookup it
// was given are.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/hash.h"
#include "core/status.h"

namespace snapvol::iam {

// Orders header names ASCII-case-insensitively, so a multimap keyed by it finds "Host" under
// "host". Equal names keep their insertion order, which SigV4 needs when a header repeats.
struct CaseInsensitiveLess {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const;
};
using HeaderMap = std::multimap<std::string, std::string, CaseInsensitiveLess>;

// A received request, exactly as it came off the wire. Non-owning: every view must outlive it.
struct HttpRequestView {
  std::string_view method;  // "GET", "POST", ...
  std::string_view path;    // raw request-target path, before '?', still percent-encoded
  std::string_view query;   // raw query string after '?', without the '?'; may be empty
  const HeaderMap& headers;
  std::string_view body;  // the complete body bytes
};

// An owning request, for building and signing outgoing requests.
struct HttpRequest {
  std::string method;
  std::string path = "/";
  std::string query;
  HeaderMap headers;
  std::string body;

  HttpRequestView View() const { return {method, path, query, headers, body}; }
};

// ---------------------------------------------------------------------------------------------
// Verification

// The wire error codes of EC2 for authentication failures.
enum class AuthCode {
  kAuthFailure,                 // bad signature, unknown or disabled key, wrong scope
  kRequestExpired,              // timestamp outside the allowed skew, or presigned URL expired
  kIncompleteSignature,         // a required part of the signature is missing or malformed
  kMissingAuthenticationToken,  // the request is not signed at all
  kInternalError,               // the secret lookup failed (e.g. the catalog is unavailable)
};
// "AuthFailure", "RequestExpired", "IncompleteSignature", "MissingAuthenticationToken",
// "InternalError".
const char* AuthCodeName(AuthCode code);

struct AuthError {
  AuthCode code;
  std::string message;  // for the client; never names secrets or whether a key exists
  std::string detail;   // for the server log / audit: what exactly failed
  bool retryable = false;
  // kUnauthorized for every code but kInternalError, which keeps the lookup's own code.
  ErrorCode error_code = ErrorCode::kUnauthorized;

  // As a core Error: error_code, "<AuthCodeName>: <message>", retryable.
  Error ToError() const;
};

template <typename T>
using AuthResult = std::expected<T, AuthError>;

// What the key store knows about one access key.
struct SecretInfo {
  std::string secret_access_key;
  std::string account_id;  // 12 digits
  std::string user;
};
// Maps an access key id to its secret. Contract: kNotFound for an unknown key and kUnauthorized
// for a disabled one (both become AuthFailure); any other error becomes InternalError.
using SecretLookup = std::function<Result<SecretInfo>(std::string_view access_key_id)>;

struct VerifierOptions {
  std::string region = "us-east-1";
  std::string service = "ec2";           // "ec2", "dlm", "ebs", "s3", ...
  bool s3_mode = false;                  // S3 path rules; presigned payload is UNSIGNED-PAYLOAD
  int64_t max_skew_ms = 15 * 60 * 1000;  // both directions
  // Whether "X-Amz-Content-Sha256: UNSIGNED-PAYLOAD" is accepted. Keep it off for the EC2
  // Query API: there the form body carries the action and its parameters, so
  // an unsigned body would let anyone on the path rewrite the request.
  bool allow_unsigned_payload = false;
};

inline constexpr int64_t kMaxPresignExpiresSeconds = 7 * 24 * 3600;  // AWS's limit: 7 days
inline constexpr size_t kMaxAuthorizationHeaderBytes = 4096;
inline constexpr size_t kMaxSignedHeaders = 64;

struct VerifiedIdentity {
  std::string access_key_id;
  std::string account_id;
  std::string user;
  int64_t request_time_ms = 0;  // the signed timestamp
  bool presigned = false;
};

class SigV4Verifier {
 public:
  // REQUIRES: clock outlives the verifier; lookup is callable from every thread that verifies.
  SigV4Verifier(VerifierOptions options, SecretLookup lookup, const Clock* clock);

  // Verifies a request signed with the Authorization header or as a presigned URL. A raw '+'
  // in the query is refused (AuthFailure): SigV4 reads it as '+', form decoders as a space,
  // so it cannot be both signed and unambiguous; clients send %2B or %20.
  // On success returns who signed it. On failure returns the EC2 code and a message; the
  // request must then be refused without acting on any of it.
  AuthResult<VerifiedIdentity> Verify(const HttpRequestView& request) const;
  // The same, with a lookup for this call only (e.g. one that keeps what it found, so the
  // caller's identity is read once per request).
  AuthResult<VerifiedIdentity> Verify(const HttpRequestView& request, const SecretLookup& lookup) const;

  const VerifierOptions& options() const { return options_; }

 private:
  VerifierOptions options_;
  SecretLookup lookup_;
  const Clock* clock_;
};

// ---------------------------------------------------------------------------------------------
// Signing (client side)

struct SigningCredentials {
  std::string access_key_id;
  std::string secret_access_key;
};

struct SigningOptions {
  std::string region = "us-east-1";
  std::string service = "ec2";
  int64_t time_ms = 0;  // the request time; callers pass Clock::NowMillis()
  bool s3_mode = false;
  // Adds X-Amz-Content-Sha256 (S3 requires it). When unsigned_payload, its value is
  // UNSIGNED-PAYLOAD and the body is not covered by the signature.
  bool add_content_sha256 = false;
  bool unsigned_payload = false;
};

// Signs request in place: sets X-Amz-Date (and X-Amz-Content-Sha256 if asked) and
// Authorization. Signs every header present except Authorization, User-Agent, Expect and
// X-Amzn-Trace-Id. REQUIRES: a Host header. Missing Host or a bad time → kInvalidArgument.
Status SignRequest(HttpRequest* request, const SigningCredentials& credentials,
                   const SigningOptions& options);

// Turns request into a presigned URL in place: appends the X-Amz-* parameters and
// X-Amz-Signature to its query. Only the Host header is signed. REQUIRES: a Host header and
// 1 <= expires_seconds <= kMaxPresignExpiresSeconds, else kInvalidArgument.
Status PresignRequest(HttpRequest* request, const SigningCredentials& credentials,
                      const SigningOptions& options, int64_t expires_seconds);

// ---------------------------------------------------------------------------------------------
// The algorithm's building blocks, exposed for the published test vectors and for other
// signers. All are pure functions.
namespace sigv4 {

inline constexpr std::string_view kAlgorithm = "AWS4-HMAC-SHA256";
inline constexpr std::string_view kUnsignedPayload = "UNSIGNED-PAYLOAD";
inline constexpr std::string_view kEmptySha256 =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// Percent-encodes every byte outside the RFC 3986 unreserved set (A-Z a-z 0-9 - . _ ~) as %XX
// with upper-case hex; '/' too unless keep_slash.
std::string UriEncode(std::string_view s, bool keep_slash);
// Decodes %XX escapes ('+' stays '+'). A '%' not followed by two hex digits → kInvalidArgument.
Result<std::string> PercentDecode(std::string_view s);

// RFC 3986 dot-segment removal plus collapsing of repeated slashes, as the AWS SDKs do it.
std::string NormalizePath(std::string_view path);
// The CanonicalURI line for a raw path. Non-S3: NormalizePath, then UriEncode(keep_slash).
// S3: each '/'-separated segment decoded then re-encoded (so "%2F" stays "%2F"), no
// normalisation. Bad escapes (S3) → kInvalidArgument.
Result<std::string> CanonicalUri(std::string_view raw_path, bool s3_mode);
// The CanonicalQueryString line for a raw query: each name and value decoded, re-encoded with
// UriEncode, pairs sorted by encoded name then value. Parameters named in `exclude` (exact,
// case-sensitive) are left out. Bad escapes → kInvalidArgument.
Result<std::string> CanonicalQueryString(std::string_view raw_query,
                                         const std::vector<std::string_view>& exclude = {});
// Trims a header value and collapses each run of whitespace inside it to one space.
std::string CanonicalHeaderValue(std::string_view value);
// The CanonicalHeaders block ("name:value\n" per signed header, values of a repeated header
// joined by ',' in arrival order). signed_headers must be lower-case and sorted. A signed
// header the request lacks → kNotFound naming it.
Result<std::string> CanonicalHeaders(const HeaderMap& headers,
                                     const std::vector<std::string>& signed_headers);

struct CanonicalRequestInput {
  std::string_view method;
  std::string_view raw_path;
  std::string_view raw_query;
  const HeaderMap& headers;
  const std::vector<std::string>& signed_headers;  // lower-case, sorted
  std::string_view payload_hash;                   // hex SHA-256 or UNSIGNED-PAYLOAD
  bool s3_mode = false;
  std::vector<std::string_view> exclude_query = {};  // {"X-Amz-Signature"} when presigned
};
Result<std::string> CanonicalRequest(const CanonicalRequestInput& in);

// "20150830T123600Z" <-> milliseconds since the epoch (whole seconds).
std::string FormatAmzDate(int64_t millis);
std::optional<int64_t> ParseAmzDate(std::string_view s);
// RFC 1123 HTTP date, "Sun, 30 Aug 2015 12:36:00 GMT".
std::optional<int64_t> ParseHttpDate(std::string_view s);

// "20150830/us-east-1/service/aws4_request"
std::string CredentialScope(std::string_view date, std::string_view region,
                            std::string_view service);
std::string StringToSign(std::string_view amz_date, std::string_view scope,
                         std::string_view canonical_request);
Digest SigningKey(std::string_view secret, std::string_view date, std::string_view region,
                  std::string_view service);
// Lower-case hex HMAC of string_to_sign under the derived signing key.
std::string Signature(const Digest& signing_key, std::string_view string_to_sign);

}  // namespace sigv4
}  // namespace snapvol::iam
