#include "engine/direct_snapshots.h"

#include <algorithm>

#include "core/ids.h"
#include "store/block_map.h"

namespace snapvol {

std::string DigestBytes(const Digest& d) { return std::string(reinterpret_cast<const char*>(d.data()), d.size()); }

Digest LinearChecksum(const std::vector<Digest>& digests) {
  std::vector<uint8_t> all;
  all.reserve(digests.size() * 32);
  for (const auto& d : digests) all.insert(all.end(), d.begin(), d.end());
  return Sha256(all);
}

DirectSnapshots::DirectSnapshots(Repository* repo, Catalog* catalog, DirectOptions options)
    : repo_(repo), catalog_(catalog), opt_(std::move(options)) {
  if (opt_.background) thread_ = std::thread([this] { Loop(); });
}

DirectSnapshots::~DirectSnapshots() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::vector<std::shared_ptr<Pending>> left;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [_, p] : pending_) left.push_back(p);
  }
  // What was acknowledged is journaled: the snapshots stay pending, handed over to whichever
  // process adopts them next (its lease stays too; adoption renews it).
  for (auto& p : left) {
    {
      std::unique_lock<std::shared_mutex> all(p->put_mu);
      if (p->closed) continue;  // a completion under way decides
      p->closed = true;
    }
    (void)catalog_->HandOverSnapshot(p->record.snapshot_id, opt_.runner_id, "");
  }
}

void DirectSnapshots::Loop() {
  std::unique_lock<std::mutex> l(mu_);
  int64_t last_renew = opt_.clock->NowMillis();
  while (!stopping_) {
    cv_.wait_for(l, std::chrono::seconds(1));
    if (stopping_) break;
    l.unlock();
    ExpireOverdue();
    if (opt_.clock->NowMillis() - last_renew >= opt_.lease_heartbeat_ms) {
      (void)Adopt();  // retries one a store or catalog error kept from being adopted
      RenewLeases();
      last_renew = opt_.clock->NowMillis();
    }
    l.lock();
  }
}

std::shared_ptr<DirectSnapshots::Pending> DirectSnapshots::Find(const std::string& id) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = pending_.find(id);
  return it == pending_.end() ? nullptr : it->second;
}

uint64_t DirectSnapshots::PendingBlockCount(const std::string& id) {
  auto p = Find(id);
  return p ? p->block_count : 0;
}

Result<std::shared_ptr<SnapshotBlockReader>> DirectSnapshots::Reader(const std::string& id) {
  {
    std::lock_guard<std::mutex> l(readers_mu_);
    for (auto it = readers_.begin(); it != readers_.end(); ++it) {
      if (it->first != id) continue;
      auto found = std::move(*it);
      readers_.erase(it);
      readers_.push_back(found);
      return found.second;
    }
  }
  ASSIGN_OR_RETURN(std::unique_ptr<SnapshotBlockReader> opened, SnapshotBlockReader::Open(repo_, id));
  std::shared_ptr<SnapshotBlockReader> reader = std::move(opened);
  std::lock_guard<std::mutex> l(readers_mu_);
  readers_.emplace_back(id, reader);
  if (readers_.size() > kReaders) readers_.erase(readers_.begin());
  return reader;
}

Result<SnapshotRecord> DirectSnapshots::Start(const DirectStart& req) {
  if (repo_->block_size() != kDirectBlockSize)
    return InvalidArgument("this store's block size is " + std::to_string(repo_->block_size()) +
                           " bytes; the EBS direct APIs need 524288");
  if (req.volume_size == 0 || req.volume_size % kDirectBlockSize != 0)
    return InvalidArgument("the volume size must be a positive multiple of 512 KiB");
  auto p = std::make_shared<Pending>();
  if (!req.parent_id.empty()) {
    auto pm = repo_->GetManifest(req.parent_id);
    if (!pm) return std::unexpected(pm.error().WithContext("parent snapshot " + req.parent_id));
    if (pm->block_size != kDirectBlockSize)
      return InvalidArgument("parent snapshot " + req.parent_id + " does not have 512 KiB blocks");
    if (pm->volume_size > req.volume_size)
      return InvalidArgument("the volume size is smaller than parent snapshot " + req.parent_id + "'s");
    p->parent = std::move(*pm);
  }
  SnapshotRecord& rec = p->record;
  rec.snapshot_id = NewSnapshotId();
  rec.volume_id = kDirectVolumeId;
  rec.account_id = req.owner_id;
  rec.state = SnapshotState::kPending;
  rec.progress = "0%";
  rec.start_time_ms = opt_.clock->NowMillis();
  rec.volume_size_bytes = req.volume_size;
  rec.block_size = kDirectBlockSize;
  rec.description = req.description;
  rec.parent_snapshot_id = req.parent_id;
  rec.encrypted = repo_->encrypted();
  rec.runner = opt_.runner_id;
  rec.tags = req.tags;
  p->block_count = req.volume_size / kDirectBlockSize;
  p->deadline_ms = rec.start_time_ms + req.timeout_ms;
  // The lease first: from now on GC keeps what this snapshot writes (and its parent's root).
  LeaseInfo lease{rec.snapshot_id, req.parent_id, opt_.runner_id, rec.start_time_ms, rec.start_time_ms};
  RETURN_IF_ERROR(repo_->PutLease(lease));
  if (auto st = catalog_->InsertSnapshot(rec); !st) {
    (void)repo_->RemoveLease(rec.snapshot_id);
    return std::unexpected(st.error());
  }
  // A crash before the journal exists leaves a pending row without one: DataDir's recovery
  // ends it `error` (nothing of it was acknowledged).
  if (auto st = catalog_->InsertDirectJournal(rec.snapshot_id, p->deadline_ms); !st) {
    (void)catalog_->MarkError(rec.snapshot_id, "starting failed: " + st.error().message());
    (void)repo_->RemoveLease(rec.snapshot_id);
    return std::unexpected(st.error());
  }
  WriterOptions wo;
  wo.clock = opt_.clock;
  p->writer = repo_->NewWriter(wo);
  std::lock_guard<std::mutex> l(mu_);
  pending_[rec.snapshot_id] = p;
  return rec;
}

