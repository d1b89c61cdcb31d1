#include "store/s3_client.h"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstring>
#include <random>
#include <thread>

#include "core/hash.h"
#include "store/s3_xml.h"

namespace snapvol {
namespace {

constexpr int64_t kBackoffBaseMs = 100;
constexpr int64_t kBackoffCapMs = 5000;

// curl_global_init is not thread-safe: run it once, before the first handle exists.
void GlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string TrimCrlf(std::string s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n' || s.back() == ' ')) s.pop_back();
  size_t i = 0;
  while (i < s.size() && s[i] == ' ') ++i;
  return s.substr(i);
}

struct Upload {
  std::span<const uint8_t> data;
  size_t offset = 0;
};

size_t ReadBody(char* out, size_t size, size_t n, void* ud) {
  auto* u = static_cast<Upload*>(ud);
  size_t len = std::min(size * n, u->data.size() - u->offset);
  std::memcpy(out, u->data.data() + u->offset, len);
  u->offset += len;
  return len;
}

size_t WriteBody(char* in, size_t size, size_t n, void* ud) {
  auto* body = static_cast<std::vector<uint8_t>*>(ud);
  body->insert(body->end(), reinterpret_cast<uint8_t*>(in), reinterpret_cast<uint8_t*>(in) + size * n);
  return size * n;
}

struct HeaderSink {
  S3Response* resp;
  bool expect_body;  // false for HEAD: its Content-Length is the object's, not the reply's
};

size_t ReadHeader(char* in, size_t size, size_t n, void* ud) {
  auto* sink = static_cast<HeaderSink*>(ud);
  S3Response* resp = sink->resp;
  std::string line(in, size * n);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = Lower(line.substr(0, colon)), value = TrimCrlf(line.substr(colon + 1));
    if (name == "date") resp->date = value;
    else if (name == "last-modified") resp->last_modified = value;
    else if (name == "content-length" && !sink->expect_body) {
      uint64_t len = 0;
      auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), len);
      if (ec == std::errc() && end == value.data() + value.size()) resp->content_length = len;
    } else if (name == "content-length") {
      // Grow the body once instead of doubling through a large chunk.
      unsigned long long len = std::strtoull(value.c_str(), nullptr, 10);
      if (len > 0 && len < (1ull << 30)) resp->body.reserve(len);
    }
  }
  return size * n;
}

// Failures a later attempt may not see: the connection broke or never came up, or timed out.
bool IsTransient(CURLcode c) {
  switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_HTTP3:
      return true;
    default:
      return false;
  }
}

bool IsTransientStatus(long status, const std::vector<uint8_t>& body) {
  if (status >= 500 || status == 429) return true;
  // S3 answers an upload that stalled too long with 400 RequestTimeout; sending again works.
  if (status == 400) {
    std::string_view b(reinterpret_cast<const char*>(body.data()), body.size());
    return b.find("<Code>RequestTimeout</Code>") != std::string_view::npos;
  }
  return false;
}

int64_t JitteredBackoffMs(int attempt) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  int64_t ceiling = std::min<int64_t>(kBackoffCapMs, kBackoffBaseMs << std::min(attempt, 16));
  // Jitter: clients that failed together do not retry together; the floor keeps a retry
  // from coming back at once.
  return std::uniform_int_distribution<int64_t>(ceiling / 4, ceiling)(rng);
}

}  // namespace

S3Client::S3Client(S3Config config)
    : config_(std::move(config)), sigv4_("aws:amz:" + config_.region + ":s3"),
      userpwd_key_(config_.credentials.access_key_id),
      userpwd_secret_(config_.credentials.secret_access_key) {}

Result<std::unique_ptr<S3Client>> S3Client::Create(const S3Config& config) {
  if (config.credentials.empty()) return MakeError(ErrorCode::kUnauthorized, "no S3 credentials");
  if (config.bucket.empty()) return InvalidArgument("no S3 bucket");
  ASSIGN_OR_RETURN(std::string endpoint, NormaliseS3Endpoint(config.endpoint, config.allow_insecure_http));
  GlobalInitOnce();
  S3Config c = config;
  c.endpoint = endpoint;
  auto client = std::unique_ptr<S3Client>(new S3Client(std::move(c)));
  client->share_ = curl_share_init();
  if (!client->share_) return MakeError(ErrorCode::kIoError, "curl_share_init failed");
  curl_share_setopt(client->share_, CURLSHOPT_LOCKFUNC, &S3Client::Lock);
  curl_share_setopt(client->share_, CURLSHOPT_UNLOCKFUNC, &S3Client::Unlock);
  curl_share_setopt(client->share_, CURLSHOPT_USERDATA, client.get());
  // DNS answers and TLS sessions are shared between the threads. Connections are not:
  // libcurl does not support sharing its connection cache between concurrent threads (its
  // CURLSHOPT_SHARE manual says so), and doing it corrupted the heap under load (CI's
  // s3_engine aborted in malloc; helgrind showed races inside curl_easy_perform). Each pooled
  // handle keeps its own connections across requests instead (curl_easy_reset keeps them).
  for (auto data : {CURL_LOCK_DATA_DNS, CURL_LOCK_DATA_SSL_SESSION})
    curl_share_setopt(client->share_, CURLSHOPT_SHARE, data);
  return client;
}

