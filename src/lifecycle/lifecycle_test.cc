#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "catalog/catalog_test_db.h"
#include "core/file_util.h"
#include "core/ids.h"
#include "lifecycle/lifecycle_test_util.h"
#include "lifecycle/policy_details.h"
#include "lifecycle/scheduler.h"
#include "store/memory_store.h"

namespace snapvol::lifecycle {
namespace {

using nlohmann::json;
using testing_util::At;
using testing_util::kDay;
using testing_util::kHour;
using testing_util::kMin;

// ---- the scheduler, on a fake clock ----

class SchedulerTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = testing::TempDir() + "/lifecycle-" + NewVolumeId();
    ASSERT_TRUE(MakeDirs(dir_));
    catalog_db_ = std::make_unique<catalog_testing::TestCatalogDb>(dir_);
    catalog_ = std::move(*Catalog::Open(catalog_db_->location(), &clock_));
    RepositoryOptions ro;
    ro.block_size = 64 * 1024;
    repo_ = std::move(*Repository::Create(std::make_unique<MemoryStore>(), ro));
    jobs_ = std::make_unique<SnapshotJobs>(repo_.get(), catalog_.get(), &pool_, "test-runner", 2,
                                           &clock_);
    team_ = *catalog_->CreateAccount("team-1");
  }
  void TearDown() override {
    jobs_.reset();
    std::filesystem::remove_all(dir_);
  }

  VolumeRecord MakeVolume(const std::string& name, std::vector<Tag> tags = {}) {
    VolumeRecord v;
    v.volume_id = NewVolumeId();
    v.account_id = team_.account_id;
    v.name = name;
    v.path = dir_ + "/" + v.volume_id + ".img";
    std::string data(200000, name.empty() ? 'x' : name[0]);
    EXPECT_TRUE(WriteFileAtomic(v.path, AsBytes(data)));
    v.size_bytes = data.size();
    v.block_size = 64 * 1024;
    v.created_ms = clock_.NowMillis();
    v.tags = std::move(tags);
    EXPECT_TRUE(catalog_->InsertVolume(v));
    return v;
  }

  // A policy of team-1 with these details, created now.
  LifecyclePolicyRecord InsertPolicy(const std::string& description, const json& details) {
    LifecyclePolicyRecord p;
    p.policy_id = NewPolicyId();
    p.account_id = team_.account_id;
    p.description = description;
    p.details = details.dump();
    p.created_ms = p.modified_ms = clock_.NowMillis();
    EXPECT_TRUE(catalog_->InsertLifecyclePolicy(p));
    return p;
  }

