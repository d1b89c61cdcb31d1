// LeaseKeeper on a fake clock (docs/multi-host.md part 4): takes the cluster lease, renews it
// under the same generation, loses it on expiry by its own clock, releases it on a clean stop so
// that another host takes it at once; and the MaintenanceScheduler behind it: only the holder
// queues and runs, a manual run asked for on another host waits for the holder, and a holder
// whose lease was taken over while its GC was marking stops before deleting anything, leaving
// the run to the new holder, which runs it once.
#include "daemon/lease_keeper.h"

#include <gtest/gtest.h>

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "lifecycle/maintenance_test_fixture.h"
#include "store/fault_store.h"

namespace snapvol {
namespace {

using lifecycle::HeldLease;
using lifecycle::kMaintenanceLease;
using lifecycle::MaintenanceScheduler;
using namespace lifecycle::testing_fixture;

constexpr char kA[] = "host-aaaaaaaaaaaaaaaaa";
constexpr char kB[] = "host-bbbbbbbbbbbbbbbbb";
constexpr int64_t kRenewMs = 5'000;
constexpr int64_t kTtlMs = 30'000;

// A store that calls on_list before each listing and on_read before each read: the test's
// hooks to act while GC marks or verification reads.
class ListHookStore : public FaultInjectingStore {
 public:
  explicit ListHookStore(std::unique_ptr<ObjectStore> base) : FaultInjectingStore(base.get()), owned_(std::move(base)) {}
  Result<std::vector<ObjectInfo>> List(const std::string& prefix) override {
    if (on_list) on_list(prefix);
    return FaultInjectingStore::List(prefix);
  }
  Result<std::vector<uint8_t>> Get(const std::string& key) override {
    if (on_read) on_read();
    return FaultInjectingStore::Get(key);
  }
  Result<std::vector<uint8_t>> GetRange(const std::string& key, uint64_t offset, uint64_t length) override {
    if (on_read) on_read();
    return FaultInjectingStore::GetRange(key, offset, length);
  }
  std::function<void(const std::string&)> on_list;
  std::function<void()> on_read;  // called from the verifying threads: the test serialises it

 private:
  std::unique_ptr<ObjectStore> owned_;
};

class LeaseKeeperTest : public MaintenanceTest {
 protected:
  void SetUp() override {
    auto store = std::make_unique<ListHookStore>(std::make_unique<MemoryStore>(&clock_));
    hook_ = store.get();
    Open(std::move(store));
  }
  std::unique_ptr<LeaseKeeper> Keeper(const char* host) {
    return std::make_unique<LeaseKeeper>(
        catalog_.get(), &clock_, kMaintenanceLease, host, kRenewMs, kTtlMs,
        [this](const Error& e) { failures_.push_back(e.message()); },
        [this](const std::string& what) { changes_.push_back(what); });
  }
  ClusterLeaseRecord Lease() {
    auto all = catalog_->ListClusterLeases();
    EXPECT_TRUE(all && all->size() == 1);
    return all && !all->empty() ? all->front() : ClusterLeaseRecord{};
  }
  std::optional<HeldLease::Held> Held(const char* holder, int64_t generation) {
    return HeldLease::Held{holder, generation};
  }

