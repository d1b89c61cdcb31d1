// A byte count as people read it: "512 B", "1.5 KiB", "816.3 MiB" (binary units, one decimal).
// Thread-safety: a pure function.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace snapvol {

inline std::string HumanBytes(uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char buf[48];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

}  // namespace snapvol