  // Ticks until no run is running (the jobs run on real threads).
  void TickUntilIdle(LifecycleScheduler& s) {
    for (int i = 0; i < 1000; ++i) {
      ASSERT_TRUE(s.Tick());
      if (catalog_->ListRunningLifecycleRuns()->empty()) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    FAIL() << "runs did not finish";
  }

  std::vector<LifecycleRunRecord> Runs(const std::string& policy_id) {
    return *catalog_->ListLifecycleRuns(policy_id, 1000);
  }

  LifecyclePolicyRecord DefaultPolicyOf(const std::string& account) {
    auto policies = *catalog_->ListLifecyclePolicies(account);
    for (const auto& p : policies)
      if (IsDefaultPolicy(p)) return p;
    ADD_FAILURE() << "no default policy for " << account;
    return {};
  }

  std::vector<SnapshotRecord> Automatic(const std::string& policy_id) {
    return *catalog_->ListSnapshots({.tag = Tag{kPolicyIdTag, policy_id}});
  }

  std::string dir_;
  FakeClock clock_{At(2026, 11, 25, 12)};
  std::unique_ptr<catalog_testing::TestCatalogDb> catalog_db_;  // outlives catalog_
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<Repository> repo_;
  ThreadPool pool_{2};
  std::unique_ptr<SnapshotJobs> jobs_;
  AccountRecord team_;
};

TEST_F(SchedulerTest, EveryAccountGetsTheDailyDefaultPolicyOnceAndItRunsAtTwoUtc) {
  VolumeRecord v = MakeVolume("web");
  SchedulerOptions o;
  o.default_retention = 5;
  LifecycleScheduler s(catalog_.get(), repo_.get(), jobs_.get(), &clock_, o);
  ASSERT_TRUE(s.Tick());
  auto policy = DefaultPolicyOf(team_.account_id);
  EXPECT_EQ(policy.state, "ENABLED");
  EXPECT_EQ(policy.description, "daily-0200-utc");
  auto details = ParsePolicyDetails(json::parse(policy.details), true);
  ASSERT_TRUE(details);
  EXPECT_EQ(details->schedules[0].retain.count, 5);
  // Deleting it is final: no second default policy appears.
  ASSERT_TRUE(catalog_->DeleteLifecyclePolicy(policy.policy_id));
  ASSERT_TRUE(s.Tick());
  auto left = *catalog_->ListLifecyclePolicies(team_.account_id);
  for (const auto& p : left) EXPECT_FALSE(IsDefaultPolicy(p));

  // A new account gets one too; it runs at 02:00 the next day, not before.
  auto team2 = *catalog_->CreateAccount("team-2");
  ASSERT_TRUE(s.Tick());
  auto p2 = DefaultPolicyOf(team2.account_id);
  clock_.Set(At(2026, 11, 26, 1, 59));
  ASSERT_TRUE(s.Tick());
  EXPECT_TRUE(Runs(p2.policy_id).empty());
  clock_.Set(At(2026, 11, 26, 2, 0) + 1000);
  TickUntilIdle(s);
  auto runs = Runs(p2.policy_id);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].scheduled_ms, At(2026, 11, 26, 2));
  EXPECT_EQ(runs[0].state, "succeeded") << runs[0].message;
  EXPECT_EQ(runs[0].missed, 0);
  EXPECT_NE(runs[0].message.find("no volume matched"), std::string::npos) << runs[0].message;
  (void)v;
}

TEST_F(SchedulerTest, SnapshotsAreTaggedAndDescribedAsAutomatic) {
  VolumeRecord v = MakeVolume("web", {{"Owner", "team-1"}});
  LifecycleScheduler s(catalog_.get(), repo_.get(), jobs_.get(), &clock_);
  ASSERT_TRUE(s.Tick());
  auto policy = DefaultPolicyOf(team_.account_id);
  clock_.Set(At(2026, 11, 26, 2) + 500);
  TickUntilIdle(s);
  auto snaps = Automatic(policy.policy_id);
  ASSERT_EQ(snaps.size(), 1u);
  const auto& snap = snaps[0];
  EXPECT_EQ(snap.state, SnapshotState::kCompleted) << snap.state_message;
  EXPECT_EQ(snap.volume_id, v.volume_id);
  EXPECT_NE(snap.description.find("automatic"), std::string::npos);
  std::map<std::string, std::string> tags;
  for (const auto& t : snap.tags) tags[t.key] = t.value;
  EXPECT_EQ(tags["Name"], "web");
  EXPECT_EQ(tags[kPolicyIdTag], policy.policy_id);
  EXPECT_EQ(tags[kScheduleTag], "daily-0200-utc");
  EXPECT_EQ(tags.count("Owner"), 0u);  // CopyTags is off in the default policy
}

// Over the account's snapshot quota the run takes no snapshot, does not retry, and ends
// failed with the quota's reason in its record; the next run, with room again, works.
TEST_F(SchedulerTest, ARunOverTheSnapshotQuotaFailsWithTheReasonAndCreatesNothing) {
  VolumeRecord v = MakeVolume("web");
  ASSERT_TRUE(catalog_->SetQuotas(team_.account_id,
                                  {{QuotaKind::kSnapshots, {QuotaSetting::Mode::kLimit, 0}}}));
  LifecycleScheduler s(catalog_.get(), repo_.get(), jobs_.get(), &clock_);
  ASSERT_TRUE(s.Tick());
  auto policy = DefaultPolicyOf(team_.account_id);
  clock_.Set(At(2026, 11, 26, 2) + 500);
  TickUntilIdle(s);
  auto runs = Runs(policy.policy_id);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].state, "failed") << runs[0].message;
  EXPECT_EQ(runs[0].created, 0);
  EXPECT_EQ(runs[0].failed, 1);
  EXPECT_NE(runs[0].message.find("no snapshot of " + v.volume_id), std::string::npos)
      << runs[0].message;
  EXPECT_NE(runs[0].message.find("snapshots quota of account " + team_.account_id),
            std::string::npos)
      << runs[0].message;
  EXPECT_TRUE(catalog_->ListSnapshots({.account_id = team_.account_id})->empty());
  EXPECT_TRUE(repo_->ListManifestIds()->empty());

  ASSERT_TRUE(catalog_->SetQuotas(team_.account_id,
                                  {{QuotaKind::kSnapshots, {QuotaSetting::Mode::kLimit, 1}}}));
  clock_.Set(At(2026, 11, 27, 2) + 500);
  TickUntilIdle(s);
  runs = Runs(policy.policy_id);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].state, "succeeded") << runs[0].message;
  EXPECT_EQ(Automatic(policy.policy_id).size(), 1u);
}

