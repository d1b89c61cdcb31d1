// ManagedRootReplacement (engine/managed_root_replacement.h): connections are ended before the
// one-transaction swap, a failure before it leaves the old root and removes the new volume,
// DeleteReplacedRootVolume deletes the old one, a task a crash left in-progress is settled from
// the catalog, and the lineage rule for the snapshot.
#include "engine/managed_root_replacement.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <vector>

#include "catalog/catalog_test_util.h"
#include "core/ids.h"

namespace snapvol {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;

class ManagedRootReplacementTest : public testing_util::FreshCatalogTest {
 protected:
  void SetUp() override {
    FreshCatalogTest::SetUp();
    instance_ = NewInstanceId();
    ASSERT_TRUE(cat_->InsertInstance({instance_, kDefaultAccountId, "web", kT0, {}}));
    old_ = AddManagedVolume(instance_, "/dev/xvda", true);
    fresh_ = AddManagedVolume();
    hooks_.end_connections = [this](const std::string& id) -> Status {
      events_.push_back("end " + id);
      // The swap must not have happened yet: the old volume is still the root.
      auto v = cat_->GetVolume(old_);
      root_when_ended_ = v && v->instance_id == instance_ && v->boot;
      return end_result_;
    };
    hooks_.admit = [this](const std::string& id) { events_.push_back("admit " + id); };
    hooks_.delete_volume = [this](const std::string& id, const std::string& by_task) -> Status {
      events_.push_back("delete " + id);
      return cat_->DeleteVolume(id, by_task);
    };
  }
  SnapshotRecord AddSnapshot(const std::string& volume_id) {
    SnapshotRecord s;
    s.snapshot_id = NewSnapshotId();
    s.volume_id = volume_id;
    s.account_id = kDefaultAccountId;
    s.start_time_ms = kT0;
    s.block_size = 4096;
    EXPECT_TRUE(cat_->InsertSnapshot(s));
    return s;
  }
  ReplaceRootVolumeTaskRecord Task(const std::string& state = "pending", bool delete_replaced = false) {
    ReplaceRootVolumeTaskRecord t;
    t.task_id = NewReplaceRootVolumeTaskId();
    t.account_id = kDefaultAccountId;
    t.instance_id = instance_;
    t.volume_id = old_;
    t.snapshot_id = NewSnapshotId();
    t.replacement_volume_id = fresh_;
    t.state = state;
    t.delete_replaced = delete_replaced;
    t.start_ms = kT0;
    EXPECT_TRUE(cat_->InsertReplaceRootVolumeTask(t));
    return t;
  }
  ReplaceRootVolumeTaskRecord Row(const ReplaceRootVolumeTaskRecord& t) {
    return *cat_->GetReplaceRootVolumeTask(t.task_id);
  }
  bool IsRoot(const std::string& id) {
    auto v = cat_->GetVolume(id);
    return v && v->instance_id == instance_ && v->device == "/dev/xvda" && v->boot;
  }
  bool Exists(const std::string& id) { return cat_->GetVolume(id).has_value(); }

