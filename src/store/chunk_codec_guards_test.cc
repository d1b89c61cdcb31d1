// The codec's kind byte: a chunk, an index page and a manifest root are never read as one
// another, even when the bytes are intact and the id would match (a page key holding a chunk
// would otherwise hand the block map a block's data as page entries).
#include <gtest/gtest.h>

#include "store/chunk_codec.h"

namespace snapvol {
namespace {

TEST(ChunkCodecGuards, AnObjectIsReadOnlyAsTheKindItWasWrittenAs) {
  ChunkCodec codec(std::nullopt);
  std::string text = "2026-11-26T02:00:00Z snapvold[42]: a block of text that compresses\n";
  while (text.size() < 8192) text += text;
  std::vector<uint8_t> plain(text.begin(), text.end());
  const Digest id = codec.Id(plain);
  for (ObjectKind written : {ObjectKind::kChunk, ObjectKind::kIndexPage, ObjectKind::kManifestRoot}) {
    auto enc = codec.Encode(written, id, plain);
    ASSERT_TRUE(enc);
    for (ObjectKind read : {ObjectKind::kChunk, ObjectKind::kIndexPage, ObjectKind::kManifestRoot}) {
      auto dec = codec.Decode(read, id, *enc, /*verify_id=*/true);
      auto checked = ChunkCodec::CheckIntegrity(*enc, read);
      if (read == written) {
        ASSERT_TRUE(dec) << dec.error().ToString();
        EXPECT_EQ(*dec, plain);
        EXPECT_TRUE(checked);
        continue;
      }
      ASSERT_FALSE(dec) << "kind " << int(written) << " read as kind " << int(read);
      EXPECT_EQ(dec.error().code(), ErrorCode::kCorruption);
      ASSERT_FALSE(checked) << "kind " << int(written) << " checked as kind " << int(read);
      EXPECT_EQ(checked.error().code(), ErrorCode::kCorruption);
    }
  }
}

}  // namespace
}  // namespace snapvol
