#include "engine/volume_rollback.h"

#include <mutex>
#include <optional>
#include <vector>

#include "core/aligned_buffer.h"
#include "core/bytes.h"
#include "core/first_error.h"
#include "core/hash.h"
#include "store/block_map.h"

namespace snapvol {
namespace {

struct Counters {
  std::atomic<uint64_t> compared{0}, unchanged{0}, written{0}, zeroed{0}, bytes_read{0}, bytes_written{0};
};

// One batch of consecutive blocks: the snapshot's ids, which blocks to compare and which of
// them hold data on the volume (the others are holes: they read as zeros without a read).
struct RollbackBatch {
  uint64_t first = 0;
  std::vector<Digest> ids;
  std::vector<uint8_t> check, has_data;
};

}  // namespace

Result<RollbackStats> VolumeRollback::Run(const std::string& snapshot_id, RewritableVolume* volume,
                                          const RollbackProgressFn& progress, const std::atomic<bool>* cancel) {
  ASSIGN_OR_RETURN(ManifestMeta meta, repo_->GetManifest(snapshot_id));
  if (volume->size() < meta.volume_size)
    return InvalidArgument("volume " + volume->Describe() + " (" + std::to_string(volume->size()) +
                           " bytes) is smaller than snapshot " + snapshot_id + "'s volume (" +
                           std::to_string(meta.volume_size) + " bytes)");
  const uint64_t bs = meta.block_size, size = meta.volume_size;
  BlockMapReader reader(repo_, meta);
  FirstError error;
  Counters c;
  const std::string what = "rolling " + volume->Describe() + " back to snapshot " + snapshot_id;

  auto run_batch = [&](const RollbackBatch& b) {
    thread_local AlignedBuffer buf;
    const uint64_t base = b.first * bs, n = b.ids.size();
    const uint64_t batch_len = std::min<uint64_t>(n * bs, size - base);
    buf.Reserve(batch_len);
    auto block_len = [&](size_t k) { return static_cast<size_t>(std::min<uint64_t>(bs, batch_len - k * bs)); };
    // Read the runs of blocks to compare that hold data, one request per run.
    for (size_t k = 0; k < n;) {
      if (!b.check[k] || !b.has_data[k]) {
        ++k;
        continue;
      }
      size_t run = k + 1;
      while (run < n && b.check[run] && b.has_data[run]) ++run;
      const uint64_t from = k * bs, to = std::min<uint64_t>(run * bs, batch_len);
      if (auto st = volume->ReadAt(base + from, {buf.data() + from, static_cast<size_t>(to - from)}); !st) {
        error.Set(st.error().WithContext(what));
        return;
      }
      c.bytes_read += to - from;
      k = run;
    }
    std::vector<Digest> want;
    std::vector<std::span<uint8_t>> outs;
    std::vector<size_t> block_of;
    std::vector<uint8_t> zero(n, 0);
    for (size_t k = 0; k < n; ++k) {
      if (!b.check[k]) {
        ++c.unchanged;
        continue;
      }
      ++c.compared;
      const size_t len = block_len(k);
      uint8_t* p = buf.data() + k * bs;
      const bool zeros = !b.has_data[k] || IsAllZero(p, len);
      if (IsZeroDigest(b.ids[k])) {
        zero[k] = !zeros;  // a hole in the snapshot: the volume's block must read as zeros
        continue;
      }
      if (!zeros && repo_->IdOf({p, len}) == b.ids[k]) continue;
      want.push_back(b.ids[k]);
      outs.emplace_back(p, len);
      block_of.push_back(k);
    }
    for (size_t k = 0; k < n && !error.failed();) {
      if (!zero[k]) {
        ++k;
        continue;
      }
      size_t run = k + 1;
      while (run < n && zero[run]) ++run;
      const uint64_t from = k * bs, to = std::min<uint64_t>(run * bs, batch_len);
      if (auto st = volume->Zero(base + from, to - from); !st) error.Set(st.error().WithContext(what));
      else c.zeroed += run - k;
      k = run;
    }
    if (want.empty() || error.failed()) return;
    // Each fetched chunk is checked against its id, then written over the volume's block.
    auto write_block = [&](size_t i) -> Status {
      RETURN_IF_ERROR(volume->WriteAt(base + block_of[i] * bs, outs[i]));
      ++c.written;
      c.bytes_written += outs[i].size();
      return OkStatus();
    };
    size_t failed = 0;
    if (auto st = repo_->ReadChunks(want, outs, nullptr, &failed, write_block); !st) {
      const uint64_t block = b.first + (failed < block_of.size() ? block_of[failed] : 0);
      error.Set(st.error().WithContext("snapshot " + snapshot_id + " block " + std::to_string(block)));
    }
  };

  auto stats = [&] {
    RollbackStats s;
    s.volume_bytes = size;
    s.blocks = meta.block_count;
    s.blocks_compared = c.compared;
    s.blocks_unchanged = c.unchanged;
    s.blocks_written = c.written;
    s.blocks_zeroed = c.zeroed;
    s.bytes_read = c.bytes_read;
    s.bytes_written = c.bytes_written;
    s.tail_bytes = volume->size() - size;
    return s;
  };

  const size_t per_batch = std::max<size_t>(1, opt_.blocks_per_batch);
  {
    // Batches mostly wait for the volume and the store, so more run than there are cores.
    ThreadPool workers(std::max(pool_ ? pool_->size() : 2, repo_->store()->ParallelReads()), 2);
    for (uint64_t first = 0; first < meta.block_count && !error.failed(); first += per_batch) {
      if (cancel && cancel->load()) {
        error.Set(Error(ErrorCode::kConflict, "rollback cancelled"));
        break;
      }
      RollbackBatch b;
      b.first = first;
      const size_t n = static_cast<size_t>(std::min<uint64_t>(per_batch, meta.block_count - first));
      b.ids.resize(n);
      b.check.assign(n, 1);
      b.has_data.assign(n, 0);
      for (size_t k = 0; k < n; ++k) {
        auto id = reader.BlockId(first + k);
        if (!id) {
          error.Set(id.error().WithContext("snapshot " + snapshot_id));
          break;
        }
        b.ids[k] = *id;
        if (opt_.maybe_changed && !opt_.maybe_changed(first + k)) b.check[k] = 0;
      }
      if (error.failed()) break;
      // Which blocks hold data on the volume (a sparse file's holes need no read).
      const uint64_t start = first * bs, end = std::min<uint64_t>(start + n * bs, size);
      for (uint64_t pos = start; pos < end;) {
        auto d = volume->NextData(pos);
        if (!d) {
          error.Set(d.error().WithContext(what));
          break;
        }
        if (*d >= end) break;
        auto h = volume->NextHole(*d);
        if (!h) {
          error.Set(h.error().WithContext(what));
          break;
        }
        const uint64_t to = std::min(std::max(*h, *d + 1), end);
        for (uint64_t blk = (*d - start) / bs; blk <= (to - 1 - start) / bs; ++blk) b.has_data[blk] = 1;
        pos = to;
      }
      if (error.failed()) break;
      workers.Submit([&, b = std::move(b)] {
        if (!error.failed()) run_batch(b);
      });
      if (progress) progress(stats());
    }
    workers.Wait();
  }
  if (auto e = error.Get()) {
    if (progress) progress(stats());  // what was done before it stopped (a resumed task counts it)
    return std::unexpected(*e);
  }
  RETURN_IF_ERROR(volume->Sync());
  RollbackStats out = stats();
  if (progress) progress(out);
  return out;
}

}  // namespace snapvol
