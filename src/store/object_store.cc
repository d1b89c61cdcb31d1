#include "store/object_store.h"

#include <atomic>
#include <algorithm>
#include <cstring>
#include <mutex>

namespace snapvol {
namespace {

class DirectBatch : public WriteBatch {
 public:
  explicit DirectBatch(ObjectStore* store) : store_(store) {}
  Status Add(const std::string& key, std::span<const uint8_t> data) override {
    RETURN_IF_ERROR(store_->Put(key, data));
    pending_ += data.size();
    return OkStatus();
  }
  Status Commit() override {
    pending_ = 0;
    return OkStatus();
  }
  uint64_t PendingBytes() const override { return pending_; }

 private:
  ObjectStore* store_;
  std::atomic<uint64_t> pending_{0};
};

// The default ObjectWriter: the object in memory, added to the batch whole at Seal. Writes
// copy under a lock (growing the buffer past the hint moves what it holds).
class BufferedObjectWriter : public ObjectWriter {
 public:
  BufferedObjectWriter(WriteBatch* batch, std::string key, uint64_t size_hint)
      : batch_(batch), key_(std::move(key)), capacity_(size_hint), bytes_(new uint8_t[size_hint]) {}
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override {
    if (offset > kMaxObjectBytes || data.size() > kMaxObjectBytes - offset)
      return InvalidArgument("object " + key_ + ": a write at " + std::to_string(offset) + " of " +
                             std::to_string(data.size()) + " bytes is too large to hold in memory");
    std::lock_guard lock(mu_);
    const uint64_t end = offset + data.size();
    if (end > capacity_) {
      uint64_t grown = std::max(end, capacity_ + capacity_ / 2);
      std::unique_ptr<uint8_t[]> bigger(new uint8_t[grown]);
      std::memcpy(bigger.get(), bytes_.get(), size_);
      bytes_ = std::move(bigger);
      capacity_ = grown;
    }
    std::memcpy(bytes_.get() + offset, data.data(), data.size());
    size_ = std::max(size_, end);
    return OkStatus();
  }
  Status Seal(uint64_t size) override {
    std::lock_guard lock(mu_);
    if (size != size_)
      return InvalidArgument("object " + key_ + ": sealed at " + std::to_string(size) + " bytes, but " +
                             std::to_string(size_) + " were written");
    capacity_ = size_ = 0;  // the batch owns the bytes now
    return batch_->Add(key_, std::move(bytes_), size);
  }

 private:
  static constexpr uint64_t kMaxObjectBytes = uint64_t{1} << 32;
  WriteBatch* batch_;
  std::string key_;
  std::mutex mu_;
  uint64_t capacity_, size_ = 0;      // guarded by mu_
  std::unique_ptr<uint8_t[]> bytes_;  // guarded by mu_; not zeroed: Seal checks the size written
};

}  // namespace

Status WriteBatch::Add(const std::string& key, std::unique_ptr<uint8_t[]> bytes, size_t size) {
  return Add(key, std::span<const uint8_t>(bytes.get(), size));
}

Result<std::unique_ptr<ObjectWriter>> WriteBatch::NewObject(const std::string& key, uint64_t size_hint) {
  return std::unique_ptr<ObjectWriter>(new BufferedObjectWriter(this, key, size_hint));
}

Result<uint64_t> ObjectStore::Size(const std::string& key) {
  ASSIGN_OR_RETURN(std::vector<uint8_t> data, Get(key));
  return static_cast<uint64_t>(data.size());
}

Result<std::vector<uint8_t>> ObjectStore::GetRange(const std::string& key, uint64_t offset, uint64_t length) {
  ASSIGN_OR_RETURN(std::vector<uint8_t> data, Get(key));
  return SliceRange(key, data, offset, length);
}

Result<std::vector<uint8_t>> SliceRange(const std::string& key, std::span<const uint8_t> data,
                                        uint64_t offset, uint64_t length) {
  if (offset > data.size() || length > data.size() - offset)
    return Corruption("object " + key + " holds " + std::to_string(data.size()) + " bytes, fewer than the " +
                      std::to_string(length) + " asked for at offset " + std::to_string(offset));
  return std::vector<uint8_t>(data.begin() + static_cast<ptrdiff_t>(offset),
                              data.begin() + static_cast<ptrdiff_t>(offset + length));
}

std::unique_ptr<WriteBatch> ObjectStore::NewBatch() { return std::make_unique<DirectBatch>(this); }

Status ObjectStore::DeleteMany(const std::vector<std::string>& keys) {
  for (const auto& key : keys)
    if (!IsValidObjectKey(key)) return InvalidArgument("invalid object key '" + key + "'");
  for (const auto& key : keys) RETURN_IF_ERROR(Delete(key));
  return OkStatus();
}

bool IsValidObjectKey(const std::string& key) {
  if (key.empty() || key.size() > 512) return false;
  size_t seg_start = 0;
  for (size_t i = 0; i <= key.size(); ++i) {
    if (i == key.size() || key[i] == '/') {
      std::string_view seg(key.data() + seg_start, i - seg_start);
      if (seg.empty() || seg == "." || seg == ".." || seg.find(".tmp-") != seg.npos) return false;
      seg_start = i + 1;
      continue;
    }
    char c = key[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

}  // namespace snapvol