// An instance whose volumes live on two hosts is not cut (docs/multi-host.md part 3): its run
// fails at once with the reason (not after retries) and takes nothing.
TEST_F(SchedulerTest, AnInstanceWhoseVolumesLiveOnTwoHostsFailsItsRunWithTheReason) {
  const std::string inst = NewInstanceId();
  ASSERT_TRUE(catalog_->InsertInstance({inst, team_.account_id, "db", clock_.NowMillis(), {}}));
  std::vector<std::string> ids;
  for (const char* host : {"host-aaaaaaaaaaaaaaaaa", "host-bbbbbbbbbbbbbbbbb"}) {
    VolumeRecord v;
    v.volume_id = NewVolumeId();
    v.account_id = team_.account_id;
    v.path = dir_ + "/" + v.volume_id + ".img";
    ASSERT_TRUE(WriteFileAtomic(v.path, AsBytes(std::string(200000, 'd'))));
    v.size_bytes = 200000;
    v.block_size = 64 * 1024;
    v.created_ms = clock_.NowMillis();
    v.instance_id = inst;
    v.device = ids.empty() ? "/dev/xvda" : "/dev/xvdb";
    v.host_id = host;
    ASSERT_TRUE(catalog_->InsertVolume(v));
    ids.push_back(v.volume_id);
  }
  LifecyclePolicyRecord p = InsertPolicy(
      "instances",
      json{{"ResourceTypes", {"INSTANCE"}},
           {"TargetTags", {{{"Key", "Name"}, {"Value", "db"}}}},
           {"Schedules",
            {{{"Name", "d"},
              {"CreateRule", {{"Interval", 24}, {"IntervalUnit", "HOURS"}, {"Times", {"02:00"}}}},
              {"RetainRule", {{"Count", 3}}}}}}});
  LifecycleScheduler s(catalog_.get(), repo_.get(), jobs_.get(), &clock_);
  clock_.Set(At(2026, 11, 26, 2) + 500);
  TickUntilIdle(s);
  auto runs = Runs(p.policy_id);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].state, "failed") << runs[0].message;
  EXPECT_EQ(runs[0].created, 0);
  EXPECT_EQ(runs[0].failed, 2);
  EXPECT_NE(runs[0].message.find("live on different hosts"), std::string::npos) << runs[0].message;
  EXPECT_NE(runs[0].message.find("host-bbbbbbbbbbbbbbbbb: " + ids[1]), std::string::npos)
      << runs[0].message;
  EXPECT_TRUE(catalog_->ListSnapshots({.account_id = team_.account_id})->empty());
}

