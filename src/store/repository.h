// Repository: a snapshot store on top of an ObjectStore. It owns the store config (format
// version, block size, encryption), the codec, and the names and encodings of every durable
// object: chunks, index pages, manifest roots, deleted roots and leases (docs/store-format.md).
// Thread-safety: immutable after Open/Create; every method is safe from many threads.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "store/chunk_codec.h"
#include "store/object_store.h"
#include "store/packed_objects.h"

namespace snapvol {

// The newest store format this snapvol reads and writes; new stores get kDefaultStoreFormat
// unless told otherwise (RepositoryOptions::format, or SNAPVOL_STORE_FORMAT).
inline constexpr uint32_t kStoreFormatVersion = 2;
inline constexpr uint32_t kDefaultStoreFormat = 1;
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
  // Set only on a root held by the Recycle Bin (bin/<snap-id>): when it entered the bin, when
  // its retention ends, and the rule that kept it.
  int64_t bin_entered_ms = 0, bin_exit_ms = 0;
  std::string bin_rule_id;
};

struct LeaseInfo {
  std::string snapshot_id, parent_id, holder;
  int64_t started_ms = 0, heartbeat_ms = 0;
  // The holder process's start token (core/process_holder.h), when the holder is a process
  // ("host:pid") that set one: lets another process on the host tell that it is gone.
  std::string holder_start;
};

// A chunk or index page as the store holds it, for GC.
struct StoredObjectInfo {
  Digest id{};
  uint64_t size = 0;     // stored (encoded) bytes
  int64_t mtime_ms = 0;  // last write or refresh
};

// A GC run in progress, published before it lists anything and removed when it ends
// (docs/store-format.md, "Reuse of stored chunks and GC").
struct GcRunInfo {
  std::string run_id, holder;
  int64_t started_ms = 0, heartbeat_ms = 0;
  std::string holder_start;  // as LeaseInfo::holder_start; empty in records of older writers
};

// A running GC renews its record's heartbeat this often; a record whose heartbeat is older
// than the expiry belongs to a GC that died (killed) without removing it.
inline constexpr int64_t kGcRunHeartbeatMs = 10 * 1000;
inline constexpr int64_t kGcRunExpiryMs = 60 * 1000;

struct WriterOptions {
  Clock* clock = Clock::Real();
  int64_t gc_run_expiry_ms = kGcRunExpiryMs;
  // Finish waits at most this long for running GCs, polling every gc_poll_ms.
  int64_t gc_wait_ms = 10 * 60 * 1000;
  int64_t gc_poll_ms = 1000;
};

struct RepositoryOptions {
  std::optional<Key256> master_key;  // encrypt the store (Create) / the key to open it (Open)
  uint32_t block_size = kDefaultBlockSize;
  int zstd_level = 1;  // Create only: the store keeps its level in its config
  // Create only: 1 (one object per chunk) or 2 (packs); 0: SNAPVOL_STORE_FORMAT from the
  // environment when set, else kDefaultStoreFormat.
  uint32_t format = 0;
  uint64_t pack_size = kDefaultPackSize;  // Create only, format 2: target bytes per pack
  // Format 2: a local dir (made 0700 when absent) for the store-wide index's cache file, so
  // that opening the store reads only the packindex/ objects the file does not cover. Empty:
  // no cache file, the index is read whole from the store by each process that opens it.
  std::string cache_dir;
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
  uint32_t format() const { return packed_ ? 2 : 1; }
  // Format 2's packs and index; null for a format-1 store.
  PackedObjects* packed() const { return packed_.get(); }

  // The id a chunk or index page with this plaintext has in this store (SHA-256, or the
  // keyed hash of an encrypted store).
  Digest IdOf(std::span<const uint8_t> plain) const { return codec_.Id(plain); }

