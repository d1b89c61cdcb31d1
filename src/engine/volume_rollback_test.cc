// In-place rollback (engine/volume_rollback.h): only blocks whose id differs from the
// snapshot's are written, holes become zeros, a damaged chunk fails the run naming the
// snapshot, a second run resumes, size rules, changed-block tracking, and a real sparse file.
// Runs on both store formats (ctest registers it twice).
#include "engine/volume_rollback.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>

#include "core/ids.h"
#include "engine/engine_test_util.h"
#include "engine/snapshot_engine.h"
#include "store/memory_store.h"
#include "store/stored_object_test_util.h"

namespace snapvol {
namespace {

constexpr uint32_t kBs = 64 * 1024;

// A volume in memory that counts what is read and written, block by block.
class MemoryVolume : public RewritableVolume {
 public:
  explicit MemoryVolume(std::vector<uint8_t> data) : data(std::move(data)) {}
  uint64_t size() const override { return data.size(); }
  Status ReadAt(uint64_t off, std::span<uint8_t> out) override {
    std::memcpy(out.data(), data.data() + off, out.size());
    bytes_read += out.size();
    return OkStatus();
  }
  Status WriteAt(uint64_t off, std::span<const uint8_t> d) override {
    std::memcpy(data.data() + off, d.data(), d.size());
    std::lock_guard lock(mu);
    for (uint64_t b = off / kBs; b * kBs < off + d.size(); ++b) written_blocks.insert(b);
    bytes_written += d.size();
    return OkStatus();
  }
  Status Zero(uint64_t off, uint64_t len) override {
    std::memset(data.data() + off, 0, len);
    std::lock_guard lock(mu);
    for (uint64_t b = off / kBs; b * kBs < off + len; ++b) zeroed_blocks.insert(b);
    return OkStatus();
  }
  Status Sync() override {
    ++syncs;
    return OkStatus();
  }
  std::string Describe() const override { return "memory volume"; }

  std::vector<uint8_t> data;
  std::mutex mu;
  std::set<uint64_t> written_blocks, zeroed_blocks;  // guarded by mu
  std::atomic<uint64_t> bytes_read{0}, bytes_written{0};
  int syncs = 0;
};

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

class VolumeRollbackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RepositoryOptions ro;
    ro.block_size = kBs;
    auto repo = Repository::Create(std::make_unique<MemoryStore>(), ro);
    ASSERT_TRUE(repo) << repo.error().ToString();
    repo_ = std::move(*repo);
  }
  std::string Snapshot(BlockSource* src) {
    SnapshotEngine engine(repo_.get(), &pool_);
    SnapshotRequest req;
    req.snapshot_id = NewSnapshotId();
    req.volume_id = "vol-00000000000000001";
    auto out = engine.Create(src, req);
    EXPECT_TRUE(out) << out.error().ToString();
    return req.snapshot_id;
  }
  std::unique_ptr<Repository> repo_;
  ThreadPool pool_{2};
};

TEST_F(VolumeRollbackTest, OnePercentChangedWritesOnlyThoseBlocks) {
  const size_t blocks = 300;
  auto original = RandomBytes(blocks * kBs + 1000, 1);  // a short last block too
  testing_util::SparseSource src(original, {{0, original.size()}});
  std::string snap = Snapshot(&src);

  MemoryVolume vol(original);
  const std::set<uint64_t> changed = {3, 150, 300};  // 1%, the short last block among them
  for (uint64_t b : changed) vol.data[b * kBs + 17] ^= 0x5a;
  VolumeRollback rollback(repo_.get(), &pool_);
  std::vector<RollbackStats> seen;
  auto out = rollback.Run(snap, &vol, [&](const RollbackStats& s) { seen.push_back(s); });
  ASSERT_TRUE(out) << out.error().ToString();
  EXPECT_EQ(vol.data, original);
  EXPECT_EQ(vol.written_blocks, changed);
  EXPECT_TRUE(vol.zeroed_blocks.empty());
  EXPECT_EQ(out->blocks, blocks + 1);
  EXPECT_EQ(out->blocks_compared, blocks + 1);
  EXPECT_EQ(out->blocks_written, 3u);
  EXPECT_EQ(out->bytes_written, 2ull * kBs + 1000);
  EXPECT_EQ(vol.bytes_written.load(), out->bytes_written);
  EXPECT_EQ(out->bytes_read, original.size());  // the volume is read once
  EXPECT_EQ(vol.syncs, 1);
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().blocks_written, 3u);

  // A second run finds nothing to do: it is safe to run again (how a crash is resumed).
  MemoryVolume again(vol.data);
  auto second = rollback.Run(snap, &again);
  ASSERT_TRUE(second) << second.error().ToString();
  EXPECT_EQ(second->blocks_written, 0u);
  EXPECT_TRUE(again.written_blocks.empty());
}

TEST_F(VolumeRollbackTest, HolesInTheSnapshotBecomeZeros) {
  auto data = RandomBytes(64 * kBs, 2);
  // Blocks 0-9 and 30-63 hold data; 10-29 are holes in the snapshot.
  testing_util::SparseSource src(data, {{0, 10 * kBs}, {30 * kBs, 64 * kBs}});
  std::string snap = Snapshot(&src);

  MemoryVolume vol(RandomBytes(64 * kBs, 3));          // every block differs
  std::memset(vol.data.data() + 12 * kBs, 0, kBs);  // but block 12 is zero already
  VolumeRollback rollback(repo_.get(), &pool_);
  auto out = rollback.Run(snap, &vol);
  ASSERT_TRUE(out) << out.error().ToString();
  EXPECT_EQ(vol.data, src.Expected());
  EXPECT_EQ(out->blocks_zeroed, 19u);  // the holes but 12
  EXPECT_EQ(out->blocks_written, 44u);
  EXPECT_EQ(vol.zeroed_blocks.count(12), 0u);
  EXPECT_EQ(vol.zeroed_blocks.size(), 19u);
}

