// Which blocks differ between two snapshots' block maps, found on their index pages: for the
// EBS direct APIs' listings (ListChangedBlocks; ListSnapshotBlocks is the same walk against an
// empty map) and for an in-place rollback of a managed volume (the blocks that differ between
// the target and the base of its changed-block map). Subtrees whose page ids are equal are
// skipped without being read, so the cost follows the differences, not the volume size. Maps
// of different depths compare too (the shallower one is read as the first subtree of a deeper
// root). Both maps must be of one store (ids compare only within it).
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
// after them, or nullopt when there is none; *pages_read (when given) the index pages read.
// InvalidArgument for different block sizes; a page that cannot be read fails it.
Result<std::vector<BlockDifference>> DiffBlockMaps(Repository* repo, const std::optional<ManifestMeta>& first,
                                                   const ManifestMeta& second, uint64_t start, size_t limit,
                                                   std::optional<uint64_t>* next, uint64_t* pages_read = nullptr);

struct BlockMapDiff {
  std::vector<uint8_t> changed;  // one byte per block of the longer map: 1 where the ids differ
  uint64_t changed_blocks = 0;
  uint64_t pages_read = 0;  // index pages read to find them
};

// Every block whose ids differ between a and b (past the shorter map: a block that is not a
// hole in the longer one).
Result<BlockMapDiff> DiffBlockMaps(Repository* repo, const ManifestMeta& a, const ManifestMeta& b);

}  // namespace snapvol
