// The catalog's queue of routed volume creations (docs/multi-host.md part 3): a volume placed on
// another host is inserted `creating` with no path and queued for that host; claimed oldest
// first by that host only, claimed once when two catalogs race, finished only by its claimer,
// put back on a restart. And the sweep's ends of a dead host's work (part 5): its `creating`
// volumes and its `pending` rollback tasks, only under the lease holder's fence and only while
// that host is still not up. Runs on SQLite (label unit) and on the PostgreSQL fixture (label pg).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_test_fixture.h"
#include "core/ids.h"

namespace snapvol {
namespace {

using catalog_testing::kT0;
using catalog_testing::MakeVolume;

constexpr char kA[] = "host-aaaaaaaaaaaaaaaaa";
constexpr char kB[] = "host-bbbbbbbbbbbbbbbbb";

class CatalogVolumeQueueTest : public catalog_testing::OpenCatalogTest {
 protected:
  // A volume asked of some host and placed on `host`, as CreateVolume writes it.
  VolumeRecord Routed(const std::string& host, int64_t created) {
    VolumeRecord v = MakeVolume();
    v.path = "";
    v.state = "creating";
    v.managed = true;
    v.host_id = host;
    v.created_ms = created;
    return v;
  }
  VolumeRecord Get(const std::string& id) { return *cat_->GetVolume(id); }
};

TEST_F(CatalogVolumeQueueTest, ARoutedVolumeIsCreatingOnItsHostAndClaimedOldestFirstByThatHostOnce) {
  VolumeRecord later = Routed(kB, kT0 + 2), first = Routed(kB, kT0 + 1), of_a = Routed(kA, kT0);
  for (const auto* v : {&later, &first, &of_a}) ASSERT_TRUE(cat_->InsertRoutedVolume(*v));
  VolumeRecord read = Get(first.volume_id);
  EXPECT_EQ(read.state, "creating");
  EXPECT_EQ(read.host_id, kB);
  EXPECT_EQ(read.path, "");
  auto queued = cat_->ListVolumeCreations();
  ASSERT_TRUE(queued);
  ASSERT_EQ(queued->size(), 3u);
  EXPECT_EQ((*queued)[0], (VolumeCreationRecord{of_a.volume_id, kA, kT0, "", 0}));

  auto one = cat_->ClaimVolumeCreation(kB, "r1", kT0 + 10);
  ASSERT_TRUE(one) << one.error().ToString();
  ASSERT_TRUE(one->has_value());
  EXPECT_EQ((*one)->volume_id, first.volume_id);  // oldest of B's; A's older one is not B's
  EXPECT_EQ((*one)->state, "creating");
  auto two = cat_->ClaimVolumeCreation(kB, "r1", kT0 + 11);
  ASSERT_TRUE(two && two->has_value());
  EXPECT_EQ((*two)->volume_id, later.volume_id);
  auto none = cat_->ClaimVolumeCreation(kB, "r2", kT0 + 12);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
  auto claimed = cat_->ListVolumeCreations();
  ASSERT_TRUE(claimed);
  for (const auto& c : *claimed) {
    EXPECT_EQ(c.claimed_by, c.host_id == kA ? "" : "r1") << c.volume_id;
  }
  EXPECT_EQ(cat_->InsertRoutedVolume(first).error().code(), ErrorCode::kAlreadyExists);
  // A's older creation is still A's to claim: B's claims neither took nor dropped it.
  auto of_a_claimed = cat_->ClaimVolumeCreation(kA, "ra", kT0 + 13);
  ASSERT_TRUE(of_a_claimed && of_a_claimed->has_value());
  EXPECT_EQ((*of_a_claimed)->volume_id, of_a.volume_id);
}

TEST_F(CatalogVolumeQueueTest, OnlyTheClaimerFinishesAndARestartPutsClaimsBack) {
  VolumeRecord v = Routed(kB, kT0), w = Routed(kB, kT0 + 1);
  ASSERT_TRUE(cat_->InsertRoutedVolume(v));
  ASSERT_TRUE(cat_->InsertRoutedVolume(w));
  EXPECT_EQ(cat_->FinishVolumeCreation(v.volume_id, "r1", "/b/vol.img", "available").error().code(),
            ErrorCode::kConflict);  // not claimed yet
  ASSERT_TRUE(cat_->ClaimVolumeCreation(kB, "r1", kT0)->has_value());
  EXPECT_EQ(cat_->FinishVolumeCreation(v.volume_id, "r2", "/b/vol.img", "available").error().code(),
            ErrorCode::kConflict);
  EXPECT_EQ(cat_->FinishVolumeCreation(NewVolumeId(), "r1", "/b/x.img", "available").error().code(),
            ErrorCode::kNotFound);
  EXPECT_EQ(cat_->FinishVolumeCreation(v.volume_id, "r1", "", "available").error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(Get(v.volume_id).state, "creating");
  // B restarts: the claim goes back, and the new process finishes it.
  auto back = cat_->UnclaimVolumeCreations(kB);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, 1u);
  auto again = cat_->ClaimVolumeCreation(kB, "r2", kT0 + 5);
  ASSERT_TRUE(again && again->has_value());
  EXPECT_EQ((*again)->volume_id, v.volume_id);
  ASSERT_TRUE(cat_->FinishVolumeCreation(v.volume_id, "r2", "/b/vol.img", "available"));
  VolumeRecord made = Get(v.volume_id);
  EXPECT_EQ(made.state, "available");
  EXPECT_EQ(made.path, "/b/vol.img");
  auto left = cat_->ListVolumeCreations();
  ASSERT_TRUE(left);
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].volume_id, w.volume_id);
  // A creation that failed on its host says why.
  ASSERT_TRUE(cat_->ClaimVolumeCreation(kB, "r2", kT0 + 6)->has_value());
  ASSERT_TRUE(cat_->FinishVolumeCreation(w.volume_id, "r2", "", "error", "no space"));
  EXPECT_EQ(Get(w.volume_id).state, "error");
  EXPECT_EQ(Get(w.volume_id).state_message, "no space");
  EXPECT_TRUE(cat_->ListVolumeCreations()->empty());
}

