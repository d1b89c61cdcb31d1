// Tests of an instance's root device (migration 21): attaching there makes a volume the root,
// SwapRootVolume replaces the root in one transaction (both changes or neither), and the
// migration takes the root device from an existing boot volume.
#include <gtest/gtest.h>
#include <sqlite3.h>

#include "catalog/catalog_test_fixture.h"
#include "catalog/catalog_test_util.h"
#include "core/ids.h"

namespace snapvol {
namespace {

using catalog_testing::RawExec;

constexpr int64_t kT0 = 1'700'000'000'000;

class CatalogRootVolumesTest : public testing_util::FreshCatalogTest {
 protected:
  void SetUp() override {
    FreshCatalogTest::SetUp();
    instance_ = NewInstanceId();
    ASSERT_TRUE(cat_->InsertInstance({instance_, kDefaultAccountId, "web", kT0, {}}));
  }
  VolumeRecord Get(const std::string& id) { return *cat_->GetVolume(id); }
  std::string instance_;
};

TEST_F(CatalogRootVolumesTest, TheVolumeAtTheRootDeviceIsTheRoot) {
  EXPECT_EQ(cat_->GetInstance(instance_)->root_device, "/dev/xvda");
  const std::string data = AddManagedVolume(), root = AddManagedVolume();
  ASSERT_TRUE(cat_->SetVolumeAttachment(data, instance_, "/dev/sdf", kT0));
  ASSERT_TRUE(cat_->SetVolumeAttachment(root, instance_, "/dev/xvda", kT0));
  EXPECT_FALSE(Get(data).boot);
  EXPECT_TRUE(Get(root).boot);
  ASSERT_TRUE(cat_->SetVolumeAttachment(root, "", "", 0));
  EXPECT_FALSE(Get(root).boot);
  // Another root device name, given at creation.
  InstanceRecord other{NewInstanceId(), kDefaultAccountId, "db", kT0, {}};
  other.root_device = "/dev/sda1";
  ASSERT_TRUE(cat_->InsertInstance(other));
  EXPECT_EQ(cat_->GetInstance(other.instance_id)->root_device, "/dev/sda1");
  ASSERT_TRUE(cat_->SetVolumeAttachment(root, other.instance_id, "/dev/xvda", kT0));
  EXPECT_FALSE(Get(root).boot);
  other.instance_id = NewInstanceId();
  other.root_device = "sda1";
  EXPECT_EQ(cat_->InsertInstance(other).error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(CatalogRootVolumesTest, SwapDetachesTheOldRootAndAttachesTheNewOneTogether) {
  const std::string old_root = AddManagedVolume(instance_, "/dev/xvda", true), fresh = AddManagedVolume();
  ASSERT_TRUE(cat_->SwapRootVolume(instance_, old_root, fresh, kT0 + 5));
  VolumeRecord o = Get(old_root), n = Get(fresh);
  EXPECT_TRUE(o.instance_id.empty() && o.device.empty() && !o.boot);
  EXPECT_EQ(n.instance_id, instance_);
  EXPECT_EQ(n.device, "/dev/xvda");
  EXPECT_TRUE(n.boot);
  EXPECT_EQ(n.attach_ms, kT0 + 5);
}

TEST_F(CatalogRootVolumesTest, SwapThatCannotAttachTheNewVolumeChangesNothing) {
  const std::string old_root = AddManagedVolume(instance_, "/dev/xvda", true);
  // The new volume is attached elsewhere: the old root's detach (the first statement) must
  // be undone with it.
  const std::string elsewhere = AddManagedVolume(instance_, "/dev/sdg");
  auto st = cat_->SwapRootVolume(instance_, old_root, elsewhere, kT0 + 5);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kConflict);
  VolumeRecord o = Get(old_root);
  EXPECT_EQ(o.instance_id, instance_);
  EXPECT_EQ(o.device, "/dev/xvda");
  EXPECT_TRUE(o.boot);
  EXPECT_EQ(Get(elsewhere).device, "/dev/sdg");
  // A volume that does not exist: the same.
  ASSERT_FALSE(cat_->SwapRootVolume(instance_, old_root, NewVolumeId(), kT0 + 6));
  EXPECT_TRUE(Get(old_root).boot);
  EXPECT_EQ(Get(old_root).instance_id, instance_);
}

TEST_F(CatalogRootVolumesTest, SwapRefusesAnOldVolumeThatIsNotTheRoot) {
  const std::string data = AddManagedVolume(instance_, "/dev/sdf"), fresh = AddManagedVolume();
  auto st = cat_->SwapRootVolume(instance_, data, fresh, kT0);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(Get(data).device, "/dev/sdf");
  EXPECT_TRUE(Get(fresh).instance_id.empty());
  EXPECT_EQ(cat_->SwapRootVolume(NewInstanceId(), data, fresh, kT0).error().code(), ErrorCode::kNotFound);
}

TEST_F(CatalogRootVolumesTest, SqliteMigrationTakesTheRootDeviceFromTheBootVolume) {
  const std::string boot = AddManagedVolume(instance_, "/dev/sda1", true);
  const std::string plain = NewInstanceId();
  ASSERT_TRUE(cat_->InsertInstance({plain, kDefaultAccountId, "plain", kT0, {}}));
  const std::string at_xvda = AddManagedVolume(plain, "/dev/xvda", false);
  cat_.reset();
  // Back to version 20: without what 21 adds (and 22's instance hooks, 23's direct-snapshot
  // journal, 24's hosts, 25's owners, 26's leases, 28's run hosts, 29's snapshot queue, 30's
  // lifecycle run hosts and 31's volume queue, which come after it; 27 renames tag keys only).
  RawExec(path_,
          "DROP INDEX volumes_by_host; ALTER TABLE volumes DROP COLUMN host_id;"
          " ALTER TABLE instances DROP COLUMN host_id; ALTER TABLE instances DROP COLUMN root_device;"
          " ALTER TABLE replace_root_volume_tasks DROP COLUMN replacement_volume_id; DROP TABLE instance_hooks;"
          " DROP TABLE direct_blocks; DROP TABLE direct_snapshots; DROP TABLE hosts; DROP TABLE cluster_leases; DROP TABLE snapshot_queue;"
          " ALTER TABLE maintenance_runs DROP COLUMN host_id; ALTER TABLE maintenance_runs DROP COLUMN lease_generation;"
          " ALTER TABLE lifecycle_runs DROP COLUMN host_id; ALTER TABLE lifecycle_runs DROP COLUMN lease_generation;"
          " DROP TABLE volume_queue;"
          " PRAGMA user_version = 20;");
  auto c = Catalog::Open(path_);
  ASSERT_TRUE(c) << c.error().ToString();
  cat_ = std::move(*c);
  EXPECT_EQ(cat_->GetInstance(instance_)->root_device, "/dev/sda1");
  EXPECT_TRUE(Get(boot).boot);
  EXPECT_EQ(cat_->GetInstance(plain)->root_device, "/dev/xvda");
  EXPECT_TRUE(Get(at_xvda).boot) << "a volume at the root device is the root";
}

}  // namespace
}  // namespace snapvol
