// The snapshot engine's data guards, each pinned by a test that fails when the guard goes
// (scripts/mutants proves it): zero detection and hole ranges decide what is stored; chunks
// found in the store are made young and checked again before the root is published, so a
// concurrent GC cannot leave a published snapshot pointing at nothing; every chunk read back
// is checked against its id.
// Store format: from SNAPVOL_STORE_FORMAT (ctest runs this binary on both formats); tests that
// stage a race on format 1's per-chunk objects pin format 1, and name their format-2
// counterpart in src/engine/packed_store_test.cc.
#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "core/ids.h"
#include "engine/engine_test_util.h"
#include "engine/snapshot_engine.h"
#include "store/gc.h"
#include "store/memory_store.h"
#include "store/stored_object_test_util.h"
#include "store/verify.h"

namespace snapvol {
namespace {

using testing_util::ForwardingStore;
using testing_util::MemoryTarget;
using testing_util::SparseSource;

constexpr uint32_t kBs = 4096;  // the smallest block size: many blocks for few bytes

class MemorySource : public BlockSource {
 public:
  explicit MemorySource(std::vector<uint8_t> data) : data_(std::move(data)) {}
  uint64_t size() const override { return data_.size(); }
  Status ReadAt(uint64_t off, std::span<uint8_t> out) override {
    std::memset(out.data(), 0, out.size());
    std::memcpy(out.data(), data_.data() + off, std::min<uint64_t>(out.size(), data_.size() - off));
    return OkStatus();
  }
  std::string Describe() const override { return "memory volume"; }

 private:
  std::vector<uint8_t> data_;
};

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng() | 1);  // never zero
  return v;
}

// Distinct nonzero blocks.
std::vector<uint8_t> DistinctBlocks(size_t blocks, uint8_t salt) {
  std::vector<uint8_t> v(blocks * kBs);
  for (size_t b = 0; b < blocks; ++b) std::memset(v.data() + b * kBs, 0x20 + salt * 16 + b, kBs);
  return v;
}

// format 0: the environment's (SNAPVOL_STORE_FORMAT), as every test that does not pin one.
std::unique_ptr<Repository> NewRepo(std::unique_ptr<ObjectStore> store, uint32_t format = 0) {
  RepositoryOptions opt;
  opt.block_size = kBs;
  opt.format = format;
  auto repo = Repository::Create(std::move(store), opt);
  EXPECT_TRUE(repo) << repo.error().ToString();
  return std::move(*repo);
}

SnapshotRequest Request() {
  SnapshotRequest req;
  req.snapshot_id = NewSnapshotId();
  req.volume_id = "vol-00000000000000001";
  req.start_time_ms = 1;
  return req;
}

std::vector<uint8_t> Restore(Repository* repo, ThreadPool* pool, const std::string& id, uint64_t size) {
  SnapshotEngine engine(repo, pool);
  MemoryTarget t(size);
  auto r = engine.Restore(id, &t);
  EXPECT_TRUE(r) << r.error().ToString();
  EXPECT_TRUE(t.committed);
  return t.data;
}

// A block whose only nonzero byte sits in any one word of the zero check's 32-byte stride is
// data: stored as a chunk and restored byte for byte (a miss restores zeros, silently).
TEST(SnapshotGuards, ABlockWithOneNonZeroByteInAnyWordIsStoredAndRestored) {
  MemoryStore* base = nullptr;
  auto owned = std::make_unique<MemoryStore>();
  base = owned.get();
  auto repo = NewRepo(std::move(owned));
  ThreadPool pool(2);
  SnapshotEngine engine(repo.get(), &pool);
  for (size_t at : std::vector<size_t>{0, 7, 8, 15, 16, 23, 24, 31, 32 + 24, 2048 + 24, kBs - 8, kBs - 1}) {
    std::vector<uint8_t> data(3 * kBs, 0);
    data[kBs + at] = 0x5a;  // block 1 only
    MemorySource src(data);
    auto out = engine.Create(&src, Request());
    ASSERT_TRUE(out) << out.error().ToString();
    EXPECT_EQ(out->stats.zero_blocks, 2u) << "byte " << at;
    EXPECT_EQ(out->stats.new_chunks, 1u) << "byte " << at;
    EXPECT_EQ(Restore(repo.get(), &pool, out->manifest.snapshot_id, data.size()), data) << "byte " << at;
  }
  EXPECT_EQ(testing_util::CountStored(repo.get(), ObjectKind::kChunk), 12u);
  EXPECT_EQ(base->List(repo->format() == 2 ? "chunks/" : "packs/")->size(), 0u);
}

