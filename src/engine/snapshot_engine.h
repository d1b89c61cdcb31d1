// The snapshot and restore engines: turn a BlockSource into a snapshot in a Repository
// (parallel zero detection, hashing, compression and upload of only the blocks the store
// lacks; the manifest root is published last) and a snapshot into a BlockTarget (parallel,
// sparse, every chunk checked against its id before it is written).
//
// Memory stays bounded whatever the volume size: at most a few batches of blocks are in
// flight, and the block map is streamed.
// Thread-safety: an engine object may run one job at a time per call; several engines may
// share a Repository and a ThreadPool.
#pragma once

#include <atomic>
#include <functional>
#include <mutex>
#include <span>
#include <optional>
#include <string>

#include "core/clock.h"
#include "core/thread_pool.h"
#include "store/block_map.h"
#include "store/repository.h"
#include "volume/block_source.h"

namespace snapvol {

struct JobProgress {
  uint64_t bytes_done = 0, bytes_total = 0;
  // Integer percentage for Progress fields: "37%".
  int Percent() const {
    return bytes_total == 0 ? 100 : static_cast<int>(bytes_done * 100 / bytes_total);
  }
};
using ProgressFn = std::function<void(const JobProgress&)>;

struct SnapshotRequest {
  std::string snapshot_id, volume_id, owner_id, description;
  TagList tags;
  std::string parent_id;  // empty: a full snapshot
  int64_t start_time_ms = 0;
  std::string lease_holder;  // who is writing, for operators reading the lease
  // Changed-block tracking: when set and the parent is used, a block for which it returns
  // false is taken from the parent without being read. The caller vouches that the block is
  // unchanged since the parent (e.g. a managed volume's write bitmap relative to it).
  std::function<bool(uint64_t block)> maybe_changed;
};

struct SnapshotStats {
  uint64_t volume_bytes = 0, bytes_read = 0;
  uint64_t blocks = 0, hole_blocks = 0, zero_blocks = 0;
  uint64_t unchanged_blocks = 0;  // same id as the parent's block at the same place
  uint64_t dedup_blocks = 0;      // found already stored elsewhere
  uint64_t new_chunks = 0, new_chunk_bytes = 0;  // written by this job (stored size)
  uint64_t new_chunk_plain_bytes = 0;             // the same chunks' plaintext size
  uint64_t new_pages = 0, new_page_bytes = 0;
  bool parent_used = false;

  // Adds the per-block counters of another part of the same job.
  void AddBlocks(const SnapshotStats& o) {
    bytes_read += o.bytes_read;
    hole_blocks += o.hole_blocks;
    zero_blocks += o.zero_blocks;
    unchanged_blocks += o.unchanged_blocks;
    dedup_blocks += o.dedup_blocks;
    new_chunks += o.new_chunks;
    new_chunk_bytes += o.new_chunk_bytes;
    new_chunk_plain_bytes += o.new_chunk_plain_bytes;
  }
};

struct SnapshotOutcome {
  ManifestMeta manifest;
  SnapshotStats stats;
};

struct RestoreStats {
  uint64_t blocks = 0, hole_blocks = 0, bytes_written = 0, chunk_bytes_read = 0;
};

struct EngineOptions {
  size_t blocks_per_batch = 16;  // one read request: 8 MiB at the default block size
  size_t batches_in_flight = 0;  // 0: twice the pool size
  uint64_t commit_every_bytes = 512ull << 20;  // flush chunk writes at least this often
  int64_t lease_heartbeat_ms = 60 * 1000;
  Clock* clock = Clock::Real();
};

// Reads single blocks of a snapshot (for volumes restored lazily: a block is fetched when it
// is first needed). Every block is checked against its id.
// Thread-safety: Read may be called from many threads at once.
class SnapshotBlockReader {
 public:
  static Result<std::unique_ptr<SnapshotBlockReader>> Open(Repository* repo, const std::string& snapshot_id);
  uint64_t block_count() const { return meta_.block_count; }
  uint32_t block_size() const { return meta_.block_size; }
  uint64_t volume_size() const { return meta_.volume_size; }
  // Block b's bytes (block_size, shorter for the last block) into out; false when it is a hole
  // (out untouched: the block reads as zeroes).
  Result<bool> Read(uint64_t block, std::span<uint8_t> out);
  // Read for several blocks with one Repository::ReadChunks (neighbouring chunks of a pack in
  // one ranged read): outs[i] gets blocks[i]'s bytes; [i] of the result is false for a hole.
  // The first block that cannot be read fails the call, naming it.
  Result<std::vector<bool>> ReadBlocks(std::span<const uint64_t> blocks, std::span<const std::span<uint8_t>> outs);

 private:
  SnapshotBlockReader(Repository* repo, ManifestMeta meta) : repo_(repo), meta_(std::move(meta)), map_(repo, meta_) {}
  Repository* repo_;
  ManifestMeta meta_;
  std::mutex mu_;
  BlockMapReader map_;  // guarded by mu_ (it caches pages)
};

// Fetches, decodes and checks the chunk with this id into out (out.size() = the block's length).
Status FetchChunk(Repository* repo, const Digest& id, std::span<uint8_t> out);

class SnapshotEngine {
 public:
  SnapshotEngine(Repository* repo, ThreadPool* pool, EngineOptions options = {})
      : repo_(repo), pool_(pool), opt_(options) {}

  // Takes a snapshot of source. A lease protects it from GC while it runs. On success the
  // manifest root has been published; on failure or cancel nothing is published and the
  // objects written so far are left for GC.
  Result<SnapshotOutcome> Create(BlockSource* source, const SnapshotRequest& request,
                                 const ProgressFn& progress = nullptr,
                                 const std::atomic<bool>* cancel = nullptr);

  // Writes snapshot snapshot_id to target (of at least the volume's size) and commits it.
  // Corruption when any chunk fails its check: nothing wrong is committed.
  Result<RestoreStats> Restore(const std::string& snapshot_id, BlockTarget* target,
                               const ProgressFn& progress = nullptr,
                               const std::atomic<bool>* cancel = nullptr);

 private:
  Repository* repo_;
  ThreadPool* pool_;
  EngineOptions opt_;
};

}  // namespace snapvol
