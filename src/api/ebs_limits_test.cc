// The EBS direct APIs' limits (api/ebs_limits.h) on a fake clock: buckets per account and per
// snapshot refill at their rate up to their burst, a refusal names its Reason and takes
// nothing, and the buckets kept stay within their bound.
#include "api/ebs_limits.h"

#include <gtest/gtest.h>

namespace snapvol::api {
namespace {

constexpr int64_t kNow = 1'700'000'000'000;

EbsLimits Limits(double account_block, double snapshot_block, double list, double burst = 1) {
  EbsLimits l;
  l.account_block_rps = account_block;
  l.snapshot_block_rps = snapshot_block;
  l.account_list_rps = list;
  l.burst_seconds = burst;
  return l;
}

std::string Reason(const ApiStatus& s) { return s ? "admitted" : s.error().code; }

TEST(EbsRateLimiterTest, BurstThenRefillAtTheRate) {
  FakeClock clock(kNow);
  EbsRateLimiter limiter(Limits(10, 0, 0), &clock);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(limiter.Admit(EbsOp::kPutBlock, "111111111111", "snap-1")) << i;
  auto refused = limiter.Admit(EbsOp::kPutBlock, "111111111111", "snap-1");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, "RequestThrottledException:ACCOUNT_THROTTLED");
  EXPECT_EQ(refused.error().http_status, 400);
  EXPECT_NE(refused.error().message.find("10 per second"), std::string::npos) << refused.error().message;
  clock.Advance(99);  // 0.99 of a request: not yet
  EXPECT_FALSE(limiter.Admit(EbsOp::kPutBlock, "111111111111"));
  clock.Advance(1);
  EXPECT_TRUE(limiter.Admit(EbsOp::kPutBlock, "111111111111"));
  EXPECT_FALSE(limiter.Admit(EbsOp::kPutBlock, "111111111111"));
  // A long idle time refills to the burst, no further.
  clock.Advance(60'000);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(limiter.Admit(EbsOp::kPutBlock, "111111111111")) << i;
  EXPECT_FALSE(limiter.Admit(EbsOp::kPutBlock, "111111111111"));
}

TEST(EbsRateLimiterTest, BurstSecondsSizeTheBucket) {
  FakeClock clock(kNow);
  EbsRateLimiter limiter(Limits(4, 0, 0, /*burst=*/0.5), &clock);
  EXPECT_TRUE(limiter.Admit(EbsOp::kGetBlock, "a"));
  EXPECT_TRUE(limiter.Admit(EbsOp::kGetBlock, "a"));
  EXPECT_FALSE(limiter.Admit(EbsOp::kGetBlock, "a"));
  // Less than one request of burst still admits one.
  EbsRateLimiter slow(Limits(0.5, 0, 0, 0.5), &clock);
  EXPECT_TRUE(slow.Admit(EbsOp::kGetBlock, "a"));
  EXPECT_FALSE(slow.Admit(EbsOp::kGetBlock, "a"));
  clock.Advance(1999);
  EXPECT_FALSE(slow.Admit(EbsOp::kGetBlock, "a"));
  clock.Advance(1);
  EXPECT_TRUE(slow.Admit(EbsOp::kGetBlock, "a"));
}

TEST(EbsRateLimiterTest, AccountsOperationsAndSnapshotsHaveTheirOwnBuckets) {
  FakeClock clock(kNow);
  EbsRateLimiter limiter(Limits(100, 2, 1), &clock);
  EXPECT_TRUE(limiter.Admit(EbsOp::kPutBlock, "a", "snap-1"));
  EXPECT_TRUE(limiter.Admit(EbsOp::kPutBlock, "a", "snap-1"));
  auto refused = limiter.Admit(EbsOp::kPutBlock, "a", "snap-1");
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, "RequestThrottledException:RESOURCE_LEVEL_THROTTLE");
  EXPECT_NE(refused.error().message.find("snap-1"), std::string::npos);
  EXPECT_TRUE(limiter.Admit(EbsOp::kPutBlock, "a", "snap-2"));  // another snapshot
  EXPECT_TRUE(limiter.Admit(EbsOp::kGetBlock, "a", "snap-1"));  // another operation
  EXPECT_TRUE(limiter.Admit(EbsOp::kPutBlock, "b", "snap-3"));
  // Listings: per account and per operation only.
  EXPECT_TRUE(limiter.Admit(EbsOp::kListBlocks, "a"));
  EXPECT_EQ(Reason(limiter.Admit(EbsOp::kListBlocks, "a")), "RequestThrottledException:ACCOUNT_THROTTLED");
  EXPECT_TRUE(limiter.Admit(EbsOp::kListChangedBlocks, "a"));
  EXPECT_TRUE(limiter.Admit(EbsOp::kListBlocks, "b"));
}

TEST(EbsRateLimiterTest, ARefusalTakesFromNoBucket) {
  FakeClock clock(kNow);
  // The account allows 3, each snapshot 1: a refusal for snap-1 must not spend the account's.
  EbsRateLimiter limiter(Limits(3, 1, 0), &clock);
  EXPECT_TRUE(limiter.Admit(EbsOp::kPutBlock, "a", "snap-1"));
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(Reason(limiter.Admit(EbsOp::kPutBlock, "a", "snap-1")), "RequestThrottledException:RESOURCE_LEVEL_THROTTLE");
  EXPECT_TRUE(limiter.Admit(EbsOp::kPutBlock, "a", "snap-2"));
  EXPECT_TRUE(limiter.Admit(EbsOp::kPutBlock, "a", "snap-3"));
  // The account is empty now; a refusal by the account leaves snap-4's bucket full.
  EXPECT_EQ(Reason(limiter.Admit(EbsOp::kPutBlock, "a", "snap-4")), "RequestThrottledException:ACCOUNT_THROTTLED");
  clock.Advance(334);  // one more of the account's
  EXPECT_TRUE(limiter.Admit(EbsOp::kPutBlock, "a", "snap-4"));
}

TEST(EbsRateLimiterTest, ZeroRatesTurnLimitsOff) {
  FakeClock clock(kNow);
  EbsRateLimiter limiter(Limits(0, 0, 0), &clock);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(limiter.Admit(EbsOp::kPutBlock, "a", "snap-1"));
  EXPECT_EQ(limiter.bucket_count(), 0u);
  EbsRateLimiter snapshot_only(Limits(0, 1, 0), &clock);
  EXPECT_TRUE(snapshot_only.Admit(EbsOp::kPutBlock, "a", "snap-1"));
  EXPECT_EQ(Reason(snapshot_only.Admit(EbsOp::kPutBlock, "b", "snap-1")),
            "RequestThrottledException:RESOURCE_LEVEL_THROTTLE");
}

TEST(EbsRateLimiterTest, BucketsAreBoundedLeastRecentlyUsedForgottenFirst) {
  FakeClock clock(kNow);
  EbsRateLimiter limiter(Limits(1, 0, 0), &clock, /*max_buckets=*/4);
  for (int i = 0; i < 1000; ++i) {
    ASSERT_TRUE(limiter.Admit(EbsOp::kPutBlock, "account-" + std::to_string(i)));
    ASSERT_LE(limiter.bucket_count(), 4u);
  }
  EXPECT_EQ(limiter.bucket_count(), 4u);
  // The most recent accounts are still remembered (empty), account-0 was forgotten (full).
  EXPECT_FALSE(limiter.Admit(EbsOp::kPutBlock, "account-999"));
  EXPECT_FALSE(limiter.Admit(EbsOp::kPutBlock, "account-996"));
  EXPECT_TRUE(limiter.Admit(EbsOp::kPutBlock, "account-0"));
  // Using a bucket makes it recent: account-999 survives the next newcomers, account-997 not.
  EXPECT_FALSE(limiter.Admit(EbsOp::kPutBlock, "account-999"));
  ASSERT_TRUE(limiter.Admit(EbsOp::kPutBlock, "new-1"));
  ASSERT_TRUE(limiter.Admit(EbsOp::kPutBlock, "new-2"));
  EXPECT_FALSE(limiter.Admit(EbsOp::kPutBlock, "account-999"));
  EXPECT_TRUE(limiter.Admit(EbsOp::kPutBlock, "account-997"));
}

TEST(EbsRateLimiterTest, AccountAndSnapshotBucketsSurviveEachOthersEviction) {
  FakeClock clock(kNow);
  EbsRateLimiter limiter(Limits(2, 1, 0), &clock, /*max_buckets=*/2);
  EXPECT_TRUE(limiter.Admit(EbsOp::kPutBlock, "a", "snap-1"));
  // Each new snapshot evicts the oldest bucket; the account's, used every time, is kept.
  EXPECT_TRUE(limiter.Admit(EbsOp::kPutBlock, "a", "snap-2"));
  EXPECT_EQ(Reason(limiter.Admit(EbsOp::kPutBlock, "a", "snap-3")), "RequestThrottledException:ACCOUNT_THROTTLED");
  EXPECT_EQ(limiter.bucket_count(), 2u);
}

TEST(EbsRateLimiterTest, AClockSteppedBackRefillsNothing) {
  FakeClock clock(kNow);
  EbsRateLimiter limiter(Limits(1, 0, 0), &clock);
  EXPECT_TRUE(limiter.Admit(EbsOp::kGetBlock, "a"));
  clock.Set(kNow - 3600'000);
  EXPECT_FALSE(limiter.Admit(EbsOp::kGetBlock, "a"));
  clock.Set(kNow + 1000);
  EXPECT_TRUE(limiter.Admit(EbsOp::kGetBlock, "a"));
}

TEST(EbsPendingGateTest, RefusesAtTheCap) {
  EbsPendingGate gate(3);
  EXPECT_TRUE(gate.enabled());
  EXPECT_TRUE(gate.Check(0));
  EXPECT_TRUE(gate.Check(2));
  auto refused = gate.Check(3);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, "ConcurrentLimitExceededException");
  EXPECT_EQ(refused.error().http_status, 400);
  EXPECT_NE(refused.error().message.find("(3)"), std::string::npos) << refused.error().message;
  EXPECT_FALSE(gate.Check(7));
  EbsPendingGate off(0);
  EXPECT_FALSE(off.enabled());
  EXPECT_TRUE(off.Check(1'000'000));
}

}  // namespace
}  // namespace snapvol::api
