// RollbackTasks (engine/rollback_tasks.h): the rollback as a task in the catalog — the rules
// checked at Start, the safety snapshot, progress and counters, failure that marks the
// volume, and a task left in progress by a crash resumed by Resume. Both store formats.
#include "engine/rollback_tasks.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "catalog/catalog_test_db.h"
#include "core/file_util.h"
#include "core/ids.h"
#include "store/memory_store.h"
#include "store/stored_object_test_util.h"

namespace snapvol {
namespace {

constexpr uint32_t kBs = 64 * 1024;
constexpr size_t kBlocks = 100;

class RollbackTasksTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/rollback-" + NewVolumeId();
    ASSERT_TRUE(MakeDirs(dir_));
    catalog_db_ = std::make_unique<catalog_testing::TestCatalogDb>(dir_);
    catalog_ = std::move(*Catalog::Open(catalog_db_->location()));
    RepositoryOptions ro;
    ro.block_size = kBs;
    repo_ = std::move(*Repository::Create(std::make_unique<MemoryStore>(), ro));
    jobs_ = std::make_unique<SnapshotJobs>(repo_.get(), catalog_.get(), &pool_, "test-runner", 1);
    tasks_ = std::make_unique<RollbackTasks>(repo_.get(), catalog_.get(), &pool_, jobs_.get(), "test-runner");
    std::mt19937_64 rng(7);
    original_.resize(kBlocks * kBs);
    for (auto& b : original_) b = static_cast<uint8_t>(rng());
    vol_.volume_id = NewVolumeId();
    vol_.account_id = kDefaultAccountId;
    vol_.path = dir_ + "/disk.img";
    ASSERT_TRUE(WriteFileAtomic(vol_.path, original_));
    vol_.size_bytes = original_.size();
    vol_.block_size = kBs;
    vol_.created_ms = 1;
    ASSERT_TRUE(catalog_->InsertVolume(vol_));
    snap_ = Snapshot();
  }
  void TearDown() override {
    tasks_.reset();
    jobs_.reset();
    std::filesystem::remove_all(dir_);
  }
  std::string Snapshot() {
    auto started = jobs_->Start({{vol_, "base", {}, 0, false}});
    EXPECT_TRUE(started) << started.error().ToString();
    std::string id = started->front().snapshot_id;
    for (int i = 0; i < 500 && catalog_->GetSnapshot(id)->state == SnapshotState::kPending; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    EXPECT_EQ(catalog_->GetSnapshot(id)->state, SnapshotState::kCompleted);
    return id;
  }
  // Changes one byte of each of these blocks on disk.
  void Scribble(std::initializer_list<uint64_t> blocks) {
    auto data = *ReadWholeFile(vol_.path);
    for (uint64_t b : blocks) data[b * kBs + 5] ^= 0xff;
    ASSERT_TRUE(WriteFileAtomic(vol_.path, data));
  }
  RollbackTaskRequest Request() {
    RollbackTaskRequest r;
    r.account_id = vol_.account_id;
    r.volume_id = vol_.volume_id;
    r.snapshot_id = snap_;
    r.requested_by = "test";
    return r;
  }
  ReplaceRootVolumeTaskRecord Settled(const std::string& id) {
    tasks_->WaitIdle();
    return *catalog_->GetReplaceRootVolumeTask(id);
  }

  std::string dir_, snap_;
  std::unique_ptr<catalog_testing::TestCatalogDb> catalog_db_;  // outlives catalog_
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<Repository> repo_;
  ThreadPool pool_{2};
  std::unique_ptr<SnapshotJobs> jobs_;
  std::unique_ptr<RollbackTasks> tasks_;
  std::vector<uint8_t> original_;
  VolumeRecord vol_;
};

TEST_F(RollbackTasksTest, RollsBackAfterASafetySnapshotOfThePresentData) {
  Scribble({1, 50});
  const auto before = *ReadWholeFile(vol_.path);
  auto t = tasks_->Start(Request());
  ASSERT_TRUE(t) << t.error().ToString();
  EXPECT_TRUE(IsReplaceRootVolumeTaskId(t->task_id));
  EXPECT_EQ(t->state, "pending");
  ASSERT_FALSE(t->safety_snapshot_id.empty());
  auto done = Settled(t->task_id);
  EXPECT_EQ(done.state, "succeeded") << done.reason;
  EXPECT_EQ(done.progress, 100);
  EXPECT_EQ(done.blocks_compared, kBlocks);
  EXPECT_EQ(done.bytes_written, 2ull * kBs);
  EXPECT_EQ(done.bytes_read, kBlocks * kBs);
  EXPECT_EQ(*ReadWholeFile(vol_.path), original_);
  // The safety snapshot holds the bytes from before the rollback.
  auto safety = catalog_->GetSnapshot(done.safety_snapshot_id);
  ASSERT_EQ(safety->state, SnapshotState::kCompleted);
  std::vector<uint8_t> restored(before.size());
  auto reader = SnapshotBlockReader::Open(repo_.get(), done.safety_snapshot_id);
  ASSERT_TRUE(reader);
  for (uint64_t b = 0; b < kBlocks; ++b) ASSERT_TRUE((*reader)->Read(b, {restored.data() + b * kBs, kBs}));
  EXPECT_EQ(restored, before);
}

TEST_F(RollbackTasksTest, AnAttachedVolumeNeedsAStoppedInstanceOrForce) {
  InstanceRecord inst;
  inst.instance_id = NewInstanceId();
  inst.account_id = kDefaultAccountId;
  ASSERT_TRUE(catalog_->InsertInstance(inst));
  ASSERT_TRUE(catalog_->SetVolumeAttachment(vol_.volume_id, inst.instance_id, "/dev/sda", 5));
  auto r = Request();
  r.safety_snapshot = false;
  auto refused = tasks_->Start(r);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kConflict);
  EXPECT_NE(refused.error().message().find(inst.instance_id), std::string::npos) << refused.error().message();
  EXPECT_TRUE(catalog_->ListReplaceRootVolumeTasks(std::nullopt)->empty());