  std::string instance_, old_, fresh_;
  ManagedRootHooks hooks_;
  std::vector<std::string> events_;
  Status end_result_ = OkStatus();
  bool root_when_ended_ = false;
};

TEST_F(ManagedRootReplacementTest, EndsConnectionsThenSwapsInOneStep) {
  auto t = Task();
  ManagedRootReplacement(cat_.get(), hooks_).Run(t);
  EXPECT_EQ(Row(t).state, "succeeded") << Row(t).reason;
  EXPECT_EQ(Row(t).progress, 100);
  EXPECT_EQ(events_, (std::vector<std::string>{"end " + old_, "admit " + old_}));
  EXPECT_TRUE(root_when_ended_) << "connections must end before the swap";
  EXPECT_TRUE(IsRoot(fresh_));
  auto o = *cat_->GetVolume(old_);
  EXPECT_TRUE(o.instance_id.empty() && !o.boot) << "the old volume is kept, detached";
}

TEST_F(ManagedRootReplacementTest, ConnectionsThatDoNotEndFailTheTaskAndKeepTheOldRoot) {
  end_result_ = Conflict("NBD connections to it did not end within 30000 ms");
  auto t = Task();
  ManagedRootReplacement(cat_.get(), hooks_).Run(t);
  EXPECT_EQ(Row(t).state, "failed");
  EXPECT_NE(Row(t).reason.find("did not end"), std::string::npos) << Row(t).reason;
  EXPECT_TRUE(IsRoot(old_));
  EXPECT_FALSE(Exists(fresh_)) << "the replacement volume is removed";
  EXPECT_EQ(events_, (std::vector<std::string>{"end " + old_, "admit " + old_, "delete " + fresh_}));
}

TEST_F(ManagedRootReplacementTest, DeleteReplacedRootVolumeDeletesTheOldOneAfterTheSwap) {
  auto t = Task("pending", true);
  ManagedRootReplacement(cat_.get(), hooks_).Run(t);
  EXPECT_EQ(Row(t).state, "succeeded");
  EXPECT_TRUE(IsRoot(fresh_));
  EXPECT_FALSE(Exists(old_));
  EXPECT_EQ(events_.back(), "delete " + old_);
}

TEST_F(ManagedRootReplacementTest, AnOldVolumeNoLongerTheRootFailsBeforeAnything) {
  ASSERT_TRUE(cat_->SetVolumeAttachment(old_, "", "", 0));
  auto t = Task();
  ManagedRootReplacement(cat_.get(), hooks_).Run(t);
  EXPECT_EQ(Row(t).state, "failed");
  EXPECT_EQ(events_, (std::vector<std::string>{"delete " + fresh_})) << "no connection ended, nothing swapped";
}

TEST_F(ManagedRootReplacementTest, SettleAtStartOldRootStillAttachedFails) {
  auto t = Task("in-progress");
  ManagedRootReplacement(cat_.get(), hooks_).Run(t);  // resumed in-progress: settled, not redone
  EXPECT_EQ(Row(t).state, "failed");
  EXPECT_TRUE(IsRoot(old_));
  EXPECT_FALSE(Exists(fresh_));
  EXPECT_EQ(std::count(events_.begin(), events_.end(), "end " + old_), 0);
}

TEST_F(ManagedRootReplacementTest, SettleAtStartNewRootAttachedSucceeds) {
  auto t = Task("in-progress", true);
  ASSERT_TRUE(cat_->SwapRootVolume(instance_, old_, fresh_, kT0));  // the crash came after the swap
  ManagedRootReplacement(cat_.get(), hooks_).Settle(t);
  EXPECT_EQ(Row(t).state, "succeeded");
  EXPECT_TRUE(IsRoot(fresh_));
  EXPECT_FALSE(Exists(old_)) << "deletion asked for happens on settling too";
}

TEST_F(ManagedRootReplacementTest, SettleAtStartNoRootIsFailedDetached) {
  auto t = Task("in-progress");
  ASSERT_TRUE(cat_->SetVolumeAttachment(old_, "", "", 0));
  ManagedRootReplacement(cat_.get(), hooks_).Settle(t);
  EXPECT_EQ(Row(t).state, "failed-detached");
  EXPECT_NE(Row(t).reason.find(instance_), std::string::npos);
  EXPECT_TRUE(Exists(old_) && Exists(fresh_)) << "nothing is deleted when no root is attached";
}

TEST_F(ManagedRootReplacementTest, LineageFollowsRestoresBackwards) {
  // grand → snapshot g → parent restored from it → snapshot p → the root restored from it.
  const std::string grand = AddManagedVolume();
  SnapshotRecord g = AddSnapshot(grand);
  const std::string parent = AddManagedVolume("", "", false, g.snapshot_id);
  SnapshotRecord p = AddSnapshot(parent);
  const std::string root = AddManagedVolume("", "", false, p.snapshot_id);
  VolumeRecord r = *cat_->GetVolume(root);
  EXPECT_TRUE(*ManagedRootReplacement::InLineage(cat_.get(), r, AddSnapshot(root)));
  EXPECT_TRUE(*ManagedRootReplacement::InLineage(cat_.get(), r, p));
  EXPECT_TRUE(*ManagedRootReplacement::InLineage(cat_.get(), r, g));
  EXPECT_TRUE(*ManagedRootReplacement::InLineage(cat_.get(), r, AddSnapshot(grand)));
  EXPECT_FALSE(*ManagedRootReplacement::InLineage(cat_.get(), r, AddSnapshot(AddManagedVolume())));
  // A snapshot of a sibling (another volume restored from g) is not of the root's lineage.
  EXPECT_FALSE(*ManagedRootReplacement::InLineage(cat_.get(), r, AddSnapshot(AddManagedVolume("", "", false, g.snapshot_id))));
}

}  // namespace
}  // namespace snapvol
