#include "engine/usage_accounting.h"

#include <chrono>
#include <cstring>
#include <map>
#include <unordered_map>
#include <unordered_set>

#include "core/hash.h"
#include "store/block_map.h"

namespace snapvol {

namespace {

std::string IdBytes(const Digest& d) { return std::string(reinterpret_cast<const char*>(d.data()), d.size()); }

Digest DigestOf(const std::string& bytes) {
  Digest d{};
  if (bytes.size() == d.size()) std::memcpy(d.data(), bytes.data(), d.size());
  return d;
}

constexpr int kChunkLevel = -1;  // below the leaf pages (level 0) are the chunks
constexpr int kApplyAttempts = 3;

}  // namespace

// The effect of one journal entry, worked out against the catalog's index as it stands
// (loaded lazily) and written by Finish() in one transaction. Levels: a page's level as in the
// block map, kChunkLevel for a chunk.
class UsageAccounting::Update {
 public:
  Update(Catalog* catalog, Repository* repo, std::string account) : catalog_(catalog), repo_(repo), account_(std::move(account)) {}

  Status AddGlobal(const Digest& id, int level) {
    ASSIGN_OR_RETURN(UsageObject * o, Find(id));
    if (o == nullptr) {
      const ObjectKind kind = level == kChunkLevel ? ObjectKind::kChunk : ObjectKind::kIndexPage;
      ASSIGN_OR_RETURN(uint64_t size, repo_->StoredSize(kind, id));
      UsageObject fresh{IdBytes(id), static_cast<int>(kind), size, 0, 0, level == kChunkLevel ? 1u : 0u};
      o = &(objects_[id] = std::move(fresh));
    }
    dirty_objects_.insert(id);
    if (++o->refs != 1 || level == kChunkLevel) return OkStatus();
    ASSIGN_OR_RETURN(const std::vector<Digest>* entries, Page(id, level));
    uint64_t data_blocks = 0;
    for (const Digest& e : *entries) {
      if (IsZeroDigest(e)) continue;
      RETURN_IF_ERROR(AddGlobal(e, level - 1));
      data_blocks += objects_.at(e).data_blocks;
    }
    o->data_blocks = data_blocks;
    return OkStatus();
  }

  Status RemoveGlobal(const Digest& id, int level) {
    ASSIGN_OR_RETURN(UsageObject * o, Find(id));
    if (o == nullptr || o->refs <= 0) return Missing(id);
    dirty_objects_.insert(id);
    if (--o->refs != 0 || level == kChunkLevel) return OkStatus();
    ASSIGN_OR_RETURN(const std::vector<Digest>* entries, Page(id, level));
    for (const Digest& e : *entries)
      if (!IsZeroDigest(e)) RETURN_IF_ERROR(RemoveGlobal(e, level - 1));
    return OkStatus();
  }

  // After AddGlobal (the objects exist in the index).
  Status AddToAccount(const Digest& id, int level) {
    ASSIGN_OR_RETURN(int64_t * refs, AccountRefs(id));
    if (++*refs != 1) return OkStatus();
    ASSIGN_OR_RETURN(UsageObject * o, Find(id));
    if (o == nullptr) return Missing(id);
    const int64_t size = static_cast<int64_t>(o->stored_bytes);
    const int64_t before = o->holders++;
    if (before == 0) {
      deltas_[account_].first += size;
    } else if (before == 1) {
      ASSIGN_OR_RETURN(std::string other, OtherHolder(id));
      deltas_[other].first -= size;
      deltas_[other].second += size;
      deltas_[account_].second += size;
    } else {
      deltas_[account_].second += size;
    }
    if (level == kChunkLevel) return OkStatus();
    ASSIGN_OR_RETURN(const std::vector<Digest>* entries, Page(id, level));
    for (const Digest& e : *entries)
      if (!IsZeroDigest(e)) RETURN_IF_ERROR(AddToAccount(e, level - 1));
    return OkStatus();
  }

  // Before RemoveGlobal (the objects still exist in the index).
  Status RemoveFromAccount(const Digest& id, int level) {
    ASSIGN_OR_RETURN(int64_t * refs, AccountRefs(id));
    if (*refs <= 0) return Missing(id);
    if (--*refs != 0) return OkStatus();
    ASSIGN_OR_RETURN(UsageObject * o, Find(id));
    if (o == nullptr) return Missing(id);
    const int64_t size = static_cast<int64_t>(o->stored_bytes);
    const int64_t before = o->holders--;
    if (before == 1) {
      deltas_[account_].first -= size;
    } else if (before == 2) {
      ASSIGN_OR_RETURN(std::string other, OtherHolder(id));
      deltas_[other].second -= size;
      deltas_[other].first += size;
      deltas_[account_].second -= size;
    } else {
      deltas_[account_].second -= size;
    }
    if (level == kChunkLevel) return OkStatus();
    ASSIGN_OR_RETURN(const std::vector<Digest>* entries, Page(id, level));
    for (const Digest& e : *entries)
      if (!IsZeroDigest(e)) RETURN_IF_ERROR(RemoveFromAccount(e, level - 1));
    return OkStatus();
  }

