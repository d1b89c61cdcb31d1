// DirectSnapshots::Adopt: resuming the direct snapshots a stopped process handed over, from
// their catalog journal (engine/direct_snapshots.h says what survives a restart).
#include <cstring>
#include <set>

#include "engine/direct_snapshots.h"

namespace snapvol {

namespace {

Digest FromBytes(const std::string& bytes) {
  Digest d{};
  if (bytes.size() == d.size()) std::memcpy(d.data(), bytes.data(), d.size());
  return d;
}

}  // namespace

Result<size_t> DirectSnapshots::Adopt() {
  ASSIGN_OR_RETURN(auto journals, catalog_->ListDirectJournals());
  size_t adopted = 0;
  for (const auto& j : journals) {
    if (!j.runner.empty()) continue;  // a live process runs it (or it was not handed over yet)
    {
      std::lock_guard<std::mutex> l(mu_);
      if (stopping_) break;
    }
    if (auto claimed = catalog_->HandOverSnapshot(j.snapshot_id, "", opt_.runner_id); !claimed) {
      if (claimed.error().code() == ErrorCode::kConflict) continue;  // another process took it
      return std::unexpected(claimed.error());
    }
    if (auto st = AdoptOne(j); !st) {
      (void)catalog_->HandOverSnapshot(j.snapshot_id, opt_.runner_id, "");
      return std::unexpected(st.error().WithContext("adopting direct snapshot " + j.snapshot_id));
    }
    if (Find(j.snapshot_id)) ++adopted;
  }
  return adopted;
}

Status DirectSnapshots::AdoptOne(const DirectJournalRecord& j) {
  auto p = std::make_shared<Pending>();
  ASSIGN_OR_RETURN(p->record, catalog_->GetSnapshot(j.snapshot_id));
  SnapshotRecord& rec = p->record;
  rec.runner = opt_.runner_id;
  p->block_count = rec.volume_size_bytes / kDirectBlockSize;
  p->deadline_ms = j.deadline_ms;
  const int64_t now = opt_.clock->NowMillis();
  if (now >= p->deadline_ms) {
    Fail(p, TimeoutMessage(*p) + " (it passed while snapvold was stopped)");
    return OkStatus();
  }
  // The lease first: while no process renewed it GC may have dropped it; from now on GC keeps
  // what this snapshot wrote (and its parent's root) again.
  RETURN_IF_ERROR(repo_->PutLease({rec.snapshot_id, rec.parent_snapshot_id, opt_.runner_id, rec.start_time_ms, now}));
  if (!rec.parent_snapshot_id.empty()) {
    auto pm = repo_->GetManifest(rec.parent_snapshot_id);
    if (!pm && pm.error().code() != ErrorCode::kNotFound) return std::unexpected(pm.error());
    if (!pm) {
      Fail(p, "its parent snapshot " + rec.parent_snapshot_id + " was deleted while snapvold was stopped");
      return OkStatus();
    }
    p->parent = std::move(*pm);
  }
  ASSIGN_OR_RETURN(auto blocks, catalog_->ListDirectBlocks(rec.snapshot_id));
  // Before adopting, every journaled chunk must still be there: GC may have taken one once
  // the lease had expired. A snapshot is never completed with a block missing.
  std::set<Digest> checked;
  for (const auto& b : blocks) {
    Written w{FromBytes(b.chunk_id), FromBytes(b.sha256)};
    if (b.index >= p->block_count || b.chunk_id.size() != w.chunk.size() || b.sha256.size() != w.sha256.size())
      return Corruption("the journal of snapshot " + rec.snapshot_id + " has a malformed block " +
                        std::to_string(b.index));
    if (w.chunk != Digest{} && checked.insert(w.chunk).second) {
      auto size = repo_->StoredSize(ObjectKind::kChunk, w.chunk);
      if (!size && size.error().code() == ErrorCode::kCorruption) {
        Fail(p, "block " + std::to_string(b.index) +
                    "'s data is no longer in the store (collected while snapvold was stopped and its lease "
                    "expired): the snapshot cannot be completed");
        return OkStatus();
      }
      if (!size) return std::unexpected(size.error());
    }
    p->written[b.index] = w;
    p->stored_bytes += b.stored_bytes;
    if (b.stored_bytes > 0) ++p->new_chunks;
  }
  WriterOptions wo;
  wo.clock = opt_.clock;
  p->writer = repo_->NewWriter(wo);
  std::lock_guard<std::mutex> l(mu_);
  pending_[rec.snapshot_id] = p;
  return OkStatus();
}

}  // namespace snapvol