S3Client::~S3Client() {
  for (CURL* h : idle_handles_) curl_easy_cleanup(h);
  if (share_) curl_share_cleanup(share_);
}

void S3Client::Lock(CURL*, curl_lock_data data, curl_lock_access, void* self) {
  static_cast<S3Client*>(self)->share_locks_[data].lock();
}
void S3Client::Unlock(CURL*, curl_lock_data data, void* self) {
  static_cast<S3Client*>(self)->share_locks_[data].unlock();
}

CURL* S3Client::AcquireHandle() {
  {
    std::lock_guard lock(handles_mu_);
    if (!idle_handles_.empty()) {
      CURL* h = idle_handles_.back();
      idle_handles_.pop_back();
      return h;
    }
  }
  return curl_easy_init();
}

void S3Client::ReleaseHandle(CURL* h) {
  std::lock_guard lock(handles_mu_);
  idle_handles_.push_back(h);
}

std::string S3Client::UrlFor(const std::string& key) const {
  const std::string& ep = config_.endpoint;
  if (config_.url_style == S3UrlStyle::kVirtualHosted) {
    auto scheme_end = ep.find("://") + 3;
    return ep.substr(0, scheme_end) + config_.bucket + "." + ep.substr(scheme_end) + "/" + key;
  }
  return ep + "/" + config_.bucket + (key.empty() ? "" : "/" + key);
}

CURLcode S3Client::Perform(CURL* h, const S3Request& req, S3Response* resp, std::string* error_text) {
  curl_easy_reset(h);  // keeps the handle's connections; clears the last request's options
  std::string url = UrlFor(req.key) + (req.query.empty() ? "" : "?" + req.query);
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_SHARE, share_);
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);  // many threads: no SIGALRM-based DNS timeouts
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  // A stalled transfer is a timeout (and retried), without a total deadline that a large
  // object on a slow link would hit.
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 30L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!config_.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, config_.ca_file.c_str());
  curl_easy_setopt(h, CURLOPT_AWS_SIGV4, sigv4_.c_str());
  curl_easy_setopt(h, CURLOPT_USERNAME, userpwd_key_.c_str());
  curl_easy_setopt(h, CURLOPT_PASSWORD, userpwd_secret_.c_str());

  // libcurl signs x-amz-content-sha256 when present but does not compute it: the payload
  // hash is ours. Signing the real hash (not UNSIGNED-PAYLOAD) makes the server reject a
  // body damaged in transit even over plain HTTP.
  std::string payload_hash = "x-amz-content-sha256: " + ToHex(Sha256(req.body));
  curl_slist* headers = curl_slist_append(nullptr, payload_hash.c_str());
  // 100-continue stays as libcurl does it (only for bodies over 1 MiB): an "Expect:" header
  // to suppress it is signed by libcurl 7.88 but not sent (SignatureDoesNotMatch), and
  // CURLOPT_EXPECT_100_TIMEOUT_MS=0 made every PUT take ~40 ms instead of ~5 ms on RGW.
  std::string token_header;
  if (!config_.credentials.session_token.empty()) {
    token_header = "x-amz-security-token: " + config_.credentials.session_token;
    headers = curl_slist_append(headers, token_header.c_str());
  }
  for (const auto& hd : req.headers) headers = curl_slist_append(headers, hd.c_str());
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);

  Upload upload{req.body, 0};
  if (req.method == "HEAD") {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (req.method == "PUT") {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, &ReadBody);
    curl_easy_setopt(h, CURLOPT_READDATA, &upload);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
  } else if (req.method != "GET") {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  }
  resp->body.clear();
  resp->date.clear();
  resp->last_modified.clear();
  resp->content_length.reset();
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, &WriteBody);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp->body);
  HeaderSink sink{resp, req.method != "HEAD"};
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, &ReadHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &sink);

  CURLcode rc = curl_easy_perform(h);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    *error_text = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    return rc;
  }
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
  return CURLE_OK;
}

