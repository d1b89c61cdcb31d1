// Tests of the replace-root-volume tasks table (in-place rollbacks) and of instance states.
#include <gtest/gtest.h>

#include <algorithm>
#include <latch>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_test_util.h"
#include "core/ids.h"

namespace snapvol {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;
constexpr char kB[] = "host-bbbbbbbbbbbbbbbbb";
constexpr char kC[] = "host-ccccccccccccccccc";

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

// A task routed to its volume's host (runner QueuedRunner(host)) is claimed by that host only,
// oldest first, once; pending tasks of other runners and ended ones are never claimed.
TEST_F(ReplaceRootVolumeTasksTest, QueuedTasksAreClaimedByTheirHostOnlyOldestFirstAndOnce) {
  auto older = NewTask(), newer = NewTask(), for_c = NewTask(), local = NewTask(), ended = NewTask();
  older.runner = newer.runner = ended.runner = QueuedRunner(kB);
  for_c.runner = QueuedRunner(kC);
  local.runner = std::string("pid:7@boot@") + kB;
  newer.start_ms = kT0 + 10;
  ended.start_ms = kT0 - 10;
  ended.state = "failed";
  for (const auto& t : {older, newer, for_c, local, ended}) ASSERT_TRUE(cat_->InsertReplaceRootVolumeTask(t));
  EXPECT_EQ(cat_->ClaimReplaceRootVolumeTask("", "rb").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(cat_->ClaimReplaceRootVolumeTask(kB, "").error().code(), ErrorCode::kInvalidArgument);

  auto first = cat_->ClaimReplaceRootVolumeTask(kB, "rb");
  ASSERT_TRUE(first) << first.error().ToString();
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ((*first)->task_id, older.task_id);
  EXPECT_EQ((*first)->runner, "rb");
  EXPECT_EQ((*first)->state, "pending");
  EXPECT_EQ((*first)->tags.size(), 2u);  // the whole row, tags included
  EXPECT_EQ(cat_->GetReplaceRootVolumeTask(older.task_id)->runner, "rb");
  auto second = cat_->ClaimReplaceRootVolumeTask(kB, "rb2");
  ASSERT_TRUE(second && second->has_value());
  EXPECT_EQ((*second)->task_id, newer.task_id);
  auto none = cat_->ClaimReplaceRootVolumeTask(kB, "rb");
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
  // The others are as they were.
  EXPECT_EQ(cat_->GetReplaceRootVolumeTask(for_c.task_id)->runner, QueuedRunner(kC));
  EXPECT_EQ(cat_->GetReplaceRootVolumeTask(local.task_id)->runner, local.runner);
  EXPECT_EQ(cat_->GetReplaceRootVolumeTask(ended.task_id)->runner, QueuedRunner(kB));
  auto c = cat_->ClaimReplaceRootVolumeTask(kC, "rc");
  ASSERT_TRUE(c && c->has_value());
  EXPECT_EQ((*c)->task_id, for_c.task_id);
}

// Two catalogs on one database, each on a thread of its own, claim from 20 tasks queued for one
// host: every task is claimed exactly once, and its row names the claimer that got it.
TEST_F(ReplaceRootVolumeTasksTest, TwoCatalogsRacingClaimEachTaskExactlyOnce) {
  auto other = Catalog::Open(path_);
  ASSERT_TRUE(other) << other.error().ToString();
  constexpr int kTasks = 20;
  for (int i = 0; i < kTasks; ++i) {
    auto t = NewTask();
    t.runner = QueuedRunner(kB);
    t.start_ms = kT0 + i;
    ASSERT_TRUE(cat_->InsertReplaceRootVolumeTask(t));
  }
  std::vector<std::string> got_a, got_b;
  std::string error;
  std::latch start(2);
  auto claim_all = [&](Catalog* cat, const std::string& runner, std::vector<std::string>* got) {
    start.arrive_and_wait();
    for (;;) {
      auto t = cat->ClaimReplaceRootVolumeTask(kB, runner);
      if (!t) {
        error = t.error().ToString();
        return;
      }
      if (!t->has_value()) return;
      got->push_back((*t)->task_id);
    }
  };
  std::thread ta([&] { claim_all(cat_.get(), "ra", &got_a); });
  std::thread tb([&] { claim_all(other->get(), "rb", &got_b); });
  ta.join();
  tb.join();
  ASSERT_EQ(error, "");
  std::vector<std::string> all = got_a;
  all.insert(all.end(), got_b.begin(), got_b.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kTasks));
  EXPECT_EQ(std::unique(all.begin(), all.end()), all.end());
  auto listed = cat_->ListReplaceRootVolumeTasks(std::nullopt);
  ASSERT_TRUE(listed) << listed.error().ToString();
  ASSERT_EQ(listed->size(), static_cast<size_t>(kTasks));
  for (const auto& t : *listed) {
    const bool by_a = std::find(got_a.begin(), got_a.end(), t.task_id) != got_a.end();
    EXPECT_EQ(t.runner, by_a ? "ra" : "rb") << t.task_id;
  }
}

// On PostgreSQL a routed task wakes the hosts that wait for queued work (their claimers), as a
// routed snapshot does; a task run where it was asked announces nothing. SQLite announces nothing.
TEST_F(ReplaceRootVolumeTasksTest, ARoutedTaskWakesAWaitingHostOnPostgres) {
  auto other = Catalog::Open(path_);
  ASSERT_TRUE(other) << other.error().ToString();
  if (!cat_->NotifiesSnapshotJobs()) {
    EXPECT_FALSE((*other)->NotifiesSnapshotJobs());
    return;
  }
  auto idle = (*other)->WaitForSnapshotJobs(10);  // starts listening
  ASSERT_TRUE(idle) << idle.error().ToString();
  auto here = NewTask();
  here.runner = "pid:7@boot";
  ASSERT_TRUE(cat_->InsertReplaceRootVolumeTask(here));
  auto quiet = (*other)->WaitForSnapshotJobs(10);
  ASSERT_TRUE(quiet);
  EXPECT_FALSE(*quiet);
  auto routed = NewTask();
  routed.runner = QueuedRunner(kB);
  ASSERT_TRUE(cat_->InsertReplaceRootVolumeTask(routed));
  auto woke = (*other)->WaitForSnapshotJobs(30'000);  // a bound, not a timing: true ends it at once
  ASSERT_TRUE(woke) << woke.error().ToString();
  EXPECT_TRUE(*woke);
}

}  // namespace
}  // namespace snapvol
