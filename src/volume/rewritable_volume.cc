#include "volume/rewritable_volume.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace snapvol {

Result<std::unique_ptr<FileVolume>> FileVolume::Open(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return NotFound("volume " + path + " does not exist");
    return std::unexpected(PosixError("stat " + path, errno));
  }
  const bool device = S_ISBLK(st.st_mode);
  if (!device && !S_ISREG(st.st_mode)) return InvalidArgument(path + " is not a regular file or a block device");
  // O_EXCL on a block device: the kernel refuses it while the device is mounted or another
  // program holds it exclusively, so a filesystem in use is never rewritten underneath.
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | (device ? O_EXCL : 0));
  if (fd < 0) {
    int err = errno;
    if (device && err == EBUSY)
      return MakeError(ErrorCode::kConflict, "block device " + path +
                                                 " is in use (mounted, or held open exclusively by another "
                                                 "program): unmount it first");
    return std::unexpected(PosixError("open " + path + " for writing", err));
  }
  UniqueFd owned(fd);
  uint64_t size = 0;
  if (device) {
    if (::ioctl(owned.get(), BLKGETSIZE64, &size) != 0)
      return std::unexpected(PosixError("size of block device " + path, errno));
  } else {
    if (::fstat(owned.get(), &st) != 0) return std::unexpected(PosixError("stat " + path, errno));
    size = static_cast<uint64_t>(st.st_size);
  }
  return std::unique_ptr<FileVolume>(new FileVolume(path, std::move(owned), size, device));
}

Status FileVolume::ReadAt(uint64_t offset, std::span<uint8_t> out) {
  return ReadFileAt(fd_.get(), path_, size_, offset, out);
}

Result<uint64_t> FileVolume::NextData(uint64_t offset) {
  if (device_) return std::min(offset, size_);
  return SeekData(fd_.get(), offset, size_, path_);
}

Result<uint64_t> FileVolume::NextHole(uint64_t offset) {
  if (device_) return size_;
  return SeekHole(fd_.get(), offset, size_, path_);
}

Status FileVolume::WriteAt(uint64_t offset, std::span<const uint8_t> data) {
  if (offset + data.size() > size_) return Internal("write beyond the end of " + path_);
  auto st = PwriteFull(fd_.get(), data, offset);
  if (!st) return std::unexpected(st.error().WithContext(path_));
  return OkStatus();
}

Status FileVolume::Zero(uint64_t offset, uint64_t len) {
  if (offset + len > size_) return Internal("zeroing beyond the end of " + path_);
  if (device_) {
    uint64_t range[2] = {offset, len};
    if (::ioctl(fd_.get(), BLKZEROOUT, range) == 0) return OkStatus();
  } else if (::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                         static_cast<off_t>(len)) == 0) {
    return OkStatus();
  }
  return WriteZeros(offset, len);  // neither offered here (tmpfs of old, a loop device without discard)
}

Status FileVolume::WriteZeros(uint64_t offset, uint64_t len) {
  static const std::vector<uint8_t> zeros(1 << 20, 0);
  for (uint64_t done = 0; done < len;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), len - done));
    RETURN_IF_ERROR(WriteAt(offset + done, {zeros.data(), n}));
    done += n;
  }
  return OkStatus();
}

Status FileVolume::Sync() { return FsyncFd(fd_.get(), path_); }

}  // namespace snapvol