Result<S3Response> S3Client::Send(const S3Request& req, int64_t retry_window_ms) {
  using Clock = std::chrono::steady_clock;
  const int64_t window = retry_window_ms < 0 ? config_.retry_window_ms : retry_window_ms;
  const auto start = Clock::now();
  const std::string what = (req.what.empty() ? req.method + " " + req.key : req.what) + " (" + config_.Describe() + ")";
  S3Response resp;
  for (int attempt = 0;; ++attempt) {
    CURL* h = AcquireHandle();
    if (!h) return MakeError(ErrorCode::kIoError, "curl_easy_init failed", true);
    std::string error_text;
    CURLcode rc = Perform(h, req, &resp, &error_text);
    ReleaseHandle(h);
    resp.attempts = attempt + 1;
    std::string failure;
    if (rc == CURLE_OK) {
      if (!IsTransientStatus(resp.status, resp.body)) return resp;
      S3ErrorDoc doc = ParseS3Error({reinterpret_cast<const char*>(resp.body.data()), resp.body.size()});
      failure = "HTTP " + std::to_string(resp.status) + (doc.code.empty() ? "" : " " + doc.code);
    } else if (IsTransient(rc)) {
      failure = error_text;
    } else if (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE) {
      return MakeError(ErrorCode::kIoError,
                       what + ": the endpoint's TLS certificate is not trusted (" + error_text +
                           "); fix the certificate or point the store at its CA bundle");
    } else {
      return MakeError(ErrorCode::kIoError, what + ": " + error_text);
    }
    int64_t elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
    // The last wait is cut to the end of the window, so an outage as long as the window is
    // still ridden out by one more attempt.
    int64_t delay = std::min(JitteredBackoffMs(attempt), window - elapsed);
    if (delay <= 0) {
      // Every way of running out of the window names S3, whichever request met the outage.
      std::string reach = rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST
                              ? "cannot reach the S3 endpoint " + config_.endpoint + ": "
                              : "the S3 endpoint " + config_.endpoint + " failed: ";
      return MakeError(ErrorCode::kIoError,
                       what + ": " + reach + failure + " (" + std::to_string(attempt + 1) +
                           " attempts in a retry window of " + std::to_string(window / 1000) + " s)",
                       /*retryable=*/true);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay));
  }
}

Error S3Client::ErrorFor(const S3Request& req, const S3Response& resp) const {
  S3ErrorDoc doc = ParseS3Error({reinterpret_cast<const char*>(resp.body.data()), resp.body.size()});
  const std::string what = req.what.empty() ? req.method + " " + req.key : req.what;
  const std::string where = config_.Describe();
  std::string detail = doc.code.empty() ? "HTTP " + std::to_string(resp.status)
                                        : doc.code + (doc.message.empty() ? "" : ": " + doc.message);
  const std::string& akid = config_.credentials.access_key_id;
  const std::string& source = config_.credentials.source;
  std::string keys = "access key " + akid + (source.empty() ? "" : " from " + source);
  switch (resp.status) {
    case 404:
      if (doc.code == "NoSuchBucket")
        return Error(ErrorCode::kNotFound, "bucket '" + config_.bucket + "' does not exist at " + config_.endpoint);
      return Error(ErrorCode::kNotFound, what + ": not found in " + where);
    case 403:
      if (doc.code == "InvalidAccessKeyId")
        return Error(ErrorCode::kUnauthorized, "S3 at " + config_.endpoint + " does not know " + keys +
                                                   " (InvalidAccessKeyId): wrong credentials");
      if (doc.code == "SignatureDoesNotMatch")
        return Error(ErrorCode::kUnauthorized, "S3 at " + config_.endpoint + " rejected the signature made with " +
                                                   keys + " (SignatureDoesNotMatch): wrong secret key");
      if (doc.code == "RequestTimeTooSkewed")
        return Error(ErrorCode::kUnauthorized, "S3 at " + config_.endpoint +
                                                   " rejected the request time (RequestTimeTooSkewed): "
                                                   "this machine's clock is wrong; fix NTP");
      if (doc.code == "QuotaExceeded")
        return Error(ErrorCode::kNoSpace, what + ": the bucket's or user's quota is full (" + where + ")");
      return Error(ErrorCode::kUnauthorized, what + ": access denied to " + keys + " (" + detail + ")");
    case 409:
      return Error(ErrorCode::kConflict, what + ": " + detail + " (" + where + ")");
    case 301:
    case 307:
      return Error(ErrorCode::kInvalidArgument, "bucket '" + config_.bucket + "' is not served at " +
                                                    config_.endpoint + " in region " + config_.region +
                                                    " (" + detail + "); check --s3-endpoint and --s3-region");
    default:
      break;
  }
  if (resp.status >= 500 || resp.status == 429)
    return Error(ErrorCode::kIoError, what + ": " + detail + " (" + where + ")", /*retryable=*/true);
  return Error(ErrorCode::kInvalidArgument, what + ": S3 answered " + detail + " (" + where + ")");
}

}  // namespace snapvol
