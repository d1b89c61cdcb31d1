// The catalog's access keys and the admin flag, the migration of a version-one database,
// instances with attached volumes, and keyset pages of an account's snapshots.
#include "catalog/catalog.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <future>
#include <limits>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog_test_db.h"
#include "core/ids.h"

namespace snapvol {
namespace {


class CatalogKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "catalog_keys.XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    db_ = std::make_unique<catalog_testing::TestCatalogDb>(dir_);
    path_ = db_->location();
    ASSERT_FALSE(path_.empty());
  }
  void TearDown() override {
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::unique_ptr<catalog_testing::TestCatalogDb> db_;
  std::string dir_;
  std::string path_;  // the catalog: a file in dir_, or a PostgreSQL URL
};

TEST_F(CatalogKeysTest, AccessKeysAndAdminFlag) {
  auto cat = std::move(*Catalog::Open(path_));
  EXPECT_EQ(cat->SchemaVersion(), Catalog::LatestSchemaVersion());
  auto team = cat->CreateAccount("team-1");
  ASSERT_TRUE(team);
  EXPECT_FALSE(team->is_admin);
  ASSERT_TRUE(cat->SetAccountAdmin(team->account_id, true));
  EXPECT_TRUE(cat->GetAccount(team->account_id)->is_admin);
  EXPECT_EQ(cat->SetAccountAdmin("999999999999", true).error().code(), ErrorCode::kNotFound);

  AccessKeyRecord k{"AKIA0123456789ABCDEF", team->account_id, "alice", "sealed-bytes-hex", 5};
  ASSERT_TRUE(cat->InsertAccessKey(k));
  EXPECT_EQ(cat->InsertAccessKey(k).error().code(), ErrorCode::kAlreadyExists);
  AccessKeyRecord orphan{"AKIA0123456789ABCDEX", "999999999999", "bob", "x", 5};
  EXPECT_EQ(cat->InsertAccessKey(orphan).error().code(), ErrorCode::kNotFound);
  auto got = cat->GetAccessKey(k.access_key_id);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, k);
  EXPECT_EQ(cat->ListAccessKeys(team->account_id)->size(), 1u);
  EXPECT_EQ(cat->ListAccessKeys(kDefaultAccountId)->size(), 0u);
  EXPECT_EQ(cat->ListAccessKeys(std::nullopt)->size(), 1u);
  // The only active key of an administrator is kept (catalog_access_keys_test has the rest).
  EXPECT_EQ(cat->DeleteAccessKey(k.access_key_id).error().code(), ErrorCode::kConflict);
  ASSERT_TRUE(cat->SetAccountAdmin(team->account_id, false));
  ASSERT_TRUE(cat->DeleteAccessKey(k.access_key_id));
  EXPECT_EQ(cat->GetAccessKey(k.access_key_id).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(cat->DeleteAccessKey(k.access_key_id).error().code(), ErrorCode::kNotFound);
}

TEST_F(CatalogKeysTest, SqliteMigratesVersionOneDatabase) {
  // A version-1 catalog (as the first release wrote it) gains the new columns and tables.
  std::string path = dir_ + "/catalog.db";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const char* v1 =
        "PRAGMA application_id = 1399739953;"
        "CREATE TABLE accounts (account_id TEXT NOT NULL PRIMARY KEY, alias TEXT NOT NULL UNIQUE,"
        " created_ms INTEGER NOT NULL) STRICT;"
        "INSERT INTO accounts VALUES ('100000000001', 'default', 1);"
        "CREATE TABLE volumes (volume_id TEXT NOT NULL PRIMARY KEY, account_id TEXT NOT NULL,"
        " name TEXT NOT NULL, path TEXT NOT NULL, size_bytes INTEGER NOT NULL, block_size INTEGER"
        " NOT NULL, created_ms INTEGER NOT NULL) STRICT;"
        "CREATE TABLE snapshots (snapshot_id TEXT NOT NULL PRIMARY KEY, volume_id TEXT NOT NULL,"
        " account_id TEXT NOT NULL, state TEXT NOT NULL, progress TEXT NOT NULL, start_time_ms"
        " INTEGER NOT NULL, completed_time_ms INTEGER NOT NULL, volume_size_bytes INTEGER NOT NULL,"
        " block_size INTEGER NOT NULL, description TEXT NOT NULL, state_message TEXT NOT NULL,"
        " parent_snapshot_id TEXT NOT NULL, encrypted INTEGER NOT NULL, stored_bytes INTEGER NOT"
        " NULL, changed_blocks INTEGER NOT NULL, total_blocks INTEGER NOT NULL, runner TEXT NOT"
        " NULL) STRICT;"
        "CREATE TABLE tags (resource_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
        " PRIMARY KEY (resource_id, key)) STRICT, WITHOUT ROWID;"
        "PRAGMA user_version = 1;";
    ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  auto cat = Catalog::Open(path);
  ASSERT_TRUE(cat) << cat.error().ToString();
  EXPECT_EQ((*cat)->SchemaVersion(), Catalog::LatestSchemaVersion());
  auto def = (*cat)->GetAccount(kDefaultAccountId);
  ASSERT_TRUE(def);
  EXPECT_FALSE(def->is_admin);
  EXPECT_TRUE((*cat)->InsertAccessKey({"AKIA0123456789ABCDEF", kDefaultAccountId, "u", "s", 1}));
  EXPECT_TRUE((*cat)->GetAccessKey("AKIA0123456789ABCDEF")->active);  // keys start active
}


TEST_F(CatalogKeysTest, InstancesAndAttachedVolumes) {
  auto cat = std::move(*Catalog::Open(path_));
  InstanceRecord inst{NewInstanceId(), kDefaultAccountId, "web-1", 7, {{"Name", "web-1"}}};
  ASSERT_TRUE(cat->InsertInstance(inst));
  EXPECT_EQ(cat->InsertInstance(inst).error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(cat->InsertInstance({NewInstanceId(), "999999999999", "x", 1}).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(cat->InsertInstance({"i-bad", kDefaultAccountId, "x", 1}).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(*cat->GetInstance(inst.instance_id), inst);
  EXPECT_EQ(cat->ListInstances(kDefaultAccountId)->size(), 1u);
  VolumeRecord v;
  v.volume_id = NewVolumeId();
  v.account_id = kDefaultAccountId;
  v.name = "root";
  v.tags = {{"Name", "root"}};
  v.path = "/dev/null";
  v.size_bytes = 10;
  v.block_size = 4096;
  v.created_ms = 1;
  v.instance_id = inst.instance_id;
  v.device = "/dev/xvda";
  v.boot = true;
  ASSERT_TRUE(cat->InsertVolume(v));
  EXPECT_EQ(*cat->GetVolume(v.volume_id), v);
}


TEST_F(CatalogKeysTest, KeysetPagesOfAnAccountsSnapshots) {
  auto cat = std::move(*Catalog::Open(path_));
  auto other = *cat->CreateAccount("other");
  std::vector<std::string> ids;
  for (int i = 0; i < 23; ++i) {
    SnapshotRecord r;
    r.snapshot_id = NewSnapshotId();
    r.volume_id = NewVolumeId();
    r.account_id = i % 4 == 3 ? other.account_id : kDefaultAccountId;
    r.start_time_ms = 100 - i;  // start order differs from id order
    r.block_size = 4096;
    r.tags = {{"n", std::to_string(i)}, {"z", "last"}};
    ASSERT_TRUE(cat->InsertSnapshot(r));
    if (r.account_id == kDefaultAccountId) ids.push_back(r.snapshot_id);
  }
  std::sort(ids.begin(), ids.end());
  std::vector<std::string> seen;
  std::string after;
  for (;;) {
    auto page = cat->ListSnapshotsPage(kDefaultAccountId, after, 5);
    ASSERT_TRUE(page) << page.error().ToString();
    for (const auto& s : *page) {
      EXPECT_EQ(s.tags.size(), 2u);
      seen.push_back(s.snapshot_id);
    }
    if (page->size() < 5) break;
    after = page->back().snapshot_id;
  }
  EXPECT_EQ(seen, ids);
}

}  // namespace
}  // namespace snapvol
