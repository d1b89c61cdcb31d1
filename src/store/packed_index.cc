#include "store/packed_index.h"

#include <sys/stat.h>

#include <algorithm>
#include <future>

#include "core/bytes.h"

namespace snapvol {
namespace {

// A refresh that finds an index object gone between listing and reading lists again (GC
// wrote its replacement before deleting it); after this many tries it gives up.
constexpr int kRefreshTries = 5;

// Stored bytes of packindex/ objects a refresh keeps in flight at once (at least one object):
// a few Gets hide a remote store's latency without holding much of the index twice.
constexpr uint64_t kReadAheadBytes = 8u << 20;

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

Status ForEachIndexedPack(std::span<const uint8_t> plain,
                          const std::function<Status(const Digest& pack, std::span<const PackEntry> entries)>& fn) {
  if (plain.size() < 4) return Corruption("store index is truncated");
  uint32_t count = GetU32(plain.data());
  size_t at = 4;
  for (uint32_t i = 0; i < count; ++i) {
    if (plain.size() - at < 36) return Corruption("store index is truncated at pack " + std::to_string(i));
    Digest pack;
    std::memcpy(pack.data(), plain.data() + at, 32);
    uint32_t n = GetU32(plain.data() + at + 32);
    at += 36;
    if ((plain.size() - at) / kPackIndexEntryBytes < n)
      return Corruption("store index is truncated in the entries of pack " + ToHex(pack));
    ASSIGN_OR_RETURN(auto entries, ReadPackEntries(plain.data() + at, n));
    at += size_t{n} * kPackIndexEntryBytes;
    RETURN_IF_ERROR(fn(pack, entries));
  }
  if (at != plain.size()) return Corruption("store index has bytes after its last pack");
  return OkStatus();
}

Result<std::vector<IndexedPack>> DecodeStoreIndex(std::span<const uint8_t> plain) {
  std::vector<IndexedPack> out;
  RETURN_IF_ERROR(ForEachIndexedPack(plain, [&](const Digest& pack, std::span<const PackEntry> entries) {
    out.push_back({pack, {entries.begin(), entries.end()}});
    return OkStatus();
  }));
  return out;
}

std::string IndexCachePath(const std::string& cache_dir, const std::string& store_id) {
  return cache_dir + "/packindex-" + store_id + ".cache";
}

Result<std::vector<uint8_t>> PackedIndex::ReadIndexPlain(const std::string& key) const {
  ASSIGN_OR_RETURN(auto stored, store_->Get(key));
  auto plain = codec_->Decode(ObjectKind::kStoreIndex, Sha256(AsBytes(key)), stored, /*verify_id=*/false);
  if (!plain) return std::unexpected(plain.error().WithContext("store index " + key));
  return plain;
}

Result<std::vector<IndexedPack>> PackedIndex::ReadIndexObject(const std::string& key) const {
  ASSIGN_OR_RETURN(auto plain, ReadIndexPlain(key));
  auto packs = DecodeStoreIndex(plain);
  if (!packs) return std::unexpected(packs.error().WithContext(key));
  return packs;
}

Status PackedIndex::ReadIndexObjects(
    const std::vector<ObjectInfo>& objs, bool* vanished,
    const std::function<Status(const std::string& key, std::vector<uint8_t> plain)>& fn) const {
  *vanished = false;
  const size_t parallel = std::max<size_t>(1, store_->ParallelReads());
  for (size_t i = 0; i < objs.size();) {
    // A window of objects within the read-ahead bytes; all but the first fetched meanwhile.
    size_t end = i + 1;
    uint64_t bytes = objs[i].size;
    while (end < objs.size() && end - i < parallel && bytes + objs[end].size <= kReadAheadBytes)
      bytes += objs[end++].size;
    std::vector<std::future<Result<std::vector<uint8_t>>>> ahead;
    for (size_t k = i + 1; k < end; ++k)
      ahead.push_back(std::async(std::launch::async, [this, &key = objs[k].key] { return store_->Get(key); }));
    for (size_t k = i; k < end; ++k) {
      auto stored = k == i ? store_->Get(objs[k].key) : ahead[k - i - 1].get();
      if (!stored && stored.error().code() == ErrorCode::kNotFound) {
        *vanished = true;  // replaced by a gc between the listing and now
        return OkStatus();
      }
      if (!stored) return std::unexpected(stored.error());
      auto plain = codec_->Decode(ObjectKind::kStoreIndex, Sha256(AsBytes(objs[k].key)), *stored, /*verify_id=*/false);
      if (!plain) return std::unexpected(plain.error().WithContext("store index " + objs[k].key));
      *stored = {};  // let the stored bytes go before the plaintext is parsed
      auto st = fn(objs[k].key, std::move(*plain));
      if (!st) return std::unexpected(st.error().WithContext(objs[k].key));
    }
    i = end;
  }
  return OkStatus();
}

Status PackedIndex::RefreshIfUnchangedSince(uint64_t generation) {
  std::lock_guard refreshing(refresh_mu_);
  if (generation_.load() != generation) return OkStatus();  // another thread refreshed meanwhile
  std::string refused;  // why a cache that failed while it was applied is not tried again
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
    stats.cache_problem = refused;
    // The first refresh starts from the cache (the sorted file and its log) when it covers
    // only objects still listed. A damaged or foreign log is refused alone: the sorted file
    // checks itself, and what the log held is read from the store.
    std::optional<IndexTable::Loaded> cached;
    std::optional<IndexCacheLog> log;
    if (generation_.load() == 0 && !cache_path_.empty() && refused.empty()) {
      auto got = IndexTable::Load(cache_path_, store_id_);
      if (!got) {
        if (got.error().code() != ErrorCode::kNotFound) stats.cache_problem = got.error().message();
      } else {
        std::set<std::string> covered = got->keys;
        if (auto opened = IndexCacheLog::Open(log_path_, store_id_)) {
          log = std::move(*opened);
          covered.insert(log->keys().begin(), log->keys().end());
        } else if (opened.error().code() != ErrorCode::kNotFound) {
          stats.cache_problem = opened.error().message();
        }
        if (std::all_of(covered.begin(), covered.end(), [&](const std::string& k) { return keys.count(k); })) {
          cached = std::move(*got);
          stats.from_cache = true;
        } else {
          log.reset();
          stats.cache_problem = "index cache " + cache_path_ + " covers packindex/ objects the store no longer has";
        }
      }
    }
    const bool rebuild =
        !cached && std::any_of(loaded.begin(), loaded.end(), [&](const std::string& k) { return !keys.count(k); });
    // A whole new copy (from the cache, or rebuilt) is built aside as it is read, so lookups
    // go on against the old one meanwhile and only one index object is held decoded at a
    // time; a rebuild from nothing appends unsorted and sorts once at the end.
    const bool whole = cached || rebuild || loaded.empty();
    const uint64_t base_records =
        cached ? cached->table.size(ObjectKind::kChunk) + cached->table.size(ObjectKind::kIndexPage) : 0;
    IndexTable fresh = cached ? std::move(cached->table) : IndexTable{};
    std::set<std::string> fresh_keys = cached ? std::move(cached->keys) : std::set<std::string>{};
    if (whole && !cached) fresh.BeginBulk();
    auto add_to = [](IndexTable* t) {
      return [t](const Digest& pack, std::span<const PackEntry> entries) { return t->AddPack(pack, entries); };
    };
    if (log) {
      auto st = log->ForEach([&](const std::string& key, std::span<const uint8_t> plain) -> Status {
        if (fresh_keys.count(key)) return OkStatus();  // in the sorted file, or twice in the log
        RETURN_IF_ERROR(ForEachIndexedPack(plain, add_to(&fresh)));
        fresh_keys.insert(key);
        return OkStatus();
      });
      if (!st) {  // changed or damaged since it was checked: start again without the cache
        refused = "index cache log " + log_path_ + ": " + st.error().message();
        continue;
      }
    }
    // Objects neither the copy in hand nor the cache covers; what is read goes into the
    // cache's log as it is read, unless the sorted file is to be written whole anyway.
    std::vector<ObjectInfo> to_read;
    for (const auto& o : listed)
      if (!(whole ? fresh_keys.count(o.key) : loaded.count(o.key))) to_read.push_back(o);
    const bool append = !cache_path_.empty() && !(whole && !cached) && stats.cache_problem.empty();
    uint64_t log_bytes = log ? log->bytes() : 0;
    if (cached) {
      std::lock_guard caching(cache_mu_);
      base_records_ = base_records;
    }
    std::vector<std::pair<std::string, std::vector<IndexedPack>>> added;  // incremental
    bool vanished = false;
    RETURN_IF_ERROR(ReadIndexObjects(to_read, &vanished, [&](const std::string& key, std::vector<uint8_t> plain) -> Status {
      ++stats.objects_read;
      if (whole) {
        RETURN_IF_ERROR(ForEachIndexedPack(plain, add_to(&fresh)));
        fresh_keys.insert(key);
      } else {
        ASSIGN_OR_RETURN(auto packs, DecodeStoreIndex(plain));  // checked whole before the live table sees it
        added.emplace_back(key, std::move(packs));
      }
      if (append && stats.cache_problem.empty()) {
        std::lock_guard caching(cache_mu_);
        auto size = AppendCache(key, plain);
        if (size) log_bytes = std::max(log_bytes, *size);
        else stats.cache_problem = "appending to the index cache log: " + size.error().message();
      }
      return OkStatus();
    }));
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
    if (cache_path_.empty()) return OkStatus();
    std::lock_guard caching(cache_mu_);
    // Written whole: when built from the store, when any part of the cache was refused or an
    // append failed, and when the log has passed its share of the sorted file.
    if ((whole && !cached && stats.objects_read > 0) || !stats.cache_problem.empty() || log_bytes > LogLimitBytes())
      SaveCache();
    return OkStatus();
  }
}

uint64_t PackedIndex::LogLimitBytes() const {
  return std::max<uint64_t>(kIndexDeltaMin, base_records_ / kIndexDeltaDivisor) * kPackIndexEntryBytes;
}

Result<uint64_t> PackedIndex::AppendCache(const std::string& key, std::span<const uint8_t> plain) {
  ASSIGN_OR_RETURN(uint64_t size, AppendIndexCacheLog(log_path_, store_id_, key, plain));
  cache_bytes_written_ += 16 + key.size() + plain.size();
  return size;
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
  const uint64_t records = table_.size(ObjectKind::kChunk) + table_.size(ObjectKind::kIndexPage);
  auto st = table_.Save(cache_path_, store_id_, loaded_);
  lock.unlock();
  // The log's sections are now in the sorted file (or, appended by another process
  // meanwhile, are read from the store next time).
  if (st) st = ResetIndexCacheLog(log_path_, store_id_);
  struct stat written {};
  if (st && ::stat(cache_path_.c_str(), &written) == 0) cache_bytes_written_ += static_cast<uint64_t>(written.st_size);
  if (!st) {
    std::unique_lock relock(mu_);
    stats_.cache_problem = "writing the index cache: " + st.error().message();
    return;
  }
  base_records_ = records;
  // The table in anonymous memory gives way to the file just written, mapped: the kernel
  // keeps the records in its page cache and this process holds only the pages its lookups
  // touch (a few MiB, where the table is 88 MiB at 2 M entries). Unless an addition came
  // in meanwhile; then the next save tries again.
  auto mapped = IndexTable::Load(cache_path_, store_id_);
  std::unique_lock relock(mu_);
  if (mapped && mapped->keys == loaded_) table_ = std::move(mapped->table);
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
  {
    std::unique_lock lock(mu_);
    for (const auto& p : packs) RETURN_IF_ERROR(AddOrForget(p));
    loaded_.insert(key);
  }
  if (!cache_path_.empty()) {
    // Appended to the cache's log, so that the next process to open the store need not read
    // it; a failed append costs only that read, and is told in last_refresh().
    std::lock_guard caching(cache_mu_);
    auto size = AppendCache(key, EncodeStoreIndex(packs));
    if (!size) {
      std::unique_lock lock(mu_);
      stats_.cache_problem = "appending to the index cache log: " + size.error().message();
    } else if (*size > LogLimitBytes()) {
      SaveCache();
    }
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
