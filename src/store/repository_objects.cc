// Repository: chunks and index pages, the content-addressed objects of a snapshot store
// (docs/store-format.md): their keys, their encoding, how a job writes them and how they are
// read, checked, listed and removed. Nothing above the store names or encodes them.
#include <algorithm>
#include <optional>
#include <tuple>
#include <string_view>
#include <unordered_map>

#include "store/repository.h"
#include "store/counting_store.h"
#include "core/process_holder.h"

namespace snapvol {
namespace {

std::string_view PrefixOf(ObjectKind kind) { return kind == ObjectKind::kChunk ? "chunks/" : "index/"; }

std::string KeyOf(ObjectKind kind, const Digest& id) {
  std::string hex = ToHex(id);
  return std::string(PrefixOf(kind)) + hex.substr(0, 2) + "/" + hex;
}

std::string_view NameOf(ObjectKind kind) { return kind == ObjectKind::kChunk ? "chunk" : "index page"; }

}  // namespace

std::string Repository::ChunkKey(const Digest& id) { return KeyOf(ObjectKind::kChunk, id); }
std::string Repository::PageKey(const Digest& id) { return KeyOf(ObjectKind::kIndexPage, id); }

Repository::Writer::Writer(Repository* repo, const WriterOptions& options) : repo_(repo), opt_(options) {
  if (repo->packed_) job_ = repo->packed_->NewJob();
  else batch_ = repo->store()->NewBatch();
}

uint64_t Repository::Writer::PendingBytes() const { return job_ ? job_->PendingBytes() : batch_->PendingBytes(); }

std::unique_ptr<Repository::Writer> Repository::NewWriter(const WriterOptions& options) {
  return std::unique_ptr<Writer>(new Writer(this, options));
}

Result<Repository::Writer::Put> Repository::Writer::PutChunk(const Digest& id,
                                                             std::span<const uint8_t> plain) {
  if (job_) {
    auto added = job_->Put(ObjectKind::kChunk, id, plain);
    if (!added) return std::unexpected(added.error().WithContext("writing chunk"));
    return Put{added->written, added->stored_bytes};
  }
  ObjectStore* store = repo_->store();
  std::string key = ChunkKey(id);
  ASSIGN_OR_RETURN(bool exists, store->Exists(key));
  if (exists) {
    // Refresh its age so a concurrent GC does not take it while the job is unpublished;
    // Finish checks it survived a GC that raced past the refresh.
    auto touched = store->Touch(key);
    if (touched) {
      std::lock_guard lock(mu_);
      found_.push_back(id);
      return Put{false, 0};
    }
    if (touched.error().code() != ErrorCode::kNotFound) return std::unexpected(touched.error());
  }
  ASSIGN_OR_RETURN(auto enc, repo_->codec().Encode(ObjectKind::kChunk, id, plain));
  auto added = batch_->Add(key, enc);
  if (!added) return std::unexpected(added.error().WithContext("writing chunk"));
  return Put{true, enc.size()};
}

Result<uint64_t> Repository::Writer::PutPage(const Digest& id, std::span<const uint8_t> plain) {
  if (job_) {
    // Format 2 asks the index: a page another snapshot stored is found, not written again.
    auto added = job_->Put(ObjectKind::kIndexPage, id, plain);
    if (!added) return std::unexpected(added.error().WithContext("writing index page"));
    return added->stored_bytes;
  }
  ASSIGN_OR_RETURN(auto enc, repo_->codec().Encode(ObjectKind::kIndexPage, id, plain));
  auto added = batch_->Add(PageKey(id), enc);
  if (!added) return std::unexpected(added.error().WithContext("writing index page"));
  return enc.size();
}

Status Repository::Writer::Commit() {
  if (job_) return job_->Commit();
  auto st = batch_->Commit();
  if (!st) return std::unexpected(st.error().WithContext("flushing chunks"));
  return OkStatus();
}

Status Repository::Writer::WaitForGcRuns() {
  Clock* clock = opt_.clock;
  const int64_t give_up = clock->NowMillis() + opt_.gc_wait_ms;
  for (;;) {
    ASSIGN_OR_RETURN(auto runs, repo_->ListGcRuns());
    const GcRunInfo* running = nullptr;
    for (const auto& r : runs)
      if (r.heartbeat_ms >= clock->NowMillis() - opt_.gc_run_expiry_ms && !HolderIsGone(r.holder, r.holder_start))
        running = &r;
    if (!running) return OkStatus();
    if (clock->NowMillis() >= give_up)
      return MakeError(ErrorCode::kConflict,
                       "a gc run (" + running->holder + ", started " + FormatIso8601(running->started_ms) +
                           ") is still running; retry the snapshot when it has ended",
                       /*retryable=*/true);
    clock->SleepMillis(opt_.gc_poll_ms);
  }
}

Status Repository::Writer::Finish() {
  RETURN_IF_ERROR(Commit());
  if (job_) {
    if (job_->found_any()) RETURN_IF_ERROR(WaitForGcRuns());
    return job_->CheckFound();
  }
  std::vector<Digest> found;
  {
    std::lock_guard lock(mu_);
    found.swap(found_);
  }
  if (!found.empty()) RETURN_IF_ERROR(WaitForGcRuns());
  for (const auto& id : found) {
    ASSIGN_OR_RETURN(bool still, repo_->store()->Exists(ChunkKey(id)));
    if (!still)
      return MakeError(ErrorCode::kConflict,
                       "chunk " + ToHex(id) + " was removed by a concurrent gc; retry the snapshot",
                       /*retryable=*/true);
  }
  return OkStatus();
}

Result<std::vector<uint8_t>> Repository::FetchStored(ObjectKind kind, const Digest& id) {
  auto stored = packed_ ? packed_->ReadStored(kind, id) : store_->Get(KeyOf(kind, id));
  if (!stored && stored.error().code() == ErrorCode::kNotFound) {
    CountStoreError(kind == ObjectKind::kChunk ? "read_chunk" : "read_page", Error(ErrorCode::kCorruption, ""));
    return Corruption(std::string(NameOf(kind)) + " " + ToHex(id) + " is missing from the store");
  }
  return stored;
}

Status Repository::DecodeChunk(const Digest& id, std::span<const uint8_t> stored, std::span<uint8_t> out) {
  auto st = codec_.DecodeInto(ObjectKind::kChunk, id, stored, out, /*verify_id=*/true);
  if (!st) CountStoreError("read_chunk", st.error());
  if (!st) return std::unexpected(st.error().WithContext("chunk " + ToHex(id)));
  return OkStatus();
}

Status Repository::ReadChunk(const Digest& id, std::span<uint8_t> out, uint64_t* stored_bytes) {
  ASSIGN_OR_RETURN(auto stored, FetchStored(ObjectKind::kChunk, id));
  if (stored_bytes) *stored_bytes += stored.size();
  return DecodeChunk(id, stored, out);
}

void Repository::PlanChunkReads(std::span<const Digest> ids, std::vector<PackRun>* runs,
                                std::vector<size_t>* alone) const {
  std::vector<std::pair<PackedLocation, size_t>> packed;
  for (size_t i = 0; i < ids.size(); ++i) {
    std::optional<PackedLocation> at;
    if (packed_) at = packed_->Find(ObjectKind::kChunk, ids[i]);
    if (at) packed.emplace_back(*at, i);
    else alone->push_back(i);
  }
  std::sort(packed.begin(), packed.end(), [](const auto& a, const auto& b) {
    return std::tie(a.first.pack, a.first.offset) < std::tie(b.first.pack, b.first.offset);
  });
  // One ranged read per run of entries of one pack lying close together: reading a small gap
  // (a dead or unrelated object) costs less than another request.
  constexpr uint64_t kGap = 256 << 10;
  const uint64_t kMaxRun = store_->CoalescedReadBytes();
  for (size_t a = 0; a < packed.size();) {
    PackRun run;
    run.pack = packed[a].first.pack;
    run.begin = packed[a].first.offset;
    run.end = run.begin + packed[a].first.length;
    size_t b = a + 1;
    for (; b < packed.size() && packed[b].first.pack == run.pack && packed[b].first.offset <= run.end + kGap; ++b) {
      uint64_t to = uint64_t{packed[b].first.offset} + packed[b].first.length;
      if (to - run.begin > kMaxRun) break;
      run.end = std::max(run.end, to);
    }
    run.entries.assign(packed.begin() + static_cast<std::ptrdiff_t>(a), packed.begin() + static_cast<std::ptrdiff_t>(b));
    runs->push_back(std::move(run));
    a = b;
  }
}

Status Repository::ReadChunks(std::span<const Digest> ids, std::span<const std::span<uint8_t>> outs,
                              uint64_t* stored_bytes, size_t* failed,
                              const std::function<Status(size_t)>& decoded) {
  if (ids.size() != outs.size()) return InvalidArgument("ReadChunks: as many buffers as ids are needed");
  std::vector<PackRun> runs;
  std::vector<size_t> alone;  // read one by one (format 1, or not where this process's index says)
  PlanChunkReads(ids, &runs, &alone);
  for (const PackRun& run : runs) {
    auto got = store_->GetRange(PackedObjects::PackKey(run.pack), run.begin, run.end - run.begin);
    if (!got) {
      // The pack went (repacked since this process read the index) or is short: ReadChunk
      // refreshes the index and names exactly what is wrong.
      if (got.error().code() != ErrorCode::kNotFound && got.error().code() != ErrorCode::kCorruption)
      {
        if (failed) *failed = run.entries.front().second;
        return std::unexpected(got.error().WithContext("reading pack " + ToHex(run.pack)));
      }
      for (const auto& [at, i] : run.entries) alone.push_back(i);
      continue;
    }
    for (const auto& [at, i] : run.entries) {
      std::span<const uint8_t> stored(got->data() + (at.offset - run.begin), at.length);
      if (stored_bytes) *stored_bytes += stored.size();
      if (auto st = DecodeChunk(ids[i], stored, outs[i]); !st || (decoded && !(st = decoded(i)))) {
        if (failed) *failed = i;
        return st;
      }
    }
  }
  for (size_t i : alone)
    if (auto st = ReadChunk(ids[i], outs[i], stored_bytes); !st || (decoded && !(st = decoded(i)))) {
      if (failed) *failed = i;
      return st;
    }
  return OkStatus();
}

Result<std::vector<uint8_t>> Repository::ReadPage(const Digest& id) {
  ASSIGN_OR_RETURN(auto stored, FetchStored(ObjectKind::kIndexPage, id));
  auto plain = codec_.Decode(ObjectKind::kIndexPage, id, stored, /*verify_id=*/true);
  if (!plain) CountStoreError("read_page", plain.error());
  if (!plain) return std::unexpected(plain.error().WithContext("index page " + ToHex(id)));
  return plain;
}

Status Repository::CheckStored(const Digest& id, std::span<const uint8_t> stored, bool checksum_only) {
  std::optional<Error> damage;
  if (checksum_only) {
    if (auto ok = ChunkCodec::CheckIntegrity(stored, ObjectKind::kChunk); !ok) damage = ok.error();
  } else if (auto ok = codec_.Decode(ObjectKind::kChunk, id, stored, /*verify_id=*/true); !ok) {
    damage = ok.error();
  }
  if (!damage) return OkStatus();
  CountStoreError("verify_chunk", *damage);
  return std::unexpected(*damage);
}

Status Repository::CheckChunk(const Digest& id, bool checksum_only, std::optional<uint64_t>* read_bytes) {
  auto stored = packed_ ? packed_->ReadStored(ObjectKind::kChunk, id) : store_->Get(ChunkKey(id));
  if (!stored) return std::unexpected(stored.error());  // verify names NotFound as it is
  *read_bytes = stored->size();
  return CheckStored(id, *stored, checksum_only);
}

std::vector<Repository::ChunkCheck> Repository::CheckChunks(std::span<const Digest> ids, bool checksum_only) {
  std::vector<ChunkCheck> out(ids.size());
  std::vector<PackRun> runs;
  std::vector<size_t> alone;
  PlanChunkReads(ids, &runs, &alone);
  for (const PackRun& run : runs) {
    auto got = store_->GetRange(PackedObjects::PackKey(run.pack), run.begin, run.end - run.begin);
    if (!got) {
      // As in ReadChunks: a pack that went or is short is left to CheckChunk, which reads the
      // index again and names what is wrong; any other failure is a read error of each chunk.
      if (got.error().code() == ErrorCode::kNotFound || got.error().code() == ErrorCode::kCorruption) {
        for (const auto& [at, i] : run.entries) alone.push_back(i);
      } else {
        for (const auto& [at, i] : run.entries)
          out[i].status = std::unexpected(got.error().WithContext("reading pack " + ToHex(run.pack)));
      }
      continue;
    }
    for (const auto& [at, i] : run.entries) {
      std::span<const uint8_t> stored(got->data() + (at.offset - run.begin), at.length);
      out[i].read_bytes = stored.size();
      out[i].status = CheckStored(ids[i], stored, checksum_only);
    }
  }
  for (size_t i : alone) out[i].status = CheckChunk(ids[i], checksum_only, &out[i].read_bytes);
  return out;
}

Result<std::vector<StoredObjectInfo>> Repository::ListObjects(ObjectKind kind) {
  if (kind != ObjectKind::kChunk && kind != ObjectKind::kIndexPage)
    return InvalidArgument("only chunks and index pages are listed by id");
  if (packed_) {
    // Entries of the index, aged by their packs.
    RETURN_IF_ERROR(packed_->Refresh());
    ASSIGN_OR_RETURN(auto packs, store_->List(kPackPrefix));
    std::unordered_map<std::string, int64_t> mtime;
    for (const auto& p : packs) mtime[p.key] = p.mtime_ms;
    std::vector<StoredObjectInfo> out;
    for (const auto& [id, length] : packed_->Entries(kind)) {
      auto loc = packed_->Find(kind, id);
      if (!loc) continue;
      auto it = mtime.find(PackedObjects::PackKey(loc->pack));
      if (it != mtime.end()) out.push_back({id, length, it->second});
    }
    return out;
  }
  ASSIGN_OR_RETURN(auto objs, store_->List(std::string(PrefixOf(kind))));
  std::vector<StoredObjectInfo> out;
  out.reserve(objs.size());
  for (const auto& o : objs) {
    // "chunks/ab/<64 hex>": a key of another shape is not one of ours and is left alone.
    auto slash = o.key.rfind('/');
    if (slash == std::string::npos) continue;
    auto id = DigestFromHex(std::string_view(o.key).substr(slash + 1));
    if (!id || KeyOf(kind, *id) != o.key) continue;
    out.push_back({*id, o.size, o.mtime_ms});
  }
  return out;
}

Result<uint64_t> Repository::StoredSize(ObjectKind kind, const Digest& id) {
  if (kind != ObjectKind::kChunk && kind != ObjectKind::kIndexPage)
    return InvalidArgument("only chunks and index pages are sized by id");
  auto size = packed_ ? packed_->StoredSize(kind, id) : store_->Size(KeyOf(kind, id));
  if (!size && size.error().code() == ErrorCode::kNotFound)
    return Corruption(std::string(kind == ObjectKind::kChunk ? "chunk " : "index page ") + ToHex(id) +
                      " is missing from the store");
  return size;
}

Status Repository::DeleteObjects(ObjectKind kind, const std::vector<Digest>& ids) {
  if (kind != ObjectKind::kChunk && kind != ObjectKind::kIndexPage)
    return InvalidArgument("only chunks and index pages are removed by id");
  if (packed_) {
    auto dropped = packed_->Remove(kind, ids);
    if (!dropped) return std::unexpected(dropped.error());
    return OkStatus();
  }
  std::vector<std::string> keys;
  keys.reserve(ids.size());
  for (const auto& id : ids) keys.push_back(KeyOf(kind, id));
  return store_->DeleteMany(keys);
}

}  // namespace snapvol

