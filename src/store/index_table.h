// IndexTable: the compact form of format 2's store-wide index (docs/store-format.md, "The
// index in memory and its cache file"). Per kind (chunks, index pages) a sorted array of
// fixed 44-byte records (the full 32-byte id, never a truncated one: a false match would
// dedup against the wrong chunk; pack ordinal, offset, length), found by binary search, plus
// a small hashed delta of the entries added since the last merge, merged into the array once
// it passes a 32nd of it. 45 to 47 bytes per entry where hash maps took over 100.
// The array lives in anonymous memory, or is a read-only view of a cache file this process
// loaded (only the pages a lookup touches are resident, and a fence of every 512th id in
// memory keeps those few); the first merge after a load copies it into anonymous memory. The cache file is checksummed and checked entry by entry before
// it is used: a damaged or foreign file is refused, never trusted.
// Thread-safety: none; PackedIndex guards its table.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "core/hash.h"
#include "core/status.h"
#include "store/pack.h"

namespace snapvol {

// Where the index puts an object: the pack by its ordinal in the table (IndexTable::PackId).
struct IndexLoc {
  uint32_t pack = 0, offset = 0, length = 0;
};
struct IndexRecord {
  Digest id;
  IndexLoc loc;
};
static_assert(sizeof(IndexRecord) == 44 && alignof(IndexRecord) == 4);

class FileMapping;

// Records sorted by id, in an anonymous mapping that grows in place (mremap) or in a view of
// a mapped cache file. Move-only.
class RecordArray {
 public:
  RecordArray() = default;
  ~RecordArray();
  RecordArray(RecordArray&& o) noexcept;
  RecordArray& operator=(RecordArray&& o) noexcept;
  RecordArray(const RecordArray&) = delete;
  RecordArray& operator=(const RecordArray&) = delete;

  size_t size() const { return size_; }
  std::span<const IndexRecord> records() const { return {data_, size_}; }
  const IndexRecord* Find(const Digest& id) const;
  // Merges records sorted by id, none of them already here. IoError when memory runs out.
  Status Merge(std::span<const IndexRecord> sorted);
  // Bulk building: appends records in any order, then sorts them all by id and keeps the
  // first copy of each id (lowest pack ordinal, then offset). Find is wrong in between.
  Status Append(std::span<const IndexRecord> recs);
  void SortKeepingFirst();
  // Refers to n records inside a mapped file, kept mapped while this refers to it. fence:
  // the id of every kFenceStride-th record, so that a lookup touches one run of 22 KiB of
  // the file (a fault maps the whole page-cache folio around it, 64 KiB as Load reads the
  // file) where a plain binary search touches a dozen of its 21 steps' pages.
  void View(std::shared_ptr<const FileMapping> file, const IndexRecord* first, size_t n, std::vector<Digest> fence);
  static constexpr size_t kFenceStride = 512;
  // Bytes this array holds mapped: its anonymous capacity, or the bytes of the view.
  uint64_t MappedBytes() const;

 private:
  void Release();
  // Room for n records in memory of our own (a view is copied out first).
  Status Grow(size_t n);
  IndexRecord* data_ = nullptr;
  size_t size_ = 0;
  size_t mapped_bytes_ = 0;  // anonymous mapping; 0 for a view
  std::shared_ptr<const FileMapping> file_;
  std::vector<Digest> fence_;  // a view's only
};

// The entries added since the last merge: records in arrival order and an open-addressed
// table of their positions (8 to 16 bytes a record at load 1/4 to 1/2), so a delta costs about
// 56 bytes an entry where a node-based hash map costs over 100. Move-only.
class DeltaTable {
 public:
  // Room for n records without growing.
  void Reserve(size_t n);
  // Adds the record unless its id is here; false if it was.
  bool Insert(const IndexRecord& r);
  const IndexRecord* Find(const Digest& id) const;
  size_t size() const { return recs_.size(); }
  bool empty() const { return recs_.empty(); }
  const std::vector<IndexRecord>& records() const { return recs_; }
  // The records, leaving this empty (and its memory freed).
  std::vector<IndexRecord> Take();
  uint64_t MemoryBytes() const { return recs_.capacity() * sizeof(IndexRecord) + slots_.capacity() * 4; }

 private:
  void Rehash(size_t slots);
  std::vector<IndexRecord> recs_;
  std::vector<uint32_t> slots_;  // 0 empty, else a position in recs_ plus 1
};

class IndexTable {
 public:
  IndexTable() = default;
  IndexTable(IndexTable&&) = default;
  IndexTable& operator=(IndexTable&&) = default;

  // Adds a pack's entries. An id already in the table keeps the location it has: the first
  // copy wins, so every process resolves an id to the same copy for the same index objects.
  Status AddPack(const Digest& pack, std::span<const PackEntry> entries);
  std::optional<IndexLoc> Find(ObjectKind kind, const Digest& id) const;
  const Digest& PackId(uint32_t ordinal) const { return packs_[ordinal]; }
  size_t size(ObjectKind kind) const;
  size_t pack_count() const { return packs_.size(); }
  // Every entry of one kind, the sorted array first, then the delta.
  void ForEach(ObjectKind kind, const std::function<void(const Digest&, const IndexLoc&)>& fn) const;
  // Merges the deltas into the sorted arrays.
  Status Compact();
  // A table built from nothing in one go (a rebuild): between BeginBulk (on an empty table)
  // and EndBulk, AddPack only appends, and Find does not see what it added; EndBulk sorts
  // once, the first copy winning as with AddPack. Far faster than merging delta after delta.
  void BeginBulk();
  Status EndBulk();
  // What the table holds in memory or mapped: the arrays' mapped bytes, an estimate of the
  // deltas, and the pack table.
  uint64_t MemoryBytes() const;

  // Writes the table to path atomically (temp file, fsync, rename), mode 0600, naming the
  // store and the packindex/ keys whose entries it holds. REQUIRES: compacted (Internal if not).
  Status Save(const std::string& path, const std::string& store_id, const std::set<std::string>& keys) const;
  struct Loaded;
  // Reads and checks a cache file Save wrote: Corruption for any damage (checksum, shape,
  // order, a pack ordinal out of range), Conflict when it names another store,
  // NotFound when there is none. The arrays are mapped from the file, not copied.
  static Result<Loaded> Load(const std::string& path, const std::string& store_id);

 private:
  static int Slot(ObjectKind kind) { return kind == ObjectKind::kChunk ? 0 : 1; }
  Status MergeDelta(int slot);

  // Ordinal → pack id. A pack named by two index objects (briefly, while a gc replaces them)
  // gets two ordinals: its entries resolve to one of them, the same pack either way.
  std::vector<Digest> packs_;
  RecordArray sorted_[2];
  DeltaTable delta_[2];
  bool bulk_ = false;
};

struct IndexTable::Loaded {
  IndexTable table;
  std::set<std::string> keys;  // the packindex/ keys it covers
};

// The delta is merged once it holds more than this share of the sorted array (or the
// minimum, so a small index is not merged on every add): at most ~2 bytes an entry more.
inline constexpr size_t kIndexDeltaDivisor = 32;
inline constexpr size_t kIndexDeltaMin = 4096;

}  // namespace snapvol
