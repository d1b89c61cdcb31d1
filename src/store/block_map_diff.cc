#include "store/block_map_diff.h"

#include <algorithm>
#include <cstdint>

#include "store/block_map.h"

namespace snapvol {
namespace {

// A subtree of one map: a page id at its own level. A node whose level is below the level
// being walked stands for a virtual page whose first entry is the node and the rest holes.
struct Node {
  Digest id{};
  uint32_t level = 0;
  bool Same(const Node& o) const {
    if (IsZeroDigest(id) && IsZeroDigest(o.id)) return true;
    return id == o.id && level == o.level;
  }
};

uint64_t Span(uint32_t level) {  // blocks covered by one page at level
  uint64_t s = kPageFanout;
  for (uint32_t i = 0; i < level; ++i) s *= kPageFanout;
  return s;
}

class Differ {
 public:
  Differ(Repository* repo, uint64_t start, size_t limit, uint64_t block_count)
      : repo_(repo), start_(start), limit_(limit), block_count_(block_count) {}

  // Entries of node read as a page at `level`: children (or block ids at level 0).
  Result<std::vector<Node>> Entries(const Node& n, uint32_t level) {
    std::vector<Node> out(kPageFanout);
    for (auto& e : out) e.level = level == 0 ? 0 : level - 1;
    if (IsZeroDigest(n.id)) return out;
    if (n.level < level) {
      out[0] = n;
      return out;
    }
    ASSIGN_OR_RETURN(auto plain, repo_->ReadPage(n.id));
    ++pages_read_;
    ASSIGN_OR_RETURN(auto ids, ParsePage(plain, level));
    for (size_t i = 0; i < ids.size(); ++i) out[i].id = ids[i];
    return out;
  }

  // Returns false once the walk has found what it needs (limit + 1 differences).
  Result<bool> Walk(const Node& a, const Node& b, uint32_t level, uint64_t first) {
    if (a.Same(b)) return true;
    const uint64_t span = Span(level);
    if (first + span <= start_ || first >= block_count_) return true;
    ASSIGN_OR_RETURN(auto ea, Entries(a, level));
    ASSIGN_OR_RETURN(auto eb, Entries(b, level));
    const uint64_t child_span = span / kPageFanout;
    for (size_t i = 0; i < kPageFanout; ++i) {
      const uint64_t child_first = first + i * child_span;
      if (child_first >= block_count_) break;
      if (level == 0) {
        if (child_first < start_ || ea[i].id == eb[i].id) continue;
        if (found_.size() == limit_) {
          next_ = child_first;
          return false;
        }
        found_.push_back({child_first, ea[i].id, eb[i].id});
        continue;
      }
      ASSIGN_OR_RETURN(bool more, Walk(ea[i], eb[i], level - 1, child_first));
      if (!more) return false;
    }
    return true;
  }

  std::vector<BlockDifference> found_;
  std::optional<uint64_t> next_;
  uint64_t pages_read_ = 0;

 private:
  Repository* repo_;
  uint64_t start_;
  size_t limit_;
  uint64_t block_count_;
};

}  // namespace

Result<std::vector<BlockDifference>> DiffBlockMaps(Repository* repo, const std::optional<ManifestMeta>& first,
                                                   const ManifestMeta& second, uint64_t start, size_t limit,
                                                   std::optional<uint64_t>* next, uint64_t* pages_read) {
  uint64_t block_count = second.block_count;
  uint32_t depth = second.depth;
  Node a, b{second.root_page, second.depth};
  if (first) {
    if (first->block_size != second.block_size)
      return InvalidArgument("the two snapshots have different block sizes");
    block_count = std::max(block_count, first->block_count);
    depth = std::max(depth, first->depth);
    a = Node{first->root_page, first->depth};
  }
  Differ d(repo, start, limit, block_count);
  auto walked = d.Walk(a, b, depth, 0);
  if (pages_read) *pages_read = d.pages_read_;
  if (!walked) return std::unexpected(walked.error());
  if (next) *next = d.next_;
  return std::move(d.found_);
}

Result<BlockMapDiff> DiffBlockMaps(Repository* repo, const ManifestMeta& a, const ManifestMeta& b) {
  BlockMapDiff out;
  std::optional<uint64_t> next;
  ASSIGN_OR_RETURN(auto found, DiffBlockMaps(repo, a, b, 0, SIZE_MAX, &next, &out.pages_read));
  out.changed.assign(std::max(a.block_count, b.block_count), 0);
  for (const auto& d : found) out.changed[d.index] = 1;
  out.changed_blocks = found.size();
  return out;
}

}  // namespace snapvol
