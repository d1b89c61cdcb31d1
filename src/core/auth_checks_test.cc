// The checks that refuse forged or damaged data: AES-256-GCM must reject any change to the
// nonce, ciphertext, tag or associated data, and a wrong key; ConstantTimeEqual must not call
// a prefix equal (it compares signatures).
#include <gtest/gtest.h>

#include "core/aead.h"
#include "core/hash.h"

namespace snapvol {
namespace {

Key256 KeyOf(uint8_t b) {
  Key256 k;
  k.fill(b);
  return k;
}

std::vector<uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

TEST(AesGcm, EveryFlippedBitIsRefusedAsCorruption) {
  const Key256 key = KeyOf(7);
  const auto plain = Bytes("block data that must not be forged");
  const auto aad = Bytes("header and id");
  std::vector<uint8_t> sealed;
  ASSERT_TRUE(AesGcmEncrypt(key, plain, aad, sealed));
  ASSERT_EQ(sealed.size(), kGcmNonceBytes + plain.size() + kGcmTagBytes);
  auto good = AesGcmDecrypt(key, sealed, aad);
  ASSERT_TRUE(good) << good.error().ToString();
  EXPECT_EQ(*good, plain);
  // Nonce, ciphertext and tag: each byte, the lowest and the highest bit.
  for (size_t i = 0; i < sealed.size(); ++i) {
    for (uint8_t bit : {uint8_t{0x01}, uint8_t{0x80}}) {
      auto bad = sealed;
      bad[i] ^= bit;
      auto r = AesGcmDecrypt(key, bad, aad);
      if (r) {
        ADD_FAILURE() << "byte " << i << " bit " << int(bit) << " accepted";
        continue;
      }
      EXPECT_EQ(r.error().code(), ErrorCode::kCorruption) << i;
    }
  }
}

TEST(AesGcm, OtherAssociatedDataOrKeyIsRefused) {
  const Key256 key = KeyOf(7);
  const auto plain = Bytes("chunk payload");
  const auto aad = Bytes("bound to chunk A");
  std::vector<uint8_t> sealed;
  ASSERT_TRUE(AesGcmEncrypt(key, plain, aad, sealed));
  auto other_aad = AesGcmDecrypt(key, sealed, Bytes("bound to chunk B"));
  ASSERT_FALSE(other_aad);
  EXPECT_EQ(other_aad.error().code(), ErrorCode::kCorruption);
  auto no_aad = AesGcmDecrypt(key, sealed, {});
  ASSERT_FALSE(no_aad);
  EXPECT_EQ(no_aad.error().code(), ErrorCode::kCorruption);
  auto other_key = AesGcmDecrypt(KeyOf(8), sealed, aad);
  ASSERT_FALSE(other_key);
  EXPECT_EQ(other_key.error().code(), ErrorCode::kCorruption);
  auto truncated = AesGcmDecrypt(key, std::span(sealed).first(kGcmNonceBytes + kGcmTagBytes - 1), aad);
  ASSERT_FALSE(truncated);
  EXPECT_EQ(truncated.error().code(), ErrorCode::kCorruption);
}

// Sealed secrets (access keys in the catalog) are bound to their context.
TEST(AesGcm, SealedSecretOpensOnlyWithItsKeyAndContext) {
  const Key256 key = KeyOf(3);
  auto sealed = SealToHex(key, "secret-access-key", "AKIAEXAMPLE");
  ASSERT_TRUE(sealed);
  EXPECT_EQ(*OpenFromHex(key, *sealed, "AKIAEXAMPLE"), "secret-access-key");
  EXPECT_EQ(OpenFromHex(key, *sealed, "AKIAOTHER").error().code(), ErrorCode::kCorruption);
  EXPECT_EQ(OpenFromHex(KeyOf(4), *sealed, "AKIAEXAMPLE").error().code(), ErrorCode::kCorruption);
  std::string flipped = *sealed;
  flipped[flipped.size() / 2] = flipped[flipped.size() / 2] == '0' ? '1' : '0';
  EXPECT_EQ(OpenFromHex(key, flipped, "AKIAEXAMPLE").error().code(), ErrorCode::kCorruption);
}

TEST(ConstantTimeEqual, EqualOnlyForTheSameBytesAndLength) {
  const auto sig = Bytes("5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7");
  EXPECT_TRUE(ConstantTimeEqual(sig, sig));
  // A prefix or an extension of the expected signature is not the signature.
  EXPECT_FALSE(ConstantTimeEqual(sig, std::span(sig).first(sig.size() - 1)));
  EXPECT_FALSE(ConstantTimeEqual(std::span(sig).first(10), sig));
  auto longer = sig;
  longer.push_back('0');
  EXPECT_FALSE(ConstantTimeEqual(sig, longer));
  for (size_t i = 0; i < sig.size(); ++i) {
    auto other = sig;
    other[i] ^= 1;
    EXPECT_FALSE(ConstantTimeEqual(sig, other)) << i;
  }
}

}  // namespace
}  // namespace snapvol
