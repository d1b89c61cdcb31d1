#include "managed/managed_volume.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "core/file_util.h"
#include "core/ids.h"
#include "engine/engine_test_util.h"
#include "engine/snapshot_engine.h"
#include "managed/volume_files.h"
#include "store/memory_store.h"
#include "store/stored_object_test_util.h"

namespace snapvol {
namespace {

constexpr uint32_t kBs = 64 * 1024;

// Counts the reads of chunks: format 1's chunk objects, format 2's packs (which also hold the
// index pages).
class ChunkReadCountingStore : public testing_util::ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  Result<std::vector<uint8_t>> Get(const std::string& key) override {
    Count(key);
    return ForwardingStore::Get(key);
  }
  Result<std::vector<uint8_t>> GetRange(const std::string& key, uint64_t offset, uint64_t length) override {
    Count(key);
    return base()->GetRange(key, offset, length);
  }
  std::atomic<uint64_t> reads{0};

 private:
  void Count(const std::string& key) {
    if (key.rfind("chunks/", 0) == 0 || key.rfind(kPackPrefix, 0) == 0) ++reads;
  }
};

class ManagedVolumeTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/managed-" + NewVolumeId();
    ASSERT_TRUE(MakeDirs(dir_));
    path_ = dir_ + "/vol.img";
    int fd = ::open(path_.c_str(), O_RDWR | O_CREAT, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, kSize), 0);
    ::close(fd);
    RepositoryOptions ro;
    ro.block_size = kBs;
    repo_ = std::move(*Repository::Create(std::make_unique<MemoryStore>(), ro));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::shared_ptr<ManagedVolume> Open() {
    auto v = ManagedVolume::Open(path_, kBs);
    EXPECT_TRUE(v) << v.error().ToString();
    return v ? *v : nullptr;
  }

  static std::vector<uint8_t> Fill(size_t n, uint8_t seed) {
    std::vector<uint8_t> d(n);
    for (size_t i = 0; i < n; ++i) d[i] = static_cast<uint8_t>(seed + i * 7 + i / 4096);
    return d;
  }

  // Takes a snapshot from a cut, like the snapshot jobs do; returns its id.
  std::string Snapshot(ManagedVolume& v, const std::string& parent, SnapshotStats* stats = nullptr) {
    std::string id = NewSnapshotId();
    v.LockWrites();
    auto prepared = v.Cut(id, parent);
    v.UnlockWrites();
    EXPECT_TRUE(prepared);
    SnapshotRequest req;
    req.snapshot_id = id;
    req.volume_id = "vol-00000000000000001";
    req.owner_id = "100000000001";
    req.parent_id = parent;
    req.maybe_changed = prepared->maybe_changed;
    SnapshotEngine engine(repo_.get(), &pool_);
    auto out = engine.Create(prepared->source.get(), req, nullptr, nullptr);
    EXPECT_TRUE(out) << out.error().ToString();
    prepared->on_done(bool(out));
    if (stats && out) *stats = out->stats;
    return id;
  }

  std::vector<uint8_t> Restored(const std::string& id) {
    std::string to = dir_ + "/restore-" + id;
    auto target = FileTarget::Create(to, kSize, false);
    EXPECT_TRUE(target);
    SnapshotEngine engine(repo_.get(), &pool_);
    auto st = engine.Restore(id, target->get(), nullptr, nullptr);
    EXPECT_TRUE(st) << st.error().ToString();
    auto data = ReadWholeFile(to);
    return data ? *data : std::vector<uint8_t>{};
  }

  static constexpr uint64_t kSize = 64 * kBs;  // 4 MiB
  std::string dir_, path_;
  std::unique_ptr<Repository> repo_;
  ThreadPool pool_{2};
};

