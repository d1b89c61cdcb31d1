// Store format 2 (packs) through the engine: round trips and dedup, the object count, GC that
// repacks, a GC killed while it writes, a stale index in another process, damaged pack bytes,
// the packs a failed snapshot leaves, and GC's exclusivity.
#include "engine/packed_store_test_fixture.h"

namespace snapvol {
namespace {

using namespace packed_store_testing;  // NOLINT(build/namespaces): the fixture and its helpers

TEST_F(PackedStoreTest, RoundTripsDedupAndStoresFarFewerObjects) {
  auto data = Volume(200, 1);
  VectorSource src(data);
  auto first = Snap(&src);
  ASSERT_TRUE(first) << first.error().ToString();
  EXPECT_EQ(repo_->format(), 2u);
  EXPECT_EQ(Count("chunks/"), 0u);
  EXPECT_EQ(Count("index/"), 0u);
  // 200 chunks of 64 KiB (100 of them random) in packs of 1 MiB: a few dozen objects, not 200.
  EXPECT_GE(first->stats.new_chunks, 100u);
  EXPECT_LE(Count("packs/"), first->stats.new_chunks / 4);
  EXPECT_GE(Count("packindex/"), 1u);
  EXPECT_EQ(Restore(repo_.get(), first->manifest.snapshot_id, data.size()), data);

  // Identical data: nothing new; a change of 3%: only the changed blocks.
  auto same = Snap(&src, first->manifest.snapshot_id);
  ASSERT_TRUE(same);
  EXPECT_EQ(same->stats.new_chunks, 0u);
  Change(&src.data(), 0.03, 2);
  auto changed = Snap(&src, same->manifest.snapshot_id);
  ASSERT_TRUE(changed);
  EXPECT_GT(changed->stats.new_chunks, 0u);
  EXPECT_LE(changed->stats.new_chunks, 6u);

  // Another process opening the store reads the index from the store and restores both.
  auto other = OpenAgain();
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(other->format(), 2u);
  EXPECT_EQ(Restore(other.get(), first->manifest.snapshot_id, data.size()), data);
  EXPECT_EQ(Restore(other.get(), changed->manifest.snapshot_id, data.size()), src.data());
  auto report = VerifySnapshots(other.get(), {}, &pool_, {});
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->ok());
  EXPECT_EQ(report->snapshots_checked, 3u);
}

TEST_F(PackedStoreTest, GcAfterDeletingHalfOfEightSnapshotsFreesNinetyPercentOfTheDeadBytes) {
  auto data = Volume(160, 3);
  VectorSource src(data);
  std::vector<std::string> ids;
  std::vector<std::vector<uint8_t>> contents;
  std::string parent;
  for (int i = 0; i < 8; ++i) {
    if (i) Change(&src.data(), 0.03, 10 + i);
    auto s = Snap(&src, parent);
    ASSERT_TRUE(s) << s.error().ToString();
    parent = s->manifest.snapshot_id;
    ids.push_back(parent);
    contents.push_back(src.data());
  }
  // Delete the odd ones, the newest included.
  std::vector<std::string> survivors;
  for (int i = 0; i < 8; ++i) {
    if (i % 2) ASSERT_TRUE(repo_->DeleteManifest(ids[i]));
    else survivors.push_back(ids[i]);
  }
  const uint64_t live = LiveBytes(survivors);
  const uint64_t before = Bytes("packs/");
  ASSERT_GT(before, live);
  const uint64_t dead = before - live;

  auto dry = [&] {
    GcOptions o;
    o.grace_ms = 0;
    o.clock = &far_future_;
    o.dry_run = true;
    return CollectGarbage(repo_.get(), o);
  }();
  ASSERT_TRUE(dry) << dry.error().ToString();
  EXPECT_GT(dry->deleted_bytes, 0u);
  EXPECT_EQ(Bytes("packs/"), before) << "a dry run changes nothing";

  auto gc = Gc();
  ASSERT_TRUE(gc) << gc.error().ToString();
  const uint64_t after = Bytes("packs/");
  EXPECT_GT(gc->packs_repacked + gc->packs_deleted, 0u);
  EXPECT_GE(before - after, dead * 9 / 10) << "before " << before << " after " << after << " live " << live;
  EXPECT_EQ(Count("packindex/"), 1u) << "the index is merged into one object";
  for (int i = 0; i < 8; i += 2)
    EXPECT_EQ(Restore(repo_.get(), ids[i], data.size()), contents[i]) << "snapshot " << i;
  auto other = OpenAgain();
  auto report = VerifySnapshots(other.get(), {}, &pool_, {});
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->ok());
  EXPECT_EQ(report->snapshots_checked, 4u);
  // A second run finds nothing more to free.
  auto again = Gc();
  ASSERT_TRUE(again);
  EXPECT_EQ(again->packs_repacked + again->packs_deleted, 0u);
}

