#include "daemon/notifications.h"

#include "core/file_util.h"

namespace snapvol {

void AddNotifyFlags(CLI::App& app, NotifyFlags* f) {
  auto& s = f->settings;
  app.add_option("--notify-webhook-url", s.webhook_url,
                 "POST operator events (failed runs and snapshots, damage, GC failures, a filling store) as "
                 "signed JSON to this http(s) URL (default: none)");
  app.add_option("--notify-webhook-secret-file", s.webhook_secret_file,
                 "File (mode 0600) holding the shared secret that signs each webhook request (HMAC-SHA256)");
  app.add_option("--notify-webhook-attempts", s.webhook_attempts,
                 "Attempts per event when the webhook fails (network error, 5xx, 429), with exponential "
                 "backoff from 1 s (default 5)")
      ->check(CLI::Range(1, 20));
  app.add_option("--notify-email-to", s.email_to,
                 "Mail operator events to these addresses (repeat, or a comma list) through the local MTA")
      ->delimiter(',');
  app.add_option("--notify-email-from", s.email_from, "Sender address of those mails (default snapvold@HOST)");
  app.add_option("--notify-sendmail", s.sendmail,
                 "The MTA's sendmail program, run as PROGRAM -t -oi (default /usr/sbin/sendmail)");
  app.add_option("--notify-events", s.events,
                 "Event kinds to send (comma list): all (default), lifecycle-run-failed, snapshot-failed, "
                 "verify-damage, gc-failed, store-filling")
      ->delimiter(',');
  app.add_option("--store-full-threshold", f->store_full_threshold,
                 "Raise store-filling when the local store's file system is this percent full "
                 "(default 90; 0: do not measure)")
      ->check(CLI::Range(0, 100));
}

Result<std::unique_ptr<DaemonNotifications>> DaemonNotifications::Create(
    const NotifyFlags& flags, const std::string& data_dir, std::function<void(const nlohmann::json&)> log) {
  ASSIGN_OR_RETURN(notify::NotifierOptions o,
                   notify::MakeNotifierOptions(flags.settings, notify::HostName(), data_dir + "/notify-spool.jsonl"));
  o.log = log;
  std::unique_ptr<DaemonNotifications> n(new DaemonNotifications());
  n->data_dir_ = data_dir;
  n->threshold_ = flags.store_full_threshold;
  n->log_ = std::move(log);
  n->notifier_ = std::make_unique<notify::Notifier>(std::move(o), notify::MakeCurlPoster());
  return n;
}

DaemonNotifications::~DaemonNotifications() { Stop(); }

std::function<std::string(const std::string&)> DaemonNotifications::TestHook() {
  return [this](const std::string& requested_by) -> std::string {
    if (!notifier_->configured()) return "";
    return notifier_->SendTest(requested_by).dump();
  };
}

void DaemonNotifications::Start() {
  notifier_->Start();
  nlohmann::json line = {{"event", "notifications"},
                         {"channels", nlohmann::json::array()},
                         {"store_full_threshold", threshold_}};
  const auto& o = notifier_->options();
  if (o.webhook) line["channels"].push_back({{"webhook", o.webhook->url}, {"attempts", o.webhook->retry.max_attempts}});
  if (o.email) line["channels"].push_back({{"email", o.email->to}, {"from", o.email->from}, {"sendmail", o.email->sendmail}});
  if (notifier_->configured()) line["spool"] = data_dir_ + "/notify-spool.jsonl";
  if (threshold_ == 0) {
    line["store_space"] = "not measured (--store-full-threshold 0)";
  } else if (PathExists(data_dir_ + "/store.json")) {
    // An S3 store's capacity is the object store's business (quotas, cluster health): no
    // statvfs says how full a bucket is.
    line["store_space"] = "not measured: the store is in S3";
  } else {
    monitor_ = std::make_unique<notify::StoreSpaceMonitor>(data_dir_ + "/store", threshold_, notifier_.get());
    monitor_->on_error = [log = log_](const Error& e) {
      log({{"event", "store_space_unmeasured"}, {"error", e.message()}});
    };
    monitor_->Start();
    line["store_space"] = "measured every 60 s";
  }
  log_(line);
}

void DaemonNotifications::Stop() {
  if (monitor_) monitor_->Stop();
  if (notifier_) notifier_->Stop();
}

}  // namespace snapvol
