#include "store/packed_objects.h"

#include <algorithm>
#include <cstdio>
#include <map>

#include "core/bytes.h"

namespace snapvol {
namespace {

std::string NameOf(ObjectKind kind) { return kind == ObjectKind::kChunk ? "chunk" : "index page"; }

// A job that finds an object in a pack a gc just replaced looks it up again this many times.
constexpr int kFindTries = 5;

Result<Digest> RandomId() {
  Digest id{};
  RETURN_IF_ERROR(RandomBytes(id));
  return id;
}

}  // namespace

std::string PackedObjects::PackKey(const Digest& pack) {
  std::string hex = ToHex(pack);
  return std::string(kPackPrefix) + hex.substr(0, 2) + "/" + hex;
}

Result<std::vector<uint8_t>> PackedObjects::ReadStored(ObjectKind kind, const Digest& id) {
  for (int attempt = 0;; ++attempt) {
    uint64_t generation = index_.generation();
    if (generation == 0) {
      RETURN_IF_ERROR(index_.RefreshIfUnchangedSince(0));
      continue;
    }
    auto loc = Find(kind, id);
    if (loc) {
      auto got = store_->GetRange(PackKey(loc->pack), loc->offset, loc->length);
      if (got || got.error().code() != ErrorCode::kNotFound) return got;
    }
    // Not in the index this process read, or its pack is gone (repacked): read the index
    // again, once, before calling it missing.
    if (attempt > 0)
      return NotFound(NameOf(kind) + " " + ToHex(id) + " is missing from the store" +
                      (loc ? " (its pack " + ToHex(loc->pack) + " is gone)" : ""));
    RETURN_IF_ERROR(index_.RefreshIfUnchangedSince(generation));
  }
}

Result<uint64_t> PackedObjects::StoredSize(ObjectKind kind, const Digest& id) {
  for (int attempt = 0; attempt < 2; ++attempt) {
    uint64_t generation = index_.generation();
    if (generation != 0)
      if (auto loc = Find(kind, id)) return loc->length;
    RETURN_IF_ERROR(index_.RefreshIfUnchangedSince(generation));
  }
  return NotFound(NameOf(kind) + " " + ToHex(id) + " is missing from the store");
}

Result<int64_t> PackedObjects::Mtime(ObjectKind kind, const Digest& id) {
  if (index_.generation() == 0) RETURN_IF_ERROR(index_.RefreshIfUnchangedSince(0));
  auto loc = Find(kind, id);
  if (!loc) return NotFound(NameOf(kind) + " " + ToHex(id) + " is missing from the store");
  std::string key = PackKey(loc->pack);
  ASSIGN_OR_RETURN(auto objs, store_->List(key));
  for (const auto& o : objs)
    if (o.key == key) return o.mtime_ms;
  return NotFound("pack " + ToHex(loc->pack) + " is missing from the store");
}

Status PackedObjects::WriteIndexObjects(const std::string& writer_id, uint32_t* seq,
                                        const std::vector<IndexedPack>& packs, bool add_to_copy) {
  size_t i = 0;
  while (i < packs.size()) {
    std::vector<IndexedPack> group;
    size_t entries = 0;
    while (i < packs.size() && (group.empty() || entries + packs[i].entries.size() <= kMaxEntriesPerIndexObject)) {
      entries += packs[i].entries.size();
      group.push_back(packs[i++]);
    }
    char suffix[16];
    std::snprintf(suffix, sizeof suffix, "-%08x", (*seq)++);
    std::string key = std::string(kPackIndexPrefix) + writer_id + suffix;
    ASSIGN_OR_RETURN(auto enc, codec_->Encode(ObjectKind::kStoreIndex, Sha256(AsBytes(key)), EncodeStoreIndex(group)));
    auto put = store_->Put(key, enc);
    if (!put) return std::unexpected(put.error().WithContext("publishing the store index"));
    if (add_to_copy) RETURN_IF_ERROR(index_.Published(key, group));
  }
  return OkStatus();
}

// ---- a job's writes ------------------------------------------------------------------------

std::unique_ptr<PackedObjects::Job> PackedObjects::NewJob() { return std::unique_ptr<Job>(new Job(this)); }

PackedObjects::Job::Job(PackedObjects* owner) : owner_(owner), batch_(owner->store_->NewBatch()) {
  std::array<uint8_t, 16> id{};
  if (!RandomBytes(id)) id.fill(0);  // RandomBytes fails only without a kernel RNG; Put fails then too
  writer_id_ = ToHex(id);
}

PackedObjects::Job::~Job() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    queue_.clear();  // a job that ends without Commit failed: its packs are not needed
  }
  queue_cv_.notify_all();
  if (writer_.joinable()) writer_.join();
}

