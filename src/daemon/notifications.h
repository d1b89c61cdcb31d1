// The daemon's notifications: the --notify-… and --store-full-threshold flags, the Notifier
// (the EventSink every layer raises operator events through), the store space monitor, and the
// hook behind POST /api/v1/notifications/test. Keeps main.cc's part to a few lines.
// Thread-safety: sink() and TestHook() may be used from any thread; Start/Stop from one.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/status.h"
#include "notify/notifier.h"
#include "notify/notify_config.h"
#include "notify/store_space.h"

namespace snapvol {

struct NotifyFlags {
  notify::NotifySettings settings;
  int store_full_threshold = 90;  // percent; 0: not measured
};

void AddNotifyFlags(CLI::App& app, NotifyFlags* flags);

class DaemonNotifications {
 public:
  // Checks the flags (refusing bad values by name); nothing starts yet.
  static Result<std::unique_ptr<DaemonNotifications>> Create(const NotifyFlags& flags, const std::string& data_dir,
                                                             std::function<void(const nlohmann::json&)> log);
  ~DaemonNotifications();  // Stop()

  EventSink* sink() { return notifier_.get(); }
  // For Ec2ServiceOptions::notify_test.
  std::function<std::string(const std::string&)> TestHook();

  // Loads spooled events, starts delivery and (for a local store) the space monitor.
  void Start();
  // Stops the monitor and the delivery (spooling what is left). After the last raiser stopped.
  void Stop();

 private:
  DaemonNotifications() = default;
  std::string data_dir_;
  int threshold_ = 0;
  std::function<void(const nlohmann::json&)> log_;
  std::unique_ptr<notify::Notifier> notifier_;
  std::unique_ptr<notify::StoreSpaceMonitor> monitor_;
};

}  // namespace snapvol
