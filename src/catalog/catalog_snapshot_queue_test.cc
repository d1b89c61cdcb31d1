// The catalog's queue of routed snapshot jobs (docs/multi-host.md part 3): queued for one host,
// claimed oldest first by that host only, claimed once when two catalogs race, finished only by
// its claimer, put back on a restart. Runs on SQLite (label unit) and again on the PostgreSQL
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

}  // namespace
}  // namespace snapvol
