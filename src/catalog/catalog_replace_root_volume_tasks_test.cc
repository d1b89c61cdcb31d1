// Tests of the replace-root-volume tasks table (in-place rollbacks) and of instance states.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_test_util.h"
#include "core/ids.h"

namespace snapvol {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;

class ReplaceRootVolumeTasksTest : public testing_util::FreshCatalogTest {
 protected:
  ReplaceRootVolumeTaskRecord NewTask(const std::string& token = "") {
    ReplaceRootVolumeTaskRecord t;
    t.task_id = NewReplaceRootVolumeTaskId();
    t.account_id = kDefaultAccountId;
    t.instance_id = NewInstanceId();
    t.volume_id = NewVolumeId();
    t.snapshot_id = NewSnapshotId();
    t.client_token = token;
    t.start_ms = kT0;
    t.tags = {{"Purpose", "undo"}, {"Owner", "web"}};
    return t;
  }
};

TEST_F(ReplaceRootVolumeTasksTest, RoundTripUpdateAndEnd) {
  auto t = NewTask("tok-1");
  EXPECT_EQ(t.task_id.size(), std::string("replacevol-").size() + 17);
  ASSERT_TRUE(cat_->InsertReplaceRootVolumeTask(t));
  auto got = cat_->GetReplaceRootVolumeTask(t.task_id);
  ASSERT_TRUE(got) << got.error().ToString();
  std::sort(t.tags.begin(), t.tags.end(), [](const Tag& a, const Tag& b) { return a.key < b.key; });
  EXPECT_EQ(*got, t);

  t.state = "in-progress";
  t.progress = 40;
  t.bytes_written = 12345;
  t.safety_snapshot_id = NewSnapshotId();
  ASSERT_TRUE(cat_->UpdateReplaceRootVolumeTask(t));
  EXPECT_EQ(cat_->ListUnfinishedReplaceRootVolumeTasks()->size(), 1u);
  t.state = "succeeded";
  t.progress = 100;
  t.complete_ms = kT0 + 5;
  ASSERT_TRUE(cat_->UpdateReplaceRootVolumeTask(t));
  EXPECT_EQ(*cat_->GetReplaceRootVolumeTask(t.task_id), t);
  EXPECT_TRUE(cat_->ListUnfinishedReplaceRootVolumeTasks()->empty());
  // An ended task never changes again.
  t.state = "failed";
  auto again = cat_->UpdateReplaceRootVolumeTask(t);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(cat_->GetReplaceRootVolumeTask(t.task_id)->state, "succeeded");
}

TEST_F(ReplaceRootVolumeTasksTest, ClientTokenIsUniquePerAccountAndFound) {
  auto a = NewTask("same");
  ASSERT_TRUE(cat_->InsertReplaceRootVolumeTask(a));
  auto b = NewTask("same");
  auto dup = cat_->InsertReplaceRootVolumeTask(b);
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);
  auto found = cat_->FindReplaceRootVolumeTaskByToken(kDefaultAccountId, "same");
  ASSERT_TRUE(found && *found);
  EXPECT_EQ((*found)->task_id, a.task_id);
  EXPECT_FALSE(*cat_->FindReplaceRootVolumeTaskByToken(kDefaultAccountId, "other"));
  // Tasks without a token do not collide.
  ASSERT_TRUE(cat_->InsertReplaceRootVolumeTask(NewTask()));
  ASSERT_TRUE(cat_->InsertReplaceRootVolumeTask(NewTask()));
  EXPECT_EQ(cat_->ListReplaceRootVolumeTasks(kDefaultAccountId)->size(), 3u);
  EXPECT_TRUE(cat_->ListReplaceRootVolumeTasks(std::string("000000000000"))->empty());
  EXPECT_EQ(cat_->GetReplaceRootVolumeTask("replacevol-0123456789abcdef0").error().code(), ErrorCode::kNotFound);
  auto bad = NewTask();
  bad.task_id = "replacevol-123";
  EXPECT_EQ(cat_->InsertReplaceRootVolumeTask(bad).error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(ReplaceRootVolumeTasksTest, InstanceStateIsKept) {
  InstanceRecord i;
  i.instance_id = NewInstanceId();
  i.account_id = kDefaultAccountId;
  i.created_ms = kT0;
  ASSERT_TRUE(cat_->InsertInstance(i));
  EXPECT_EQ(cat_->GetInstance(i.instance_id)->state, "running");
  ASSERT_TRUE(cat_->SetInstanceState(i.instance_id, "stopped"));
  EXPECT_EQ(cat_->GetInstance(i.instance_id)->state, "stopped");
  EXPECT_EQ(cat_->SetInstanceState(i.instance_id, "paused").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(cat_->SetInstanceState(NewInstanceId(), "stopped").error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace snapvol
