// CountingStore: counts failed store operations (see counting_store.h).
#include "store/counting_store.h"

#include <utility>

#include "core/service_metrics.h"

namespace snapvol {

void CountStoreError(const char* op, const Error& error) {
  if (error.code() == ErrorCode::kNotFound) return;
  ServiceMetrics().store_errors.With({op, StoreErrorKind(error.code())})->Add();
}

namespace {

template <typename R>
R Counted(const char* op, R r) {
  if (!r) CountStoreError(op, r.error());
  return r;
}

class CountingWriter : public ObjectWriter {
 public:
  explicit CountingWriter(std::unique_ptr<ObjectWriter> inner) : inner_(std::move(inner)) {}
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override {
    return Counted("put", inner_->WriteAt(offset, data));
  }
  Status Seal(uint64_t size) override { return Counted("put", inner_->Seal(size)); }

 private:
  std::unique_ptr<ObjectWriter> inner_;
};

class CountingBatch : public WriteBatch {
 public:
  explicit CountingBatch(std::unique_ptr<WriteBatch> inner) : inner_(std::move(inner)) {}
  Status Add(const std::string& key, std::span<const uint8_t> data) override {
    return Counted("put", inner_->Add(key, data));
  }
  Status Add(const std::string& key, std::unique_ptr<uint8_t[]> bytes, size_t size) override {
    return Counted("put", inner_->Add(key, std::move(bytes), size));
  }
  Result<std::unique_ptr<ObjectWriter>> NewObject(const std::string& key, uint64_t size_hint) override {
    ASSIGN_OR_RETURN(auto inner, Counted("put", inner_->NewObject(key, size_hint)));
    return std::unique_ptr<ObjectWriter>(new CountingWriter(std::move(inner)));
  }
  Status Commit() override { return Counted("commit", inner_->Commit()); }
  uint64_t PendingBytes() const override { return inner_->PendingBytes(); }

 private:
  std::unique_ptr<WriteBatch> inner_;
};

class CountingStore : public ObjectStore {
 public:
  explicit CountingStore(std::unique_ptr<ObjectStore> inner) : inner_(std::move(inner)) {}
  Status Put(const std::string& key, std::span<const uint8_t> data) override {
    return Counted("put", inner_->Put(key, data));
  }
  Result<std::vector<uint8_t>> Get(const std::string& key) override { return Counted("get", inner_->Get(key)); }
  Result<std::vector<uint8_t>> GetRange(const std::string& key, uint64_t offset, uint64_t length) override {
    return Counted("get", inner_->GetRange(key, offset, length));
  }
  Result<bool> Exists(const std::string& key) override { return Counted("exists", inner_->Exists(key)); }
  Status Delete(const std::string& key) override { return Counted("delete", inner_->Delete(key)); }
  Status DeleteMany(const std::vector<std::string>& keys) override {
    return Counted("delete", inner_->DeleteMany(keys));
  }
  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override {
    return Counted("list", inner_->List(prefix));
  }
  Status Touch(const std::string& key) override { return Counted("touch", inner_->Touch(key)); }
  std::unique_ptr<WriteBatch> NewBatch() override { return std::make_unique<CountingBatch>(inner_->NewBatch()); }
  Result<uint64_t> RemoveStaleTemporaries(int64_t older_than_ms) override {
    return Counted("clean", inner_->RemoveStaleTemporaries(older_than_ms));
  }
  size_t ParallelReads() const override { return inner_->ParallelReads(); }
  uint64_t CoalescedReadBytes() const override { return inner_->CoalescedReadBytes(); }
  std::string Describe() const override { return inner_->Describe(); }

 private:
  std::unique_ptr<ObjectStore> inner_;
};

}  // namespace

std::unique_ptr<ObjectStore> NewCountingStore(std::unique_ptr<ObjectStore> inner) {
  return std::make_unique<CountingStore>(std::move(inner));
}

}  // namespace snapvol
