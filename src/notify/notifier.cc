#include "notify/notifier.h"

#include <unistd.h>

#include <cstring>

#include "core/file_util.h"
#include "core/hash.h"

namespace snapvol::notify {

const std::vector<std::string>& EventKinds() {
  static const std::vector<std::string> kinds = {kEventLifecycleRunFailed, kEventSnapshotFailed,
                                                 kEventVerifyDamage, kEventGcFailed, kEventDrillFailed,
                                                 kEventStoreFilling};
  return kinds;
}

namespace {

nlohmann::json EnvelopeJson(const Envelope& e) {
  nlohmann::json details = nlohmann::json::array();
  for (const auto& [k, v] : e.event.details) details.push_back({k, v});
  return {{"kind", e.event.kind}, {"severity", e.event.severity}, {"summary", e.event.summary},
          {"time_ms", e.event.time_ms}, {"details", details}, {"id", e.id}, {"host", e.host}};
}

std::optional<Envelope> EnvelopeFromJson(const nlohmann::json& j) {
  try {
    Envelope e;
    e.event.kind = j.at("kind").get<std::string>();
    e.event.severity = j.at("severity").get<std::string>();
    e.event.summary = j.at("summary").get<std::string>();
    e.event.time_ms = j.at("time_ms").get<int64_t>();
    for (const auto& d : j.at("details")) e.event.details.emplace_back(d.at(0).get<std::string>(), d.at(1).get<std::string>());
    e.id = j.at("id").get<std::string>();
    e.host = j.at("host").get<std::string>();
    return e;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

}  // namespace

Notifier::Notifier(NotifierOptions options, std::unique_ptr<HttpPoster> poster, Clock* clock)
    : options_(std::move(options)), poster_(std::move(poster)), clock_(clock), rng_(std::random_device{}()) {
  if (!options_.log) options_.log = [](const nlohmann::json&) {};
}

Notifier::~Notifier() { Stop(); }

bool Notifier::Wanted(const std::string& kind) const { return options_.kinds.empty() || options_.kinds.count(kind); }

void Notifier::Raise(OperatorEvent event) {
  Item item;
  item.envelope = {std::move(event), NewEventId(), options_.host};
  const OperatorEvent& ev = item.envelope.event;
  nlohmann::json line = {{"event", "operator_event"}, {"kind", ev.kind}, {"severity", ev.severity},
                         {"summary", ev.summary}, {"id", item.envelope.id}};
  for (const auto& [k, v] : ev.details) line["details"][k] = v;
  options_.log(line);
  item.webhook_pending = options_.webhook.has_value();
  item.email_pending = options_.email.has_value();
  if (!item.pending() || !Wanted(ev.kind)) return;
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= options_.queue_limit) {
      ++dropped_;
      options_.log({{"event", "notify_dropped"}, {"kind", ev.kind}, {"id", item.envelope.id},
                    {"queued", queue_.size()}, {"dropped", dropped_},
                    {"message", "the notification queue is full; this event is not sent"}});
      return;
    }
    queue_.push_back(std::move(item));
  }
  cv_.notify_all();
}

void Notifier::Start() {
  LoadSpool();
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stopping_ = false;
  cancel_ = false;
  thread_ = std::thread([this] { Loop(); });
}

void Notifier::Stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cancel_ = true;
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::deque<Item> left;
  {
    std::lock_guard lock(mu_);
    left.swap(queue_);
  }
  WriteSpool(std::move(left));
}

size_t Notifier::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

size_t Notifier::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

bool Notifier::Wait(int64_t ms) {
  std::unique_lock lock(mu_);
  cv_.wait_for(lock, std::chrono::milliseconds(ms), [this] { return stopping_; });
  return !stopping_;
}

void Notifier::Loop() {
  for (;;) {
    Item item;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    Deliver(&item);
    if (item.pending()) {
      std::lock_guard lock(mu_);
      if (stopping_) {  // cut short by Stop: spooled with the rest
        queue_.push_front(std::move(item));
        return;
      }
    }
  }
}

void Notifier::DeliverQueued() {
  for (;;) {
    Item item;
    {
      std::lock_guard lock(mu_);
      if (queue_.empty()) return;
      item = std::move(queue_.front());
      queue_.pop_front();
    }
    Deliver(&item);
  }
}

