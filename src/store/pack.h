// Format 2's pack objects (docs/store-format.md, "Pack layout"): encoded chunks, or encoded
// index pages, back to back, then the pack's own index (an object of kind kPackIndex bound
// to the pack id) and an 8-byte trailer: the index object's length (u32) and "SVPK". Every
// entry is a whole encoded object, readable and checkable alone by a ranged read, so the pack
// index only says where each one is; damage to one entry costs that entry alone.
//
// Pack index plaintext: count u32, then per entry id[32], kind u8, 3 bytes 0, offset u32,
// length u32 (kPackIndexEntryBytes each), in offset order, without gaps or overlaps.
// Thread-safety: a PackBuilder is used by one thread; the parse functions are pure.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "store/chunk_codec.h"

namespace snapvol {

inline constexpr size_t kPackIndexEntryBytes = 44;
inline constexpr size_t kPackTrailerBytes = 8;
inline constexpr char kPackMagic[] = "SVPK";
// A pack is addressed with u32 offsets.
inline constexpr uint64_t kMaxPackBytes = 0xFFFFFFFFull;

struct PackEntry {
  Digest id{};
  ObjectKind kind = ObjectKind::kChunk;
  uint32_t offset = 0, length = 0;
  bool operator==(const PackEntry&) const = default;
};

// Where the objects of a pack go, and the index and trailer that end it, without the objects'
// bytes: a job that writes each object in place (ObjectWriter) keeps only this.
class PackLayout {
 public:
  // A pack of objects of one kind (kChunk or kIndexPage), its index bound to pack_id.
  PackLayout(const ChunkCodec* codec, const Digest& pack_id, ObjectKind kind);
  // Places an encoded object (as ChunkCodec::Encode made it, of the pack's kind) under id after
  // those placed so far; returns its offset. InvalidArgument for another kind, a malformed
  // object, or a pack that would outgrow u32 offsets.
  Result<uint32_t> Place(const Digest& id, std::span<const uint8_t> encoded);
  uint64_t size() const { return size_; }  // the objects so far, without the index
  size_t count() const { return entries_.size(); }
  const std::vector<PackEntry>& entries() const { return entries_; }
  // What follows the objects: the encoded index and the trailer.
  Result<std::vector<uint8_t>> Tail() const;

 private:
  const ChunkCodec* codec_;
  Digest pack_id_;
  ObjectKind kind_;
  uint64_t size_ = 0;
  std::vector<PackEntry> entries_;
};

// A pack built in memory.
class PackBuilder {
 public:
  // storage: a buffer to build in (its bytes are dropped, its capacity kept).
  PackBuilder(const ChunkCodec* codec, const Digest& pack_id, ObjectKind kind, std::vector<uint8_t> storage = {});
  // Appends an encoded object under id (PackLayout::Place's checks).
  Status Add(const Digest& id, std::span<const uint8_t> encoded);
  uint64_t size() const { return layout_.size(); }
  size_t count() const { return layout_.count(); }
  const std::vector<PackEntry>& entries() const { return layout_.entries(); }
  // The whole pack: the objects, the encoded index and the trailer. The builder is spent.
  Result<std::vector<uint8_t>> Finish();

 private:
  PackLayout layout_;
  std::vector<uint8_t> bytes_;
  bool finished_ = false;
};

// Entries as the pack index and the store-wide index write them: kPackIndexEntryBytes each.
void AppendPackEntries(const std::vector<PackEntry>& entries, std::vector<uint8_t>* out);
// count entries from p (which holds at least count * kPackIndexEntryBytes bytes); Corruption
// for a kind other than chunk or index page, or nonzero padding.
Result<std::vector<PackEntry>> ReadPackEntries(const uint8_t* p, uint32_t count);

// From a pack's last kPackTrailerBytes: the length of its index object. Corruption when the
// trailer is malformed or names more bytes than the pack (pack_size) can hold.
Result<uint32_t> PackIndexLength(std::span<const uint8_t> trailer, uint64_t pack_size);

// Decodes and checks a pack's index object (the index_length bytes before the trailer):
// checksum, key and binding to pack_id, then every entry: of the pack's one kind, in order,
// back to back from offset 0 up to the index. Corruption on any mismatch.
Result<std::vector<PackEntry>> ParsePackIndex(const ChunkCodec& codec, const Digest& pack_id,
                                              std::span<const uint8_t> index_object, uint64_t pack_size);

}  // namespace snapvol
