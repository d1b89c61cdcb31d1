// Format 2's pack layout (store/pack.h): what a builder writes a reader finds again, each
// entry readable alone by its range, and every malformed pack (truncated, wrong trailer,
// damaged or swapped index, entries that overlap, leave gaps or run past the data) refused as
// corruption rather than read wrong.
#include "store/pack.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>

#include "core/bytes.h"

namespace snapvol {
namespace {

std::vector<uint8_t> Block(uint8_t seed, size_t n = 4096) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed * 31 + i * 7 + (i >> 5));
  return v;
}

Digest PackId(uint8_t b) {
  Digest d{};
  d.fill(b);
  return d;
}

struct Built {
  std::vector<uint8_t> pack;
  std::vector<PackEntry> entries;
  std::vector<std::vector<uint8_t>> plains;
};

Built Build(const ChunkCodec& codec, const Digest& pack_id, int objects) {
  Built b;
  PackBuilder builder(&codec, pack_id, ObjectKind::kChunk);
  for (int i = 0; i < objects; ++i) {
    auto plain = Block(static_cast<uint8_t>(i), 4096 + 1000 * i);
    Digest id = codec.Id(plain);
    auto enc = codec.Encode(ObjectKind::kChunk, id, plain);
    EXPECT_TRUE(enc);
    EXPECT_TRUE(builder.Add(id, *enc));
    b.plains.push_back(std::move(plain));
  }
  b.entries = builder.entries();
  auto pack = builder.Finish();
  EXPECT_TRUE(pack) << pack.error().ToString();
  b.pack = std::move(*pack);
  return b;
}

// Reads the pack's index from its tail, as a reader with only the pack's size and a ranged
// read would.
Result<std::vector<PackEntry>> ReadIndex(const ChunkCodec& codec, const Digest& pack_id,
                                         const std::vector<uint8_t>& pack) {
  std::span<const uint8_t> all(pack);
  auto trailer = pack.size() >= kPackTrailerBytes ? all.last(kPackTrailerBytes) : all;
  ASSIGN_OR_RETURN(uint32_t n, PackIndexLength(trailer, pack.size()));
  return ParsePackIndex(codec, pack_id, all.subspan(pack.size() - kPackTrailerBytes - n, n), pack.size());
}

TEST(Pack, EntriesReadBackByRangeAndMatchWhatWasAdded) {
  ChunkCodec codec(std::nullopt);
  const Digest pid = PackId(7);
  Built b = Build(codec, pid, 5);
  auto entries = ReadIndex(codec, pid, b.pack);
  ASSERT_TRUE(entries) << entries.error().ToString();
  ASSERT_EQ(*entries, b.entries);
  for (size_t i = 0; i < entries->size(); ++i) {
    const PackEntry& e = (*entries)[i];
    EXPECT_EQ(e.id, codec.Id(b.plains[i]));
    auto plain = codec.Decode(ObjectKind::kChunk, e.id, std::span(b.pack).subspan(e.offset, e.length), true);
    ASSERT_TRUE(plain) << plain.error().ToString();
    EXPECT_EQ(*plain, b.plains[i]);
  }
}

TEST(Pack, AnEmptyPackHasAnEmptyIndex) {
  ChunkCodec codec(std::nullopt);
  PackBuilder builder(&codec, PackId(1), ObjectKind::kChunk);
  auto pack = builder.Finish();
  ASSERT_TRUE(pack);
  auto entries = ReadIndex(codec, PackId(1), *pack);
  ASSERT_TRUE(entries) << entries.error().ToString();
  EXPECT_TRUE(entries->empty());
  EXPECT_FALSE(builder.Finish()) << "a builder is spent after Finish";
}

