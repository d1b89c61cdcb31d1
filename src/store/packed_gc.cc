// PackedObjects' side of garbage collection (docs/store-format.md, "Reuse of stored chunks
// and GC"): which packs to keep, delete or rewrite, and the write order that loses nothing if
// the run is killed at any point: new packs, then the new index, then the old index objects,
// then the old packs.
#include <algorithm>
#include <functional>
#include <map>
#include <set>

#include "store/packed_objects.h"

namespace snapvol {

struct PackedObjects::Plan {
  // The packindex/ objects replaced (ObjectsToReplace): every one that names a pack deleted,
  // rewritten or lost, and those merged; the others stay.
  std::vector<std::string> index_keys;
  // Packs kept as they are, by id only: their entries are read again from index_keys when the
  // new index is written, so a plan holds the entries of the rewritten packs only.
  std::set<Digest> keep;
  // Packs rewritten: the pack, and the entries copied out of it.
  std::vector<std::pair<IndexedPack, std::vector<PackEntry>>> rewrite;
  std::vector<Digest> remove;  // packs deleted once the new index is written (incl. rewritten)
  uint64_t removed_bytes = 0;  // their sizes
  uint64_t rewrite_bytes = 0, copy_bytes = 0;  // sizes of the packs rewritten, and of what they keep
  std::vector<Digest> damaged_kept;  // Apply: rewrites not done (a live object failed its check)
  bool changes() const { return !rewrite.empty() || !remove.empty() || !index_keys.empty(); }
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

Result<std::map<Digest, uint64_t>> PackedObjects::PackSizes() {
  ASSIGN_OR_RETURN(auto listed, ListPacks(store_));
  std::map<Digest, uint64_t> out;
  for (const auto& [id, info] : listed) out.emplace(id, info.size);
  return out;
}

Status PackedObjects::ForEachIndexed(const std::vector<std::string>& keys, bool each_pack_once,
                                     const IndexedFn& fn) const {
  std::set<Digest> seen;  // a pack named twice: the same entries
  for (size_t k = 0; k < keys.size(); ++k) {
    auto plain = index_.ReadIndexPlain(keys[k]);
    if (!plain) {
      // GC is exclusive: no other run replaces index objects under it.
      if (plain.error().code() == ErrorCode::kNotFound)
        return MakeError(ErrorCode::kConflict, "store index " + keys[k] + " vanished during gc; run it again", true);
      return std::unexpected(plain.error());
    }
    Status st = ForEachIndexedPack(*plain, [&](const Digest& pack, std::span<const PackEntry> e) -> Status {
      if (each_pack_once && !seen.insert(pack).second) return OkStatus();
      return fn(k, pack, e);
    });
    if (!st) return std::unexpected(st.error().WithContext(keys[k]));
  }
  return OkStatus();
}

namespace {

// Which index objects a run replaces: those naming a pack it deletes, rewrites or finds lost
// (touched), those larger than a writer makes them now, and the small ones (under half the
// limit, as each snapshot's are) once there are two to merge. The others stay as they are, so
// a run that changes little rewrites little of the index (and the index caches of other
// processes, which a replaced object makes stale, stay valid).
std::vector<std::string> ObjectsToReplace(const std::vector<std::string>& keys, const std::vector<size_t>& entries,
                                          const std::vector<bool>& touched) {
  size_t small = 0;
  for (size_t n : entries) small += n < kMaxEntriesPerIndexObject / 2;
  std::vector<std::string> out;
  for (size_t k = 0; k < keys.size(); ++k)
    if (touched[k] || entries[k] > kMaxEntriesPerIndexObject ||
        (small >= 2 && entries[k] < kMaxEntriesPerIndexObject / 2))
      out.push_back(keys[k]);
  return out;
}

// Whether a pack stays as it is (decided the first time an index object names it), and the
// first object that names it.
struct PackFate {
  bool stays = false;
  size_t first_object = 0;
};

// Records that index object k names pack: a pack that goes touches every object naming it,
// and so does a pack two objects name (as a killed gc leaves them: its new object beside the
// old ones), so that the new index names it once.
Status Note(std::map<Digest, PackFate>* fates, std::vector<bool>* touched, std::set<Digest>* keep, size_t k,
            const Digest& pack, const std::function<bool()>& decide) {
  auto it = fates->find(pack);
  if (it == fates->end()) {
    it = fates->emplace(pack, PackFate{decide(), k}).first;
  } else if (it->second.first_object != k) {
    (*touched)[k] = (*touched)[it->second.first_object] = true;
  }
  if (!it->second.stays) (*touched)[k] = true;
  else keep->insert(pack);
  return OkStatus();
}

}  // namespace

Result<PackSweep> PackedObjects::Sweep(const DigestSet& live_chunks, const DigestSet& live_pages, int64_t cutoff_ms,
                                       double repack_threshold, bool dry_run) {
  PackSweep report;
  Plan plan;
  // The index first, then the packs: a pack is durable before any index object names it, so
  // every pack the index names was listed, unless it is lost.
  ASSIGN_OR_RETURN(auto index_objs, store_->List(kPackIndexPrefix));
  std::vector<std::string> keys;
  for (const auto& o : index_objs) keys.push_back(o.key);
  // Which copy of each id the index resolves to, in the compact table. The index objects are
  // streamed, one decoded at a time, here and again below: what the sweep holds grows with
  // the table, the packs' ids and the packs it rewrites, never with the whole index decoded.
  IndexTable st;
  st.BeginBulk();
  std::vector<size_t> entries_in(keys.size(), 0);
  RETURN_IF_ERROR(ForEachIndexed(keys, /*each_pack_once=*/false,
                                 [&](size_t k, const Digest& pack, std::span<const PackEntry> e) {
                                   entries_in[k] += e.size();
                                   return st.AddPack(pack, e);
                                 }));
  RETURN_IF_ERROR(st.EndBulk());
  ASSIGN_OR_RETURN(auto listed, ListPacks(store_));
  report.packs = listed.size();
  const DigestSet* live[2] = {&live_chunks, &live_pages};
  std::map<Digest, PackFate> fates;
  std::vector<bool> touched(keys.size(), false);
  auto decide = [&](const Digest& id, std::span<const PackEntry> entries) -> bool {
    auto it = listed.find(id);
    if (it == listed.end()) {
      ++report.packs_lost;  // its objects leave the index; verify names the snapshots that needed them
      return false;
    }
    const Listed& info = it->second;
    std::vector<PackEntry> keep_entries;
    uint64_t live_bytes = 0;
    uint64_t dead[2] = {0, 0};
    for (const auto& e : entries) {
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
    bool kept = false;
    if (young || (dead[0] + dead[1]) == 0) {
      if (young && dead[0] + dead[1] > 0) ++report.packs_young;
      kept = true;
    } else if (keep_entries.empty()) {
      plan.remove.push_back(id);
      plan.removed_bytes += info.size;
      report.dead_chunks += dead[0];
      report.dead_pages += dead[1];
    } else if (info.size > 0 && double(info.size - live_bytes) / double(info.size) > repack_threshold) {
      plan.rewrite_bytes += info.size;
      plan.copy_bytes += live_bytes;
      plan.rewrite.emplace_back(IndexedPack{id, {entries.begin(), entries.end()}}, std::move(keep_entries));
      report.dead_chunks += dead[0];
      report.dead_pages += dead[1];
    } else {
      kept = true;
    }
    listed.erase(it);
    return kept;
  };
  RETURN_IF_ERROR(ForEachIndexed(keys, /*each_pack_once=*/false,
                                 [&](size_t k, const Digest& pack, std::span<const PackEntry> e) -> Status {
                                   return Note(&fates, &touched, &plan.keep, k, pack, [&] { return decide(pack, e); });
                                 }));
  st = IndexTable();  // not needed any more: let it go before the rewrite holds packs
  plan.index_keys = ObjectsToReplace(keys, entries_in, touched);
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
  std::vector<std::string> keys;
  for (const auto& o : index_objs) keys.push_back(o.key);
  ASSIGN_OR_RETURN(auto listed, ListPacks(store_));
  uint64_t dropped = 0;
  std::map<Digest, uint64_t> dropped_from;
  std::map<Digest, PackFate> fates;
  std::vector<bool> touched(keys.size(), false);
  std::vector<size_t> entries_in(keys.size(), 0);
  auto decide = [&](const Digest& id, std::span<const PackEntry> entries) -> bool {
    auto it = listed.find(id);
    if (it == listed.end()) return false;  // lost: its entries leave the index
    std::vector<PackEntry> rest;
    for (const auto& e : entries)
      if (e.kind != kind || !drop.count(e.id)) rest.push_back(e);
    if (rest.size() == entries.size()) return true;
    dropped += entries.size() - rest.size();
    dropped_from[id] = entries.size() - rest.size();
    plan.remove.push_back(id);
    plan.removed_bytes += it->second.size;
    if (!rest.empty()) plan.rewrite.emplace_back(IndexedPack{id, {entries.begin(), entries.end()}}, std::move(rest));
    return false;
  };
  RETURN_IF_ERROR(ForEachIndexed(keys, /*each_pack_once=*/false,
                                 [&](size_t k, const Digest& pack, std::span<const PackEntry> e) -> Status {
                                   entries_in[k] += e.size();
                                   return Note(&fates, &touched, &plan.keep, k, pack, [&] { return decide(pack, e); });
                                 }));
  if (dropped == 0) return 0;
  plan.index_keys = ObjectsToReplace(keys, entries_in, touched);
  PackSweep report;
  RETURN_IF_ERROR(Apply(plan, &report));
  for (const auto& id : plan.damaged_kept) dropped -= dropped_from[id];
  return dropped;
}

Status PackedObjects::Apply(Plan& plan, PackSweep* report) {
  std::vector<IndexedPack> written;  // the new packs, and the rewrites not done
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
    written.push_back(std::move(done));
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
      written.push_back(pack);
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
  // the packs only they named can go. The kept packs' entries are streamed from the old index
  // objects into new ones of at most kMaxEntriesPerIndexObject entries each, so the run holds
  // one old object decoded and one new one at a time.
  std::array<uint8_t, 16> writer{};
  RETURN_IF_ERROR(RandomBytes(writer));
  uint32_t seq = 0;
  std::vector<IndexedPack> group;
  size_t group_entries = 0;
  auto add = [&](const Digest& pack, std::span<const PackEntry> entries) -> Status {
    if (!group.empty() && group_entries + entries.size() > kMaxEntriesPerIndexObject) {
      RETURN_IF_ERROR(WriteIndexObjects(ToHex(writer), &seq, group, /*add_to_copy=*/false));
      group.clear();
      group_entries = 0;
    }
    group_entries += entries.size();
    group.push_back({pack, {entries.begin(), entries.end()}});
    return OkStatus();
  };
  RETURN_IF_ERROR(ForEachIndexed(plan.index_keys, /*each_pack_once=*/true,
                                 [&](size_t, const Digest& pack, std::span<const PackEntry> entries) -> Status {
                                   return plan.keep.count(pack) ? add(pack, entries) : OkStatus();
                                 }));
  for (const auto& p : written) RETURN_IF_ERROR(add(p.pack, p.entries));
  if (!group.empty()) RETURN_IF_ERROR(WriteIndexObjects(ToHex(writer), &seq, group, /*add_to_copy=*/false));
  RETURN_IF_ERROR(store_->DeleteMany(plan.index_keys));
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