  r.force = true;
  r.reason = "the team asked, the server is idle";
  auto forced = tasks_->Start(r);
  ASSERT_TRUE(forced) << forced.error().ToString();
  EXPECT_TRUE(forced->force);
  EXPECT_NE(forced->reason.find("the team asked"), std::string::npos);
  EXPECT_EQ(Settled(forced->task_id).state, "succeeded");

  ASSERT_TRUE(catalog_->SetInstanceState(inst.instance_id, "stopped"));
  r.force = false;
  auto stopped = tasks_->Start(r);
  ASSERT_TRUE(stopped) << stopped.error().ToString();
  EXPECT_FALSE(stopped->force);
  EXPECT_EQ(Settled(stopped->task_id).state, "succeeded");
}

TEST_F(RollbackTasksTest, ADamagedChunkFailsTheTaskAndMarksTheVolume) {
  Scribble({30});
  ASSERT_TRUE(testing_util::CorruptStored(repo_.get(), ObjectKind::kChunk,
                                          repo_->IdOf({original_.data() + 30 * kBs, kBs})));
  auto r = Request();
  r.safety_snapshot = false;
  auto t = tasks_->Start(r);
  ASSERT_TRUE(t) << t.error().ToString();
  auto done = Settled(t->task_id);
  EXPECT_EQ(done.state, "failed");
  EXPECT_NE(done.reason.find(snap_), std::string::npos) << done.reason;
  auto v = *catalog_->GetVolume(vol_.volume_id);
  EXPECT_EQ(v.state, "error");
  EXPECT_NE(v.state_message.find(t->task_id), std::string::npos) << v.state_message;
}

TEST_F(RollbackTasksTest, ATaskLeftInProgressIsResumed) {
  Scribble({2, 3, 99});
  ReplaceRootVolumeTaskRecord t;  // as a process killed mid-rollback left it
  t.task_id = NewReplaceRootVolumeTaskId();
  t.account_id = vol_.account_id;
  t.volume_id = vol_.volume_id;
  t.snapshot_id = snap_;
  t.state = "in-progress";
  t.progress = 40;
  t.runner = "dead-process";
  ASSERT_TRUE(catalog_->InsertReplaceRootVolumeTask(t));
  // While it is unfinished, the volume is not snapshotted (its data is half rolled back).
  auto refused = jobs_->Start({{vol_, "mid-rollback", {}, 0, false}});
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kConflict);
  EXPECT_NE(refused.error().message().find(t.task_id), std::string::npos) << refused.error().message();
  auto queued = tasks_->Resume();
  ASSERT_TRUE(queued);
  EXPECT_EQ(*queued, 1u);
  auto done = Settled(t.task_id);
  EXPECT_EQ(done.state, "succeeded") << done.reason;
  EXPECT_EQ(done.bytes_written, 3ull * kBs);
  EXPECT_EQ(*ReadWholeFile(vol_.path), original_);
  EXPECT_TRUE(jobs_->Start({{vol_, "after", {}, 0, false}})) << "the ended task still blocks snapshots";
}

