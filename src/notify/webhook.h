// Webhook delivery of operator events: the JSON payload, its HMAC-SHA256 signature, the
// backoff between attempts, and one delivery with bounded retries over an HttpPoster (libcurl
// in the daemon, a fake in tests).
// Thread-safety: free functions are safe from any thread; CurlPoster may be shared (each Post
// uses its own handle).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/events.h"
#include "core/status.h"

namespace snapvol::notify {

// Header names a receiver checks (docs/notifications.md).
inline constexpr char kTimestampHeader[] = "X-Snapvol-Timestamp";
inline constexpr char kSignatureHeader[] = "X-Snapvol-Signature";
inline constexpr char kEventHeader[] = "X-Snapvol-Event";
inline constexpr char kDeliveryHeader[] = "X-Snapvol-Delivery";

// An event as it goes out: the event plus the sender's host name and a delivery id that stays
// the same across retries (receivers deduplicate on it).
struct Envelope {
  OperatorEvent event;
  std::string id;    // "evt-" + 17 hex
  std::string host;  // this daemon's host name
};

std::string NewEventId();

// {"event","severity","summary","time","details":{…},"host","id"}
std::string PayloadJson(const Envelope& e);

// "sha256=" + hex HMAC-SHA256(secret, timestamp + "." + body).
std::string Sign(const std::string& secret, int64_t unix_seconds, const std::string& body);

struct RetryPolicy {
  int max_attempts = 5;             // in all, the first one included
  int64_t initial_delay_ms = 1000;  // before the second attempt
  int64_t max_delay_ms = 60'000;    // no wait is longer
};

// The wait before attempt `attempt` + 1 (attempt >= 1): min(max, initial * 2^(attempt-1)),
// then scaled by a jitter factor in [0.5, 1.0] from `unit` (a number in [0, 1)), so many
// daemons failing together do not retry in step.
int64_t BackoffDelayMs(const RetryPolicy& policy, int attempt, double unit);

struct HttpAnswer {
  int status = 0;  // 0: no answer (see error)
  std::string error;  // network or TLS error, when status == 0
};

class HttpPoster {
 public:
  virtual ~HttpPoster() = default;
  // cancel (may be null): once true, an exchange under way is abandoned (no answer).
  virtual HttpAnswer Post(const std::string& url, const std::vector<std::pair<std::string, std::string>>& headers,
                          const std::string& body, const std::atomic<bool>* cancel = nullptr) = 0;
};

struct CurlOptions {
  int64_t connect_timeout_ms = 10'000;
  int64_t total_timeout_ms = 30'000;
};
// libcurl, TLS verified against the system's CA store, http and https only, no redirects.
std::unique_ptr<HttpPoster> MakeCurlPoster(CurlOptions options = {});

struct WebhookTarget {
  std::string url;
  std::string secret;
  RetryPolicy retry;
};

struct DeliveryResult {
  bool delivered = false;
  int attempts = 0;
  int last_status = 0;     // the last HTTP status, 0 when none came
  std::string last_error;  // why the last attempt failed (empty when delivered)
};

// True for answers worth another attempt: no answer, 5xx, 429.
bool Retryable(const HttpAnswer& a);

// Posts the envelope, signing each attempt with the time of that attempt (`now_s`), retrying
// retryable failures up to policy.max_attempts with `sleep_ms` between them; `sleep_ms`
// returns false to give up early (the daemon is stopping). `unit` draws jitter.
DeliveryResult DeliverWebhook(const WebhookTarget& target, const Envelope& e, HttpPoster* poster,
                              const std::function<int64_t()>& now_s,
                              const std::function<bool(int64_t)>& sleep_ms,
                              const std::function<double()>& unit, const std::atomic<bool>* cancel = nullptr);

}  // namespace snapvol::notify
