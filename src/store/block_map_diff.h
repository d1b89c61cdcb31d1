// Which blocks differ between two snapshots' block maps (EBS's ListChangedBlocks, done on the
// index pages): where both maps have a page with the same id at the same place the whole
// subtree is equal and is not read, so two snapshots of a large volume that differ in a few
// blocks are compared by reading a few pages. Both maps must be of one store (ids compare
// only within it) and one block size; blocks past the shorter map count as changed.
// Thread-safety: a free function; the Repository is safe from many threads.
#pragma once

#include <cstdint>
#include <vector>

#include "store/repository.h"

namespace snapvol {

struct BlockMapDiff {
  std::vector<uint8_t> changed;  // one byte per block of the longer map: 1 where the ids differ
  uint64_t changed_blocks = 0;
  uint64_t pages_read = 0;  // index pages read to find them
};

// InvalidArgument for different block sizes; a page that cannot be read fails it.
Result<BlockMapDiff> DiffBlockMaps(Repository* repo, const ManifestMeta& a, const ManifestMeta& b);

}  // namespace snapvol
