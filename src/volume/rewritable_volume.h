// RewritableVolume: a volume read and rewritten in place, block by block (an in-place
// rollback compares each block with a snapshot and writes only those that differ).
// FileVolume is one for a registered volume: a regular file or a block device, opened
// read-write; a block device exclusively (O_EXCL), so a mounted disk or one another program
// holds exclusively is refused instead of being rewritten under its filesystem.
// Thread-safety: ReadAt, WriteAt and Zero may be called from many threads at once for
// distinct ranges; the other methods from one thread.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "core/file_util.h"
#include "core/status.h"
#include "volume/block_source.h"

namespace snapvol {

class RewritableVolume : public BlockSource {
 public:
  // Writes data at offset (inside size()).
  virtual Status WriteAt(uint64_t offset, std::span<const uint8_t> data) = 0;
  // Makes [offset, offset+len) read as zeros: a punched hole in a file, BLKZEROOUT on a
  // device, written zeros where neither is offered.
  virtual Status Zero(uint64_t offset, uint64_t len) = 0;
  // Makes every write so far durable.
  virtual Status Sync() = 0;
};

class FileVolume : public RewritableVolume {
 public:
  // NotFound for a missing path; Conflict ("in use") for a block device that cannot be opened
  // exclusively (mounted, or held by another O_EXCL opener); InvalidArgument for a directory
  // or any other kind of file.
  static Result<std::unique_ptr<FileVolume>> Open(const std::string& path);
  uint64_t size() const override { return size_; }
  Status ReadAt(uint64_t offset, std::span<uint8_t> out) override;
  Result<uint64_t> NextData(uint64_t offset) override;
  Result<uint64_t> NextHole(uint64_t offset) override;
  Status WriteAt(uint64_t offset, std::span<const uint8_t> data) override;
  Status Zero(uint64_t offset, uint64_t len) override;
  Status Sync() override;
  std::string Describe() const override { return path_; }
  bool block_device() const { return device_; }

 private:
  FileVolume(std::string path, UniqueFd fd, uint64_t size, bool device)
      : path_(std::move(path)), fd_(std::move(fd)), size_(size), device_(device) {}
  Status WriteZeros(uint64_t offset, uint64_t len);
  std::string path_;
  UniqueFd fd_;
  uint64_t size_;
  bool device_;
};

}  // namespace snapvol
