#include "store/block_map.h"

#include "core/bytes.h"

namespace snapvol {

uint32_t BlockMapDepth(uint64_t block_count) {
  uint32_t depth = 0;
  uint64_t span = kPageFanout;
  while (span < block_count) {
    span *= kPageFanout;
    ++depth;
  }
  return depth;
}

std::vector<uint8_t> SerializePage(uint32_t level, const std::vector<Digest>& ids) {
  std::vector<uint8_t> out(8 + ids.size() * 32);
  out[0] = static_cast<uint8_t>(level);
  PutU32(out.data() + 4, static_cast<uint32_t>(ids.size()));
  for (size_t i = 0; i < ids.size(); ++i) std::memcpy(out.data() + 8 + 32 * i, ids[i].data(), 32);
  return out;
}

Result<std::vector<Digest>> ParsePage(std::span<const uint8_t> plain, uint32_t expect_level) {
  if (plain.size() < 8) return Corruption("index page is truncated");
  uint32_t count = GetU32(plain.data() + 4);
  if (plain[0] != expect_level) return Corruption("index page has the wrong level");
  if (count == 0 || count > kPageFanout || plain.size() != 8 + uint64_t{count} * 32)
    return Corruption("index page has a bad entry count");
  std::vector<Digest> ids(count);
  for (uint32_t i = 0; i < count; ++i) std::memcpy(ids[i].data(), plain.data() + 8 + 32 * i, 32);
  return ids;
}

BlockMapWriter::BlockMapWriter(Repository* repo, Repository::Writer* writer, uint64_t block_count,
                               const DigestSet* known)
    : repo_(repo), writer_(writer), block_count_(block_count), depth_(BlockMapDepth(block_count)),
      known_(known), levels_(depth_ + 1) {}

Result<Digest> BlockMapWriter::WritePage(uint32_t level, const std::vector<Digest>& ids) {
  bool all_holes = true;
  for (const auto& d : ids)
    if (!IsZeroDigest(d)) { all_holes = false; break; }
  if (all_holes) return Digest{};
  std::vector<uint8_t> plain = SerializePage(level, ids);
  Digest id = repo_->IdOf(plain);
  if ((known_ && known_->count(id)) || written_.count(id)) return id;
  ASSIGN_OR_RETURN(uint64_t stored, writer_->PutPage(id, plain));
  written_.insert(id);
  ++pages_written_;
  bytes_written_ += stored;
  return id;
}

Status BlockMapWriter::FlushLevel(uint32_t level) {
  ASSIGN_OR_RETURN(Digest id, WritePage(level, levels_[level]));
  levels_[level].clear();
  levels_[level + 1].push_back(id);
  if (level + 1 < depth_ && levels_[level + 1].size() == kPageFanout) return FlushLevel(level + 1);
  return OkStatus();
}

Status BlockMapWriter::Append(const Digest& block_id) {
  if (appended_ >= block_count_) return Internal("block map: more blocks than the volume has");
  ++appended_;
  levels_[0].push_back(block_id);
  if (depth_ > 0 && levels_[0].size() == kPageFanout) return FlushLevel(0);
  return OkStatus();
}

Result<Digest> BlockMapWriter::Finish() {
  if (appended_ != block_count_) return Internal("block map: fewer blocks than the volume has");
  if (block_count_ == 0) return Digest{};
  for (uint32_t level = 0; level < depth_; ++level)
    if (!levels_[level].empty()) RETURN_IF_ERROR(FlushLevel(level));
  return WritePage(depth_, levels_[depth_]);
}

BlockMapReader::BlockMapReader(Repository* repo, const ManifestMeta& meta)
    : repo_(repo), meta_(meta), cache_(meta.depth + 1) {}

Result<const std::vector<Digest>*> BlockMapReader::LoadPage(uint32_t level, const Digest& id) {
  Cached& c = cache_[level];
  if (c.valid && c.id == id) return &c.entries;
  c.valid = false;
  ASSIGN_OR_RETURN(auto plain, repo_->ReadPage(id));
  ASSIGN_OR_RETURN(c.entries, ParsePage(plain, level));
  c.id = id;
  c.valid = true;
  return &c.entries;
}

Result<Digest> BlockMapReader::BlockId(uint64_t index) {
  if (index >= meta_.block_count) return InvalidArgument("block index beyond the volume");
  Digest id = meta_.root_page;
  for (int level = static_cast<int>(meta_.depth); level >= 0; --level) {
    if (IsZeroDigest(id)) return Digest{};
    uint64_t span = 1;
    for (int i = 0; i < level; ++i) span *= kPageFanout;
    uint64_t slot = (index / span) % kPageFanout;
    ASSIGN_OR_RETURN(const std::vector<Digest>* page, LoadPage(static_cast<uint32_t>(level), id));
    if (slot >= page->size()) return Corruption("index page is shorter than the volume");
    id = (*page)[slot];
  }
  return id;
}

Status BlockMapReader::WalkPage(uint32_t level, const Digest& id, uint64_t first_block,
                                const std::function<Result<bool>(uint32_t, const Digest&)>& on_page,
                                const std::function<Status(uint64_t, const Digest&)>& on_block) {
  if (IsZeroDigest(id)) return OkStatus();
  if (on_page) {
    ASSIGN_OR_RETURN(bool descend, on_page(level, id));
    if (!descend) return OkStatus();
  }
  ASSIGN_OR_RETURN(const std::vector<Digest>* page, LoadPage(level, id));
  std::vector<Digest> entries = *page;  // the cache slot is reused by recursion
  uint64_t span = 1;
  for (uint32_t i = 0; i < level; ++i) span *= kPageFanout;
  for (size_t i = 0; i < entries.size(); ++i) {
    uint64_t first = first_block + i * span;
    if (first >= meta_.block_count) return Corruption("index page is longer than the volume");
    if (level == 0) {
      if (!IsZeroDigest(entries[i]) && on_block) RETURN_IF_ERROR(on_block(first, entries[i]));
    } else {
      RETURN_IF_ERROR(WalkPage(level - 1, entries[i], first, on_page, on_block));
    }
  }
  return OkStatus();
}

Status BlockMapReader::Walk(const std::function<Result<bool>(uint32_t, const Digest&)>& on_page,
                            const std::function<Status(uint64_t, const Digest&)>& on_block) {
  if (meta_.block_count == 0) return OkStatus();
  return WalkPage(meta_.depth, meta_.root_page, 0, on_page, on_block);
}

}  // namespace snapvol
