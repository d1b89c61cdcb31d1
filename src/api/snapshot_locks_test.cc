#include "api/snapshot_locks.h"

#include <gtest/gtest.h>

namespace snapvol::api {
namespace {

constexpr int64_t kNow = 1'795'000'000'000;  // 2026-11-18
constexpr int64_t kHour = 3'600'000;
constexpr int64_t kDay = 24 * kHour;
const std::string kSnap = "snap-0123456789abcdef0";
const std::string kAcct = "123456789012";

LockRequest Req(std::string mode, std::optional<int64_t> days, std::optional<int64_t> cool = std::nullopt,
                std::optional<int64_t> expires = std::nullopt) {
  return LockRequest{std::move(mode), cool, days, expires};
}

std::string CodeOf(const ApiResult<SnapshotLockRecord>& r) { return r ? "" : r.error().code; }

TEST(SnapshotLocks, ANewLockStartsNowAndEndsAfterItsDurationOrAtItsDate) {
  auto g = NextLock(kSnap, kAcct, std::nullopt, Req("governance", 7), kNow);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->mode, "governance");
  EXPECT_EQ(g->created_ms, kNow);
  EXPECT_EQ(g->expires_ms, kNow + 7 * kDay);
  EXPECT_EQ(g->duration_days, 7);
  EXPECT_EQ(LockStateAt(*g, kNow), "governance");
  auto c = NextLock(kSnap, kAcct, std::nullopt, Req("compliance", std::nullopt, 2, kNow + 30 * kDay), kNow);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->expires_ms, kNow + 30 * kDay);
  EXPECT_EQ(c->duration_days, 0);
  EXPECT_EQ(c->cool_off_expires_ms, kNow + 2 * kHour);
  EXPECT_EQ(LockStateAt(*c, kNow + kHour), "compliance-cooloff");
  EXPECT_EQ(LockStateAt(*c, kNow + 2 * kHour), "compliance");
  EXPECT_EQ(LockStateAt(*c, kNow + 30 * kDay), "expired");
}

TEST(SnapshotLocks, BadRequestsAreRefusedWithEc2Codes) {
  EXPECT_EQ(CodeOf(NextLock(kSnap, kAcct, std::nullopt, Req("forever", 1), kNow)), "InvalidParameterValue");
  EXPECT_EQ(CodeOf(NextLock(kSnap, kAcct, std::nullopt, Req("governance", std::nullopt), kNow)), "MissingParameter");
  EXPECT_EQ(CodeOf(NextLock(kSnap, kAcct, std::nullopt, Req("governance", 1, std::nullopt, kNow + kDay), kNow)),
            "InvalidParameterCombination");
  EXPECT_EQ(CodeOf(NextLock(kSnap, kAcct, std::nullopt, Req("governance", 1, 3), kNow)),
            "InvalidParameterCombination");
  EXPECT_EQ(CodeOf(NextLock(kSnap, kAcct, std::nullopt, Req("compliance", 1, 73), kNow)), "InvalidParameterValue");
  EXPECT_EQ(CodeOf(NextLock(kSnap, kAcct, std::nullopt, Req("compliance", 36501), kNow)), "InvalidParameterValue");
  EXPECT_EQ(CodeOf(NextLock(kSnap, kAcct, std::nullopt, Req("compliance", std::nullopt, std::nullopt, kNow), kNow)),
            "InvalidParameterValue");
}

TEST(SnapshotLocks, GovernanceAndCoolingOffLocksChangeFreelyCompliancePastCoolOffOnlyGrows) {
  auto g = *NextLock(kSnap, kAcct, std::nullopt, Req("governance", 10), kNow);
  // Governance: shorter, or switched to compliance, and it may be lifted.
  auto shorter = NextLock(kSnap, kAcct, g, Req("governance", 1), kNow + kDay);
  ASSERT_TRUE(shorter);
  EXPECT_EQ(shorter->created_ms, kNow);  // the same lock, changed
  EXPECT_TRUE(CheckUnlock(g, kNow + kDay));
  // Compliance within its cooling-off period: still changeable and liftable.
  auto c = *NextLock(kSnap, kAcct, g, Req("compliance", 10, 1), kNow);
  EXPECT_TRUE(CheckUnlock(c, kNow + kHour / 2));
  EXPECT_TRUE(NextLock(kSnap, kAcct, c, Req("governance", 1), kNow + kHour / 2));
  // Past it: no unlock, no mode change, no cool-off, no shortening; extending is fine.
  const int64_t later = kNow + 2 * kHour;
  auto unlock = CheckUnlock(c, later);
  ASSERT_FALSE(unlock);
  EXPECT_EQ(unlock.error().code, "IncorrectState");
  EXPECT_EQ(CodeOf(NextLock(kSnap, kAcct, c, Req("governance", 30), later)), "IncorrectState");
  EXPECT_EQ(CodeOf(NextLock(kSnap, kAcct, c, Req("compliance", 30, 1), later)), "InvalidParameterCombination");
  EXPECT_EQ(CodeOf(NextLock(kSnap, kAcct, c, Req("compliance", 1), later)), "IncorrectState");
  auto longer = NextLock(kSnap, kAcct, c, Req("compliance", 20), later);
  ASSERT_TRUE(longer);
  EXPECT_EQ(longer->expires_ms, later + 20 * kDay);
  // Once expired, anything goes again, as a new lock.
  const int64_t after = c.expires_ms;
  EXPECT_TRUE(CheckUnlock(c, after));
  auto fresh = NextLock(kSnap, kAcct, c, Req("governance", 1), after);
  ASSERT_TRUE(fresh);
  EXPECT_EQ(fresh->created_ms, after);
}

TEST(SnapshotLocks, FieldsAreWrittenAsEc2NamesThem) {
  auto c = *NextLock(kSnap, kAcct, std::nullopt, Req("compliance", 3, 2), kNow);
  XmlWriter w(false);
  w.Open("item");
  WriteLockFields(w, c, kNow);
  std::string xml = std::move(w).Finish();
  for (const char* part : {"<lockState>compliance-cooloff</lockState>", "<lockDuration>3</lockDuration>",
                           "<coolOffPeriod>2</coolOffPeriod>", "<coolOffPeriodExpiresOn>", "<lockCreatedOn>",
                           "<lockDurationStartTime>", "<lockExpiresOn>"})
    EXPECT_NE(xml.find(part), std::string::npos) << part << " in " << xml;
}

}  // namespace
}  // namespace snapvol::api
