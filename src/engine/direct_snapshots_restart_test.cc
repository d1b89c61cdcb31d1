// EBS direct snapshots across a restart (engine/direct_snapshots.h): every acknowledged block is
// journaled in the catalog, and a new DirectSnapshots on the same catalog and store adopts what
// a stopped or crashed one left pending: it completes with the right LINEAR checksum and reads
// back byte for byte; a journaled chunk gone from the store, a deleted parent or a deadline
// passed during the downtime ends it `error`, never `completed` with a block missing.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>
#include <thread>

#include "core/file_util.h"
#include "core/ids.h"
#include "engine/direct_snapshots.h"
#include "engine/direct_snapshots_test_fixture.h"
#include "engine/snapshot_engine.h"
#include "store/memory_store.h"

namespace snapvol {
namespace {

using testing_util::RandomDirectBlock;
constexpr uint64_t kBlock = kDirectBlockSize;

class DirectRestartTest : public testing_util::DirectSnapshotsFixture {
 protected:
  // What DataDir::Open does for a pending row whose runner died: hands it over for adoption.
  void Crash(const std::string& id, const std::string& runner) { ASSERT_TRUE(catalog_->HandOverSnapshot(id, runner, "")); }

};

TEST_F(DirectRestartTest, StoppedMidUploadAnotherProcessAdoptsAndCompletes) {
  const std::string id = Start(64);
  // Parallel puts (group commits), one index written twice: the last write counts.
  std::vector<std::vector<uint8_t>> blocks(64);
  for (uint32_t i = 0; i < 64; ++i) blocks[i] = i % 9 == 4 ? std::vector<uint8_t>(kBlock, 0) : RandomDirectBlock(100 + i);
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (uint32_t i = t; i < 40; i += 8) EXPECT_TRUE(Put(id, i, blocks[i]));
    });
  for (auto& th : threads) th.join();
  ASSERT_TRUE(Put(id, 3, RandomDirectBlock(999)));
  ASSERT_TRUE(Put(id, 3, blocks[3]));
  EXPECT_EQ(catalog_->ListDirectBlocks(id)->size(), 40u);
  direct_.reset();  // snapvold stops: its pending snapshot is handed over, not failed

