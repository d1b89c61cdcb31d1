// Reflink clones and extent maps of image files: FICLONE makes an instant, point-in-time copy
// of a file that shares its data extents with the original (XFS, btrfs); FS_IOC_FIEMAP lists
// where a file's data lies on disk. Two clones of one image, taken at different instants, map
// a block to the same physical extent exactly when the image did not rewrite it in between
// (a write to a shared extent goes to a new one: copy on write). That is what ChangedBlocks
// relies on: same logical offset, same physical extent, shared → unchanged; anything else
// (moved, unshared, hole on one side only, flags that make the physical address meaningless)
// → changed, to be read and compared.
// Thread-safety: free functions without shared state.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace snapvol {

// One FIEMAP record: [logical, logical+length) of the file lies at physical on the device.
struct FileExtent {
  uint64_t logical = 0, physical = 0, length = 0;
  uint32_t flags = 0;  // FIEMAP_EXTENT_*
  bool operator==(const FileExtent&) const = default;
};

// Clones the file src into dst, a new file (mode 0600; an existing dst is kAlreadyExists), with
// FICLONE: instant, and a copy of src as of this instant. A file system that cannot clone
// (ext4, tmpfs, another file system than src's) is kUnsupported, saying why; nothing is left
// at dst on failure.
Status CloneFile(const std::string& src, const std::string& dst);

// Every extent of the open file fd (named path), sorted by logical offset. FIEMAP_FLAG_SYNC:
// dirty pages are written first, so what is mapped is what reads return.
Result<std::vector<FileExtent>> ReadExtentMap(int fd, const std::string& path);
Result<std::vector<FileExtent>> ReadExtentMap(const std::string& path);

// For each block of block_size bytes of a file of size bytes (extent map current), 1 when it
// may differ from the same block of the base file (base_size bytes, extent map base), 0 when
// it certainly does not: every byte of the block either lies in a hole in both files, or at
// the same physical address in both, in extents the current map marks shared, written
// (or unwritten) in both alike. A block whose length differs between the two files (the file
// grew or shrank) is 1.
std::vector<uint8_t> ChangedBlocks(const std::vector<FileExtent>& base, uint64_t base_size,
                                   const std::vector<FileExtent>& current, uint64_t size, uint32_t block_size);

// Bytes of the file's extents that no other file shares: what deleting the file frees.
uint64_t ExclusiveBytes(const std::vector<FileExtent>& extents);

}  // namespace snapvol