Status DirectSnapshots::PutBlock(const std::string& id, uint64_t index, std::span<const uint8_t> data,
                                 const Digest& sha256) {
  auto p = Find(id);
  if (!p) return NotFound("snapshot " + id + " is not a pending snapshot started by StartSnapshot");
  if (index >= p->block_count)
    return InvalidArgument("block index " + std::to_string(index) + " is outside the volume (" +
                           std::to_string(p->block_count) + " blocks)");
  if (data.size() != kDirectBlockSize) return InvalidArgument("the block data must be exactly 524288 bytes");
  const Digest actual = Sha256(data);
  if (actual != sha256) return InvalidArgument("the checksum does not match the block data");
  const bool zero = std::all_of(data.begin(), data.end(), [](uint8_t b) { return b == 0; });
  Written w{zero ? Digest{} : repo_->IdOf(data), actual};
  uint64_t my_seq = 0;
  {
    std::shared_lock<std::shared_mutex> put(p->put_mu);
    if (p->closed) return NotFound("snapshot " + id + " is no longer pending");
    Repository::Writer::Put put_result;
    if (!zero) {
      ASSIGN_OR_RETURN(put_result, p->writer->PutChunk(w.chunk, data));
    }
    std::lock_guard<std::mutex> l(p->mu);
    if (put_result.written) {
      ++p->new_chunks;
      p->stored_bytes += put_result.stored_bytes;
    }
    my_seq = ++p->put_seq;
    p->staged.push_back({my_seq, index, w, put_result.written ? put_result.stored_bytes : 0, !zero});
  }
  // Group commit: one Commit makes every chunk put before it durable, and one catalog
  // transaction then journals every block put before it. A failed group stays staged: the
  // next put's commit retries it (a put answers success only once its block is journaled).
  std::lock_guard<std::mutex> c(p->commit_mu);
  {
    std::shared_lock<std::shared_mutex> put(p->put_mu);
    std::lock_guard<std::mutex> l(p->mu);
    if (p->committed_seq >= my_seq) return OkStatus();  // an earlier group took it
    if (p->closed) return NotFound("snapshot " + id + " is no longer pending");
  }
  std::unique_lock<std::shared_mutex> all(p->put_mu);
  if (p->closed) return NotFound("snapshot " + id + " is no longer pending");
  std::vector<Staged> group;
  {
    std::lock_guard<std::mutex> l(p->mu);
    group = p->staged;  // no put runs now: every one staged is in this group
  }
  if (std::any_of(group.begin(), group.end(), [](const Staged& s) { return s.chunk; })) {
    RETURN_IF_ERROR(p->writer->Commit());
  }
  std::vector<DirectBlockRecord> journal;
  journal.reserve(group.size());
  for (const auto& s : group)
    journal.push_back({s.index, DigestBytes(s.written.chunk), DigestBytes(s.written.sha256), s.stored_bytes});
  RETURN_IF_ERROR(catalog_->JournalDirectBlocks(id, journal));
  std::lock_guard<std::mutex> l(p->mu);
  for (const auto& s : group) p->written[s.index] = s.written;  // in put order: the last write wins
  p->staged.clear();
  p->committed_seq = group.back().seq;
  return OkStatus();
}

