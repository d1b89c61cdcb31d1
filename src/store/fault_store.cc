#include "store/fault_store.h"

#include <map>

namespace snapvol {
namespace {

// Holds added objects in memory until Commit, like unsynced page cache.
class FaultBatch : public WriteBatch {
 public:
  explicit FaultBatch(FaultInjectingStore* store) : store_(store), epoch_(store->crash_epoch()) {}

  Status Add(const std::string& key, std::span<const uint8_t> data) override {
    if (!IsValidObjectKey(key)) return InvalidArgument("invalid object key '" + key + "'");
    RETURN_IF_ERROR(store_->CheckWrite(data.size()));
    std::lock_guard lock(mu_);
    pending_bytes_ += data.size();
    pending_[key].assign(data.begin(), data.end());
    return OkStatus();
  }

  Status Commit() override {
    std::map<std::string, std::vector<uint8_t>> items;
    {
      std::lock_guard lock(mu_);
      items.swap(pending_);
      pending_bytes_ = 0;
    }
    if (store_->crash_epoch() != epoch_)
      return MakeError(ErrorCode::kIoError, "simulated crash lost uncommitted writes");
    for (auto& [key, data] : items) RETURN_IF_ERROR(store_->base()->Put(key, data));
    return OkStatus();
  }

  uint64_t PendingBytes() const override {
    std::lock_guard lock(mu_);
    return pending_bytes_;
  }

 private:
  FaultInjectingStore* store_;
  uint64_t epoch_;
  mutable std::mutex mu_;
  std::map<std::string, std::vector<uint8_t>> pending_;  // guarded by mu_
  uint64_t pending_bytes_ = 0;                           // guarded by mu_
};

}  // namespace

Status FaultInjectingStore::CheckWrite(size_t bytes) {
  uint64_t n = ++writes_;
  uint64_t from = fail_writes_from_;
  if (from != 0 && n >= from)
    return MakeError(ErrorCode::kIoError, "injected write failure", /*retryable=*/true);
  int64_t left = space_left_;
  if (left >= 0) {
    if (static_cast<int64_t>(bytes) > left)
      return MakeError(ErrorCode::kNoSpace, "injected: no space left on device");
    space_left_ -= static_cast<int64_t>(bytes);
  }
  return OkStatus();
}

Status FaultInjectingStore::Put(const std::string& key, std::span<const uint8_t> data) {
  RETURN_IF_ERROR(CheckWrite(data.size()));
  return base_->Put(key, data);
}

Result<std::vector<uint8_t>> FaultInjectingStore::Get(const std::string& key) {
  uint64_t n = ++reads_;
  uint64_t from = fail_reads_from_;
  if (from != 0 && n >= from)
    return MakeError(ErrorCode::kIoError, "injected read failure", /*retryable=*/true);
  ASSIGN_OR_RETURN(std::vector<uint8_t> data, base_->Get(key));
  std::lock_guard lock(mu_);
  if (!corrupt_prefix_.empty() && key.compare(0, corrupt_prefix_.size(), corrupt_prefix_) == 0 &&
      !data.empty())
    data[data.size() / 2] ^= 0x40;
  return data;
}

Result<std::vector<uint8_t>> FaultInjectingStore::GetRange(const std::string& key, uint64_t offset, uint64_t length) {
  uint64_t n = ++reads_;
  uint64_t from = fail_reads_from_;
  if (from != 0 && n >= from)
    return MakeError(ErrorCode::kIoError, "injected read failure", /*retryable=*/true);
  ASSIGN_OR_RETURN(std::vector<uint8_t> data, base_->GetRange(key, offset, length));
  std::lock_guard lock(mu_);
  if (!corrupt_prefix_.empty() && key.compare(0, corrupt_prefix_.size(), corrupt_prefix_) == 0 &&
      !data.empty())
    data[data.size() / 2] ^= 0x40;
  return data;
}

std::unique_ptr<WriteBatch> FaultInjectingStore::NewBatch() {
  return std::make_unique<FaultBatch>(this);
}

}  // namespace snapvol
