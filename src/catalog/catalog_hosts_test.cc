// The catalog's hosts table (docs/multi-host.md part 2): registration replaces a host's row,
// heartbeats move only that host's time and refuse an unknown host, hosts list by id, and a
// host's state follows its heartbeat. Runs on SQLite (label unit) and again on the
// PostgreSQL fixture's server (pg.*, label pg).
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "catalog/catalog.h"
#include "catalog/catalog_test_fixture.h"

namespace snapvol {
namespace {

// CatalogTest gives a SQLite file of its own, or on PostgreSQL a database of its own
// (catalog_test_db.h; the pg registration of this binary, BOTH_CATALOGS).
class CatalogHostsTest : public catalog_testing::OpenCatalogTest {};

HostRecord Host(const std::string& id, const std::string& name, int64_t beat) {
  return HostRecord{id, name, "http://127.0.0.1:8787", "unix:/d/nbd.sock", "0.1.0", 1000, beat};
}

TEST_F(CatalogHostsTest, RegistrationReplacesTheRowAndHeartbeatsMoveOnlyThatHost) {
  const HostRecord a = Host("host-aaaaaaaaaaaaaaaaa", "alpha", 1000);
  const HostRecord b = Host("host-bbbbbbbbbbbbbbbbb", "beta", 2000);
  ASSERT_TRUE(cat_->UpsertHost(b));
  ASSERT_TRUE(cat_->UpsertHost(a));
  EXPECT_EQ(*cat_->ListHosts(), (std::vector<HostRecord>{a, b}));  // by id
  ASSERT_TRUE(cat_->Heartbeat(a.host_id, 5000));
  EXPECT_EQ(cat_->GetHost(a.host_id)->heartbeat_ms, 5000);
  EXPECT_EQ(*cat_->GetHost(b.host_id), b);
  // A restart registers again: every column is replaced.
  HostRecord again = Host(a.host_id, "alpha-renamed", 9000);
  again.api_url = "https://10.0.0.1:8787";
  again.started_ms = 9000;
  ASSERT_TRUE(cat_->UpsertHost(again));
  EXPECT_EQ(*cat_->GetHost(a.host_id), again);
  EXPECT_EQ(cat_->ListHosts()->size(), 2u);
  // A clean stop.
  ASSERT_TRUE(cat_->Heartbeat(a.host_id, 0));
  EXPECT_EQ(cat_->GetHost(a.host_id)->heartbeat_ms, 0);
}

TEST_F(CatalogHostsTest, UnknownHostsAndBadRowsAreRefused) {
  EXPECT_EQ(cat_->Heartbeat("host-ccccccccccccccccc", 1).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(cat_->GetHost("host-ccccccccccccccccc").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(cat_->UpsertHost(Host("", "x", 1)).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(cat_->UpsertHost(Host("host-ccccccccccccccccc", "x", -1)).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(cat_->ListHosts()->empty());
}

TEST(HostState, FollowsTheHeartbeat) {
  const HostRecord h = Host("host-aaaaaaaaaaaaaaaaa", "alpha", 10'000);
  EXPECT_EQ(HostStateAt(h, 10'000 + 30'000, 30'000), "up");
  EXPECT_EQ(HostStateAt(h, 10'000 + 30'001, 30'000), "unreachable");
  EXPECT_EQ(HostStateAt(Host(h.host_id, "alpha", 0), 10'000, 30'000), "stopped");
}

}  // namespace
}  // namespace snapvol