  uint64_t DataBlocks(const Digest& id) const {
    auto it = objects_.find(id);
    return it == objects_.end() ? 0 : it->second.data_blocks;
  }

  void Finish(UsageUpdate* u) const {
    for (const Digest& id : dirty_objects_) u->objects.push_back(objects_.at(id));
    for (const Digest& id : dirty_refs_) u->account_refs.push_back({IdBytes(id), account_, account_refs_.at(id)});
    u->account_deltas = deltas_;
  }

 private:
  Result<UsageObject*> Find(const Digest& id) {
    if (auto it = objects_.find(id); it != objects_.end()) return &it->second;
    if (absent_.count(id)) return nullptr;
    ASSIGN_OR_RETURN(std::optional<UsageObject> row, catalog_->GetUsageObject(IdBytes(id)));
    if (!row) {
      absent_.insert(id);
      return nullptr;
    }
    return &(objects_[id] = std::move(*row));
  }

  Result<int64_t*> AccountRefs(const Digest& id) {
    auto it = account_refs_.find(id);
    if (it == account_refs_.end()) {
      ASSIGN_OR_RETURN(int64_t refs, catalog_->GetUsageAccountRefs(IdBytes(id), account_));
      it = account_refs_.emplace(id, refs).first;
    }
    dirty_refs_.insert(id);
    return &it->second;
  }

  // The one account other than this one that references id (the catalog's view: only this
  // account's references change in an update).
  Result<std::string> OtherHolder(const Digest& id) {
    ASSIGN_OR_RETURN(std::vector<std::string> holders, catalog_->UsageHolders(IdBytes(id)));
    std::vector<std::string> others;
    for (auto& h : holders)
      if (h != account_) others.push_back(std::move(h));
    if (others.size() != 1)
      return Corruption("the usage index is inconsistent: object " + ToHex(id) + " has " +
                        std::to_string(others.size()) + " other holders where 1 was expected; run `snapvol usage rebuild`");
    return others.front();
  }

  Result<const std::vector<Digest>*> Page(const Digest& id, int level) {
    auto it = pages_.find(id);
    if (it != pages_.end()) return &it->second;
    ASSIGN_OR_RETURN(std::vector<uint8_t> plain, repo_->ReadPage(id));
    ASSIGN_OR_RETURN(std::vector<Digest> entries, ParsePage(plain, static_cast<uint32_t>(level)));
    return &(pages_[id] = std::move(entries));
  }

  static std::unexpected<Error> Missing(const Digest& id) {
    return Corruption("the usage index is inconsistent: object " + ToHex(id) +
                      " is not counted where a snapshot references it; run `snapvol usage rebuild`");
  }