TEST_F(ManagedVolumeTest, ACutFreezesTheContentWhileWritesGoOn) {
  auto v = Open();
  auto before = Fill(kSize, 1);
  ASSERT_TRUE(v->Write(0, before, false));
  std::string id = NewSnapshotId();
  v->LockWrites();
  auto prepared = v->Cut(id, "");
  v->UnlockWrites();
  ASSERT_TRUE(prepared);
  // Overwrite half the volume, trim some, before the snapshot reads anything.
  auto after = Fill(kSize / 2, 99);
  ASSERT_TRUE(v->Write(kBs / 2, after, false));
  ASSERT_TRUE(v->Trim(40 * kBs, 8 * kBs));
  std::vector<uint8_t> seen(kSize);
  ASSERT_TRUE(prepared->source->ReadAt(0, seen));
  EXPECT_EQ(seen, before);
  // The frozen view reports data where the live volume now has a hole.
  EXPECT_EQ(*prepared->source->NextData(40 * kBs), 40 * kBs);
  EXPECT_GE(*prepared->source->NextHole(40 * kBs), 48 * kBs);
  prepared->on_done(true);
  // The live volume has the new data.
  std::vector<uint8_t> live(kBs);
  ASSERT_TRUE(v->Read(kBs / 2, live));
  EXPECT_TRUE(std::equal(live.begin(), live.end(), after.begin()));
}

TEST_F(ManagedVolumeTest, ChangedBlockTrackingReadsOnlyWhatChanged) {
  auto v = Open();
  ASSERT_TRUE(v->Write(0, Fill(kSize, 3), false));
  std::string first = Snapshot(*v, "");
  // Rewrite 3 blocks.
  for (uint64_t b : {5u, 17u, 40u}) ASSERT_TRUE(v->Write(b * kBs + 10, Fill(100, static_cast<uint8_t>(b)), false));
  uint64_t read_before = v->snapshot_bytes_read();
  SnapshotStats stats;
  std::string second = Snapshot(*v, first, &stats);
  EXPECT_EQ(v->snapshot_bytes_read() - read_before, 3 * kBs);
  EXPECT_EQ(stats.new_chunks, 3u);
  EXPECT_EQ(stats.unchanged_blocks, 61u);
  std::vector<uint8_t> live(kSize);
  ASSERT_TRUE(v->Read(0, live));
  EXPECT_EQ(Restored(second), live);
}

TEST_F(ManagedVolumeTest, AfterACrashTheMapIsNotTrustedButAfterACleanCloseItIs) {
  std::string first;
  {
    auto v = Open();
    ASSERT_TRUE(v->Write(0, Fill(kSize, 5), false));
    first = Snapshot(*v, "");
    ASSERT_TRUE(v->Write(9 * kBs, Fill(kBs, 9), false));
    ASSERT_TRUE(v->Close());
  }
  {
    auto v = Open();
    EXPECT_TRUE(v->cbt_trusted());
    SnapshotStats stats;
    std::string second = Snapshot(*v, first, &stats);
    EXPECT_EQ(v->snapshot_bytes_read(), kBs);
    first = second;
    ASSERT_TRUE(v->Write(11 * kBs, Fill(kBs, 11), false));
    // No Close: as if the process died.
  }
  auto v = Open();
  EXPECT_FALSE(v->cbt_trusted());
  SnapshotStats stats;
  std::string third = Snapshot(*v, first, &stats);
  EXPECT_EQ(v->snapshot_bytes_read(), kSize);  // a full compare
  EXPECT_EQ(stats.new_chunks, 1u);
  std::vector<uint8_t> live(kSize);
  ASSERT_TRUE(v->Read(0, live));
  EXPECT_EQ(Restored(third), live);
}

