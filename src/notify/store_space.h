// StoreSpaceMonitor: raises kEventStoreFilling when the file system of the local snapshot store
// is used past a threshold (as df counts it: used / (used + available to unprivileged users)).
// Edge-triggered: one event when the usage crosses the threshold upwards (or is past it at the
// first check), the next only after it has dropped below again. An S3 store is not measured.
// Thread-safety: Check() from one thread at a time; Start/Stop from one thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "core/clock.h"
#include "core/events.h"
#include "core/status.h"

namespace snapvol::notify {

struct SpaceUsage {
  uint64_t total_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t available_bytes = 0;
  double used_percent = 0;  // used / (used + available) * 100
};

// statvfs(path).
Result<SpaceUsage> MeasureSpace(const std::string& path);

class StoreSpaceMonitor {
 public:
  using Measure = std::function<Result<SpaceUsage>(const std::string&)>;
  StoreSpaceMonitor(std::string path, int threshold_percent, EventSink* sink, Clock* clock = Clock::Real(),
                    Measure measure = MeasureSpace);
  ~StoreSpaceMonitor();  // Stop()
  StoreSpaceMonitor(const StoreSpaceMonitor&) = delete;
  StoreSpaceMonitor& operator=(const StoreSpaceMonitor&) = delete;

  // One measurement; raises the event when the usage has just crossed the threshold. Returns
  // the usage measured, or why it could not be measured.
  Result<SpaceUsage> Check();

  // Check() now and every interval_ms until Stop().
  void Start(int64_t interval_ms = 60'000);
  void Stop();

  // Told when a periodic measurement fails (the first of a streak); set before Start().
  std::function<void(const Error&)> on_error;

 private:
  std::string path_;
  int threshold_;
  EventSink* sink_;
  Clock* clock_;
  Measure measure_;
  bool above_ = false;  // Check's thread only

  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace snapvol::notify
