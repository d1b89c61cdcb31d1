// Repository: a snapshot store on top of an ObjectStore. It owns the store config (format
// version, block size, encryption), the codec, and the names and encodings of every durable
// object: chunks, index pages, manifest roots, deleted roots and leases (docs/store-format.md).
// Thread-safety: immutable after Open/Create; every method is safe from many threads.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "store/chunk_codec.h"
#include "store/object_store.h"

namespace snapvol {

inline constexpr uint32_t kStoreFormatVersion = 1;
inline constexpr uint32_t kDefaultBlockSize = 512 * 1024;
inline constexpr char kConfigKey[] = "config";

using TagList = std::vector<std::pair<std::string, std::string>>;

// The metadata a manifest root carries: enough to rebuild the catalog from the store.
struct ManifestMeta {
  std::string snapshot_id, volume_id, parent_id, description, owner_id;
  uint64_t volume_size = 0;
  uint32_t block_size = kDefaultBlockSize;
  int64_t start_time_ms = 0, completed_time_ms = 0;
  TagList tags;
  // The block map: a tree of index pages; depth 0 means root_page is a leaf page.
  uint32_t depth = 0;
  Digest root_page{};  // all zero: every block is a hole
  uint64_t block_count = 0;
  // Statistics of the run that wrote it.
  uint64_t stored_bytes = 0, changed_blocks = 0, new_chunks = 0;
};

struct LeaseInfo {
  std::string snapshot_id, parent_id, holder;
  int64_t started_ms = 0, heartbeat_ms = 0;
};

struct RepositoryOptions {
  std::optional<Key256> master_key;  // encrypt the store (Create) / the key to open it (Open)
  uint32_t block_size = kDefaultBlockSize;
  int zstd_level = 1;  // Create only: the store keeps its level in its config
};

class Repository {
 public:
  // InvalidArgument for a block size or compression level Create would refuse.
  static Status ValidateOptions(const RepositoryOptions& options);
  // Writes a new store config. AlreadyExists if the store has one.
  static Result<std::unique_ptr<Repository>> Create(std::unique_ptr<ObjectStore> store,
                                                    const RepositoryOptions& options);
  // Reads the config: NotFound when the store is not initialised, Unsupported for a newer
  // format, Unauthorized for a missing or wrong key.
  static Result<std::unique_ptr<Repository>> Open(std::unique_ptr<ObjectStore> store,
                                                  const RepositoryOptions& options);

  ObjectStore* store() const { return store_.get(); }
  const ChunkCodec& codec() const { return codec_; }
  uint32_t block_size() const { return block_size_; }
  bool encrypted() const { return codec_.encrypted(); }
  const std::string& store_id() const { return store_id_; }

  static std::string ChunkKey(const Digest& id);
  static std::string PageKey(const Digest& id);
  static std::string ManifestKey(const std::string& snapshot_id);
  static std::string DeletedKey(const std::string& snapshot_id);
  static std::string LeaseKey(const std::string& snapshot_id);

  // Publishes a manifest root durably (the snapshot becomes visible).
  Status PutManifest(const ManifestMeta& meta);
  // NotFound when absent; also reads deleted roots when include_deleted.
  Result<ManifestMeta> GetManifest(const std::string& snapshot_id, bool include_deleted = false);
  Result<std::vector<std::string>> ListManifestIds(bool deleted = false);
  // Moves the root to deleted/ (kept until GC no longer needs it as a parent of a running
  // snapshot). NotFound when absent.
  Status DeleteManifest(const std::string& snapshot_id);

  Status PutLease(const LeaseInfo& lease);
  Status RemoveLease(const std::string& snapshot_id);
  Result<std::vector<LeaseInfo>> ListLeases();

 private:
  Repository(std::unique_ptr<ObjectStore> store, ChunkCodec codec, uint32_t block_size,
             std::string store_id)
      : store_(std::move(store)), codec_(std::move(codec)), block_size_(block_size),
        store_id_(std::move(store_id)) {}
  Result<std::vector<uint8_t>> EncodeRoot(const std::string& key, const std::vector<uint8_t>& json) const;
  Result<ManifestMeta> DecodeRoot(const std::string& key, const std::vector<uint8_t>& stored) const;

  std::unique_ptr<ObjectStore> store_;
  ChunkCodec codec_;
  uint32_t block_size_;
  std::string store_id_;
};

}  // namespace snapvol
