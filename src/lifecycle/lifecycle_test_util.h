// Times for the lifecycle tests: epoch milliseconds of a UTC date and time.
#pragma once

#include <chrono>
#include <cstdint>

namespace snapvol::lifecycle::testing_util {

inline constexpr int64_t kMin = 60'000;
inline constexpr int64_t kHour = 60 * kMin;
inline constexpr int64_t kDay = 24 * kHour;

inline int64_t At(int y, unsigned mo, unsigned d, int h = 0, int mi = 0) {
  namespace chr = std::chrono;
  chr::sys_days day{chr::year{y} / chr::month{mo} / chr::day{d}};
  return day.time_since_epoch().count() * kDay + h * kHour + mi * kMin;
}

}  // namespace snapvol::lifecycle::testing_util
