#include "cli/progress_bar.h"

#include <unistd.h>

#include <cstdio>

namespace snapvol {

ProgressBar::ProgressBar(std::string label, bool lines_otherwise)
    : label_(std::move(label)), enabled_(::isatty(STDERR_FILENO) == 1), lines_(lines_otherwise && !enabled_),
      start_(std::chrono::steady_clock::now()), last_() {}

ProgressBar::~ProgressBar() { Finish(); }

void ProgressBar::Update(uint64_t done, uint64_t total, const std::string& detail) {
  if (lines_) {
    int step = total ? static_cast<int>(done * 10 / total) * 10 : 100;
    if (step > last_line_pct_) {
      last_line_pct_ = step;
      std::fprintf(stderr, "%s: %d%%%s%s\n", label_.c_str(), step, detail.empty() ? "" : "  ", detail.c_str());
      std::fflush(stderr);
    }
    return;
  }
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (drawn_ && now - last_ < std::chrono::milliseconds(100) && done < total) return;
  last_ = now;
  drawn_ = true;
  double secs = std::chrono::duration<double>(now - start_).count();
  double rate = secs > 0 ? done / secs / 1e6 : 0;
  int pct = total ? static_cast<int>(done * 100 / total) : 100;
  int fill = pct * 30 / 100;
  std::fprintf(stderr, "\r%s [%.*s%*s] %3d%%  %.0f MB/s %s", label_.c_str(), fill,
               "##############################", 30 - fill, "", pct, rate, detail.c_str());
  std::fflush(stderr);
}

void ProgressBar::Finish() {
  if (enabled_ && drawn_) {
    std::fprintf(stderr, "\n");
    drawn_ = false;
  }
}

}  // namespace snapvol