TEST_F(PackedStoreTest, AGcThatFailsWhileWritingLosesNothing) {
  auto data = Volume(120, 4);
  VectorSource src(data);
  std::vector<std::string> ids;
  std::vector<std::vector<uint8_t>> contents;
  std::string parent;
  for (int i = 0; i < 4; ++i) {
    if (i) Change(&src.data(), 0.2, 20 + i);
    auto s = Snap(&src, parent);
    ASSERT_TRUE(s);
    parent = s->manifest.snapshot_id;
    ids.push_back(parent);
    contents.push_back(src.data());
  }
  ASSERT_TRUE(repo_->DeleteManifest(ids[1]));
  ASSERT_TRUE(repo_->DeleteManifest(ids[2]));
  // The run dies at each of its writes in turn (gc record, new packs, the new index): every
  // survivor still restores, from this process and from a fresh one.
  for (uint64_t n = 1; n <= 6; ++n) {
    fault_->FailWritesFrom(n);
    auto gc = Gc();
    fault_->FailWritesFrom(0);
    for (int i : {0, 3}) {
      EXPECT_EQ(Restore(repo_.get(), ids[i], data.size()), contents[i]) << "write " << n << ", snapshot " << i;
      auto other = OpenAgain();
      EXPECT_EQ(Restore(other.get(), ids[i], data.size()), contents[i]) << "write " << n << ", snapshot " << i;
    }
    if (gc) break;  // it got through: nothing more to interrupt
  }
  auto gc = Gc();
  ASSERT_TRUE(gc) << gc.error().ToString();
  auto report = VerifySnapshots(repo_.get(), {}, &pool_, {});
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->ok());
}

TEST_F(PackedStoreTest, AnotherProcessWithAStaleIndexReadsAndWritesAfterGcRepacked) {
  auto data = Volume(100, 5);
  VectorSource src(data);
  auto a = Snap(&src);
  ASSERT_TRUE(a);
  Change(&src.data(), 0.5, 6);
  auto b = Snap(&src, a->manifest.snapshot_id);
  ASSERT_TRUE(b);
  auto stale = OpenAgain();
  ASSERT_EQ(Restore(stale.get(), a->manifest.snapshot_id, data.size()), data);  // loads its index now
  ASSERT_TRUE(repo_->DeleteManifest(a->manifest.snapshot_id));
  auto gc = Gc();
  ASSERT_TRUE(gc);
  ASSERT_GT(gc->packs_repacked + gc->packs_deleted, 0u);
  // Its index names packs that are gone: it reads the index again and finds b's blocks.
  EXPECT_EQ(Restore(stale.get(), b->manifest.snapshot_id, data.size()), src.data());
  // And a snapshot of a's data from it stores again what gc removed instead of pointing at it.
  auto stale2 = OpenAgain();
  ASSERT_EQ(Restore(stale2.get(), b->manifest.snapshot_id, data.size()), src.data());
  ASSERT_TRUE(Gc());  // nothing to do, but stale2's index is now older than the store's
  VectorSource old(data);
  auto c = Snap(stale2.get(), &old);
  ASSERT_TRUE(c) << c.error().ToString();
  EXPECT_EQ(Restore(repo_.get(), c->manifest.snapshot_id, data.size()), data);
  auto report = VerifySnapshots(OpenAgain().get(), {}, &pool_, {});
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->ok());
}

TEST_F(PackedStoreTest, ADamagedPackByteIsNamedByVerifyAndRefusedByRestoreAndGcKeepsItsPack) {
  auto data = Volume(60, 7);
  VectorSource src(data);
  auto s = Snap(&src);
  ASSERT_TRUE(s);
  // Flip one byte inside block 40's chunk, where it lies in its pack.
  std::vector<uint8_t> block(data.begin() + 40 * kBs, data.begin() + 41 * kBs);
  Digest id = repo_->IdOf(block);
  auto loc = repo_->packed()->Find(ObjectKind::kChunk, id);
  ASSERT_TRUE(loc);
  std::string key = PackedObjects::PackKey(loc->pack);
  auto bytes = *memory_->Get(key);
  bytes[loc->offset + loc->length / 2] ^= 0x10;
  ASSERT_TRUE(memory_->Put(key, bytes));

  auto report = VerifySnapshots(repo_.get(), {}, &pool_, {});
  ASSERT_TRUE(report);
  ASSERT_EQ(report->damaged.size(), 1u);
  EXPECT_EQ(report->damaged[0].snapshot_id, s->manifest.snapshot_id);
  SnapshotEngine engine(repo_.get(), &pool_);
  MemoryTarget t(data.size());
  auto r = engine.Restore(s->manifest.snapshot_id, &t);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kCorruption) << r.error().ToString();

  // A second snapshot shares only block 40; the first is deleted, so the damaged chunk's pack
  // is mostly dead. GC keeps it whole rather than copy a damaged object into a new pack, and
  // verify still names the snapshot that needs it.
  for (size_t b = 0; b < 60; ++b)
    if (b != 40) src.data()[b * kBs + 7] ^= 0x5a;
  auto s2 = Snap(&src);
  ASSERT_TRUE(s2);
  ASSERT_TRUE(repo_->DeleteManifest(s->manifest.snapshot_id));
  auto gc = Gc();
  ASSERT_TRUE(gc) << gc.error().ToString();
  EXPECT_EQ(gc->packs_damaged_kept, 1u);
  auto still = memory_->Get(key);
  ASSERT_TRUE(still) << "the pack with the damaged live chunk was deleted";
  EXPECT_EQ(*still, bytes);
  auto after = VerifySnapshots(OpenAgain().get(), {}, &pool_, {});
  ASSERT_TRUE(after);
  ASSERT_EQ(after->damaged.size(), 1u);
  EXPECT_EQ(after->damaged[0].snapshot_id, s2->manifest.snapshot_id);
}

