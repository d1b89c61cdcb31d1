// The host sweep (cli/host_sweep.h; docs/multi-host.md part 5): on the holder of the maintenance
// lease, the pending snapshots of a host that is not up — running ("pid:N@BOOT@HOST") or queued
// for it ("queued@HOST", with its queue row) — end `error` with a reason naming the host and
// since when; the work of a host that is up, this host's own and handed-over snapshots are left
// alone; a host that does not hold the lease, or holds a stale generation, ends nothing. Fake
// clock, a data dir on SQLite (the catalog's own half runs on both backends in
// catalog_snapshot_queue_test).
#include "cli/host_sweep.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <optional>
#include <string>

#include "cli/data_dir.h"
#include "core/ids.h"

namespace snapvol {
namespace {

constexpr int64_t kT0 = 1'700'000'000'000;
constexpr int64_t kTimeout = 30'000;
constexpr char kB[] = "host-bbbbbbbbbbbbbbbbb";  // dies
constexpr char kC[] = "host-ccccccccccccccccc";  // stays up

// What snapvold's LeaseKeeper says, set by the test.
class FakeLease : public lifecycle::HeldLease {
 public:
  std::optional<Held> held;
  std::optional<Held> Current() override { return held; }
  std::string HolderText() override { return "test"; }
};

class HostSweepTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "snapvol_sweep.XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    ASSERT_TRUE(DataDir::Init(root_ + "/d", {}));
    auto d = DataDir::Open(root_ + "/d");
    ASSERT_TRUE(d) << d.error().ToString();
    dir_ = std::move(*d);
    me_ = dir_->host_id();
    ASSERT_TRUE(cat()->UpsertHost({me_, "rack-a", "http://a", "unix:/a", "0", kT0, kT0}));
    ASSERT_TRUE(cat()->UpsertHost({kB, "rack-b", "http://b", "unix:/b", "0", kT0, kT0}));
    ASSERT_TRUE(cat()->UpsertHost({kC, "rack-c", "http://c", "unix:/c", "0", kT0, kT0}));
    auto taken = cat()->AcquireClusterLease(lifecycle::kMaintenanceLease, me_, kT0, 10 * 60'000);
    ASSERT_TRUE(taken);
    lease_.held = lifecycle::HeldLease::Held{me_, taken->generation};
  }
  void TearDown() override {
    sweep_.reset();
    dir_.reset();
    std::filesystem::remove_all(root_);
  }
  Catalog* cat() { return dir_->catalog(); }
  HostSweep& Sweep() {
    if (!sweep_) {
      sweep_ = std::make_unique<HostSweep>(cat(), dir_->repo(), &clock_,
                                           HostSweep::Options{me_, kTimeout, 1000, &lease_,
                                                              [this](const SweptHost& h) { reported_.push_back(h); },
                                                              [this](const Error& e) { failures_.push_back(e); }});
    }
    return *sweep_;
  }
  std::string Pending(const std::string& runner) {
    SnapshotRecord s;
    s.snapshot_id = NewSnapshotId();
    s.volume_id = NewVolumeId();
    s.account_id = kDefaultAccountId;
    s.state = SnapshotState::kPending;
    s.progress = "10%";
    s.start_time_ms = kT0;
    s.block_size = 4096;
    s.volume_size_bytes = 4096;
    s.runner = runner;
    EXPECT_TRUE(cat()->InsertSnapshot(s));
    return s.snapshot_id;
  }
  std::string Queued(const std::string& host) {
    std::string id = Pending(QueuedRunner(host));
    EXPECT_TRUE(cat()->EnqueueSnapshotJob({id, host, "", {id}, false, kT0, "", 0}));
    return id;
  }
  SnapshotRecord Get(const std::string& id) { return *cat()->GetSnapshot(id); }
  // Every host but B keeps beating.
  void BeatAllBut(const std::string& dead) {
    for (const std::string& h : {me_, std::string(kB), std::string(kC)})
      if (h != dead) ASSERT_TRUE(cat()->Heartbeat(h, clock_.NowMillis()));
  }