  // The chunks and index pages one snapshot job writes (docs/store-format.md, "Write order and
  // crash safety"). A chunk the store already holds is not written again: it is refreshed so
  // a concurrent GC keeps it, and Finish checks it is still there. Nothing a writer adds is
  // reachable until the job publishes its manifest root after Finish.
  // Thread-safety: PutChunk, PutPage and PendingBytes may be called from many threads at once;
  // Commit and Finish from one thread, with no Put* running.
  class Writer {
   public:
    struct Put {
      bool written = false;      // false: the store already held it
      uint64_t stored_bytes = 0;  // encoded size when written
    };
    Result<Put> PutChunk(const Digest& id, std::span<const uint8_t> plain);
    // Writes an index page without asking the store (callers skip pages they know stored).
    Result<uint64_t> PutPage(const Digest& id, std::span<const uint8_t> plain);
    // Bytes added and not yet committed.
    uint64_t PendingBytes() const;
    // Makes everything added so far durable.
    Status Commit();
    // Commit, then check that every chunk found in the store (not written) is still there: a
    // retryable Conflict when a concurrent GC removed one. When any chunk was found, first
    // waits for every GC run in progress to end: one that listed the store before this job
    // refreshed a chunk may delete it at any moment until it ends.
    Status Finish();

   private:
    friend class Repository;
    Writer(Repository* repo, const WriterOptions& options);
    Status WaitForGcRuns();
    Repository* repo_;
    WriterOptions opt_;
    std::unique_ptr<WriteBatch> batch_;            // format 1
    std::unique_ptr<PackedObjects::Job> job_;      // format 2
    std::mutex mu_;
    std::vector<Digest> found_;  // guarded by mu_
  };
  std::unique_ptr<Writer> NewWriter(const WriterOptions& options = {});

  // Reads chunk id into out (out.size() = the block's length), decoded and checked against
  // its id; Corruption when it is missing or damaged. Adds the stored size to *stored_bytes.
  Status ReadChunk(const Digest& id, std::span<uint8_t> out, uint64_t* stored_bytes = nullptr);
  // ReadChunk for several chunks: outs[i] gets ids[i]. Format 2 reads neighbouring objects of a
  // pack with one ranged read (a restore's blocks were mostly written side by side). The
  // first chunk that is missing or damaged fails the call (*failed, when given, is its i).
  // decoded, when given, is called with i as soon as outs[i] holds its checked bytes (in the
  // order the reads allow, not ids' order), so the caller can use them while the CPU's cache
  // still holds them; an error it returns fails the call as a damaged chunk i would.
  Status ReadChunks(std::span<const Digest> ids, std::span<const std::span<uint8_t>> outs,
                    uint64_t* stored_bytes = nullptr, size_t* failed = nullptr,
                    const std::function<Status(size_t)>& decoded = {});
  // An index page's plaintext, checked against its id; Corruption when missing or damaged.
  Result<std::vector<uint8_t>> ReadPage(const Digest& id);
  // Checks a stored chunk: its checksum only (no key needed, no decompression) when
  // checksum_only, else a full decode compared with its id. *read_bytes is set to its stored
  // size when it could be read (also when it then fails its check).
  Status CheckChunk(const Digest& id, bool checksum_only, std::optional<uint64_t>* read_bytes);
  // One chunk's outcome in CheckChunks: what CheckChunk returns and sets.
  struct ChunkCheck {
    Status status;
    std::optional<uint64_t> read_bytes;
  };
  // CheckChunk for several chunks: [i] is ids[i]'s outcome. Format 2 reads neighbouring chunks
  // of a pack with one ranged read, as ReadChunks does; unlike ReadChunks every chunk is checked
  // and gets its own outcome, whatever its neighbours' are.
  std::vector<ChunkCheck> CheckChunks(std::span<const Digest> ids, bool checksum_only);
  // Every stored chunk or index page (kind kChunk or kIndexPage), for GC; foreign keys skipped.
  Result<std::vector<StoredObjectInfo>> ListObjects(ObjectKind kind);
  // The stored (encoded) size of a chunk or index page; Corruption when it is missing.
  Result<uint64_t> StoredSize(ObjectKind kind, const Digest& id);
  // When the stored chunk or index page was last written or refreshed (GC ages it from then;
  // in format 2 that is its pack's time). NotFound when it is missing.
  Result<int64_t> ObjectMtime(ObjectKind kind, const Digest& id);
  // Removes chunks or index pages (absent ones succeed). Format 2 rewrites the packs that
  // hold them, so the caller must be the only gc run (RequireSoleGcRun).
  Status DeleteObjects(ObjectKind kind, const std::vector<Digest>& ids);
  // Format 2 only (a no-op for format 1, where sweeps may overlap): Conflict when a gc or
  // verification run other than own_run_id is live, since two rewrites of the index at once
  // could each drop what the other wrote.
  Status RequireSoleGcRun(const std::string& own_run_id, int64_t now_ms);
  // Removes the gc-runs/ records (other than own_run_id's) whose holder is a process of this
  // host that is gone (core/process_holder.h: HolderIsGone), whatever their heartbeat: a
  // killed gc or verification then holds no one up. Returns the records removed.
  Result<std::vector<GcRunInfo>> RemoveGoneGcRuns(const std::string& own_run_id);