Result<ManifestMeta> DirectSnapshots::Publish(Pending& p) {
  const SnapshotRecord& rec = p.record;
  std::unique_ptr<BlockMapReader> parent_map;
  DigestSet parent_pages;
  if (p.parent) {
    parent_map = std::make_unique<BlockMapReader>(repo_, *p.parent);
    BlockMapReader pages(repo_, *p.parent);
    RETURN_IF_ERROR(pages.Walk(
        [&](uint32_t level, const Digest& page) -> Result<bool> {
          parent_pages.insert(page);
          return level > 0;
        },
        nullptr));
  }
  BlockMapWriter map(repo_, p.writer.get(), p.block_count, p.parent ? &parent_pages : nullptr);
  for (uint64_t i = 0; i < p.block_count; ++i) {
    auto it = p.written.find(i);
    if (it != p.written.end()) {
      RETURN_IF_ERROR(map.Append(it->second.chunk));
      continue;
    }
    Digest from_parent{};
    if (parent_map && i < p.parent->block_count) {
      ASSIGN_OR_RETURN(from_parent, parent_map->BlockId(i));
    }
    RETURN_IF_ERROR(map.Append(from_parent));
  }
  ASSIGN_OR_RETURN(Digest root, map.Finish());
  // Durable, and chunks found already stored (not written) are still there.
  RETURN_IF_ERROR(p.writer->Finish());
  ManifestMeta m;
  m.snapshot_id = rec.snapshot_id;
  m.volume_id = rec.volume_id;
  m.parent_id = rec.parent_snapshot_id;
  m.description = rec.description;
  m.owner_id = rec.account_id;
  for (const auto& t : rec.tags) m.tags.emplace_back(t.key, t.value);
  m.volume_size = rec.volume_size_bytes;
  m.block_size = kDirectBlockSize;
  m.start_time_ms = rec.start_time_ms;
  m.completed_time_ms = opt_.clock->NowMillis();
  m.depth = map.depth();
  m.root_page = root;
  m.block_count = p.block_count;
  m.stored_bytes = p.stored_bytes + map.bytes_written();
  m.changed_blocks = p.written.size();
  m.new_chunks = p.new_chunks;
  RETURN_IF_ERROR(repo_->PutManifest(m));
  return m;
}

Result<SnapshotRecord> DirectSnapshots::Complete(const std::string& id, uint64_t changed_blocks,
                                                 const std::optional<Digest>& linear) {
  auto p = Find(id);
  if (!p) return NotFound("snapshot " + id + " is not a pending snapshot started by StartSnapshot");
  {
    // Wait for the puts in flight; none starts until this is decided.
    std::unique_lock<std::shared_mutex> all(p->put_mu);
    if (p->closed) return NotFound("snapshot " + id + " is no longer pending");
    std::lock_guard<std::mutex> l(p->mu);
    if (changed_blocks != p->written.size())
      return InvalidArgument("ChangedBlocksCount is " + std::to_string(changed_blocks) + " but " +
                             std::to_string(p->written.size()) + " blocks were written");
    if (linear) {
      std::vector<Digest> digests;
      digests.reserve(p->written.size());
      for (const auto& [_, w] : p->written) digests.push_back(w.sha256);
      if (LinearChecksum(digests) != *linear)
        return InvalidArgument("the aggregated checksum does not match the blocks written");
    }
    p->closed = true;
  }
  Result<ManifestMeta> published;
  {
    std::lock_guard<std::mutex> c(p->commit_mu);  // no put's Commit runs beside the writer's Finish
    published = Publish(*p);
  }
  if (!published) {
    Fail(p, "completing failed: " + published.error().message(), /*force=*/true);
    return std::unexpected(published.error());
  }
  RETURN_IF_ERROR(catalog_->MarkCompleted(id, published->completed_time_ms, published->stored_bytes,
                                          published->changed_blocks, published->block_count));
  (void)repo_->RemoveLease(id);
  {
    std::lock_guard<std::mutex> l(mu_);
    pending_.erase(id);
  }
  return catalog_->GetSnapshot(id);
}

void DirectSnapshots::Fail(const std::shared_ptr<Pending>& p, const std::string& message, bool force) {
  {
    std::unique_lock<std::shared_mutex> all(p->put_mu);
    if (p->closed && !force) return;  // a completion under way decides
    p->closed = true;
  }
  (void)catalog_->MarkError(p->record.snapshot_id, message);
  (void)repo_->RemoveLease(p->record.snapshot_id);
  std::lock_guard<std::mutex> l(mu_);
  pending_.erase(p->record.snapshot_id);
}

std::string DirectSnapshots::TimeoutMessage(const Pending& p) {
  const int64_t ms = p.deadline_ms - p.record.start_time_ms;
  return "not completed within its timeout of " +
         (ms % 60000 == 0 ? std::to_string(ms / 60000) + " minutes" : std::to_string(ms / 1000) + " seconds");
}

size_t DirectSnapshots::ExpireOverdue() {
  const int64_t now = opt_.clock->NowMillis();
  std::vector<std::shared_ptr<Pending>> overdue;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [_, p] : pending_)
      if (now >= p->deadline_ms) overdue.push_back(p);
  }
  for (auto& p : overdue) Fail(p, TimeoutMessage(*p));
  return overdue.size();
}

void DirectSnapshots::RenewLeases() {
  std::vector<std::shared_ptr<Pending>> all;
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [_, p] : pending_) all.push_back(p);
  }
  const int64_t now = opt_.clock->NowMillis();
  for (auto& p : all) {
    LeaseInfo lease{p->record.snapshot_id, p->record.parent_snapshot_id, opt_.runner_id,
                    p->record.start_time_ms, now};
    (void)repo_->PutLease(lease);
  }
}

}  // namespace snapvol
