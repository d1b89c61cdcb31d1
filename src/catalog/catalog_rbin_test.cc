// Tests of the Recycle Bin's tables: retention rules (insert, read, list per account, update,
// delete, the schema's bounds) and binned snapshots (moved out of snapshots with their tags in
// one transaction with DeleteSnapshot's checks, restored as they were, removed, replaced by a
// rebuild, and kept across a reopen).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "catalog/catalog.h"
#include "catalog/catalog_test_util.h"
#include "core/ids.h"

namespace snapvol {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;
constexpr int64_t kDay = 86'400'000;

class CatalogRbinTest : public testing_util::FreshCatalogTest {
 protected:
  void SetUp() override {
    FreshCatalogTest::SetUp();
    if (HasFatalFailure()) return;
    auto a = cat_->CreateAccount("team-a");
    ASSERT_TRUE(a);
    team_ = a->account_id;
  }
  RbinRuleRecord Rule(const std::string& id, int64_t days) const {
    RbinRuleRecord r;
    r.rule_id = id;
    r.account_id = team_;
    r.retention_days = days;
    r.created_ms = kT0;
    return r;
  }
  SnapshotRecord Completed() const {
    SnapshotRecord s;
    s.snapshot_id = NewSnapshotId();
    s.volume_id = NewVolumeId();
    s.account_id = team_;
    s.state = SnapshotState::kCompleted;
    s.progress = "100%";
    s.start_time_ms = kT0;
    s.completed_time_ms = kT0 + 5;
    s.volume_size_bytes = 1 << 20;
    s.block_size = 4096;
    s.description = "precious";
    s.stored_bytes = 123;
    s.tags = {{"Name", "db"}, {"keep", "yes"}};
    return s;
  }
  std::string team_;
};

TEST_F(CatalogRbinTest, RulesRoundTripPerAccount) {
  RbinRuleRecord a = Rule("abcdefghijk", 7);
  a.resource_tags = R"([{"ResourceTagKey":"keep"}])";
  a.tags = R"([{"Key":"k","Value":"v"}])";
  ASSERT_TRUE(cat_->InsertRbinRule(a));
  RbinRuleRecord b = Rule("ABCDEFGHIJK", 30);
  b.created_ms = kT0 + 1;
  b.lock_state = "locked";
  b.unlock_delay_days = 7;
  ASSERT_TRUE(cat_->InsertRbinRule(b));
  auto dup = cat_->InsertRbinRule(a);
  ASSERT_FALSE(dup);
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);

  auto got = cat_->GetRbinRule(a.rule_id);
  ASSERT_TRUE(got);
  EXPECT_EQ(*got, a);
  auto mine = cat_->ListRbinRules(team_);
  ASSERT_TRUE(mine);
  ASSERT_EQ(mine->size(), 2u);
  EXPECT_EQ((*mine)[0], a);  // oldest first
  EXPECT_EQ((*mine)[1], b);
  auto others = cat_->ListRbinRules(std::string(kDefaultAccountId));
  ASSERT_TRUE(others);
  EXPECT_TRUE(others->empty());

  b.lock_state = "pending_unlock";
  b.lock_end_ms = kT0 + 7 * kDay;
  b.retention_days = 31;
  b.account_id = kDefaultAccountId;  // not changed by an update
  ASSERT_TRUE(cat_->UpdateRbinRule(b));
  got = cat_->GetRbinRule(b.rule_id);
  ASSERT_TRUE(got);
  EXPECT_EQ(got->lock_state, "pending_unlock");
  EXPECT_EQ(got->lock_end_ms, kT0 + 7 * kDay);
  EXPECT_EQ(got->retention_days, 31);
  EXPECT_EQ(got->account_id, team_);

