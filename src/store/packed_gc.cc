// PackedObjects' side of garbage collection (docs/store-format.md, "Reuse of stored chunks
// and GC"): which packs to keep, delete or rewrite, and the write order that loses nothing if
// the run is killed at any point: new packs, then the new index, then the old index objects,
// then the old packs.
#include <algorithm>
#include <map>

#include "store/packed_objects.h"

namespace snapvol {

struct PackedObjects::Plan {
  std::vector<std::string> index_keys;  // the packindex/ objects read: replaced
  std::vector<IndexedPack> keep;        // packs kept as they are
  // Packs rewritten: the pack, and the entries copied out of it.
  std::vector<std::pair<IndexedPack, std::vector<PackEntry>>> rewrite;
  std::vector<Digest> remove;  // packs deleted once the new index is written (incl. rewritten)
  uint64_t removed_bytes = 0;  // their sizes
  uint64_t rewrite_bytes = 0, copy_bytes = 0;  // sizes of the packs rewritten, and of what they keep
  std::vector<Digest> damaged_kept;  // Apply: rewrites not done (a live object failed its check)
  bool lost = false;                 // the index names a pack the store lacks: a new index drops it
  bool changes() const { return !rewrite.empty() || !remove.empty() || index_keys.size() > 1 || lost; }
};

namespace {

struct Listed {
  uint64_t size = 0;
  int64_t mtime_ms = 0;
};

// Every pack in the store, by id; keys of another shape are not ours and are left alone.
Result<std::map<Digest, Listed>> ListPacks(ObjectStore* store) {
  ASSIGN_OR_RETURN(auto objs, store->List(kPackPrefix));
  std::map<Digest, Listed> out;
  for (const auto& o : objs) {
    auto slash = o.key.rfind('/');
    if (slash == std::string::npos) continue;
    auto id = DigestFromHex(std::string_view(o.key).substr(slash + 1));
    if (!id || o.key != PackedObjects::PackKey(*id)) continue;
    out[*id] = {o.size, o.mtime_ms};
  }
  return out;
}

}  // namespace

Result<PackSweep> PackedObjects::Sweep(const DigestSet& live_chunks, const DigestSet& live_pages, int64_t cutoff_ms,
                                       double repack_threshold, bool dry_run) {
  PackSweep report;
  Plan plan;
  // The index first, then the packs: a pack is durable before any index object names it, so
  // every pack the index names was listed, unless it is lost.
  ASSIGN_OR_RETURN(auto index_objs, store_->List(kPackIndexPrefix));
  IndexTable st;  // which copy of each id the index resolves to
  st.BeginBulk();
  std::map<Digest, IndexedPack> indexed;
  for (const auto& o : index_objs) {
    ASSIGN_OR_RETURN(auto packs, index_.ReadIndexObject(o.key));
    for (const auto& p : packs) RETURN_IF_ERROR(st.AddPack(p.pack, p.entries));
    for (auto& p : packs) indexed.emplace(p.pack, std::move(p));  // a pack named twice: the same entries
    plan.index_keys.push_back(o.key);
  }
  RETURN_IF_ERROR(st.EndBulk());
  ASSIGN_OR_RETURN(auto listed, ListPacks(store_));
  report.packs = listed.size();
  const DigestSet* live[2] = {&live_chunks, &live_pages};
  for (auto& [id, pack] : indexed) {
    auto it = listed.find(id);
    if (it == listed.end()) {
      ++report.packs_lost;  // its objects leave the index; verify names the snapshots that needed them
      plan.lost = true;
      continue;
    }
    const Listed& info = it->second;
    std::vector<PackEntry> keep_entries;
    uint64_t live_bytes = 0;
    uint64_t dead[2] = {0, 0};
    for (const auto& e : pack.entries) {
      const int s = Slot(e.kind);
      const IndexLoc first = *st.Find(e.kind, e.id);
      // Live, and the copy the index resolves to (a duplicate elsewhere is dead here).
      const bool resolved = st.PackId(first.pack) == id && first.offset == e.offset;
      if (live[s]->count(e.id) && resolved) {
        keep_entries.push_back(e);
        live_bytes += e.length;
      } else {
        ++dead[s];
        if (resolved) report.dead_bytes += e.length;  // an object no snapshot needs, counted once
      }
    }
    const bool young = info.mtime_ms >= cutoff_ms;
    if (young || (dead[0] + dead[1]) == 0) {
      if (young && dead[0] + dead[1] > 0) ++report.packs_young;
      plan.keep.push_back(std::move(pack));
    } else if (keep_entries.empty()) {
      plan.remove.push_back(id);
      plan.removed_bytes += info.size;
      report.dead_chunks += dead[0];
      report.dead_pages += dead[1];
    } else if (info.size > 0 && double(info.size - live_bytes) / double(info.size) > repack_threshold) {
      plan.rewrite_bytes += info.size;
      plan.copy_bytes += live_bytes;
      plan.rewrite.emplace_back(std::move(pack), std::move(keep_entries));
      report.dead_chunks += dead[0];
      report.dead_pages += dead[1];
    } else {
      plan.keep.push_back(std::move(pack));
    }
    listed.erase(it);
  }
  // Packs no index object names: a writer that died before publishing, or one still writing.
  for (const auto& [id, info] : listed) {
    if (info.mtime_ms >= cutoff_ms) {
      ++report.packs_unindexed_young;
      continue;
    }
    plan.remove.push_back(id);
    plan.removed_bytes += info.size;
  }
  if (dry_run) {
    report.packs_deleted = plan.remove.size();
    report.packs_repacked = plan.rewrite.size();
    // Approximate: the new packs' own indexes are not counted.
    report.bytes_freed = plan.removed_bytes + plan.rewrite_bytes - plan.copy_bytes;
    return report;
  }
  if (!plan.changes()) return report;
  RETURN_IF_ERROR(Apply(plan, &report));
  return report;
}

Result<uint64_t> PackedObjects::Remove(ObjectKind kind, const std::vector<Digest>& ids) {
  if (ids.empty()) return 0;
  DigestSet drop(ids.begin(), ids.end());
  Plan plan;
  ASSIGN_OR_RETURN(auto index_objs, store_->List(kPackIndexPrefix));
  std::map<Digest, IndexedPack> indexed;
  for (const auto& o : index_objs) {
    ASSIGN_OR_RETURN(auto packs, index_.ReadIndexObject(o.key));
    for (auto& p : packs) indexed.emplace(p.pack, std::move(p));
    plan.index_keys.push_back(o.key);
  }
  ASSIGN_OR_RETURN(auto listed, ListPacks(store_));
  uint64_t dropped = 0;
  std::map<Digest, uint64_t> dropped_from;
  for (auto& [id, pack] : indexed) {
    if (!listed.count(id)) continue;  // lost: its entries leave the index
    std::vector<PackEntry> rest;
    for (const auto& e : pack.entries)
      if (e.kind != kind || !drop.count(e.id)) rest.push_back(e);
    if (rest.size() == pack.entries.size()) {
      plan.keep.push_back(std::move(pack));
      continue;
    }
    dropped += pack.entries.size() - rest.size();
    dropped_from[id] = pack.entries.size() - rest.size();
    plan.remove.push_back(id);
    plan.removed_bytes += listed[id].size;
    if (!rest.empty()) plan.rewrite.emplace_back(std::move(pack), std::move(rest));
  }
  if (dropped == 0) return 0;
  PackSweep report;
  RETURN_IF_ERROR(Apply(plan, &report));
  for (const auto& id : plan.damaged_kept) dropped -= dropped_from[id];
  return dropped;
}

Status PackedObjects::Apply(Plan& plan, PackSweep* report) {
  std::vector<IndexedPack> index = plan.keep;
  std::vector<Digest> remove = plan.remove;
  uint64_t removed_bytes = plan.removed_bytes, written_bytes = 0;
  auto batch = store_->NewBatch();
  std::unique_ptr<PackBuilder> open[2];
  Digest open_id[2]{};
  auto flush = [&](int s) -> Status {
    IndexedPack done{open_id[s], open[s]->entries()};
    ASSIGN_OR_RETURN(auto bytes, open[s]->Finish());
    open[s].reset();
    auto added = batch->Add(PackKey(done.pack), bytes);
    if (!added) return std::unexpected(added.error().WithContext("writing a repacked pack"));
    written_bytes += bytes.size();
    index.push_back(std::move(done));
    ++report->packs_written;
    return OkStatus();
  };
  for (const auto& [pack, entries] : plan.rewrite) {
    ASSIGN_OR_RETURN(auto data, store_->Get(PackKey(pack.pack)));
    // Copy only whole, intact objects; a pack with a damaged live object stays as it is, so
    // verify keeps naming the damage and the good objects in it stay where they are.
    bool intact = true;
    for (const auto& e : entries)
      if (uint64_t{e.offset} + e.length > data.size() ||
          !ChunkCodec::CheckIntegrity(std::span(data).subspan(e.offset, e.length), e.kind))
        intact = false;
    if (!intact) {
      ++report->packs_damaged_kept;
      plan.damaged_kept.push_back(pack.pack);
      index.push_back(pack);
      auto gone = std::find(remove.begin(), remove.end(), pack.pack);
      if (gone != remove.end()) {
        remove.erase(gone);
        removed_bytes -= std::min<uint64_t>(removed_bytes, data.size());
      }
      continue;
    }
    for (const auto& e : entries) {
      const int s = Slot(e.kind);
      if (!open[s]) {
        RETURN_IF_ERROR(RandomBytes(open_id[s]));
        open[s] = std::make_unique<PackBuilder>(codec_, open_id[s], e.kind);
      }
      RETURN_IF_ERROR(open[s]->Add(e.id, std::span(data).subspan(e.offset, e.length)));
      if (open[s]->size() >= pack_size_) RETURN_IF_ERROR(flush(s));
    }
    if (std::find(remove.begin(), remove.end(), pack.pack) == remove.end()) {
      remove.push_back(pack.pack);
      removed_bytes += data.size();
    }
    ++report->packs_repacked;
  }
  for (int s = 0; s < 2; ++s)
    if (open[s]) RETURN_IF_ERROR(flush(s));
  auto committed = batch->Commit();
  if (!committed) return std::unexpected(committed.error().WithContext("writing repacked packs"));
  // The new index names every pack that stays; once it is durable the old index objects and
  // the packs only they named can go.
  std::array<uint8_t, 16> writer{};
  RETURN_IF_ERROR(RandomBytes(writer));
  uint32_t seq = 0;
  if (!index.empty()) RETURN_IF_ERROR(WriteIndexObjects(ToHex(writer), &seq, index));
  std::vector<std::string> old_keys;
  for (const auto& k : plan.index_keys) old_keys.push_back(k);
  RETURN_IF_ERROR(store_->DeleteMany(old_keys));
  report->index_objects_merged = plan.index_keys.size();
  std::vector<std::string> pack_keys;
  for (const auto& id : remove) pack_keys.push_back(PackKey(id));
  RETURN_IF_ERROR(store_->DeleteMany(pack_keys));
  report->packs_deleted = remove.size();
  report->bytes_freed = removed_bytes > written_bytes ? removed_bytes - written_bytes : 0;
  // Everything this process knew may have moved: read the index again.
  return Refresh();
}

}  // namespace snapvol
