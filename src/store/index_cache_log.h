// IndexCacheLog: the append-only second file of format 2's index cache (docs/store-format.md,
// "The index in memory and its cache file"). It holds the packindex/ objects read or published
// since the sorted cache file was last written, one checksummed section each (the object's key
// and its plaintext, as in the store), so that a commit appends kilobytes where it rewrote the
// whole sorted file (88 MB at 2 M entries).
//
// A section is a fact about an immutable packindex/ object, true whichever process appended it
// and whichever sorted file it sits beside; so a log is bound to its store (by id) but not to a
// sorted file. A log with any damage (a checksum, a torn last section) is refused whole.
// Thread-safety: an IndexCacheLog is read by one thread. Several processes may append to one
// log at once: each section is one O_APPEND write, so sections never interleave.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/file_util.h"
#include "core/status.h"

namespace snapvol {

// The log beside the sorted cache file at cache_path.
std::string IndexCacheLogPath(const std::string& cache_path);

// Starts an empty log naming the store, atomically replacing any old one; mode 0600.
Status ResetIndexCacheLog(const std::string& path, const std::string& store_id);
// Appends one section (a packindex/ key and its plaintext), starting the log when there is
// none. Returns the log's size in bytes after the append.
Result<uint64_t> AppendIndexCacheLog(const std::string& path, const std::string& store_id, const std::string& key,
                                     std::span<const uint8_t> plain);

class IndexCacheLog {
 public:
  // Opens and checks the whole log: Corruption for any damage, Conflict when it names another
  // store, NotFound when there is none. Sections appended after this are not seen.
  static Result<IndexCacheLog> Open(const std::string& path, const std::string& store_id);

  // The keys of its sections, in the order they were appended (a key may repeat).
  const std::vector<std::string>& keys() const { return keys_; }
  // Bytes of the log this checked.
  uint64_t bytes() const { return bytes_; }
  // Reads the sections again one at a time (checked again) and calls fn with each key and
  // plaintext, in order; stops at fn's first error.
  Status ForEach(const std::function<Status(const std::string& key, std::span<const uint8_t> plain)>& fn) const;

 private:
  struct Section {
    uint64_t offset = 0;  // of its header
    uint32_t key_bytes = 0, plain_bytes = 0;
  };
  // Reads and checks the section at s into buf; Corruption if it does not check.
  Status ReadSection(const Section& s, std::vector<uint8_t>* buf) const;

  std::string path_;
  UniqueFd fd_;
  std::vector<Section> sections_;
  std::vector<std::string> keys_;
  uint64_t bytes_ = 0;
};

}  // namespace snapvol
