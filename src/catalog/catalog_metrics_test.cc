// Catalog::MetricsTotals: snapshots by account and state with their byte sums, and lifecycle
// runs by state with the latest one's time, as /metrics reads them.
#include <gtest/gtest.h>

#include "catalog/catalog_test_util.h"
#include "core/ids.h"

namespace snapvol {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;

class CatalogMetricsTest : public testing_util::FreshCatalogTest {
 protected:
  std::string Snapshot(const std::string& account, uint64_t size) {
    SnapshotRecord s;
    s.snapshot_id = NewSnapshotId();
    s.volume_id = NewVolumeId();
    s.account_id = account;
    s.start_time_ms = kT0;
    s.block_size = 4096;
    s.volume_size_bytes = size;
    EXPECT_TRUE(cat_->InsertSnapshot(s));
    return s.snapshot_id;
  }
};

TEST_F(CatalogMetricsTest, EmptyCatalogHasNoTotals) {
  auto t = cat_->MetricsTotals();
  ASSERT_TRUE(t) << t.error().ToString();
  EXPECT_TRUE(t->snapshots.empty());
  EXPECT_TRUE(t->lifecycle_runs.empty());
}

TEST_F(CatalogMetricsTest, SnapshotsByAccountAndStateWithTheirBytes) {
  auto team = cat_->CreateAccount("team-a");
  ASSERT_TRUE(team);
  const std::string a = team->account_id, d = kDefaultAccountId;
  ASSERT_TRUE(cat_->MarkCompleted(Snapshot(a, 1000), kT0 + 1, 300, 1, 1));
  ASSERT_TRUE(cat_->MarkCompleted(Snapshot(a, 1000), kT0 + 2, 20, 1, 1));
  ASSERT_TRUE(cat_->MarkError(Snapshot(a, 500), "failed"));
  Snapshot(d, 4096);  // pending
  auto t = cat_->MetricsTotals();
  ASSERT_TRUE(t) << t.error().ToString();
  ASSERT_EQ(t->snapshots.size(), 3u);
  // Ordered by account id, then state.
  std::vector<std::string> order;
  for (const auto& s : t->snapshots) order.push_back(s.account_id + "/" + s.state);
  std::vector<std::string> want = {a + "/completed", a + "/error", d + "/pending"};
  if (d < a) want = {d + "/pending", a + "/completed", a + "/error"};
  EXPECT_EQ(order, want);
  for (const auto& s : t->snapshots) {
    if (s.state == "completed") {
      EXPECT_EQ(s.snapshots, 2u);
      EXPECT_EQ(s.stored_bytes, 320u);
      EXPECT_EQ(s.volume_bytes, 2000u);
    } else if (s.state == "error") {
      EXPECT_EQ(s.snapshots, 1u);
      EXPECT_EQ(s.volume_bytes, 500u);
    } else {
      EXPECT_EQ(s.snapshots, 1u);
      EXPECT_EQ(s.volume_bytes, 4096u);
    }
  }
}

TEST_F(CatalogMetricsTest, LifecycleRunsByStateWithTheLatestTime) {
  auto run = [&](const std::string& state, int64_t scheduled, int64_t started, int64_t finished) {
    LifecycleRunRecord r;
    r.policy_id = "policy-0123456789abcdef0";
    r.schedule_name = "daily";
    r.scheduled_ms = scheduled;
    r.started_ms = started;
    r.finished_ms = finished;
    r.state = state;
    ASSERT_TRUE(cat_->InsertLifecycleRun(r));
  };
  run("succeeded", kT0, kT0 + 1, kT0 + 5000);
  run("succeeded", kT0 + 86'400'000, kT0 + 86'400'001, kT0 + 86'409'000);
  run("failed", kT0 + 2 * 86'400'000, kT0 + 2 * 86'400'000, kT0 + 2 * 86'400'000 + 7);
  run("running", kT0 + 3 * 86'400'000, kT0 + 3 * 86'400'000 + 3, 0);
  auto t = cat_->MetricsTotals();
  ASSERT_TRUE(t) << t.error().ToString();
  ASSERT_EQ(t->lifecycle_runs.size(), 3u);
  EXPECT_EQ(t->lifecycle_runs[0].state, "failed");
  EXPECT_EQ(t->lifecycle_runs[0].runs, 1u);
  EXPECT_EQ(t->lifecycle_runs[0].last_ms, kT0 + 2 * 86'400'000 + 7);
  EXPECT_EQ(t->lifecycle_runs[1].state, "running");
  EXPECT_EQ(t->lifecycle_runs[1].last_ms, kT0 + 3 * 86'400'000 + 3);  // its start
  EXPECT_EQ(t->lifecycle_runs[2].state, "succeeded");
  EXPECT_EQ(t->lifecycle_runs[2].runs, 2u);
  EXPECT_EQ(t->lifecycle_runs[2].last_ms, kT0 + 86'409'000);
}

}  // namespace
}  // namespace snapvol
