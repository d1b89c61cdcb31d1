// Catalog::Open on a PostgreSQL URL: the schema, the default account, the reader connections
// and DataVersion, against the live test server (ctest -L pg).
#include <gtest/gtest.h>

#include <string>

#include "catalog/catalog.h"
#include "catalog/catalog_postgres_test_util.h"

namespace snapvol::catalog_internal::testing_pg {
namespace {

class CatalogOnPostgresTest : public PostgresTest {};

TEST_F(CatalogOnPostgresTest, OpensMigratesAndKeepsWhatItWrote) {
  ASSERT_TRUE(Catalog::IsPostgresUrl(url_));
  std::string account_id;
  {
    auto catalog = Catalog::Open(url_);
    ASSERT_TRUE(catalog.has_value()) << catalog.error().ToString();
    EXPECT_EQ((*catalog)->SchemaVersion(), Catalog::LatestSchemaVersion());
    auto def = (*catalog)->GetAccount(kDefaultAccountId);
    ASSERT_TRUE(def.has_value()) << def.error().ToString();
    EXPECT_EQ(def->alias, kDefaultAccountAlias);
    auto team = (*catalog)->CreateAccount("team-a");
    ASSERT_TRUE(team.has_value()) << team.error().ToString();
    account_id = team->account_id;
    // A duplicate alias is refused as on SQLite, and leaves nothing behind.
    auto dup = (*catalog)->CreateAccount("team-a");
    ASSERT_FALSE(dup.has_value());
    EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists) << dup.error().ToString();
  }
  auto again = Catalog::Open(url_);
  ASSERT_TRUE(again.has_value()) << again.error().ToString();
  auto accounts = (*again)->ListAccounts();
  ASSERT_TRUE(accounts.has_value()) << accounts.error().ToString();
  ASSERT_EQ(accounts->size(), 2u);
  EXPECT_EQ((*accounts)[1].account_id, account_id);
  EXPECT_EQ(Int(*db_, "SELECT count(*) FROM accounts WHERE alias = 'default'"), 1);
}

TEST_F(CatalogOnPostgresTest, ASecondCatalogSeesTheFirstsCommitsThroughItsReaders) {
  auto a = Catalog::Open(url_);
  ASSERT_TRUE(a.has_value()) << a.error().ToString();
  auto b = Catalog::Open(url_);
  ASSERT_TRUE(b.has_value()) << b.error().ToString();
  auto before = (*b)->DataVersion();
  ASSERT_TRUE(before.has_value()) << before.error().ToString();

  VolumeRecord v;
  v.volume_id = "vol-0123456789abcdef0";
  v.account_id = kDefaultAccountId;
  v.name = "data";
  v.path = "/var/lib/x.img";
  v.size_bytes = 1 << 30;
  v.block_size = 524288;
  v.created_ms = 1000;
  ASSERT_TRUE((*a)->InsertVolume(v).has_value());
  SnapshotRecord s;
  s.snapshot_id = "snap-0123456789abcdef0";
  s.volume_id = v.volume_id;
  s.account_id = kDefaultAccountId;
  s.state = SnapshotState::kPending;
  s.progress = "0%";
  s.start_time_ms = 2000;
  s.volume_size_bytes = v.size_bytes;
  s.block_size = 524288;
  auto inserted = (*a)->InsertSnapshot(s);
  ASSERT_TRUE(inserted.has_value()) << inserted.error().ToString();

  auto after = (*b)->DataVersion();
  ASSERT_TRUE(after.has_value()) << after.error().ToString();
  EXPECT_NE(*after, *before) << "another host's commit must change the data version";
  // ListSnapshotsPage runs on b's reader connections.
  auto page = (*b)->ListSnapshotsPage(kDefaultAccountId, "", 10);
  ASSERT_TRUE(page.has_value()) << page.error().ToString();
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ((*page)[0].snapshot_id, s.snapshot_id);
  EXPECT_EQ((*page)[0].state, SnapshotState::kPending);
}

TEST_F(CatalogOnPostgresTest, ALoneWriteOutsideATransactionMovesTheDataVersion) {
  // DetachPolicy is one DELETE, no transaction: another process's cache of identities (the
  // daemon's, following DataVersion) must see it, as SQLite's data_version does.
  auto a = Catalog::Open(url_);
  ASSERT_TRUE(a.has_value()) << a.error().ToString();
  auto b = Catalog::Open(url_);
  ASSERT_TRUE(b.has_value()) << b.error().ToString();
  auto team = (*a)->CreateAccount("team-a");
  ASSERT_TRUE(team.has_value()) << team.error().ToString();
  auto attached = (*a)->ListPolicyAttachments(team->account_id);
  ASSERT_TRUE(attached.has_value()) << attached.error().ToString();
  if (attached->empty()) ASSERT_TRUE((*a)->AttachPolicy(team->account_id, "member").has_value());
  const std::string name = attached->empty() ? "member" : (*attached)[0].policy_name;

  auto before = (*b)->DataVersion();
  ASSERT_TRUE(before.has_value()) << before.error().ToString();
  auto detached = (*a)->DetachPolicy(team->account_id, name);
  ASSERT_TRUE(detached.has_value()) << detached.error().ToString();
  auto after = (*b)->DataVersion();
  ASSERT_TRUE(after.has_value()) << after.error().ToString();
  EXPECT_NE(*after, *before) << "a write outside a transaction left the data version as it was";
  auto seen = (*b)->ListPolicyAttachments(team->account_id);
  ASSERT_TRUE(seen.has_value()) << seen.error().ToString();
  for (const auto& p : *seen) EXPECT_NE(p.policy_name, name);
  // Changes() is the DELETE's, not the version bump's: nothing left to detach is NotFound.
  auto again = (*a)->DetachPolicy(team->account_id, name);
  ASSERT_FALSE(again.has_value());
  EXPECT_EQ(again.error().code(), ErrorCode::kNotFound) << again.error().ToString();
}

TEST_F(CatalogOnPostgresTest, AWrongPasswordIsRefusedWithoutShowingIt) {
  // postgresql://user:password@host:port/db → the same with another password.
  const auto colon = url_.find(':', std::string("postgresql://").size());
  const auto at = url_.find('@');
  ASSERT_NE(colon, std::string::npos);
  ASSERT_NE(at, std::string::npos);
  const std::string wrong = url_.substr(0, colon + 1) + "not-the-Secret-42" + url_.substr(at);
  auto c = Catalog::Open(wrong);
  ASSERT_FALSE(c.has_value());
  EXPECT_EQ(c.error().code(), ErrorCode::kUnauthorized) << c.error().ToString();
  EXPECT_EQ(c.error().ToString().find("not-the-Secret-42"), std::string::npos) << c.error().ToString();
}

}  // namespace
}  // namespace snapvol::catalog_internal::testing_pg