  // ---- Upgrading a format-1 store (repository_upgrade.cc; docs/store-format.md, "Upgrading a
  // format-1 store"). The steps are in store_upgrade.h; these are the names and encodings.
  // The lease an upgrade holds: leases/store-upgrade.
  static constexpr char kUpgradeLeaseId[] = "store-upgrade";
  // Format-1 objects (chunks/, index/) of one kind, whatever the store's format: in a
  // format-2 store they are leftovers of an interrupted upgrade, never read as live.
  Result<std::vector<StoredObjectInfo>> ListFormat1Objects(ObjectKind kind);
  // A format-1 object's plaintext, checked against its id. NotFound when absent; Corruption
  // (naming it) when damaged. *stored_bytes gets its stored size.
  Result<std::vector<uint8_t>> ReadFormat1Object(ObjectKind kind, const Digest& id, uint64_t* stored_bytes);
  // Deletes format-1 objects (absent ones succeed).
  Status DeleteFormat1Objects(ObjectKind kind, const std::vector<Digest>& ids);
  // Packs and a store-wide index on this store, with this store's codec, for an upgrade that
  // writes format 2 before config says so. Must not outlive the Repository.
  std::unique_ptr<PackedObjects> NewPackedObjects(uint64_t pack_size);
  // The format config names now (read again from the store, not the one this object opened).
  Result<uint32_t> StoredFormat();
  // Rewrites config as format 2 with pack_size, in one atomic Put; every other field is kept.
  // Conflict unless config still says format 1. This object keeps its format-1 view.
  Status WriteFormat2Config(uint64_t pack_size);

  static std::string ChunkKey(const Digest& id);
  static std::string PageKey(const Digest& id);
  static std::string ManifestKey(const std::string& snapshot_id);
  static std::string DeletedKey(const std::string& snapshot_id);
  static std::string BinKey(const std::string& snapshot_id);
  static std::string LeaseKey(const std::string& snapshot_id);
  static std::string GcRunKey(const std::string& run_id);

  // Publishes a manifest root durably (the snapshot becomes visible).
  Status PutManifest(const ManifestMeta& meta);
  // NotFound when absent; also reads deleted roots when include_deleted.
  Result<ManifestMeta> GetManifest(const std::string& snapshot_id, bool include_deleted = false);
  Result<std::vector<std::string>> ListManifestIds(bool deleted = false);
  // Moves the root to deleted/ (kept until GC no longer needs it as a parent of a running
  // snapshot). NotFound when absent.
  Status DeleteManifest(const std::string& snapshot_id);

