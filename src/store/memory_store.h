// MemoryStore: an ObjectStore held in memory, for tests and as a model of the contract.
// Thread-safety: safe from many threads.
#pragma once

#include <functional>
#include <map>
#include <mutex>

#include "core/clock.h"
#include "store/object_store.h"

namespace snapvol {

class MemoryStore : public ObjectStore {
 public:
  explicit MemoryStore(Clock* clock = Clock::Real()) : clock_(clock) {}

  Status Put(const std::string& key, std::span<const uint8_t> data) override;
  Result<std::vector<uint8_t>> Get(const std::string& key) override;
  Result<std::vector<uint8_t>> GetRange(const std::string& key, uint64_t offset, uint64_t length) override;
  Result<bool> Exists(const std::string& key) override;
  Status Delete(const std::string& key) override;
  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override;
  Status Touch(const std::string& key) override;
  std::string Describe() const override { return "memory:"; }

  // Test helpers: direct access to stored bytes.
  bool Mutate(const std::string& key, const std::function<void(std::vector<uint8_t>&)>& fn);
  size_t Count() const;

 private:
  struct Object {
    std::vector<uint8_t> data;
    int64_t mtime_ms;
  };
  Clock* clock_;
  mutable std::mutex mu_;
  std::map<std::string, Object> objects_;  // guarded by mu_
};

}  // namespace snapvol