  ASSERT_TRUE(cat_->DeleteRbinRule(a.rule_id));
  EXPECT_EQ(cat_->GetRbinRule(a.rule_id).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(cat_->DeleteRbinRule(a.rule_id).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(cat_->UpdateRbinRule(a).error().code(), ErrorCode::kNotFound);
}

TEST_F(CatalogRbinTest, SchemaRefusesOutOfBoundRetentionAndLockStates) {
  EXPECT_FALSE(cat_->InsertRbinRule(Rule("aaaaaaaaaaa", 0)));
  EXPECT_FALSE(cat_->InsertRbinRule(Rule("bbbbbbbbbbb", 3651)));
  RbinRuleRecord r = Rule("ccccccccccc", 5);
  r.lock_state = "frozen";
  EXPECT_FALSE(cat_->InsertRbinRule(r));
  r.lock_state = "";
  r.account_id = "999999999999";  // no such account
  EXPECT_FALSE(cat_->InsertRbinRule(r));
  auto all = cat_->ListRbinRules(std::nullopt);
  ASSERT_TRUE(all);
  EXPECT_TRUE(all->empty());
}

TEST_F(CatalogRbinTest, BinningMovesTheRowWithItsTagsAndRestoringBringsItBack) {
  SnapshotRecord s = Completed();
  ASSERT_TRUE(cat_->InsertSnapshot(s));
  bool moved = false;
  ASSERT_TRUE(cat_->BinSnapshot(s.snapshot_id, kT0 + kDay, kT0 + 8 * kDay, "abcdefghijk", [&]() -> Status {
    moved = true;
    return OkStatus();
  }));
  EXPECT_TRUE(moved);
  EXPECT_EQ(cat_->GetSnapshot(s.snapshot_id).error().code(), ErrorCode::kNotFound);
  auto listed = cat_->ListSnapshots({.account_id = team_});
  ASSERT_TRUE(listed);
  EXPECT_TRUE(listed->empty());  // invisible to everything that lists snapshots

  auto b = cat_->GetBinnedSnapshot(s.snapshot_id);
  ASSERT_TRUE(b) << b.error().ToString();
  EXPECT_EQ(b->snapshot, s);
  EXPECT_EQ(b->rule_id, "abcdefghijk");
  EXPECT_EQ(b->entered_ms, kT0 + kDay);
  EXPECT_EQ(b->exit_ms, kT0 + 8 * kDay);
  auto mine = cat_->ListBinnedSnapshots(team_);
  ASSERT_TRUE(mine);
  ASSERT_EQ(mine->size(), 1u);
  auto others = cat_->ListBinnedSnapshots(std::string(kDefaultAccountId));
  ASSERT_TRUE(others);
  EXPECT_TRUE(others->empty());

  // Kept across a reopen.
  cat_.reset();
  auto reopened = Catalog::Open(path_);
  ASSERT_TRUE(reopened);
  cat_ = std::move(*reopened);
  ASSERT_TRUE(cat_->GetBinnedSnapshot(s.snapshot_id));

  ASSERT_TRUE(cat_->RestoreBinnedSnapshot(s.snapshot_id));
  auto back = cat_->GetSnapshot(s.snapshot_id);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, s);
  EXPECT_EQ(cat_->GetBinnedSnapshot(s.snapshot_id).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(cat_->RestoreBinnedSnapshot(s.snapshot_id).error().code(), ErrorCode::kNotFound);
}

TEST_F(CatalogRbinTest, AFailedStoreMoveOrALockLeavesTheSnapshotLive) {
  SnapshotRecord s = Completed();
  ASSERT_TRUE(cat_->InsertSnapshot(s));
  auto failed = cat_->BinSnapshot(s.snapshot_id, kT0, kT0 + kDay, "r", []() -> Status {
    return MakeError(ErrorCode::kIoError, "store down", true);
  });
  ASSERT_FALSE(failed);
  EXPECT_TRUE(cat_->GetSnapshot(s.snapshot_id));
  EXPECT_EQ(cat_->GetBinnedSnapshot(s.snapshot_id).error().code(), ErrorCode::kNotFound);

  ASSERT_TRUE(cat_->PutSnapshotLock(
      SnapshotLockRecord{s.snapshot_id, team_, "governance", kT0, kT0, kT0 + 10 * kDay, 10, 0, 0}));
  auto locked = cat_->BinSnapshot(s.snapshot_id, kT0 + kDay, kT0 + 2 * kDay, "r");
  ASSERT_FALSE(locked);
  EXPECT_EQ(locked.error().code(), ErrorCode::kConflict);
  EXPECT_TRUE(cat_->GetSnapshot(s.snapshot_id));
  EXPECT_EQ(cat_->BinSnapshot(NewSnapshotId(), kT0, kT0 + kDay, "r").error().code(), ErrorCode::kNotFound);
}

TEST_F(CatalogRbinTest, RemoveAndReplace) {
  SnapshotRecord s = Completed(), t = Completed();
  ASSERT_TRUE(cat_->InsertSnapshot(s));
  ASSERT_TRUE(cat_->BinSnapshot(s.snapshot_id, kT0, kT0 + kDay, "r"));
  // A failing store step keeps it in the bin.
  EXPECT_FALSE(cat_->RemoveBinnedSnapshot(s.snapshot_id, []() -> Status { return MakeError(ErrorCode::kIoError, "x"); }));
  ASSERT_TRUE(cat_->GetBinnedSnapshot(s.snapshot_id));
  ASSERT_TRUE(cat_->RemoveBinnedSnapshot(s.snapshot_id));
  EXPECT_EQ(cat_->GetBinnedSnapshot(s.snapshot_id).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(cat_->GetSnapshot(s.snapshot_id).error().code(), ErrorCode::kNotFound);

  // A rebuild replaces the whole bin with what the store holds.
  ASSERT_TRUE(cat_->InsertSnapshot(t));
  ASSERT_TRUE(cat_->BinSnapshot(t.snapshot_id, kT0, kT0 + kDay, "r"));
  ASSERT_TRUE(cat_->ReplaceRecycleBin({BinnedSnapshotRecord{s, "default", kT0 + 1, kT0 + 3 * kDay}}));
  auto all = cat_->ListBinnedSnapshots(std::nullopt);
  ASSERT_TRUE(all);
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].snapshot, s);
  EXPECT_EQ((*all)[0].rule_id, "default");
  EXPECT_EQ((*all)[0].exit_ms, kT0 + 3 * kDay);
}

}  // namespace
}  // namespace snapvol
