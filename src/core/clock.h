// Wall clock behind an interface so tests can move time by hand.
// Thread-safety: both implementations are safe from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace snapvol {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch, UTC.
  virtual int64_t NowMillis() const = 0;
  static Clock* Real();  // process-wide; never deleted
};

class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t now_ms) : now_ms_(now_ms) {}
  int64_t NowMillis() const override { return now_ms_.load(); }
  void Advance(int64_t ms) { now_ms_ += ms; }
  void Set(int64_t ms) { now_ms_ = ms; }

 private:
  std::atomic<int64_t> now_ms_;
};

// "2026-11-26T02:00:00.000Z"
std::string FormatIso8601(int64_t millis);
// "2026-11-26T02:00:00Z" or with a fraction ("…:00.5Z", "…:00.123456Z"; digits past the
// millisecond are dropped) → epoch ms. Anything else → kInvalidArgument.
Result<int64_t> ParseIso8601(std::string_view text);

}  // namespace snapvol
