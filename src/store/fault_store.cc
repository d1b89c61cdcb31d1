#include "store/fault_store.h"

#include <algorithm>
#include <map>
#include <mutex>

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

  // Each WriteAt of an object written in place is a write that can fail (a full disk while a
  // job thread writes its object into a pack); Seal only hands the bytes to the batch.
  Result<std::unique_ptr<ObjectWriter>> NewObject(const std::string& key, uint64_t size_hint) override;

  void AddSealed(const std::string& key, std::vector<uint8_t> data) {
    std::lock_guard lock(mu_);
    pending_bytes_ += data.size();
    pending_[key] = std::move(data);
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

class FaultWriter : public ObjectWriter {
 public:
  FaultWriter(FaultInjectingStore* store, FaultBatch* batch, std::string key)
      : store_(store), batch_(batch), key_(std::move(key)) {}
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override {
    RETURN_IF_ERROR(store_->CheckWrite(data.size()));
    std::lock_guard lock(mu_);
    if (bytes_.size() < offset + data.size()) bytes_.resize(offset + data.size());
    std::copy(data.begin(), data.end(), bytes_.begin() + static_cast<ptrdiff_t>(offset));
    return OkStatus();
  }
  Status Seal(uint64_t size) override {
    std::lock_guard lock(mu_);
    if (size != bytes_.size())
      return InvalidArgument("object " + key_ + ": sealed at " + std::to_string(size) + " bytes, but " +
                             std::to_string(bytes_.size()) + " were written");
    batch_->AddSealed(key_, std::move(bytes_));
    return OkStatus();
  }

 private:
  FaultInjectingStore* store_;
  FaultBatch* batch_;
  std::string key_;
  std::mutex mu_;
  std::vector<uint8_t> bytes_;  // guarded by mu_
};

Result<std::unique_ptr<ObjectWriter>> FaultBatch::NewObject(const std::string& key, uint64_t /*size_hint*/) {
  if (!IsValidObjectKey(key)) return InvalidArgument("invalid object key '" + key + "'");
  return std::unique_ptr<ObjectWriter>(new FaultWriter(store_, this, key));
}

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
