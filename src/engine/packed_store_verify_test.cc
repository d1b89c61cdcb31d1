// Store format 2 (packs) through the engine, continued: packs no index names yet, a job that
// reused a block a GC dropped, and verify reading neighbours together and checking each
// pack's trailing index.
#include "engine/packed_store_test_fixture.h"

namespace snapvol {
namespace {

using namespace packed_store_testing;  // NOLINT(build/namespaces): the fixture and its helpers

// A pack no index object names yet (a snapshot still writing, as another host's GC sees it)
// stays while it is younger than the cutoff, and the report says why it stayed: format 1
// counts such objects in kept_young, and so does format 2, as packs_unindexed.
TEST_F(PackedStoreTest, APackNoIndexNamesYetStaysWhileYoungAndTheReportCountsIt) {
  auto data = Volume(40, 12);
  VectorSource src(data);
  ASSERT_TRUE(Snap(&src));
  Digest pending{};
  ASSERT_TRUE(RandomBytes(pending));
  const std::string key = PackedObjects::PackKey(pending);
  ASSERT_TRUE(memory_->Put(key, AsBytes("a pack still being written")));
  const size_t packs = Count("packs/");

  GcOptions young;
  young.grace_ms = 60 * 60 * 1000;
  young.clock = Clock::Real();
  auto kept = CollectGarbage(repo_.get(), young);
  ASSERT_TRUE(kept) << kept.error().ToString();
  EXPECT_EQ(Count("packs/"), packs);
  EXPECT_EQ(kept->packs_unindexed, 1u);
  EXPECT_EQ(kept->kept_young, 1u);
  EXPECT_EQ(kept->packs_deleted, 0u);

  auto old = Gc();  // its clock is far ahead: the pack is past any grace
  ASSERT_TRUE(old) << old.error().ToString();
  EXPECT_EQ(old->packs_unindexed, 0u);
  EXPECT_EQ(old->kept_young, 0u);
  EXPECT_EQ(old->packs_deleted, 1u);
  EXPECT_FALSE(memory_->Get(key));
  EXPECT_EQ(Count("packs/"), packs - 1);
}

TEST_F(PackedStoreTest, AJobThatReusedABlockAGcThenDroppedFailsRetryablyInsteadOfPublishing) {
  auto data = Volume(20, 12);
  VectorSource src(data);
  auto s = Snap(&src);
  ASSERT_TRUE(s);
  ASSERT_TRUE(repo_->DeleteManifest(s->manifest.snapshot_id));
  // A job finds block 5 stored (in the deleted snapshot's pack) and reuses it ...
  auto writer = repo_->NewWriter();
  std::span<const uint8_t> block(data.data() + 5 * kBs, kBs);
  auto put = writer->PutChunk(repo_->IdOf(block), block);
  ASSERT_TRUE(put);
  EXPECT_FALSE(put->written);
  // ... then a gc that had planned before the reuse drops the pack (here: its clock makes the
  // refreshed pack old), and the job must not publish a root that needs it.
  auto gc = Gc();
  ASSERT_TRUE(gc) << gc.error().ToString();
  ASSERT_GT(gc->packs_deleted, 0u);
  auto finished = writer->Finish();
  ASSERT_FALSE(finished);
  EXPECT_EQ(finished.error().code(), ErrorCode::kConflict) << finished.error().ToString();
  EXPECT_TRUE(finished.error().retryable());
}

// Verify reads neighbouring chunks of a pack together (a few ranged reads, not one per chunk),
// yet gives every chunk its own outcome: two damaged neighbours are both named as corrupt, a
// dropped chunk as missing (not corrupt), every snapshot that needs one is listed, and a pack
// whose read fails names its chunks as unread, without calling them corrupt.
TEST_F(PackedStoreTest, VerifyReadsNeighboursTogetherAndStillJudgesEachChunk) {
  auto data = Volume(60, 21);
  VectorSource src(data);
  auto s = Snap(&src);
  ASSERT_TRUE(s) << s.error().ToString();
  auto id_of = [&](const std::vector<uint8_t>& v, size_t b) {
    return repo_->IdOf(std::span<const uint8_t>(v.data() + b * kBs, kBs));
  };
  DigestSet chunks;
  for (size_t b = 0; b < 60; ++b) chunks.insert(id_of(data, b));
  const size_t pages = 1;  // 60 blocks: the root is the only (leaf) page

  {
    auto counting = std::make_unique<PackReadCountingStore>(memory_);
    PackReadCountingStore* counter = counting.get();
    auto repo = Repository::Open(std::move(counting), {});
    ASSERT_TRUE(repo) << repo.error().ToString();
    auto report = VerifySnapshots(repo->get(), {}, &pool_, {});
    ASSERT_TRUE(report) << report.error().ToString();
    EXPECT_TRUE(report->ok());
    EXPECT_EQ(report->objects_checked, chunks.size() + pages);
    // Bytes are the chunks' (pages are counted as objects only).
    EXPECT_EQ(report->bytes_checked, LiveBytes({s->manifest.snapshot_id}) -
                                         *repo_->StoredSize(ObjectKind::kIndexPage, s->manifest.root_page));
    // One read per chunk and page before; now a few per pack (batches run on several threads),
    // plus one read of each pack's trailing index (verify checks it once per pack).
    EXPECT_LE(counter->pack_reads.load(), pages + 3 * Count(kPackPrefix) + 4) << chunks.size() << " chunks";
  }

  // Blocks 9 and 10 hold random data (distinct chunks, stored side by side): damage both; drop
  // block 15's chunk. A second snapshot shares only block 9.
  const Digest c9 = id_of(data, 9), c10 = id_of(data, 10), c15 = id_of(data, 15);
  ASSERT_TRUE(testing_util::DropStored(repo_.get(), ObjectKind::kChunk, c15));  // first: it rewrites the pack
  ASSERT_TRUE(testing_util::CorruptStored(repo_.get(), ObjectKind::kChunk, c9, 0x20, -1, memory_));
  ASSERT_TRUE(testing_util::CorruptStored(repo_.get(), ObjectKind::kChunk, c10, 0x20, -1, memory_));
  for (size_t b = 0; b < 60; ++b)
    if (b != 9) src.data()[b * kBs + 3] ^= 0x77;
  auto s2 = Snap(&src);
  ASSERT_TRUE(s2) << s2.error().ToString();

  for (bool checksum_only : {false, true}) {
    SCOPED_TRACE(checksum_only ? "checksum only" : "full check");
    auto report = VerifySnapshots(OpenAgain().get(), {}, &pool_, {.checksum_only = checksum_only});
    ASSERT_TRUE(report) << report.error().ToString();
    ASSERT_EQ(report->damaged.size(), 2u);
    for (const auto& d : report->damaged) {
      std::string all;
      for (const auto& p : d.problems) all += p + "\n";
      if (d.snapshot_id == s->manifest.snapshot_id) {
        EXPECT_EQ(d.bad_objects, 3u) << all;
        EXPECT_EQ(DigestSet(d.corrupt_chunks.begin(), d.corrupt_chunks.end()), (DigestSet{c9, c10})) << all;
        EXPECT_NE(all.find("chunk " + ToHex(c15)), std::string::npos) << all;
        EXPECT_NE(all.find("missing"), std::string::npos) << all;
      } else {
        EXPECT_EQ(d.snapshot_id, s2->manifest.snapshot_id);
        EXPECT_EQ(d.bad_objects, 1u) << all;
        EXPECT_EQ(d.corrupt_chunks, std::vector<Digest>{c9}) << all;
      }
      EXPECT_NE(all.find("chunk " + ToHex(c9)), std::string::npos) << all;
    }
  }

  // The pack holding block 3's chunk cannot be read: its chunks are named as unread, the other
  // packs' chunks are checked, and nothing is called corrupt that was not read.
  auto at = testing_util::LocateStored(repo_.get(), ObjectKind::kChunk, id_of(data, 3));
  ASSERT_TRUE(at) << at.error().ToString();
  auto counting = std::make_unique<PackReadCountingStore>(memory_);
  counting->failing_pack = at->key;
  auto repo = Repository::Open(std::move(counting), {});
  ASSERT_TRUE(repo) << repo.error().ToString();
  auto report = VerifySnapshots(repo->get(), {s->manifest.snapshot_id}, &pool_, {});
  ASSERT_TRUE(report) << report.error().ToString();
  ASSERT_EQ(report->damaged.size(), 1u);
  std::string all;
  for (const auto& p : report->damaged[0].problems) all += p + "\n";
  EXPECT_NE(all.find("chunk " + ToHex(id_of(data, 3)) + ": reading pack"), std::string::npos) << all;
  EXPECT_NE(all.find("the test's store is down"), std::string::npos) << all;
  for (const auto& c : report->damaged[0].corrupt_chunks)
    EXPECT_TRUE(c == c9 || c == c10) << ToHex(c) << " was not read, yet called corrupt";
  EXPECT_GT(report->objects_checked, 0u);
  EXPECT_LT(report->objects_checked, chunks.size() + pages);
}

// Verify reads each pack's own trailing index (what a lost packindex/ object would be rebuilt
// from): a flipped byte in it, or in its trailer, names that pack, though every chunk in it is
// intact; with checksums only too. The packs of the snapshot are checked once each.
TEST_F(PackedStoreTest, VerifyNamesAPackWhoseTrailingIndexIsDamaged) {
  auto data = Volume(40, 21);
  VectorSource src(data);
  auto s = Snap(&src);
  ASSERT_TRUE(s) << s.error().ToString();
  auto packs = memory_->List("packs/");
  ASSERT_TRUE(packs);
  ASSERT_GE(packs->size(), 2u);  // a data pack and a tree pack
  auto clean = VerifySnapshots(repo_.get(), {}, &pool_, {});
  ASSERT_TRUE(clean);
  EXPECT_TRUE(clean->ok()) << (clean->damaged_packs.empty() ? "" : clean->damaged_packs[0]);

  for (const auto& pack : *packs) {
    auto original = memory_->Get(pack.key);
    ASSERT_TRUE(original);
    const uint32_t index_len = GetU32(original->data() + original->size() - 8);
    // Inside the index object, then in the trailer's magic.
    for (size_t at : {original->size() - 8 - index_len / 2, original->size() - 2}) {
      auto damaged = *original;
      damaged[at] ^= 0x10;
      ASSERT_TRUE(memory_->Put(pack.key, damaged));
      for (bool quick : {false, true}) {
        VerifyOptions vo;
        vo.checksum_only = quick;
        auto r = VerifySnapshots(repo_.get(), {}, &pool_, vo);
        ASSERT_TRUE(r) << r.error().ToString();
        EXPECT_FALSE(r->ok()) << pack.key << " byte " << at << (quick ? " quick" : "");
        EXPECT_TRUE(r->damaged.empty()) << r->damaged[0].problems[0];  // every chunk is intact
        ASSERT_EQ(r->damaged_packs.size(), 1u) << pack.key << " byte " << at;
        EXPECT_NE(r->damaged_packs[0].find(pack.key), std::string::npos) << r->damaged_packs[0];
        EXPECT_NE(r->damaged_packs[0].find("trailing index"), std::string::npos) << r->damaged_packs[0];
      }
    }
    ASSERT_TRUE(memory_->Put(pack.key, *original));
  }
  auto again = VerifySnapshots(repo_.get(), {}, &pool_, {});
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->ok());
}

}  // namespace
}  // namespace snapvol
