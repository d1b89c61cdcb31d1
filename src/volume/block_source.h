// BlockSource: where snapshot data is read from (an external volume: a file or block device
// registered by path; later managed volumes). BlockTarget: where a restore writes.
// Thread-safety: ReadAt and WriteAt may be called from many threads at once; the other
// methods from one thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/file_util.h"
#include "core/status.h"

namespace snapvol {

class BlockSource {
 public:
  virtual ~BlockSource() = default;
  virtual uint64_t size() const = 0;
  // Reads out.size() bytes at offset; bytes beyond the end read as zero.
  virtual Status ReadAt(uint64_t offset, std::span<uint8_t> out) = 0;
  // Start of the first data at or after offset (size() when only holes follow). Sources that
  // cannot tell return offset: everything is data.
  virtual Result<uint64_t> NextData(uint64_t offset) { return offset; }
  // Start of the first hole at or after offset (size() when none).
  virtual Result<uint64_t> NextHole(uint64_t /*offset*/) { return size(); }
  // True when reads return the volume as of one instant, even while it is written to.
  virtual bool point_in_time() const { return false; }
  virtual std::string Describe() const = 0;
};

// Reads out.size() bytes of the file or device fd (named path, of size bytes) at offset; bytes
// past size read as zero; a file that ends before size is an IoError ("shrank"). The reads of
// FileSource and of volume/rewritable_volume.h's FileVolume.
Status ReadFileAt(int fd, const std::string& path, uint64_t size, uint64_t offset, std::span<uint8_t> out);

// A regular file or a block device, opened read-only.
class FileSource : public BlockSource {
 public:
  // NotFound for a missing path, Unauthorized when unreadable, InvalidArgument for a directory
  // or other kind of file.
  static Result<std::unique_ptr<FileSource>> Open(const std::string& path);
  uint64_t size() const override { return size_; }
  Status ReadAt(uint64_t offset, std::span<uint8_t> out) override;
  Result<uint64_t> NextData(uint64_t offset) override;
  Result<uint64_t> NextHole(uint64_t offset) override;
  std::string Describe() const override { return path_; }

 private:
  FileSource(std::string path, UniqueFd fd, uint64_t size, bool seek_holes)
      : path_(std::move(path)), fd_(std::move(fd)), size_(size), seek_holes_(seek_holes) {}
  std::string path_;
  UniqueFd fd_;
  uint64_t size_;
  bool seek_holes_;
};

class BlockTarget {
 public:
  virtual ~BlockTarget() = default;
  virtual uint64_t size() const = 0;
  // The restore writes block-aligned extents of one or many blocks, from several threads.
  virtual Status WriteAt(uint64_t offset, std::span<const uint8_t> data) = 0;
  // Makes [offset, offset+len) read as zeros. Free on a fresh sparse file.
  virtual Status Zero(uint64_t offset, uint64_t len) = 0;
  // Makes everything durable and, for a file, moves it into place. Call once, last.
  virtual Status Commit() = 0;
  virtual std::string Describe() const = 0;
};

// Restores into a new file (written as PATH.snapvol-partial, sparse, renamed over PATH at
// Commit, so a failed restore never leaves a half-written PATH) or onto a block device of at
// least the volume's size. An existing PATH is refused unless overwrite.
// Writes whose buffer, offset and length meet the file's O_DIRECT alignment (statx
// STATX_DIOALIGN) bypass the page cache: copying every restored byte into it cost more CPU
// than decompressing and checking them. Other writes, and files or kernels without direct
// I/O, go through the page cache with writeback started at once. Commit's fsync covers both.
class FileTarget : public BlockTarget {
 public:
  static Result<std::unique_ptr<FileTarget>> Create(const std::string& path, uint64_t size,
                                                    bool overwrite);
  ~FileTarget() override;
  uint64_t size() const override { return size_; }
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override;
  Status Zero(uint64_t offset, uint64_t len) override;
  Status Commit() override;
  std::string Describe() const override { return path_; }
  // Writes that went around the page cache (O_DIRECT), for tests and figures.
  uint64_t direct_writes() const { return direct_writes_.load(std::memory_order_relaxed); }

 private:
  FileTarget(std::string path, std::string partial, UniqueFd fd, uint64_t size, bool device)
      : path_(std::move(path)), partial_(std::move(partial)), fd_(std::move(fd)), size_(size),
        device_(device) {
    OpenDirect();
  }
  void OpenDirect();
  bool DirectFits(uint64_t offset, std::span<const uint8_t> data) const;
  std::string path_, partial_;
  UniqueFd fd_;
  UniqueFd direct_fd_;  // the same file opened O_DIRECT; invalid when direct I/O is not offered
  uint32_t dio_mem_align_ = 0, dio_offset_align_ = 0;
  std::atomic<bool> direct_failed_{false};  // the file refused a direct write: page cache only
  std::atomic<uint64_t> direct_writes_{0};
  uint64_t size_;
  bool device_;
  bool committed_ = false;
};

}  // namespace snapvol
