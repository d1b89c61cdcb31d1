// An object that is not encrypted, in a store that is, is refused. Chunks and index pages
// would also fail their keyed-id check, but a manifest root carries no content id: without
// the codec's "not encrypted" check, anyone able to write to the store could plant a root in
// plaintext (e.g. one that points a snapshot at another volume's data) and it would be read.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/ids.h"
#include "engine/snapshot_engine.h"
#include "store/memory_store.h"
#include "store/verify.h"

namespace snapvol {
namespace {

constexpr uint32_t kBs = 64 * 1024;

class BytesSource : public BlockSource {
 public:
  explicit BytesSource(std::vector<uint8_t> d) : data_(std::move(d)) {}
  uint64_t size() const override { return data_.size(); }
  Status ReadAt(uint64_t off, std::span<uint8_t> out) override {
    std::memset(out.data(), 0, out.size());
    if (off < data_.size()) std::memcpy(out.data(), data_.data() + off, std::min<size_t>(out.size(), data_.size() - off));
    return OkStatus();
  }
  std::string Describe() const override { return "memory volume"; }

 private:
  std::vector<uint8_t> data_;
};

class CountingTarget : public BlockTarget {
 public:
  explicit CountingTarget(uint64_t size) : size_(size) {}
  uint64_t size() const override { return size_; }
  Status WriteAt(uint64_t, std::span<const uint8_t>) override { ++writes; return OkStatus(); }
  Status Zero(uint64_t, uint64_t) override { return OkStatus(); }
  Status Commit() override { committed = true; return OkStatus(); }
  std::string Describe() const override { return "counting target"; }
  std::atomic<int> writes{0};
  bool committed = false;

 private:
  uint64_t size_;
};

TEST(EncryptedStore, APlaintextManifestRootIsCorruptionNotASnapshot) {
  Key256 key{};
  for (size_t i = 0; i < key.size(); ++i) key[i] = static_cast<uint8_t>(i * 37 + 1);
  RepositoryOptions enc;
  enc.block_size = kBs;
  enc.master_key = key;
  auto repo = Repository::Create(std::make_unique<MemoryStore>(), enc);
  ASSERT_TRUE(repo) << repo.error().ToString();
  ASSERT_TRUE((*repo)->encrypted());
  ThreadPool pool(2);
  std::vector<uint8_t> data(4 * kBs);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 7 + i / 977);
  BytesSource src(data);
  SnapshotEngine engine(repo->get(), &pool);
  SnapshotRequest req;
  req.snapshot_id = NewSnapshotId();
  req.volume_id = "vol-00000000000000001";
  auto snap = engine.Create(&src, req);
  ASSERT_TRUE(snap) << snap.error().ToString();

  // The same root, encoded by a store without a key: a valid object in every other respect
  // (magic, version, kind, length, checksum).
  RepositoryOptions plain;
  plain.block_size = kBs;
  auto plain_repo = Repository::Create(std::make_unique<MemoryStore>(), plain);
  ASSERT_TRUE(plain_repo);
  ManifestMeta forged = snap->manifest;
  forged.description = "planted in plaintext";
  ASSERT_TRUE((*plain_repo)->PutManifest(forged));
  const std::string root_key = Repository::ManifestKey(req.snapshot_id);
  auto planted = (*plain_repo)->store()->Get(root_key);
  ASSERT_TRUE(planted);
  ASSERT_TRUE((*repo)->store()->Put(root_key, *planted));

  auto meta = (*repo)->GetManifest(req.snapshot_id);
  ASSERT_FALSE(meta) << "a plaintext root was read from an encrypted store: '" << meta->description << "'";
  EXPECT_EQ(meta.error().code(), ErrorCode::kCorruption) << meta.error().ToString();
  EXPECT_NE(meta.error().ToString().find("not encrypted"), std::string::npos) << meta.error().ToString();

  // A restore refuses it before writing anything; verify names the snapshot as damaged.
  CountingTarget target(data.size());
  auto restored = engine.Restore(req.snapshot_id, &target);
  ASSERT_FALSE(restored);
  EXPECT_EQ(restored.error().code(), ErrorCode::kCorruption) << restored.error().ToString();
  EXPECT_EQ(target.writes.load(), 0);
  EXPECT_FALSE(target.committed);
  auto report = VerifySnapshots(repo->get(), {}, &pool, {});
  ASSERT_TRUE(report) << report.error().ToString();
  ASSERT_EQ(report->damaged.size(), 1u);
  EXPECT_EQ(report->damaged[0].snapshot_id, req.snapshot_id);
}

}  // namespace
}  // namespace snapvol