// A volume with 50 tags copied to its snapshots, plus two of the schedule's TagsToAdd:
// the schedule's are kept, the copied tags past 50 are left out (the last ones), and the run
// says which, never silently.
TEST_F(SchedulerTest, CopiedTagsPastFiftyAreLeftOutNamedAndTheSchedulesAreKept) {
  std::vector<Tag> vtags = {{"Name", "web"}};
  for (int i = 0; i < 49; ++i)
    vtags.push_back({"k" + std::string(i < 10 ? "0" : "") + std::to_string(i), "v"});
  VolumeRecord v = MakeVolume("web", vtags);
  LifecyclePolicyRecord p = InsertPolicy(
      "many tags",
      json{{"ResourceTypes", {"VOLUME"}},
           {"TargetTags", {{{"Key", "Name"}, {"Value", "web"}}}},
           {"Schedules",
            {{{"Name", "d"},
              {"CopyTags", true},
              {"TagsToAdd",
               {{{"Key", "type"}, {"Value", "daily"}}, {{"Key", "when"}, {"Value", "02:00"}}}},
              {"CreateRule", {{"Interval", 24}, {"IntervalUnit", "HOURS"}, {"Times", {"02:00"}}}},
              {"RetainRule", {{"Count", 3}}}}}}});
  LifecycleScheduler s(catalog_.get(), repo_.get(), jobs_.get(), &clock_);
  clock_.Set(At(2026, 11, 26, 2) + 500);
  TickUntilIdle(s);
  auto runs = Runs(p.policy_id);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].state, "succeeded") << runs[0].message;
  auto snaps = Automatic(p.policy_id);
  ASSERT_EQ(snaps.size(), 1u) << runs[0].message;
  EXPECT_EQ(snaps[0].state, SnapshotState::kCompleted) << snaps[0].state_message;
  std::map<std::string, std::string> tags;
  size_t user = 0;
  for (const auto& t : snaps[0].tags) {
    tags[t.key] = t.value;
    if (!HasReservedTagPrefix(t.key)) ++user;
  }
  EXPECT_EQ(user, 50u);
  EXPECT_EQ(tags["type"], "daily");
  EXPECT_EQ(tags.count("when"), 1u);
  EXPECT_EQ(tags["Name"], "web");
  EXPECT_EQ(tags.count("k46"), 1u);
  EXPECT_EQ(tags.count("k47"), 0u);
  EXPECT_EQ(tags.count("k48"), 0u);
  EXPECT_NE(runs[0].message.find(v.volume_id + ": 2 tags left out of its snapshot"),
            std::string::npos)
      << runs[0].message;
  EXPECT_NE(runs[0].message.find("k47, k48"), std::string::npos) << runs[0].message;
}

// Raised events, from any thread (the jobs' runners raise snapshot-failed).
class CollectingSink : public EventSink {
 public:
  void Raise(OperatorEvent e) override {
    std::lock_guard lock(mu_);
    events_.push_back(std::move(e));
  }
  std::vector<OperatorEvent> Of(const std::string& kind) {
    std::lock_guard lock(mu_);
    std::vector<OperatorEvent> out;
    for (const auto& e : events_)
      if (e.kind == kind) out.push_back(e);
    return out;
  }

 private:
  std::mutex mu_;
  std::vector<OperatorEvent> events_;
};

std::string Detail(const OperatorEvent& e, const std::string& key) {
  for (const auto& [k, v] : e.details)
    if (k == key) return v;
  return "<none>";
}

// A run with one unreadable volume ends partial: one lifecycle-run-failed event (a warning,
// with the counts), one snapshot-failed for the snapshot; a run that succeeds raises nothing.
TEST_F(SchedulerTest, AFailedOrPartialRunIsRaisedOnceAndASucceededOneNot) {
  VolumeRecord ok = MakeVolume("web");
  VolumeRecord gone = MakeVolume("db");
  ASSERT_TRUE(std::filesystem::remove(gone.path));
  CollectingSink sink;
  jobs_->SetEventSink(&sink);
  SchedulerOptions o;
  o.events = &sink;
  LifecycleScheduler s(catalog_.get(), repo_.get(), jobs_.get(), &clock_, o);
  ASSERT_TRUE(s.Tick());
  auto policy = DefaultPolicyOf(team_.account_id);
  clock_.Set(At(2026, 11, 26, 2) + 500);
  TickUntilIdle(s);
  ASSERT_TRUE(s.Tick());  // a finished run is not raised again
  auto runs = Runs(policy.policy_id);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].state, "partial") << runs[0].message;
  auto raised = sink.Of(kEventLifecycleRunFailed);
  ASSERT_EQ(raised.size(), 1u);
  EXPECT_EQ(raised[0].severity, "warning");
  EXPECT_EQ(Detail(raised[0], "policy_id"), policy.policy_id);
  EXPECT_EQ(Detail(raised[0], "account_id"), team_.account_id);
  EXPECT_EQ(Detail(raised[0], "state"), "partial");
  EXPECT_EQ(Detail(raised[0], "snapshots_created"), "1");
  EXPECT_EQ(Detail(raised[0], "snapshots_failed"), "1");
  EXPECT_EQ(raised[0].time_ms, runs[0].finished_ms);
  auto failed = sink.Of(kEventSnapshotFailed);
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(Detail(failed[0], "volume_id"), gone.volume_id);
  EXPECT_NE(Detail(failed[0], "message").find("cannot read the volume"), std::string::npos);

  ASSERT_TRUE(WriteFileAtomic(gone.path, AsBytes(std::string(200000, 'd'))));
  clock_.Set(At(2026, 11, 27, 2) + 500);
  TickUntilIdle(s);
  EXPECT_EQ(Runs(policy.policy_id)[0].state, "succeeded");
  EXPECT_EQ(sink.Of(kEventLifecycleRunFailed).size(), 1u);
  EXPECT_EQ(sink.Of(kEventSnapshotFailed).size(), 1u);
  (void)ok;
}