// Data ranges that start or end inside a block are read; the hole parts of such a block read
// as zero even when the engine's reused buffer held another block's data there.
TEST(SnapshotGuards, HoleRangesInsideAndAcrossBlocksRestoreExactly) {
  const uint64_t size = 8 * kBs + 100;
  const std::vector<std::pair<uint64_t, uint64_t>> extents = {
      {0, kBs},                                      // block 0: all data
      {kBs, kBs + 100},                              // block 1: data then hole
      {3 * kBs + 2000, 4 * kBs + 10},                // blocks 3-4: across a boundary
      {5 * kBs + 1000, 5 * kBs + 1100},              // block 5: hole, data, hole
      {6 * kBs, 6 * kBs + 10},                       // block 6: two ranges
      {6 * kBs + 4000, 7 * kBs},                     //
      {8 * kBs + 50, size},                          // the short last block
  };
  SparseSource src(RandomBytes(size, 42), extents);
  const auto expected = src.Expected();
  for (EngineOptions eo : {EngineOptions{.blocks_per_batch = 1, .batches_in_flight = 1},
                           EngineOptions{.blocks_per_batch = 3, .batches_in_flight = 1},
                           EngineOptions{}}) {
    auto repo = NewRepo(std::make_unique<MemoryStore>());
    ThreadPool pool(2);
    SnapshotEngine engine(repo.get(), &pool, eo);
    auto out = engine.Create(&src, Request());
    ASSERT_TRUE(out) << out.error().ToString();
    EXPECT_EQ(out->stats.hole_blocks, 2u) << eo.blocks_per_batch;  // blocks 2 and 7
    EXPECT_EQ(out->stats.zero_blocks, 0u) << eo.blocks_per_batch;
    EXPECT_EQ(out->stats.new_chunks, 7u) << eo.blocks_per_batch;
    EXPECT_EQ(Restore(repo.get(), &pool, out->manifest.snapshot_id, size), expected) << eo.blocks_per_batch;
  }
}

// A GC that listed a chunk as old deletes it right after this snapshot touched it (the race
// the re-check before publishing exists for).
class GcAfterTouchStore : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Status Touch(const std::string& key) override {
    Status st = ForwardingStore::Touch(key);
    if (race && key.starts_with("chunks/")) {
      EXPECT_TRUE(base()->Delete(key));
      ++deleted;
    }
    return st;
  }
  std::atomic<bool> race{false};
  std::atomic<int> deleted{0};
};

// Format 1 (a chunk's own object is touched and deleted); format 2's counterpart is
// PackedStoreTest.AJobThatReusedABlockAGcThenDroppedFailsRetryablyInsteadOfPublishing.
TEST(SnapshotGuards, AChunkAConcurrentGcRemovesAfterDedupIsNeverPublished) {
  MemoryStore base;
  auto owned = std::make_unique<GcAfterTouchStore>(&base);
  GcAfterTouchStore* store = owned.get();
  auto repo = NewRepo(std::move(owned), 1);
  ThreadPool pool(2);
  SnapshotEngine engine(repo.get(), &pool);
  const auto data = DistinctBlocks(3, 1);
  MemorySource src(data);
  ASSERT_TRUE(engine.Create(&src, Request()));

  store->race = true;
  SnapshotRequest raced = Request();
  auto r = engine.Create(&src, raced);
  ASSERT_EQ(store->deleted, 3);
  ASSERT_FALSE(r) << "published " << raced.snapshot_id << " over chunks that are gone";
  EXPECT_EQ(r.error().code(), ErrorCode::kConflict);
  EXPECT_TRUE(r.error().retryable());
  EXPECT_FALSE(*base.Exists(Repository::ManifestKey(raced.snapshot_id)));
  EXPECT_EQ(repo->GetManifest(raced.snapshot_id).error().code(), ErrorCode::kNotFound);

  // The retry writes the chunks again; it restores, and so does the first snapshot.
  store->race = false;
  auto retry = engine.Create(&src, Request());
  ASSERT_TRUE(retry) << retry.error().ToString();
  EXPECT_EQ(retry->stats.new_chunks, 3u);
  EXPECT_EQ(Restore(repo.get(), &pool, retry->manifest.snapshot_id, data.size()), data);
  auto report = VerifySnapshots(repo.get(), {}, &pool, {});
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->ok());
}

