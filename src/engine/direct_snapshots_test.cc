// Snapshots written block by block (engine/direct_snapshots.h) and block-map comparison
// (store/block_map_diff.h): checksums are checked and a refused block stores nothing, unwritten
// blocks come from the parent (or are holes), completion checks the count and the LINEAR
// aggregate, an abandoned snapshot ends `error` after its timeout, and the listings page
// through every differing block once.
#include "engine/direct_snapshots.h"
#include "engine/direct_snapshots_test_fixture.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "core/file_util.h"
#include "core/ids.h"
#include "store/block_map_diff.h"
#include "engine/engine_test_util.h"
#include "engine/snapshot_engine.h"
#include "store/gc.h"
#include "store/memory_store.h"

namespace snapvol {
namespace {

using testing_util::RandomDirectBlock;
constexpr uint64_t kBlock = kDirectBlockSize;

class DirectSnapshotsTest : public testing_util::DirectSnapshotsFixture {
 protected:
  std::vector<uint64_t> Listed(const std::optional<std::string>& first, const std::string& second, size_t limit) {
    std::optional<ManifestMeta> a;
    if (first) a = *repo_->GetManifest(*first);
    auto b = *repo_->GetManifest(second);
    std::vector<uint64_t> out;
    std::optional<uint64_t> next = 0;
    for (int pages = 0; next; ++pages) {
      if (pages > 5000) {
        ADD_FAILURE() << "the listing does not end (a page repeats earlier blocks?)";
        break;
      }
      auto page = DiffBlockMaps(repo_.get(), a, b, *next, limit, &next);
      EXPECT_TRUE(page);
      EXPECT_LE(page->size(), limit);
      for (const auto& d : *page) out.push_back(d.index);
      if (next) EXPECT_EQ(page->size(), limit);
    }
    return out;
  }
};

TEST_F(DirectSnapshotsTest, WrittenBlocksReadBackAndTheRestAreHoles) {
  const std::string id = Start(16);
  ASSERT_EQ(catalog_->GetSnapshot(id)->state, SnapshotState::kPending);
  ASSERT_EQ(repo_->ListLeases()->size(), 1u);
  auto b0 = RandomDirectBlock(1), b7 = RandomDirectBlock(2);
  ASSERT_TRUE(Put(id, 0, b0));
  ASSERT_TRUE(Put(id, 7, b7));
  auto done = direct_->Complete(id, 2, LinearChecksum({Sha256(b0), Sha256(b7)}));
  ASSERT_TRUE(done) << done.error().ToString();
  EXPECT_EQ(done->state, SnapshotState::kCompleted);
  EXPECT_EQ(done->changed_blocks, 2u);
  EXPECT_EQ(Read(id, 0), b0);
  EXPECT_EQ(Read(id, 7), b7);
  EXPECT_TRUE(Read(id, 3).empty());
  EXPECT_TRUE(repo_->ListLeases()->empty());
  EXPECT_EQ(Listed(std::nullopt, id, 100), (std::vector<uint64_t>{0, 7}));
  // Readers for GetSnapshotBlock: one per snapshot, shared.
  auto r1 = direct_->Reader(id), r2 = direct_->Reader(id);
  ASSERT_TRUE(r1 && r2);
  EXPECT_EQ(r1->get(), r2->get());
  EXPECT_EQ(direct_->Reader("snap-00000000000000001").error().code(), ErrorCode::kNotFound);
}

TEST_F(DirectSnapshotsTest, RefusedBlocksStoreNothing) {
  const std::string id = Start(4);
  auto b = RandomDirectBlock(3);
  Digest wrong = Sha256(b);
  wrong[0] ^= 1;
  auto st = direct_->PutBlock(id, 1, b, wrong);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kInvalidArgument);
  std::vector<uint8_t> shorter(b.begin(), b.end() - 1);
  EXPECT_FALSE(direct_->PutBlock(id, 1, shorter, Sha256(shorter)));
  EXPECT_FALSE(Put(id, 4, b));  // outside the volume
  EXPECT_TRUE(repo_->ListObjects(ObjectKind::kChunk)->empty());
  ASSERT_TRUE(direct_->Complete(id, 0, std::nullopt));
  EXPECT_TRUE(Listed(std::nullopt, id, 100).empty());
}

TEST_F(DirectSnapshotsTest, CountAndAggregateAreCheckedAndLeaveItPending) {
  const std::string id = Start(4);
  auto b = RandomDirectBlock(4);
  ASSERT_TRUE(Put(id, 2, b));
  EXPECT_FALSE(direct_->Complete(id, 2, std::nullopt));
  EXPECT_FALSE(direct_->Complete(id, 1, Sha256(b)));  // the aggregate of one block is not its digest
  EXPECT_EQ(catalog_->GetSnapshot(id)->state, SnapshotState::kPending);
  EXPECT_TRUE(direct_->Complete(id, 1, LinearChecksum({Sha256(b)})));
}

TEST_F(DirectSnapshotsTest, UnwrittenBlocksComeFromTheParent) {
  const std::string parent = Start(8);
  std::vector<std::vector<uint8_t>> p;
  for (uint32_t i = 0; i < 4; ++i) {
    p.push_back(RandomDirectBlock(10 + i));
    ASSERT_TRUE(Put(parent, i, p[i]));
  }
  ASSERT_TRUE(direct_->Complete(parent, 4, std::nullopt));
  const std::string child = Start(16, parent);  // larger: blocks past the parent's are holes
  auto fresh = RandomDirectBlock(20);
  ASSERT_TRUE(Put(child, 1, fresh));
  ASSERT_TRUE(Put(child, 2, std::vector<uint8_t>(kBlock, 0)));
  ASSERT_TRUE(Put(child, 12, fresh));
  ASSERT_TRUE(direct_->Complete(child, 3, std::nullopt));
  EXPECT_EQ(Read(child, 0), p[0]);
  EXPECT_EQ(Read(child, 1), fresh);
  EXPECT_TRUE(Read(child, 2).empty());
  EXPECT_EQ(Read(child, 3), p[3]);
  EXPECT_TRUE(Read(child, 9).empty());
  EXPECT_EQ(Read(child, 12), fresh);
  EXPECT_EQ(Listed(parent, child, 100), (std::vector<uint64_t>{1, 2, 12}));
  EXPECT_EQ(Listed(child, parent, 100), (std::vector<uint64_t>{1, 2, 12}));
  EXPECT_EQ(catalog_->GetSnapshot(child)->parent_snapshot_id, parent);
}

TEST_F(DirectSnapshotsTest, AbandonedSnapshotEndsErrorAfterItsTimeout) {
  const std::string id = Start(4, "", 10 * 60'000);
  ASSERT_TRUE(Put(id, 0, RandomDirectBlock(5)));
  clock_.Advance(10 * 60'000 - 1);
  EXPECT_EQ(direct_->ExpireOverdue(), 0u);
  EXPECT_EQ(catalog_->GetSnapshot(id)->state, SnapshotState::kPending);
  clock_.Advance(1);
  EXPECT_EQ(direct_->ExpireOverdue(), 1u);
  auto s = catalog_->GetSnapshot(id);
  EXPECT_EQ(s->state, SnapshotState::kError);
  EXPECT_NE(s->state_message.find("timeout of 10 minutes"), std::string::npos) << s->state_message;
  EXPECT_TRUE(repo_->ListLeases()->empty());  // GC may take its chunk now
  EXPECT_EQ(Put(id, 1, RandomDirectBlock(6)).error().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(direct_->Complete(id, 1, std::nullopt));
  EXPECT_EQ(repo_->GetManifest(id).error().code(), ErrorCode::kNotFound);
}

TEST_F(DirectSnapshotsTest, GcKeepsPendingBlocksAndTakesAbandonedOnes) {
  const std::string id = Start(4, "", 3 * 3600'000);
  ASSERT_TRUE(Put(id, 0, RandomDirectBlock(7)));
  GcOptions gc;
  gc.clock = &clock_;
  // An hour on, the lease renewed: GC keeps the acknowledged block of the pending snapshot.
  clock_.Advance(3600'000);
  direct_->RenewLeases();
  ASSERT_TRUE(CollectGarbage(repo_.get(), gc));
  EXPECT_EQ(repo_->ListObjects(ObjectKind::kChunk)->size(), 1u);
  // Abandoned: past its timeout it ends error, and the next GC past the grace takes the block.
  clock_.Advance(2 * 3600'000);
  EXPECT_EQ(direct_->ExpireOverdue(), 1u);
  clock_.Advance(gc.grace_ms + 1);
  auto report = CollectGarbage(repo_.get(), gc);
  ASSERT_TRUE(report) << report.error().ToString();
  EXPECT_TRUE(repo_->ListObjects(ObjectKind::kChunk)->empty());
}

TEST_F(DirectSnapshotsTest, EncryptedStoreKeysChunkIdsAndReadsBack) {
  RepositoryOptions ro;
  ro.master_key = Key256{};
  ro.master_key->fill(9);
  auto repo = std::move(*Repository::Create(std::make_unique<MemoryStore>(&clock_), ro));
  DirectOptions o;
  o.runner_id = "test-runner";
  o.clock = &clock_;
  o.background = false;
  DirectSnapshots direct(repo.get(), catalog_.get(), o);
  DirectStart s;
  s.owner_id = kDefaultAccountId;
  s.volume_size = 2 * kBlock;
  auto started = direct.Start(s);
  ASSERT_TRUE(started);
  EXPECT_TRUE(started->encrypted);
  auto b = RandomDirectBlock(40);
  ASSERT_TRUE(direct.PutBlock(started->snapshot_id, 1, b, Sha256(b)));
  ASSERT_TRUE(direct.Complete(started->snapshot_id, 1, std::nullopt));
  auto objects = repo->ListObjects(ObjectKind::kChunk);
  ASSERT_EQ(objects->size(), 1u);
  EXPECT_NE((*objects)[0].id, Sha256(b));  // the keyed id, not the plaintext's hash
  auto reader = SnapshotBlockReader::Open(repo.get(), started->snapshot_id);
  ASSERT_TRUE(reader);
  std::vector<uint8_t> out(kBlock);
  ASSERT_TRUE(*(*reader)->Read(1, out));
  EXPECT_EQ(out, b);
}

// Counts the objects read (whole or ranged).
class ReadCountingStore : public testing_util::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Result<std::vector<uint8_t>> Get(const std::string& key) override {
    ++reads;
    return base()->Get(key);
  }
  Result<std::vector<uint8_t>> GetRange(const std::string& key, uint64_t offset, uint64_t length) override {
    ++reads;
    return base()->GetRange(key, offset, length);
  }
  std::atomic<int> reads{0};
};

TEST_F(DirectSnapshotsTest, ChangedBlocksSkipEqualIndexPagesUnread) {
  MemoryStore memory(&clock_);
  auto counting = std::make_unique<ReadCountingStore>(&memory);
  ReadCountingStore* store = counting.get();
  auto repo = std::move(*Repository::Create(std::move(counting), RepositoryOptions{}));
  DirectOptions o;
  o.runner_id = "test-runner";
  o.clock = &clock_;
  o.background = false;
  DirectSnapshots direct(repo.get(), catalog_.get(), o);
  DirectStart s;
  s.owner_id = kDefaultAccountId;
  s.volume_size = 3000 * kBlock;  // a root page over three leaves
  auto a = direct.Start(s);
  ASSERT_TRUE(a);
  auto b = RandomDirectBlock(50);
  for (uint64_t i : {0u, 1500u, 2500u}) ASSERT_TRUE(direct.PutBlock(a->snapshot_id, i, b, Sha256(b)));
  ASSERT_TRUE(direct.Complete(a->snapshot_id, 3, std::nullopt));
  s.parent_id = a->snapshot_id;
  auto c = direct.Start(s);
  ASSERT_TRUE(c);
  auto fresh = RandomDirectBlock(51);
  ASSERT_TRUE(direct.PutBlock(c->snapshot_id, 1, fresh, Sha256(fresh)));
  ASSERT_TRUE(direct.Complete(c->snapshot_id, 1, std::nullopt));
  auto ma = *repo->GetManifest(a->snapshot_id);
  auto mc = *repo->GetManifest(c->snapshot_id);
  store->reads = 0;
  std::optional<uint64_t> next;
  auto diff = DiffBlockMaps(repo.get(), ma, mc, 0, 100, &next);
  ASSERT_TRUE(diff);
  ASSERT_EQ(diff->size(), 1u);
  EXPECT_EQ((*diff)[0].index, 1u);
  EXPECT_FALSE(next);
  // Two roots and the two first leaves; the other leaves are equal and never read (reading
  // both maps whole would take eight).
  EXPECT_LE(store->reads.load(), 4);
  EXPECT_GE(store->reads.load(), 1);
}

TEST_F(DirectSnapshotsTest, StoppingHandsPendingSnapshotsOverForAdoption) {
  const std::string id = Start(4);
  ASSERT_TRUE(Put(id, 2, RandomDirectBlock(40)));
  direct_.reset();
  auto s = catalog_->GetSnapshot(id);
  EXPECT_EQ(s->state, SnapshotState::kPending);
  EXPECT_EQ(s->runner, "");
  EXPECT_EQ(catalog_->ListDirectBlocks(id)->size(), 1u);
  EXPECT_EQ(repo_->ListLeases()->size(), 1u);  // adoption renews it
}

TEST_F(DirectSnapshotsTest, ListingsPageThroughDeepMapsOnce) {
  // 3000 blocks: a two-level map; blocks on both sides of a leaf page's end.
  const std::vector<uint64_t> idx = {0, 5, 1023, 1024, 1025, 2047, 2048, 2999};
  const std::string a = Start(3000);
  auto b = RandomDirectBlock(30);
  for (uint64_t i : idx) ASSERT_TRUE(Put(a, i, b));
  ASSERT_TRUE(direct_->Complete(a, idx.size(), std::nullopt));
  for (size_t limit : {1u, 2u, 3u, 7u, 8u, 100u}) EXPECT_EQ(Listed(std::nullopt, a, limit), idx) << limit;
  // Starting in the middle.
  std::optional<uint64_t> next;
  auto from = DiffBlockMaps(repo_.get(), std::nullopt, *repo_->GetManifest(a), 1024, 2, &next);
  ASSERT_TRUE(from);
  ASSERT_EQ(from->size(), 2u);
  EXPECT_EQ((*from)[0].index, 1024u);
  EXPECT_EQ((*from)[1].index, 1025u);
  EXPECT_EQ(next, std::optional<uint64_t>(2047));
  // A smaller map (depth 0) against the deep one.
  const std::string small = Start(8);
  ASSERT_TRUE(Put(small, 0, b));
  ASSERT_TRUE(Put(small, 6, b));
  ASSERT_TRUE(direct_->Complete(small, 2, std::nullopt));
  std::vector<uint64_t> want = {5, 6, 1023, 1024, 1025, 2047, 2048, 2999};
  for (size_t limit : {1u, 3u, 100u}) EXPECT_EQ(Listed(small, a, limit), want) << limit;
}

}  // namespace
}  // namespace snapvol
