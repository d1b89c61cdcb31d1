// Tests of snapshot sharing (createVolumePermission), the volume type, and migration 11 of a
// catalog written by schema version 10.
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_test_fixture.h"
#include "catalog/catalog_test_util.h"
#include "core/ids.h"

namespace snapvol {
namespace {

using catalog_testing::RawExec;

constexpr int64_t kT0 = 1'700'000'000'000;
constexpr int64_t kNow = kT0 + 1000;

class CatalogSharingTest : public testing_util::FreshCatalogTest {
 protected:
  SnapshotRecord AddSnapshot(const std::string& account_id, std::vector<Tag> tags = {}) {
    SnapshotRecord s;
    s.snapshot_id = NewSnapshotId();
    s.volume_id = NewVolumeId();
    s.account_id = account_id;
    s.start_time_ms = kT0;
    s.block_size = 4096;
    s.tags = std::move(tags);
    EXPECT_TRUE(cat_->InsertSnapshot(s));
    return s;
  }

  static std::vector<std::string> Ids(const std::vector<SnapshotRecord>& snaps) {
    std::vector<std::string> ids;
    for (const auto& s : snaps) ids.push_back(s.snapshot_id);
    return ids;
  }
};

TEST_F(CatalogSharingTest, AddRemoveResetAndList) {
  SnapshotRecord s = AddSnapshot(kDefaultAccountId);
  ASSERT_TRUE(cat_->AddSnapshotPermissions(s.snapshot_id, {"222222222222", "111111111111"}));
  ASSERT_TRUE(cat_->AddSnapshotPermissions(s.snapshot_id, {"111111111111", "all"}));  // existing: no-op
  EXPECT_EQ(*cat_->ListSnapshotPermissions(s.snapshot_id),
            (std::vector<std::string>{"111111111111", "222222222222", "all"}));
  ASSERT_TRUE(cat_->RemoveSnapshotPermissions(s.snapshot_id, {"all", "333333333333"}));  // absent: ignored
  EXPECT_EQ(*cat_->ListSnapshotPermissions(s.snapshot_id),
            (std::vector<std::string>{"111111111111", "222222222222"}));
  ASSERT_TRUE(cat_->ResetSnapshotPermissions(s.snapshot_id));
  EXPECT_TRUE(cat_->ListSnapshotPermissions(s.snapshot_id)->empty());
  ASSERT_TRUE(cat_->AddSnapshotPermissions(s.snapshot_id, {}));  // nothing to do

  // Bad grantees are refused (before anything is written).
  for (const std::string& bad : {"All", "12345", "1111111111111", "11111111111a", "", "snap-1"}) {
    auto st = cat_->AddSnapshotPermissions(s.snapshot_id, {"444444444444", bad});
    ASSERT_FALSE(st) << bad;
    EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
  EXPECT_TRUE(cat_->ListSnapshotPermissions(s.snapshot_id)->empty());

  // Grants written inside a transaction that then fails (as ModifySnapshotAttribute over
  // several snapshots, one of them gone) are rolled back with it, and so are revocations.
  const std::string missing = NewSnapshotId();
  auto failed = cat_->Transaction([&]() -> Status {
    RETURN_IF_ERROR(cat_->AddSnapshotPermissions(s.snapshot_id, {"444444444444", "all"}));
    return cat_->AddSnapshotPermissions(missing, {"444444444444"});
  });
  ASSERT_FALSE(failed);
  EXPECT_EQ(failed.error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(cat_->ListSnapshotPermissions(s.snapshot_id)->empty());
  ASSERT_TRUE(cat_->AddSnapshotPermissions(s.snapshot_id, {"444444444444"}));
  failed = cat_->Transaction([&]() -> Status {
    RETURN_IF_ERROR(cat_->ResetSnapshotPermissions(s.snapshot_id));
    return cat_->RemoveSnapshotPermissions(missing, {"444444444444"});
  });
  ASSERT_FALSE(failed);
  EXPECT_EQ(*cat_->ListSnapshotPermissions(s.snapshot_id), (std::vector<std::string>{"444444444444"}));
  ASSERT_TRUE(cat_->ResetSnapshotPermissions(s.snapshot_id));

  EXPECT_EQ(cat_->AddSnapshotPermissions(missing, {"all"}).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(cat_->RemoveSnapshotPermissions(missing, {"all"}).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(cat_->ResetSnapshotPermissions(missing).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(cat_->ListSnapshotPermissions(missing).error().code(), ErrorCode::kNotFound);
}

TEST_F(CatalogSharingTest, ListSnapshotsSharedWith) {
  auto other = *cat_->CreateAccount("other");
  auto third = *cat_->CreateAccount("third");
  SnapshotRecord to_other = AddSnapshot(kDefaultAccountId, {{"Name", "b"}, {"A", "a"}});
  SnapshotRecord to_all = AddSnapshot(kDefaultAccountId);
  SnapshotRecord private_one = AddSnapshot(kDefaultAccountId);
  SnapshotRecord others_own = AddSnapshot(other.account_id);
  SnapshotRecord to_third = AddSnapshot(kDefaultAccountId);
  ASSERT_TRUE(cat_->AddSnapshotPermissions(to_other.snapshot_id, {other.account_id}));
  ASSERT_TRUE(cat_->AddSnapshotPermissions(to_all.snapshot_id, {"all"}));
  // Shared with everyone and explicitly with its own owner: never listed for the owner.
  ASSERT_TRUE(cat_->AddSnapshotPermissions(others_own.snapshot_id, {"all", other.account_id}));
  ASSERT_TRUE(cat_->AddSnapshotPermissions(to_third.snapshot_id, {third.account_id}));

  auto shared = cat_->ListSnapshotsSharedWith(other.account_id);
  ASSERT_TRUE(shared) << shared.error().ToString();
  std::vector<std::string> want = {to_other.snapshot_id, to_all.snapshot_id};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(Ids(*shared), want);
  for (const auto& s : *shared) {
    if (s.snapshot_id == to_other.snapshot_id) {
      EXPECT_EQ(s.tags, (std::vector<Tag>{{"A", "a"}, {"Name", "b"}}));
    }
  }

  // The default account sees only the other account's public snapshot.
  EXPECT_EQ(Ids(*cat_->ListSnapshotsSharedWith(kDefaultAccountId)), (std::vector<std::string>{others_own.snapshot_id}));
  // An account nobody shares with explicitly sees the public ones.
  want = {to_all.snapshot_id, others_own.snapshot_id};
  std::sort(want.begin(), want.end());
  EXPECT_EQ(Ids(*cat_->ListSnapshotsSharedWith("999999999999")), want);
  (void)private_one;
}

TEST_F(CatalogSharingTest, PermissionsOfManySnapshots) {
  SnapshotRecord a = AddSnapshot(kDefaultAccountId);
  SnapshotRecord b = AddSnapshot(kDefaultAccountId);
  SnapshotRecord unshared = AddSnapshot(kDefaultAccountId);
  ASSERT_TRUE(cat_->AddSnapshotPermissions(a.snapshot_id, {"222222222222", "all", "111111111111"}));
  ASSERT_TRUE(cat_->AddSnapshotPermissions(b.snapshot_id, {"333333333333"}));
  const std::string missing = NewSnapshotId();
  auto got = cat_->ListSnapshotPermissions(
      std::vector<std::string>{a.snapshot_id, unshared.snapshot_id, missing, b.snapshot_id, a.snapshot_id});
  ASSERT_TRUE(got) << got.error().ToString();
  EXPECT_EQ(*got, (std::map<std::string, std::vector<std::string>>{
                      {a.snapshot_id, {"111111111111", "222222222222", "all"}},
                      {b.snapshot_id, {"333333333333"}}}));
  EXPECT_TRUE(cat_->ListSnapshotPermissions(std::vector<std::string>{})->empty());

  // More ids than one query takes: every chunk is read.
  std::vector<std::string> ids;
  for (int i = 0; i < 1200; ++i) ids.push_back(NewSnapshotId());
  ids.push_back(b.snapshot_id);
  ids.push_back(a.snapshot_id);
  got = cat_->ListSnapshotPermissions(ids);
  ASSERT_TRUE(got) << got.error().ToString();
  EXPECT_EQ(got->size(), 2u);
  EXPECT_EQ(got->at(a.snapshot_id).size(), 3u);
  EXPECT_EQ(got->at(b.snapshot_id), (std::vector<std::string>{"333333333333"}));
}

TEST_F(CatalogSharingTest, AnySnapshotsSharedWith) {
  auto other = *cat_->CreateAccount("other");
  EXPECT_FALSE(*cat_->AnySnapshotsSharedWith(other.account_id));
  SnapshotRecord own = AddSnapshot(other.account_id);
  ASSERT_TRUE(cat_->AddSnapshotPermissions(own.snapshot_id, {"all", other.account_id}));
  EXPECT_FALSE(*cat_->AnySnapshotsSharedWith(other.account_id));  // its own never count
  EXPECT_TRUE(*cat_->AnySnapshotsSharedWith(kDefaultAccountId));   // public
  SnapshotRecord to_other = AddSnapshot(kDefaultAccountId);
  ASSERT_TRUE(cat_->AddSnapshotPermissions(to_other.snapshot_id, {other.account_id}));
  EXPECT_TRUE(*cat_->AnySnapshotsSharedWith(other.account_id));
  EXPECT_TRUE(*cat_->AnySnapshotsSharedWith("999999999999"));  // the public one

  // It reads on a connection of its own: a transaction holding the main one does not hold it up.
  std::promise<void> entered, release;
  std::thread holder([&] {
    (void)cat_->Transaction([&]() -> Status {
      RETURN_IF_ERROR(cat_->ResetSnapshotPermissions(to_other.snapshot_id));  // not committed yet
      entered.set_value();
      release.get_future().wait();
      return OkStatus();
    });
  });
  entered.get_future().wait();
  auto any = std::async(std::launch::async, [&] { return cat_->AnySnapshotsSharedWith(other.account_id); });
  const bool answered = any.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
  release.set_value();
  holder.join();
  EXPECT_TRUE(answered) << "AnySnapshotsSharedWith waited for the main connection";
  auto got = any.get();
  ASSERT_TRUE(got) << got.error().ToString();
  EXPECT_TRUE(*got);  // the last committed state
  EXPECT_FALSE(*cat_->AnySnapshotsSharedWith(other.account_id));
}

TEST_F(CatalogSharingTest, DeletingSnapshotsRemovesTheirGrants) {
  auto other = *cat_->CreateAccount("other");
  SnapshotRecord a = AddSnapshot(kDefaultAccountId);
  SnapshotRecord b = AddSnapshot(kDefaultAccountId);
  ASSERT_TRUE(cat_->AddSnapshotPermissions(a.snapshot_id, {other.account_id, "all"}));
  ASSERT_TRUE(cat_->AddSnapshotPermissions(b.snapshot_id, {other.account_id}));

  ASSERT_TRUE(cat_->DeleteSnapshot(a.snapshot_id, kNow));
  // The same id inserted again (e.g. by a rebuild) is not shared.
  ASSERT_TRUE(cat_->InsertSnapshot(a));
  EXPECT_TRUE(cat_->ListSnapshotPermissions(a.snapshot_id)->empty());
  EXPECT_EQ(Ids(*cat_->ListSnapshotsSharedWith(other.account_id)), (std::vector<std::string>{b.snapshot_id}));

  // A failing before_delete leaves the grants with the row.
  auto failed = cat_->DeleteSnapshot(b.snapshot_id, kNow, [] { return Internal("store refused"); });
  ASSERT_FALSE(failed);
  EXPECT_EQ(cat_->ListSnapshotPermissions(b.snapshot_id)->size(), 1u);

}

// A rebuild (as `snapvol catalog rebuild` runs it) finds snapshots in the store, whose
// manifests hold no grants or locks: those of snapshots found again stay, the others go.
TEST_F(CatalogSharingTest, RebuildKeepsGrantsAndLocksOfSnapshotsFoundAgain) {
  auto other = *cat_->CreateAccount("other");
  SnapshotRecord kept = AddSnapshot(kDefaultAccountId);
  SnapshotRecord gone = AddSnapshot(kDefaultAccountId);
  ASSERT_TRUE(cat_->AddSnapshotPermissions(kept.snapshot_id, {other.account_id, "all"}));
  ASSERT_TRUE(cat_->AddSnapshotPermissions(gone.snapshot_id, {other.account_id}));
  for (const SnapshotRecord& s : {kept, gone}) {
    ASSERT_TRUE(cat_->PutSnapshotLock(
        SnapshotLockRecord{s.snapshot_id, kDefaultAccountId, "governance", kT0, kT0, kT0 + 86'400'000, 1, 0, 0}));
  }

  auto rebuilt = cat_->Transaction([&]() -> Status {
    RETURN_IF_ERROR(cat_->DeleteAllSnapshots());
    RETURN_IF_ERROR(cat_->UpsertSnapshot(kept));  // gone is no longer in the store
    return cat_->DeleteOrphanedGrantsAndLocks();
  });
  ASSERT_TRUE(rebuilt) << rebuilt.error().ToString();

  EXPECT_EQ(*cat_->ListSnapshotPermissions(kept.snapshot_id), (std::vector<std::string>{other.account_id, "all"}));
  EXPECT_EQ(Ids(*cat_->ListSnapshotsSharedWith(other.account_id)), (std::vector<std::string>{kept.snapshot_id}));
  auto locks = cat_->ListSnapshotLocks(std::nullopt);
  ASSERT_TRUE(locks);
  ASSERT_EQ(locks->size(), 1u);
  EXPECT_EQ(locks->front().snapshot_id, kept.snapshot_id);
  // The orphans are gone from the tables, not just hidden: the same id inserted again starts
  // without a grant.
  ASSERT_TRUE(cat_->InsertSnapshot(gone));
  EXPECT_TRUE(cat_->ListSnapshotPermissions(gone.snapshot_id)->empty());
  EXPECT_EQ(cat_->GetSnapshotLock(gone.snapshot_id).error().code(), ErrorCode::kNotFound);
}

TEST_F(CatalogSharingTest, VolumeTypeRoundTripsAndIsChecked) {
  VolumeRecord v;
  v.volume_id = NewVolumeId();
  v.account_id = kDefaultAccountId;
  v.name = "data";
  v.tags = {{"Name", "data"}};
  v.path = "/dev/vdb";
  v.size_bytes = 1 << 20;
  v.block_size = 4096;
  EXPECT_EQ(v.volume_type, "gp2");
  ASSERT_TRUE(cat_->InsertVolume(v));
  EXPECT_EQ(cat_->GetVolume(v.volume_id)->volume_type, "gp2");

  VolumeRecord standard = v;
  standard.volume_id = NewVolumeId();
  standard.volume_type = "standard";
  ASSERT_TRUE(cat_->InsertVolume(standard));
  EXPECT_EQ(*cat_->GetVolume(standard.volume_id), standard);
  auto listed = cat_->ListVolumes(kDefaultAccountId);
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 2u);

  for (const std::string& bad : {"io1", "", "GP2"}) {
    VolumeRecord b = v;
    b.volume_id = NewVolumeId();
    b.volume_type = bad;
    auto st = cat_->InsertVolume(b);
    ASSERT_FALSE(st) << bad;
    EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

// The volume types a snapvol accepts are ValidateVolume's to say, not the schema's: a type a
// later snapvol adds can be stored in this file and read back.
TEST_F(CatalogSharingTest, SqliteSchemaDoesNotCheckTheVolumeType) {
  const std::string id = NewVolumeId();
  cat_.reset();
  RawExec(path_,
          "INSERT INTO volumes (volume_id, account_id, name, path, size_bytes, block_size, created_ms,"
          " volume_type) VALUES ('" + id + "', '" + std::string(kDefaultAccountId) +
              "', '', '/dev/vdd', 0, 4096, 0, 'io1')");
  auto c = Catalog::Open(path_);
  ASSERT_TRUE(c) << c.error().ToString();
  cat_ = std::move(*c);
  auto v = cat_->GetVolume(id);
  ASSERT_TRUE(v) << v.error().ToString();
  EXPECT_EQ(v->volume_type, "io1");
}

TEST_F(CatalogSharingTest, SqliteMigratesVersionTenCatalog) {
  ASSERT_GE(Catalog::LatestSchemaVersion(), 11);
  auto volume = [&](const std::string& name, std::vector<Tag> tags) {
    VolumeRecord v;
    v.volume_id = NewVolumeId();
    v.account_id = kDefaultAccountId;
    v.name = name;
    v.path = "/dev/vdc";
    v.block_size = 4096;
    v.volume_type = "standard";
    v.tags = std::move(tags);
    EXPECT_TRUE(cat_->InsertVolume(v));
    return v.volume_id;
  };
  const std::string named = volume("old", {{"Owner", "ann"}});
  const std::string tagged = volume("", {{"Name", "from-tag"}});
  const std::string unnamed = volume("", {});
  const std::string instance = NewInstanceId();
  ASSERT_TRUE(cat_->InsertInstance({instance, kDefaultAccountId, "web", kT0, {}}));
  SnapshotRecord s = AddSnapshot(kDefaultAccountId, {{"Name", "snap"}});
  ASSERT_TRUE(cat_->MarkCompleted(s.snapshot_id, kT0 + 1, 0, 0, 0));
  cat_.reset();
  // Back to what version 10 wrote: no volume_type column, no snapshot_permissions table, no
  // tags of instances, a volume's name independent of its Name tag (and no quotas table, which
  // version 12 adds, nor the access key status columns of version 13, nor the maintenance
  // tables of version 15, nor the drills of 16, the Recycle Bin of 17, the rollback tasks and
  // instance states of 18, the restore requests' kind and task of 19, the Recycle Bin's default
  // rule and kept grants of 20, the instances' root device and a task's replacement volume of 21, the
  // instance hooks of 22, the direct-snapshot journal of 23).
  RawExec(path_,
          "ALTER TABLE volumes DROP COLUMN volume_type; DROP TABLE snapshot_permissions; DROP TABLE quotas;"
          " DROP TABLE maintenance_runs; DROP TABLE snapshot_verifications;"
          " DROP TABLE restore_drills; DROP TABLE recycle_bin_settings; DROP TABLE recycle_bin_permissions;"
          " DROP TABLE recycle_bin_tags; DROP TABLE recycle_bin; DROP TABLE rbin_rules;"
          " DROP TABLE replace_root_volume_tasks; ALTER TABLE instances DROP COLUMN state;"
          " ALTER TABLE instances DROP COLUMN root_device;"
          " ALTER TABLE restore_requests DROP COLUMN restore_type; ALTER TABLE restore_requests DROP COLUMN task_id;"
          " ALTER TABLE access_keys DROP COLUMN active; ALTER TABLE access_keys DROP COLUMN status_ms;"
          " DROP TABLE usage_journal; DROP TABLE usage_objects; DROP TABLE usage_account_refs;"
          " DROP TABLE usage_snapshots; DROP TABLE usage_accounts; DROP TABLE usage_state;"
          " DROP TABLE instance_hooks; DROP TABLE direct_blocks; DROP TABLE direct_snapshots; DROP TABLE hosts;"
          " DROP INDEX volumes_by_host; ALTER TABLE volumes DROP COLUMN host_id;"
          " ALTER TABLE instances DROP COLUMN host_id; DROP TABLE cluster_leases;"
          " DROP TABLE snapshot_queue;"
          " ALTER TABLE lifecycle_runs DROP COLUMN host_id; ALTER TABLE lifecycle_runs DROP COLUMN lease_generation;"
          " DROP TABLE volume_queue;"
          " DELETE FROM tags WHERE resource_id LIKE 'i-%';"
          " DELETE FROM tags WHERE resource_id = '" + named + "' AND key = 'Name';"
          " UPDATE volumes SET name = 'stale' WHERE volume_id = '" + tagged + "';"
          " PRAGMA user_version = 10;");

  auto c = Catalog::Open(path_);
  ASSERT_TRUE(c) << c.error().ToString();
  cat_ = std::move(*c);
  EXPECT_EQ(cat_->SchemaVersion(), Catalog::LatestSchemaVersion());
  // Version 14 journals the snapshots completed before it, for usage accounting to count.
  EXPECT_EQ(*cat_->PendingUsageEntries(), 1u);
  EXPECT_EQ((*cat_->NextUsageEntry())->snapshot_id, s.snapshot_id);
  EXPECT_EQ(cat_->GetVolume(named)->volume_type, "gp2");  // existing volumes default to gp2
  EXPECT_TRUE(cat_->ListSnapshotPermissions(s.snapshot_id)->empty());
  ASSERT_TRUE(cat_->AddSnapshotPermissions(s.snapshot_id, {"all"}));
  EXPECT_EQ(cat_->ListSnapshotsSharedWith("111111111111")->size(), 1u);

  // Names become Name tags; a volume's Name tag already there wins over its name.
  auto v = cat_->GetVolume(named);
  EXPECT_EQ(v->name, "old");
  EXPECT_EQ(v->tags, (std::vector<Tag>{{"Name", "old"}, {"Owner", "ann"}}));
  v = cat_->GetVolume(tagged);
  EXPECT_EQ(v->name, "from-tag");
  EXPECT_EQ(v->tags, (std::vector<Tag>{{"Name", "from-tag"}}));
  v = cat_->GetVolume(unnamed);
  EXPECT_EQ(v->name, "");
  EXPECT_TRUE(v->tags.empty());
  auto i = cat_->GetInstance(instance);
  EXPECT_EQ(i->name, "web");
  EXPECT_EQ(i->tags, (std::vector<Tag>{{"Name", "web"}}));
  EXPECT_EQ(cat_->GetSnapshot(s.snapshot_id)->tags, (std::vector<Tag>{{"Name", "snap"}}));
}

}  // namespace
}  // namespace snapvol
