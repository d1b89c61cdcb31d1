#include "volume/block_source.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace snapvol {

Result<std::unique_ptr<FileSource>> FileSource::Open(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer; its type is refused below.
  auto fd = OpenFile(path, O_RDONLY | O_NONBLOCK);
  if (!fd) return std::unexpected(fd.error().WithContext("volume"));
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return std::unexpected(PosixError("stat " + path, errno));
  int flags = ::fcntl(fd->get(), F_GETFL);
  if (flags >= 0) ::fcntl(fd->get(), F_SETFL, flags & ~O_NONBLOCK);
  uint64_t size = 0;
  bool regular = S_ISREG(st.st_mode);
  if (regular) {
    size = static_cast<uint64_t>(st.st_size);
  } else if (S_ISBLK(st.st_mode)) {
    if (::ioctl(fd->get(), BLKGETSIZE64, &size) != 0)
      return std::unexpected(PosixError("size of block device " + path, errno));
  } else {
    return InvalidArgument(path + " is not a regular file or a block device");
  }
  ::posix_fadvise(fd->get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  return std::unique_ptr<FileSource>(new FileSource(path, std::move(*fd), size, regular));
}

Status ReadFileAt(int fd, const std::string& path, uint64_t size, uint64_t offset, std::span<uint8_t> out) {
  size_t n = 0;
  if (offset < size) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(out.size(), size - offset));
    auto got = PreadFull(fd, out.subspan(0, want), offset);
    if (!got) return std::unexpected(got.error().WithContext("read " + path));
    n = *got;
    if (n < want) return MakeError(ErrorCode::kIoError, path + " shrank while being read");
  }
  std::memset(out.data() + n, 0, out.size() - n);
  return OkStatus();
}

Status FileSource::ReadAt(uint64_t offset, std::span<uint8_t> out) {
  return ReadFileAt(fd_.get(), path_, size_, offset, out);
}

Result<uint64_t> FileSource::NextData(uint64_t offset) {
  if (!seek_holes_) return std::min(offset, size_);
  return SeekData(fd_.get(), offset, size_, path_);
}

Result<uint64_t> FileSource::NextHole(uint64_t offset) {
  if (!seek_holes_) return size_;
  return SeekHole(fd_.get(), offset, size_, path_);
}

Result<std::unique_ptr<FileTarget>> FileTarget::Create(const std::string& path, uint64_t size,
                                                       bool overwrite) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISBLK(st.st_mode)) {
      if (!overwrite)
        return MakeError(ErrorCode::kAlreadyExists,
                         path + " is a block device; pass --force to overwrite it");
      ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_WRONLY));
      uint64_t dev_size = 0;
      if (::ioctl(fd.get(), BLKGETSIZE64, &dev_size) != 0)
        return std::unexpected(PosixError("size of block device " + path, errno));
      if (dev_size < size)
        return InvalidArgument(path + " is smaller (" + std::to_string(dev_size) +
                               " bytes) than the snapshot's volume (" + std::to_string(size) + " bytes)");
      return std::unique_ptr<FileTarget>(new FileTarget(path, "", std::move(fd), size, true));
    }
    if (S_ISDIR(st.st_mode)) return InvalidArgument(path + " is a directory");
    if (!overwrite)
      return MakeError(ErrorCode::kAlreadyExists, path + " already exists; pass --force to overwrite it");
  } else if (errno != ENOENT) {
    return std::unexpected(PosixError("stat " + path, errno));
  }
  std::string partial = path + ".snapvol-partial";
  ::unlink(partial.c_str());
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(partial, O_WRONLY | O_CREAT | O_EXCL, 0644));
  if (::ftruncate(fd.get(), static_cast<off_t>(size)) != 0) {
    int err = errno;
    ::unlink(partial.c_str());
    return std::unexpected(PosixError("size " + partial, err));
  }
  return std::unique_ptr<FileTarget>(new FileTarget(path, partial, std::move(fd), size, false));
}

