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

// Progress reaches the catalog once per 5-point step: a snapshot reporting every percent
// writes 19 times (5% … 95%), then its completion writes 100%.
TEST(ProgressToWriteTest, OncePerStepNeverOneHundred) {
  EXPECT_EQ(ProgressToWrite(0, 0), std::nullopt);
  EXPECT_EQ(ProgressToWrite(0, 4), std::nullopt);
  EXPECT_EQ(ProgressToWrite(0, 5), 5);
  EXPECT_EQ(ProgressToWrite(5, 9), std::nullopt);
  EXPECT_EQ(ProgressToWrite(5, 37), 37);  // a jump writes where it landed
  EXPECT_EQ(ProgressToWrite(90, 100), 99);
  EXPECT_EQ(ProgressToWrite(95, 100), std::nullopt);
  int written = 0, writes = 0;
  for (int pct = 0; pct <= 100; ++pct)
    if (auto w = ProgressToWrite(written, pct)) written = *w, ++writes;
  EXPECT_EQ(writes, 19);
  EXPECT_EQ(written, 95);
}

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

namespace snapvol {
namespace {

// Routing (docs/multi-host.md part 3): two hosts share one catalog (one SQLite file standing in
// for the shared PostgreSQL one) and one store. A snapshot asked of host A for a volume host B
// holds is answered pending at once, queued for B, and run by B when B claims it.
class RoutedSnapshotJobsTest : public SnapshotJobsTest {
 protected:
  void SetUp() override {
    SnapshotJobsTest::SetUp();
    catalog_->SetLocalHost(kA);
    auto b = Catalog::Open(dir_ + "/catalog.db");
    ASSERT_TRUE(b) << b.error().ToString();
    catalog_b_ = std::move(*b);
    catalog_b_->SetLocalHost(kB);
  }
  VolumeRecord VolumeOn(const std::string& host) {
    VolumeRecord v;
    v.volume_id = NewVolumeId();
    v.account_id = kDefaultAccountId;
    v.name = "v";
    v.path = dir_ + "/" + v.volume_id + ".img";
    std::string data(200000, 'r');
    EXPECT_TRUE(WriteFileAtomic(v.path, AsBytes(data)));
    v.size_bytes = data.size();
    v.block_size = 64 * 1024;
    v.created_ms = 1;
    v.host_id = host;
    EXPECT_TRUE(catalog_->InsertVolume(v));
    return v;
  }
  static constexpr char kA[] = "host-aaaaaaaaaaaaaaaaa";
  static constexpr char kB[] = "host-bbbbbbbbbbbbbbbbb";
  std::unique_ptr<Catalog> catalog_b_;
};

TEST_F(RoutedSnapshotJobsTest, AnotherHostsVolumeIsQueuedForItAndRunByItsClaim) {
  SnapshotJobs on_a(repo_.get(), catalog_.get(), &pool_, std::string("pid:1@boot@") + kA, 1);
  SnapshotJobs on_b(repo_.get(), catalog_b_.get(), &pool_, std::string("pid:2@boot@") + kB, 1);
  VolumeRecord theirs = VolumeOn(kB), mine = VolumeOn(kA);
  auto started = on_a.Start({{theirs, "routed", {{"Name", "r"}}, 0, false}, {mine, "local", {}, 0, false}});
  ASSERT_TRUE(started) << started.error().ToString();
  ASSERT_EQ(started->size(), 2u);
  const SnapshotRecord& routed = (*started)[0];
  EXPECT_EQ(routed.state, SnapshotState::kPending);
  EXPECT_EQ(routed.runner, QueuedRunner(kB));
  EXPECT_EQ(routed.description, "routed");
  EXPECT_EQ((*started)[1].runner, on_a.runner_id());  // A's own volume runs on A
  auto queue = catalog_->ListSnapshotJobs();
  ASSERT_TRUE(queue);
  ASSERT_EQ(queue->size(), 1u);
  EXPECT_EQ((*queue)[0].host_id, kB);
  EXPECT_EQ((*queue)[0].snapshot_ids, std::vector<std::string>{routed.snapshot_id});
  // A has nothing to claim; its own snapshot completes, the routed one waits for B.
  EXPECT_FALSE(*catalog_->ClaimSnapshotJob(kA, on_a.runner_id(), 1));
  for (int i = 0; i < 500 && catalog_->GetSnapshot((*started)[1].snapshot_id)->state == SnapshotState::kPending; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(catalog_->GetSnapshot((*started)[1].snapshot_id)->state, SnapshotState::kCompleted);
  EXPECT_EQ(catalog_->GetSnapshot(routed.snapshot_id)->state, SnapshotState::kPending);

  auto claimed = catalog_b_->ClaimSnapshotJob(kB, on_b.runner_id(), 2);
  ASSERT_TRUE(claimed && claimed->has_value());
  ASSERT_TRUE(on_b.RunQueued(**claimed));
  auto all = WaitSettled();
  auto done = catalog_->GetSnapshot(routed.snapshot_id);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->state, SnapshotState::kCompleted) << done->state_message;
  // (A completed row has no runner; the daemon test checks that B's process claimed it.)
  EXPECT_EQ(done->start_time_ms, routed.start_time_ms);  // the instant A accepted it
  bool cut_tag = false, name_tag = false;
  for (const auto& t : done->tags) {
    cut_tag |= t.key == kConsistencyTag;
    name_tag |= t.key == "Name" && t.value == "r";
  }
  EXPECT_TRUE(cut_tag) << "B's cut says how it was taken";
  EXPECT_TRUE(name_tag);
  EXPECT_TRUE(repo_->GetManifest(routed.snapshot_id));
  EXPECT_TRUE(catalog_->ListSnapshotJobs()->empty());
  // A job claimed by someone else is not run.
  SnapshotJobRecord other{"snap-x", kB, "", {routed.snapshot_id}, false, 1, "pid:9@boot@" + std::string(kB), 1};
  EXPECT_EQ(on_b.RunQueued(other).error().code(), ErrorCode::kConflict);
}

class FailingCuts : public SourceProvider {
 public:
  Result<std::shared_ptr<void>> HoldWrites(const std::vector<VolumeRecord>&) override {
    return MakeError(ErrorCode::kIoError, "the disk is gone");
  }
  Result<std::optional<PreparedSource>> Prepare(const VolumeRecord&, const std::string&, const std::string&) override {
    return std::optional<PreparedSource>();
  }
};

TEST_F(RoutedSnapshotJobsTest, AClaimThatFailsEndsItsSnapshotsErrorWithTheReason) {
  SnapshotJobs on_a(repo_.get(), catalog_.get(), &pool_, std::string("pid:1@boot@") + kA, 1);
  SnapshotJobs on_b(repo_.get(), catalog_b_.get(), &pool_, std::string("pid:2@boot@") + kB, 1);
  FailingCuts failing;
  on_b.SetSourceProvider(&failing);
  VolumeRecord theirs = VolumeOn(kB);
  auto started = on_a.Start({{theirs, "", {}, 0, false}});
  ASSERT_TRUE(started) << started.error().ToString();
  auto claimed = catalog_b_->ClaimSnapshotJob(kB, on_b.runner_id(), 2);
  ASSERT_TRUE(claimed && claimed->has_value());
  EXPECT_TRUE(on_b.RunQueued(**claimed));
  auto s = catalog_->GetSnapshot((*started)[0].snapshot_id);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->state, SnapshotState::kError);
  EXPECT_NE(s->state_message.find("the disk is gone"), std::string::npos) << s->state_message;
  EXPECT_TRUE(catalog_->ListSnapshotJobs()->empty());
}

}  // namespace
}  // namespace snapvol
