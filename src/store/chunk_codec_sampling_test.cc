// The codec skips zstd on chunks that samples show to be incompressible (chunk_codec.cc,
// WorthCompressing). These tests build the blocks that sampling could get wrong and check
// that every one on which zstd pays is still compressed, on a plain and an encrypted store,
// and that each object decodes byte-identical. zstd itself, called here directly, says
// whether a block pays, so a test cannot pass on a block that would have been raw anyway.
#include <gtest/gtest.h>
#include <zstd.h>

#include <random>

#include "store/chunk_codec.h"

namespace snapvol {
namespace {

constexpr size_t kBlock = 512 * 1024;
constexpr uint8_t kFlagZstd = 1, kFlagAesGcm = 2;

std::vector<uint8_t> Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

// Log lines: low byte entropy and many repeats.
void FillText(uint8_t* p, size_t n) {
  static const std::string kLine =
      "2026-11-26T02:00:00Z snapvold[42]: snapshot snap-0123456789abcdef0 completed ok\n";
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(kLine[i % kLine.size()]);
}

// Random bytes from a 16-letter alphabet: nothing repeats, but 4 bits of entropy per byte,
// so only entropy coding (not matching) makes it smaller.
void FillNibbles(uint8_t* p, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>('a' + rng() % 16);
}

// Whether zstd -1 on the whole block saves the 1/32 that makes the codec keep its output.
bool ZstdPays(std::span<const uint8_t> plain) {
  static ZSTD_CCtx* const cctx = ZSTD_createCCtx();  // reused: the loops below call this often
  std::vector<uint8_t> out(ZSTD_compressBound(plain.size()));
  size_t n = ZSTD_compressCCtx(cctx, out.data(), out.size(), plain.data(), plain.size(), 1);
  return !ZSTD_isError(n) && n < plain.size() - plain.size() / 32;
}

std::vector<ChunkCodec> Codecs() {
  Key256 k;
  k.fill(9);
  std::vector<ChunkCodec> v;
  v.emplace_back(std::nullopt);
  v.emplace_back(*KeySet::Derive(k));
  return v;
}

// Encodes plain, checks the encryption flag and a byte-identical decode; returns the flags.
uint8_t EncodeFlags(const ChunkCodec& codec, std::span<const uint8_t> plain,
                    ObjectKind kind = ObjectKind::kChunk) {
  Digest id = codec.Id(plain);
  auto enc = codec.Encode(kind, id, plain);
  EXPECT_TRUE(enc);
  if (!enc) return 0;
  uint8_t flags = (*enc)[6];
  EXPECT_EQ((flags & kFlagAesGcm) != 0, codec.encrypted());
  auto dec = codec.Decode(kind, id, *enc, /*verify_id=*/true);
  EXPECT_TRUE(dec) << dec.error().ToString();
  if (dec) EXPECT_TRUE(*dec == std::vector<uint8_t>(plain.begin(), plain.end()));
  return flags;
}

TEST(ChunkCodecSampling, RandomBlockIsStoredRawAndDecodes) {
  for (const auto& codec : Codecs()) {
    auto rnd = Random(kBlock, 1);
    ASSERT_FALSE(ZstdPays(rnd));
    auto enc = *codec.Encode(ObjectKind::kChunk, codec.Id(rnd), rnd);
    EXPECT_EQ(enc[6] & kFlagZstd, 0);
    size_t payload = rnd.size() + (codec.encrypted() ? kGcmNonceBytes + kGcmTagBytes : 0);
    EXPECT_EQ(enc.size(), kObjectHeaderBytes + payload + kObjectChecksumBytes);
    EXPECT_EQ(EncodeFlags(codec, rnd) & kFlagZstd, 0);
  }
}

TEST(ChunkCodecSampling, TextAndZerosAreCompressed) {
  for (const auto& codec : Codecs()) {
    std::vector<uint8_t> text(kBlock), nib(kBlock), zeros(kBlock, 0);
    FillText(text.data(), text.size());
    FillNibbles(nib.data(), nib.size(), 2);
    for (const auto& b : {text, nib, zeros}) {
      ASSERT_TRUE(ZstdPays(b));
      EXPECT_NE(EncodeFlags(codec, b) & kFlagZstd, 0);
    }
  }
}

TEST(ChunkCodecSampling, HalfRandomHalfCompressibleIsCompressed) {
  for (const auto& codec : Codecs()) {
    for (int kind = 0; kind < 3; ++kind) {
      for (bool random_first : {true, false}) {
        auto b = Random(kBlock, 3);
        uint8_t* half = b.data() + (random_first ? kBlock / 2 : 0);
        if (kind == 0) std::fill(half, half + kBlock / 2, 0);
        if (kind == 1) FillText(half, kBlock / 2);
        if (kind == 2) FillNibbles(half, kBlock / 2, 4);
        ASSERT_TRUE(ZstdPays(b));
        EXPECT_NE(EncodeFlags(codec, b) & kFlagZstd, 0)
            << "kind " << kind << (random_first ? ", random first" : ", random second");
      }
    }
  }
}

// The worst case for sampling: one compressible stretch in a random block. The codec
// promises that a stretch longer than 37 KiB is seen wherever it lies; the odd step makes
// the stretch start at many different places relative to the samples.
TEST(ChunkCodecSampling, A37KiBStretchIsFoundAnywhereInTheBlock) {
  constexpr size_t kStretch = 37 * 1024;
  const auto base = Random(kBlock, 5);
  for (const auto& codec : Codecs()) {
    for (bool zeros : {true, false}) {
      int missed = 0;
      for (size_t at = 0; at + kStretch <= kBlock; at += 1999) {
        auto b = base;
        if (zeros)
          std::fill(b.begin() + at, b.begin() + at + kStretch, 0);
        else
          FillText(b.data() + at, kStretch);
        ASSERT_TRUE(ZstdPays(b)) << (zeros ? "zeros" : "text") << " at " << at;
        if ((EncodeFlags(codec, b) & kFlagZstd) == 0) {
          ADD_FAILURE() << (zeros ? "zeros" : "text") << " stretch at " << at << " stored raw";
          if (++missed > 5) break;
        }
      }
    }
  }
}

// Random letters or hex digits: no repeats for zstd to match, only a skewed byte
// distribution. zstd pays on such a stretch only when it is long (64-96 KiB, and only
// where it fills most of one of zstd's 128 KiB blocks); it then covers few samples, and
// those samples, concatenated with random ones, do not shrink. Each sample's own byte
// entropy is what gives it away.
TEST(ChunkCodecSampling, LowEntropyStretchWithoutRepeatsIsFound) {
  const auto base = Random(kBlock, 11);
  for (const auto& codec : Codecs()) {
    int paying = 0, missed = 0;
    for (int alphabet : {16, 26}) {
      for (size_t len : {64 * 1024, 80 * 1024, 96 * 1024}) {
        for (size_t at = 0; at + len <= kBlock; at += 4093) {
          auto b = base;
          std::mt19937 rng(static_cast<uint32_t>(at + len));
          for (size_t i = 0; i < len; ++i) b[at + i] = static_cast<uint8_t>('a' + rng() % alphabet);
          if (!ZstdPays(b)) continue;
          ++paying;
          if ((EncodeFlags(codec, b) & kFlagZstd) == 0 && ++missed <= 5)
            ADD_FAILURE() << alphabet << " letters, " << len << " bytes at " << at << " stored raw";
        }
      }
    }
    EXPECT_GT(paying, 200);  // the loop did test something
  }
}

// Bytes that look random one at a time but repeat: a random page (or a random run of an odd
// length) written over and over. No sample has a low byte entropy; the samples together
// shrink under zstd.
TEST(ChunkCodecSampling, RepeatedRandomPatternsAreCompressed) {
  for (const auto& codec : Codecs()) {
    for (size_t period : {size_t{1000}, size_t{4096}, size_t{24 * 1024}}) {
      auto pattern = Random(period, 6);
      std::vector<uint8_t> b(kBlock);
      for (size_t i = 0; i < kBlock; ++i) b[i] = pattern[i % period];
      ASSERT_TRUE(ZstdPays(b));
      EXPECT_NE(EncodeFlags(codec, b) & kFlagZstd, 0) << "period " << period;
    }
  }
}

// Disk data often has a power-of-two layout: here every 4 KiB page holds 512 zero bytes at
// the same place, for each of the 8 places. Samples taken at one fixed phase would miss
// all but one or two of them.
TEST(ChunkCodecSampling, ZerosAtAFixedPlaceInEveryPageAreFound) {
  for (const auto& codec : Codecs()) {
    for (size_t phase = 0; phase < 8; ++phase) {
      auto b = Random(kBlock, 7);
      for (size_t page = 0; page < kBlock; page += 4096)
        std::fill_n(b.begin() + page + phase * 512, 512, 0);
      ASSERT_TRUE(ZstdPays(b));
      EXPECT_NE(EncodeFlags(codec, b) & kFlagZstd, 0) << "phase " << phase;
    }
  }
}

// Index pages, pack indexes and roots are always run through zstd; chunks under 64 KiB too.
// The stretch below lies between the first two samples: a chunk like it is stored raw (the
// documented cost of sampling), the same bytes as an index page are compressed.
TEST(ChunkCodecSampling, OtherKindsAndSmallChunksAreAlwaysTried) {
  for (const auto& codec : Codecs()) {
    auto b = Random(kBlock, 8);
    std::fill(b.begin() + 18 * 1024, b.begin() + 42 * 1024, 0);
    ASSERT_TRUE(ZstdPays(b));
    EXPECT_EQ(EncodeFlags(codec, b) & kFlagZstd, 0);
    for (ObjectKind kind :
         {ObjectKind::kIndexPage, ObjectKind::kManifestRoot, ObjectKind::kPackIndex})
      EXPECT_NE(EncodeFlags(codec, b, kind) & kFlagZstd, 0) << "kind " << int(kind);

    auto small = Random(60 * 1024, 9);
    std::fill(small.begin() + 40 * 1024, small.end(), 0);
    ASSERT_TRUE(ZstdPays(small));
    EXPECT_NE(EncodeFlags(codec, small) & kFlagZstd, 0);
    auto small_random = Random(60 * 1024, 10);
    EXPECT_EQ(EncodeFlags(codec, small_random) & kFlagZstd, 0);
  }
}

}  // namespace
}  // namespace snapvol
