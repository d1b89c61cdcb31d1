// Tests of Accounts' sealed secrets: new keys are sealed under the key derived for sealing,
// and a catalog written before keys by purpose (secrets sealed under the secrets key itself)
// still authenticates, and is re-sealed on first use.
#include "api/accounts.h"

#include <gtest/gtest.h>

#include "catalog/catalog_test_util.h"
#include "core/key_derivation.h"

namespace snapvol {
namespace {

Key256 Root(uint8_t seed) {
  Key256 k;
  for (size_t i = 0; i < k.size(); ++i) k[i] = static_cast<uint8_t>(seed * 31 + i);
  return k;
}

using AccountsSealTest = testing_util::FreshCatalogTest;

TEST_F(AccountsSealTest, NewKeysAreSealedUnderTheDerivedKey) {
  const Key256 root = Root(1);
  Accounts accounts(cat_.get(), root);
  auto key = accounts.CreateKey(kDefaultAccountId, "alice");
  ASSERT_TRUE(key) << key.error().ToString();
  auto rec = cat_->GetAccessKey(key->access_key_id);
  ASSERT_TRUE(rec);
  ASSERT_TRUE(rec->secret_sealed.starts_with(kSealedSecretPrefix)) << rec->secret_sealed;
  const std::string body = rec->secret_sealed.substr(kSealedSecretPrefix.size());
  EXPECT_FALSE(OpenFromHex(root, body, key->access_key_id));  // not under the secrets key itself
  EXPECT_EQ(*OpenFromHex(*DeriveKey(root, KeyPurpose::kSealSecrets), body, key->access_key_id),
            key->secret_access_key);
  auto found = accounts.Lookup(key->access_key_id);
  ASSERT_TRUE(found) << found.error().ToString();
  EXPECT_EQ(found->secret_access_key, key->secret_access_key);
  // Another data dir's secrets key opens nothing.
  Accounts stranger(cat_.get(), Root(2));
  EXPECT_EQ(stranger.Lookup(key->access_key_id).error().code(), ErrorCode::kCorruption);
}

// The catalog row exactly as snapvol wrote it before keys by purpose: SealToHex under the
// secrets key, with the access key id as associated data.
TEST_F(AccountsSealTest, SecretSealedTheOldWayStillAuthenticatesAndIsResealed) {
  const Key256 root = Root(3);
  const std::string id = "AKIAOLDFORMAT0000001", secret = "old/Secret+Key0123456789abcdefghijklmno";
  auto old = SealToHex(root, secret, id);
  ASSERT_TRUE(old);
  ASSERT_TRUE(cat_->InsertAccessKey({id, kDefaultAccountId, "legacy", *old, 1}));

  Accounts accounts(cat_.get(), root);
  auto found = accounts.Lookup(id);
  ASSERT_TRUE(found) << found.error().ToString();
  EXPECT_EQ(found->secret_access_key, secret);
  EXPECT_EQ(found->account_id, kDefaultAccountId);
  // Re-sealed in place under the derived key, and it opens again.
  auto rec = cat_->GetAccessKey(id);
  ASSERT_TRUE(rec);
  EXPECT_TRUE(rec->secret_sealed.starts_with(kSealedSecretPrefix)) << rec->secret_sealed;
  EXPECT_NE(rec->secret_sealed, *old);
  auto again = accounts.Lookup(id);
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_EQ(again->secret_access_key, secret);
  auto identity = accounts.Identify(id);
  ASSERT_TRUE(identity);
  EXPECT_EQ((*identity)->key.secret_access_key, secret);
}

TEST_F(AccountsSealTest, ResealOnlyReplacesTheValueItRead) {
  ASSERT_TRUE(cat_->InsertAccessKey({"AKIARESEAL0000000001", kDefaultAccountId, "u", "aa", 1}));
  EXPECT_EQ(cat_->ReplaceAccessKeySecret("AKIARESEAL0000000001", "bb", "cc").error().code(), ErrorCode::kConflict);
  EXPECT_EQ(cat_->GetAccessKey("AKIARESEAL0000000001")->secret_sealed, "aa");
  EXPECT_EQ(cat_->ReplaceAccessKeySecret("AKIANOSUCHKEY0000001", "aa", "cc").error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(cat_->ReplaceAccessKeySecret("AKIARESEAL0000000001", "aa", "cc"));
  EXPECT_EQ(cat_->GetAccessKey("AKIARESEAL0000000001")->secret_sealed, "cc");
}

// A disabled key is refused by Lookup and Identify (which the EC2, JSON and DLM verifiers and
// the NBD PSK lookup all use), before its secret is opened; enabled again, it works at once
// although Identify had cached it.
TEST_F(AccountsSealTest, DisabledKeyIsRefusedUntilEnabled) {
  Accounts accounts(cat_.get(), Root(4));
  auto key = accounts.CreateKey(kDefaultAccountId, "alice");
  ASSERT_TRUE(key) << key.error().ToString();
  ASSERT_TRUE(accounts.Identify(key->access_key_id));  // cached now
  ASSERT_TRUE(accounts.SetKeyActive(key->access_key_id, false));
  auto looked = accounts.Lookup(key->access_key_id);
  ASSERT_FALSE(looked);
  EXPECT_EQ(looked.error().code(), ErrorCode::kUnauthorized);
  auto identified = accounts.Identify(key->access_key_id);
  ASSERT_FALSE(identified);
  EXPECT_EQ(identified.error().code(), ErrorCode::kUnauthorized) << identified.error().ToString();
  ASSERT_TRUE(accounts.SetKeyActive(key->access_key_id, true));
  auto again = accounts.Identify(key->access_key_id);
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_EQ((*again)->key.secret_access_key, key->secret_access_key);
  ASSERT_TRUE(accounts.DeleteKey(key->access_key_id));
  EXPECT_EQ(accounts.Identify(key->access_key_id).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(accounts.SetKeyActive(key->access_key_id, true).error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace snapvol
