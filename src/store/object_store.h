// ObjectStore: the key/value interface every snapshot store sits on (local directory, memory,
// S3), plus WriteBatch for writing many objects that become durable together.
//
// Keys are relative paths of [a-z0-9._-] segments separated by '/', no empty or dot segments.
// Thread-safety: every implementation is safe to call from many threads at once. A WriteBatch
// may also be used from many threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace snapvol {

struct ObjectInfo {
  std::string key;
  uint64_t size = 0;
  int64_t mtime_ms = 0;  // last Put or Touch
};

// Objects added to a batch are durable once Commit succeeds. Until then a crash may lose any
// of them, but never leaves a partial object under its key. Some stores show an object before
// Commit (S3 uploads each as it is added), so batches carry content-addressed objects only
// (chunks, index pages), whose early appearance is harmless; roots are written with Put.
// One object of a batch written piece by piece, in place: many threads may WriteAt at once,
// each to its own range, so each writes the bytes it just made while they are still in its
// CPU cache (a format-2 pack: every job thread writes the objects it encoded). Seal adds the
// object to its batch; an object dropped unsealed leaves nothing behind.
class ObjectWriter {
 public:
  virtual ~ObjectWriter() = default;
  // Ranges of calls that may run at once must not overlap.
  virtual Status WriteAt(uint64_t offset, std::span<const uint8_t> data) = 0;
  // The object is its first size bytes, every one of them written: it joins the batch as Add
  // would add it. Called once, after every WriteAt has returned.
  virtual Status Seal(uint64_t size) = 0;
};

class WriteBatch {
 public:
  virtual ~WriteBatch() = default;
  virtual Status Add(const std::string& key, std::span<const uint8_t> data) = 0;
  // Add for bytes the batch may keep (its first size bytes are the object), so a store that
  // uploads from memory need not copy them. The default Adds them and frees them.
  virtual Status Add(const std::string& key, std::unique_ptr<uint8_t[]> bytes, size_t size);
  // An object to write in place (ObjectWriter), of about size_hint bytes. The default holds
  // it in memory and Adds it at Seal; a local store writes it straight to its file.
  virtual Result<std::unique_ptr<ObjectWriter>> NewObject(const std::string& key, uint64_t size_hint);
  // On success every object added since the last Commit is durable and visible.
  virtual Status Commit() = 0;
  // Bytes added since the last Commit.
  virtual uint64_t PendingBytes() const = 0;
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // Atomically and durably stores data under key, replacing any object there. On failure
  // the previous object (if any) is unchanged.
  virtual Status Put(const std::string& key, std::span<const uint8_t> data) = 0;
  // NotFound when absent.
  virtual Result<std::vector<uint8_t>> Get(const std::string& key) = 0;
  // length bytes from offset (a format-2 pack entry): NotFound when absent, Corruption when
  // the object ends before offset + length. The default reads the whole object.
  virtual Result<std::vector<uint8_t>> GetRange(const std::string& key, uint64_t offset, uint64_t length);
  virtual Result<bool> Exists(const std::string& key) = 0;
  // The object's size in bytes; NotFound when absent. The default reads the whole object.
  virtual Result<uint64_t> Size(const std::string& key);
  // Removes key; deleting an absent key succeeds.
  virtual Status Delete(const std::string& key) = 0;
  // Removes every key (absent ones succeed); an invalid key → kInvalidArgument before any is
  // removed. On another error some keys may be gone and others not; the first error is
  // returned. The default deletes one key after another; a remote
  // store deletes many at once.
  virtual Status DeleteMany(const std::vector<std::string>& keys);
  // Every object whose key starts with prefix, in no particular order.
  virtual Result<std::vector<ObjectInfo>> List(const std::string& prefix) = 0;
  // Sets the object's mtime to now (GC counts age from it). NotFound when absent.
  virtual Status Touch(const std::string& key) = 0;
  // A new batch. The default writes each object with Put as it is added.
  virtual std::unique_ptr<WriteBatch> NewBatch();
  // Removes what crashed writers left behind (temporary files) older than older_than_ms
  // (epoch ms); returns how many. The default has nothing to clean.
  virtual Result<uint64_t> RemoveStaleTemporaries(int64_t /*older_than_ms*/) { return 0; }
  // How many reads a caller should keep in flight to use this store well (a remote store
  // hides its latency behind several; a local disk wants a little queue depth).
  virtual size_t ParallelReads() const { return 4; }
  // The largest ranged read worth making of neighbouring pack entries: a remote store pays per
  // request, so reads are large; a local one pays for a buffer the CPU cache no longer holds
  // by the time its entries are decoded, so reads stay small.
  virtual uint64_t CoalescedReadBytes() const { return 16 << 20; }
  // Human-readable location, e.g. "local:/srv/snapvol/store".
  virtual std::string Describe() const = 0;
};

bool IsValidObjectKey(const std::string& key);
// The range [offset, offset+length) of key's data; Corruption when data is too short.
Result<std::vector<uint8_t>> SliceRange(const std::string& key, std::span<const uint8_t> data,
                                        uint64_t offset, uint64_t length);

}  // namespace snapvol
