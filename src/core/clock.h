// Wall clock behind an interface so tests can move time by hand.
// Thread-safety: both implementations are safe from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace snapvol {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch, UTC.
  virtual int64_t NowMillis() const = 0;
  // Waits ms milliseconds (a fake clock moves its time instead of waiting).
  virtual void SleepMillis(int64_t ms) = 0;
  static Clock* Real();  // process-wide; never deleted
};

class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t now_ms) : now_ms_(now_ms) {}
  int64_t NowMillis() const override { return now_ms_.load(); }
  // Advances the time by ms, then runs on_sleep (if set): a test's hook to act while code
  // under test waits.
  void SleepMillis(int64_t ms) override {
    Advance(ms);
    if (on_sleep) on_sleep();
  }
  void Advance(int64_t ms) { now_ms_ += ms; }
  void Set(int64_t ms) { now_ms_ = ms; }
  std::function<void()> on_sleep;  // set before the code under test runs

 private:
  std::atomic<int64_t> now_ms_;
};

// "2026-11-26T02:00:00.000Z"
std::string FormatIso8601(int64_t millis);
// "2026-11-26T02:00:00Z" or with a fraction ("…:00.5Z", "…:00.123456Z"; digits past the
// millisecond are dropped) → epoch ms. Anything else → kInvalidArgument.
Result<int64_t> ParseIso8601(std::string_view text);

}  // namespace snapvol
