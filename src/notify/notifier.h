// Notifier: the daemon's EventSink. Raise() logs the event and queues it (bounded); one
// delivery thread sends each queued event to the configured channels (a signed webhook, email
// through sendmail), retrying with backoff, and logs what it could not deliver. Nothing the
// raiser does waits for delivery or depends on its outcome.
//
// Undelivered events survive a clean stop: Stop() writes what is still queued (and the event
// being retried) to a spool file (0600) that the next Start() loads and sends. A crash loses the
// queue; what the events report is also in the catalog (run history, snapshot states).
//
// Thread-safety: Raise, SendTest, queued and dropped may be called from any thread; Start and
// Stop from one thread; DeliverQueued only when the delivery thread is not running (tests).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <thread>

#include "core/clock.h"
#include "core/events.h"
#include "notify/email.h"
#include "notify/webhook.h"

namespace snapvol::notify {

// Every kind an operator may choose (--notify-events); kEventTest is always sent when asked.
const std::vector<std::string>& EventKinds();

struct NotifierOptions {
  std::optional<WebhookTarget> webhook;
  std::optional<EmailTarget> email;
  std::set<std::string> kinds;  // the kinds sent; empty: all
  size_t queue_limit = 1000;    // events waiting beyond this are dropped (and logged)
  std::string host;             // named in every payload
  std::string spool_path;       // empty: nothing survives a stop
  std::function<void(const nlohmann::json&)> log;  // one JSON log line (required)
};

class Notifier : public EventSink {
 public:
  // poster: how webhooks are posted (MakeCurlPoster() in the daemon).
  Notifier(NotifierOptions options, std::unique_ptr<HttpPoster> poster, Clock* clock = Clock::Real());
  ~Notifier() override;  // Stop()
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;

  bool configured() const { return options_.webhook || options_.email; }
  const NotifierOptions& options() const { return options_; }

  void Raise(OperatorEvent event) override;

  // Loads the spool (if any) into the queue and starts the delivery thread.
  void Start();
  // Ends the delivery thread (a retry wait is cut short) and spools what was not delivered.
  void Stop();

  // Sends a kEventTest event now, on the caller's thread, once to each channel (no retries,
  // so a misconfiguration shows at once). Returns {"id", "webhook": {...}, "email": {...}}
  // with "delivered", "attempts", "status" / "error" for each configured channel.
  nlohmann::json SendTest(const std::string& requested_by);

  size_t queued() const;
  size_t dropped() const;
  // Delivers everything queued on the caller's thread; REQUIRES the thread not started.
  void DeliverQueued();
  // Queues the spooled events and removes the spool file (Start() calls it first).
  void LoadSpool();

 private:
  struct Item {
    Envelope envelope;
    bool webhook_pending = false;
    bool email_pending = false;
    bool pending() const { return webhook_pending || email_pending; }
  };
  void Loop();
  void Deliver(Item* item);
  bool Wait(int64_t ms);  // false once stopping
  bool Wanted(const std::string& kind) const;
  void WriteSpool(std::deque<Item> items);

  NotifierOptions options_;
  std::unique_ptr<HttpPoster> poster_;
  Clock* clock_;
  std::mt19937_64 rng_;  // jitter; delivery thread only

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Item> queue_;               // guarded by mu_
  size_t dropped_ = 0;                   // guarded by mu_
  bool stopping_ = false;                // guarded by mu_
  std::atomic<bool> cancel_{false};      // stopping_, for a webhook exchange under way
  std::thread thread_;
};

}  // namespace snapvol::notify