  ListHookStore* hook_ = nullptr;
  std::vector<std::string> failures_, changes_;
};

TEST_F(LeaseKeeperTest, TakesTheLeaseAndRenewsItUnderTheSameGeneration) {
  auto a = Keeper(kA);
  EXPECT_FALSE(a->Current());  // nothing read yet
  ASSERT_TRUE(a->Renew());
  const int64_t t0 = clock_.NowMillis();
  EXPECT_EQ(a->Current(), Held(kA, 1));
  EXPECT_EQ(Lease(), (ClusterLeaseRecord{kMaintenanceLease, kA, t0 + kTtlMs, 1}));
  clock_.Advance(kRenewMs);
  ASSERT_TRUE(a->Renew());
  EXPECT_EQ(a->Current(), Held(kA, 1));
  EXPECT_EQ(Lease(), (ClusterLeaseRecord{kMaintenanceLease, kA, t0 + kRenewMs + kTtlMs, 1}));
  ASSERT_EQ(changes_.size(), 1u);  // taken once, renewed silently
  EXPECT_NE(changes_[0].find("holds lease maintenance under generation 1"), std::string::npos) << changes_[0];

  auto b = Keeper(kB);  // a second host while the first holds it
  ASSERT_TRUE(b->Renew());
  EXPECT_FALSE(b->Current());
  EXPECT_NE(b->HolderText().find(kA), std::string::npos) << b->HolderText();
  EXPECT_EQ(a->Current(), Held(kA, 1));
  EXPECT_TRUE(failures_.empty());
}

TEST_F(LeaseKeeperTest, AHolderThatDidNotRenewLosesItAtItsExpiryAndAnotherTakesItUnderANewGeneration) {
  auto a = Keeper(kA);
  auto b = Keeper(kB);
  ASSERT_TRUE(a->Renew());
  clock_.Advance(kTtlMs - 1);
  EXPECT_EQ(a->Current(), Held(kA, 1));
  clock_.Advance(1);
  EXPECT_FALSE(a->Current());  // by its own clock, before anyone took it
  ASSERT_TRUE(b->Renew());
  EXPECT_EQ(b->Current(), Held(kB, 2));
  ASSERT_TRUE(a->Renew());  // the old holder's next renewal finds it taken
  EXPECT_FALSE(a->Current());
  EXPECT_NE(a->HolderText().find(kB), std::string::npos) << a->HolderText();
  EXPECT_EQ(catalog_->CheckClusterLease(kMaintenanceLease, kA, 1, clock_.NowMillis()).error().code(),
            ErrorCode::kConflict);
  ASSERT_FALSE(changes_.empty());
  EXPECT_NE(changes_.back().find("no longer holds"), std::string::npos) << changes_.back();
}

TEST_F(LeaseKeeperTest, ACleanStopReleasesTheLeaseAndAnotherHostTakesItAtOnce) {
  auto a = Keeper(kA);
  a->Start();  // takes it before returning; its thread renews every 5 s of real time
  EXPECT_EQ(a->Current(), Held(kA, 1));
  a->Stop();
  EXPECT_FALSE(a->Current());
  EXPECT_EQ(Lease(), (ClusterLeaseRecord{kMaintenanceLease, kA, 0, 1}));
  EXPECT_NE(changes_.back().find("released"), std::string::npos) << changes_.back();
  auto b = Keeper(kB);
  ASSERT_TRUE(b->Renew());  // the clock has not moved
  EXPECT_EQ(b->Current(), Held(kB, 2));
  a->Stop();  // idempotent: nothing more released
  EXPECT_EQ(b->Current(), Held(kB, 2));
}

TEST_F(LeaseKeeperTest, LeaseTimesThatCannotWorkAreRefusedByName) {
  EXPECT_TRUE(ValidateLeaseTimes(5'000, 30'000));
  auto equal = ValidateLeaseTimes(5'000, 5'000);
  ASSERT_FALSE(equal);
  EXPECT_NE(equal.error().message().find("--lease-ttl-seconds"), std::string::npos);
  EXPECT_FALSE(ValidateLeaseTimes(0, 30'000));
}

// Only the holder queues scheduled runs and runs queued ones; a manual run asked for on the
// other host waits in the catalog and runs once, on the holder, recorded with its host.
TEST_F(LeaseKeeperTest, OnlyTheHolderQueuesAndRunsAndAManualRunAskedElsewhereRunsOnceOnTheHolder) {
  auto a = Keeper(kA);
  auto b = Keeper(kB);
  clock_.Advance(60'000);  // a gc is due (every minute)
  ASSERT_TRUE(a->Renew());
  ASSERT_TRUE(b->Renew());
  auto on = [this](HeldLease* lease) {
    auto o = GcOnly();
    o.gc_every_ms = 60'000;
    o.lease = lease;
    return std::make_unique<MaintenanceScheduler>(catalog_.get(), repo_.get(), &pool_, &clock_, o);
  };
  auto ma = on(a.get());
  auto mb = on(b.get());
  ASSERT_TRUE(mb->Tick());
  EXPECT_TRUE(Runs("gc").empty());  // b does not hold: it queues nothing
  auto asked = mb->RequestRun("gc", "");
  ASSERT_TRUE(asked) << asked.error().ToString();
  ASSERT_TRUE(mb->Tick());
  EXPECT_EQ(catalog_->GetMaintenanceRun(asked->run_id)->state, "queued");  // nor runs it

  ASSERT_TRUE(ma->Tick());
  auto runs = Runs("gc");
  ASSERT_EQ(runs.size(), 2u);  // the manual one and the scheduled one, both run by a
  for (const auto& r : runs) {
    EXPECT_EQ(r.state, "succeeded") << r.message;
    EXPECT_EQ(r.host_id, kA);
    EXPECT_EQ(r.lease_generation, 1);
  }
  ASSERT_TRUE(mb->Tick());
  ASSERT_TRUE(ma->Tick());
  EXPECT_EQ(Runs("gc").size(), 2u);
}

// The holder's lease is taken over (it paused longer than the lease) while its GC marks: the
// check before deleting finds its generation stale, nothing is deleted, the run is left queued
// with the reason, and the new holder runs it once and frees the garbage.
TEST_F(LeaseKeeperTest, AStaleGenerationStopsAGcBeforeItDeletesAndTheNewHolderRunsItOnce) {
  VolumeRecord v = MakeVolume('a');
  const std::string first = Snap(v);
  Fill(v, 'b');
  const std::string second = Snap(v);
  DeleteSnapshot(first);
  const auto garbage = ChunksOf(first);
  ASSERT_FALSE(garbage.empty());
  clock_.Advance(GcOnly().gc_grace_ms + kMin);  // older than the grace period

  auto a = Keeper(kA);
  auto b = Keeper(kB);
  ASSERT_TRUE(a->Renew());
  auto on = [this](HeldLease* lease) {
    auto o = GcOnly();
    o.gc_enabled = false;  // manual runs only
    o.lease = lease;
    return std::make_unique<MaintenanceScheduler>(catalog_.get(), repo_.get(), &pool_, &clock_, o);
  };
  auto ma = on(a.get());
  auto mb = on(b.get());
  auto asked = ma->RequestRun("gc", "");
  ASSERT_TRUE(asked);

  bool taken_over = false;
  hook_->on_list = [&](const std::string& prefix) {
    if (taken_over || prefix != "manifests/") return;
    taken_over = true;  // a's GC is marking: a pauses past its lease, b takes it
    clock_.Advance(kTtlMs);
    ASSERT_TRUE(b->Renew());
  };
  ASSERT_TRUE(ma->Tick());
  ASSERT_TRUE(taken_over);
  hook_->on_list = nullptr;
  EXPECT_EQ(b->Current(), Held(kB, 2));
  auto left = *catalog_->GetMaintenanceRun(asked->run_id);
  EXPECT_EQ(left.state, "queued") << left.message;
  EXPECT_EQ(left.bytes_freed, 0);
  EXPECT_NE(left.message.find(std::string("stopped on ") + kA), std::string::npos) << left.message;
  EXPECT_NE(left.message.find("stale"), std::string::npos) << left.message;
  EXPECT_TRUE(AnyChunkLeft(garbage));  // nothing deleted
  EXPECT_TRUE(AllChunksIntact(second));

  ASSERT_TRUE(ma->Tick());  // a no longer holds: runs nothing
  EXPECT_EQ(catalog_->GetMaintenanceRun(asked->run_id)->state, "queued");
  ASSERT_TRUE(mb->Tick());
  auto done = *catalog_->GetMaintenanceRun(asked->run_id);
  EXPECT_EQ(done.state, "succeeded") << done.message;
  EXPECT_EQ(done.host_id, kB);
  EXPECT_EQ(done.lease_generation, 2);
  EXPECT_GT(done.bytes_freed, 0);
  EXPECT_FALSE(AnyChunkLeft(garbage));
  EXPECT_TRUE(AllChunksIntact(second));
  EXPECT_EQ(Runs("gc").size(), 1u);
}

// Verification finds damage after the lease was taken over while it read: it marks nothing and
// removes nothing, and leaves the run to the new holder, which finds the damage and marks it.
TEST_F(LeaseKeeperTest, AStaleHolderMarksNoDamageAndTheNewHolderDoes) {
  VolumeRecord v = MakeVolume('a');
  const std::string snap = Snap(v);
  const Digest victim = ChunksOf(snap).front();
  ASSERT_TRUE(testing_util::CorruptStored(repo_.get(), ObjectKind::kChunk, victim, 0x5a, 40));
  clock_.Advance(kHour);  // past the grace period
  auto a = Keeper(kA);
  auto b = Keeper(kB);
  ASSERT_TRUE(a->Renew());
  auto on = [this](HeldLease* lease) {
    auto o = VerifyOnly();
    o.verify_enabled = false;  // manual runs only
    o.lease = lease;
    return std::make_unique<MaintenanceScheduler>(catalog_.get(), repo_.get(), &pool_, &clock_, o);
  };
  auto ma = on(a.get());
  auto mb = on(b.get());
  auto asked = ma->RequestRun("verify", "full");
  ASSERT_TRUE(asked);
  std::mutex mu;
  bool taken_over = false;
  hook_->on_read = [&] {
    std::lock_guard lock(mu);
    if (taken_over) return;
    taken_over = true;  // a is reading: it pauses past its lease, b takes it
    clock_.Advance(kTtlMs);
    EXPECT_TRUE(b->Renew());
  };
  ASSERT_TRUE(ma->Tick());
  hook_->on_read = nullptr;
  ASSERT_TRUE(taken_over);
  auto left = *catalog_->GetMaintenanceRun(asked->run_id);
  EXPECT_EQ(left.state, "queued") << left.message;
  EXPECT_NE(left.message.find("stale"), std::string::npos) << left.message;
  EXPECT_TRUE(catalog_->GetSnapshot(snap)->state_message.empty()) << "marked by the stale holder";
  EXPECT_TRUE(testing_util::StoredExists(repo_.get(), ObjectKind::kChunk, victim));

  ASSERT_TRUE(mb->Tick());
  auto done = *catalog_->GetMaintenanceRun(asked->run_id);
  EXPECT_EQ(done.state, "succeeded") << done.message;
  EXPECT_EQ(done.host_id, kB);
  EXPECT_NE(done.damaged.find(snap), std::string::npos) << done.damaged;
  EXPECT_EQ(catalog_->GetSnapshot(snap)->state_message.rfind("damaged: ", 0), 0u);
  EXPECT_FALSE(testing_util::StoredExists(repo_.get(), ObjectKind::kChunk, victim));
}

// The keeper's view lags behind the catalog (this host paused, or its clock is behind the new
// holder's): it still says "held", but the lease was taken over. The check in the catalog before
// a run starts keeps the run queued, never started here.
TEST_F(LeaseKeeperTest, AHolderWhoseLeaseWasTakenOverStartsNothingEvenBeforeItsKeeperNotices) {
  auto a = Keeper(kA);
  auto b = Keeper(kB);
  const int64_t t0 = clock_.NowMillis();
  ASSERT_TRUE(a->Renew());
  clock_.Set(t0 + kTtlMs);  // the new holder's clock
  ASSERT_TRUE(b->Renew());
  clock_.Set(t0 + kRenewMs);  // the old holder's clock: its keeper still holds generation 1
  ASSERT_EQ(a->Current(), Held(kA, 1));
  auto o = GcOnly();
  o.gc_enabled = false;
  o.lease = a.get();
  MaintenanceScheduler ma(catalog_.get(), repo_.get(), &pool_, &clock_, o);
  auto asked = ma.RequestRun("gc", "");
  ASSERT_TRUE(asked);
  ASSERT_TRUE(ma.Tick());
  auto run = *catalog_->GetMaintenanceRun(asked->run_id);
  EXPECT_EQ(run.state, "queued") << run.message;
  EXPECT_EQ(run.started_ms, 0) << run.message;  // never started on the stale holder
  EXPECT_EQ(run.host_id, "");
}

// A run the old holder left `running` (killed mid-run) is resumed by the new holder when it
// takes the lease, and from then on the old holder's writes to it are refused.
TEST_F(LeaseKeeperTest, TheNewHolderResumesARunLeftRunningAndFencesTheOldHoldersWrites) {
  auto a = Keeper(kA);
  auto b = Keeper(kB);
  ASSERT_TRUE(a->Renew());
  MaintenanceRunRecord run{.job = "gc", .trigger = "manual", .scheduled_ms = clock_.NowMillis(),
                           .started_ms = clock_.NowMillis(), .state = "running", .host_id = kA,
                           .lease_generation = 1};
  run.run_id = *catalog_->InsertMaintenanceRun(run);
  clock_.Advance(kTtlMs);  // a was killed: no renewal
  ASSERT_TRUE(b->Renew());
  auto o = GcOnly();
  o.gc_enabled = false;
  o.lease = b.get();
  MaintenanceScheduler mb(catalog_.get(), repo_.get(), &pool_, &clock_, o);
  ASSERT_TRUE(mb.Tick());
  auto resumed = *catalog_->GetMaintenanceRun(run.run_id);
  EXPECT_EQ(resumed.state, "succeeded") << resumed.message;
  EXPECT_EQ(resumed.host_id, kB);
  EXPECT_EQ(resumed.lease_generation, 2);
  EXPECT_NE(resumed.message.find(std::string("resumed on ") + kB), std::string::npos) << resumed.message;
  run.state = "failed";  // the old holder's late write
  EXPECT_EQ(catalog_->UpdateMaintenanceRun(run).error().code(), ErrorCode::kConflict);
  EXPECT_EQ(catalog_->GetMaintenanceRun(run.run_id)->state, "succeeded");
}

}  // namespace
}  // namespace snapvol
