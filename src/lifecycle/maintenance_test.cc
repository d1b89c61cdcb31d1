// MaintenanceScheduler on a fake clock: GC after the policies, catch-up, resumption of killed
// runs, verification coverage within its period, damage found on disk, and what GC must keep.
#include "lifecycle/maintenance.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "core/file_util.h"
#include "core/ids.h"
#include "engine/snapshot_deletion.h"
#include "lifecycle/scheduler.h"
#include "store/block_map.h"
#include "store/local_store.h"
#include "store/memory_store.h"
#include "store/stored_object_test_util.h"
#include "store/verify.h"

namespace snapvol::lifecycle {
namespace {

namespace chr = std::chrono;
constexpr int64_t kMin = 60'000;
constexpr int64_t kHour = 60 * kMin;
constexpr int64_t kDay = 24 * kHour;

int64_t At(int y, unsigned mo, unsigned d, int h = 0, int mi = 0) {
  chr::sys_days day{chr::year{y} / chr::month{mo} / chr::day{d}};
  return day.time_since_epoch().count() * kDay + h * kHour + mi * kMin;
}

class RecordingSink : public EventSink {
 public:
  void Raise(OperatorEvent e) override {
    std::lock_guard lock(mu);
    events.push_back(std::move(e));
  }
  std::mutex mu;
  std::vector<OperatorEvent> events;
};

class MaintenanceTest : public testing::Test {
 protected:
  void SetUp() override { Open(std::make_unique<MemoryStore>(&clock_)); }
  void Open(std::unique_ptr<ObjectStore> store) {
    jobs_.reset();
    repo_.reset();
    catalog_.reset();
    dir_ = testing::TempDir() + "/maintenance-" + NewVolumeId();
    ASSERT_TRUE(MakeDirs(dir_));
    catalog_ = std::move(*Catalog::Open(dir_ + "/catalog.db", &clock_));
    RepositoryOptions ro;
    ro.block_size = 64 * 1024;
    repo_ = std::move(*Repository::Create(std::move(store), ro));
    jobs_ = std::make_unique<SnapshotJobs>(repo_.get(), catalog_.get(), &pool_, "test-runner", 2, &clock_);
    team_ = *catalog_->CreateAccount("team-1");
  }
  void TearDown() override {
    jobs_.reset();
    std::filesystem::remove_all(dir_);
  }

  MaintenanceOptions GcOnly() {
    MaintenanceOptions o;
    o.verify_enabled = false;
    o.events = &events_;
    return o;
  }
  MaintenanceOptions VerifyOnly() {
    MaintenanceOptions o;
    o.gc_enabled = false;
    o.events = &events_;
    return o;
  }

  VolumeRecord MakeVolume(char fill) {
    VolumeRecord v;
    v.volume_id = NewVolumeId();
    v.account_id = team_.account_id;
    v.name = std::string("vol-") + fill;
    v.path = dir_ + "/" + v.volume_id + ".img";
    v.size_bytes = 200000;
    v.block_size = 64 * 1024;
    v.created_ms = clock_.NowMillis();
    Fill(v, fill);
    EXPECT_TRUE(catalog_->InsertVolume(v));
    return v;
  }
  void Fill(const VolumeRecord& v, char fill) {
    std::string data(v.size_bytes, fill);
    EXPECT_TRUE(WriteFileAtomic(v.path, AsBytes(data)));
  }

  // Takes a snapshot of v and waits (real time, bounded) until it completed.
  // Asks m for a gc now and runs it: the run's record afterwards.
  MaintenanceRunRecord GcNow(MaintenanceScheduler& m) {
    auto asked = m.RequestRun("gc", "");
    EXPECT_TRUE(asked) << asked.error().ToString();
    if (!asked) return {};
    EXPECT_TRUE(m.Tick());
    return *catalog_->GetMaintenanceRun(asked->run_id);
  }
  std::string Snap(const VolumeRecord& v) {
    auto started = jobs_->Start({{v, "test", {}, clock_.NowMillis(), false}});
    EXPECT_TRUE(started) << started.error().ToString();
    if (!started) return "";
    const std::string id = started->front().snapshot_id;
    for (int i = 0; i < 2000; ++i) {
      auto s = catalog_->GetSnapshot(id);
      if (s && s->state != SnapshotState::kPending) {
        EXPECT_EQ(s->state, SnapshotState::kCompleted) << s->state_message;
        return id;
      }
      std::this_thread::sleep_for(chr::milliseconds(5));
    }
    ADD_FAILURE() << "snapshot " << id << " did not finish";
    return id;
  }

