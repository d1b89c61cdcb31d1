// Engine round trips, incrementals, GC, verify, corruption and failure handling, run against
// every ObjectStore implementation (local directory, memory and S3) with the same tests.
//
// Store format: the repositories take it from SNAPVOL_STORE_FORMAT (ctest runs this binary
// on both formats), so the tests look at stored chunks and pages only through
// store/stored_object_test_util.h, never through format 1's keys.
//
// The S3 instance needs a real S3 endpoint, so this file is built twice: engine_test (local
// and memory, a unit test) and, with SNAPVOL_ENGINE_TEST_S3 defined, engine_s3_test, which
// tests/s3 runs against the Ceph cluster its fixture starts. The S3 instance reads the
// endpoint and keys from SNAPVOL_S3_* variables and fails, never skips, when they are missing.
#include "engine/snapshot_engine.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "core/ids.h"
#include "engine/engine_test_util.h"
#include "store/fault_store.h"
#include "store/gc.h"
#include "store/local_store.h"
#include "store/memory_store.h"
#include "store/s3_store.h"
#include "store/stored_object_test_util.h"
#include "store/verify.h"

namespace snapvol {
namespace {

constexpr uint32_t kBs = 64 * 1024;

class MemorySource : public BlockSource {
 public:
  explicit MemorySource(std::vector<uint8_t> data) : data_(std::move(data)) {}
  uint64_t size() const override { return data_.size(); }
  Status ReadAt(uint64_t off, std::span<uint8_t> out) override {
    size_t n = off < data_.size() ? std::min(out.size(), data_.size() - off) : 0;
    if (n) std::memcpy(out.data(), data_.data() + off, n);
    std::memset(out.data() + n, 0, out.size() - n);
    ++reads_;
    return OkStatus();
  }
  std::string Describe() const override { return "memory"; }
  std::vector<uint8_t>& data() { return data_; }

 private:
  std::vector<uint8_t> data_;
  std::atomic<int> reads_{0};
};

using testing_util::MemoryTarget;

// A volume of mixed content: zero runs, text, random, in runs of 1..6 blocks.
std::vector<uint8_t> MixedVolume(size_t size, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(size);
  size_t pos = 0;
  while (pos < size) {
    size_t run = std::min(size - pos, (1 + rng() % 6) * size_t{kBs} + rng() % 1000);
    int kind = rng() % 3;
    for (size_t i = 0; i < run; ++i) {
      if (kind == 0) v[pos + i] = 0;
      else if (kind == 1) v[pos + i] = "snapshot log line 0123456789\n"[(pos + i) % 29];
      else v[pos + i] = static_cast<uint8_t>(rng());
    }
    pos += run;
  }
  return v;
}

std::string EnvOr(const char* name, const std::string& fallback = "") {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// The S3 store of the test cluster, under a fresh prefix so tests never see each other's
// objects. Empty with *why set when the environment does not name a cluster.
std::unique_ptr<ObjectStore> OpenTestS3Store(std::string* why) {
  S3Config c;
  c.endpoint = EnvOr("SNAPVOL_S3_ENDPOINT");
  c.bucket = EnvOr("SNAPVOL_S3_BUCKET");
  c.region = EnvOr("SNAPVOL_S3_REGION", "us-east-1");
  c.credentials = {EnvOr("SNAPVOL_S3_ACCESS_KEY"), EnvOr("SNAPVOL_S3_SECRET_KEY"), "", "test env"};
  if (c.endpoint.empty() || c.bucket.empty() || c.credentials.empty()) {
    *why = "SNAPVOL_S3_ENDPOINT, SNAPVOL_S3_BUCKET, SNAPVOL_S3_ACCESS_KEY and SNAPVOL_S3_SECRET_KEY "
           "must name a test S3 bucket (ctest's ceph fixture sets them)";
    return nullptr;
  }
  c.prefix = "engine-test/" + NewVolumeId();
  auto store = S3Store::Open(c);
  if (!store) {
    *why = store.error().ToString();
    return nullptr;
  }
  return std::move(*store);
}

class EngineTest : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    repo_ = OpenRepo(std::nullopt);
    ASSERT_NE(repo_, nullptr) << open_error_;
  }

