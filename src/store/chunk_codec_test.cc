#include "store/chunk_codec.h"

#include <gtest/gtest.h>

#include <random>

namespace snapvol {
namespace {

std::vector<uint8_t> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

std::vector<uint8_t> Text(size_t n) {
  std::string s;
  while (s.size() < n) s += "2026-11-26T02:00:00Z snapvold[42]: snapshot completed ok\n";
  s.resize(n);
  return {s.begin(), s.end()};
}

Key256 KeyOf(uint8_t b) {
  Key256 k;
  k.fill(b);
  return k;
}

TEST(ChunkCodec, RoundTripCompressibleAndRandom) {
  ChunkCodec codec(std::nullopt);
  for (auto plain : {Text(512 * 1024), Random(512 * 1024, 1), Random(1, 2), Text(100)}) {
    Digest id = codec.Id(plain);
    EXPECT_EQ(id, Sha256(plain));
    auto enc = codec.Encode(ObjectKind::kChunk, id, plain);
    ASSERT_TRUE(enc);
    auto dec = codec.Decode(ObjectKind::kChunk, id, *enc, true);
    ASSERT_TRUE(dec) << dec.error().ToString();
    EXPECT_EQ(*dec, plain);
  }
}

TEST(ChunkCodec, CompressesTextKeepsRandomRaw) {
  ChunkCodec codec(std::nullopt);
  auto text = Text(512 * 1024);
  auto rnd = Random(512 * 1024, 3);
  auto t = *codec.Encode(ObjectKind::kChunk, codec.Id(text), text);
  auto r = *codec.Encode(ObjectKind::kChunk, codec.Id(rnd), rnd);
  EXPECT_LT(t.size(), text.size() / 10);
  EXPECT_EQ(r.size(), rnd.size() + kObjectHeaderBytes + kObjectChecksumBytes);
  EXPECT_EQ(r[6] & 1, 0);  // not marked zstd
}

TEST(ChunkCodec, EveryFlippedByteIsDetected) {
  ChunkCodec codec(std::nullopt);
  auto plain = Text(4096);
  Digest id = codec.Id(plain);
  auto enc = *codec.Encode(ObjectKind::kChunk, id, plain);
  for (size_t i = 0; i < enc.size(); ++i) {
    auto bad = enc;
    bad[i] ^= 0x10;
    EXPECT_FALSE(ChunkCodec::CheckIntegrity(bad)) << "byte " << i;
    EXPECT_FALSE(codec.Decode(ObjectKind::kChunk, id, bad, true)) << "byte " << i;
  }
  enc.pop_back();
  EXPECT_EQ(ChunkCodec::CheckIntegrity(enc).error().code(), ErrorCode::kCorruption);
}

TEST(ChunkCodec, WrongIdIsCorruption) {
  ChunkCodec codec(std::nullopt);
  auto plain = Text(1000);
  auto enc = *codec.Encode(ObjectKind::kChunk, codec.Id(plain), plain);
  Digest other = Sha256(AsBytes("other"));
  auto dec = codec.Decode(ObjectKind::kChunk, other, enc, true);
  ASSERT_FALSE(dec);
  EXPECT_EQ(dec.error().code(), ErrorCode::kCorruption);
}

TEST(ChunkCodec, NewerVersionIsUnsupported) {
  ChunkCodec codec(std::nullopt);
  auto plain = Text(1000);
  auto enc = *codec.Encode(ObjectKind::kChunk, codec.Id(plain), plain);
  enc[4] = kObjectFormatVersion + 1;
  auto st = ChunkCodec::CheckIntegrity(enc);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kUnsupported);
}

TEST(ChunkCodec, EncryptedRoundTripAndKeyedIds) {
  auto k1 = *KeySet::Derive(KeyOf(1));
  auto k2 = *KeySet::Derive(KeyOf(2));
  ChunkCodec c1(k1), c2(k2), plain_codec(std::nullopt);
  auto plain = Text(512 * 1024);
  Digest id1 = c1.Id(plain);
  EXPECT_NE(id1, c2.Id(plain));
  EXPECT_NE(id1, plain_codec.Id(plain));
  auto enc = *c1.Encode(ObjectKind::kChunk, id1, plain);
  // The plaintext does not appear in the stored bytes.
  std::string stored(enc.begin(), enc.end());
  EXPECT_EQ(stored.find("snapshot completed"), std::string::npos);
  EXPECT_TRUE(ChunkCodec::CheckIntegrity(enc));  // checksum check needs no key
  EXPECT_EQ(*c1.Decode(ObjectKind::kChunk, id1, enc, true), plain);
  auto wrong = c2.Decode(ObjectKind::kChunk, id1, enc, true);
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code(), ErrorCode::kCorruption);
  auto nokey = plain_codec.Decode(ObjectKind::kChunk, id1, enc, true);
  ASSERT_FALSE(nokey);
  EXPECT_EQ(nokey.error().code(), ErrorCode::kUnsupported);
}

}  // namespace
}  // namespace snapvol