// The chunk disappears between Exists and Touch: Touch says NotFound and the chunk is written
// again (not counted as found).
class GcAfterExistsStore : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Result<bool> Exists(const std::string& key) override {
    auto there = ForwardingStore::Exists(key);
    if (race && there && *there && key.starts_with("chunks/")) EXPECT_TRUE(base()->Delete(key));
    return there;
  }
  std::atomic<bool> race{false};
};

// Format 1 (format 2 asks its index, not Exists; a pack gone at its touch is
// PackedStoreTest.AnotherProcessWithAStaleIndexReadsAndWritesAfterGcRepacked).
TEST(SnapshotGuards, AChunkGoneBeforeItsTouchIsWrittenAgain) {
  MemoryStore base;
  auto owned = std::make_unique<GcAfterExistsStore>(&base);
  GcAfterExistsStore* store = owned.get();
  auto repo = NewRepo(std::move(owned), 1);
  ThreadPool pool(2);
  SnapshotEngine engine(repo.get(), &pool);
  const auto data = DistinctBlocks(3, 2);
  MemorySource src(data);
  ASSERT_TRUE(engine.Create(&src, Request()));
  store->race = true;
  auto second = engine.Create(&src, Request());
  store->race = false;
  ASSERT_TRUE(second) << second.error().ToString();
  EXPECT_EQ(second->stats.new_chunks, 3u);
  EXPECT_EQ(second->stats.dedup_blocks, 0u);
  EXPECT_EQ(base.List("chunks/")->size(), 3u);
  EXPECT_EQ(Restore(repo.get(), &pool, second->manifest.snapshot_id, data.size()), data);
}

// A GC runs while a snapshot is being written (just before its chunks are committed), with the
// default grace period. The chunks the snapshot found in the store belong to a deleted, old
// snapshot; the engine's touch made them young, so GC keeps them and the snapshot publishes.
class GcBeforeCommitStore : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  class Batch : public WriteBatch {
   public:
    Batch(GcBeforeCommitStore* s, std::unique_ptr<WriteBatch> b) : s_(s), b_(std::move(b)) {}
    Status Add(const std::string& key, std::span<const uint8_t> data) override { return b_->Add(key, data); }
    uint64_t PendingBytes() const override { return b_->PendingBytes(); }
    Status Commit() override {
      if (s_->repo != nullptr) {
        GcOptions o;
        o.clock = s_->clock;
        auto gc = CollectGarbage(s_->repo, o);
        EXPECT_TRUE(gc) << gc.error().ToString();
        if (gc) s_->gc_deleted_chunks += gc->deleted_chunks;
        s_->repo = nullptr;  // once
      }
      return b_->Commit();
    }

   private:
    GcBeforeCommitStore* s_;
    std::unique_ptr<WriteBatch> b_;
  };
  std::unique_ptr<WriteBatch> NewBatch() override {
    return std::make_unique<Batch>(this, ForwardingStore::NewBatch());
  }
  Repository* repo = nullptr;  // set: the next commit runs a GC first
  Clock* clock = nullptr;
  uint64_t gc_deleted_chunks = 0;
};

