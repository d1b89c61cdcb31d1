// Block-map comparison for the EBS direct APIs' listings: the blocks whose ids differ between
// two snapshots' block maps (ListChangedBlocks), or the blocks that are not holes in one map
// (ListSnapshotBlocks: the same walk against an empty map). Subtrees whose page ids are equal
// are skipped without being read, so the cost follows the differences, not the volume size.
// Maps of different depths compare too (the shallower one is read as the first subtree of a
// deeper root).
// Thread-safety: a free function; Repository is safe from many threads.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "store/repository.h"

namespace snapvol {

struct BlockDifference {
  uint64_t index = 0;
  Digest first{}, second{};  // zero: a hole in that map
};

// At most limit blocks with index >= start whose ids differ between first (nullopt: a map of
// holes only) and second, in index order. *next gets the index of the next differing block
// after them, or nullopt when there is none.
Result<std::vector<BlockDifference>> DiffBlockMaps(Repository* repo, const std::optional<ManifestMeta>& first,
                                                   const ManifestMeta& second, uint64_t start, size_t limit,
                                                   std::optional<uint64_t>* next);

}  // namespace snapvol
