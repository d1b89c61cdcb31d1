#include "volume/cut_sources.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "core/file_util.h"

namespace snapvol {

namespace {

// A block device opened (exclusively or not) and its size.
class DeviceReader : public BlockSource {
 public:
  DeviceReader(std::string path, UniqueFd fd, uint64_t size, bool exclusive)
      : path_(std::move(path)), fd_(std::move(fd)), size_(size), exclusive_(exclusive) {}
  uint64_t size() const override { return size_; }
  Status ReadAt(uint64_t offset, std::span<uint8_t> out) override {
    return ReadFileAt(fd_.get(), path_, size_, offset, out);
  }
  bool point_in_time() const override { return exclusive_; }
  std::string Describe() const override { return path_; }

 private:
  std::string path_;
  UniqueFd fd_;
  uint64_t size_;
  bool exclusive_;
};

}  // namespace

Result<DeviceSource> OpenDeviceSource(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return NotFound(path + " does not exist");
    return std::unexpected(PosixError("stat " + path, errno));
  }
  if (!S_ISBLK(st.st_mode)) return InvalidArgument(path + " is not a block device");
  DeviceSource out;
  int fd = ::open(path.c_str(), O_RDONLY | O_EXCL | O_CLOEXEC);
  if (fd >= 0) {
    out.exclusive = true;
  } else if (errno == EBUSY) {
    out.note = "the device is in use (mounted, or held exclusively by another program)";
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  if (fd < 0) return std::unexpected(PosixError("open " + path, errno));
  UniqueFd owned(fd);
  uint64_t size = 0;
  if (::ioctl(fd, BLKGETSIZE64, &size) != 0) return std::unexpected(PosixError("size of block device " + path, errno));
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  out.source = std::make_unique<DeviceReader>(path, std::move(owned), size, out.exclusive);
  return out;
}

}  // namespace snapvol
