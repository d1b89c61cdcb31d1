#include "notify/store_space.h"

#include <sys/statvfs.h>

#include <cmath>
#include <cstdio>

namespace snapvol::notify {

Result<SpaceUsage> MeasureSpace(const std::string& path) {
  struct statvfs s {};
  if (statvfs(path.c_str(), &s) != 0) return std::unexpected(PosixError("statvfs " + path, errno));
  SpaceUsage u;
  const uint64_t unit = s.f_frsize ? s.f_frsize : s.f_bsize;
  u.total_bytes = static_cast<uint64_t>(s.f_blocks) * unit;
  u.used_bytes = static_cast<uint64_t>(s.f_blocks - s.f_bfree) * unit;
  u.available_bytes = static_cast<uint64_t>(s.f_bavail) * unit;
  const uint64_t denom = u.used_bytes + u.available_bytes;
  u.used_percent = denom ? 100.0 * static_cast<double>(u.used_bytes) / static_cast<double>(denom) : 0;
  return u;
}

StoreSpaceMonitor::StoreSpaceMonitor(std::string path, int threshold_percent, EventSink* sink, Clock* clock,
                                     Measure measure)
    : path_(std::move(path)), threshold_(threshold_percent), sink_(sink), clock_(clock), measure_(std::move(measure)) {}

StoreSpaceMonitor::~StoreSpaceMonitor() { Stop(); }

Result<SpaceUsage> StoreSpaceMonitor::Check() {
  ASSIGN_OR_RETURN(SpaceUsage u, measure_(path_));
  const bool above = u.used_percent >= threshold_;
  if (above && !above_) {
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.1f", u.used_percent);
    OperatorEvent ev;
    ev.kind = kEventStoreFilling;
    ev.severity = u.used_percent >= 98 ? "error" : "warning";
    ev.summary = std::string("the snapshot store's file system is ") + pct + "% full (threshold " +
                 std::to_string(threshold_) + "%)";
    ev.time_ms = clock_->NowMillis();
    ev.details = {{"path", path_},
                  {"used_percent", pct},
                  {"threshold_percent", std::to_string(threshold_)},
                  {"used_bytes", std::to_string(u.used_bytes)},
                  {"available_bytes", std::to_string(u.available_bytes)},
                  {"total_bytes", std::to_string(u.total_bytes)}};
    sink_->Raise(std::move(ev));
  }
  above_ = above;
  return u;
}

void StoreSpaceMonitor::Start(int64_t interval_ms) {
  std::lock_guard lock(mu_);
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this, interval_ms] {
    std::unique_lock held(mu_);
    bool failing = false;
    while (!stop_) {
      held.unlock();
      auto u = Check();  // a failed statvfs is tried again next time
      if (!u && !failing && on_error) on_error(u.error());
      failing = !u;
      held.lock();
      cv_.wait_for(held, std::chrono::milliseconds(interval_ms), [this] { return stop_; });
    }
  });
}

void StoreSpaceMonitor::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace snapvol::notify
