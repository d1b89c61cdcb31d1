// A damaged load map (IMG.load of a volume restored lazily) stops the volume from opening with
// Corruption, and nothing is changed or removed: taking a damaged map at its word would serve
// zeroes for blocks never loaded, or hang on a block it says is being replaced. The operator
// finds the image and its map as they were.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>
#include <functional>

#include "core/file_util.h"
#include "core/ids.h"
#include "engine/snapshot_engine.h"
#include "managed/managed_volume.h"
#include "managed/volume_files.h"
#include "store/memory_store.h"

namespace snapvol {
namespace {

constexpr uint32_t kBs = 64 * 1024;
constexpr uint64_t kBlocks = 16;
constexpr uint64_t kSize = kBlocks * kBs;

class LoadMapTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/load-map-" + NewVolumeId();
    ASSERT_TRUE(MakeDirs(dir_));
    RepositoryOptions ro;
    ro.block_size = kBs;
    repo_ = std::move(*Repository::Create(std::make_unique<MemoryStore>(), ro));
    // A snapshot with data in every block.
    const std::string src_path = dir_ + "/src.img";
    ASSERT_TRUE(CreateVolumeImage(src_path, kSize));
    auto src = ManagedVolume::Open(src_path, kBs);
    ASSERT_TRUE(src) << src.error().ToString();
    std::vector<uint8_t> data(kSize);
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(1 + i % 251);
    ASSERT_TRUE((*src)->Write(0, data, false));
    snap_ = NewSnapshotId();
    (*src)->LockWrites();
    auto prepared = (*src)->Cut(snap_, "");
    (*src)->UnlockWrites();
    ASSERT_TRUE(prepared);
    SnapshotRequest req;
    req.snapshot_id = snap_;
    req.volume_id = "vol-00000000000000001";
    SnapshotEngine engine(repo_.get(), &pool_);
    auto out = engine.Create(prepared->source.get(), req);
    ASSERT_TRUE(out) << out.error().ToString();
    prepared->on_done(true);
    path_ = dir_ + "/restored.img";
    ASSERT_TRUE(ManagedVolume::CreateFromSnapshot(path_, kSize, kBs, snap_));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Damages the map with fn, then expects Open to refuse it and leave both files as they were.
  void ExpectRefused(const std::function<void(std::vector<uint8_t>&)>& damage, const char* what) {
    SCOPED_TRACE(what);
    auto map = ReadWholeFile(LoadMapPath(path_));
    ASSERT_TRUE(map);
    ASSERT_GT(map->size(), kBlocks);
    damage(*map);
    ASSERT_TRUE(WriteFileAtomic(LoadMapPath(path_), *map, 0600));
    auto image_before = ReadWholeFile(path_);
    ASSERT_TRUE(image_before);
    auto v = ManagedVolume::Open(path_, kBs, repo_.get());
    ASSERT_FALSE(v) << "a damaged load map was accepted";
    EXPECT_EQ(v.error().code(), ErrorCode::kCorruption) << v.error().ToString();
    EXPECT_NE(v.error().message().find(".load is damaged"), std::string::npos) << v.error().ToString();
    auto map_after = ReadWholeFile(LoadMapPath(path_));
    ASSERT_TRUE(map_after) << "the load map was removed";
    EXPECT_EQ(*map_after, *map) << "the load map was changed";
    auto image_after = ReadWholeFile(path_);
    ASSERT_TRUE(image_after) << "the image was removed";
    EXPECT_EQ(*image_after, *image_before) << "the image was changed";
  }

  std::string dir_, path_, snap_;
  std::unique_ptr<Repository> repo_;
  ThreadPool pool_{2};
};

// The undamaged map opens and loads (the refusals below are the damage's, not the set-up's).
TEST_F(LoadMapTest, AnIntactMapOpensAndLoads) {
  auto v = ManagedVolume::Open(path_, kBs, repo_.get());
  ASSERT_TRUE(v) << v.error().ToString();
  EXPECT_TRUE((*v)->loading());
  std::vector<uint8_t> block(kBs);
  ASSERT_TRUE((*v)->Read(5 * kBs, block));
  EXPECT_EQ(block[0], static_cast<uint8_t>(1 + (5 * kBs) % 251));
}

TEST_F(LoadMapTest, ATruncatedMapIsRefused) {
  ExpectRefused([](std::vector<uint8_t>& m) { m.pop_back(); }, "one state byte missing");
}

TEST_F(LoadMapTest, AMapWithAnExtraByteIsRefused) {
  ExpectRefused([](std::vector<uint8_t>& m) { m.push_back(0); }, "one state byte too many");
}

TEST_F(LoadMapTest, ABadMagicIsRefused) {
  ExpectRefused([](std::vector<uint8_t>& m) { m[0] ^= 0x20; }, "magic");
}

TEST_F(LoadMapTest, AnotherBlockCountIsRefused) {
  // The count is the 8 bytes before the state bytes.
  ExpectRefused([](std::vector<uint8_t>& m) { m[m.size() - kBlocks - 8] += 1; }, "block count");
}

TEST_F(LoadMapTest, AStateOtherThanNotLoadedOrLoadedIsRefused) {
  for (uint8_t state : {uint8_t{2}, uint8_t{3}, uint8_t{0xff}}) {
    ASSERT_TRUE(std::filesystem::remove(LoadMapPath(path_)));
    ASSERT_TRUE(std::filesystem::remove(path_));
    ASSERT_TRUE(ManagedVolume::CreateFromSnapshot(path_, kSize, kBs, snap_));
    ExpectRefused([state](std::vector<uint8_t>& m) { m[m.size() - kBlocks + 7] = state; },
                  state == 2 ? "state 2" : state == 3 ? "state 3" : "state 255");
  }
}

}  // namespace
}  // namespace snapvol