TEST_F(ManagedVolumeTest, AFailedSnapshotGivesItsBlocksBack) {
  auto v = Open();
  ASSERT_TRUE(v->Write(0, Fill(kSize, 7), false));
  std::string first = Snapshot(*v, "");
  ASSERT_TRUE(v->Write(3 * kBs, Fill(kBs, 3), false));
  std::string failed = NewSnapshotId();
  v->LockWrites();
  auto prepared = v->Cut(failed, first);
  v->UnlockWrites();
  ASSERT_TRUE(prepared);
  ASSERT_TRUE(prepared->maybe_changed);
  prepared->on_done(false);
  ASSERT_TRUE(v->Write(30 * kBs, Fill(kBs, 30), false));
  SnapshotStats stats;
  std::string next = Snapshot(*v, first, &stats);
  EXPECT_EQ(stats.new_chunks, 2u);  // block 3 (from the failed cut) and block 30
  std::vector<uint8_t> live(kSize);
  ASSERT_TRUE(v->Read(0, live));
  EXPECT_EQ(Restored(next), live);
}

TEST_F(ManagedVolumeTest, ABlockThatCannotBeKeptFailsTheSnapshotNeverTheWrite) {
  auto v = Open();
  auto before = Fill(kSize, 5);
  ASSERT_TRUE(v->Write(0, before, false));
  std::string id = NewSnapshotId();
  v->LockWrites();
  auto prepared = v->Cut(id, "");
  v->UnlockWrites();
  ASSERT_TRUE(prepared);
  // The copy-aside file cannot be made (a directory stands in its place, as a full or broken
  // disk would refuse it): the client's write must still land, and the snapshot must fail
  // rather than read the new data as if it were the old.
  ASSERT_TRUE(MakeDirs(CowPath(path_, id)));
  auto update = Fill(2 * kBs, 77);
  auto written = v->Write(10 * kBs, update, true);
  ASSERT_TRUE(written) << written.error().ToString();
  std::vector<uint8_t> live(2 * kBs);
  ASSERT_TRUE(v->Read(10 * kBs, live));
  EXPECT_EQ(live, update);
  std::vector<uint8_t> seen(kSize);
  auto read = prepared->source->ReadAt(0, seen);
  ASSERT_FALSE(read);
  EXPECT_NE(read.error().message().find("could not be kept"), std::string::npos) << read.error().ToString();
  prepared->on_done(false);
  std::filesystem::remove_all(CowPath(path_, id));
  // The next snapshot has the write.
  std::string next = Snapshot(*v, "");
  auto expected = before;
  std::copy(update.begin(), update.end(), expected.begin() + 10 * kBs);
  EXPECT_EQ(Restored(next), expected);
}

TEST_F(ManagedVolumeTest, AMapRelativeToAnotherSnapshotIsNotUsed) {
  auto v = Open();
  ASSERT_TRUE(v->Write(0, Fill(kSize, 8), false));
  std::string a = Snapshot(*v, "");
  std::string b = Snapshot(*v, a);
  ASSERT_TRUE(v->Write(2 * kBs, Fill(kBs, 2), false));
  // b deleted: the next parent is a, but the map counts from b.
  v->LockWrites();
  auto prepared = v->Cut(NewSnapshotId(), a);
  v->UnlockWrites();
  ASSERT_TRUE(prepared);
  EXPECT_FALSE(prepared->maybe_changed);
  prepared->on_done(false);
}

// ---- lazy restore ----