// A pack the index names is lost from the store (a disk or bucket lost it; no gc deleted it).
// A snapshot of the same blocks must not store them again and complete: every reader resolves
// an id to the first copy the index names, so that snapshot would not restore. It fails,
// naming the lost pack; once the damaged snapshot is deleted and gc drops the lost pack from
// the index, snapshots store the blocks again and restore.
TEST_F(PackedStoreTest, ALostPackFailsTheNextSnapshotByNameUntilGcDropsIt) {
  auto data = Volume(20, 11);
  VectorSource src(data);
  auto s = Snap(&src);
  ASSERT_TRUE(s);
  auto packs = *memory_->List("packs/");
  ASSERT_FALSE(packs.empty());
  for (const auto& o : packs) ASSERT_TRUE(memory_->Delete(o.key));

  auto again = Snap(&src);
  ASSERT_FALSE(again) << "a snapshot over a lost pack completed";
  EXPECT_EQ(again.error().code(), ErrorCode::kCorruption) << again.error().ToString();
  EXPECT_NE(again.error().message().find("the pack is lost"), std::string::npos) << again.error().ToString();
  auto report = VerifySnapshots(repo_.get(), {}, &pool_, {});
  ASSERT_TRUE(report);
  ASSERT_EQ(report->damaged.size(), 1u);
  EXPECT_EQ(report->damaged[0].snapshot_id, s->manifest.snapshot_id);

  ASSERT_TRUE(repo_->DeleteManifest(s->manifest.snapshot_id));
  auto gc = Gc();
  ASSERT_TRUE(gc) << gc.error().ToString();
  EXPECT_EQ(gc->packs_lost, packs.size());
  auto healed = Snap(&src);
  ASSERT_TRUE(healed) << healed.error().ToString();
  EXPECT_EQ(Restore(repo_.get(), healed->manifest.snapshot_id, data.size()), data);
  EXPECT_EQ(Restore(OpenAgain().get(), healed->manifest.snapshot_id, data.size()), data);
}

TEST_F(PackedStoreTest, PacksOfAFailedSnapshotAreGarbageAndGcIsExclusive) {
  auto data = Volume(80, 9);
  VectorSource src(data);
  auto good = Snap(&src);
  ASSERT_TRUE(good);
  const size_t packs = Count("packs/"), indexes = Count("packindex/");
  // A job that stored packs and its index, then died before its manifest root: its packs are
  // durable and unreachable.
  {
    auto writer = repo_->NewWriter();
    Change(&src.data(), 1.0, 10);
    for (size_t b = 0; b < 80; ++b) {
      std::span<const uint8_t> block(src.data().data() + b * kBs, kBs);
      ASSERT_TRUE(writer->PutChunk(repo_->IdOf(block), block));
    }
    ASSERT_TRUE(writer->Commit());
  }
  EXPECT_GT(Count("packs/"), packs);
  EXPECT_GT(Count("packindex/"), indexes);
  auto gc = Gc();
  ASSERT_TRUE(gc) << gc.error().ToString();
  EXPECT_EQ(Count("packs/"), packs);
  EXPECT_EQ(Count("packindex/"), std::max<size_t>(indexes, 1));
  EXPECT_EQ(Restore(repo_.get(), good->manifest.snapshot_id, data.size()), data);

  // A gc while another gc (or verification) is live is refused before it lists anything.
  GcRunInfo other{std::string(32, 'a'), "elsewhere:1", far_future_.NowMillis(), far_future_.NowMillis()};
  ASSERT_TRUE(repo_->PutGcRun(other));
  auto refused = Gc();
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kConflict) << refused.error().ToString();
  ASSERT_TRUE(repo_->RemoveGcRun(other.run_id));
  EXPECT_TRUE(Gc());
}

}  // namespace
}  // namespace snapvol