  void TickLifecycleUntilIdle(LifecycleScheduler& s) {
    for (int i = 0; i < 2000; ++i) {
      ASSERT_TRUE(s.Tick());
      if (catalog_->ListRunningLifecycleRuns()->empty()) return;
      std::this_thread::sleep_for(chr::milliseconds(5));
    }
    FAIL() << "lifecycle runs did not finish";
  }

  std::vector<MaintenanceRunRecord> Runs(const std::string& job) {
    auto runs = *catalog_->ListMaintenanceRuns(job, 1000);
    std::reverse(runs.begin(), runs.end());  // oldest first
    return runs;
  }

  // The chunk ids a snapshot references (its root may be deleted).
  std::vector<Digest> ChunksOf(const std::string& snapshot_id) {
    std::vector<Digest> out;
    auto meta = repo_->GetManifest(snapshot_id, /*include_deleted=*/true);
    EXPECT_TRUE(meta) << snapshot_id;
    if (!meta) return out;
    BlockMapReader reader(repo_.get(), *meta);
    EXPECT_TRUE(reader.Walk([](uint32_t, const Digest&) -> Result<bool> { return true; },
                            [&](uint64_t, const Digest& c) -> Status {
                              out.push_back(c);
                              return OkStatus();
                            }));
    return out;
  }
  bool AllChunksIntact(const std::string& snapshot_id) {
    auto chunks = ChunksOf(snapshot_id);
    if (chunks.empty()) return false;
    for (const auto& c : chunks) {
      std::optional<uint64_t> read;
      if (!repo_->CheckChunk(c, false, &read)) return false;
    }
    return true;
  }
  bool AnyChunkLeft(const std::vector<Digest>& chunks) {
    for (const auto& c : chunks)
      if (testing_util::StoredExists(repo_.get(), ObjectKind::kChunk, c)) return true;
    return false;
  }
  void DeleteSnapshot(const std::string& id) {
    ASSERT_TRUE(snapvol::DeleteSnapshot({.catalog = catalog_.get(), .repo = repo_.get()}, id, clock_.NowMillis()));
  }

