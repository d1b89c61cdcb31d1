// Store format 2 (packs) through the engine: round trips and dedup, the object count, GC that
// repacks, a GC killed while it writes, a stale index in another process, damaged pack bytes,
// the packs a failed snapshot leaves, and GC's exclusivity.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>

#include "core/bytes.h"
#include "core/ids.h"
#include "engine/engine_test_util.h"
#include "engine/snapshot_engine.h"
#include "store/block_map.h"
#include "store/fault_store.h"
#include "store/gc.h"
#include "store/memory_store.h"
#include "store/stored_object_test_util.h"
#include "store/verify.h"

namespace snapvol {
namespace {

constexpr uint32_t kBs = 64 * 1024;
constexpr uint64_t kPack = 1ull << 20;

using testing_util::MemoryTarget;

class VectorSource : public BlockSource {
 public:
  explicit VectorSource(std::vector<uint8_t> data) : data_(std::move(data)) {}
  uint64_t size() const override { return data_.size(); }
  Status ReadAt(uint64_t off, std::span<uint8_t> out) override {
    size_t n = off < data_.size() ? std::min(out.size(), data_.size() - off) : 0;
    if (n) std::memcpy(out.data(), data_.data() + off, n);
    std::memset(out.data() + n, 0, out.size() - n);
    return OkStatus();
  }
  std::string Describe() const override { return "memory"; }
  std::vector<uint8_t>& data() { return data_; }

 private:
  std::vector<uint8_t> data_;
};

// Half text, half random, in runs of a few blocks: compressible and not.
std::vector<uint8_t> Volume(size_t blocks, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(blocks * kBs);
  for (size_t b = 0; b < blocks; ++b)
    for (size_t i = 0; i < kBs; ++i)
      v[b * kBs + i] = (b / 3) % 2 ? static_cast<uint8_t>(rng()) : "pack test line 0123456789\n"[(b * kBs + i) % 26];
  return v;
}

// Changes share of the blocks (a different random byte in each).
void Change(std::vector<uint8_t>* v, double share, uint32_t seed) {
  std::mt19937_64 rng(seed);
  const size_t blocks = v->size() / kBs;
  for (size_t n = 0; n < std::max<size_t>(1, size_t(blocks * share)); ++n) {
    size_t b = rng() % blocks;
    for (int k = 0; k < 64; ++k) (*v)[b * kBs + rng() % kBs] = static_cast<uint8_t>(rng());
  }
}

// Counts the reads of packs (whole or ranged); reads of chosen packs fail with a retryable
// IoError (a store that is down), for verify's per-chunk outcomes.
class PackReadCountingStore : public testing_util::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Result<std::vector<uint8_t>> Get(const std::string& key) override {
    if (auto st = Count(key); !st) return std::unexpected(st.error());
    return ForwardingStore::Get(key);
  }
  Result<std::vector<uint8_t>> GetRange(const std::string& key, uint64_t offset, uint64_t length) override {
    if (auto st = Count(key); !st) return std::unexpected(st.error());
    return base()->GetRange(key, offset, length);
  }
  std::atomic<uint64_t> pack_reads{0};
  std::string failing_pack;  // set before reads start

 private:
  Status Count(const std::string& key) {
    if (key.rfind(kPackPrefix, 0) != 0) return OkStatus();
    ++pack_reads;
    if (key == failing_pack) return MakeError(ErrorCode::kIoError, "the test's store is down", /*retryable=*/true);
    return OkStatus();
  }
};

class PackedStoreTest : public testing::Test {
 protected:
  void SetUp() override {
    auto base = std::make_unique<MemoryStore>();
    memory_ = base.get();
    auto faulty = std::make_unique<FaultInjectingStore>(memory_);
    fault_ = faulty.get();
    owned_base_ = std::move(base);
    RepositoryOptions opt;
    opt.block_size = kBs;
    opt.format = 2;
    opt.pack_size = kPack;
    auto repo = Repository::Create(std::move(faulty), opt);
    ASSERT_TRUE(repo) << repo.error().ToString();
    repo_ = std::move(*repo);
  }

  // Another process's view of the same store.
  std::unique_ptr<Repository> OpenAgain() {
    RepositoryOptions opt;
    auto repo = Repository::Open(std::make_unique<FaultInjectingStore>(memory_), opt);
    EXPECT_TRUE(repo) << repo.error().ToString();
    return repo ? std::move(*repo) : nullptr;
  }

  Result<SnapshotOutcome> Snap(Repository* repo, BlockSource* src, const std::string& parent = "") {
    SnapshotEngine engine(repo, &pool_);
    SnapshotRequest req;
    req.snapshot_id = NewSnapshotId();
    req.volume_id = "vol-00000000000000001";
    req.parent_id = parent;
    req.start_time_ms = 1;
    return engine.Create(src, req);
  }
  Result<SnapshotOutcome> Snap(BlockSource* src, const std::string& parent = "") { return Snap(repo_.get(), src, parent); }

  std::vector<uint8_t> Restore(Repository* repo, const std::string& id, uint64_t size) {
    SnapshotEngine engine(repo, &pool_);
    MemoryTarget t(size);
    auto r = engine.Restore(id, &t);
    EXPECT_TRUE(r) << r.error().ToString();
    return t.data;
  }

  Result<GcReport> Gc(Repository* repo = nullptr) {
    GcOptions o;
    o.grace_ms = 0;
    o.clock = &far_future_;
    return CollectGarbage(repo ? repo : repo_.get(), o);
  }

  uint64_t Bytes(const std::string& prefix) {
    uint64_t n = 0;
    for (const auto& o : *memory_->List(prefix)) n += o.size;
    return n;
  }
  size_t Count(const std::string& prefix) { return memory_->List(prefix)->size(); }

  // The stored bytes of every chunk and page the given snapshots reach, counted once.
  uint64_t LiveBytes(const std::vector<std::string>& ids) {
    DigestSet chunks, pages;
    uint64_t bytes = 0;
    for (const auto& id : ids) {
      auto meta = repo_->GetManifest(id);
      EXPECT_TRUE(meta);
      BlockMapReader reader(repo_.get(), *meta);
      auto st = reader.Walk(
          [&](uint32_t, const Digest& page) -> Result<bool> {
            if (!pages.insert(page).second) return false;
            bytes += *repo_->StoredSize(ObjectKind::kIndexPage, page);
            return true;
          },
          [&](uint64_t, const Digest& chunk) -> Status {
            if (chunks.insert(chunk).second) bytes += *repo_->StoredSize(ObjectKind::kChunk, chunk);
            return OkStatus();
          });
      EXPECT_TRUE(st);
    }
    return bytes;
  }

  ThreadPool pool_{3};
  std::unique_ptr<ObjectStore> owned_base_;
  MemoryStore* memory_ = nullptr;
  FaultInjectingStore* fault_ = nullptr;
  std::unique_ptr<Repository> repo_;
  FakeClock far_future_{INT64_MAX / 4};
};

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

namespace snapvol {
namespace {

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

}  // namespace
}  // namespace snapvol

namespace snapvol {
namespace {

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