TEST(Pack, TheBuilderRefusesObjectsOfAnotherKindOrMalformed) {
  ChunkCodec codec(std::nullopt);
  PackBuilder builder(&codec, PackId(2), ObjectKind::kChunk);
  auto plain = Block(3);
  auto page = codec.Encode(ObjectKind::kIndexPage, codec.Id(plain), plain);
  ASSERT_TRUE(page);
  EXPECT_EQ(builder.Add(codec.Id(plain), *page).error().code(), ErrorCode::kInvalidArgument);
  std::vector<uint8_t> junk(40, 0xAB);
  EXPECT_EQ(builder.Add(codec.Id(plain), junk).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(builder.count(), 0u);
}

TEST(Pack, TruncatedPacksAndBadTrailersAreCorruption) {
  ChunkCodec codec(std::nullopt);
  const Digest pid = PackId(9);
  Built b = Build(codec, pid, 3);
  for (size_t cut : {size_t{1}, size_t{4}, size_t{8}, size_t{100}, b.pack.size() - 3}) {
    std::vector<uint8_t> t(b.pack.begin(), b.pack.end() - static_cast<long>(cut));
    auto r = ReadIndex(codec, pid, t);
    ASSERT_FALSE(r) << "cut " << cut;
    EXPECT_EQ(r.error().code(), ErrorCode::kCorruption) << "cut " << cut;
  }
  std::vector<uint8_t> magic = b.pack;
  magic[magic.size() - 1] ^= 1;
  EXPECT_EQ(ReadIndex(codec, pid, magic).error().code(), ErrorCode::kCorruption);
  std::vector<uint8_t> huge = b.pack;
  PutU32(huge.data() + huge.size() - kPackTrailerBytes, static_cast<uint32_t>(huge.size()));
  EXPECT_EQ(ReadIndex(codec, pid, huge).error().code(), ErrorCode::kCorruption);
}

TEST(Pack, ADamagedIndexByteIsCorruption) {
  ChunkCodec codec(std::nullopt);
  const Digest pid = PackId(4);
  Built b = Build(codec, pid, 3);
  uint32_t n = GetU32(b.pack.data() + b.pack.size() - kPackTrailerBytes);
  const size_t index_at = b.pack.size() - kPackTrailerBytes - n;
  for (size_t at : {index_at, index_at + 20, index_at + n / 2, index_at + n - 1}) {
    std::vector<uint8_t> bad = b.pack;
    bad[at] ^= 0x40;
    auto r = ReadIndex(codec, pid, bad);
    ASSERT_FALSE(r) << "byte " << at;
    EXPECT_EQ(r.error().code(), ErrorCode::kCorruption);
  }
}

TEST(Pack, AnEncryptedPacksIndexIsBoundToItsPackId) {
  Key256 master{};
  master.fill(0x5A);
  auto keys = KeySet::Derive(master);
  ASSERT_TRUE(keys);
  ChunkCodec codec(*keys);
  Built b = Build(codec, PackId(1), 2);
  ASSERT_TRUE(ReadIndex(codec, PackId(1), b.pack));
  auto swapped = ReadIndex(codec, PackId(2), b.pack);  // the same bytes under another pack's name
  ASSERT_FALSE(swapped);
  EXPECT_EQ(swapped.error().code(), ErrorCode::kCorruption);
}

// Index contents that decode cleanly but do not describe the pack: rewritten with the codec so
// only the entry rule under test is broken.
std::vector<uint8_t> WithIndex(const ChunkCodec& codec, const Digest& pid, const Built& b,
                               const std::function<void(std::vector<uint8_t>&)>& edit) {
  uint32_t n = GetU32(b.pack.data() + b.pack.size() - kPackTrailerBytes);
  const size_t data_end = b.pack.size() - kPackTrailerBytes - n;
  auto plain = codec.Decode(ObjectKind::kPackIndex, pid, std::span(b.pack).subspan(data_end, n), false);
  EXPECT_TRUE(plain);
  edit(*plain);
  auto index = codec.Encode(ObjectKind::kPackIndex, pid, *plain);
  EXPECT_TRUE(index);
  std::vector<uint8_t> out(b.pack.begin(), b.pack.begin() + static_cast<long>(data_end));
  out.insert(out.end(), index->begin(), index->end());
  uint8_t trailer[kPackTrailerBytes];
  PutU32(trailer, static_cast<uint32_t>(index->size()));
  std::memcpy(trailer + 4, kPackMagic, 4);
  out.insert(out.end(), trailer, trailer + kPackTrailerBytes);
  return out;
}

TEST(Pack, EntriesThatOverlapLeaveGapsOrRunPastTheDataAreCorruption) {
  ChunkCodec codec(std::nullopt);
  const Digest pid = PackId(3);
  Built b = Build(codec, pid, 3);
  auto entry = [](std::vector<uint8_t>& p, int i) { return p.data() + 4 + i * kPackIndexEntryBytes; };
  const std::vector<std::pair<const char*, std::function<void(std::vector<uint8_t>&)>>> cases = {
      {"overlap", [&](auto& p) { PutU32(entry(p, 1) + 36, GetU32(entry(p, 1) + 36) - 1); }},
      {"gap", [&](auto& p) { PutU32(entry(p, 2) + 36, GetU32(entry(p, 2) + 36) + 1); }},
      {"past the data", [&](auto& p) { PutU32(entry(p, 2) + 40, GetU32(entry(p, 2) + 40) + 1); }},
      {"uncovered tail", [&](auto& p) { PutU32(entry(p, 2) + 40, GetU32(entry(p, 2) + 40) - 1); }},
      {"kind", [&](auto& p) { entry(p, 1)[32] = static_cast<uint8_t>(ObjectKind::kIndexPage); }},
      {"unknown kind", [&](auto& p) { entry(p, 0)[32] = 9; }},
      {"padding", [&](auto& p) { entry(p, 0)[34] = 1; }},
      {"count", [&](auto& p) { PutU32(p.data(), 4); }},
      {"dropped entry", [&](auto& p) { p.resize(p.size() - kPackIndexEntryBytes); PutU32(p.data(), 2); }},
  };
  for (const auto& [name, edit] : cases) {
    auto r = ReadIndex(codec, pid, WithIndex(codec, pid, b, edit));
    ASSERT_FALSE(r) << name;
    EXPECT_EQ(r.error().code(), ErrorCode::kCorruption) << name << ": " << r.error().ToString();
  }
  // The same rewrite without an edit reads back: the cases fail for their edit alone.
  EXPECT_TRUE(ReadIndex(codec, pid, WithIndex(codec, pid, b, [](auto&) {})));
}

}  // namespace
}  // namespace snapvol
