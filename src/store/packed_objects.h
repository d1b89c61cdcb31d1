// PackedObjects: where a format-2 store keeps its chunks and index pages (docs/store-format.md,
// "Format 2"): packs of encoded objects, found through the store-wide index (packindex/
// objects, each naming the packs one writer published; this process's copy is a PackedIndex).
// Repository owns one when its store is format 2 and routes every chunk and page through it;
// nothing above Repository names a pack.
//
// The index in memory is never the truth: a lookup that misses, or a read whose pack is gone
// (GC repacked it), re-reads the packindex/ listing once before it says "missing".
// GC is exclusive in format 2 (gc.cc checks that no other gc or verification run is live),
// so Sweep and Remove never race each other; writers and readers go on while they run.
// Thread-safety: Find, ReadStored, StoredSize, Mtime and Refresh from many threads; a Job as
// Repository::Writer documents; Sweep and Remove from one thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <functional>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/chunk_codec.h"
#include "store/object_store.h"
#include "store/pack.h"
#include "store/packed_index.h"

namespace snapvol {

inline constexpr char kPackPrefix[] = "packs/";
// Target bytes per pack when a store is created or upgraded without --pack-size: 16 MiB on a
// local store; 32 MiB on S3, where each pack is one PUT (no multipart) and requests are what
// the server spends its CPU on and what a provider bills: 16 MiB packs, closed before the
// next chunk would overflow them, come to just over 64 PUTs per GiB stored.
inline constexpr uint64_t kDefaultPackSize = 16ull << 20, kDefaultS3PackSize = 32ull << 20;
inline constexpr uint64_t kMinPackSize = 1ull << 20, kMaxPackSize = 128ull << 20;

// What a sweep found and did (or, dry run, would do).
struct PackSweep {
  uint64_t packs = 0, packs_deleted = 0, packs_repacked = 0, packs_written = 0, packs_young = 0;
  uint64_t packs_lost = 0;          // named by the index but missing from the store
  uint64_t packs_damaged_kept = 0;  // not repacked: a live entry in it failed its checksum
  // Kept: no index object names them yet and they are younger than the cutoff (a snapshot
  // still writing, or one that stopped within the grace period).
  uint64_t packs_unindexed_young = 0;
  uint64_t dead_chunks = 0, dead_pages = 0;  // entries dropped (dead, duplicate, or orphaned)
  // Stored bytes of the objects (one copy each) no live set holds, in every pack listed,
  // whether or not this sweep frees them (GcReport::dead_bytes).
  uint64_t dead_bytes = 0;
  uint64_t bytes_freed = 0;          // bytes of deleted packs minus bytes of new ones
  uint64_t index_objects_merged = 0;
};

class PackedObjects {
 public:
  // cache_path: the index's cache file (IndexCachePath), or empty for none.
  PackedObjects(ObjectStore* store, const ChunkCodec* codec, uint64_t pack_size, const std::string& store_id,
                const std::string& cache_path)
      : store_(store), codec_(codec), pack_size_(pack_size), index_(store, codec, store_id, cache_path) {}

  static std::string PackKey(const Digest& pack);
  uint64_t pack_size() const { return pack_size_; }

  // Reads packindex/ objects not read yet; rebuilds the whole copy when one it read is gone.
  Status Refresh() { return index_.Refresh(); }
  std::optional<PackedLocation> Find(ObjectKind kind, const Digest& id) const { return index_.Find(kind, id); }
  // The encoded object, by a ranged read of its pack. Corruption when no pack holds it.
  Result<std::vector<uint8_t>> ReadStored(ObjectKind kind, const Digest& id);
  Result<uint64_t> StoredSize(ObjectKind kind, const Digest& id);
  // The modification time of the pack that holds it (GC's age of the object).
  Result<int64_t> Mtime(ObjectKind kind, const Digest& id);
  // Entries of the index of one kind, for listings (sizes; mtime 0: packs are aged, not entries).
  std::vector<std::pair<Digest, uint32_t>> Entries(ObjectKind kind) const { return index_.Entries(kind); }
  const PackedIndex& index() const { return index_; }

  // The objects one snapshot job adds. Each Put writes its encoded object into the open pack
  // of its kind itself (ObjectWriter::WriteAt at the offset it placed it), from the thread that
  // encoded it. A full pack is handed to the job's writer thread, which adds the pack's index
  // and seals it (a store that holds the pack in memory uploads it then), so the threads that
  // hash and compress go on meanwhile (at most kQueuedPacks wait; a Put that fills one more
  // waits for room). Commit queues the open packs, waits until every pack is sealed, makes them
  // durable, then publishes their packindex/ object. A failed write fails the next Put or Commit.
  class Job {
   public:
    ~Job();
    // The id was already stored: found (in the index; its pack refreshed) or added by this job.
    struct Added {
      bool written = false;
      uint64_t stored_bytes = 0;
    };
    Result<Added> Put(ObjectKind kind, const Digest& id, std::span<const uint8_t> plain);
    uint64_t PendingBytes() const { return pending_.load(); }
    Status Commit();
    // After Commit: every object this job found stored is still in the index, and its pack
    // still in the store. A retryable Conflict names the first that is not.
    Status CheckFound();
    bool found_any() const;

