// The EBS direct APIs' tokens (api/ebs_tokens.h): a BlockToken opens its own block of its own
// snapshot until its expiry and nothing else; a NextToken belongs to one listing.
#include "api/ebs_tokens.h"

#include <gtest/gtest.h>

namespace snapvol::api {
namespace {

constexpr int64_t kNow = 1'700'000'000'000;

Key256 KeyOf(uint8_t b) {
  Key256 k{};
  k.fill(b);
  return k;
}

TEST(EbsTokensTest, BlockTokenBindsSnapshotBlockAndExpiry) {
  EbsTokenCodec codec(KeyOf(1));
  const std::string t = codec.Block("snap-0123456789abcdef0", 7, kNow + 1000);
  EXPECT_TRUE(codec.CheckBlock(t, "snap-0123456789abcdef0", 7, kNow));
  EXPECT_TRUE(codec.CheckBlock(t, "snap-0123456789abcdef0", 7, kNow + 999));
  EXPECT_FALSE(codec.CheckBlock(t, "snap-0123456789abcdef0", 7, kNow + 1000));  // expired
  EXPECT_FALSE(codec.CheckBlock(t, "snap-0123456789abcdef0", 8, kNow));
  EXPECT_FALSE(codec.CheckBlock(t, "snap-0123456789abcdef1", 7, kNow));
  EXPECT_FALSE(EbsTokenCodec(KeyOf(2)).CheckBlock(t, "snap-0123456789abcdef0", 7, kNow));  // another daemon's
  // A later expiry written into the token does not verify.
  const std::string later = codec.Block("snap-0123456789abcdef0", 7, kNow + 999999);
  std::string forged = later.substr(0, 12) + t.substr(12);
  EXPECT_FALSE(codec.CheckBlock(forged, "snap-0123456789abcdef0", 7, kNow + 2000));
  EXPECT_FALSE(codec.CheckBlock("", "snap-0123456789abcdef0", 7, kNow));
  EXPECT_FALSE(codec.CheckBlock("not base64!", "snap-0123456789abcdef0", 7, kNow));
  for (char ch : t) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(ch)) || ch == '+' || ch == '/' || ch == '=');
  EXPECT_LE(t.size(), 256u);
}

TEST(EbsTokensTest, PageTokenBelongsToItsListing) {
  EbsTokenCodec codec(KeyOf(3));
  const std::string t = codec.Page("blocks  snap-1", 4096);
  EXPECT_EQ(codec.CheckPage(t, "blocks  snap-1"), std::optional<uint64_t>(4096));
  EXPECT_FALSE(codec.CheckPage(t, "blocks  snap-2"));
  EXPECT_FALSE(codec.CheckPage(t, "changed snap-0 snap-1"));
}

TEST(EbsTokensTest, Base64RoundTrips) {
  for (size_t n = 0; n < 40; ++n) {
    std::vector<uint8_t> in(n);
    for (size_t i = 0; i < n; ++i) in[i] = static_cast<uint8_t>(i * 37 + 1);
    if (n == 0) continue;
    auto out = Base64Decode(Base64Encode(in));
    ASSERT_TRUE(out) << n;
    EXPECT_EQ(*out, in) << n;
  }
  EXPECT_FALSE(Base64Decode("abc"));
}

}  // namespace
}  // namespace snapvol::api