FileTarget::~FileTarget() {
  if (!committed_ && !partial_.empty()) ::unlink(partial_.c_str());
}

void FileTarget::OpenDirect() {
  struct statx sx {};
  if (::statx(fd_.get(), "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) != 0 ||
      !(sx.stx_mask & STATX_DIOALIGN) || sx.stx_dio_mem_align == 0 || sx.stx_dio_offset_align == 0)
    return;  // no direct I/O here (tmpfs, an older kernel): the page cache it is
  // The file fd_ has open, not whatever its path names now: a path swapped for a link in
  // between must not be followed.
  auto fd = OpenFile("/proc/self/fd/" + std::to_string(fd_.get()), O_WRONLY | O_DIRECT);
  if (!fd) return;
  direct_fd_ = std::move(*fd);
  dio_mem_align_ = sx.stx_dio_mem_align;
  dio_offset_align_ = sx.stx_dio_offset_align;
}

bool FileTarget::DirectFits(uint64_t offset, std::span<const uint8_t> data) const {
  return direct_fd_.get() >= 0 && !direct_failed_.load(std::memory_order_relaxed) &&
         reinterpret_cast<uintptr_t>(data.data()) % dio_mem_align_ == 0 &&
         offset % dio_offset_align_ == 0 && data.size() % dio_offset_align_ == 0;
}

Status FileTarget::WriteAt(uint64_t offset, std::span<const uint8_t> data) {
  if (offset + data.size() > size_) return Internal("restore write beyond the target's end");
  if (DirectFits(offset, data)) {
    ssize_t n;
    do {
      n = ::pwrite(direct_fd_.get(), data.data(), data.size(), static_cast<off_t>(offset));
    } while (n < 0 && errno == EINTR);
    if (n == static_cast<ssize_t>(data.size())) {
      direct_writes_.fetch_add(1, std::memory_order_relaxed);
      return OkStatus();
    }
    if (n < 0 && errno != EINVAL)
      return std::unexpected(PosixError("write", errno).WithContext(device_ ? path_ : partial_));
    if (n < 0) {
      direct_failed_ = true;  // the alignment statx promised was refused: stop trying
      n = 0;
    }
    offset += static_cast<uint64_t>(n);  // a short direct write: the rest through the page cache
    data = data.subspan(static_cast<size_t>(n));
  }
  auto st = PwriteFull(fd_.get(), data, offset);
  if (!st) return std::unexpected(st.error().WithContext(device_ ? path_ : partial_));
  // Start writeback now, without waiting, so the fsync at Commit finds little left to do.
  ::sync_file_range(fd_.get(), static_cast<off_t>(offset), static_cast<off_t>(data.size()),
                    SYNC_FILE_RANGE_WRITE);
  return OkStatus();
}

Status FileTarget::Zero(uint64_t offset, uint64_t len) {
  if (!device_) return OkStatus();  // a fresh sparse file reads zeros already
  uint64_t range[2] = {offset, len};
  if (::ioctl(fd_.get(), BLKZEROOUT, range) == 0) return OkStatus();
  static const std::vector<uint8_t> zeros(1 << 20, 0);
  for (uint64_t done = 0; done < len;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(zeros.size(), len - done));
    RETURN_IF_ERROR(WriteAt(offset + done, {zeros.data(), n}));
    done += n;
  }
  return OkStatus();
}

Status FileTarget::Commit() {
  RETURN_IF_ERROR(FsyncFd(fd_.get(), device_ ? path_ : partial_));
  if (device_) {
    committed_ = true;
    return OkStatus();
  }
  if (::rename(partial_.c_str(), path_.c_str()) != 0)
    return std::unexpected(PosixError("rename to " + path_, errno));
  committed_ = true;
  auto slash = path_.rfind('/');
  return FsyncDir(slash == std::string::npos ? "." : (slash == 0 ? "/" : path_.substr(0, slash)));
}

}  // namespace snapvol