   private:
    friend class PackedObjects;
    explicit Job(PackedObjects* owner);
    static constexpr size_t kQueuedPacks = 1;
    // A pack the job fills: each Put places its object (under mu_) and then writes it at its
    // offset itself; the writer thread adds the index and seals the pack once none is writing.
    struct OpenPack {
      static Result<std::unique_ptr<OpenPack>> Start(PackedObjects* owner, WriteBatch* batch, ObjectKind kind);
      Digest id;
      PackLayout layout;                // guarded by Job::mu_
      std::unique_ptr<ObjectWriter> out;
      int writes = 0;                   // WriteAt calls under way; guarded by Job::mu_
    };
    // Queues a full pack for the writer thread (started with the first one).
    Status Flush(std::unique_ptr<OpenPack> pack);
    // Waits until every queued pack is written; the first write error, if any.
    Status Drain();
    void WriteLoop();
    Status WritePack(OpenPack& pack);
    PackedObjects* owner_;
    std::unique_ptr<WriteBatch> batch_;
    std::string writer_id_;
    uint32_t seq_ = 0;
    mutable std::mutex mu_;
    // guarded by mu_:
    std::unique_ptr<OpenPack> open_[2];
    DigestSet added_[2];
    std::vector<IndexedPack> unpublished_;
    std::vector<std::pair<ObjectKind, Digest>> found_;
    std::set<Digest> touched_packs_;
    std::deque<std::unique_ptr<OpenPack>> queue_;
    bool writing_ = false, stopping_ = false;
    std::optional<Error> write_error_;
    std::condition_variable queue_cv_;  // a pack was queued or written, or the job ends
    std::thread writer_;                // joined by ~Job
    std::atomic<uint64_t> pending_{0};
  };
  std::unique_ptr<Job> NewJob();

  // GC's sweep: packs no entry of which is live are deleted, packs whose dead share exceeds
  // repack_threshold have their live objects copied into new packs, then new packindex/
  // objects replace those that change (naming a pack deleted, rewritten, lost or named twice;
  // larger than kMaxEntriesPerIndexObject; small ones, merged). Packs modified at or after
  // cutoff_ms are left as they are. The index objects are streamed, one decoded at a time:
  // what it holds is a compact table of the index, the packs' ids and the rewritten entries.
  Result<PackSweep> Sweep(const DigestSet& live_chunks, const DigestSet& live_pages, int64_t cutoff_ms,
                          double repack_threshold, bool dry_run);
  // Drops these objects from the store (damaged copies): their packs are rewritten without
  // them. Returns how many were found and dropped.
  Result<uint64_t> Remove(ObjectKind kind, const std::vector<Digest>& ids);

  // Every pack in the store: its size, by id (keys of another shape are left out).
  Result<std::map<Digest, uint64_t>> PackSizes();
  // Verify's check of a pack's own trailing index (the source for rebuilding a lost
  // packindex/ object): one ranged read of the pack's last kTrailerReadBytes (a second only
  // when its index is longer), then the trailer, the index object's checksum and, unless
  // checksum_only, its decoding, binding to the pack id and layout (ParsePackIndex), and that
  // each of expected (entries the store-wide index places in this pack) is in it as the
  // store-wide index says. Corruption saying what is wrong; NotFound when the pack is gone.
  static constexpr uint64_t kTrailerReadBytes = 64 << 10;
  Status CheckPackIndex(const Digest& pack, uint64_t pack_size, std::span<const PackEntry> expected,
                        bool checksum_only);

 private:
  static int Slot(ObjectKind kind) { return kind == ObjectKind::kChunk ? 0 : 1; }
  // Publishes packs as packindex/ objects of at most kMaxEntriesPerIndexObject entries. Adds
  // them to this process's copy unless add_to_copy is false (gc, which reads the whole index
  // again once it has replaced objects: adding millions of entries the copy already holds
  // would only touch every page of its mapped cache file).
  Status WriteIndexObjects(const std::string& writer_id, uint32_t* seq, const std::vector<IndexedPack>& packs,
                           bool add_to_copy = true);
  // Writes the live objects of the given packs into new packs and replaces the whole index
  // with what remains; the common tail of Sweep and Remove.
  struct Plan;
  Status Apply(Plan& plan, PackSweep* report);
  // Streams the packs the given packindex/ objects name, with the ordinal of the object in
  // keys, reading and decoding one object at a time (each_pack_once: a pack two objects name
  // is passed once). Conflict when one is gone (gc is exclusive, so the index it read cannot
  // have been replaced under it).
  using IndexedFn = std::function<Status(size_t object, const Digest& pack, std::span<const PackEntry> entries)>;
  Status ForEachIndexed(const std::vector<std::string>& keys, bool each_pack_once, const IndexedFn& fn) const;

  ObjectStore* store_;
  const ChunkCodec* codec_;
  uint64_t pack_size_;
  PackedIndex index_;
};

}  // namespace snapvol
