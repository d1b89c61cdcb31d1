// The one deletion path (engine/snapshot_deletion.h): each rule refuses with kConflict naming
// the reason and changes nothing, and a deletion that passes removes the row and moves the
// store's manifest root out of manifests/.
#include "engine/snapshot_deletion.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "catalog/catalog_test_db.h"
#include "core/file_util.h"
#include "core/ids.h"
#include "engine/snapshot_jobs.h"
#include "store/memory_store.h"

namespace snapvol {
namespace {

constexpr int64_t kNow = 1'700'000'000'000;
constexpr int64_t kDay = 86'400'000;

class SnapshotDeletionTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/deletion-" + NewVolumeId();
    ASSERT_TRUE(MakeDirs(dir_));
    catalog_db_ = std::make_unique<catalog_testing::TestCatalogDb>(dir_);
    catalog_ = std::move(*Catalog::Open(catalog_db_->location()));
    RepositoryOptions ro;
    ro.block_size = 64 * 1024;
    repo_ = std::move(*Repository::Create(std::make_unique<MemoryStore>(), ro));
    volume_.volume_id = NewVolumeId();
    volume_.account_id = kDefaultAccountId;
    volume_.name = "v";
    volume_.path = dir_ + "/" + volume_.volume_id + ".img";
    ASSERT_TRUE(WriteFileAtomic(volume_.path, AsBytes(std::string(200000, 'v'))));
    volume_.size_bytes = 200000;
    volume_.block_size = 64 * 1024;
    volume_.created_ms = 1;
    ASSERT_TRUE(catalog_->InsertVolume(volume_));
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // A completed snapshot of volume_, written through the snapshot jobs.
  std::string Completed() {
    SnapshotJobs jobs(repo_.get(), catalog_.get(), &pool_, "test-runner", 1);
    auto started = jobs.Start({{volume_, "", {}, 0, false}});
    EXPECT_TRUE(started);
    const std::string id = started->front().snapshot_id;
    for (int i = 0; i < 1000 && catalog_->GetSnapshot(id)->state == SnapshotState::kPending; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    EXPECT_EQ(catalog_->GetSnapshot(id)->state, SnapshotState::kCompleted);
    return id;
  }

  // Deletes and expects kConflict whose message names what and leaves row and manifest.
  void ExpectRefused(const SnapshotDeletion& with, const std::string& id, const std::string& what) {
    auto st = DeleteSnapshot(with, id, kNow);
    ASSERT_FALSE(st) << "deleted despite: " << what;
    EXPECT_EQ(st.error().code(), ErrorCode::kConflict) << st.error().ToString();
    EXPECT_NE(st.error().message().find(what), std::string::npos) << st.error().message();
    EXPECT_NE(st.error().message().find(id), std::string::npos) << st.error().message();
    EXPECT_TRUE(catalog_->GetSnapshot(id));
  }

  SnapshotDeletion With() { return {.catalog = catalog_.get(), .repo = repo_.get()}; }

  std::string dir_;
  std::unique_ptr<catalog_testing::TestCatalogDb> catalog_db_;  // outlives catalog_
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<Repository> repo_;
  ThreadPool pool_{2};
  VolumeRecord volume_;
};

TEST_F(SnapshotDeletionTest, ACompletedSnapshotGoesWithItsManifestRoot) {
  const std::string id = Completed();
  ASSERT_TRUE(repo_->GetManifest(id));
  ASSERT_TRUE(DeleteSnapshot(With(), id, kNow));
  EXPECT_EQ(catalog_->GetSnapshot(id).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(repo_->GetManifest(id).error().code(), ErrorCode::kNotFound);
  auto again = DeleteSnapshot(With(), id, kNow);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), ErrorCode::kNotFound);
}

TEST_F(SnapshotDeletionTest, APendingSnapshotGoesOnlyWhenNothingWritesItAnyMore) {
  SnapshotRecord s;
  s.snapshot_id = NewSnapshotId();
  s.volume_id = volume_.volume_id;
  s.account_id = kDefaultAccountId;
  s.start_time_ms = kNow;
  s.volume_size_bytes = volume_.size_bytes;
  s.block_size = volume_.block_size;
  s.runner = "pid:1@elsewhere";
  ASSERT_TRUE(catalog_->InsertSnapshot(s));
  // snapvold's rule: every pending snapshot is being taken.
  ExpectRefused(With(), s.snapshot_id, "still being taken");
  // The CLI's: only while its runner lives.
  SnapshotDeletion cli = With();
  bool asked = false;
  cli.still_being_taken = [&](const SnapshotRecord& r) {
    asked = true;
    return r.runner == "pid:1@elsewhere";
  };
  ExpectRefused(cli, s.snapshot_id, "pid:1@elsewhere");
  EXPECT_TRUE(asked);
  cli.still_being_taken = [](const SnapshotRecord&) { return false; };
  ASSERT_TRUE(DeleteSnapshot(cli, s.snapshot_id, kNow));  // it has no manifest: fine
  EXPECT_EQ(catalog_->GetSnapshot(s.snapshot_id).error().code(), ErrorCode::kNotFound);
}

TEST_F(SnapshotDeletionTest, AVolumeStillLoadingFromItKeepsIt) {
  const std::string id = Completed();
  VolumeRecord restored;
  restored.volume_id = NewVolumeId();
  restored.account_id = kDefaultAccountId;
  restored.path = dir_ + "/" + restored.volume_id + ".img";
  restored.size_bytes = volume_.size_bytes;
  restored.block_size = volume_.block_size;
  restored.snapshot_id = id;
  restored.state = "creating";  // its restore runs
  restored.managed = true;
  ASSERT_TRUE(catalog_->InsertVolume(restored));
  ExpectRefused(With(), id, "volume " + restored.volume_id + " is still loading");
  EXPECT_TRUE(repo_->GetManifest(id));
  // Available, but loading lazily: its load map is still there.
  ASSERT_TRUE(catalog_->SetVolumeState(restored.volume_id, "available", ""));
  ASSERT_TRUE(WriteFileAtomic(LoadMapPath(restored.path), AsBytes(std::string("map"))));
  ExpectRefused(With(), id, "volume " + restored.volume_id + " is still loading");
  // Every block is in: the snapshot may go.
  ASSERT_TRUE(std::filesystem::remove(LoadMapPath(restored.path)));
  ASSERT_TRUE(DeleteSnapshot(With(), id, kNow));
  EXPECT_EQ(repo_->GetManifest(id).error().code(), ErrorCode::kNotFound);
}

TEST_F(SnapshotDeletionTest, ALockInForceKeepsItUntilItEnds) {
  const std::string id = Completed();
  SnapshotLockRecord lock{id, kDefaultAccountId, "governance", kNow, kNow, kNow + kDay, 1, 0, 0};
  ASSERT_TRUE(catalog_->PutSnapshotLock(lock));
  ExpectRefused(With(), id, "locked");
  EXPECT_TRUE(repo_->GetManifest(id));
  ASSERT_TRUE(DeleteSnapshot(With(), id, kNow + kDay));
  EXPECT_EQ(repo_->GetManifest(id).error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace snapvol