  // ---- The Recycle Bin (docs/store-format.md, "The Recycle Bin"). A binned snapshot's root
  // lives at bin/<snap-id> with its bin fields; GC marks it like a live one.
  // Moves manifests/<id> to bin/<id> with entered/exit times and the rule. NotFound when absent.
  Status MoveManifestToBin(const std::string& snapshot_id, int64_t entered_ms, int64_t exit_ms,
                           const std::string& rule_id);
  // Moves bin/<id> back to manifests/<id> (without the bin fields). NotFound when absent.
  Status RestoreManifestFromBin(const std::string& snapshot_id);
  // Its retention ended: bin/<id> goes to deleted/<id>, as a deleted root. NotFound when absent.
  Status ExpireBinnedManifest(const std::string& snapshot_id);
  // The roots under bin/, sorted by snapshot id (one removed meanwhile is left out).
  Result<std::vector<ManifestMeta>> ListBinnedManifests();

  // Writes a snapshot's lease. Then, unless it is the upgrade's own lease, checks that no
  // upgrade holds the store and that config still names this object's format: a retryable
  // Conflict otherwise, with the lease removed again (a process that opened the store as
  // format 1 must not write chunks/ into a store being or already upgraded).
  Status PutLease(const LeaseInfo& lease);
  Status RemoveLease(const std::string& snapshot_id);
  Result<std::vector<LeaseInfo>> ListLeases();

  // GC runs in progress (a run id is 32 lowercase hex digits).
  Status PutGcRun(const GcRunInfo& run);
  Status RemoveGcRun(const std::string& run_id);
  Result<std::vector<GcRunInfo>> ListGcRuns();

 private:
  Repository(std::unique_ptr<ObjectStore> store, ChunkCodec codec, uint32_t block_size,
             std::string store_id, uint64_t pack_size, const std::string& cache_dir)
      : store_(std::move(store)), codec_(std::move(codec)), block_size_(block_size),
        store_id_(std::move(store_id)) {
    if (pack_size)
      packed_ = std::make_unique<PackedObjects>(store_.get(), &codec_, pack_size, store_id_,
                                                cache_dir.empty() ? "" : IndexCachePath(cache_dir, store_id_));
  }
  // Format 2's plan for reading chunks: runs of entries of one pack lying close together, each
  // read with one ranged read; the chunks this process's index does not name go to alone.
  struct PackRun {
    Digest pack{};
    uint64_t begin = 0, end = 0;  // the range of the pack to read
    std::vector<std::pair<PackedLocation, size_t>> entries;  // where chunk ids[i] lies, and i
  };
  void PlanChunkReads(std::span<const Digest> ids, std::vector<PackRun>* runs, std::vector<size_t>* alone) const;
  // Checks stored bytes of chunk id: checksum only, or a full decode compared with the id.
  Status CheckStored(const Digest& id, std::span<const uint8_t> stored, bool checksum_only);
  // The raw stored bytes of a chunk or page; Corruption when it is missing.
  Status DecodeChunk(const Digest& id, std::span<const uint8_t> stored, std::span<uint8_t> out);
  Result<std::vector<uint8_t>> FetchStored(ObjectKind kind, const Digest& id);
  Result<std::vector<uint8_t>> EncodeRoot(const std::string& key, const std::vector<uint8_t>& json) const;
  Result<ManifestMeta> DecodeRoot(const std::string& key, const std::vector<uint8_t>& stored) const;
  Status CheckNotUpgrading();
  Status MoveRoot(const std::string& snapshot_id, const std::string& from_key, const std::string& to_key,
                  const std::function<void(ManifestMeta*)>& edit);

  std::unique_ptr<ObjectStore> store_;
  ChunkCodec codec_;
  uint32_t block_size_;
  std::string store_id_;
  std::unique_ptr<PackedObjects> packed_;  // format 2
};

}  // namespace snapvol
