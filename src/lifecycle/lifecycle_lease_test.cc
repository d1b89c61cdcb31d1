// The lifecycle scheduler once per cluster (docs/multi-host.md part 4): only the holder of the
// cluster lease `lifecycle` runs policies; a holder whose generation went stale starts no
// snapshot and deletes nothing, even while its keeper still says "held"; the new holder carries
// a half-done run on without taking any volume twice. Two hosts are two Catalog objects on one
// database (SQLite file or PostgreSQL), each with its own SnapshotJobs and scheduler.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include "catalog/catalog_test_db.h"
#include "core/file_util.h"
#include "core/ids.h"
#include "lifecycle/scheduler.h"
#include "store/memory_store.h"

namespace snapvol::lifecycle {
namespace {

constexpr int64_t kDay = 24LL * 60 * 60 * 1000;
constexpr int64_t kT0 = 1'795'608'000'000;  // 2026-11-25 12:00 UTC
constexpr int64_t kDay1 = 1'795'658'400'000 + 500;  // 2026-11-26 02:00:00.5 UTC
constexpr char kA[] = "host-aaaaaaaaaaaaaaaaa";
constexpr char kB[] = "host-bbbbbbbbbbbbbbbbb";
constexpr char kX[] = "host-xxxxxxxxxxxxxxxxx";  // a third host that never claims its queue here

// What a LeaseKeeper would say, set by the test: it may say "held" after the catalog moved on.
class FakeLease : public HeldLease {
 public:
  std::optional<Held> held;
  std::optional<Held> Current() override { return held; }
  std::string HolderText() override { return "as the test says"; }
};

// One host: its catalog connection (local host set), its jobs, its scheduler under its lease.
struct Host {
  std::unique_ptr<Catalog> catalog;
  std::unique_ptr<SnapshotJobs> jobs;
  FakeLease lease;
  std::unique_ptr<LifecycleScheduler> scheduler;
};

class LifecycleLeaseTest : public testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(At0(), kT0);
    dir_ = testing::TempDir() + "/lifecycle-lease-" + NewVolumeId();
    ASSERT_TRUE(MakeDirs(dir_));
    catalog_db_ = std::make_unique<catalog_testing::TestCatalogDb>(dir_);
    RepositoryOptions ro;
    ro.block_size = 64 * 1024;
    repo_ = std::move(*Repository::Create(std::make_unique<MemoryStore>(), ro));
    for (auto* h : {&a_, &b_}) {
      auto c = Catalog::Open(catalog_db_->location(), &clock_);
      ASSERT_TRUE(c) << c.error().ToString();
      h->catalog = std::move(*c);
    }
    a_.catalog->SetLocalHost(kA);
    b_.catalog->SetLocalHost(kB);
    team_ = *a_.catalog->CreateAccount("team-1");
    SchedulerOptions o;
    o.default_retention = 1;
    for (auto* h : {&a_, &b_}) {
      const std::string runner = std::string("pid:1@boot@") + (h == &a_ ? kA : kB);
      h->jobs = std::make_unique<SnapshotJobs>(repo_.get(), h->catalog.get(), &pool_, runner, 2, &clock_);
      o.lease = &h->lease;
      h->scheduler = std::make_unique<LifecycleScheduler>(h->catalog.get(), repo_.get(), h->jobs.get(), &clock_, o);
    }
  }
  void TearDown() override {
    for (auto* h : {&a_, &b_}) {
      h->scheduler.reset();
      h->jobs.reset();
    }
    std::filesystem::remove_all(dir_);
  }
  static int64_t At0() {
    using namespace std::chrono;
    return sys_days{year{2026} / 11 / 25}.time_since_epoch().count() * kDay + 12 * 3'600'000LL;
  }

  Catalog& cat() { return *a_.catalog; }

  VolumeRecord MakeVolume(const std::string& host) {
    VolumeRecord v;
    v.volume_id = NewVolumeId();
    v.account_id = team_.account_id;
    v.name = "v";
    v.path = dir_ + "/" + v.volume_id + ".img";
    std::string data(200000, 'v');
    EXPECT_TRUE(WriteFileAtomic(v.path, AsBytes(data)));
    v.size_bytes = data.size();
    v.block_size = 64 * 1024;
    v.created_ms = clock_.NowMillis();
    v.host_id = host;
    EXPECT_TRUE(cat().InsertVolume(v));
    return v;
  }

  // A takes the lease in the catalog (generation 1) and its keeper says so.
  void AHolds() {
    auto l = cat().AcquireClusterLease(kLifecycleLease, kA, clock_.NowMillis(), 30 * kDay);
    ASSERT_TRUE(l) << l.error().ToString();
    ASSERT_EQ(l->generation, 1);
    a_.lease.held = HeldLease::Held{kA, 1};
  }
  // B takes it over (generation 2); A's keeper has not noticed and still says "held".
  void BTakesOver() {
    ASSERT_TRUE(cat().ReleaseClusterLease(kLifecycleLease, kA));
    auto l = cat().AcquireClusterLease(kLifecycleLease, kB, clock_.NowMillis(), 30 * kDay);
    ASSERT_TRUE(l) << l.error().ToString();
    ASSERT_EQ(l->generation, 2);
    b_.lease.held = HeldLease::Held{kB, 2};
  }

