#include "store/object_store.h"

#include <atomic>

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

}  // namespace

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
