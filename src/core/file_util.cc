#include "core/file_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "core/hash.h"

namespace snapvol {

void UniqueFd::Reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<UniqueFd> OpenFile(const std::string& path, int flags, mode_t mode) {
  int fd;
  do {
    fd = ::open(path.c_str(), flags | O_CLOEXEC, mode);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return std::unexpected(PosixError("open " + path, errno));
  return UniqueFd(fd);
}

Result<size_t> PreadFull(int fd, std::span<uint8_t> out, uint64_t offset) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd, out.data() + done, out.size() - done, offset + done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(PosixError("read", errno));
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return done;
}

Status PwriteFull(int fd, std::span<const uint8_t> data, uint64_t offset) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd, data.data() + done, data.size() - done, offset + done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(PosixError("write", errno));
    }
    done += static_cast<size_t>(n);
  }
  return OkStatus();
}

Status WriteFull(int fd, std::span<const uint8_t> data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(PosixError("write", errno));
    }
    done += static_cast<size_t>(n);
  }
  return OkStatus();
}

Status FsyncFd(int fd, const std::string& what) {
  if (::fsync(fd) != 0) return std::unexpected(PosixError("fsync " + what, errno));
  return OkStatus();
}

Status FsyncDir(const std::string& dir) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(dir, O_RDONLY | O_DIRECTORY));
  return FsyncFd(fd.get(), dir);
}

Result<std::vector<uint8_t>> ReadWholeFile(const std::string& path) {
  ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(path, O_RDONLY));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return std::unexpected(PosixError("stat " + path, errno));
  // st_size is a hint only: files in /proc report 0. Read until end of file.
  std::vector<uint8_t> buf(static_cast<size_t>(st.st_size) + 4096);
  size_t used = 0;
  for (;;) {
    if (used == buf.size()) buf.resize(buf.size() * 2);
    ssize_t n = ::read(fd.get(), buf.data() + used, buf.size() - used);
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::unexpected(PosixError("read " + path, errno));
    }
    if (n == 0) break;
    used += static_cast<size_t>(n);
  }
  buf.resize(used);
  return buf;
}

static std::string DirName(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Status WriteFileAtomic(const std::string& path, std::span<const uint8_t> data, mode_t mode) {
  std::array<uint8_t, 6> rnd{};
  RETURN_IF_ERROR(RandomBytes(rnd));
  std::string tmp = path + ".tmp-" + ToHex(rnd);
  {
    ASSIGN_OR_RETURN(UniqueFd fd, OpenFile(tmp, O_WRONLY | O_CREAT | O_EXCL, mode));
    Status st = WriteFull(fd.get(), data);
    if (st) st = FsyncFd(fd.get(), tmp);
    if (!st) {
      ::unlink(tmp.c_str());
      return st;
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return std::unexpected(PosixError("rename to " + path, err));
  }
  return FsyncDir(DirName(path));
}

Status MakeDirs(const std::string& path, mode_t mode) {
  if (path.empty()) return OkStatus();
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return OkStatus();
    return InvalidArgument(path + " exists and is not a directory");
  }
  std::string parent = DirName(path);
  if (parent != path) RETURN_IF_ERROR(MakeDirs(parent, mode));
  if (::mkdir(path.c_str(), mode) != 0 && errno != EEXIST)
    return std::unexpected(PosixError("mkdir " + path, errno));
  return OkStatus();
}

bool PathExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

Result<uint64_t> SeekData(int fd, uint64_t offset, uint64_t size, const std::string& what) {
  if (offset >= size) return size;
  off_t r = ::lseek(fd, static_cast<off_t>(offset), SEEK_DATA);
  if (r < 0) {
    if (errno == ENXIO) return size;     // only a hole follows
    if (errno == EINVAL) return offset;  // file system without SEEK_DATA
    return std::unexpected(PosixError("seek " + what, errno));
  }
  return std::min<uint64_t>(static_cast<uint64_t>(r), size);
}

Result<uint64_t> SeekHole(int fd, uint64_t offset, uint64_t size, const std::string& what) {
  if (offset >= size) return size;
  off_t r = ::lseek(fd, static_cast<off_t>(offset), SEEK_HOLE);
  if (r < 0) {
    if (errno == ENXIO || errno == EINVAL) return size;
    return std::unexpected(PosixError("seek " + what, errno));
  }
  return std::min<uint64_t>(static_cast<uint64_t>(r), size);
}

}  // namespace snapvol