bool PackedObjects::Job::found_any() const {
  std::lock_guard lock(mu_);
  return !found_.empty();
}

Result<PackedObjects::Job::Added> PackedObjects::Job::Put(ObjectKind kind, const Digest& id,
                                                          std::span<const uint8_t> plain) {
  const int slot = Slot(kind);
  {
    std::lock_guard lock(mu_);
    if (added_[slot].count(id)) return Added{};
  }
  if (owner_->index_.generation() == 0) RETURN_IF_ERROR(owner_->index_.RefreshIfUnchangedSince(0));
  for (int attempt = 1;; ++attempt) {
    const uint64_t generation = owner_->index_.generation();
    auto loc = owner_->Find(kind, id);
    if (!loc) break;  // not stored: write it below
    // Refresh the pack's age (once per job) so a gc that starts now keeps it whole; CheckFound
    // catches a gc that had already planned to rewrite it.
    bool touch;
    {
      std::lock_guard lock(mu_);
      touch = !touched_packs_.count(loc->pack);
    }
    Status touched = touch ? owner_->store_->Touch(PackKey(loc->pack)) : OkStatus();
    if (touched) {
      std::lock_guard lock(mu_);
      touched_packs_.insert(loc->pack);
      found_.emplace_back(kind, id);
      return Added{};
    }
    if (touched.error().code() != ErrorCode::kNotFound) return std::unexpected(touched.error());
    // The pack is gone. A gc that repacked it published an index naming the object's new
    // place (or dropping it) before deleting the pack, so the index read again tells which.
    // If it still names the gone pack, the store lost that pack: storing the object again
    // would not help, since every reader resolves the id to the first copy the index names.
    RETURN_IF_ERROR(owner_->index_.RefreshIfUnchangedSince(generation));
    auto again = owner_->Find(kind, id);
    if (again && again->pack == loc->pack)
      return Corruption("pack " + ToHex(loc->pack) + " holds " + NameOf(kind) + " " + ToHex(id) +
                        " by the store index, but the store no longer has it: the pack is lost. "
                        "`snapvol verify` names the snapshots it damaged; `snapvol gc` drops it from "
                        "the index, and snapshots after that store its blocks again");
    if (attempt == kFindTries)
      return MakeError(ErrorCode::kConflict, "the store index kept changing while a snapshot was written; retry", true);
  }
  ASSIGN_OR_RETURN(auto enc, owner_->codec_->Encode(kind, id, plain));
  std::unique_ptr<OpenPack> full;
  OpenPack* pack = nullptr;
  uint32_t offset = 0;
  {
    std::lock_guard lock(mu_);
    if (write_error_) return std::unexpected(*write_error_);
    if (!added_[slot].insert(id).second) return Added{};
    if (!open_[slot]) {
      auto opened = OpenPack::Start(owner_, batch_.get(), kind);
      if (!opened) {
        added_[slot].erase(id);
        return std::unexpected(opened.error());
      }
      open_[slot] = std::move(*opened);
    }
    pack = open_[slot].get();
    auto placed = pack->layout.Place(id, enc);
    if (!placed) {
      added_[slot].erase(id);
      return std::unexpected(placed.error());
    }
    offset = *placed;
    ++pack->writes;
    pending_ += enc.size();
    if (pack->layout.size() >= owner_->pack_size_) full = std::move(open_[slot]);
  }
  // The bytes go to the pack from this thread, while its cache still holds them.
  Status wrote = pack->out->WriteAt(offset, enc);
  {
    std::lock_guard lock(mu_);
    --pack->writes;
    if (!wrote && !write_error_) write_error_ = wrote.error().WithContext("writing a pack");
  }
  queue_cv_.notify_all();
  // A full pack goes to Flush even when this write failed: other Puts may still be writing
  // into it through their pointer, and Flush frees a pack only once they are done.
  Status flushed = full ? Flush(std::move(full)) : OkStatus();
  if (!wrote) return std::unexpected(wrote.error().WithContext("writing a pack"));
  RETURN_IF_ERROR(flushed);
  return Added{true, enc.size()};
}

