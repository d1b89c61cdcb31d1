#include "store/packed_index.h"

#include <algorithm>

#include "core/bytes.h"

namespace snapvol {
namespace {

// A refresh that finds an index object gone between listing and reading lists again (GC
// wrote its replacement before deleting it); after this many tries it gives up.
constexpr int kRefreshTries = 5;

// The cache file is rewritten after a refresh that read anything from the store, and after
// this many packindex/ objects this process published itself (a restart reads those again).
constexpr size_t kSaveAfterPublished = 64;

}  // namespace

std::vector<uint8_t> EncodeStoreIndex(const std::vector<IndexedPack>& packs) {
  std::vector<uint8_t> out(4);
  PutU32(out.data(), static_cast<uint32_t>(packs.size()));
  for (const auto& p : packs) {
    size_t at = out.size();
    out.resize(at + 36);
    std::memcpy(out.data() + at, p.pack.data(), 32);
    PutU32(out.data() + at + 32, static_cast<uint32_t>(p.entries.size()));
    AppendPackEntries(p.entries, &out);
  }
  return out;
}

Result<std::vector<IndexedPack>> DecodeStoreIndex(std::span<const uint8_t> plain) {
  if (plain.size() < 4) return Corruption("store index is truncated");
  uint32_t count = GetU32(plain.data());
  std::vector<IndexedPack> out;
  size_t at = 4;
  for (uint32_t i = 0; i < count; ++i) {
    if (plain.size() - at < 36) return Corruption("store index is truncated at pack " + std::to_string(i));
    IndexedPack p;
    std::memcpy(p.pack.data(), plain.data() + at, 32);
    uint32_t n = GetU32(plain.data() + at + 32);
    at += 36;
    if ((plain.size() - at) / kPackIndexEntryBytes < n)
      return Corruption("store index is truncated in the entries of pack " + ToHex(p.pack));
    ASSIGN_OR_RETURN(p.entries, ReadPackEntries(plain.data() + at, n));
    at += size_t{n} * kPackIndexEntryBytes;
    out.push_back(std::move(p));
  }
  if (at != plain.size()) return Corruption("store index has bytes after its last pack");
  return out;
}

std::string IndexCachePath(const std::string& cache_dir, const std::string& store_id) {
  return cache_dir + "/packindex-" + store_id + ".cache";
}

Result<std::vector<IndexedPack>> PackedIndex::ReadIndexObject(const std::string& key) const {
  ASSIGN_OR_RETURN(auto stored, store_->Get(key));
  auto plain = codec_->Decode(ObjectKind::kStoreIndex, Sha256(AsBytes(key)), stored, /*verify_id=*/false);
  if (!plain) return std::unexpected(plain.error().WithContext("store index " + key));
  auto packs = DecodeStoreIndex(*plain);
  if (!packs) return std::unexpected(packs.error().WithContext(key));
  return packs;
}

Status PackedIndex::RefreshIfUnchangedSince(uint64_t generation) {
  std::lock_guard refreshing(refresh_mu_);
  if (generation_.load() != generation) return OkStatus();  // another thread refreshed meanwhile
  for (int attempt = 1;; ++attempt) {
    ASSIGN_OR_RETURN(auto listed, store_->List(kPackIndexPrefix));
    std::set<std::string> keys;
    for (const auto& o : listed) keys.insert(o.key);
    std::set<std::string> loaded;
    {
      std::shared_lock lock(mu_);
      loaded = loaded_;
    }
    RefreshStats stats;
    // The first refresh starts from the cache file when it covers only objects still listed.
    std::optional<IndexTable::Loaded> cached;
    if (generation_.load() == 0 && !cache_path_.empty()) {
      auto got = IndexTable::Load(cache_path_, store_id_);
      if (!got) {
        if (got.error().code() != ErrorCode::kNotFound) stats.cache_problem = got.error().message();
      } else if (std::all_of(got->keys.begin(), got->keys.end(), [&](const std::string& k) { return keys.count(k); })) {
        cached = std::move(*got);
        stats.from_cache = true;
      } else {
        stats.cache_problem = "index cache " + cache_path_ + " covers packindex/ objects the store no longer has";
      }
    }
    const bool rebuild =
        !cached && std::any_of(loaded.begin(), loaded.end(), [&](const std::string& k) { return !keys.count(k); });
    const std::set<std::string>& have = cached ? cached->keys : loaded;
    // A whole new copy (from the cache file, or rebuilt) is built aside as it is read, so
    // lookups go on against the old one meanwhile and only one index object's entries are
    // held decoded at a time; a rebuild from nothing sorts once at the end.
    const bool whole = cached || rebuild || loaded.empty();
    IndexTable fresh = cached ? std::move(cached->table) : IndexTable{};
    std::set<std::string> fresh_keys = cached ? cached->keys : std::set<std::string>{};  // have refers to cached's
    if (whole && !cached) fresh.BeginBulk();
    std::vector<std::pair<std::string, std::vector<IndexedPack>>> added;  // incremental
    bool vanished = false;
    for (const auto& key : keys) {
      if (!rebuild && have.count(key)) continue;
      auto packs = ReadIndexObject(key);
      if (!packs && packs.error().code() == ErrorCode::kNotFound) {
        vanished = true;  // replaced by a gc between the listing and now: list again
        break;
      }
      if (!packs) return std::unexpected(packs.error());
      ++stats.objects_read;
      if (whole) {
        for (const auto& p : *packs) RETURN_IF_ERROR(fresh.AddPack(p.pack, p.entries));
        fresh_keys.insert(key);
      } else {
        added.emplace_back(key, std::move(*packs));
      }
    }
    if (vanished) {
      if (attempt == kRefreshTries)
        return MakeError(ErrorCode::kConflict, "the store index kept changing while it was read; retry", true);
      continue;
    }
    if (whole) {
      if (!cached) RETURN_IF_ERROR(fresh.EndBulk());
      std::unique_lock lock(mu_);
      table_ = std::move(fresh);
      loaded_ = std::move(fresh_keys);
    } else {
      std::unique_lock lock(mu_);
      for (const auto& [key, packs] : added) {
        for (const auto& p : packs) RETURN_IF_ERROR(AddOrForget(p));
        loaded_.insert(key);
      }
    }
    {
      std::unique_lock lock(mu_);
      stats_ = stats;
    }
    ++generation_;
    if (!cache_path_.empty() && (stats.objects_read > 0 || !stats.cache_problem.empty())) SaveCache();
    return OkStatus();
  }
}

void PackedIndex::SaveCache() {
  // Compacted under the write lock, then written under the read lock: lookups go on while
  // the file is written, additions wait.
  {
    std::unique_lock lock(mu_);
    if (auto st = table_.Compact(); !st) {
      stats_.cache_problem = st.error().message();
      return;
    }
  }
  std::shared_lock lock(mu_);
  auto st = table_.Save(cache_path_, store_id_, loaded_);
  lock.unlock();
  std::unique_lock relock(mu_);
  if (st) unsaved_ = 0;
  else stats_.cache_problem = "writing the index cache: " + st.error().message();
}

Status PackedIndex::AddOrForget(const IndexedPack& p) {
  auto st = table_.AddPack(p.pack, p.entries);
  if (!st) {
    // Out of memory in a merge: entries may be gone, so the next refresh reads it all again.
    table_ = IndexTable{};
    loaded_.clear();
  }
  return st;
}

Status PackedIndex::Published(const std::string& key, const std::vector<IndexedPack>& packs) {
  bool save;
  {
    std::unique_lock lock(mu_);
    for (const auto& p : packs) RETURN_IF_ERROR(AddOrForget(p));
    loaded_.insert(key);
    save = !cache_path_.empty() && ++unsaved_ >= kSaveAfterPublished;
  }
  if (save) {
    std::lock_guard refreshing(refresh_mu_);  // one writer of the cache file at a time
    SaveCache();
  }
  return OkStatus();
}

std::optional<PackedLocation> PackedIndex::Find(ObjectKind kind, const Digest& id) const {
  std::shared_lock lock(mu_);
  auto loc = table_.Find(kind, id);
  if (!loc) return std::nullopt;
  return PackedLocation{table_.PackId(loc->pack), loc->offset, loc->length};
}

std::vector<std::pair<Digest, uint32_t>> PackedIndex::Entries(ObjectKind kind) const {
  std::shared_lock lock(mu_);
  std::vector<std::pair<Digest, uint32_t>> out;
  out.reserve(table_.size(kind));
  table_.ForEach(kind, [&](const Digest& id, const IndexLoc& loc) { out.emplace_back(id, loc.length); });
  return out;
}

uint64_t PackedIndex::MemoryBytes() const {
  std::shared_lock lock(mu_);
  return table_.MemoryBytes();
}

size_t PackedIndex::size(ObjectKind kind) const {
  std::shared_lock lock(mu_);
  return table_.size(kind);
}

PackedIndex::RefreshStats PackedIndex::last_refresh() const {
  std::shared_lock lock(mu_);
  return stats_;
}

}  // namespace snapvol