TEST(SnapshotGuards, DedupedChunksAreMadeYoungSoAConcurrentGcKeepsThem) {
  FakeClock clock(1'800'000'000'000);
  MemoryStore base(&clock);
  auto owned = std::make_unique<GcBeforeCommitStore>(&base);
  GcBeforeCommitStore* store = owned.get();
  auto repo = NewRepo(std::move(owned));
  ThreadPool pool(2);
  EngineOptions eo;
  eo.clock = &clock;
  SnapshotEngine engine(repo.get(), &pool, eo);
  const auto data = DistinctBlocks(4, 3);
  MemorySource src(data);
  auto old = engine.Create(&src, Request());
  ASSERT_TRUE(old);
  ASSERT_TRUE(repo->DeleteManifest(old->manifest.snapshot_id));
  clock.Advance(2 * 3600 * 1000);  // its chunks are now well past the grace period

  store->repo = repo.get();
  store->clock = &clock;
  auto snap = engine.Create(&src, Request());
  ASSERT_EQ(store->repo, nullptr) << "the GC did not run";
  ASSERT_TRUE(snap) << snap.error().ToString();
  EXPECT_EQ(snap->stats.dedup_blocks, 4u);
  EXPECT_EQ(store->gc_deleted_chunks, 0u);
  // Every chunk was made young (format 2: its pack was).
  auto chunks = repo->ListObjects(ObjectKind::kChunk);
  ASSERT_TRUE(chunks);
  ASSERT_EQ(chunks->size(), 4u);
  for (const auto& o : *chunks) EXPECT_EQ(o.mtime_ms, clock.NowMillis()) << ToHex(o.id);
  EXPECT_EQ(Restore(repo.get(), &pool, snap->manifest.snapshot_id, data.size()), data);
}

// Pauses the first listing of chunks (a GC's sweep; format 2: of packs) after it is taken,
// until released.
class PauseAfterChunkListStore : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override {
    auto listing = ForwardingStore::List(prefix);
    if (prefix != "chunks/" && prefix != kPackPrefix) return listing;
    std::unique_lock lock(mu_);
    if (!armed_) return listing;
    armed_ = false;
    listed_ = true;
    cv_.notify_all();
    cv_.wait(lock, [&] { return released_; });
    return listing;
  }
  void Arm() {
    std::lock_guard lock(mu_);
    armed_ = true;
  }
  void WaitListed() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return listed_; });
  }
  void Release() {
    std::lock_guard lock(mu_);
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool armed_ = false, listed_ = false, released_ = false;  // guarded by mu_
};

// A GC lists the store and sees an old deleted snapshot's chunks as dead; then a snapshot of
// the same data finds those chunks and refreshes them, too late for the GC's listing. The
// snapshot must not publish before the GC has ended: it waits, sees the chunks gone and fails
// (retryable), and its retry stores them again. Publishing at once would leave a snapshot
// pointing at chunks the GC deletes a moment later.
TEST(SnapshotGuards, ASnapshotThatReusedChunksWaitsForAGcThatListedBeforeIt) {
  FakeClock clock(1'800'000'000'000);
  MemoryStore base(&clock);
  auto owned = std::make_unique<PauseAfterChunkListStore>(&base);
  PauseAfterChunkListStore* store = owned.get();
  auto repo = NewRepo(std::move(owned));
  ThreadPool pool(2);
  EngineOptions eo;
  eo.clock = &clock;
  SnapshotEngine engine(repo.get(), &pool, eo);
  const auto data = DistinctBlocks(4, 5);
  MemorySource src(data);
  auto old = engine.Create(&src, Request());
  ASSERT_TRUE(old);
  ASSERT_TRUE(repo->DeleteManifest(old->manifest.snapshot_id));
  clock.Advance(2 * 3600 * 1000);  // its chunks are now well past the grace period

  store->Arm();
  std::optional<Result<GcReport>> gc;
  std::promise<void> gc_ended;
  std::thread gc_thread([&] {
    GcOptions o;
    o.clock = &clock;
    gc = CollectGarbage(repo.get(), o);
    gc_ended.set_value();
  });
  store->WaitListed();
  // Once the snapshot waits for the GC, the GC goes on; the wait's next poll comes after the
  // GC has ended (however slow the machine, the fake clock does not expire the GC's record).
  auto ended = gc_ended.get_future().share();
  clock.on_sleep = [&] {
    store->Release();
    ended.wait();
  };
  auto snap = engine.Create(&src, Request());
  store->Release();
  gc_thread.join();
  clock.on_sleep = nullptr;
  ASSERT_TRUE(*gc) << gc->error().ToString();
  EXPECT_EQ((*gc)->deleted_chunks, 4u) << "the GC deletes what it listed as dead";
  ASSERT_FALSE(snap) << "published a snapshot whose chunks a concurrent gc removed";
  EXPECT_EQ(snap.error().code(), ErrorCode::kConflict);
  EXPECT_TRUE(snap.error().retryable());
  EXPECT_TRUE(repo->ListManifestIds(false)->empty());
  EXPECT_TRUE(repo->ListGcRuns()->empty()) << "the GC's record outlived it";

  auto retry = engine.Create(&src, Request());
  ASSERT_TRUE(retry) << retry.error().ToString();
  EXPECT_EQ(retry->stats.new_chunks, 4u);
  EXPECT_EQ(Restore(repo.get(), &pool, retry->manifest.snapshot_id, data.size()), data);
}