  std::string DefaultPolicyId() {
    auto policies = cat().ListLifecyclePolicies(team_.account_id);  // named: the loop reads it
    for (const auto& p : *policies)
      if (IsDefaultPolicy(p)) return p.policy_id;
    return "";
  }
  // The default policy's snapshots of each volume.
  std::map<std::string, std::vector<SnapshotRecord>> ByVolume() {
    std::map<std::string, std::vector<SnapshotRecord>> out;
    auto snaps = cat().ListSnapshots({.tag = Tag{kPolicyIdTag, DefaultPolicyId()}});
    for (auto& s : *snaps) out[s.volume_id].push_back(s);
    return out;
  }
  void WaitUntilNoneRunsHere() {
    for (int i = 0; i < 2000; ++i) {
      bool pending = false;
      auto pending_rows = cat().ListSnapshots({.state = SnapshotState::kPending});
      for (const auto& s : *pending_rows)
        if (s.runner.rfind("queued@", 0) != 0) pending = true;
      if (!pending) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    FAIL() << "snapshots did not finish";
  }
  void TickUntilIdle(Host& h) {
    for (int i = 0; i < 2000; ++i) {
      ASSERT_TRUE(h.scheduler->Tick());
      if (cat().ListRunningLifecycleRuns()->empty()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    FAIL() << "runs did not finish";
  }
  std::vector<LifecycleRunRecord> Runs() { return *cat().ListLifecycleRuns(DefaultPolicyId(), 100); }

  std::string dir_;
  FakeClock clock_{kT0};
  std::unique_ptr<catalog_testing::TestCatalogDb> catalog_db_;  // outlives the catalogs
  std::unique_ptr<Repository> repo_;
  ThreadPool pool_{2};
  Host a_, b_;
  AccountRecord team_;
};

// A host whose keeper says it does not hold the lease does nothing at all, not even give an
// account its default policy; the holder does everything and records itself on the run.
TEST_F(LifecycleLeaseTest, OnlyTheHolderRunsPoliciesAndTheRunRecordsItsGeneration) {
  VolumeRecord v = MakeVolume(kA);
  ASSERT_TRUE(a_.scheduler->Tick());
  clock_.Set(kDay1);
  ASSERT_TRUE(a_.scheduler->Tick());
  ASSERT_TRUE(b_.scheduler->Tick());
  EXPECT_EQ(DefaultPolicyId(), "");
  EXPECT_TRUE(cat().ListLifecycleRuns(std::nullopt, 100)->empty());
  EXPECT_TRUE(cat().ListSnapshots({})->empty());

  AHolds();
  ASSERT_TRUE(a_.scheduler->Tick());  // the default policy; its first 02:00 is tomorrow's
  ASSERT_NE(DefaultPolicyId(), "");
  clock_.Set(kDay1 + kDay);
  TickUntilIdle(a_);
  auto runs = Runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].state, "succeeded") << runs[0].message;
  EXPECT_EQ(runs[0].host_id, kA);
  EXPECT_EQ(runs[0].lease_generation, 1);
  auto snaps = ByVolume();
  ASSERT_EQ(snaps[v.volume_id].size(), 1u);
  EXPECT_EQ(snaps[v.volume_id][0].state, SnapshotState::kCompleted);
}

// A holder whose generation went stale (its keeper still says "held") starts no snapshot of a
// run it began, and the new holder takes the run over, one snapshot per volume.
TEST_F(LifecycleLeaseTest, AStaleGenerationStartsNoSnapshotAndTheNewHolderTakesTheRun) {
  VolumeRecord v1 = MakeVolume(kB), v2 = MakeVolume(kB);  // B's: the new holder takes them itself
  AHolds();
  ASSERT_TRUE(a_.scheduler->Tick());
  BTakesOver();
  clock_.Set(kDay1);
  ASSERT_TRUE(a_.scheduler->Tick());
  WaitUntilNoneRunsHere();
  EXPECT_TRUE(cat().ListSnapshots({})->empty()) << "a stale holder started snapshots";
  auto runs = Runs();
  ASSERT_EQ(runs.size(), 1u);  // the run row itself is keyed: made once, by whoever comes first
  EXPECT_EQ(runs[0].state, "running");

  TickUntilIdle(b_);
  runs = Runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].state, "succeeded") << runs[0].message;
  EXPECT_EQ(runs[0].created, 2);
  EXPECT_EQ(runs[0].host_id, kB);
  EXPECT_EQ(runs[0].lease_generation, 2);
  EXPECT_NE(runs[0].message.find("carried on by " + std::string(kB)), std::string::npos) << runs[0].message;
  auto snaps = ByVolume();
  EXPECT_EQ(snaps.size(), 2u);
  for (const auto& v : {v1, v2}) {
    ASSERT_EQ(snaps[v.volume_id].size(), 1u) << v.volume_id;
    EXPECT_EQ(snaps[v.volume_id][0].state, SnapshotState::kCompleted);
  }
  // The old holder, ticking again, adds nothing and cannot rewrite the run.
  ASSERT_TRUE(a_.scheduler->Tick());
  WaitUntilNoneRunsHere();
  EXPECT_EQ(cat().ListSnapshots({})->size(), 2u);
  EXPECT_EQ(Runs()[0].host_id, kB);
}

