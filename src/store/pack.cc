#include "store/pack.h"

#include <cstring>
#include <optional>
#include <string>

#include "core/bytes.h"

namespace snapvol {

PackLayout::PackLayout(const ChunkCodec* codec, const Digest& pack_id, ObjectKind kind)
    : codec_(codec), pack_id_(pack_id), kind_(kind) {}

Result<uint32_t> PackLayout::Place(const Digest& id, std::span<const uint8_t> encoded) {
  auto checked = ChunkCodec::CheckIntegrity(encoded, kind_);
  if (!checked) return InvalidArgument("pack: not an object of the pack's kind: " + checked.error().message());
  // The index and trailer must fit too; an index entry per object bounds them.
  uint64_t after = size_ + encoded.size() + (entries_.size() + 1) * kPackIndexEntryBytes +
                   kObjectHeaderBytes + kObjectChecksumBytes + 64 + kPackTrailerBytes;
  if (after > kMaxPackBytes) return InvalidArgument("pack: too large for 32-bit offsets");
  auto offset = static_cast<uint32_t>(size_);
  entries_.push_back({id, kind_, offset, static_cast<uint32_t>(encoded.size())});
  size_ += encoded.size();
  return offset;
}

Result<std::vector<uint8_t>> PackLayout::Tail() const {
  std::vector<uint8_t> plain(4);
  PutU32(plain.data(), static_cast<uint32_t>(entries_.size()));
  AppendPackEntries(entries_, &plain);
  ASSIGN_OR_RETURN(auto out, codec_->Encode(ObjectKind::kPackIndex, pack_id_, plain));
  const auto index_length = static_cast<uint32_t>(out.size());
  uint8_t trailer[kPackTrailerBytes];
  PutU32(trailer, index_length);
  std::memcpy(trailer + 4, kPackMagic, 4);
  out.insert(out.end(), trailer, trailer + kPackTrailerBytes);
  return out;
}

PackBuilder::PackBuilder(const ChunkCodec* codec, const Digest& pack_id, ObjectKind kind, std::vector<uint8_t> storage)
    : layout_(codec, pack_id, kind), bytes_(std::move(storage)) {
  bytes_.clear();
}

Status PackBuilder::Add(const Digest& id, std::span<const uint8_t> encoded) {
  if (finished_) return InvalidArgument("pack: Add after Finish");
  auto placed = layout_.Place(id, encoded);
  if (!placed) return std::unexpected(placed.error());
  bytes_.insert(bytes_.end(), encoded.begin(), encoded.end());
  return OkStatus();
}

Result<std::vector<uint8_t>> PackBuilder::Finish() {
  if (finished_) return InvalidArgument("pack: Finish twice");
  finished_ = true;
  ASSIGN_OR_RETURN(auto tail, layout_.Tail());
  std::vector<uint8_t> out = std::move(bytes_);
  out.insert(out.end(), tail.begin(), tail.end());
  return out;
}

void AppendPackEntries(const std::vector<PackEntry>& entries, std::vector<uint8_t>* out) {
  size_t at = out->size();
  out->resize(at + entries.size() * kPackIndexEntryBytes);
  uint8_t* p = out->data() + at;
  for (const auto& e : entries) {
    std::memcpy(p, e.id.data(), 32);
    p[32] = static_cast<uint8_t>(e.kind);
    p[33] = p[34] = p[35] = 0;
    PutU32(p + 36, e.offset);
    PutU32(p + 40, e.length);
    p += kPackIndexEntryBytes;
  }
}

Result<std::vector<PackEntry>> ReadPackEntries(const uint8_t* p, uint32_t count) {
  std::vector<PackEntry> out(count);
  for (uint32_t i = 0; i < count; ++i, p += kPackIndexEntryBytes) {
    PackEntry& e = out[i];
    std::memcpy(e.id.data(), p, 32);
    if (p[32] != static_cast<uint8_t>(ObjectKind::kChunk) && p[32] != static_cast<uint8_t>(ObjectKind::kIndexPage))
      return Corruption("pack index entry " + std::to_string(i) + " has kind " + std::to_string(p[32]));
    e.kind = static_cast<ObjectKind>(p[32]);
    if (p[33] || p[34] || p[35]) return Corruption("pack index entry " + std::to_string(i) + " has nonzero padding");
    e.offset = GetU32(p + 36);
    e.length = GetU32(p + 40);
  }
  return out;
}

Result<uint32_t> PackIndexLength(std::span<const uint8_t> trailer, uint64_t pack_size) {
  if (trailer.size() != kPackTrailerBytes || pack_size < kPackTrailerBytes)
    return Corruption("pack is truncated: no trailer");
  if (std::memcmp(trailer.data() + 4, kPackMagic, 4) != 0) return Corruption("pack trailer has a bad magic number");
  uint32_t n = GetU32(trailer.data());
  if (n < kObjectHeaderBytes + kObjectChecksumBytes || n > pack_size - kPackTrailerBytes)
    return Corruption("pack trailer names an index of " + std::to_string(n) + " bytes in a pack of " +
                      std::to_string(pack_size));
  return n;
}

Result<std::vector<PackEntry>> ParsePackIndex(const ChunkCodec& codec, const Digest& pack_id,
                                              std::span<const uint8_t> index_object, uint64_t pack_size) {
  if (pack_size < index_object.size() + kPackTrailerBytes) return Corruption("pack index is larger than its pack");
  const uint64_t data_end = pack_size - kPackTrailerBytes - index_object.size();
  auto plain = codec.Decode(ObjectKind::kPackIndex, pack_id, index_object, /*verify_id=*/false);
  if (!plain) return std::unexpected(plain.error().WithContext("pack index"));
  if (plain->size() < 4) return Corruption("pack index is truncated");
  uint32_t count = GetU32(plain->data());
  if (plain->size() != 4 + uint64_t{count} * kPackIndexEntryBytes) return Corruption("pack index has a bad entry count");
  ASSIGN_OR_RETURN(std::vector<PackEntry> out, ReadPackEntries(plain->data() + 4, count));
  uint64_t expect_offset = 0;
  for (uint32_t i = 0; i < count; ++i) {
    const PackEntry& e = out[i];
    if (e.kind != out[0].kind) return Corruption("pack index mixes kinds");
    if (e.offset != expect_offset) return Corruption("pack index entry " + std::to_string(i) + " is not where the last one ended");
    if (e.length < kObjectHeaderBytes + kObjectChecksumBytes)
      return Corruption("pack index entry " + std::to_string(i) + " is shorter than an object");
    expect_offset += e.length;
    if (expect_offset > data_end) return Corruption("pack index entry " + std::to_string(i) + " runs past the pack's data");
  }
  if (expect_offset != data_end) return Corruption("pack has bytes no index entry covers");
  return out;
}

}  // namespace snapvol
