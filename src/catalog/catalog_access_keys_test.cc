// Tests of access key status in the catalog (migration 13): disable, enable, delete, and the
// rule that the last active key of an administrator account is never disabled or deleted.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "catalog/catalog_test_util.h"

namespace snapvol {
namespace {

class CatalogAccessKeysTest : public testing_util::FreshCatalogTest {
 protected:
  void SetUp() override {
    FreshCatalogTest::SetUp();
    auto admin = cat_->CreateAccount("ops");
    ASSERT_TRUE(admin);
    ASSERT_TRUE(cat_->SetAccountAdmin(admin->account_id, true));
    admin_ = admin->account_id;
    auto team = cat_->CreateAccount("team-1");
    ASSERT_TRUE(team);
    team_ = team->account_id;
  }
  // A key of `account`, numbered n within it (ids differ across accounts).
  std::string Key(const std::string& account, char n) {
    std::string id = "AKIA" + account + n;
    EXPECT_TRUE(cat_->InsertAccessKey({id, account, "u", "sealed", 1}));
    return id;
  }
  std::string admin_, team_;
};

TEST_F(CatalogAccessKeysTest, DisableAndEnableAreKeptAndListed) {
  Key(admin_, 'A');  // another administrator key, so the rule below does not apply
  const std::string k = Key(team_, '1');
  EXPECT_TRUE(cat_->GetAccessKey(k)->active);
  EXPECT_EQ(cat_->GetAccessKey(k)->status_ms, 0);
  ASSERT_TRUE(cat_->SetAccessKeyActive(k, false, 1000));
  auto got = cat_->GetAccessKey(k);
  EXPECT_FALSE(got->active);
  EXPECT_EQ(got->status_ms, 1000);
  EXPECT_FALSE((*cat_->ListAccessKeys(team_))[0].active);
  // The same status again changes nothing, not even the time.
  ASSERT_TRUE(cat_->SetAccessKeyActive(k, false, 2000));
  EXPECT_EQ(cat_->GetAccessKey(k)->status_ms, 1000);
  ASSERT_TRUE(cat_->SetAccessKeyActive(k, true, 3000));
  EXPECT_TRUE(cat_->GetAccessKey(k)->active);
  EXPECT_EQ(cat_->GetAccessKey(k)->status_ms, 3000);
  EXPECT_EQ(cat_->SetAccessKeyActive("AKIANOSUCHKEY00000", false, 1).error().code(), ErrorCode::kNotFound);
}

TEST_F(CatalogAccessKeysTest, ChangesMoveTheDataVersion) {
  const std::string k = Key(team_, '1');
  auto before = cat_->DataVersion();
  ASSERT_TRUE(before);
  ASSERT_TRUE(cat_->SetAccessKeyActive(k, false, 1));
  auto after = cat_->DataVersion();
  ASSERT_TRUE(after);
  EXPECT_NE(*before, *after) << "cached identities must be looked up again";
}

TEST_F(CatalogAccessKeysTest, LastActiveAdministratorKeyIsRefusedByName) {
  const std::string a1 = Key(admin_, '1');
  const std::string a2 = Key(admin_, '2');
  ASSERT_TRUE(cat_->SetAccessKeyActive(a1, false, 1));  // a2 is still active
  auto refused = cat_->SetAccessKeyActive(a2, false, 2);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kConflict);
  EXPECT_NE(refused.error().message().find(a2), std::string::npos) << refused.error().message();
  EXPECT_NE(refused.error().message().find("ops"), std::string::npos) << refused.error().message();
  EXPECT_EQ(cat_->DeleteAccessKey(a2).error().code(), ErrorCode::kConflict);
  EXPECT_TRUE(cat_->GetAccessKey(a2)->active) << "a refusal changes nothing";
  // A disabled administrator key may be deleted; enabling it again lets a2 go.
  ASSERT_TRUE(cat_->SetAccessKeyActive(a1, true, 3));
  ASSERT_TRUE(cat_->DeleteAccessKey(a2));
  EXPECT_EQ(cat_->DeleteAccessKey(a1).error().code(), ErrorCode::kConflict);
  // A member's keys are not held back: its last key may go.
  const std::string t = Key(team_, '1');
  ASSERT_TRUE(cat_->SetAccessKeyActive(t, false, 4));
  ASSERT_TRUE(cat_->DeleteAccessKey(t));
}

TEST_F(CatalogAccessKeysTest, AnyAdministratorAccountCounts) {
  const std::string a = Key(admin_, '1');
  const std::string t = Key(team_, '1');
  EXPECT_EQ(cat_->DeleteAccessKey(a).error().code(), ErrorCode::kConflict);
  ASSERT_TRUE(cat_->SetAccountAdmin(team_, true));  // now team-1's key is an administrator's too
  ASSERT_TRUE(cat_->DeleteAccessKey(a));
  EXPECT_EQ(cat_->SetAccessKeyActive(t, false, 1).error().code(), ErrorCode::kConflict);
}

TEST_F(CatalogAccessKeysTest, SqliteMigratesVersionTwelveKeysAsActive) {
  const std::string k = Key(team_, '1');
  cat_.reset();
  // Back to what version 12 wrote: no status columns (nor version 15's maintenance tables).
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db,
                        "ALTER TABLE access_keys DROP COLUMN active; ALTER TABLE access_keys DROP COLUMN status_ms;"
                        " DROP TABLE usage_journal; DROP TABLE usage_objects; DROP TABLE usage_account_refs;"
                        " DROP TABLE usage_snapshots; DROP TABLE usage_accounts; DROP TABLE usage_state;"
                        " DROP TABLE maintenance_runs; DROP TABLE snapshot_verifications;"
                        " DROP TABLE restore_drills; DROP TABLE recycle_bin_settings;"
                        " DROP TABLE recycle_bin_permissions; DROP TABLE recycle_bin_tags; DROP TABLE recycle_bin;"
                        " DROP TABLE rbin_rules;"
                        " DROP TABLE replace_root_volume_tasks; ALTER TABLE instances DROP COLUMN state;"
                        " ALTER TABLE instances DROP COLUMN root_device;"
                        " ALTER TABLE restore_requests DROP COLUMN restore_type;"
                        " ALTER TABLE restore_requests DROP COLUMN task_id;"
                        " DROP TABLE instance_hooks; DROP TABLE direct_blocks; DROP TABLE direct_snapshots; DROP TABLE hosts;"
                        " DROP INDEX volumes_by_host; ALTER TABLE volumes DROP COLUMN host_id;"
                        " ALTER TABLE instances DROP COLUMN host_id; DROP TABLE cluster_leases;"
                        " DROP TABLE snapshot_queue;"
                        " ALTER TABLE lifecycle_runs DROP COLUMN host_id;"
                        " ALTER TABLE lifecycle_runs DROP COLUMN lease_generation;"
                        " DROP TABLE volume_queue;"
                        " PRAGMA user_version = 12;",
                        nullptr, nullptr, &err);
  std::string why = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << why;
  auto c = Catalog::Open(path_);
  ASSERT_TRUE(c) << c.error().ToString();
  cat_ = std::move(*c);
  EXPECT_EQ(cat_->SchemaVersion(), Catalog::LatestSchemaVersion());
  auto got = cat_->GetAccessKey(k);
  ASSERT_TRUE(got) << got.error().ToString();
  EXPECT_TRUE(got->active) << "keys written before status existed stay usable";
  EXPECT_EQ(got->status_ms, 0);
}

}  // namespace
}  // namespace snapvol
