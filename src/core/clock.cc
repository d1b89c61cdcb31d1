#include "core/clock.h"

#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <thread>

namespace snapvol {
namespace {
class RealClock : public Clock {
 public:
  int64_t NowMillis() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  void SleepMillis(int64_t ms) override {
    if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  }
};
}  // namespace

Clock* Clock::Real() {
  static RealClock* clock = new RealClock();
  return clock;
}

std::string FormatIso8601(int64_t millis) {
  time_t secs = static_cast<time_t>(millis / 1000);
  int ms = static_cast<int>(millis % 1000);
  if (ms < 0) { ms += 1000; --secs; }
  struct tm tm {};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

Result<int64_t> ParseIso8601(std::string_view s) {
  auto bad = [&] { return InvalidArgument("'" + std::string(s) + "' is not a UTC time like 2026-11-26T02:00:00Z"); };
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' || s.back() != 'Z')
    return bad();
  auto num = [&](size_t pos, size_t len, int64_t lo, int64_t hi, int64_t* out) {
    auto [p, ec] = std::from_chars(s.data() + pos, s.data() + pos + len, *out);
    return ec == std::errc() && p == s.data() + pos + len && *out >= lo && *out <= hi;
  };
  int64_t y, mo, d, h, mi, sec;
  if (!num(0, 4, 1970, 9999, &y) || !num(5, 2, 1, 12, &mo) || !num(8, 2, 1, 31, &d) || !num(11, 2, 0, 23, &h) ||
      !num(14, 2, 0, 59, &mi) || !num(17, 2, 0, 60, &sec))
    return bad();
  int64_t ms = 0;
  std::string_view frac = s.substr(19, s.size() - 20);
  if (!frac.empty()) {
    if (frac[0] != '.' || frac.size() < 2 || frac.find_first_not_of("0123456789", 1) != std::string_view::npos)
      return bad();
    for (size_t i = 1; i <= 3; ++i) ms = ms * 10 + (i < frac.size() ? frac[i] - '0' : 0);
  }
  std::tm tm{};
  tm.tm_year = static_cast<int>(y - 1900);
  tm.tm_mon = static_cast<int>(mo - 1);
  tm.tm_mday = static_cast<int>(d);
  tm.tm_hour = static_cast<int>(h);
  tm.tm_min = static_cast<int>(mi);
  tm.tm_sec = static_cast<int>(sec);
  time_t t = ::timegm(&tm);
  if (t == static_cast<time_t>(-1) || tm.tm_mday != d) return bad();  // 31 February and the like
  return static_cast<int64_t>(t) * 1000 + ms;
}

}  // namespace snapvol
