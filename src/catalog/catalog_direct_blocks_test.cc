// The catalog's journal of EBS direct snapshots: blocks recorded in order (the last write of an
// index wins), listed by index, refused once the snapshot is no longer pending, handed over
// between runners only from the runner named, and dropped when the snapshot completes or fails.
#include <gtest/gtest.h>

#include <filesystem>

#include "catalog/catalog.h"
#include "catalog/catalog_test_db.h"
#include "core/file_util.h"
#include "core/ids.h"

namespace snapvol {
namespace {

std::string Bytes(char c) { return std::string(32, c); }

class CatalogDirectBlocksTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/direct-cat-" + NewVolumeId();
    ASSERT_TRUE(MakeDirs(dir_));
    db_ = std::make_unique<catalog_testing::TestCatalogDb>(dir_);
    auto c = Catalog::Open(db_->location());
    ASSERT_TRUE(c) << c.error().ToString();
    cat_ = std::move(*c);
  }
  void TearDown() override {
    cat_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string Pending(const std::string& runner = "pid:1@boot") {
    SnapshotRecord s;
    s.snapshot_id = NewSnapshotId();
    s.volume_id = "vol-ffffffff";
    s.account_id = kDefaultAccountId;
    s.state = SnapshotState::kPending;
    s.progress = "0%";
    s.start_time_ms = 1000;
    s.volume_size_bytes = 4 * 524288;
    s.block_size = 524288;
    s.runner = runner;
    EXPECT_TRUE(cat_->InsertSnapshot(s));
    return s.snapshot_id;
  }
  std::string dir_;
  std::unique_ptr<catalog_testing::TestCatalogDb> db_;
  std::unique_ptr<Catalog> cat_;
};

TEST_F(CatalogDirectBlocksTest, BlocksAreJournaledInOrderAndTheLastWriteWins) {
  const std::string id = Pending();
  EXPECT_EQ(cat_->JournalDirectBlocks(id, {{0, Bytes('a'), Bytes('b'), 7}}).error().code(), ErrorCode::kConflict);
  ASSERT_TRUE(cat_->InsertDirectJournal(id, 5000));
  EXPECT_EQ(cat_->InsertDirectJournal(id, 6000).error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(cat_->InsertDirectJournal("snap-00000000000000001", 1).error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(cat_->JournalDirectBlocks(id, {{3, Bytes('a'), Bytes('b'), 7}, {1, Bytes(0), Bytes('c'), 0},
                                            {3, Bytes('d'), Bytes('e'), 9}}));
  ASSERT_TRUE(cat_->JournalDirectBlocks(id, {{1, Bytes('f'), Bytes('g'), 2}}));
  EXPECT_EQ(*cat_->ListDirectBlocks(id),
            (std::vector<DirectBlockRecord>{{1, Bytes('f'), Bytes('g'), 2}, {3, Bytes('d'), Bytes('e'), 9}}));
  EXPECT_EQ(*cat_->ListDirectJournals(), (std::vector<DirectJournalRecord>{{id, "pid:1@boot", 5000}}));
  // A malformed digest is refused and nothing of the batch is written.
  EXPECT_EQ(cat_->JournalDirectBlocks(id, {{0, Bytes('a'), Bytes('b'), 1}, {2, "short", Bytes('b'), 1}})
                .error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(cat_->ListDirectBlocks(id)->size(), 2u);
}

TEST_F(CatalogDirectBlocksTest, HandOverOnlyFromTheRunnerNamed) {
  const std::string id = Pending("pid:1@boot");
  ASSERT_TRUE(cat_->InsertDirectJournal(id, 5000));
  EXPECT_EQ(cat_->HandOverSnapshot(id, "pid:2@boot", "").error().code(), ErrorCode::kConflict);
  ASSERT_TRUE(cat_->HandOverSnapshot(id, "pid:1@boot", ""));
  EXPECT_EQ(cat_->ListDirectJournals()->at(0).runner, "");
  ASSERT_TRUE(cat_->HandOverSnapshot(id, "", "pid:3@boot"));
  EXPECT_EQ(cat_->HandOverSnapshot(id, "", "pid:4@boot").error().code(), ErrorCode::kConflict);
  EXPECT_EQ(cat_->GetSnapshot(id)->runner, "pid:3@boot");
  EXPECT_EQ(cat_->HandOverSnapshot("snap-00000000000000001", "", "x").error().code(), ErrorCode::kNotFound);
}

TEST_F(CatalogDirectBlocksTest, CompletingOrFailingDropsTheJournal) {
  const std::string done = Pending(), failed = Pending(), other = Pending();
  for (const auto& id : {done, failed, other}) {
    ASSERT_TRUE(cat_->InsertDirectJournal(id, 5000));
    ASSERT_TRUE(cat_->JournalDirectBlocks(id, {{0, Bytes('a'), Bytes('b'), 7}}));
  }
  ASSERT_TRUE(cat_->MarkCompleted(done, 2000, 7, 1, 4));
  ASSERT_TRUE(cat_->MarkError(failed, "not completed within its timeout"));
  EXPECT_TRUE(cat_->ListDirectBlocks(done)->empty());
  EXPECT_TRUE(cat_->ListDirectBlocks(failed)->empty());
  EXPECT_EQ(cat_->ListDirectBlocks(other)->size(), 1u);
  EXPECT_EQ(*cat_->ListDirectJournals(), (std::vector<DirectJournalRecord>{{other, "pid:1@boot", 5000}}));
  EXPECT_EQ(cat_->JournalDirectBlocks(done, {{1, Bytes('a'), Bytes('b'), 7}}).error().code(), ErrorCode::kConflict);
  EXPECT_EQ(cat_->InsertDirectJournal(failed, 1).error().code(), ErrorCode::kConflict);
}

// A rebuild's UpsertSnapshot replaces the row whole: a journal of the old row goes with it
// (as when the upsert deleted the row and its journal cascaded), other journals stay.
TEST_F(CatalogDirectBlocksTest, UpsertingTheSnapshotDropsItsJournal) {
  const std::string id = Pending(), other = Pending();
  for (const auto& s : {id, other}) {
    ASSERT_TRUE(cat_->InsertDirectJournal(s, 5000));
    ASSERT_TRUE(cat_->JournalDirectBlocks(s, {{0, Bytes('a'), Bytes('b'), 7}}));
  }
  SnapshotRecord again = *cat_->GetSnapshot(id);
  again.description = "found again";
  ASSERT_TRUE(cat_->UpsertSnapshot(again));
  EXPECT_EQ(*cat_->GetSnapshot(id), again);
  EXPECT_TRUE(cat_->ListDirectBlocks(id)->empty());
  EXPECT_EQ(*cat_->ListDirectJournals(), (std::vector<DirectJournalRecord>{{other, "pid:1@boot", 5000}}));
  EXPECT_EQ(cat_->JournalDirectBlocks(id, {{1, Bytes('a'), Bytes('b'), 7}}).error().code(), ErrorCode::kConflict);
  EXPECT_EQ(cat_->ListDirectBlocks(other)->size(), 1u);
}

}  // namespace
}  // namespace snapvol
