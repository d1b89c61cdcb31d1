// The MaintenanceScheduler tests' fixture (maintenance_test.cc, restore_drill_test.cc): a
// catalog and a store on a fake clock, volumes as files, snapshots taken through SnapshotJobs,
// and readers of what the store holds.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "catalog/catalog_test_db.h"
#include "core/file_util.h"
#include "core/ids.h"
#include "engine/snapshot_deletion.h"
#include "lifecycle/maintenance.h"
#include "lifecycle/scheduler.h"
#include "store/block_map.h"
#include "store/local_store.h"
#include "store/memory_store.h"
#include "store/stored_object_test_util.h"
#include "store/verify.h"

namespace snapvol::lifecycle::testing_fixture {

namespace chr = std::chrono;
constexpr int64_t kMin = 60'000;
constexpr int64_t kHour = 60 * kMin;
constexpr int64_t kDay = 24 * kHour;

inline int64_t At(int y, unsigned mo, unsigned d, int h = 0, int mi = 0) {
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
    catalog_db_ = std::make_unique<catalog_testing::TestCatalogDb>(dir_);
    catalog_ = std::move(*Catalog::Open(catalog_db_->location(), &clock_));
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
  std::unique_ptr<catalog_testing::TestCatalogDb> catalog_db_;  // outlives catalog_
  std::unique_ptr<Catalog> catalog_;
  std::unique_ptr<Repository> repo_;
  ThreadPool pool_{2};
  std::unique_ptr<SnapshotJobs> jobs_;
  AccountRecord team_;
  RecordingSink events_;
};

}  // namespace snapvol::lifecycle::testing_fixture