  Catalog* catalog_;
  Repository* repo_;
  std::string account_;
  std::unordered_map<Digest, UsageObject, DigestHash> objects_;  // references stay valid on insert
  DigestSet absent_, dirty_objects_, dirty_refs_;
  std::unordered_map<Digest, int64_t, DigestHash> account_refs_;
  std::unordered_map<Digest, std::vector<Digest>, DigestHash> pages_;
  std::map<std::string, std::pair<int64_t, int64_t>> deltas_;
};

UsageAccounting::UsageAccounting(Catalog* catalog, Repository* repo) : catalog_(catalog), repo_(repo) {}

UsageAccounting::~UsageAccounting() { Stop(); }

Result<bool> UsageAccounting::ApplyNext() {
  std::lock_guard drain(drain_mu_);
  for (int attempt = 1;; ++attempt) {
    ASSIGN_OR_RETURN(std::optional<UsageJournalEntry> entry, catalog_->NextUsageEntry());
    if (!entry) return false;
    ASSIGN_OR_RETURN(int64_t generation, catalog_->UsageGeneration());
    UsageUpdate u;
    u.journal_seq = entry->seq;
    u.expected_generation = generation;
    ASSIGN_OR_RETURN(std::optional<SnapshotUsageRecord> counted, catalog_->GetSnapshotUsage(entry->snapshot_id));
    if (entry->add && !counted) {
      auto meta = repo_->GetManifest(entry->snapshot_id, /*include_deleted=*/true);
      if (!meta && meta.error().code() != ErrorCode::kNotFound) return std::unexpected(meta.error());
      if (meta) {  // else: deleted and collected before it was accounted; nothing to count
        Update work(catalog_, repo_, entry->account_id);
        const int level = static_cast<int>(meta->depth);
        SnapshotUsageRecord rec{entry->snapshot_id, entry->account_id, IdBytes(meta->root_page), meta->depth, 0, {}, -1};
        if (!IsZeroDigest(meta->root_page)) {
          RETURN_IF_ERROR(work.AddGlobal(meta->root_page, level));
          RETURN_IF_ERROR(work.AddToAccount(meta->root_page, level));
          const uint64_t bs = meta->block_size;
          rec.full_bytes = work.DataBlocks(meta->root_page) * bs;
          // The last block may be shorter than a block; count it as long as it is.
          const uint64_t tail = meta->volume_size % bs;
          if (tail != 0 && meta->block_count > 0) {
            BlockMapReader reader(repo_, *meta);
            ASSIGN_OR_RETURN(Digest last, reader.BlockId(meta->block_count - 1));
            if (!IsZeroDigest(last)) rec.full_bytes -= bs - tail;
          }
        }
        work.Finish(&u);
        u.add_snapshot = std::move(rec);
      }
    } else if (!entry->add && counted) {
      Update work(catalog_, repo_, counted->account_id);
      const Digest root = DigestOf(counted->root);
      if (!IsZeroDigest(root)) {
        const int level = static_cast<int>(counted->depth);
        RETURN_IF_ERROR(work.RemoveFromAccount(root, level));
        RETURN_IF_ERROR(work.RemoveGlobal(root, level));
      }
      work.Finish(&u);
      u.remove_snapshot = entry->snapshot_id;
    }
    // else: an add of a snapshot already counted, or a removal of one never counted (it did
    // not complete): the entry only goes.
    auto applied = catalog_->ApplyUsageUpdate(u);
    if (applied) return true;
    if (applied.error().code() != ErrorCode::kConflict || attempt == kApplyAttempts)
      return std::unexpected(applied.error());
  }
}

Result<size_t> UsageAccounting::Drain(size_t max_entries) {
  size_t done = 0;
  while (done < max_entries) {
    ASSIGN_OR_RETURN(bool applied, ApplyNext());
    if (!applied) break;
    ++done;
  }
  return done;
}

Result<SnapshotUsage> UsageAccounting::Snapshot(const std::string& snapshot_id) {
  ASSIGN_OR_RETURN(int64_t generation, catalog_->UsageGeneration());
  ASSIGN_OR_RETURN(std::optional<SnapshotUsageRecord> rec, catalog_->GetSnapshotUsage(snapshot_id));
  if (!rec) return NotFound("snapshot " + snapshot_id + " is not accounted (yet)");
  SnapshotUsage out{rec->full_bytes, 0};
  if (rec->unique_bytes && rec->unique_generation == generation) {
    out.unique_bytes = *rec->unique_bytes;
    return out;
  }
  // What deleting it alone would free: walk down from its root, level by level, counting
  // references from objects that would be freed; an object goes when all of its do.
  const Digest root = DigestOf(rec->root);
  std::unordered_map<Digest, int64_t, DigestHash> frontier;
  if (!IsZeroDigest(root)) frontier[root] = 1;
  for (int level = static_cast<int>(rec->depth); level >= kChunkLevel && !frontier.empty(); --level) {
    std::unordered_map<Digest, int64_t, DigestHash> next;
    for (const auto& [id, count] : frontier) {
      ASSIGN_OR_RETURN(std::optional<UsageObject> o, catalog_->GetUsageObject(IdBytes(id)));
      if (!o) return Corruption("the usage index lacks object " + ToHex(id) + " of snapshot " + snapshot_id);
      if (count < o->refs) continue;
      out.unique_bytes += o->stored_bytes;
      if (level == kChunkLevel) continue;
      ASSIGN_OR_RETURN(std::vector<uint8_t> plain, repo_->ReadPage(id));
      ASSIGN_OR_RETURN(std::vector<Digest> entries, ParsePage(plain, static_cast<uint32_t>(level)));
      for (const Digest& e : entries)
        if (!IsZeroDigest(e)) ++next[e];
    }
    frontier = std::move(next);
  }
  RETURN_IF_ERROR(catalog_->CacheSnapshotUnique(snapshot_id, out.unique_bytes, generation));
  return out;
}

Result<UsageTotals> UsageAccounting::Totals() {
  UsageTotals t;
  // The backlog first: the totals read after it include at least every change it does not
  // count (reading it last, a change applied in between would be in neither).
  ASSIGN_OR_RETURN(t.pending, catalog_->PendingUsageEntries());
  ASSIGN_OR_RETURN(t.accounts, catalog_->ListAccountUsage());
  ASSIGN_OR_RETURN(t.stored_bytes, catalog_->UsageStoredBytes());
  return t;
}

Result<std::vector<std::string>> UsageAccounting::KeepForUsage() { return catalog_->PendingUsageRemovals(); }

void UsageAccounting::Start(int64_t interval_ms, std::function<void(const Error&)> on_error) {
  thread_ = std::thread([this, interval_ms, on_error = std::move(on_error)] {
    std::unique_lock lock(mu_);
    while (!stop_) {
      woken_ = false;
      lock.unlock();
      // One entry at a time, so a stop waits for one entry, not for a whole backlog.
      Result<bool> applied = true;
      while (applied && *applied && !stopping_.load()) applied = ApplyNext();
      if (!applied && on_error) on_error(applied.error());
      lock.lock();
      cv_.wait_for(lock, std::chrono::milliseconds(interval_ms), [this] { return stop_ || woken_; });
    }
  });
}

void UsageAccounting::Wake() {
  std::lock_guard lock(mu_);
  woken_ = true;
  cv_.notify_all();
}

void UsageAccounting::Stop() {
  stopping_ = true;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

}  // namespace snapvol