TEST_F(ManagedVolumeTest, ARestoredVolumeIsUsableAtOnceAndEndsIdenticalWithTheWritesKept) {
  auto src = Open();
  auto original = Fill(kSize, 21);
  ASSERT_TRUE(src->Write(0, original, false));
  ASSERT_TRUE(src->Trim(50 * kBs, 4 * kBs));  // holes too
  std::fill(original.begin() + 50 * kBs, original.begin() + 54 * kBs, 0);
  std::string snap = Snapshot(*src, "");
  std::string path = dir_ + "/restored.img";
  ASSERT_TRUE(ManagedVolume::CreateFromSnapshot(path, kSize, kBs, snap));
  auto v = ManagedVolume::Open(path, kBs, repo_.get());
  ASSERT_TRUE(v) << v.error().ToString();
  auto& vol = **v;
  EXPECT_TRUE(vol.loading());
  EXPECT_EQ(vol.load_percent(), 0);
  // Reads before the copy: the snapshot's bytes.
  std::vector<uint8_t> part(3 * kBs);
  ASSERT_TRUE(vol.Read(10 * kBs + 100, part));
  EXPECT_TRUE(std::equal(part.begin(), part.end(), original.begin() + 10 * kBs + 100));
  // A partial write to a block never loaded, and a trim.
  auto mine = Fill(1000, 77);
  ASSERT_TRUE(vol.Write(20 * kBs + 5, mine, false));
  std::copy(mine.begin(), mine.end(), original.begin() + 20 * kBs + 5);
  ASSERT_TRUE(vol.Trim(30 * kBs, kBs));
  std::fill(original.begin() + 30 * kBs, original.begin() + 31 * kBs, 0);
  std::atomic<bool> cancel{false};
  int last = -1;
  ASSERT_TRUE(vol.Hydrate(&pool_, &cancel, [&](int p) { last = p; }));
  EXPECT_EQ(last, 100);
  EXPECT_FALSE(vol.loading());
  EXPECT_FALSE(PathExists(path + ".load"));
  auto file = ReadWholeFile(path);
  ASSERT_TRUE(file);
  EXPECT_EQ(*file, original);
}

TEST_F(ManagedVolumeTest, AnInterruptedLoadResumesWithoutLosingWrites) {
  auto src = Open();
  auto original = Fill(kSize, 33);
  ASSERT_TRUE(src->Write(0, original, false));
  std::string snap = Snapshot(*src, "");
  std::string path = dir_ + "/restored.img";
  ASSERT_TRUE(ManagedVolume::CreateFromSnapshot(path, kSize, kBs, snap));
  {
    auto v = ManagedVolume::Open(path, kBs, repo_.get());
    ASSERT_TRUE(v);
    std::vector<uint8_t> some(kBs);
    ASSERT_TRUE((*v)->Read(0, some));  // loaded, not yet marked
    auto mine = Fill(300, 5);
    ASSERT_TRUE((*v)->Write(7 * kBs + 1, mine, false));  // loaded, marked, then written
    std::copy(mine.begin(), mine.end(), original.begin() + 7 * kBs + 1);
    // The process dies: no Close, no Hydrate.
  }
  auto v = ManagedVolume::Open(path, kBs, repo_.get());
  ASSERT_TRUE(v);
  EXPECT_TRUE((*v)->loading());
  std::atomic<bool> cancel{false};
  ASSERT_TRUE((*v)->Hydrate(&pool_, &cancel, nullptr));
  auto file = ReadWholeFile(path);
  ASSERT_TRUE(file);
  EXPECT_EQ(*file, original);
}

TEST_F(ManagedVolumeTest, AFailedLoadKeepsWhatWasWritten) {
  auto src = Open();
  auto original = Fill(kSize, 44);
  ASSERT_TRUE(src->Write(0, original, false));
  std::string snap = Snapshot(*src, "");
  std::string path = dir_ + "/restored.img";
  ASSERT_TRUE(ManagedVolume::CreateFromSnapshot(path, kSize, kBs, snap));
  auto v = ManagedVolume::Open(path, kBs, repo_.get());
  ASSERT_TRUE(v);
  auto mine = Fill(2000, 9);
  ASSERT_TRUE((*v)->Write(3 * kBs + 10, mine, true));
  // Then the store goes bad: every chunk damaged (format 2: every data pack's bytes).
  auto chunks = repo_->ListObjects(ObjectKind::kChunk);
  ASSERT_TRUE(chunks);
  ASSERT_FALSE(chunks->empty());
  for (const auto& c : *chunks)
    ASSERT_TRUE(testing_util::CorruptStored(repo_.get(), ObjectKind::kChunk, c.id, 0xee));
  std::atomic<bool> cancel{false};
  auto loaded = (*v)->Hydrate(&pool_, &cancel, nullptr);
  ASSERT_FALSE(loaded);
  EXPECT_EQ(loaded.error().code(), ErrorCode::kCorruption) << loaded.error().ToString();
  EXPECT_TRUE((*v)->loading());
  // The write is there; a block that cannot be loaded is an error, never wrong bytes.
  std::vector<uint8_t> back(mine.size());
  ASSERT_TRUE((*v)->Read(3 * kBs + 10, back));
  EXPECT_EQ(back, mine);
  std::vector<uint8_t> block(kBs);
  EXPECT_FALSE((*v)->Read(60 * kBs, block));
}