  std::unique_ptr<Repository> OpenRepo(std::optional<Key256> key) {
    std::unique_ptr<ObjectStore> store;
    if (GetParam() == "local") {
      dir_ = testing::TempDir() + "/engine-" + NewVolumeId();
      store = std::move(*LocalStore::Open(dir_));
    } else if (GetParam() == "s3") {
      store = OpenTestS3Store(&open_error_);
      if (!store) return nullptr;
    } else {
      store = std::make_unique<MemoryStore>();
    }
    store_ = store.get();
    RepositoryOptions opt;
    opt.block_size = kBs;
    opt.master_key = key;
    auto repo = Repository::Create(std::move(store), opt);
    if (!repo) {
      open_error_ = repo.error().ToString();
      return nullptr;
    }
    return std::move(*repo);
  }

  Result<SnapshotOutcome> Snap(BlockSource* src, const std::string& parent = "") {
    SnapshotEngine engine(repo_.get(), &pool_);
    SnapshotRequest req;
    req.snapshot_id = NewSnapshotId();
    req.volume_id = "vol-00000000000000001";
    req.parent_id = parent;
    req.start_time_ms = 1;
    req.tags = {{"Name", "test"}};
    return engine.Create(src, req);
  }

  std::vector<uint8_t> RestoreBytes(const std::string& id, uint64_t size) {
    SnapshotEngine engine(repo_.get(), &pool_);
    MemoryTarget t(size);
    auto r = engine.Restore(id, &t);
    EXPECT_TRUE(r) << r.error().ToString();
    EXPECT_TRUE(t.committed);
    return t.data;
  }

  size_t CountObjects(const std::string& prefix) { return store_->List(prefix)->size(); }
  size_t CountChunks() { return testing_util::CountStored(repo_.get(), ObjectKind::kChunk); }
  size_t CountPages() { return testing_util::CountStored(repo_.get(), ObjectKind::kIndexPage); }

  // Format 2 drops a dead chunk only with its pack; a threshold just above 0 repacks every
  // pack with a dead object, so the counts below are the same in both formats.
  GcReport Gc() {
    GcOptions o;
    o.grace_ms = 0;
    o.repack_threshold = 1e-9;
    o.clock = &far_future_;
    auto r = CollectGarbage(repo_.get(), o);
    EXPECT_TRUE(r) << r.error().ToString();
    return *r;
  }

  ThreadPool pool_{3};
  std::string dir_, open_error_;
  ObjectStore* store_ = nullptr;
  std::unique_ptr<Repository> repo_;
  FakeClock far_future_{INT64_MAX / 4};
};

TEST_P(EngineTest, RoundTripsOfEveryShape) {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> cases = {
      {"empty", {}},
      {"one byte", {7}},
      {"one block", MixedVolume(kBs, 1)},
      {"one block random", [] { auto v = MixedVolume(kBs, 2); for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<uint8_t>(i * 7919 >> 3); return v; }()},
      {"not a multiple", MixedVolume(kBs * 37 + 12345, 3)},
      {"all zero", std::vector<uint8_t>(kBs * 20, 0)},
      {"mixed large", MixedVolume(kBs * 300 + 1, 4)},
  };
  for (auto& [name, data] : cases) {
    MemorySource src(data);
    auto out = Snap(&src);
    ASSERT_TRUE(out) << name << ": " << out.error().ToString();
    EXPECT_EQ(out->manifest.volume_size, data.size()) << name;
    EXPECT_EQ(RestoreBytes(out->manifest.snapshot_id, data.size()), data) << name;
  }
  auto report = VerifySnapshots(repo_.get(), {}, &pool_, {});
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->ok());
  EXPECT_EQ(report->snapshots_checked, 7u);
}

TEST_P(EngineTest, ZeroBlocksAreNotStored) {
  std::vector<uint8_t> data(kBs * 10, 0);
  std::memset(data.data() + 3 * kBs, 'x', kBs);
  MemorySource src(data);
  auto out = Snap(&src);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->stats.zero_blocks, 9u);
  EXPECT_EQ(out->stats.new_chunks, 1u);
  EXPECT_EQ(CountChunks(), 1u);
}