// The counts of a resumed task are of the whole task: what the run before the stop read and
// wrote (as recorded) plus what the resumed run does.
TEST_F(RollbackTasksTest, AResumedTaskCountsWhatItsEarlierRunWrote) {
  Scribble({4, 60});
  ReplaceRootVolumeTaskRecord t;  // as a stop left it: 5 blocks already rewritten, 20 read
  t.task_id = NewReplaceRootVolumeTaskId();
  t.account_id = vol_.account_id;
  t.volume_id = vol_.volume_id;
  t.snapshot_id = snap_;
  t.state = "in-progress";
  t.progress = 20;
  t.bytes_read = 20ull * kBs;
  t.bytes_written = 5ull * kBs;
  t.runner = "dead-process";
  ASSERT_TRUE(catalog_->InsertReplaceRootVolumeTask(t));
  ASSERT_TRUE(tasks_->Resume());
  auto done = Settled(t.task_id);
  EXPECT_EQ(done.state, "succeeded") << done.reason;
  EXPECT_EQ(done.bytes_written, 7ull * kBs);
  EXPECT_EQ(done.bytes_read, (20ull + kBlocks) * kBs);
  EXPECT_EQ(done.blocks_compared, kBlocks);
  EXPECT_EQ(*ReadWholeFile(vol_.path), original_);
}

// A task resumed in-progress whose volume cannot be opened now (a disk mounted meanwhile) may
// have been partly written before the crash: it fails and the volume is marked.
TEST_F(RollbackTasksTest, AResumedTaskThatCannotOpenTheVolumeMarksIt) {
  ReplaceRootVolumeTaskRecord t;
  t.task_id = NewReplaceRootVolumeTaskId();
  t.account_id = vol_.account_id;
  t.volume_id = vol_.volume_id;
  t.snapshot_id = snap_;
  t.state = "in-progress";
  ASSERT_TRUE(catalog_->InsertReplaceRootVolumeTask(t));
  tasks_->open_volume = [](const VolumeRecord& v) -> Result<std::unique_ptr<RewritableVolume>> {
    return Conflict("block device " + v.path + " is in use");
  };
  ASSERT_TRUE(tasks_->Resume());
  auto done = Settled(t.task_id);
  EXPECT_EQ(done.state, "failed");
  EXPECT_NE(done.reason.find("in use"), std::string::npos) << done.reason;
  EXPECT_EQ(catalog_->GetVolume(vol_.volume_id)->state, "error");
}

