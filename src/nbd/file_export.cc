#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/file_util.h"
#include "nbd/nbd_server.h"

namespace snapvol::nbd {
namespace {
constexpr uint32_t kMaxExtents = 2048;  // per BLOCK_STATUS reply
}  // namespace


Result<std::shared_ptr<FileExport>> FileExport::Open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return MakeError(ErrorCode::kIoError, "cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return InvalidArgument(path + " is not a regular file");
  }
  return std::shared_ptr<FileExport>(new FileExport(fd, static_cast<uint64_t>(st.st_size), path));
}

FileExport::~FileExport() { ::close(fd_); }

Status FileExport::Read(uint64_t offset, std::span<uint8_t> out) {
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return MakeError(ErrorCode::kIoError, "read " + path_ + ": " + std::strerror(errno));
    if (n == 0) {  // past the end of a file shorter than its export: zeroes
      std::fill(out.begin() + static_cast<std::ptrdiff_t>(done), out.end(), 0);
      break;
    }
    done += static_cast<size_t>(n);
  }
  return OkStatus();
}

Status FileExport::Write(uint64_t offset, std::span<const uint8_t> data, bool fua) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::pwrite(fd_, data.data() + done, data.size() - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0)
      return MakeError(errno == ENOSPC ? ErrorCode::kNoSpace : ErrorCode::kIoError,
                       "write " + path_ + ": " + std::strerror(errno));
    done += static_cast<size_t>(n);
  }
  return fua ? Flush() : OkStatus();
}

Status FileExport::Flush() {
  if (::fdatasync(fd_) != 0) return MakeError(ErrorCode::kIoError, "flush " + path_ + ": " + std::strerror(errno));
  return OkStatus();
}

Status FileExport::Trim(uint64_t offset, uint64_t length) { return WriteZeroes(offset, length, true); }

Status FileExport::WriteZeroes(uint64_t offset, uint64_t length, bool may_punch) {
  int mode = may_punch ? (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) : (FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE);
  if (::fallocate(fd_, mode, static_cast<off_t>(offset), static_cast<off_t>(length)) == 0) return OkStatus();
  if (errno != EOPNOTSUPP && errno != ENOSYS)
    return MakeError(errno == ENOSPC ? ErrorCode::kNoSpace : ErrorCode::kIoError,
                     "zero " + path_ + ": " + std::strerror(errno));
  // The file system cannot: write the zeroes.
  std::vector<uint8_t> zeros(std::min<uint64_t>(length, 1 << 20), 0);
  for (uint64_t done = 0; done < length;) {
    size_t step = static_cast<size_t>(std::min<uint64_t>(length - done, zeros.size()));
    RETURN_IF_ERROR(Write(offset + done, std::span(zeros.data(), step), false));
    done += step;
  }
  return OkStatus();
}

Result<uint64_t> FileExport::NextData(uint64_t offset) { return SeekData(fd_, offset, size_, path_); }
Result<uint64_t> FileExport::NextHole(uint64_t offset) { return SeekHole(fd_, offset, size_, path_); }

Result<std::vector<Extent>> FileExport::BlockStatus(uint64_t offset, uint64_t length) {
  std::vector<Extent> out;
  const uint64_t end = offset + length;
  for (uint64_t pos = offset; pos < end && out.size() < kMaxExtents;) {
    ASSIGN_OR_RETURN(uint64_t data, NextData(pos));
    if (data > pos) {  // a hole up to the next data
      uint64_t to = std::min(data, end);
      out.push_back({to - pos, kStateHole | kStateZero});
      pos = to;
      continue;
    }
    ASSIGN_OR_RETURN(uint64_t hole, NextHole(pos));
    uint64_t to = std::min(std::max(hole, pos + 1), end);
    out.push_back({to - pos, 0});
    pos = to;
  }
  return out;
}

}  // namespace snapvol::nbd
