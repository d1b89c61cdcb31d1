// LocalStore: an ObjectStore in a directory of the local filesystem (the embedded default).
//
// Each object is one file at ROOT/<key>. Put writes a temporary file beside it, fsyncs it,
// renames it over the key and fsyncs the directory, so a reader sees the old or the new
// object, never a torn one. A WriteBatch writes temporary files without fsync, and at Commit
// flushes the filesystem once (syncfs) before renaming them all into place and flushing again:
// one flush per batch instead of one per object, with the same crash guarantee.
// Leftover temporary files (names containing ".tmp-") are never listed; GC removes them.
// Thread-safety: safe from many threads.
#pragma once

#include <memory>
#include <mutex>
#include <set>
#include <string>

#include "core/file_util.h"
#include "store/object_store.h"

namespace snapvol {

class LocalStore : public ObjectStore {
 public:
  // Opens (creating if needed) the store directory.
  static Result<std::unique_ptr<LocalStore>> Open(const std::string& root);

  Status Put(const std::string& key, std::span<const uint8_t> data) override;
  Result<std::vector<uint8_t>> Get(const std::string& key) override;
  Result<std::vector<uint8_t>> GetRange(const std::string& key, uint64_t offset, uint64_t length) override;
  Result<bool> Exists(const std::string& key) override;
  Result<uint64_t> Size(const std::string& key) override;
  Status Delete(const std::string& key) override;
  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override;
  Status Touch(const std::string& key) override;
  std::unique_ptr<WriteBatch> NewBatch() override;
  std::string Describe() const override { return "local:" + root_; }
  // Two 512 KiB chunks: the pread, the decode and the write of a run stay within the CPU cache.
  uint64_t CoalescedReadBytes() const override { return 1 << 20; }

  // Removes temporary files left by crashed writers that are older than older_than_ms (epoch
  // ms). Returns how many were removed.
  Result<uint64_t> RemoveStaleTemporaries(int64_t older_than_ms) override;

  const std::string& root() const { return root_; }

  // Internal, used by the batch.
  Status EnsureParentDir(const std::string& path);
  Result<std::string> TempPathFor(const std::string& path);
  Status SyncFilesystem();

 private:
  LocalStore(std::string root, UniqueFd root_fd) : root_(std::move(root)), root_fd_(std::move(root_fd)) {}
  Result<std::string> PathFor(const std::string& key) const;

  const std::string root_;
  UniqueFd root_fd_;
  std::mutex dirs_mu_;
  std::set<std::string> known_dirs_;  // guarded by dirs_mu_
};

}  // namespace snapvol
