#include "store/verify.h"

#include <atomic>
#include <mutex>
#include <optional>
#include <unordered_map>

#include "store/block_map.h"

namespace snapvol {

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

  auto check_chunk = [&](const Digest& id) -> std::string {
    // Counted as checked when it could be read, whatever the check then says.
    std::optional<uint64_t> read;
    auto st = repo->CheckChunk(id, opt.checksum_only, &read);
    if (read) {
      ++objects;
      bytes += *read;
    }
    if (!st && read && st.error().code() == ErrorCode::kCorruption) {
      std::lock_guard lock(mu);
      corrupt.insert(id);
    }
    return st ? "" : "chunk " + ToHex(id) + ": " + st.error().message();
  };

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
      std::vector<Digest> chunks;
      BlockMapReader reader(repo, *meta);
      Status walked = reader.Walk(
          [&](uint32_t, const Digest&) -> Result<bool> {
            ++objects;
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
      for (const auto& c : todo) {
        pool->Submit([&, c] {
          std::string outcome = check_chunk(c);
          std::lock_guard lock(mu);
          checked[c] = outcome;
        });
      }
      pool->Wait();
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
  return report;
}

}  // namespace snapvol