// A GC run that died without removing its record holds snapshots up only until its heartbeat
// expires; one that is alive makes a snapshot that reused chunks give up, retryably, after the
// writer's wait limit.
TEST(SnapshotGuards, GcRunRecordsExpireAndBoundTheWait) {
  FakeClock clock(1'800'000'000'000);
  MemoryStore base(&clock);
  auto repo = NewRepo(std::make_unique<ForwardingStore>(&base));
  const auto data = DistinctBlocks(2, 6);
  auto write = [&](int64_t wait_ms) {
    WriterOptions wo;
    wo.clock = &clock;
    wo.gc_wait_ms = wait_ms;
    auto w = repo->NewWriter(wo);
    for (size_t b = 0; b < 2; ++b) {
      auto block = std::span(data).subspan(b * kBs, kBs);
      EXPECT_TRUE(w->PutChunk(repo->IdOf(block), block));
    }
    return w->Finish();
  };
  ASSERT_TRUE(write(0));  // first writer: nothing found, no wait
  GcRunInfo dead{std::string(32, 'a'), "host:1", clock.NowMillis(), clock.NowMillis()};
  ASSERT_TRUE(repo->PutGcRun(dead));
  clock.Advance(kGcRunExpiryMs + 1);
  ASSERT_TRUE(write(0)) << "a dead run's record held the snapshot up";

  GcRunInfo live{std::string(32, 'b'), "host:2", clock.NowMillis(), clock.NowMillis()};
  ASSERT_TRUE(repo->PutGcRun(live));
  const int64_t before = clock.NowMillis();
  auto st = write(5000);
  ASSERT_FALSE(st);
  EXPECT_EQ(st.error().code(), ErrorCode::kConflict);
  EXPECT_TRUE(st.error().retryable());
  EXPECT_NE(st.error().message().find("host:2"), std::string::npos) << st.error().message();
  EXPECT_GE(clock.NowMillis() - before, 5000);

  GcOptions o;
  o.clock = &clock;
  if (repo->format() == 2) {
    // Format 2's GC rewrites the index, so it refuses to run beside a live run.
    auto refused = CollectGarbage(repo.get(), o);
    ASSERT_FALSE(refused);
    EXPECT_EQ(refused.error().code(), ErrorCode::kConflict);
    EXPECT_NE(refused.error().message().find("host:2"), std::string::npos) << refused.error().message();
    clock.Advance(kGcRunExpiryMs + 1);  // the live run dies too; its record then goes as well
    ASSERT_TRUE(CollectGarbage(repo.get(), o));
    EXPECT_TRUE(repo->ListGcRuns()->empty());
    return;
  }
  ASSERT_TRUE(CollectGarbage(repo.get(), o));
  auto runs = repo->ListGcRuns();
  ASSERT_TRUE(runs);
  ASSERT_EQ(runs->size(), 1u) << "gc removes dead runs' records, not live ones";
  EXPECT_EQ((*runs)[0].run_id, live.run_id);
}