TEST_P(EngineTest, IncrementalWritesOnlyChangedBlocksAndGcKeepsWhatIsLive) {
  const size_t blocks = 400;
  auto data = MixedVolume(kBs * blocks, 5);
  for (size_t b = 0; b < blocks; ++b) std::memcpy(&data[b * kBs], &b, sizeof b);  // unique, non-zero blocks
  MemorySource src(data);
  auto s1 = Snap(&src);
  ASSERT_TRUE(s1);
  size_t chunks_after_first = CountChunks();
  // Change 1% of the blocks, scattered.
  for (size_t b : {3, 101, 202, 399}) src.data()[b * kBs + 17] ^= 0xff;
  auto s2 = Snap(&src, s1->manifest.snapshot_id);
  ASSERT_TRUE(s2);
  EXPECT_TRUE(s2->stats.parent_used);
  EXPECT_EQ(s2->stats.new_chunks, 4u);
  EXPECT_EQ(s2->stats.unchanged_blocks, blocks - 4);
  EXPECT_EQ(s2->manifest.changed_blocks, 4u);
  EXPECT_EQ(CountChunks(), chunks_after_first + 4);
  EXPECT_EQ(RestoreBytes(s2->manifest.snapshot_id, data.size()), src.data());
  EXPECT_EQ(RestoreBytes(s1->manifest.snapshot_id, data.size()), data);

  // Delete the first; GC; the second still restores and verifies.
  ASSERT_TRUE(repo_->DeleteManifest(s1->manifest.snapshot_id));
  GcReport g1 = Gc();
  EXPECT_EQ(g1.deleted_chunks, 4u);  // the four blocks only the first had
  EXPECT_EQ(g1.deleted_roots, 1u);
  EXPECT_EQ(RestoreBytes(s2->manifest.snapshot_id, data.size()), src.data());
  EXPECT_TRUE(VerifySnapshots(repo_.get(), {}, &pool_, {})->ok());

  // Delete both; GC; nothing but the config remains.
  ASSERT_TRUE(repo_->DeleteManifest(s2->manifest.snapshot_id));
  Gc();
  EXPECT_EQ(CountChunks(), 0u);
  EXPECT_EQ(CountPages(), 0u);
  EXPECT_EQ(CountObjects("chunks/") + CountObjects("index/") + CountObjects("packs/"), 0u);
  EXPECT_EQ(CountObjects("manifests/"), 0u);
  EXPECT_EQ(CountObjects("deleted/"), 0u);
}

TEST_P(EngineTest, IdenticalVolumeDeduplicatesAgainstStore) {
  auto data = MixedVolume(kBs * 50, 6);
  MemorySource a(data), b(data);
  ASSERT_TRUE(Snap(&a));
  auto s2 = Snap(&b);  // no parent: found in the store
  ASSERT_TRUE(s2);
  EXPECT_EQ(s2->stats.new_chunks, 0u);
  EXPECT_GT(s2->stats.dedup_blocks, 0u);
}

TEST_P(EngineTest, GcKeepsYoungObjectsAndLeasedParents) {
  auto data = MixedVolume(kBs * 30, 7);
  MemorySource src(data);
  auto s1 = Snap(&src);
  ASSERT_TRUE(s1);
  ASSERT_TRUE(repo_->DeleteManifest(s1->manifest.snapshot_id));
  // A running snapshot names s1 as its parent: GC must keep s1's root and data.
  LeaseInfo lease{NewSnapshotId(), s1->manifest.snapshot_id, "test", Clock::Real()->NowMillis(),
                  Clock::Real()->NowMillis()};
  ASSERT_TRUE(repo_->PutLease(lease));
  GcOptions o;
  o.grace_ms = 0;
  auto r = CollectGarbage(repo_.get(), o);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->deleted_chunks, 0u);
  EXPECT_EQ(r->live_leases, 1u);
  EXPECT_TRUE(repo_->GetManifest(s1->manifest.snapshot_id, true));
  ASSERT_TRUE(repo_->RemoveLease(lease.snapshot_id));
  // Without the lease but within the grace period, young objects stay.
  o.grace_ms = 3600 * 1000;
  r = CollectGarbage(repo_.get(), o);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->deleted_chunks, 0u);
  EXPECT_GT(r->kept_young, 0u);
  Gc();
  EXPECT_EQ(CountChunks(), 0u);
  EXPECT_EQ(CountObjects("chunks/") + CountObjects("packs/"), 0u);
}

