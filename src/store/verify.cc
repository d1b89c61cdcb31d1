#include "store/verify.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "store/block_map.h"

namespace snapvol {
namespace {

// Chunks checked with one CheckChunks call: at the default block size up to 32 MiB of
// plaintext, read in ranged reads of up to 16 MiB in a format-2 store.
constexpr size_t kChunksPerBatch = 64;

}  // namespace

Result<VerifyReport> VerifySnapshots(Repository* repo, const std::vector<std::string>& requested,
                                     ThreadPool* pool, const VerifyOptions& opt) {
  VerifyReport report;
  std::vector<std::string> ids = requested;
  if (ids.empty()) {
    ASSIGN_OR_RETURN(ids, repo->ListManifestIds(false));
  }
  // Outcome per chunk id, shared across snapshots: empty string = good.
  std::mutex mu;
  std::unordered_map<Digest, std::string, DigestHash> checked;  // guarded by mu
  DigestSet corrupt;                                             // guarded by mu
  std::atomic<uint64_t> objects{0}, bytes{0};
  // Format 2: each pack's own trailing index is checked once, the first time a snapshot
  // references an object in it (one ranged read of its tail), against the entries of that
  // snapshot's objects in it. Outcome per pack: empty = good.
  PackedObjects* packed = repo->packed();
  std::optional<std::map<Digest, uint64_t>> pack_sizes;  // listed once, before any check
  std::map<Digest, std::string> packs_checked;           // guarded by mu
  if (packed) {
    auto listed = packed->PackSizes();
    if (!listed) return std::unexpected(listed.error().WithContext("listing packs"));
    pack_sizes = std::move(*listed);
  }

  // Checks a batch of chunks with as few reads as their places allow and records each outcome.
  auto check_batch = [&](std::vector<Digest> batch) {
    auto results = repo->CheckChunks(batch, opt.checksum_only);
    std::lock_guard lock(mu);
    for (size_t i = 0; i < batch.size(); ++i) {
      const Digest& id = batch[i];
      auto& r = results[i];
      // Counted as checked when it could be read, whatever the check then says.
      if (r.read_bytes) {
        ++objects;
        bytes += *r.read_bytes;
      }
      if (!r.status && r.read_bytes && r.status.error().code() == ErrorCode::kCorruption) corrupt.insert(id);
      checked[id] = r.status ? "" : "chunk " + ToHex(id) + ": " + r.status.error().message();
    }
  };
  // Batches run on threads of their own: a batch mostly waits for its reads, so at least as
  // many run at once as the store serves reads in parallel.
  ThreadPool fetchers(std::max(pool->size(), repo->store()->ParallelReads()));

  size_t done = 0;
  for (const auto& snap : ids) {
    DamagedSnapshot dmg{snap, {}, 0};
    auto note = [&](const std::string& problem) {
      ++dmg.bad_objects;
      if (dmg.problems.size() < 5) dmg.problems.push_back(problem);
    };
    auto meta = repo->GetManifest(snap);
    if (!meta) {
      note("manifest: " + meta.error().message());
    } else {
      std::vector<Digest> chunks, pages;
      BlockMapReader reader(repo, *meta);
      Status walked = reader.Walk(
          [&](uint32_t, const Digest& page) -> Result<bool> {
            ++objects;
            if (packed) pages.push_back(page);
            return true;
          },
          [&](uint64_t, const Digest& id) -> Status {
            chunks.push_back(id);
            return OkStatus();
          });
      if (!walked) note(walked.error().message());
      // Check chunks not seen before, in parallel.
      std::vector<Digest> todo;
      {
        std::lock_guard lock(mu);
        for (const auto& c : chunks)
          if (checked.emplace(c, "\x01").second) todo.push_back(c);  // claim it
      }
      // Batches of neighbouring blocks (mostly neighbours in a pack too), small enough that
      // every thread gets some.
      const size_t per_batch = std::clamp<size_t>(todo.size() / fetchers.size(), 1, kChunksPerBatch);
      for (size_t from = 0; from < todo.size(); from += per_batch) {
        std::vector<Digest> batch(todo.begin() + static_cast<std::ptrdiff_t>(from),
                                  todo.begin() + static_cast<std::ptrdiff_t>(std::min(todo.size(), from + per_batch)));
        fetchers.Submit([&, batch = std::move(batch)]() mutable { check_batch(std::move(batch)); });
      }
      // The trailing indexes of the packs this snapshot's objects are in, not checked yet.
      if (packed) {
        std::map<Digest, std::vector<PackEntry>> expected;
        auto place = [&](ObjectKind kind, const std::vector<Digest>& objs) {
          for (const auto& id : objs)
            if (auto at = packed->Find(kind, id)) expected[at->pack].push_back({id, kind, at->offset, at->length});
        };
        place(ObjectKind::kIndexPage, pages);
        place(ObjectKind::kChunk, chunks);
        std::vector<std::pair<Digest, uint64_t>> claimed;
        {
          std::lock_guard lock(mu);
          for (const auto& [pack, entries] : expected) {
            auto size = pack_sizes->find(pack);
            if (size == pack_sizes->end() || !packs_checked.emplace(pack, "").second) continue;  // gone, or claimed
            claimed.emplace_back(pack, size->second);
          }
        }
        // Submitted without mu held: Submit may wait for room while a batch needs mu to end.
        for (const auto& [pack, pack_size] : claimed) {
          auto& entries = expected[pack];
          std::sort(entries.begin(), entries.end(), [](const PackEntry& a, const PackEntry& b) {
            return a.offset < b.offset;
          });
          entries.erase(std::unique(entries.begin(), entries.end()), entries.end());
          fetchers.Submit([&, pack, pack_size, entries = std::move(entries)] {
            Status st = packed->CheckPackIndex(pack, pack_size, entries, opt.checksum_only);
            if (st || st.error().code() == ErrorCode::kNotFound) return;  // gone: repacked since
            std::lock_guard noting(mu);
            packs_checked[pack] = st.error().message();
            report.damaged_packs.push_back(st.error().message());
          });
        }
      }
      fetchers.Wait();
      std::lock_guard lock(mu);
      DigestSet reported;
      for (const auto& c : chunks) {
        const std::string& outcome = checked[c];
        if (!outcome.empty() && reported.insert(c).second) {
          note(outcome);
          if (corrupt.count(c)) dmg.corrupt_chunks.push_back(c);
        }
      }
    }
    ++report.snapshots_checked;
    if (dmg.bad_objects) report.damaged.push_back(std::move(dmg));
    if (opt.progress) opt.progress(++done, ids.size());
  }
  report.objects_checked = objects;
  report.bytes_checked = bytes;
  std::sort(report.damaged_packs.begin(), report.damaged_packs.end());
  return report;
}

}  // namespace snapvol