TEST_F(SchedulerTest, PolicyCreatedAfterTheTimeFirstRunsTheNextDay) {
  MakeVolume("web", {{"backup", "yes"}});
  clock_.Set(At(2026, 11, 26, 2, 30));
  LifecyclePolicyRecord p = InsertPolicy(
      "mine",
      json{{"ResourceTypes", {"VOLUME"}},
           {"TargetTags", {{{"Key", "backup"}, {"Value", "yes"}}}},
           {"Schedules",
            {{{"Name", "d"},
              {"CreateRule", {{"Interval", 24}, {"IntervalUnit", "HOURS"}, {"Times", {"02:00"}}}},
              {"RetainRule", {{"Count", 3}}}}}}});
  LifecycleScheduler s(catalog_.get(), repo_.get(), jobs_.get(), &clock_);
  TickUntilIdle(s);
  EXPECT_TRUE(Runs(p.policy_id).empty());
  clock_.Set(At(2026, 11, 27, 2, 0) + 200);
  TickUntilIdle(s);
  auto runs = Runs(p.policy_id);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].scheduled_ms, At(2026, 11, 27, 2));
  EXPECT_EQ(runs[0].created, 1);
}

TEST_F(SchedulerTest, TheTestClockOffsetMakesTheNextTimeDueEarlyAndMovesNothingElse) {
  MakeVolume("web", {{"backup", "yes"}});
  const json details{{"ResourceTypes", {"VOLUME"}},
                     {"TargetTags", {{{"Key", "backup"}, {"Value", "yes"}}}},
                     {"Schedules",
                      {{{"Name", "d"},
                        {"CreateRule", {{"Interval", 24}, {"IntervalUnit", "HOURS"}, {"Times", {"12:01"}}}},
                        {"RetainRule", {{"Count", 3}}}}}}};
  clock_.Set(At(2026, 11, 25, 12) + 45'000);  // 12:00:45
  LifecyclePolicyRecord p = InsertPolicy("mine", details);
  LifecycleScheduler plain(catalog_.get(), repo_.get(), jobs_.get(), &clock_);
  TickUntilIdle(plain);
  EXPECT_TRUE(Runs(p.policy_id).empty()) << "12:01 is not due at 12:00:45";
  SchedulerOptions o;
  o.schedule_clock_offset_ms = 20'000;
  LifecycleScheduler early(catalog_.get(), repo_.get(), jobs_.get(), &clock_, o);
  TickUntilIdle(early);
  auto runs = Runs(p.policy_id);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].scheduled_ms, At(2026, 11, 25, 12, 1));
  EXPECT_EQ(runs[0].started_ms, At(2026, 11, 25, 12) + 45'000) << "the run keeps the real time";
  EXPECT_EQ(runs[0].missed, 0);
  auto snaps = Automatic(p.policy_id);
  ASSERT_EQ(snaps.size(), 1u);
  EXPECT_EQ(snaps[0].start_time_ms, At(2026, 11, 25, 12) + 45'000) << "the snapshot keeps the real time";
  TickUntilIdle(early);
  EXPECT_EQ(Runs(p.policy_id).size(), 1u) << "and it runs once";
}

TEST_F(SchedulerTest, DowntimeCatchesUpOnceAndRecordsTheMiss) {
  MakeVolume("web");
  LifecycleScheduler s(catalog_.get(), repo_.get(), jobs_.get(), &clock_);
  ASSERT_TRUE(s.Tick());
  auto policy = DefaultPolicyOf(team_.account_id);
  clock_.Set(At(2026, 11, 26, 2) + 100);
  TickUntilIdle(s);
  ASSERT_EQ(Runs(policy.policy_id).size(), 1u);
  // Down from 01:00 to 05:00: one run on start, for 02:00, not missed but late.
  clock_.Set(At(2026, 11, 27, 1));
  TickUntilIdle(s);
  ASSERT_EQ(Runs(policy.policy_id).size(), 1u);
  clock_.Set(At(2026, 11, 27, 5));
  TickUntilIdle(s);
  auto runs = Runs(policy.policy_id);
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].scheduled_ms, At(2026, 11, 27, 2));
  EXPECT_EQ(runs[0].missed, 0);
  EXPECT_NE(runs[0].message.find("180 min after"), std::string::npos) << runs[0].message;
  TickUntilIdle(s);
  EXPECT_EQ(Runs(policy.policy_id).size(), 2u);  // ticking again changes nothing
  // Down for three days: one run, two misses recorded.
  clock_.Set(At(2026, 11, 30, 5));
  TickUntilIdle(s);
  runs = Runs(policy.policy_id);
  ASSERT_EQ(runs.size(), 3u);
  EXPECT_EQ(runs[0].scheduled_ms, At(2026, 11, 30, 2));
  EXPECT_EQ(runs[0].missed, 2);
  EXPECT_NE(runs[0].message.find("missed"), std::string::npos);
  EXPECT_EQ(Automatic(policy.policy_id).size(), 3u);
}

