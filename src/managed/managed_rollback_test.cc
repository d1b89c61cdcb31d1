// In-place rollback of a MANAGED volume (engine/rollback_tasks.h with managed/managed_rollback.h):
// with changed-block tracking only the union of the blocks that differ between the target and
// the tracking's base snapshot and the blocks written since that base is compared and
// rewritten, and the result equals the target byte for byte; without a usable map (after an
// unclean stop) every block is compared, and the task says which way was taken. Real
// ManagedVolumes, snapshot jobs cutting them, the rollback runner; both store formats.
#include "managed/managed_rollback.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "catalog/catalog_test_db.h"
#include "core/file_util.h"
#include "core/ids.h"
#include "managed/volume_files.h"
#include "store/memory_store.h"

namespace snapvol {
namespace {

constexpr uint32_t kBs = 64 * 1024;
constexpr uint64_t kBlocks = 64;

class ManagedRollbackTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/managed-rollback-" + NewVolumeId();
    ASSERT_TRUE(MakeDirs(dir_));
    catalog_db_ = std::make_unique<catalog_testing::TestCatalogDb>(dir_);
    catalog_ = std::move(*Catalog::Open(catalog_db_->location()));
    RepositoryOptions ro;
    ro.block_size = kBs;
    repo_ = std::move(*Repository::Create(std::make_unique<MemoryStore>(), ro));
    registry_ = std::make_unique<VolumeRegistry>(kBs, repo_.get(), &pool_);
    provider_ = std::make_unique<ManagedSourceProvider>(registry_.get());
    jobs_ = std::make_unique<SnapshotJobs>(repo_.get(), catalog_.get(), &pool_, "test-runner", 1);
    jobs_->SetSourceProvider(provider_.get());
    tasks_ = std::make_unique<RollbackTasks>(repo_.get(), catalog_.get(), &pool_, jobs_.get(), "test-runner");
    tasks_->managed = MakeManagedRollbackHooks(registry_.get());
    tasks_->managed.end_connections = [this](const std::string& id) -> Status {
      ended_.push_back(id);
      return OkStatus();
    };
    tasks_->managed.admit = [this](const std::string& id) { admitted_.push_back(id); };
    std::mt19937_64 rng(11);
    original_.resize(kBlocks * kBs);
    for (auto& b : original_) b = static_cast<uint8_t>(rng());
    // Block 9 is a hole in the snapshot.
    std::fill(original_.begin() + 9 * kBs, original_.begin() + 10 * kBs, 0);
    vol_.volume_id = NewVolumeId();
    vol_.account_id = kDefaultAccountId;
    vol_.path = dir_ + "/" + vol_.volume_id + ".img";
    ASSERT_TRUE(WriteFileAtomic(vol_.path, original_));
    vol_.size_bytes = original_.size();
    vol_.block_size = kBs;
    vol_.managed = true;
    vol_.created_ms = 1;
    ASSERT_TRUE(catalog_->InsertVolume(vol_));
    target_ = Snapshot();  // the first cut: from now on the map is trusted, relative to it
  }
  void TearDown() override {
    tasks_.reset();
    jobs_.reset();
    registry_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::shared_ptr<ManagedVolume> Volume() { return *registry_->Get(vol_.volume_id, vol_.path); }
  std::string Snapshot() {
    auto started = jobs_->Start({{vol_, "snap", {}, 0, false}});
    EXPECT_TRUE(started) << started.error().ToString();
    std::string id = started->front().snapshot_id;
    for (int i = 0; i < 500 && catalog_->GetSnapshot(id)->state == SnapshotState::kPending; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(catalog_->GetSnapshot(id)->state, SnapshotState::kCompleted);
    // The job's last step (the cut ends) follows `completed`.
    for (int i = 0; i < 500 && Volume()->pending_cuts() > 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    EXPECT_EQ(Volume()->pending_cuts(), 0u);
    return id;
  }
  // A client's write of a few bytes into each of these blocks (through the managed volume).
  void Write(std::initializer_list<uint64_t> blocks, uint8_t value) {
    auto v = Volume();
    std::vector<uint8_t> data(100, value);
    for (uint64_t b : blocks) ASSERT_TRUE(v->Write(b * kBs + 17, data, false));
  }
  std::vector<uint8_t> Contents() {
    std::vector<uint8_t> out(original_.size());
    EXPECT_TRUE(Volume()->Read(0, out));
    return out;
  }
  std::vector<uint8_t> SnapshotBytes(const std::string& id) {
    std::vector<uint8_t> out(original_.size());
    auto reader = SnapshotBlockReader::Open(repo_.get(), id);
    EXPECT_TRUE(reader);
    for (uint64_t b = 0; b < kBlocks; ++b) EXPECT_TRUE((*reader)->Read(b, {out.data() + b * kBs, kBs}));
    return out;
  }
  ReplaceRootVolumeTaskRecord RollBack(bool safety) {
    RollbackTaskRequest r;
    r.account_id = vol_.account_id;
    r.volume_id = vol_.volume_id;
    r.snapshot_id = target_;
    r.safety_snapshot = safety;
    r.requested_by = "test";
    auto t = tasks_->Start(r);
    EXPECT_TRUE(t) << t.error().ToString();
    tasks_->WaitIdle();
    return *catalog_->GetReplaceRootVolumeTask(t->task_id);
  }

  std::string dir_, target_;
  std::unique_ptr<catalog_testing::TestCatalogDb> catalog_db_;  // outlives catalog_
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<Repository> repo_;
  ThreadPool pool_{2};
  std::unique_ptr<VolumeRegistry> registry_;
  std::unique_ptr<ManagedSourceProvider> provider_;
  std::unique_ptr<SnapshotJobs> jobs_;
  std::unique_ptr<RollbackTasks> tasks_;
  std::vector<uint8_t> original_;
  std::vector<std::string> ended_, admitted_;
  VolumeRecord vol_;
};

TEST_F(ManagedRollbackTest, OnlyTheBlocksWrittenSinceAreReadAndRewritten) {
  Write({3, 9, 40}, 0xab);
  const auto before = Contents();
  auto done = RollBack(true);
  EXPECT_EQ(done.state, "succeeded") << done.reason;
  // The safety snapshot became the map's base: target vs it differs in exactly these blocks.
  EXPECT_NE(done.reason.find("changed-block tracking since " + done.safety_snapshot_id + ": 3 of 64"),
            std::string::npos) << done.reason;
  EXPECT_EQ(done.blocks_compared, 3u);
  EXPECT_EQ(done.bytes_read, 3ull * kBs);     // those three, nothing else
  EXPECT_EQ(done.bytes_written, 2ull * kBs);  // blocks 3 and 40; block 9, a hole in the target, is zeroed
  EXPECT_EQ(Contents(), original_);
  EXPECT_EQ(ended_, std::vector<std::string>{vol_.volume_id});
  EXPECT_EQ(admitted_, std::vector<std::string>{vol_.volume_id});
  EXPECT_EQ(SnapshotBytes(done.safety_snapshot_id), before);
  // The rollback's writes went through the map: the next snapshot is the target's bytes.
  EXPECT_EQ(SnapshotBytes(Snapshot()), original_);
}

TEST_F(ManagedRollbackTest, BlocksWrittenBetweenTheTargetAndTheLatestSnapshotAreCovered) {
  Write({5, 6}, 0x11);
  const std::string latest = Snapshot();  // the map is now relative to it, blocks 5 and 6 not in it
  Write({20, 6}, 0x22);
  auto done = RollBack(false);
  EXPECT_EQ(done.state, "succeeded") << done.reason;
  EXPECT_NE(done.reason.find("changed-block tracking since " + latest + ": 3 of 64"), std::string::npos)
      << done.reason;
  EXPECT_EQ(done.blocks_compared, 3u);
  EXPECT_EQ(done.bytes_written, 3ull * kBs);
  EXPECT_EQ(Contents(), original_);
}

// An unclean stop (the process killed while the volume was open): the map on disk is not
// trusted, so every block is compared; a map trusted anyway would miss blocks 7 and 8.
TEST_F(ManagedRollbackTest, AMapNotTrustedAfterAnUncleanStopFallsBackToComparingEveryBlock) {
  registry_->CloseAll();  // a clean stop: the map is saved trusted, relative to the target
  registry_ = std::make_unique<VolumeRegistry>(kBs, repo_.get(), &pool_);
  provider_ = std::make_unique<ManagedSourceProvider>(registry_.get());
  jobs_->SetSourceProvider(provider_.get());
  tasks_->managed.open = MakeManagedRollbackHooks(registry_.get()).open;
  tasks_->managed.tracking = MakeManagedRollbackHooks(registry_.get()).tracking;
  ASSERT_TRUE(Volume()->cbt_trusted());
  Write({7, 8}, 0x33);
  registry_->Forget(vol_.volume_id);  // dropped without Close: as a kill leaves it
  ASSERT_FALSE(Volume()->cbt_trusted());
  auto done = RollBack(false);
  EXPECT_EQ(done.state, "succeeded") << done.reason;
  EXPECT_NE(done.reason.find("changed-block tracking not usable"), std::string::npos) << done.reason;
  EXPECT_EQ(done.blocks_compared, kBlocks);
  EXPECT_EQ(done.bytes_written, 2ull * kBs);
  EXPECT_EQ(Contents(), original_);
}

// A map relative to a snapshot that is gone (deleted) cannot be compared with: every block.
TEST_F(ManagedRollbackTest, AMapRelativeToADeletedSnapshotFallsBack) {
  Write({12}, 0x44);
  const std::string latest = Snapshot();
  ASSERT_TRUE(catalog_->DeleteSnapshot(latest, 1));
  Write({13}, 0x55);
  auto done = RollBack(false);
  EXPECT_EQ(done.state, "succeeded") << done.reason;
  EXPECT_NE(done.reason.find("changed-block tracking not usable"), std::string::npos) << done.reason;
  EXPECT_EQ(done.blocks_compared, kBlocks);
  EXPECT_EQ(done.bytes_written, 2ull * kBs);
  EXPECT_EQ(Contents(), original_);
}

TEST_F(ManagedRollbackTest, WithoutHooksAManagedVolumeIsRefused) {
  tasks_->managed = {};
  RollbackTaskRequest r;
  r.account_id = vol_.account_id;
  r.volume_id = vol_.volume_id;
  r.snapshot_id = target_;
  auto t = tasks_->Start(r);
  ASSERT_FALSE(t);
  EXPECT_EQ(t.error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace snapvol
