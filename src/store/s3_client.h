// S3Client: signed HTTP requests to one S3 bucket over libcurl. Signing is libcurl's SigV4
// (CURLOPT_AWS_SIGV4) plus the x-amz-content-sha256 header, which libcurl does not add and
// S3/RGW require; connections, DNS and TLS sessions are shared through one CURLSH so any
// thread reuses any idle connection; requests that fail with 5xx, 429, a reset or a timeout
// are retried with exponential backoff and full jitter within a bounded total window.
//
// Credentials never appear in errors or logs: messages name the access key id and where the
// keys came from, never the secret.
// Thread-safety: Send may be called from many threads at once.
#pragma once

#include <curl/curl.h>

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <optional>
#include <string>
#include <vector>

#include "store/s3_config.h"

namespace snapvol {

struct S3Request {
  std::string method = "GET";  // GET, HEAD, PUT, DELETE
  std::string key;             // the full object key (prefix applied); empty: the bucket
  std::string query;           // URI-encoded, sorted by name, without '?'
  std::span<const uint8_t> body;
  std::vector<std::string> headers;  // extra "Name: value" lines (signed with the rest)
  // What the caller calls this, for messages: "PUT chunks/ab/…".
  std::string what;
};

struct S3Response {
  long status = 0;
  std::vector<uint8_t> body;
  std::string date;           // the Date header: the server's clock
  std::string last_modified;  // the Last-Modified header
  std::optional<uint64_t> content_length;  // the Content-Length header (a HEAD's: the object's size)
  int attempts = 0;
};

class S3Client {
 public:
  static Result<std::unique_ptr<S3Client>> Create(const S3Config& config);
  ~S3Client();
  S3Client(const S3Client&) = delete;
  S3Client& operator=(const S3Client&) = delete;

  // Sends request, retrying transient failures for at most retry_window_ms (negative: the
  // config's window). Returns the response of any final HTTP status (2xx-4xx except 429, and
  // including 404), or an IoError (retryable when the cause was transient) when no response
  // arrived or the server kept failing.
  Result<S3Response> Send(const S3Request& request, int64_t retry_window_ms = -1);

  // The error a non-2xx final response means: NotFound (404), Unauthorized (403: wrong key,
  // bad signature, skewed clock, denied), NoSpace (quota), Conflict (409), InvalidArgument
  // (other 4xx), retryable IoError (5xx, 429).
  Error ErrorFor(const S3Request& request, const S3Response& response) const;

  const S3Config& config() const { return config_; }
  // The URL of a key (or of the bucket for an empty key) without a query.
  std::string UrlFor(const std::string& key) const;

 private:
  explicit S3Client(S3Config config);
  CURL* AcquireHandle();
  void ReleaseHandle(CURL* h);
  // One attempt; on a transport failure returns the CURLcode and fills error_text.
  CURLcode Perform(CURL* h, const S3Request& req, S3Response* resp, std::string* error_text);
  static void Lock(CURL*, curl_lock_data data, curl_lock_access, void* self);
  static void Unlock(CURL*, curl_lock_data data, void* self);

  const S3Config config_;
  const std::string sigv4_;  // "aws:amz:REGION:s3"
  const std::string userpwd_key_, userpwd_secret_;
  CURLSH* share_ = nullptr;
  std::array<std::mutex, CURL_LOCK_DATA_LAST> share_locks_;
  std::mutex handles_mu_;
  std::vector<CURL*> idle_handles_;  // guarded by handles_mu_
};

}  // namespace snapvol
