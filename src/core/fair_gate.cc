#include "core/fair_gate.h"

#include <algorithm>
#include <thread>

namespace snapvol {

FairGate::FairGate(size_t width)
    : width_(width ? width : std::max<size_t>(4, 2 * std::max(1u, std::thread::hardware_concurrency()))) {}

FairGate::Pass FairGate::Enter() {
  std::unique_lock lock(mu_);
  if (active_ < width_ && waiters_.empty()) {
    ++active_;
    return Pass(this);
  }
  Waiter me;
  waiters_.push_back(&me);
  me.cv.wait(lock, [&] { return me.admitted; });
  // Leave handed its slot over: active_ already counts this caller.
  return Pass(this);
}

void FairGate::Leave() {
  std::lock_guard lock(mu_);
  if (waiters_.empty()) {
    --active_;
    return;
  }
  Waiter* next = waiters_.front();
  waiters_.pop_front();
  next->admitted = true;
  // Notified under the lock: the waiter's condition variable lives on its stack and is gone
  // as soon as it sees `admitted` and returns.
  next->cv.notify_one();
}

size_t FairGate::active() const {
  std::lock_guard lock(mu_);
  return active_;
}

size_t FairGate::waiting() const {
  std::lock_guard lock(mu_);
  return waiters_.size();
}

}  // namespace snapvol
