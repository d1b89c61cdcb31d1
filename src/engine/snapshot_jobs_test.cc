#include "engine/snapshot_jobs.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "core/file_util.h"
#include "core/ids.h"
#include "store/memory_store.h"

namespace snapvol {
namespace {

class SnapshotJobsTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/jobs-" + NewVolumeId();
    ASSERT_TRUE(MakeDirs(dir_));
    catalog_ = std::move(*Catalog::Open(dir_ + "/catalog.db"));
    RepositoryOptions ro;
    ro.block_size = 64 * 1024;
    repo_ = std::move(*Repository::Create(std::make_unique<MemoryStore>(), ro));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  VolumeRecord MakeVolume(const std::string& account, size_t size, char fill) {
    VolumeRecord v;
    v.volume_id = NewVolumeId();
    v.account_id = account;
    v.name = "v";
    v.path = dir_ + "/" + v.volume_id + ".img";
    std::string data(size, fill);
    EXPECT_TRUE(WriteFileAtomic(v.path, AsBytes(data)));
    v.size_bytes = size;
    v.block_size = 64 * 1024;
    v.created_ms = 1;
    EXPECT_TRUE(catalog_->InsertVolume(v));
    return v;
  }

  // Waits until no snapshot is pending (bounded).
  std::vector<SnapshotRecord> WaitSettled() {
    for (int i = 0; i < 500; ++i) {
      auto pending = *catalog_->ListSnapshots({.state = SnapshotState::kPending});
      if (pending.empty()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return *catalog_->ListSnapshots({});
  }

  std::string dir_;
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<Repository> repo_;
  ThreadPool pool_{2};
};

TEST_F(SnapshotJobsTest, JobsCompleteWithProgressAndIncrementalParents) {
  auto team = *catalog_->CreateAccount("team-1");
  VolumeRecord a = MakeVolume(team.account_id, 300000, 'a');
  VolumeRecord b = MakeVolume(kDefaultAccountId, 200000, 'b');
  SnapshotJobs jobs(repo_.get(), catalog_.get(), &pool_, "test-runner", 2);
  auto started = jobs.Start({{a, "first", {{"Name", "a"}}, 0, false}, {b, "", {}, 0, false}});
  ASSERT_TRUE(started) << started.error().ToString();
  ASSERT_EQ(started->size(), 2u);
  EXPECT_EQ((*started)[0].state, SnapshotState::kPending);
  auto all = WaitSettled();
  ASSERT_EQ(all.size(), 2u);
  for (const auto& s : all) {
    EXPECT_EQ(s.state, SnapshotState::kCompleted) << s.state_message;
    EXPECT_EQ(s.progress, "100%");
    EXPECT_TRUE(repo_->GetManifest(s.snapshot_id));
  }
  // The next snapshot of a is incremental against the first.
  auto second = jobs.Start({{a, "second", {}, 0, false}});
  ASSERT_TRUE(second);
  EXPECT_EQ((*second)[0].parent_snapshot_id, (*started)[0].snapshot_id);
  WaitSettled();
  EXPECT_EQ(catalog_->GetSnapshot((*second)[0].snapshot_id)->state, SnapshotState::kCompleted);
}

TEST_F(SnapshotJobsTest, UnreadableVolumeEndsInErrorWithReason) {
  VolumeRecord v = MakeVolume(kDefaultAccountId, 1000, 'x');
  ASSERT_EQ(::unlink(v.path.c_str()), 0);
  SnapshotJobs jobs(repo_.get(), catalog_.get(), &pool_, "test-runner", 1);
  auto started = jobs.Start({{v, "", {}, 0, false}});
  ASSERT_TRUE(started);
  auto all = WaitSettled();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].state, SnapshotState::kError);
  EXPECT_NE(all[0].state_message.find("cannot read the volume"), std::string::npos);
}

TEST_F(SnapshotJobsTest, ShutdownSettlesQueuedJobs) {
  std::vector<SnapshotJobRequest> many;
  for (int i = 0; i < 20; ++i) many.push_back({MakeVolume(kDefaultAccountId, 4 << 20, 'a' + i), "", {}, 0, false});
  {
    SnapshotJobs jobs(repo_.get(), catalog_.get(), &pool_, "test-runner", 1);
    auto st = jobs.Start(many);
    ASSERT_TRUE(st) << st.error().ToString();
    jobs.Shutdown();
    EXPECT_FALSE(jobs.Start({many[0]}));
  }
  auto all = *catalog_->ListSnapshots({});
  ASSERT_GE(all.size(), 20u);
  for (const auto& s : all) EXPECT_NE(s.state, SnapshotState::kPending) << s.snapshot_id;
}

}  // namespace
}  // namespace snapvol
