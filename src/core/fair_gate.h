// Admits at most `width` callers at a time, in the order they arrived.
//
// An HTTP worker thread per keep-alive connection means 64 clients are 64 runnable threads
// on a 2-core machine: the scheduler and the unfair mutexes behind them let some requests
// wait for whole rounds while others go again and again (p99 near a second while p50 is a
// few ms). Passing every request through this gate keeps the number of requests on the CPU
// near the number of cores and serves the rest first come, first served.
// A free slot goes straight to the oldest waiter (no thundering herd, no overtaking).
// Thread-safety: Enter may be called from any thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>

namespace snapvol {

class FairGate {
 public:
  // width 0 means twice the number of cores, at least 4.
  explicit FairGate(size_t width = 0);
  FairGate(const FairGate&) = delete;
  FairGate& operator=(const FairGate&) = delete;

  // Holds a slot until destroyed.
  class Pass {
   public:
    Pass(Pass&& other) noexcept : gate_(other.gate_) { other.gate_ = nullptr; }
    Pass(const Pass&) = delete;
    Pass& operator=(const Pass&) = delete;
    Pass& operator=(Pass&&) = delete;
    ~Pass() {
      if (gate_) gate_->Leave();
    }

   private:
    friend class FairGate;
    explicit Pass(FairGate* gate) : gate_(gate) {}
    FairGate* gate_;
  };

  // Blocks until a slot is free and every caller that arrived earlier has one.
  [[nodiscard]] Pass Enter();

  size_t width() const { return width_; }
  // Callers inside and waiting, for tests and status.
  size_t active() const;
  size_t waiting() const;

 private:
  struct Waiter {
    std::condition_variable cv;
    bool admitted = false;
  };
  void Leave();

  const size_t width_;
  mutable std::mutex mu_;
  size_t active_ = 0;             // guarded by mu_
  std::deque<Waiter*> waiters_;   // oldest first; guarded by mu_
};

}  // namespace snapvol