  std::string root_, me_;
  std::unique_ptr<DataDir> dir_;
  FakeClock clock_{kT0};
  FakeLease lease_;
  std::unique_ptr<HostSweep> sweep_;
  std::vector<SweptHost> reported_;
  std::vector<Error> failures_;
};

TEST_F(HostSweepTest, ADeadHostsRunningAndQueuedSnapshotsEndWithTheReason) {
  const std::string b_running = Pending(std::string("pid:77@boot-b@") + kB);
  const std::string b_queued = Queued(kB);
  const std::string c_running = Pending(std::string("pid:88@boot-c@") + kC);
  const std::string c_queued = Queued(kC);
  const std::string mine = Pending("pid:99999999@boot-gone@" + me_);  // this host's: its start's to settle
  const std::string handed = Pending("");                              // handed over for adoption

  // While B's heartbeat is fresh (exactly the timeout old included), nothing is ended.
  clock_.Advance(kTimeout);
  BeatAllBut(kB);
  auto none = Sweep().Tick();
  ASSERT_TRUE(none) << none.error().ToString();
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(Get(b_running).state, SnapshotState::kPending);

  clock_.Advance(1);
  BeatAllBut(kB);
  auto swept = Sweep().Tick();
  ASSERT_TRUE(swept) << swept.error().ToString();
  ASSERT_EQ(swept->size(), 1u);
  const SweptHost& h = swept->front();
  EXPECT_EQ(h.host_id, kB);
  EXPECT_EQ(h.name, "rack-b");
  EXPECT_EQ(h.state, "unreachable");
  EXPECT_EQ(h.ended.size(), 2u);
  EXPECT_TRUE(h.completed.empty());
  const std::string reason = "host rack-b (" + std::string(kB) + ") unreachable since " + FormatIso8601(kT0) +
                             " (its last heartbeat)";
  EXPECT_EQ(h.reason, reason);
  for (const std::string& id : {b_running, b_queued}) {
    EXPECT_EQ(Get(id).state, SnapshotState::kError) << id;
    EXPECT_EQ(Get(id).state_message, reason) << id;
  }
  // B's queue row went with its snapshot; C's job stays queued for C.
  auto jobs = cat()->ListSnapshotJobs();
  ASSERT_TRUE(jobs);
  ASSERT_EQ(jobs->size(), 1u);
  EXPECT_EQ((*jobs)[0].host_id, kC);
  for (const std::string& id : {c_running, c_queued, mine, handed})
    EXPECT_EQ(Get(id).state, SnapshotState::kPending) << id;
  ASSERT_EQ(reported_.size(), 1u);  // said once per host swept
  EXPECT_EQ(reported_[0].host_id, kB);
  EXPECT_TRUE(failures_.empty());

  // A job queued for B while it is dead: ended by the next sweep.
  const std::string late = Queued(kB);
  auto next = Sweep().Tick();
  ASSERT_TRUE(next && next->size() == 1u);
  EXPECT_EQ(next->front().ended, std::vector<std::string>{late});
  EXPECT_EQ(Get(late).state, SnapshotState::kError);
  // Nothing left: a sweep with nothing to do reports nothing.
  auto idle = Sweep().Tick();
  ASSERT_TRUE(idle);
  EXPECT_TRUE(idle->empty());
  EXPECT_EQ(reported_.size(), 2u);
}

// A dead host's writer: a snapshot whose manifest root it published before it died is whole
// (completed, its statistics from the manifest); one it did not finish ends `error`. The store
// lease of each goes, so GC may reclaim what the unfinished one wrote.
TEST_F(HostSweepTest, APublishedManifestCompletesAndEveryDeadWritersLeaseGoes) {
  const std::string runner = std::string("pid:77@boot-b@") + kB;
  const std::string whole = Pending(runner), torn = Pending(runner);
  ManifestMeta meta;
  meta.snapshot_id = whole;
  meta.volume_id = Get(whole).volume_id;
  meta.volume_size = 4096;
  meta.block_size = 4096;
  meta.start_time_ms = kT0;
  meta.completed_time_ms = kT0 + 500;
  meta.block_count = 1;  // one hole: the root page is all zero
  meta.stored_bytes = 123;
  ASSERT_TRUE(dir_->repo()->PutManifest(meta));
  for (const std::string& id : {whole, torn})
    ASSERT_TRUE(dir_->repo()->PutLease({id, "", runner, kT0, kT0}));
  clock_.Advance(kTimeout + 1);
  auto swept = Sweep().Tick();
  ASSERT_TRUE(swept) << swept.error().ToString();
  ASSERT_EQ(swept->size(), 1u);
  EXPECT_EQ(swept->front().completed, std::vector<std::string>{whole});
  EXPECT_EQ(swept->front().ended, std::vector<std::string>{torn});
  EXPECT_EQ(Get(whole).state, SnapshotState::kCompleted);
  EXPECT_EQ(Get(whole).completed_time_ms, kT0 + 500);
  EXPECT_EQ(Get(torn).state, SnapshotState::kError);
  auto leases = dir_->repo()->ListLeases();
  ASSERT_TRUE(leases) << leases.error().ToString();
  EXPECT_TRUE(leases->empty());
}

// A cleanly stopped host (a restart, an upgrade) keeps its queued jobs for the host timeout after
// each request, then they end like a dead host's, with a reason that says it stopped
// (docs/multi-host.md part 5 says why). A snapshot its process was running when it stopped
// cannot be running any more: ended at once.
TEST_F(HostSweepTest, AStoppedHostsQueueWaitsTheTimeoutThenEnds) {
  const std::string id = Queued(kB);  // requested at kT0
  const std::string running = Pending(std::string("pid:77@boot-b@") + kB);
  ASSERT_TRUE(cat()->Heartbeat(kB, 0));
  clock_.Advance(kTimeout);
  BeatAllBut(kB);
  auto first = Sweep().Tick();
  ASSERT_TRUE(first && first->size() == 1u);
  EXPECT_EQ(first->front().ended, std::vector<std::string>{running});
  EXPECT_EQ(Get(id).state, SnapshotState::kPending);
  EXPECT_EQ(cat()->ListSnapshotJobs()->size(), 1u);
  clock_.Advance(1);
  auto swept = Sweep().Tick();
  ASSERT_TRUE(swept && swept->size() == 1u);
  EXPECT_EQ(swept->front().state, "stopped");
  EXPECT_EQ(Get(id).state, SnapshotState::kError);
  EXPECT_EQ(Get(id).state_message,
            "host rack-b (" + std::string(kB) + ") stopped and was not back within 30 s of this snapshot's request");
  EXPECT_TRUE(cat()->ListSnapshotJobs()->empty());
}

TEST_F(HostSweepTest, OnlyTheHolderSweepsAndAStaleOneEndsNothing) {
  const std::string id = Queued(kB);
  clock_.Advance(kTimeout + 1);
  // This host does not hold the lease: nothing.
  lease_.held.reset();
  auto idle = Sweep().Tick();
  ASSERT_TRUE(idle);
  EXPECT_TRUE(idle->empty());
  EXPECT_EQ(Get(id).state, SnapshotState::kPending);
  // Its keeper still says "held", but another host took the lease meanwhile (generation + 1):
  // the catalog's check refuses, nothing is ended, the failure is reported.
  lease_.held = lifecycle::HeldLease::Held{me_, 1};
  ASSERT_TRUE(cat()->ReleaseClusterLease(lifecycle::kMaintenanceLease, me_));
  ASSERT_TRUE(cat()->AcquireClusterLease(lifecycle::kMaintenanceLease, kC, clock_.NowMillis(), 60'000));
  auto stale = Sweep().Tick();
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code(), ErrorCode::kConflict);
  EXPECT_EQ(Get(id).state, SnapshotState::kPending);
  EXPECT_EQ(cat()->ListSnapshotJobs()->size(), 1u);
  EXPECT_EQ(failures_.size(), 1u);
  EXPECT_TRUE(reported_.empty());
}

TEST(AbandonedReason, NamesTheHostAndSinceWhen) {
  EXPECT_EQ(AbandonedReason(kB, "rack-b", "unreachable", kT0, kTimeout),
            "host rack-b (" + std::string(kB) + ") unreachable since " + FormatIso8601(kT0) + " (its last heartbeat)");
  EXPECT_EQ(AbandonedReason(kB, "", "unregistered", 0, kTimeout),
            "host " + std::string(kB) + " is not registered: no snapvold runs its work");
}

// The same sweep ends the host's other waiting work: its pending rollback tasks (queued for it,
// or claimed by its dead process) `failed`, and its `creating` volumes (queued, or claimed and
// being made) `error`, with the reason. A task in progress (it wrote part of its volume), an up
// host's work and this host's own stay.
TEST_F(HostSweepTest, ADeadHostsPendingRollbackTasksAndCreatingVolumesEnd) {
  auto task = [&](const std::string& runner, const std::string& state) {
    ReplaceRootVolumeTaskRecord t;
    t.task_id = NewReplaceRootVolumeTaskId();
    t.account_id = kDefaultAccountId;
    t.volume_id = NewVolumeId();
    t.snapshot_id = NewSnapshotId();
    t.start_ms = kT0;
    t.runner = runner;
    t.state = state;
    EXPECT_TRUE(cat()->InsertReplaceRootVolumeTask(t));
    return t.task_id;
  };
  auto creating = [&](const std::string& host) {
    VolumeRecord v;
    v.volume_id = NewVolumeId();
    v.account_id = kDefaultAccountId;
    v.size_bytes = 1 << 20;
    v.block_size = 4096;
    v.created_ms = kT0;
    v.state = "creating";
    v.managed = true;
    v.host_id = host;
    EXPECT_TRUE(cat()->InsertRoutedVolume(v));
    return v.volume_id;
  };
  const std::string b_runner = std::string("pid:77@boot-b@") + kB;
  const std::string queued_task = task(QueuedRunner(kB), "pending"), claimed_task = task(b_runner, "pending");
  const std::string running_task = task(b_runner, "in-progress"), c_task = task(QueuedRunner(kC), "pending");
  const std::string queued_vol = creating(kB), claimed_vol = creating(kB), c_vol = creating(kC);
  ASSERT_TRUE(cat()->ClaimVolumeCreation(kB, b_runner, kT0)->has_value());  // queued_vol, the older
  clock_.Advance(kTimeout);
  BeatAllBut(kB);
  auto none = Sweep().Tick();
  ASSERT_TRUE(none) << none.error().ToString();
  EXPECT_TRUE(none->empty());

  clock_.Advance(1);
  BeatAllBut(kB);
  auto swept = Sweep().Tick();
  ASSERT_TRUE(swept) << swept.error().ToString();
  ASSERT_EQ(swept->size(), 1u);
  const SweptHost& h = swept->front();
  EXPECT_EQ(h.host_id, kB);
  EXPECT_EQ(h.failed_tasks.size(), 2u);
  EXPECT_EQ(h.ended_volumes.size(), 2u);
  const std::string reason = "host rack-b (" + std::string(kB) + ") unreachable since " + FormatIso8601(kT0) +
                             " (its last heartbeat)";
  for (const std::string& id : {queued_task, claimed_task}) {
    auto t = cat()->GetReplaceRootVolumeTask(id);
    EXPECT_EQ(t->state, "failed") << id;
    EXPECT_EQ(t->reason, reason) << id;
  }
  for (const std::string& id : {queued_vol, claimed_vol}) {
    EXPECT_EQ(cat()->GetVolume(id)->state, "error") << id;
    EXPECT_EQ(cat()->GetVolume(id)->state_message, reason) << id;
  }
  EXPECT_EQ(cat()->GetReplaceRootVolumeTask(running_task)->state, "in-progress");
  EXPECT_EQ(cat()->GetReplaceRootVolumeTask(c_task)->state, "pending");
  EXPECT_EQ(cat()->GetVolume(c_vol)->state, "creating");
  auto left = cat()->ListVolumeCreations();
  ASSERT_TRUE(left);
  ASSERT_EQ(left->size(), 1u);
  EXPECT_EQ((*left)[0].volume_id, c_vol);
}

TEST_F(HostSweepTest, AStoppedHostsTasksAndCreationsWaitTheTimeout) {
  ReplaceRootVolumeTaskRecord t;
  t.task_id = NewReplaceRootVolumeTaskId();
  t.account_id = kDefaultAccountId;
  t.volume_id = NewVolumeId();
  t.snapshot_id = NewSnapshotId();
  t.start_ms = kT0;
  t.runner = QueuedRunner(kB);
  ASSERT_TRUE(cat()->InsertReplaceRootVolumeTask(t));
  VolumeRecord v;
  v.volume_id = NewVolumeId();
  v.account_id = kDefaultAccountId;
  v.size_bytes = 1 << 20;
  v.block_size = 4096;
  v.created_ms = kT0;
  v.state = "creating";
  v.host_id = kB;
  ASSERT_TRUE(cat()->InsertRoutedVolume(v));
  ASSERT_TRUE(cat()->Heartbeat(kB, 0));
  clock_.Advance(kTimeout);
  BeatAllBut(kB);
  auto first = Sweep().Tick();
  ASSERT_TRUE(first) << first.error().ToString();
  EXPECT_TRUE(first->empty());
  EXPECT_EQ(cat()->GetVolume(v.volume_id)->state, "creating");
  clock_.Advance(1);
  auto swept = Sweep().Tick();
  ASSERT_TRUE(swept && swept->size() == 1u);
  EXPECT_EQ(cat()->GetReplaceRootVolumeTask(t.task_id)->state, "failed");
  EXPECT_EQ(cat()->GetReplaceRootVolumeTask(t.task_id)->reason,
            "host rack-b (" + std::string(kB) + ") stopped and was not back within 30 s of this task's request");
  EXPECT_EQ(cat()->GetVolume(v.volume_id)->state_message,
            "host rack-b (" + std::string(kB) + ") stopped and was not back within 30 s of this volume's request");
}

}  // namespace
}  // namespace snapvol
