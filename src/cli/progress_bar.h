// A one-line progress bar on stderr, drawn only when stderr is a terminal and at most ten
// times a second; with lines_otherwise, stderr that is not a terminal (a log, a pipe) gets one
// plain line at every 10% instead. Thread-safety: one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace snapvol {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label, bool lines_otherwise = false);
  ~ProgressBar();
  // detail: shown after the percentage (e.g. "12/40 objects, 3.0/9.5 MiB").
  void Update(uint64_t done, uint64_t total, const std::string& detail = "");
  void Finish();

 private:
  std::string label_;
  bool enabled_;
  bool lines_;
  int last_line_pct_ = -1;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace snapvol