// A client read over several blocks not loaded yet fetches them together: in format 2 one
// ranged read for the lot (plus the index page), not one per block; holes among them read as
// zeroes; a write over partly loaded blocks keeps its bytes through a crash and the copy.
TEST_F(ManagedVolumeTest, AReadOverSeveralUnloadedBlocksFetchesThemTogether) {
  auto src = Open();
  auto original = Fill(kSize, 55);
  ASSERT_TRUE(src->Write(0, original, false));
  ASSERT_TRUE(src->Trim(12 * kBs, 2 * kBs));  // holes inside the range read below
  std::fill(original.begin() + 12 * kBs, original.begin() + 14 * kBs, 0);
  std::string snap = Snapshot(*src, "");
  std::string path = dir_ + "/restored.img";
  ASSERT_TRUE(ManagedVolume::CreateFromSnapshot(path, kSize, kBs, snap));
  auto counting = std::make_unique<ChunkReadCountingStore>(repo_->store());
  ChunkReadCountingStore* counter = counting.get();
  auto repo = Repository::Open(std::move(counting), {});
  ASSERT_TRUE(repo) << repo.error().ToString();
  {
    auto v = ManagedVolume::Open(path, kBs, repo->get());
    ASSERT_TRUE(v) << v.error().ToString();
    std::vector<uint8_t> part(8 * kBs);  // blocks 10..17: six with data, two holes
    ASSERT_TRUE((*v)->Read(10 * kBs, part));
    EXPECT_TRUE(std::equal(part.begin(), part.end(), original.begin() + 10 * kBs));
    if ((*repo)->format() == 2) EXPECT_LE(counter->reads.load(), 2u);  // the leaf page, the chunks
    else EXPECT_EQ(counter->reads.load(), 6u);                           // one object per chunk
    // Loaded now: read again from the file alone.
    const uint64_t after_first = counter->reads;
    ASSERT_TRUE((*v)->Read(10 * kBs + 5, std::span<uint8_t>(part).first(7 * kBs)));
    EXPECT_EQ(counter->reads.load(), after_first);
    EXPECT_TRUE(std::equal(part.begin(), part.begin() + 7 * kBs, original.begin() + 10 * kBs + 5));
    // A write over blocks 20..23: the two it covers whole are not fetched, the ends are.
    auto mine = Fill(3 * kBs, 99);
    ASSERT_TRUE((*v)->Write(20 * kBs + 10, mine, false));
    std::copy(mine.begin(), mine.end(), original.begin() + 20 * kBs + 10);
    std::vector<uint8_t> back(4 * kBs);
    ASSERT_TRUE((*v)->Read(20 * kBs, back));
    EXPECT_TRUE(std::equal(back.begin(), back.end(), original.begin() + 20 * kBs));
    // The process dies: no Close, no Hydrate.
  }
  auto v = ManagedVolume::Open(path, kBs, repo->get());
  ASSERT_TRUE(v) << v.error().ToString();
  std::atomic<bool> cancel{false};
  ASSERT_TRUE((*v)->Hydrate(&pool_, &cancel, nullptr));
  auto file = ReadWholeFile(path);
  ASSERT_TRUE(file);
  EXPECT_EQ(*file, original);
}

}  // namespace
}  // namespace snapvol