void Notifier::Deliver(Item* item) {
  const Envelope& e = item->envelope;
  auto unit = [this] { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); };
  auto sleep = [this](int64_t ms) { return Wait(ms); };
  bool cut_short = false;
  if (item->webhook_pending) {
    auto now_s = [this] { return clock_->NowMillis() / 1000; };
    DeliveryResult r = DeliverWebhook(*options_.webhook, e, poster_.get(), now_s, sleep, unit, &cancel_);
    if (r.delivered) {
      item->webhook_pending = false;
      options_.log({{"event", "notify_delivered"}, {"channel", "webhook"}, {"kind", e.event.kind},
                    {"id", e.id}, {"attempts", r.attempts}, {"status", r.last_status}});
    } else {
      std::lock_guard lock(mu_);
      cut_short = stopping_;
    }
    if (!r.delivered && !cut_short) {
      item->webhook_pending = false;  // given up: logged, not retried again
      options_.log({{"event", "notify_failed"}, {"channel", "webhook"}, {"kind", e.event.kind}, {"id", e.id},
                    {"attempts", r.attempts}, {"status", r.last_status}, {"error", r.last_error}});
    }
  }
  if (item->email_pending && !cut_short) {
    const std::string message = FormatEmail(*options_.email, e);
    const RetryPolicy retry = options_.webhook ? options_.webhook->retry : RetryPolicy{};
    int attempts = 0;
    Status sent = OkStatus();
    for (;;) {
      ++attempts;
      sent = SendMail(*options_.email, message);
      if (sent || attempts >= retry.max_attempts) break;
      if (!sleep(BackoffDelayMs(retry, attempts, unit()))) {
        cut_short = true;
        break;
      }
    }
    if (sent) {
      item->email_pending = false;
      options_.log({{"event", "notify_delivered"}, {"channel", "email"}, {"kind", e.event.kind},
                    {"id", e.id}, {"attempts", attempts}});
    } else if (!cut_short) {
      item->email_pending = false;
      options_.log({{"event", "notify_failed"}, {"channel", "email"}, {"kind", e.event.kind}, {"id", e.id},
                    {"attempts", attempts}, {"error", sent.error().message()}});
    }
  }
}

nlohmann::json Notifier::SendTest(const std::string& requested_by) {
  OperatorEvent ev;
  ev.kind = kEventTest;
  ev.severity = "info";
  ev.summary = "test notification from snapvold" + (requested_by.empty() ? "" : ", sent by " + requested_by);
  ev.time_ms = clock_->NowMillis();
  if (!requested_by.empty()) ev.details.emplace_back("requested_by", requested_by);
  Envelope e{std::move(ev), NewEventId(), options_.host};
  nlohmann::json out = {{"id", e.id}};
  if (options_.webhook) {
    WebhookTarget once = *options_.webhook;
    once.retry.max_attempts = 1;
    DeliveryResult r = DeliverWebhook(
        once, e, poster_.get(), [this] { return clock_->NowMillis() / 1000; }, [](int64_t) { return false; },
        [] { return 0.0; });
    out["webhook"] = {{"delivered", r.delivered}, {"attempts", r.attempts}, {"status", r.last_status}};
    if (!r.delivered) out["webhook"]["error"] = r.last_error;
  }
  if (options_.email) {
    Status sent = SendMail(*options_.email, FormatEmail(*options_.email, e));
    out["email"] = {{"delivered", sent.has_value()}, {"attempts", 1}};
    if (!sent) out["email"]["error"] = sent.error().message();
  }
  options_.log({{"event", "notify_test"}, {"result", out}});
  return out;
}

void Notifier::LoadSpool() {
  if (options_.spool_path.empty() || !PathExists(options_.spool_path)) return;
  auto data = ReadWholeFile(options_.spool_path);
  if (!data) {
    options_.log({{"event", "notify_spool_unreadable"}, {"path", options_.spool_path}, {"error", data.error().message()}});
    return;
  }
  std::string text(data->begin(), data->end());
  size_t loaded = 0, skipped = 0;
  std::deque<Item> items;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? text.size() : nl + 1;
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line, nullptr, false);
    std::optional<Envelope> e = j.is_object() && j.contains("envelope") ? EnvelopeFromJson(j["envelope"]) : std::nullopt;
    if (!e) {
      ++skipped;
      continue;
    }
    Item item;
    item.envelope = std::move(*e);
    // Channels removed from the configuration since are not used.
    item.webhook_pending = options_.webhook && j.value("webhook", false);
    item.email_pending = options_.email && j.value("email", false);
    if (!item.pending()) {
      ++skipped;
      continue;
    }
    items.push_back(std::move(item));
    ++loaded;
  }
  {
    std::lock_guard lock(mu_);
    for (auto& it : items) {
      if (queue_.size() >= options_.queue_limit) {
        ++dropped_;
        continue;
      }
      queue_.push_back(std::move(it));
    }
  }
  if (::unlink(options_.spool_path.c_str()) != 0 && errno != ENOENT)
    options_.log({{"event", "notify_spool_unreadable"}, {"path", options_.spool_path}, {"error", std::strerror(errno)}});
  options_.log({{"event", "notify_spool_loaded"}, {"path", options_.spool_path}, {"events", loaded}, {"skipped", skipped}});
}

void Notifier::WriteSpool(std::deque<Item> items) {
  if (options_.spool_path.empty()) {
    if (!items.empty()) options_.log({{"event", "notify_unsent"}, {"events", items.size()}});
    return;
  }
  if (items.empty()) return;  // Start() removed the file it loaded
  std::string text;
  for (const auto& it : items)
    text += nlohmann::json{{"envelope", EnvelopeJson(it.envelope)}, {"webhook", it.webhook_pending},
                           {"email", it.email_pending}}
                .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
            "\n";
  auto st = WriteFileAtomic(options_.spool_path, AsBytes(text), 0600);
  options_.log({{"event", st ? "notify_spooled" : "notify_spool_failed"}, {"path", options_.spool_path},
                {"events", items.size()}, {"error", st ? "" : st.error().message()}});
}

}  // namespace snapvol::notify
