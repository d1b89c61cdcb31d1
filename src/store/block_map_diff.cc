#include "store/block_map_diff.h"

#include <algorithm>
#include <functional>

#include "store/block_map.h"

namespace snapvol {
namespace {

uint64_t SpanOf(uint32_t level) {
  uint64_t span = 1;
  for (uint32_t i = 0; i < level; ++i) span *= kPageFanout;
  return span;
}

}  // namespace

Result<BlockMapDiff> DiffBlockMaps(Repository* repo, const ManifestMeta& a, const ManifestMeta& b) {
  if (a.block_size != b.block_size)
    return InvalidArgument("snapshots " + a.snapshot_id + " and " + b.snapshot_id +
                           " have different block sizes; their block maps cannot be compared");
  BlockMapDiff out;
  const uint64_t total = std::max(a.block_count, b.block_count), common = std::min(a.block_count, b.block_count);
  out.changed.assign(total, 0);
  auto mark = [&](uint64_t from, uint64_t to) {
    for (uint64_t i = from; i < std::min(to, total); ++i)
      if (!out.changed[i]) {
        out.changed[i] = 1;
        ++out.changed_blocks;
      }
  };
  mark(common, total);
  if (common == 0) return out;
  if (a.depth != b.depth) {
    // Trees of different shapes: block by block (each page is still read once, in order).
    BlockMapReader ra(repo, a), rb(repo, b);
    for (uint64_t i = 0; i < common; ++i) {
      ASSIGN_OR_RETURN(Digest x, ra.BlockId(i));
      ASSIGN_OR_RETURN(Digest y, rb.BlockId(i));
      if (x != y) mark(i, i + 1);
    }
    return out;
  }
  // Same depth: pages at one place cover the same blocks. An all-zero id is a subtree of holes.
  auto load = [&](uint32_t level, const Digest& id, size_t count) -> Result<std::vector<Digest>> {
    if (IsZeroDigest(id)) return std::vector<Digest>(count, Digest{});
    ++out.pages_read;
    ASSIGN_OR_RETURN(auto plain, repo->ReadPage(id));
    return ParsePage(plain, level);
  };
  std::function<Status(uint32_t, const Digest&, const Digest&, uint64_t)> compare =
      [&](uint32_t level, const Digest& x, const Digest& y, uint64_t first) -> Status {
    if (x == y) return OkStatus();
    ASSIGN_OR_RETURN(auto ex, load(level, x, kPageFanout));
    ASSIGN_OR_RETURN(auto ey, load(level, y, kPageFanout));
    const uint64_t child_span = SpanOf(level);  // each entry of a level-L page covers 1024^L blocks
    const size_t n = std::max(ex.size(), ey.size());
    for (size_t i = 0; i < n; ++i) {
      const uint64_t start = first + i * child_span;
      if (start >= common) break;
      if (i >= ex.size() || i >= ey.size()) {
        mark(start, start + child_span);
        continue;
      }
      if (level == 0) {
        if (ex[i] != ey[i]) mark(start, start + 1);
      } else {
        RETURN_IF_ERROR(compare(level - 1, ex[i], ey[i], start));
      }
    }
    return OkStatus();
  };
  RETURN_IF_ERROR(compare(a.depth, a.root_page, b.root_page, 0));
  return out;
}

}  // namespace snapvol
