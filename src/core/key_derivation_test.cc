#include "core/key_derivation.h"

#include <gtest/gtest.h>

#include <vector>

#include "core/hash.h"

namespace snapvol {
namespace {

Key256 Root(uint8_t seed) {
  Key256 k;
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(seed + i * 7);
  return k;
}

// RFC 5869 appendix A.1 (SHA-256): the first 32 bytes of its 42-byte OKM.
TEST(KeyDerivation, HkdfSha256MatchesRfc5869) {
  std::vector<uint8_t> ikm(22, 0x0b), salt, info;
  for (uint8_t i = 0x00; i <= 0x0c; ++i) salt.push_back(i);
  for (uint8_t i = 0xf0; i <= 0xf9; ++i) info.push_back(i);
  auto okm = HkdfSha256(ikm, salt, std::string_view(reinterpret_cast<const char*>(info.data()), info.size()));
  ASSERT_TRUE(okm) << okm.error().message();
  EXPECT_EQ(ToHex(*okm), "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf");
}

// RFC 5869 appendix A.3: no salt (HashLen zero bytes), no info.
TEST(KeyDerivation, HkdfSha256WithoutSaltMatchesRfc5869) {
  std::vector<uint8_t> ikm(22, 0x0b);
  auto okm = HkdfSha256(ikm, {}, "");
  ASSERT_TRUE(okm) << okm.error().message();
  EXPECT_EQ(ToHex(*okm), "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d");
}

TEST(KeyDerivation, PurposesGetDifferentKeysNeitherTheRoot) {
  const Key256 root = Root(1);
  auto seal = DeriveKey(root, KeyPurpose::kSealSecrets);
  auto tokens = DeriveKey(root, KeyPurpose::kPageTokens);
  ASSERT_TRUE(seal && tokens);
  EXPECT_NE(*seal, *tokens);
  EXPECT_NE(*seal, root);
  EXPECT_NE(*tokens, root);
  EXPECT_NE(KeyPurposeLabel(KeyPurpose::kSealSecrets), KeyPurposeLabel(KeyPurpose::kPageTokens));
  // Deterministic (a restart derives the same keys), and bound to the root.
  EXPECT_EQ(*DeriveKey(root, KeyPurpose::kSealSecrets), *seal);
  EXPECT_NE(*DeriveKey(Root(2), KeyPurpose::kSealSecrets), *seal);
}

TEST(KeyDerivation, SealedSecretUsesTheDerivedKey) {
  const Key256 root = Root(3);
  auto sealed = SealSecret(root, "s3cret", "AKIAEXAMPLE");
  ASSERT_TRUE(sealed);
  ASSERT_TRUE(sealed->starts_with(kSealedSecretPrefix)) << *sealed;
  const std::string hex = sealed->substr(kSealedSecretPrefix.size());
  // Opens with the derived key, not with the root.
  EXPECT_EQ(*OpenFromHex(*DeriveKey(root, KeyPurpose::kSealSecrets), hex, "AKIAEXAMPLE"), "s3cret");
  EXPECT_FALSE(OpenFromHex(root, hex, "AKIAEXAMPLE"));
  auto opened = OpenSecret(root, *sealed, "AKIAEXAMPLE");
  ASSERT_TRUE(opened) << opened.error().message();
  EXPECT_EQ(opened->secret, "s3cret");
  EXPECT_FALSE(opened->legacy);
  // Bound to its context and its root.
  EXPECT_FALSE(OpenSecret(root, *sealed, "AKIAOTHER"));
  EXPECT_FALSE(OpenSecret(Root(4), *sealed, "AKIAEXAMPLE"));
}

// A secret sealed the way snapvol did before keys by purpose (bare hex under the root key)
// still opens, and says it should be re-sealed.
TEST(KeyDerivation, LegacySealedSecretStillOpens) {
  const Key256 root = Root(5);
  auto old = SealToHex(root, "legacy-secret", "AKIALEGACY");
  ASSERT_TRUE(old);
  auto opened = OpenSecret(root, *old, "AKIALEGACY");
  ASSERT_TRUE(opened) << opened.error().message();
  EXPECT_EQ(opened->secret, "legacy-secret");
  EXPECT_TRUE(opened->legacy);
  // Each format opens only with its own key: the legacy body under the prefix does not.
  EXPECT_FALSE(OpenSecret(root, std::string(kSealedSecretPrefix) + *old, "AKIALEGACY"));
  auto fresh = SealSecret(root, "legacy-secret", "AKIALEGACY");
  ASSERT_TRUE(fresh);
  EXPECT_FALSE(OpenSecret(root, fresh->substr(kSealedSecretPrefix.size()), "AKIALEGACY"));
  EXPECT_FALSE(OpenSecret(root, "k2:00", "AKIALEGACY"));
  EXPECT_FALSE(OpenSecret(root, "", "AKIALEGACY"));
}

}  // namespace
}  // namespace snapvol