  clock_.Advance(20 * 60'000);
  direct_ = New("pid:2@boot");
  EXPECT_EQ(direct_->PendingBlockCount(id), 0u);
  auto adopted = direct_->Adopt();
  ASSERT_TRUE(adopted) << adopted.error().ToString();
  EXPECT_EQ(*adopted, 1u);
  EXPECT_EQ(catalog_->GetSnapshot(id)->runner, "pid:2@boot");
  EXPECT_EQ(*direct_->Adopt(), 0u);  // adopted once
  auto leases = repo_->ListLeases();
  ASSERT_EQ(leases->size(), 1u);
  EXPECT_EQ(leases->front().heartbeat_ms, clock_.NowMillis());
  for (uint32_t i = 40; i < 64; ++i) ASSERT_TRUE(Put(id, i, blocks[i]));
  std::vector<Digest> digests;
  for (const auto& b : blocks) digests.push_back(Sha256(b));
  auto done = direct_->Complete(id, 64, LinearChecksum(digests));
  ASSERT_TRUE(done) << done.error().ToString();
  EXPECT_EQ(done->state, SnapshotState::kCompleted);
  EXPECT_EQ(done->changed_blocks, 64u);
  for (uint32_t i = 0; i < 64; ++i) {
    auto got = Read(id, i);
    if (got.empty()) got.assign(kBlock, 0);
    EXPECT_EQ(got, blocks[i]) << "block " << i;
  }
  EXPECT_TRUE(catalog_->ListDirectBlocks(id)->empty());
  EXPECT_TRUE(catalog_->ListDirectJournals()->empty());
  EXPECT_TRUE(repo_->ListLeases()->empty());
}

TEST_F(DirectRestartTest, CrashedProcessIsAdoptedWithItsParent) {
  const std::string parent = Start(8);
  auto p0 = RandomDirectBlock(1), p5 = RandomDirectBlock(2);
  ASSERT_TRUE(Put(parent, 0, p0));
  ASSERT_TRUE(Put(parent, 5, p5));
  ASSERT_TRUE(direct_->Complete(parent, 2, std::nullopt));
  const std::string child = Start(8, parent);
  auto c5 = RandomDirectBlock(3);
  ASSERT_TRUE(Put(child, 5, c5));
  Crash(child, "pid:1@boot");
  auto other = New("pid:2@boot");
  ASSERT_EQ(*other->Adopt(), 1u);
  auto c7 = RandomDirectBlock(4);
  ASSERT_TRUE(other->PutBlock(child, 7, c7, Sha256(c7)));
  // The LINEAR checksum covers the blocks written before and after the crash, in index order.
  EXPECT_FALSE(other->Complete(child, 2, LinearChecksum({Sha256(c7), Sha256(c5)})));
  auto done = other->Complete(child, 2, LinearChecksum({Sha256(c5), Sha256(c7)}));
  ASSERT_TRUE(done) << done.error().ToString();
  EXPECT_EQ(Read(child, 0), p0);
  EXPECT_EQ(Read(child, 5), c5);
  EXPECT_EQ(Read(child, 7), c7);
  EXPECT_TRUE(Read(child, 1).empty());
}

TEST_F(DirectRestartTest, AChunkCollectedDuringTheDowntimeEndsItError) {
  const std::string id = Start(4);
  auto b0 = RandomDirectBlock(5), b1 = RandomDirectBlock(6);
  ASSERT_TRUE(Put(id, 0, b0));
  ASSERT_TRUE(Put(id, 1, b1));
  direct_.reset();
  ASSERT_TRUE(repo_->DeleteObjects(ObjectKind::kChunk, {repo_->IdOf(b1)}));  // GC, once the lease expired
  direct_ = New("pid:2@boot");
  ASSERT_EQ(*direct_->Adopt(), 0u);
  auto s = catalog_->GetSnapshot(id);
  EXPECT_EQ(s->state, SnapshotState::kError);
  EXPECT_NE(s->state_message.find("block 1's data is no longer in the store"), std::string::npos) << s->state_message;
  EXPECT_TRUE(catalog_->ListDirectBlocks(id)->empty());
  EXPECT_TRUE(repo_->ListLeases()->empty());
  EXPECT_EQ(Put(id, 2, RandomDirectBlock(7)).error().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(direct_->Complete(id, 2, std::nullopt));
  EXPECT_EQ(repo_->GetManifest(id).error().code(), ErrorCode::kNotFound);
}

TEST_F(DirectRestartTest, ADeadlinePassedDuringTheDowntimeEndsItError) {
  const std::string id = Start(4, "", 10 * 60'000);
  const std::string later = Start(4, "", 30 * 60'000);
  ASSERT_TRUE(Put(id, 0, RandomDirectBlock(8)));
  ASSERT_TRUE(Put(later, 0, RandomDirectBlock(9)));
  direct_.reset();
  clock_.Advance(10 * 60'000);
  direct_ = New("pid:2@boot");
  ASSERT_EQ(*direct_->Adopt(), 1u);
  auto s = catalog_->GetSnapshot(id);
  EXPECT_EQ(s->state, SnapshotState::kError);
  EXPECT_NE(s->state_message.find("timeout of 10 minutes"), std::string::npos) << s->state_message;
  EXPECT_EQ(catalog_->GetSnapshot(later)->state, SnapshotState::kPending);
  // The adopted one keeps its original deadline: 30 minutes from its start, not from adoption.
  clock_.Advance(20 * 60'000 - 1);
  EXPECT_EQ(direct_->ExpireOverdue(), 0u);
  clock_.Advance(1);
  EXPECT_EQ(direct_->ExpireOverdue(), 1u);
  EXPECT_EQ(catalog_->GetSnapshot(later)->state, SnapshotState::kError);
  EXPECT_TRUE(catalog_->ListDirectJournals()->empty());
}

TEST_F(DirectRestartTest, ADeletedParentEndsItError) {
  const std::string parent = Start(4);
  ASSERT_TRUE(Put(parent, 0, RandomDirectBlock(10)));
  ASSERT_TRUE(direct_->Complete(parent, 1, std::nullopt));
  const std::string child = Start(4, parent);
  ASSERT_TRUE(Put(child, 1, RandomDirectBlock(11)));
  direct_.reset();
  ASSERT_TRUE(repo_->DeleteManifest(parent));
  direct_ = New("pid:2@boot");
  ASSERT_EQ(*direct_->Adopt(), 0u);
  auto s = catalog_->GetSnapshot(child);
  EXPECT_EQ(s->state, SnapshotState::kError);
  EXPECT_NE(s->state_message.find("parent snapshot " + parent), std::string::npos) << s->state_message;
}

TEST_F(DirectRestartTest, ALiveRunnersSnapshotIsNotAdopted) {
  const std::string id = Start(4);
  ASSERT_TRUE(Put(id, 0, RandomDirectBlock(12)));
  auto other = New("pid:2@boot");
  EXPECT_EQ(*other->Adopt(), 0u);
  EXPECT_EQ(other->PutBlock(id, 1, RandomDirectBlock(13), Sha256(RandomDirectBlock(13))).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(catalog_->GetSnapshot(id)->runner, "pid:1@boot");
  EXPECT_EQ(direct_->PendingBlockCount(id), 4u);
}

}  // namespace
}  // namespace snapvol