TEST_F(SchedulerTest, RetentionKeepsTheNewestSevenAndNeverTouchesManualOrPendingSnapshots) {
  VolumeRecord v = MakeVolume("web");
  LifecycleScheduler s(catalog_.get(), repo_.get(), jobs_.get(), &clock_);
  ASSERT_TRUE(s.Tick());
  auto policy = DefaultPolicyOf(team_.account_id);
  // A manual snapshot, and a pending one that carries the policy's tags (as if its runner
  // were still at work) from long ago.
  auto manual = jobs_->Start({{v, "by hand", {{"Name", "manual"}}, clock_.NowMillis(), false}});
  ASSERT_TRUE(manual);
  SnapshotRecord pending;
  pending.snapshot_id = NewSnapshotId();
  pending.volume_id = v.volume_id;
  pending.account_id = team_.account_id;
  pending.start_time_ms = At(2026, 1, 1);
  pending.block_size = 64 * 1024;
  pending.volume_size_bytes = v.size_bytes;
  pending.tags = {
      {kPolicyIdTag, policy.policy_id}, {kScheduleTag, "daily-0200-utc"}, {kRunTag, "old"}};
  pending.runner = "pid:1@elsewhere";
  auto inserted = catalog_->InsertSnapshot(pending);
  ASSERT_TRUE(inserted) << inserted.error().ToString();
  for (int day = 0; day < 10; ++day) {
    clock_.Set(At(2026, 11, 26, 2) + day * kDay + 1000);
    TickUntilIdle(s);
  }
  auto runs = Runs(policy.policy_id);
  ASSERT_EQ(runs.size(), 10u);
  int64_t deleted = 0;
  for (const auto& r : runs) deleted += r.deleted;
  EXPECT_EQ(deleted, 3);
  std::vector<int64_t> kept;
  for (const auto& snap : Automatic(policy.policy_id))
    if (snap.snapshot_id != pending.snapshot_id) kept.push_back(snap.start_time_ms);
  std::sort(kept.begin(), kept.end());
  ASSERT_EQ(kept.size(), 7u);
  EXPECT_EQ(kept.front(), At(2026, 11, 29, 2) + 1000);  // days 4..10 remain
  EXPECT_EQ(kept.back(), At(2026, 12, 5, 2) + 1000);
  EXPECT_TRUE(catalog_->GetSnapshot((*manual)[0].snapshot_id));
  EXPECT_EQ(catalog_->GetSnapshot(pending.snapshot_id)->state, SnapshotState::kPending);
  // The deleted snapshots' manifests are gone from the store too.
  size_t manifests = 0;
  auto all = *catalog_->ListSnapshots({});
  for (const auto& snap : all)
    if (repo_->GetManifest(snap.snapshot_id)) ++manifests;
  EXPECT_EQ(manifests, 8u);  // 7 automatic + the manual one
}