TEST_F(RollbackTasksTest, RefusalsBeforeAnythingIsWritten) {
  auto r = Request();
  r.snapshot_id = NewSnapshotId();
  EXPECT_EQ(tasks_->Start(r).error().code(), ErrorCode::kNotFound);
  // A volume smaller than the snapshot's.
  ASSERT_EQ(::truncate(vol_.path.c_str(), 10 * kBs), 0);
  ASSERT_TRUE(catalog_->UpdateVolumeSize(vol_.volume_id, 10 * kBs));
  r = Request();
  EXPECT_EQ(tasks_->Start(r).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(catalog_->ListReplaceRootVolumeTasks(std::nullopt)->empty());
}

constexpr char kHostA[] = "host-aaaaaaaaaaaaaaaaa";
constexpr char kHostB[] = "host-bbbbbbbbbbbbbbbbb";

// Waits for snapshot id to leave `pending` and returns its row.
SnapshotRecord SettledSnapshot(Catalog* catalog, const std::string& id) {
  for (int i = 0; i < 1000 && catalog->GetSnapshot(id)->state == SnapshotState::kPending; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return *catalog->GetSnapshot(id);
}

// A rollback asked of host A for a volume host B holds (docs/multi-host.md part 3): A records
// it as it would a local one, with its safety snapshot, both queued for B, and opens nothing;
// B claims the snapshot job and the task and rolls its own file back.
TEST_F(RollbackTasksTest, ARollbackOfAnotherHostsVolumeIsQueuedForItAndRunThere) {
  VolumeRecord on_b = vol_;
  on_b.volume_id = NewVolumeId();
  on_b.path = dir_ + "/on-b.img";
  on_b.host_id = kHostB;
  ASSERT_TRUE(WriteFileAtomic(on_b.path, original_));
  ASSERT_TRUE(catalog_->InsertVolume(on_b));
  catalog_->SetLocalHost(kHostB);  // B snapshots its volume, then it changes
  auto base = jobs_->Start({{on_b, "base", {}, 0, false}});
  ASSERT_TRUE(base) << base.error().ToString();
  ASSERT_EQ(SettledSnapshot(catalog_.get(), base->front().snapshot_id).state, SnapshotState::kCompleted);
  auto data = *ReadWholeFile(on_b.path);
  data[7 * kBs + 1] ^= 0xff;
  ASSERT_TRUE(WriteFileAtomic(on_b.path, data));

  catalog_->SetLocalHost(kHostA);  // the request reaches A
  int opened_on_a = 0;
  tasks_->open_volume = [&](const VolumeRecord&) -> Result<std::unique_ptr<RewritableVolume>> {
    ++opened_on_a;
    return Conflict("host A must not open another host's volume");
  };
  auto r = Request();
  r.volume_id = on_b.volume_id;
  r.snapshot_id = base->front().snapshot_id;
  auto t = tasks_->Start(r);
  ASSERT_TRUE(t) << t.error().ToString();
  EXPECT_EQ(t->state, "pending");
  EXPECT_EQ(t->runner, QueuedRunner(kHostB));
  ASSERT_FALSE(t->safety_snapshot_id.empty());
  EXPECT_EQ(catalog_->GetSnapshot(t->safety_snapshot_id)->runner, QueuedRunner(kHostB));
  // A runs nothing of it: not at once, not by its own claim, not when it resumes.
  auto claimed_by_a = tasks_->ClaimQueued(kHostA);
  ASSERT_TRUE(claimed_by_a);
  EXPECT_TRUE(claimed_by_a->empty());
  EXPECT_EQ(*tasks_->Resume(), 0u);
  tasks_->WaitIdle();
  EXPECT_EQ(opened_on_a, 0);
  EXPECT_EQ(catalog_->GetReplaceRootVolumeTask(t->task_id)->runner, QueuedRunner(kHostB));
  EXPECT_EQ(*ReadWholeFile(on_b.path), data);
  // A second request for the volume, anywhere, is refused while this one is unfinished.
  EXPECT_EQ(tasks_->Start(r).error().code(), ErrorCode::kConflict);

  // B: its snapvold claims the safety snapshot's job, then the task, and runs both.
  catalog_->SetLocalHost(kHostB);
  SnapshotJobs jobs_b(repo_.get(), catalog_.get(), &pool_, "runner-b", 1);
  RollbackTasks tasks_b(repo_.get(), catalog_.get(), &pool_, &jobs_b, "runner-b");
  auto job = catalog_->ClaimSnapshotJob(kHostB, "runner-b", 1);
  ASSERT_TRUE(job && job->has_value());
  ASSERT_TRUE(jobs_b.RunQueued(**job));
  auto claimed = tasks_b.ClaimQueued(kHostB);
  ASSERT_TRUE(claimed) << claimed.error().ToString();
  ASSERT_EQ(claimed->size(), 1u);
  EXPECT_EQ(claimed->front().task_id, t->task_id);
  EXPECT_EQ(claimed->front().runner, "runner-b");
  tasks_b.WaitIdle();
  auto done = *catalog_->GetReplaceRootVolumeTask(t->task_id);
  EXPECT_EQ(done.state, "succeeded") << done.reason;
  EXPECT_EQ(done.runner, "runner-b");
  EXPECT_EQ(done.bytes_written, uint64_t{kBs});
  EXPECT_EQ(*ReadWholeFile(on_b.path), original_);
  EXPECT_EQ(SettledSnapshot(catalog_.get(), t->safety_snapshot_id).state, SnapshotState::kCompleted);
  EXPECT_EQ(opened_on_a, 0);
  tasks_b.Shutdown();
  jobs_b.Shutdown();
}

// A task that reaches a host whose catalog says the volume lives elsewhere (it moved after the
// task was queued) fails with the reason and writes nothing.
TEST_F(RollbackTasksTest, ATaskForAVolumeThatLivesElsewhereFailsAndWritesNothing) {
  Scribble({3});
  const auto before = *ReadWholeFile(vol_.path);
  VolumeRecord moved = *catalog_->GetVolume(vol_.volume_id);
  ASSERT_TRUE(catalog_->DeleteVolume(moved.volume_id));
  moved.host_id = kHostB;
  ASSERT_TRUE(catalog_->InsertVolume(moved));
  catalog_->SetLocalHost(kHostA);
  ReplaceRootVolumeTaskRecord t;
  t.task_id = NewReplaceRootVolumeTaskId();
  t.account_id = vol_.account_id;
  t.volume_id = vol_.volume_id;
  t.snapshot_id = snap_;
  t.runner = QueuedRunner(kHostA);
  ASSERT_TRUE(catalog_->InsertReplaceRootVolumeTask(t));
  auto claimed = tasks_->ClaimQueued(kHostA);
  ASSERT_TRUE(claimed && claimed->size() == 1u);
  auto done = Settled(t.task_id);
  EXPECT_EQ(done.state, "failed");
  EXPECT_NE(done.reason.find(std::string("lives on host ") + kHostB), std::string::npos) << done.reason;
  EXPECT_EQ(*ReadWholeFile(vol_.path), before);
  EXPECT_NE(catalog_->GetVolume(vol_.volume_id)->state, "error");  // untouched, not marked
}

// Another live runner's unfinished task of the volume refuses a new rollback of it, and Resume
// leaves that task to its runner.
TEST_F(RollbackTasksTest, ALiveRunnersTaskRefusesANewOneAndIsNotResumedHere) {
  ReplaceRootVolumeTaskRecord t;
  t.task_id = NewReplaceRootVolumeTaskId();
  t.account_id = vol_.account_id;
  t.volume_id = vol_.volume_id;
  t.snapshot_id = snap_;
  t.state = "in-progress";
  t.runner = std::string("pid:9@boot@") + kHostB;
  ASSERT_TRUE(catalog_->InsertReplaceRootVolumeTask(t));
  tasks_->runner_alive = [&](const std::string& runner) { return runner == t.runner; };
  auto r = Request();
  r.safety_snapshot = false;  // else the snapshot jobs' own rule (no snapshot mid-rollback) refuses first
  auto refused = tasks_->Start(r);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code(), ErrorCode::kConflict);
  EXPECT_NE(refused.error().message().find(t.task_id), std::string::npos) << refused.error().message();
  EXPECT_EQ(*tasks_->Resume(), 0u);
  tasks_->WaitIdle();
  EXPECT_EQ(catalog_->GetReplaceRootVolumeTask(t.task_id)->state, "in-progress");
  EXPECT_EQ(catalog_->GetReplaceRootVolumeTask(t.task_id)->runner, t.runner);
}

// A host that starts leaves another host's interrupted task (its runner dead, its volume on that
// host) to that host, which resumes it; it neither runs nor fails it.
TEST_F(RollbackTasksTest, AnotherHostsInterruptedTaskIsLeftToIt) {
  VolumeRecord on_b = vol_;
  on_b.volume_id = NewVolumeId();
  on_b.host_id = kHostB;
  ASSERT_TRUE(catalog_->InsertVolume(on_b));
  catalog_->SetLocalHost(kHostA);
  ReplaceRootVolumeTaskRecord t;
  t.task_id = NewReplaceRootVolumeTaskId();
  t.account_id = on_b.account_id;
  t.volume_id = on_b.volume_id;
  t.snapshot_id = snap_;
  t.state = "in-progress";
  t.runner = std::string("pid:9@boot@") + kHostB;
  ASSERT_TRUE(catalog_->InsertReplaceRootVolumeTask(t));
  tasks_->runner_alive = [](const std::string&) { return false; };
  EXPECT_EQ(*tasks_->Resume(), 0u);
  tasks_->WaitIdle();
  auto now = *catalog_->GetReplaceRootVolumeTask(t.task_id);
  EXPECT_EQ(now.state, "in-progress") << now.reason;
  EXPECT_EQ(now.runner, t.runner);
}

}  // namespace
}  // namespace snapvol
