// RAII file descriptors and whole-buffer POSIX I/O that retries short reads and writes and
// EINTR. Thread-safety: UniqueFd is not shared; the free functions are safe from any thread.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace snapvol {

class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { Reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.Release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) { Reset(); fd_ = o.Release(); }
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() { int f = fd_; fd_ = -1; return f; }
  void Reset();

 private:
  int fd_ = -1;
};

Result<UniqueFd> OpenFile(const std::string& path, int flags, mode_t mode = 0644);
// Reads exactly out.size() bytes at offset, or fewer only at end of file; returns the count.
Result<size_t> PreadFull(int fd, std::span<uint8_t> out, uint64_t offset);
Status PwriteFull(int fd, std::span<const uint8_t> data, uint64_t offset);
Status WriteFull(int fd, std::span<const uint8_t> data);
Status FsyncFd(int fd, const std::string& what);
Status FsyncDir(const std::string& dir);
Result<std::vector<uint8_t>> ReadWholeFile(const std::string& path);

// Sparse files: the start of the first data at or after offset (size when only a hole
// follows), and of the first hole (size when none). A file system without SEEK_DATA makes
// everything data. what names the file in errors.
Result<uint64_t> SeekData(int fd, uint64_t offset, uint64_t size, const std::string& what);
Result<uint64_t> SeekHole(int fd, uint64_t offset, uint64_t size, const std::string& what);
// Writes path atomically: temp file, fsync, rename, fsync of the directory.
Status WriteFileAtomic(const std::string& path, std::span<const uint8_t> data, mode_t mode = 0644);
Status MakeDirs(const std::string& path, mode_t mode = 0755);
bool PathExists(const std::string& path);

}  // namespace snapvol