  std::string dir_;
  FakeClock clock_{At(2026, 11, 25, 12)};
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<Repository> repo_;
  ThreadPool pool_{2};
  std::unique_ptr<SnapshotJobs> jobs_;
  AccountRecord team_;
  RecordingSink events_;
};

TEST_F(MaintenanceTest, GcRunsDailyAfterThePoliciesAndFreesWhatRetentionDeleted) {
  VolumeRecord v = MakeVolume('a');
  SchedulerOptions so;
  so.default_retention = 1;
  LifecycleScheduler policies(catalog_.get(), repo_.get(), jobs_.get(), &clock_, so);
  MaintenanceScheduler m(catalog_.get(), repo_.get(), &pool_, &clock_, GcOnly());
  ASSERT_TRUE(policies.Tick());
  ASSERT_TRUE(m.Tick());
  EXPECT_TRUE(Runs("gc").empty());  // today's 04:00 was before the service existed

  clock_.Set(At(2026, 11, 26, 2) + 1000);
  TickLifecycleUntilIdle(policies);
  auto first = *catalog_->ListSnapshots({.volume_id = v.volume_id});
  ASSERT_EQ(first.size(), 1u);
  clock_.Set(At(2026, 11, 26, 4) + 1000);
  ASSERT_TRUE(m.Tick());
  auto gc = Runs("gc");
  ASSERT_EQ(gc.size(), 1u);
  EXPECT_EQ(gc[0].state, "succeeded") << gc[0].message;
  EXPECT_EQ(gc[0].scheduled_ms, At(2026, 11, 26, 4));
  EXPECT_EQ(gc[0].bytes_freed, 0);  // nothing was deleted yet
  EXPECT_TRUE(AllChunksIntact(first[0].snapshot_id));

  // Next day the volume has changed; the 02:00 run starts late and is still running at 04:00.
  Fill(v, 'b');
  clock_.Set(At(2026, 11, 27, 4) + 1000);
  ASSERT_TRUE(policies.Tick());
  ASSERT_FALSE(catalog_->ListRunningLifecycleRuns()->empty());
  ASSERT_TRUE(m.Tick());
  gc = Runs("gc");
  ASSERT_EQ(gc.size(), 2u);
  EXPECT_EQ(gc[1].state, "queued");  // waits for the policies
  TickLifecycleUntilIdle(policies);  // the run completes and retention deletes the first snapshot
  auto now = *catalog_->ListSnapshots({.volume_id = v.volume_id});
  ASSERT_EQ(now.size(), 1u);
  ASSERT_NE(now[0].snapshot_id, first[0].snapshot_id);
  const auto first_chunks = ChunksOf(first[0].snapshot_id);
  ASSERT_FALSE(first_chunks.empty());
  EXPECT_TRUE(AnyChunkLeft(first_chunks));  // deleted, not yet freed
  ASSERT_TRUE(m.Tick());
  gc = Runs("gc");
  ASSERT_EQ(gc.size(), 2u);
  EXPECT_EQ(gc[1].state, "succeeded") << gc[1].message;
  EXPECT_GT(gc[1].bytes_freed, 0);
  EXPECT_GE(gc[1].objects_deleted, 2);  // its chunks and its root at least
  EXPECT_FALSE(AnyChunkLeft(first_chunks));
  EXPECT_TRUE(AllChunksIntact(now[0].snapshot_id));
  ThreadPool pool(2);
  auto verified = VerifySnapshots(repo_.get(), {}, &pool, {});
  ASSERT_TRUE(verified);
  EXPECT_TRUE(verified->ok());
  EXPECT_EQ(verified->snapshots_checked, 1u);
}

TEST_F(MaintenanceTest, DowntimeCatchesUpOnceForTheLatestMissedTime) {
  MaintenanceScheduler m(catalog_.get(), repo_.get(), &pool_, &clock_, GcOnly());
  clock_.Set(At(2026, 11, 26, 4, 1));
  ASSERT_TRUE(m.Tick());
  ASSERT_EQ(Runs("gc").size(), 1u);
  // Down from the 26th to the 30th at 10:00: 27, 28, 29 and 30 at 04:00 were missed.
  clock_.Set(At(2026, 11, 30, 10));
  MaintenanceScheduler again(catalog_.get(), repo_.get(), &pool_, &clock_, GcOnly());
  ASSERT_TRUE(again.Tick());
  ASSERT_TRUE(again.Tick());
  auto gc = Runs("gc");
  ASSERT_EQ(gc.size(), 2u);
  EXPECT_EQ(gc[1].scheduled_ms, At(2026, 11, 30, 4));
  EXPECT_EQ(gc[1].missed, 3);
  EXPECT_EQ(gc[1].state, "succeeded");
  EXPECT_NE(gc[1].message.find("caught up once for 3"), std::string::npos) << gc[1].message;
  EXPECT_NE(gc[1].message.find("after its scheduled time"), std::string::npos) << gc[1].message;
}

TEST_F(MaintenanceTest, KilledRunsResumeCleanlyAndNeverTwoAtOnce) {
  std::vector<std::string> snaps;
  for (char c : {'a', 'b', 'c', 'd'}) snaps.push_back(Snap(MakeVolume(c)));
  // A process was killed during a verification of everything (two snapshots done) and during
  // a scheduled GC: both rows are left `running`.
  const int64_t t = clock_.NowMillis();
  MaintenanceRunRecord verify{.job = "verify", .trigger = "manual", .mode = "full", .scheduled_ms = t,
                              .started_ms = t, .state = "running"};
  verify.run_id = *catalog_->InsertMaintenanceRun(verify);
  ASSERT_TRUE(catalog_->RecordSnapshotChecked(snaps[0], t + 10, true));
  ASSERT_TRUE(catalog_->RecordSnapshotChecked(snaps[1], t + 20, true));
  MaintenanceRunRecord gc{.job = "gc", .scheduled_ms = At(2026, 11, 25, 4), .started_ms = t, .state = "running"};
  gc.run_id = *catalog_->InsertMaintenanceRun(gc);
  clock_.Advance(kMin);

  MaintenanceScheduler m(catalog_.get(), repo_.get(), &pool_, &clock_, GcOnly());
  // A run of a job whose run is unfinished is refused, naming it.
  auto twice = m.RequestRun("verify", "full");
  ASSERT_FALSE(twice);
  EXPECT_EQ(twice.error().code(), ErrorCode::kConflict);
  EXPECT_NE(twice.error().message().find("run " + std::to_string(verify.run_id)), std::string::npos);
  ASSERT_TRUE(m.Tick());
  auto v = *catalog_->GetMaintenanceRun(verify.run_id);
  EXPECT_EQ(v.state, "succeeded") << v.message;
  EXPECT_EQ(v.snapshots_checked, 2);  // only those the killed process had not checked
  EXPECT_NE(v.message.find("resumed"), std::string::npos) << v.message;
  auto verifs = *catalog_->ListSnapshotVerifications();
  ASSERT_EQ(verifs.size(), 4u);
  for (const auto& r : verifs) EXPECT_GE(r.checked_ms, t) << r.snapshot_id;
  auto g = *catalog_->GetMaintenanceRun(gc.run_id);
  EXPECT_EQ(g.state, "succeeded") << g.message;
  EXPECT_NE(g.message.find("resumed"), std::string::npos) << g.message;
  // The scheduled slot stays one run; the next is the 26th.
  ASSERT_TRUE(m.Tick());
  EXPECT_EQ(Runs("gc").size(), 1u);
  // Unknown jobs and modes are refused by name.
  EXPECT_EQ(m.RequestRun("defrag", "").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(m.RequestRun("verify", "deep").error().code(), ErrorCode::kInvalidArgument);
}

TEST_F(MaintenanceTest, VerificationCoversEverySnapshotWithinItsPeriodADayAtATime) {
  std::vector<std::string> snaps;
  for (int i = 0; i < 14; ++i) snaps.push_back(Snap(MakeVolume(static_cast<char>('A' + i))));
  MaintenanceScheduler m(catalog_.get(), repo_.get(), &pool_, &clock_, VerifyOnly());
  std::set<std::string> seen;
  for (int day = 1; day <= 7; ++day) {
    clock_.Set(At(2026, 11, 25, 5) + day * kDay + 1000);
    ASSERT_TRUE(m.Tick());
    auto runs = Runs("verify");
    ASSERT_EQ(runs.size(), static_cast<size_t>(day));
    const auto& r = runs.back();
    EXPECT_EQ(r.state, "succeeded") << r.message;
    EXPECT_EQ(r.mode, "full");
    EXPECT_LE(r.snapshots_checked, 2) << "day " << day;  // a day's share of 14 over 7 days
    auto verifs = *catalog_->ListSnapshotVerifications();
    for (const auto& v : verifs)
      if (v.checked_ms >= r.started_ms) seen.insert(v.snapshot_id);
  }
  EXPECT_EQ(seen, std::set<std::string>(snaps.begin(), snaps.end()));
  // The next period starts over with the least recently checked.
  clock_.Set(At(2026, 12, 3, 5) + 1000);
  ASSERT_TRUE(m.Tick());
  auto r = Runs("verify").back();
  EXPECT_EQ(r.snapshots_checked, 2);
  EXPECT_TRUE(events_.events.empty());
}

TEST_F(MaintenanceTest, QuickVerificationChecksumsEverySnapshotDailyAndStillDecodesEachWithinThePeriod) {
  std::vector<std::string> snaps;
  for (int i = 0; i < 14; ++i) snaps.push_back(Snap(MakeVolume(static_cast<char>('A' + i))));
  const std::set<std::string> all(snaps.begin(), snaps.end());
  // An operator's quick check of everything before: it must not count as a full decode.
  MaintenanceOptions o = VerifyOnly();
  o.verify_quick = true;
  MaintenanceScheduler m(catalog_.get(), repo_.get(), &pool_, &clock_, o);
  auto asked = m.RequestRun("verify", "quick");
  ASSERT_TRUE(asked);
  ASSERT_TRUE(m.Tick());
  ASSERT_EQ(catalog_->GetMaintenanceRun(asked->run_id)->snapshots_checked, 14);
  const auto before = *catalog_->ListSnapshotVerifications();
  ASSERT_EQ(before.size(), 14u);
  for (const auto& v : before) EXPECT_EQ(v.full_ms, 0) << v.snapshot_id;

  std::set<std::string> decoded, first_day;
  for (int day = 1; day <= 7; ++day) {
    clock_.Set(At(2026, 11, 25, 5) + day * kDay + 1000);
    ASSERT_TRUE(m.Tick());
    const auto r = Runs("verify").back();
    ASSERT_EQ(r.trigger, "scheduled");
    EXPECT_EQ(r.state, "succeeded") << r.message;
    EXPECT_EQ(r.mode, "quick+full");
    EXPECT_EQ(r.snapshots_checked, 14) << "day " << day;  // every snapshot, every day
    std::set<std::string> checked_today, decoded_today;
    const auto verifs = *catalog_->ListSnapshotVerifications();
    for (const auto& v : verifs) {
      if (v.checked_ms >= r.started_ms) checked_today.insert(v.snapshot_id);
      if (v.full_ms >= r.started_ms) decoded_today.insert(v.snapshot_id);
      EXPECT_EQ(v.damaged_ms, 0) << v.snapshot_id;
    }
    EXPECT_EQ(checked_today, all) << "day " << day;
    EXPECT_EQ(decoded_today.size(), 2u) << "day " << day;  // a bounded share: 14 over 7 days
    for (const auto& id : decoded_today) EXPECT_TRUE(decoded.insert(id).second) << id << " decoded twice";
    if (day == 1) first_day = decoded_today;
    EXPECT_NE(r.message.find("14 snapshot(s) checked: 2 by full decode, 12 by checksums only"), std::string::npos)
        << r.message;
  }
  EXPECT_EQ(decoded, all);  // each fully decoded once within the period
  // The next period decodes the least recently decoded again.
  clock_.Set(At(2026, 12, 3, 5) + 1000);
  ASSERT_TRUE(m.Tick());
  const auto r = Runs("verify").back();
  EXPECT_EQ(r.snapshots_checked, 14);
  std::set<std::string> again;
  const auto verifs = *catalog_->ListSnapshotVerifications();
  for (const auto& v : verifs)
    if (v.full_ms >= r.started_ms) again.insert(v.snapshot_id);
  EXPECT_EQ(again, first_day);  // decoded longest ago
  EXPECT_TRUE(events_.events.empty());
}

TEST_F(MaintenanceTest, KilledQuickVerificationResumesWithoutDecodingTwice) {
  std::vector<std::string> snaps;
  for (int i = 0; i < 7; ++i) snaps.push_back(Snap(MakeVolume(static_cast<char>('a' + i))));
  // A scheduled quick+full run (period 7 days: one decode a day) was killed after decoding
  // its share and checksumming two more.
  const int64_t due = At(2026, 11, 26, 5);
  clock_.Set(due + kMin);
  const int64_t t = clock_.NowMillis();
  MaintenanceRunRecord run{.job = "verify", .mode = "quick+full", .scheduled_ms = due, .started_ms = t,
                           .state = "running", .snapshots_checked = 3};
  run.run_id = *catalog_->InsertMaintenanceRun(run);
  ASSERT_TRUE(catalog_->RecordSnapshotChecked(snaps[0], t + 10, true));
  ASSERT_TRUE(catalog_->RecordSnapshotChecked(snaps[1], t + 20, false));
  ASSERT_TRUE(catalog_->RecordSnapshotChecked(snaps[2], t + 20, false));
  clock_.Advance(kMin);
  MaintenanceOptions o = VerifyOnly();
  o.verify_quick = true;
  MaintenanceScheduler m(catalog_.get(), repo_.get(), &pool_, &clock_, o);
  ASSERT_TRUE(m.Tick());
  auto r = *catalog_->GetMaintenanceRun(run.run_id);
  EXPECT_EQ(r.state, "succeeded") << r.message;
  EXPECT_EQ(r.snapshots_checked, 7);
  EXPECT_NE(r.message.find("7 snapshot(s) checked: 1 by full decode, 6 by checksums only"), std::string::npos)
      << r.message;
  const auto verifs = *catalog_->ListSnapshotVerifications();
  ASSERT_EQ(verifs.size(), 7u);
  for (const auto& v : verifs) {
    EXPECT_GE(v.checked_ms, t) << v.snapshot_id;
    EXPECT_EQ(v.full_ms >= t, v.snapshot_id == snaps[0]) << v.snapshot_id;
  }
}

TEST_F(MaintenanceTest, DamagedChunkOnDiskNamesEverySnapshotThatUsesItAndIsNeverReused) {
  // A real local store, on the fake clock's idea of now so that file times make sense.
  clock_.Set(Clock::Real()->NowMillis());
  const std::string store_root = testing::TempDir() + "/maintenance-store-" + NewVolumeId();
  auto local = LocalStore::Open(store_root);
  ASSERT_TRUE(local) << local.error().ToString();
  Open(std::move(*local));
  struct Cleanup {
    std::string path;
    ~Cleanup() { std::filesystem::remove_all(path); }
  } cleanup{store_root};
  VolumeRecord a = MakeVolume('a'), b = MakeVolume('b');
  std::string a1 = Snap(a), b1 = Snap(b);
  clock_.Advance(kMin);
  std::string a2 = Snap(a);  // the same data: shares a1's chunks
  ASSERT_EQ(catalog_->LatestCompletedSnapshot(a.volume_id)->snapshot_id, a2);

  // Flip a byte of one of a's chunks on disk (format 1: its file; format 2: inside its pack).
  Digest victim = ChunksOf(a1).front();
  ASSERT_TRUE(testing_util::CorruptStored(repo_.get(), ObjectKind::kChunk, victim, 0x5a, 40));
  clock_.Advance(kHour);  // past the grace period

  MaintenanceScheduler m(catalog_.get(), repo_.get(), &pool_, &clock_, VerifyOnly());
  auto asked = m.RequestRun("verify", "full");
  ASSERT_TRUE(asked) << asked.error().ToString();
  ASSERT_TRUE(m.Tick());
  auto run = *catalog_->GetMaintenanceRun(asked->run_id);
  EXPECT_EQ(run.state, "succeeded") << run.message;
  EXPECT_NE(run.damaged.find(a1), std::string::npos) << run.damaged;
  EXPECT_NE(run.damaged.find(a2), std::string::npos) << run.damaged;
  EXPECT_EQ(run.damaged.find(b1), std::string::npos) << run.damaged;
  for (const auto& id : {a1, a2}) {
    auto s = *catalog_->GetSnapshot(id);
    EXPECT_EQ(s.state, SnapshotState::kCompleted);
    EXPECT_EQ(s.state_message.rfind("damaged: verification at ", 0), 0u) << s.state_message;
    EXPECT_NE(s.state_message.find(ToHex(victim)), std::string::npos) << s.state_message;
    EXPECT_TRUE(std::any_of(s.tags.begin(), s.tags.end(), [](const Tag& t) { return t.key == kDamagedTag; }));
  }
  EXPECT_TRUE(catalog_->GetSnapshot(b1)->state_message.empty());
  {
    std::lock_guard lock(events_.mu);
    ASSERT_EQ(events_.events.size(), 1u);
    EXPECT_EQ(events_.events[0].kind, kEventVerifyDamage);
    std::set<std::string> named;
    for (const auto& [k, val] : events_.events[0].details)
      if (k == "snapshot_id") named.insert(val);
    EXPECT_EQ(named, (std::set<std::string>{a1, a2}));
  }
  // Neither damaged snapshot is a parent any more, and the damaged chunk is gone from the store,
  // so the next snapshot of a writes the block afresh and is whole.
  EXPECT_EQ(catalog_->LatestCompletedSnapshot(a.volume_id).error().code(), ErrorCode::kNotFound);
  EXPECT_FALSE(testing_util::StoredExists(repo_.get(), ObjectKind::kChunk, victim));
  std::string a3 = Snap(a);
  EXPECT_TRUE(catalog_->GetSnapshot(a3)->parent_snapshot_id.empty());
  ThreadPool pool(2);
  auto again = VerifySnapshots(repo_.get(), {a3, b1}, &pool, {});
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->ok());
}

TEST_F(MaintenanceTest, GcKeepsWhatALoadingVolumeAndARunningSnapshotNeed) {
  VolumeRecord a = MakeVolume('a'), b = MakeVolume('b');
  std::string s = Snap(a), p = Snap(b);
  // A volume still loading lazily from s, whose row appears only after s was deleted (the
  // deletion path refuses otherwise): GC must keep what the volume reads all the same. A
  // snapshot being written has p as its parent; p is deleted.
  DeleteSnapshot(s);
  VolumeRecord loading;
  loading.volume_id = NewVolumeId();
  loading.account_id = team_.account_id;
  loading.path = dir_ + "/" + loading.volume_id + ".img";
  loading.size_bytes = a.size_bytes;
  loading.block_size = a.block_size;
  loading.snapshot_id = s;
  loading.state = "creating";
  loading.managed = true;
  ASSERT_TRUE(catalog_->InsertVolume(loading));
  DeleteSnapshot(p);
  clock_.Advance(kDay);
  ASSERT_TRUE(repo_->PutLease({"snap-0123456789abcdef0", p, "test", clock_.NowMillis(), clock_.NowMillis()}));

  MaintenanceScheduler m(catalog_.get(), repo_.get(), &pool_, &clock_, GcOnly());
  auto run = GcNow(m);
  EXPECT_EQ(run.state, "succeeded") << run.message;
  EXPECT_EQ(run.bytes_freed, 0) << run.message;
  EXPECT_TRUE(AllChunksIntact(s));
  EXPECT_TRUE(AllChunksIntact(p));

  // Once the volume has loaded and the snapshot ended, their objects go.
  ASSERT_TRUE(catalog_->SetVolumeState(loading.volume_id, "available"));
  ASSERT_TRUE(repo_->RemoveLease("snap-0123456789abcdef0"));
  clock_.Advance(kMin);
  run = GcNow(m);
  EXPECT_EQ(run.state, "succeeded") << run.message;
  EXPECT_GT(run.bytes_freed, 0);
  EXPECT_FALSE(repo_->GetManifest(s, true).has_value());
  EXPECT_TRUE(events_.events.empty());
}

// A snapshot that ended while the store was unreachable left its lease: the daemon's GC
// releases it (the catalog says the snapshot ended) and so frees what the lease held back,
// as `snapvol gc` does; a pending snapshot's lease stays.
TEST_F(MaintenanceTest, GcReleasesTheLeaseOfASnapshotThatEndedAndFreesWhatItHeld) {
  VolumeRecord a = MakeVolume('a');
  const int64_t started = clock_.NowMillis();
  auto record = [&](SnapshotState state) {
    SnapshotRecord r;
    r.snapshot_id = NewSnapshotId();
    r.volume_id = a.volume_id;
    r.account_id = team_.account_id;
    r.state = state;
    r.start_time_ms = clock_.NowMillis();
    r.volume_size_bytes = a.size_bytes;
    r.block_size = a.block_size;
    if (state == SnapshotState::kError) r.state_message = "the store was unreachable";
    auto inserted = catalog_->InsertSnapshot(r);
    EXPECT_TRUE(inserted) << inserted.error().ToString();
    return r;
  };
  // A snapshot that failed with the store down: its lease was left behind.
  SnapshotRecord failed = record(SnapshotState::kError);
  ASSERT_TRUE(repo_->PutLease({failed.snapshot_id, "", "test-runner", started, started}));
  // Garbage written at the same time: a snapshot since deleted.
  std::string gone = Snap(a);
  DeleteSnapshot(gone);
  // Another snapshot, still being written, started after the grace period: it holds back
  // nothing of that garbage.
  clock_.Advance(16 * kMin);
  SnapshotRecord pending = record(SnapshotState::kPending);
  ASSERT_TRUE(repo_->PutLease({pending.snapshot_id, "", "test-runner", pending.start_time_ms, pending.start_time_ms}));
  // Within the leases' expiry (30 minutes): only the release lets GC free it.
  clock_.Advance(4 * kMin);
  MaintenanceScheduler m(catalog_.get(), repo_.get(), &pool_, &clock_, GcOnly());
  auto run = GcNow(m);
  EXPECT_EQ(run.state, "succeeded") << run.message;
  EXPECT_NE(run.message.find("released the lease(s) of 1 ended snapshot(s): " + failed.snapshot_id + " (error)"),
            std::string::npos)
      << run.message;
  EXPECT_GT(run.bytes_freed, 0) << run.message;
  EXPECT_FALSE(repo_->GetManifest(gone, true).has_value());
  auto leases = repo_->ListLeases();
  ASSERT_TRUE(leases);
  ASSERT_EQ(leases->size(), 1u);
  EXPECT_EQ(leases->front().snapshot_id, pending.snapshot_id);
}

}  // namespace
}  // namespace snapvol::lifecycle
