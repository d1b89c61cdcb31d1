// PackedIndex: this process's copy of a format-2 store's store-wide index (docs/store-format.md,
// "Format 2"): the packindex/ objects (each naming the packs one writer published) read into
// a compact IndexTable, and, given a cache dir, kept in a local cache: a sorted file written
// whole now and then, plus a log (store/index_cache_log.h) of the objects read or published
// since, so that opening the store reads only the packindex/ objects neither covers.
//
// The copy is never the truth: PackedObjects re-reads the listing on a miss before it calls
// an object missing. A packindex/ object that was read and is gone from the listing (GC
// replaced the index) makes the next refresh rebuild the whole copy; a cache that covers such
// an object, names another store, or fails its checks is rebuilt, never used.
// Reading from the store holds one packindex/ object decoded at a time (and a few stored ones
// in flight), never all of them: the table is the only thing that grows with the store.
// Thread-safety: every method from many threads; refreshes are serialised among themselves.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "store/chunk_codec.h"
#include "store/index_cache_log.h"
#include "store/index_table.h"
#include "store/object_store.h"
#include "store/pack.h"

namespace snapvol {

inline constexpr char kPackIndexPrefix[] = "packindex/";
// A packindex/ object written now names at most this many entries (2.9 MB of plaintext), so
// that reading the index holds little more than the table (readers take any count up to the
// codec's 64 MiB plaintext limit: objects written before hold up to 2^20); a larger index is
// written as several.
inline constexpr size_t kMaxEntriesPerIndexObject = 1u << 16;

// The packs one packindex/ object names.
struct IndexedPack {
  Digest pack{};
  std::vector<PackEntry> entries;
};
// A packindex/ object's plaintext: u32 pack count, then per pack: id[32], u32 entry count,
// the entries (kPackIndexEntryBytes each).
std::vector<uint8_t> EncodeStoreIndex(const std::vector<IndexedPack>& packs);
Result<std::vector<IndexedPack>> DecodeStoreIndex(std::span<const uint8_t> plain);
// The same, one pack at a time, without holding them all decoded; stops at fn's first error.
Status ForEachIndexedPack(std::span<const uint8_t> plain,
                          const std::function<Status(const Digest& pack, std::span<const PackEntry> entries)>& fn);

struct PackedLocation {
  Digest pack{};
  uint32_t offset = 0, length = 0;
};

// Where a cache dir keeps the index cache of the store with this id.
std::string IndexCachePath(const std::string& cache_dir, const std::string& store_id);

class PackedIndex {
 public:
  // cache_path empty: no cache file, the index lives in anonymous memory only.
  PackedIndex(ObjectStore* store, const ChunkCodec* codec, std::string store_id, std::string cache_path)
      : store_(store),
        codec_(codec),
        store_id_(std::move(store_id)),
        cache_path_(std::move(cache_path)),
        log_path_(cache_path_.empty() ? "" : IndexCacheLogPath(cache_path_)) {}

  // Reads the packindex/ objects not read yet (the first time: those the cache file does not
  // cover); rebuilds the whole copy when one it read is gone.
  Status Refresh() { return RefreshIfUnchangedSince(generation_.load()); }
  // As Refresh, unless another thread refreshed since generation was read (then it is done).
  Status RefreshIfUnchangedSince(uint64_t generation);
  // 0 until the first refresh; then grows with every refresh.
  uint64_t generation() const { return generation_.load(); }

  std::optional<PackedLocation> Find(ObjectKind kind, const Digest& id) const;
  // Entries of one kind with their stored sizes.
  std::vector<std::pair<Digest, uint32_t>> Entries(ObjectKind kind) const;
  // Adds what this process just published as packindex/ object key.
  Status Published(const std::string& key, const std::vector<IndexedPack>& packs);

  // A packindex/ object from the store, decoded and checked.
  Result<std::vector<IndexedPack>> ReadIndexObject(const std::string& key) const;
  // Its plaintext only (checked by the codec, not parsed); the stored bytes are let go.
  Result<std::vector<uint8_t>> ReadIndexPlain(const std::string& key) const;

  // For tests and measurement: what the table holds in memory, its entries, how many
  // packindex/ objects the last refresh read from the store, whether it started from the
  // cache, why the cache (or its log) was last refused or not written (empty: no problem),
  // and the bytes this object wrote to the cache files so far.
  uint64_t MemoryBytes() const;
  size_t size(ObjectKind kind) const;
  struct RefreshStats {
    size_t objects_read = 0;
    bool from_cache = false;
    std::string cache_problem;
  };
  RefreshStats last_refresh() const;
  uint64_t cache_bytes_written() const { return cache_bytes_written_.load(); }

 private:
  // Writes the sorted cache file from table_ and starts an empty log; a failure is kept in
  // stats_ (the index itself is whole without the file). REQUIRES: cache_mu_ held.
  void SaveCache();
  // Appends a packindex/ object to the cache's log; returns the log's size after (the caller
  // writes the sorted file instead once it passes LogLimitBytes). REQUIRES: cache_mu_ held.
  Result<uint64_t> AppendCache(const std::string& key, std::span<const uint8_t> plain);
  // The log's size past which the sorted file is written again. REQUIRES: cache_mu_ held.
  uint64_t LogLimitBytes() const;
  // Reads the objects in order, calling fn with each one's plaintext, with a few Gets in
  // flight. vanished: one was gone when read (nothing after it was passed to fn).
  Status ReadIndexObjects(const std::vector<ObjectInfo>& objs, bool* vanished,
                          const std::function<Status(const std::string& key, std::vector<uint8_t> plain)>& fn) const;
  // table_.AddPack; on failure forgets the whole copy, so the next refresh rebuilds it.
  // REQUIRES: mu_ held for writing.
  Status AddOrForget(const IndexedPack& p);

  ObjectStore* store_;
  const ChunkCodec* codec_;
  const std::string store_id_, cache_path_, log_path_;
  mutable std::shared_mutex mu_;
  IndexTable table_;               // guarded by mu_
  std::set<std::string> loaded_;   // guarded by mu_: the packindex/ keys in table_
  RefreshStats stats_;             // guarded by mu_
  std::mutex refresh_mu_;          // taken before cache_mu_
  std::mutex cache_mu_;            // one writer of the cache files at a time; taken before mu_
  uint64_t base_records_ = 0;      // guarded by cache_mu_: records in the sorted file last read or written
  std::atomic<uint64_t> cache_bytes_written_{0};
  std::atomic<uint64_t> generation_{0};
};

}  // namespace snapvol
