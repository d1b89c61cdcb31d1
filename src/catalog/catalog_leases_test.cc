// The catalog's cluster leases (docs/multi-host.md part 4): taking, renewing, refusing a
// second holder while live, taking over after expiry with the generation bumped, fencing the
// old holder off, releasing, and exactly one winner when two catalogs race for an expired
// lease. Runs on SQLite (label unit) and again on the PostgreSQL fixture's server (pg.*,
// label pg).
#include <gtest/gtest.h>

#include <cstdint>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_test_fixture.h"

namespace snapvol {
namespace {

using catalog_testing::kT0;

constexpr char kGc[] = "gc";
constexpr char kA[] = "host-aaaaaaaaaaaaaaaaa";
constexpr char kB[] = "host-bbbbbbbbbbbbbbbbb";

class CatalogLeasesTest : public catalog_testing::OpenCatalogTest {};

TEST_F(CatalogLeasesTest, FirstTakeAndRenewalKeepTheGeneration) {
  auto first = cat_->AcquireClusterLease(kGc, kA, kT0, 10'000);
  ASSERT_TRUE(first) << first.error().ToString();
  EXPECT_EQ(*first, (ClusterLeaseRecord{kGc, kA, kT0 + 10'000, 1}));
  EXPECT_TRUE(cat_->CheckClusterLease(kGc, kA, 1, kT0 + 9'999));

  auto renewed = cat_->AcquireClusterLease(kGc, kA, kT0 + 5'000, 10'000);
  ASSERT_TRUE(renewed);
  EXPECT_EQ(*renewed, (ClusterLeaseRecord{kGc, kA, kT0 + 15'000, 1}));
  // The renewal moved the expiry: still valid past the first one.
  EXPECT_TRUE(cat_->CheckClusterLease(kGc, kA, 1, kT0 + 12'000));
  // A holder whose own lease lapsed with nobody taking it keeps its generation.
  auto late = cat_->AcquireClusterLease(kGc, kA, kT0 + 20'000, 10'000);
  ASSERT_TRUE(late);
  EXPECT_EQ(*late, (ClusterLeaseRecord{kGc, kA, kT0 + 30'000, 1}));
  EXPECT_EQ(*cat_->ListClusterLeases(), (std::vector<ClusterLeaseRecord>{*late}));
}

TEST_F(CatalogLeasesTest, ASecondHolderIsRefusedWhileLiveAndTakesOverAfterExpiry) {
  ASSERT_TRUE(cat_->AcquireClusterLease(kGc, kA, kT0, 10'000));
  // One millisecond before the expiry: A's lease, unchanged, says who and until when.
  auto refused = cat_->AcquireClusterLease(kGc, kB, kT0 + 9'999, 10'000);
  ASSERT_TRUE(refused);
  EXPECT_EQ(*refused, (ClusterLeaseRecord{kGc, kA, kT0 + 10'000, 1}));
  EXPECT_TRUE(cat_->CheckClusterLease(kGc, kA, 1, kT0 + 9'999));

  // At the expiry B takes it, one generation up.
  auto taken = cat_->AcquireClusterLease(kGc, kB, kT0 + 10'000, 10'000);
  ASSERT_TRUE(taken);
  EXPECT_EQ(*taken, (ClusterLeaseRecord{kGc, kB, kT0 + 20'000, 2}));
  EXPECT_TRUE(cat_->CheckClusterLease(kGc, kB, 2, kT0 + 10'001));

  // A, paused past its expiry, is fenced off: its generation is stale, and so is B's holder
  // name with A's generation or A's name with B's generation.
  auto stale = cat_->CheckClusterLease(kGc, kA, 1, kT0 + 10'001);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code(), ErrorCode::kConflict);
  EXPECT_NE(stale.error().message().find("stale"), std::string::npos) << stale.error().message();
  EXPECT_NE(stale.error().message().find(kB), std::string::npos) << stale.error().message();
  EXPECT_EQ(cat_->CheckClusterLease(kGc, kA, 2, kT0 + 10'001).error().code(), ErrorCode::kConflict);
  EXPECT_EQ(cat_->CheckClusterLease(kGc, kB, 1, kT0 + 10'001).error().code(), ErrorCode::kConflict);
  // A renewing now is refused too (B is live), and a later change of hands bumps again.
  EXPECT_EQ(cat_->AcquireClusterLease(kGc, kA, kT0 + 10'002, 10'000)->holder, kB);
  auto back = cat_->AcquireClusterLease(kGc, kA, kT0 + 20'000, 10'000);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, (ClusterLeaseRecord{kGc, kA, kT0 + 30'000, 3}));
}

TEST_F(CatalogLeasesTest, CheckFailsOnceExpiredAndForLeasesNeverTaken) {
  ASSERT_TRUE(cat_->AcquireClusterLease(kGc, kA, kT0, 10'000));
  EXPECT_TRUE(cat_->CheckClusterLease(kGc, kA, 1, kT0 + 9'999));
  auto expired = cat_->CheckClusterLease(kGc, kA, 1, kT0 + 10'000);
  ASSERT_FALSE(expired);
  EXPECT_EQ(expired.error().code(), ErrorCode::kConflict);
  EXPECT_NE(expired.error().message().find("expired"), std::string::npos) << expired.error().message();
  EXPECT_EQ(cat_->CheckClusterLease("verify", kA, 1, kT0).error().code(), ErrorCode::kNotFound);
}

TEST_F(CatalogLeasesTest, ReleaseLetsAnotherTakeAtOnce) {
  ASSERT_TRUE(cat_->AcquireClusterLease(kGc, kA, kT0, 60'000));
  // Only the holder releases; the other changes nothing.
  EXPECT_EQ(cat_->ReleaseClusterLease(kGc, kB).error().code(), ErrorCode::kConflict);
  EXPECT_EQ(cat_->ReleaseClusterLease("verify", kA).error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(cat_->CheckClusterLease(kGc, kA, 1, kT0 + 1));

  ASSERT_TRUE(cat_->ReleaseClusterLease(kGc, kA));
  const std::vector<ClusterLeaseRecord> leases = *cat_->ListClusterLeases();
  ASSERT_EQ(leases.size(), 1u);
  EXPECT_EQ(leases[0], (ClusterLeaseRecord{kGc, kA, 0, 1}));  // the generation stays
  EXPECT_EQ(ClusterLeaseStateAt(leases[0], kT0 + 2), "released");
  EXPECT_EQ(cat_->CheckClusterLease(kGc, kA, 1, kT0 + 2).error().code(), ErrorCode::kConflict);

  auto taken = cat_->AcquireClusterLease(kGc, kB, kT0 + 2, 60'000);
  ASSERT_TRUE(taken);
  EXPECT_EQ(*taken, (ClusterLeaseRecord{kGc, kB, kT0 + 60'002, 2}));
  EXPECT_EQ(ClusterLeaseStateAt(*taken, kT0 + 60'001), "held");
  EXPECT_EQ(ClusterLeaseStateAt(*taken, kT0 + 60'002), "expired");
}

TEST_F(CatalogLeasesTest, LeasesAreIndependentAndListByName) {
  ASSERT_TRUE(cat_->AcquireClusterLease("verify", kB, kT0, 1'000));
  ASSERT_TRUE(cat_->AcquireClusterLease(kGc, kA, kT0, 1'000));
  EXPECT_EQ(*cat_->ListClusterLeases(), (std::vector<ClusterLeaseRecord>{{kGc, kA, kT0 + 1'000, 1},
                                                                          {"verify", kB, kT0 + 1'000, 1}}));
}

// A maintenance run's record is fenced by the generation it was written under: once a newer
// holder has written it, the old holder's write is refused and changes nothing.
TEST_F(CatalogLeasesTest, AMaintenanceRunTakenOverByANewerGenerationRefusesTheOldHoldersWrites) {
  MaintenanceRunRecord run{.job = "gc", .scheduled_ms = kT0, .started_ms = kT0, .state = "running",
                           .host_id = kA, .lease_generation = 1};
  auto id = cat_->InsertMaintenanceRun(run);
  ASSERT_TRUE(id) << id.error().ToString();
  run.run_id = *id;
  run.message = "progress of A; ";
  ASSERT_TRUE(cat_->UpdateMaintenanceRun(run));  // same generation: written

  MaintenanceRunRecord taken = run;
  taken.state = "queued";
  taken.host_id = kB;
  taken.lease_generation = 2;
  ASSERT_TRUE(cat_->UpdateMaintenanceRun(taken));

  run.state = "succeeded";
  Status stale = cat_->UpdateMaintenanceRun(run);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code(), ErrorCode::kConflict);
  EXPECT_NE(stale.error().message().find(kB), std::string::npos) << stale.error().message();
  EXPECT_EQ(*cat_->GetMaintenanceRun(run.run_id), taken);

  run.run_id = *id + 100;
  EXPECT_EQ(cat_->UpdateMaintenanceRun(run).error().code(), ErrorCode::kNotFound);
}

// A lifecycle run's record is fenced alike (migration 30): the old holder of lease `lifecycle`
// cannot overwrite a run the new holder carried on with.
TEST_F(CatalogLeasesTest, ALifecycleRunTakenOverByANewerGenerationRefusesTheOldHoldersWrites) {
  LifecycleRunRecord run{.policy_id = "policy-0123456789abcdef0", .schedule_name = "daily", .scheduled_ms = kT0,
                         .started_ms = kT0, .host_id = kA, .lease_generation = 1};
  ASSERT_TRUE(cat_->InsertLifecycleRun(run));
  auto listed = cat_->ListRunningLifecycleRuns();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ(listed->front(), run);  // host and generation read back
  run.message = "progress of A; ";
  ASSERT_TRUE(cat_->UpdateLifecycleRun(run));  // same generation: written

  LifecycleRunRecord taken = run;
  taken.message += "carried on by B; ";
  taken.host_id = kB;
  taken.lease_generation = 2;
  ASSERT_TRUE(cat_->UpdateLifecycleRun(taken));

  run.state = "succeeded";
  Status stale = cat_->UpdateLifecycleRun(run);
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code(), ErrorCode::kConflict);
  EXPECT_NE(stale.error().message().find(kB), std::string::npos) << stale.error().message();
  auto latest = cat_->LatestLifecycleRun(run.policy_id, run.schedule_name);
  ASSERT_TRUE(latest && *latest);
  EXPECT_EQ(**latest, taken);

  run.scheduled_ms = kT0 + 1;
  EXPECT_EQ(cat_->UpdateLifecycleRun(run).error().code(), ErrorCode::kNotFound);
}

TEST_F(CatalogLeasesTest, BadInputIsRefusedAndChangesNothing) {
  EXPECT_EQ(cat_->AcquireClusterLease("", kA, kT0, 1'000).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(cat_->AcquireClusterLease(kGc, "", kT0, 1'000).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(cat_->AcquireClusterLease(kGc, kA, -1, 1'000).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(cat_->AcquireClusterLease(kGc, kA, kT0, 0).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(cat_->AcquireClusterLease(kGc, kA, kT0, INT64_MAX).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(cat_->ListClusterLeases()->empty());
}

// Two catalogs on one database (two hosts), each on a thread of its own, race for an expired
// lease: in every round exactly one of them holds it afterwards and the generation went up by
// exactly one. Each round's holders are new names, so every take is a change of hands.
TEST_F(CatalogLeasesTest, TwoCatalogsRacingForAnExpiredLeaseMakeExactlyOneWinner) {
  std::unique_ptr<Catalog> other = Open();
  ASSERT_NE(other, nullptr);
  ASSERT_TRUE(cat_->AcquireClusterLease(kGc, "host-first", kT0, 100));
  constexpr int kRounds = 25;
  for (int round = 1; round <= kRounds; ++round) {
    const int64_t now = kT0 + round * 1'000;  // the previous round's lease (100 ms) has expired
    const std::string a = "host-a" + std::to_string(round), b = "host-b" + std::to_string(round);
    Result<ClusterLeaseRecord> got_a = NotFound("not run"), got_b = NotFound("not run");
    std::latch start(2);
    std::thread ta([&] {
      start.arrive_and_wait();
      got_a = cat_->AcquireClusterLease(kGc, a, now, 100);
    });
    std::thread tb([&] {
      start.arrive_and_wait();
      got_b = other->AcquireClusterLease(kGc, b, now, 100);
    });
    ta.join();
    tb.join();
    ASSERT_TRUE(got_a) << got_a.error().ToString();
    ASSERT_TRUE(got_b) << got_b.error().ToString();
    // Both see the same lease: the winner's.
    EXPECT_EQ(*got_a, *got_b) << "round " << round;
    EXPECT_TRUE(got_a->holder == a || got_a->holder == b) << got_a->holder;
    EXPECT_EQ(got_a->generation, 1 + round) << "round " << round;
    EXPECT_EQ(got_a->expires_ms, now + 100);
    const std::string loser = got_a->holder == a ? b : a;
    EXPECT_EQ(cat_->CheckClusterLease(kGc, loser, got_a->generation, now + 1).error().code(), ErrorCode::kConflict);
    EXPECT_TRUE(other->CheckClusterLease(kGc, got_a->holder, got_a->generation, now + 1));
  }
}

}  // namespace
}  // namespace snapvol