// Retention is fenced too: a stale holder that finds the run's snapshots all done deletes
// nothing and leaves the run running; the new holder applies retention once.
TEST_F(LifecycleLeaseTest, AStaleGenerationDeletesNothingAndTheNewHolderAppliesRetention) {
  VolumeRecord v = MakeVolume(kA);
  AHolds();
  ASSERT_TRUE(a_.scheduler->Tick());
  clock_.Set(kDay1);
  TickUntilIdle(a_);  // day 1: one snapshot, nothing to delete
  ASSERT_EQ(ByVolume()[v.volume_id].size(), 1u);
  const std::string first = ByVolume()[v.volume_id][0].snapshot_id;

  clock_.Set(kDay1 + kDay);
  ASSERT_TRUE(a_.scheduler->Tick());  // day 2: its snapshot starts
  WaitUntilNoneRunsHere();
  ASSERT_EQ(ByVolume()[v.volume_id].size(), 2u);
  BTakesOver();
  ASSERT_TRUE(a_.scheduler->Tick());  // all settled: retention would delete day 1's now
  auto kept = cat().GetSnapshot(first);
  ASSERT_TRUE(kept) << "a stale holder deleted " << first << ": " << kept.error().ToString();
  EXPECT_EQ(Runs()[0].state, "running");
  EXPECT_EQ(Runs()[0].deleted, 0);

  TickUntilIdle(b_);
  auto runs = Runs();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].state, "succeeded") << runs[0].message;
  EXPECT_EQ(runs[0].deleted, 1);
  EXPECT_EQ(runs[0].created, 1);
  EXPECT_EQ(runs[0].host_id, kB);
  EXPECT_EQ(cat().GetSnapshot(first).error().code(), ErrorCode::kNotFound);
  ASSERT_EQ(ByVolume()[v.volume_id].size(), 1u);
}

// A half-done run: the old holder started some volumes (one ran here, one was queued for a
// third host that has not claimed it yet) and then lost the lease; a volume added meanwhile
// has none. The new holder starts only that one, waits for the queued one, and the run ends
// with exactly one snapshot per volume.
TEST_F(LifecycleLeaseTest, TheNewHolderFinishesAHalfDoneRunWithoutDuplicates) {
  VolumeRecord here = MakeVolume(kA), queued = MakeVolume(kX);
  AHolds();
  ASSERT_TRUE(a_.scheduler->Tick());
  clock_.Set(kDay1);
  ASSERT_TRUE(a_.scheduler->Tick());
  WaitUntilNoneRunsHere();
  auto before = ByVolume();
  ASSERT_EQ(before[here.volume_id].size(), 1u);
  ASSERT_EQ(before[queued.volume_id].size(), 1u);
  EXPECT_EQ(before[queued.volume_id][0].runner, std::string("queued@") + kX);
  EXPECT_EQ(before[queued.volume_id][0].state, SnapshotState::kPending);

  BTakesOver();
  VolumeRecord added = MakeVolume(kB);
  ASSERT_TRUE(a_.scheduler->Tick());  // stale: starts nothing for the new volume
  WaitUntilNoneRunsHere();
  EXPECT_EQ(ByVolume().count(added.volume_id), 0u);

  ASSERT_TRUE(b_.scheduler->Tick());
  WaitUntilNoneRunsHere();
  ASSERT_TRUE(b_.scheduler->Tick());
  auto mid = ByVolume();
  EXPECT_EQ(mid[here.volume_id].size(), 1u);
  EXPECT_EQ(mid[queued.volume_id].size(), 1u) << "the queued snapshot was taken again";
  ASSERT_EQ(mid[added.volume_id].size(), 1u);
  EXPECT_EQ(mid[added.volume_id][0].state, SnapshotState::kCompleted);
  EXPECT_EQ(Runs()[0].state, "running");  // waits for host X

  // Host X runs its job (stood in for here: its row completes).
  ASSERT_TRUE(cat().MarkCompleted(mid[queued.volume_id][0].snapshot_id, clock_.NowMillis(), 0, 0, 4));
  TickUntilIdle(b_);
  auto runs = Runs();
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].state, "succeeded") << runs[0].message;
  EXPECT_EQ(runs[0].created, 3);
  EXPECT_EQ(runs[0].failed, 0);
  auto after = ByVolume();
  EXPECT_EQ(after.size(), 3u);
  for (const auto& v : {here, queued, added}) EXPECT_EQ(after[v.volume_id].size(), 1u) << v.volume_id;
}

}  // namespace
}  // namespace snapvol::lifecycle