TEST_F(CatalogVolumeQueueTest, BadRoutedVolumesAreRefusedAndChangeNothing) {
  VolumeRecord no_host = Routed("", kT0);
  EXPECT_EQ(cat_->InsertRoutedVolume(no_host).error().code(), ErrorCode::kInvalidArgument);
  VolumeRecord made = Routed(kB, kT0);
  made.state = "available";
  EXPECT_EQ(cat_->InsertRoutedVolume(made).error().code(), ErrorCode::kInvalidArgument);
  VolumeRecord with_path = Routed(kB, kT0);
  with_path.path = "/a/vol.img";  // the asking host's directory means nothing on B
  EXPECT_EQ(cat_->InsertRoutedVolume(with_path).error().code(), ErrorCode::kInvalidArgument);
  VolumeRecord unknown = Routed(kB, kT0);
  unknown.account_id = "999999999999";
  EXPECT_FALSE(cat_->InsertRoutedVolume(unknown));
  EXPECT_TRUE(cat_->ListVolumes(std::nullopt)->empty());
  EXPECT_TRUE(cat_->ListVolumeCreations()->empty());
  // A local volume still needs its path.
  VolumeRecord local = MakeVolume();
  local.path = "";
  EXPECT_EQ(cat_->InsertVolume(local).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(cat_->ClaimVolumeCreation("", "r", kT0).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(cat_->ClaimVolumeCreation(kB, "", kT0).error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(CatalogVolumeQueueTest, AVolumeEndedWhileQueuedIsDroppedNotClaimed) {
  VolumeRecord ended = Routed(kB, kT0), next = Routed(kB, kT0 + 1);
  ASSERT_TRUE(cat_->InsertRoutedVolume(ended));
  ASSERT_TRUE(cat_->InsertRoutedVolume(next));
  ASSERT_TRUE(cat_->SetVolumeState(ended.volume_id, "error", "ended elsewhere"));
  auto got = cat_->ClaimVolumeCreation(kB, "r1", kT0 + 2);
  ASSERT_TRUE(got && got->has_value());
  EXPECT_EQ((*got)->volume_id, next.volume_id);
  auto left = cat_->ListVolumeCreations();
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].volume_id, next.volume_id);
  EXPECT_EQ(Get(ended.volume_id).state_message, "ended elsewhere");
}

// Two catalogs on one database, each on a thread of its own, claim from one queue of 20
// creations: every one is claimed exactly once.
TEST_F(CatalogVolumeQueueTest, TwoCatalogsRacingClaimEachCreationExactlyOnce) {
  std::unique_ptr<Catalog> other = Open();
  ASSERT_NE(other, nullptr);
  constexpr int kCreations = 20;
  for (int i = 0; i < kCreations; ++i) ASSERT_TRUE(cat_->InsertRoutedVolume(Routed(kB, kT0 + i)));
  std::vector<std::string> got_a, got_b;
  std::string error;
  std::latch start(2);
  auto claim_all = [&](Catalog* c, const std::string& runner, std::vector<std::string>* got) {
    start.arrive_and_wait();
    for (;;) {
      auto v = c->ClaimVolumeCreation(kB, runner, kT0 + 100);
      if (!v) {
        error = v.error().ToString();
        return;
      }
      if (!v->has_value()) return;
      got->push_back((*v)->volume_id);
    }
  };
  std::thread ta([&] { claim_all(cat_.get(), "ra", &got_a); });
  std::thread tb([&] { claim_all(other.get(), "rb", &got_b); });
  ta.join();
  tb.join();
  ASSERT_EQ(error, "");
  std::vector<std::string> all = got_a;
  all.insert(all.end(), got_b.begin(), got_b.end());
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all.size(), static_cast<size_t>(kCreations));
  EXPECT_EQ(std::unique(all.begin(), all.end()), all.end());
  auto claimed = cat_->ListVolumeCreations();
  ASSERT_TRUE(claimed);
  for (const auto& c : *claimed) {
    const bool by_a = std::find(got_a.begin(), got_a.end(), c.volume_id) != got_a.end();
    EXPECT_EQ(c.claimed_by, by_a ? "ra" : "rb") << c.volume_id;
  }
}

// The host sweep's end of a dead host's creations and rollback tasks (docs/multi-host.md part 5).
class EndAbandonedVolumeWorkTest : public CatalogVolumeQueueTest {
 protected:
  void SetUp() override {
    CatalogVolumeQueueTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(cat_->UpsertHost({kB, "rack-b", "http://b", "unix:/b", "0", kT0, kT0}));
    auto lease = cat_->AcquireClusterLease("maintenance", kA, kT0, 60'000);
    ASSERT_TRUE(lease) << lease.error().ToString();
    fence_ = {"maintenance", kA, lease->generation};
  }
  std::string PendingTask(const std::string& runner, const std::string& state = "pending") {
    ReplaceRootVolumeTaskRecord t;
    t.task_id = NewReplaceRootVolumeTaskId();
    t.account_id = kDefaultAccountId;
    t.volume_id = NewVolumeId();
    t.snapshot_id = NewSnapshotId();
    t.start_ms = kT0;
    t.runner = runner;
    t.state = state;
    EXPECT_TRUE(cat_->InsertReplaceRootVolumeTask(t));
    return t.task_id;
  }
  static constexpr int64_t kTimeout = 30'000;
  const int64_t dead_ = kT0 + kTimeout + 1;
  const std::string b_runner_ = std::string("pid:77@boot-b@") + kB;
  LeaseFence fence_;
};

TEST_F(EndAbandonedVolumeWorkTest, EndsQueuedAndClaimedCreationsOfADeadHostOnly) {
  VolumeRecord queued = Routed(kB, kT0), claimed = Routed(kB, kT0 + 1);
  ASSERT_TRUE(cat_->InsertRoutedVolume(queued));
  ASSERT_TRUE(cat_->InsertRoutedVolume(claimed));
  ASSERT_TRUE(cat_->ClaimVolumeCreation(kB, b_runner_, kT0)->has_value());  // the older one
  // Up (exactly the timeout old): nothing ends.
  auto up = cat_->EndAbandonedVolume(queued.volume_id, kB, "gone", kT0 + kTimeout, kTimeout, fence_);
  ASSERT_TRUE(up) << up.error().ToString();
  EXPECT_FALSE(*up);
  for (const auto* v : {&queued, &claimed}) {
    auto ended = cat_->EndAbandonedVolume(v->volume_id, kB, "host rack-b gone", dead_, kTimeout, fence_);
    ASSERT_TRUE(ended) << ended.error().ToString();
    EXPECT_TRUE(*ended);
    EXPECT_EQ(Get(v->volume_id).state, "error");
    EXPECT_EQ(Get(v->volume_id).state_message, "host rack-b gone");
  }
  EXPECT_TRUE(cat_->ListVolumeCreations()->empty());
  // Twice, or for a host that does not hold it: nothing more.
  EXPECT_FALSE(*cat_->EndAbandonedVolume(queued.volume_id, kB, "gone", dead_, kTimeout, fence_));
  VolumeRecord of_a = Routed(kA, kT0);
  ASSERT_TRUE(cat_->InsertRoutedVolume(of_a));
  EXPECT_FALSE(*cat_->EndAbandonedVolume(of_a.volume_id, kB, "gone", dead_, kTimeout, fence_));
  EXPECT_EQ(Get(of_a.volume_id).state, "creating");
  // The finish of a claimer that was only slow is refused once it was ended: nothing made twice.
  EXPECT_FALSE(cat_->FinishVolumeCreation(claimed.volume_id, b_runner_, "/b/v.img", "available"));
  EXPECT_EQ(Get(claimed.volume_id).state, "error");
}

TEST_F(EndAbandonedVolumeWorkTest, AStaleHolderEndsNothingAndAHostBackKeepsItsWork) {
  VolumeRecord v = Routed(kB, kT0);
  ASSERT_TRUE(cat_->InsertRoutedVolume(v));
  const std::string task = PendingTask(QueuedRunner(kB));
  ASSERT_TRUE(cat_->Heartbeat(kB, dead_ - 5));  // came back after the sweep judged it
  EXPECT_FALSE(*cat_->EndAbandonedVolume(v.volume_id, kB, "gone", dead_, kTimeout, fence_));
  EXPECT_FALSE(*cat_->EndAbandonedRollbackTask(task, QueuedRunner(kB), kB, "gone", dead_, kTimeout, fence_));
  auto taken = cat_->AcquireClusterLease("maintenance", kB, kT0 + 60'000, 60'000);
  ASSERT_TRUE(taken);
  const int64_t later = kT0 + 60'001 + kTimeout;
  auto stale = cat_->EndAbandonedVolume(v.volume_id, kB, "gone", later, kTimeout, fence_);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code(), ErrorCode::kConflict);
  auto stale_task = cat_->EndAbandonedRollbackTask(task, QueuedRunner(kB), kB, "gone", later, kTimeout, fence_);
  ASSERT_FALSE(stale_task);
  EXPECT_EQ(stale_task.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(Get(v.volume_id).state, "creating");
  EXPECT_EQ(cat_->GetReplaceRootVolumeTask(task)->state, "pending");
  EXPECT_EQ(cat_->ListVolumeCreations()->size(), 1u);
}

TEST_F(EndAbandonedVolumeWorkTest, EndsPendingRollbackTasksUnderTheRunnerJudgedOnly) {
  const std::string queued = PendingTask(QueuedRunner(kB)), claimed = PendingTask(b_runner_);
  const std::string running = PendingTask(b_runner_, "in-progress");
  for (const auto& [id, runner] : {std::pair{queued, QueuedRunner(kB)}, std::pair{claimed, b_runner_}}) {
    auto ended = cat_->EndAbandonedRollbackTask(id, runner, kB, "host rack-b unreachable", dead_, kTimeout, fence_);
    ASSERT_TRUE(ended) << ended.error().ToString();
    EXPECT_TRUE(*ended);
    auto t = cat_->GetReplaceRootVolumeTask(id);
    EXPECT_EQ(t->state, "failed");
    EXPECT_EQ(t->reason, "host rack-b unreachable");
    EXPECT_EQ(t->runner, "");
    EXPECT_EQ(t->complete_ms, dead_);
  }
  // In progress: it wrote part of the volume; its host resumes it (not ended here).
  EXPECT_FALSE(*cat_->EndAbandonedRollbackTask(running, b_runner_, kB, "gone", dead_, kTimeout, fence_));
  EXPECT_EQ(cat_->GetReplaceRootVolumeTask(running)->state, "in-progress");
  // Another runner than the one judged: left alone; a runner not B's: refused.
  const std::string other = PendingTask(b_runner_);
  EXPECT_FALSE(*cat_->EndAbandonedRollbackTask(other, std::string("pid:78@boot-b@") + kB, kB, "gone", dead_,
                                               kTimeout, fence_));
  for (const std::string& runner : {std::string("pid:1@boot@") + kA, QueuedRunner(kA), std::string("")}) {
    auto bad = cat_->EndAbandonedRollbackTask(other, runner, kB, "gone", dead_, kTimeout, fence_);
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  }
  EXPECT_EQ(cat_->GetReplaceRootVolumeTask(other)->state, "pending");
}

}  // namespace
}  // namespace snapvol
