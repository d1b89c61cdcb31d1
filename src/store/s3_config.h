// S3Config: where an S3 snapshot store lives (endpoint, bucket, prefix, region, URL style,
// TLS policy) and the keys that sign its requests, with the parsing and checks that turn
// user input into one of them and the credential sources (environment, the data dir's
// config, the AWS shared-credentials file).
// Thread-safety: value types and free functions; safe from any thread.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace snapvol {

// The keys are secret: nothing may print them. ToString-like helpers below never include
// the secret key.
struct S3Credentials {
  std::string access_key_id, secret_access_key, session_token;
  std::string source;  // where they came from, for messages: "environment", "profile 'x' in F"
  bool empty() const { return access_key_id.empty() || secret_access_key.empty(); }
};

enum class S3UrlStyle { kPath, kVirtualHosted };

struct S3Config {
  std::string endpoint;  // scheme://host[:port], no path, no trailing slash
  std::string bucket;
  std::string prefix;  // "" or "a/b" (no leading or trailing slash)
  std::string region = "us-east-1";
  S3UrlStyle url_style = S3UrlStyle::kPath;
  // Plain HTTP is refused unless the endpoint is a loopback address, because signed
  // requests would travel in the clear and could be replayed; this flag overrides that.
  bool allow_insecure_http = false;
  std::string ca_file;  // extra CA bundle for self-signed endpoints; empty: system CAs
  // Requests failing with 5xx, 429, resets or timeouts are retried with backoff for at most
  // this long in total before the error is returned (retryable).
  int64_t retry_window_ms = 60 * 1000;
  int max_parallel_uploads = 32;  // objects of one WriteBatch in flight at once
  S3Credentials credentials;

  // "s3://bucket/prefix at http://127.0.0.1:8000" (no keys).
  std::string Describe() const;
};

// Parses "s3://BUCKET" or "s3://BUCKET/PREFIX" into config->bucket and ->prefix.
// InvalidArgument naming what is wrong (bucket naming rules, prefix characters).
Status ParseS3Url(const std::string& url, S3Config* config);

// Normalises and checks an endpoint URL ("http(s)://host[:port]"): InvalidArgument for other
// schemes, a path, or plain HTTP to a non-loopback host without allow_insecure_http.
Result<std::string> NormaliseS3Endpoint(const std::string& url, bool allow_insecure_http);

// The default AWS endpoint of a region, used when no endpoint is given.
std::string AwsS3Endpoint(const std::string& region);

// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopbackHost(const std::string& host);

// Reads keys of one profile from an AWS shared-credentials file (INI). NotFound when the file
// or the profile has none.
Result<S3Credentials> ReadSharedCredentials(const std::string& path, const std::string& profile);

// The credentials to use, first match wins:
//   1. $AWS_ACCESS_KEY_ID / $AWS_SECRET_ACCESS_KEY (+ $AWS_SESSION_TOKEN);
//   2. configured (keys recorded in the data dir's store config);
//   3. the profile ($AWS_PROFILE, else configured_profile, else "default") of the shared
//      credentials file ($AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials).
// Unauthorized, saying where it looked, when none has keys.
Result<S3Credentials> ResolveS3Credentials(const S3Credentials& configured,
                                           const std::string& configured_profile);

}  // namespace snapvol
