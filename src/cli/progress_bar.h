// A one-line progress bar on stderr, drawn only when stderr is a terminal and at most ten
// times a second. Thread-safety: one thread at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace snapvol {

class ProgressBar {
 public:
  explicit ProgressBar(std::string label);
  ~ProgressBar();
  void Update(uint64_t done, uint64_t total);
  void Finish();

 private:
  std::string label_;
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, last_;
};

}  // namespace snapvol
