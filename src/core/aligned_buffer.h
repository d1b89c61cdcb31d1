// A byte buffer whose start is aligned to a page (4096 bytes), as O_DIRECT writes need.
// Thread-safety: none (one owner).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

namespace snapvol {

class AlignedBuffer {
 public:
  static constexpr size_t kAlignment = 4096;
  uint8_t* data() { return data_.get(); }
  size_t size() const { return size_; }
  // Grows to at least n bytes (contents are not kept); never shrinks.
  void Reserve(size_t n) {
    if (n <= size_) return;
    data_.reset(static_cast<uint8_t*>(::operator new(n, std::align_val_t{kAlignment})));
    size_ = n;
  }

 private:
  struct Free {
    void operator()(uint8_t* p) const { ::operator delete(p, std::align_val_t{kAlignment}); }
  };
  std::unique_ptr<uint8_t, Free> data_;
  size_t size_ = 0;
};

}  // namespace snapvol
