// The catalog's queue of routed snapshot jobs (docs/multi-host.md part 3): queued for one host,
// claimed oldest first by that host only, claimed once when two catalogs race, finished only by
// its claimer, put back on a restart; a host that is not up has its pending snapshots ended
// (EndAbandonedSnapshot) only under the lease holder's fence, only while that host is still not
// up, and only under the runner the caller judged. Runs on SQLite (label unit) and again on the PostgreSQL
// fixture's server (pg.*, label pg).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <latch>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_test_fixture.h"

namespace snapvol {
namespace {

using catalog_testing::kT0;
using catalog_testing::MakeSnapshot;

constexpr char kA[] = "host-aaaaaaaaaaaaaaaaa";
constexpr char kB[] = "host-bbbbbbbbbbbbbbbbb";

SnapshotJobRecord Job(const std::string& id, const std::string& host, int64_t created,
                      std::vector<std::string> snaps = {}) {
  if (snaps.empty()) snaps = {id};
  return SnapshotJobRecord{id, host, "", std::move(snaps), false, created, "", 0};
}

class CatalogSnapshotQueueTest : public catalog_testing::OpenCatalogTest {};

TEST_F(CatalogSnapshotQueueTest, QueuedRunnerNamesItsHost) {
  EXPECT_EQ(QueuedRunner(kB), std::string("queued@") + kB);
  EXPECT_EQ(QueuedRunnerHost(QueuedRunner(kB)), kB);
  EXPECT_EQ(QueuedRunnerHost("pid:12@boot@host-bbbbbbbbbbbbbbbbb"), "");
  EXPECT_EQ(QueuedRunnerHost("queued@not-a-host"), "");
  EXPECT_EQ(QueuedRunnerHost(""), "");
}

TEST_F(CatalogSnapshotQueueTest, ClaimsTheOldestJobOfItsHostOnlyAndOnce) {
  SnapshotJobRecord cut{"snap-00000000000000001", kB, "i-0000000000000000a",
                        {"snap-00000000000000001", "snap-00000000000000002"}, true, kT0 + 2, "", 0};
  ASSERT_TRUE(cat_->EnqueueSnapshotJob(cut));
  ASSERT_TRUE(cat_->EnqueueSnapshotJob(Job("snap-00000000000000003", kB, kT0 + 1)));
  ASSERT_TRUE(cat_->EnqueueSnapshotJob(Job("snap-00000000000000004", kA, kT0)));
  EXPECT_EQ(cat_->EnqueueSnapshotJob(Job("snap-00000000000000004", kA, kT0)).error().code(),
            ErrorCode::kAlreadyExists);

  auto first = cat_->ClaimSnapshotJob(kB, "pid:1@boot@" + std::string(kB), kT0 + 10);
  ASSERT_TRUE(first) << first.error().ToString();
  ASSERT_TRUE(first->has_value());
  EXPECT_EQ((*first)->job_id, "snap-00000000000000003");  // oldest of B's; A's older one is not B's
  EXPECT_EQ((*first)->claimed_by, "pid:1@boot@" + std::string(kB));
  EXPECT_EQ((*first)->claimed_ms, kT0 + 10);

  auto second = cat_->ClaimSnapshotJob(kB, "pid:1@boot@" + std::string(kB), kT0 + 11);
  ASSERT_TRUE(second && second->has_value());
  SnapshotJobRecord want = cut;
  want.claimed_by = "pid:1@boot@" + std::string(kB);
  want.claimed_ms = kT0 + 11;
  EXPECT_EQ(**second, want);  // every field back as queued, the cut's snapshots in order

  // Nothing left for B; A's job is still A's alone.
  auto none = cat_->ClaimSnapshotJob(kB, "pid:2@boot@" + std::string(kB), kT0 + 12);
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->has_value());
  auto jobs = cat_->ListSnapshotJobs();
  ASSERT_TRUE(jobs);
  ASSERT_EQ(jobs->size(), 3u);
  EXPECT_EQ((*jobs)[0].job_id, "snap-00000000000000004");
  EXPECT_EQ((*jobs)[0].claimed_by, "");
  auto a = cat_->ClaimSnapshotJob(kA, "pid:3@boot@" + std::string(kA), kT0 + 13);
  ASSERT_TRUE(a && a->has_value());
  EXPECT_EQ((*a)->job_id, "snap-00000000000000004");
}

TEST_F(CatalogSnapshotQueueTest, OnlyTheClaimerFinishesAndARestartPutsClaimsBack) {
  ASSERT_TRUE(cat_->EnqueueSnapshotJob(Job("snap-00000000000000001", kB, kT0)));
  ASSERT_TRUE(cat_->EnqueueSnapshotJob(Job("snap-00000000000000002", kB, kT0 + 1)));
  EXPECT_EQ(cat_->FinishSnapshotJob("snap-00000000000000001", "r1").error().code(), ErrorCode::kConflict);
  ASSERT_TRUE(cat_->ClaimSnapshotJob(kB, "r1", kT0)->has_value());
  EXPECT_EQ(cat_->FinishSnapshotJob("snap-00000000000000001", "r2").error().code(), ErrorCode::kConflict);
  EXPECT_EQ(cat_->FinishSnapshotJob("snap-00000000000000009", "r1").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(cat_->ListSnapshotJobs()->size(), 2u);

  // A restart of B: its earlier process's claim goes back to the queue, A's jobs untouched.
  ASSERT_TRUE(cat_->EnqueueSnapshotJob(Job("snap-00000000000000003", kA, kT0)));
  ASSERT_TRUE(cat_->ClaimSnapshotJob(kA, "ra", kT0)->has_value());
  auto back = cat_->UnclaimSnapshotJobs(kB);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, 1u);
  auto again = cat_->ClaimSnapshotJob(kB, "r2", kT0 + 5);
  ASSERT_TRUE(again && again->has_value());
  EXPECT_EQ((*again)->job_id, "snap-00000000000000001");
  ASSERT_TRUE(cat_->FinishSnapshotJob("snap-00000000000000001", "r2"));
  auto left = cat_->ListSnapshotJobs();
  ASSERT_TRUE(left);
  ASSERT_EQ(left->size(), 2u);
  for (const auto& j : *left) EXPECT_NE(j.job_id, "snap-00000000000000001");
  for (const auto& j : *left)
    if (j.host_id == kA) EXPECT_EQ(j.claimed_by, "ra");
}

TEST_F(CatalogSnapshotQueueTest, BadJobsAreRefusedAndChangeNothing) {
  EXPECT_EQ(cat_->EnqueueSnapshotJob(Job("", kB, kT0, {"snap-1"})).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(cat_->EnqueueSnapshotJob(Job("snap-1", "", kT0)).error().code(), ErrorCode::kInvalidArgument);
  SnapshotJobRecord empty = Job("snap-1", kB, kT0);
  empty.snapshot_ids.clear();
  EXPECT_EQ(cat_->EnqueueSnapshotJob(empty).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(cat_->EnqueueSnapshotJob(Job("snap-1", kB, kT0, {"snap-1 snap-2"})).error().code(),
            ErrorCode::kInvalidArgument);
  SnapshotJobRecord claimed = Job("snap-1", kB, kT0);
  claimed.claimed_by = "r1";
  EXPECT_EQ(cat_->EnqueueSnapshotJob(claimed).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(cat_->ClaimSnapshotJob("", "r1", kT0).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(cat_->ClaimSnapshotJob(kB, "", kT0).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(cat_->ListSnapshotJobs()->empty());
}

// On PostgreSQL a job queued through one catalog (host A) wakes another that waits for jobs
// (host B's claimer); on SQLite nothing is announced (one host: nothing is ever routed).
TEST_F(CatalogSnapshotQueueTest, AQueuedJobWakesAWaitingHostOnPostgres) {
  std::unique_ptr<Catalog> other = Open();
  ASSERT_NE(other, nullptr);
  if (!cat_->NotifiesSnapshotJobs()) {
    EXPECT_FALSE(other->NotifiesSnapshotJobs());
    EXPECT_EQ(other->WaitForSnapshotJobs(1).error().code(), ErrorCode::kInvalidArgument);
    return;
  }
  // The first wait starts listening; nothing was queued since, so it ends without news.
  auto idle = other->WaitForSnapshotJobs(10);
  ASSERT_TRUE(idle) << idle.error().ToString();
  EXPECT_FALSE(*idle);
  ASSERT_TRUE(cat_->EnqueueSnapshotJob(Job("snap-00000000000000001", kB, kT0)));
  auto woke = other->WaitForSnapshotJobs(30'000);  // a bound, not a timing: true ends it at once
  ASSERT_TRUE(woke) << woke.error().ToString();
  EXPECT_TRUE(*woke);
  // Consumed: the next wait has no news again. A refused enqueue (rolled back) announces nothing.
  EXPECT_EQ(cat_->EnqueueSnapshotJob(Job("snap-00000000000000001", kB, kT0)).error().code(),
            ErrorCode::kAlreadyExists);
  auto after = other->WaitForSnapshotJobs(10);
  ASSERT_TRUE(after);
  EXPECT_FALSE(*after);
}

// Two catalogs on one database (two processes of one host, or a claim racing another), each on
// a thread of its own, claim from one queue of 20 jobs: every job is claimed exactly once.
TEST_F(CatalogSnapshotQueueTest, TwoCatalogsRacingClaimEachJobExactlyOnce) {
  std::unique_ptr<Catalog> other = Open();
  ASSERT_NE(other, nullptr);
  constexpr int kJobs = 20;
  for (int i = 0; i < kJobs; ++i) {
    char id[32];
    std::snprintf(id, sizeof id, "snap-%017d", i);
    ASSERT_TRUE(cat_->EnqueueSnapshotJob(Job(id, kB, kT0 + i)));
  }
  std::vector<std::string> got_a, got_b;
  std::string error;
  std::latch start(2);
  auto claim_all = [&](Catalog* c, const std::string& runner, std::vector<std::string>* got) {
    start.arrive_and_wait();
    for (;;) {
      auto j = c->ClaimSnapshotJob(kB, runner, kT0 + 100);
      if (!j) {
        error = j.error().ToString();
        return;
      }
      if (!j->has_value()) return;
      EXPECT_EQ((*j)->claimed_by, runner);
      got->push_back((*j)->job_id);
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
  EXPECT_EQ(all.size(), static_cast<size_t>(kJobs));
  EXPECT_EQ(std::unique(all.begin(), all.end()), all.end());  // none twice
  auto jobs = cat_->ListSnapshotJobs();
  ASSERT_TRUE(jobs);
  for (const auto& j : *jobs) {
    const bool by_a = std::find(got_a.begin(), got_a.end(), j.job_id) != got_a.end();
    EXPECT_EQ(j.claimed_by, by_a ? "ra" : "rb") << j.job_id;
  }
}


// The host sweep's end of a dead host's work (docs/multi-host.md part 5).
class EndAbandonedSnapshotTest : public CatalogSnapshotQueueTest {
 protected:
  void SetUp() override {
    CatalogSnapshotQueueTest::SetUp();
    if (HasFatalFailure()) return;
    ASSERT_TRUE(cat_->UpsertHost({kB, "rack-b", "http://b", "unix:/b", "0", kT0, kT0}));
    auto lease = cat_->AcquireClusterLease("maintenance", kA, kT0, 60'000);
    ASSERT_TRUE(lease) << lease.error().ToString();
    fence_ = {"maintenance", kA, lease->generation};
  }
  std::string Pending(const std::string& runner) {
    SnapshotRecord s = MakeSnapshot(NewVolumeId(), kT0);
    s.runner = runner;
    EXPECT_TRUE(cat_->InsertSnapshot(s));
    return s.snapshot_id;
  }
  SnapshotRecord Get(const std::string& id) { return *cat_->GetSnapshot(id); }
  static constexpr int64_t kTimeout = 30'000;
  const int64_t dead_ = kT0 + kTimeout + 1;  // B's heartbeat (kT0) is too old from here on
  const std::string b_runner_ = std::string("pid:77@boot-b@") + kB;
  LeaseFence fence_;
};

TEST_F(EndAbandonedSnapshotTest, EndsARunningAndAQueuedSnapshotAndTheQueueRowGoes) {
  const std::string running = Pending(b_runner_);
  const std::string first = Pending(QueuedRunner(kB)), second = Pending(QueuedRunner(kB));
  // An instance cut: both snapshots in one row; and a single job of B's that stays.
  ASSERT_TRUE(cat_->EnqueueSnapshotJob(Job(first, kB, kT0, {first, second})));
  const std::string other = Pending(QueuedRunner(kB));
  ASSERT_TRUE(cat_->EnqueueSnapshotJob(Job(other, kB, kT0 + 1)));

  auto ended = cat_->EndAbandonedSnapshot(running, b_runner_, kB, "host rack-b gone", dead_, kTimeout, fence_);
  ASSERT_TRUE(ended) << ended.error().ToString();
  EXPECT_TRUE(*ended);
  EXPECT_EQ(Get(running).state, SnapshotState::kError);
  EXPECT_EQ(Get(running).state_message, "host rack-b gone");
  EXPECT_EQ(Get(running).runner, "");
  ASSERT_EQ(cat_->ListSnapshotJobs()->size(), 2u);  // a running snapshot has no queue row

  ASSERT_TRUE(*cat_->EndAbandonedSnapshot(second, QueuedRunner(kB), kB, "gone", dead_, kTimeout, fence_));
  auto jobs = cat_->ListSnapshotJobs();
  ASSERT_TRUE(jobs);
  ASSERT_EQ(jobs->size(), 1u);  // the cut's row went with its second snapshot; the other job stays
  EXPECT_EQ((*jobs)[0].job_id, other);
  EXPECT_EQ(Get(first).state, SnapshotState::kPending);  // ended by its own call, not as a side effect
  ASSERT_TRUE(*cat_->EndAbandonedSnapshot(first, QueuedRunner(kB), kB, "gone", dead_, kTimeout, fence_));
  EXPECT_EQ(Get(first).state, SnapshotState::kError);
  // Twice: nothing more to end.
  auto again = cat_->EndAbandonedSnapshot(first, QueuedRunner(kB), kB, "gone", dead_, kTimeout, fence_);
  ASSERT_TRUE(again);
  EXPECT_FALSE(*again);
}

TEST_F(EndAbandonedSnapshotTest, AHostThatIsUpOrCameBackKeepsItsWork) {
  const std::string id = Pending(QueuedRunner(kB));
  ASSERT_TRUE(cat_->EnqueueSnapshotJob(Job(id, kB, kT0)));
  // Exactly the timeout old is still up.
  auto up = cat_->EndAbandonedSnapshot(id, QueuedRunner(kB), kB, "gone", kT0 + kTimeout, kTimeout, fence_);
  ASSERT_TRUE(up) << up.error().ToString();
  EXPECT_FALSE(*up);
  // It beat again after the sweep judged it: the check in the transaction sees it.
  ASSERT_TRUE(cat_->Heartbeat(kB, dead_ - 5));
  auto back = cat_->EndAbandonedSnapshot(id, QueuedRunner(kB), kB, "gone", dead_, kTimeout, fence_);
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_FALSE(*back);
  EXPECT_EQ(Get(id).state, SnapshotState::kPending);
  EXPECT_EQ(cat_->ListSnapshotJobs()->size(), 1u);
  // Stopped cleanly: not up, ended at once.
  ASSERT_TRUE(cat_->Heartbeat(kB, 0));
  ASSERT_TRUE(*cat_->EndAbandonedSnapshot(id, QueuedRunner(kB), kB, "stopped", kT0 + 1, kTimeout, fence_));
  EXPECT_TRUE(cat_->ListSnapshotJobs()->empty());
}

TEST_F(EndAbandonedSnapshotTest, AStaleHolderEndsNothing) {
  const std::string id = Pending(b_runner_);
  // The lease lapsed and another host took it: the old generation is stale.
  auto taken = cat_->AcquireClusterLease("maintenance", kB, kT0 + 60'000, 60'000);
  ASSERT_TRUE(taken);
  ASSERT_EQ(taken->generation, fence_.generation + 1);
  auto stale = cat_->EndAbandonedSnapshot(id, b_runner_, kB, "gone", kT0 + 60'001, kTimeout, fence_);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code(), ErrorCode::kConflict);
  EXPECT_NE(stale.error().message().find("stale"), std::string::npos) << stale.error().message();
  EXPECT_EQ(Get(id).state, SnapshotState::kPending);
  // Never taken: kNotFound, nothing changes.
  auto never = cat_->EndAbandonedSnapshot(id, b_runner_, kB, "gone", dead_, kTimeout, {"nosuch", kA, 1});
  ASSERT_FALSE(never);
  EXPECT_EQ(never.error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(Get(id).state, SnapshotState::kPending);
}

TEST_F(EndAbandonedSnapshotTest, OnlyUnderTheRunnerJudgedAndOnlyThatHostsRunners) {
  const std::string id = Pending(b_runner_);
  // Taken over meanwhile (e.g. B came back and claimed it under a new process): left alone.
  auto other = cat_->EndAbandonedSnapshot(id, std::string("pid:78@boot-b@") + kB, kB, "gone", dead_, kTimeout, fence_);
  ASSERT_TRUE(other);
  EXPECT_FALSE(*other);
  EXPECT_EQ(Get(id).state, SnapshotState::kPending);
  // A runner that is not B's is refused: the host's state would say nothing about it.
  for (const std::string& runner : {std::string("pid:1@boot@") + kA, QueuedRunner(kA), std::string(""),
                                    std::string("pid:1@boot")}) {
    auto bad = cat_->EndAbandonedSnapshot(id, runner, kB, "gone", dead_, kTimeout, fence_);
    ASSERT_FALSE(bad) << runner;
    EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument) << runner;
  }
  // A host without a row runs nothing: its work is ended.
  const std::string c = "host-ccccccccccccccccc";
  const std::string orphan = Pending(QueuedRunner(c));
  EXPECT_TRUE(*cat_->EndAbandonedSnapshot(orphan, QueuedRunner(c), c, "unregistered", kT0, kTimeout, fence_));
}

TEST(VolumeHostState, NamesTheStateOfTheVolumesHost) {
  const std::vector<HostRecord> hosts = {{kA, "a", "", "", "", 1, kT0}, {kB, "b", "", "", "", 1, 0}};
  EXPECT_EQ(VolumeHostState(hosts, "", kT0, 30'000), "");
  EXPECT_EQ(VolumeHostState(hosts, kA, kT0 + 30'000, 30'000), "up");
  EXPECT_EQ(VolumeHostState(hosts, kA, kT0 + 30'001, 30'000), "unreachable");
  EXPECT_EQ(VolumeHostState(hosts, kB, kT0, 30'000), "stopped");
  EXPECT_EQ(VolumeHostState(hosts, "host-ccccccccccccccccc", kT0, 30'000), "unregistered");
}

}  // namespace
}  // namespace snapvol