TEST_P(EngineTest, CorruptChunkIsNamedByVerifyAndStopsRestore) {
  auto data = MixedVolume(kBs * 40, 8);
  MemorySource src(data);
  auto good = Snap(&src);
  ASSERT_TRUE(good);
  std::vector<uint8_t> other(kBs * 3, 'q');
  MemorySource src2(other);
  auto bad = Snap(&src2);
  ASSERT_TRUE(bad);
  // Flip one byte of the 'q' chunk's stored bytes (format 2: inside its pack).
  Digest qid = repo_->codec().Id(std::vector<uint8_t>(kBs, 'q'));
  auto flipped = testing_util::CorruptStored(repo_.get(), ObjectKind::kChunk, qid);
  ASSERT_TRUE(flipped) << flipped.error().ToString();

  auto report = VerifySnapshots(repo_.get(), {}, &pool_, {});
  ASSERT_TRUE(report);
  ASSERT_EQ(report->damaged.size(), 1u);
  EXPECT_EQ(report->damaged[0].snapshot_id, bad->manifest.snapshot_id);
  EXPECT_EQ(report->damaged[0].corrupt_chunks, std::vector<Digest>{qid}) << "verify names the damaged chunk";
  auto quick = VerifySnapshots(repo_.get(), {}, &pool_, {.checksum_only = true});
  ASSERT_EQ(quick->damaged.size(), 1u);

  SnapshotEngine engine(repo_.get(), &pool_);
  MemoryTarget t(other.size());
  auto r = engine.Restore(bad->manifest.snapshot_id, &t);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kCorruption);
  EXPECT_NE(r.error().message().find(bad->manifest.snapshot_id), std::string::npos);
  EXPECT_FALSE(t.committed);
  EXPECT_EQ(RestoreBytes(good->manifest.snapshot_id, data.size()), data);
}

TEST_P(EngineTest, EncryptedRoundTrip) {
  Key256 key;
  key.fill(0x5a);
  repo_ = OpenRepo(key);
  ASSERT_NE(repo_, nullptr) << open_error_;
  auto data = MixedVolume(kBs * 60 + 3, 9);
  MemorySource src(data);
  auto s = Snap(&src);
  ASSERT_TRUE(s);
  EXPECT_EQ(RestoreBytes(s->manifest.snapshot_id, data.size()), data);
  // Nothing in the store contains the volume's text.
  auto objects = *store_->List("");
  for (auto& o : objects) {
    auto b = *store_->Get(o.key);
    std::string str(b.begin(), b.end());
    EXPECT_EQ(str.find("snapshot log line"), std::string::npos) << o.key;
  }
  EXPECT_TRUE(VerifySnapshots(repo_.get(), {}, &pool_, {})->ok());
}

TEST_P(EngineTest, UnknownSnapshotAndCancel) {
  SnapshotEngine engine(repo_.get(), &pool_);
  MemoryTarget t(10);
  auto r = engine.Restore(NewSnapshotId(), &t);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
  auto data = MixedVolume(kBs * 50, 10);
  MemorySource src(data);
  std::atomic<bool> cancel{true};
  SnapshotRequest req;
  req.snapshot_id = NewSnapshotId();
  req.volume_id = "vol-00000000000000001";
  auto c = engine.Create(&src, req, nullptr, &cancel);
  ASSERT_FALSE(c);
  EXPECT_EQ(CountObjects("manifests/"), 0u);
  EXPECT_EQ(CountObjects("leases/"), 0u);
}

#ifdef SNAPVOL_ENGINE_TEST_S3
INSTANTIATE_TEST_SUITE_P(S3, EngineTest, testing::Values("s3"));
#else
INSTANTIATE_TEST_SUITE_P(AllStores, EngineTest, testing::Values("local", "memory"));
#endif

