#include "notify/webhook.h"

#include <curl/curl.h>

#include <algorithm>
#include <cmath>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/hash.h"
#include "core/ids.h"

namespace snapvol::notify {

std::string NewEventId() { return "evt-" + NewSnapshotId().substr(5); }

std::string PayloadJson(const Envelope& e) {
  nlohmann::ordered_json details = nlohmann::ordered_json::object();
  for (const auto& [k, v] : e.event.details) details[k] = v;
  nlohmann::ordered_json j = {{"event", e.event.kind},
                              {"severity", e.event.severity},
                              {"summary", e.event.summary},
                              {"time", FormatIso8601(e.event.time_ms)},
                              {"details", details},
                              {"host", e.host},
                              {"id", e.id}};
  // Invalid UTF-8 in a message (a file name, say) is replaced, never a reason not to send.
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

std::string Sign(const std::string& secret, int64_t unix_seconds, const std::string& body) {
  std::string signed_text = std::to_string(unix_seconds) + "." + body;
  return "sha256=" + ToHex(HmacSha256(AsBytes(secret), AsBytes(signed_text)));
}

int64_t BackoffDelayMs(const RetryPolicy& p, int attempt, double unit) {
  int64_t d = std::max<int64_t>(1, p.initial_delay_ms);
  for (int i = 1; i < attempt && d < p.max_delay_ms; ++i) d *= 2;
  d = std::min(d, p.max_delay_ms);
  unit = std::clamp(unit, 0.0, 1.0);
  return static_cast<int64_t>(std::llround(static_cast<double>(d) * (0.5 + 0.5 * unit)));
}

bool Retryable(const HttpAnswer& a) { return a.status == 0 || a.status >= 500 || a.status == 429; }

DeliveryResult DeliverWebhook(const WebhookTarget& target, const Envelope& e, HttpPoster* poster,
                              const std::function<int64_t()>& now_s,
                              const std::function<bool(int64_t)>& sleep_ms,
                              const std::function<double()>& unit, const std::atomic<bool>* cancel) {
  const std::string body = PayloadJson(e);
  DeliveryResult r;
  const int max_attempts = std::max(1, target.retry.max_attempts);
  for (;;) {
    ++r.attempts;
    const int64_t ts = now_s();
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Content-Type", "application/json"},
        {"User-Agent", "snapvold"},
        {kTimestampHeader, std::to_string(ts)},
        {kSignatureHeader, Sign(target.secret, ts, body)},
        {kEventHeader, e.event.kind},
        {kDeliveryHeader, e.id},
    };
    HttpAnswer a = poster->Post(target.url, headers, body, cancel);
    r.last_status = a.status;
    if (a.status >= 200 && a.status < 300) {
      r.delivered = true;
      r.last_error.clear();
      return r;
    }
    r.last_error = a.status == 0 ? a.error : "HTTP " + std::to_string(a.status);
    if (!Retryable(a) || r.attempts >= max_attempts) return r;
    if (!sleep_ms(BackoffDelayMs(target.retry, r.attempts, unit()))) {
      r.last_error += "; gave up: the service is stopping";
      return r;
    }
  }
}

namespace {

// curl_global_init is not thread-safe: once, before the first handle.
void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

size_t Discard(char*, size_t size, size_t n, void*) { return size * n; }

// Non-zero aborts the transfer: the daemon is stopping and must not wait for a slow receiver.
int Progress(void* cancel, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return cancel && static_cast<const std::atomic<bool>*>(cancel)->load() ? 1 : 0;
}

class CurlPoster : public HttpPoster {
 public:
  explicit CurlPoster(CurlOptions o) : o_(o) { GlobalInit(); }

  HttpAnswer Post(const std::string& url, const std::vector<std::pair<std::string, std::string>>& headers,
                  const std::string& body, const std::atomic<bool>* cancel) override {
    HttpAnswer a;
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> h(curl_easy_init(), &curl_easy_cleanup);
    if (!h) {
      a.error = "curl_easy_init failed";
      return a;
    }
    curl_slist* list = nullptr;
    for (const auto& [k, v] : headers) list = curl_slist_append(list, (k + ": " + v).c_str());
    list = curl_slist_append(list, "Expect:");  // no 100-continue round trip
    std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> hold(list, &curl_slist_free_all);
    char errbuf[CURL_ERROR_SIZE] = {};
    CURL* c = h.get();
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);  // a redirect is an answer, not followed
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // many threads: no SIGALRM for timeouts
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(o_.connect_timeout_ms));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(o_.total_timeout_ms));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &Discard);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    if (cancel) {
      curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
      curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, &Progress);
      curl_easy_setopt(c, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(cancel));
    }
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
      a.error = errbuf[0] ? errbuf : curl_easy_strerror(rc);
      return a;
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    a.status = static_cast<int>(status);
    return a;
  }

 private:
  CurlOptions o_;
};

}  // namespace

std::unique_ptr<HttpPoster> MakeCurlPoster(CurlOptions options) { return std::make_unique<CurlPoster>(options); }

}  // namespace snapvol::notify