Result<std::unique_ptr<PackedObjects::Job::OpenPack>> PackedObjects::Job::OpenPack::Start(PackedObjects* owner,
                                                                                       WriteBatch* batch,
                                                                                       ObjectKind kind) {
  ASSIGN_OR_RETURN(Digest id, RandomId());
  // The size a pack reaches: its objects pass pack_size by less than one object, then its index.
  auto out = batch->NewObject(PackKey(id), owner->pack_size_ + (owner->pack_size_ >> 4) + (1u << 20));
  if (!out) return std::unexpected(out.error().WithContext("writing a pack"));
  return std::unique_ptr<OpenPack>(new OpenPack{id, PackLayout(owner->codec_, id, kind), std::move(*out)});
}

Status PackedObjects::Job::Flush(std::unique_ptr<OpenPack> pack) {
  std::unique_lock lock(mu_);
  queue_cv_.wait(lock, [&] { return queue_.size() < kQueuedPacks || write_error_; });
  if (write_error_) {
    // The job has failed and the pack is dropped, but not before the Puts that placed objects
    // in it have finished writing them: they hold a pointer to it (freeing it earlier crashed
    // StoreUpgradeTest.FailingAtEveryWriteThenRunningAgainLosesNothing now and then).
    queue_cv_.wait(lock, [&] { return pack->writes == 0; });
    Error failed = *write_error_;
    lock.unlock();
    pack.reset();  // outside the lock: an unsealed pack's temporary file is removed
    return std::unexpected(failed);
  }
  queue_.push_back(std::move(pack));
  if (!writer_.joinable()) writer_ = std::thread([this] { WriteLoop(); });
  queue_cv_.notify_all();
  return OkStatus();
}

void PackedObjects::Job::WriteLoop() {
  std::unique_lock lock(mu_);
  for (;;) {
    queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping
    std::unique_ptr<OpenPack> next = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    // Puts that placed objects in it may still be writing them.
    queue_cv_.wait(lock, [&] { return next->writes == 0; });
    Status st = OkStatus();
    if (!write_error_) {  // else the job has failed: nothing more is written
      lock.unlock();
      st = WritePack(*next);
      next.reset();  // outside the lock: an unsealed pack's temporary file is removed
      lock.lock();
    }
    next.reset();
    writing_ = false;
    if (!st && !write_error_) write_error_ = st.error();
    queue_cv_.notify_all();
  }
}

Status PackedObjects::Job::WritePack(OpenPack& pack) {
  ASSIGN_OR_RETURN(auto tail, pack.layout.Tail());
  Status st = pack.out->WriteAt(pack.layout.size(), tail);
  if (st) st = pack.out->Seal(pack.layout.size() + tail.size());
  if (!st) return std::unexpected(st.error().WithContext("writing a pack"));
  std::lock_guard lock(mu_);
  unpublished_.push_back({pack.id, pack.layout.entries()});
  return OkStatus();
}

Status PackedObjects::Job::Drain() {
  std::unique_lock lock(mu_);
  queue_cv_.wait(lock, [&] { return queue_.empty() && !writing_; });
  if (write_error_) return std::unexpected(*write_error_);
  return OkStatus();
}

