#include "volume/extent_map.h"

#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/file_util.h"

namespace snapvol {

Status CloneFile(const std::string& src, const std::string& dst) {
  ASSIGN_OR_RETURN(UniqueFd in, OpenFile(src, O_RDONLY));
  int out = ::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (out < 0) {
    if (errno == EEXIST) return MakeError(ErrorCode::kAlreadyExists, dst + " already exists");
    return std::unexpected(PosixError("create " + dst, errno));
  }
  UniqueFd out_fd(out);
  if (::ioctl(out, FICLONE, in.get()) != 0) {
    int err = errno;
    ::unlink(dst.c_str());
    if (err == EOPNOTSUPP || err == ENOTTY || err == EXDEV || err == EINVAL || err == ENOSYS)
      return MakeError(ErrorCode::kUnsupported,
                       "the file system of " + src + " cannot clone files (FICLONE: " + std::strerror(err) + ")");
    return std::unexpected(PosixError("clone " + src + " to " + dst, err));
  }
  return OkStatus();
}

Result<std::vector<FileExtent>> ReadExtentMap(int fd, const std::string& path) {
  constexpr uint32_t kPerCall = 512;
  std::vector<uint8_t> buf(sizeof(fiemap) + kPerCall * sizeof(fiemap_extent));
  auto* fm = reinterpret_cast<fiemap*>(buf.data());
  std::vector<FileExtent> out;
  uint64_t start = 0;
  for (uint32_t flags = FIEMAP_FLAG_SYNC;; flags = 0) {
    std::memset(buf.data(), 0, buf.size());
    fm->fm_start = start;
    fm->fm_length = FIEMAP_MAX_OFFSET - start;
    fm->fm_flags = flags;
    fm->fm_extent_count = kPerCall;
    if (::ioctl(fd, FS_IOC_FIEMAP, fm) != 0) {
      int err = errno;
      if (err == EOPNOTSUPP || err == ENOTTY)
        return MakeError(ErrorCode::kUnsupported, "the file system of " + path + " has no extent maps (FIEMAP)");
      return std::unexpected(PosixError("extent map of " + path, err));
    }
    if (fm->fm_mapped_extents == 0) break;
    bool last = false;
    for (uint32_t i = 0; i < fm->fm_mapped_extents; ++i) {
      const fiemap_extent& e = fm->fm_extents[i];
      out.push_back({e.fe_logical, e.fe_physical, e.fe_length, e.fe_flags});
      if (e.fe_flags & FIEMAP_EXTENT_LAST) last = true;
    }
    const FileExtent& tail = out.back();
    if (last || tail.logical + tail.length <= start) break;
    start = tail.logical + tail.length;
  }
  std::sort(out.begin(), out.end(), [](const FileExtent& a, const FileExtent& b) { return a.logical < b.logical; });
  return out;
}

Result<std::vector<FileExtent>> ReadExtentMap(const std::string& path) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY));
  return ReadExtentMap(fd.get(), path);
}

namespace {

// What lies at logical offset x of a file: a hole or data at a physical address, up to end.
struct Piece {
  bool data = false;
  uint64_t physical = 0;  // of x, when data
  uint32_t flags = 0;
  uint64_t end = 0;  // the piece goes on up to here
};

// Flags under which the physical address says nothing about the data (not yet allocated,
// not a block-aligned address of the device, or stored transformed).
constexpr uint32_t kOpaque = FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_DELALLOC | FIEMAP_EXTENT_ENCODED |
                             FIEMAP_EXTENT_DATA_ENCRYPTED | FIEMAP_EXTENT_NOT_ALIGNED |
                             FIEMAP_EXTENT_DATA_INLINE | FIEMAP_EXTENT_DATA_TAIL;

Piece At(const std::vector<FileExtent>& map, uint64_t x) {
  // The last extent starting at or before x.
  auto it = std::upper_bound(map.begin(), map.end(), x,
                             [](uint64_t v, const FileExtent& e) { return v < e.logical; });
  if (it != map.begin()) {
    const FileExtent& e = *std::prev(it);
    if (x < e.logical + e.length) return {true, e.physical + (x - e.logical), e.flags, e.logical + e.length};
  }
  return {false, 0, 0, it == map.end() ? UINT64_MAX : it->logical};
}

bool Unchanged(const std::vector<FileExtent>& base, const std::vector<FileExtent>& current, uint64_t from,
               uint64_t to) {
  for (uint64_t x = from; x < to;) {
    Piece b = At(base, x), c = At(current, x);
    if (b.data != c.data) return false;
    if (c.data) {
      if ((b.flags | c.flags) & kOpaque) return false;
      if (!(c.flags & FIEMAP_EXTENT_SHARED)) return false;
      if ((b.flags & FIEMAP_EXTENT_UNWRITTEN) != (c.flags & FIEMAP_EXTENT_UNWRITTEN)) return false;
      if (b.physical != c.physical) return false;
    }
    x = std::min({b.end, c.end, to});
  }
  return true;
}

}  // namespace

std::vector<uint8_t> ChangedBlocks(const std::vector<FileExtent>& base, uint64_t base_size,
                                   const std::vector<FileExtent>& current, uint64_t size, uint32_t block_size) {
  const uint64_t bs = block_size;
  const uint64_t blocks = (size + bs - 1) / bs;
  std::vector<uint8_t> changed(blocks, 1);
  for (uint64_t b = 0; b < blocks; ++b) {
    const uint64_t from = b * bs, to = std::min(from + bs, size);
    if (std::min(from + bs, base_size) != to) continue;  // the block's length differs: changed
    changed[b] = Unchanged(base, current, from, to) ? 0 : 1;
  }
  return changed;
}

uint64_t ExclusiveBytes(const std::vector<FileExtent>& extents) {
  uint64_t n = 0;
  for (const auto& e : extents)
    if (!(e.flags & FIEMAP_EXTENT_SHARED) && !(e.flags & FIEMAP_EXTENT_DELALLOC)) n += e.length;
  return n;
}

}  // namespace snapvol