TEST_F(SchedulerTest, RetentionLeavesALockedSnapshotUntilItsLockEnds) {
  VolumeRecord v = MakeVolume("db");
  LifecycleScheduler s(catalog_.get(), repo_.get(), jobs_.get(), &clock_);
  ASSERT_TRUE(s.Tick());
  auto policy = DefaultPolicyOf(team_.account_id);
  clock_.Set(At(2026, 11, 26, 2) + 1000);
  TickUntilIdle(s);
  auto first = Automatic(policy.policy_id);
  ASSERT_EQ(first.size(), 1u);
  const std::string locked = first[0].snapshot_id;
  const int64_t until = At(2026, 12, 8);  // past the 10 days below
  ASSERT_TRUE(catalog_->PutSnapshotLock({locked, team_.account_id, "governance", clock_.NowMillis(),
                                         clock_.NowMillis(), until, 12, 0, 0}));
  for (int day = 1; day < 10; ++day) {
    clock_.Set(At(2026, 11, 26, 2) + day * kDay + 1000);
    TickUntilIdle(s);
  }
  // 10 snapshots, keep 7: the two oldest unlocked ones went, the locked one stayed.
  EXPECT_EQ(Automatic(policy.policy_id).size(), 8u);
  EXPECT_TRUE(catalog_->GetSnapshot(locked));
  EXPECT_TRUE(repo_->GetManifest(locked));
  // The first run after the lock ends takes it.
  clock_.Set(At(2026, 12, 8, 2) + 1000);
  TickUntilIdle(s);
  EXPECT_EQ(catalog_->GetSnapshot(locked).error().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(repo_->GetManifest(locked));
  EXPECT_EQ(Automatic(policy.policy_id).size(), 7u);
}

TEST_F(SchedulerTest, RestartInTheMiddleOfARunFinishesItWithoutDuplicates) {
  VolumeRecord a = MakeVolume("a"), b = MakeVolume("b");
  LifecycleScheduler s(catalog_.get(), repo_.get(), jobs_.get(), &clock_);
  ASSERT_TRUE(s.Tick());
  auto policy = DefaultPolicyOf(team_.account_id);
  // The service stops right after the run queued its snapshots: they end `error` ("the
  // service stopped …"), the run stays `running`.
  jobs_->Shutdown();
  clock_.Set(At(2026, 11, 26, 2) + 1000);
  ASSERT_TRUE(s.Tick());
  auto runs = Runs(policy.policy_id);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].state, "running");
  // A new process: new jobs, a new scheduler on the same catalog.
  jobs_ = std::make_unique<SnapshotJobs>(repo_.get(), catalog_.get(), &pool_, "test-runner-2", 2,
                                         &clock_);
  LifecycleScheduler again(catalog_.get(), repo_.get(), jobs_.get(), &clock_);
  clock_.Advance(30'000);
  TickUntilIdle(again);
  runs = Runs(policy.policy_id);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].state, "succeeded") << runs[0].message;
  EXPECT_EQ(runs[0].created, 2);
  std::map<std::string, int> completed;
  for (const auto& snap : Automatic(policy.policy_id))
    if (snap.state == SnapshotState::kCompleted) ++completed[snap.volume_id];
  EXPECT_EQ(completed[a.volume_id], 1);
  EXPECT_EQ(completed[b.volume_id], 1);
}

}  // namespace
}  // namespace snapvol::lifecycle
