#include "store/memory_store.h"

namespace snapvol {

Status MemoryStore::Put(const std::string& key, std::span<const uint8_t> data) {
  if (!IsValidObjectKey(key)) return InvalidArgument("invalid object key '" + key + "'");
  std::lock_guard lock(mu_);
  objects_[key] = Object{{data.begin(), data.end()}, clock_->NowMillis()};
  return OkStatus();
}

Result<std::vector<uint8_t>> MemoryStore::Get(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return NotFound("object " + key + " not found in memory store");
  return it->second.data;
}

Result<std::vector<uint8_t>> MemoryStore::GetRange(const std::string& key, uint64_t offset, uint64_t length) {
  std::lock_guard lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return NotFound("object " + key + " not found in memory store");
  return SliceRange(key, it->second.data, offset, length);
}

Result<bool> MemoryStore::Exists(const std::string& key) {
  std::lock_guard lock(mu_);
  return objects_.count(key) > 0;
}

Status MemoryStore::Delete(const std::string& key) {
  std::lock_guard lock(mu_);
  objects_.erase(key);
  return OkStatus();
}

Result<std::vector<ObjectInfo>> MemoryStore::List(const std::string& prefix) {
  std::lock_guard lock(mu_);
  std::vector<ObjectInfo> out;
  for (auto it = objects_.lower_bound(prefix); it != objects_.end(); ++it) {
    if (it->first.compare(0, prefix.size(), prefix) != 0) break;
    out.push_back({it->first, it->second.data.size(), it->second.mtime_ms});
  }
  return out;
}

Status MemoryStore::Touch(const std::string& key) {
  std::lock_guard lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return NotFound("object " + key + " not found");
  it->second.mtime_ms = clock_->NowMillis();
  return OkStatus();
}

bool MemoryStore::Mutate(const std::string& key,
                         const std::function<void(std::vector<uint8_t>&)>& fn) {
  std::lock_guard lock(mu_);
  auto it = objects_.find(key);
  if (it == objects_.end()) return false;
  fn(it->second.data);
  return true;
}

size_t MemoryStore::Count() const {
  std::lock_guard lock(mu_);
  return objects_.size();
}

}  // namespace snapvol