Status PackedObjects::Job::Commit() {
  std::unique_ptr<OpenPack> rest[2];
  {
    std::lock_guard lock(mu_);
    for (int s = 0; s < 2; ++s)
      if (open_[s] && open_[s]->layout.count() > 0) rest[s] = std::move(open_[s]);
  }
  for (auto& pack : rest)
    if (pack) RETURN_IF_ERROR(Flush(std::move(pack)));
  RETURN_IF_ERROR(Drain());
  auto st = batch_->Commit();
  if (!st) return std::unexpected(st.error().WithContext("flushing packs"));
  std::vector<IndexedPack> publish;
  {
    std::lock_guard lock(mu_);
    publish.swap(unpublished_);
  }
  // The packs are durable: now the index that names them.
  if (!publish.empty()) RETURN_IF_ERROR(owner_->WriteIndexObjects(writer_id_, &seq_, publish));
  pending_ = 0;
  return OkStatus();
}

Status PackedObjects::Job::CheckFound() {
  std::vector<std::pair<ObjectKind, Digest>> found;
  {
    std::lock_guard lock(mu_);
    found = found_;
  }
  if (found.empty()) return OkStatus();
  RETURN_IF_ERROR(owner_->Refresh());
  std::map<Digest, bool> pack_exists;
  for (const auto& [kind, id] : found) {
    auto loc = owner_->Find(kind, id);
    bool there = loc.has_value();
    if (there) {
      auto it = pack_exists.find(loc->pack);
      if (it == pack_exists.end()) {
        ASSIGN_OR_RETURN(bool exists, owner_->store_->Exists(PackKey(loc->pack)));
        it = pack_exists.emplace(loc->pack, exists).first;
      }
      there = it->second;
    }
    if (!there)
      return MakeError(ErrorCode::kConflict,
                       NameOf(kind) + " " + ToHex(id) + " was removed by a concurrent gc; retry the snapshot",
                       /*retryable=*/true);
  }
  return OkStatus();
}

// ---- verify's check of a pack's own index ------------------------------------------------

Status PackedObjects::CheckPackIndex(const Digest& pack, uint64_t pack_size, std::span<const PackEntry> expected,
                                     bool checksum_only) {
  const std::string key = PackKey(pack);
  auto fail = [&](const std::string& what) { return Corruption("pack " + key + ": trailing index: " + what); };
  if (pack_size < kPackTrailerBytes) return fail("the pack is shorter than its trailer");
  const uint64_t tail_len = std::min(pack_size, kTrailerReadBytes);
  ASSIGN_OR_RETURN(auto tail, store_->GetRange(key, pack_size - tail_len, tail_len));
  if (tail.size() != tail_len) return fail("short read");
  auto index_len = PackIndexLength(std::span(tail).last(kPackTrailerBytes), pack_size);
  if (!index_len) return fail(index_len.error().message());
  std::vector<uint8_t> longer;
  std::span<const uint8_t> index_object;
  if (uint64_t{*index_len} + kPackTrailerBytes <= tail_len) {
    index_object = std::span(tail).subspan(tail_len - kPackTrailerBytes - *index_len, *index_len);
  } else {
    ASSIGN_OR_RETURN(longer, store_->GetRange(key, pack_size - kPackTrailerBytes - *index_len, *index_len));
    if (longer.size() != *index_len) return fail("short read");
    index_object = longer;
  }
  if (checksum_only) {
    auto ok = ChunkCodec::CheckIntegrity(index_object, ObjectKind::kPackIndex);
    if (!ok) return fail(ok.error().message());
    return OkStatus();
  }
  auto entries = ParsePackIndex(*codec_, pack, index_object, pack_size);
  if (!entries) return fail(entries.error().message());
  // Entries are in offset order, back to back: found by offset.
  for (const auto& want : expected) {
    auto it = std::lower_bound(entries->begin(), entries->end(), want.offset,
                               [](const PackEntry& e, uint32_t off) { return e.offset < off; });
    if (it == entries->end() || !(*it == want))
      return fail(std::string(want.kind == ObjectKind::kChunk ? "chunk " : "index page ") + ToHex(want.id) +
                  " is not in it as the store index says (offset " + std::to_string(want.offset) + ")");
  }
  return OkStatus();
}

}  // namespace snapvol
