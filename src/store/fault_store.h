// FaultInjectingStore: wraps another ObjectStore and injects the failures real stores have:
// the Nth write or read fails, the disk fills up, reads return flipped bytes, and a simulated
// crash loses every batch write not yet committed.
// Thread-safety: safe from many threads; settings may change while in use.
#pragma once

#include <atomic>
#include <mutex>
#include <set>

#include "store/object_store.h"

namespace snapvol {

class FaultInjectingStore : public ObjectStore {
 public:
  explicit FaultInjectingStore(ObjectStore* base) : base_(base) {}

  // The write (Put or batch Add) numbered n (1-based, counted from now) and every later one
  // fails with a retryable IoError. 0 disables.
  void FailWritesFrom(uint64_t n) { writes_ = 0; fail_writes_from_ = n; }
  void FailReadsFrom(uint64_t n) { reads_ = 0; fail_reads_from_ = n; }
  // Writes fail with NoSpace once this many more bytes have been written. -1 disables.
  void SetSpaceLeft(int64_t bytes) { space_left_ = bytes; }
  // Gets of keys starting with prefix return data with one byte flipped.
  void CorruptReadsOf(const std::string& prefix) {
    std::lock_guard lock(mu_);
    corrupt_prefix_ = prefix;
  }
  // Simulates power loss: every uncommitted batch loses its writes, and its later Commit
  // fails.
  void Crash() { ++crash_epoch_; }

  Status Put(const std::string& key, std::span<const uint8_t> data) override;
  Result<std::vector<uint8_t>> Get(const std::string& key) override;
  // Fails and corrupts like Get; a corrupted range has its middle byte flipped.
  Result<std::vector<uint8_t>> GetRange(const std::string& key, uint64_t offset, uint64_t length) override;
  Result<bool> Exists(const std::string& key) override { return base_->Exists(key); }
  Result<uint64_t> Size(const std::string& key) override { return base_->Size(key); }
  Status Delete(const std::string& key) override { return base_->Delete(key); }
  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override { return base_->List(prefix); }
  Status Touch(const std::string& key) override { return base_->Touch(key); }
  std::unique_ptr<WriteBatch> NewBatch() override;
  size_t ParallelReads() const override { return base_->ParallelReads(); }
  uint64_t CoalescedReadBytes() const override { return base_->CoalescedReadBytes(); }
  std::string Describe() const override { return "faulty(" + base_->Describe() + ")"; }

  uint64_t writes() const { return writes_; }
  uint64_t reads() const { return reads_; }

  // Internal, used by the batch: counts a write and returns the injected failure, if any.
  Status CheckWrite(size_t bytes);
  uint64_t crash_epoch() const { return crash_epoch_; }
  ObjectStore* base() { return base_; }

 private:
  ObjectStore* base_;
  std::atomic<uint64_t> writes_{0}, reads_{0};
  std::atomic<uint64_t> fail_writes_from_{0}, fail_reads_from_{0};
  std::atomic<int64_t> space_left_{-1};
  std::atomic<uint64_t> crash_epoch_{0};
  std::mutex mu_;
  std::string corrupt_prefix_;  // guarded by mu_
};

}  // namespace snapvol