namespace snapvol {

Result<int64_t> Repository::ObjectMtime(ObjectKind kind, const Digest& id) {
  if (packed_) return packed_->Mtime(kind, id);
  std::string key = KeyOf(kind, id);
  ASSIGN_OR_RETURN(auto objs, store_->List(key));
  for (const auto& o : objs)
    if (o.key == key) return o.mtime_ms;
  return NotFound(std::string(NameOf(kind)) + " " + ToHex(id) + " is missing from the store");
}

Result<std::vector<GcRunInfo>> Repository::RemoveGoneGcRuns(const std::string& own_run_id) {
  ASSIGN_OR_RETURN(auto runs, ListGcRuns());
  std::vector<GcRunInfo> removed;
  for (auto& r : runs) {
    if (r.run_id == own_run_id || !HolderIsGone(r.holder, r.holder_start)) continue;
    RETURN_IF_ERROR(RemoveGcRun(r.run_id));
    removed.push_back(std::move(r));
  }
  return removed;
}

Status Repository::RequireSoleGcRun(const std::string& own_run_id, int64_t now_ms) {
  if (!packed_) return OkStatus();
  ASSIGN_OR_RETURN(auto runs, ListGcRuns());
  for (const auto& r : runs)
    if (r.run_id != own_run_id && r.heartbeat_ms >= now_ms - kGcRunExpiryMs)
      return MakeError(ErrorCode::kConflict,
                       "another gc or verification (" + r.holder + ", started " + FormatIso8601(r.started_ms) +
                           ") is running on this store; run this again when it has ended",
                       /*retryable=*/true);
  return OkStatus();
}

}  // namespace snapvol