TEST_F(VolumeRollbackTest, ADamagedChunkFailsTheRunNamingTheSnapshot) {
  auto original = RandomBytes(40 * kBs, 4);
  testing_util::SparseSource src(original, {{0, original.size()}});
  std::string snap = Snapshot(&src);
  MemoryVolume vol(original);
  vol.data[20 * kBs] ^= 1;
  ASSERT_TRUE(testing_util::CorruptStored(repo_.get(), ObjectKind::kChunk,
                                          repo_->IdOf({original.data() + 20 * kBs, kBs})));
  VolumeRollback rollback(repo_.get(), &pool_);
  auto out = rollback.Run(snap, &vol);
  ASSERT_FALSE(out) << "a damaged chunk was written or skipped";
  EXPECT_NE(out.error().ToString().find(snap), std::string::npos) << out.error().ToString();
  EXPECT_NE(out.error().ToString().find("block 20"), std::string::npos) << out.error().ToString();
  EXPECT_TRUE(vol.written_blocks.empty()) << "the damaged block was written";
  EXPECT_EQ(vol.syncs, 0);
}

TEST_F(VolumeRollbackTest, ASmallerVolumeIsRefusedALargerOneKeepsItsTail) {
  auto original = RandomBytes(8 * kBs, 5);
  testing_util::SparseSource src(original, {{0, original.size()}});
  std::string snap = Snapshot(&src);
  VolumeRollback rollback(repo_.get(), &pool_);

  MemoryVolume small(RandomBytes(8 * kBs - 1, 6));
  auto refused = rollback.Run(snap, &small);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(small.written_blocks.empty());
  EXPECT_EQ(small.bytes_read.load(), 0u);

  auto larger = RandomBytes(10 * kBs, 7);
  MemoryVolume big(larger);
  auto out = rollback.Run(snap, &big);
  ASSERT_TRUE(out) << out.error().ToString();
  EXPECT_EQ(out->tail_bytes, 2ull * kBs);
  EXPECT_TRUE(std::equal(original.begin(), original.end(), big.data.begin()));
  EXPECT_TRUE(std::equal(larger.begin() + 8 * kBs, larger.end(), big.data.begin() + 8 * kBs));
}

TEST_F(VolumeRollbackTest, ChangedBlockTrackingLimitsTheReads) {
  auto original = RandomBytes(32 * kBs, 8);
  testing_util::SparseSource src(original, {{0, original.size()}});
  std::string snap = Snapshot(&src);
  MemoryVolume vol(original);
  vol.data[5 * kBs] ^= 1;
  vol.data[9 * kBs] ^= 1;
  RollbackOptions opt;
  opt.maybe_changed = [](uint64_t b) { return b == 5 || b == 9; };
  VolumeRollback rollback(repo_.get(), &pool_, opt);
  auto out = rollback.Run(snap, &vol);
  ASSERT_TRUE(out) << out.error().ToString();
  EXPECT_EQ(vol.data, original);
  EXPECT_EQ(out->blocks_compared, 2u);
  EXPECT_EQ(out->blocks_unchanged, 30u);
  EXPECT_EQ(vol.bytes_read.load(), 2ull * kBs);
  EXPECT_EQ(out->blocks_written, 2u);
}

// A real sparse file: the data is rewritten in place and the snapshot's holes are punched.
TEST_F(VolumeRollbackTest, AFileVolumeIsRolledBackInPlace) {
  auto data = RandomBytes(16 * kBs, 9);
  testing_util::SparseSource src(data, {{0, 8 * kBs}, {12 * kBs, 16 * kBs}});
  std::string snap = Snapshot(&src);
  char tmpl[] = "/tmp/rollback-test-XXXXXX";
  int fd = ::mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  auto scribble = RandomBytes(16 * kBs, 10);
  ASSERT_EQ(::pwrite(fd, scribble.data(), scribble.size(), 0), static_cast<ssize_t>(scribble.size()));
  ::close(fd);
  struct Cleanup {
    std::string path;
    ~Cleanup() { ::unlink(path.c_str()); }
  } cleanup{tmpl};
  {
    auto vol = FileVolume::Open(tmpl);
    ASSERT_TRUE(vol) << vol.error().ToString();
    EXPECT_FALSE((*vol)->block_device());
    VolumeRollback rollback(repo_.get(), &pool_);
    auto out = rollback.Run(snap, vol->get());
    ASSERT_TRUE(out) << out.error().ToString();
    EXPECT_EQ(out->blocks_zeroed, 4u);
    EXPECT_EQ(out->blocks_written, 12u);
  }
  std::vector<uint8_t> now(16 * kBs);
  fd = ::open(tmpl, O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pread(fd, now.data(), now.size(), 0), static_cast<ssize_t>(now.size()));
  EXPECT_EQ(now, src.Expected());
  ::close(fd);
  EXPECT_EQ(FileVolume::Open("/nonexistent/volume").error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace snapvol
