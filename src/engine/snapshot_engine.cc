#include "engine/snapshot_engine.h"

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>

#include "core/aligned_buffer.h"
#include "core/bytes.h"
#include "core/first_error.h"
#include "core/service_metrics.h"
#include "store/block_map.h"

namespace snapvol {
namespace {

// Counts a job's tasks so the job can wait for its own work on a shared pool.
class TaskGroup {
 public:
  void Add() {
    std::lock_guard lock(mu_);
    ++outstanding_;
  }
  void Done() {
    std::lock_guard lock(mu_);
    if (--outstanding_ == 0) cv_.notify_all();
  }
  void Wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return outstanding_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t outstanding_ = 0;  // guarded by mu_
};

struct Batch {
  uint64_t first_block = 0;
  size_t count = 0;
  std::vector<uint8_t> buf;
  std::vector<uint8_t> has_data;
  std::vector<uint8_t> reuse;  // unchanged since the parent (changed-block tracking): not read
  std::vector<Digest> parent_ids, ids;
  SnapshotStats stats;
  size_t parts_left = 0;  // tasks still working on it; guarded by the job's mutex
  bool done = false;      // guarded by the job's mutex
};

// Blocks per task: small enough that a batch of slow (compressible) blocks spreads over all
// workers instead of holding up the in-order merge.
constexpr size_t kBlocksPerTask = 2;

std::string HolderName() {
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  return std::string(host) + ":" + std::to_string(::getpid());
}

}  // namespace

Result<SnapshotOutcome> SnapshotEngine::Create(BlockSource* source, const SnapshotRequest& req,
                                               const ProgressFn& progress,
                                               const std::atomic<bool>* cancel) {
  const uint32_t bs = repo_->block_size();
  const uint64_t size = source->size();
  const uint64_t block_count = (size + bs - 1) / bs;
  Clock* clock = opt_.clock;

  // The lease goes first: from now on GC keeps what this job writes and the parent's root.
  LeaseInfo lease{req.snapshot_id, req.parent_id,
                  req.lease_holder.empty() ? HolderName() : req.lease_holder, clock->NowMillis(),
                  clock->NowMillis()};
  RETURN_IF_ERROR(repo_->PutLease(lease));
  struct LeaseGuard {
    Repository* repo;
    std::string id;
    ~LeaseGuard() { (void)repo->RemoveLease(id); }
  } lease_guard{repo_, req.snapshot_id};

  // Parent: a missing or incompatible parent makes a full snapshot, never a wrong one.
  std::optional<ManifestMeta> parent;
  std::unique_ptr<BlockMapReader> parent_reader;
  DigestSet parent_pages;
  if (!req.parent_id.empty()) {
    auto pm = repo_->GetManifest(req.parent_id, /*include_deleted=*/true);
    if (pm && pm->block_size == bs) {
      parent = *pm;
      parent_reader = std::make_unique<BlockMapReader>(repo_, *parent);
      BlockMapReader pages(repo_, *parent);
      RETURN_IF_ERROR(pages.Walk(
          [&](uint32_t level, const Digest& id) -> Result<bool> {
            parent_pages.insert(id);
            return level > 0;  // a leaf's id is known without loading the leaf
          },
          nullptr));
    } else if (!pm && pm.error().code() != ErrorCode::kNotFound) {
      return std::unexpected(pm.error().WithContext("reading parent snapshot " + req.parent_id));
    }
  }

  WriterOptions wo;
  wo.clock = clock;
  auto writer = repo_->NewWriter(wo);
  BlockMapWriter map(repo_, writer.get(), block_count, parent ? &parent_pages : nullptr);
  SnapshotStats total;
  total.volume_bytes = size;
  total.blocks = block_count;
  total.parent_used = parent.has_value();

  const size_t per_batch = std::max<size_t>(1, opt_.blocks_per_batch);
  const size_t max_in_flight =
      opt_.batches_in_flight ? opt_.batches_in_flight : std::max<size_t>(2, pool_->size() * 2);
  std::mutex mu;
  std::condition_variable cv;
  DigestSet claimed;  // chunk ids this job writes or has found; guarded by mu
  std::deque<std::unique_ptr<Batch>> in_flight;
  std::vector<std::unique_ptr<Batch>> free_batches;
  FirstError error;
  TaskGroup group;

  auto process = [&](Batch* b, size_t from, size_t to, SnapshotStats& stats) {
    for (size_t k = from; k < to && !error.failed(); ++k) {
      uint64_t off = (b->first_block + k) * bs;
      size_t len = static_cast<size_t>(std::min<uint64_t>(bs, size - off));
      uint8_t* p = b->buf.data() + k * bs;
      Digest& id = b->ids[k];
      if (b->reuse[k]) { id = b->parent_ids[k]; ++stats.unchanged_blocks; continue; }
      if (!b->has_data[k]) { id = Digest{}; ++stats.hole_blocks; continue; }
      stats.bytes_read += len;
      if (IsAllZero(p, len)) { id = Digest{}; ++stats.zero_blocks; continue; }
      id = repo_->IdOf({p, len});
      if (id == b->parent_ids[k]) { ++stats.unchanged_blocks; continue; }
      {
        std::lock_guard lock(mu);
        if (!claimed.insert(id).second) { ++stats.dedup_blocks; continue; }
      }
      auto put = writer->PutChunk(id, {p, len});
      if (!put) { error.Set(put.error()); return; }
      if (!put->written) { ++stats.dedup_blocks; continue; }
      ++stats.new_chunks;
      stats.new_chunk_bytes += put->stored_bytes;
      stats.new_chunk_plain_bytes += len;
    }
  };

  // Merges the oldest batch into the block map once it is done.
  auto merge_oldest = [&]() -> Status {
    std::unique_ptr<Batch> b;
    {
      std::unique_lock lock(mu);
      cv.wait(lock, [&] { return in_flight.front()->done; });
      b = std::move(in_flight.front());
      in_flight.pop_front();
    }
    if (auto e = error.Get()) return std::unexpected(*e);
    for (size_t k = 0; k < b->count; ++k) RETURN_IF_ERROR(map.Append(b->ids[k]));
    total.AddBlocks(b->stats);
    if (progress) {
      JobProgress jp{std::min<uint64_t>((b->first_block + b->count) * bs, size), size};
      progress(jp);
    }
    free_batches.push_back(std::move(b));
    return OkStatus();
  };

  auto fail = [&](const Error& e) -> Result<SnapshotOutcome> {
    error.Set(e);
    group.Wait();
    return std::unexpected(*error.Get());
  };

  int64_t last_heartbeat = clock->NowMillis();
  for (uint64_t first = 0; first < block_count; first += per_batch) {
    if (cancel && cancel->load()) return fail(Error(ErrorCode::kConflict, "snapshot cancelled"));
    while (in_flight.size() >= max_in_flight) {
      auto st = merge_oldest();
      if (!st) return fail(st.error());
    }
    std::unique_ptr<Batch> b;
    if (!free_batches.empty()) {
      b = std::move(free_batches.back());
      free_batches.pop_back();
    } else {
      b = std::make_unique<Batch>();
      b->buf.resize(per_batch * bs);
      b->has_data.resize(per_batch);
      b->reuse.resize(per_batch);
      b->parent_ids.resize(per_batch);
      b->ids.resize(per_batch);
    }
    b->first_block = first;
    b->count = static_cast<size_t>(std::min<uint64_t>(per_batch, block_count - first));
    b->stats = {};
    b->done = false;

    // Read the batch's data ranges in as few requests as the holes allow.
    const uint64_t start = first * bs, end = std::min<uint64_t>(start + uint64_t{b->count} * bs, size);
    std::fill(b->has_data.begin(), b->has_data.begin() + b->count, 0);
    std::vector<std::pair<uint64_t, uint64_t>> data;  // [from, to)
    for (uint64_t pos = start; pos < end;) {
      auto d = source->NextData(pos);
      if (!d) return fail(d.error());
      if (*d >= end) break;
      auto h = source->NextHole(*d);
      if (!h) return fail(h.error());
      uint64_t to = std::min(std::max(*h, *d + 1), end);
      data.emplace_back(*d, to);
      pos = to;
    }
    for (auto [from, to] : data)
      for (uint64_t blk = (from - start) / bs; blk <= (to - 1 - start) / bs; ++blk) b->has_data[blk] = 1;
    // Blocks the caller vouches are unchanged since the parent come from the parent unread:
    // cut them out of the read ranges.
    std::fill(b->reuse.begin(), b->reuse.begin() + b->count, 0);
    if (req.maybe_changed && parent_reader) {
      bool any = false;
      for (size_t k = 0; k < b->count; ++k)
        if (first + k < parent->block_count && !req.maybe_changed(first + k)) b->reuse[k] = any = 1;
      if (any) {
        std::vector<std::pair<uint64_t, uint64_t>> kept;
        for (auto [from, to] : data) {
          for (uint64_t x = from; x < to;) {
            uint64_t blk = (x - start) / bs;
            uint64_t blk_end = std::min(start + (blk + 1) * bs, to);
            if (!b->reuse[blk]) {
              if (!kept.empty() && kept.back().second == x) kept.back().second = blk_end;
              else kept.emplace_back(x, blk_end);
            }
            x = blk_end;
          }
        }
        data.swap(kept);
      }
    }
    // Zero the hole parts of blocks that also hold data, then read the data.
    uint64_t cursor = start;
    auto zero_gap = [&](uint64_t from, uint64_t to) {
      for (uint64_t x = from; x < to;) {
        uint64_t blk = (x - start) / bs;
        uint64_t blk_end = std::min(start + (blk + 1) * bs, to);
        if (b->has_data[blk]) std::memset(b->buf.data() + (x - start), 0, blk_end - x);
        x = blk_end;
      }
    };
    for (auto [from, to] : data) {
      zero_gap(cursor, from);
      auto st = source->ReadAt(from, {b->buf.data() + (from - start), static_cast<size_t>(to - from)});
      if (!st) return fail(st.error());
      cursor = to;
    }
    zero_gap(cursor, end);
    for (size_t k = 0; k < b->count; ++k) {
      b->parent_ids[k] = Digest{};
      if (parent_reader && first + k < parent->block_count) {
        auto pid = parent_reader->BlockId(first + k);
        if (!pid) return fail(pid.error().WithContext("reading parent snapshot " + req.parent_id));
        b->parent_ids[k] = *pid;
      }
    }
    Batch* raw = b.get();
    {
      std::lock_guard lock(mu);
      raw->parts_left = (raw->count + kBlocksPerTask - 1) / kBlocksPerTask;
      in_flight.push_back(std::move(b));
    }
    for (size_t from = 0; from < raw->count; from += kBlocksPerTask) {
      size_t to = std::min(raw->count, from + kBlocksPerTask);
      group.Add();
      pool_->Submit([&, raw, from, to] {
        SnapshotStats stats;
        process(raw, from, to, stats);
        bool last;
        {
          std::lock_guard lock(mu);
          raw->stats.AddBlocks(stats);
          last = --raw->parts_left == 0;
          if (last) raw->done = true;
        }
        if (last) cv.notify_all();
        group.Done();
      });
    }

    if (writer->PendingBytes() >= opt_.commit_every_bytes) {
      auto st = writer->Commit();
      if (!st) return fail(st.error());
    }
    if (clock->NowMillis() - last_heartbeat >= opt_.lease_heartbeat_ms) {
      lease.heartbeat_ms = last_heartbeat = clock->NowMillis();
      auto st = repo_->PutLease(lease);
      if (!st) return fail(st.error().WithContext("renewing the snapshot lease"));
    }
  }
  while (!in_flight.empty()) {
    auto st = merge_oldest();
    if (!st) return fail(st.error());
  }
  group.Wait();

  ASSIGN_OR_RETURN(Digest root, map.Finish());
  // Durable, and the chunks this job found rather than wrote are still there (a GC racing
  // past their refresh makes this a retryable conflict).
  RETURN_IF_ERROR(writer->Finish());

  total.new_pages = map.pages_written();
  total.new_page_bytes = map.bytes_written();
  ManifestMeta m;
  m.snapshot_id = req.snapshot_id;
  m.volume_id = req.volume_id;
  m.parent_id = parent ? req.parent_id : "";
  m.description = req.description;
  m.owner_id = req.owner_id;
  m.volume_size = size;
  m.block_size = bs;
  m.start_time_ms = req.start_time_ms;
  m.completed_time_ms = clock->NowMillis();
  m.tags = req.tags;
  m.depth = map.depth();
  m.root_page = root;
  m.block_count = block_count;
  m.stored_bytes = total.new_chunk_bytes + total.new_page_bytes;
  m.changed_blocks = block_count - total.unchanged_blocks - total.hole_blocks - total.zero_blocks;
  m.new_chunks = total.new_chunks;
  RETURN_IF_ERROR(repo_->PutManifest(m));
  return SnapshotOutcome{std::move(m), total};
}

Status FetchChunk(Repository* repo, const Digest& id, std::span<uint8_t> out) {
  return repo->ReadChunk(id, out);
}

Result<std::unique_ptr<SnapshotBlockReader>> SnapshotBlockReader::Open(Repository* repo,
                                                                       const std::string& snapshot_id) {
  ASSIGN_OR_RETURN(ManifestMeta meta, repo->GetManifest(snapshot_id));
  return std::unique_ptr<SnapshotBlockReader>(new SnapshotBlockReader(repo, std::move(meta)));
}

Result<bool> SnapshotBlockReader::Read(uint64_t block, std::span<uint8_t> out) {
  if (block >= meta_.block_count) return InvalidArgument("block " + std::to_string(block) + " is past the end");
  Digest id;
  {
    std::lock_guard lock(mu_);
    ASSIGN_OR_RETURN(id, map_.BlockId(block));
  }
  if (IsZeroDigest(id)) return false;
  RETURN_IF_ERROR(FetchChunk(repo_, id, out));
  return true;
}

Result<std::vector<bool>> SnapshotBlockReader::ReadBlocks(std::span<const uint64_t> blocks,
                                                          std::span<const std::span<uint8_t>> outs) {
  if (blocks.size() != outs.size()) return InvalidArgument("ReadBlocks: as many buffers as blocks are needed");
  std::vector<bool> data(blocks.size(), false);
  std::vector<Digest> ids;
  std::vector<std::span<uint8_t>> into;
  std::vector<uint64_t> block_of;
  {
    std::lock_guard lock(mu_);
    for (size_t i = 0; i < blocks.size(); ++i) {
      if (blocks[i] >= meta_.block_count)
        return InvalidArgument("block " + std::to_string(blocks[i]) + " is past the end");
      ASSIGN_OR_RETURN(Digest id, map_.BlockId(blocks[i]));
      if (IsZeroDigest(id)) continue;
      data[i] = true;
      ids.push_back(id);
      into.push_back(outs[i]);
      block_of.push_back(blocks[i]);
    }
  }
  size_t failed = 0;
  if (auto st = repo_->ReadChunks(ids, into, nullptr, &failed); !st)
    return std::unexpected(failed < block_of.size() ? st.error().WithContext("block " + std::to_string(block_of[failed]))
                                                    : st.error());
  return data;
}

Result<RestoreStats> SnapshotEngine::Restore(const std::string& snapshot_id, BlockTarget* target,
                                             const ProgressFn& progress,
                                             const std::atomic<bool>* cancel) {
  // Every restore is timed, whichever way it ends (the returns below are many).
  struct Timed {
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    bool ok = false;
    ~Timed() {
      double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      ServiceMetrics().restore_duration.With({ok ? "completed" : "error"})->Observe(s);
    }
  } timed;
  ASSIGN_OR_RETURN(ManifestMeta meta, repo_->GetManifest(snapshot_id));
  if (target->size() < meta.volume_size)
    return InvalidArgument("restore target " + target->Describe() + " is smaller than the volume");
  const uint64_t bs = meta.block_size, size = meta.volume_size;
  BlockMapReader reader(repo_, meta);
  FirstError error;
  TaskGroup group;
  std::atomic<uint64_t> written{0}, chunk_bytes{0}, holes{0};
  const size_t per_batch = std::max<size_t>(1, opt_.blocks_per_batch);

  // A batch is read with as few requests as its chunks' places allow and decoded into one
  // buffer. Each data block is written as soon as it is decoded, while the CPU's cache still
  // holds it: the kernel's copy into the page cache from cold memory cost more system time
  // than the rest of the restore. Runs of holes are zeroed, which a fresh sparse file gets
  // for free.
  auto restore_batch = [&](uint64_t first, std::vector<Digest> ids) {
    // One batch, kept for the thread's next batch; page-aligned so that a target writing
    // with O_DIRECT takes it as it is.
    thread_local AlignedBuffer buf;
    const uint64_t base = first * bs, n = ids.size();
    const uint64_t batch_len = std::min<uint64_t>(n * bs, size - base);
    buf.Reserve(batch_len);
    std::vector<Digest> want;
    std::vector<std::span<uint8_t>> outs;
    std::vector<size_t> block_of;
    for (size_t k = 0; k < n; ++k) {
      if (IsZeroDigest(ids[k])) continue;
      want.push_back(ids[k]);
      outs.emplace_back(buf.data() + k * bs, std::min<uint64_t>(bs, batch_len - k * bs));
      block_of.push_back(k);
    }
    uint64_t stored = 0;
    size_t failed = 0;
    auto write_block = [&](size_t i) -> Status {
      RETURN_IF_ERROR(target->WriteAt(base + block_of[i] * bs, outs[i]));
      written += outs[i].size();
      return OkStatus();
    };
    auto st = repo_->ReadChunks(want, outs, &stored, &failed, write_block);
    chunk_bytes += stored;
    if (!st) {
      error.Set(st.error().WithContext("snapshot " + snapshot_id + " block " +
                                       std::to_string(first + (failed < block_of.size() ? block_of[failed] : 0))));
      return;
    }
    for (size_t k = 0; k < n && !error.failed();) {
      if (!IsZeroDigest(ids[k])) {
        ++k;
        continue;
      }
      size_t run = k + 1;
      while (run < n && IsZeroDigest(ids[run])) ++run;
      holes += run - k;
      const uint64_t from = k * bs, to = std::min<uint64_t>(run * bs, batch_len);
      if (st = target->Zero(base + from, to - from); !st) error.Set(st.error());
      k = run;
    }
  };
  // Batches run on threads of their own: a batch mostly waits for its reads (a remote store,
  // a cold disk), so more are kept in flight than there are cores.
  ThreadPool fetchers(std::max(pool_->size(), repo_->store()->ParallelReads()), 2);

  for (uint64_t first = 0; first < meta.block_count && !error.failed(); first += per_batch) {
    if (cancel && cancel->load()) {
      error.Set(Error(ErrorCode::kConflict, "restore cancelled"));
      break;
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(per_batch, meta.block_count - first));
    std::vector<Digest> ids(n);
    for (size_t k = 0; k < n; ++k) {
      auto id = reader.BlockId(first + k);
      if (!id) {
        error.Set(id.error().WithContext("snapshot " + snapshot_id));
        break;
      }
      ids[k] = *id;
    }
    if (error.failed()) break;
    group.Add();
    fetchers.Submit([&, first, ids = std::move(ids)]() mutable {
      restore_batch(first, std::move(ids));
      group.Done();
    });
    if (progress) progress({std::min<uint64_t>((first + n) * bs, size), size});
  }
  group.Wait();
  if (auto e = error.Get()) return std::unexpected(*e);
  RETURN_IF_ERROR(target->Commit());
  RestoreStats stats;
  stats.blocks = meta.block_count;
  stats.hole_blocks = holes;
  stats.bytes_written = written;
  stats.chunk_bytes_read = chunk_bytes;
  timed.ok = true;
  ServiceMetrics().restore_written_bytes.With()->Add(static_cast<double>(written));
  return stats;
}

}  // namespace snapvol