// Failure injection: full disk and failing writes at every point leave earlier snapshots
// intact and publish nothing broken.
TEST(EngineFaults, FullDiskAndWriteFailuresPublishNothingBroken) {
  MemoryStore base;
  auto fault_owned = std::make_unique<FaultInjectingStore>(&base);
  FaultInjectingStore* fault = fault_owned.get();
  RepositoryOptions opt;
  opt.block_size = kBs;
  auto repo = std::move(*Repository::Create(std::move(fault_owned), opt));
  ThreadPool pool(2);
  SnapshotEngine engine(repo.get(), &pool);
  auto data = MixedVolume(kBs * 64, 11);
  MemorySource src(data);
  SnapshotRequest req;
  req.volume_id = "vol-00000000000000001";
  req.snapshot_id = NewSnapshotId();
  auto first = engine.Create(&src, req);
  ASSERT_TRUE(first);
  size_t objects_before = base.Count();

  for (int i = 0; i < 64; ++i) src.data()[i * kBs + 5] ^= 0x33;  // every block changes
  fault->SetSpaceLeft(200 * 1024);
  req.snapshot_id = NewSnapshotId();
  req.parent_id = first->manifest.snapshot_id;
  auto full = engine.Create(&src, req);
  ASSERT_FALSE(full);
  EXPECT_EQ(full.error().code(), ErrorCode::kNoSpace);
  EXPECT_FALSE(*base.Exists(Repository::ManifestKey(req.snapshot_id)));
  fault->SetSpaceLeft(-1);

  // Write n fails, for n = 1, 2, … until a snapshot needs fewer than n writes (format 1
  // writes one object a chunk, format 2 a few packs): every run that reached write n fails.
  int failed = 0;
  for (uint64_t n = 1;; n += n < 8 ? 1 : 3) {
    fault->FailWritesFrom(n);
    req.snapshot_id = NewSnapshotId();
    auto r = engine.Create(&src, req);
    if (r) {
      EXPECT_LT(fault->writes(), n) << "a snapshot whose write " << n << " failed was published";
      break;
    }
    ++failed;
    EXPECT_FALSE(*base.Exists(Repository::ManifestKey(req.snapshot_id)));
  }
  EXPECT_GE(failed, 4) << "the loop never failed the snapshot's later writes";
  fault->FailWritesFrom(0);
  // Old objects untouched (only new garbage may have been added), and the first verifies.
  EXPECT_GE(base.Count(), objects_before);
  auto report = VerifySnapshots(repo.get(), {}, &pool, {});
  ASSERT_TRUE(report);
  EXPECT_TRUE(report->ok());
  EXPECT_EQ(report->snapshots_checked, 2u);  // the first, and the one that needed fewer writes
  // And the next snapshot succeeds.
  req.snapshot_id = NewSnapshotId();
  ASSERT_TRUE(engine.Create(&src, req));
}

TEST(EngineFaults, CrashLosesUncommittedChunksButNeverPublishesOverThem) {
  MemoryStore base;
  auto fault_owned = std::make_unique<FaultInjectingStore>(&base);
  FaultInjectingStore* fault = fault_owned.get();
  RepositoryOptions opt;
  opt.block_size = kBs;
  auto repo = std::move(*Repository::Create(std::move(fault_owned), opt));
  ThreadPool pool(2);
  EngineOptions eo;
  eo.commit_every_bytes = 1ull << 40;
  SnapshotEngine engine(repo.get(), &pool, eo);
  auto data = MixedVolume(kBs * 64, 12);
  // Crash while the snapshot runs (from the source's read path).
  class CrashingSource : public MemorySource {
   public:
    CrashingSource(std::vector<uint8_t> d, FaultInjectingStore* f) : MemorySource(std::move(d)), f_(f) {}
    Status ReadAt(uint64_t off, std::span<uint8_t> out) override {
      if (off > size() / 2) f_->Crash();
      return MemorySource::ReadAt(off, out);
    }
    FaultInjectingStore* f_;
  } src(data, fault);
  SnapshotRequest req;
  req.volume_id = "vol-00000000000000001";
  req.snapshot_id = NewSnapshotId();
  auto r = engine.Create(&src, req);
  ASSERT_FALSE(r);
  EXPECT_FALSE(*base.Exists(Repository::ManifestKey(req.snapshot_id)));
  auto report = VerifySnapshots(repo.get(), {}, &pool, {});
  EXPECT_TRUE(report->ok());
}

}  // namespace
}  // namespace snapvol