// A chunk object that decodes cleanly but holds another block's data (an object written under
// the wrong key) is corruption on restore and in verify, never wrong bytes.
TEST(SnapshotGuards, AChunkHoldingAnotherBlocksDataIsCorruption) {
  MemoryStore base;
  auto repo = NewRepo(std::make_unique<ForwardingStore>(&base));
  ThreadPool pool(2);
  SnapshotEngine engine(repo.get(), &pool);
  const auto data = DistinctBlocks(2, 4);
  MemorySource src(data);
  auto snap = engine.Create(&src, Request());
  ASSERT_TRUE(snap);
  const Digest a = repo->codec().Id(std::span(data).first(kBs));
  const Digest b = repo->codec().Id(std::span(data).subspan(kBs, kBs));
  auto copied = testing_util::CopyStored(repo.get(), ObjectKind::kChunk, a, b);
  ASSERT_TRUE(copied) << copied.error().ToString();

  MemoryTarget t(data.size());
  auto r = engine.Restore(snap->manifest.snapshot_id, &t);
  ASSERT_FALSE(r) << "restored another block's data";
  EXPECT_EQ(r.error().code(), ErrorCode::kCorruption);
  EXPECT_FALSE(t.committed);
  auto reader = SnapshotBlockReader::Open(repo.get(), snap->manifest.snapshot_id);
  ASSERT_TRUE(reader);
  std::vector<uint8_t> block(kBs);
  EXPECT_TRUE((*reader)->Read(0, block));
  auto one = (*reader)->Read(1, block);
  ASSERT_FALSE(one);
  EXPECT_EQ(one.error().code(), ErrorCode::kCorruption);
  auto report = VerifySnapshots(repo.get(), {}, &pool, {});
  ASSERT_TRUE(report);
  ASSERT_EQ(report->damaged.size(), 1u);
  EXPECT_EQ(report->damaged[0].snapshot_id, snap->manifest.snapshot_id);
}

// Verify counts what it read: a missing chunk is a problem but not a checked object; a
// damaged one was read (its bytes count) and is a problem too.
TEST(SnapshotGuards, VerifyCountsTheObjectsItRead) {
  MemoryStore base;
  auto repo = NewRepo(std::make_unique<ForwardingStore>(&base));
  ThreadPool pool(2);
  SnapshotEngine engine(repo.get(), &pool);
  const auto data = DistinctBlocks(3, 7);
  MemorySource src(data);
  auto snap = engine.Create(&src, Request());
  ASSERT_TRUE(snap);
  auto id = [&](size_t b) { return repo->IdOf(std::span(data).subspan(b * kBs, kBs)); };
  ASSERT_TRUE(testing_util::DropStored(repo.get(), ObjectKind::kChunk, id(0)));
  auto damaged_size = repo->StoredSize(ObjectKind::kChunk, id(1));
  ASSERT_TRUE(damaged_size) << damaged_size.error().ToString();
  ASSERT_TRUE(testing_util::CorruptStored(repo.get(), ObjectKind::kChunk, id(1), 0x01, 20));
  const uint64_t good = *repo->StoredSize(ObjectKind::kChunk, id(2));

  for (bool quick : {false, true}) {
    VerifyOptions o;
    o.checksum_only = quick;
    auto report = VerifySnapshots(repo.get(), {}, &pool, o);
    ASSERT_TRUE(report);
    ASSERT_EQ(report->damaged.size(), 1u);
    EXPECT_EQ(report->damaged[0].bad_objects, 2u) << "quick " << quick;
    EXPECT_EQ(report->objects_checked, 1u + 2u) << "the root page, the damaged and the good chunk";
    EXPECT_EQ(report->bytes_checked, *damaged_size + good) << "quick " << quick;
  }
}

}  // namespace
}  // namespace snapvol
