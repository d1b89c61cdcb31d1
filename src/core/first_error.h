// The first error of a job whose tasks run on many threads: the first Set wins, later ones are
// dropped, and any task can ask whether the job has failed so it stops early.
// Thread-safety: every method may be called from many threads.
#pragma once

#include <mutex>
#include <optional>

#include "core/status.h"

namespace snapvol {

class FirstError {
 public:
  void Set(const Error& e) {
    std::lock_guard lock(mu_);
    if (!error_) error_ = e;
  }
  bool failed() const {
    std::lock_guard lock(mu_);
    return error_.has_value();
  }
  std::optional<Error> Get() const {
    std::lock_guard lock(mu_);
    return error_;
  }

 private:
  mutable std::mutex mu_;
  std::optional<Error> error_;  // guarded by mu_
};

}  // namespace snapvol
