// Restore drills (lifecycle/restore_drill.h) through the MaintenanceScheduler: which snapshots
// a run takes, a drill that restores byte for byte and leaves nothing in its scratch space, and
// the failures it must report by snapshot: a damaged chunk and a failing check command.
#include "lifecycle/restore_drill.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "lifecycle/maintenance_test_fixture.h"

namespace snapvol::lifecycle {
namespace {

using namespace testing_fixture;

SnapshotRecord Rec(const std::string& id, const std::string& account, const std::string& volume, int64_t start,
                   SnapshotState state = SnapshotState::kCompleted) {
  SnapshotRecord s;
  s.snapshot_id = id;
  s.account_id = account;
  s.volume_id = volume;
  s.start_time_ms = start;
  s.state = state;
  return s;
}

TEST(PickDrillSnapshots, TheLatestOfEachVolumeDrilledLeastRecentlyFirstPerAccount) {
  std::vector<SnapshotRecord> all = {
      Rec("snap-a1", "111111111111", "vol-a", 100), Rec("snap-a2", "111111111111", "vol-a", 200),
      Rec("snap-b1", "111111111111", "vol-b", 150), Rec("snap-c1", "111111111111", "vol-c", 50),
      Rec("snap-c2", "111111111111", "vol-c", 300, SnapshotState::kPending),  // not completed
      Rec("snap-x1", "222222222222", "vol-x", 10)};
  // Never drilled: the newest first.
  auto first = PickDrillSnapshots(all, {}, 2, 7);
  ASSERT_EQ(first.size(), 3u);
  EXPECT_EQ(first[0].snapshot_id, "snap-a2");
  EXPECT_EQ(first[1].snapshot_id, "snap-b1");
  EXPECT_EQ(first[2].snapshot_id, "snap-x1");
  // Drilled ones go to the back, least recently drilled first.
  std::vector<RestoreDrillRecord> drills = {{"snap-a2", 1, 500, 1, 1, true, ""}, {"snap-b1", 1, 400, 1, 1, true, ""}};
  auto next = PickDrillSnapshots(all, drills, 2, 7);
  ASSERT_EQ(next.size(), 3u);
  EXPECT_EQ(next[0].snapshot_id, "snap-c1");
  EXPECT_EQ(next[1].snapshot_id, "snap-b1");
  // A resumed run (run 1) skips what it drilled itself.
  drills[1].run_id = 2;
  auto resumed = PickDrillSnapshots(all, drills, 5, 1);
  std::vector<std::string> ids;
  for (const auto& s : resumed) ids.push_back(s.snapshot_id);
  EXPECT_EQ(ids, (std::vector<std::string>{"snap-c1", "snap-b1", "snap-x1"}));
  EXPECT_EQ(SplitCommand(" e2fsck  -n\t-f {image} "), (std::vector<std::string>{"e2fsck", "-n", "-f", "{image}"}));
}

class RestoreDrillTest : public MaintenanceTest {
 protected:
  MaintenanceOptions DrillOnly(std::vector<std::string> check = {}) {
    MaintenanceOptions o;
    o.gc_enabled = false;
    o.verify_enabled = false;
    o.drill.scratch_dir = dir_ + "/drills";
    o.drill.check_command = std::move(check);
    o.events = &events_;
    return o;
  }
  MaintenanceRunRecord DrillNow(MaintenanceScheduler& m) {
    clock_.Advance(1000);  // a manual run is keyed by the time it was asked for
    auto asked = m.RequestRun("drill", "");
    EXPECT_TRUE(asked) << asked.error().ToString();
    if (!asked) return {};
    EXPECT_TRUE(m.Tick());
    return *catalog_->GetMaintenanceRun(asked->run_id);
  }
  // The scratch directory is private and holds nothing after a run.
  void ExpectScratchEmpty() {
    struct stat st {};
    ASSERT_EQ(::stat((dir_ + "/drills").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0700u);
    EXPECT_TRUE(std::filesystem::is_empty(dir_ + "/drills"));
  }
};

TEST_F(RestoreDrillTest, ADrillRestoresByteForByteRecordsItsTimeAndTakesTheOtherVolumeNext) {
  VolumeRecord a = MakeVolume('a'), b = MakeVolume('b');
  Snap(a);
  clock_.Advance(kMin);
  const std::string a2 = Snap(a);
  clock_.Advance(kMin);
  const std::string b1 = Snap(b);
  // The check compares the restored image with the volume's file, unchanged since.
  MaintenanceScheduler m(catalog_.get(), repo_.get(), &pool_, &clock_, DrillOnly({"cmp", "{image}", a.path}));
  auto run = DrillNow(m);
  // One per account: b1 is the newest never-drilled latest snapshot of the team's volumes.
  EXPECT_EQ(run.state, "failed") << run.message;  // cmp of b's image against a's file
  EXPECT_EQ(run.damaged, b1);
  EXPECT_NE(run.message.find(b1 + " (" + b.volume_id), std::string::npos) << run.message;
  EXPECT_NE(run.message.find("the check `cmp` exited 1"), std::string::npos) << run.message;
  ExpectScratchEmpty();
  ASSERT_EQ(events_.events.size(), 1u);
  EXPECT_EQ(events_.events[0].kind, kEventDrillFailed);

  // The next run takes a's latest snapshot, which the check finds equal to a's file.
  run = DrillNow(m);
  EXPECT_EQ(run.state, "succeeded") << run.message;
  EXPECT_EQ(run.snapshots_checked, 1);
  EXPECT_EQ(run.objects_checked, 4);  // 200000 bytes in 64 KiB blocks
  EXPECT_TRUE(run.damaged.empty());
  EXPECT_NE(run.message.find(a2 + " (" + a.volume_id + ", 195.3 KiB): restored in "), std::string::npos)
      << run.message;
  EXPECT_NE(run.message.find("every block matched its id; `cmp` passed"), std::string::npos) << run.message;
  ExpectScratchEmpty();
  auto drills = *catalog_->ListRestoreDrills();
  ASSERT_EQ(drills.size(), 2u);
  for (const auto& d : drills) {
    EXPECT_EQ(d.volume_bytes, 200000u);
    EXPECT_EQ(d.ok, d.snapshot_id == a2) << d.snapshot_id << ": " << d.problem;
    EXPECT_GE(d.restore_ms, 0);
  }
  EXPECT_EQ(events_.events.size(), 1u);  // a drill that passed tells nobody
}

TEST_F(RestoreDrillTest, ADamagedChunkFailsTheDrillAndNamesTheSnapshot) {
  VolumeRecord v = MakeVolume('d');
  const std::string s = Snap(v);
  const auto chunks = ChunksOf(s);
  ASSERT_FALSE(chunks.empty());
  ASSERT_TRUE(testing_util::CorruptStored(repo_.get(), ObjectKind::kChunk, chunks.front(), 0x5a, 40));
  MaintenanceScheduler m(catalog_.get(), repo_.get(), &pool_, &clock_, DrillOnly());
  auto run = DrillNow(m);
  EXPECT_EQ(run.state, "failed") << run.message;
  EXPECT_EQ(run.damaged, s);
  EXPECT_NE(run.message.find(s + " (" + v.volume_id + ", 195.3 KiB): FAILED: the restore found damage"),
            std::string::npos)
      << run.message;
  ExpectScratchEmpty();
  auto drills = *catalog_->ListRestoreDrills();
  ASSERT_EQ(drills.size(), 1u);
  EXPECT_FALSE(drills[0].ok);
  EXPECT_NE(drills[0].problem.find("damage"), std::string::npos) << drills[0].problem;
  ASSERT_EQ(events_.events.size(), 1u);
  EXPECT_EQ(events_.events[0].kind, kEventDrillFailed);
  bool named = false;
  for (const auto& [k, val] : events_.events[0].details) named |= k == "snapshot_id" && val == s;
  EXPECT_TRUE(named);
}

TEST_F(RestoreDrillTest, ScheduledDrillsRunAtTheirTimeAndOnlyWhenEnabled) {
  VolumeRecord v = MakeVolume('s');
  Snap(v);
  MaintenanceOptions off = DrillOnly();
  MaintenanceScheduler idle(catalog_.get(), repo_.get(), &pool_, &clock_, off);
  clock_.Set(At(2026, 11, 26, 6) + 1000);
  ASSERT_TRUE(idle.Tick());
  EXPECT_TRUE(Runs("drill").empty());
  MaintenanceOptions on = DrillOnly();
  on.drill_enabled = true;
  MaintenanceScheduler m(catalog_.get(), repo_.get(), &pool_, &clock_, on);
  ASSERT_TRUE(m.Tick());
  auto runs = Runs("drill");
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(runs[0].scheduled_ms, At(2026, 11, 26, 6));
  EXPECT_EQ(runs[0].state, "succeeded") << runs[0].message;
  EXPECT_EQ(runs[0].snapshots_checked, 1);
  // A check command that cannot start fails the drill, naming it; so does a scratch directory
  // that cannot be made.
  MaintenanceOptions broken = DrillOnly({"/nonexistent/fsck"});
  MaintenanceScheduler b(catalog_.get(), repo_.get(), &pool_, &clock_, broken);
  auto run = DrillNow(b);
  EXPECT_EQ(run.state, "failed");
  EXPECT_NE(run.message.find("the check command could not run"), std::string::npos) << run.message;
  EXPECT_NE(run.message.find("/nonexistent/fsck"), std::string::npos) << run.message;
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/file", AsBytes(std::string("x"))));
  MaintenanceOptions blocked = DrillOnly();
  blocked.drill.scratch_dir = dir_ + "/file/drills";
  MaintenanceScheduler c(catalog_.get(), repo_.get(), &pool_, &clock_, blocked);
  run = DrillNow(c);
  EXPECT_EQ(run.state, "failed");
  EXPECT_NE(run.message.find("scratch directory"), std::string::npos) << run.message;
  // A scratch directory open to others is refused, and left as it is.
  ASSERT_TRUE(MakeDirs(dir_ + "/open"));
  ASSERT_EQ(::chmod((dir_ + "/open").c_str(), 0755), 0);
  MaintenanceOptions open = DrillOnly();
  open.drill.scratch_dir = dir_ + "/open";
  MaintenanceScheduler d(catalog_.get(), repo_.get(), &pool_, &clock_, open);
  run = DrillNow(d);
  EXPECT_EQ(run.state, "failed");
  EXPECT_NE(run.message.find("is open to others (mode 0755"), std::string::npos) << run.message;
  struct stat st {};
  ASSERT_EQ(::stat((dir_ + "/open").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);
  // A mode is refused when asked; a process without a scratch directory fails the run.
  EXPECT_EQ(m.RequestRun("drill", "full").error().code(), ErrorCode::kInvalidArgument);
  MaintenanceOptions none = DrillOnly();
  none.drill.scratch_dir.clear();
  MaintenanceScheduler n(catalog_.get(), repo_.get(), &pool_, &clock_, none);
  run = DrillNow(n);
  EXPECT_EQ(run.state, "failed");
  EXPECT_NE(run.message.find("no scratch directory"), std::string::npos) << run.message;
}

}  // namespace
}  // namespace snapvol::lifecycle
